//! `max_op` against the interpreter's rule on every pair of special values
//! (a local copy of `compiler::ir::interp::fmax`: this crate cannot depend
//! on `compiler`; the window kernels themselves are tested against the
//! interpreter in `compiler::codegen::tests`).

use crate::Elem;

fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

#[test]
fn max_op_is_the_interpreters_fmax_on_special_pairs() {
    let values = [0.0, -0.0, 1.0, -1.0, 2.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-310, -3e38];
    for &a in &values {
        for &b in &values {
            let want = fmax(a, b);
            let got = a.max_op(b);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "f64 {a} {b}: {got}");
            let (a32, b32) = (a as f32, b as f32);
            let want = fmax(a32 as f64, b32 as f64) as f32;
            let got = a32.max_op(b32);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "f32 {a} {b}: {got}");
        }
    }
}

/// The SSE2 and AVX-512 row kernels of max pooling's backward equal the
/// portable one bitwise on rows of every length mod 4 and mod 16 (up to
/// three AVX-512 steps), with ties, signed zeros, NaN and infinities among
/// the taps.
#[cfg(target_arch = "x86_64")]
#[test]
fn simd_scatter_row_2x2_is_the_portable_one_bitwise() {
    let avx512 = crate::avx512::available();
    if !avx512 {
        eprintln!("AVX-512 version skipped: no AVX-512F on this CPU");
    }
    let specials = [0.0f32, -0.0, 1.0, 1.0, -2.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3.5, 1.0];
    let mut state = 0x9E37_79B9u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for n in 0..40 {
        for _ in 0..50 {
            let mut pick = |k: usize| -> Vec<f32> {
                (0..k)
                    .map(|_| {
                        let r = next();
                        if r % 3 == 0 {
                            specials[(r as usize / 3) % specials.len()]
                        } else {
                            (r % 7) as f32 - 3.0
                        }
                    })
                    .collect()
            };
            let (r0, r1, g) = (pick(2 * n), pick(2 * n), pick(n));
            let (mut a0, mut a1) = (vec![9.0f32; 2 * n], vec![9.0f32; 2 * n]);
            let (mut b0, mut b1) = (vec![7.0f32; 2 * n], vec![7.0f32; 2 * n]);
            crate::sse2::scatter_row_2x2(&r0, &r1, &g, &mut a0, &mut a1);
            crate::window::scatter_row_2x2_scalar(&r0, &r1, &g, &mut b0, &mut b1);
            let bits =
                |v: &[f32]| v.iter().map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() }).collect::<Vec<_>>();
            assert_eq!(bits(&a0), bits(&b0), "top n={n} {r0:?} {r1:?} {g:?}");
            assert_eq!(bits(&a1), bits(&b1), "bottom n={n} {r0:?} {r1:?} {g:?}");
            if avx512 {
                let (mut c0, mut c1) = (vec![5.0f32; 2 * n], vec![5.0f32; 2 * n]);
                // Safety: the CPU has AVX-512F.
                unsafe { crate::avx512::scatter_row_2x2(&r0, &r1, &g, &mut c0, &mut c1) };
                assert_eq!(bits(&c0), bits(&b0), "AVX-512 top n={n} {r0:?} {r1:?} {g:?}");
                assert_eq!(bits(&c1), bits(&b1), "AVX-512 bottom n={n} {r0:?} {r1:?} {g:?}");
            }
        }
    }
}
