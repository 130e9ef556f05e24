//! Horizontal fusion: a parallel reduction's kernel also evaluates and
//! stores the elementwise fusion roots of its operand's dims.
//!
//! Consumes a fused `Schedule`; produces, per reduction, the fusion roots
//! (*siblings*) its kernel (the first pass, for two passes) evaluates at
//! each source element it visits, sharing registers with the reduced
//! operand's tree; the siblings get no kernel of their own.
//!
//! Why: a loss and its gradient read the same inputs. W4's step
//! (`sum(gelu(x·w + b)^2)` and its gradient) was a reduction pass over
//! `x, w, b` and an elementwise pass over them again for `dw, db`; merged,
//! the inputs are read once and the shared subexpressions (the tanh) are
//! evaluated once.
//!
//! When: the reduction (`ReduceSum`/`Max`/`Min`, float) runs a parallel
//! kernel (`reduce::plan` is not sequential: every source element is
//! visited exactly once, by one thread); the sibling is a materialized,
//! unhosted fusible root with exactly the operand's dims, defined after
//! the reduction; and everything the sibling's tree loads is written before
//! the reduction's kernel runs (its kernel moves up to the reduction's
//! place in the launch order; nothing between reads its outputs, since
//! their users come after it). Results are unchanged: the sibling runs the
//! same scalar ops per element as in its own kernel.

use super::reduce::{self, Scheme};
use crate::codegen::cpu::schedule::{self, Schedule};
use crate::ir::{DType, Func, Op};

/// `plan(..)[r]`: the siblings reduction `r`'s kernel hosts (empty for all
/// other instructions); each sibling appears once.
pub(super) fn plan(func: &Func, sched: &Schedule, fusible: &dyn Fn(usize) -> bool) -> Vec<Vec<usize>> {
    let n = func.insts.len();
    let mut siblings = vec![Vec::new(); n];
    let mut taken = vec![false; n];
    for (r, inst) in func.insts.iter().enumerate() {
        if sched.inlined[r] || !parallel_reduction(func, r) {
            continue;
        }
        let operand = inst.args[0].index();
        let dims = &func.insts[operand].ty.shape;
        for (s, candidate) in func.insts.iter().enumerate().skip(r + 1) {
            let root = fusible(s)
                && !sched.inlined[s]
                && sched.hosted[s].is_none()
                && !matches!(candidate.op, Op::Constant(_) | Op::Broadcast { .. } | Op::Iota { .. });
            if taken[s] || !root || &candidate.ty.shape != dims {
                continue;
            }
            let loads = super::recompute::loads(func, sched, s, true);
            if loads.iter().all(|&v| schedule::written_before(func, sched, v, r)) {
                siblings[r].push(s);
                taken[s] = true;
            }
        }
    }
    siblings
}

/// Whether reduction `r` runs one of `reduce.rs`'s parallel kernels.
fn parallel_reduction(func: &Func, r: usize) -> bool {
    let inst = &func.insts[r];
    let axes = match &inst.op {
        Op::ReduceSum { axes } | Op::ReduceMax { axes } | Op::ReduceMin { axes } => axes,
        _ => return false,
    };
    let src = func.ty(inst.args[0]);
    let float = matches!(src.dtype, DType::F32 | DType::F64);
    float && inst.ty.shape.num_elements() > 0 && reduce::scheme(src, axes) != Scheme::Sequential
}
