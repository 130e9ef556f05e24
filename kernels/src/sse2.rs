//! SSE2 (every x86-64 CPU has it) versions of the hottest f32 loops, for
//! where the compiler does not vectorize the portable code. Bitwise equal
//! to the portable versions (tested in `tests.rs`).

use std::arch::x86_64::*;

/// `window::scatter_row_2x2_scalar` on f32, four windows per step: the
/// taps deinterleaved into `a b / c d` vectors, `ArgMax`'s running pick
/// (a later tap wins if larger, or NaN over a non-NaN) as lane masks, and
/// `0 + g` or +0 stored back interleaved.
pub(crate) fn scatter_row_2x2(r0: &[f32], r1: &[f32], g: &[f32], o0: &mut [f32], o1: &mut [f32]) {
    let n = g.len();
    assert!(r0.len() >= 2 * n && r1.len() >= 2 * n && o0.len() >= 2 * n && o1.len() >= 2 * n);
    let vectors = n / 4;
    for v in 0..vectors {
        let j = 4 * v;
        // Safety: SSE2 is part of x86-64; every access is within the
        // asserted lengths (8 taps and 4 cotangents from 2j and j).
        unsafe {
            let top0 = _mm_loadu_ps(r0.as_ptr().add(2 * j));
            let top1 = _mm_loadu_ps(r0.as_ptr().add(2 * j + 4));
            let bot0 = _mm_loadu_ps(r1.as_ptr().add(2 * j));
            let bot1 = _mm_loadu_ps(r1.as_ptr().add(2 * j + 4));
            let a = _mm_shuffle_ps::<0b10_00_10_00>(top0, top1);
            let b = _mm_shuffle_ps::<0b11_01_11_01>(top0, top1);
            let c = _mm_shuffle_ps::<0b10_00_10_00>(bot0, bot1);
            let d = _mm_shuffle_ps::<0b11_01_11_01>(bot0, bot1);
            let beats = |v: __m128, best: __m128| {
                let nan_over_number = _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(best, best));
                _mm_or_ps(_mm_cmpgt_ps(v, best), nan_over_number)
            };
            let blend = |mask: __m128, x: __m128, y: __m128| _mm_or_ps(_mm_and_ps(mask, x), _mm_andnot_ps(mask, y));
            let take_b = beats(b, a);
            let best = blend(take_b, b, a);
            let take_c = beats(c, best);
            let best = blend(take_c, c, best);
            let take_d = beats(d, best);
            let pick_c = _mm_andnot_ps(take_d, take_c);
            let pick_b = _mm_andnot_ps(_mm_or_ps(take_c, take_d), take_b);
            let pick_a =
                _mm_andnot_ps(_mm_or_ps(take_b, _mm_or_ps(take_c, take_d)), _mm_castsi128_ps(_mm_set1_epi32(-1)));
            let gv = _mm_add_ps(_mm_setzero_ps(), _mm_loadu_ps(g.as_ptr().add(j)));
            let (oa, ob) = (_mm_and_ps(pick_a, gv), _mm_and_ps(pick_b, gv));
            let (oc, od) = (_mm_and_ps(pick_c, gv), _mm_and_ps(take_d, gv));
            _mm_storeu_ps(o0.as_mut_ptr().add(2 * j), _mm_unpacklo_ps(oa, ob));
            _mm_storeu_ps(o0.as_mut_ptr().add(2 * j + 4), _mm_unpackhi_ps(oa, ob));
            _mm_storeu_ps(o1.as_mut_ptr().add(2 * j), _mm_unpacklo_ps(oc, od));
            _mm_storeu_ps(o1.as_mut_ptr().add(2 * j + 4), _mm_unpackhi_ps(oc, od));
        }
    }
    // The last 1-3 windows (W2's rows of 13 and 5 windows have one) as one
    // more step on copies padded with zeros: lanes do not mix, so the
    // padding changes nothing. The scalar loop was 3-4% of a W2 step's
    // profile as this tail; with it, the two functions' 9.5% became 8.6%
    // (perf, one profile each, 20 steps: about 1% of the step).
    let (done, rest) = (4 * vectors, n % 4);
    if rest > 0 {
        let (mut t0, mut t1, mut gg) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 4]);
        t0[..2 * rest].copy_from_slice(&r0[2 * done..2 * n]);
        t1[..2 * rest].copy_from_slice(&r1[2 * done..2 * n]);
        gg[..rest].copy_from_slice(&g[done..n]);
        let (mut q0, mut q1) = ([0.0f32; 8], [0.0f32; 8]);
        scatter_row_2x2(&t0, &t1, &gg, &mut q0, &mut q1);
        o0[2 * done..2 * n].copy_from_slice(&q0[..2 * rest]);
        o1[2 * done..2 * n].copy_from_slice(&q1[..2 * rest]);
    }
}
