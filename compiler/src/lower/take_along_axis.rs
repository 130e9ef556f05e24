//! `take_along_axis(x, indices, axis = -1)` (NumPy's and JAX's): along
//! `axis`, the elements of `x` at the i32 `indices`, which have `x`'s rank
//! and dims except along `axis` (any length there): `out[.., j, ..] =
//! x[.., indices[.., j, ..], ..]`. The usual use picks each row's label:
//! `take_along_axis(log_probs, reshape(labels, (-1, 1)), axis = 1)`.
//! Out-of-range indices clamp, as `take`'s do.
//!
//! Lowered without a gather: a compare of the indices with an iota over
//! the axis selects, per output element, one of the axis's `C` values,
//! summed away (`C` times the output's size in work; the gradient is the
//! same select's, so autodiff and vmap need nothing new). Exact: the select
//! adds one value to zeros.

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::ops::known;
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Op, Shape, Type};
use crate::span::Span;

const USAGE: &str = "`take_along_axis(x, indices, axis = -1)` takes a tensor, i32 indices of its rank, and an axis";

pub fn take_along_axis(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let (Some(xa), Some(ia)) = (args.first(), args.get(1)) else { return bad(el, USAGE, span) };
    if xa.name.is_some() || ia.name.is_some() || args.len() > 3 {
        return bad(el, USAGE, span);
    }
    let mut axis: i64 = -1;
    if let Some(a) = args.get(2) {
        if a.name.as_deref().is_some_and(|n| n != "axis") {
            return bad(el, USAGE, a.span);
        }
        axis = match &a.value {
            Val::Int(Dim::Known(n)) => *n as i64,
            Val::NegInt(n) => *n,
            Val::Poison => return Val::Poison,
            _ => return bad(el, "`axis` is a compile-time integer", a.span),
        };
    }
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
    let b = el.b();
    let c = known(&x.ty.dims[a]);
    let idx_dims: Vec<usize> = idx.ty.dims.iter().map(known).collect();
    let itype = Type::new(DType::I32, &idx_dims);
    // Clamp into 0..c.
    let (lo, hi) = (b.full(0.0, &itype), b.full((c - 1) as f64, &itype));
    let clamped = b.binary(Op::Max, ii, lo);
    let clamped = b.binary(Op::Min, clamped, hi);
    // [idx dims.., c]: which of the axis's values each output element takes.
    let mut wide = idx_dims.clone();
    wide.push(c);
    let wide = Shape(wide);
    let at = b.broadcast(clamped, &wide, (0..r).collect());
    let positions = b.iota(Type::new(DType::I32, &wide.0), r);
    let mask = b.binary(Op::Eq, positions, at);
    // x with its axis last, broadcast along the indices' axis.
    let mut perm: Vec<usize> = (0..r).filter(|&k| k != a).collect();
    perm.push(a);
    let moved = b.transpose(xi, perm);
    let mut dims: Vec<usize> = (0..r).filter(|&k| k != a).collect();
    dims.push(r);
    let values = b.broadcast(moved, &wide, dims);
    let zeros = b.full(0.0, &Type::new(x.ty.dtype, &wide.0));
    let picked = b.select(mask, values, zeros);
    let id = b.reduce_sum(picked, vec![r]);
    Val::Tensor(TVal { ty, id: Some(id) })
}
