//! Inline transcendentals for fused loops: `exp`, `log`, `tanh` and
//! `logistic` as straight-line float and integer arithmetic, so that they
//! fuse with their neighbours (no host call, no buffer) and run on f32x4 /
//! f64x2 vectors like any other lane-wise op.
//!
//! Consumes a value (scalar or vector) of f32 or f64; produces the function's
//! value. Each algorithm is written ONCE, against the `Arith` trait, and
//! instantiated twice: by `emit.rs` with `ClifArith` (Cranelift instructions)
//! and by the tests with `Model` (plain Rust floats, the same IEEE operations
//! in the same order, so bitwise the JIT's result). The tests check the JIT
//! against the model bitwise and the model against the interpreter's libm
//! over many inputs for the ULP bounds below.
//!
//! Algorithms (branch-free: every path is computed, selects pick the result;
//! `mul_add` is one FMA where the host has it, and the model does the same):
//! - `exp` f32: x clamped to [-104, 89] (past them the result is 0 or inf
//!   anyway), k = round(x / ln2) by the 1.5*2^p magic-number addition, r = x
//!   - k ln2 in two parts (Cody-Waite, `k * LN2_HI` exact), e^r = 1 + r +
//!   r^2 P(r) with P a degree-4 minimax fit (no division), scaled by 2^k as
//!   two exact powers 2^(k/2) and 2^(k-k/2) built in the exponent bits (so
//!   overflow gives inf and underflow rounds once into the subnormals).
//!   NaN propagates through the clamp.
//! - `exp` f64: the same reduction, then fdlibm/musl's `1 + (r c / (2 - c) -
//!   lo + hi)` with c = r - r^2 P(r^2) (degree 5) and the same scaling.
//! - `log`: fdlibm/musl's reduction x = 2^k (1 + f), sqrt(2)/2 < 1 + f <
//!   sqrt(2), by integer arithmetic on the bits (subnormals scaled up
//!   first), s = f / (2 + f), log = k ln2_hi + (f - (hfsq - (s (hfsq + R) +
//!   k ln2_lo))) with R a degree-4 (f32) / degree-7 (f64) polynomial in s^2;
//!   then selects for 0 (-inf), +inf, negatives and NaN (NaN).
//! - `tanh`: |x| < 0.625: Cephes' odd polynomial (f32) / rational function
//!   (f64) x + x z P(z), z = x^2; else sign(x) (1 - 2 / (exp(2|x|) + 1)).
//!   f32 clamps |x| to 9.02 first (tanh rounds to ±1 past 9.01), so its
//!   exp is the reduced one times a single power of two: one division in
//!   all. f64 uses the full exp (it overflows to inf past |x| ~ 355,
//!   giving 1). ±0 is returned as is.
//! - `logistic`: the interpreter's formula on the inline exp: e = exp(-|x|),
//!   1 / (1 + e) for x >= 0, e / (1 + e) otherwise.
//!
//! Accuracy against the interpreter (host libm), asserted by
//! `codegen::tests::inline_math` on 60,000 inputs per function and dtype
//! (specials, range boundaries, random bit patterns, dense ranges), and
//! measured on 1,000,000 such inputs (max ulp; share of results that differ
//! from libm's at all; on a host with FMA):
//!   exp       f32 1 ulp (4.6%), f64 1 ulp (7.7%);
//!   log       f32 1 ulp (3.5%), f64 1 ulp (3.3%);
//!   tanh      f32 2 ulp (13%),  f64 2 ulp (12.5%);
//!   logistic  f32 2 ulp (1.8%), f64 2 ulp (3.1%).
//! (`TESTED_ULP` below holds the bounds the tests assert.) Special values
//! (±0, ±inf, NaN, overflow to inf, underflow to 0) are exact. Subnormal
//! results of `exp` are within 1 ulp of the subnormal grid.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{self as clif, types, InstBuilder, MemFlagsData};
use cranelift_frontend::FunctionBuilder;

use crate::ir::{DType, Op};

/// The bound (in ulp of the interpreter's result) the tests assert for each
/// inline function, per dtype: `(op, f32 bound, f64 bound)`.
#[cfg(test)]
pub(crate) const TESTED_ULP: [(Op, u64, u64); 4] =
    [(Op::Exp, 1, 1), (Op::Log, 1, 1), (Op::Tanh, 2, 2), (Op::Logistic, 2, 2)];

/// Whether `op` on `dtype` is computed inline by this module.
pub(super) fn is_inline(op: &Op, dtype: DType) -> bool {
    dtype.is_float() && matches!(op, Op::Exp | Op::Log | Op::Tanh | Op::Logistic)
}

/// The operations the algorithms are written in: IEEE float arithmetic on
/// one dtype, integer arithmetic on its bits (same width, wrapping), masks
/// from float comparisons and lane-wise selects.
pub(super) trait Arith {
    type V: Copy;
    fn is_f64(&self) -> bool;
    /// A float constant (rounded to the dtype).
    fn f(&mut self, value: f64) -> Self::V;
    fn add(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn sub(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(&mut self, a: Self::V, b: Self::V) -> Self::V;
    fn div(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`: one fused multiply-add (one rounding) where the host has
    /// FMA (`host_has_fma`), else a multiply and an add.
    fn mul_add(&mut self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn abs(&mut self, a: Self::V) -> Self::V;
    fn neg(&mut self, a: Self::V) -> Self::V;
    /// The float's bits as a same-width integer (a different value type in
    /// CLIF, the same `V` here for simplicity: the integer ops take bits).
    fn bits(&mut self, a: Self::V) -> Self::V;
    fn from_bits(&mut self, a: Self::V) -> Self::V;
    /// Integer ops on bits: `a + imm` (wrapping), `a & imm`, `a << imm`,
    /// `a >> imm` (logical).
    fn iadd_imm(&mut self, a: Self::V, imm: i64) -> Self::V;
    fn iand_imm(&mut self, a: Self::V, imm: i64) -> Self::V;
    fn ishl_imm(&mut self, a: Self::V, imm: i64) -> Self::V;
    fn ushr_imm(&mut self, a: Self::V, imm: i64) -> Self::V;
    /// A mask: all ones where `cc(a, b)` holds.
    fn cmp(&mut self, cc: FloatCC, a: Self::V, b: Self::V) -> Self::V;
    fn or_mask(&mut self, a: Self::V, b: Self::V) -> Self::V;
    /// `mask ? a : b`, lane-wise.
    fn select(&mut self, mask: Self::V, a: Self::V, b: Self::V) -> Self::V;
}

/// Per-dtype constants of the bit-level tricks.
struct Format {
    /// 1.5 * 2^mantissa_bits: adding it rounds to an integer held in the low
    /// mantissa bits.
    magic: f64,
    magic_bits: i64,
    mantissa_bits: i64,
    bias: i64,
}

#[inline(always)]
fn format<A: Arith>(a: &A) -> Format {
    if a.is_f64() {
        Format { magic: 6755399441055744.0, magic_bits: 0x4338_0000_0000_0000, mantissa_bits: 52, bias: 1023 }
    } else {
        Format { magic: 12582912.0, magic_bits: 0x4B40_0000, mantissa_bits: 23, bias: 127 }
    }
}

/// `op(x)` for an op `is_inline` accepts.
#[inline(always)]
pub(super) fn eval<A: Arith>(a: &mut A, op: &Op, x: A::V) -> A::V {
    match op {
        Op::Exp => exp(a, x),
        Op::Log => log(a, x),
        Op::Tanh => tanh(a, x),
        Op::Logistic => logistic(a, x),
        other => unreachable!("{other:?} is not an inline math op"),
    }
}

/// `x` clamped to `[lo, hi]`, NaN kept: two compare-and-selects (x86 has
/// no NaN-propagating min/max; Cranelift's `fmin`/`fmax` take 6 vector
/// instructions each).
#[inline(always)]
fn clamp<A: Arith>(a: &mut A, x: A::V, lo: A::V, hi: A::V) -> A::V {
    let below = a.cmp(FloatCC::LessThan, x, lo);
    let x = a.select(below, lo, x);
    let above = a.cmp(FloatCC::GreaterThan, x, hi);
    a.select(above, hi, x)
}

/// 2^k for an integer-valued float k whose power is a normal number.
#[inline(always)]
fn pow2<A: Arith>(a: &mut A, k: A::V) -> A::V {
    let fmt = format(a);
    let magic = a.f(fmt.magic);
    let t = a.add(k, magic);
    let t = a.bits(t);
    // bits(k + magic) = magic_bits + k, so the biased exponent is one add.
    let biased = a.iadd_imm(t, fmt.bias - fmt.magic_bits);
    let shifted = a.ishl_imm(biased, fmt.mantissa_bits);
    a.from_bits(shifted)
}

/// The nearest integer to `x` (|x| < 2^(mantissa_bits - 1)), ties to even.
#[inline(always)]
fn round<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let magic = a.f(format(a).magic);
    let t = a.add(x, magic);
    a.sub(t, magic)
}

#[inline(always)]
pub(super) fn exp<A: Arith>(a: &mut A, x: A::V) -> A::V {
    if a.is_f64() {
        exp_f64(a, x)
    } else {
        exp_f32(a, x)
    }
}

/// The f32 exponential's clamp: exp(lo) rounds to 0, exp(hi) overflows,
/// and both keep 2^(k/2) normal.
const EXP_F32_RANGE: (f64, f64) = (-104.0, 89.0);

/// f32 exp without a division: x clamped, then `exp_reduced`, then scaled by
/// 2^k as two exact powers (overflow gives inf, underflow rounds once into
/// the subnormals).
#[inline(always)]
fn exp_f32<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let (lo, hi) = (a.f(EXP_F32_RANGE.0), a.f(EXP_F32_RANGE.1));
    let x = clamp(a, x, lo, hi);
    let (y, k) = exp_reduced_f32(a, x);
    scale_by_pow2(a, y, k)
}

/// f32 `(e^r, k)` with x = k ln2 + r, |r| <= ln2/2, for |x| < 2^22: k by
/// the magic-number rounding, r in two parts (Cody-Waite: `k * LN2_HI` is
/// exact), e^r = 1 + r + r^2 P(r) with P a degree-4 minimax fit of the
/// relative error (3.1e-9 before rounding; benches/tools/fit_exp.py), by
/// multiply-adds.
#[inline(always)]
fn exp_reduced_f32<A: Arith>(a: &mut A, x: A::V) -> (A::V, A::V) {
    let inv_ln2 = a.f(1.4426950216e+00);
    let scaled = a.mul(x, inv_ln2);
    let k = round(a, scaled);
    let minus_k = a.neg(k);
    let ln2_hi = a.f(6.9314575195e-01);
    let r = a.mul_add(minus_k, ln2_hi, x);
    let ln2_lo = a.f(1.4286067653e-06);
    let r = a.mul_add(minus_k, ln2_lo, r);
    let y = horner_fma(
        a,
        r,
        &[
            1.0,
            1.0,
            0.4999999345123254,
            0.1666652071776742,
            0.04166838796106529,
            0.008368706669487648,
            0.0013814551089701733,
        ],
    );
    (y, k)
}

/// y * 2^k for an integer-valued k whose halves' powers are normal: as
/// y * 2^k1 * 2^k2, k1 = round(k / 2), both powers exact.
#[inline(always)]
fn scale_by_pow2<A: Arith>(a: &mut A, y: A::V, k: A::V) -> A::V {
    let half = a.f(0.5);
    let half_k = a.mul(k, half);
    let k1 = round(a, half_k);
    let k2 = a.sub(k, k1);
    let s1 = pow2(a, k1);
    let s2 = pow2(a, k2);
    let y = a.mul(y, s1);
    a.mul(y, s2)
}

#[inline(always)]
fn exp_f64<A: Arith>(a: &mut A, x: A::V) -> A::V {
    // lo: exp(lo) rounds to 0; hi: exp(hi) overflows; both keep 2^(k/2) normal.
    let (lo, hi) = (a.f(-746.0), a.f(710.0));
    let x = clamp(a, x, lo, hi);
    // fdlibm/musl constants: LN2_HI has trailing zero bits so k * LN2_HI is exact.
    let (ln2_hi, ln2_lo, inv_ln2) =
        (6.93147180369123816490e-01, 1.90821492927058770002e-10, 1.44269504088896338700e+00);
    let inv_ln2 = a.f(inv_ln2);
    let scaled = a.mul(x, inv_ln2);
    let k = round(a, scaled);
    let ln2_hi = a.f(ln2_hi);
    let k_hi = a.mul(k, ln2_hi);
    let hi = a.sub(x, k_hi);
    let ln2_lo = a.f(ln2_lo);
    let lo = a.mul(k, ln2_lo);
    let r = a.sub(hi, lo);
    let rr = a.mul(r, r);
    // c = r - rr * P(rr).
    let p = horner(
        a,
        rr,
        &[
            1.66666666666666019037e-01,
            -2.77777777770155933842e-03,
            6.61375632143793436117e-05,
            -1.65339022054652515390e-06,
            4.13813679705723846039e-08,
        ],
    );
    let rrp = a.mul(rr, p);
    let c = a.sub(r, rrp);
    // y = 1 + (r c / (2 - c) - lo + hi).
    let rc = a.mul(r, c);
    let two = a.f(2.0);
    let two_minus_c = a.sub(two, c);
    let q = a.div(rc, two_minus_c);
    let q = a.sub(q, lo);
    let q = a.add(q, hi);
    let one = a.f(1.0);
    let y = a.add(one, q);
    scale_by_pow2(a, y, k)
}

/// `c[0] + z (c[1] + z (c[2] + ...))`.
#[inline(always)]
fn horner<A: Arith>(a: &mut A, z: A::V, c: &[f64]) -> A::V {
    let (last, rest) = c.split_last().expect("a polynomial has coefficients");
    let mut acc = a.f(*last);
    for &coefficient in rest.iter().rev() {
        let t = a.mul(acc, z);
        let coefficient = a.f(coefficient);
        acc = a.add(coefficient, t);
    }
    acc
}

/// `c[0] + z (c[1] + z (c[2] + ...))` by multiply-adds.
#[inline(always)]
fn horner_fma<A: Arith>(a: &mut A, z: A::V, c: &[f64]) -> A::V {
    let (last, rest) = c.split_last().expect("a polynomial has coefficients");
    let mut acc = a.f(*last);
    for &coefficient in rest.iter().rev() {
        let coefficient = a.f(coefficient);
        acc = a.mul_add(acc, z, coefficient);
    }
    acc
}

/// Whether this machine's CPU has fused multiply-add (x86-64's FMA3):
/// Cranelift then emits `vfmadd` for `fma`; without it, `mul_add` is a
/// multiply and an add (Cranelift's fallback would be a libm call per lane).
pub(super) fn host_has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline(always)]
pub(super) fn log<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let f64_ = a.is_f64();
    let fmt = format(a);
    // Subnormals (and everything below the smallest normal, which the final
    // selects replace) are scaled into the normal range first.
    let (min_normal, up, up_exponent) =
        if f64_ { (f64::MIN_POSITIVE, 2f64.powi(54), 54.0) } else { (f32::MIN_POSITIVE as f64, 2f64.powi(25), 25.0) };
    let min_normal = a.f(min_normal);
    let tiny = a.cmp(FloatCC::LessThan, x, min_normal);
    let up = a.f(up);
    let scaled = a.mul(x, up);
    let xs = a.select(tiny, scaled, x);
    let adjust = a.f(-up_exponent);
    let zero = a.f(0.0);
    let k_adjust = a.select(tiny, adjust, zero);
    // ix += one - sqrt(2)/2 (in the high word): the exponent field is then
    // k + bias with the mantissa reduced around sqrt(2)/2.
    let (one_bits, sqrt_half_bits, mantissa_mask): (i64, i64, i64) = if f64_ {
        (0x3ff0_0000 << 32, 0x3fe6_a09e << 32, 0x000f_ffff_ffff_ffff)
    } else {
        (0x3f80_0000, 0x3f35_04f3, 0x007f_ffff)
    };
    let ix = a.bits(xs);
    let ix = a.iadd_imm(ix, one_bits - sqrt_half_bits);
    // k as a float: bits(magic + n) = magic_bits + n.
    let e = a.ushr_imm(ix, fmt.mantissa_bits);
    let e = a.iadd_imm(e, fmt.magic_bits - fmt.bias);
    let e = a.from_bits(e);
    let magic = a.f(fmt.magic);
    let k = a.sub(e, magic);
    let k = a.add(k, k_adjust);
    let m = a.iand_imm(ix, mantissa_mask);
    let m = a.iadd_imm(m, sqrt_half_bits);
    let m = a.from_bits(m);
    let one = a.f(1.0);
    let f = a.sub(m, one);
    let two = a.f(2.0);
    let two_f = a.add(two, f);
    let s = a.div(f, two_f);
    let z = a.mul(s, s);
    let w = a.mul(z, z);
    // R = t2 + t1: the even (in w) and odd coefficients of the polynomial.
    let (odd, even): (&[f64], &[f64]) = if f64_ {
        (
            &[3.999999999940941908e-01, 2.222219843214978396e-01, 1.531383769920937332e-01],
            &[6.666666666666735130e-01, 2.857142874366239149e-01, 1.818357216161805012e-01, 1.479819860511658591e-01],
        )
    } else {
        (&[0.40000972152, 0.24279078841], &[0.66666662693, 0.28498786688])
    };
    let t1 = horner(a, w, odd);
    let t1 = a.mul(w, t1);
    let t2 = horner(a, w, even);
    let t2 = a.mul(z, t2);
    let r = a.add(t2, t1);
    let half = a.f(0.5);
    let half_f = a.mul(half, f);
    let hfsq = a.mul(half_f, f);
    let (ln2_hi, ln2_lo) = if f64_ {
        (6.93147180369123816490e-01, 1.90821492927058770002e-10)
    } else {
        (6.9313812256e-01, 9.0580006145e-06)
    };
    // s (hfsq + R) + k ln2_lo - hfsq + f + k ln2_hi, left to right.
    let sum = a.add(hfsq, r);
    let res = a.mul(s, sum);
    let ln2_lo = a.f(ln2_lo);
    let k_lo = a.mul(k, ln2_lo);
    let res = a.add(res, k_lo);
    let res = a.sub(res, hfsq);
    let res = a.add(res, f);
    let ln2_hi = a.f(ln2_hi);
    let k_hi = a.mul(k, ln2_hi);
    let res = a.add(res, k_hi);
    // log(+inf) = inf, log(±0) = -inf, log(x < 0) = log(NaN) = NaN.
    let inf = a.f(f64::INFINITY);
    let is_inf = a.cmp(FloatCC::Equal, x, inf);
    let res = a.select(is_inf, inf, res);
    let is_zero = a.cmp(FloatCC::Equal, x, zero);
    let neg_inf = a.f(f64::NEG_INFINITY);
    let res = a.select(is_zero, neg_inf, res);
    let negative = a.cmp(FloatCC::LessThan, x, zero);
    let nan = a.cmp(FloatCC::Unordered, x, x);
    let invalid = a.or_mask(negative, nan);
    let nan = a.f(f64::NAN);
    a.select(invalid, nan, res)
}

#[inline(always)]
pub(super) fn tanh<A: Arith>(a: &mut A, x: A::V) -> A::V {
    if a.is_f64() {
        tanh_f64(a, x)
    } else {
        tanh_f32(a, x)
    }
}

/// f32 tanh: |x| < 0.625: Cephes' odd polynomial x + x z P(z), z = x^2,
/// by multiply-adds; else sign(x) (1 - 2 / (e^(2|x|) + 1)) with |x|
/// clamped to 9.02 (past 9.01 tanh rounds to ±1), so e^(2|x|) needs one
/// power of two and no division (`exp_reduced_f32`). One division in all.
#[inline(always)]
fn tanh_f32<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let z = a.mul(x, x);
    let p = horner_fma(
        a,
        z,
        &[-3.33332819422e-1, 1.33314422036e-1, -5.37397155531e-2, 2.06390887954e-2, -5.70498872745e-3],
    );
    let xz = a.mul(x, z);
    let small = a.mul_add(xz, p, x);
    let ax = a.abs(x);
    let limit = a.f(9.02);
    let above = a.cmp(FloatCC::GreaterThan, ax, limit);
    let clamped = a.select(above, limit, ax);
    let two_ax = a.add(clamped, clamped);
    let (y, k) = exp_reduced_f32(a, two_ax);
    let scale = pow2(a, k);
    let e = a.mul(y, scale);
    let large = one_minus_two_over_e_plus_one(a, e, x);
    let limit = a.f(0.625);
    let is_small = a.cmp(FloatCC::LessThan, ax, limit);
    let res = a.select(is_small, small, large);
    keep_signed_zero(a, x, res)
}

/// `sign(x) (1 - 2 / (e + 1))`: tanh(x) from e = exp(2|x|).
#[inline(always)]
fn one_minus_two_over_e_plus_one<A: Arith>(a: &mut A, e: A::V, x: A::V) -> A::V {
    let one = a.f(1.0);
    let e1 = a.add(e, one);
    let two = a.f(2.0);
    let q = a.div(two, e1);
    let large = a.sub(one, q);
    let neg_large = a.neg(large);
    let zero = a.f(0.0);
    let negative = a.cmp(FloatCC::LessThan, x, zero);
    a.select(negative, neg_large, large)
}

/// ±0 keeps its sign (the polynomial gives +0 for -0).
#[inline(always)]
fn keep_signed_zero<A: Arith>(a: &mut A, x: A::V, res: A::V) -> A::V {
    let zero = a.f(0.0);
    let is_zero = a.cmp(FloatCC::Equal, x, zero);
    a.select(is_zero, x, res)
}

#[inline(always)]
fn tanh_f64<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let ax = a.abs(x);
    // Small |x|: x + x z P(z) / Q(z) (Cephes tanh).
    let z = a.mul(x, x);
    let small = {
        let p = horner(a, z, &[-1.61468768441708447952e3, -9.92877231001918586564e1, -9.64399179425052238628e-1]);
        let q = horner(a, z, &[4.84406305325125486048e3, 2.23548839060100448583e3, 1.12811678491632931402e2, 1.0]);
        let ratio = a.div(p, q);
        let xz = a.mul(x, z);
        let t = a.mul(xz, ratio);
        a.add(x, t)
    };
    // Large |x|: 1 - 2 / (exp(2|x|) + 1), with the sign of x.
    let two_ax = a.add(ax, ax);
    let e = exp(a, two_ax);
    let large = one_minus_two_over_e_plus_one(a, e, x);
    let limit = a.f(0.625);
    let is_small = a.cmp(FloatCC::LessThan, ax, limit);
    let res = a.select(is_small, small, large);
    keep_signed_zero(a, x, res)
}

#[inline(always)]
pub(super) fn logistic<A: Arith>(a: &mut A, x: A::V) -> A::V {
    let ax = a.abs(x);
    let minus_ax = a.neg(ax);
    let e = exp(a, minus_ax);
    let one = a.f(1.0);
    let d = a.add(one, e);
    let positive = a.div(one, d);
    let negative = a.div(e, d);
    let zero = a.f(0.0);
    // x >= 0 is false for NaN: e / (1 + e) is NaN.
    let non_negative = a.cmp(FloatCC::GreaterThanOrEqual, x, zero);
    a.select(non_negative, positive, negative)
}

// ---------------------------------------------------------------- Cranelift

/// Emits the algorithms as CLIF on scalars (`lanes == 1`) or f32x4 / f64x2.
pub(super) struct ClifArith<'b, 'a> {
    pub(super) b: &'b mut FunctionBuilder<'a>,
    pub(super) dtype: DType,
    pub(super) lanes: usize,
    /// `host_has_fma()`, asked once per compile.
    pub(super) fma: bool,
}

impl ClifArith<'_, '_> {
    fn float_ty(&self) -> clif::Type {
        let scalar = if self.dtype == DType::F64 { types::F64 } else { types::F32 };
        scalar.by(self.lanes as u32).expect("16-byte vectors")
    }
    fn int_ty(&self) -> clif::Type {
        let scalar = if self.dtype == DType::F64 { types::I64 } else { types::I32 };
        scalar.by(self.lanes as u32).expect("16-byte vectors")
    }
    fn splat(&mut self, scalar: clif::Value, ty: clif::Type) -> clif::Value {
        if self.lanes == 1 {
            scalar
        } else {
            self.b.ins().splat(ty, scalar)
        }
    }
    fn int_const(&mut self, imm: i64) -> clif::Value {
        let scalar = if self.dtype == DType::F64 { types::I64 } else { types::I32 };
        let c = self.b.ins().iconst(scalar, if self.dtype == DType::F64 { imm } else { imm as i32 as i64 });
        let ty = self.int_ty();
        self.splat(c, ty)
    }
    /// Vector masks are integer lanes; scalar ones are `i8` booleans.
    fn mask_to_float(&mut self, mask: clif::Value) -> clif::Value {
        let ty = self.float_ty();
        self.b.ins().bitcast(ty, MemFlagsData::new(), mask)
    }
}

impl Arith for ClifArith<'_, '_> {
    type V = clif::Value;
    fn is_f64(&self) -> bool {
        self.dtype == DType::F64
    }
    fn f(&mut self, value: f64) -> clif::Value {
        let scalar =
            if self.dtype == DType::F64 { self.b.ins().f64const(value) } else { self.b.ins().f32const(value as f32) };
        let ty = self.float_ty();
        self.splat(scalar, ty)
    }
    fn add(&mut self, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().fadd(a, b)
    }
    fn sub(&mut self, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().fsub(a, b)
    }
    fn mul(&mut self, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().fmul(a, b)
    }
    fn div(&mut self, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().fdiv(a, b)
    }
    fn mul_add(&mut self, a: clif::Value, b: clif::Value, c: clif::Value) -> clif::Value {
        if self.fma {
            self.b.ins().fma(a, b, c)
        } else {
            let product = self.b.ins().fmul(a, b);
            self.b.ins().fadd(product, c)
        }
    }
    fn abs(&mut self, a: clif::Value) -> clif::Value {
        self.b.ins().fabs(a)
    }
    fn neg(&mut self, a: clif::Value) -> clif::Value {
        self.b.ins().fneg(a)
    }
    fn bits(&mut self, a: clif::Value) -> clif::Value {
        let ty = self.int_ty();
        self.b.ins().bitcast(ty, MemFlagsData::new(), a)
    }
    fn from_bits(&mut self, a: clif::Value) -> clif::Value {
        let ty = self.float_ty();
        self.b.ins().bitcast(ty, MemFlagsData::new(), a)
    }
    fn iadd_imm(&mut self, a: clif::Value, imm: i64) -> clif::Value {
        let c = self.int_const(imm);
        self.b.ins().iadd(a, c)
    }
    fn iand_imm(&mut self, a: clif::Value, imm: i64) -> clif::Value {
        let c = self.int_const(imm);
        self.b.ins().band(a, c)
    }
    fn ishl_imm(&mut self, a: clif::Value, imm: i64) -> clif::Value {
        // A scalar shift amount: x64 shifts every lane by it.
        let amount = self.b.ins().iconst(types::I32, imm);
        self.b.ins().ishl(a, amount)
    }
    fn ushr_imm(&mut self, a: clif::Value, imm: i64) -> clif::Value {
        let amount = self.b.ins().iconst(types::I32, imm);
        self.b.ins().ushr(a, amount)
    }
    fn cmp(&mut self, cc: FloatCC, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().fcmp(cc, a, b)
    }
    fn or_mask(&mut self, a: clif::Value, b: clif::Value) -> clif::Value {
        self.b.ins().bor(a, b)
    }
    fn select(&mut self, mask: clif::Value, a: clif::Value, b: clif::Value) -> clif::Value {
        if self.lanes == 1 {
            self.b.ins().select(mask, a, b)
        } else {
            let mask = self.mask_to_float(mask);
            self.b.ins().bitselect(mask, a, b)
        }
    }
}

// ---------------------------------------------------------------- Rust model

/// The algorithms on Rust floats, bitwise what the JIT computes (tests only:
/// the oracle for the emitted code, and fast to sweep for the ULP bounds).
/// Values are carried as f64 bit patterns of the dtype's width: the f32
/// model keeps an f32's bits in the low 32 bits.
#[cfg(test)]
pub(crate) struct Model {
    pub(crate) f64_: bool,
    /// Whether `mul_add` rounds once, as the JIT's on this host.
    pub(crate) fma: bool,
}

#[cfg(test)]
impl Model {
    /// The model of what the JIT computes on this host.
    pub(crate) fn new(f64_: bool) -> Model {
        Model { f64_, fma: host_has_fma() }
    }
    fn to32(v: u64) -> f32 {
        f32::from_bits(v as u32)
    }
    fn binary(&self, a: u64, b: u64, op32: fn(f32, f32) -> f32, op64: fn(f64, f64) -> f64) -> u64 {
        if self.f64_ {
            op64(f64::from_bits(a), f64::from_bits(b)).to_bits()
        } else {
            op32(Model::to32(a), Model::to32(b)).to_bits() as u64
        }
    }
    fn mask(&self, holds: bool) -> u64 {
        if holds {
            u64::MAX
        } else {
            0
        }
    }
    fn width_mask(&self) -> u64 {
        if self.f64_ {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }
    /// `x` (a dtype value) as an f64, for comparisons.
    fn value(&self, x: u64) -> f64 {
        if self.f64_ {
            f64::from_bits(x)
        } else {
            Model::to32(x) as f64
        }
    }
    /// `f(x)` on one f64 / f32 through the model.
    pub(crate) fn run(&mut self, op: &Op, x: f64) -> f64 {
        let bits = if self.f64_ { x.to_bits() } else { (x as f32).to_bits() as u64 };
        let res = eval(self, op, bits);
        self.value(res)
    }
}

#[cfg(test)]
impl Arith for Model {
    type V = u64;
    fn is_f64(&self) -> bool {
        self.f64_
    }
    fn f(&mut self, value: f64) -> u64 {
        if self.f64_ {
            value.to_bits()
        } else {
            (value as f32).to_bits() as u64
        }
    }
    fn add(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, |x, y| x + y, |x, y| x + y)
    }
    fn sub(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, |x, y| x - y, |x, y| x - y)
    }
    fn mul(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, |x, y| x * y, |x, y| x * y)
    }
    fn div(&mut self, a: u64, b: u64) -> u64 {
        self.binary(a, b, |x, y| x / y, |x, y| x / y)
    }
    fn mul_add(&mut self, a: u64, b: u64, c: u64) -> u64 {
        if !self.fma {
            let product = self.mul(a, b);
            return self.add(product, c);
        }
        if self.f64_ {
            f64::from_bits(a).mul_add(f64::from_bits(b), f64::from_bits(c)).to_bits()
        } else {
            Model::to32(a).mul_add(Model::to32(b), Model::to32(c)).to_bits() as u64
        }
    }
    fn abs(&mut self, a: u64) -> u64 {
        let sign = if self.f64_ { 1u64 << 63 } else { 1u64 << 31 };
        a & !sign
    }
    fn neg(&mut self, a: u64) -> u64 {
        let sign = if self.f64_ { 1u64 << 63 } else { 1u64 << 31 };
        a ^ sign
    }
    fn bits(&mut self, a: u64) -> u64 {
        a
    }
    fn from_bits(&mut self, a: u64) -> u64 {
        a
    }
    fn iadd_imm(&mut self, a: u64, imm: i64) -> u64 {
        a.wrapping_add(imm as u64) & self.width_mask()
    }
    fn iand_imm(&mut self, a: u64, imm: i64) -> u64 {
        a & imm as u64 & self.width_mask()
    }
    fn ishl_imm(&mut self, a: u64, imm: i64) -> u64 {
        (a << imm) & self.width_mask()
    }
    fn ushr_imm(&mut self, a: u64, imm: i64) -> u64 {
        (a & self.width_mask()) >> imm
    }
    fn cmp(&mut self, cc: FloatCC, a: u64, b: u64) -> u64 {
        let (x, y) = (self.value(a), self.value(b));
        let holds = match cc {
            FloatCC::Equal => x == y,
            FloatCC::LessThan => x < y,
            FloatCC::GreaterThan => x > y,
            FloatCC::GreaterThanOrEqual => x >= y,
            FloatCC::Unordered => x.is_nan() || y.is_nan(),
            other => unreachable!("the algorithms do not use {other}"),
        };
        self.mask(holds)
    }
    fn or_mask(&mut self, a: u64, b: u64) -> u64 {
        a | b
    }
    fn select(&mut self, mask: u64, a: u64, b: u64) -> u64 {
        if mask != 0 {
            a
        } else {
            b
        }
    }
}
