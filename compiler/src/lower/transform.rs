//! Transformations called from source: `grad(f, wrt = ...)(args)`,
//! `value_and_grad`, `jvp(f, primals, tangents)` and `vjp(f, primals...)`.
//! `f` is any function value whose parameters are known: a named function,
//! a lambda (`fn(w) = loss(w, x, y)`), a model or method, or another
//! transformation (`grad(grad(f))`, `jvp(grad(f), (x,), (v,))`: a
//! Hessian-vector product), to any depth.
//!
//! In build mode the function is lowered on its own (`lower_alone`: a fresh
//! IR function whose params are the arguments), transformed by `autodiff`
//! (IR to IR), and the result is inlined at the call site. In check mode
//! the function is checked on the arguments' types and the results get the
//! types the transformation gives them:
//!   grad:  d f / d x_i  has x_i's type
//!   jvp:   (f(x), J v)  with J v of f(x)'s type; tangents have the primals' types
//!   vjp:   (f(x), pullback), pullback(ct) = (ct J)_i per primal, ct of f(x)'s type

use super::elab::{CallArg, Elaborator};
use super::tree;
use super::value::{Callee, LambdaVal, ModelInst, TVal, Val};
use crate::autodiff::inline_outputs as inline;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, Func, ValueId};
use crate::span::Span;
use std::collections::HashMap;
use std::rc::Rc;

/// `grad(f, wrt = ...)` / `value_and_grad(f, wrt = ...)`: the function value
/// waiting for its arguments. `args[0]` is `f`; `wrt` arrives as a tuple of
/// names (the elaborator keeps them unevaluated).
pub fn make_grad(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let (f, wrt) = match function_and_wrt(el, name, args, &["has_aux"], span) {
        Ok(x) => x,
        Err(v) => return v,
    };
    let has_aux = match args.iter().find(|a| a.name.as_deref() == Some("has_aux")) {
        None => false,
        Some(CallArg { value: Val::Bool(b), .. }) => *b,
        Some(a) => {
            let msg = "`has_aux` is `true` or `false`, known at compile time: with `true`, f returns `(loss, aux)`";
            return bad(el, msg, a.span);
        }
    };
    Val::Grad { f, wrt, with_value: name == "value_and_grad", has_aux }
}

/// The function a differentiating transformation (`grad`, `jacrev`, ...)
/// applies to (`args[0]`) and the names in its `wrt` (by default `f`'s
/// first parameter); `more` are the other keywords it takes. `Err` holds
/// the value to return: the error is reported.
pub(super) fn function_and_wrt(
    el: &mut Elaborator,
    name: &str,
    args: &[CallArg],
    more: &[&str],
    span: Span,
) -> Result<(Callee, Vec<String>), Val> {
    let f = match args.first().map(|a| &a.value) {
        Some(Val::Poison) => return Err(Val::Poison),
        Some(v) if callee_of_value(el, v).is_some() => callee_of_value(el, v).expect("checked"),
        Some(Val::Builtin(b)) => return Err(builtin_callee(el, name, b, args[0].span)),
        _ => {
            return Err(bad(
                el,
                &format!("{name}(f, wrt = ...) needs a function (named, or `fn(x) = ...`) first"),
                span,
            ))
        }
    };
    let wrt = match args.iter().find(|a| a.name.as_deref() == Some("wrt")) {
        Some(CallArg { value: Val::Tuple(items), .. }) => {
            items.iter().filter_map(|v| if let Val::Str(s) = v { Some(s.clone()) } else { None }).collect()
        }
        Some(_) => return Err(bad(el, "`wrt` names the parameters to differentiate, e.g. `wrt = (w, b)`", span)),
        None => el.callee_sig(&f).1.first().map(|p| vec![p.name.name.clone()]).unwrap_or_default(),
    };
    let takes = |n: &str| n == "wrt" || more.contains(&n);
    if let Some(a) = args.iter().skip(1).find(|a| !a.name.as_deref().is_some_and(takes)) {
        let keywords: Vec<String> =
            std::iter::once("wrt").chain(more.iter().copied()).map(|k| format!("{k} = ...")).collect();
        return Err(bad(el, &format!("{name}(f, {}) takes no other arguments", keywords.join(", ")), a.span));
    }
    Ok((f, wrt))
}

/// `(loss, aux)` from what a `has_aux` function returned: a pair whose
/// second part is tensors (in tuples, to any depth) and compile-time values.
fn split_aux(out: Val, name: &str, span: Span) -> Result<(Val, Val), Diagnostic> {
    fn passes(v: &Val) -> bool {
        match v {
            Val::Tensor(_) | Val::Int(_) | Val::NegInt(_) | Val::Float(_) | Val::Bool(_) | Val::Str(_) => true,
            Val::Tuple(items) => items.iter().all(passes),
            _ => false,
        }
    }
    match out {
        Val::Tuple(items) if items.len() == 2 && passes(&items[1]) => {
            let mut items = items.into_iter();
            Ok((items.next().expect("two"), items.next().expect("two")))
        }
        Val::Poison => Ok((Val::Poison, Val::Poison)),
        other => Err(Diagnostic::error(
            Code::TypeMismatch,
            format!(
                "with `has_aux = true`, {name} must return `(loss, aux)`, aux being tensors or tuples of them, but it returns {}",
                other.describe()
            ),
        )
        .with_label(span, "differentiated here")
        .with_help("return a pair: `(loss, (logits, accuracy))`")),
    }
}

/// `grad(f)(args)` / `value_and_grad(f)(args)`; `(with_value, has_aux)` as
/// `Val::Grad` holds them.
pub fn call_grad(
    el: &mut Elaborator,
    f: Callee,
    wrt: &[String],
    (with_value, has_aux): (bool, bool),
    args: Vec<CallArg>,
    span: Span,
) -> Val {
    let (fname, params) = el.callee_sig(&f);
    let Some((wrt_idx, trees)) = differentiated_args(el, "grad", &fname, &params, wrt, &args, span) else {
        return Val::Poison;
    };
    if !el.building() {
        // Check mode: check the function on these types; the gradients have the inputs' types.
        // It gets the arguments as trees of tensors, as `lower_alone` gives them when building
        // (a number becomes an f32 scalar), so checking agrees with building.
        let out = el.call_callee(&f, as_tree_args(&trees, &args), span);
        let (out, aux) = if has_aux {
            match split_aux(out, &fname, span) {
                Ok((out, aux)) => (out, Some(aux)),
                Err(d) => return el.error(d),
            }
        } else {
            (out, None)
        };
        if let Err(d) = float_output(&out, &fname, span, true) {
            return d.map_or(Val::Poison, |d| el.error(d));
        }
        let grads = wrt_idx.iter().map(|&i| tree::without_ids(&trees[i])).collect();
        return package(with_value, out, grads, aux);
    }
    let Some((func, out, captured, aux)) = lower_alone(el, &f, &fname, &trees, &args, span, Output::Loss { has_aux })
    else {
        return Val::Poison;
    };
    let ranges = leaf_ranges(&trees);
    let wrt_leaves: Vec<usize> = wrt_idx.iter().flat_map(|&i| ranges[i].clone()).collect();
    let grad_func = crate::autodiff::grad(&func, &wrt_leaves);
    crate::ir::verify::assert_valid(&grad_func, "autodiff::grad");
    let arg_ids: Vec<ValueId> = trees.iter().flat_map(tree::leaf_ids).chain(captured).collect();
    let outs = inline(el.b(), &grad_func, &arg_ids);
    // The function's outputs (loss, then aux's tensors), then the gradients.
    let n_out = func.outputs.len();
    let value = tree::with_ids(&out, &mut outs[..1].iter().copied());
    let aux = aux.map(|template| tree::with_ids(&template, &mut outs[1..n_out].iter().copied()));
    let mut grad_ids = outs[n_out..].iter().copied();
    let grads = wrt_idx.iter().map(|&i| tree::with_ids(&trees[i], &mut grad_ids)).collect();
    package(with_value, value, grads, aux)
}

/// The leaves of each argument tree, as ranges of the flattened leaves
/// (the params of a function `lower_alone` made).
pub(super) fn leaf_ranges(trees: &[Val]) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    trees
        .iter()
        .map(|t| {
            let n = tree::leaves(t).len();
            start += n;
            start - n..start
        })
        .collect()
}

/// The positions of the `wrt` parameters among `params` and the arguments
/// as trees of tensors (`positional_trees`); reports a `wrt` name that is
/// no parameter and a differentiated argument that holds a tensor that is
/// not a float.
pub(super) fn differentiated_args(
    el: &mut Elaborator,
    what: &str,
    fname: &str,
    params: &[crate::syntax::ast::Param],
    wrt: &[String],
    args: &[CallArg],
    span: Span,
) -> Option<(Vec<usize>, Vec<Val>)> {
    let mut wrt_idx = Vec::new();
    for w in wrt {
        match params.iter().position(|p| &p.name.name == w) {
            Some(i) => wrt_idx.push(i),
            None => {
                let mut d =
                    Diagnostic::error(Code::BadCall, format!("{fname} has no parameter `{w}` to differentiate"))
                        .with_label(span, format!("in this {what}"));
                let names: Vec<&str> = params.iter().map(|p| p.name.name.as_str()).collect();
                d = match super::suggest::closest(w, names.iter().copied()) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None if !names.is_empty() => d.with_help(format!("its parameters: {}", names.join(", "))),
                    None => d,
                };
                el.error(d);
                return None;
            }
        }
    }
    let trees = positional_trees(el, fname, params.len(), args, span)?;
    for &i in &wrt_idx {
        if let Some(t) = tree::non_float_leaf(&trees[i]) {
            let (what, label) = match &trees[i] {
                Val::Tensor(_) => (format!("it is {}", t.ty), "not a float".to_string()),
                whole => (format!("it holds {}", t.ty), format!("this is {}", tree::describe(whole))),
            };
            el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("cannot differentiate with respect to `{}`: {what}", params[i].name.name),
                )
                .with_label(args[i].span, label),
            );
            return None;
        }
    }
    Some((wrt_idx, trees))
}

/// `jvp(f, primals, tangents)`: `(f(primals...), J_f(primals) tangents)`,
/// forward mode. `primals` and `tangents` are tuples with one argument per
/// parameter of `f` (a single tensor stands for a 1-tuple); an argument is
/// a float tensor or a tuple of them, and its tangent has its structure and
/// types. `f` returns a float tensor or a tuple of them, and so does `J v`.
pub fn call_jvp(el: &mut Elaborator, args: Vec<CallArg>, span: Span) -> Val {
    if args.len() != 3 || args.iter().any(|a| a.name.is_some()) {
        return bad(el, "jvp(f, primals, tangents) takes three arguments by position", span);
    }
    let Some(f) = callee_of(el, &args[0], "jvp") else { return Val::Poison };
    let (fname, params) = el.callee_sig(&f);
    let as_args = |a: &CallArg| -> Vec<CallArg> {
        let items = match &a.value {
            Val::Tuple(items) => items.clone(),
            other => vec![other.clone()],
        };
        items.into_iter().map(|value| CallArg { name: None, name_span: None, value, span: a.span }).collect()
    };
    let (primal_args, tangent_args) = (as_args(&args[1]), as_args(&args[2]));
    let Some(primals) = positional_trees(el, &fname, params.len(), &primal_args, args[1].span) else {
        return Val::Poison;
    };
    if tangent_args.len() != primals.len() {
        return positional_count_error(el, &fname, params.len(), tangent_args.len(), args[2].span);
    }
    let mut tangents = Vec::with_capacity(primals.len());
    for (p, t) in primals.iter().zip(&tangent_args) {
        match tree::tensor_tree_like(el, &t.value, p, t.span) {
            Some(t) => tangents.push(t),
            None => return Val::Poison,
        }
    }
    for (i, (p, t)) in primals.iter().zip(&tangents).enumerate() {
        if let Some(leaf) = tree::non_float_leaf(p) {
            let what = if matches!(p, Val::Tensor(_)) { "it is" } else { "it holds" };
            return el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("cannot differentiate with respect to primal {i}: {what} {}", leaf.ty),
                )
                .with_label(args[1].span, format!("primal {i} is {}", tree::describe(p))),
            );
        }
        if let Some((p_part, t_part)) = tree::first_difference(p, t) {
            let want = if matches!(p, Val::Tensor(_)) { "float type" } else { "structure and float types" };
            return el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("tangent {i} must have its primal's {want} {p_part}, but it is {t_part}"),
                )
                .with_label(args[2].span, format!("tangent {i} is {}", tree::describe(t)))
                .with_label(args[1].span, format!("primal {i} is {}", tree::describe(p))),
            );
        }
    }
    if !el.building() {
        let out = el.call_callee(&f, as_tree_args(&primals, &primal_args), span);
        return match float_output(&out, &fname, span, false) {
            Ok(out) => Val::Tuple(vec![out.clone(), tree::without_ids(&out)]),
            Err(d) => d.map_or(Val::Poison, |d| el.error(d)),
        };
    }
    let Some((func, out, captured, _)) = lower_alone(el, &f, &fname, &primals, &primal_args, span, Output::Tensor)
    else {
        return Val::Poison;
    };
    let wrt: Vec<usize> = (0..func.n_params - captured.len()).collect();
    let jvp_func = crate::autodiff::jvp(&func, &wrt);
    crate::ir::verify::assert_valid(&jvp_func, "autodiff::jvp");
    let ids: Vec<ValueId> = primals
        .iter()
        .flat_map(tree::leaf_ids)
        .chain(captured)
        .chain(tangents.iter().flat_map(tree::leaf_ids))
        .collect();
    // The outputs' values, then their tangents (every output is a float).
    let mut outs = inline(el.b(), &jvp_func, &ids).into_iter();
    let value = tree::with_ids(&out, &mut outs);
    let tangent = tree::with_ids(&out, &mut outs);
    Val::Tuple(vec![value, tangent])
}

/// `vjp(f, primals...)`: `(f(primals...), pullback)`; `pullback(ct)` is the
/// tuple of cotangents `ct J_f`, one per primal (as in JAX), each of its
/// primal's structure. Primals and outputs are float tensors or tuples of
/// them; `ct` has the output's structure.
pub fn call_vjp(el: &mut Elaborator, args: Vec<CallArg>, span: Span) -> Val {
    if args.is_empty() || args.iter().any(|a| a.name.is_some()) {
        return bad(el, "vjp(f, primals...) takes the function and its arguments by position", span);
    }
    let Some(f) = callee_of(el, &args[0], "vjp") else { return Val::Poison };
    let (fname, params) = el.callee_sig(&f);
    let primal_args: Vec<CallArg> = args[1..].to_vec();
    let Some(primals) = positional_trees(el, &fname, params.len(), &primal_args, span) else {
        return Val::Poison;
    };
    if let Some((i, t)) = primals.iter().enumerate().find_map(|(i, p)| tree::non_float_leaf(p).map(|t| (i, t))) {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("cannot differentiate with respect to {}", t.ty))
                .with_label(primal_args[i].span, "not a float"),
        );
    }
    let out = el.call_callee(&f, as_tree_args(&primals, &primal_args), span);
    match float_output(&out, &fname, span, false) {
        Ok(out_tree) => Val::Tuple(vec![out, Val::Pullback { f, primals, out: Rc::new(out_tree) }]),
        Err(d) => d.map_or(Val::Poison, |d| el.error(d)),
    }
}

/// Calls the pullback of `vjp` with the output's cotangent.
pub fn call_pullback(
    el: &mut Elaborator,
    f: Callee,
    primals: Vec<Val>,
    out: &Val,
    args: Vec<CallArg>,
    span: Span,
) -> Val {
    let (fname, _) = el.callee_sig(&f);
    if args.len() != 1 || args[0].name.is_some() {
        return bad(el, "the pullback of `vjp` takes one argument: the cotangent of the output", span);
    }
    let Some(ct) = tree::tensor_tree_like(el, &args[0].value, out, args[0].span) else {
        return Val::Poison;
    };
    if let Some((want, got)) = tree::first_difference(out, &ct) {
        let whole = tree::describe(out);
        let message = if want == whole {
            format!("the cotangent must have the output's type {want}, but it is {got}")
        } else {
            format!("the cotangent must have the output's structure {whole}: it has {got} where the output has {want}")
        };
        return el.error(
            Diagnostic::error(Code::ShapeMismatch, message)
                .with_label(args[0].span, format!("this is {}", tree::describe(&ct))),
        );
    }
    if !el.building() {
        return Val::Tuple(primals.iter().map(tree::without_ids).collect());
    }
    let primal_args: Vec<CallArg> =
        primals.iter().map(|t| CallArg { name: None, name_span: None, value: t.clone(), span }).collect();
    let Some((func, _, captured, _)) = lower_alone(el, &f, &fname, &primals, &primal_args, span, Output::Tensor) else {
        return Val::Poison;
    };
    let wrt: Vec<usize> = (0..func.n_params - captured.len()).collect();
    let vjp_func = crate::autodiff::vjp(&func, &wrt);
    crate::ir::verify::assert_valid(&vjp_func, "autodiff::vjp");
    let ids: Vec<ValueId> =
        primals.iter().flat_map(tree::leaf_ids).chain(captured).chain(tree::leaf_ids(&ct)).collect();
    let outs = inline(el.b(), &vjp_func, &ids);
    // The function's outputs, then one cotangent per primal leaf.
    let mut cotangents = outs[func.outputs.len()..].iter().copied();
    Val::Tuple(primals.iter().map(|p| tree::with_ids(p, &mut cotangents)).collect())
}

/// `v` as something to transform, when it is a function whose parameters
/// are known (see `value_sig`).
pub fn callee_of_value(el: &Elaborator, v: &Val) -> Option<Callee> {
    match v {
        Val::Fn(r) => Some(Callee::Named(*r)),
        Val::Lambda(l) => Some(Callee::Lambda(l.clone())),
        other => value_sig(el, other).map(|_| Callee::Value(Rc::new(other.clone()))),
    }
}

/// The name (for messages) and parameters of a function value: `grad(f)`
/// and `vmap(f)` take `f`'s parameters; a model takes those of its
/// `__call__` (or `forward`) method, without `self`. `None` for values whose
/// parameters are unknown (builtins, pullbacks) or that are no functions.
pub fn value_sig(el: &Elaborator, v: &Val) -> Option<(String, Vec<crate::syntax::ast::Param>)> {
    let method_sig = |m: &ModelInst, pick: &dyn Fn(&str) -> bool| {
        let decl = el.prog.model_decl(m.module, m.item);
        decl.methods.iter().find(|f| pick(&f.name.name)).map(|f| {
            let params = f.params.iter().filter(|p| p.name.name != "self").cloned().collect();
            (format!("`{}.{}`", m.name, f.name.name), params)
        })
    };
    match v {
        Val::Fn(r) => Some(el.callee_sig(&Callee::Named(*r))),
        Val::Lambda(l) => Some(el.callee_sig(&Callee::Lambda(l.clone()))),
        Val::Grad { f, with_value, .. } => {
            let (name, params) = el.callee_sig(f);
            Some((format!("{}({name})", if *with_value { "value_and_grad" } else { "grad" }), params))
        }
        Val::Jacobian { f, mode, .. } => {
            let (name, params) = el.callee_sig(f);
            Some((format!("{}({name})", super::jacobian::mode_name(*mode)), params))
        }
        Val::Vmap { f, .. } => value_sig(el, f).map(|(name, params)| (format!("vmap({name})"), params)),
        Val::Checkpoint { f } => value_sig(el, f).map(|(name, params)| (format!("checkpoint({name})"), params)),
        // A builtin `f` (`tanh`) has no signature; `fwd` takes the same arguments.
        Val::CustomVjp(rule) => value_sig(el, &rule.f)
            .or_else(|| value_sig(el, &rule.fwd))
            .map(|(name, params)| (format!("custom_vjp({name})"), params)),
        Val::Model(m) => method_sig(m, &|n| n == "__call__" || n == "forward"),
        Val::Method { model, name } => method_sig(model, &|n| n == name),
        Val::Tensor(_)
        | Val::Int(_)
        | Val::NegInt(_)
        | Val::Float(_)
        | Val::Bool(_)
        | Val::Str(_)
        | Val::Tuple(_)
        | Val::ModelDecl { .. }
        | Val::Builtin(_)
        | Val::Pullback { .. }
        | Val::Init(_)
        | Val::Optimizer(_)
        | Val::ParamGroups(_)
        | Val::Unit
        | Val::Poison => None,
    }
}

fn callee_of(el: &mut Elaborator, a: &CallArg, what: &str) -> Option<Callee> {
    if let Some(f) = callee_of_value(el, &a.value) {
        return Some(f);
    }
    match &a.value {
        Val::Poison => None,
        Val::Builtin(b) => {
            builtin_callee(el, what, b, a.span);
            None
        }
        Val::Pullback { .. } => {
            let d = Diagnostic::error(Code::BadCall, format!("{what} cannot transform a pullback of `vjp` directly"))
                .with_label(a.span, "a pullback")
                .with_help(format!("wrap it in a lambda: `{what}(fn(c) = pullback(c), ...)`"));
            el.error(d);
            None
        }
        other => {
            let d =
                Diagnostic::error(Code::BadCall, format!("{what} needs a function first, not {}", other.describe()))
                    .with_label(a.span, "not a function");
            el.error(d);
            None
        }
    }
}

/// A builtin's parameters have no names (for `wrt`) or declared types: it
/// is transformed through a lambda.
pub(super) fn builtin_callee(el: &mut Elaborator, what: &str, builtin: &str, span: Span) -> Val {
    el.error(
        Diagnostic::error(Code::BadCall, format!("{what} cannot transform the builtin `{builtin}` directly"))
            .with_label(span, "a builtin")
            .with_help(format!("wrap it in a lambda: `{what}(fn(x) = {builtin}(x))`")),
    )
}

/// The arguments as trees of tensors (numbers become `f32` scalars), so the
/// function can be lowered alone; they must be all of `f`'s parameters, by
/// position.
pub(super) fn positional_trees(
    el: &mut Elaborator,
    fname: &str,
    n_params: usize,
    args: &[CallArg],
    span: Span,
) -> Option<Vec<Val>> {
    if args.len() != n_params || args.iter().any(|a| a.name.is_some()) {
        positional_count_error(el, fname, n_params, args.len(), span);
        return None;
    }
    args.iter().map(|a| tree::tensor_tree(el, &a.value, a.span)).collect()
}

fn positional_count_error(el: &mut Elaborator, fname: &str, n_params: usize, given: usize, span: Span) -> Val {
    let arguments = if n_params == 1 { "argument" } else { "arguments" };
    let mut d = Diagnostic::error(
        Code::BadCall,
        format!("a transformation of {fname} takes its {n_params} {arguments} by position"),
    )
    .with_label(span, format!("{given} given"));
    if n_params == 1 && given > 1 {
        d = d.with_help(
            "a tuple parameter takes the tuple as one argument: `f((a, b))`, `jvp(f, ((a, b),), ((ta, tb),))`",
        );
    }
    el.error(d)
}

/// Positional arguments holding `trees` (the values of `args`, made trees
/// of tensors by `positional_trees`), at `args`' spans.
pub(super) fn as_tree_args(trees: &[Val], args: &[CallArg]) -> Vec<CallArg> {
    trees
        .iter()
        .zip(args)
        .map(|(t, a)| CallArg { name: None, name_span: None, value: t.clone(), span: a.span })
        .collect()
}

/// What a function lowered alone must return: a float scalar (`grad`;
/// with `has_aux`, `(loss, aux)`) or float tensors in tuples (`jvp`, `vjp`,
/// the Jacobians).
#[derive(Clone, Copy)]
pub(super) enum Output {
    Loss { has_aux: bool },
    Tensor,
}

/// Build mode: `f` lowered on its own, as a `Func` whose params are the
/// leaves of `trees` (the arguments) and then the values `f` captures. A
/// lambda's captured tensors are IR values of the enclosing function: as
/// extra params (closure conversion) they make the function
/// self-contained; they are returned, for the caller to pass at the call
/// site. The outputs are the leaves of `f`'s result (returned as the tree
/// they make) and, with `has_aux`, the auxiliary output's tensors (whose
/// layout is returned).
#[allow(clippy::type_complexity)]
pub(super) fn lower_alone(
    el: &mut Elaborator,
    f: &Callee,
    fname: &str,
    trees: &[Val],
    args: &[CallArg],
    span: Span,
    want: Output,
) -> Option<(Func, Val, Vec<ValueId>, Option<Val>)> {
    let mut captured: Vec<(ValueId, crate::ir::Type)> = Vec::new();
    collect_callee_ids(el, f, &mut captured);
    // What the arguments hold besides their leaves (a model's config
    // tensors, a lambda in a tuple) is captured too.
    for t in trees {
        collect_ids(el, &tree::without_ids(t), &mut captured);
    }
    let leaves: Vec<TVal> = trees.iter().flat_map(tree::leaves).collect();
    let param_types: Vec<_> = leaves
        .iter()
        .map(|t| t.ty.to_ir().expect("known dims in build mode"))
        .chain(captured.iter().map(|(_, t)| t.clone()))
        .collect();
    let map: HashMap<ValueId, ValueId> =
        captured.iter().enumerate().map(|(k, (outer, _))| (*outer, ValueId((leaves.len() + k) as u32))).collect();
    let f = &remap_callee(f, &map);
    let saved_builder = el.builder.replace(Builder::new("transformed", &param_types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let mut params = (0..leaves.len() as u32).map(ValueId);
    let inner_args: Vec<CallArg> = trees
        .iter()
        .zip(args)
        .map(|(t, a)| CallArg {
            name: None,
            name_span: None,
            value: tree::with_ids(&remap(t, &map), &mut params),
            span: a.span,
        })
        .collect();
    let out = el.call_callee(f, inner_args, span);
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;
    let (out, aux) = match want {
        Output::Loss { has_aux: true } => match split_aux(out, fname, span) {
            Ok((out, aux)) => (out, Some(aux)),
            Err(d) => {
                el.error(d);
                return None;
            }
        },
        _ => (out, None),
    };
    let out = match float_output(&out, fname, span, matches!(want, Output::Loss { .. })) {
        Ok(out) => out,
        Err(d) => {
            d.map(|d| el.error(d));
            return None;
        }
    };
    let mut outputs = tree::leaf_ids(&out);
    if let Some(aux) = &aux {
        outputs.extend(tree::leaf_ids(aux));
    }
    let func = inner.finish(outputs);
    crate::ir::verify::assert_valid(&func, "lower (transformed body)");
    Some((func, out, captured.into_iter().map(|(id, _)| id).collect(), aux))
}

/// Every distinct IR value inside `v` (tensors, also inside tuples, models,
/// lambdas and pending transformations), with its type.
pub(super) fn collect_ids(el: &mut Elaborator, v: &Val, out: &mut Vec<(ValueId, crate::ir::Type)>) {
    let tensor = |el: &mut Elaborator, t: &TVal, out: &mut Vec<(ValueId, crate::ir::Type)>| {
        if let Some(id) = t.id {
            if !out.iter().any(|(x, _)| *x == id) {
                out.push((id, el.b().ty(id).clone()));
            }
        }
    };
    match v {
        Val::Tensor(t) => tensor(el, t, out),
        Val::Tuple(items) => items.iter().for_each(|x| collect_ids(el, x, out)),
        Val::Lambda(l) => l.captured.iter().for_each(|(_, x)| collect_ids(el, x, out)),
        Val::Grad { f, .. } | Val::Jacobian { f, .. } => collect_callee_ids(el, f, out),
        Val::Pullback { f, primals, out: o } => {
            collect_callee_ids(el, f, out);
            primals.iter().chain(std::iter::once(&**o)).for_each(|t| collect_ids(el, t, out));
        }
        Val::Vmap { f, .. } | Val::Checkpoint { f } => collect_ids(el, f, out),
        Val::CustomVjp(rule) => [&rule.f, &rule.fwd, &rule.bwd].into_iter().for_each(|f| collect_ids(el, f, out)),
        Val::Model(m) | Val::Method { model: m, .. } => collect_model(el, m, out),
        Val::Optimizer(o) => o.hyper.iter().for_each(|(_, x)| collect_ids(el, x, out)),
        Val::Int(_)
        | Val::NegInt(_)
        | Val::Float(_)
        | Val::Bool(_)
        | Val::Str(_)
        | Val::Fn(_)
        | Val::ModelDecl { .. }
        | Val::Builtin(_)
        | Val::Init(_)
        // Only `configure_optimizers` returns these (its hyperparameters
        // are compile-time values or schedules there).
        | Val::ParamGroups(_)
        | Val::Unit
        | Val::Poison => {}
    }
}

/// The IR values a callee captured (a named function captures none).
fn collect_callee_ids(el: &mut Elaborator, f: &Callee, out: &mut Vec<(ValueId, crate::ir::Type)>) {
    match f {
        Callee::Named(_) => {}
        Callee::Lambda(l) => l.captured.iter().for_each(|(_, x)| collect_ids(el, x, out)),
        Callee::Value(v) => collect_ids(el, v, out),
    }
}

fn remap_callee(f: &Callee, map: &HashMap<ValueId, ValueId>) -> Callee {
    match f {
        Callee::Named(r) => Callee::Named(*r),
        Callee::Lambda(l) => Callee::Lambda(remap_lambda(l, map)),
        Callee::Value(v) => Callee::Value(Rc::new(remap(v, map))),
    }
}

fn collect_model(el: &mut Elaborator, m: &ModelInst, out: &mut Vec<(ValueId, crate::ir::Type)>) {
    for t in m.params.values() {
        collect_ids(el, &Val::Tensor(t.clone()), out);
    }
    for c in m.config.values() {
        collect_ids(el, c, out);
    }
    for s in m.subs.values() {
        collect_model(el, s, out);
    }
}

/// `v` with its IR values renamed by `map` (outer value -> inner param).
pub(super) fn remap(v: &Val, map: &HashMap<ValueId, ValueId>) -> Val {
    let t = |t: &TVal| TVal { ty: t.ty.clone(), id: t.id.map(|id| map.get(&id).copied().unwrap_or(id)) };
    let callee = |f: &Callee| remap_callee(f, map);
    match v {
        Val::Tensor(x) => Val::Tensor(t(x)),
        Val::Tuple(items) => Val::Tuple(items.iter().map(|x| remap(x, map)).collect()),
        Val::Lambda(l) => Val::Lambda(remap_lambda(l, map)),
        Val::Grad { f, wrt, with_value, has_aux } => {
            Val::Grad { f: callee(f), wrt: wrt.clone(), with_value: *with_value, has_aux: *has_aux }
        }
        Val::Jacobian { f, wrt, mode } => Val::Jacobian { f: callee(f), wrt: wrt.clone(), mode: *mode },
        Val::Pullback { f, primals, out } => Val::Pullback {
            f: callee(f),
            primals: primals.iter().map(|x| remap(x, map)).collect(),
            out: Rc::new(remap(out, map)),
        },
        Val::Vmap { f, in_axes, axes_span, out_axes } => Val::Vmap {
            f: Rc::new(remap(f, map)),
            in_axes: in_axes.clone(),
            axes_span: *axes_span,
            out_axes: out_axes.clone(),
        },
        Val::Checkpoint { f } => Val::Checkpoint { f: Rc::new(remap(f, map)) },
        Val::CustomVjp(rule) => Val::CustomVjp(Rc::new(super::custom_vjp::Rule {
            f: remap(&rule.f, map),
            fwd: remap(&rule.fwd, map),
            bwd: remap(&rule.bwd, map),
            spans: rule.spans,
        })),
        Val::Model(m) => Val::Model(remap_model(m, map)),
        Val::Method { model, name } => Val::Method { model: remap_model(model, map), name: name.clone() },
        Val::Optimizer(o) => Val::Optimizer(super::value::Optimizer {
            name: o.name.clone(),
            update: o.update,
            hyper: o.hyper.iter().map(|(k, x)| (k.clone(), remap(x, map))).collect(),
        }),
        Val::Int(_)
        | Val::NegInt(_)
        | Val::Float(_)
        | Val::Bool(_)
        | Val::Str(_)
        | Val::Fn(_)
        | Val::ModelDecl { .. }
        | Val::Builtin(_)
        | Val::Init(_)
        | Val::ParamGroups(_)
        | Val::Unit
        | Val::Poison => v.clone(),
    }
}

fn remap_lambda(l: &LambdaVal, map: &HashMap<ValueId, ValueId>) -> Rc<LambdaVal> {
    Rc::new(LambdaVal {
        module: l.module,
        lambda: l.lambda.clone(),
        captured: l.captured.iter().map(|(k, v)| (k.clone(), remap(v, map))).collect(),
        span: l.span,
    })
}

fn remap_model(m: &ModelInst, map: &HashMap<ValueId, ValueId>) -> Rc<ModelInst> {
    Rc::new(ModelInst {
        name: m.name.clone(),
        module: m.module,
        item: m.item,
        path: m.path.clone(),
        config: m.config.iter().map(|(k, v)| (k.clone(), remap(v, map))).collect(),
        params: m
            .params
            .iter()
            .map(|(k, x)| {
                (k.clone(), TVal { ty: x.ty.clone(), id: x.id.map(|id| map.get(&id).copied().unwrap_or(id)) })
            })
            .collect(),
        buffers: m.buffers.clone(),
        absent: m.absent.clone(),
        subs: m.subs.iter().map(|(k, s)| (k.clone(), remap_model(s, map))).collect(),
        lists: m.lists.clone(),
        span: m.span,
    })
}

/// The function's output must be a float scalar (for `grad`) or, for the
/// other transformations, float tensors in tuples (a tree: returned as it
/// is). `Err(None)`: the output is an error already reported.
pub(super) fn float_output(out: &Val, name: &str, span: Span, scalar: bool) -> Result<Val, Option<Diagnostic>> {
    match out {
        Val::Tensor(t) if t.ty.dtype.is_float() && (!scalar || t.ty.rank() == 0) => Ok(out.clone()),
        _ if out.has_poison() => Err(None),
        Val::Tuple(_) | Val::Model(_) if !scalar && tree::is_float_tree(out) => Ok(out.clone()),
        other => {
            let want = if scalar { "a float scalar" } else { "float tensors (or tuples of them)" };
            let found = match other {
                Val::Tensor(_) | Val::Tuple(_) => tree::describe(other),
                _ => other.describe(),
            };
            let mut d = Diagnostic::error(
                Code::TypeMismatch,
                format!("differentiating needs {name} to return {want}, but it returns {found}"),
            )
            .with_label(span, "differentiated here");
            if scalar {
                d = d.with_help("reduce the output first, e.g. with `sum` or `mean`");
            }
            Err(Some(d))
        }
    }
}

/// What `grad` and `value_and_grad` return, as JAX: `grads`, `(value,
/// grads)`, and with an auxiliary output `(grads, aux)` and `((value, aux),
/// grads)`; each gradient has its argument's structure.
fn package(with_value: bool, value: Val, mut grads: Vec<Val>, aux: Option<Val>) -> Val {
    let grads = if grads.len() == 1 { grads.pop().expect("one") } else { Val::Tuple(grads) };
    match (with_value, aux) {
        (true, None) => Val::Tuple(vec![value, grads]),
        (false, None) => grads,
        (true, Some(aux)) => Val::Tuple(vec![Val::Tuple(vec![value, aux]), grads]),
        (false, Some(aux)) => Val::Tuple(vec![grads, aux]),
    }
}

pub(super) fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg).with_label(span, "in this call"))
}
