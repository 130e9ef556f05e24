//! The definitions of `RandomBits`, `RandomSplit` and `RandomUniform`: thin
//! wrappers around `ir::threefry`, which holds the math.

use crate::ir::tensor::{Data, Tensor};
use crate::ir::threefry;
use crate::ir::types::{DType, Type};

fn key_of(key: &Tensor) -> [u32; 2] {
    match &key.data {
        Data::I32(k) => threefry::key_words(k),
        other => panic!("random key is {other:?}"),
    }
}

pub fn random_bits(key: &Tensor, ty: &Type) -> Tensor {
    let mut out = vec![0i32; ty.shape.num_elements()];
    threefry::fill_bits(key_of(key), &mut out);
    Tensor { shape: ty.shape.clone(), data: Data::I32(out) }
}

pub fn random_split(key: &Tensor, ty: &Type) -> Tensor {
    let mut out = vec![0i32; ty.shape.num_elements()];
    threefry::fill_split(key_of(key), &mut out);
    Tensor { shape: ty.shape.clone(), data: Data::I32(out) }
}

pub fn random_uniform(key: &Tensor, ty: &Type) -> Tensor {
    let n = ty.shape.num_elements();
    let data = match ty.dtype {
        DType::F32 => {
            let mut out = vec![0f32; n];
            threefry::fill_uniform_f32(key_of(key), &mut out);
            Data::F32(out)
        }
        DType::F64 => {
            let mut out = vec![0f64; n];
            threefry::fill_uniform_f64(key_of(key), &mut out);
            Data::F64(out)
        }
        other => panic!("random_uniform of {other}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}
