//! The definition of `BatchMatMul`: one `MatMul` per batch element, each
//! accumulating sequentially over `k` like the interpreter's matmul.

use crate::ir::tensor::{Data, Tensor};
use crate::ir::types::Type;

pub fn batch_matmul(a: &Tensor, b: &Tensor, ty: &Type) -> Tensor {
    let r = a.shape.rank();
    let (m, k, n) = (a.shape.0[r - 2], a.shape.0[r - 1], b.shape.0[r - 1]);
    let batch: usize = a.shape.0[..r - 2].iter().product();
    macro_rules! bmm {
        ($x:expr, $y:expr, $t:ty) => {{
            let mut out = vec![0 as $t; batch * m * n];
            for p in 0..batch {
                let (x, y) = (&$x[p * m * k..(p + 1) * m * k], &$y[p * k * n..(p + 1) * k * n]);
                for i in 0..m {
                    for j in 0..n {
                        let mut acc: $t = 0.0;
                        for q in 0..k {
                            acc += x[i * k + q] * y[q * n + j];
                        }
                        out[p * m * n + i * n + j] = acc;
                    }
                }
            }
            out
        }};
    }
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(bmm!(x, y, f32)),
        (Data::F64(x), Data::F64(y)) => Data::F64(bmm!(x, y, f64)),
        (x, y) => panic!("batch_matmul on {x:?} and {y:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}
