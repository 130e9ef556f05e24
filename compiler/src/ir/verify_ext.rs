//! Typing rules of the gather/scatter, batched-matmul and random ops (see
//! their doc comments in `op.rs`); `verify::check_type` defers to this file
//! for them.

use super::op::Op;
use super::types::{DType, Type};

fn want(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

pub(super) fn gather(ty: &Type, args: &[&Type]) -> Result<(), String> {
    let (operand, indices) = (args[0], args[1]);
    want(indices.dtype == DType::I32, "gather indices must be i32")?;
    want(operand.shape.rank() >= 1 && operand.shape.0[0] >= 1, "gather operand needs a non-empty axis 0")?;
    let mut dims = indices.shape.0.clone();
    dims.extend(&operand.shape.0[1..]);
    want(ty == &Type::new(operand.dtype, &dims), "gather result type is [indices.., operand dims 1..]")
}

pub(super) fn scatter_add(ty: &Type, args: &[&Type]) -> Result<(), String> {
    let (updates, indices) = (args[0], args[1]);
    want(indices.dtype == DType::I32, "scatter_add indices must be i32")?;
    want(updates.dtype != DType::Bool && updates.dtype == ty.dtype, "scatter_add adds floats or i32")?;
    want(ty.shape.rank() >= 1 && ty.shape.0[0] >= 1, "scatter_add result needs a non-empty axis 0")?;
    let mut dims = indices.shape.0.clone();
    dims.extend(&ty.shape.0[1..]);
    want(updates.shape.0 == dims, "scatter_add updates must be [indices.., result dims 1..]")
}

pub(super) fn batch_matmul(ty: &Type, args: &[&Type]) -> Result<(), String> {
    let (a, b) = (args[0], args[1]);
    let r = a.shape.rank();
    want(r >= 2 && b.shape.rank() == r, "batch_matmul operands have one rank >= 2")?;
    want(a.dtype == b.dtype && a.dtype == ty.dtype && ty.dtype.is_float(), "batch_matmul dtypes")?;
    want(a.shape.0[..r - 2] == b.shape.0[..r - 2], "batch_matmul batch dims differ")?;
    want(a.shape.0[r - 1] == b.shape.0[r - 2], "batch_matmul inner dims")?;
    let mut dims = a.shape.0[..r - 1].to_vec();
    dims.push(b.shape.0[r - 1]);
    want(ty.shape.0 == dims, "batch_matmul result shape")
}

/// `RandomBits`, `RandomSplit`, `RandomUniform`: an i32[2] key in, any shape
/// out; or a stack of keys i32[K.., 2] (vmap's batching rule) and a result
/// whose dims start with `K` (one block per key).
pub(super) fn random(op: &Op, ty: &Type, args: &[&Type]) -> Result<(), String> {
    let key = &args[0].shape.0;
    want(args[0].dtype == DType::I32 && key.last() == Some(&2), "a random key is i32[2] (or keys i32[K.., 2])")?;
    let stack = &key[..key.len() - 1];
    want(ty.shape.0.starts_with(stack), "a stack of random keys [K.., 2] gives a result of dims [K.., ..]")?;
    if *op == Op::RandomBits {
        want(ty.dtype == DType::I32, "random_bits yields i32")
    } else if *op == Op::RandomSplit {
        want(ty.dtype == DType::I32 && ty.shape.0.last() == Some(&2), "random_split yields i32[.., 2]")
    } else {
        want(ty.dtype.is_float(), "random_uniform yields floats")
    }
}
