//! Trees of tensors: tensors in tuples, to any depth, as JAX's pytrees of
//! arrays. The transformations take and return them: `grad(loss)(params,
//! x)` with `params = (w, b)` gives `(dw, db)`, `vmap` maps every tensor of
//! a tuple argument, `jvp`, `vjp` and the Jacobians take tuples and return
//! them, and `scan`, `checkpoint` and `custom_vjp` carry them.
//!
//! A model is a tree too (Equinox's modules): its leaves are its
//! parameters and buffers (by field name), then its submodules', so
//! `grad(fn(m) = loss(m, x, y))(self)` is a gradient shaped as the model
//! (`g.l.weight`), and `vmap(grad(...), in_axes = (None, 0, 0))(self, x,
//! y)` one per example. Jacobians and batching along a model's axis are
//! refused: only transformations whose results keep each tensor's place
//! take them.
//!
//! A transformation works on the leaves (the tensors, depth first): it
//! lowers an IR function whose params are the arguments' leaves and whose
//! outputs are the result's leaves, then puts new leaves back in the shape
//! of the arguments or the result with `with_ids` or `map_leaves`.

use super::elab::{CallArg, Elaborator, Env};
use super::value::{ModelInst, TVal, Val};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, ValueId};
use crate::span::Span;
use std::rc::Rc;

/// `v` as a tree of tensors: tuples as they are, numbers as `f32` scalars
/// (as a lone number argument of a transformed function is), `true` and
/// `false` as `bool` scalars (no derivative). `None` once it reported a
/// value that is neither (a string, a function); a model is kept as it is.
pub(super) fn tensor_tree(el: &mut Elaborator, v: &Val, span: Span) -> Option<Val> {
    match v {
        Val::Tuple(items) => items.iter().map(|x| tensor_tree(el, x, span)).collect::<Option<Vec<_>>>().map(Val::Tuple),
        Val::Tensor(_) | Val::Model(_) => Some(v.clone()),
        Val::Bool(_) => el.as_tensor(v, DType::Bool, span).map(Val::Tensor),
        other => el.as_tensor(other, DType::F32, span).map(Val::Tensor),
    }
}

/// `v` as a tree shaped as `like` (a tree of tensors): where `like` has a
/// tensor, a number in `v` becomes a scalar of that tensor's dtype (a
/// cotangent `1.0` for an `f64` output). Only the conversion: the caller
/// compares the result's types with `like`'s (`first_difference`).
pub(super) fn tensor_tree_like(el: &mut Elaborator, v: &Val, like: &Val, span: Span) -> Option<Val> {
    match (v, like) {
        (Val::Tuple(items), Val::Tuple(likes)) if items.len() == likes.len() => items
            .iter()
            .zip(likes)
            .map(|(x, l)| tensor_tree_like(el, x, l, span))
            .collect::<Option<Vec<_>>>()
            .map(Val::Tuple),
        (Val::Tuple(_), _) => tensor_tree(el, v, span),
        (_, Val::Tensor(l)) => el.as_tensor(v, l.ty.dtype, span).map(Val::Tensor),
        _ => tensor_tree(el, v, span),
    }
}

/// The tensors of `v`, depth first: a tuple's in order, a model's by field
/// name, then its submodules' (what holds no tensor is skipped).
pub(super) fn leaves(v: &Val) -> Vec<TVal> {
    fn push(v: &Val, out: &mut Vec<TVal>) {
        match v {
            Val::Tensor(t) => out.push(t.clone()),
            Val::Tuple(items) => items.iter().for_each(|x| push(x, out)),
            Val::Model(m) => push_model(m, out),
            _ => {}
        }
    }
    fn push_model(m: &ModelInst, out: &mut Vec<TVal>) {
        out.extend(m.params.values().cloned());
        m.subs.values().for_each(|s| push_model(s, out));
    }
    let mut out = Vec::new();
    push(v, &mut out);
    out
}

/// The IR values of `v`'s tensors, depth first (build mode: all present).
pub(super) fn leaf_ids(v: &Val) -> Vec<ValueId> {
    leaves(v).into_iter().map(|t| t.id.expect("built")).collect()
}

/// Whether `v` holds tensors only (no numbers, functions, ...), in tuples
/// to any depth; an empty tuple does.
pub(super) fn only_tensors(v: &Val) -> bool {
    match v {
        Val::Tensor(_) => true,
        Val::Tuple(items) => items.iter().all(only_tensors),
        _ => false,
    }
}

/// Whether `v` is a tree of tensors only, holding at least one tensor.
pub(super) fn is_tensor_tree(v: &Val) -> bool {
    only_tensors(v) && !leaves(v).is_empty()
}

/// `template` with each tensor replaced by `f(tensor)`, depth first; what
/// is neither a tensor, a tuple nor a model is kept. A model's tensors must
/// map to tensors (callers refuse models where they would not).
pub(super) fn map_leaves(template: &Val, f: &mut impl FnMut(&TVal) -> Val) -> Val {
    match template {
        Val::Tensor(t) => f(t),
        Val::Tuple(items) => Val::Tuple(items.iter().map(|x| map_leaves(x, f)).collect()),
        Val::Model(m) => Val::Model(map_model(m, f)),
        other => other.clone(),
    }
}

fn map_model(m: &ModelInst, f: &mut impl FnMut(&TVal) -> Val) -> Rc<ModelInst> {
    let params = m
        .params
        .iter()
        .map(|(k, t)| match f(t) {
            Val::Tensor(t) => (k.clone(), t),
            other => unreachable!("a model's tensor maps to a tensor, not {}", other.describe()),
        })
        .collect();
    let subs = m.subs.iter().map(|(k, s)| (k.clone(), map_model(s, f))).collect();
    Rc::new(ModelInst {
        name: m.name.clone(),
        module: m.module,
        item: m.item,
        path: m.path.clone(),
        config: m.config.clone(),
        params,
        buffers: m.buffers.clone(),
        absent: m.absent.clone(),
        subs,
        lists: m.lists.clone(),
        span: m.span,
    })
}

/// Whether `v` is a tree of float tensors (tensors, tuples and models)
/// holding at least one: what a transformation may differentiate as a
/// result (a model: a gradient shaped as one).
pub(super) fn is_float_tree(v: &Val) -> bool {
    fn tensors_or_models(v: &Val) -> bool {
        match v {
            Val::Tensor(_) | Val::Model(_) => true,
            Val::Tuple(items) => items.iter().all(tensors_or_models),
            _ => false,
        }
    }
    tensors_or_models(v) && !leaves(v).is_empty() && non_float_leaf(v).is_none()
}

/// Whether `v` holds a model (in tuples, at any depth).
pub(super) fn has_model(v: &Val) -> bool {
    match v {
        Val::Model(_) => true,
        Val::Tuple(items) => items.iter().any(has_model),
        _ => false,
    }
}

/// `template` with its tensors' IR values replaced, in order, by `ids`
/// (types unchanged).
pub(super) fn with_ids(template: &Val, ids: &mut impl Iterator<Item = ValueId>) -> Val {
    map_leaves(template, &mut |t| {
        Val::Tensor(TVal { ty: t.ty.clone(), id: Some(ids.next().expect("one IR value per tensor")) })
    })
}

/// `template` without IR values: what a transformation returns in check mode.
pub(super) fn without_ids(template: &Val) -> Val {
    map_leaves(template, &mut |t| Val::Tensor(TVal { ty: t.ty.clone(), id: None }))
}

/// `v`'s structure and types for messages: `f32[3]`, `(f32[3], (f32, i32[2]))`.
pub(super) fn describe(v: &Val) -> String {
    match v {
        Val::Tensor(t) => t.ty.to_string(),
        Val::Tuple(items) if items.len() == 1 => format!("({},)", describe(&items[0])),
        Val::Tuple(items) => format!("({})", items.iter().map(describe).collect::<Vec<_>>().join(", ")),
        other => other.describe(),
    }
}

/// Where trees `a` and `b` first differ, in structure or in a tensor's
/// type: the two subtrees, described; `None` when they match.
pub(super) fn first_difference(a: &Val, b: &Val) -> Option<(String, String)> {
    match (a, b) {
        (Val::Tensor(x), Val::Tensor(y)) if x.ty == y.ty => None,
        (Val::Tuple(xs), Val::Tuple(ys)) if xs.len() == ys.len() => {
            xs.iter().zip(ys).find_map(|(x, y)| first_difference(x, y))
        }
        (Val::Model(x), Val::Model(y))
            if x.name == y.name && leaves(a).iter().map(|t| &t.ty).eq(leaves(b).iter().map(|t| &t.ty)) =>
        {
            None
        }
        _ => Some((describe(a), describe(b))),
    }
}

/// The first tensor of `v` that is not a float, if any.
pub(super) fn non_float_leaf(v: &Val) -> Option<TVal> {
    leaves(v).into_iter().find(|t| !t.ty.dtype.is_float())
}

/// `tree_map(f, tree, more...)` (`jax.tree_util.tree_map`): `f` applied to
/// each leaf of `tree` (a tensor or number; tuples and models are the
/// nodes) with the leaves at the same place in `more`, which must have
/// `tree`'s structure; the results in that structure. An SGD step on a
/// tuple of parameters is `tree_map(fn(p, g) = p - 0.1 * g, params, grads)`.
pub(super) fn tree_map(el: &mut Elaborator, env: &mut Env, args: Vec<CallArg>, span: Span) -> Val {
    const USAGE: &str = "tree_map(f, tree, more_trees...) takes a function, then one tree or more, by position";
    if args.len() < 2 || args.iter().any(|a| a.name.is_some()) {
        return el.error(Diagnostic::error(Code::BadCall, USAGE).with_label(span, "in this call"));
    }
    let f = args[0].value.clone();
    if super::transform::value_sig(el, &f).is_none() && !matches!(f, Val::Builtin(_)) {
        let d = Diagnostic::error(Code::BadCall, format!("tree_map needs a function first, not {}", f.describe()))
            .with_label(args[0].span, "not a function");
        return el.error(d);
    }
    let trees: Vec<Val> = args[1..].iter().map(|a| a.value.clone()).collect();
    let spans: Vec<Span> = args[1..].iter().map(|a| a.span).collect();
    match map_together(el, env, &f, &trees, &spans, span) {
        Ok(v) => v,
        Err(d) => el.error(d),
    }
}

/// `tree_map`'s recursion over trees of one structure (`trees[0]`'s).
fn map_together(
    el: &mut Elaborator,
    env: &mut Env,
    f: &Val,
    trees: &[Val],
    spans: &[Span],
    span: Span,
) -> Result<Val, Diagnostic> {
    let mismatch = |k: usize| {
        Diagnostic::error(
            Code::TypeMismatch,
            format!(
                "tree_map's trees must have one structure, but tree {k} is {} where the first is {}",
                describe(&trees[k]),
                describe(&trees[0])
            ),
        )
        .with_label(spans[k], format!("this is {}", describe(&trees[k])))
        .with_label(spans[0], format!("this is {}", describe(&trees[0])))
    };
    match &trees[0] {
        Val::Tuple(first) => {
            let mut columns: Vec<Vec<Val>> = vec![Vec::with_capacity(trees.len()); first.len()];
            for (k, t) in trees.iter().enumerate() {
                match t {
                    Val::Tuple(items) if items.len() == first.len() => {
                        items.iter().zip(&mut columns).for_each(|(x, c)| c.push(x.clone()))
                    }
                    _ => return Err(mismatch(k)),
                }
            }
            let items = columns.iter().map(|c| map_together(el, env, f, c, spans, span)).collect::<Result<_, _>>()?;
            Ok(Val::Tuple(items))
        }
        Val::Model(first) => {
            for (k, t) in trees.iter().enumerate() {
                match t {
                    Val::Model(m) if m.name == first.name && leaves(t).len() == leaves(&trees[0]).len() => {}
                    _ => return Err(mismatch(k)),
                }
            }
            // Each model's tensors in one order: map the first, taking the
            // others' tensors at the same place.
            let others: Vec<Vec<TVal>> = trees[1..].iter().map(leaves).collect();
            let mut place = 0;
            // The first result that is no tensor (a model holds tensors).
            let mut failure: Option<Val> = None;
            let mapped = map_leaves(&trees[0], &mut |t| {
                let mut args = vec![Val::Tensor(t.clone())];
                args.extend(others.iter().map(|o| Val::Tensor(o[place].clone())));
                place += 1;
                let call_args =
                    args.into_iter().map(|value| CallArg { name: None, name_span: None, value, span }).collect();
                match el.call(env, f.clone(), span, call_args, span) {
                    Val::Tensor(r) => Val::Tensor(r),
                    other => {
                        failure.get_or_insert(other);
                        Val::Tensor(t.clone())
                    }
                }
            });
            match failure {
                None => Ok(mapped),
                Some(Val::Poison) => Ok(Val::Poison),
                Some(other) => Err(Diagnostic::error(
                    Code::TypeMismatch,
                    format!(
                        "tree_map over a `{}` model needs `f` to return a tensor for each of its tensors, not {}",
                        first.name,
                        describe(&other)
                    ),
                )
                .with_label(span, "in this tree_map")),
            }
        }
        _ => {
            for (k, t) in trees.iter().enumerate().skip(1) {
                if matches!(t, Val::Tuple(_) | Val::Model(_)) {
                    return Err(mismatch(k));
                }
            }
            let call_args =
                trees.iter().map(|value| CallArg { name: None, name_span: None, value: value.clone(), span }).collect();
            Ok(el.call(env, f.clone(), span, call_args, span))
        }
    }
}
