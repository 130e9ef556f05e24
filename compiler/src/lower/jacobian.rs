//! `jacfwd(f, wrt = ...)`, `jacrev(f, wrt = ...)` and `hessian(f, wrt = ...)`:
//! whole Jacobians, as JAX's. For `f` from its arguments to one float tensor
//! `y`, the Jacobian with respect to argument `x` has `y`'s dims, then `x`'s:
//! `J[i..., j...] = d y[i...] / d x[j...]`.
//!
//! They are built from the IR transformations that already exist, so they
//! run on every backend and compose with the others:
//! - `jacrev` maps the `vjp` (`autodiff::vmap`) over the rows of an identity
//!   matrix of `y`'s size: one pullback per output element, cheap when the
//!   output is small (a scalar loss's Jacobian is its gradient);
//! - `jacfwd` maps the `jvp` over the rows of an identity matrix of `x`'s
//!   size, one tangent per input element, cheap when the input is small; its
//!   result has `x`'s axes first and is transposed;
//! - `hessian` is `jacfwd(jacrev(f, wrt), wrt)`, as JAX's: with `wrt = (a,
//!   b)` it is `((H_aa, H_ab), (H_ba, H_bb))`.
//!
//! Arguments and results may be tuples of tensors (`tree.rs`): there is one
//! Jacobian per (output tensor, differentiated input tensor), arranged as
//! JAX arranges them.
//!
//! In check mode only the types are computed.

use super::elab::{CallArg, Elaborator};
use super::transform::{
    as_tree_args, differentiated_args, float_output, function_and_wrt, leaf_ranges, lower_alone, Output,
};
use super::tree;
use super::value::{Callee, JacobianMode, TVal, Val};
use crate::autodiff::inline_outputs as inline;
use crate::check::Ty;
use crate::ir::{Builder, DType, Func, Op, Shape, Type, ValueId};
use crate::span::Span;
use std::rc::Rc;

/// `jacfwd(f, wrt = ...)`, `jacrev(...)`, `hessian(...)`: the function value
/// waiting for its arguments.
pub fn make_jacobian(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let mode = match name {
        "jacfwd" => JacobianMode::Forward,
        "jacrev" => JacobianMode::Reverse,
        _ => JacobianMode::Hessian,
    };
    match function_and_wrt(el, name, args, &[], span) {
        Ok((f, wrt)) => Val::Jacobian { f, wrt, mode },
        Err(v) => v,
    }
}

/// The name a user wrote for `mode`.
pub fn mode_name(mode: JacobianMode) -> &'static str {
    match mode {
        JacobianMode::Forward => "jacfwd",
        JacobianMode::Reverse => "jacrev",
        JacobianMode::Hessian => "hessian",
    }
}

/// `jacfwd(f)(args)`, `jacrev(f)(args)`, `hessian(f)(args)`: one Jacobian
/// per `wrt` name (a tuple of them for several names).
pub fn call_jacobian(
    el: &mut Elaborator,
    f: Callee,
    wrt: &[String],
    mode: JacobianMode,
    args: Vec<CallArg>,
    span: Span,
) -> Val {
    let what = mode_name(mode);
    let (fname, params) = el.callee_sig(&f);
    let Some((wrt_idx, trees)) = differentiated_args(el, what, &fname, &params, wrt, &args, span) else {
        return Val::Poison;
    };
    if let Some(&i) = wrt_idx.iter().find(|&&i| tree::has_model(&trees[i])) {
        let d = crate::diagnostic::Diagnostic::error(
            crate::diagnostic::Code::BadCall,
            format!("{what} with respect to a model is not supported: {what} takes tensors or tuples of them"),
        )
        .with_label(args[i].span, "a model")
        .with_help("differentiate with respect to its tensors: `(self.l.weight, self.l.bias)`, or use `grad`");
        el.error(d);
        return Val::Poison;
    }
    if mode == JacobianMode::Hessian {
        return hessian(el, f, wrt, args, span);
    }
    if !el.building() {
        let out = el.call_callee(&f, as_tree_args(&trees, &args), span);
        let out = match float_output(&out, &fname, span, false) {
            Ok(out) => out,
            Err(d) => return d.map_or(Val::Poison, |d| el.error(d)),
        };
        if tree::has_model(&out) {
            return model_result(el, what, &fname, span);
        }
        return arranged(&out, &wrt_idx, &trees, mode, &mut std::iter::repeat(None));
    }
    let Some((func, out, captured, _)) = lower_alone(el, &f, &fname, &trees, &args, span, Output::Tensor) else {
        return Val::Poison;
    };
    if tree::has_model(&out) {
        return model_result(el, what, &fname, span);
    }
    let shared: Vec<ValueId> = trees.iter().flat_map(tree::leaf_ids).chain(captured).collect();
    let ranges = leaf_ranges(&trees);
    let wrt_leaves: Vec<usize> = wrt_idx.iter().flat_map(|&i| ranges[i].clone()).collect();
    // One Jacobian per (output leaf, differentiated input leaf), in the
    // order `arranged` places them.
    let mut ids = Vec::new();
    for &output in &func.outputs {
        let one_output = Func { outputs: vec![output], ..func.clone() };
        match mode {
            JacobianMode::Reverse => ids.extend(reverse(el.b(), &one_output, &wrt_leaves, &shared)),
            _ => ids.extend(wrt_leaves.iter().map(|&i| forward(el.b(), &one_output, i, &shared))),
        }
    }
    arranged(&out, &wrt_idx, &trees, mode, &mut ids.into_iter().map(Some))
}

/// A Jacobian of a function returning a model (or a tuple holding one) is
/// refused: its blocks would have no model to live in.
fn model_result(el: &mut Elaborator, what: &str, fname: &str, span: Span) -> Val {
    let d = crate::diagnostic::Diagnostic::error(
        crate::diagnostic::Code::BadCall,
        format!("{what} of {fname}, which returns a model, is not supported: {what} takes functions returning tensors or tuples of them"),
    )
    .with_label(span, "in this call")
    .with_help("return the model's tensors instead, e.g. `(g.l.weight, g.l.bias)`");
    el.error(d)
}

/// The Jacobians in JAX's arrangement: the output's structure outside,
/// then one entry per `wrt` argument (the entry itself for one), then that
/// argument's structure; each Jacobian takes its IR value from `ids`.
fn arranged(
    out: &Val,
    wrt_idx: &[usize],
    trees: &[Val],
    mode: JacobianMode,
    ids: &mut impl Iterator<Item = Option<ValueId>>,
) -> Val {
    tree::map_leaves(out, &mut |y| {
        let per_arg = wrt_idx.iter().map(|&i| {
            tree::map_leaves(&trees[i], &mut |x| {
                Val::Tensor(TVal { ty: jacobian_ty(&y.ty, &x.ty, mode), id: ids.next().expect("one per pair") })
            })
        });
        one_or_tuple(per_arg.collect())
    })
}

/// `hessian(f, wrt = (a, b, ...))(args)`: `jacfwd(jacrev(f, wrt = (a, b,
/// ...)), wrt = (a, b, ...))`, as JAX defines it, so it nests as JAX's:
/// for tensors `((H_aa, H_ab), (H_ba, H_bb))`, and for a tuple argument
/// its structure where the gradient has it (a tensor for one name).
fn hessian(el: &mut Elaborator, f: Callee, wrt: &[String], args: Vec<CallArg>, span: Span) -> Val {
    let gradient = Val::Jacobian { f, wrt: wrt.to_vec(), mode: JacobianMode::Reverse };
    call_jacobian(el, Callee::Value(Rc::new(gradient)), wrt, JacobianMode::Forward, args, span)
}

/// The type of the Jacobian of an output of type `out` with respect to an
/// input of type `input`: `out`'s dims, then `input`'s. Reverse mode gives
/// cotangents of the input's dtype, forward mode tangents of the output's.
fn jacobian_ty(out: &Ty, input: &Ty, mode: JacobianMode) -> Ty {
    let dtype = if mode == JacobianMode::Reverse { input.dtype } else { out.dtype };
    Ty { dtype, dims: out.dims.iter().chain(&input.dims).cloned().collect() }
}

/// Reverse mode: the `vjp` of `func` (one float output) batched over the
/// rows of an identity of the output's size; each `wrt` param's cotangents
/// `[m, input dims]` reshaped to `[output dims, input dims]`.
fn reverse(b: &mut Builder, func: &Func, wrt: &[usize], shared: &[ValueId]) -> Vec<ValueId> {
    let out_ty = func.output_types().swap_remove(0);
    let in_tys = func.param_types();
    let result_ty = |i: usize| Type::new(in_tys[i].dtype, &joined(&out_ty, &in_tys[i]));
    let m = out_ty.shape.num_elements();
    // An empty output or input has an empty Jacobian: only the others need
    // the pullbacks (one empty tuple element must not zero the rest).
    let nonempty: Vec<usize> = wrt.iter().copied().filter(|&i| in_tys[i].shape.num_elements() > 0).collect();
    if m == 0 || nonempty.is_empty() {
        return wrt.iter().map(|&i| b.full(0.0, &result_ty(i))).collect();
    }
    if nonempty.len() < wrt.len() {
        let mut found = reverse(b, func, &nonempty, shared).into_iter();
        return wrt
            .iter()
            .map(|&i| match in_tys[i].shape.num_elements() {
                0 => b.full(0.0, &result_ty(i)),
                _ => found.next().expect("one per nonempty input"),
            })
            .collect();
    }
    let vjp = crate::autodiff::vjp(func, wrt);
    let batched = crate::autodiff::vmap(&vjp, &batch_last(func.n_params), m);
    let basis = identity_rows(b, &out_ty);
    let args: Vec<ValueId> = shared.iter().copied().chain(std::iter::once(basis)).collect();
    let outs = inline(b, &batched, &args);
    let n_out = func.outputs.len();
    wrt.iter().enumerate().map(|(k, &i)| b.reshape(outs[n_out + k], &result_ty(i).shape)).collect()
}

/// Forward mode: the `jvp` of `func` with respect to param `i`, batched
/// over the rows of an identity of that param's size; the tangents `[n,
/// output dims]` are transposed to `[output dims, input dims]`.
fn forward(b: &mut Builder, func: &Func, i: usize, shared: &[ValueId]) -> ValueId {
    let out_ty = func.output_types().swap_remove(0);
    let in_ty = func.param_types().swap_remove(i);
    let result_shape = Shape(joined(&out_ty, &in_ty));
    let (m, n) = (out_ty.shape.num_elements(), in_ty.shape.num_elements());
    if m == 0 || n == 0 {
        return b.full(0.0, &Type { dtype: out_ty.dtype, shape: result_shape });
    }
    let jvp = crate::autodiff::jvp(func, &[i]);
    let batched = crate::autodiff::vmap(&jvp, &batch_last(func.n_params), n);
    let basis = identity_rows(b, &in_ty);
    let args: Vec<ValueId> = shared.iter().copied().chain(std::iter::once(basis)).collect();
    let outs = inline(b, &batched, &args);
    let tangents = b.reshape(outs[func.outputs.len()], &Shape(vec![n, m]));
    let by_output = b.transpose(tangents, vec![1, 0]);
    b.reshape(by_output, &result_shape)
}

/// `vmap`'s axes for a transformed function whose last param (the
/// cotangent or tangent) is batched and whose `n_params` others are shared.
fn batch_last(n_params: usize) -> Vec<Option<usize>> {
    std::iter::repeat_n(None, n_params).chain(std::iter::once(Some(0))).collect()
}

/// The dims of `out` followed by those of `input`.
fn joined(out: &Type, input: &Type) -> Vec<usize> {
    out.shape.dims().iter().chain(input.shape.dims()).copied().collect()
}

/// The identity matrix of `ty`'s size, of `ty`'s dtype, its rows shaped as
/// `ty`: `[n, dims of ty]`, row `k` one-hot at element `k`.
fn identity_rows(b: &mut Builder, ty: &Type) -> ValueId {
    let n = ty.shape.num_elements();
    let square = Type::new(DType::I32, &[n, n]);
    let (row, col) = (b.iota(square.clone(), 0), b.iota(square, 1));
    let diagonal = b.binary(Op::Eq, row, col);
    let float = Type::new(ty.dtype, &[n, n]);
    let (one, zero) = (b.full(1.0, &float), b.full(0.0, &float));
    let identity = b.select(diagonal, one, zero);
    let shape: Vec<usize> = std::iter::once(n).chain(ty.shape.dims().iter().copied()).collect();
    b.reshape(identity, &Shape(shape))
}

/// One value as itself, several as a tuple (as `grad` returns gradients).
fn one_or_tuple(mut items: Vec<Val>) -> Val {
    if items.len() == 1 {
        items.pop().expect("one")
    } else {
        Val::Tuple(items)
    }
}
