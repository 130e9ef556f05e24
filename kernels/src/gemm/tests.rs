//! The driver against a float64 triple loop: shapes around the tile and
//! block sizes (partial tiles, several depth blocks), both transposes, and
//! every split into parts bitwise equal to one part.

use super::*;

/// A small deterministic generator (values in [-1, 1)).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        })
        .collect()
}

/// `c = a x b` by `Gemm` on the microkernels `uk` in `parts` parts, `a`
/// stored transposed if `ta`, `b` if `tb`.
fn product<T: GemmElem + From<f32>>(
    uk: &Microkernels<T>,
    a: &[T],
    b: &[T],
    (m, k, n): (usize, usize, usize),
    (ta, tb): (bool, bool),
    parts: usize,
) -> Vec<T> {
    let (a_rs, a_cs) = if ta { (1, m as isize) } else { (k as isize, 1) };
    let (b_rs, b_cs) = if tb { (1, k as isize) } else { (n as isize, 1) };
    let mut c = vec![T::from(f32::NAN); m * n];
    let g = Gemm { m, n, k, a: a.as_ptr(), a_rs, a_cs, b: b.as_ptr(), b_rs, b_cs, c: c.as_mut_ptr() };
    for part in 0..parts {
        unsafe { g.run_part_on(uk, part, parts) };
    }
    c
}

fn check<T: GemmElem + From<f32> + Into<f64> + PartialEq + std::fmt::Debug>(eps: f64) {
    if T::kernel_sets().is_empty() {
        eprintln!("skipped: no AVX-512 or AVX2+FMA here");
        return;
    }
    // Every set this CPU runs (AVX-512 and AVX2 here; CI machines may have only AVX2).
    for uk in T::kernel_sets() {
        check_on(*uk, eps);
        eprintln!("checked the {}-lane microkernels ({} x {} tiles)", uk.lanes, uk.mr(), uk.nr);
    }
}

fn check_on<T: GemmElem + From<f32> + Into<f64> + PartialEq + std::fmt::Debug>(uk: &Microkernels<T>, eps: f64) {
    // Short c (b read in place where row-major) and tall c (b packed): more
    // than `IN_PLACE_MAX_ROWS` rows.
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (64, 784, 256),
        (70, 1100, 130),
        (128, 256, 10),
        (7, 513, 65),
        (200, 3, 1),
        (300, 37, 130),
    ];
    for (m, k, n) in shapes {
        let a64 = values(m * k, 1 + m as u64);
        let b64 = values(k * n, 2 + n as u64);
        let a: Vec<T> = a64.iter().map(|&v| T::from(v as f32)).collect();
        let b: Vec<T> = b64.iter().map(|&v| T::from(v as f32)).collect();
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let one = product(uk, &a, &b, (m, k, n), (ta, tb), 1);
            for i in 0..m {
                for j in 0..n {
                    let (mut want, mut mag) = (0.0f64, 0.0f64);
                    for p in 0..k {
                        let x: f64 = if ta { a[p * m + i] } else { a[i * k + p] }.into();
                        let y: f64 = if tb { b[j * k + p] } else { b[p * n + j] }.into();
                        want += x * y;
                        mag += (x * y).abs();
                    }
                    let got: f64 = one[i * n + j].into();
                    assert!(
                        (got - want).abs() <= eps * mag + 1e-30,
                        "{}-lane kernels, {m}x{k}x{n} trans {ta},{tb}: c[{i},{j}] = {got}, want {want}",
                        uk.lanes
                    );
                }
            }
            for parts in 2..=5 {
                assert_eq!(product(uk, &a, &b, (m, k, n), (ta, tb), parts), one, "{m}x{k}x{n} in {parts} parts");
            }
        }
    }
}

#[test]
fn f32_products_match_float64_and_do_not_depend_on_the_split() {
    // k * 2^-24 relative to the sum of magnitudes covers any summation order.
    check::<f32>(1100.0 * f32::EPSILON as f64);
}

#[test]
fn f64_products_match_float64_and_do_not_depend_on_the_split() {
    check::<f64>(1100.0 * f64::EPSILON);
}

#[test]
fn steady_state_calls_reuse_the_scratch() {
    let first = f32::with_scratch(1000, |b| (b.as_ptr() as usize, b.len()));
    assert_eq!(first.0 % 64, 0, "the buffer starts at a cache line");
    assert_eq!(f32::with_scratch(1000, |b| (b.as_ptr() as usize, b.len())), first, "the buffer was reallocated");
    assert_eq!(f32::with_scratch(10, |b| b.as_ptr() as usize), first.0);
}
