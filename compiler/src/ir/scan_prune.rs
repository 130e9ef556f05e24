//! Dead-code elimination inside loops. `dce` keeps a scan instruction whole
//! when any of its results is used, and the body computes every result on
//! every iteration; so a loop whose stacked outputs nobody reads still
//! writes them, and a carry nobody needs is still updated. `prune` drops,
//! per loop (a group of sibling instructions), the results no instruction
//! yields and the carries that neither a yielded result nor a kept carry
//! reads, then the consts and xs the smaller body no longer reads.
//!
//! Reverse mode makes such loops: the forward scan that stores the carries
//! for the backward pass also writes the primal's stacked outputs, which a
//! gradient alone never reads (Note [Sibling cotangents] in
//! `autodiff/reverse.rs` has the other half of that story).
//!
//! `tidy` is what the optimizer and the CPU backend run first:
//! `merge_prefix_loops`, then `prune`, then `dce`.

use std::sync::Arc;

use super::dce::dce;
use super::func::{Func, Inst, ValueId};
use super::op::Op;
use super::scan::{merge_prefix_loops, Scan};

/// Loops merged, pruned and dead code removed (see the module doc).
pub fn tidy(func: &Func) -> Func {
    if !func.insts.iter().any(|i| matches!(i.op, Op::Scan(_))) {
        return func.clone();
    }
    super::verify::debug_valid(dce(&prune(&dce(&merge_prefix_loops(func)))), "scan_prune::tidy")
}

/// `func` with each loop's unneeded results, carries and operands removed.
/// Expects no dead instructions (run `dce` first): every scan instruction
/// present counts as a used result.
pub fn prune(func: &Func) -> Func {
    let mut res = func.clone();
    for members in loops(func) {
        let first = &func.insts[members[0]];
        let Op::Scan(s) = &first.op else { unreachable!("a loop is scans") };
        let outputs: Vec<usize> = members.iter().map(|&m| output_of(&func.insts[m].op)).collect();
        let Some((pruned, operand_kept, new_index)) = prune_loop(s, &outputs) else { continue };
        let args: Vec<ValueId> = operand_kept.iter().map(|&k| first.args[k]).collect();
        for (&m, &out) in members.iter().zip(&outputs) {
            res.insts[m].op =
                Op::Scan(Scan { output: new_index[out].expect("a used result is kept"), ..pruned.clone() });
            res.insts[m].args = args.clone();
        }
    }
    res
}

/// The loops of `func`: its scans' result groups.
fn loops(func: &Func) -> Vec<Vec<usize>> {
    let groups = super::scan::result_groups(func);
    groups.into_iter().filter(|g| matches!(func.insts[g[0]].op, Op::Scan(_))).collect()
}

fn output_of(op: &Op) -> usize {
    match op {
        Op::Scan(s) => s.output,
        _ => unreachable!("a loop is scans"),
    }
}

/// The loop `s` keeping the results `used` (and the carries they need):
/// the new scan (its `output` to be set), which operands it keeps (indices
/// into the old ones), and each old result's new index. `None` when
/// nothing can go.
fn prune_loop(s: &Scan, used: &[usize]) -> Option<(Scan, Vec<usize>, Vec<Option<usize>>)> {
    let body = &s.body;
    let (nc, nh) = (s.n_const, s.n_carry);
    let n_out = body.outputs.len();
    let mut needed = vec![false; n_out];
    used.iter().for_each(|&k| needed[k] = true);
    // A needed result needs the carries it reads; their new values too.
    let reads: Vec<Vec<bool>> = body.outputs.iter().map(|&o| params_read(body, o)).collect();
    loop {
        let mut changed = false;
        for k in 0..n_out {
            if !needed[k] {
                continue;
            }
            for j in 0..nh {
                if reads[k][nc + j] && !needed[j] {
                    needed[j] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    // The smaller body: kept outputs, then the params it still reads (kept
    // carries always stay: their param and output pair up).
    let kept_outputs: Vec<usize> = (0..n_out).filter(|&k| needed[k]).collect();
    let outputs: Vec<ValueId> = kept_outputs.iter().map(|&k| body.outputs[k]).collect();
    let smaller = dce(&Func { outputs, ..(**body).clone() });
    let mut read = vec![false; body.n_params];
    for a in smaller.insts.iter().flat_map(|i| &i.args).chain(&smaller.outputs) {
        if a.index() < body.n_params {
            read[a.index()] = true;
        }
    }
    let keep_param: Vec<bool> =
        (0..body.n_params).map(|p| if (nc..nc + nh).contains(&p) { needed[p - nc] } else { read[p] }).collect();
    if kept_outputs.len() == n_out && keep_param.iter().all(|&k| k) {
        return None;
    }
    let new_body = without_params(&smaller, &keep_param);
    let operand_kept: Vec<usize> = (0..body.n_params).filter(|&p| keep_param[p]).collect();
    let mut new_index = vec![None; n_out];
    for (new, &old) in kept_outputs.iter().enumerate() {
        new_index[old] = Some(new);
    }
    let pruned = Scan {
        body: Arc::new(new_body),
        n_const: (0..nc).filter(|&p| keep_param[p]).count(),
        n_carry: (0..nh).filter(|&j| needed[j]).count(),
        output: 0,
        ..s.clone()
    };
    Some((pruned, operand_kept, new_index))
}

/// Which params of `f` the value `v` depends on.
fn params_read(f: &Func, v: ValueId) -> Vec<bool> {
    let mut reach = vec![false; f.insts.len()];
    reach[v.index()] = true;
    for i in (0..f.insts.len()).rev() {
        if reach[i] {
            for a in &f.insts[i].args {
                reach[a.index()] = true;
            }
        }
    }
    reach.truncate(f.n_params);
    reach
}

/// `f` without the params `keep` marks false (which nothing reads).
fn without_params(f: &Func, keep: &[bool]) -> Func {
    let mut new_id = vec![None; f.insts.len()];
    let mut insts = Vec::with_capacity(f.insts.len());
    for (i, inst) in f.insts.iter().enumerate() {
        if i < f.n_params && !keep[i] {
            continue;
        }
        let id = insts.len();
        new_id[i] = Some(ValueId(id as u32));
        let op = match inst.op {
            Op::Param(_) => Op::Param(id as u32),
            ref op => op.clone(),
        };
        let args = inst.args.iter().map(|a| new_id[a.index()].expect("a dropped param is never read")).collect();
        insts.push(Inst { op, args, ty: inst.ty.clone() });
    }
    let n_params = keep.iter().filter(|&&k| k).count();
    let outputs = f.outputs.iter().map(|o| new_id[o.index()].expect("outputs are kept")).collect();
    Func { name: f.name.clone(), insts, n_params, outputs }
}

#[cfg(test)]
mod tests;
