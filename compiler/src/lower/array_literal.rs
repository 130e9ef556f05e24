//! Array literals, as NumPy's `np.array`: `[1, 2, 3]` is `i32[3]`,
//! `[1.0, 2, 3]` is `f32[3]` (one float makes the array float), nested
//! `[[1, 2], [3, 4]]` is `i32[2, 2]` (rows must agree in shape), and an
//! array of tensors of one type stacks them along a new axis 0 (`[a, b]`
//! for two `f32[3]` is `f32[2, 3]`; numbers among scalar tensors take their
//! dtype).
//!
//! An array of numbers becomes one constant: runs of equal values broadcast
//! and concatenated (a literal of `n` numbers costs at most `2n + 1`
//! instructions, which the optimizer folds).

use super::elab::{CallArg, Elaborator, Env};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::{Expr, ExprKind};

/// A literal's structure with its leaves evaluated (each once).
enum Lit {
    Leaf(Val, Span),
    Row(Vec<Lit>, Span),
}

impl Lit {
    fn span(&self) -> Span {
        match self {
            Lit::Leaf(_, s) | Lit::Row(_, s) => *s,
        }
    }
}

pub fn array(el: &mut Elaborator, env: &mut Env, items: &[Expr], span: Span) -> Val {
    let lit = Lit::Row(items.iter().map(|x| evaluate(el, env, x)).collect(), span);
    // All numbers, in a regular shape: one constant, dtype over every leaf.
    if let Some(dims) = number_dims(&lit) {
        let mut leaves = Vec::new();
        flatten(&lit, &mut leaves);
        if leaves.iter().any(|v| matches!(v, Val::Poison)) {
            return Val::Poison;
        }
        return numbers(el, &leaves, &dims, span);
    }
    build(el, &lit)
}

fn evaluate(el: &mut Elaborator, env: &mut Env, e: &Expr) -> Lit {
    match &e.kind {
        ExprKind::Array(items) => Lit::Row(items.iter().map(|x| evaluate(el, env, x)).collect(), e.span),
        _ => Lit::Leaf(el.expr(env, e), e.span),
    }
}

/// A compile-time number (a symbolic dim is one in check mode), or an
/// error already reported.
fn is_number(v: &Val) -> bool {
    matches!(v, Val::Float(_) | Val::Int(_) | Val::NegInt(_) | Val::Poison)
}

/// The dims of a regular literal whose leaves are all numbers.
fn number_dims(lit: &Lit) -> Option<Vec<usize>> {
    match lit {
        Lit::Leaf(v, _) => is_number(v).then(Vec::new),
        Lit::Row(items, _) => {
            let first = number_dims(items.first()?)?;
            for it in &items[1..] {
                if number_dims(it)? != first {
                    return None;
                }
            }
            Some(std::iter::once(items.len()).chain(first).collect())
        }
    }
}

fn flatten(lit: &Lit, out: &mut Vec<Val>) {
    match lit {
        Lit::Leaf(v, _) => out.push(v.clone()),
        Lit::Row(items, _) => items.iter().for_each(|x| flatten(x, out)),
    }
}

/// Rows built bottom-up; each row stacks its items (see `stack`).
fn build(el: &mut Elaborator, lit: &Lit) -> Val {
    match lit {
        Lit::Leaf(v, _) => v.clone(),
        Lit::Row(items, span) => {
            let vals: Vec<Val> = items.iter().map(|x| build(el, x)).collect();
            let spans: Vec<Span> = items.iter().map(Lit::span).collect();
            if vals.iter().all(is_number) {
                if vals.iter().any(|v| matches!(v, Val::Poison)) {
                    return Val::Poison;
                }
                return numbers(el, &vals, &[vals.len()], *span);
            }
            stack(el, vals, &spans, *span)
        }
    }
}

/// `[a, b, ...]` of tensors (numbers among them become scalars of the
/// first tensor's dtype): `stack((a, b, ...))`.
fn stack(el: &mut Elaborator, vals: Vec<Val>, spans: &[Span], span: Span) -> Val {
    if vals.iter().any(|v| matches!(v, Val::Poison)) {
        return Val::Poison;
    }
    let Some(dtype) = vals.iter().find_map(|v| if let Val::Tensor(t) = v { Some(t.ty.dtype) } else { None }) else {
        return bad(el, "array literals hold numbers or tensors".into(), span);
    };
    let first = vals.iter().find_map(|v| if let Val::Tensor(t) = v { Some(t.ty.clone()) } else { None });
    let first = first.expect("a tensor (found above)");
    let mut items = Vec::with_capacity(vals.len());
    for (k, v) in vals.iter().enumerate() {
        if let Val::Tensor(t) = v {
            if t.ty != first {
                let msg = format!("array literal: item {k} is {}, but the first tensor among them is {first}", t.ty);
                return el.error(
                    Diagnostic::error(Code::ShapeMismatch, msg)
                        .with_label(spans[k], format!("this is {}", t.ty))
                        .with_label(span, "in this array")
                        .with_note("the items of an array must have one type (its rows one shape)"),
                );
            }
        }
        match v {
            Val::Tensor(_) => items.push(v.clone()),
            // A float among integer or bool tensors would be truncated.
            Val::Float(x) if !dtype.is_float() => {
                let msg = format!("array literal: the number {x} among {dtype} tensors");
                return el.error(
                    Diagnostic::error(Code::TypeMismatch, msg)
                        .with_label(spans[k], "this float")
                        .with_label(span, "in this array")
                        .with_help("convert the tensors first, e.g. `float(x)`"),
                );
            }
            Val::Int(Dim::Sym(_)) if !el.building() => {
                items.push(Val::Tensor(TVal { ty: Ty::scalar(dtype), id: None }))
            }
            v if is_number(v) => match el.as_tensor(v, dtype, spans[k]) {
                Some(t) => items.push(Val::Tensor(t)),
                None => return Val::Poison,
            },
            other => {
                return bad(el, format!("array literals hold numbers or tensors, found {}", other.describe()), spans[k])
            }
        }
    }
    let arg = CallArg { name: None, name_span: None, value: Val::Tuple(items), span };
    super::join::join(el, "stack", &[arg], span)
}

/// A constant of `dims` from numbers (row-major): `i32` unless one is a float.
fn numbers(el: &mut Elaborator, vals: &[Val], dims: &[usize], span: Span) -> Val {
    let mut xs = Vec::with_capacity(vals.len());
    let mut dtype = DType::I32;
    for v in vals {
        match v {
            Val::Float(x) => {
                dtype = DType::F32;
                xs.push(*x)
            }
            Val::Int(Dim::Known(n)) => xs.push(*n as f64),
            Val::NegInt(n) => xs.push(*n as f64),
            // A symbolic dim: check mode, where no value is built.
            _ => xs.push(0.0),
        }
    }
    // An all-integer array is i32: a value beyond it would be clamped silently.
    let in_i32 = |x: &&f64| (i32::MIN as f64..=i32::MAX as f64).contains(*x);
    if let Some(x) = xs.iter().find(|x| dtype == DType::I32 && !in_i32(x)) {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("{x} does not fit an i32 array element"))
                .with_label(span, "in this array")
                .with_help("write it as a float (`3e9`) for an f32 array"),
        );
    }
    let ty = Ty { dtype, dims: dims.iter().map(|&d| Dim::Known(d)).collect() };
    if !el.building() {
        return Val::Tensor(TVal { ty, id: None });
    }
    let b = el.b();
    // Runs of bitwise-equal values (so -0.0 stays apart from 0.0).
    let mut runs: Vec<(f64, usize)> = Vec::new();
    for &x in &xs {
        match runs.last_mut() {
            Some((y, n)) if y.to_bits() == x.to_bits() => *n += 1,
            _ => runs.push((x, 1)),
        }
    }
    let pieces: Vec<_> = runs.iter().map(|&(x, n)| b.full(x, &Type::new(dtype, &[n]))).collect();
    let flat = match pieces.len() {
        0 => b.full(0.0, &Type::new(dtype, &[0])),
        1 => pieces[0],
        _ => b.concat(pieces, 0),
    };
    let id = if dims.len() == 1 { flat } else { b.reshape(flat, &Shape(dims.to_vec())) };
    Val::Tensor(TVal { ty, id: Some(id) })
}

fn bad(el: &mut Elaborator, msg: String, span: Span) -> Val {
    el.error(Diagnostic::error(Code::TypeMismatch, msg).with_label(span, "in this array"))
}
