//! Host kernels of the CPU backend that are too hot to build unoptimized:
//! window reductions (pooling) and im2col for convolutions.
//!
//! Consumes plain slices and shapes; produces filled output slices. The
//! definitions of the ops live in `compiler::ir::interp_window` (the
//! reference interpreter); these are faster loops with the same element
//! order, tested bitwise against it in `compiler::codegen::tests`. A crate of
//! its own so that the workspace manifest can build it at opt-level 3 in the
//! dev profile (`[profile.dev.package.kernels]`) without slowing the
//! `compiler` crate's builds.

mod im2col;
mod window;

pub use im2col::{im2col, im2col_transposed};
pub use window::reduce_window;

/// The element arithmetic the kernels need, for f32 and f64.
pub trait Elem: Copy + std::ops::Add<Output = Self> {
    const ZERO: Self;
    const NEG_INFINITY: Self;
    /// NaN-propagating maximum with -0 < +0 (the interpreter's `Op::Max`).
    fn max_op(self, other: Self) -> Self;
}

/// `Op::Max` on f64 (`compiler::ir::interp::fmax`).
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

impl Elem for f32 {
    const ZERO: f32 = 0.0;
    const NEG_INFINITY: f32 = f32::NEG_INFINITY;
    fn max_op(self, other: f32) -> f32 {
        fmax(self as f64, other as f64) as f32
    }
}

impl Elem for f64 {
    const ZERO: f64 = 0.0;
    const NEG_INFINITY: f64 = f64::NEG_INFINITY;
    fn max_op(self, other: f64) -> f64 {
        fmax(self, other)
    }
}
