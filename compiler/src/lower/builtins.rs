//! Built-in functions: math, reductions, `where`, conversions, `print`,
//! `log`, initializers, transformations and `optimizer`.
//!
//! Everything else users call (relu, softmax, losses, layers, optimizers)
//! is written in the language, in `stdlib/`.

use super::elab::{CallArg, Elaborator, Env, LogEntry, PrintItem};
use super::ops::{known, Reduce};
use super::value::{FnRef, Init, Optimizer, TVal, Val};
use crate::check::types::{dim_factors, product_dim};
use crate::check::{shape_rules, Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Op, Shape, Type};
use crate::span::Span;
use crate::syntax::ast::BinOp;

pub const NAMES: &[&str] = &[
    "exp",
    "einsum",
    "log",
    "tanh",
    "sqrt",
    "sum",
    "mean",
    "var",
    "std",
    "cumsum",
    "buffer",
    "absent",
    "assign",
    "cummax",
    "cummin",
    "max",
    "min",
    "where",
    "float",
    "f32",
    "f64",
    "one_hot",
    "linspace",
    "arange",
    "size",
    "transpose",
    "print",
    "assert",
    "zeros",
    "ones",
    "full",
    "uniform",
    "normal",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "orthogonal",
    "grad",
    "value_and_grad",
    "jacfwd",
    "jacrev",
    "hessian",
    "jvp",
    "vjp",
    "vmap",
    "scan",
    "tree_map",
    "optimizer",
    "param_groups",
    "log1p",
    "expm1",
    "sigmoid",
    "logistic",
    "sin",
    "cos",
    "rsqrt",
    "erf",
    "floor",
    "ceil",
    "round",
    "i32",
    "abs",
    "sign",
    "stop_gradient",
    "checkpoint",
    "custom_vjp",
    "argmax",
    "take",
    "take_along_axis",
    "random_key",
    "split",
    "random_bits",
    "ndim",
    "flatten",
    "reshape",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "shape",
    "stack",
    "concat",
    "save_image",
    "save_plot",
    "save_text",
];

pub fn lookup(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

pub fn call(el: &mut Elaborator, _env: &mut Env, name: &'static str, args: Vec<CallArg>, span: Span) -> Val {
    if args.iter().any(|a| a.value.has_poison()) {
        // Poison stands for a value whose error is already reported; one
        // without a report would end the program silently.
        debug_assert!(el.poison_explained(), "`{name}` got poison with no error reported");
        return Val::Poison;
    }
    if let Some(reported) = super::keywords::misspelled(el, name, &args) {
        return reported;
    }
    match name {
        "exp" | "tanh" | "sqrt" | "log1p" | "expm1" | "sigmoid" | "logistic" | "sin" | "cos" | "rsqrt" | "erf"
        | "floor" | "ceil" | "round" => unary_math(el, name, &args, span),
        "abs" | "sign" => signed_math(el, name, &args, span),
        "stop_gradient" => {
            if args.len() != 1 {
                return bad(el, "`stop_gradient` takes exactly one argument", span);
            }
            // Every tensor, in tuples too (as `jax.lax.stop_gradient` takes
            // pytrees); compile-time values have no gradient anyway.
            super::tree::map_leaves(&args[0].value, &mut |t| {
                let id = t.id.map(|x| el.b().unary(Op::StopGradient, x));
                Val::Tensor(TVal { ty: t.ty.clone(), id })
            })
        }
        "checkpoint" => match args.as_slice() {
            [a] if a.name.is_none() => match &a.value {
                Val::Poison => Val::Poison,
                f if super::transform::value_sig(el, f).is_some() || matches!(f, Val::Builtin(_)) => {
                    Val::Checkpoint { f: std::rc::Rc::new(f.clone()) }
                }
                other => bad(el, &format!("checkpoint(f) takes a function, not {}", other.describe()), a.span),
            },
            _ => bad(el, "checkpoint(f) takes exactly one function", span),
        },
        "custom_vjp" => custom_vjp(el, &args, span),
        "argmax" => argmax(el, &args, span),
        "take" => super::tensor_ops::take(el, &args, span),
        "take_along_axis" => super::take_along_axis::take_along_axis(el, &args, span),
        "einsum" => super::einsum::einsum(el, &args, span),
        "random_key" => super::random::random_key(el, &args, span),
        "split" => super::random::split(el, &args, span),
        "random_bits" => super::random::random_bits(el, &args, span),
        // The rank, a compile-time integer (for `if ndim(p) >= 2 { ... }`,
        // e.g. weight decay on matrices only); compile-time numbers are scalars.
        "ndim" => match args.as_slice() {
            [CallArg { value: Val::Tensor(t), .. }] => Val::Int(Dim::Known(t.ty.rank())),
            [CallArg { value: Val::Float(_) | Val::Int(_) | Val::NegInt(_), .. }] => Val::Int(Dim::Known(0)),
            _ => bad(el, "`ndim(x)` takes one tensor", span),
        },
        "conv2d" => super::window_builtins::conv2d(el, &args, span),
        "conv_transpose2d" => super::window_builtins::conv_transpose2d(el, &args, span),
        "shape" => super::join::shape(el, &args, span),
        "stack" | "concat" => super::join::join(el, name, &args, span),
        "save_image" | "save_plot" | "save_text" => super::artifacts::save(el, name, &args, span),
        "max_pool2d" | "avg_pool2d" => super::window_builtins::pool2d(el, name, &args, span),
        "log" => {
            if matches!(args.first().map(|a| &a.value), Some(Val::Str(_))) {
                log_metric(el, args, span)
            } else {
                unary_math(el, name, &args, span)
            }
        }
        "sum" | "mean" => reduction(el, if name == "sum" { Reduce::Sum } else { Reduce::Mean }, args, span, name),
        "var" | "std" => variance(el, args, span, name),
        "cumsum" | "cummax" | "cummin" => super::cumulative::cumulative(el, name, &args, span),
        "buffer" => bad(
            el,
            "`buffer(init)` is a model field's whole initializer: `running_mean: f32[C] = buffer(zeros())` declares a buffer (not trained); a condition goes inside, `buffer(if c { zeros() } else { absent() })`",
            span,
        ),
        "assign" => super::buffers::assign(el, &args, span),
        "absent" if args.is_empty() => Val::Init(Init::Absent),
        "absent" => bad(el, "`absent()` takes no arguments: it leaves a parameter field out of the instance", span),
        "max" | "min" => {
            let positional = args.iter().filter(|a| a.name.is_none()).count();
            if positional == 2 {
                elementwise_max_min(el, name, &args, span)
            } else if name == "max" {
                reduction(el, Reduce::Max, args, span, name)
            } else {
                reduction(el, Reduce::Min, args, span, name)
            }
        }
        "where" => where_(el, &args, span),
        "float" => {
            // A compile-time number stays one: `sqrt(float(head_dim))`.
            match args.first().map(|a| &a.value) {
                Some(Val::Int(Dim::Known(n))) if args.len() == 1 => return Val::Float(*n as f64),
                Some(Val::NegInt(n)) if args.len() == 1 => return Val::Float(*n as f64),
                Some(Val::Float(x)) if args.len() == 1 => return Val::Float(*x),
                // A symbolic dim (the batch `B` while checking a generic step): a
                // number known only once the step is compiled for its batch.
                Some(Val::Int(Dim::Sym(_))) if args.len() == 1 && !el.building() => {
                    return Val::Tensor(TVal { ty: Ty::scalar(DType::F32), id: None })
                }
                _ => {}
            }
            let Some(t) = first_tensor(el, &args, span, name) else { return Val::Poison };
            let id = t.id.map(|x| el.b().convert(x, DType::F32));
            Val::Tensor(TVal { ty: t.ty.with_dtype(DType::F32), id })
        }
        "f32" | "f64" => convert_to(el, &args, span, name),
        "i32" => to_i32(el, &args, span),
        "one_hot" => one_hot(el, &args, span),
        "flatten" => flatten(el, &args, span),
        "reshape" => reshape(el, &args, span),
        "linspace" => linspace(el, &args, span),
        "transpose" => {
            let Some(t) = first_tensor(el, &args, span, name) else { return Val::Poison };
            match args.get(1) {
                None => el.transpose_all(t, span),
                Some(perm) => transpose_axes(el, t, &perm.value, span),
            }
        }
        "arange" => arange(el, &args, span),
        "size" => size(el, &args, span),
        "print" => print(el, args, span),
        "assert" => compile_time_assert(el, &args, span),
        // With a shape, NumPy's: an f32 tensor (`zeros((2, 3))`, `full(shape(x), 0.5)`);
        // without, a parameter's initializer (`w: f32[4] = zeros()`).
        "zeros" | "ones" if !args.is_empty() => match args.as_slice() {
            [shape] => filled(el, &shape.value, if name == "zeros" { 0.0 } else { 1.0 }, shape.span),
            _ => bad(el, &format!("{name}(shape) takes one shape: `{name}((2, 3))`, or none as an initializer"), span),
        },
        "zeros" => Val::Init(Init::Zeros),
        "ones" => Val::Init(Init::Ones),
        "full" => match (args.len(), num(args.first()), num(args.get(1))) {
            (1, Some(v), _) => Val::Init(Init::Full(v)),
            (2, _, Some(v)) => filled(el, &args[0].value, v, args[0].span),
            _ => bad(
                el,
                "full(shape, value) needs a shape and a compile-time number (full(value) is an initializer)",
                span,
            ),
        },
        "glorot_uniform" => Val::Init(Init::GlorotUniform),
        "glorot_normal" => Val::Init(Init::GlorotNormal),
        "he_uniform" => Val::Init(Init::HeUniform),
        "he_normal" => Val::Init(Init::HeNormal),
        "orthogonal" => match args.as_slice() {
            [] => Val::Init(Init::Orthogonal(1.0)),
            [a] if matches!(a.name.as_deref(), None | Some("gain")) && num(Some(a)).is_some() => {
                Val::Init(Init::Orthogonal(num(Some(a)).expect("checked")))
            }
            _ => bad(el, "orthogonal(gain = 1.0) takes one compile-time number", span),
        },
        // With a key first: random numbers; with numbers: an initializer.
        "uniform" | "normal" if matches!(args.first().map(|a| &a.value), Some(Val::Tensor(_))) => {
            super::random::sample(el, name, &args, span)
        }
        "uniform" => match (num(args.first()), num(args.get(1))) {
            (Some(low), Some(high)) if low <= high => Val::Init(Init::Uniform { low, high }),
            _ => bad(el, "uniform(low, high) needs two compile-time numbers with low <= high", span),
        },
        "normal" => {
            let std = args.iter().find(|a| a.name.as_deref() == Some("std")).or(args.first());
            let mean = args.iter().find(|a| a.name.as_deref() == Some("mean"));
            match (num(std), mean.map_or(Some(0.0), |m| num(Some(m)))) {
                (Some(std), Some(mean)) if std >= 0.0 => Val::Init(Init::Normal { mean, std }),
                _ => bad(el, "normal(std, mean = 0.0) needs compile-time numbers, std >= 0", span),
            }
        }
        "grad" | "value_and_grad" => super::transform::make_grad(el, name, &args, span),
        "jacfwd" | "jacrev" | "hessian" => super::jacobian::make_jacobian(el, name, &args, span),
        "jvp" => el.transforming(span, |el| super::transform::call_jvp(el, args, span)),
        "vjp" => el.transforming(span, |el| super::transform::call_vjp(el, args, span)),
        "vmap" => super::vmap::make_vmap(el, &args, span),
        "scan" => el.transforming(span, |el| super::scan::call_scan(el, _env, args, span)),
        "tree_map" => super::tree::tree_map(el, _env, args, span),
        "param_groups" => super::param_groups::make(el, &args, span),
        "optimizer" => {
            let Some(CallArg { value: Val::Fn(update), .. }) = args.first() else {
                return bad(el, "optimizer(update_fn, hyperparameters...) needs a named update function", span);
            };
            let hyper = args.iter().skip(1).filter_map(|a| a.name.clone().map(|n| (n, a.value.clone()))).collect();
            let name = el.prog.fn_decl(update.module, update.item).name.name.trim_end_matches("_update").to_string();
            Val::Optimizer(Optimizer { name, update: FnRef { ..*update }, hyper })
        }
        other => unreachable!("builtin `{other}` listed but not implemented"),
    }
}

pub(super) fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg.to_string()).with_label(span, "in this call"))
}

/// An f32 tensor of `shape` (an integer or a tuple of them, as `shape(x)`
/// gives) with every element `value`.
fn filled(el: &mut Elaborator, shape: &Val, value: f64, span: Span) -> Val {
    let dims: Option<Vec<Dim>> = match shape {
        Val::Int(d) => Some(vec![d.clone()]),
        Val::Tuple(items) => items.iter().map(|v| if let Val::Int(d) = v { Some(d.clone()) } else { None }).collect(),
        _ => None,
    };
    let Some(dims) = dims else {
        return bad(el, &format!("a shape is an integer or a tuple of integers, not {}", shape.describe()), span);
    };
    let id = el.building().then(|| {
        let b = el.b();
        let c = b.constant(value, DType::F32);
        b.broadcast_to(c, &crate::ir::Shape(dims.iter().map(super::ops::known).collect()))
    });
    Val::Tensor(TVal { ty: Ty { dtype: DType::F32, dims }, id })
}

fn num(a: Option<&CallArg>) -> Option<f64> {
    match a.map(|a| &a.value) {
        Some(Val::Float(x)) => Some(*x),
        Some(Val::Int(Dim::Known(n))) => Some(*n as f64),
        Some(Val::NegInt(n)) => Some(*n as f64),
        _ => None,
    }
}

fn first_tensor(el: &mut Elaborator, args: &[CallArg], span: Span, name: &str) -> Option<TVal> {
    match args.first() {
        Some(CallArg { value: Val::Tensor(t), .. }) => Some(t.clone()),
        // A compile-time bool (a literal, a `flag: bool` argument) is a
        // scalar bool tensor here, as numbers are in arithmetic.
        Some(CallArg { value: v @ Val::Bool(_), .. }) => el.scalar_tensor(v, DType::Bool),
        Some(a) => {
            let d = a.value.describe();
            el.error(
                Diagnostic::error(Code::TypeMismatch, format!("`{name}` expects a tensor, found {d}"))
                    .with_label(a.span, format!("this is {d}")),
            );
            None
        }
        None => {
            el.error(
                Diagnostic::error(Code::BadCall, format!("`{name}` needs an argument"))
                    .with_label(span, "in this call"),
            );
            None
        }
    }
}

/// The float-only elementwise functions: each is one IR op (`sigmoid` and
/// `logistic` are both `Op::Logistic`).
fn unary_math(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    if args.len() != 1 {
        return bad(el, &format!("`{name}` takes exactly one argument"), span);
    }
    let (op, on_number): (Op, fn(f64) -> f64) = match name {
        "exp" => (Op::Exp, f64::exp),
        "log" => (Op::Log, f64::ln),
        "tanh" => (Op::Tanh, f64::tanh),
        "sqrt" => (Op::Sqrt, f64::sqrt),
        "log1p" => (Op::Log1p, f64::ln_1p),
        "expm1" => (Op::Expm1, f64::exp_m1),
        "sigmoid" | "logistic" => (Op::Logistic, crate::ir::interp::logistic::<f64>),
        "sin" => (Op::Sin, f64::sin),
        "cos" => (Op::Cos, f64::cos),
        "rsqrt" => (Op::Rsqrt, |x: f64| 1.0 / x.sqrt()),
        "erf" => (Op::Erf, <f64 as crate::ir::interp::Erf>::erf),
        "floor" => (Op::Floor, f64::floor),
        "ceil" => (Op::Ceil, f64::ceil),
        "round" => (Op::Round, f64::round_ties_even),
        other => unreachable!("`{other}` is not a unary math builtin"),
    };
    if let Some(x) = num(args.first()) {
        return Val::Float(on_number(x));
    }
    let Some(t) = first_tensor(el, args, span, name) else { return Val::Poison };
    if !t.ty.dtype.is_float() {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs a float tensor, found {}", t.ty))
                .with_label(args[0].span, format!("this is {}", t.ty))
                .with_help("convert with `float(x)`"),
        );
    }
    let id = t.id.map(|x| el.b().unary(op, x));
    Val::Tensor(TVal { ty: t.ty, id })
}

/// `abs` and `sign`: float or int tensors (or numbers).
fn signed_math(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    if args.len() != 1 {
        return bad(el, &format!("`{name}` takes exactly one argument"), span);
    }
    let op = if name == "abs" { Op::Abs } else { Op::Sign };
    // A compile-time integer stays one (`x[abs(i)]`).
    if let Some(n) = args[0].value.as_i64().filter(|n| *n != i64::MIN) {
        return Val::int(if name == "abs" { n.abs() } else { n.signum() });
    }
    if let Some(x) = num(args.first()) {
        return Val::Float(if name == "abs" { x.abs() } else { crate::ir::interp::sign(x) });
    }
    let Some(t) = first_tensor(el, args, span, name) else { return Val::Poison };
    if t.ty.dtype == DType::Bool {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs a float or int tensor, found {}", t.ty))
                .with_label(args[0].span, format!("this is {}", t.ty)),
        );
    }
    let id = t.id.map(|x| el.b().unary(op, x));
    Val::Tensor(TVal { ty: t.ty, id })
}

/// `f32(x)`, `f64(x)`: `x` converted to that float dtype (a tensor of any
/// dtype, or a compile-time number, which becomes a scalar tensor: `f64(0.5)`
/// starts an f64 computation, where a bare `0.5` would take the dtype of the
/// tensor it meets). Differentiable: the gradient converts back.
fn convert_to(el: &mut Elaborator, args: &[CallArg], span: Span, name: &str) -> Val {
    let dtype = if name == "f64" { DType::F64 } else { DType::F32 };
    if args.len() != 1 || args[0].name.is_some() {
        return bad(el, &format!("`{name}(x)` takes one argument"), span);
    }
    let number = match &args[0].value {
        Val::Float(x) => Some(*x),
        Val::Int(Dim::Known(n)) => Some(*n as f64),
        Val::NegInt(n) => Some(*n as f64),
        _ => None,
    };
    if let Some(x) = number {
        let id = el.building().then(|| el.b().constant(x, dtype));
        return Val::Tensor(TVal { ty: Ty::scalar(dtype), id });
    }
    let Some(t) = first_tensor(el, args, span, name) else { return Val::Poison };
    let id = t.id.map(|x| el.b().convert(x, dtype));
    Val::Tensor(TVal { ty: t.ty.with_dtype(dtype), id })
}

/// `i32(x)`: `x` converted to `i32`, truncating toward zero (as `astype`
/// and C): a float tensor saturates at the i32 range and NaN becomes 0, a
/// bool is 0 or 1. A compile-time number becomes a compile-time integer
/// (`i32(sqrt(float(d)))` can be a dim); one that is not finite or out of
/// the range is an error. No gradient flows through it (an integer).
fn to_i32(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    if args.len() != 1 || args[0].name.is_some() {
        return bad(el, "`i32(x)` takes one argument", span);
    }
    match &args[0].value {
        Val::Int(_) | Val::NegInt(_) => {
            return match args[0].value.as_i64() {
                Some(n) if i32::try_from(n).is_ok() => args[0].value.clone(),
                // A symbolic dim (the batch) stays one.
                None if matches!(args[0].value, Val::Int(Dim::Sym(_))) => args[0].value.clone(),
                _ => el.error(
                    Diagnostic::error(Code::BadCall, "this integer is outside the i32 range")
                        .with_label(args[0].span, "this number"),
                ),
            };
        }
        Val::Float(x) => {
            let t = x.trunc();
            return if t.is_finite() && t >= i32::MIN as f64 && t <= i32::MAX as f64 {
                Val::int(t as i64)
            } else {
                el.error(
                    Diagnostic::error(Code::BadCall, format!("`i32({x:?})` is outside the i32 range"))
                        .with_label(args[0].span, "this number"),
                )
            };
        }
        _ => {}
    }
    let Some(t) = first_tensor(el, args, span, "i32") else { return Val::Poison };
    let id = t.id.map(|x| el.b().convert(x, DType::I32));
    Val::Tensor(TVal { ty: t.ty.with_dtype(DType::I32), id })
}

/// `argmax(x, axis = -1)`: the i32 index of the first maximum along `axis`,
/// which is removed (NaN counts as the largest; see `ir::Op::ArgMax`).
fn argmax(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(t) = first_tensor(el, args, span, "argmax") else { return Val::Poison };
    let mut axis: i64 = -1;
    for a in args.iter().skip(1) {
        match (a.name.as_deref(), &a.value) {
            (Some("axis") | None, Val::Int(Dim::Known(n))) => axis = *n as i64,
            (Some("axis") | None, Val::NegInt(n)) => axis = *n,
            (Some("axis") | None, Val::Int(Dim::Sym(_))) => {
                el.silent_poison = true;
                return Val::Poison;
            }
            (Some("axis") | None, Val::Float(x)) if x.fract() == 0.0 && *x < 0.0 => axis = *x as i64,
            _ => return bad(el, "`argmax` takes (x, axis = int)", a.span),
        }
    }
    if t.ty.dtype == DType::Bool {
        return bad(el, "`argmax` needs a float or int tensor", span);
    }
    let axis = match shape_rules::axis(axis, t.ty.rank()) {
        Ok(a) => a,
        Err(msg) => {
            return el.error(
                Diagnostic::error(Code::ShapeMismatch, msg)
                    .with_label(args[0].span, format!("this is {}", t.ty))
                    .with_label(span, "in this argmax"),
            )
        }
    };
    if t.ty.dims[axis] == Dim::Known(0) {
        return bad(el, "`argmax` over an empty axis has no answer", span);
    }
    let mut dims = t.ty.dims.clone();
    dims.remove(axis);
    let id = t.id.map(|x| el.b().argmax(x, axis));
    Val::Tensor(TVal { ty: Ty { dtype: DType::I32, dims }, id })
}

fn reduction(el: &mut Elaborator, kind: Reduce, args: Vec<CallArg>, span: Span, name: &str) -> Val {
    let Some(t) = first_tensor(el, &args, span, name) else { return Val::Poison };
    let (axes, keepdims) = match reduced_axes(el, &args, &t, span, name) {
        Ok(x) => x,
        Err(v) => return v,
    };
    if matches!(kind, Reduce::Max | Reduce::Min) && t.ty.dtype == DType::Bool {
        return bad(el, &format!("`{name}` needs a float or int tensor"), span);
    }
    if kind == Reduce::Mean && !t.ty.dtype.is_float() {
        return bad(el, "`mean` needs a float tensor; convert with `float(x)`", span);
    }
    el.reduce(kind, t, axes, keepdims)
}

/// A reduction's `axis` (`None`: all axes; sorted, made non-negative) and
/// `keepdims`, from the arguments after the tensor `t` (other keywords
/// are left to the caller). `Err` holds the value to return: the error is
/// reported.
fn reduced_axes(
    el: &mut Elaborator,
    args: &[CallArg],
    t: &TVal,
    span: Span,
    name: &str,
) -> Result<(Option<Vec<usize>>, bool), Val> {
    let mut axes = None;
    let mut keepdims = false;
    for a in args.iter().skip(1) {
        match (a.name.as_deref(), &a.value) {
            (Some("axis") | None, Val::Int(Dim::Known(n))) => axes = Some(vec![*n as i64]),
            (Some("axis") | None, Val::NegInt(n)) => axes = Some(vec![*n]),
            // An `int` parameter of a function checked alone: the axis, and so
            // the result's shape, is known only at each call, where the
            // function is checked again with the real value.
            (Some("axis") | None, Val::Int(Dim::Sym(_))) => {
                el.silent_poison = true;
                return Err(Val::Poison);
            }
            (Some("axis") | None, Val::Float(x)) if x.fract() == 0.0 && *x < 0.0 => axes = Some(vec![*x as i64]),
            (Some("axis") | None, Val::Tuple(items)) => {
                let mut v = Vec::new();
                for it in items {
                    match it {
                        Val::Int(Dim::Known(n)) => v.push(*n as i64),
                        Val::NegInt(n) => v.push(*n),
                        Val::Float(x) if x.fract() == 0.0 => v.push(*x as i64),
                        _ => return Err(bad(el, "axes must be integers", a.span)),
                    }
                }
                axes = Some(v);
            }
            (Some("keepdims"), Val::Bool(b)) => keepdims = *b,
            (Some("ddof"), _) if matches!(name, "var" | "std") => {}
            _ => {
                let more = if matches!(name, "var" | "std") { ", ddof = int" } else { "" };
                return Err(bad(
                    el,
                    &format!("`{name}` takes (x, axis = int or tuple, keepdims = bool{more})"),
                    a.span,
                ));
            }
        }
    }
    let Some(list) = axes else { return Ok((None, keepdims)) };
    let mut out = Vec::new();
    for ax in list {
        match shape_rules::axis(ax, t.ty.rank()) {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => return Err(bad(el, "an axis is listed twice", span)),
            Err(msg) => {
                return Err(el.error(
                    Diagnostic::error(Code::ShapeMismatch, msg)
                        .with_label(args[0].span, format!("this is {}", t.ty))
                        .with_label(span, "in this reduction"),
                ))
            }
        }
    }
    out.sort();
    Ok((Some(out), keepdims))
}

/// `var(x, axis, keepdims, ddof = 0)` and `std(...)`, as NumPy's: the mean
/// squared deviation from the mean over the axes (all by default), with
/// `n - ddof` in place of `n` (`ddof = 1`: the unbiased estimate; `n <=
/// ddof` gives inf or NaN, as NumPy's); `std` is its square root. Two
/// passes (the mean, then the deviations), so large offsets do not cancel.
fn variance(el: &mut Elaborator, args: Vec<CallArg>, span: Span, name: &str) -> Val {
    let Some(t) = first_tensor(el, &args, span, name) else { return Val::Poison };
    if !t.ty.dtype.is_float() {
        return bad(el, &format!("`{name}` needs a float tensor; convert with `float(x)`"), span);
    }
    let (axes, keepdims) = match reduced_axes(el, &args, &t, span, name) {
        Ok(x) => x,
        Err(v) => return v,
    };
    let ddof = match args.iter().find(|a| a.name.as_deref() == Some("ddof")) {
        None => 0,
        Some(a) => match a.value.as_i64() {
            Some(d) if d >= 0 => d,
            _ => return bad(el, "`ddof` is a compile-time integer >= 0 (1 for the unbiased variance)", a.span),
        },
    };
    let x = Val::Tensor(t.clone());
    let mean = el.reduce(Reduce::Mean, t.clone(), axes.clone(), true);
    let deviation = el.binary(BinOp::Sub, x, span, mean, span, span);
    let squared = el.binary(BinOp::Mul, deviation.clone(), span, deviation, span, span);
    let Val::Tensor(squared) = squared else { return Val::Poison };
    let mut var = el.reduce(Reduce::Mean, squared, axes.clone(), keepdims);
    if ddof > 0 && el.building() {
        // Every dim is known when building.
        let size = |d: &Dim| if let Dim::Known(n) = d { *n } else { 1 };
        let n: usize = match &axes {
            None => t.ty.dims.iter().map(size).product(),
            Some(axes) => axes.iter().map(|&a| size(&t.ty.dims[a])).product(),
        };
        let scale = n as f64 / (n as f64 - ddof as f64).max(0.0);
        var = el.binary(BinOp::Mul, var, span, Val::Float(scale), span, span);
    }
    match var {
        Val::Tensor(v) if name == "std" => {
            let id = v.id.map(|x| el.b().unary(Op::Sqrt, x));
            Val::Tensor(TVal { ty: v.ty, id })
        }
        other => other,
    }
}

fn elementwise_max_min(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    // max(a, b) = select(a >= b, a, b), built from the IR's Max/Min.
    let (a, b) = (&args[0], &args[1]);
    let dtype = match (&a.value, &b.value) {
        (Val::Tensor(t), _) | (_, Val::Tensor(t)) => t.ty.dtype,
        _ => {
            // Two compile-time integers give an integer (an index, an axis).
            if let (Some(x), Some(y)) = (a.value.as_i64(), b.value.as_i64()) {
                return Val::int(if name == "max" { x.max(y) } else { x.min(y) });
            }
            let (x, y) = (num(Some(a)), num(Some(b)));
            return match (x, y) {
                (Some(x), Some(y)) => Val::Float(if name == "max" { x.max(y) } else { x.min(y) }),
                _ => bad(el, &format!("`{name}` needs numbers or tensors"), span),
            };
        }
    };
    let (Some(x), Some(y)) = (el.as_tensor(&a.value, dtype, a.span), el.as_tensor(&b.value, dtype, b.span)) else {
        return Val::Poison;
    };
    if x.ty.dtype != y.ty.dtype {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs operands of one dtype"))
                .with_label(a.span, format!("this is {}", x.ty))
                .with_label(b.span, format!("this is {}", y.ty)),
        );
    }
    let dims = match shape_rules::broadcast(&x.ty.dims, &y.ty.dims) {
        Ok(d) => d,
        Err(msg) => {
            return el.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("shapes {} and {} cannot be broadcast for `{name}`", x.ty, y.ty),
                )
                .with_label(a.span, format!("this is {}", x.ty))
                .with_label(b.span, format!("this is {}", y.ty))
                .with_note(msg),
            )
        }
    };
    let id = match (x.id, y.id) {
        (Some(xi), Some(yi)) => {
            let shape = Shape(dims.iter().map(known).collect());
            let bld = el.b();
            let xb = bld.broadcast_to(xi, &shape);
            let yb = bld.broadcast_to(yi, &shape);
            Some(bld.binary(if name == "max" { Op::Max } else { Op::Min }, xb, yb))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty: Ty { dtype, dims }, id })
}

fn where_(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    if args.len() != 3 {
        return bad(el, "where(cond, a, b) takes three arguments", span);
    }
    // Tuples of one structure (a loop's carry): `where` element by element.
    if let (Val::Tuple(a), Val::Tuple(b)) = (&args[1].value, &args[2].value) {
        if a.len() != b.len() {
            return el.error(
                Diagnostic::error(Code::TypeMismatch, "the branches of `where` must be tuples of one length")
                    .with_label(args[1].span, format!("a tuple of {}", a.len()))
                    .with_label(args[2].span, format!("a tuple of {}", b.len())),
            );
        }
        let items = a
            .iter()
            .zip(b)
            .map(|(x, y)| {
                let arg = |value: &Val, at: &CallArg| CallArg { value: value.clone(), ..at.clone() };
                where_(el, &[args[0].clone(), arg(x, &args[1]), arg(y, &args[2])], span)
            })
            .collect();
        return Val::Tuple(items);
    }
    let Some(c) = first_tensor(el, args, span, "where") else { return Val::Poison };
    if c.ty.dtype != DType::Bool {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, "the condition of `where` must be a bool tensor")
                .with_label(args[0].span, format!("this is {}", c.ty)),
        );
    }
    let dtype = match (&args[1].value, &args[2].value) {
        (Val::Tensor(t), _) | (_, Val::Tensor(t)) => t.ty.dtype,
        _ => DType::F32,
    };
    let (Some(x), Some(y)) =
        (el.as_tensor(&args[1].value, dtype, args[1].span), el.as_tensor(&args[2].value, dtype, args[2].span))
    else {
        return Val::Poison;
    };
    if x.ty.dtype != y.ty.dtype {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, "the branches of `where` must have one dtype")
                .with_label(args[1].span, format!("this is {}", x.ty))
                .with_label(args[2].span, format!("this is {}", y.ty)),
        );
    }
    let dims = shape_rules::broadcast(&c.ty.dims, &x.ty.dims).and_then(|d| shape_rules::broadcast(&d, &y.ty.dims));
    let dims = match dims {
        Ok(d) => d,
        Err(msg) => {
            return el.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("`where` operands {}, {} and {} cannot be broadcast together", c.ty, x.ty, y.ty),
                )
                .with_label(args[0].span, format!("this is {}", c.ty))
                .with_label(args[1].span, format!("this is {}", x.ty))
                .with_label(args[2].span, format!("this is {}", y.ty))
                .with_note(msg),
            )
        }
    };
    let id = match (c.id, x.id, y.id) {
        (Some(ci), Some(xi), Some(yi)) => {
            let shape = Shape(dims.iter().map(known).collect());
            let b = el.b();
            let cb = b.broadcast_to(ci, &shape);
            let xb = b.broadcast_to(xi, &shape);
            let yb = b.broadcast_to(yi, &shape);
            Some(b.select(cb, xb, yb))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty: Ty { dtype, dims }, id })
}

fn one_hot(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(t) = first_tensor(el, args, span, "one_hot") else { return Val::Poison };
    if t.ty.dtype != DType::I32 {
        return el.error(
            Diagnostic::error(Code::TypeMismatch, "one_hot needs integer labels")
                .with_label(args[0].span, format!("this is {}", t.ty)),
        );
    }
    let n = match args.get(1).map(|a| &a.value) {
        Some(Val::Int(d)) => d.clone(),
        _ => return bad(el, "one_hot(labels, n) needs the number of classes as a compile-time integer", span),
    };
    let mut dims = t.ty.dims.clone();
    dims.push(n.clone());
    let id = t.id.map(|x| {
        // one_hot(y, n)[..., j] = float(y[...] == j)
        let n = known(&n);
        let b = el.b();
        let src = b.ty(x).shape.clone();
        let mut out = src.0.clone();
        out.push(n);
        let out = Shape(out);
        let yb = b.broadcast(x, &out, (0..src.rank()).collect());
        let idx = b.iota(Type { dtype: DType::I32, shape: out.clone() }, src.rank());
        let eq = b.binary(Op::Eq, yb, idx);
        b.convert(eq, DType::F32)
    });
    Val::Tensor(TVal { ty: Ty { dtype: DType::F32, dims }, id })
}

/// `flatten(x, start = 1)`: merges dims `start..` into one (row-major, so the
/// elements keep their order): `f32[B, 64, 5, 5]` -> `f32[B, 1600]`, the step
/// between convolutions and dense layers. A merged symbolic dim is written as
/// the product, e.g. `(C * H)`.
fn flatten(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(t) = first_tensor(el, args, span, "flatten") else { return Val::Poison };
    let start_arg = args.iter().skip(1).find(|a| a.name.is_none() || a.name.as_deref() == Some("start"));
    let start = match start_arg.map(|a| &a.value) {
        None => 1,
        Some(Val::Int(Dim::Known(n))) => *n,
        Some(_) => return bad(el, "flatten(x, start = 1) needs `start` as a compile-time integer", span),
    };
    let rank = t.ty.dims.len();
    if start >= rank {
        return el.error(
            Diagnostic::error(
                Code::ShapeMismatch,
                format!("flatten(x, start = {start}) needs a tensor of rank above {start}"),
            )
            .with_label(args[0].span, format!("this is {}", t.ty)),
        );
    }
    let (n, syms) = dim_factors(&t.ty.dims[start..]);
    let dim = product_dim(n, syms);
    let mut dims = t.ty.dims[..start].to_vec();
    dims.push(dim);
    let id = t.id.map(|x| {
        let b = el.b();
        let src = b.ty(x).shape.0.clone();
        let mut out = src[..start].to_vec();
        out.push(src[start..].iter().product());
        b.reshape(x, &Shape(out))
    });
    Val::Tensor(TVal { ty: Ty { dtype: t.ty.dtype, dims }, id })
}

/// `reshape(x, (d1, d2, ...))`: the same elements in row-major order under a
/// new shape. One entry may be `-1`, inferred from the element count; it is
/// how a symbolic batch dim passes through (`reshape(x, (-1, 1, 28, 28))` on
/// `f32[B, 784]` gives `f32[B, 1, 28, 28]`). The known dims must account for
/// every element: a mismatch is a compile-time error showing both shapes.
fn reshape(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(t) = first_tensor(el, args, span, "reshape") else { return Val::Poison };
    let usage = "reshape(x, shape) needs the shape as a tuple of compile-time integers, at most one of them -1";
    let entries: Vec<Val> = match args.get(1).map(|a| &a.value) {
        Some(Val::Tuple(items)) => items.clone(),
        Some(v @ (Val::Int(_) | Val::NegInt(_) | Val::Float(_))) => vec![v.clone()],
        _ => return bad(el, usage, span),
    };
    // `None` is the inferred entry.
    let mut target: Vec<Option<Dim>> = Vec::new();
    for v in &entries {
        match v {
            Val::Int(d) => target.push(Some(d.clone())),
            Val::NegInt(-1) => target.push(None),
            Val::Float(f) if *f == -1.0 => target.push(None),
            _ => return bad(el, usage, span),
        }
    }
    if target.iter().filter(|d| d.is_none()).count() > 1 {
        return bad(el, usage, span);
    }
    let (src_known, mut src_syms) = dim_factors(&t.ty.dims);
    let given: Vec<Dim> = target.iter().flatten().cloned().collect();
    let (dst_known, dst_syms) = dim_factors(&given);
    // Symbolic dims named on both sides cancel.
    let mut unmatched_dst = Vec::new();
    for s in dst_syms {
        match src_syms.iter().position(|x| *x == s) {
            Some(i) => {
                src_syms.remove(i);
            }
            None => unmatched_dst.push(s),
        }
    }
    let mismatch = |el: &mut Elaborator| {
        let shown: Vec<String> =
            target.iter().map(|d| d.as_ref().map_or("-1".to_string(), |d| d.to_string())).collect();
        el.error(
            Diagnostic::error(
                Code::ShapeMismatch,
                format!("cannot reshape {} to ({}): the element counts differ", t.ty, shown.join(", ")),
            )
            .with_label(args[0].span, format!("this is {}", t.ty))
            .with_label(args[1].span, format!("this asks for ({})", shown.join(", "))),
        )
    };
    let inferred = if !unmatched_dst.is_empty() || dst_known == 0 || src_known % dst_known != 0 {
        return mismatch(el);
    } else {
        let rest = src_known / dst_known;
        match (target.iter().any(|d| d.is_none()), src_syms.is_empty()) {
            (false, true) if rest == 1 => None,
            (false, _) => return mismatch(el),
            (true, true) => Some(Dim::Known(rest)),
            (true, false) => Some(product_dim(rest, src_syms.clone())),
        }
    };
    let dims: Vec<Dim> =
        target.iter().map(|d| d.clone().or_else(|| inferred.clone()).expect("one inferred dim")).collect();
    let id = t.id.map(|x| {
        let shape = Shape(dims.iter().map(known).collect());
        el.b().reshape(x, &shape)
    });
    Val::Tensor(TVal { ty: Ty { dtype: t.ty.dtype, dims }, id })
}

fn linspace(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let (Some(start), Some(end), Some(CallArg { value: Val::Int(Dim::Known(n)), .. })) =
        (num(args.first()), num(args.get(1)), args.get(2))
    else {
        return bad(el, "linspace(start, end, n) needs two numbers and a compile-time integer count", span);
    };
    let n = *n;
    if n < 2 {
        return bad(el, "linspace needs n >= 2", span);
    }
    let id = if el.building() {
        let b = el.b();
        let ty = Type::new(DType::F32, &[n]);
        let i = b.iota(ty.clone(), 0);
        let step = b.full((end - start) / (n - 1) as f64, &ty);
        let s = b.full(start, &ty);
        let scaled = b.mul(i, step);
        let inner = b.add(scaled, s);
        // The last element is `end` itself (NumPy and JAX set it so):
        // `start + (n - 1) * step` can miss it by an ulp.
        let last = b.full((n - 1) as f64, &ty);
        let at_end = b.binary(Op::Eq, i, last);
        let e = b.full(end, &ty);
        Some(b.select(at_end, e, inner))
    } else {
        None
    };
    Val::Tensor(TVal { ty: Ty { dtype: DType::F32, dims: vec![Dim::Known(n)] }, id })
}

/// `transpose(x, (p0, p1, ...))`: result axis `i` is operand axis `p_i`
/// (NumPy's `transpose(x, axes)`); negative entries count from the end.
fn transpose_axes(el: &mut Elaborator, t: TVal, perm: &Val, span: Span) -> Val {
    let rank = t.ty.rank();
    let usage = format!(
        "transpose(x, axes) needs a permutation of the {rank} axes of {} as a tuple of compile-time integers",
        t.ty
    );
    let items = match perm {
        Val::Tuple(items) => items.clone(),
        _ => return bad(el, &usage, span),
    };
    let mut axes = Vec::new();
    for v in &items {
        let a = match v {
            Val::Int(Dim::Known(n)) => *n as i64,
            Val::NegInt(n) => *n,
            Val::Float(f) if f.fract() == 0.0 && *f < 0.0 => *f as i64,
            _ => return bad(el, &usage, span),
        };
        let a = if a < 0 { a + rank as i64 } else { a };
        if a < 0 || a >= rank as i64 || axes.contains(&(a as usize)) {
            return bad(el, &usage, span);
        }
        axes.push(a as usize);
    }
    if axes.len() != rank {
        return bad(el, &usage, span);
    }
    let ty = Ty { dtype: t.ty.dtype, dims: axes.iter().map(|&p| t.ty.dims[p].clone()).collect() };
    let id = t.id.map(|x| el.b().transpose(x, axes));
    Val::Tensor(TVal { ty, id })
}

/// `assert(condition, "message")`: a compile-time check, an error with the
/// message (at the condition, with the calls that led there) when it is
/// false. A layer checks its arguments with it (`d / heads * heads == d`),
/// so the error says what is wrong instead of failing in a reshape further on.
fn compile_time_assert(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let [cond, message] = args else {
        return bad(el, "`assert(condition, \"message\")` takes a condition and a message", span);
    };
    match (&cond.value, &message.value) {
        (Val::Poison, _) | (_, Val::Poison) => Val::Poison,
        (Val::Bool(true), Val::Str(_)) => Val::Unit,
        (Val::Bool(false), Val::Str(m)) => {
            el.failed_assert = true;
            el.error(Diagnostic::error(Code::BadCall, m.clone()).with_label(cond.span, "this is false"))
        }
        (other, Val::Str(_)) => el.error(
            Diagnostic::error(Code::TypeMismatch, "an `assert` condition must be known at compile time")
                .with_label(cond.span, format!("this is {}", other.describe()))
                .with_help("assert checks shapes, sizes and settings while compiling; a compiled step cannot stop on a tensor's value"),
        ),
        (_, other) => {
            let msg = format!("`assert`'s message must be a string, not {}", other.describe());
            bad(el, &msg, message.span)
        }
    }
}

/// `size(x, axis)`: the length of one axis of `x` as a compile-time integer
/// (symbolic when the dim is, e.g. the batch `B`), so that generic functions
/// can reshape by their argument's dims.
fn size(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(t) = first_tensor(el, args, span, "size") else { return Val::Poison };
    let rank = t.ty.rank() as i64;
    let axis = match args.get(1).map(|a| &a.value) {
        Some(Val::Int(Dim::Known(n))) if args.len() == 2 => *n as i64,
        Some(Val::NegInt(n)) if args.len() == 2 => *n,
        Some(Val::Float(f)) if args.len() == 2 && f.fract() == 0.0 => *f as i64,
        _ => return bad(el, "size(x, axis) needs the axis as a compile-time integer", span),
    };
    let a = if axis < 0 { axis + rank } else { axis };
    if a < 0 || a >= rank {
        return el.error(
            Diagnostic::error(Code::ShapeMismatch, format!("axis {axis} is out of range for {}", t.ty))
                .with_label(args[0].span, format!("this is {}", t.ty)),
        );
    }
    Val::Int(t.ty.dims[a as usize].clone())
}

/// `arange(n)`: the i32 vector `[0, 1, ..., n - 1]` for a compile-time `n`
/// (positions, masks: `arange(T)[:, None]`-style comparisons via reshape).
fn arange(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let n = match args.first().map(|a| &a.value) {
        Some(Val::Int(Dim::Known(n))) if args.len() == 1 && *n >= 1 => *n,
        // While checking a generic step (`arange(size(x, 0))` with the batch `B`).
        Some(Val::Int(d @ Dim::Sym(_))) if args.len() == 1 && !el.building() => {
            return Val::Tensor(TVal { ty: Ty { dtype: DType::I32, dims: vec![d.clone()] }, id: None })
        }
        _ => return bad(el, "arange(n) needs one compile-time integer n >= 1", span),
    };
    let id = if el.building() { Some(el.b().iota(Type::new(DType::I32, &[n]), 0)) } else { None };
    Val::Tensor(TVal { ty: Ty { dtype: DType::I32, dims: vec![Dim::Known(n)] }, id })
}

fn print(el: &mut Elaborator, args: Vec<CallArg>, span: Span) -> Val {
    if el.prints.is_none() {
        return el.error(
            Diagnostic::error(Code::NotAllowed, "`print` is only allowed in `fn main`")
                .with_label(span, "printed here"),
        );
    }
    let mut items = Vec::new();
    for a in args {
        match print_item(el, a.value) {
            Ok(item) => items.push(item),
            Err(other) => {
                return el.error(
                    Diagnostic::error(Code::TypeMismatch, format!("cannot print {}", other.describe()))
                        .with_label(a.span, "here"),
                );
            }
        }
    }
    el.prints.as_mut().expect("checked above").push(items);
    Val::Unit
}

/// How `print` shows a value (tensors are computed and shown after the
/// run); `Err` gives back a value that cannot be printed.
fn print_item(el: &mut Elaborator, value: Val) -> Result<PrintItem, Val> {
    Ok(match value {
        Val::Str(s) => PrintItem::Text(s),
        Val::Float(x) => PrintItem::Text(format!("{x:?}")),
        Val::Int(d) => PrintItem::Text(d.to_string()),
        Val::NegInt(n) => PrintItem::Text(n.to_string()),
        Val::Bool(b) => PrintItem::Text(b.to_string()),
        Val::Tensor(t) => {
            el.printed.push(t);
            PrintItem::Value(el.printed.len() - 1)
        }
        Val::Tuple(items) => PrintItem::Tuple(items.into_iter().map(|v| print_item(el, v)).collect::<Result<_, _>>()?),
        other => return Err(other),
    })
}

fn log_metric(el: &mut Elaborator, args: Vec<CallArg>, span: Span) -> Val {
    if el.logs.is_none() {
        return el.error(
            Diagnostic::error(Code::NotAllowed, "`log(name, value)` is only allowed inside step methods")
                .with_label(span, "logged here")
                .with_help(
                    "log from `training_step` or `validation_step`; for the natural logarithm pass a tensor, `log(x)`",
                ),
        );
    }
    let Some(Val::Str(name)) = args.first().map(|a| a.value.clone()) else { unreachable!("checked by caller") };
    let value = match args.get(1).map(|a| &a.value) {
        Some(Val::Tensor(t)) if t.ty.rank() == 0 && t.ty.dtype.is_float() => t.clone(),
        Some(Val::Tensor(t)) => {
            let d = format!("a logged value must be a float scalar, found {}", t.ty);
            return el.error(
                Diagnostic::error(Code::TypeMismatch, d)
                    .with_label(args[1].span, format!("this is {}", t.ty))
                    .with_help("reduce it first, e.g. `mean(x)`"),
            );
        }
        Some(v @ (Val::Float(_) | Val::Int(Dim::Known(_)) | Val::NegInt(_))) => {
            let v = v.clone();
            match el.scalar_tensor(&v, DType::F32) {
                Some(t) => t,
                None => return Val::Poison,
            }
        }
        _ => return bad(el, "log(name, value, prog_bar = false) needs a value", span),
    };
    let mut prog_bar = false;
    for a in args.iter().skip(2) {
        match (a.name.as_deref(), &a.value) {
            (Some("prog_bar"), Val::Bool(b)) => prog_bar = *b,
            (Some("on_step" | "on_epoch"), _) => {
                return bad(
                    el,
                    "`log` takes (name, value, prog_bar = false): a training step's value always gets both \
                     its `_step` and its `_epoch` columns (a validation step's: the epoch's mean)",
                    a.span,
                )
            }
            _ => return bad(el, "`log` takes (name, value, prog_bar = false)", a.span),
        }
    }
    let earlier = el.logs.as_ref().and_then(|logs| logs.iter().find(|l| l.name == name)).map(|l| l.span);
    if let Some(first) = earlier {
        return el.error(
            Diagnostic::error(Code::NotAllowed, format!("`{name}` is logged twice in one step"))
                .with_label(span, "logged again here")
                .with_label(first, "first logged here"),
        );
    }
    if let Some(logs) = el.logs.as_mut() {
        logs.push(LogEntry { name, value, prog_bar, span });
    }
    Val::Unit
}

/// `custom_vjp(f, fwd, bwd)`: three functions (see `lower/custom_vjp.rs`).
fn custom_vjp(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    const USAGE: &str = "custom_vjp(f, fwd, bwd) takes three functions: f, fwd(args) -> (f(args), residuals), \
                         bwd(residuals, ct) -> one cotangent per argument";
    let [f, fwd, bwd] = args else { return bad(el, USAGE, span) };
    for a in args {
        if a.name.is_some() {
            return bad(el, USAGE, a.span);
        }
        match &a.value {
            Val::Poison => return Val::Poison,
            // A builtin (`tanh`) has no signature but is called all the same.
            v if super::transform::value_sig(el, v).is_some() || matches!(v, Val::Builtin(_)) => {}
            other => return bad(el, &format!("{USAGE}; this is {}", other.describe()), a.span),
        }
    }
    Val::CustomVjp(std::rc::Rc::new(super::custom_vjp::Rule {
        f: f.value.clone(),
        fwd: fwd.value.clone(),
        bwd: bwd.value.clone(),
        spans: [f.span, fwd.span, bwd.span],
    }))
}
