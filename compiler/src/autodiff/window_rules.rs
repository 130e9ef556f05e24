//! Derivative rules of the windowed ops (`Conv2d`, `ReduceWindowSum`,
//! `ReduceWindowMax`, `SelectAndScatter`), called from `vjp_rules.rs` and `jvp_rules.rs`.
//!
//! Consumes the primal operands and a cotangent (or tangent); produces IR in
//! a `Builder`. Every rule emits only ops that have rules themselves (convs,
//! window sums, pads, slices, selects, argmax), so grad of grad works.
//!
//! Per spatial dim, with input size `H`, kernel size `K`, stride `s`, padding
//! `l`/`h`, input dilation `ld`, kernel dilation `rd`, `Kd = (K-1) rd + 1`
//! and output size `OH`, a conv is the bilinear form
//!   `y[o] = sum over (i, k) with o s + k rd - l = i ld of x[i] w[k]`.
//! - Its input cotangent is again a conv: `ct` dilated by `s` (lhs dilation),
//!   the kernel transposed (O <-> C per group) and flipped, stride `ld`,
//!   padding `Kd - 1 - l` before and `(H-1) ld + l - (OH-1) s` after, kernel
//!   dilation `rd`. When a padding comes out negative, the conv runs at
//!   stride 1 with the padding clamped to 0 and a strided `Slice` picks the
//!   rows (same values, the negative padding only drops rows).
//! - Its kernel cotangent is a conv of the input (batch and channels
//!   swapped) with `ct` as the kernel: stride `rd`, kernel dilation `s`, lhs
//!   dilation `ld`, padding `l` before and whatever makes `K` outputs after
//!   (clamped at 0, then sliced to `K`). No flip: the index of `w` grows with
//!   both `o` and `i`.
//! - A window sum's transpose is a window sum of `ct` dilated by the stride
//!   (all weights are 1, so no flip), padded by `K - 1 - l` and `H + l - Ld`.
//! - A window max sends each cotangent to the window's first maximum: that
//!   is one op, `SelectAndScatter` (one pass over the operand). Its own
//!   transpose, the window max's tangent rule, reads each window's first
//!   maximum: the `K` strided slices of the (-inf padded) operand, stacked,
//!   give `ArgMax` per window, and slot `k` contributes
//!   `select(idx == k, slice_k, 0)`.

use super::vjp_rules::ArgCts;
use crate::ir::{Builder, Conv, DType, Op, Shape, ValueId, Window};

fn dims(b: &Builder, v: ValueId) -> Vec<usize> {
    b.ty(v).shape.0.clone()
}

/// Cotangents of `Conv2d(a)` w.r.t. `lhs` and `rhs` (as `needs` asks).
pub(super) fn conv2d_vjp(b: &mut Builder, a: &Conv, lhs: ValueId, rhs: ValueId, ct: ValueId, needs: &[bool]) -> ArgCts {
    let dx = needs[0].then(|| conv2d_lhs_cotangent(b, a, lhs, rhs, ct));
    let dw = needs[1].then(|| conv2d_rhs_cotangent(b, a, lhs, rhs, ct));
    vec![dx, dw]
}

/// Tangent of `Conv2d(a)`: bilinear, `conv(dx, w) + conv(x, dw)`.
pub(super) fn conv2d_jvp(
    b: &mut Builder,
    a: &Conv,
    lhs: ValueId,
    rhs: ValueId,
    t_lhs: Option<ValueId>,
    t_rhs: Option<ValueId>,
) -> Option<ValueId> {
    let from_lhs = t_lhs.map(|t| b.conv2d(t, rhs, a.clone()));
    let from_rhs = t_rhs.map(|t| b.conv2d(lhs, t, a.clone()));
    match (from_lhs, from_rhs) {
        (Some(x), Some(y)) => Some(b.add(x, y)),
        (x, y) => x.or(y),
    }
}

fn conv2d_lhs_cotangent(b: &mut Builder, a: &Conv, lhs: ValueId, rhs: ValueId, ct: ValueId) -> ValueId {
    let l = dims(b, lhs);
    transposed_conv2d(b, a, &l, rhs, ct)
}

/// The transpose of `Conv2d(a)` with kernel `rhs` applied to `ct`: the linear
/// map from the conv's output back to an input of dims `l`. It is the input
/// cotangent above, and the language's `conv_transpose2d` (PyTorch's
/// `ConvTranspose2d`: `a` is the conv it transposes).
pub(crate) fn transposed_conv2d(b: &mut Builder, a: &Conv, l: &[usize], rhs: ValueId, ct: ValueId) -> ValueId {
    let (r, out) = (dims(b, rhs), dims(b, ct));
    let (n, c) = (l[0], l[1]);
    let (o, cg, kh, kw) = (r[0], r[1], r[2], r[3]);
    let g = a.groups;
    let og = o / g;
    // [O, Cg, KH, KW] -> [C, Og, KH, KW]: swap in and out channels within each group.
    let kernel = if g == 1 {
        b.transpose(rhs, vec![1, 0, 2, 3])
    } else {
        let split = b.reshape(rhs, &Shape(vec![g, og, cg, kh, kw]));
        let swapped = b.transpose(split, vec![0, 2, 1, 3, 4]);
        b.reshape(swapped, &Shape(vec![c, og, kh, kw]))
    };
    let kernel = b.reverse(kernel, vec![2, 3]);
    let mut attrs = Conv { lhs_dilation: a.stride, rhs_dilation: a.rhs_dilation, groups: g, ..Conv::plain() };
    let (mut start, mut limit, mut step) = (vec![0, 0, 0, 0], vec![n, c, 0, 0], vec![1, 1, 1, 1]);
    let mut sliced = false;
    for d in 0..2 {
        let (size, k, out_size) = (l[2 + d] as i64, r[2 + d] as i64, out[2 + d] as i64);
        let (s, ld, rd, low) =
            (a.stride[d] as i64, a.lhs_dilation[d] as i64, a.rhs_dilation[d] as i64, a.low[d] as i64);
        let k_ext = (k - 1) * rd + 1;
        let lo = k_ext - 1 - low;
        let hi = (size - 1) * ld + low - (out_size - 1) * s;
        limit[2 + d] = size as usize;
        if lo >= 0 && hi >= 0 {
            attrs.stride[d] = ld as usize;
            attrs.low[d] = lo as usize;
            attrs.high[d] = hi as usize;
        } else {
            sliced = true;
            attrs.low[d] = lo.max(0) as usize;
            attrs.high[d] = hi.max(0) as usize;
            start[2 + d] = (-lo).max(0) as usize;
            step[2 + d] = ld as usize;
            limit[2 + d] = start[2 + d] + ((size - 1) * ld) as usize + 1;
        }
    }
    let res = b.conv2d(ct, kernel, attrs);
    if sliced {
        b.slice(res, start, limit, step)
    } else {
        res
    }
}

fn conv2d_rhs_cotangent(b: &mut Builder, a: &Conv, lhs: ValueId, rhs: ValueId, ct: ValueId) -> ValueId {
    let (l, r, out) = (dims(b, lhs), dims(b, rhs), dims(b, ct));
    let (n, h, w) = (l[0], l[2], l[3]);
    let (o, cg, kh, kw) = (r[0], r[1], r[2], r[3]);
    let g = a.groups;
    if n == 0 {
        let ty = b.ty(rhs).clone();
        return b.full(0.0, &ty);
    }
    // The input as [Cg, groups * N, H, W]: batch <-> channels, grouped.
    let x = if g == 1 {
        b.transpose(lhs, vec![1, 0, 2, 3])
    } else {
        let split = b.reshape(lhs, &Shape(vec![n, g, cg, h, w]));
        let swapped = b.transpose(split, vec![2, 1, 0, 3, 4]);
        b.reshape(swapped, &Shape(vec![cg, g * n, h, w]))
    };
    // The cotangent as the kernel, [O, N, OH, OW].
    let kernel = b.transpose(ct, vec![1, 0, 2, 3]);
    let mut attrs = Conv {
        stride: a.rhs_dilation,
        low: a.low,
        lhs_dilation: a.lhs_dilation,
        rhs_dilation: a.stride,
        groups: g,
        high: [0, 0],
    };
    for d in 0..2 {
        let (size, k, out_size) = (l[2 + d], r[2 + d], out[2 + d]);
        let needed = (k - 1) * a.rhs_dilation[d] + (out_size - 1) * a.stride[d] + 1;
        let have = a.low[d] + (size - 1) * a.lhs_dilation[d] + 1;
        attrs.high[d] = needed.saturating_sub(have);
    }
    let res = b.conv2d(x, kernel, attrs); // [Cg, O, >= KH, >= KW]
    let res = b.slice(res, vec![0; 4], vec![cg, o, kh, kw], vec![1; 4]);
    b.transpose(res, vec![1, 0, 2, 3])
}

/// Cotangent of `ReduceWindowSum(w)` on an operand of shape `src`.
pub(super) fn reduce_window_sum_vjp(b: &mut Builder, w: &Window, src: &Shape, ct: ValueId) -> ValueId {
    let out = dims(b, ct);
    let rank = out.len();
    let interior: Vec<usize> = (0..rank).map(|d| if out[d] > 1 { w.stride[d] - 1 } else { 0 }).collect();
    let dilated = b.pad(ct, vec![0; rank], vec![0; rank], interior);
    let mut window = Window { size: w.size.clone(), stride: vec![1; rank], low: vec![0; rank], high: vec![0; rank] };
    let (mut start, mut limit) = (vec![0; rank], src.0.clone());
    for d in 0..rank {
        let dilated_len = ((out[d] - 1) * w.stride[d] + 1) as i64;
        let lo = w.size[d] as i64 - 1 - w.low[d] as i64;
        let hi = src.0[d] as i64 + w.low[d] as i64 - dilated_len;
        window.low[d] = lo.max(0) as usize;
        window.high[d] = hi.max(0) as usize;
        start[d] = (-lo).max(0) as usize;
        limit[d] = start[d] + src.0[d];
    }
    let summed = b.reduce_window(dilated, window, false);
    b.slice(summed, start, limit, vec![1; rank])
}

/// The window offsets (row-major) and, per window, the index (i32) of the
/// offset holding its first maximum.
struct FirstMax {
    offsets: Vec<Vec<usize>>,
    index: ValueId,
}

/// The `K` strided slices of `v` (padded to `padded`), one per offset.
fn window_slices(b: &mut Builder, w: &Window, v: ValueId, offsets: &[Vec<usize>], out: &[usize]) -> Vec<ValueId> {
    offsets
        .iter()
        .map(|k| {
            let limit: Vec<usize> = (0..out.len()).map(|d| k[d] + (out[d] - 1) * w.stride[d] + 1).collect();
            b.slice(v, k.clone(), limit, w.stride.clone())
        })
        .collect()
}

fn window_offsets(size: &[usize]) -> Vec<Vec<usize>> {
    let mut res = vec![vec![]];
    for &n in size {
        res = res.into_iter().flat_map(|prefix| (0..n).map(move |i| [prefix.clone(), vec![i]].concat())).collect();
    }
    res
}

fn first_max(b: &mut Builder, w: &Window, x: ValueId, out: &[usize]) -> FirstMax {
    let ty = b.ty(x).clone();
    let rank = out.len();
    let no_pad = w.low.iter().chain(&w.high).all(|&p| p == 0);
    let padded_x = if no_pad {
        x
    } else {
        // Padding positions hold -inf, so they never beat an operand element.
        let zeros = vec![0; rank];
        let padded = b.pad(x, w.low.clone(), w.high.clone(), zeros.clone());
        let inside = b.full_like(1.0, x, DType::Bool);
        let inside = b.pad(inside, w.low.clone(), w.high.clone(), zeros);
        let padded_ty = b.ty(padded).clone();
        let neg_inf = b.full(f64::NEG_INFINITY, &padded_ty);
        b.select(inside, padded, neg_inf)
    };
    let offsets = window_offsets(&w.size);
    let slices = window_slices(b, w, padded_x, &offsets, out);
    let mut column = out.to_vec();
    column.push(1);
    let columns: Vec<ValueId> = slices.iter().map(|&s| b.reshape(s, &Shape(column.clone()))).collect();
    let stacked = b.concat(columns, rank);
    let index = b.argmax(stacked, rank);
    debug_assert_eq!(ty.dtype, b.ty(padded_x).dtype);
    FirstMax { offsets, index }
}

/// `idx == k` as a bool mask of the output's shape.
fn picks(b: &mut Builder, index: ValueId, k: usize) -> ValueId {
    let k = b.full_like(k as f64, index, DType::I32);
    b.binary(Op::Eq, index, k)
}

/// Tangent of `ReduceWindowMax(w)` of `x`: each window's tangent is that of
/// its first maximum (the transpose of `Op::SelectAndScatter`, the VJP).
pub(super) fn reduce_window_max_jvp(b: &mut Builder, w: &Window, x: ValueId, z: ValueId, t: ValueId) -> ValueId {
    let out = dims(b, z);
    let rank = out.len();
    let fm = first_max(b, w, x, &out);
    let padded_t = b.pad(t, w.low.clone(), w.high.clone(), vec![0; rank]);
    let slices = window_slices(b, w, padded_t, &fm.offsets, &out);
    let z_ty = b.ty(z).clone();
    let zeros = b.full(0.0, &z_ty);
    let mut total: Option<ValueId> = None;
    for (k, &slice) in slices.iter().enumerate() {
        let hit = picks(b, fm.index, k);
        let part = b.select(hit, slice, zeros);
        total = Some(match total {
            None => part,
            Some(acc) => b.add(acc, part),
        });
    }
    total.expect("a window has at least one element")
}
