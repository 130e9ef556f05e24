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
//! the scan is cheap for embedding gradients of moderate vocabularies.
//!
//! From `WARP_SCAN_MIN` indices on, `scatter_add_warps` scans 32 indices
//! per step instead of one: a warp owns 32 columns of one row `r`; each
//! lane tests one index of the chunk, `vote.sync.ballot` gathers the hits
//! into a mask, and the warp adds the hits' update rows lowest lane first.
//! Every output element still adds its updates in index order from zero
//! (bitwise equal to the interpreter), with `I / 32` instead of `I` steps.
//! (A sort-by-index segmented sum would cost `I * R` in total.)

use super::builder::{Class, Kernel};
use super::{class, constant, load, store, BLOCK, MAX_GRID};
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

/// Scatters of at least this many indices use `scatter_add_warps`.
pub const WARP_SCAN_MIN: usize = 64;

/// The grid of `scatter_add_warps` for an output `[V, rest..]`: one warp
/// per (row, group of 32 columns), 8 warps per block.
pub fn scatter_add_grid(ty: &Type) -> u32 {
    let row: usize = ty.shape.0[1..].iter().product();
    let items = ty.shape.0[0] * row.div_ceil(32);
    items.div_ceil((BLOCK / 32) as usize).clamp(1, MAX_GRID as usize) as u32
}

/// `scatter_add` for many indices (module doc): same result, bitwise.
pub fn scatter_add_warps(k: &mut Kernel, indices: &Type, ty: &Type, out: &str, ins: &[String]) {
    let v = ty.shape.0[0];
    let row: usize = ty.shape.0[1..].iter().product();
    let groups = row.div_ceil(32);
    let n_items = (v * groups) as u64;
    let count = indices.shape.num_elements();
    let dtype = ty.dtype;
    let cls = class(dtype);
    let (add, ty_s) = match dtype {
        DType::F32 => ("add.rn.f32", "f32"),
        DType::F64 => ("add.rn.f64", "f64"),
        DType::I32 => ("add.s32", "s32"),
        DType::Bool => unreachable!("the verifier rejects scatter_add of bool"),
    };
    let size = dtype.size_bytes();
    let per_block = (BLOCK / 32).to_string();
    let tid = k.op1("mov.u32", Class::B32, "%tid.x");
    let ctaid = k.op1("mov.u32", Class::B32, "%ctaid.x");
    let nctaid = k.op1("mov.u32", Class::B32, "%nctaid.x");
    let lane = k.op2("and.b32", Class::B32, &tid, "31");
    let lane64 = k.op1("cvt.u64.u32", Class::B64, &lane);
    let warp = k.op2("shr.u32", Class::B32, &tid, "5");
    let warp64 = k.op1("cvt.u64.u32", Class::B64, &warp);
    let first = k.op2("mul.wide.u32", Class::B64, &ctaid, &per_block);
    let item = k.op2("add.u64", Class::B64, &first, &warp64);
    let step = k.op2("mul.wide.u32", Class::B64, &nctaid, &per_block);
    let (item_head, item_done) = (k.label("sc_item"), k.label("sc_item_done"));
    k.place(&item_head);
    // `item` is the same in every lane: the branches below are warp-uniform.
    let finished = k.reg(Class::Pred);
    k.ins(&format!("setp.ge.u64 {finished}, {item}, {n_items}"));
    k.ins(&format!("@{finished} bra {item_done}"));
    let (r, g) = super::divrem(k, &item, groups, n_items);
    let j = k.op3("mad.lo.u64", Class::B64, &g, "32", &lane64);
    let col_ok = k.reg(Class::Pred);
    k.ins(&format!("setp.lt.u64 {col_ok}, {j}, {row}"));
    let acc = constant(k, dtype, 0.0);
    let c = k.op1("mov.u64", Class::B64, "0");
    let (chunk_head, chunk_done) = (k.label("sc_chunk"), k.label("sc_chunk_done"));
    k.place(&chunk_head);
    let past = k.reg(Class::Pred);
    k.ins(&format!("setp.ge.u64 {past}, {c}, {count}"));
    k.ins(&format!("@{past} bra {chunk_done}"));
    // This lane's index of the chunk (the load clamped into range; a lane
    // past the end never hits).
    let i = k.op2("add.u64", Class::B64, &c, &lane64);
    let in_range = k.reg(Class::Pred);
    k.ins(&format!("setp.lt.u64 {in_range}, {i}, {count}"));
    let i_safe = k.op2("min.u64", Class::B64, &i, &(count - 1).to_string());
    let idx = clamped_index(k, &ins[1], &i_safe, v);
    let hit = k.reg(Class::Pred);
    k.ins(&format!("setp.eq.u64 {hit}, {idx}, {r}"));
    k.ins(&format!("and.pred {hit}, {hit}, {in_range}"));
    let mask = k.reg(Class::B32);
    k.ins(&format!("vote.sync.ballot.b32 {mask}, {hit}, -1"));
    let (match_head, match_done) = (k.label("sc_hit"), k.label("sc_hit_done"));
    k.place(&match_head);
    let none = k.reg(Class::Pred);
    k.ins(&format!("setp.eq.u32 {none}, {mask}, 0"));
    k.ins(&format!("@{none} bra {match_done}"));
    // The lowest hit: bit b of `mask` (lane b, index c + b).
    let neg = k.op1("neg.s32", Class::B32, &mask);
    let low = k.op2("and.b32", Class::B32, &mask, &neg);
    let below = k.op2("sub.u32", Class::B32, &low, "1");
    let b = k.op1("popc.b32", Class::B32, &below);
    k.ins(&format!("xor.b32 {mask}, {mask}, {low}"));
    let b64 = k.op1("cvt.u64.u32", Class::B64, &b);
    let hit_i = k.op2("add.u64", Class::B64, &c, &b64);
    let at = k.op3("mad.lo.u64", Class::B64, &hit_i, &row.to_string(), &j);
    let addr = k.op3("mad.lo.u64", Class::B64, &at, &size.to_string(), &ins[0]);
    let u = k.reg(cls);
    k.ins(&format!("@{col_ok} ld.global.{ty_s} {u}, [{addr}]"));
    k.ins(&format!("@{col_ok} {add} {acc}, {acc}, {u}"));
    k.ins(&format!("bra {match_head}"));
    k.place(&match_done);
    k.ins(&format!("add.u64 {c}, {c}, 32"));
    k.ins(&format!("bra {chunk_head}"));
    k.place(&chunk_done);
    let o = k.op3("mad.lo.u64", Class::B64, &r, &row.to_string(), &j);
    let oaddr = k.op3("mad.lo.u64", Class::B64, &o, &size.to_string(), out);
    k.ins(&format!("@{col_ok} st.global.{ty_s} [{oaddr}], {acc}"));
    k.ins(&format!("add.u64 {item}, {item}, {step}"));
    k.ins(&format!("bra {item_head}"));
    k.place(&item_done);
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
