//! The definitions of `RandomBits`, `RandomSplit` and `RandomUniform`: thin
//! wrappers around `ir::threefry`, which holds the math.

use crate::ir::tensor::{Data, Tensor};
use crate::ir::threefry;
use crate::ir::types::{DType, Type};

/// The key words: one key (i32[2]) or a stack of them (i32[K.., 2], each
/// filling its own block of the result: `threefry::per_key`).
fn keys_of(key: &Tensor) -> &[i32] {
    match &key.data {
        Data::I32(k) => k,
        other => panic!("random key is {other:?}"),
    }
}

pub fn random_bits(key: &Tensor, ty: &Type) -> Tensor {
    let mut out = vec![0i32; ty.shape.num_elements()];
    threefry::per_key(keys_of(key), &mut out, threefry::fill_bits);
    Tensor { shape: ty.shape.clone(), data: Data::I32(out) }
}

pub fn random_split(key: &Tensor, ty: &Type) -> Tensor {
    let mut out = vec![0i32; ty.shape.num_elements()];
    threefry::per_key(keys_of(key), &mut out, threefry::fill_split);
    Tensor { shape: ty.shape.clone(), data: Data::I32(out) }
}

pub fn random_uniform(key: &Tensor, ty: &Type) -> Tensor {
    let n = ty.shape.num_elements();
    let data = match ty.dtype {
        DType::F32 => {
            let mut out = vec![0f32; n];
            threefry::per_key(keys_of(key), &mut out, threefry::fill_uniform_f32);
            Data::F32(out)
        }
        DType::F64 => {
            let mut out = vec![0f64; n];
            threefry::per_key(keys_of(key), &mut out, threefry::fill_uniform_f64);
            Data::F64(out)
        }
        other => panic!("random_uniform of {other}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}
