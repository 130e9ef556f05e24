//! How closely a float32 program follows the same program in float64: a
//! bound per op on its *local* error, the difference between an op's f32
//! result and the f64 op applied to the same (f32) operands. Errors of a
//! whole program compound from these (and can grow without bound through
//! cancellation, as in any float arithmetic), so the per-op bound is what
//! is documented (docs/numerics.md) and tested here, on every op of
//! thousands of random float32 programs, in the reference interpreter.
//!
//! `ulp(y)` is the spacing of f32 values at `y` (the f64 result rounded to
//! f32), `eps = 2^-24`.

use super::{Builder, DType, Func, Inst, Op, Tensor, Type};

/// The bound on `|f32 result - f64 result|` of one op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    /// The f32 result is the f64 result rounded to f32: data movement,
    /// comparisons, selections, max/min, negation, and the correctly
    /// rounded `+ - * /` and `sqrt`.
    Exact,
    /// Within `n` ulps of the f64 result rounded to f32 (transcendental
    /// functions, which libm computes to within an ulp or two).
    Ulps(u32),
    /// A sum of `terms` products per output element: within
    /// `terms * eps * s`, where `s` is the same op applied to the operands'
    /// absolute values (the sum of the absolute terms), plus half an ulp
    /// for the final rounding (and half the smallest subnormal per term,
    /// for products that underflow).
    Sum { terms: usize },
}

/// The local-error bound of `inst` in `func`, or `None` for ops that are
/// not checked this way: non-float results, a scan (its body's ops have
/// their own bounds) and random numbers.
pub fn tolerance(func: &Func, inst: &Inst) -> Option<Tolerance> {
    if !matches!(inst.ty.dtype, DType::F32 | DType::F64) {
        return None;
    }
    let dims = |i: usize| func.ty(inst.args[i]).shape.0.clone();
    Some(match &inst.op {
        // Random values are drawn from the dtype's own bits (f64 from more
        // of them): the two runs draw different numbers by design.
        Op::Param(_) | Op::Scan(_) | Op::CustomVjp(_) | Op::RandomBits | Op::RandomSplit | Op::RandomUniform => {
            return None
        }
        Op::Constant(_) | Op::Iota { .. } | Op::Convert => Tolerance::Exact,
        Op::Neg | Op::Abs | Op::Sign | Op::StopGradient => Tolerance::Exact,
        Op::Floor | Op::Ceil | Op::Round => Tolerance::Exact,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Sqrt | Op::Max | Op::Min | Op::Select => Tolerance::Exact,
        Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } | Op::Slice { .. } | Op::Pad { .. } => {
            Tolerance::Exact
        }
        Op::Concat { .. } | Op::Reverse { .. } | Op::Gather => Tolerance::Exact,
        Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::ReduceWindowMax(_) => Tolerance::Exact,
        // Two roundings: the square root, then the division.
        Op::Rsqrt => Tolerance::Ulps(2),
        Op::Exp | Op::Log | Op::Tanh | Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => Tolerance::Ulps(2),
        Op::Logistic | Op::Pow => Tolerance::Ulps(4),
        Op::ReduceSum { axes } => Tolerance::Sum { terms: axes.iter().map(|&a| dims(0)[a]).product() },
        Op::MatMul => Tolerance::Sum { terms: dims(0)[1] },
        Op::BatchMatMul => Tolerance::Sum { terms: *dims(0).last().expect("rank >= 2") },
        // The kernel is [O, C / groups, KH, KW]: that many products per output.
        Op::Conv2d(_) => Tolerance::Sum { terms: dims(1)[1..].iter().product() },
        Op::ReduceWindowSum(w) => Tolerance::Sum { terms: w.size.iter().product() },
        // `scatter_add(updates, indices)`: every index may name one row.
        Op::ScatterAdd => Tolerance::Sum { terms: func.ty(inst.args[1]).shape.num_elements() },
        Op::SelectAndScatter(_) => Tolerance::Sum { terms: func.ty(inst.args[1]).shape.num_elements() },
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::ArgMax { .. } => return None,
    })
}

/// The spacing of f32 values at `y` (the smallest subnormal at 0).
pub fn ulp_f32(y: f64) -> f64 {
    let y = (y as f32).abs();
    if !y.is_finite() {
        return f64::INFINITY;
    }
    let next = f32::from_bits(y.to_bits() + 1);
    (next as f64) - (y as f64)
}

/// Whether an f32 result `got` is within `tol` of the f64 result `want`;
/// `scale` is the f64 op on the operands' absolute values (for `Sum`).
pub fn within(tol: Tolerance, got: f64, want: f64, scale: f64) -> bool {
    let rounded = want as f32 as f64;
    if got.is_nan() || rounded.is_nan() {
        return got.is_nan() && rounded.is_nan();
    }
    if got == rounded {
        return true;
    }
    if rounded.is_infinite() && want.is_finite() {
        // The exact value lies past f32's largest: infinity of its sign is
        // right, and a finite result must be within the bound of the exact
        // value with the ulp of f32's largest (infinity's "ulp" would
        // admit anything).
        if got.is_infinite() {
            return got.signum() == want.signum();
        }
        // The spacing of f32 values at its largest (2^104).
        let ulp = f64::from(f32::MAX) - f64::from(f32::from_bits(f32::MAX.to_bits() - 1));
        return match tol {
            Tolerance::Exact => false,
            Tolerance::Ulps(n) => (got - want).abs() <= n as f64 * ulp,
            Tolerance::Sum { terms } => {
                let eps = f64::from(f32::EPSILON) / 2.0;
                (got - want).abs() <= terms as f64 * eps * scale + ulp / 2.0
            }
        };
    }
    match tol {
        Tolerance::Exact => false,
        Tolerance::Ulps(n) => (got - rounded).abs() <= n as f64 * ulp_f32(rounded),
        Tolerance::Sum { terms } => {
            let eps = f64::from(f32::EPSILON) / 2.0;
            // Products in the subnormal range round to an absolute half of
            // the smallest subnormal, not a relative eps.
            let underflow = terms as f64 * f64::from(f32::from_bits(1)) / 2.0;
            (got - want).abs() <= terms as f64 * eps * scale + ulp_f32(rounded) / 2.0 + underflow
        }
    }
}

/// Checks `got`, a backend's result of `func`'s instruction `index`, against
/// the exact op on the same `operands`, for ops a backend may compute
/// differently from the interpreter: a sum of products in another order (a
/// GEMM, a convolution: its `Sum` bound) or a transcendental function by
/// another algorithm (its `Ulps` bound). The bound is taken in the value's
/// own precision (`eps` = 2^-24 for f32, 2^-53 for f64), NaN only where the
/// exact result is NaN. The exact value is the op in f64 for f32 values;
/// for f64 values the interpreter's own result, itself within the bound (a
/// sum) or within an ulp (libm), so that twice the bound, or one ulp more,
/// applies. Where the terms' magnitudes reach the dtype's largest value, an
/// infinite or NaN result passes (overflow depends on the order). Returns
/// where and by how much it is off.
pub fn check_backend_value(func: &Func, index: usize, operands: &[&Tensor], got: &Tensor) -> Result<(), String> {
    let inst = &func.insts[index];
    let tol = match tolerance(func, inst) {
        Some(tol @ (Tolerance::Sum { .. } | Tolerance::Ulps(_))) => tol,
        _ => return Err(format!("%{index} ({}) has no inexact bound", super::op::name(&inst.op))),
    };
    let f32_values = inst.ty.dtype == DType::F32;
    let widened: Vec<Tensor> = operands.iter().map(|t| to_f64(t)).collect();
    let single = alone_f64(func, inst);
    let want = super::interp::run(&single, &widened).swap_remove(0).to_f64_vec();
    let scale = match (tol, &inst.op) {
        (Tolerance::Ulps(_), _) => vec![0.0; want.len()],
        // Only the scattered source is summed; the operand picks where it goes.
        (_, Op::SelectAndScatter(_)) => {
            super::interp::run(&single, &[widened[0].clone(), abs(&widened[1])]).swap_remove(0).to_f64_vec()
        }
        _ => super::interp::run(&single, &widened.iter().map(abs).collect::<Vec<_>>()).swap_remove(0).to_f64_vec(),
    };
    let largest = if f32_values { f64::from(f32::MAX) } else { f64::MAX };
    for (k, (&g, (&w, &s))) in got.to_f64_vec().iter().zip(want.iter().zip(&scale)).enumerate() {
        // Terms this large may overflow to infinity, and opposite infinities
        // to NaN, in one summation order and not in another.
        let may_overflow = s >= largest || s.is_nan();
        let ok = if may_overflow && !g.is_finite() {
            // NaN only where the exact value is NaN or may become NaN in
            // another order (opposite infinities); an infinity of the
            // exact value's sign, never of the other.
            if w.is_nan() {
                g.is_nan()
            } else {
                g.is_nan() || w.is_finite() || g == w
            }
        } else if f32_values {
            within(tol, g, w, s)
        } else if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            // An infinite result matches only itself, unless the terms'
            // magnitudes overflow (then the interpreter's own order may
            // have reached infinity where the exact value is finite).
            g == w || (may_overflow && w.is_infinite())
        } else {
            g == w
                || match tol {
                    Tolerance::Ulps(n) => (g - w).abs() <= f64::from(n + 1) * ulp_f64(w),
                    Tolerance::Sum { terms } => {
                        let underflow = terms as f64 * f64::from_bits(1) / 2.0;
                        (g - w).abs() <= 2.0 * (terms as f64 * f64::EPSILON / 2.0 * s + ulp_f64(w) / 2.0 + underflow)
                    }
                    Tolerance::Exact => false,
                }
        };
        if !ok {
            return Err(format!(
                "%{index} = {} ({tol:?}) at flat index {k}: got {g}, exact {w} (magnitude sum {s})",
                super::op::name(&inst.op)
            ));
        }
    }
    Ok(())
}

/// The spacing of f64 values at `y`.
fn ulp_f64(y: f64) -> f64 {
    let y = y.abs();
    if !y.is_finite() {
        return f64::INFINITY;
    }
    f64::from_bits(y.to_bits() + 1) - y
}

/// The single op `inst` of `func` as a float64 function of its operands.
fn alone_f64(func: &Func, inst: &Inst) -> Func {
    let widened = |t: &Type| if t.dtype == DType::F32 { t.with_dtype(DType::F64) } else { t.clone() };
    let params: Vec<Type> = inst.args.iter().map(|a| widened(func.ty(*a))).collect();
    let mut b = Builder::new("alone", &params);
    let args = (0..params.len()).map(|i| b.param(i)).collect();
    let y = b.push(inst.op.clone(), args, widened(&inst.ty));
    b.finish(vec![y])
}

/// An f32 tensor as f64 (exactly); other dtypes as they are.
fn to_f64(t: &Tensor) -> Tensor {
    if t.dtype() == DType::F32 {
        Tensor::f64(&t.ty().shape.0, t.to_f64_vec())
    } else {
        t.clone()
    }
}

/// Elementwise |x| of an f64 tensor; other dtypes as they are.
fn abs(t: &Tensor) -> Tensor {
    if t.dtype() == DType::F64 {
        Tensor::f64(&t.ty().shape.0, t.to_f64_vec().iter().map(|v| v.abs()).collect())
    } else {
        t.clone()
    }
}

#[cfg(test)]
mod tests;
