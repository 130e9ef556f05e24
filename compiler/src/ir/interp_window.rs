//! The reference semantics of the windowed ops (`Conv2d`, `ReduceWindowSum`,
//! `ReduceWindowMax`, `SelectAndScatter`, `Reverse`): plain loops in the
//! order `op.rs` states.
//!
//! Consumes operand tensors (or, for the window reductions, raw slices);
//! produces the result tensor. The CPU backend's faster window loops
//! (`kernels::reduce_window`) are tested bitwise against these. Split from `interp.rs` to keep one
//! concept per file.

use super::interp::fmax;
use super::op::{Conv, Window};
use super::tensor::{Data, Tensor};
use super::types::Type;

/// The element arithmetic the definitions need, for f32 and f64.
pub trait Float: Copy + PartialOrd + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self> {
    const ZERO: Self;
    const NEG_INFINITY: Self;
    /// `Op::Max` on one element pair.
    fn max_op(self, other: Self) -> Self;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    fn max_op(self, other: f32) -> f32 {
        fmax(self as f64, other as f64) as f32
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    fn max_op(self, other: f64) -> f64 {
        fmax(self, other)
    }
}

/// `Op::Conv2d` (see its doc for the formula and the summation order).
pub fn conv2d(lhs: &Tensor, rhs: &Tensor, attrs: &Conv, ty: &Type) -> Tensor {
    fn run<T: Float>(x: &[T], w: &[T], ld: &[usize], rd: &[usize], a: &Conv, od: &[usize]) -> Vec<T> {
        let (n, c, h, wd) = (ld[0], ld[1], ld[2], ld[3]);
        let (o, cg, kh, kw) = (rd[0], rd[1], rd[2], rd[3]);
        let (oh, ow) = (od[2], od[3]);
        let og = o / a.groups;
        let mut out = Vec::with_capacity(n * o * oh * ow);
        // The input index a padded, dilated position maps to, if any.
        let source = |pos: usize, d: usize, size: usize| -> Option<usize> {
            let p = pos.checked_sub(a.low[d])?;
            (p.is_multiple_of(a.lhs_dilation[d]) && p / a.lhs_dilation[d] < size).then(|| p / a.lhs_dilation[d])
        };
        for b in 0..n {
            for oc in 0..o {
                let c0 = (oc / og) * cg;
                for y in 0..oh {
                    for xo in 0..ow {
                        let mut acc = T::ZERO;
                        for ci in 0..cg {
                            for ky in 0..kh {
                                let Some(iy) = source(y * a.stride[0] + ky * a.rhs_dilation[0], 0, h) else {
                                    continue;
                                };
                                for kx in 0..kw {
                                    let Some(ix) = source(xo * a.stride[1] + kx * a.rhs_dilation[1], 1, wd) else {
                                        continue;
                                    };
                                    let xv = x[((b * c + c0 + ci) * h + iy) * wd + ix];
                                    acc = acc + xv * w[((oc * cg + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        out.push(acc);
                    }
                }
            }
        }
        out
    }
    let (ld, rd, od) = (lhs.shape.dims(), rhs.shape.dims(), ty.shape.dims());
    let data = match (&lhs.data, &rhs.data) {
        (Data::F32(x), Data::F32(w)) => Data::F32(run(x, w, ld, rd, attrs, od)),
        (Data::F64(x), Data::F64(w)) => Data::F64(run(x, w, ld, rd, attrs, od)),
        (x, w) => panic!("conv2d on {x:?} and {w:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}

/// Reduces each window of `x` (dims `dims`) into `out` (dims `out_dims`):
/// `acc = init; acc = combine(acc, element)` over the window's in-range
/// elements in row-major window order. The definition of both window ops.
pub fn reduce_window_into<T: Float>(
    x: &[T],
    dims: &[usize],
    window: &Window,
    out: &mut [T],
    out_dims: &[usize],
    is_max: bool,
) {
    let rank = dims.len();
    let strides = super::types::Shape(dims.to_vec()).strides();
    let window_count: usize = window.size.iter().product();
    let mut out_idx = vec![0usize; rank];
    for slot in out.iter_mut() {
        let mut acc = if is_max { T::NEG_INFINITY } else { T::ZERO };
        let mut k = vec![0usize; rank];
        for _ in 0..window_count {
            let flat = tap_index(window, dims, &strides, &out_idx, &k);
            if let Some(f) = flat {
                acc = if is_max { acc.max_op(x[f]) } else { acc + x[f] };
            }
            advance(&mut k, &window.size);
        }
        *slot = acc;
        advance(&mut out_idx, out_dims);
    }
}

/// `Op::ReduceWindowSum` (`is_max == false`) and `Op::ReduceWindowMax`.
pub fn reduce_window(x: &Tensor, window: &Window, ty: &Type, is_max: bool) -> Tensor {
    let mut res = Tensor::zeros(ty);
    let (dims, out_dims) = (x.shape.dims(), ty.shape.dims());
    match (&x.data, &mut res.data) {
        (Data::F32(v), Data::F32(out)) => reduce_window_into(v, dims, window, out, out_dims, is_max),
        (Data::F64(v), Data::F64(out)) => reduce_window_into(v, dims, window, out, out_dims, is_max),
        (v, _) => panic!("reduce_window on {v:?}"),
    }
    res
}

/// The flat index into the operand (dims `dims`, row-major `strides`) of
/// tap `k` of window `out_idx`, or `None` where it falls in the padding.
fn tap_index(window: &Window, dims: &[usize], strides: &[usize], out_idx: &[usize], k: &[usize]) -> Option<usize> {
    let mut flat = 0;
    for d in 0..dims.len() {
        let p = (out_idx[d] * window.stride[d] + k[d]).checked_sub(window.low[d])?;
        if p >= dims[d] {
            return None;
        }
        flat += p * strides[d];
    }
    Some(flat)
}

/// `Op::SelectAndScatter` on slices: `out` (`x`'s dims) gets, for each
/// window in row-major order, `ct[window]` added at the window's first
/// maximum among its in-range taps in row-major window order (as `ArgMax`:
/// a later tap wins only if it is larger, or NaN over a non-NaN). The
/// definition; `out` starts at +0.
pub fn select_and_scatter_into<T: Float>(
    x: &[T],
    dims: &[usize],
    window: &Window,
    ct: &[T],
    out_dims: &[usize],
    out: &mut [T],
) {
    let rank = dims.len();
    let strides = super::types::Shape(dims.to_vec()).strides();
    let window_count: usize = window.size.iter().product();
    #[allow(clippy::eq_op)]
    let is_nan = |a: T| a != a;
    out.fill(T::ZERO);
    let mut out_idx = vec![0usize; rank];
    for &g in ct {
        let mut best: Option<(usize, T)> = None;
        let mut k = vec![0usize; rank];
        for _ in 0..window_count {
            let flat = tap_index(window, dims, &strides, &out_idx, &k);
            if let Some(f) = flat {
                let v = x[f];
                best = match best {
                    Some((_, b)) if v > b || (is_nan(v) && !is_nan(b)) => Some((f, v)),
                    None => Some((f, v)),
                    keep => keep,
                };
            }
            advance(&mut k, &window.size);
        }
        if let Some((f, _)) = best {
            out[f] = out[f] + g;
        }
        advance(&mut out_idx, out_dims);
    }
}

/// `Op::SelectAndScatter` (see `select_and_scatter_into`).
pub fn select_and_scatter(x: &Tensor, ct: &Tensor, window: &Window) -> Tensor {
    let mut res = Tensor::zeros(&Type::new(x.dtype(), x.shape.dims()));
    let (dims, out_dims) = (x.shape.dims(), ct.shape.dims());
    match (&x.data, &ct.data, &mut res.data) {
        (Data::F32(v), Data::F32(g), Data::F32(out)) => select_and_scatter_into(v, dims, window, g, out_dims, out),
        (Data::F64(v), Data::F64(g), Data::F64(out)) => select_and_scatter_into(v, dims, window, g, out_dims, out),
        (v, _, _) => panic!("select_and_scatter on {v:?}"),
    }
    res
}

/// `Op::Reverse`: result element `idx` is the operand's element with `idx[d]`
/// replaced by `n_d - 1 - idx[d]` along each reversed dim.
pub fn reverse(x: &Tensor, dims: &[usize]) -> Tensor {
    let shape = x.shape.dims();
    let strides = x.shape.strides();
    let mut idx = vec![0usize; shape.len()];
    let mut src = Vec::with_capacity(x.len());
    for _ in 0..x.len() {
        let flat: usize =
            (0..shape.len()).map(|d| if dims.contains(&d) { shape[d] - 1 - idx[d] } else { idx[d] } * strides[d]).sum();
        src.push(flat);
        advance(&mut idx, shape);
    }
    let data = match &x.data {
        Data::F32(v) => Data::F32(src.iter().map(|&i| v[i]).collect()),
        Data::F64(v) => Data::F64(src.iter().map(|&i| v[i]).collect()),
        Data::I32(v) => Data::I32(src.iter().map(|&i| v[i]).collect()),
        Data::Bool(v) => Data::Bool(src.iter().map(|&i| v[i]).collect()),
    };
    Tensor { shape: x.shape.clone(), data }
}

/// Advances a multi-index over `dims` in row-major order (wrapping to zero).
fn advance(idx: &mut [usize], dims: &[usize]) {
    for axis in (0..dims.len()).rev() {
        idx[axis] += 1;
        if idx[axis] < dims[axis] {
            return;
        }
        idx[axis] = 0;
    }
}
