//! `vmap(f, in_axes = ...)` from source: a function value in, a function
//! value out that maps `f` over a batch axis of its arguments.
//!
//! `in_axes` is one entry (`0`, the default, or `None`) for every argument,
//! or a tuple with one entry per argument; an argument's entry is the axis
//! that holds its examples, or `None` for an argument shared by every
//! example. A tuple argument's tensors all take its entry, or follow a
//! tuple of entries element by element (`in_axes = ((0, None), 0)`): its
//! shared tensors are passed like shared arguments. `f` is any function value: a named function, a lambda, a model,
//! `grad(...)`, another `vmap(...)`. Every output gets the batch at axis 0.
//!
//! In build mode `f` is lowered alone on one example (its params are the
//! batched arguments with the batch axis removed; shared arguments and the
//! tensors `f` captures become extra params), batched by `autodiff::vmap`
//! (IR to IR) and inlined at the call site. In check mode `f` is checked on
//! one example's types and each output gets the batch size as a new axis 0.

use super::elab::{CallArg, Elaborator, Env};
use super::transform::{collect_ids, remap};
use super::tree;
use super::value::{AxisTree, InAxes, OutAxes, TVal, Val};
use crate::autodiff::inline_outputs as inline;
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, ValueId};
use crate::span::Span;
use crate::syntax::ast::{Expr, ExprKind};
use std::collections::HashMap;
use std::rc::Rc;

/// The value of `vmap`'s `in_axes` argument: integers and tuples as usual,
/// and `None` (no batch axis; a name only here) as `Val::Unit`.
pub fn in_axes_value(el: &mut Elaborator, env: &mut Env, e: &Expr) -> Val {
    match &e.kind {
        ExprKind::Name(n) if n == "None" => Val::Unit,
        ExprKind::Tuple(items) => Val::Tuple(items.iter().map(|x| in_axes_value(el, env, x)).collect()),
        _ => el.expr(env, e),
    }
}

/// `vmap(f, in_axes = ...)`: the function value waiting for its arguments.
pub fn make_vmap(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    const USAGE: &str =
        "vmap(f, in_axes = ..., out_axes = ...) takes a function and, optionally, `in_axes` and `out_axes`";
    let Some(first) = args.first().filter(|a| a.name.is_none()) else {
        return bad(el, USAGE, span);
    };
    match &first.value {
        Val::Fn(_)
        | Val::Lambda(_)
        | Val::Grad { .. }
        | Val::Jacobian { .. }
        | Val::Vmap { .. }
        | Val::Checkpoint { .. }
        | Val::CustomVjp(_)
        | Val::Builtin(_)
        | Val::Model(_)
        | Val::Method { .. }
        | Val::Pullback { .. } => {}
        Val::Poison => return Val::Poison,
        other => {
            let d = Diagnostic::error(Code::BadCall, format!("vmap needs a function first, not {}", other.describe()))
                .with_label(first.span, "not a function");
            return el.error(d);
        }
    }
    if let Some(extra) = args[1..].iter().find(|a| !matches!(a.name.as_deref(), Some("in_axes" | "out_axes"))) {
        return el.error(Diagnostic::error(Code::BadCall, USAGE).with_label(extra.span, "unexpected argument"));
    }
    let out_axes = match args.iter().find(|a| a.name.as_deref() == Some("out_axes")) {
        None => OutAxes::All(0),
        Some(a) => match &a.value {
            Val::Poison => return Val::Poison,
            Val::Tuple(items) => match items.iter().map(Val::as_i64).collect::<Option<Vec<_>>>() {
                Some(axes) => OutAxes::Each(axes),
                None => return el.error(bad_out_axes(a.span)),
            },
            single => match single.as_i64() {
                Some(axis) => OutAxes::All(axis),
                None => return el.error(bad_out_axes(a.span)),
            },
        },
    };
    let (in_axes, axes_span) = match args.iter().find(|a| a.name.as_deref() == Some("in_axes")) {
        None => (InAxes::All(Some(0)), span),
        Some(a) => {
            let parsed = match &a.value {
                Val::Tuple(items) => items.iter().map(axis_tree).collect::<Option<Vec<_>>>().map(InAxes::Each),
                Val::Poison => return Val::Poison,
                single => axis_entry(single).map(InAxes::All),
            };
            match parsed {
                    Some(axes) => (axes, a.span),
                    None => return el.error(
                        Diagnostic::error(
                            Code::BadCall,
                            "`in_axes` entries are batch axes (0, 1, ..., or -1 for the last), `None`, or tuples of them for tuple arguments",
                        )
                        .with_label(a.span, "in these in_axes")
                        .with_help(
                            "one entry for all arguments (`in_axes = 0`) or one per argument (`in_axes = (None, 0)`)",
                        ),
                    ),
                }
        }
    };
    Val::Vmap { f: Rc::new(first.value.clone()), in_axes, axes_span, out_axes }
}

fn bad_out_axes(span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::BadCall,
        "`out_axes` entries are axes of the outputs (0, 1, ..., or -1 for the last), one per element of a tuple output; nested tuples of entries and `None` (an output without the examples' axis) are not supported",
    )
    .with_label(span, "in these out_axes")
    .with_help("one axis for every output (`out_axes = 1`) or one per output of a tuple (`out_axes = (0, 1)`)")
}

/// Moves the batch axis of `vmap`'s outputs (axis 0) to `out_axes`: one
/// axis for all, or one per element of a tuple output.
pub fn place_batch_axes(el: &mut Elaborator, out: Val, out_axes: &OutAxes, span: Span) -> Val {
    match (out_axes, out) {
        (OutAxes::All(0), out) => out,
        (_, Val::Poison) => Val::Poison,
        (OutAxes::All(axis), out) => place(el, out, *axis, span),
        (OutAxes::Each(axes), Val::Tuple(items)) if axes.len() == items.len() => {
            Val::Tuple(items.into_iter().zip(axes).map(|(v, &axis)| place(el, v, axis, span)).collect())
        }
        (OutAxes::Each(axes), other) => {
            let what = match &other {
                Val::Tuple(items) => format!("a tuple of {}", items.len()),
                other => other.describe(),
            };
            el.error(
                Diagnostic::error(
                    Code::BadCall,
                    format!("`out_axes` has {} entries, but the vmapped function returns {what}", axes.len()),
                )
                .with_label(span, "vmapped here"),
            )
        }
    }
}

/// `v` (a batched output, tensors in tuples) with each tensor's axis 0 moved to `axis`.
fn place(el: &mut Elaborator, v: Val, axis: i64, span: Span) -> Val {
    match v {
        Val::Tuple(items) => Val::Tuple(items.into_iter().map(|x| place(el, x, axis, span)).collect()),
        Val::Tensor(t) => {
            let Ok(at) = crate::check::shape_rules::axis(axis, t.ty.rank()) else {
                return el.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("out_axes {axis} is not an axis of the batched output {}", t.ty),
                    )
                    .with_label(span, format!("this returns {}", t.ty)),
                );
            };
            // Result axis i is source axis perm[i]: the examples (axis 0) land at `at`.
            let perm: Vec<usize> = (1..=at).chain(std::iter::once(0)).chain(at + 1..t.ty.rank()).collect();
            let dims = perm.iter().map(|&p| t.ty.dims[p].clone()).collect();
            let id = t.id.map(|x| el.b().transpose(x, perm));
            Val::Tensor(TVal { ty: Ty { dtype: t.ty.dtype, dims }, id })
        }
        Val::Model(_) if axis == 0 => v,
        Val::Model(m) => el.error(
            Diagnostic::error(
                Code::BadCall,
                format!(
                    "out_axes {axis} for a `{}` model: a model's stacked tensors keep the examples at axis 0",
                    m.name
                ),
            )
            .with_label(span, "vmapped here"),
        ),
        other => other,
    }
}

/// One `in_axes` entry: an axis, or `None` (encoded as `Val::Unit`).
fn axis_entry(v: &Val) -> Option<Option<i64>> {
    match v {
        Val::Int(Dim::Known(_)) | Val::NegInt(_) => Some(v.as_i64()),
        Val::Unit => Some(None),
        _ => None,
    }
}

/// One argument's `in_axes` entry, a tuple of entries for a tuple argument.
fn axis_tree(v: &Val) -> Option<AxisTree> {
    match v {
        Val::Tuple(items) => items.iter().map(axis_tree).collect::<Option<Vec<_>>>().map(AxisTree::Tuple),
        other => axis_entry(other).map(AxisTree::Axis),
    }
}

/// An argument batched along `axis`: its per-example type lacks that axis.
struct Batched {
    id: Option<ValueId>,
    axis: usize,
    example: Ty,
}

/// Calls `vmap(f, in_axes)` with `args`.
pub fn call_vmap(
    el: &mut Elaborator,
    env: &mut Env,
    f: &Val,
    in_axes: &InAxes,
    axes_span: Span,
    args: Vec<CallArg>,
    span: Span,
) -> Val {
    if args.iter().any(|a| a.value.has_poison()) {
        return Val::Poison;
    }
    if let Some(a) = args.iter().find(|a| a.name.is_some()) {
        return el.error(
            Diagnostic::error(Code::BadCall, "a vmapped function takes its arguments by position")
                .with_label(a.name_span.unwrap_or(a.span), "named here"),
        );
    }
    let axes: Vec<AxisTree> = match in_axes {
        InAxes::All(axis) => vec![AxisTree::Axis(*axis); args.len()],
        InAxes::Each(axes) if axes.len() == args.len() => axes.clone(),
        InAxes::Each(axes) => {
            return el.error(
                Diagnostic::error(
                    Code::BadCall,
                    format!(
                        "`in_axes` has {} entries, but the vmapped function is called with {} arguments",
                        axes.len(),
                        args.len()
                    ),
                )
                .with_label(axes_span, format!("{} entries", axes.len()))
                .with_label(span, format!("{} arguments", args.len()))
                .with_help("give one entry per argument: its batch axis, or `None` to share it"),
            )
        }
    };
    // Each argument's tensors with their batch axes (a tuple argument's
    // tensors share its entry, or follow a tuple of entries).
    let mut leaf_axes: Vec<Vec<Option<i64>>> = Vec::with_capacity(args.len());
    for (i, (a, axes)) in args.iter().zip(&axes).enumerate() {
        let mut out = Vec::new();
        if let Err(problem) = axes_of_leaves(&a.value, axes, &mut out) {
            let whole = if problem.whole { format!("argument {i}") } else { format!("part of argument {i}") };
            let mut d = Diagnostic::error(Code::TypeMismatch, format!("{}{whole} {}", problem.prefix, problem.what))
                .with_label(a.span, format!("this is {}", tree::describe(&a.value)))
                .with_label(axes_span, "in these in_axes");
            if let Some(help) = problem.help {
                d = d.with_help(help);
            }
            return el.error(d);
        }
        leaf_axes.push(out);
    }
    if leaf_axes.iter().flatten().all(Option::is_none) {
        return el.error(
            Diagnostic::error(
                Code::BadCall,
                "vmap needs at least one batched argument, but every in_axes entry is None",
            )
            .with_label(axes_span, "no batch axis here"),
        );
    }
    // The batched tensors of each argument with a batch axis (`None`: an
    // argument shared whole), and the batch size they agree on: its dim,
    // and the argument and tensor type that first gave it.
    let mut batched: Vec<Option<Vec<Option<Batched>>>> = Vec::with_capacity(args.len());
    let mut size: Option<(Dim, usize, String, usize)> = None;
    for (i, (a, axes)) in args.iter().zip(&leaf_axes).enumerate() {
        if axes.iter().all(Option::is_none) {
            batched.push(None);
            continue;
        }
        let whole = tree::describe(&a.value);
        let mut leaves = Vec::new();
        for (t, axis) in tree::leaves(&a.value).into_iter().zip(axes) {
            let Some(given) = *axis else {
                leaves.push(None);
                continue;
            };
            let rank = t.ty.rank() as i64;
            let resolved = if given < 0 { given + rank } else { given };
            if resolved < 0 || resolved >= rank {
                let verb = if matches!(a.value, Val::Tensor(_)) { "is" } else { "holds" };
                return el.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("argument {i} has no axis {given} to batch over: it {verb} {}", t.ty),
                    )
                    .with_label(a.span, format!("this is {whole}"))
                    .with_label(axes_span, format!("batch axis {given}")),
                );
            }
            let axis = resolved as usize;
            let dim = t.ty.dims[axis].clone();
            match &size {
                None => size = Some((dim.clone(), i, t.ty.to_string(), axis)),
                Some((first, j, first_ty, first_axis)) if *first != dim => {
                    let what = |k: usize, ty: &str| {
                        if matches!(args[k].value, Val::Tensor(_)) {
                            format!("argument {k}")
                        } else {
                            format!("argument {k} (its {ty})")
                        }
                    };
                    let message = format!(
                        "vmap's batch sizes disagree: {} has {first} examples, {} has {dim}",
                        what(*j, first_ty),
                        what(i, &t.ty.to_string())
                    );
                    let verb = |k: usize| if matches!(args[k].value, Val::Tensor(_)) { "is" } else { "holds" };
                    let first_label = format!("this {} {first_ty}, batched along axis {first_axis}", verb(*j));
                    let j = *j;
                    return el.error(
                        Diagnostic::error(Code::ShapeMismatch, message)
                            .with_label(args[j].span, first_label)
                            .with_label(a.span, format!("this {} {}, batched along axis {axis}", verb(i), t.ty))
                            .with_help("every batched tensor needs the same size along its batch axis"),
                    );
                }
                Some(_) => {}
            }
            let mut example = t.ty.clone();
            example.dims.remove(axis);
            leaves.push(Some(Batched { id: t.id, axis, example }));
        }
        batched.push(Some(leaves));
    }
    let (size, ..) = size.expect("at least one batched argument");
    if !el.building() {
        let inner_args = args
            .iter()
            .zip(&batched)
            .map(|(a, b)| CallArg {
                value: match b {
                    Some(b) => example_tree(&a.value, b, &mut std::iter::repeat(None)),
                    None => a.value.clone(),
                },
                ..a.clone()
            })
            .collect();
        let out = el.call(env, f.clone(), span, inner_args, span);
        let out = numbers_as_tensors(el, &out, span);
        return match with_batch(&out, &size, &mut None) {
            Ok(v) => v,
            Err(d) => el.error(d.with_label(span, "vmapped here")),
        };
    }
    let Dim::Known(n) = size else { unreachable!("dims are known in build mode") };
    // Lower `f` alone on one example. Shared arguments and `f`'s captured
    // tensors are outer values: they become params after the batched ones.
    let mut captured: Vec<(ValueId, crate::ir::Type)> = Vec::new();
    collect_ids(el, f, &mut captured);
    for (a, b) in args.iter().zip(&batched) {
        match b {
            None => collect_ids(el, &a.value, &mut captured),
            // A batched tuple's shared part: the tensors its in_axes share
            // and what it holds besides tensors (a lambda, a model's config).
            Some(b) => {
                let mut batched = b.iter();
                let shared = tree::map_leaves(&a.value, &mut |t| match batched.next().expect("one per tensor") {
                    Some(_) => Val::Tensor(TVal { ty: t.ty.clone(), id: None }),
                    None => Val::Tensor(t.clone()),
                });
                collect_ids(el, &shared, &mut captured);
            }
        }
    }
    let examples: Vec<&Batched> = batched.iter().flatten().flatten().flatten().collect();
    let param_types: Vec<crate::ir::Type> = examples
        .iter()
        .map(|b| b.example.to_ir().expect("known dims in build mode"))
        .chain(captured.iter().map(|(_, t)| t.clone()))
        .collect();
    let map: HashMap<ValueId, ValueId> =
        captured.iter().enumerate().map(|(k, (outer, _))| (*outer, ValueId((examples.len() + k) as u32))).collect();
    let mut params = (0..examples.len() as u32).map(|k| Some(ValueId(k)));
    let inner_args: Vec<CallArg> = args
        .iter()
        .zip(&batched)
        .map(|(a, b)| CallArg {
            value: match b {
                Some(b) => example_tree(&remap(&a.value, &map), b, &mut params),
                None => remap(&a.value, &map),
            },
            ..a.clone()
        })
        .collect();
    let inner_f = remap(f, &map);
    let saved_builder = el.builder.replace(Builder::new("vmapped", &param_types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let out = el.call(env, inner_f, span, inner_args, span);
    let out = numbers_as_tensors(el, &out, span);
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;
    let mut outputs = Vec::new();
    let batched_out = match with_batch(&out, &size, &mut Some(&mut outputs)) {
        Ok(v) => v,
        Err(d) => return el.error(d.with_label(span, "vmapped here")),
    };
    let func = inner.finish(outputs);
    crate::ir::verify::assert_valid(&func, "lower (vmapped body)");
    let func_axes: Vec<Option<usize>> =
        examples.iter().map(|b| Some(b.axis)).chain(captured.iter().map(|_| None)).collect();
    let batched_func = crate::autodiff::vmap(&func, &func_axes, n);
    crate::ir::verify::assert_valid(&batched_func, "autodiff::vmap");
    let ids: Vec<ValueId> =
        examples.iter().map(|b| b.id.expect("built")).chain(captured.iter().map(|(id, _)| *id)).collect();
    let outs = inline(el.b(), &batched_func, &ids);
    let mut next = outs.into_iter();
    tree::with_ids(&batched_out, &mut next)
}

/// `out` (one example's result: a tensor or nested tuples of tensors) with
/// the batch size as a new axis 0 of every tensor, without IR values. The
/// example's IR values are pushed to `ids` when given (build mode).
fn with_batch(out: &Val, size: &Dim, ids: &mut Option<&mut Vec<ValueId>>) -> Result<Val, Diagnostic> {
    match out {
        Val::Tensor(t) => {
            if let (Some(ids), Some(id)) = (ids.as_deref_mut(), t.id) {
                ids.push(id);
            }
            let mut ty = t.ty.clone();
            ty.dims.insert(0, size.clone());
            Ok(Val::Tensor(TVal { ty, id: None }))
        }
        Val::Tuple(items) => Ok(Val::Tuple(items.iter().map(|x| with_batch(x, size, ids)).collect::<Result<_, _>>()?)),
        // A model (a gradient shaped as one): each tensor stacked.
        Val::Model(_) => Ok(tree::map_leaves(out, &mut |t| {
            if let (Some(ids), Some(id)) = (ids.as_deref_mut(), t.id) {
                ids.push(id);
            }
            let mut ty = t.ty.clone();
            ty.dims.insert(0, size.clone());
            Val::Tensor(TVal { ty, id: None })
        })),
        Val::Poison => Ok(Val::Poison),
        other => Err(Diagnostic::error(
            Code::TypeMismatch,
            format!(
                "vmap needs the function to return tensors (or tuples of them), but it returns {}",
                other.describe()
            ),
        )),
    }
}

/// `v` (one example's result) with its compile-time numbers as scalar
/// tensors (`f32` for a float, `i32` for an integer, `bool`), so a number
/// the function returns (a shared tuple's `2.0`) is stacked like a tensor,
/// as JAX broadcasts it.
fn numbers_as_tensors(el: &mut Elaborator, v: &Val, span: Span) -> Val {
    match v {
        Val::Tuple(items) => Val::Tuple(items.iter().map(|x| numbers_as_tensors(el, x, span)).collect()),
        // A symbolic integer too (check mode: building knows its value).
        Val::Float(_) | Val::Int(_) | Val::NegInt(_) | Val::Bool(_) => {
            let dtype = match v {
                Val::Float(_) => crate::ir::DType::F32,
                Val::Bool(_) => crate::ir::DType::Bool,
                _ => crate::ir::DType::I32,
            };
            el.as_tensor(v, dtype, span).map_or(Val::Poison, Val::Tensor)
        }
        other => other.clone(),
    }
}

/// One example of a batched argument: `v`'s structure (its shared part
/// already renamed into the vmapped function), its batched tensors of the
/// example types in `batched` (in order) with the IR values from `ids`.
fn example_tree(v: &Val, batched: &[Option<Batched>], ids: &mut impl Iterator<Item = Option<ValueId>>) -> Val {
    let mut examples = batched.iter();
    tree::map_leaves(v, &mut |t| match examples.next().expect("one per tensor") {
        Some(b) => Val::Tensor(TVal { ty: b.example.clone(), id: ids.next().expect("one per tensor") }),
        None => Val::Tensor(t.clone()),
    })
}

/// Why an argument does not fit its `in_axes` entry.
struct AxesProblem {
    /// Whether it is about the whole argument (else a part of a tuple).
    whole: bool,
    prefix: &'static str,
    what: String,
    help: Option<&'static str>,
}

/// The batch axis of each tensor of `v`, depth first (as `tree::leaves`),
/// under its `in_axes` entry: one axis (or `None`) for all of them, or a
/// tuple of entries matching a tuple argument, to any depth (JAX's prefix
/// trees).
fn axes_of_leaves(v: &Val, axes: &AxisTree, out: &mut Vec<Option<i64>>) -> Result<(), AxesProblem> {
    match axes {
        AxisTree::Axis(None) => out.extend(tree::leaves(v).iter().map(|_| None)),
        AxisTree::Axis(Some(a)) if tree::is_tensor_tree(v) => out.extend(tree::leaves(v).iter().map(|_| Some(*a))),
        AxisTree::Axis(Some(_)) => {
            return Err(AxesProblem {
                whole: true,
                prefix: "vmap batches tensors (or tuples of them), but ",
                what: format!("is {}", tree::describe(v)),
                help: Some("give it `None` in `in_axes` to pass it to every example unchanged"),
            })
        }
        AxisTree::Tuple(entries) => match v {
            Val::Tuple(items) if items.len() == entries.len() => {
                for (item, entry) in items.iter().zip(entries) {
                    axes_of_leaves(item, entry, out).map_err(|p| AxesProblem { whole: false, ..p })?;
                }
            }
            other => {
                return Err(AxesProblem {
                    whole: true,
                    prefix: "",
                    what: format!(
                        "is {}, but its in_axes entry is a tuple of {} entries",
                        tree::describe(other),
                        entries.len()
                    ),
                    help: Some("a tuple of entries matches a tuple argument of that length, element by element"),
                })
            }
        },
    }
    Ok(())
}

fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg).with_label(span, "in this call"))
}
