//! The cost model: an IR instruction's FLOPs, the bytes it reads and writes,
//! and an estimated time, a roofline against this machine. Consumed by the
//! extraction (`extract.rs`, per e-node through `node_cost`) and by the
//! optimizer's report (`func_cost`: before and after, in `jlc dump --stage opt
//! --explain`); produces plain numbers. One definition serves both, so the
//! extractor and the report cannot disagree.
//!
//! time = max(FLOPs / ceiling, bytes / bandwidth) + a fixed cost per instruction
//!
//! The constants (CRATE-NOTES.md, "Physical limits of our CPU", one core):
//!   - elementwise ceiling: 48 GFLOP/s f32 (Cranelift emits 128-bit vectors:
//!     f32x4; measured 47.7 with FMAs), half that for f64 (f64x2);
//!   - GEMM: 115 GFLOP/s f32 (the `gemm` crate, x86-v4, MLP shapes), half for f64;
//!   - memory: 10 GB/s of traffic (bytes read + bytes written). Measured:
//!     `memcpy` of 16 MiB moved 9.7 GB/s of traffic on the dev VM (1 MiB, in
//!     L2: 37 GB/s; 64 MiB: 5-6 GB/s), with a C program (gcc -O2, best of 20).
//!   - per instruction: 20 ns (a loop nest's setup, a host call).
//!
//! FLOPs count one per arithmetic operation per element, except:
//!   - a function the CPU backend computes with a scalar libm call per
//!     element (exp, log, tanh, pow, log1p, expm1, logistic, sin, cos, erf)
//!     counts `LIBM_FLOPS`: measured with glibc 2.36 here (C loop over 4096
//!     f32, gcc -O2, best of 200): expf 3.6 ns, logf 5.2, powf 9.1, tanhf 20
//!     per element; 150 FLOPs at 48 GFLOP/s is 3.1 ns, about the cheapest;
//!   - a division or square root (vector instructions whose throughput is
//!     about 8 times a multiply's) counts `DIV_FLOPS`; rsqrt (a square root
//!     and a division) twice that.
//! So "FLOPs" is FLOP-equivalent work, which is what the time model needs.
//! `Reshape` and `StopGradient` alias their operand (no work, no bytes); a
//! broadcast or transpose moves bytes and does no FLOPs.

use super::egraph::{node_op, ty_of, IrEGraph, Node};
use crate::ir::{DType, Func, Op, Type};
use egg::Id;
use std::ops::{Add, AddAssign};

/// FLOPs per element of a function computed by a libm call (see the module doc).
pub const LIBM_FLOPS: f64 = 150.0;
/// FLOPs per element of a division or a square root.
pub const DIV_FLOPS: f64 = 8.0;
/// Elementwise f32 FLOP/s (f64: half).
pub const ELEMENTWISE_FLOPS_PER_S: f64 = 48e9;
/// Matrix product f32 FLOP/s (f64: half).
pub const GEMM_FLOPS_PER_S: f64 = 115e9;
/// Bytes read plus bytes written per second.
pub const BYTES_PER_S: f64 = 10e9;
/// Fixed time per emitted instruction.
pub const INST_SECONDS: f64 = 20e-9;

/// What a function (or one instruction) costs. Sums add up field by field;
/// `seconds` is the sum of each instruction's roofline time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
    pub seconds: f64,
}

impl Add for Cost {
    type Output = Cost;
    fn add(self, o: Cost) -> Cost {
        Cost { flops: self.flops + o.flops, bytes: self.bytes + o.bytes, seconds: self.seconds + o.seconds }
    }
}

impl AddAssign for Cost {
    fn add_assign(&mut self, o: Cost) {
        *self = *self + o;
    }
}

impl Cost {
    /// Neither FLOPs nor bytes exceed `other`'s.
    pub fn within(&self, other: &Cost) -> bool {
        self.flops <= other.flops && self.bytes <= other.bytes
    }
}

fn bytes_of(ty: &Type) -> f64 {
    (ty.shape.num_elements() * ty.dtype.size_bytes()) as f64
}

/// The instruction `op(args) : ty`'s cost. `args` are the operand types.
pub fn inst_cost(op: &Op, args: &[&Type], ty: &Type) -> Cost {
    let n = ty.shape.num_elements() as f64;
    let out = bytes_of(ty);
    let reads: f64 = args.iter().map(|t| bytes_of(t)).sum();
    let n_in = |k: usize| args[k].shape.num_elements() as f64;
    // (FLOPs, bytes, is a matrix product)
    let (flops, bytes, gemm) = match op {
        Op::Param(_) => return Cost::default(),
        // `length` runs of the body (one loop: siblings are not counted apart).
        Op::Scan(s) => {
            let body = func_cost(&s.body);
            let k = s.length as f64;
            return Cost { flops: k * body.flops, bytes: k * body.bytes, seconds: k * body.seconds + INST_SECONDS };
        }
        // Its function's cost (the rule is inlined before codegen).
        // (Once per op: the siblings share one copy of it.)
        Op::CustomVjp(c) if c.output == 0 => return func_cost(&c.primal),
        Op::CustomVjp(_) => return Cost::default(),
        // Aliases of their operand: no work, no bytes (and no loop).
        Op::Reshape | Op::StopGradient => return Cost::default(),
        Op::Constant(_) => (0.0, out, false),
        Op::Iota { .. } => (n, out, false),
        Op::Neg | Op::Abs | Op::Sign | Op::Convert => (n, reads + out, false),
        Op::Floor | Op::Ceil | Op::Round => (n, reads + out, false),
        Op::Exp | Op::Log | Op::Tanh | Op::Log1p | Op::Expm1 | Op::Logistic => (LIBM_FLOPS * n, reads + out, false),
        Op::Sin | Op::Cos | Op::Erf | Op::Pow => (LIBM_FLOPS * n, reads + out, false),
        Op::Sqrt | Op::Div => (DIV_FLOPS * n, reads + out, false),
        Op::Rsqrt => (2.0 * DIV_FLOPS * n, reads + out, false),
        Op::Add | Op::Sub | Op::Mul | Op::Max | Op::Min => (n, reads + out, false),
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select => (n, reads + out, false),
        // Data movement: reads the operand, writes the result.
        Op::Broadcast { .. } | Op::Transpose { .. } | Op::Pad { .. } | Op::Concat { .. } => (0.0, reads + out, false),
        // Reads only what it keeps.
        Op::Slice { .. } => (0.0, 2.0 * out, false),
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::ArgMax { .. } => {
            (n_in(0), reads + out, false)
        }
        Op::MatMul | Op::BatchMatMul => {
            let k = args[0].shape.0.last().copied().unwrap_or(1) as f64;
            (2.0 * n * k, reads + out, true)
        }
        // Reads the rows it picks and the indices, writes the result.
        Op::Gather => (0.0, 2.0 * out + bytes_of(args[1]), false),
        Op::ScatterAdd => (n_in(0), reads + out, false),
        // About 100 integer operations per threefry block.
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => (100.0 * n, out, false),
        // Moves data like a transpose.
        Op::Reverse { .. } => (0.0, reads + out, false),
        // im2col plus a GEMM: 2 FLOPs per multiply-add, (C / groups) * KH * KW
        // of them per output element (the kernel's dims after the first).
        Op::Conv2d(_) => {
            let per_output: usize = args[1].shape.0[1..].iter().product();
            (2.0 * n * per_output as f64, reads + out, true)
        }
        // One operation per window element per output element.
        Op::ReduceWindowSum(w) | Op::ReduceWindowMax(w) => {
            let per_output: usize = w.size.iter().product();
            (n * per_output as f64, reads + out, false)
        }
        // One comparison per window element per window, one add per window.
        Op::SelectAndScatter(w) => {
            let per_window: usize = w.size.iter().product();
            let windows = args[1].shape.num_elements() as f64;
            (windows * (per_window + 1) as f64, reads + out, false)
        }
    };
    let ceiling = if gemm { GEMM_FLOPS_PER_S } else { ELEMENTWISE_FLOPS_PER_S };
    let ceiling = if ty.dtype == DType::F64 { ceiling / 2.0 } else { ceiling };
    let seconds = (flops / ceiling).max(bytes / BYTES_PER_S) + INST_SECONDS;
    Cost { flops, bytes, seconds }
}

/// The cost of every non-param instruction of `func` (dead ones included:
/// they are what the input asks to run).
pub fn func_cost(func: &Func) -> Cost {
    let mut total = Cost::default();
    for inst in &func.insts {
        let args: Vec<&Type> = inst.args.iter().map(|a| func.ty(*a)).collect();
        total += inst_cost(&inst.op, &args, &inst.ty);
    }
    total
}

/// The own cost (children excluded) of e-node `node` of class `eclass`; zero
/// for attributes and the outputs root.
pub fn node_cost(egraph: &IrEGraph, eclass: Id, node: &Node) -> Cost {
    let Some((op, operands)) = node_op(egraph, node) else {
        return Cost::default();
    };
    let args: Vec<&Type> = operands.iter().map(|&id| ty_of(egraph, id)).collect();
    inst_cost(&op, &args, ty_of(egraph, eclass))
}
