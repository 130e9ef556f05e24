//! AVX-512 versions of the hottest f32 pooling loop, for CPUs that have
//! AVX-512F (checked per call; `sse2.rs` otherwise), and the helpers that
//! the AVX-512 code here and in `winograd.rs` shares. Bitwise equal to the
//! portable versions (tested in `tests.rs`, `winograd.rs`).

use std::arch::x86_64::*;

/// Whether this CPU runs this file's code (the standard library caches
/// the answer).
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// The lanes `lo..hi` of 32 (clipped), as two 16-lane masks.
pub(crate) fn lane_masks(lo: usize, hi: usize) -> (__mmask16, __mmask16) {
    let (lo, hi) = (lo.min(32), hi.min(32));
    let bits = if lo < hi { (((1u64 << hi) - 1) ^ ((1u64 << lo) - 1)) as u32 } else { 0 };
    (bits as __mmask16, (bits >> 16) as __mmask16)
}

/// `window::scatter_row_2x2_scalar` on f32, 16 windows per step, the
/// partial last step masked (W2's rows of 13 and 5 windows are one step):
/// the taps deinterleaved into `a b / c d` registers by permutes,
/// `ArgMax`'s running pick (a later tap wins if larger, or NaN over a
/// non-NaN) as mask registers, and `0 + g` or +0 stored back interleaved.
///
/// Safety: the CPU has AVX-512F (`available`).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn scatter_row_2x2(r0: &[f32], r1: &[f32], g: &[f32], o0: &mut [f32], o1: &mut [f32]) {
    let n = g.len();
    assert!(r0.len() >= 2 * n && r1.len() >= 2 * n && o0.len() >= 2 * n && o1.len() >= 2 * n);
    // Lane k of `even`: element 2k of the 32 in (lo, hi); of `odd`: 2k + 1.
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    // Lanes 2k and 2k + 1 of the 32 results: x[k], y[k] (index 16 + k is y[k]).
    let low_pairs = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high_pairs = _mm512_add_epi32(low_pairs, _mm512_set1_epi32(8));
    let beats = |v: __m512, best: __m512| -> __mmask16 {
        let nan_over_number = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) & _mm512_cmp_ps_mask::<_CMP_ORD_Q>(best, best);
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, best) | nan_over_number
    };
    let mut j = 0;
    while j < n {
        let windows = (n - j).min(16);
        let (m_lo, m_hi) = lane_masks(0, 2 * windows);
        let (m_g, _) = lane_masks(0, windows);
        // Safety: masked lanes stay within the asserted lengths (2 * n taps
        // and results from 2j, n cotangents from j).
        unsafe {
            let top_lo = _mm512_maskz_loadu_ps(m_lo, r0.as_ptr().add(2 * j));
            let top_hi = _mm512_maskz_loadu_ps(m_hi, r0.as_ptr().add(2 * j).wrapping_add(16));
            let bot_lo = _mm512_maskz_loadu_ps(m_lo, r1.as_ptr().add(2 * j));
            let bot_hi = _mm512_maskz_loadu_ps(m_hi, r1.as_ptr().add(2 * j).wrapping_add(16));
            let a = _mm512_permutex2var_ps(top_lo, even, top_hi);
            let b = _mm512_permutex2var_ps(top_lo, odd, top_hi);
            let c = _mm512_permutex2var_ps(bot_lo, even, bot_hi);
            let d = _mm512_permutex2var_ps(bot_lo, odd, bot_hi);
            let take_b = beats(b, a);
            let best = _mm512_mask_blend_ps(take_b, a, b);
            let take_c = beats(c, best);
            let best = _mm512_mask_blend_ps(take_c, best, c);
            let take_d = beats(d, best);
            let pick_c = take_c & !take_d;
            let pick_b = take_b & !(take_c | take_d);
            let pick_a = !(take_b | take_c | take_d);
            let gv = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(m_g, g.as_ptr().add(j)));
            let (oa, ob) = (_mm512_maskz_mov_ps(pick_a, gv), _mm512_maskz_mov_ps(pick_b, gv));
            let (oc, od) = (_mm512_maskz_mov_ps(pick_c, gv), _mm512_maskz_mov_ps(take_d, gv));
            let out0 = o0.as_mut_ptr().add(2 * j);
            let out1 = o1.as_mut_ptr().add(2 * j);
            _mm512_mask_storeu_ps(out0, m_lo, _mm512_permutex2var_ps(oa, low_pairs, ob));
            _mm512_mask_storeu_ps(out0.wrapping_add(16), m_hi, _mm512_permutex2var_ps(oa, high_pairs, ob));
            _mm512_mask_storeu_ps(out1, m_lo, _mm512_permutex2var_ps(oc, low_pairs, od));
            _mm512_mask_storeu_ps(out1.wrapping_add(16), m_hi, _mm512_permutex2var_ps(oc, high_pairs, od));
        }
        j += 16;
    }
}
