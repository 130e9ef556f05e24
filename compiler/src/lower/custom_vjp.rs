//! `custom_vjp(f, fwd, bwd)` (JAX's `jax.custom_vjp` with `defvjp`): a
//! function that computes what `f` computes, but whose gradient is the
//! user's rule:
//!
//! - `fwd(args...)` returns `(f(args...), residuals)`, where `residuals` is
//!   a tensor, a tuple of tensors or `()` that the backward pass reads;
//! - `bwd(residuals, ct)` gets the cotangent `ct` of `f`'s result (same
//!   structure) and returns one cotangent per argument, in a tuple (a bare
//!   tensor when there is one argument); integer arguments' entries are
//!   ignored (they have no gradient).
//!
//! Lowering: each of the three functions is lowered alone into a nested IR
//! function (`lower_apart`) and the call becomes `Op::CustomVjp`, one
//! instruction per result tensor (`ir::custom_vjp` has the semantics and
//! `autodiff/custom_vjp_rules.rs` the transformation rules). The functions
//! may not read tensors from outside their arguments (captured variables,
//! model parameters): those would get no cotangent from `bwd`, so it is an
//! error that says to pass them as arguments.
//!
//! In check mode the same calls run on types, so `jlc check` reports a
//! `fwd` or `bwd` whose results do not fit `f`'s, and a lambda that reads
//! a tensor of the scope it was written in (its free names).

use std::sync::Arc;

use super::builtins::bad;
use super::elab::{CallArg, Elaborator, Env};
use super::transform::{collect_ids, remap};
use super::tree::{self, leaves, with_ids};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, DType, Func, Type, ValueId};
use crate::span::Span;

/// The three functions of a `custom_vjp` value and where each was written.
#[derive(Clone, Debug)]
pub struct Rule {
    pub f: Val,
    pub fwd: Val,
    pub bwd: Val,
    pub spans: [Span; 3],
}

pub fn call_custom_vjp(el: &mut Elaborator, env: &mut Env, rule: &Rule, args: Vec<CallArg>, span: Span) -> Val {
    let [f_span, fwd_span, bwd_span] = rule.spans;
    // Arguments: tensors or tuples of them, positional; `arg_vals` are
    // their tensors in order.
    let mut arg_structure: Vec<Val> = Vec::with_capacity(args.len());
    for a in &args {
        if a.name.is_some() {
            return bad(el, "a custom_vjp function takes its arguments by position", a.span);
        }
        match argument_tree(el, &a.value, a.span) {
            Ok(tree) => arg_structure.push(tree),
            Err(v) => return v,
        }
    }
    let arg_vals: Vec<TVal> = arg_structure.iter().flat_map(leaves).collect();
    let n = arg_structure.len();
    let arg_types: Vec<Type> = match el.building() {
        true => arg_vals.iter().map(|t| el.b().ty(t.id.expect("built")).clone()).collect(),
        false => Vec::new(),
    };

    // f: what the function computes; float tensors (each gets a cotangent).
    let primal =
        lower_apart(el, env, "custom_vjp_f", &rule.f, &arg_structure, &arg_types, (f_span, span), &mut |_, out| {
            let leaves = leaves_of(out, "custom_vjp's function must return tensors (or tuples of them)", f_span)?;
            match leaves.iter().find(|t| !t.ty.dtype.is_float()) {
                Some(t) => Err(error(format!("custom_vjp's function must return float tensors, not {}", t.ty), f_span)),
                None => Ok(leaves),
            }
        });
    let Some((primal, primal_out)) = primal else { return Val::Poison };
    let out_leaves = leaves(&primal_out);

    // fwd: (f's result, residuals).
    let mut res_structure = Val::Unit;
    let fwd = lower_apart(
        el,
        env,
        "custom_vjp_fwd",
        &rule.fwd,
        &arg_structure,
        &arg_types,
        (fwd_span, span),
        &mut |_, out| {
            let what = "`fwd` must return a pair: (the function's result, residuals)";
            let Val::Tuple(pair) = out else { return Err(error(format!("{what}, not {}", out.describe()), fwd_span)) };
            let [result, residuals] = pair.as_slice() else {
                return Err(error(format!("{what}, not a tuple of {}", pair.len()), fwd_span));
            };
            let result = leaves_of(result, what, fwd_span)?;
            if result.len() != out_leaves.len() {
                let msg =
                    format!("`fwd`'s result has {} tensor(s), the function's has {}", result.len(), out_leaves.len());
                return Err(error(msg, fwd_span));
            }
            for (k, (r, o)) in result.iter().zip(&out_leaves).enumerate() {
                if !compatible(&r.ty, &o.ty) {
                    let msg = format!("`fwd`'s result {k} is {}, the function's is {}", r.ty, o.ty);
                    return Err(error(msg, fwd_span));
                }
            }
            let residuals_what = "`fwd`'s residuals must be tensors (or a tuple of them)";
            let mut leaves = result;
            leaves.extend(leaves_of(residuals, residuals_what, fwd_span)?);
            res_structure = residuals.clone();
            Ok(leaves)
        },
    );
    let Some((fwd, _)) = fwd else { return Val::Poison };

    // bwd: (residuals, cotangent of f's result) -> one cotangent per argument.
    let res_types: Vec<Type> = fwd.output_types().split_off(out_leaves.len().min(fwd.outputs.len()));
    let mut bwd_types = res_types;
    bwd_types.extend(primal.output_types());
    let bwd_args = [res_structure.clone(), primal_out.clone()];
    let bwd =
        lower_apart(el, env, "custom_vjp_bwd", &rule.bwd, &bwd_args, &bwd_types, (bwd_span, span), &mut |el, out| {
            let entries: Vec<Val> = match out {
                // One tuple argument: its cotangent as the tuple itself (as
                // well as JAX's 1-tuple holding it).
                Val::Tuple(items)
                    if n == 1
                        && items.len() != 1
                        && matches!(&arg_structure[0], Val::Tuple(a) if a.len() == items.len()) =>
                {
                    vec![out.clone()]
                }
                Val::Tuple(items) => items.clone(),
                Val::Unit if n == 0 => Vec::new(),
                one if n == 1 => vec![one.clone()],
                other => {
                    let msg = format!(
                        "`bwd` must return a tuple with one cotangent per argument ({n}), not {}",
                        other.describe()
                    );
                    return Err(error(msg, bwd_span));
                }
            };
            if entries.len() != n {
                let msg = format!("`bwd` returns {} cotangent(s); the function takes {n} argument(s)", entries.len());
                return Err(error(msg, bwd_span));
            }
            let mut cts = Vec::with_capacity(arg_vals.len());
            let mut types = arg_types.iter();
            for (k, (entry, arg)) in entries.iter().zip(&arg_structure).enumerate() {
                cotangents(el, entry, arg, (k, ""), &mut types, &mut cts).map_err(|msg| error(msg, bwd_span))?;
            }
            Ok(cts)
        });
    let Some((bwd, _)) = bwd else { return Val::Poison };

    if !el.building() {
        return primal_out;
    }
    let ids: Vec<ValueId> = arg_vals.iter().map(|t| t.id.expect("built")).collect();
    let results = el.b().custom_vjp(Arc::new(primal), Arc::new(fwd), Arc::new(bwd), &ids);
    with_ids(&primal_out, &mut results.into_iter())
}

/// An argument as a tree of tensors: tensors and tuples as they are, a
/// number as a scalar tensor (`i32` for an integer, `f32` otherwise, `bool`
/// for `true` and `false`). `Err` holds the value to return (reported).
fn argument_tree(el: &mut Elaborator, v: &Val, span: Span) -> Result<Val, Val> {
    match v {
        Val::Poison => Err(Val::Poison),
        Val::Tensor(_) => Ok(v.clone()),
        Val::Tuple(items) => items.iter().map(|x| argument_tree(el, x, span)).collect::<Result<_, _>>().map(Val::Tuple),
        // A symbolic dim (check mode only: building knows every dim).
        Val::Int(Dim::Sym(_)) => Ok(Val::Tensor(TVal { ty: Ty::scalar(DType::I32), id: None })),
        Val::Int(_) | Val::NegInt(_) | Val::Float(_) | Val::Bool(_) => {
            let dtype = match v {
                Val::Float(_) => DType::F32,
                Val::Bool(_) => DType::Bool,
                _ => DType::I32,
            };
            el.as_tensor(v, dtype, span).map(Val::Tensor).ok_or(Val::Poison)
        }
        other => {
            let msg = format!(
                "a custom_vjp function takes tensors or tuples of them (the rule returns their cotangents), not {}",
                other.describe()
            );
            Err(bad(el, &msg, span))
        }
    }
}

/// The cotangents `bwd` gave for argument `k` (`arg`, a tree of tensors),
/// one per tensor, pushed to `out`; `types` gives each tensor's IR type in
/// build mode. A tuple argument takes a tuple of the same structure; a
/// number fills its tensor's shape (`0.0`: no gradient); an integer
/// tensor gets zeros whatever `bwd` gave.
fn cotangents<'t>(
    el: &mut Elaborator,
    entry: &Val,
    arg: &Val,
    (k, at): (usize, &str),
    types: &mut impl Iterator<Item = &'t Type>,
    out: &mut Vec<TVal>,
) -> Result<(), String> {
    let Val::Tensor(arg_t) = arg else {
        let (Val::Tuple(args), Val::Tuple(entries)) = (arg, entry) else {
            return Err(format!(
                "`bwd`'s cotangent {k}{at} must have its argument's structure {}, not {}",
                super::tree::describe(arg),
                super::tree::describe(entry)
            ));
        };
        if args.len() != entries.len() {
            return Err(format!(
                "`bwd`'s cotangent {k}{at} must have its argument's structure {}, not {}",
                super::tree::describe(arg),
                super::tree::describe(entry)
            ));
        }
        for (i, (e, a)) in entries.iter().zip(args).enumerate() {
            cotangents(el, e, a, (k, &format!("{at}, element {i}")), types, out)?;
        }
        return Ok(());
    };
    let ty = types.next();
    let building = el.building();
    let fill = |el: &mut Elaborator, x: f64| TVal {
        ty: arg_t.ty.clone(),
        id: building.then(|| el.b().full(x, ty.expect("built"))),
    };
    if !arg_t.ty.dtype.is_float() {
        // No gradient for integers: whatever `bwd` gave is ignored.
        out.push(fill(el, 0.0));
        return Ok(());
    }
    match entry {
        Val::Poison => return Err(String::new()),
        Val::Tensor(t) if compatible(&t.ty, &arg_t.ty) => out.push(t.clone()),
        // A number fills the argument's shape (`0.0`: no gradient).
        Val::Float(_) | Val::Int(_) | Val::NegInt(_) => {
            let x = match entry {
                Val::Float(x) => *x,
                Val::Int(Dim::Known(n)) => *n as f64,
                Val::NegInt(n) => *n as f64,
                // A symbolic dim: check mode, no value needed.
                _ => 0.0,
            };
            out.push(fill(el, x));
        }
        Val::Tensor(t) => {
            return Err(format!("`bwd`'s cotangent {k}{at} is {}, but argument {k}{at} is {}", t.ty, arg_t.ty))
        }
        other => {
            return Err(format!("`bwd`'s cotangent {k}{at} must be a tensor of {}, not {}", arg_t.ty, other.describe()))
        }
    }
    Ok(())
}

/// Calls `f` on `args` (values whose tensors are `leaf_types`, in order)
/// and `finish` on its result, which returns the tensors to output (it may
/// emit instructions, and it reports what is wrong). Check mode: a plain
/// call; the function is empty. Build mode: lowered alone into a function
/// whose params are the argument tensors. Returns the function and `f`'s
/// result (its IR values are the nested function's); `None` after an error.
#[allow(clippy::too_many_arguments)]
fn lower_apart(
    el: &mut Elaborator,
    env: &mut Env,
    name: &str,
    f: &Val,
    args: &[Val],
    leaf_types: &[Type],
    (span, call_span): (Span, Span),
    finish: &mut dyn FnMut(&mut Elaborator, &Val) -> Result<Vec<TVal>, Diagnostic>,
) -> Option<(Func, Val)> {
    let call_args = |args: Vec<Val>| -> Vec<CallArg> {
        args.into_iter().map(|value| CallArg { name: None, name_span: None, value, span }).collect()
    };
    if !el.building() {
        let captured = captured_tensors(f);
        if !captured.is_empty() {
            let names: Vec<String> = captured.iter().map(|(n, _)| format!("`{n}`")).collect();
            let mut d = error(captures_message(&names.join(", ")), span);
            for (name, at) in captured {
                d = d.with_label(at, format!("`{name}` is read here"));
            }
            return report(el, d, call_span);
        }
        let out = el.call(env, f.clone(), span, call_args(args.to_vec()), span);
        if out.has_poison() {
            return None;
        }
        return match finish(el, &out) {
            Ok(_) => Some((Func { name: name.into(), insts: vec![], n_params: 0, outputs: vec![] }, out)),
            Err(d) => report(el, d, call_span),
        };
    }
    // Captured tensors become leading params, so that reading one shows.
    let mut captured: Vec<(ValueId, Type)> = Vec::new();
    collect_ids(el, f, &mut captured);
    let nc = captured.len();
    let mut types: Vec<Type> = captured.iter().map(|(_, t)| t.clone()).collect();
    types.extend(leaf_types.iter().cloned());
    let map = captured.iter().enumerate().map(|(k, (outer, _))| (*outer, ValueId(k as u32))).collect();
    let inner_f = remap(f, &map);
    let mut ids = (nc..types.len()).map(|k| ValueId(k as u32));
    let inner_args: Vec<Val> = args.iter().map(|a| with_ids(a, &mut ids)).collect();

    let saved_builder = el.builder.replace(Builder::new(name, &types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let out = el.call(env, inner_f, span, call_args(inner_args), span);
    let outputs = match out {
        ref out if out.has_poison() => Err(None),
        ref out => finish(el, out).map_err(Some),
    };
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;
    let outputs = match outputs {
        Ok(outputs) => outputs,
        Err(Some(d)) => return report(el, d, call_span),
        Err(None) => return None,
    };
    let body = inner.finish(outputs.iter().map(|t| t.id.expect("built")).collect());
    let (body, kept) = crate::ir::scan::drop_unused_consts(&body, nc);
    if !kept.is_empty() {
        return report(el, error(captures_message(&format!("{} tensor(s)", kept.len())), span), call_span);
    }
    crate::ir::verify::assert_valid(&body, "lower (custom_vjp)");
    Some((body, out))
}

fn captures_message(what: &str) -> String {
    format!(
        "this function of a custom_vjp reads {what} from outside its arguments (a captured variable or a \
         model parameter), which its rule gives no gradient; pass them as arguments"
    )
}

/// Check mode's view of what build mode finds by lowering: the names a
/// lambda reads from the scope it was written in that hold tensors (a
/// tensor, a tuple of them, a lambda that reads one), each with where it
/// is read. It may miss some (build mode then reports them); it reports
/// none that build mode would not.
fn captured_tensors(f: &Val) -> Vec<(String, Span)> {
    let Val::Lambda(l) = f else { return vec![] };
    // A lambda it calls counts by what that one reads. A model (`self`)
    // is left to build mode: its config values are no tensors.
    let holds_tensors = |v: &Val| tree::is_tensor_tree(v) || !captured_tensors(v).is_empty();
    let captured = |name: &str| l.captured.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
    super::unbound_names::free_names(&l.lambda)
        .into_iter()
        .filter(|(name, _)| captured(name).is_some_and(holds_tensors))
        .collect()
}

/// The tensors of `v`, or an error saying `what` it must be.
fn leaves_of(v: &Val, what: &str, span: Span) -> Result<Vec<TVal>, Diagnostic> {
    // `()`: no residuals.
    match matches!(v, Val::Unit) || tree::only_tensors(v) {
        true => Ok(leaves(v)),
        false => Err(error(format!("{what}, not {}", v.describe()), span)),
    }
}

/// Same dtype and rank, and the same dims where both are known (check mode
/// may see a dim under another name).
fn compatible(a: &Ty, b: &Ty) -> bool {
    a.dtype == b.dtype
        && a.rank() == b.rank()
        && a.dims.iter().zip(&b.dims).all(|(x, y)| matches!((x, y), (Dim::Sym(_), _) | (_, Dim::Sym(_))) || x == y)
}

fn error(msg: String, span: Span) -> Diagnostic {
    Diagnostic::error(Code::BadCall, msg).with_label(span, "in this custom_vjp")
}

/// Reports `d` with the call as a second label (an empty message: already
/// reported) and yields `None`.
fn report<T>(el: &mut Elaborator, d: Diagnostic, call_span: Span) -> Option<T> {
    if !d.message.is_empty() {
        el.error(d.with_label(call_span, "called here"));
    }
    None
}

#[cfg(test)]
mod tests;
