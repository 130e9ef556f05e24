//! Shape-checked `Builder` helpers for the gather/scatter, batched-matmul,
//! reduce-min and random ops (the rules of `verify_ext.rs`, applied while
//! building). A violation panics: the front end has reported user errors.

use super::func::{Builder, ValueId};
use super::op::Op;
use super::types::{DType, Shape, Type};

impl Builder {
    /// Rows of `operand` `[V, rest..]` at i32 `indices` `[I..]`: `[I.., rest..]`.
    pub fn gather(&mut self, operand: ValueId, indices: ValueId) -> ValueId {
        let (src, idx) = (self.ty(operand).clone(), self.ty(indices).clone());
        assert!(idx.dtype == DType::I32 && src.shape.rank() >= 1, "gather types {src} {idx}");
        let mut dims = idx.shape.0.clone();
        dims.extend(&src.shape.0[1..]);
        self.push(Op::Gather, vec![operand, indices], Type::new(src.dtype, &dims))
    }
    /// Zeros `[rows, rest..]` plus `updates` `[I.., rest..]` added at rows `indices` `[I..]`.
    pub fn scatter_add(&mut self, updates: ValueId, indices: ValueId, rows: usize) -> ValueId {
        let (upd, idx) = (self.ty(updates).clone(), self.ty(indices).clone());
        let k = idx.shape.rank();
        assert!(idx.dtype == DType::I32 && upd.shape.0[..k] == idx.shape.0[..], "scatter_add types {upd} {idx}");
        let mut dims = vec![rows];
        dims.extend(&upd.shape.0[k..]);
        self.push(Op::ScatterAdd, vec![updates, indices], Type::new(upd.dtype, &dims))
    }
    /// `[b.., m, k] x [b.., k, n] -> [b.., m, n]`.
    pub fn batch_matmul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        let (ta, tb) = (self.ty(a).clone(), self.ty(b).clone());
        let r = ta.shape.rank();
        assert!(
            r >= 2 && tb.shape.rank() == r && ta.shape.0[..r - 2] == tb.shape.0[..r - 2],
            "batch_matmul shapes {ta} {tb}"
        );
        assert!(ta.shape.0[r - 1] == tb.shape.0[r - 2] && ta.dtype == tb.dtype, "batch_matmul types {ta} {tb}");
        let mut dims = ta.shape.0[..r - 1].to_vec();
        dims.push(tb.shape.0[r - 1]);
        self.push(Op::BatchMatMul, vec![a, b], Type::new(ta.dtype, &dims))
    }
    /// Swaps the last two dims (the batched matrix transpose).
    pub fn transpose_last2(&mut self, x: ValueId) -> ValueId {
        let r = self.ty(x).shape.rank();
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 2, r - 1);
        self.transpose(x, perm)
    }
    /// Minimum over `axes` (sorted, unique); no instruction for no axes.
    pub fn reduce_min(&mut self, x: ValueId, axes: Vec<usize>) -> ValueId {
        if axes.is_empty() {
            return x;
        }
        let src = self.ty(x).clone();
        let dims: Vec<usize> = (0..src.shape.rank()).filter(|d| !axes.contains(d)).map(|d| src.shape.0[d]).collect();
        self.push(Op::ReduceMin { axes }, vec![x], Type::new(src.dtype, &dims))
    }
    /// JAX's 32 random bits of `shape` from an i32[2] key.
    pub fn random_bits(&mut self, key: ValueId, shape: &Shape) -> ValueId {
        self.push(Op::RandomBits, vec![key], Type { dtype: DType::I32, shape: shape.clone() })
    }
    /// JAX's `split(key, shape)`: keys i32[shape.., 2].
    pub fn random_split(&mut self, key: ValueId, shape: &Shape) -> ValueId {
        let mut dims = shape.0.clone();
        dims.push(2);
        self.push(Op::RandomSplit, vec![key], Type::new(DType::I32, &dims))
    }
    /// JAX's `uniform(key, shape, dtype)` on [0, 1).
    pub fn random_uniform(&mut self, key: ValueId, ty: &Type) -> ValueId {
        assert!(ty.dtype.is_float(), "random_uniform of {ty}");
        self.push(Op::RandomUniform, vec![key], ty.clone())
    }
}
