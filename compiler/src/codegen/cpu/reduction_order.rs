//! Moves a reduction up to the elementwise loop it can share, so that
//! horizontal fusion (`siblings.rs`) finds that loop after it.
//!
//! Consumes a verified `Func`; produces the same instructions in another
//! order (`Func::reordered`). For each float `ReduceSum`/`ReduceMax` `r`,
//! with `chain` the elementwise instructions whose only use is (through each
//! other) `r`'s operand (e.g. `g * g` of `sum(g * g)`): if some elementwise
//! instruction `s` before `r` has exactly the type of `r`'s operand, comes
//! after every value the chain and `r` read, and is not in the chain, then
//! the chain and `r` move, in their order, to just before the last such
//! `s`: there everything `s` reads is written, so if `s` is a loop's root
//! the sibling pass can host it (an optimizer's update of a parameter is
//! the last instruction of the parameter's shape in the update).
//!
//! Why: the sibling pass hosts *later* roots of a reduction's source shape
//! in the reduction's loop, and the e-graph optimizer may emit a reduction
//! after the loops that read the same tensor. A training step's global
//! gradient norm (`sum(g * g)` per parameter, which `stop_on_nonfinite`
//! computes by default) came after the optimizer's update of each
//! parameter: a second pass over every gradient. Placed before the update,
//! the update's loop runs inside the norm's, which reads each gradient once.
//!
//! Safe: the moved instructions' operands come before `s`, and their users
//! come after `r`'s old place (the chain's only user is within the moved
//! block), so every value is still defined before it is used. Results are
//! unchanged: the same instructions run.

use crate::ir::op::is_elementwise;
use crate::ir::{Func, Op};

/// The order of the module doc: one reduction at a time, in program order,
/// each on the order the earlier moves left.
pub(super) fn place_reductions_before_siblings(func: &Func) -> Func {
    let n = func.insts.len();
    let mut func = func.clone();
    // orig[i]: the instruction now at `i`, by its index in the input.
    let mut orig: Vec<usize> = (0..n).collect();
    let mut done = vec![false; n];
    loop {
        let mut found = None;
        for r in 0..n {
            if done[orig[r]] {
                continue;
            }
            done[orig[r]] = true;
            if let Some(m) = move_for(&func, r) {
                found = Some(m);
                break;
            }
        }
        let Some((block, s)) = found else { return func };
        let mut order: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            if i == s {
                order.extend(&block);
            }
            if !block.contains(&i) {
                order.push(i);
            }
        }
        func = func.reordered(&order);
        orig = order.iter().map(|&i| orig[i]).collect();
    }
}

/// The move of the module doc for instruction `r`: the block (chain and
/// `r`, in order) and the instruction it goes before; `None` when `r` is not
/// a float reduction or nothing qualifies.
fn move_for(func: &Func, r: usize) -> Option<(Vec<usize>, usize)> {
    let inst = &func.insts[r];
    if !matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. }) {
        return None;
    }
    let src = inst.args[0];
    let src_ty = func.ty(src);
    if !src_ty.dtype.is_float() {
        return None;
    }
    let mut uses = vec![0usize; func.insts.len()];
    for a in func.insts.iter().flat_map(|i| &i.args).chain(&func.outputs) {
        uses[a.index()] += 1;
    }
    let mut block = exclusive_chain(func, &uses, src.index());
    block.push(r);
    block.sort_unstable();
    // Everything the block reads from outside it must stay before `s`.
    let ready_after = block
        .iter()
        .flat_map(|&b| func.insts[b].args.iter().map(|a| a.index()))
        .filter(|a| !block.contains(a))
        .max()?;
    let s = (ready_after + 1..r).rev().find(|&s| {
        let si = &func.insts[s];
        is_elementwise(&si.op) && si.ty == *src_ty && !block.contains(&s)
    })?;
    Some((block, s))
}

/// `v` and the elementwise instructions that feed only it (transitively),
/// when `v` itself is elementwise with one use; else nothing.
fn exclusive_chain(func: &Func, uses: &[usize], v: usize) -> Vec<usize> {
    let mut chain = Vec::new();
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        if uses[x] != 1 || !is_elementwise(&func.insts[x].op) || chain.contains(&x) {
            continue;
        }
        chain.push(x);
        stack.extend(func.insts[x].args.iter().map(|a| a.index()));
    }
    chain
}
