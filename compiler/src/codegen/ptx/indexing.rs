//! PTX kernels for the embedding primitives `Gather` and `ScatterAdd`.
//!
//! Consumes the operand types (static shapes) and the kernel's pointer
//! registers; produces the kernel body in `Kernel`. Both view the table as
//! rows: `[V, rest..]` is `V` rows of `R = prod(rest)` elements, and an index
//! clamps into `0..V` (`ir::op::Op::Gather`), so no access faults.
//!
//! `ScatterAdd` is a *gathering* kernel: one thread per output element
//! `(r, j)` scans all `I` indices in order and adds `updates[k, j]` wherever
//! `clamp(indices[k]) == r`. That is the interpreter's order of additions per
//! element, so the result is bitwise equal and deterministic. The usual GPU
//! alternative (one thread per update, `atom.global.add.f32`) costs `I * R`
//! instead of `V * R * I` index tests, but float atomics make the summation
//! order, and so the rounding, vary from run to run. The index loads here are
//! the same address for every thread of a warp (one broadcast per `k`), so
//! the scan is cheap for embedding gradients of moderate vocabularies; a
//! sort-by-index segmented sum is the fast deterministic version (not yet).

use super::builder::{Class, Kernel};
use super::{class, constant, load, store};
use crate::ir::{DType, Type};

/// `clamp(indices[at], 0, v - 1)` as a u64 register.
fn clamped_index(k: &mut Kernel, indices: &str, at: &str, v: usize) -> String {
    let raw = load(k, DType::I32, indices, at);
    let lo = k.op2("max.s32", Class::B32, &raw, "0");
    let hi = k.op2("min.s32", Class::B32, &lo, &(v - 1).to_string());
    k.op1("cvt.u64.u32", Class::B64, &hi)
}

/// `out[i.., r..] = operand[clamp(indices[i..]), r..]`.
pub fn gather(k: &mut Kernel, operand: &Type, ty: &Type, out: &str, ins: &[String]) {
    let v = operand.shape.0[0];
    let row: usize = operand.shape.0[1..].iter().product();
    let n = ty.shape.num_elements() as u64;
    k.grid_stride_loop(n, |k, o| {
        let (pos, j) = super::divrem(k, o, row, n);
        let r = clamped_index(k, &ins[1], &pos, v);
        let at = k.op3("mad.lo.u64", Class::B64, &r, &row.to_string(), &j);
        let x = load(k, ty.dtype, &ins[0], &at);
        store(k, ty.dtype, out, o, &x);
    });
}

/// `out[r, j] = sum over k in order with clamp(indices[k]) == r of
/// updates[k, j]`, from zero (see the module doc for why it gathers).
pub fn scatter_add(k: &mut Kernel, indices: &Type, ty: &Type, out: &str, ins: &[String]) {
    let v = ty.shape.0[0];
    let row: usize = ty.shape.0[1..].iter().product();
    let count = indices.shape.num_elements();
    let n = ty.shape.num_elements() as u64;
    let dtype = ty.dtype;
    let cls = class(dtype);
    let (add, mov) = match dtype {
        DType::F32 => ("add.rn.f32", "mov.f32"),
        DType::F64 => ("add.rn.f64", "mov.f64"),
        DType::I32 => ("add.s32", "mov.b32"),
        DType::Bool => unreachable!("the verifier rejects scatter_add of bool"),
    };
    k.grid_stride_loop(n, |k, o| {
        let acc = constant(k, dtype, 0.0);
        if count > 0 {
            let (r, j) = super::divrem(k, o, row, n);
            let pos = k.op1("mov.u64", Class::B64, "0");
            let (head, skip) = (k.label("scatter"), k.label("scatter_skip"));
            k.place(&head);
            let idx = clamped_index(k, &ins[1], &pos, v);
            let other = k.reg(Class::Pred);
            k.ins(&format!("setp.ne.u64 {other}, {idx}, {r}"));
            k.ins(&format!("@{other} bra {skip}"));
            let at = k.op3("mad.lo.u64", Class::B64, &pos, &row.to_string(), &j);
            let u = load(k, dtype, &ins[0], &at);
            let sum = k.op2(add, cls, &acc, &u);
            k.ins(&format!("{mov} {acc}, {sum}"));
            k.place(&skip);
            k.ins(&format!("add.u64 {pos}, {pos}, 1"));
            let more = k.reg(Class::Pred);
            k.ins(&format!("setp.lt.u64 {more}, {pos}, {count}"));
            k.ins(&format!("@{more} bra {head}"));
        }
        store(k, dtype, out, o, &acc);
    });
}
