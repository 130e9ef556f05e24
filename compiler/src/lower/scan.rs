//! The `scan` builtin: `scan(f, init, xs)` (or `scan(f, init, length = n)`,
//! and `reverse = true`) runs `(carry, y) = f(carry, x)` over the rows of
//! `xs` and returns `(final carry, ys)`, ys stacked along a new axis 0. The
//! carry and x may be tensors or (nested) tuples of tensors; the carry must
//! keep its types. Lowers to one `Op::Scan` whose body is `f` lowered alone
//! on one carry and one row, so the loop is never unrolled (unlike `for`).
//!
//! In check mode `f` is checked on the carry's and a row's types. In build
//! mode `f` is lowered into a fresh IR function whose params are `f`'s
//! captured tensors (the scan's consts), then the carry's tensors, then one
//! row of each xs tensor.

use std::collections::HashMap;
use std::sync::Arc;

use super::elab::{CallArg, Elaborator, Env};
use super::transform::{collect_ids, remap};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, DType, ValueId};
use crate::span::Span;

const USAGE: &str = "scan(f, init, xs) takes a function `f(carry, x) -> (carry, y)`, the initial carry and the \
                     sequence (or `length = n` instead of xs, then `f(carry) -> (carry, y)`)";

pub fn call_scan(el: &mut Elaborator, env: &mut Env, args: Vec<CallArg>, span: Span) -> Val {
    let positional: Vec<&CallArg> = args.iter().filter(|a| a.name.is_none()).collect();
    let named = |n: &str| args.iter().find(|a| a.name.as_deref() == Some(n));
    if let Some(extra) = args.iter().find(|a| a.name.as_deref().is_some_and(|n| n != "length" && n != "reverse")) {
        return el.error(Diagnostic::error(Code::BadCall, USAGE).with_label(extra.span, "unexpected argument"));
    }
    let (f, init) = match positional.as_slice() {
        [f, init] | [f, init, _] => (*f, *init),
        _ => return bad(el, USAGE, span),
    };
    let xs = positional.get(2).copied();
    let reverse = match named("reverse").map(|a| &a.value) {
        None => false,
        Some(Val::Bool(b)) => *b,
        Some(_) => return bad(el, "`reverse` is `true` or `false`", named("reverse").map_or(span, |a| a.span)),
    };
    match &f.value {
        Val::Fn(_)
        | Val::Lambda(_)
        | Val::Grad { .. }
        | Val::Jacobian { .. }
        | Val::Vmap { .. }
        | Val::Checkpoint { .. }
        | Val::CustomVjp(_)
        | Val::Model(_)
        | Val::Method { .. } => {}
        other => {
            let d = Diagnostic::error(Code::BadCall, format!("scan needs a function first, not {}", other.describe()))
                .with_label(f.span, "not a function");
            return el.error(d);
        }
    }

    // The carry: tensors (a float literal becomes an f32 scalar, a
    // compile-time integer an i32 one: `scan(count, 0, xs)`).
    let mut carry_leaves = Vec::new();
    if init.value.has_poison() {
        return Val::Poison;
    }
    let Some(carry) = tensors_of(el, &init.value, &mut carry_leaves, init.span) else {
        return bad(el, "the initial carry must be a tensor or a tuple of tensors", init.span);
    };
    if carry.has_poison() {
        return Val::Poison;
    }
    // The length and one row of each xs tensor.
    let mut x_leaves = Vec::new();
    let (length, row) = match (xs, named("length")) {
        (Some(_), Some(l)) => return bad(el, "give either xs or `length`, not both", l.span),
        (None, None) => return bad(el, USAGE, span),
        (None, Some(l)) => match &l.value {
            Val::Int(d) => (d.clone(), None),
            _ => return bad(el, "`length` must be a compile-time integer", l.span),
        },
        (Some(xs), None) => {
            let Some(v) = tensors_of(el, &xs.value, &mut x_leaves, xs.span) else {
                return bad(el, "xs must be a tensor or a tuple of tensors", xs.span);
            };
            let mut length: Option<Dim> = None;
            for t in &x_leaves {
                let Some(d) = t.ty.dims.first() else {
                    return bad(el, &format!("scan runs over axis 0 of xs, but one of them is {}", t.ty), xs.span);
                };
                match &length {
                    None => length = Some(d.clone()),
                    Some(l) if l != d => {
                        let msg = format!("the xs of a scan disagree on their length (axis 0): {l} and {d}");
                        return el
                            .error(Diagnostic::error(Code::ShapeMismatch, msg).with_label(xs.span, "these sequences"));
                    }
                    Some(_) => {}
                }
            }
            let Some(length) = length else {
                return bad(el, "xs holds no tensor; use `length = n` for a scan without xs", xs.span);
            };
            (length, Some(v))
        }
    };
    let row_leaves: Vec<Ty> =
        x_leaves.iter().map(|t| Ty { dtype: t.ty.dtype, dims: t.ty.dims[1..].to_vec() }).collect();

    if !el.building() {
        let mut next = carry_leaves.iter().map(|t| t.ty.clone());
        let carry_in = rebuild(&carry, &mut next, &mut std::iter::repeat(None));
        let mut inner_args = vec![arg(carry_in, init.span)];
        if let Some(row) = &row {
            inner_args.push(arg(rebuild(row, &mut row_leaves.iter().cloned(), &mut std::iter::repeat(None)), span));
        }
        let out = el.call(env, f.value.clone(), f.span, inner_args, span);
        return match split_output(el, &out, &carry, &carry_leaves, span) {
            Some((_, ys)) => {
                let carry_out =
                    rebuild(&carry, &mut carry_leaves.iter().map(|t| t.ty.clone()), &mut std::iter::repeat(None));
                let ys_out = stack(&ys, &length, &mut None);
                Val::Tuple(vec![carry_out, ys_out])
            }
            None => Val::Poison,
        };
    }

    // Build mode: lower `f` alone on one carry and one row.
    let Dim::Known(n) = length else { unreachable!("dims are known in build mode") };
    let carry_ids: Vec<ValueId> = carry_leaves.iter().map(|t| t.id.expect("built")).collect();
    let mut captured: Vec<(ValueId, crate::ir::Type)> = Vec::new();
    collect_ids(el, &f.value, &mut captured);
    let nc = captured.len();
    let ir = |t: &Ty| t.to_ir().expect("known dims in build mode");
    let param_types: Vec<crate::ir::Type> = captured
        .iter()
        .map(|(_, t)| t.clone())
        .chain(carry_leaves.iter().map(|t| ir(&t.ty)))
        .chain(row_leaves.iter().map(ir))
        .collect();
    let map: HashMap<ValueId, ValueId> =
        captured.iter().enumerate().map(|(k, (outer, _))| (*outer, ValueId(k as u32))).collect();
    let nh = carry_leaves.len();
    let carry_in = rebuild(
        &carry,
        &mut carry_leaves.iter().map(|t| t.ty.clone()),
        &mut (nc..nc + nh).map(|k| Some(ValueId(k as u32))),
    );
    let mut inner_args = vec![arg(carry_in, init.span)];
    if let Some(row) = &row {
        let ids = (nc + nh..param_types.len()).map(|k| Some(ValueId(k as u32)));
        inner_args.push(arg(rebuild(row, &mut row_leaves.iter().cloned(), &mut ids.into_iter()), span));
    }
    let inner_f = remap(&f.value, &map);
    let saved_builder = el.builder.replace(Builder::new("scan_body", &param_types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let out = el.call(env, inner_f, f.span, inner_args, span);
    let split = split_output(el, &out, &carry, &carry_leaves, span);
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;
    let Some((new_carry, ys)) = split else { return Val::Poison };
    let mut outputs = new_carry;
    let mut y_ids = Vec::new();
    let ys_ty = stack(&ys, &length, &mut Some(&mut y_ids));
    outputs.extend(y_ids);
    let (body, kept) = crate::ir::scan::drop_unused_consts(&inner.finish(outputs), nc);
    crate::ir::verify::assert_valid(&body, "lower (scan body)");
    let nc = kept.len();
    let x_ids = x_leaves.iter().map(|t| t.id.expect("built"));
    let operands: Vec<ValueId> = kept.iter().map(|&k| captured[k].0).chain(carry_ids).chain(x_ids).collect();
    let results = el.b().scan(Arc::new(body), nc, nh, n, reverse, &operands);
    let (finals, stacked) = results.split_at(nh);
    let carry_out =
        rebuild(&carry, &mut carry_leaves.iter().map(|t| t.ty.clone()), &mut finals.iter().map(|&v| Some(v)));
    let ys_out = super::tree::with_ids(&ys_ty, &mut stacked.iter().copied());
    Val::Tuple(vec![carry_out, ys_out])
}

fn arg(value: Val, span: Span) -> CallArg {
    CallArg { name: None, name_span: None, value, span }
}

/// `v`'s tensors in order, pushed to `out` (a float literal becomes an f32
/// scalar tensor, a compile-time integer an i32 one); `v`'s structure with the tensors as `Val::Unit`
/// placeholders. `None` if `v` holds anything else.
fn tensors_of(el: &mut Elaborator, v: &Val, out: &mut Vec<TVal>, span: Span) -> Option<Val> {
    match v {
        Val::Tensor(t) => {
            out.push(t.clone());
            Some(Val::Unit)
        }
        Val::Float(x) => {
            let id = el.building().then(|| el.b().constant(*x, DType::F32));
            out.push(TVal { ty: Ty::scalar(DType::F32), id });
            Some(Val::Unit)
        }
        // An integer beyond i32 is reported by `as_tensor`; the carry is then poison.
        Val::Int(Dim::Known(_)) | Val::NegInt(_) => match el.as_tensor(v, DType::I32, span) {
            Some(t) => {
                out.push(t);
                Some(Val::Unit)
            }
            None => Some(Val::Poison),
        },
        Val::Tuple(items) => {
            Some(Val::Tuple(items.iter().map(|x| tensors_of(el, x, out, span)).collect::<Option<_>>()?))
        }
        _ => None,
    }
}

/// The structure `shape` (placeholders from `tensors_of`) with tensors of
/// the types and ids drawn in order.
fn rebuild(shape: &Val, tys: &mut impl Iterator<Item = Ty>, ids: &mut impl Iterator<Item = Option<ValueId>>) -> Val {
    match shape {
        Val::Tuple(items) => Val::Tuple(items.iter().map(|x| rebuild(x, tys, ids)).collect()),
        _ => Val::Tensor(TVal { ty: tys.next().expect("one type per tensor"), id: ids.next().expect("one id") }),
    }
}

/// Splits the body's result `(carry, y)`: checks the carry has the initial
/// carry's structure and types; returns the carry's IR values (build mode)
/// and `y`. Reports a diagnostic and returns `None` otherwise.
fn split_output(
    el: &mut Elaborator,
    out: &Val,
    carry: &Val,
    carry_leaves: &[TVal],
    span: Span,
) -> Option<(Vec<ValueId>, Val)> {
    if out.has_poison() {
        return None;
    }
    let (new_carry, y) = match out {
        Val::Tuple(items) if items.len() == 2 => (&items[0], &items[1]),
        other => {
            bad(
                el,
                &format!("scan's function must return a pair `(carry, y)`, but it returns {}", other.describe()),
                span,
            );
            return None;
        }
    };
    let mut leaves = Vec::new();
    let shape = tensors_of_typed(new_carry, &mut leaves);
    let same = shape.as_ref().is_some_and(|s| same_structure(s, carry))
        && leaves.len() == carry_leaves.len()
        && leaves.iter().zip(carry_leaves).all(|(a, b)| a.ty == b.ty);
    if !same {
        let show = |ts: &[TVal]| ts.iter().map(|t| t.ty.to_string()).collect::<Vec<_>>().join(", ");
        let found = if shape.is_some() { show(&leaves) } else { new_carry.describe() };
        el.error(
            Diagnostic::error(
                Code::TypeMismatch,
                format!(
                    "scan's carry must keep its type: it starts as ({}) but the function returns ({found})",
                    show(carry_leaves)
                ),
            )
            .with_label(span, "in this scan")
            .with_help("the function returns `(new_carry, y)` with new_carry of the initial carry's types"),
        );
        return None;
    }
    let Some(y) = ys_as_tensors(el, y, span) else {
        bad(el, &format!("scan's y must be tensors or numbers (or tuples of them), not {}", y.describe()), span);
        return None;
    };
    Some((leaves.iter().filter_map(|t| t.id).collect(), y))
}

/// Whether two placeholder structures (from `tensors_of`) are the same.
fn same_structure(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Tuple(x), Val::Tuple(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_structure(p, q)),
        (Val::Tuple(_), _) | (_, Val::Tuple(_)) => false,
        _ => true,
    }
}

/// As `tensors_of`, without converting literals (a body result).
fn tensors_of_typed(v: &Val, out: &mut Vec<TVal>) -> Option<Val> {
    match v {
        Val::Tensor(t) => {
            out.push(t.clone());
            Some(Val::Unit)
        }
        Val::Tuple(items) => Some(Val::Tuple(items.iter().map(|x| tensors_of_typed(x, out)).collect::<Option<_>>()?)),
        _ => None,
    }
}

/// A step's `y` as tensors: a float literal becomes an f32 scalar, a
/// compile-time integer an i32 one (as the initial carry's do); `None`
/// if it holds anything else.
fn ys_as_tensors(el: &mut Elaborator, v: &Val, span: Span) -> Option<Val> {
    match v {
        Val::Tensor(_) => Some(v.clone()),
        Val::Float(x) => {
            let id = el.building().then(|| el.b().constant(*x, DType::F32));
            Some(Val::Tensor(TVal { ty: Ty::scalar(DType::F32), id }))
        }
        Val::Int(Dim::Known(_)) | Val::NegInt(_) => {
            Some(el.as_tensor(v, DType::I32, span).map_or(Val::Poison, Val::Tensor))
        }
        Val::Tuple(items) => Some(Val::Tuple(items.iter().map(|x| ys_as_tensors(el, x, span)).collect::<Option<_>>()?)),
        _ => None,
    }
}

/// `ys` (one row's y) with the length as a new axis 0 and no IR values; the
/// row's IR values are pushed to `ids` (build mode).
fn stack(ys: &Val, length: &Dim, ids: &mut Option<&mut Vec<ValueId>>) -> Val {
    match ys {
        Val::Tensor(t) => {
            if let (Some(ids), Some(id)) = (ids.as_deref_mut(), t.id) {
                ids.push(id);
            }
            let mut ty = t.ty.clone();
            ty.dims.insert(0, length.clone());
            Val::Tensor(TVal { ty, id: None })
        }
        Val::Tuple(items) => Val::Tuple(items.iter().map(|x| stack(x, length, ids)).collect()),
        other => other.clone(),
    }
}

fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg).with_label(span, "in this call"))
}

#[cfg(test)]
mod tests;
