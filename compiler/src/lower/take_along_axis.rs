//! `take_along_axis(x, indices, axis = -1)` (NumPy's and JAX's): along
//! `axis`, the elements of `x` at the i32 `indices`, which have `x`'s rank
//! and dims except along `axis` (any length there): `out[.., j, ..] =
//! x[.., indices[.., j, ..], ..]`. The usual use picks each row's label:
//! `take_along_axis(log_probs, reshape(labels, (-1, 1)), axis = 1)`.
//! Out-of-range indices clamp, as `take`'s do.
//!
//! Lowered as one gather (JAX lowers it to XLA's gather too): `x` with the
//! axis last is a flat table of `R * C` elements (`R` the product of the
//! other dims, `C` the axis), and the clamped index of output element `(r,
//! j)` becomes `r * C + index`. Work is the output's size (the earlier
//! compare-select-sum form was `C` times that, which a cross-entropy over
//! a vocabulary pays per row); the gradient is gather's, a scatter-add.
//! When the axis is not already last, `x` and the indices are transposed
//! to put it there and the result transposed back.
//!
//! Also here: `axis_argument`, the `axis = ..` argument that `take` shares.

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::ops::known;
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Op, Shape, Type};
use crate::span::Span;

const USAGE: &str = "`take_along_axis(x, indices, axis = -1)` takes a tensor, i32 indices of its rank, and an axis";

/// The compile-time integer of an `axis` argument (third, positional or
/// named `axis`); `Err` holds the value to return (an error or poison).
pub(super) fn axis_argument(el: &mut Elaborator, a: &CallArg, usage: &str) -> Result<i64, Val> {
    if a.name.as_deref().is_some_and(|n| n != "axis") {
        return Err(bad(el, usage, a.span));
    }
    match &a.value {
        Val::Int(Dim::Known(n)) => Ok(*n as i64),
        Val::NegInt(n) => Ok(*n),
        Val::Poison => Err(Val::Poison),
        _ => Err(bad(el, "`axis` is a compile-time integer", a.span)),
    }
}

pub fn take_along_axis(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let (Some(xa), Some(ia)) = (args.first(), args.get(1)) else { return bad(el, USAGE, span) };
    if xa.name.is_some() || ia.name.is_some() || args.len() > 3 {
        return bad(el, USAGE, span);
    }
    let axis = match args.get(2).map(|a| axis_argument(el, a, USAGE)) {
        None => -1,
        Some(Ok(axis)) => axis,
        Some(Err(val)) => return val,
    };
    let (x, idx) = match (&xa.value, &ia.value) {
        (Val::Poison, _) | (_, Val::Poison) => return Val::Poison,
        (Val::Tensor(x), Val::Tensor(i)) => (x.clone(), i.clone()),
        (x, i) => {
            let (dx, di) = (x.describe(), i.describe());
            return el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("`take_along_axis` needs two tensors, found {dx} and {di}"),
                )
                .with_label(xa.span, format!("this is {dx}"))
                .with_label(ia.span, format!("this is {di}")),
            );
        }
    };
    let report = |el: &mut Elaborator, code: Code, msg: String| {
        el.error(
            Diagnostic::error(code, msg)
                .with_label(xa.span, format!("this is {}", x.ty))
                .with_label(ia.span, format!("this is {}", idx.ty))
                .with_help(USAGE),
        )
    };
    if idx.ty.dtype != DType::I32 {
        return report(el, Code::TypeMismatch, format!("`take_along_axis` needs i32 indices, found {}", idx.ty));
    }
    let r = x.ty.rank();
    if idx.ty.rank() != r || r == 0 {
        return report(
            el,
            Code::ShapeMismatch,
            format!("the indices need the rank of x (at least 1): {} vs {}", idx.ty, x.ty),
        );
    }
    let a = if axis < 0 { axis + r as i64 } else { axis };
    if a < 0 || a >= r as i64 {
        return report(el, Code::ShapeMismatch, format!("axis {axis} is out of range for {}", x.ty));
    }
    let a = a as usize;
    if let Some(k) = (0..r).find(|&k| k != a && x.ty.dims[k] != idx.ty.dims[k]) {
        let msg =
            format!("the indices' dim {k} is {}, x's is {} (only axis {a} may differ)", idx.ty.dims[k], x.ty.dims[k]);
        return report(el, Code::ShapeMismatch, msg);
    }
    if x.ty.dims[a] == Dim::Known(0) {
        return report(el, Code::ShapeMismatch, format!("there is nothing to take along axis {a} of {}", x.ty));
    }
    let ty = Ty { dtype: x.ty.dtype, dims: idx.ty.dims.clone() };
    let (Some(xi), Some(ii)) = (x.id, idx.id) else { return Val::Tensor(TVal { ty, id: None }) };
    let c = known(&x.ty.dims[a]);
    let x_elements: usize = x.ty.dims.iter().map(known).product();
    if x_elements > i32::MAX as usize {
        let msg = format!("`take_along_axis` indexes at most 2^31 - 1 elements, x has {x_elements}");
        return report(el, Code::ShapeMismatch, msg);
    }
    let idx_dims: Vec<usize> = idx.ty.dims.iter().map(known).collect();
    if x_elements == 0 || idx_dims.contains(&0) {
        // Nothing to gather (another dim of x is 0, so the result is empty).
        let id = el.b().full(0.0, &Type::new(x.ty.dtype, &idx_dims));
        return Val::Tensor(TVal { ty, id: Some(id) });
    }
    let b = el.b();
    let itype = Type::new(DType::I32, &idx_dims);
    // Clamp into 0..c (before the row offsets, which would carry an index
    // out of range into the next row).
    let (lo, hi) = (b.full(0.0, &itype), b.full((c - 1) as f64, &itype));
    let clamped = b.binary(Op::Max, ii, lo);
    let clamped = b.binary(Op::Min, clamped, hi);
    // The axis last, for x and the indices alike.
    let mut perm: Vec<usize> = (0..r).filter(|&k| k != a).collect();
    perm.push(a);
    let axis_last = |b: &mut crate::ir::Builder, v| if a + 1 == r { v } else { b.transpose(v, perm.clone()) };
    let table = axis_last(b, xi);
    let at = axis_last(b, clamped);
    let m = idx_dims[a];
    let rows = x_elements / c;
    let table = b.reshape(table, &Shape(vec![rows * c]));
    // Row r's indices point into elements r * c ..
    let flat_ty = Type::new(DType::I32, &[rows, m]);
    let at = b.reshape(at, &flat_ty.shape);
    let row = b.iota(flat_ty.clone(), 0);
    let width = b.full(c as f64, &flat_ty);
    let offsets = b.binary(Op::Mul, row, width);
    let flat = b.add(at, offsets);
    let picked = b.gather(table, flat);
    // Back to the indices' layout.
    let moved_dims: Vec<usize> = perm.iter().map(|&k| idx_dims[k]).collect();
    let picked = b.reshape(picked, &Shape(moved_dims));
    let id = if a + 1 == r {
        picked
    } else {
        let mut inverse = vec![0; r];
        for (k, &p) in perm.iter().enumerate() {
            inverse[p] = k;
        }
        b.transpose(picked, inverse)
    };
    Val::Tensor(TVal { ty, id: Some(id) })
}
