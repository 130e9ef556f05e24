//! The kernel scheduler of the CPU backend: decides which values get a
//! buffer and which are computed in registers inside a consumer's loop.
//!
//! Consumes a verified `ir::Func`; produces a `Schedule`: for each value,
//! whether it is *inlined* (no buffer; evaluated per element inside the loop
//! of the instruction that uses it) or *materialized* (written to its own
//! buffer, or a view of one). `emit.rs` turns each materialized fusible value
//! into ONE loop over its elements that evaluates the whole tree of inlined
//! producers below it (a fusion group); `plan.rs` gives buffers only to
//! materialized values.
//!
//! Rules (a value `v` is inlined iff all hold):
//!   - `v` is fusible (`fusible`): an elementwise op, a `Constant`, a
//!     `Broadcast`, a `Pow` with a small constant integer exponent, or (with
//!     `Options::inline_math`) exp, log, tanh or logistic (`vmath.rs`);
//!   - `v` is not a function output;
//!   - every user of `v` is fusible, or is a reduction (`ReduceSum`,
//!     `ReduceMax`, whose loop then evaluates `v`'s tree per source element);
//!   - `v` has exactly one use, unless it is free to recompute (a `Constant`,
//!     or a `Broadcast` of a materialized value or a constant: a strided load)
//!     or cheap to recompute (`recomputable`: one float add, sub, mul, neg,
//!     abs, max, min or select, a comparison, or a conversion to a float;
//!     CPU only): each user's loop
//!     computes it again instead of loading it, since these loops are bound
//!     by memory traffic, not arithmetic. That holds while recomputing reads
//!     no more buffers of its size than loading it would (one,
//!     `MAX_RECOMPUTE_LOADS`), or while all its users run in one pass over
//!     memory (`in_one_pass`: one loop or a tiled pair, decided on a first
//!     schedule that recomputes everywhere); a residual sum `x + a + b` read
//!     by a layer norm's reductions and its backward gets a buffer;
//!   - a `Broadcast` user only inlines a `Constant`: the broadcast operand is
//!     read through strides (stride 0 on broadcast dims), never re-evaluated
//!     at the broadcast shape.
//! A materialized fusible value `v` is *hosted* (`hosted[v] = Some(r)`: it
//! keeps its buffer but has no loop of its own; the loop of fusion root `r`
//! evaluates it in registers, uses it, and stores it on the way) iff every
//! user of `v` is an elementwise fusible op (not a broadcast, not a
//! reduction) evaluated in some fused elementwise loop, and `r` is the first
//! of those loops: later loops read `v`'s buffer as usual. This is
//! multi-output fusion without reordering: Adam's new moments are stored by
//! the parameter update's loop that reads them anyway, instead of being
//! written by their own loops and read back.
//! Everything else (matmul, reductions, argmax, slice/pad/concat/transpose,
//! iota, the other transcendentals, views, and any op this file does not name as
//! fusible) is one loop nest or host call per instruction, reading its
//! operands from their buffers.
//!
//! The PTX backend schedules with the same rules and its own notion of
//! fusible (`schedule_with`, called by `ptx/fusion.rs`): one kernel per
//! fusion group.

use crate::ir::{DType, Func, Op};

/// Which values are computed inside a consumer's loop.
pub(crate) struct Schedule {
    /// `strided[v]`: `Transpose` `v` swaps the last two dims and only
    /// matmuls read it, or swaps the first two dims of a 4-D array and only
    /// weight-gradient convolutions read it (`swapped_conv_operand`): it is
    /// a view of its operand's buffer, which the GEMM or the conv routine
    /// reads in the stored order (no copy). CPU backend only.
    pub(crate) strided: Vec<bool>,
    /// `inlined[v]`: value `v` has no buffer.
    pub(crate) inlined: Vec<bool>,
    /// `hosted[v] = Some(r)`: `v` has a buffer, written by the fused loop of
    /// root `r` (see the module doc).
    pub(crate) hosted: Vec<Option<usize>>,
    /// `guests[r]`: the values root `r`'s loop hosts, in definition order
    /// (for a reduction: its siblings, each followed by the values it hosted).
    pub(crate) guests: Vec<Vec<usize>>,
    /// `siblings[r]`: the elementwise roots that reduction `r`'s loop
    /// evaluates and stores at each source element (`siblings.rs`; CPU
    /// backend only), in definition order; empty for other instructions.
    pub(crate) siblings: Vec<Vec<usize>>,
    /// Exp, log, tanh and logistic are evaluated inline (`vmath.rs`) instead
    /// of by a host routine per array.
    pub(super) inline_math: bool,
    /// Loops rooted at an f32 transcendental call its 512-bit routine per
    /// chunk (`Options::wide_math`, set by `cpu::compile_with`).
    pub(super) wide_math: bool,
    /// Fused f32 loops run as AVX-512 kernels (`wide.rs`) where their trees
    /// allow (`Options::wide_loops`, set by `cpu::compile_with`).
    pub(super) wide_loops: bool,
    /// `wide_roots[v]`: `v` is an f32 tanh or logistic that keeps a loop of
    /// its own (never inlined, hosted or adopted as a sibling) so that the
    /// 512-bit routine computes it (`wide_root`); CPU backend only.
    pub(crate) wide_roots: Vec<bool>,
    /// `tiled[a] = Some(r)`: wide root `a` runs inside the loop of
    /// reduction `r`, chunk by chunk (`emit::tiled_pairs`), so its buffer
    /// is written and read back while in cache; it has no loop of its own.
    pub(crate) tiled: Vec<Option<usize>>,
}

/// The largest |exponent| a constant `Pow` is lowered to multiplications for.
pub(super) const MAX_POW_EXPONENT: i32 = 4;

/// The exponent of `Pow` instruction `index` when it is a compile-time
/// constant small integer on floats (a `Constant`, or a `Broadcast` of one):
/// such a `pow` becomes multiplications (see `emit::pow_by_multiplication`).
pub(crate) fn const_pow_exponent(func: &Func, index: usize) -> Option<i32> {
    let inst = &func.insts[index];
    if !matches!(inst.op, Op::Pow) || !inst.ty.dtype.is_float() {
        return None;
    }
    let mut exponent = inst.args[1].index();
    if let Op::Broadcast { .. } = func.insts[exponent].op {
        exponent = func.insts[exponent].args[0].index();
    }
    match func.insts[exponent].op {
        Op::Constant(value) => {
            // The exponent as the program sees it: rounded to the dtype.
            let value = if inst.ty.dtype == DType::F32 { value as f32 as f64 } else { value };
            let fits = value.fract() == 0.0 && value.abs() <= MAX_POW_EXPONENT as f64;
            fits.then_some(value as i32)
        }
        _ => None,
    }
}

/// Whether instruction `index` can be evaluated per element inside a fused
/// loop (with the exact scalar semantics of `emit::scalar_op`, or those of
/// `vmath` for the inline transcendentals when `inline_math`).
pub(super) fn fusible(func: &Func, index: usize, inline_math: bool) -> bool {
    let inst = &func.insts[index];
    match &inst.op {
        Op::Neg | Op::Sqrt | Op::Rsqrt | Op::Abs | Op::Sign => true,
        Op::Floor | Op::Ceil | Op::Round => true,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => true,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select => true,
        Op::Constant(_) | Op::Broadcast { .. } => true,
        // A same-dtype convert is a view (it aliases its operand).
        Op::Convert => func.ty(inst.args[0]).dtype != inst.ty.dtype,
        Op::Pow => const_pow_exponent(func, index).is_some(),
        // Inline polynomials (within a few ulp of the interpreter), or host
        // routines once per array (bitwise equal to the interpreter).
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic => inline_math && super::vmath::is_inline(&inst.op, inst.ty.dtype),
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => false,
        Op::Param(_) | Op::Iota { .. } | Op::Reshape | Op::StopGradient | Op::Transpose { .. } => false,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul | Op::ArgMax { .. } => false,
        Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
        // Own loops or host routines reading materialized operands.
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => false,
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform | Op::Scan(_) | Op::CustomVjp(_) => false,
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => false,
        Op::SelectAndScatter(_) => false,
    }
}

/// Whether a fusible user may evaluate an inlined operand inside its loop.
fn evaluates_operands(func: &Func, index: usize, fusible: &dyn Fn(usize) -> bool) -> bool {
    fusible(index) || matches!(func.insts[index].op, Op::ReduceSum { .. } | Op::ReduceMax { .. })
}

/// Schedules `func` (see the module doc for the rules).
pub(super) fn schedule(func: &Func, inline_math: bool, horizontal_fusion: bool, wide_math: bool) -> Schedule {
    let fusible_here = |index| fusible(func, index, inline_math);
    let wide_roots: Vec<bool> = (0..func.insts.len()).map(|v| inline_math && wide_math && wide_root(func, v)).collect();
    let pass = |recompute: &dyn Fn(usize, usize) -> bool| {
        let mut sched = schedule_inner(func, &fusible_here, recompute, wide_roots.clone());
        sched.inline_math = inline_math;
        sched.wide_math = inline_math && wide_math;
        sched.strided = strided_transposes(func);
        if horizontal_fusion {
            super::siblings::fuse(func, &mut sched, &fusible_here);
        }
        sched.tiled = super::emit::tiled_pairs(func, &sched);
        sched
    };
    // First recompute every cheap value wherever it is used, to see which
    // of them all land in one pass over memory; those stay recomputed (free:
    // their loads come from cache), the others only when cheap to load.
    let everywhere = pass(&|index, _| recomputable(func, index));
    let one_pass = in_one_pass(func, &everywhere);
    pass(&|index, loads| recomputable(func, index) && (loads <= MAX_RECOMPUTE_LOADS || one_pass[index]))
}

/// `one_pass[v]`: inlined value `v` is evaluated by loops that run as one
/// pass over memory (one loop, or a tiled pair, `Schedule::tiled`).
fn in_one_pass(func: &Func, sched: &Schedule) -> Vec<bool> {
    let users = users(func);
    (0..func.insts.len()).map(|v| sched.inlined[v] && loops_evaluating(sched, &users, v).len() == 1).collect()
}

/// The loops (or host calls) that evaluate value `v`, each once: its own,
/// its host's (a tiled value's: its reduction's), or for an inlined value
/// those of its users. `users` is `users(func)`.
pub(super) fn loops_evaluating(sched: &Schedule, users: &[Vec<usize>], v: usize) -> Vec<usize> {
    let loop_of = |mut u: usize| {
        while let Some(host) = sched.tiled[u].or(sched.hosted[u]).filter(|&h| h != u) {
            u = host;
        }
        u
    };
    let (mut loops, mut stack, mut seen) = (Vec::new(), vec![v], std::collections::HashSet::new());
    while let Some(u) = stack.pop() {
        if !seen.insert(u) {
            continue;
        }
        if sched.inlined[u] {
            stack.extend(&users[u]);
        } else if !loops.contains(&loop_of(u)) {
            loops.push(loop_of(u));
        }
    }
    loops
}

/// Schedules `func` by the module doc's rules with another notion of
/// `fusible` (which instructions the caller's fused loops can evaluate per
/// element): the PTX backend's (`ptx/fusion.rs`). `inline_math` is false
/// (it only matters to this backend's `emit.rs`).
pub(crate) fn schedule_with(func: &Func, fusible: &dyn Fn(usize) -> bool) -> Schedule {
    schedule_inner(func, fusible, &|_, _| false, vec![false; func.insts.len()])
}

/// Whether `index` is a wide root when 512-bit math is on: an f32 tanh or
/// logistic whose rows hold at least 16 elements. Inside a larger loop it
/// would run on Cranelift's 4 lanes; as a root of its own its operand tree
/// still fuses into it, the routine computes it (`emit::emit_fused_math`),
/// and its users read its buffer: one more store and load per element,
/// which measured far cheaper than 4-lane tanh (W4: 20-23 -> 15-17 ms on
/// the 2-vCPU VM). Exp and log, cheaper, stay inline.
fn wide_root(func: &Func, index: usize) -> bool {
    let inst = &func.insts[index];
    matches!(inst.op, Op::Tanh | Op::Logistic)
        && inst.ty.dtype == DType::F32
        && inst.ty.shape.0.last().copied().unwrap_or(1) >= 16
}

/// Whether instruction `index` is cheap enough to compute again in each
/// fused loop that uses it rather than store it once and load it in each:
/// one arithmetic, comparison, select or conversion-to-float instruction
/// (no transcendental, no division). The loops are memory-bound: recomputing from operands the
/// loop reads anyway is cheaper than a store (with its read for ownership)
/// and a load, and the value gets no buffer at all. Values of the same
/// loop are evaluated once per element (`emit::Tree` memoizes).
fn recomputable(func: &Func, index: usize) -> bool {
    let inst = &func.insts[index];
    let arithmetic =
        matches!(inst.op, Op::Add | Op::Sub | Op::Mul | Op::Neg | Op::Abs | Op::Max | Op::Min | Op::Select);
    let comparison = matches!(inst.op, Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne);
    // A one-hot's `float(labels == iota)`: one conversion instruction.
    let convert = matches!(inst.op, Op::Convert) && inst.ty.dtype.is_float();
    (arithmetic && inst.ty.dtype.is_float()) || comparison || convert
}

/// `schedule_with`, where a value `v` for which `recompute(v, loads)` holds
/// may also be inlined into several users (computed again in each; `loads`:
/// how many buffers of its size that reads, up to `MAX_RECOMPUTE_LOADS + 1`).
fn schedule_inner(
    func: &Func,
    fusible: &dyn Fn(usize) -> bool,
    recompute: &dyn Fn(usize, usize) -> bool,
    wide_roots: Vec<bool>,
) -> Schedule {
    let users = users(func);
    let n = func.insts.len();
    let mut inlined = vec![false; n];
    // `loads[v]`: the buffers of `v`'s own size that evaluating `v` in a
    // loop reads (itself if it has a buffer), at most `MAX_RECOMPUTE_LOADS
    // + 1` of them. Operands come first, so their decisions are known.
    let mut loads: Vec<Vec<usize>> = vec![Vec::new(); n];
    for index in 0..n {
        let inst = &func.insts[index];
        if !wide_roots[index] && may_inline(func, &users, index, fusible) {
            // A broadcast's operand is never inlined (unless a constant), so
            // re-evaluating a broadcast is one strided load.
            let cheap = matches!(inst.op, Op::Constant(_) | Op::Broadcast { .. });
            let mut reads: Vec<usize> = Vec::new();
            for arg in &inst.args {
                let a = arg.index();
                if func.insts[a].ty.shape.num_elements() != inst.ty.shape.num_elements() {
                    continue;
                }
                for &leaf in &loads[a] {
                    if !reads.contains(&leaf) && reads.len() <= MAX_RECOMPUTE_LOADS {
                        reads.push(leaf);
                    }
                }
            }
            inlined[index] = cheap || users[index].len() == 1 || recompute(index, reads.len());
            if inlined[index] {
                loads[index] = reads;
                continue;
            }
        }
        loads[index] = vec![index];
    }
    with_inlined(func, &users, fusible, inlined, wide_roots)
}

/// A cheap value used by several loops is computed again in each only when
/// that reads at most this many buffers of its size: recomputing a chain of
/// residual additions (`x + a + b`, each used by a layer norm's reductions
/// and its backward) would read every term again in every user.
const MAX_RECOMPUTE_LOADS: usize = 1;

/// Each value's users (instruction indices, one per use, in order).
pub(crate) fn users(func: &Func) -> Vec<Vec<usize>> {
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); func.insts.len()];
    for (index, inst) in func.insts.iter().enumerate() {
        for arg in &inst.args {
            users[arg.index()].push(index);
        }
    }
    users
}

/// Whether value `index` may be inlined at all (every rule of the module
/// doc but the use count): fusible, used, not an output, every user
/// evaluates its operands, and only a constant feeds a `Broadcast`.
pub(crate) fn may_inline(func: &Func, users: &[Vec<usize>], index: usize, fusible: &dyn Fn(usize) -> bool) -> bool {
    if !fusible(index) || users[index].is_empty() || func.outputs.iter().any(|o| o.index() == index) {
        return false;
    }
    let is_constant = matches!(func.insts[index].op, Op::Constant(_));
    users[index].iter().all(|&user| {
        evaluates_operands(func, user, fusible) && (is_constant || !matches!(func.insts[user].op, Op::Broadcast { .. }))
    })
}

/// The schedule whose inlined values are `inlined` (each allowed by
/// `may_inline`, none a wide root): the hosted values follow from them.
/// `users` is `users(func)`.
pub(crate) fn with_inlined(
    func: &Func,
    users: &[Vec<usize>],
    fusible: &dyn Fn(usize) -> bool,
    inlined: Vec<bool>,
    wide_roots: Vec<bool>,
) -> Schedule {
    let n = func.insts.len();
    let (hosted, guests) = host(func, users, &inlined, &wide_roots, fusible);
    Schedule {
        inlined,
        hosted,
        guests,
        siblings: vec![Vec::new(); n],
        inline_math: false,
        wide_math: false,
        wide_loops: false,
        wide_roots,
        tiled: vec![None; n],
        strided: vec![false; n],
    }
}

/// Whether `perm` swaps the last two dims and keeps the others.
pub(super) fn swaps_last_two(perm: &[usize]) -> bool {
    let r = perm.len();
    r >= 2 && perm[r - 2] == r - 1 && perm[r - 1] == r - 2 && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
}

/// The transposes a GEMM or a conv routine can read in their operand's
/// order (see `Schedule::strided`): not outputs, and either they swap the
/// last two dims and every user is a `MatMul` or `BatchMatMul`, or they swap
/// the first two dims of a 4-D array and every user is a `Conv2d` with one
/// group both of whose operands are such transposes (a weight gradient as
/// autodiff writes it: images and channels swapped on both sides; the conv
/// routine reads both in their stored order, see `conv.rs`).
fn strided_transposes(func: &Func) -> Vec<bool> {
    let n = func.insts.len();
    let swaps_first_two = |v: usize| matches!(&func.insts[v].op, Op::Transpose { perm } if perm == &[1, 0, 2, 3]);
    let mut strided: Vec<bool> = func
        .insts
        .iter()
        .enumerate()
        .map(|(v, inst)| matches!(&inst.op, Op::Transpose { perm } if swaps_last_two(perm)) || swaps_first_two(v))
        .collect();
    let mut used = vec![false; n];
    for inst in &func.insts {
        for arg in &inst.args {
            used[arg.index()] = true;
            let v = arg.index();
            let read_in_order = if swaps_first_two(v) {
                matches!(&inst.op, Op::Conv2d(c) if c.groups == 1)
            } else {
                matches!(inst.op, Op::MatMul | Op::BatchMatMul)
            };
            if !read_in_order {
                strided[v] = false;
            }
        }
    }
    for out in &func.outputs {
        strided[out.index()] = false;
    }
    // A conv reads both operands swapped or neither: drop the views whose
    // conv has the other operand materialized, until none changes.
    loop {
        let mut changed = false;
        for inst in &func.insts {
            if let Op::Conv2d(_) = inst.op {
                let (l, r) = (inst.args[0].index(), inst.args[1].index());
                if strided[l] != strided[r] && (swaps_first_two(l) || swaps_first_two(r)) {
                    for v in [l, r] {
                        changed |= std::mem::replace(&mut strided[v], false);
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..n).map(|v| strided[v] && used[v]).collect()
}

/// Whether `Conv2d` `index` reads both operands as views of transposes that
/// swap their first two dims (`Schedule::strided`): the lhs buffer holds
/// `[channels, images, h, w]`, the kernel buffer `[in, out, kh, kw]`.
pub(super) fn swapped_conv_operands(func: &Func, sched: &Schedule, index: usize) -> bool {
    let args = &func.insts[index].args;
    sched.strided[args[0].index()] && sched.strided[args[1].index()]
}

/// `func`'s text with each instruction tagged by how it runs (`inlined`,
/// `hosted by %r`, `tiled into %r`, a `view`, or `loop`), its siblings and
/// guests: with `JLC_SCHEDULE_DUMP=FILE`, profiles of JIT chunks
/// (`jl_chunkN`) map back to loops.
pub(super) fn annotated(func: &Func, sched: &Schedule) -> String {
    let mut out = String::new();
    for line in crate::ir::text::print(func).lines() {
        out.push_str(line);
        // Top-level instructions only (a scan's body is indented further).
        let value = line.strip_prefix("  %").and_then(|rest| rest.split(' ').next()?.parse::<usize>().ok());
        if let Some(v) = value.filter(|&v| v < func.insts.len()) {
            let how = if sched.inlined[v] {
                "inlined".to_string()
            } else if let Some(r) = sched.tiled[v] {
                format!("tiled into %{r}")
            } else if let Some(r) = sched.hosted[v] {
                format!("hosted by %{r}")
            } else if sched.strided[v] {
                "view".to_string()
            } else {
                "loop".to_string()
            };
            out.push_str(&format!("    # {how}"));
            if !sched.siblings[v].is_empty() {
                out.push_str(&format!(" siblings={:?}", sched.siblings[v]));
            }
            if !sched.guests[v].is_empty() {
                out.push_str(&format!(" guests={:?}", sched.guests[v]));
            }
        }
        out.push('\n');
    }
    out
}

impl Schedule {
    /// Whether `node` is evaluated inside the fused loop of `root` (inlined
    /// into it or hosted by it) rather than read from its buffer.
    pub(crate) fn evaluated_in(&self, node: usize, root: usize) -> bool {
        self.inlined[node] || self.hosted[node] == Some(root)
    }

    /// Whether `value` has no code of its own (inlined, hosted, or a
    /// strided view).
    pub(crate) fn emitted_elsewhere(&self, value: usize) -> bool {
        self.inlined[value] || self.hosted[value].is_some() || self.strided[value]
    }
}

/// Decides the hosted values (see the module doc), users before operands.
fn host(
    func: &Func,
    users: &[Vec<usize>],
    inlined: &[bool],
    wide_roots: &[bool],
    fusible: &dyn Fn(usize) -> bool,
) -> (Vec<Option<usize>>, Vec<Vec<usize>>) {
    let n = func.insts.len();
    // loop_of[v]: the root of the fused elementwise loop that evaluates v,
    // None when v is not evaluated by exactly one such loop.
    let mut loop_of: Vec<Option<usize>> = vec![None; n];
    let mut hosted: Vec<Option<usize>> = vec![None; n];
    let elementwise_root =
        |index: usize| fusible(index) && !matches!(func.insts[index].op, Op::Constant(_) | Op::Broadcast { .. });
    for index in (0..n).rev() {
        if inlined[index] {
            loop_of[index] = match users[index].as_slice() {
                [user] => loop_of[*user],
                _ => None,
            };
            continue;
        }
        if !elementwise_root(index) || users[index].is_empty() || wide_roots[index] {
            loop_of[index] = elementwise_root(index).then_some(index);
            continue;
        }
        let user_loops: Option<Vec<usize>> =
            users[index].iter().map(|&user| if elementwise_root(user) { loop_of[user] } else { None }).collect();
        match user_loops.and_then(|loops| loops.into_iter().min()) {
            Some(first) => {
                hosted[index] = Some(first);
                loop_of[index] = Some(first);
            }
            None => loop_of[index] = Some(index),
        }
    }
    let mut guests = vec![Vec::new(); n];
    for (index, host) in hosted.iter().enumerate() {
        if let Some(root) = host {
            guests[*root].push(index);
        }
    }
    (hosted, guests)
}

fn is_constant_inst(func: &Func, index: usize) -> bool {
    matches!(func.insts[index].op, Op::Constant(_))
}

/// A materialized value read by a fused loop, with its element strides over
/// the loop's iteration shape (0 on broadcast dims).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Leaf {
    pub(super) value: usize,
    pub(super) strides: Vec<i64>,
}

/// The materialized values the tree rooted at `root` reads (the root itself
/// is evaluated, whatever its schedule), each once, in first-visit order.
/// The iteration shape is `root`'s shape.
pub(super) fn leaves(func: &Func, sched: &Schedule, root: usize) -> Vec<Leaf> {
    let strides: Vec<i64> = func.insts[root].ty.shape.strides().iter().map(|&s| s as i64).collect();
    let mut res = Vec::new();
    visit(func, sched, root, root, &strides, &mut res);
    res
}

/// The materialized values reduction `r`'s loop reads: its source's tree's
/// leaves (or the source buffer), then its siblings', each once. The
/// iteration shape is the source's.
pub(super) fn reduction_leaves(func: &Func, sched: &Schedule, r: usize) -> Vec<Leaf> {
    let src = func.insts[r].args[0].index();
    let strides: Vec<i64> = func.insts[src].ty.shape.strides().iter().map(|&s| s as i64).collect();
    let mut res = Vec::new();
    if sched.evaluated_in(src, r) {
        visit(func, sched, r, src, &strides, &mut res);
    } else {
        res.push(Leaf { value: src, strides: strides.clone() });
    }
    for &sibling in &sched.siblings[r] {
        visit(func, sched, r, sibling, &strides, &mut res);
    }
    res
}

/// Adds the leaves of `node`'s tree, evaluated in the loop of `root`.
fn visit(func: &Func, sched: &Schedule, root: usize, node: usize, strides: &[i64], res: &mut Vec<Leaf>) {
    let inst = &func.insts[node];
    match &inst.op {
        Op::Constant(_) => {}
        Op::Broadcast { dims } => {
            let src = inst.args[0].index();
            if is_constant_inst(func, src) {
                return;
            }
            push_leaf(res, Leaf { value: src, strides: broadcast_strides(func, node, dims) });
        }
        _ => {
            let n_args = if const_pow_exponent(func, node).is_some() { 1 } else { inst.args.len() };
            for arg in &inst.args[..n_args] {
                let arg = arg.index();
                if sched.evaluated_in(arg, root) {
                    visit(func, sched, root, arg, strides, res);
                } else {
                    push_leaf(res, Leaf { value: arg, strides: strides.to_vec() });
                }
            }
        }
    }
}

fn push_leaf(res: &mut Vec<Leaf>, leaf: Leaf) {
    if !res.contains(&leaf) {
        res.push(leaf);
    }
}

/// Element strides of `Broadcast` `index`'s operand over the result's dims:
/// result dim `dims[i]` walks operand dim `i`; size-1 operand dims and new
/// dims have stride 0.
pub(super) fn broadcast_strides(func: &Func, index: usize, dims: &[usize]) -> Vec<i64> {
    let inst = &func.insts[index];
    let src_ty = func.ty(inst.args[0]);
    let src_strides = src_ty.shape.strides();
    let mut strides = vec![0i64; inst.ty.shape.rank()];
    for (i, &d) in dims.iter().enumerate() {
        if src_ty.shape.0[i] != 1 {
            strides[d] = src_strides[i] as i64;
        }
    }
    strides
}

/// The values whose buffers instruction `index` reads when it runs (its
/// fused tree's leaves, or its operands); empty for inlined values and views.
pub(super) fn reads(func: &Func, sched: &Schedule, index: usize) -> Vec<usize> {
    let inst = &func.insts[index];
    if sched.emitted_elsewhere(index) || sched.tiled[index].is_some() {
        return Vec::new();
    }
    if fusible(func, index, sched.inline_math) {
        return leaves(func, sched, index).into_iter().map(|leaf| leaf.value).collect();
    }
    match &inst.op {
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } => {
            let mut read: Vec<usize> =
                reduction_leaves(func, sched, index).into_iter().map(|leaf| leaf.value).collect();
            // A tiled wide root runs inside this loop and reads its leaves here.
            for a in (0..func.insts.len()).filter(|&a| sched.tiled[a] == Some(index)) {
                read.extend(leaves(func, sched, a).into_iter().map(|leaf| leaf.value));
            }
            read
        }
        _ => inst.args.iter().map(|a| a.index()).collect(),
    }
}

/// Whether the buffer of value `v` is written before the kernel (loop) of
/// instruction `at` runs: a parameter, or a value (through its views)
/// whose kernel, or host's kernel, comes earlier.
pub(crate) fn written_before(func: &Func, sched: &Schedule, v: usize, at: usize) -> bool {
    let mut v = v;
    loop {
        let inst = &func.insts[v];
        match inst.op {
            Op::Param(_) => return true,
            Op::Reshape | Op::StopGradient => v = inst.args[0].index(),
            Op::Convert if func.ty(inst.args[0]).dtype == inst.ty.dtype => v = inst.args[0].index(),
            _ => return sched.hosted[v].unwrap_or(v) < at,
        }
    }
}
