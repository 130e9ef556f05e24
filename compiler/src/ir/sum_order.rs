//! The order in which a long float sum adds its elements.
//!
//! A float `reduce_sum` is defined by the order of its additions, and every
//! CPU result is bitwise the interpreter's, so the order is part of the
//! IR's meaning. Short sums add in row-major order, one element after the
//! other (the chain a softmax row or a cross-entropy sum runs as). A long
//! run in that order is one dependent add per element (about 4 cycles
//! each on x86-64): a loss summed over 4M elements spent 5 ms there, and
//! could run on one thread only. So a *blocked* sum, one whose reduced
//! elements per output are consecutive in the source (every reduced dim
//! of size > 1 after every kept dim of size > 1) and number
//! `LONG_SUM` or more, adds in this order instead:
//!
//! - the run of `n` elements is cut into units of `unit_len(n)` elements
//!   (the last unit may be shorter): at most `MAX_SUM_UNITS` of them, so
//!   that threads can take whole units and the partial sums fit a small
//!   stack slot;
//! - within a unit, `lanes(dtype)` partial sums (one 64-byte vector: 16
//!   for f32, 8 for f64), each starting at 0.0; the unit's element `k` is
//!   added to partial `k % lanes`, in element order;
//! - the partials are combined by halving: partial `j` += partial `j + h`
//!   for `j < h`, for `h` = lanes/2, lanes/4, ..., 1; partial 0 is the
//!   unit's sum (never -0.0: the partials start at +0.0);
//! - the units' sums are added in unit order to 0.0.
//!
//! The result then does not depend on the thread count, and any backend
//! gets it with four vector accumulators of 128 bits or one of 512. The
//! error bound is the serial sum's (`precision::Tolerance::Sum`) or better:
//! each element goes through at most `unit_len / lanes + lanes.ilog2() +
//! units` additions.

use super::DType;

/// Elements from which a sum over one consecutive run is blocked.
pub const LONG_SUM: usize = 4096;

/// The unit length's granule: units are a multiple of it.
pub const SUM_UNIT: usize = 4096;

/// The most units a run is cut into.
pub const MAX_SUM_UNITS: usize = 256;

/// Partial sums per unit: one 64-byte vector of `dtype`.
pub fn lanes(dtype: DType) -> usize {
    64 / dtype.size_bytes()
}

/// Elements per unit of a blocked run of `n` elements: the smallest
/// multiple of `SUM_UNIT` that cuts it into at most `MAX_SUM_UNITS` units.
pub fn unit_len(n: usize) -> usize {
    SUM_UNIT * n.div_ceil(SUM_UNIT * MAX_SUM_UNITS).max(1)
}

/// The run length `n` of a `reduce_sum` over `axes` of an array of dtype
/// `dtype` and dims `src`, when the sum is blocked (see the module doc).
pub fn blocked_run(dtype: DType, src: &[usize], axes: &[usize]) -> Option<usize> {
    if !dtype.is_float() {
        return None;
    }
    let n: usize = axes.iter().map(|&a| src[a]).product();
    let first_reduced = (0..src.len()).find(|&d| axes.contains(&d) && src[d] > 1)?;
    let kept_after = (first_reduced..src.len()).any(|d| !axes.contains(&d) && src[d] > 1);
    (n >= LONG_SUM && !kept_after).then_some(n)
}

/// The blocked sum of `run` (the module doc's order), for f32 and f64.
pub fn blocked_sum<T>(run: &[T], lanes: usize) -> T
where
    T: Copy + std::ops::Add<Output = T> + From<i8>,
{
    let zero = T::from(0);
    let mut total = zero;
    for unit in run.chunks(unit_len(run.len())) {
        let mut partials = vec![zero; lanes];
        for (k, &x) in unit.iter().enumerate() {
            partials[k % lanes] = partials[k % lanes] + x;
        }
        let mut h = lanes / 2;
        while h > 0 {
            for j in 0..h {
                partials[j] = partials[j] + partials[j + h];
            }
            h /= 2;
        }
        total = total + partials[0];
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runs_of_consecutive_reduced_elements_are_blocked() {
        assert_eq!(blocked_run(DType::F32, &[4096], &[0]), Some(4096));
        assert_eq!(blocked_run(DType::F32, &[4095], &[0]), None);
        assert_eq!(blocked_run(DType::I32, &[8192], &[0]), None);
        // Rows of a matrix, and size-1 dims anywhere.
        assert_eq!(blocked_run(DType::F64, &[3, 64, 64], &[1, 2]), Some(4096));
        assert_eq!(blocked_run(DType::F32, &[3, 64, 1, 64], &[1, 3]), Some(4096));
        assert_eq!(blocked_run(DType::F32, &[1, 8192, 1], &[0, 1]), Some(8192));
        // A kept dim after a reduced one: not consecutive.
        assert_eq!(blocked_run(DType::F32, &[8192, 3], &[0]), None);
        assert_eq!(blocked_run(DType::F32, &[64, 3, 64], &[0, 2]), None);
    }

    #[test]
    fn units_are_whole_granules_and_at_most_the_limit() {
        assert_eq!(unit_len(4096), 4096);
        assert_eq!(unit_len(SUM_UNIT * MAX_SUM_UNITS), 4096);
        assert_eq!(unit_len(SUM_UNIT * MAX_SUM_UNITS + 1), 8192);
        assert_eq!(unit_len(4 << 20), 16384);
        for n in [4096usize, 5000, 1 << 20, (1 << 20) + 1, 3 << 21, 10_000_019] {
            assert!(n.div_ceil(unit_len(n)) <= MAX_SUM_UNITS, "{n}");
        }
    }

    /// Cancellation shows the order: serially, 1 vanishes into 1e8 before
    /// -1e8 cancels it; blocked, 1e8 and -1e8 meet in lane 0 while the 1
    /// waits in lane 1.
    #[test]
    fn the_order_is_lanes_then_halving_then_units() {
        let mut run = vec![0.0f32; 4096];
        run[0] = 1e8;
        run[16] = -1e8;
        run[1] = 1.0;
        assert_eq!(run.iter().fold(0.0f32, |a, &x| a + x), 0.0);
        assert_eq!(blocked_sum(&run, 16), 1.0);
        // Halving: lane 8 meets lane 0 first (1e8 + -1e8 = 0), then lane 4.
        let mut run = vec![0.0f32; 4096];
        run[0] = 1e8;
        run[8] = -1e8;
        run[4] = 1.0;
        assert_eq!(blocked_sum(&run, 16), 1.0);
        let mut run = vec![0.0f32; 4096];
        run[0] = 1e8;
        run[4] = -1e8;
        run[8] = 1.0;
        // (1e8 + 1) + -1e8 = 0: lane 8 joins lane 0 before lane 4 does.
        assert_eq!(blocked_sum(&run, 16), 0.0);
        // Units: each unit's sum is exact here, then added in unit order.
        let mut run = vec![0.0f32; 3 * 4096];
        run[0] = 1e8;
        run[4096] = 1.0;
        run[2 * 4096] = -1e8;
        assert_eq!(blocked_sum(&run, 16), 0.0);
        let mut run = vec![0.0f32; 3 * 4096];
        run[0] = 1e8;
        run[4096] = -1e8;
        run[2 * 4096] = 1.0;
        assert_eq!(blocked_sum(&run, 16), 1.0);
    }

    #[test]
    fn blocked_sums_stay_within_the_serial_bound() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        };
        for n in [4096, 4111, 12_345, (1 << 20) + 7] {
            let values: Vec<f32> = (0..n).map(|_| next() as f32).collect();
            let exact: f64 = values.iter().map(|&x| x as f64).sum();
            let abs: f64 = values.iter().map(|&x| (x as f64).abs()).sum();
            let got = blocked_sum(&values, 16) as f64;
            // Each element passes through at most unit/lanes + log2(lanes) + units adds.
            let depth = (unit_len(n) / 16 + 4 + n.div_ceil(unit_len(n))) as f64;
            assert!((got - exact).abs() <= depth * f32::EPSILON as f64 * abs, "{n}: {got} vs {exact}");
        }
    }
}
