//! PTX kernels for the CNN primitives `ReduceWindowSum`/`ReduceWindowMax`
//! (pooling) and `Conv2d`: one thread per output element, looping over its
//! window (or its `Cg x KH x KW` taps) in row-major order; and
//! `SelectAndScatter` (max pooling's backward): one thread per operand
//! element, summing the cotangents of the windows whose first maximum it is
//! (no atomics, so the sum order is the interpreter's).
//!
//! Consumes the operand types and attributes (all static); produces the
//! kernel body. Positions in the padding, or between dilated input elements,
//! are skipped by a branch, exactly as `ir::interp_window` skips them, and
//! every term is `add.rn(acc, mul.rn(x, w))` (no FMA contraction), so results
//! are bitwise equal to the interpreter. This direct convolution is a first
//! version: it reads each input element `O * KH * KW / stride^2` times from
//! cache; an implicit-GEMM (or im2col + cuBLAS) kernel is the fast one.

use super::builder::{imm_f32, imm_f64, Class, Kernel};
use super::{class, coords, divrem, load, math, store};
use crate::ir::op::{Conv, Window};
use crate::ir::{DType, Type};

/// `acc = acc + v` (`is_max == false`) or the interpreter's max.
fn combine(k: &mut Kernel, dtype: DType, acc: &str, v: &str, is_max: bool) {
    let cls = class(dtype);
    let t = match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        other => unreachable!("the verifier rejects window ops on {other}"),
    };
    let next = if is_max { math::fmaxmin(k, cls, acc, v, true) } else { k.op2(&format!("add.rn.{t}"), cls, acc, v) };
    k.ins(&format!("mov.{t} {acc}, {next}"));
}

/// Emits `for (t = 0; t < count; t++) body(t)` with `t` a u64 register;
/// `body` may branch to the label it is given to skip to the next `t`.
fn counted_loop(k: &mut Kernel, count: usize, body: impl FnOnce(&mut Kernel, &str, &str)) {
    let t = k.op1("mov.u64", Class::B64, "0");
    let (head, next) = (k.label("win"), k.label("win_next"));
    k.place(&head);
    body(k, &t, &next);
    k.place(&next);
    k.ins(&format!("add.u64 {t}, {t}, 1"));
    let more = k.reg(Class::Pred);
    k.ins(&format!("setp.lt.u64 {more}, {t}, {count}"));
    k.ins(&format!("@{more} bra {head}"));
}

/// Padded position `p` (u64 register) along a dim with `low` padding and
/// input dilation `dil` over `size` elements: branches to `skip` unless it
/// lands on an element, and returns that element's index.
pub(super) fn source_or_skip(k: &mut Kernel, p: &str, low: usize, dil: usize, size: usize, skip: &str) -> String {
    let before = k.reg(Class::Pred);
    k.ins(&format!("setp.lt.u64 {before}, {p}, {low}"));
    k.ins(&format!("@{before} bra {skip}"));
    let q = k.op2("sub.u64", Class::B64, p, &low.to_string());
    let s = if dil == 1 {
        q
    } else {
        // No bound on `q` is at hand: powers of two still become shifts.
        let (s, r) = divrem(k, &q, dil, u64::MAX);
        let between = k.reg(Class::Pred);
        k.ins(&format!("setp.ne.u64 {between}, {r}, 0"));
        k.ins(&format!("@{between} bra {skip}"));
        s
    };
    let after = k.reg(Class::Pred);
    k.ins(&format!("setp.ge.u64 {after}, {s}, {size}"));
    k.ins(&format!("@{after} bra {skip}"));
    s
}

/// The accumulator's start value in a fresh register.
fn start(k: &mut Kernel, dtype: DType, is_max: bool) -> String {
    match (dtype, is_max) {
        (DType::F32, false) => k.op1("mov.f32", Class::F32, &imm_f32(0.0)),
        (DType::F32, true) => k.op1("mov.f32", Class::F32, &imm_f32(f32::NEG_INFINITY)),
        (DType::F64, false) => k.op1("mov.f64", Class::F64, &imm_f64(0.0)),
        (DType::F64, true) => k.op1("mov.f64", Class::F64, &imm_f64(f64::NEG_INFINITY)),
        (other, _) => unreachable!("the verifier rejects window ops on {other}"),
    }
}

/// `ReduceWindowSum` / `ReduceWindowMax`: output coord `o_d` covers padded
/// positions `o_d * stride_d + w_d` for window coords `w` (row-major).
pub fn reduce_window(k: &mut Kernel, src: &Type, ty: &Type, w: &Window, is_max: bool, out: &str, input: &str) {
    let dtype = ty.dtype;
    let n = ty.shape.num_elements() as u64;
    let dims = src.shape.dims();
    let strides = src.shape.strides();
    let count: usize = w.size.iter().product();
    k.grid_stride_loop(n, |k, o| {
        let oc = coords(k, o, ty.shape.dims());
        let acc = start(k, dtype, is_max);
        if count > 0 && src.shape.num_elements() > 0 {
            counted_loop(k, count, |k, t, skip| {
                let wc = coords(k, t, &w.size);
                let mut at = k.op1("mov.u64", Class::B64, "0");
                for d in 0..dims.len() {
                    let p = k.op3("mad.lo.u64", Class::B64, &oc[d], &w.stride[d].to_string(), &wc[d]);
                    let s = source_or_skip(k, &p, w.low[d], 1, dims[d], skip);
                    at = k.op3("mad.lo.u64", Class::B64, &s, &strides[d].to_string(), &at);
                }
                let v = load(k, dtype, input, &at);
                combine(k, dtype, &acc, &v, is_max);
            });
        }
        store(k, dtype, out, o, &acc);
    });
}

/// `SelectAndScatter`: thread `p` (an operand element) visits the windows
/// covering `p` in row-major order, finds each one's first maximum as
/// `ArgMax` does, and adds the window's cotangent when that is `p`. Along
/// dim `d`, padded position `q = p_d + low_d` is covered by windows
/// `o_d = q / stride_d - c + 1 + j` for `j < c = ceil(size_d / stride_d)`
/// that exist and reach `q`.
pub fn select_and_scatter(k: &mut Kernel, x_ty: &Type, ct_ty: &Type, w: &Window, out: &str, ins: &[String]) {
    let dtype = x_ty.dtype;
    let t = match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        other => unreachable!("the verifier rejects select_and_scatter on {other}"),
    };
    let cls = class(dtype);
    let dims = x_ty.shape.dims();
    let (strides, ct_dims, ct_strides) = (x_ty.shape.strides(), ct_ty.shape.dims(), ct_ty.shape.strides());
    let rank = dims.len();
    let reach: Vec<usize> = (0..rank).map(|d| w.size[d].div_ceil(w.stride[d]).max(1)).collect();
    let candidates: usize = reach.iter().product();
    let taps: usize = w.size.iter().product();
    let n = x_ty.shape.num_elements() as u64;
    k.grid_stride_loop(n, |k, p| {
        let pc = coords(k, p, dims);
        let acc = start(k, dtype, false);
        if ct_ty.shape.num_elements() > 0 && taps > 0 {
            counted_loop(k, candidates, |k, cand, skip_window| {
                let jc = coords(k, cand, &reach);
                // The candidate window's coords, or skip it.
                let mut oc = Vec::with_capacity(rank);
                let mut ct_at = k.op1("mov.u64", Class::B64, "0");
                for d in 0..rank {
                    let q = k.op2("add.u64", Class::B64, &pc[d], &w.low[d].to_string());
                    let (base, _) = divrem(k, &q, w.stride[d], (dims[d] + w.low[d]) as u64);
                    let shifted = k.op2("add.u64", Class::B64, &base, &jc[d]);
                    let below = k.reg(Class::Pred);
                    k.ins(&format!("setp.lt.u64 {below}, {shifted}, {}", reach[d] - 1));
                    k.ins(&format!("@{below} bra {skip_window}"));
                    let o = k.op2("sub.u64", Class::B64, &shifted, &(reach[d] - 1).to_string());
                    let past = k.reg(Class::Pred);
                    k.ins(&format!("setp.ge.u64 {past}, {o}, {}", ct_dims[d]));
                    k.ins(&format!("@{past} bra {skip_window}"));
                    let end = k.op3("mad.lo.u64", Class::B64, &o, &w.stride[d].to_string(), &w.size[d].to_string());
                    let short = k.reg(Class::Pred);
                    k.ins(&format!("setp.le.u64 {short}, {end}, {q}"));
                    k.ins(&format!("@{short} bra {skip_window}"));
                    ct_at = k.op3("mad.lo.u64", Class::B64, &o, &ct_strides[d].to_string(), &ct_at);
                    oc.push(o);
                }
                // The window's first maximum: `best_at` stays `n` (no
                // element's index) until an in-range tap is seen.
                let best_at = k.op1("mov.u64", Class::B64, &n.to_string());
                let best = start(k, dtype, true);
                counted_loop(k, taps, |k, tap, skip_tap| {
                    let wc = coords(k, tap, &w.size);
                    let mut at = k.op1("mov.u64", Class::B64, "0");
                    for d in 0..rank {
                        let q = k.op3("mad.lo.u64", Class::B64, &oc[d], &w.stride[d].to_string(), &wc[d]);
                        let s = source_or_skip(k, &q, w.low[d], 1, dims[d], skip_tap);
                        at = k.op3("mad.lo.u64", Class::B64, &s, &strides[d].to_string(), &at);
                    }
                    let v = load(k, dtype, &ins[0], &at);
                    // Take v when it is the first, larger, or NaN over a number.
                    let larger = k.reg(Class::Pred);
                    k.ins(&format!("setp.gt.{t} {larger}, {v}, {best}"));
                    let v_nan = k.reg(Class::Pred);
                    k.ins(&format!("setp.nan.{t} {v_nan}, {v}, {v}"));
                    let best_num = k.reg(Class::Pred);
                    k.ins(&format!("setp.num.{t} {best_num}, {best}, {best}"));
                    k.ins(&format!("and.pred {v_nan}, {v_nan}, {best_num}"));
                    k.ins(&format!("or.pred {larger}, {larger}, {v_nan}"));
                    let first = k.reg(Class::Pred);
                    k.ins(&format!("setp.eq.u64 {first}, {best_at}, {n}"));
                    k.ins(&format!("or.pred {larger}, {larger}, {first}"));
                    k.ins(&format!("@{larger} mov.{t} {best}, {v}"));
                    k.ins(&format!("@{larger} mov.u64 {best_at}, {at}"));
                });
                let mine = k.reg(Class::Pred);
                k.ins(&format!("setp.ne.u64 {mine}, {best_at}, {p}"));
                k.ins(&format!("@{mine} bra {skip_window}"));
                let g = load(k, dtype, &ins[1], &ct_at);
                let sum = k.op2(&format!("add.rn.{t}"), cls, &acc, &g);
                k.ins(&format!("mov.{t} {acc}, {sum}"));
            });
        }
        store(k, dtype, out, p, &acc);
    });
}

/// `Conv2d`, NCHW x OIHW -> NOHW, as `ir::op::Op::Conv2d` defines it.
pub fn conv2d(k: &mut Kernel, lhs: &Type, rhs: &Type, ty: &Type, a: &Conv, out: &str, ins: &[String]) {
    let dtype = ty.dtype;
    let t = match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        other => unreachable!("the verifier rejects conv2d on {other}"),
    };
    let cls = class(dtype);
    let n = ty.shape.num_elements() as u64;
    let (c, h, wd) = (lhs.shape.0[1], lhs.shape.0[2], lhs.shape.0[3]);
    let (o, cg, kh, kw) = (rhs.shape.0[0], rhs.shape.0[1], rhs.shape.0[2], rhs.shape.0[3]);
    let og = o / a.groups;
    let taps = cg * kh * kw;
    k.grid_stride_loop(n, |k, i| {
        let oc = coords(k, i, ty.shape.dims());
        let (b, ch, y, x) = (&oc[0], &oc[1], &oc[2], &oc[3]);
        let acc = start(k, dtype, false);
        if taps > 0 && lhs.shape.num_elements() > 0 {
            // First input channel of this output channel's group, and the
            // flat offset of image `b`'s channel `c0`.
            let (grp, _) = divrem(k, ch, og, o as u64);
            let c0 = k.op2("mul.lo.u64", Class::B64, &grp, &cg.to_string());
            let img = k.op3("mad.lo.u64", Class::B64, b, &c.to_string(), &c0);
            let wrow = k.op2("mul.lo.u64", Class::B64, ch, &taps.to_string());
            let y0 = k.op2("mul.lo.u64", Class::B64, y, &a.stride[0].to_string());
            let x0 = k.op2("mul.lo.u64", Class::B64, x, &a.stride[1].to_string());
            counted_loop(k, taps, |k, tap, skip| {
                let tc = coords(k, tap, &[cg, kh, kw]);
                let py = k.op3("mad.lo.u64", Class::B64, &tc[1], &a.rhs_dilation[0].to_string(), &y0);
                let iy = source_or_skip(k, &py, a.low[0], a.lhs_dilation[0], h, skip);
                let px = k.op3("mad.lo.u64", Class::B64, &tc[2], &a.rhs_dilation[1].to_string(), &x0);
                let ix = source_or_skip(k, &px, a.low[1], a.lhs_dilation[1], wd, skip);
                // ((b * C + c0 + ci) * H + iy) * W + ix
                let chan = k.op2("add.u64", Class::B64, &img, &tc[0]);
                let row = k.op3("mad.lo.u64", Class::B64, &chan, &h.to_string(), &iy);
                let at = k.op3("mad.lo.u64", Class::B64, &row, &wd.to_string(), &ix);
                let xv = load(k, dtype, &ins[0], &at);
                let wat = k.op2("add.u64", Class::B64, &wrow, tap);
                let wv = load(k, dtype, &ins[1], &wat);
                let prod = k.op2(&format!("mul.rn.{t}"), cls, &xv, &wv);
                let sum = k.op2(&format!("add.rn.{t}"), cls, &acc, &prod);
                k.ins(&format!("mov.{t} {acc}, {sum}"));
            });
        }
        store(k, dtype, out, i, &acc);
    });
}
