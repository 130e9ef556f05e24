//! The view rules, one row of the table in `view.rs` per case.

use super::super::{Column, Values};
use super::fit;
use compiler::check::{Dim, Ty};
use compiler::ir::DType;

fn ty(dtype: DType, dims: &[&str]) -> Ty {
    Ty {
        dtype,
        dims: dims.iter().map(|d| d.parse().map(Dim::Known).unwrap_or_else(|_| Dim::Sym(d.to_string()))).collect(),
    }
}

fn bytes(dims: &[usize]) -> Column {
    Column::new(Values::U8(vec![0; 2 * dims.iter().product::<usize>()]), dims.to_vec(), 1.0)
}

#[test]
fn declared_shapes_reshape_for_free_or_explain_why_not() {
    let img = bytes(&[784]);
    // IDX images: flattened by default, any declared shape of 784 values.
    assert_eq!(fit(&img, &ty(DType::F32, &["B", "784"])), Ok((vec![784], DType::F32)));
    assert_eq!(fit(&img, &ty(DType::F32, &["B", "1", "28", "28"])), Ok((vec![1, 28, 28], DType::F32)));
    assert_eq!(fit(&img, &ty(DType::F64, &["B", "28", "28"])), Ok((vec![28, 28], DType::F64)));
    assert_eq!(fit(&img, &ty(DType::I32, &["B", "D"])), Ok((vec![784], DType::I32)));
    // One symbolic dim of another rank is solved.
    assert_eq!(fit(&img, &ty(DType::F32, &["B", "1", "H", "28"])), Ok((vec![1, 28, 28], DType::F32)));
    assert_eq!(
        fit(&img, &ty(DType::F32, &["B", "1", "32", "32"])),
        Err("the declaration has 1024 values per example, the data 784".into())
    );
    assert_eq!(
        fit(&bytes(&[28, 28]), &ty(DType::F32, &["B", "28", "27"])).unwrap_err(),
        "the declaration has 756 values per example, the data 784"
    );
    assert_eq!(
        fit(&bytes(&[28, 28]), &ty(DType::F32, &["B", "27", "W"])).unwrap_err(),
        "dimension 1 (after the batch) is 27 in the declaration, 28 in the data"
    );
    assert_eq!(
        fit(&img, &ty(DType::F32, &["B", "H", "W"])).unwrap_err(),
        "the declaration has 2 dimensions per example, the data 1, and its symbolic dimensions cannot be solved for 784 values"
    );
    assert_eq!(
        fit(&img, &ty(DType::F32, &[])).unwrap_err(),
        "the declaration has no batch dimension: expected the batch first, e.g. `f32[B, ...]`"
    );
    // Labels: scalars per example.
    assert_eq!(fit(&bytes(&[]), &ty(DType::I32, &["B"])), Ok((vec![], DType::I32)));
}

#[test]
fn dtypes_convert_only_from_bytes() {
    let f64s = Column::new(Values::F64(vec![0.0; 4]), vec![2], 1.0);
    assert_eq!(fit(&f64s, &ty(DType::F64, &["B", "2"])), Ok((vec![2], DType::F64)));
    assert_eq!(
        fit(&f64s, &ty(DType::F32, &["B", "2"])).unwrap_err(),
        "the data holds f64 values, not f32: convert them when saving (numpy: `a.astype(np.float32)`)"
    );
    let ints = Column::new(Values::I32(vec![0; 4]), vec![2], 1.0);
    assert_eq!(fit(&ints, &ty(DType::I32, &["B", "T"])), Ok((vec![2], DType::I32)));
    assert!(fit(&ints, &ty(DType::F32, &["B", "T"])).unwrap_err().contains("np.float32"));
    assert_eq!(
        fit(&bytes(&[2]), &ty(DType::Bool, &["B", "2"])).unwrap_err(),
        "bytes (u8) can be batched as f32, f64 or i32, not bool"
    );
}
