//! The slopes of `x^y`, shared by the forward and reverse rules: `y x^(y-1)`
//! in x and `log(x) x^y` in y, each 0 where JAX's is (`jax.lax.pow`'s JVP):
//! at y = 0 the x-slope is 0 (`0 * 0^-1` was NaN for `x ^ 0` at x = 0, and
//! so a polynomial's gradient at 0), and at x = 0 the y-slope is 0 (`log(0) *
//! 0^y` was NaN: a learnable exponent over ReLU outputs). Elsewhere the
//! formulas are unchanged (a negative x still has a NaN y-slope, as in JAX).

use crate::ir::{Builder, Op, Type, ValueId};

/// `y x^(y-1)`, 0 where y = 0.
pub(super) fn dx(b: &mut Builder, x: ValueId, y: ValueId, ty: &Type) -> ValueId {
    let (zero, one) = (b.full(0.0, ty), b.full(1.0, ty));
    let y_minus_1 = b.sub(y, one);
    let p = b.binary(Op::Pow, x, y_minus_1);
    let slope = b.mul(y, p);
    let y_is_0 = b.binary(Op::Eq, y, zero);
    b.select(y_is_0, zero, slope)
}

/// `log(x) z` for `z = x^y`, 0 where x = 0 (log reads 1 there, as JAX's
/// `_replace_zero`).
pub(super) fn dy(b: &mut Builder, x: ValueId, z: ValueId, ty: &Type) -> ValueId {
    let (zero, one) = (b.full(0.0, ty), b.full(1.0, ty));
    let x_is_0 = b.binary(Op::Eq, x, zero);
    let safe_x = b.select(x_is_0, one, x);
    let log_x = b.unary(Op::Log, safe_x);
    b.mul(log_x, z)
}
