//! Batching (`vmap`): a `Func` and one optional batch axis per param in, a
//! `Func` out that computes the function for every example of a batch at once.
//!
//! Params with `Some(axis)` gain a dim of the batch size at `axis`; params
//! with `None` are shared by every example (broadcast). Every output carries
//! the batch at axis 0 (JAX's `out_axes = 0`). As in JAX, each value of the
//! batched program remembers where its batch axis is (`BDim`), so most rules
//! only renumber axes and move no data; a value that no batched param reaches
//! is computed once, unbatched.
//!
//! One rule per op in `batch` (the table); the rules that fold the batch
//! into another dim of the op (matmul, conv, windows, gather/scatter) are in
//! `vmap_rules.rs`. Only the random ops use the per-example fallback
//! (`per_example`: slice example `i` of every batched operand, apply the op,
//! stack the results with `Reshape` + `Concat`), which is always correct and
//! costs one instruction group per example.
//! The output is plain IR, so `vmap` composes with `grad`, `jvp` and itself.

use super::vmap_rules;
use crate::ir::dce::dce;
use crate::ir::{Builder, Func, Op, Shape, Type, ValueId};

/// Where a value's batch axis is in the batched program; `None` for a value
/// that is the same for every example (stored once, without the axis).
pub(super) type BDim = Option<usize>;

/// Batches `func` over `size` examples. `in_axes[i]` is param `i`'s batch
/// axis in the new signature (`0..=rank`), or `None` for a shared param.
/// Result: params of `func`'s types with `size` inserted at their axis;
/// outputs of `func`'s types with `size` inserted at axis 0.
pub fn vmap(func: &Func, in_axes: &[Option<usize>], size: usize) -> Func {
    assert_eq!(in_axes.len(), func.n_params, "vmap: one in_axes entry per param of `{}`", func.name);
    let param_types: Vec<Type> = func
        .param_types()
        .iter()
        .zip(in_axes)
        .map(|(ty, axis)| match *axis {
            Some(axis) => {
                assert!(axis <= ty.shape.rank(), "vmap: batch axis {axis} out of range for {ty}");
                with_dim(ty, axis, size)
            }
            None => ty.clone(),
        })
        .collect();
    let mut b = Builder::new(&format!("{}_vmap", func.name), &param_types);
    let mut vals: Vec<(ValueId, BDim)> = (0..func.n_params).map(|i| (b.param(i), in_axes[i])).collect();
    for inst in &func.insts[func.n_params..] {
        let args: Vec<(ValueId, BDim)> = inst.args.iter().map(|a| vals[a.index()]).collect();
        let res = if args.iter().all(|(_, d)| d.is_none()) {
            let ids = args.iter().map(|(v, _)| *v).collect();
            (b.push(inst.op.clone(), ids, inst.ty.clone()), None)
        } else {
            batch(&mut b, &inst.op, &args, &inst.ty, size)
        };
        vals.push(res);
    }
    let outputs = func
        .outputs
        .iter()
        .map(|o| {
            let (v, d) = vals[o.index()];
            to_axis(&mut b, v, d, 0, size)
        })
        .collect();
    dce(&b.finish(outputs))
}

/// The batching rule of one instruction, at least one of whose operands is
/// batched. `ty` is the instruction's unbatched result type. Returns the
/// batched result and where its batch axis is. `lift(a, k)` is where the
/// unbatched axis `a` sits when the batch axis is `k`.
fn batch(b: &mut Builder, op: &Op, args: &[(ValueId, BDim)], ty: &Type, size: usize) -> (ValueId, BDim) {
    match op {
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => unreachable!("{op:?} has no operands to batch"),
        // f(x, y)[.., i, ..] = f(x[.., i, ..], y[.., i, ..]): batched operands
        // meet at the first one's batch axis; shared ones are broadcast along it.
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => elementwise(b, op, args, ty, size),
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => {
            elementwise(b, op, args, ty, size)
        }
        Op::Abs | Op::Sign | Op::StopGradient | Op::Convert => elementwise(b, op, args, ty, size),
        Op::Floor | Op::Ceil | Op::Round => elementwise(b, op, args, ty, size),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => elementwise(b, op, args, ty, size),
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select => elementwise(b, op, args, ty, size),
        // broadcast(x, dims) batched = broadcast([n] ++ x, [0] ++ (dims + 1)).
        Op::Broadcast { dims } => {
            let x = to_axis(b, args[0].0, args[0].1, 0, size);
            let dims = std::iter::once(0).chain(dims.iter().map(|d| d + 1)).collect();
            (b.push(Op::Broadcast { dims }, vec![x], with_dim(ty, 0, size)), Some(0))
        }
        // Row-major order: reshaping [n] ++ x to [n] ++ shape reshapes each example.
        Op::Reshape => {
            let x = to_axis(b, args[0].0, args[0].1, 0, size);
            (b.reshape(x, &with_dim(ty, 0, size).shape), Some(0))
        }
        // transpose(x, perm) batched at k = transpose(x, [k] ++ lift(perm, k)): batch lands at 0.
        Op::Transpose { perm } => {
            let (x, k) = batched(args[0]);
            let perm = std::iter::once(k).chain(perm.iter().map(|&p| lift(p, k))).collect();
            (b.transpose(x, perm), Some(0))
        }
        // reduce(x, axes) batched at k = reduce(x, lift(axes, k)); the batch
        // axis moves down by the number of reduced axes before it.
        Op::ReduceSum { axes } => {
            let (x, k) = batched(args[0]);
            let new_axes = axes.iter().map(|&a| lift(a, k)).collect();
            (b.reduce_sum(x, new_axes), Some(k - axes.iter().filter(|&&a| a < k).count()))
        }
        Op::ReduceMax { axes } => {
            let (x, k) = batched(args[0]);
            let new_axes = axes.iter().map(|&a| lift(a, k)).collect();
            (b.reduce_max(x, new_axes), Some(k - axes.iter().filter(|&&a| a < k).count()))
        }
        Op::ReduceMin { axes } => {
            let (x, k) = batched(args[0]);
            let new_axes = axes.iter().map(|&a| lift(a, k)).collect();
            (b.reduce_min(x, new_axes), Some(k - axes.iter().filter(|&&a| a < k).count()))
        }
        // argmax(x, a) batched at k = argmax(x, lift(a, k)).
        Op::ArgMax { axis } => {
            let (x, k) = batched(args[0]);
            (b.argmax(x, lift(*axis, k)), Some(k - usize::from(*axis < k)))
        }
        // The batch axis is taken whole: start 0, limit n, stride 1.
        // Each example's axes are reversed in place: the same axes, lifted
        // past the batch axis (`lift` is increasing, so `dims` stays sorted).
        Op::Reverse { dims } => {
            let (x, k) = batched(args[0]);
            (b.reverse(x, dims.iter().map(|&d| lift(d, k)).collect()), Some(k))
        }
        Op::Slice { start, limit, stride } => {
            let (x, k) = batched(args[0]);
            let res = b.slice(x, inserted(start, k, 0), inserted(limit, k, size), inserted(stride, k, 1));
            (res, Some(k))
        }
        // The batch axis is not padded.
        Op::Pad { low, high, interior } => {
            let (x, k) = batched(args[0]);
            (b.pad(x, inserted(low, k, 0), inserted(high, k, 0), inserted(interior, k, 0)), Some(k))
        }
        // concat(xs, a): operands meet at one batch axis k, then concat along lift(a, k).
        Op::Concat { axis } => {
            let k = first_bdim(args);
            let xs = args.iter().map(|&(v, d)| to_axis(b, v, d, k, size)).collect();
            (b.concat(xs, lift(*axis, k)), Some(k))
        }
        Op::MatMul => match (args[0].1, args[1].1) {
            // [n, m, k] x [k, p]: one matmul [n*m, k] x [k, p], reshaped to [n, m, p].
            (Some(d), None) => {
                let x = to_axis(b, args[0].0, Some(d), 0, size);
                let (m, inner) = (ty.shape.0[0], b.ty(args[1].0).shape.0[0]);
                let x = b.reshape(x, &Shape(vec![size * m, inner]));
                let res = b.matmul(x, args[1].0);
                (b.reshape(res, &with_dim(ty, 0, size).shape), Some(0))
            }
            // [m, k] x [k, n, p]: one matmul [m, k] x [k, n*p], reshaped to [m, n, p].
            (None, Some(d)) => {
                let y = to_axis(b, args[1].0, Some(d), 1, size);
                let (inner, p) = (b.ty(args[0].0).shape.0[1], ty.shape.0[1]);
                let y = b.reshape(y, &Shape(vec![inner, size * p]));
                let res = b.matmul(args[0].0, y);
                (b.reshape(res, &with_dim(ty, 1, size).shape), Some(1))
            }
            // Both batched: a different right operand per example.
            _ if size == 0 => per_example(b, op, args, ty, size),
            _ => vmap_rules::batched_product(b, args, size),
        },
        // The rules that fold the batch into another dim (`vmap_rules`);
        // an empty batch takes the fallback, which makes the zeros directly.
        _ if size == 0 => per_example(b, op, args, ty, size),
        Op::BatchMatMul => vmap_rules::batched_product(b, args, size),
        Op::Conv2d(a) => vmap_rules::conv2d(b, a, args, size),
        Op::ReduceWindowSum(w) => vmap_rules::reduce_window(b, w, false, args[0]),
        Op::ReduceWindowMax(w) => vmap_rules::reduce_window(b, w, true, args[0]),
        Op::SelectAndScatter(w) => vmap_rules::select_and_scatter(b, w, args, size),
        Op::Gather => vmap_rules::gather(b, args, size),
        Op::ScatterAdd => vmap_rules::scatter_add(b, args, ty.shape.0[0], size),
        // Random numbers per example: the op takes the stack of keys
        // [B, K.., 2] and fills one block per key, each block the stream its
        // key alone would draw (the verifier's key-stack form).
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => {
            let (key, d) = args[0];
            let keys = to_axis(b, key, d, 0, size);
            (b.push(op.clone(), vec![keys], with_dim(ty, 0, size)), Some(0))
        }
        // The scan of the batched body (`scan_rules::batch`).
        Op::Scan(s) => {
            let (v, k) = super::scan_rules::batch(b, s, args, size);
            (v, Some(k))
        }
        Op::CustomVjp(c) => (super::custom_vjp_rules::batch(b, c, args, size), Some(0)),
    }
}

/// The fallback rule, correct for any op: for each example `i`, slice `i`
/// out of every batched operand, apply `op` (result type `ty`), and stack
/// the results along a new axis 0 (`Reshape` to `[1] ++ shape`, `Concat`).
pub(crate) fn per_example(
    b: &mut Builder,
    op: &Op,
    args: &[(ValueId, BDim)],
    ty: &Type,
    size: usize,
) -> (ValueId, BDim) {
    if size == 0 {
        return (b.full(0.0, &with_dim(ty, 0, 0)), Some(0));
    }
    let one = with_dim(ty, 0, 1).shape;
    let parts = (0..size)
        .map(|i| {
            let ex_args = args
                .iter()
                .map(|&(v, d)| match d {
                    Some(k) => example(b, v, k, i),
                    None => v,
                })
                .collect();
            let res = b.push(op.clone(), ex_args, ty.clone());
            b.reshape(res, &one)
        })
        .collect();
    (b.concat(parts, 0), Some(0))
}

/// Elementwise ops: every operand brought to the first batched operand's
/// batch axis (shared operands broadcast along it); the op itself unchanged.
fn elementwise(b: &mut Builder, op: &Op, args: &[(ValueId, BDim)], ty: &Type, size: usize) -> (ValueId, BDim) {
    let k = first_bdim(args);
    let ids = args.iter().map(|&(v, d)| to_axis(b, v, d, k, size)).collect();
    (b.push(op.clone(), ids, with_dim(ty, k, size)), Some(k))
}

/// Example `i` of `x`, whose batch axis is `k` (the axis removed).
fn example(b: &mut Builder, x: ValueId, k: usize, i: usize) -> ValueId {
    let ty = b.ty(x).clone();
    let rank = ty.shape.rank();
    let mut start = vec![0; rank];
    let mut limit = ty.shape.0.clone();
    start[k] = i;
    limit[k] = i + 1;
    let one = b.slice(x, start, limit, vec![1; rank]);
    let mut dims = ty.shape.0;
    dims.remove(k);
    b.reshape(one, &Shape(dims))
}

/// `x` (batch axis `d`) with its batch axis at `to`: a transpose when it is
/// elsewhere, a broadcast when `x` is shared.
pub(super) fn to_axis(b: &mut Builder, x: ValueId, d: BDim, to: usize, size: usize) -> ValueId {
    let rank = b.ty(x).shape.rank();
    match d {
        Some(from) => {
            let mut perm: Vec<usize> = (0..rank).filter(|&a| a != from).collect();
            perm.insert(to, from);
            b.transpose(x, perm)
        }
        None => {
            let ty = with_dim(b.ty(x), to, size);
            b.broadcast(x, &ty.shape, (0..rank).map(|a| lift(a, to)).collect())
        }
    }
}

/// The operand and its batch axis; the rule's caller guarantees it is batched.
fn batched((x, d): (ValueId, BDim)) -> (ValueId, usize) {
    (x, d.expect("a unary op with a batched operand"))
}

fn first_bdim(args: &[(ValueId, BDim)]) -> usize {
    args.iter().find_map(|(_, d)| *d).expect("some operand is batched")
}

/// Where the unbatched axis `axis` is when the batch axis is `k`.
fn lift(axis: usize, k: usize) -> usize {
    if axis >= k {
        axis + 1
    } else {
        axis
    }
}

pub(super) fn inserted(xs: &[usize], k: usize, value: usize) -> Vec<usize> {
    let mut res = xs.to_vec();
    res.insert(k, value);
    res
}

/// `ty` with a dim of `size` inserted at `axis`.
fn with_dim(ty: &Type, axis: usize, size: usize) -> Type {
    Type { dtype: ty.dtype, shape: Shape(inserted(&ty.shape.0, axis, size)) }
}

#[cfg(test)]
mod tests;
