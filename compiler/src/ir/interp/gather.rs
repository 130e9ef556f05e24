//! The definitions of `Gather` and `ScatterAdd` (see `Op`'s doc comments).
//!
//! Both see the operand as `[V, row]` rows (`row` = the product of the
//! trailing dims) and the indices as a flat list; out-of-range indices clamp
//! to `[0, V - 1]`.

use crate::ir::tensor::{Data, Tensor};
use crate::ir::types::Type;

/// The row an index selects among `v` rows: clamped into range.
pub fn clamp_index(index: i32, v: usize) -> usize {
    (index.max(0) as usize).min(v - 1)
}

fn indices_of(t: &Tensor) -> &[i32] {
    match &t.data {
        Data::I32(i) => i,
        other => panic!("gather/scatter indices are {other:?}"),
    }
}

/// `result[i, r] = operand[clamp(indices[i]), r]`.
pub fn gather(operand: &Tensor, indices: &Tensor, ty: &Type) -> Tensor {
    let v = operand.shape.0[0];
    let row: usize = operand.shape.0[1..].iter().product();
    let idx = indices_of(indices);
    macro_rules! take {
        ($src:expr) => {{
            let mut out = Vec::with_capacity(idx.len() * row);
            for &i in idx {
                let r = clamp_index(i, v);
                out.extend_from_slice(&$src[r * row..(r + 1) * row]);
            }
            out
        }};
    }
    let data = match &operand.data {
        Data::F32(x) => Data::F32(take!(x)),
        Data::F64(x) => Data::F64(take!(x)),
        Data::I32(x) => Data::I32(take!(x)),
        Data::Bool(x) => Data::Bool(take!(x)),
    };
    Tensor { shape: ty.shape.clone(), data }
}

/// Zeros of `ty`, then `result[clamp(indices[i]), r] += updates[i, r]` for
/// `i` in order.
pub fn scatter_add(updates: &Tensor, indices: &Tensor, ty: &Type) -> Tensor {
    let v = ty.shape.0[0];
    let row: usize = ty.shape.0[1..].iter().product();
    let idx = indices_of(indices);
    let mut res = Tensor::zeros(ty);
    macro_rules! accumulate {
        ($dst:expr, $src:expr, $add:expr) => {
            for (k, &i) in idx.iter().enumerate() {
                let r = clamp_index(i, v);
                for j in 0..row {
                    $dst[r * row + j] = $add($dst[r * row + j], $src[k * row + j]);
                }
            }
        };
    }
    match (&mut res.data, &updates.data) {
        (Data::F32(d), Data::F32(s)) => accumulate!(d, s, |a: f32, b: f32| a + b),
        (Data::F64(d), Data::F64(s)) => accumulate!(d, s, |a: f64, b: f64| a + b),
        (Data::I32(d), Data::I32(s)) => accumulate!(d, s, |a: i32, b: i32| a.wrapping_add(b)),
        (d, s) => panic!("scatter_add of {s:?} into {d:?}"),
    }
    res
}
