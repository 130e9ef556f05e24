//! One Jacobian-vector product rule per primitive: given an instruction's
//! operands, primal result and operand tangents, emit IR (into a `Builder`)
//! for the tangent of its result.
//!
//! Notation as in `vjp_rules.rs`: `x`, `y` operands, `z` the primal result,
//! `dx`, `dy` their tangents (`None` = zero, not materialised). Each rule is
//! the transpose of the matching VJP rule, with the same tie choices
//! (Note [Ties] in `vjp_rules.rs`).

use super::vjp_rules::reduce_max_mask;
use super::window_rules;
use crate::ir::{Builder, Op, ValueId};

/// Tangent of `z = op(args)` given operand tangents `ts` (`None` = zero).
/// Returns `None` when the result has no tangent (piecewise constant, or all
/// operand tangents are zero).
pub(super) fn jvp(b: &mut Builder, op: &Op, args: &[ValueId], z: ValueId, ts: &[Option<ValueId>]) -> Option<ValueId> {
    let ty = b.ty(z).clone();
    // Unary rules read the single operand tangent.
    let t0 = ts.first().copied().flatten();
    match op {
        // Leaves have no operands; their tangent is zero (Param tangents are
        // supplied by `forward.rs`, not by a rule).
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => None,

        // d(-x) = -dx
        Op::Neg => Some(b.neg(t0?)),
        // d exp(x) = z dx
        Op::Exp => Some(b.mul(t0?, z)),
        // d log(x) = dx / x
        Op::Log => Some(b.div(t0?, args[0])),
        // d tanh(x) = (1 - z^2) dx
        Op::Tanh => {
            let t = t0?;
            let one = b.full(1.0, &ty);
            let z2 = b.mul(z, z);
            let slope = b.sub(one, z2);
            Some(b.mul(t, slope))
        }
        // d sqrt(x) = dx / (2 z)
        Op::Sqrt => {
            let t = t0?;
            let two = b.full(2.0, &ty);
            let denom = b.mul(two, z);
            Some(b.div(t, denom))
        }

        // d log1p(x) = dx / (1 + x)
        Op::Log1p => {
            let t = t0?;
            let one = b.full(1.0, &ty);
            let denom = b.add(one, args[0]);
            Some(b.div(t, denom))
        }
        // d expm1(x) = (z + 1) dx
        Op::Expm1 => {
            let t = t0?;
            let one = b.full(1.0, &ty);
            let slope = b.add(z, one);
            Some(b.mul(t, slope))
        }
        // d logistic(x) = z (1 - z) dx
        Op::Logistic => {
            let t = t0?;
            let one = b.full(1.0, &ty);
            let one_minus_z = b.sub(one, z);
            let slope = b.mul(z, one_minus_z);
            Some(b.mul(t, slope))
        }
        // d sin(x) = cos(x) dx
        Op::Sin => {
            let t = t0?;
            let slope = b.unary(Op::Cos, args[0]);
            Some(b.mul(t, slope))
        }
        // d cos(x) = -sin(x) dx
        Op::Cos => {
            let t = t0?;
            let s = b.unary(Op::Sin, args[0]);
            let slope = b.neg(s);
            Some(b.mul(t, slope))
        }
        // d x^(-1/2) = (-1/2) (z / x) dx
        Op::Rsqrt => {
            let t = t0?;
            let minus_half = b.full(-0.5, &ty);
            let z_over_x = b.div(z, args[0]);
            let slope = b.mul(minus_half, z_over_x);
            Some(b.mul(t, slope))
        }
        // d erf(x) = 2/sqrt(pi) exp(-x^2) dx
        Op::Erf => {
            let t = t0?;
            let x2 = b.mul(args[0], args[0]);
            let neg_x2 = b.neg(x2);
            let e = b.unary(Op::Exp, neg_x2);
            let scale = b.full(std::f64::consts::FRAC_2_SQRT_PI, &ty);
            let slope = b.mul(scale, e);
            Some(b.mul(t, slope))
        }
        // d |x| = sign(x) dx
        Op::Abs => {
            let t = t0?;
            let slope = b.unary(Op::Sign, args[0]);
            Some(b.mul(t, slope))
        }
        // Zero tangent: sign and the roundings are piecewise constant,
        // stop_gradient is defined so, argmax is an integer.
        Op::Sign | Op::Floor | Op::Ceil | Op::Round | Op::StopGradient | Op::ArgMax { .. } => None,
        // Linear: d slice(x) = slice(dx), d pad(x) = pad(dx) (padding is a
        // constant zero), d concat(x, y) = concat(dx, dy).
        Op::Slice { start, limit, stride } => Some(b.slice(t0?, start.clone(), limit.clone(), stride.clone())),
        Op::Pad { low, high, interior } => Some(b.pad(t0?, low.clone(), high.clone(), interior.clone())),
        Op::Concat { axis } => {
            let pieces: Vec<ValueId> = args
                .iter()
                .zip(ts)
                .map(|(&a, t)| {
                    t.unwrap_or_else(|| {
                        let ty = b.ty(a).clone();
                        b.full(0.0, &ty)
                    })
                })
                .collect();
            Some(b.concat(pieces, *axis))
        }
        // Linear: d reverse(x) = reverse(dx), d window_sum(x) = window_sum(dx).
        Op::Reverse { dims } => Some(b.reverse(t0?, dims.clone())),
        // A scan of the body's JVP (see `scan_rules`).
        Op::Scan(s) => super::scan_rules::jvp(b, s, args, ts),
        Op::CustomVjp(c) => super::custom_vjp_rules::jvp(b, c, args, ts),
        Op::ReduceWindowSum(w) => Some(b.reduce_window(t0?, w.clone(), false)),
        // The tangent of each window's first maximum (see `window_rules`).
        Op::ReduceWindowMax(w) => Some(window_rules::reduce_window_max_jvp(b, w, args[0], z, t0?)),
        // Linear in `ct`, piecewise constant in `x`.
        Op::SelectAndScatter(w) => Some(b.select_and_scatter(args[0], ts[1]?, w.clone())),
        // Bilinear: d conv(x, w) = conv(dx, w) + conv(x, dw).
        Op::Conv2d(a) => window_rules::conv2d_jvp(b, a, args[0], args[1], ts[0], ts[1]),

        // d(x + y) = dx + dy
        Op::Add => sum(b, ts[0], ts[1]),
        // d(x - y) = dx - dy
        Op::Sub => {
            let neg_dy = ts[1].map(|t| b.neg(t));
            sum(b, ts[0], neg_dy)
        }
        // d(x * y) = y dx + x dy
        Op::Mul => {
            let a = ts[0].map(|t| b.mul(t, args[1]));
            let c = ts[1].map(|t| b.mul(args[0], t));
            sum(b, a, c)
        }
        // d(x / y) = dx / y - (z / y) dy
        Op::Div => {
            let a = ts[0].map(|t| b.div(t, args[1]));
            let c = ts[1].map(|t| {
                let tz = b.mul(t, z);
                let q = b.div(tz, args[1]);
                b.neg(q)
            });
            sum(b, a, c)
        }
        // d max(x, y) = select(x >= y, dx, dy)
        Op::Max => select_branch(b, Op::Ge, args, ts),
        // d min(x, y) = select(x <= y, dx, dy)
        Op::Min => select_branch(b, Op::Le, args, ts),
        // d x^y = y x^(y-1) dx + log(x) z dy (`pow_slopes`)
        Op::Pow => {
            let a = ts[0].map(|t| {
                let slope = super::pow_slopes::dx(b, args[0], args[1], &ty);
                b.mul(t, slope)
            });
            let c = ts[1].map(|t| {
                let slope = super::pow_slopes::dy(b, args[0], z, &ty);
                b.mul(t, slope)
            });
            sum(b, a, c)
        }

        // Comparisons are piecewise constant: zero tangent.
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => None,

        // d select(c, x, y) = select(c, dx, dy)
        Op::Select => {
            if ts[1].is_none() && ts[2].is_none() {
                return None;
            }
            let dx = ts[1].unwrap_or_else(|| b.full(0.0, &ty));
            let dy = ts[2].unwrap_or_else(|| b.full(0.0, &ty));
            Some(b.select(args[0], dx, dy))
        }
        // float -> float: d convert(x) = convert(dx); from int/bool: zero.
        Op::Convert => {
            let t = t0?;
            ty.dtype.is_float().then(|| b.convert(t, ty.dtype))
        }
        // Linear ops map the tangent exactly as they map the primal.
        // d broadcast(x) = broadcast(dx)
        Op::Broadcast { dims } => Some(b.broadcast(t0?, &ty.shape, dims.clone())),
        // d reshape(x) = reshape(dx)
        Op::Reshape => Some(b.reshape(t0?, &ty.shape)),
        // d transpose(x) = transpose(dx)
        Op::Transpose { perm } => Some(b.transpose(t0?, perm.clone())),
        // d sum_axes(x) = sum_axes(dx)
        Op::ReduceSum { axes } => Some(b.reduce_sum(t0?, axes.clone())),
        // d max_axes(x) = sum_axes(m dx) / sum_axes(m), m = (x == broadcast(z));
        // the same for min.
        Op::ReduceMax { axes } | Op::ReduceMin { axes } => {
            let t = t0?;
            let mask = reduce_max_mask(b, args[0], z, axes);
            let picked = b.mul(t, mask);
            let total = b.reduce_sum(picked, axes.clone());
            let count = b.reduce_sum(mask, axes.clone());
            Some(b.div(total, count))
        }
        // d(x @ y) = dx @ y + x @ dy
        Op::MatMul => {
            let a = ts[0].map(|t| b.matmul(t, args[1]));
            let c = ts[1].map(|t| b.matmul(args[0], t));
            sum(b, a, c)
        }
        // Linear in the data operand; the indices are integers.
        // d gather(x, i) = gather(dx, i)
        Op::Gather => Some(b.gather(t0?, args[1])),
        // d scatter_add(u, i) = scatter_add(du, i)
        Op::ScatterAdd => {
            let rows = ty.shape.0[0];
            Some(b.scatter_add(t0?, args[1], rows))
        }
        // d(x @ y) = dx @ y + x @ dy, per batch element.
        Op::BatchMatMul => {
            let a = ts[0].map(|t| b.batch_matmul(t, args[1]));
            let c = ts[1].map(|t| b.batch_matmul(args[0], t));
            sum(b, a, c)
        }
        // Functions of an integer key: zero tangent.
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => None,
    }
}

/// `a + c`, where `None` is zero.
fn sum(b: &mut Builder, a: Option<ValueId>, c: Option<ValueId>) -> Option<ValueId> {
    match (a, c) {
        (Some(a), Some(c)) => Some(b.add(a, c)),
        (a, c) => a.or(c),
    }
}

/// Tangent of `max`/`min`: `dx` where `cmp(x, y)` holds, else `dy`.
fn select_branch(b: &mut Builder, cmp: Op, args: &[ValueId], ts: &[Option<ValueId>]) -> Option<ValueId> {
    if ts[0].is_none() && ts[1].is_none() {
        return None;
    }
    let ty = b.ty(args[0]).clone();
    let picks_x = b.binary(cmp, args[0], args[1]);
    let dx = ts[0].unwrap_or_else(|| b.full(0.0, &ty));
    let dy = ts[1].unwrap_or_else(|| b.full(0.0, &ty));
    Some(b.select(picks_x, dx, dy))
}
