//! Which host routine computes each whole-array op that the CPU backend does
//! not open-code (gather, scatter-add, batched matmul, random numbers), and
//! its integer arguments.
//!
//! Consumes a verified `Func` and an instruction index; produces the routine
//! and the sizes that `Emitter::emit_host_op` passes after the buffer
//! pointers (operands', then the result's). The routines live in `gather.rs`,
//! `batch_matmul.rs` and `random.rs`.

use super::kernels::{HostFn, TRANS_A, TRANS_B};
use super::schedule::Schedule;
use crate::ir::{DType, Func, Op, ValueId};

/// The routine and trailing integer arguments for instruction `index`.
pub(super) fn plan(func: &Func, sched: &Schedule, index: usize) -> (HostFn, Vec<usize>) {
    let inst = &func.insts[index];
    let ty = &inst.ty;
    let arg = |k: usize| func.ty(inst.args[k]);
    let dtype_pick = |f32_fn, f64_fn, i32_fn: Option<HostFn>| match (ty.dtype, i32_fn) {
        (DType::F32, _) => f32_fn,
        (DType::F64, _) => f64_fn,
        (DType::I32, Some(i)) => i,
        (other, _) => unreachable!("{:?} on {other} (the verifier rejects it)", inst.op),
    };
    match &inst.op {
        // gather(operand [V, row], indices [n]): (v, row bytes, n)
        Op::Gather => {
            let src = arg(0);
            let row: usize = src.shape.0[1..].iter().product();
            let n = arg(1).shape.num_elements();
            (HostFn::Gather, vec![src.shape.0[0], row * src.dtype.size_bytes(), n])
        }
        // scatter_add(updates [n, row], indices [n]) -> [V, row]: (v, row, n)
        Op::ScatterAdd => {
            let row: usize = ty.shape.0[1..].iter().product();
            let n = arg(1).shape.num_elements();
            let host = dtype_pick(HostFn::ScatterAddF32, HostFn::ScatterAddF64, Some(HostFn::ScatterAddI32));
            (host, vec![ty.shape.0[0], row, n])
        }
        // [batch, m, k] x [batch, k, n]: (batch, m, k, n, trans)
        Op::BatchMatMul => {
            let a = arg(0);
            let r = a.shape.rank();
            let batch: usize = a.shape.0[..r - 2].iter().product();
            let trans = transposed_operands(sched, &inst.args);
            let dims = vec![batch, a.shape.0[r - 2], a.shape.0[r - 1], ty.shape.0[r - 1], trans];
            (dtype_pick(HostFn::BatchMatMulF32, HostFn::BatchMatMulF64, None), dims)
        }
        // key [K.., 2] -> [K.., S..]: (elements or pairs per key, keys)
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => {
            let keys = arg(0).shape.num_elements() / 2;
            let per_key = ty.shape.num_elements() / keys.max(1);
            match inst.op {
                Op::RandomBits => (HostFn::RandomBits, vec![per_key, keys]),
                Op::RandomSplit => (HostFn::RandomSplit, vec![per_key / 2, keys]),
                _ => (dtype_pick(HostFn::RandomUniformF32, HostFn::RandomUniformF64, None), vec![per_key, keys]),
            }
        }
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => unreachable!("{:?} is open-coded", inst.op),
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => unreachable!("{:?} is open-coded", inst.op),
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => {
            unreachable!("{:?} is open-coded", inst.op)
        }
        Op::Abs | Op::Sign | Op::StopGradient => unreachable!("{:?} is open-coded", inst.op),
        Op::Floor | Op::Ceil | Op::Round => unreachable!("{:?} is open-coded", inst.op),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => {
            unreachable!("{:?} is open-coded", inst.op)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => unreachable!("{:?} is open-coded", inst.op),
        Op::Select | Op::Convert | Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } => {
            unreachable!("{:?} is open-coded", inst.op)
        }
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::MatMul => {
            unreachable!("{:?} is open-coded", inst.op)
        }
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => {
            unreachable!("{:?} is open-coded", inst.op)
        }
        Op::Reverse { .. } => unreachable!("{:?} is open-coded", inst.op),
        Op::Scan(_) => unreachable!("scan runs in `scan.rs`"),
        Op::CustomVjp(_) => unreachable!("custom_vjp is inlined before codegen (`ir::custom_vjp::inline_rules`)"),
        Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) | Op::SelectAndScatter(_) => {
            unreachable!("{:?} has a described host call (conv.rs)", inst.op)
        }
    }
}

/// The `trans` argument of a (batched) matmul with operands `args`: which
/// of them are strided views of a transpose (`Schedule::strided`), whose
/// buffer holds the operand with its last two dims swapped.
pub(super) fn transposed_operands(sched: &Schedule, args: &[ValueId]) -> usize {
    let a = if sched.strided[args[0].index()] { TRANS_A } else { 0 };
    let b = if sched.strided[args[1].index()] { TRANS_B } else { 0 };
    a | b
}
