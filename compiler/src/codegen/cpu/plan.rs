//! The memory plan of the CPU backend: places every buffer in one arena,
//! reusing the bytes of values that are dead.
//!
//! Consumes a verified `ir::Func` and its `Schedule`; produces a `Plan`: a
//! byte offset per value and the arena size. Inlined values (computed in
//! registers inside a fused loop) get no buffer. Views (`Reshape`,
//! `StopGradient`, same-dtype `Convert`, and the transposes that GEMMs read
//! through strides, `Schedule::strided`) share their operand's buffer,
//! which then stays live until the last use of any of its views.
//!
//! Liveness is by instruction index: a buffer is live from the instruction
//! that writes it (parameters: from the start, `run` fills them before any
//! code runs) to the last instruction that reads it (`schedule::reads`; an
//! inlined value's reads happen in its consumer's loop), outputs to the end.
//! Both ends are inclusive, so an instruction's result never shares bytes
//! with anything it reads: host routines and copy loops may assume their
//! destination does not overlap a source. Placement is first fit, in
//! order of first write (definition order, except hosted values: written
//! by their host's loop, see `schedule.rs`), 64-byte aligned.

use super::schedule::{self, Schedule};
use crate::ir::{Func, Op};

/// Buffer alignment in bytes (one cache line; enough for any SIMD load).
const ALIGN: usize = 64;

pub(super) struct Plan {
    /// Byte offset of each value's buffer (0 for inlined values, which no
    /// code reads).
    pub(super) offsets: Vec<usize>,
    /// The arena size in bytes.
    pub(super) bytes: usize,
    /// The value that owns each value's bytes: itself, or for a view the
    /// owner of its operand.
    pub(super) owners: Vec<usize>,
    /// Every buffer with at least one byte, for checking the plan.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) buffers: Vec<Buffer>,
}

/// One buffer: `size` bytes at `offset`, live over instructions
/// `first..=last`.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Buffer {
    pub(crate) offset: usize,
    pub(crate) size: usize,
    pub(crate) first: usize,
    pub(crate) last: usize,
}

/// Whether instruction `index`'s result is a view of its operand's buffer.
pub(super) fn is_view(func: &Func, index: usize) -> bool {
    let inst = &func.insts[index];
    match &inst.op {
        // Same bytes in the same order.
        Op::Reshape | Op::StopGradient => true,
        Op::Convert => func.ty(inst.args[0]).dtype == inst.ty.dtype,
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => false,
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => false,
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => false,
        Op::Abs | Op::Sign | Op::Floor | Op::Ceil | Op::Round => false,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => false,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => false,
        Op::Select | Op::Broadcast { .. } | Op::Transpose { .. } => false,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul => false,
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => false,
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform | Op::Scan(_) | Op::CustomVjp(_) => false,
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => false,
        Op::SelectAndScatter(_) => false,
    }
}

/// Plans the arena for `func` scheduled as `sched`.
pub(super) fn plan(func: &Func, sched: &Schedule) -> Plan {
    let n = func.insts.len();
    // The value that owns each value's bytes (itself unless a view).
    let mut owner: Vec<usize> = (0..n).collect();
    for index in 0..n {
        if is_view(func, index) || sched.strided[index] {
            owner[index] = owner[func.insts[index].args[0].index()];
        }
    }
    let mut first: Vec<usize> = (0..n).collect();
    for param in 0..func.n_params {
        first[param] = 0;
    }
    // A hosted value is written by its host's loop, a tiled one by its
    // reduction's.
    for index in 0..n {
        if let Some(host) = sched.hosted[index].or(sched.tiled[index]) {
            first[index] = host;
        }
    }
    let mut last: Vec<usize> = (0..n).collect();
    for index in 0..n {
        for value in schedule::reads(func, sched, index) {
            let owner = owner[value];
            last[owner] = last[owner].max(index);
        }
    }
    for out in &func.outputs {
        last[owner[out.index()]] = n;
    }
    // A hosted value nobody reads later still occupies its bytes while its
    // host's loop writes it.
    for index in 0..n {
        last[index] = last[index].max(first[index]);
    }

    let mut offsets = vec![0usize; n];
    let mut buffers: Vec<Buffer> = Vec::new();
    // Buffers that may still be live, sorted by offset.
    let mut active: Vec<Buffer> = Vec::new();
    let mut bytes = 0;
    // In order of first write (hosted values start late), so that a buffer
    // dead now stays dead for every later one.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&index| first[index]);
    for index in order {
        if owner[index] != index || sched.inlined[index] {
            continue;
        }
        let ty = &func.insts[index].ty;
        let size = ty.shape.num_elements() * ty.dtype.size_bytes();
        if size == 0 {
            continue;
        }
        // `first` only grows in this order, so a buffer dead now stays dead.
        active.retain(|buffer| buffer.last >= first[index]);
        let mut offset = 0;
        for buffer in &active {
            if buffer.offset >= offset + size {
                break;
            }
            offset = offset.max((buffer.offset + buffer.size).next_multiple_of(ALIGN));
        }
        let buffer = Buffer { offset, size, first: first[index], last: last[index] };
        let at = active.partition_point(|b| b.offset < offset);
        active.insert(at, buffer);
        buffers.push(buffer);
        offsets[index] = offset;
        bytes = bytes.max(offset + size);
    }
    for index in 0..n {
        offsets[index] = offsets[owner[index]];
    }
    Plan { offsets, bytes, owners: owner, buffers }
}
