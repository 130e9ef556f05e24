//! One vector-Jacobian product rule per primitive: given an instruction's
//! operands, primal result and result cotangent, emit IR (into a `Builder`)
//! for the cotangents of its operands.
//!
//! Each rule carries its math; `x`, `y` for operands, `z` for the primal
//! result, `ct` for the result's cotangent. A rule emits only the operand
//! cotangents that `needs` asks for, so that no gradient w.r.t. data is built.
//! `jvp_rules.rs` holds the matching tangent rules; each VJP rule is the
//! transpose of its JVP rule (tested to 1e-12 in `tests.rs`).

use super::window_rules;
use crate::ir::{Builder, DType, Op, ValueId};

/// The cotangents of one instruction's operands, one entry per operand.
/// `None` means "no gradient flows there" (or it was not needed).
pub(super) type ArgCts = Vec<Option<ValueId>>;

/// The operand cotangents of a multi-result op (scan, custom_vjp) given
/// the cotangents `seeds` of several of its results (`(result, ct)`): one
/// rule for the whole group of sibling instructions (Note [Sibling
/// cotangents] in `reverse.rs`).
pub(super) fn vjp_group(
    b: &mut Builder,
    op: &Op,
    args: &[ValueId],
    seeds: &[(usize, ValueId)],
    needs: &[bool],
) -> ArgCts {
    match op {
        Op::Scan(s) => super::scan_rules::vjp(b, s, args, seeds, needs),
        Op::CustomVjp(c) => super::custom_vjp_rules::vjp(b, c, args, seeds, needs),
        other => unreachable!("{other:?} has one result"),
    }
}

/// Vector-Jacobian product of one instruction `z = op(args)`.
/// `needs[k]` says whether operand `k` needs a cotangent.
pub(super) fn vjp(b: &mut Builder, op: &Op, args: &[ValueId], z: ValueId, ct: ValueId, needs: &[bool]) -> ArgCts {
    let need = |k: usize| needs[k];
    let ty = b.ty(z).clone();
    match op {
        // Leaves: nothing upstream.
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => vec![],

        // d(-x) = -dx
        Op::Neg => vec![Some(b.neg(ct))],
        // d exp(x) = exp(x) dx; reuse the primal result z = exp(x).
        Op::Exp => vec![Some(b.mul(ct, z))],
        // d log(x) = dx / x
        Op::Log => vec![Some(b.div(ct, args[0]))],
        // d tanh(x) = (1 - z^2) dx
        Op::Tanh => {
            let one = b.full(1.0, &ty);
            let z2 = b.mul(z, z);
            let slope = b.sub(one, z2);
            vec![Some(b.mul(ct, slope))]
        }
        // d sqrt(x) = dx / (2 z)
        Op::Sqrt => {
            let two = b.full(2.0, &ty);
            let denom = b.mul(two, z);
            vec![Some(b.div(ct, denom))]
        }

        // d log1p(x) = dx / (1 + x)
        Op::Log1p => {
            let one = b.full(1.0, &ty);
            let denom = b.add(one, args[0]);
            vec![Some(b.div(ct, denom))]
        }
        // d expm1(x) = exp(x) dx = (z + 1) dx
        Op::Expm1 => {
            let one = b.full(1.0, &ty);
            let slope = b.add(z, one);
            vec![Some(b.mul(ct, slope))]
        }
        // d logistic(x) = z (1 - z) dx
        Op::Logistic => {
            let one = b.full(1.0, &ty);
            let one_minus_z = b.sub(one, z);
            let slope = b.mul(z, one_minus_z);
            vec![Some(b.mul(ct, slope))]
        }
        // d sin(x) = cos(x) dx
        Op::Sin => {
            let slope = b.unary(Op::Cos, args[0]);
            vec![Some(b.mul(ct, slope))]
        }
        // d cos(x) = -sin(x) dx
        Op::Cos => {
            let s = b.unary(Op::Sin, args[0]);
            let slope = b.neg(s);
            vec![Some(b.mul(ct, slope))]
        }
        // d x^(-1/2) = -1/2 x^(-3/2) dx = (-1/2) (z / x) dx
        Op::Rsqrt => {
            let minus_half = b.full(-0.5, &ty);
            let z_over_x = b.div(z, args[0]);
            let slope = b.mul(minus_half, z_over_x);
            vec![Some(b.mul(ct, slope))]
        }
        // d erf(x) = 2/sqrt(pi) exp(-x^2) dx
        Op::Erf => {
            let x2 = b.mul(args[0], args[0]);
            let neg_x2 = b.neg(x2);
            let e = b.unary(Op::Exp, neg_x2);
            let scale = b.full(std::f64::consts::FRAC_2_SQRT_PI, &ty);
            let slope = b.mul(scale, e);
            vec![Some(b.mul(ct, slope))]
        }
        // d |x| = sign(x) dx (0 at x = 0: the subgradient of least norm)
        Op::Abs => {
            let slope = b.unary(Op::Sign, args[0]);
            vec![Some(b.mul(ct, slope))]
        }
        // sign and the roundings are piecewise constant, and stop_gradient
        // is defined to have zero derivative: no gradient (as JAX's).
        Op::Sign | Op::Floor | Op::Ceil | Op::Round | Op::StopGradient => vec![None],
        // argmax yields an i32: piecewise constant.
        Op::ArgMax { .. } => vec![None],
        // Slice picks elements; its adjoint puts the cotangent back in place
        // and zeros elsewhere: pad(ct, low = start, interior = stride - 1,
        // high = dim - (start + (n - 1) stride + 1)), or everything low-padded
        // when the slice is empty along some dim.
        Op::Slice { start, stride, .. } => {
            let src = b.ty(args[0]).shape.clone();
            let mut low = start.clone();
            let mut high = Vec::with_capacity(src.rank());
            let mut interior = Vec::with_capacity(src.rank());
            for d in 0..src.rank() {
                let n = ty.shape.0[d];
                interior.push(if n > 1 { stride[d] - 1 } else { 0 });
                let used = if n == 0 { 0 } else { start[d] + (n - 1) * stride[d] + 1 };
                if n == 0 {
                    low[d] = 0;
                }
                high.push(src.0[d] - used.max(low[d]));
            }
            vec![Some(b.pad(ct, low, high, interior))]
        }
        // Pad's adjoint reads the operand's positions back out of ct:
        // slice(ct, start = low, stride = interior + 1).
        Op::Pad { low, interior, .. } => {
            let src = b.ty(args[0]).shape.clone();
            let stride: Vec<usize> = interior.iter().map(|i| i + 1).collect();
            let limit: Vec<usize> = (0..src.rank())
                .map(|d| if src.0[d] == 0 { low[d] } else { low[d] + (src.0[d] - 1) * stride[d] + 1 })
                .collect();
            vec![Some(b.slice(ct, low.clone(), limit, stride))]
        }
        // Concat's adjoint cuts ct into the operands' pieces along the axis.
        Op::Concat { axis } => {
            let mut offset = 0;
            let mut cts = Vec::with_capacity(args.len());
            for (k, &a) in args.iter().enumerate() {
                let shape = b.ty(a).shape.clone();
                let mut start = vec![0; shape.rank()];
                let mut limit = shape.0.clone();
                start[*axis] = offset;
                limit[*axis] = offset + shape.0[*axis];
                offset = limit[*axis];
                let stride = vec![1; shape.rank()];
                cts.push(need(k).then(|| b.slice(ct, start, limit, stride)));
            }
            cts
        }
        // Reversal is its own transpose.
        Op::Reverse { dims } => vec![Some(b.reverse(ct, dims.clone()))],
        // A reverse scan of the body's VJP over stored carries (see `scan_rules`).
        Op::Scan(s) => super::scan_rules::vjp(b, s, args, &[(s.output, ct)], needs),
        // The user's rule: `fwd` then `bwd`, inline.
        Op::CustomVjp(c) => super::custom_vjp_rules::vjp(b, c, args, &[(c.output, ct)], needs),
        // Transposes of the windowed ops: convs and window sums again, and the
        // first-max scatter; the math is in `window_rules`.
        Op::Conv2d(a) => window_rules::conv2d_vjp(b, a, args[0], args[1], ct, needs),
        Op::ReduceWindowSum(w) => {
            let src = b.ty(args[0]).shape.clone();
            vec![Some(window_rules::reduce_window_sum_vjp(b, w, &src, ct))]
        }
        // One pass: each window's cotangent to its first maximum.
        Op::ReduceWindowMax(w) => vec![Some(b.select_and_scatter(args[0], ct, w.clone()))],
        // Piecewise constant in `x`; linear in `ct`, whose transpose reads
        // each window's first maximum (the max pool's tangent rule).
        Op::SelectAndScatter(w) => {
            let dct = need(1).then(|| window_rules::reduce_window_max_jvp(b, w, args[0], args[1], ct));
            vec![None, dct]
        }

        // d(x + y) = dx + dy
        Op::Add => vec![need(0).then_some(ct), need(1).then_some(ct)],
        // d(x - y) = dx - dy
        Op::Sub => vec![need(0).then_some(ct), need(1).then(|| b.neg(ct))],
        // d(x * y) = y dx + x dy
        Op::Mul => {
            let dx = need(0).then(|| b.mul(ct, args[1]));
            let dy = need(1).then(|| b.mul(ct, args[0]));
            vec![dx, dy]
        }
        // d(x / y) = dx / y - (z / y) dy, with z = x / y.
        Op::Div => {
            let dx = need(0).then(|| b.div(ct, args[1]));
            let dy = need(1).then(|| {
                let ct_z = b.mul(ct, z);
                let q = b.div(ct_z, args[1]);
                b.neg(q)
            });
            vec![dx, dy]
        }
        // d max(x, y) = dx where x >= y, else dy. Ties (x == y) send the whole
        // cotangent to x, the left operand. See Note [Ties].
        Op::Max => select_branch_cts(b, Op::Ge, args, ct, needs),
        // d min(x, y) = dx where x <= y, else dy. Ties go to x, as for max.
        Op::Min => select_branch_cts(b, Op::Le, args, ct, needs),
        // d x^y = y x^(y-1) dx + log(x) x^y dy, each slope 0 where JAX's is
        // (`pow_slopes`). The dy term is built only when y needs a gradient
        // (a constant exponent is common).
        Op::Pow => {
            let dx = need(0).then(|| {
                let slope = super::pow_slopes::dx(b, args[0], args[1], &ty);
                b.mul(ct, slope)
            });
            let dy = need(1).then(|| {
                let slope = super::pow_slopes::dy(b, args[0], z, &ty);
                b.mul(ct, slope)
            });
            vec![dx, dy]
        }

        // Comparisons are piecewise constant: no gradient.
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => vec![None, None],

        // d select(c, x, y) = select(c, dx, dy); c is bool and gets nothing.
        Op::Select => {
            let zeros = b.full(0.0, &ty);
            let dx = need(1).then(|| b.select(args[0], ct, zeros));
            let dy = need(2).then(|| b.select(args[0], zeros, ct));
            vec![None, dx, dy]
        }
        // float -> float: d convert(x) = convert(dx), so the cotangent converts
        // back. From int/bool the result is piecewise constant: no gradient.
        Op::Convert => {
            let src = b.ty(args[0]).dtype;
            vec![(src.is_float() && need(0)).then(|| b.convert(ct, src))]
        }
        // Broadcast copies each operand element to many result elements, so
        // the adjoint sums them: over new dims and over size-1 dims that were
        // expanded, then reshapes to restore the size-1 dims.
        Op::Broadcast { dims } => {
            let src = b.ty(args[0]).shape.clone();
            let mut axes: Vec<usize> = (0..ty.shape.rank()).filter(|d| !dims.contains(d)).collect();
            for (i, &d) in dims.iter().enumerate() {
                if src.0[i] == 1 && ty.shape.0[d] != 1 {
                    axes.push(d);
                }
            }
            axes.sort_unstable();
            let summed = b.reduce_sum(ct, axes);
            vec![Some(b.reshape(summed, &src))]
        }
        // Reshape moves no element: reshape the cotangent back.
        Op::Reshape => {
            let src = b.ty(args[0]).shape.clone();
            vec![Some(b.reshape(ct, &src))]
        }
        // Transpose by `perm` is undone by the inverse permutation:
        // inv[perm[i]] = i.
        Op::Transpose { perm } => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            vec![Some(b.transpose(ct, inv))]
        }
        // d sum_axes(x) = sum_axes(dx): every summed element gets the cotangent
        // of its sum, i.e. broadcast back along the reduced axes.
        Op::ReduceSum { axes } => {
            let src = b.ty(args[0]).shape.clone();
            let kept = kept_dims(src.rank(), axes);
            vec![Some(b.broadcast(ct, &src, kept))]
        }
        // d max_axes(x) = sum_axes(m dx) / sum_axes(m), m = (x == broadcast(z)):
        // the cotangent goes to the positions holding the max, split evenly
        // among ties. See Note [Ties]. The same for min (the mask compares
        // with the result z, whichever extreme it is).
        Op::ReduceMax { axes } | Op::ReduceMin { axes } => {
            let src = b.ty(args[0]).shape.clone();
            let mask = reduce_max_mask(b, args[0], z, axes);
            let count = b.reduce_sum(mask, axes.clone());
            let share = b.div(ct, count);
            let kept = kept_dims(src.rank(), axes);
            let share_b = b.broadcast(share, &src, kept);
            vec![Some(b.mul(share_b, mask))]
        }
        // d(x @ y) = dx @ y + x @ dy, so ct_x = ct @ y^T and ct_y = x^T @ ct.
        Op::MatMul => {
            let dx = need(0).then(|| {
                let y_t = b.transpose(args[1], vec![1, 0]);
                b.matmul(ct, y_t)
            });
            let dy = need(1).then(|| {
                let x_t = b.transpose(args[0], vec![1, 0]);
                b.matmul(x_t, ct)
            });
            vec![dx, dy]
        }
        // gather(x, i) is linear in x, a row selection G: ct_x = G^T ct adds
        // each cotangent row into the (clamped) row it was read from, which is
        // scatter_add(ct, i). Indices are integers: no cotangent.
        Op::Gather => {
            let rows = b.ty(args[0]).shape.0[0];
            vec![need(0).then(|| b.scatter_add(ct, args[1], rows)), None]
        }
        // scatter_add(u, i) = G^T u, so ct_u = G ct = gather(ct, i).
        Op::ScatterAdd => vec![need(0).then(|| b.gather(ct, args[1])), None],
        // As `MatMul`, per batch element: ct_x = ct @ y^T, ct_y = x^T @ ct.
        Op::BatchMatMul => {
            let dx = need(0).then(|| {
                let y_t = b.transpose_last2(args[1]);
                b.batch_matmul(ct, y_t)
            });
            let dy = need(1).then(|| {
                let x_t = b.transpose_last2(args[0]);
                b.batch_matmul(x_t, ct)
            });
            vec![dx, dy]
        }
        // The key is an integer: random values are constants to autodiff.
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => vec![None],
    }
}

/// Cotangents for `max`/`min`: the whole `ct` goes to `x` where `cmp(x, y)`
/// holds and to `y` elsewhere.
fn select_branch_cts(b: &mut Builder, cmp: Op, args: &[ValueId], ct: ValueId, needs: &[bool]) -> ArgCts {
    let ty = b.ty(ct).clone();
    let picks_x = b.binary(cmp, args[0], args[1]);
    let zeros = b.full(0.0, &ty);
    let dx = needs[0].then(|| b.select(picks_x, ct, zeros));
    let dy = needs[1].then(|| b.select(picks_x, zeros, ct));
    vec![dx, dy]
}

/// The operand dims that a reduction over `axes` keeps, in order.
pub(super) fn kept_dims(rank: usize, axes: &[usize]) -> Vec<usize> {
    (0..rank).filter(|d| !axes.contains(d)).collect()
}

/// `convert(x == broadcast(z), float)`: 1 where `x` holds the reduced max `z`.
pub(super) fn reduce_max_mask(b: &mut Builder, x: ValueId, z: ValueId, axes: &[usize]) -> ValueId {
    let ty = b.ty(x).clone();
    let kept = kept_dims(ty.shape.rank(), axes);
    let z_b = b.broadcast(z, &ty.shape, kept);
    let hit = b.binary(Op::Eq, x, z_b);
    debug_assert!(ty.dtype != DType::Bool);
    b.convert(hit, ty.dtype)
}

// Note [Ties]
// ~~~~~~~~~~~
// max/min are not differentiable where the operands are equal; any convex
// combination of the one-sided derivatives is a valid subgradient.
// - Binary `max(x, y)` / `min(x, y)`: the tie goes wholly to the left operand
//   `x` (`x >= y` for max, `x <= y` for min). So `max(x, x)` has gradient 1
//   w.r.t. x, as the total derivative should. A NaN operand makes the
//   comparison false, sending the cotangent to `y`.
// - `reduce_max`: the cotangent is split evenly among all positions equal to
//   the max (as JAX does), so the weights sum to 1 and the gradient does not
//   depend on element order.
// The JVP rules make the same choices, so JVP and VJP stay exact transposes.
