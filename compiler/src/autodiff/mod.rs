//! Automatic differentiation as IR-to-IR transforms: a `Func` in, a new `Func`
//! out that computes the primal outputs plus derivatives; and batching.
//!
//! - `grad` and `vjp` are reverse mode (`reverse.rs`, rules in `vjp_rules.rs`).
//! - `jvp` is forward mode (`forward.rs`, rules in `jvp_rules.rs`).
//! - `vmap` maps a function over a batch axis (`vmap.rs`, its rules inside).
//! - `Op::Scan`'s three rules are in `scan_rules.rs` (each is a scan again);
//!   `Op::CustomVjp`'s in `custom_vjp_rules.rs`.
//!
//! The result is ordinary IR built with `ir::Builder`, so the transforms
//! compose: `grad` of a function that calls a `grad` result gives second
//! derivatives. Only float values carry tangents and cotangents; integer and
//! bool values, comparisons and conversions from them are piecewise constant.
//! Every result is passed through `ir::dce::dce`, so computation that no
//! output needs (e.g. the gradient w.r.t. input data) never appears.
//! Autodiff sees only IR, never the AST, and does no IO.

mod custom_vjp_rules;
mod forward;
mod jvp_rules;
mod pow_slopes;
mod reverse;
mod scan_rules;
mod vjp_rules;
mod vmap;
mod vmap_rules;
mod window_rules;

#[cfg(test)]
mod tests;

use crate::ir::{Builder, Func, ValueId};

/// Reverse mode. `func`'s output 0 must be a float scalar. Result: same params; outputs =
/// func's outputs, then d(output 0)/d(param i) for each i in `wrt` (same type as the param).
pub fn grad(func: &Func, wrt: &[usize]) -> Func {
    reverse::grad(func, wrt)
}

/// Reverse mode, general: params = func's params, then one cotangent per float output of func
/// (same type as that output, in output order); outputs = func's outputs, then the cotangent of
/// each param in `wrt`.
pub fn vjp(func: &Func, wrt: &[usize]) -> Func {
    reverse::vjp(func, wrt)
}

/// Forward mode: params = func's params, then one tangent per param in `wrt` (same type);
/// outputs = func's outputs, then the tangent of each float output.
pub fn jvp(func: &Func, wrt: &[usize]) -> Func {
    forward::jvp(func, wrt)
}

/// Batching: params of `func`'s types, those with `in_axes[i] = Some(axis)` with a dim of
/// `size` inserted at `axis` (`None`: shared by every example); outputs = func's outputs with
/// `size` inserted at axis 0, output `j` of example `e` at index `e`.
pub fn vmap(func: &Func, in_axes: &[Option<usize>], size: usize) -> Func {
    vmap::vmap(func, in_axes, size)
}

/// The transpose of the conv `a` with kernel `kernel`, applied to `ct` (the
/// conv's output shape): a value of dims `input_dims`, the conv's input.
/// This is `conv2d`'s input cotangent, and the language's `conv_transpose2d`.
pub(crate) fn transposed_conv2d(
    b: &mut Builder,
    a: &crate::ir::Conv,
    input_dims: &[usize],
    kernel: ValueId,
    ct: ValueId,
) -> ValueId {
    window_rules::transposed_conv2d(b, a, input_dims, kernel, ct)
}

/// Appends `func`'s non-param instructions to `b`, with `func`'s params bound
/// to `args`. Returns the new value of every instruction of `func` (params
/// map to `args`), indexed by the old `ValueId`.
pub(crate) fn inline(b: &mut Builder, func: &Func, args: &[ValueId]) -> Vec<ValueId> {
    assert_eq!(args.len(), func.n_params, "inline: wrong number of arguments");
    let mut map: Vec<ValueId> = args.to_vec();
    for inst in &func.insts[func.n_params..] {
        let new_args = inst.args.iter().map(|a| map[a.index()]).collect();
        map.push(b.push(inst.op.clone(), new_args, inst.ty.clone()));
    }
    map
}

/// Inlines `func` into `b` with `args` for its params; returns the values of
/// its outputs (a call site, where `inline` returns every value).
pub fn inline_outputs(b: &mut Builder, func: &Func, args: &[ValueId]) -> Vec<ValueId> {
    let map = inline(b, func, args);
    func.outputs.iter().map(|o| map[o.index()]).collect()
}
