//! How far an integer input is used as an index: the class labels of
//! `one_hot(labels, 10)` (`labels == iota` over 10 classes), the tokens of
//! an embedding lookup (`gather` from a table of V rows). A value outside
//! `[0, bound)` does not fault (one_hot gives a row of zeros, gather
//! clamps, as XLA does) but silently trains on nonsense: a loss of 0, an
//! accuracy of 0. The trainer checks its data against this bound before
//! training (`trainer::setup`), as PyTorch's "target out of bounds" does at
//! run time.
//!
//! Follows the input through the ops that move its values without changing
//! them (broadcast, reshape, transpose, slice, an i32 convert) to the uses
//! that index with them: an equality or inequality with an `Iota` (the
//! bound is the iota's length along its axis), `Gather`'s indices (the
//! operand's rows) and `ScatterAdd`'s (the result's rows). Not inside
//! scans or custom-VJP bodies. Consumes a `Func`; produces the smallest
//! bound found and the op it came from.

use super::{DType, Func, Op, ValueId};

/// An index use: values must lie in `[0, bound)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IndexUse {
    pub bound: usize,
    /// `one_hot` for a comparison with an iota, `gather` for a lookup.
    pub what: &'static str,
}

/// The tightest index use of input `param` in `func`, if it has one.
pub fn index_bound(func: &Func, param: usize) -> Option<IndexUse> {
    if param >= func.n_params || func.insts[param].ty.dtype != DType::I32 {
        return None;
    }
    // carries[v]: v holds some of the input's values, unchanged.
    let mut carries = vec![false; func.insts.len()];
    carries[param] = true;
    let mut best: Option<IndexUse> = None;
    let mut found = |bound: usize, what| {
        if best.is_none_or(|b| bound < b.bound) {
            best = Some(IndexUse { bound, what });
        }
    };
    for (i, inst) in func.insts.iter().enumerate() {
        let carried = |k: usize| inst.args.get(k).is_some_and(|a: &ValueId| carries[a.index()]);
        match &inst.op {
            Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } | Op::Slice { .. } => carries[i] = carried(0),
            Op::Convert => carries[i] = carried(0) && inst.ty.dtype == DType::I32,
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                for (index, other) in [(0, 1), (1, 0)] {
                    if carried(index) {
                        let other = &func.insts[inst.args[other].index()];
                        if let Op::Iota { axis } = other.op {
                            found(other.ty.shape.dims()[axis], "one_hot");
                        }
                    }
                }
            }
            Op::Gather if carried(1) => found(func.ty(inst.args[0]).shape.dims()[0], "gather"),
            Op::ScatterAdd if carried(1) => found(inst.ty.shape.dims()[0], "gather"),
            _ => {}
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Shape, Type};

    fn i32s(dims: &[usize]) -> Type {
        Type { dtype: DType::I32, shape: Shape(dims.to_vec()) }
    }
    fn f32s(dims: &[usize]) -> Type {
        Type { dtype: DType::F32, shape: Shape(dims.to_vec()) }
    }
    fn inst(op: Op, args: &[u32], ty: Type) -> crate::ir::Inst {
        crate::ir::Inst { op, args: args.iter().map(|&a| ValueId(a)).collect(), ty }
    }

    #[test]
    fn one_hot_and_gather_uses_are_found_through_layout_ops() {
        // %0 labels i32[4], %1 table f32[7, 3], %2 tokens i32[2, 2]
        let insts = vec![
            inst(Op::Param(0), &[], i32s(&[4])),
            inst(Op::Param(1), &[], f32s(&[7, 3])),
            inst(Op::Param(2), &[], i32s(&[2, 2])),
            // one_hot(labels, 10): broadcast to [4, 10] == iota along axis 1.
            inst(Op::Broadcast { dims: vec![0] }, &[0], i32s(&[4, 10])),
            inst(Op::Iota { axis: 1 }, &[], i32s(&[4, 10])),
            inst(Op::Eq, &[3, 4], Type { dtype: DType::Bool, shape: Shape(vec![4, 10]) }),
            // An embedding lookup of the reshaped tokens in 7 rows.
            inst(Op::Reshape, &[2], i32s(&[4])),
            inst(Op::Gather, &[1, 6], f32s(&[4, 3])),
        ];
        let func = Func { name: "f".into(), insts, n_params: 3, outputs: vec![ValueId(5), ValueId(7)] };
        assert_eq!(index_bound(&func, 0), Some(IndexUse { bound: 10, what: "one_hot" }));
        assert_eq!(index_bound(&func, 2), Some(IndexUse { bound: 7, what: "gather" }));
        // A float input indexes nothing; an index past the inputs neither.
        assert_eq!(index_bound(&func, 1), None);
        assert_eq!(index_bound(&func, 3), None);
    }

    #[test]
    fn the_tightest_use_wins_and_arithmetic_stops_the_trail() {
        let insts = vec![
            inst(Op::Param(0), &[], i32s(&[4])),
            inst(Op::Param(1), &[], f32s(&[5, 2])),
            inst(Op::Gather, &[1, 0], f32s(&[4, 2])),
            inst(Op::Broadcast { dims: vec![0] }, &[0], i32s(&[4, 3])),
            inst(Op::Iota { axis: 1 }, &[], i32s(&[4, 3])),
            inst(Op::Lt, &[4, 3], Type { dtype: DType::Bool, shape: Shape(vec![4, 3]) }),
        ];
        let func = Func { name: "f".into(), insts, n_params: 2, outputs: vec![ValueId(2), ValueId(5)] };
        assert_eq!(index_bound(&func, 0), Some(IndexUse { bound: 3, what: "one_hot" }));
        // labels + 1 compared with an iota: not the input's own values.
        let insts = vec![
            inst(Op::Param(0), &[], i32s(&[4])),
            inst(Op::Constant(1.0), &[], i32s(&[])),
            inst(Op::Broadcast { dims: vec![] }, &[1], i32s(&[4])),
            inst(Op::Add, &[0, 2], i32s(&[4])),
            inst(Op::Broadcast { dims: vec![0] }, &[3], i32s(&[4, 3])),
            inst(Op::Iota { axis: 1 }, &[], i32s(&[4, 3])),
            inst(Op::Eq, &[4, 5], Type { dtype: DType::Bool, shape: Shape(vec![4, 3]) }),
        ];
        let func = Func { name: "f".into(), insts, n_params: 1, outputs: vec![ValueId(6)] };
        assert_eq!(index_bound(&func, 0), None);
    }
}
