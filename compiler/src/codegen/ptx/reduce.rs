//! Parallel, deterministic reduction kernels: `ReduceSum`/`Max`/`Min` and
//! `ArgMax` with many source elements per output element.
//!
//! Consumes a reduction instruction of an `ir::Func`; produces its kernels
//! (PTX text), its launch steps and, for the two-pass scheme, one scratch
//! buffer in the program's buffer plan. Small extents stay with the
//! sequential one-thread-per-output kernels of `ptx.rs` (bitwise equal to
//! the interpreter); `plan` decides.
//!
//! Schemes, by `n_red` (elements reduced per output) and `n_out`:
//! - `n_red < PARALLEL_MIN` (64): sequential (`ptx.rs`), bitwise exact;
//! - `n_red < BLOCK_MIN` (4096): a warp per output element;
//! - otherwise a block (`BLOCK` = 256 threads) per output element, or, when
//!   there are fewer than `TARGET_ITEMS / 2` outputs and `n_red >= 2 *
//!   CHUNK`, two passes: pass 1 splits each output's extent into
//!   `chunks = min(ceil(n_red / MIN_CHUNK), ceil(TARGET_ITEMS / n_out))`
//!   contiguous chunks of `ceil(n_red / chunks)` elements, a block reduces
//!   each chunk into a scratch buffer `[n_out, chunks]`, and pass 2 reduces
//!   each output's row of partials with a warp. `ArgMax` has no two-pass
//!   form (it would need a second scratch buffer of indices): it uses a
//!   block per output at any size.
//!
//! Inside a group (warp or block) of `G` threads, thread `t` folds the
//! elements `t, t + G, t + 2G, ...` of its range in order, from the
//! identity; the warp then combines lane `l` with lane `l + d` for `d = 16,
//! 8, 4, 2, 1` (`shfl.sync.down`; f64 as two b32 halves); a block's 8 warp
//! results go through static shared memory (`.shared`, after `bar.sync`)
//! and are combined by the same tree with `d = 4, 2, 1`. The partition and
//! the combining order depend only on the shapes, never on timing, and there
//! are no atomics: results are bitwise reproducible run to run.
//!
//! Accuracy against the interpreter (which folds in row-major order):
//! - max/min (floats and i32) and i32 sums: exactly equal, since these
//!   combines are associative and commutative (NaN-propagating max/min with
//!   -0 < +0, and wrapping i32 addition);
//! - `ArgMax`: exactly equal: pairs are combined by a total preorder (NaN
//!   above everything, then value; ties, including -0 == +0 and NaN ==
//!   NaN, go to the lower index), so the first maximum (or first NaN) wins
//!   whatever the tree;
//! - float sums: a different order of `.rn` additions. Every partial sum is
//!   a sum of at most `n_red` terms, so the standard bound holds:
//!   `|sum - exact| <= n_red * eps * sum |x|` (eps = 2^-23 for f32, 2^-52
//!   for f64; the tree's depth, `ceil(n_red / G) + 8` or so, is far smaller
//!   than `n_red`, so the real error is much lower), and the interpreter's
//!   sequential sum obeys the same bound. Tested against the exact sum (the
//!   interpreter in f64 for f32 inputs) with that bound. Overflow to ±inf
//!   can differ where partial sums come near the largest finite value.

use super::builder::{imm_f32, imm_f64, Class, Kernel};
use super::fusion::Tree;
use super::{arith, class, load, mapped_index, math, store, Buffer, Step, BLOCK, MAX_GRID};
use crate::ir::{DType, Func, Op, Type};

/// Below this many reduced elements per output, one thread per output
/// element folds them sequentially (bitwise equal to the interpreter).
pub const PARALLEL_MIN: usize = 64;
/// From this many reduced elements on, a block (not a warp) per output.
pub const BLOCK_MIN: usize = 4096;
/// From `2 * CHUNK` elements per output on, few outputs take two passes.
pub const CHUNK: usize = 16384;
/// The shortest chunk of the two-pass scheme (16 elements per thread):
/// below `TARGET_ITEMS` chunks of `CHUNK`, the chunks shrink to this so
/// that the first pass still fills the GPU. W4's 4M-element sum in 256
/// chunks ran 2 blocks per SM (a quarter of the threads an H100 keeps in
/// flight), too few loads in flight to reach the memory's bandwidth.
pub const MIN_CHUNK: usize = 4096;
/// Enough blocks to fill a GPU (132 SMs x 8 blocks of 256 threads).
pub const TARGET_ITEMS: usize = 1024;
const WARP: u32 = 32;
const WARPS_PER_BLOCK: u32 = BLOCK / WARP;

/// What a reduction folds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum How {
    Sum,
    Max,
    Min,
    /// The first index of the maximum (NaN counting as largest).
    ArgMax,
}

/// How the work of one reduction is laid out.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scheme {
    /// One thread per output element (`ptx.rs`'s kernels).
    Sequential,
    /// A group of `group` threads (a warp or a block) per output element.
    Groups { group: u32 },
    /// A block per chunk into a scratch buffer, then a warp per output.
    TwoPass { chunks: usize },
}

/// The scheme for `n_out` outputs of `n_red` elements each.
pub fn plan(n_out: usize, n_red: usize, two_pass_ok: bool) -> Scheme {
    if n_red < PARALLEL_MIN {
        return Scheme::Sequential;
    }
    if n_red < BLOCK_MIN {
        return Scheme::Groups { group: WARP };
    }
    let chunks = n_red.div_ceil(MIN_CHUNK).min(TARGET_ITEMS.div_ceil(n_out));
    if two_pass_ok && n_out < TARGET_ITEMS / 2 && n_red >= 2 * CHUNK && chunks >= 2 {
        Scheme::TwoPass { chunks }
    } else {
        Scheme::Groups { group: BLOCK }
    }
}

/// The scheme `emit_parallel` uses for reducing `axes` of `src` (sums, max
/// and min: two passes allowed).
pub fn scheme(src: &Type, axes: &[usize]) -> Scheme {
    let geom = Geometry::new(src, axes);
    plan(geom.n_out, geom.n_red, true)
}

/// Where the reduced elements live: source element `j` of output `o` and
/// reduced position `r` is `base(o) + off(r)`, with `base` mapping `o`
/// through `out_dims`/`out_strides` and `off` mapping `r` through
/// `red_dims`/`red_strides` (`mapped_index`).
#[derive(Clone, Debug)]
struct Geometry {
    out_dims: Vec<usize>,
    out_strides: Vec<usize>,
    red_dims: Vec<usize>,
    red_strides: Vec<usize>,
    n_out: usize,
    n_red: usize,
}

impl Geometry {
    /// Reducing `axes` of a row-major `src`.
    fn new(src: &Type, axes: &[usize]) -> Geometry {
        let dims = src.shape.dims();
        let strides = src.shape.strides();
        let pick = |reduced: bool| -> (Vec<usize>, Vec<usize>) {
            let ax: Vec<usize> = (0..dims.len()).filter(|d| axes.contains(d) == reduced).collect();
            collapse(ax.iter().map(|&d| dims[d]).collect(), ax.iter().map(|&d| strides[d]).collect())
        };
        let (out_dims, out_strides) = pick(false);
        let (red_dims, red_strides) = pick(true);
        let n_out = out_dims.iter().product();
        let n_red = red_dims.iter().product();
        Geometry { out_dims, out_strides, red_dims, red_strides, n_out, n_red }
    }

    /// `n_out` contiguous rows of `n_red` elements.
    fn rows(n_out: usize, n_red: usize) -> Geometry {
        Geometry {
            out_dims: vec![n_out],
            out_strides: vec![n_red],
            red_dims: vec![n_red],
            red_strides: vec![1],
            n_out,
            n_red,
        }
    }
}

/// Merges neighbouring dims that step through memory as one (`strides[i]
/// == dims[i + 1] * strides[i + 1]`) and drops size-1 dims, so a row-major
/// walk over the result visits the same offsets with fewer div/rem.
fn collapse(dims: Vec<usize>, strides: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let (mut d_out, mut s_out): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (d, s) in dims.into_iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (d_out.last_mut(), s_out.last_mut()) {
            (Some(pd), Some(ps)) if *ps == d * s => {
                *pd *= d;
                *ps = s;
            }
            _ => {
                d_out.push(d);
                s_out.push(s);
            }
        }
    }
    (d_out, s_out)
}

/// Emits the parallel kernels and steps for reduction instruction `i` when
/// its scheme is not sequential; returns false (emitting nothing) otherwise
/// or when `i` is no reduction. `out` is its output buffer, `args` its
/// operands'. The caller has handled empty outputs and bool operands.
/// `unroll` (at least 1): elements per trip of each thread's fold.
#[allow(clippy::too_many_arguments)]
pub fn emit_parallel(
    func: &Func,
    i: usize,
    name: &str,
    out: usize,
    source: &Tree,
    source_outs: &[usize],
    buffers: &mut Vec<Buffer>,
    ptx: &mut String,
    steps: &mut Vec<Step>,
    unroll: usize,
) -> bool {
    let inst = &func.insts[i];
    let (how, axes) = match &inst.op {
        Op::ReduceSum { axes } => (How::Sum, axes.clone()),
        Op::ReduceMax { axes } => (How::Max, axes.clone()),
        Op::ReduceMin { axes } => (How::Min, axes.clone()),
        Op::ArgMax { axis } => (How::ArgMax, vec![*axis]),
        _ => return false,
    };
    let src = func.ty(inst.args[0]);
    // The first (or only) pass writes its destination, the buffers of
    // `source.outputs()` (siblings and their guests), and reads the rest.
    let reads = |first: usize| [vec![first], source_outs.to_vec(), source.buffers.clone()].concat();
    let geom = Geometry::new(src, &axes);
    let dtype = src.dtype;
    let mut launch = |kernel: &str, text: String, grid: u32, args: Vec<usize>| {
        ptx.push('\n');
        ptx.push_str(&text);
        steps.push(Step::Kernel { name: kernel.to_string(), inst: i, grid, args });
    };
    match plan(geom.n_out, geom.n_red, how != How::ArgMax) {
        Scheme::Sequential => return false,
        Scheme::Groups { group } => {
            let pass = Pass { how, dtype, group, geom, chunks: 1, unroll };
            launch(name, pass.kernel(name, Some(source), source_outs.len()), pass.grid(), reads(out));
        }
        Scheme::TwoPass { chunks } => {
            let scratch = buffers.len();
            buffers.push(Buffer { dtype, len: geom.n_out * chunks });
            let n_out = geom.n_out;
            let first = Pass { how, dtype, group: BLOCK, geom, chunks, unroll };
            let first_name = format!("{name}_part");
            let text = first.kernel(&first_name, Some(source), source_outs.len());
            launch(&first_name, text, first.grid(), reads(scratch));
            let second = Pass { how, dtype, group: WARP, geom: Geometry::rows(n_out, chunks), chunks: 1, unroll };
            launch(name, second.kernel(name, None, 0), second.grid(), vec![out, scratch]);
        }
    }
    true
}

/// One reduction kernel: `n_items = geom.n_out * chunks` work items, each
/// folded by a group of `group` threads into `dest[item]`. Item `w` is
/// output `w / chunks`, chunk `w % chunks`: reduced positions
/// `[c * len, min((c + 1) * len, n_red))` with `len = ceil(n_red / chunks)`.
struct Pass {
    how: How,
    dtype: DType,
    group: u32,
    geom: Geometry,
    chunks: usize,
    /// Elements per trip of a thread's fold (`PtxOptions::fold_unroll`).
    unroll: usize,
}

impl Pass {
    fn n_items(&self) -> usize {
        self.geom.n_out * self.chunks
    }

    fn grid(&self) -> u32 {
        let per_block = (BLOCK / self.group) as usize;
        self.n_items().div_ceil(per_block).clamp(1, MAX_GRID as usize) as u32
    }

    /// The kernel text: parameters `dest`, then the `n_outs` buffers of
    /// `source.outputs()` (stored at each source element visited), then the
    /// buffers `source` reads (its fused operand tree, evaluated per source
    /// element), or `src` alone when `source` is `None` (a second pass
    /// reading partials).
    fn kernel(&self, name: &str, source: Option<&Tree>, n_outs: usize) -> String {
        let n_params = 1 + n_outs + source.map_or(1, |t| t.buffers.len());
        let mut k = Kernel::new(name, n_params);
        let dest = k.param_ptr(0);
        let outs: Vec<String> = (1..1 + n_outs).map(|p| k.param_ptr(p)).collect();
        let ins: Vec<String> = (1 + n_outs..n_params).map(|p| k.param_ptr(p)).collect();
        let (how, dtype, group, chunks) = (self.how, self.dtype, self.group, self.chunks);
        let n_items = self.n_items();
        let n_red = self.geom.n_red;
        let chunk_len = n_red.div_ceil(chunks);
        let cls = class(dtype);
        let shared = (group == BLOCK).then(|| {
            let vals = k.shared("vals", 8 * WARPS_PER_BLOCK as usize);
            let idxs = k.shared("idxs", 4 * WARPS_PER_BLOCK as usize);
            (vals, idxs)
        });
        // Thread geometry: lane in the group, the first item, the item step.
        let tid = k.op1("mov.u32", Class::B32, "%tid.x");
        let ctaid = k.op1("mov.u32", Class::B32, "%ctaid.x");
        let nctaid = k.op1("mov.u32", Class::B32, "%nctaid.x");
        let lane = k.op2("and.b32", Class::B32, &tid, "31");
        let warp = k.op2("shr.u32", Class::B32, &tid, "5");
        let (member, first, step) = if group == BLOCK {
            (tid.clone(), k.op1("cvt.u64.u32", Class::B64, &ctaid), k.op1("cvt.u64.u32", Class::B64, &nctaid))
        } else {
            let per = WARPS_PER_BLOCK.to_string();
            let first = k.op2("mul.wide.u32", Class::B64, &ctaid, &per);
            let warp64 = k.op1("cvt.u64.u32", Class::B64, &warp);
            let first = k.op2("add.u64", Class::B64, &first, &warp64);
            (lane.clone(), first, k.op2("mul.wide.u32", Class::B64, &nctaid, &per))
        };
        let member64 = k.op1("cvt.u64.u32", Class::B64, &member);
        let w = k.op1("mov.u64", Class::B64, &first);
        let (item_head, item_done) = (k.label("item"), k.label("item_done"));
        k.place(&item_head);
        let done = k.reg(Class::Pred);
        k.ins(&format!("setp.ge.u64 {done}, {w}, {n_items}"));
        k.ins(&format!("@{done} bra {item_done}"));
        let (o, c) = if chunks == 1 {
            (w.clone(), k.op1("mov.u64", Class::B64, "0"))
        } else {
            super::divrem(&mut k, &w, chunks, n_items as u64)
        };
        let base = mapped_index(&mut k, &o, &self.geom.out_dims, &self.geom.out_strides);
        let start = k.op2("mul.lo.u64", Class::B64, &c, &chunk_len.to_string());
        let end = k.op2("add.u64", Class::B64, &start, &chunk_len.to_string());
        let end = k.op2("min.u64", Class::B64, &end, &n_red.to_string());
        // This thread's fold over r = start + member, + group, ... < end.
        let acc = identity(&mut k, how, dtype);
        let idx = k.op1("mov.b32", Class::B32, "-1");
        let r = k.op2("add.u64", Class::B64, &start, &member64);
        let source_index = |k: &mut Kernel, r: &str| {
            let off = mapped_index(k, r, &self.geom.red_dims, &self.geom.red_strides);
            k.op2("add.u64", Class::B64, &base, &off)
        };
        // acc (idx) <- combine(acc (idx), v at reduced position r).
        let fold_in = |k: &mut Kernel, v: &str, r: &str| {
            let r32 = k.op1("cvt.u32.u64", Class::B32, r);
            let (next, next_idx) = combine(k, how, dtype, &acc, &idx, v, &r32);
            k.ins(&format!("{} {acc}, {next}", mov(cls)));
            if how == How::ArgMax {
                k.ins(&format!("mov.b32 {idx}, {next_idx}"));
            }
        };
        let unroll = self.unroll;
        if unroll > 1 {
            // `unroll` elements per trip while all are in range: every
            // element's loads first, then the elements folded in the order
            // of the loop below (so the same sum, bit for bit). One load in
            // flight per thread left W4 at 0.55 of an H200's copy bandwidth.
            let (head, done) = (k.label("fold_unrolled"), k.label("fold_unrolled_done"));
            k.place(&head);
            let last = k.op2("add.u64", Class::B64, &r, &((unroll - 1) * group as usize).to_string());
            let past = k.reg(Class::Pred);
            k.ins(&format!("setp.ge.u64 {past}, {last}, {end}"));
            k.ins(&format!("@{past} bra {done}"));
            let rs: Vec<String> = (0..unroll)
                .map(|u| match u {
                    0 => r.clone(),
                    _ => k.op2("add.u64", Class::B64, &r, &(u * group as usize).to_string()),
                })
                .collect();
            let js: Vec<String> = rs.iter().map(|ru| source_index(&mut k, ru)).collect();
            let loaded: Vec<Vec<String>> = js
                .iter()
                .map(|j| match source {
                    Some(tree) => tree.load_leaves(&mut k, j, &ins),
                    None => vec![load_source(&mut k, dtype, &ins[0], j)],
                })
                .collect();
            for ((j, ru), leaves) in js.iter().zip(&rs).zip(&loaded) {
                let v = match source {
                    Some(tree) => tree.eval_loaded(&mut k, j, &ins, &outs, leaves),
                    None => leaves[0].clone(),
                };
                fold_in(&mut k, &v, ru);
            }
            k.ins(&format!("add.u64 {r}, {r}, {}", unroll * group as usize));
            k.ins(&format!("bra {head}"));
            k.place(&done);
        }
        // One element per trip: the whole fold, or the unrolled loop's rest.
        let (head, fold_done) = (k.label("fold"), k.label("fold_done"));
        k.place(&head);
        let past = k.reg(Class::Pred);
        k.ins(&format!("setp.ge.u64 {past}, {r}, {end}"));
        k.ins(&format!("@{past} bra {fold_done}"));
        let j = source_index(&mut k, &r);
        let v = match source {
            Some(tree) => tree.eval(&mut k, &j, &ins, &outs),
            None => load_source(&mut k, dtype, &ins[0], &j),
        };
        fold_in(&mut k, &v, &r);
        k.ins(&format!("add.u64 {r}, {r}, {group}"));
        k.ins(&format!("bra {head}"));
        k.place(&fold_done);
        let (mut a, mut ai) = warp_tree(&mut k, how, dtype, &acc, &idx, &[16, 8, 4, 2, 1]);
        if let Some((vals, idxs)) = &shared {
            // Lane 0 of each warp parks its result; after the barrier every
            // warp reads all 8 (lane l takes warp l % 8) and runs the tree.
            let is_lead = k.reg(Class::Pred);
            k.ins(&format!("setp.ne.u32 {is_lead}, {lane}, 0"));
            let skip = k.label("park_done");
            k.ins(&format!("@{is_lead} bra {skip}"));
            let (va, ia) = shared_slots(&mut k, vals, idxs, &warp);
            k.ins(&format!("st.shared.{} [{va}], {a}", st_ty(dtype)));
            k.ins(&format!("st.shared.b32 [{ia}], {ai}"));
            k.place(&skip);
            k.ins("bar.sync 0");
            let slot = k.op2("and.b32", Class::B32, &lane, &(WARPS_PER_BLOCK - 1).to_string());
            let (va, ia) = shared_slots(&mut k, vals, idxs, &slot);
            let pv = k.reg(cls);
            k.ins(&format!("ld.shared.{} {pv}, [{va}]", st_ty(dtype)));
            let pi = k.reg(Class::B32);
            k.ins(&format!("ld.shared.b32 {pi}, [{ia}]"));
            (a, ai) = warp_tree(&mut k, how, dtype, &pv, &pi, &[4, 2, 1]);
        }
        let not_lead = k.reg(Class::Pred);
        k.ins(&format!("setp.ne.u32 {not_lead}, {member}, 0"));
        let skip = k.label("store_done");
        k.ins(&format!("@{not_lead} bra {skip}"));
        if how == How::ArgMax {
            store(&mut k, DType::I32, &dest, &w, &ai);
        } else {
            store(&mut k, dtype, &dest, &w, &a);
        }
        k.place(&skip);
        if shared.is_some() {
            // The next item overwrites the shared slots.
            k.ins("bar.sync 0");
        }
        k.ins(&format!("add.u64 {w}, {w}, {step}"));
        k.ins(&format!("bra {item_head}"));
        k.place(&item_done);
        k.finish()
    }
}

/// Source element `j` (a u64 flat index into the operand). The one place a
/// reduction reads its operand: a fused producer would be evaluated here.
fn load_source(k: &mut Kernel, dtype: DType, src: &str, j: &str) -> String {
    load(k, dtype, src, j)
}

/// The 32-bit shared addresses of value slot and index slot `slot`.
fn shared_slots(k: &mut Kernel, vals: &str, idxs: &str, slot: &str) -> (String, String) {
    let vbase = k.op1("mov.u32", Class::B32, vals);
    let ibase = k.op1("mov.u32", Class::B32, idxs);
    let off8 = k.op2("shl.b32", Class::B32, slot, "3");
    let off4 = k.op2("shl.b32", Class::B32, slot, "2");
    (k.op2("add.u32", Class::B32, &vbase, &off8), k.op2("add.u32", Class::B32, &ibase, &off4))
}

fn st_ty(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I32 => "b32",
        DType::Bool => unreachable!("the verifier rejects bool reductions"),
    }
}

fn mov(cls: Class) -> &'static str {
    match cls {
        Class::F32 => "mov.f32",
        Class::F64 => "mov.f64",
        Class::B32 => "mov.b32",
        other => unreachable!("no reduction accumulates in {other:?}"),
    }
}

/// The fold's starting value: 0, -inf (i32::MIN) for max and argmax, +inf
/// (i32::MAX) for min, as the interpreter.
fn identity(k: &mut Kernel, how: How, dtype: DType) -> String {
    let cls = class(dtype);
    match (dtype, how) {
        (DType::F32, How::Sum) => k.op1("mov.f32", cls, &imm_f32(0.0)),
        (DType::F32, How::Max | How::ArgMax) => k.op1("mov.f32", cls, &imm_f32(f32::NEG_INFINITY)),
        (DType::F32, How::Min) => k.op1("mov.f32", cls, &imm_f32(f32::INFINITY)),
        (DType::F64, How::Sum) => k.op1("mov.f64", cls, &imm_f64(0.0)),
        (DType::F64, How::Max | How::ArgMax) => k.op1("mov.f64", cls, &imm_f64(f64::NEG_INFINITY)),
        (DType::F64, How::Min) => k.op1("mov.f64", cls, &imm_f64(f64::INFINITY)),
        (DType::I32, How::Sum) => k.op1("mov.b32", cls, "0"),
        (DType::I32, How::Max | How::ArgMax) => k.op1("mov.b32", cls, "-2147483648"),
        (DType::I32, How::Min) => k.op1("mov.b32", cls, "2147483647"),
        (DType::Bool, _) => unreachable!("the verifier rejects bool reductions"),
    }
}

/// Folds `(b, bi)` into `(a, ai)`; the index only matters for argmax.
///
/// sum: a + b; max/min: the interpreter's (NaN-propagating, -0 < +0);
/// argmax: b wins iff b is NaN and a is not, or b > a, or they tie (==, or
/// both NaN) and bi < ai: a total preorder, so any tree picks the first
/// maximum.
fn combine(k: &mut Kernel, how: How, dtype: DType, a: &str, ai: &str, b: &str, bi: &str) -> (String, String) {
    let cls = class(dtype);
    let t = arith(dtype);
    let v = match (dtype, how) {
        (DType::F32 | DType::F64, How::Sum) => k.op2(&format!("add.rn.{t}"), cls, a, b),
        (DType::F32 | DType::F64, How::Max) => math::fmaxmin(k, cls, a, b, true),
        (DType::F32 | DType::F64, How::Min) => math::fmaxmin(k, cls, a, b, false),
        (DType::I32, How::Sum) => k.op2("add.s32", cls, a, b),
        (DType::I32, How::Max) => k.op2("max.s32", cls, a, b),
        (DType::I32, How::Min) => k.op2("min.s32", cls, a, b),
        (_, How::ArgMax) => {
            let (gt, eq, lower, pick) =
                (k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred));
            k.ins(&format!("setp.gt.{t} {gt}, {b}, {a}"));
            k.ins(&format!("setp.eq.{t} {eq}, {b}, {a}"));
            if dtype.is_float() {
                let (b_nan, a_nan, a_num, both, nan_wins) = (
                    k.reg(Class::Pred),
                    k.reg(Class::Pred),
                    k.reg(Class::Pred),
                    k.reg(Class::Pred),
                    k.reg(Class::Pred),
                );
                k.ins(&format!("setp.nan.{t} {b_nan}, {b}, {b}"));
                k.ins(&format!("setp.nan.{t} {a_nan}, {a}, {a}"));
                k.ins(&format!("setp.num.{t} {a_num}, {a}, {a}"));
                k.ins(&format!("and.pred {both}, {b_nan}, {a_nan}"));
                k.ins(&format!("or.pred {eq}, {eq}, {both}"));
                k.ins(&format!("and.pred {nan_wins}, {b_nan}, {a_num}"));
                k.ins(&format!("or.pred {gt}, {gt}, {nan_wins}"));
            }
            k.ins(&format!("setp.lt.u32 {lower}, {bi}, {ai}"));
            k.ins(&format!("and.pred {eq}, {eq}, {lower}"));
            k.ins(&format!("or.pred {pick}, {gt}, {eq}"));
            let st = if dtype == DType::I32 { "b32" } else { t };
            let v = k.op3(&format!("selp.{st}"), cls, b, a, &pick);
            let vi = k.op3("selp.b32", Class::B32, bi, ai, &pick);
            return (v, vi);
        }
        (DType::Bool, _) => unreachable!("the verifier rejects bool reductions"),
    };
    (v, ai.to_string())
}

/// `shfl.sync.down.b32` of a value of `class` by `delta` lanes (f64 as two
/// halves); lanes past 31 read their own value.
fn shfl_down(k: &mut Kernel, cls: Class, v: &str, delta: u32) -> String {
    let shfl = |k: &mut Kernel, x: &str| {
        let d = k.reg(Class::B32);
        k.ins(&format!("shfl.sync.down.b32 {d}, {x}, {delta}, 31, -1"));
        d
    };
    match cls {
        Class::B32 => shfl(k, v),
        Class::F32 => {
            let bits = k.op1("mov.b32", Class::B32, v);
            let s = shfl(k, &bits);
            k.op1("mov.b32", Class::F32, &s)
        }
        Class::F64 => {
            let (lo, hi) = (k.reg(Class::B32), k.reg(Class::B32));
            k.ins(&format!("mov.b64 {{{lo}, {hi}}}, {v}"));
            let (slo, shi) = (shfl(k, &lo), shfl(k, &hi));
            let d = k.reg(Class::F64);
            k.ins(&format!("mov.b64 {d}, {{{slo}, {shi}}}"));
            d
        }
        other => unreachable!("shuffle of {other:?}"),
    }
}

/// The warp tree: for each `delta`, lane `l` folds in lane `l + delta`'s
/// value (fixed order: lane 0 ends with the fold of lanes `0..2 * deltas[0]`).
fn warp_tree(k: &mut Kernel, how: How, dtype: DType, v: &str, vi: &str, deltas: &[u32]) -> (String, String) {
    let cls = class(dtype);
    let (mut a, mut ai) = (v.to_string(), vi.to_string());
    for &delta in deltas {
        let b = shfl_down(k, cls, &a, delta);
        let bi = if how == How::ArgMax { shfl_down(k, Class::B32, &ai, delta) } else { ai.clone() };
        (a, ai) = combine(k, how, dtype, &a, &ai, &b, &bi);
    }
    (a, ai)
}
