//! The definition of `ReduceMin`: `ReduceMax`'s mirror image. Elements
//! combine in row-major order of the operand, starting from +inf (`i32::MAX`),
//! with `interp::fmin` (NaN propagates, -0 < +0).

use super::fmin;
use crate::ir::tensor::{Data, Tensor};
use crate::ir::types::Type;

pub fn reduce_min(x: &Tensor, axes: &[usize], ty: &Type) -> Tensor {
    let src = x.shape.dims();
    let out_strides = ty.shape.strides();
    let kept: Vec<usize> = (0..src.len()).filter(|d| !axes.contains(d)).collect();
    // For each source element (row-major), the flat index of its output element.
    let mut idx = vec![0usize; src.len()];
    let targets: Vec<usize> = (0..x.shape.num_elements())
        .map(|_| {
            let out = kept.iter().enumerate().map(|(k, &d)| idx[d] * out_strides[k]).sum();
            super::advance(&mut idx, src);
            out
        })
        .collect();
    let n_out = ty.shape.num_elements();
    let data = match &x.data {
        Data::F32(v) => {
            let mut acc = vec![f32::INFINITY; n_out];
            for (&t, &a) in targets.iter().zip(v) {
                acc[t] = fmin(acc[t] as f64, a as f64) as f32;
            }
            Data::F32(acc)
        }
        Data::F64(v) => {
            let mut acc = vec![f64::INFINITY; n_out];
            for (&t, &a) in targets.iter().zip(v) {
                acc[t] = fmin(acc[t], a);
            }
            Data::F64(acc)
        }
        Data::I32(v) => {
            let mut acc = vec![i32::MAX; n_out];
            for (&t, &a) in targets.iter().zip(v) {
                acc[t] = acc[t].min(a);
            }
            Data::I32(acc)
        }
        other => panic!("reduce_min on {other:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}
