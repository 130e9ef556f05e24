//! `take(table, indices)` (embedding lookup, `Op::Gather`) and the batched
//! matrix product `a @ b` for a right operand of rank >= 3
//! (`Op::BatchMatMul` after broadcasting the batch dims).

use super::elab::{CallArg, Elaborator};
use super::ops::known;
use super::value::{TVal, Val};
use crate::check::{shape_rules, Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Shape};
use crate::span::Span;

/// `take(table, indices)`: rows of `table` `[V, rest..]` at the i32
/// `indices` (any shape `I`): `[I.., rest..]`. Out-of-range indices clamp.
pub fn take(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    const USAGE: &str = "`take(table, indices, axis = 0)` takes a tensor, i32 indices and an axis";
    let (Some(table), Some(idx)) = (args.first(), args.get(1)) else {
        return super::builtins::bad(el, USAGE, span);
    };
    if args.len() > 3 || table.name.is_some() || idx.name.is_some() {
        return super::builtins::bad(el, USAGE, span);
    }
    let axis = match args.get(2).map(|a| super::take_along_axis::axis_argument(el, a, USAGE)) {
        None => 0,
        Some(Ok(axis)) => axis,
        Some(Err(val)) => return val,
    };
    let (Val::Tensor(t), Val::Tensor(i)) = (&table.value, &idx.value) else {
        let (dt, di) = (table.value.describe(), idx.value.describe());
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("`take` needs two tensors, found {dt} and {di}"))
                .with_label(table.span, format!("this is {dt}"))
                .with_label(idx.span, format!("this is {di}")),
        );
    };
    let (t, i) = (t.clone(), i.clone());
    if i.ty.dtype != DType::I32 {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("`take` needs i32 indices, found {}", i.ty))
                .with_label(table.span, format!("this is {}", t.ty))
                .with_label(idx.span, format!("this is {}", i.ty)),
        );
    }
    let r = t.ty.rank();
    let a = if axis < 0 { axis + r as i64 } else { axis };
    if a < 0 || a >= r as i64 || t.ty.dims[a as usize] == Dim::Known(0) {
        let what = if r == 0 {
            "a table of rank 1 or more".to_string()
        } else if a < 0 || a >= r as i64 {
            format!("an axis from {} to {}, found {axis}", -(r as i64), r as i64 - 1)
        } else {
            format!("a table with a non-empty axis {axis}")
        };
        return el.error(
            Diagnostic::error(Code::ShapeMismatch, format!("`take` needs {what}: table {}, indices {}", t.ty, i.ty))
                .with_label(table.span, format!("this is {}", t.ty))
                .with_label(idx.span, format!("this is {}", i.ty))
                .with_help(USAGE),
        );
    }
    let a = a as usize;
    // NumPy's `take` along `a`: the table's dims before `a`, the indices'
    // dims, the table's dims after `a`.
    let dims: Vec<Dim> = [&t.ty.dims[..a], &i.ty.dims[..], &t.ty.dims[a + 1..]].concat();
    let id = match (t.id, i.id) {
        (Some(ti), Some(ii)) if a == 0 => Some(el.b().gather(ti, ii)),
        // Gather takes rows along axis 0: move `a` there, and the dims
        // before it back in front of the indices' dims after.
        (Some(ti), Some(ii)) => {
            let b = el.b();
            let to_front: Vec<usize> = std::iter::once(a).chain((0..r).filter(|&k| k != a)).collect();
            let moved = b.transpose(ti, to_front);
            let rows = b.gather(moved, ii);
            let ni = i.ty.rank();
            let back: Vec<usize> = (ni..ni + a).chain(0..ni).chain(ni + a..ni + r - 1).collect();
            Some(b.transpose(rows, back))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty: Ty { dtype: t.ty.dtype, dims }, id })
}

/// `[.., m, k] @ [.., k, n] -> [.., m, n]` with NumPy-broadcast batch dims
/// (the caller checked float operands and a right operand of rank >= 3).
pub fn batched_matmul(el: &mut Elaborator, x: TVal, a_span: Span, y: TVal, b_span: Span) -> Val {
    let (ra, rb) = (x.ty.rank(), y.ty.rank());
    let error = |el: &mut Elaborator, msg: String| {
        el.error(
            Diagnostic::error(Code::ShapeMismatch, format!("cannot multiply {} by {}: {msg}", x.ty, y.ty))
                .with_label(a_span, format!("this is {}", x.ty))
                .with_label(b_span, format!("this is {}", y.ty))
                .with_help("batched @ is [..., m, k] @ [..., k, n] with broadcastable batch dims"),
        )
    };
    if ra < 2 {
        return error(el, format!("the left operand needs rank >= 2 when the right one has rank {rb}"));
    }
    let (k_left, k_right) = (&x.ty.dims[ra - 1], &y.ty.dims[rb - 2]);
    if k_left != k_right {
        let msg = format!("inner dimensions differ: {k_left} (left, last) vs {k_right} (right, second to last)");
        return error(el, msg);
    }
    let batch = match shape_rules::broadcast(&x.ty.dims[..ra - 2], &y.ty.dims[..rb - 2]) {
        Ok(d) => d,
        Err(msg) => return error(el, format!("batch dims: {msg}")),
    };
    let mut dims = batch.clone();
    dims.extend([x.ty.dims[ra - 2].clone(), y.ty.dims[rb - 1].clone()]);
    let ty = Ty { dtype: x.ty.dtype, dims };
    let id = match (x.id, y.id) {
        (Some(xi), Some(yi)) => {
            let b = el.b();
            let batch: Vec<usize> = batch.iter().map(known).collect();
            let with = |tail: [usize; 2]| {
                let mut d = batch.clone();
                d.extend(tail);
                Shape(d)
            };
            let (xs, ys) = (b.ty(xi).shape.clone(), b.ty(yi).shape.clone());
            let xb = b.broadcast_to(xi, &with([xs.0[ra - 2], xs.0[ra - 1]]));
            let yb = b.broadcast_to(yi, &with([ys.0[rb - 2], ys.0[rb - 1]]));
            Some(b.batch_matmul(xb, yb))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty, id })
}
