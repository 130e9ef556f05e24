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

use super::{DType, Func, Inst, Op};

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
    /// for the final rounding.
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
    match tol {
        Tolerance::Exact => false,
        Tolerance::Ulps(n) => (got - rounded).abs() <= n as f64 * ulp_f32(rounded),
        Tolerance::Sum { terms } => {
            let eps = f64::from(f32::EPSILON) / 2.0;
            (got - want).abs() <= terms as f64 * eps * scale + ulp_f32(rounded) / 2.0
        }
    }
}

#[cfg(test)]
mod tests;
