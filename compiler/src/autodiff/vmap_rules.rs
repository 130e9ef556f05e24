//! The batching rules of `vmap` that fold the batch into another dim of the
//! same op instead of looping over examples: a product of two batched
//! matrices is one batched product, a conv folds the batch into its images
//! (`N`) or, with a batched kernel, into its groups, a window op gets a
//! window of 1 along the batch, and gather/scatter-add offset each
//! example's row indices into one stacked table. Each rule computes, per
//! output element, the same sums in the same order as the op on one
//! example, so the result is bitwise what `per_example` stacks (the
//! random-program test in `vmap/tests.rs` checks exactly that).
//!
//! Consumes the batched operands with their batch axes (`BDim`); produces
//! the batched result and its batch axis. Called from `vmap::batch`.

use super::vmap::{inserted, to_axis, BDim};
use crate::ir::{Builder, Conv, DType, Op, Shape, Type, ValueId, Window};

/// `x` with its batch at axis 0 (broadcast there when shared).
fn front(b: &mut Builder, (x, d): (ValueId, BDim), size: usize) -> ValueId {
    to_axis(b, x, d, 0, size)
}

fn dims(b: &Builder, x: ValueId) -> Vec<usize> {
    b.ty(x).shape.0.clone()
}

fn reshaped(b: &mut Builder, x: ValueId, dims: Vec<usize>) -> ValueId {
    b.reshape(x, &Shape(dims))
}

/// A matrix product per example, `[m, k] x [k, p]` (a `matmul` with both
/// operands batched) or `[b.., m, k] x [b.., k, n]` (a `batch_matmul`): the
/// batch becomes one more (leading) batch dim of both operands.
pub(super) fn batched_product(b: &mut Builder, args: &[(ValueId, BDim)], size: usize) -> (ValueId, BDim) {
    let (x, y) = (front(b, args[0], size), front(b, args[1], size));
    (b.batch_matmul(x, y), Some(0))
}

/// A conv per example. Only the images batched: the batch joins `N`. A
/// batched kernel: each example's kernel becomes its own group(s), its
/// output channels ordered group-major as `groups` needs them; with the
/// images shared they are the same input for every example's groups, so the
/// kernels of all examples stack along `O` inside each group.
pub(super) fn conv2d(b: &mut Builder, a: &Conv, args: &[(ValueId, BDim)], size: usize) -> (ValueId, BDim) {
    let g = a.groups;
    match (args[0].1, args[1].1) {
        (Some(_), None) => {
            let x = front(b, args[0], size);
            let d = dims(b, x);
            let x = reshaped(b, x, vec![size * d[1], d[2], d[3], d[4]]);
            let y = b.conv2d(x, args[1].0, a.clone());
            let o = dims(b, y);
            (reshaped(b, y, vec![size, d[1], o[1], o[2], o[3]]), Some(0))
        }
        (None, Some(_)) => {
            // Kernels [S, O, Cg, KH, KW] -> [g, S, O/g, Cg, KH, KW] -> [g*S*O/g, ...].
            let w = front(b, args[1], size);
            let k = dims(b, w);
            let (o, og) = (k[1], k[1] / g);
            let w = reshaped(b, w, vec![size, g, og, k[2], k[3], k[4]]);
            let w = b.transpose(w, vec![1, 0, 2, 3, 4, 5]);
            let w = reshaped(b, w, vec![g * size * og, k[2], k[3], k[4]]);
            let y = b.conv2d(args[0].0, w, a.clone());
            // [N, g*S*Og, OH, OW] -> [N, g, S, Og, ..] -> [N, S, g, Og, ..] -> [N, S, O, ..].
            let r = dims(b, y);
            let y = reshaped(b, y, vec![r[0], g, size, og, r[2], r[3]]);
            let y = b.transpose(y, vec![0, 2, 1, 3, 4, 5]);
            (reshaped(b, y, vec![r[0], size, o, r[2], r[3]]), Some(1))
        }
        _ => {
            // Images [S, N, C, H, W] -> [N, S*C, H, W]; kernels [S*O, Cg, KH, KW]:
            // example s's group j reads channels s*C + j*Cg.. and writes s*O + j*Og..
            let x = front(b, args[0], size);
            let d = dims(b, x);
            let x = b.transpose(x, vec![1, 0, 2, 3, 4]);
            let x = reshaped(b, x, vec![d[1], size * d[2], d[3], d[4]]);
            let w = front(b, args[1], size);
            let k = dims(b, w);
            let w = reshaped(b, w, vec![size * k[1], k[2], k[3], k[4]]);
            let y = b.conv2d(x, w, Conv { groups: size * g, ..a.clone() });
            let r = dims(b, y);
            (reshaped(b, y, vec![r[0], size, k[1], r[2], r[3]]), Some(1))
        }
    }
}

/// A window of 1 (stride 1, no padding) along the batch axis `k`.
fn lifted(w: &Window, k: usize) -> Window {
    Window {
        size: inserted(&w.size, k, 1),
        stride: inserted(&w.stride, k, 1),
        low: inserted(&w.low, k, 0),
        high: inserted(&w.high, k, 0),
    }
}

/// Window sums and maxima: each example's windows, side by side.
pub(super) fn reduce_window(b: &mut Builder, w: &Window, is_max: bool, (x, d): (ValueId, BDim)) -> (ValueId, BDim) {
    let k = d.expect("a window op with a batched operand");
    (b.reduce_window(x, lifted(w, k), is_max), Some(k))
}

/// `select_and_scatter(x, ct)` per example: both at one batch axis (a
/// shared one broadcast), then a window of 1 along it.
pub(super) fn select_and_scatter(
    b: &mut Builder,
    w: &Window,
    args: &[(ValueId, BDim)],
    size: usize,
) -> (ValueId, BDim) {
    let (x, ct) = (front(b, args[0], size), front(b, args[1], size));
    (b.select_and_scatter(x, ct, lifted(w, 0)), Some(0))
}

/// Row indices `idx` (i32 `[S, I..]`, example at axis 0) into a table of
/// `rows` rows per example, as rows of the examples' tables stacked into
/// one `[S * rows, ..]`: clamped into `0..rows` (the op's own rule, per
/// example) and offset by `s * rows`.
fn stacked_rows(b: &mut Builder, idx: ValueId, rows: usize) -> ValueId {
    let ty = b.ty(idx).clone();
    let (lo, hi) = (b.full(0.0, &ty), b.full(rows.saturating_sub(1) as f64, &ty));
    let idx = b.binary(Op::Max, idx, lo);
    let idx = b.binary(Op::Min, idx, hi);
    let example = b.iota(Type { dtype: DType::I32, shape: ty.shape.clone() }, 0);
    let per = b.full(rows as f64, &ty);
    let offset = b.mul(example, per);
    b.add(idx, offset)
}

/// `gather(operand, indices)` per example. Shared table: the batched
/// indices gather as they are (the batch is one more index dim). A
/// batched table: one gather from the stacked tables.
pub(super) fn gather(b: &mut Builder, args: &[(ValueId, BDim)], size: usize) -> (ValueId, BDim) {
    match args[0].1 {
        None => {
            let (idx, k) = (args[1].0, args[1].1.expect("batched indices"));
            (b.gather(args[0].0, idx), Some(k))
        }
        Some(_) => {
            let table = front(b, args[0], size);
            let t = dims(b, table);
            let flat: Vec<usize> = std::iter::once(size * t[1]).chain(t[2..].iter().copied()).collect();
            let table = reshaped(b, table, flat);
            let idx = front(b, args[1], size);
            let idx = stacked_rows(b, idx, t[1]);
            (b.gather(table, idx), Some(0))
        }
    }
}

/// `scatter_add(updates, indices)` into `rows` rows, per example. Shared
/// indices: the batch moves behind the index dims, where it is carried
/// like the row's other dims, into `[rows, S, ..]`. Batched indices: one
/// scatter into the stacked tables `[S * rows, ..]` (each example's
/// updates still arrive in its own row-major order).
pub(super) fn scatter_add(b: &mut Builder, args: &[(ValueId, BDim)], rows: usize, size: usize) -> (ValueId, BDim) {
    match args[1].1 {
        None => {
            let k = b.ty(args[1].0).shape.rank();
            let updates = to_axis(b, args[0].0, args[0].1, k, size);
            (b.scatter_add(updates, args[1].0, rows), Some(1))
        }
        Some(_) => {
            let updates = front(b, args[0], size);
            let idx = front(b, args[1], size);
            let idx = stacked_rows(b, idx, rows);
            // The update rows [S, I.., rest..] scatter by [S, I..] indices.
            let res = b.scatter_add(updates, idx, size * rows);
            let r = dims(b, res);
            let split: Vec<usize> = [size, rows].into_iter().chain(r[1..].iter().copied()).collect();
            (reshaped(b, res, split), Some(0))
        }
    }
}
