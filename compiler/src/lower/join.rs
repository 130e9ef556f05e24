//! `shape(x)`, `stack(xs, axis = 0)` and `concat(xs, axis = 0)`: a tensor's
//! dims as compile-time integers, and tuples of tensors joined along a new
//! or an existing axis (`Op::Concatenate`, after a reshape for `stack`).
//!
//! `stack(split(key, n))` turns a tuple of keys into the `i32[n, 2]` tensor
//! that `vmap` maps over (per-sample randomness).

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::ops::known;
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::Shape;
use crate::span::Span;

/// `shape(x)`: the tuple of `x`'s dims (symbolic where they are, e.g. `B`).
pub fn shape(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    match args {
        [CallArg { value: Val::Tensor(t), name: None, .. }] => {
            Val::Tuple(t.ty.dims.iter().cloned().map(Val::Int).collect())
        }
        [CallArg { value: Val::Float(_) | Val::Int(_) | Val::NegInt(_), name: None, .. }] => Val::Tuple(vec![]),
        _ => bad(el, "`shape(x)` takes one tensor", span),
    }
}

/// `stack(xs, axis = 0)` (a new axis of length `len(xs)`) or
/// `concat(xs, axis = 0)` (along an existing axis) of a tuple of tensors
/// of one dtype whose other dims agree.
pub fn join(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let usage = format!("`{name}(xs, axis = 0)` takes a tuple of tensors and a compile-time axis");
    let Some(first) = args.first().filter(|a| a.name.is_none()) else { return bad(el, &usage, span) };
    let mut axis: i64 = 0;
    for a in &args[1..] {
        if a.name.as_deref().is_some_and(|n| n != "axis") {
            return bad(el, &usage, a.span);
        }
        axis = match &a.value {
            Val::Int(Dim::Known(n)) => *n as i64,
            Val::NegInt(n) => *n,
            Val::Float(f) if f.fract() == 0.0 => *f as i64,
            _ => return bad(el, &usage, a.span),
        };
    }
    if args.len() > 2 {
        return bad(el, &usage, span);
    }
    let items: Vec<TVal> = match &first.value {
        Val::Tuple(items) if !items.is_empty() => {
            let mut ts = Vec::new();
            for it in items {
                let Val::Tensor(t) = it else {
                    let d = it.describe();
                    return el.error(
                        Diagnostic::error(Code::TypeMismatch, format!("`{name}` joins tensors, found {d} among them"))
                            .with_label(first.span, "this tuple"),
                    );
                };
                ts.push(t.clone());
            }
            ts
        }
        v => {
            let d = v.describe();
            return el.error(
                Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs a tuple of tensors, found {d}"))
                    .with_label(first.span, format!("this is {d}"))
                    .with_help(format!("e.g. `{name}((a, b), axis = 0)`")),
            );
        }
    };
    let t0 = items[0].ty.clone();
    let out_rank = t0.rank() as i64 + i64::from(name == "stack");
    let a = if axis < 0 { axis + out_rank } else { axis };
    if a < 0 || a >= out_rank {
        return el.error(
            Diagnostic::error(Code::ShapeMismatch, format!("`{name}`: axis {axis} is out of range for {t0}"))
                .with_label(span, "in this call"),
        );
    }
    let a = a as usize;
    // Every item has item 0's dtype and rank, and its dims (off the axis, for concat).
    for (k, t) in items.iter().enumerate().skip(1) {
        let dims_agree =
            t.ty.dims.iter().zip(&t0.dims).enumerate().all(|(i, (x, y))| x == y || (name == "concat" && i == a));
        if t.ty.dtype != t0.dtype || t.ty.rank() != t0.rank() || !dims_agree {
            let what = if name == "stack" {
                "stacked tensors must have one type"
            } else {
                "concatenated tensors must agree in dtype and in every dim but the axis"
            };
            return el.error(
                Diagnostic::error(Code::ShapeMismatch, format!("`{name}`: item {k} is {}, but item 0 is {t0}", t.ty))
                    .with_label(first.span, "in this tuple")
                    .with_note(what),
            );
        }
    }
    let mut dims = t0.dims.clone();
    if name == "stack" {
        dims.insert(a, Dim::Known(items.len()));
    } else {
        let lengths: Option<Vec<usize>> =
            items.iter().map(|t| if let Dim::Known(n) = t.ty.dims[a] { Some(n) } else { None }).collect();
        let Some(lengths) = lengths else {
            return bad(el, "`concat` needs the joined axis's lengths known at compile time", span);
        };
        dims[a] = Dim::Known(lengths.iter().sum());
    }
    let ty = Ty { dtype: t0.dtype, dims };
    if !el.building() {
        return Val::Tensor(TVal { ty, id: None });
    }
    let b = el.b();
    let ids: Vec<_> = items
        .iter()
        .map(|t| {
            let id = t.id.expect("build mode");
            if name == "stack" {
                let mut d: Vec<usize> = t.ty.dims.iter().map(known).collect();
                d.insert(a, 1);
                b.reshape(id, &Shape(d))
            } else {
                id
            }
        })
        .collect();
    let id = if ids.len() == 1 { ids[0] } else { b.concat(ids, a) };
    Val::Tensor(TVal { ty, id: Some(id) })
}
