//! Reverse mode: a `Func` in, a `Func` out that computes the primal outputs
//! and then cotangents of chosen params (`grad`, `vjp`).
//!
//! The result first replays the primal instructions, then walks them
//! backwards applying `vjp_rules::vjp`. Only active instructions are visited:
//! those on a path from a `wrt` param to a seeded output (see Note [Activity]),
//! so nothing is computed for data params. `dce` removes the rest.

use super::inline;
use super::vjp_rules;
use crate::ir::dce::dce;
use crate::ir::{Builder, Func, Op, ValueId};

pub(super) fn grad(func: &Func, wrt: &[usize]) -> Func {
    let out0 = *func.outputs.first().expect("grad: function has no outputs");
    let out_ty = func.ty(out0).clone();
    assert!(
        out_ty.dtype.is_float() && out_ty.shape.rank() == 0,
        "grad: output 0 of `{}` must be a float scalar, is {out_ty}",
        func.name
    );
    let mut b = Builder::new(&format!("{}_grad", func.name), &func.param_types());
    let params: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    let primal = inline(&mut b, func, &params);
    let one = b.constant(1.0, out_ty.dtype);
    let cts = backward(&mut b, func, &primal, &[(out0, one)], wrt);
    finish(b, func, &primal, cts)
}

pub(super) fn vjp(func: &Func, wrt: &[usize]) -> Func {
    let float_outputs: Vec<ValueId> = func.outputs.iter().copied().filter(|&o| func.ty(o).dtype.is_float()).collect();
    let mut param_types = func.param_types();
    param_types.extend(float_outputs.iter().map(|&o| func.ty(o).clone()));
    let mut b = Builder::new(&format!("{}_vjp", func.name), &param_types);
    let params: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    let primal = inline(&mut b, func, &params);
    let seeds: Vec<(ValueId, ValueId)> =
        float_outputs.iter().enumerate().map(|(k, &o)| (o, b.param(func.n_params + k))).collect();
    let cts = backward(&mut b, func, &primal, &seeds, wrt);
    finish(b, func, &primal, cts)
}

fn finish(b: Builder, func: &Func, primal: &[ValueId], cts: Vec<ValueId>) -> Func {
    let mut outputs: Vec<ValueId> = func.outputs.iter().map(|o| primal[o.index()]).collect();
    outputs.extend(cts);
    dce(&b.finish(outputs))
}

/// Emits the backward pass into `b`. `primal[v]` is the new value of `func`'s
/// value `v`; `seeds` pairs `func` values with their incoming cotangents (new
/// values; a value seeded twice gets their sum). Returns the cotangent of each
/// param in `wrt`, zeros where no gradient reaches it.
fn backward(
    b: &mut Builder,
    func: &Func,
    primal: &[ValueId],
    seeds: &[(ValueId, ValueId)],
    wrt: &[usize],
) -> Vec<ValueId> {
    for &p in wrt {
        assert!(p < func.n_params, "wrt param {p} out of range for `{}`", func.name);
    }
    let active = activity(func, seeds, wrt);
    let mut cts: Vec<Option<ValueId>> = vec![None; func.insts.len()];
    for &(v, ct) in seeds {
        if active[v.index()] {
            accumulate(b, &mut cts[v.index()], ct);
        }
    }
    let groups = sibling_groups(func);
    for i in (func.n_params..func.insts.len()).rev() {
        let inst = &func.insts[i];
        let needs: Vec<bool> = inst.args.iter().map(|a| active[a.index()]).collect();
        let args: Vec<ValueId> = inst.args.iter().map(|a| primal[a.index()]).collect();
        let arg_cts = match &groups[i] {
            // A later sibling: its cotangent waits for the group's first.
            Sibling::Later => continue,
            Sibling::First(members) => {
                let seeds: Vec<(usize, ValueId)> = members
                    .iter()
                    .filter(|&&m| active[m])
                    .filter_map(|&m| cts[m].map(|ct| (result_index(&func.insts[m].op), ct)))
                    .collect();
                if seeds.is_empty() {
                    continue;
                }
                vjp_rules::vjp_group(b, &inst.op, &args, &seeds, &needs)
            }
            Sibling::Single => {
                let Some(ct) = cts[i] else { continue };
                if !active[i] {
                    continue;
                }
                vjp_rules::vjp(b, &inst.op, &args, primal[i], ct, &needs)
            }
        };
        debug_assert_eq!(arg_cts.len(), inst.args.len(), "vjp rule arity for {:?}", inst.op);
        for (a, arg_ct) in inst.args.iter().zip(arg_cts) {
            if let Some(arg_ct) = arg_ct.filter(|_| active[a.index()]) {
                accumulate(b, &mut cts[a.index()], arg_ct);
            }
        }
    }
    wrt.iter()
        .map(|&p| match cts[p] {
            Some(ct) => ct,
            None => {
                let ty = func.insts[p].ty.clone();
                b.full(0.0, &ty)
            }
        })
        .collect()
}

/// Where an instruction stands among the results of one multi-result op
/// (Note [Sibling cotangents]).
enum Sibling {
    /// A single-result op.
    Single,
    /// The first instruction of a scan or custom_vjp; its group's members
    /// (itself included), in order.
    First(Vec<usize>),
    /// Another result of an earlier instruction's op.
    Later,
}

/// Each instruction's place among the results of its op (`ir::scan::result_groups`).
fn sibling_groups(func: &Func) -> Vec<Sibling> {
    let mut groups: Vec<Sibling> = (0..func.insts.len()).map(|_| Sibling::Single).collect();
    for members in crate::ir::scan::result_groups(func) {
        for &m in &members[1..] {
            groups[m] = Sibling::Later;
        }
        let first = members[0];
        groups[first] = Sibling::First(members);
    }
    groups
}

/// Which result of its op a scan or custom_vjp instruction is.
fn result_index(op: &Op) -> usize {
    match op {
        Op::Scan(s) => s.output,
        Op::CustomVjp(c) => c.output,
        other => unreachable!("{other:?} has one result"),
    }
}

/// A value used several times gets the sum of its uses' cotangents.
fn accumulate(b: &mut Builder, slot: &mut Option<ValueId>, ct: ValueId) {
    *slot = Some(match *slot {
        None => ct,
        Some(prev) => b.add(prev, ct),
    });
}

/// Which values of `func` get a cotangent. See Note [Activity].
fn activity(func: &Func, seeds: &[(ValueId, ValueId)], wrt: &[usize]) -> Vec<bool> {
    let n = func.insts.len();
    let is_float = |i: usize| func.insts[i].ty.dtype.is_float();
    let mut varied = vec![false; n];
    for &p in wrt {
        varied[p] = is_float(p);
    }
    for i in func.n_params..n {
        varied[i] = is_float(i) && func.insts[i].args.iter().any(|a| varied[a.index()]);
    }
    let mut useful = vec![false; n];
    for &(v, _) in seeds {
        useful[v.index()] = is_float(v.index());
    }
    for i in (0..n).rev() {
        if useful[i] {
            for a in &func.insts[i].args {
                useful[a.index()] |= is_float(a.index());
            }
        }
    }
    (0..n).map(|i| varied[i] && useful[i]).collect()
}

// Note [Activity]
// ~~~~~~~~~~~~~~~
// A value is *varied* if it depends on a `wrt` param through float values,
// and *useful* if a seeded output depends on it through float values. Only
// values that are both (active) get cotangents, and a rule is asked only for
// the cotangents of active operands. Integer and bool values are never
// active, which is how comparisons, `select` conditions and conversions from
// int/bool drop out. In `loss(x @ w)` with `wrt = [w]`, `x` is not varied, so
// `ct @ w^T` (the gradient w.r.t. the data) is never emitted.

// Note [Sibling cotangents]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// A scan or custom_vjp with several results is several instructions
// (Note [One instruction per result] in `ir/scan.rs`). Asking the rule once
// per result would build one backward loop per seeded result (an RNN loss
// that reads both the final state and the outputs ran its backward scan
// twice, and stored the carries twice). So the results of one op are one
// group, and the rule runs once, at the group's first instruction, with the
// cotangents of all its results. That instruction comes last in the
// backward sweep, when every sibling's cotangent is complete: the users of
// a sibling all come after it, hence after the first.
