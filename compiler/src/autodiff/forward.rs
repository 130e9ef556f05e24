//! Forward mode: a `Func` in, a `Func` out that computes the primal outputs
//! and then the tangent of each float output (`jvp`).
//!
//! Tangents are pushed through the instructions in order with
//! `jvp_rules::jvp`, interleaved with the primal. Only values that depend on
//! a `wrt` param through float values get a tangent; the others are zero and
//! never materialised, except as the zero tangent of an output they reach.

use super::inline;
use super::jvp_rules;
use crate::ir::dce::dce;
use crate::ir::{Builder, Func, ValueId};

pub(super) fn jvp(func: &Func, wrt: &[usize]) -> Func {
    for &p in wrt {
        assert!(p < func.n_params, "wrt param {p} out of range for `{}`", func.name);
    }
    let mut param_types = func.param_types();
    param_types.extend(wrt.iter().map(|&p| func.insts[p].ty.clone()));
    let mut b = Builder::new(&format!("{}_jvp", func.name), &param_types);
    let params: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    let primal = inline(&mut b, func, &params);
    let mut tangents: Vec<Option<ValueId>> = vec![None; func.insts.len()];
    for (k, &p) in wrt.iter().enumerate() {
        // Int/bool params take a tangent param (the signature is uniform) but
        // it carries nothing. A param listed twice gets the sum of its tangents.
        if func.insts[p].ty.dtype.is_float() {
            let t = b.param(func.n_params + k);
            tangents[p] = Some(match tangents[p] {
                None => t,
                Some(prev) => b.add(prev, t),
            });
        }
    }
    for i in func.n_params..func.insts.len() {
        let inst = &func.insts[i];
        let ts: Vec<Option<ValueId>> = inst.args.iter().map(|a| tangents[a.index()]).collect();
        if ts.iter().all(Option::is_none) || !inst.ty.dtype.is_float() {
            continue;
        }
        let args: Vec<ValueId> = inst.args.iter().map(|a| primal[a.index()]).collect();
        tangents[i] = jvp_rules::jvp(&mut b, &inst.op, &args, primal[i], &ts);
    }
    let mut outputs: Vec<ValueId> = func.outputs.iter().map(|o| primal[o.index()]).collect();
    for &o in &func.outputs {
        let ty = func.ty(o).clone();
        if ty.dtype.is_float() {
            let t = tangents[o.index()].unwrap_or_else(|| b.full(0.0, &ty));
            outputs.push(t);
        }
    }
    dce(&b.finish(outputs))
}
