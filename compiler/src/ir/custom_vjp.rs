//! `Op::CustomVjp`: a function whose reverse-mode derivative is the user's
//! rule rather than the derivative of its instructions (JAX's
//! `jax.custom_vjp`): for numerics (a norm whose gradient at 0 should be 0,
//! a clipped gradient, a stable logsumexp) or for speed.
//!
//! Three nested functions over the op's operands `args`:
//! - `primal(args) -> outs`: what the op computes;
//! - `fwd(args) -> outs ++ residuals`: the forward pass a gradient runs,
//!   which also saves what the backward pass reads;
//! - `bwd(residuals ++ out cotangents) -> one cotangent per arg`.
//!
//! As with scans (Note [One instruction per result] in `scan.rs`) an op with
//! `m` results is `m` instructions that differ only in `output`.
//!
//! Each pass's view: reverse mode replays `fwd` and `bwd` inline as plain
//! instructions (`autodiff/vjp_rules.rs`), so a gradient of a gradient
//! differentiates the rule itself, as in JAX; forward mode (`jvp`) and
//! `vmap` transform the three functions (JAX refuses `jvp` of a custom_vjp
//! function; ours differentiates `primal`). Once no transformation can
//! follow, `inline_rules` replaces each op by its `primal`'s instructions:
//! the optimizer and the backends never see the op; the interpreter runs
//! `primal`.

use std::collections::HashMap;
use std::sync::Arc;

use super::func::{Builder, Func, Inst, ValueId};
use super::op::Op;
use super::types::Type;

/// The attributes of `Op::CustomVjp` (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomVjp {
    pub primal: Arc<Func>,
    pub fwd: Arc<Func>,
    pub bwd: Arc<Func>,
    /// Which of `primal`'s outputs this instruction yields.
    pub output: usize,
}

impl CustomVjp {
    pub fn n_outputs(&self) -> usize {
        self.primal.outputs.len()
    }
    /// The number of residuals `fwd` saves for `bwd`.
    pub fn n_residuals(&self) -> usize {
        self.fwd.outputs.len() - self.n_outputs()
    }
    pub fn with_output(&self, output: usize) -> CustomVjp {
        CustomVjp { output, ..self.clone() }
    }
    pub fn result_type(&self, k: usize) -> Type {
        self.primal.ty(self.primal.outputs[k]).clone()
    }
    /// Whether `other` is the same rule (aside from `output`).
    pub fn same_rule(&self, other: &CustomVjp) -> bool {
        let same = |a: &Arc<Func>, b: &Arc<Func>| Arc::ptr_eq(a, b) || a == b;
        same(&self.primal, &other.primal) && same(&self.fwd, &other.fwd) && same(&self.bwd, &other.bwd)
    }
}

/// The typing rule (`verify::check_type` defers to it).
pub(super) fn check(c: &CustomVjp, ty: &Type, args: &[&Type]) -> Result<(), String> {
    let want = |cond: bool, what: &str| if cond { Ok(()) } else { Err(what.to_string()) };
    for (name, f) in [("primal", &c.primal), ("fwd", &c.fwd), ("bwd", &c.bwd)] {
        super::verify::verify(f).map_err(|msg| format!("in the {name} function: {msg}"))?;
    }
    want(c.output < c.n_outputs(), "output index out of range")?;
    want(args.len() == c.primal.n_params, "one operand per primal param")?;
    let params = c.primal.param_types();
    want(args.iter().zip(&params).all(|(a, p)| *a == p), "an operand differs from its primal param's type")?;
    want(c.fwd.param_types() == params, "fwd's params differ from primal's")?;
    let outs = c.primal.output_types();
    let fwd_outs = c.fwd.output_types();
    want(
        fwd_outs.len() >= outs.len() && fwd_outs[..outs.len()] == outs[..],
        "fwd's first outputs differ from primal's",
    )?;
    want(outs.iter().all(|t| t.dtype.is_float()), "every result must be float (it gets a cotangent)")?;
    let mut bwd_params = fwd_outs[outs.len()..].to_vec();
    bwd_params.extend(outs.iter().cloned());
    want(c.bwd.param_types() == bwd_params, "bwd's params must be fwd's residuals, then one cotangent per result")?;
    want(c.bwd.output_types() == params, "bwd must return one cotangent per operand, of its type")?;
    want(ty == &c.result_type(c.output), "custom_vjp result type")
}

impl Builder {
    /// Appends the op over `args` and returns its results, one instruction
    /// each, adjacent.
    pub fn custom_vjp(&mut self, primal: Arc<Func>, fwd: Arc<Func>, bwd: Arc<Func>, args: &[ValueId]) -> Vec<ValueId> {
        let c = CustomVjp { primal, fwd, bwd, output: 0 };
        assert_eq!(args.len(), c.primal.n_params, "custom_vjp: one operand per primal param");
        (0..c.n_outputs())
            .map(|k| {
                let ty = c.result_type(k);
                self.push(Op::CustomVjp(c.with_output(k)), args.to_vec(), ty)
            })
            .collect()
    }
}

/// `func` with every `Op::CustomVjp` (in scan bodies too) replaced by its
/// `primal`'s instructions: the function the op computes, without the rule.
/// Call it once no transformation can follow. Sibling results share one
/// copy of `primal`; unused outputs are left for `dce`.
pub fn inline_rules(func: &Func) -> Func {
    if !has_rules(func) {
        return func.clone();
    }
    let mut b = Builder::new(&func.name, &func.param_types());
    let mut map: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    // (primal, operands) -> the inlined outputs.
    let mut done: HashMap<(*const Func, Vec<ValueId>), Vec<ValueId>> = HashMap::new();
    for inst in &func.insts[func.n_params..] {
        let args: Vec<ValueId> = inst.args.iter().map(|a| map[a.index()]).collect();
        let new = match &inst.op {
            Op::CustomVjp(c) => {
                let key = (Arc::as_ptr(&c.primal), args.clone());
                let outs = done.entry(key).or_insert_with(|| {
                    let primal = inline_rules(&c.primal);
                    let values = crate::autodiff::inline(&mut b, &primal, &args);
                    primal.outputs.iter().map(|o| values[o.index()]).collect()
                });
                outs[c.output]
            }
            Op::Scan(s) if has_rules(&s.body) => {
                let s = super::scan::Scan { body: Arc::new(inline_rules(&s.body)), ..s.clone() };
                b.push(Op::Scan(s), args, inst.ty.clone())
            }
            op => b.push(op.clone(), args, inst.ty.clone()),
        };
        map.push(new);
    }
    super::verify::debug_valid(b.finish(func.outputs.iter().map(|o| map[o.index()]).collect()), "inline_rules")
}

/// Whether `func` (or a scan body in it) holds an `Op::CustomVjp`.
pub fn has_rules(func: &Func) -> bool {
    func.insts.iter().any(|Inst { op, .. }| match op {
        Op::CustomVjp(_) => true,
        Op::Scan(s) => has_rules(&s.body),
        _ => false,
    })
}

#[cfg(test)]
mod tests;
