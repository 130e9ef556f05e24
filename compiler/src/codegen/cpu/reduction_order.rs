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
/// each on the order the earlier moves left. A move puts `r` before its old
/// place and leaves everything after that place where it was, so one pass
/// visits every reduction once.
pub(super) fn place_reductions_before_siblings(func: &Func) -> Func {
    let n = func.insts.len();
    // Use counts do not change with the order (outputs count as uses).
    let mut uses = vec![0usize; n];
    for a in func.insts.iter().flat_map(|i| &i.args).chain(&func.outputs) {
        uses[a.index()] += 1;
    }
    // order[p]: the instruction (by its index in `func`) at position p.
    let mut order: Vec<usize> = (0..n).collect();
    let mut pos: Vec<usize> = (0..n).collect();
    let mut moved_any = false;
    for p in 0..n {
        let Some((block, s)) = move_for(func, &uses, &order, &pos, p) else { continue };
        // Positions: `block` (ascending) leaves, and re-enters just before `s`.
        let kept: Vec<usize> = order[s..=p].iter().copied().filter(|&i| !block.contains(&pos[i])).collect();
        let mut middle: Vec<usize> = block.iter().map(|&q| order[q]).collect();
        middle.extend(kept);
        let first = s.min(block[0]);
        let mut placed: Vec<usize> = order[first..s].iter().copied().filter(|&i| !block.contains(&pos[i])).collect();
        placed.extend(middle);
        order.splice(first..=p, placed);
        for (q, &i) in order.iter().enumerate().take(p + 1).skip(first) {
            pos[i] = q;
        }
        moved_any = true;
    }
    if moved_any {
        crate::ir::verify::debug_valid(func.reordered(&order), "place_reductions_before_siblings")
    } else {
        func.clone()
    }
}

/// The move of the module doc for the instruction at position `p`: the
/// block's positions (chain and reduction, ascending) and the position it
/// goes before; `None` when it is not a float reduction or nothing qualifies.
fn move_for(func: &Func, uses: &[usize], order: &[usize], pos: &[usize], p: usize) -> Option<(Vec<usize>, usize)> {
    let r = order[p];
    let inst = &func.insts[r];
    if !matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. }) {
        return None;
    }
    let src = inst.args[0];
    let src_ty = func.ty(src);
    if !src_ty.dtype.is_float() {
        return None;
    }
    let mut block: Vec<usize> = exclusive_chain(func, uses, src.index()).iter().map(|&i| pos[i]).collect();
    block.push(p);
    block.sort_unstable();
    // Everything the block reads from outside it must stay before `s`.
    let ready_after = block
        .iter()
        .flat_map(|&q| func.insts[order[q]].args.iter().map(|a| pos[a.index()]))
        .filter(|q| !block.contains(q))
        .max()?;
    let s = (ready_after + 1..p).rev().find(|&q| {
        let si = &func.insts[order[q]];
        is_elementwise(&si.op) && si.ty == *src_ty && !block.contains(&q)
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
