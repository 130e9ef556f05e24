//! Dead-code elimination: `Func` in, `Func` out, with every instruction that
//! no output depends on removed.
//!
//! Params are always kept (the signature is part of the contract with the
//! caller), even when unused. Surviving instructions keep their order and are
//! renumbered densely, so the result is again a valid SSA function.
//! IR ops have no side effects, so liveness is plain reachability from the
//! outputs.

use super::func::{Func, Inst, ValueId};

/// Removes instructions that no output depends on; keeps all params (renumbers values).
pub fn dce(func: &Func) -> Func {
    let n = func.insts.len();
    let mut live = vec![false; n];
    for v in &func.outputs {
        live[v.index()] = true;
    }
    live[..func.n_params].iter_mut().for_each(|l| *l = true);
    // Arguments always precede their users, so one backward sweep suffices.
    for i in (0..n).rev() {
        if live[i] {
            for a in &func.insts[i].args {
                live[a.index()] = true;
            }
        }
    }
    let mut new_id = vec![None; n];
    let mut insts = Vec::with_capacity(n);
    for (i, inst) in func.insts.iter().enumerate() {
        if !live[i] {
            continue;
        }
        new_id[i] = Some(ValueId(insts.len() as u32));
        let args = inst.args.iter().map(|a| new_id[a.index()].expect("dce: arg defined later")).collect();
        insts.push(Inst { op: inst.op.clone(), args, ty: inst.ty.clone() });
    }
    let outputs = func.outputs.iter().map(|o| new_id[o.index()].expect("dce: output is live")).collect();
    super::verify::debug_valid(Func { name: func.name.clone(), insts, n_params: func.n_params, outputs }, "dce")
}

#[cfg(test)]
mod tests;
