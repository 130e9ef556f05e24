//! The inline transcendentals of `vmath.rs` on 512-bit vectors: host
//! routines that the JIT calls once per chunk of a fused loop
//! (`emit.rs`, `Emitter::emit_fused`) on hosts with AVX-512F.
//!
//! Why: Cranelift emits at most 128-bit vectors on x86-64, and a tanh or an
//! exp is a few dozen dependent vector operations per element, so the
//! transcendental loops of W3 (tanh-GELU, softmax's exp) and W4 were bound
//! by arithmetic on 4 lanes. Here the same algorithm runs on 16 lanes.
//!
//! Consumes `n` f32 values at `src`; produces `op(x)` at `dst` (the same
//! buffer or a disjoint one). The algorithm is `vmath`'s, written once
//! against `vmath::Arith` and instantiated here with `X16` (AVX-512
//! intrinsics, the same IEEE operations in the same order, `mul_add` as one
//! FMA, which every AVX-512 host has and the JIT then also uses), so the
//! results are bitwise the JIT's inline code and `vmath::Model`'s (tested in
//! `codegen::tests::inline_math`), and the accuracy bounds documented in
//! `vmath.rs` hold unchanged.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use cranelift_codegen::ir::condcodes::FloatCC;

use super::vmath::{self, Arith};
use crate::ir::Op;

/// Whether this host runs the routines (AVX-512F; FMA comes with it).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && vmath::host_has_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `vmath::Arith` on 16 f32 lanes; bit patterns and masks live in the same
/// register type as floats (as in `vmath::Model`).
#[cfg(target_arch = "x86_64")]
struct X16;

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn int(a: __m512) -> __m512i {
    unsafe { _mm512_castps_si512(a) }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn float(a: __m512i) -> __m512 {
    unsafe { _mm512_castsi512_ps(a) }
}

// Every method is `inline(always)` and every call runs inside a
// `target_feature(enable = "avx512f")` function (`map`), where the
// intrinsics are available; `available` checks the host before any call.
#[cfg(target_arch = "x86_64")]
impl Arith for X16 {
    type V = __m512;
    #[inline(always)]
    fn is_f64(&self) -> bool {
        false
    }
    #[inline(always)]
    fn f(&mut self, value: f64) -> __m512 {
        unsafe { _mm512_set1_ps(value as f32) }
    }
    #[inline(always)]
    fn add(&mut self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(&mut self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(&mut self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(&mut self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn mul_add(&mut self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn abs(&mut self, a: __m512) -> __m512 {
        unsafe { float(_mm512_and_epi32(int(a), _mm512_set1_epi32(0x7fff_ffff))) }
    }
    #[inline(always)]
    fn neg(&mut self, a: __m512) -> __m512 {
        unsafe { float(_mm512_xor_epi32(int(a), _mm512_set1_epi32(i32::MIN))) }
    }
    #[inline(always)]
    fn bits(&mut self, a: __m512) -> __m512 {
        a
    }
    #[inline(always)]
    fn from_bits(&mut self, a: __m512) -> __m512 {
        a
    }
    #[inline(always)]
    fn iadd_imm(&mut self, a: __m512, imm: i64) -> __m512 {
        unsafe { float(_mm512_add_epi32(int(a), _mm512_set1_epi32(imm as i32))) }
    }
    #[inline(always)]
    fn iand_imm(&mut self, a: __m512, imm: i64) -> __m512 {
        unsafe { float(_mm512_and_epi32(int(a), _mm512_set1_epi32(imm as i32))) }
    }
    #[inline(always)]
    fn ishl_imm(&mut self, a: __m512, imm: i64) -> __m512 {
        unsafe { float(_mm512_sllv_epi32(int(a), _mm512_set1_epi32(imm as i32))) }
    }
    #[inline(always)]
    fn ushr_imm(&mut self, a: __m512, imm: i64) -> __m512 {
        unsafe { float(_mm512_srlv_epi32(int(a), _mm512_set1_epi32(imm as i32))) }
    }
    #[inline(always)]
    fn cmp(&mut self, cc: FloatCC, a: __m512, b: __m512) -> __m512 {
        // Ordered, quiet predicates as Cranelift's (`Unordered`: either NaN).
        let mask = unsafe {
            match cc {
                FloatCC::Equal => _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(a, b),
                FloatCC::LessThan => _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b),
                FloatCC::GreaterThan => _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, b),
                FloatCC::GreaterThanOrEqual => _mm512_cmp_ps_mask::<_CMP_GE_OQ>(a, b),
                FloatCC::Unordered => _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b),
                other => unreachable!("the algorithms do not use {other}"),
            }
        };
        unsafe { float(_mm512_maskz_set1_epi32(mask, -1)) }
    }
    #[inline(always)]
    fn or_mask(&mut self, a: __m512, b: __m512) -> __m512 {
        unsafe { float(_mm512_or_epi32(int(a), int(b))) }
    }
    #[inline(always)]
    fn select(&mut self, mask: __m512, a: __m512, b: __m512) -> __m512 {
        unsafe {
            let lanes = _mm512_test_epi32_mask(int(mask), int(mask));
            _mm512_mask_blend_ps(lanes, b, a)
        }
    }
}

/// `dst[i] = op(src[i])` for `i < n`, 16 lanes at a time and a masked tail.
///
/// Safety: AVX-512F and FMA present (`available`); `src` and `dst` valid
/// for `n` f32 each, equal or disjoint.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn map(op: &Op, src: *const f32, dst: *mut f32, n: usize) {
    let mut a = X16;
    let mut i = 0;
    while i + 16 <= n {
        let x = unsafe { _mm512_loadu_ps(src.add(i)) };
        let y = vmath::eval(&mut a, op, x);
        unsafe { _mm512_storeu_ps(dst.add(i), y) };
        i += 16;
    }
    if i < n {
        let lanes: __mmask16 = ((1u32 << (n - i)) - 1) as __mmask16;
        let x = unsafe { _mm512_maskz_loadu_ps(lanes, src.add(i)) };
        let y = vmath::eval(&mut a, op, x);
        unsafe { _mm512_mask_storeu_ps(dst.add(i), lanes, y) };
    }
}

macro_rules! x16_routine {
    ($name:ident, $op:expr) => {
        /// `HostSig::Array` (`fn(src, _, dst, n)`); see the module doc.
        pub(crate) extern "C" fn $name(src: *const f32, _unused: *const f32, dst: *mut f32, n: usize) {
            #[cfg(target_arch = "x86_64")]
            {
                assert!(available(), "{} needs AVX-512F (the JIT only calls it where present)", stringify!($name));
                // Safety: checked just above; the JIT passes buffers of `n` elements.
                unsafe { map(&$op, src, dst, n) }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = (src, dst, n);
                unreachable!("{} is only called where `available`", stringify!($name));
            }
        }
    };
}

x16_routine!(jl_exp_f32_x16, Op::Exp);
x16_routine!(jl_log_f32_x16, Op::Log);
x16_routine!(jl_tanh_f32_x16, Op::Tanh);
x16_routine!(jl_logistic_f32_x16, Op::Logistic);
