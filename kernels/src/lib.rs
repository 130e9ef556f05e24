//! Host kernels of the CPU backend that are too hot to build unoptimized:
//! window reductions (pooling), max pooling's backward, im2col for
//! convolutions, Winograd's transforms for 3x3 convolutions, and the GEMM
//! driver around `gemm`'s microkernels.
//!
//! Consumes plain slices and shapes; produces filled output slices. The
//! definitions of the ops live in `compiler::ir::interp_window` (the
//! reference interpreter); these are faster loops with the same element
//! order, tested bitwise against it in `compiler::codegen::tests`. A crate of
//! its own so that the workspace manifest can build it at opt-level 3 in the
//! dev profile (`[profile.dev.package.kernels]`) without slowing the
//! `compiler` crate's builds.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod gemm;
mod im2col;
#[cfg(target_arch = "x86_64")]
mod sse2;
mod window;
mod winograd;

pub use im2col::{col2im_sum, im2col, im2col_strided, im2col_transposed};
pub use window::{reduce_window, select_and_scatter};
pub use winograd::{WinogradConv, TILE_POSITIONS};

/// Only f32 and f64 are `Elem`s: the kernels take a 4-byte `Elem` for f32
/// when they pick their AVX-512 versions.
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The element arithmetic the kernels need, for f32 and f64 (sealed: no
/// other type can implement it).
pub trait Elem:
    sealed::Sealed + Copy + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const HALF: Self;
    const NEG_INFINITY: Self;
    /// NaN-propagating maximum with -0 < +0 (the interpreter's `Op::Max`,
    /// `compiler::ir::interp::fmax`).
    fn max_op(self, other: Self) -> Self;
    /// Whether `self` replaces `best` as a running first maximum (the
    /// interpreter's `ArgMax`): larger, or NaN over a non-NaN.
    fn beats(self, best: Self) -> bool;
    /// Whether `self` is a window's maximum `m` as `max_op` computed it
    /// (equal, or both NaN).
    fn is_max_of(self, m: Self) -> bool;
    /// One row of 2 x 2 max-pooling windows' backward (see
    /// `window::scatter_2x2`); f32 has SSE2 and AVX-512 versions.
    fn scatter_row_2x2(r0: &[Self], r1: &[Self], g: &[Self], o0: &mut [Self], o1: &mut [Self]) {
        window::scatter_row_2x2_scalar(r0, r1, g, o0, o1);
    }
}

impl Elem for f32 {
    const ZERO: f32 = 0.0;
    const HALF: f32 = 0.5;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    /// `fmax` without branches (pooling compares data-dependent values, so
    /// branches mispredict): the larger, the AND of the bits when equal
    /// (+0 for ±0, else the value itself), NaN if either is NaN.
    fn max_op(self, other: f32) -> f32 {
        let (a, b) = (self, other);
        let larger = if a > b { a } else { b };
        let equal = f32::from_bits(a.to_bits() & b.to_bits());
        let res = if a == b { equal } else { larger };
        if a.is_nan() | b.is_nan() {
            f32::NAN
        } else {
            res
        }
    }
    fn beats(self, best: f32) -> bool {
        (self > best) | (self.is_nan() & !best.is_nan())
    }
    fn is_max_of(self, m: f32) -> bool {
        (self == m) | (self.is_nan() & m.is_nan())
    }
    #[cfg(target_arch = "x86_64")]
    fn scatter_row_2x2(r0: &[f32], r1: &[f32], g: &[f32], o0: &mut [f32], o1: &mut [f32]) {
        if avx512::available() {
            // Safety: the CPU has AVX-512F.
            unsafe { avx512::scatter_row_2x2(r0, r1, g, o0, o1) }
        } else {
            sse2::scatter_row_2x2(r0, r1, g, o0, o1);
        }
    }
}

impl Elem for f64 {
    const ZERO: f64 = 0.0;
    const HALF: f64 = 0.5;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    fn max_op(self, other: f64) -> f64 {
        let (a, b) = (self, other);
        let larger = if a > b { a } else { b };
        let equal = f64::from_bits(a.to_bits() & b.to_bits());
        let res = if a == b { equal } else { larger };
        if a.is_nan() | b.is_nan() {
            f64::NAN
        } else {
            res
        }
    }
    fn beats(self, best: f64) -> bool {
        (self > best) | (self.is_nan() & !best.is_nan())
    }
    fn is_max_of(self, m: f64) -> bool {
        (self == m) | (self.is_nan() & m.is_nan())
    }
}

#[cfg(test)]
mod tests;
