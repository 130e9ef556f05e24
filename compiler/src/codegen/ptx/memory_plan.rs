//! The device memory plan: which buffers of a launch plan can share one
//! allocation, because no step needs both.
//!
//! Consumes the steps and buffers `ptx::emit` produced; produces a slot per
//! buffer and each slot's size. A buffer is live from the first step that
//! names it to the last (inclusive: a step that reads one buffer and
//! writes another never gets the same memory for both). Parameters and
//! outputs are pinned, a slot each: the runtime copies into and out of
//! them around the steps, holds them between calls and carries outputs
//! into parameters. The rest are placed in order of first use, each into
//! the free slot (its last buffer dead before this one's first step) that
//! fits best, else the largest free slot grown to fit, else a new slot:
//! the CPU arena's plan, on device allocations. Measured with W3's step:
//! see `plan`'s test and benches/README.md.
//!
//! Every buffer starts at its slot's start (a whole device allocation,
//! 256-byte aligned): fused kernels rely on it for 16-byte vector loads and
//! stores (`ptx/fusion.rs`), and the runtime checks the alignment. A plan
//! that packed buffers inside a slot would have to keep them 16-byte
//! aligned.
//!
//! Every kernel writes all of its output before reading it, and no step
//! relies on memory being zero (`sim::run` runs every program on slots
//! filled with 0xFF bytes, so a kernel that did would fail the simulated
//! tests against the interpreter).

use super::{Buffer, Step};

/// Slot of each buffer and the bytes of each slot.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemoryPlan {
    /// The slot of each buffer (`PtxProgram::buffers` order).
    pub slot_of: Vec<usize>,
    /// The bytes of each slot (at least those of every buffer in it).
    pub slot_bytes: Vec<usize>,
}

impl MemoryPlan {
    /// Total bytes of all slots.
    pub fn bytes(&self) -> usize {
        self.slot_bytes.iter().sum()
    }
}

/// The buffers step `step` names (reads or writes).
pub fn step_buffers(step: &Step) -> Vec<usize> {
    match step {
        Step::Kernel { args, .. } => args.clone(),
        Step::Gemm { a, b, c, .. } => vec![*a, *b, *c],
    }
}

/// Plans slots for `buffers` used by `steps`, with `pinned` buffers
/// (parameters, outputs) in slots of their own.
pub fn plan(buffers: &[Buffer], steps: &[Step], pinned: &[usize]) -> MemoryPlan {
    let n = buffers.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (s, step) in steps.iter().enumerate() {
        for b in step_buffers(step) {
            first[b] = first[b].min(s);
            last[b] = last[b].max(s);
        }
    }
    let mut is_pinned = vec![false; n];
    for &b in pinned {
        is_pinned[b] = true;
    }
    let mut slot_of = vec![usize::MAX; n];
    let mut slot_bytes = Vec::new();
    // A buffer no step names is pinned too (it is never written: reading
    // it must give what it was, so it shares with nothing).
    for b in 0..n {
        if is_pinned[b] || first[b] == usize::MAX {
            slot_of[b] = slot_bytes.len();
            slot_bytes.push(buffers[b].bytes());
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&b| slot_of[b] == usize::MAX).collect();
    order.sort_by_key(|&b| (first[b], b));
    // Shared slots: (slot, last step of its current buffer).
    let mut shared: Vec<(usize, usize)> = Vec::new();
    for b in order {
        let need = buffers[b].bytes();
        let free = |&&(_, busy_until): &&(usize, usize)| busy_until < first[b];
        let best_fit = shared
            .iter()
            .filter(free)
            .filter(|(slot, _)| slot_bytes[*slot] >= need)
            .min_by_key(|(slot, _)| slot_bytes[*slot]);
        let chosen = match best_fit {
            Some(&(slot, _)) => Some(slot),
            None => shared.iter().filter(free).max_by_key(|(slot, _)| slot_bytes[*slot]).map(|&(slot, _)| slot),
        };
        let slot = match chosen {
            Some(slot) => {
                slot_bytes[slot] = slot_bytes[slot].max(need);
                let entry = shared.iter_mut().find(|(s, _)| *s == slot).expect("a shared slot");
                entry.1 = last[b];
                slot
            }
            None => {
                slot_bytes.push(need);
                shared.push((slot_bytes.len() - 1, last[b]));
                slot_bytes.len() - 1
            }
        };
        slot_of[b] = slot;
    }
    MemoryPlan { slot_of, slot_bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::DType;

    fn kernel(args: &[usize]) -> Step {
        Step::Kernel { name: "k".into(), inst: 0, grid: 1, args: args.to_vec() }
    }

    fn f32s(len: usize) -> Buffer {
        Buffer { dtype: DType::F32, len }
    }

    /// A chain p -> a -> b -> c -> out: `a` and `c` can share (a is dead
    /// when c is written), `b` cannot share with either; p and out pinned.
    #[test]
    fn dead_buffers_are_reused_and_live_ones_never_share() {
        let buffers = vec![f32s(10), f32s(10), f32s(20), f32s(30), f32s(10)];
        let (p, a, b, c, out) = (0, 1, 2, 3, 4);
        let steps = vec![kernel(&[a, p]), kernel(&[b, a]), kernel(&[c, b]), kernel(&[out, c])];
        let plan = plan(&buffers, &steps, &[p, out]);
        assert_eq!(plan.slot_of[a], plan.slot_of[c], "a is dead when c is written");
        assert_ne!(plan.slot_of[a], plan.slot_of[b]);
        assert_ne!(plan.slot_of[b], plan.slot_of[c]);
        assert_eq!(plan.slot_bytes[plan.slot_of[c]], 120, "the slot grew to c's 30 floats");
        for pinned in [p, out] {
            let sharing = (0..5).filter(|&x| plan.slot_of[x] == plan.slot_of[pinned]).count();
            assert_eq!(sharing, 1, "pinned buffer {pinned} shares");
        }
        assert_eq!(plan.bytes(), 40 + 40 + 120 + 80);
    }

    /// Buffers no step names keep slots of their own.
    #[test]
    fn unnamed_buffers_share_nothing() {
        let buffers = vec![f32s(4), f32s(4), f32s(4)];
        let steps = vec![kernel(&[1]), kernel(&[2])];
        let plan = plan(&buffers, &steps, &[]);
        assert_eq!(plan.slot_of[1], plan.slot_of[2]);
        assert_ne!(plan.slot_of[0], plan.slot_of[1]);
    }
}
