//! `Conv2d` as im2col + cuBLAS GEMM, for convolutions with many taps.
//!
//! Consumes a `Conv2d` instruction's operand types and attributes; produces
//! an im2col kernel (gathering the input into a `cols` scratch buffer) and
//! one strided-batched GEMM per group, for `ptx::emit` to plan.
//!
//! Why: the direct kernel (`window.rs`) gives each output element one
//! thread that loops over its `Cg * KH * KW` taps. That is fine for a 3x3
//! forward convolution, but the weight gradient of a convolution is a
//! convolution whose taps are the whole batch and image (`N * OH * OW`:
//! 86,528 for the first layer of W2), so a few hundred threads each run a
//! 86k-long dependent loop. As a GEMM the same work spreads over the card.
//!
//! Layout (NCHW input `[N, C, H, W]`, OIHW kernel `[O, Cg, KH, KW]`, `G`
//! groups, `Og = O / G`, `P = OH * OW`, `T = Cg * KH * KW`):
//!   cols[n, g, t, p] = padded/dilated input at tap `t = (ci, ky, kx)` of
//!                      output position `p = (oy, ox)`, channel `g*Cg + ci`
//!                      (0 in padding and between dilated elements);
//!   out[n, g*Og .. g*Og+Og, :] = w[g] [Og, T] · cols[n, g] [T, P], for every
//!                      `n` (one strided-batched GEMM per group; the weight
//!                      matrix has batch stride 0).
//! Rounding: the GEMM sums the `T` taps in cuBLAS's order, so the result is
//! within the matmul bound (`|gpu - exact| <= c sqrt(T) sum |x w|`) instead
//! of bitwise; and a padded tap contributes `0 * w`, which is NaN where a
//! weight is infinite or NaN (the direct kernel skips padded taps).

use super::builder::{imm_f32, imm_f64, Class, Kernel};
use super::window::source_or_skip;
use super::{coords, load, store};
use crate::ir::op::Conv;
use crate::ir::{DType, Type};

/// Convolutions with at least this many taps per output go through GEMM:
/// below it the direct kernel's per-thread loop is short and exact.
pub const MIN_TAPS: usize = 256;

/// Whether `Conv2d(lhs, rhs) -> ty` should be im2col + GEMM.
pub fn use_gemm(lhs: &Type, rhs: &Type, ty: &Type) -> bool {
    let taps: usize = rhs.shape.0[1..].iter().product();
    taps >= MIN_TAPS && ty.shape.num_elements() > 0 && lhs.shape.num_elements() > 0
}

/// The sizes of the plan: (`N`, `G`, `Og`, `T`, `P`).
pub fn dims(rhs: &Type, ty: &Type, a: &Conv) -> (usize, usize, usize, usize, usize) {
    let (n, o) = (ty.shape.0[0], ty.shape.0[1]);
    let taps: usize = rhs.shape.0[1..].iter().product();
    let p = ty.shape.0[2] * ty.shape.0[3];
    (n, a.groups, o / a.groups, taps, p)
}

/// Elements of the `cols` buffer: `N * G * T * P`.
pub fn cols_len(rhs: &Type, ty: &Type, a: &Conv) -> usize {
    let (n, g, _, t, p) = dims(rhs, ty, a);
    n * g * t * p
}

/// The im2col kernel: `cols[n, g, t, p]` as the module doc defines it.
pub fn im2col(k: &mut Kernel, lhs: &Type, rhs: &Type, ty: &Type, a: &Conv, cols: &str, input: &str) {
    let dtype = ty.dtype;
    let (n, g, _, t, p) = dims(rhs, ty, a);
    let (c, h, w) = (lhs.shape.0[1], lhs.shape.0[2], lhs.shape.0[3]);
    let (cg, kh, kw) = (rhs.shape.0[1], rhs.shape.0[2], rhs.shape.0[3]);
    let (oh, ow) = (ty.shape.0[2], ty.shape.0[3]);
    let total = (n * g * t * p) as u64;
    let (mov, zero) = match dtype {
        DType::F32 => ("mov.f32", imm_f32(0.0)),
        DType::F64 => ("mov.f64", imm_f64(0.0)),
        other => unreachable!("the verifier rejects conv2d on {other}"),
    };
    let cls = super::class(dtype);
    k.grid_stride_loop(total, |k, e| {
        let ec = coords(k, e, &[n, g, t, p]);
        let (img, grp, tap, pos) = (&ec[0], &ec[1], &ec[2], &ec[3]);
        let tc = coords(k, tap, &[cg, kh, kw]);
        let pc = coords(k, pos, &[oh, ow]);
        let value = k.op1(mov, cls, &zero);
        let done = k.label("im2col_store");
        let y0 = k.op2("mul.lo.u64", Class::B64, &pc[0], &a.stride[0].to_string());
        let py = k.op3("mad.lo.u64", Class::B64, &tc[1], &a.rhs_dilation[0].to_string(), &y0);
        let iy = source_or_skip(k, &py, a.low[0], a.lhs_dilation[0], h, &done);
        let x0 = k.op2("mul.lo.u64", Class::B64, &pc[1], &a.stride[1].to_string());
        let px = k.op3("mad.lo.u64", Class::B64, &tc[2], &a.rhs_dilation[1].to_string(), &x0);
        let ix = source_or_skip(k, &px, a.low[1], a.lhs_dilation[1], w, &done);
        // ((n * C + g * Cg + ci) * H + iy) * W + ix
        let chan = k.op3("mad.lo.u64", Class::B64, grp, &cg.to_string(), &tc[0]);
        let chan = k.op3("mad.lo.u64", Class::B64, img, &c.to_string(), &chan);
        let row = k.op3("mad.lo.u64", Class::B64, &chan, &h.to_string(), &iy);
        let at = k.op3("mad.lo.u64", Class::B64, &row, &w.to_string(), &ix);
        let v = load(k, dtype, input, &at);
        k.ins(&format!("{mov} {value}, {v}"));
        k.place(&done);
        store(k, dtype, cols, e, &value);
    });
}
