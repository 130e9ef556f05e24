//! The rules of `Op::CustomVjp` (see `ir::custom_vjp`): reverse mode runs
//! the user's `fwd` and `bwd`; forward mode and batching transform the
//! functions the op holds.

use std::sync::Arc;

use super::vjp_rules::ArgCts;
use super::vmap::{to_axis, BDim};
use crate::ir::custom_vjp::CustomVjp;
use crate::ir::{Builder, Op, ValueId};

/// The cotangents of the operands, given the cotangents `seeds` of some of
/// the op's results (`(result, cotangent)`, every sibling at once: Note
/// [Sibling cotangents] in `reverse.rs`): `fwd` inline for the residuals,
/// then `bwd` on the residuals and the result cotangents (zeros for results
/// without one). Both are plain instructions here, so a gradient of this
/// gradient differentiates the rule itself (as in JAX).
pub(super) fn vjp(
    b: &mut Builder,
    c: &CustomVjp,
    args: &[ValueId],
    seeds: &[(usize, ValueId)],
    needs: &[bool],
) -> ArgCts {
    let fwd = super::inline(b, &c.fwd, args);
    let n = c.n_outputs();
    let mut bwd_args: Vec<ValueId> = c.fwd.outputs[n..].iter().map(|o| fwd[o.index()]).collect();
    for k in 0..n {
        let mut ct: Option<ValueId> = None;
        for &(_, s) in seeds.iter().filter(|(j, _)| *j == k) {
            ct = Some(ct.map_or(s, |prev| b.add(prev, s)));
        }
        bwd_args.push(ct.unwrap_or_else(|| b.full(0.0, &c.result_type(k))));
    }
    let bwd = super::inline(b, &c.bwd, &bwd_args);
    let params = c.primal.param_types();
    c.bwd
        .outputs
        .iter()
        .enumerate()
        .map(|(k, o)| (needs[k] && params[k].dtype.is_float()).then(|| bwd[o.index()]))
        .collect()
}

/// The tangent of result `c.output`: the JVP of `primal` (the rule is for
/// reverse mode; JAX refuses `jvp` here, we differentiate the function).
pub(super) fn jvp(b: &mut Builder, c: &CustomVjp, args: &[ValueId], ts: &[Option<ValueId>]) -> Option<ValueId> {
    let params = c.primal.param_types();
    let wrt: Vec<usize> = (0..params.len()).filter(|&k| params[k].dtype.is_float() && ts[k].is_some()).collect();
    if wrt.is_empty() {
        return None;
    }
    let jf = super::jvp(&c.primal, &wrt);
    let mut jargs = args.to_vec();
    jargs.extend(wrt.iter().map(|&k| ts[k].expect("a tangent")));
    let values = super::inline(b, &jf, &jargs);
    // Every result is float (the verifier checks), so result k's tangent is
    // output `n + k`.
    Some(values[jf.outputs[c.n_outputs() + c.output].index()])
}

/// Batched: every operand moved (or broadcast) to batch axis 0 and the
/// three functions batched over axis 0, so the rule still applies per
/// example; a shared operand's cotangent is then summed by its broadcast's
/// own rule. Returns the result, batched at axis 0.
pub(super) fn batch(b: &mut Builder, c: &CustomVjp, args: &[(ValueId, BDim)], size: usize) -> ValueId {
    let operands: Vec<ValueId> = args.iter().map(|&(v, d)| to_axis(b, v, d, 0, size)).collect();
    let all = |n: usize| vec![Some(0); n];
    let batched = CustomVjp {
        primal: Arc::new(super::vmap(&c.primal, &all(c.primal.n_params), size)),
        fwd: Arc::new(super::vmap(&c.fwd, &all(c.fwd.n_params), size)),
        bwd: Arc::new(super::vmap(&c.bwd, &all(c.bwd.n_params), size)),
        output: c.output,
    };
    let ty = batched.result_type(c.output);
    b.push(Op::CustomVjp(batched), operands, ty)
}
