//! Indexing and slicing with static integers: `x[i]`, `x[:, 0:10]`,
//! `x[..., -1]`, `x[::2]`.
//!
//! Consumes the index items of one `x[...]` and the indexed tensor; produces
//! the result tensor. In build mode it emits a `Reverse` of the axes sliced
//! with a negative step (when there are any), one IR `Slice` (start, limit,
//! stride per axis) and, when some axes were picked by a single index, a
//! `Reshape` that drops them. In check mode dims may be symbolic: a bound is
//! checked against a dim only when that dim is known, and a slice of a
//! symbolic dim has a length that is known when it does not depend on the
//! dim (`x[0:3]`, `x[-2:]`), else a fresh symbolic dim.
//!
//! The rules, for an axis of size `d` (negative numbers count from the end,
//! `i < 0` means `d + i`, as in NumPy):
//!   `i`          -> keeps element i, drops the axis;   needs 0 <= i < d
//!   `a:b:s`, s>0 -> elements a, a+s, ... < b;          needs 0 <= a < b <= d
//!                   length ceil((b - a) / s); `a` defaults to 0, `b` to d, `s` to 1
//!   `a:b:s`, s<0 -> elements a, a+s, ... > b (Python);  needs 0 <= b < a < d
//!                   length ceil((a - b) / |s|); `a` defaults to d - 1, and a
//!                   missing `b` means "through element 0" (b = -1 before
//!                   normalizing, which a written `-1` cannot say: it is d - 1)
//!   `...`        -> `:` for every axis not indexed otherwise (at most one `...`)
//! Axes after the last item are kept whole. Unlike NumPy, a bound past the
//! end is an error, not clamped: silently shortening a slice hides bugs.
//! An empty slice and a zero step are errors too.
//!
//! A negative step is lowered as `Reverse` then a positive-step `Slice`:
//! position i of the axis is position r = d - 1 - i of the reversed axis, so
//! `a, a - |s|, ... > b` is `d-1-a, d-1-a + |s|, ... < d-1-b` there.

use super::elab::{Elaborator, Env};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;
use crate::syntax::ast::{Expr, ExprKind, IndexItem, UnOp};

/// A static integer in an index: known, or (check mode) symbolic.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Known(i64),
    Unknown,
}

/// One axis of the index after `...` has been expanded.
enum AxisIndex {
    At(Num, Span),
    Slice { start: Option<Num>, end: Option<Num>, step: i64, span: Span },
}

pub fn index(el: &mut Elaborator, env: &mut Env, base: Val, base_span: Span, items: &[IndexItem], span: Span) -> Val {
    if let Val::Tuple(elems) = &base {
        return index_tuple(el, env, elems, base_span, items, span);
    }
    // Evaluate every index expression first, so errors in them are reported.
    let mut axes: Vec<Option<AxisIndex>> = Vec::new(); // `None` marks the ellipsis
    let mut ok = true;
    for it in items {
        match it {
            IndexItem::At(e) => match static_int(el, env, e) {
                Some(n) => axes.push(Some(AxisIndex::At(n, e.span))),
                None => ok = false,
            },
            IndexItem::Slice { start, end, step } => {
                let parts: Vec<&Expr> = [start, end, step].into_iter().flatten().collect();
                let item_span = match (parts.first(), parts.last()) {
                    (Some(a), Some(b)) => a.span.to(b.span),
                    _ => span,
                };
                let mut eval = |el: &mut Elaborator, e: &Option<Expr>| -> Result<Option<Num>, ()> {
                    match e {
                        None => Ok(None),
                        Some(e) => static_int(el, env, e).map(Some).ok_or(()),
                    }
                };
                let (Ok(s), Ok(en), Ok(st)) = (eval(el, start), eval(el, end), eval(el, step)) else {
                    ok = false;
                    continue;
                };
                let step_val = match st {
                    None => 1,
                    Some(Num::Known(k)) if k != 0 => k,
                    Some(Num::Known(_)) => {
                        let step_span = step.as_ref().map_or(item_span, |e| e.span);
                        el.error(
                            Diagnostic::error(Code::BadCall, "a slice step cannot be 0")
                                .with_label(step_span, "this step")
                                .with_help("use a positive step, or a negative one to go backwards (`x[::-1]`)"),
                        );
                        ok = false;
                        continue;
                    }
                    Some(Num::Unknown) => {
                        let step_span = step.as_ref().map_or(item_span, |e| e.span);
                        el.error(
                            Diagnostic::error(Code::TypeMismatch, "a slice step must be known where it is checked")
                                .with_label(step_span, "this step depends on a parameter"),
                        );
                        ok = false;
                        continue;
                    }
                };
                axes.push(Some(AxisIndex::Slice { start: s, end: en, step: step_val, span: item_span }));
            }
            IndexItem::Ellipsis(s) => {
                if axes.iter().any(Option::is_none) {
                    el.error(
                        Diagnostic::error(Code::BadCall, "an index can have only one `...`")
                            .with_label(*s, "a second `...`"),
                    );
                    ok = false;
                }
                axes.push(None);
            }
        }
    }
    let t = match base {
        Val::Tensor(t) => t,
        Val::Poison => return Val::Poison,
        other => {
            return el.error(
                Diagnostic::error(Code::TypeMismatch, format!("cannot index {}", other.describe()))
                    .with_label(base_span, format!("this is {}", other.describe()))
                    .with_help("only tensors can be indexed"),
            )
        }
    };
    if !ok {
        return Val::Poison;
    }
    let rank = t.ty.rank();
    let explicit = axes.iter().filter(|a| a.is_some()).count();
    if explicit > rank {
        return el.error(
            Diagnostic::error(
                Code::ShapeMismatch,
                format!("{explicit} indices for a tensor of type {}, which has {rank} axes", t.ty),
            )
            .with_label(span, format!("{explicit} indices"))
            .with_label(base_span, format!("this is {}", t.ty)),
        );
    }
    // Expand `...` (or the implicit trailing one) into full slices.
    let mut full: Vec<AxisIndex> = Vec::with_capacity(rank);
    let mut expanded = false;
    for a in axes {
        match a {
            Some(a) => full.push(a),
            None => {
                expanded = true;
                for _ in 0..rank - explicit {
                    full.push(AxisIndex::Slice { start: None, end: None, step: 1, span });
                }
            }
        }
    }
    if !expanded {
        while full.len() < rank {
            full.push(AxisIndex::Slice { start: None, end: None, step: 1, span });
        }
    }
    let mut start = Vec::with_capacity(rank);
    let mut limit = Vec::with_capacity(rank);
    let mut stride = Vec::with_capacity(rank);
    let mut reversed: Vec<usize> = Vec::new();
    let mut kept: Vec<Dim> = Vec::new();
    for (axis, (ix, dim)) in full.iter().zip(&t.ty.dims).enumerate() {
        let size = match dim {
            Dim::Known(n) => Some(*n as i64),
            Dim::Sym(_) => None,
        };
        let out_of_bounds = |el: &mut Elaborator, what: String, at: Span| {
            el.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("{what} is out of bounds for axis {axis} of {}, which has size {dim}", t.ty),
                )
                .with_label(at, what.clone())
                .with_label(base_span, format!("this is {}", t.ty)),
            )
        };
        match *ix {
            AxisIndex::At(n, at) => {
                if let (Num::Known(i), Some(d)) = (n, size) {
                    let j = if i < 0 { i + d } else { i };
                    if j < 0 || j >= d {
                        return out_of_bounds(el, format!("index {i}"), at);
                    }
                    start.push(j as usize);
                    limit.push(j as usize + 1);
                    stride.push(1);
                } else {
                    // Check mode with a symbolic dim or index: the axis is dropped either way.
                    start.push(0);
                    limit.push(0);
                    stride.push(1);
                }
            }
            AxisIndex::Slice { start: s, end: e, step, span: at } => {
                let text = slice_text(s, e, step);
                match size {
                    Some(d) if step < 0 => {
                        let norm = |v: Option<Num>, default: i64| match v {
                            None => Num::Known(default),
                            Some(Num::Known(i)) if i < 0 => Num::Known(i + d),
                            Some(other) => other,
                        };
                        match (norm(s, d - 1), norm(e, -1)) {
                            (Num::Known(a), Num::Known(b)) => {
                                // A written end is an element (>= 0); only a missing one is -1.
                                let end_ok = if e.is_none() { b == -1 } else { (0..d).contains(&b) };
                                if !(0..d).contains(&a) || !end_ok {
                                    return out_of_bounds(el, format!("slice {text}"), at);
                                }
                                if a <= b {
                                    let mut d = Diagnostic::error(
                                        Code::ShapeMismatch,
                                        format!("slice {text} of axis {axis} of {} is empty", t.ty),
                                    )
                                    .with_label(at, format!("a negative step goes down from {a} to {b} (exclusive)"))
                                    .with_label(base_span, format!("this is {}", t.ty));
                                    if matches!(e, Some(Num::Known(i)) if i < 0) {
                                        d = d.with_help(format!(
                                            "a negative end counts from the end of the axis; to go down through \
                                             element 0, leave the end out: `{}::{step}`",
                                            a
                                        ));
                                    }
                                    return el.error(d);
                                }
                                let step = step.unsigned_abs() as usize;
                                reversed.push(axis);
                                start.push((d - 1 - a) as usize);
                                limit.push((d - 1 - b) as usize);
                                stride.push(step);
                                kept.push(Dim::Known(((a - b) as usize).div_ceil(step)));
                            }
                            _ => {
                                start.push(0);
                                limit.push(0);
                                stride.push(1);
                                kept.push(el.fresh_dim("S", unknown_slice_length(&text)));
                            }
                        }
                    }
                    Some(d) => {
                        let norm = |v: Option<Num>, default: i64| match v {
                            None => Num::Known(default),
                            Some(Num::Known(i)) if i < 0 => Num::Known(i + d),
                            Some(other) => other,
                        };
                        match (norm(s, 0), norm(e, d)) {
                            (Num::Known(a), Num::Known(b)) => {
                                if a < 0 || b < 0 || a > d || b > d {
                                    return out_of_bounds(el, format!("slice {text}"), at);
                                }
                                if a >= b {
                                    return el.error(
                                        Diagnostic::error(
                                            Code::ShapeMismatch,
                                            format!("slice {text} of axis {axis} of {} is empty", t.ty),
                                        )
                                        .with_label(at, format!("selects elements {a} to {b} (exclusive)"))
                                        .with_label(base_span, format!("this is {}", t.ty)),
                                    );
                                }
                                start.push(a as usize);
                                limit.push(b as usize);
                                stride.push(step as usize);
                                kept.push(Dim::Known(((b - a) as usize).div_ceil(step as usize)));
                            }
                            _ => {
                                start.push(0);
                                limit.push(0);
                                stride.push(1);
                                kept.push(el.fresh_dim("S", unknown_slice_length(&text)));
                            }
                        }
                    }
                    None => {
                        // A symbolic dim: the length is known when it does not depend on the dim.
                        let abs = step.unsigned_abs() as usize;
                        let len = match (s, e) {
                            (None | Some(Num::Known(0)), None) if step == 1 => Some(dim.clone()),
                            (None, None) if step == -1 => Some(dim.clone()),
                            (Some(Num::Known(a)), Some(Num::Known(b))) if step > 0 && (a < 0) == (b < 0) && a < b => {
                                Some(Dim::Known(((b - a) as usize).div_ceil(abs)))
                            }
                            (Some(Num::Known(a)), Some(Num::Known(b))) if step < 0 && (a < 0) == (b < 0) && a > b => {
                                Some(Dim::Known(((a - b) as usize).div_ceil(abs)))
                            }
                            (Some(Num::Known(a)), None) if step > 0 && a < 0 => {
                                Some(Dim::Known((a.unsigned_abs() as usize).div_ceil(abs)))
                            }
                            // From element a down through 0: a + 1 elements.
                            (Some(Num::Known(a)), None) if step < 0 && a >= 0 => {
                                Some(Dim::Known((a as usize + 1).div_ceil(abs)))
                            }
                            // From the last element down to d + b (exclusive): -b - 1 elements.
                            (None, Some(Num::Known(b))) if step < 0 && b < -1 => {
                                Some(Dim::Known(((-b - 1) as usize).div_ceil(abs)))
                            }
                            _ => None,
                        };
                        start.push(0);
                        limit.push(0);
                        stride.push(1);
                        kept.push(len.unwrap_or_else(|| {
                            el.fresh_dim("S", format!("the length of slice `{text}` of an axis of size {dim}"))
                        }));
                    }
                }
            }
        }
    }
    let ty = Ty { dtype: t.ty.dtype, dims: kept };
    let id = match t.id {
        Some(x) if el.building() => {
            let b = el.b();
            let x = if reversed.is_empty() { x } else { b.reverse(x, reversed) };
            let sliced = b.slice(x, start, limit, stride);
            let shape = ty.to_ir().expect("known dims in build mode").shape;
            Some(b.reshape(sliced, &shape))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty, id })
}

/// `a:b:s` as the user would write it (for messages).
fn slice_text(s: Option<Num>, e: Option<Num>, step: i64) -> String {
    let part = |n: Option<Num>| match n {
        None => String::new(),
        Some(Num::Known(i)) => i.to_string(),
        Some(Num::Unknown) => "?".into(),
    };
    let mut out = format!("{}:{}", part(s), part(e));
    if step != 1 {
        out.push_str(&format!(":{step}"));
    }
    out
}

/// An index must be an integer known at compile time. A leading `-` is
/// read here (compile-time integers are non-negative, so `-1` would
/// otherwise become a float).
/// `t[i]` on a tuple (a submodule list `self.blocks`, a returned pair): the
/// element at compile-time index `i`, negative counting from the end.
fn index_tuple(
    el: &mut Elaborator,
    env: &mut Env,
    elems: &[Val],
    base_span: Span,
    items: &[IndexItem],
    span: Span,
) -> Val {
    let n = elems.len();
    let [IndexItem::At(e)] = items else {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("a tuple of {n} takes one integer index, like `t[0]`"))
                .with_label(span, "indexed here"),
        );
    };
    match static_int(el, env, e) {
        Some(Num::Known(i)) if (-(n as i64)..n as i64).contains(&i) => {
            elems[if i < 0 { (i + n as i64) as usize } else { i as usize }].clone()
        }
        Some(Num::Known(i)) => el.error(
            Diagnostic::error(Code::ShapeMismatch, format!("index {i} is out of range for a tuple of {n}"))
                .with_label(e.span, format!("valid indices are {} to {}", -(n as i64), n as i64 - 1))
                .with_label(base_span, format!("this has {n} elements")),
        ),
        Some(Num::Unknown) => el.error(
            Diagnostic::error(Code::TypeMismatch, "a tuple index must be known at compile time")
                .with_label(e.span, "this depends on a symbolic dim"),
        ),
        None => Val::Poison,
    }
}

fn static_int(el: &mut Elaborator, env: &mut Env, e: &Expr) -> Option<Num> {
    if let ExprKind::Unary(UnOp::Neg, inner) = &e.kind {
        return match static_int(el, env, inner)? {
            Num::Known(n) => Some(Num::Known(-n)),
            Num::Unknown => Some(Num::Unknown),
        };
    }
    match el.expr(env, e) {
        Val::Int(Dim::Known(n)) => Some(Num::Known(n as i64)),
        Val::NegInt(n) => Some(Num::Known(n)),
        Val::Int(Dim::Sym(_)) => Some(Num::Unknown),
        Val::Poison => None,
        other => {
            el.error(
                Diagnostic::error(Code::TypeMismatch, "an index must be an integer known at compile time")
                    .with_label(e.span, format!("this is {}", other.describe())),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;

/// What a slice's length is when its bounds are not numbers yet.
fn unknown_slice_length(text: &str) -> String {
    format!("the length of slice `{text}`, known once its bounds are (when the program is built)")
}
