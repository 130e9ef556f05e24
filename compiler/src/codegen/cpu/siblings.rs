//! Horizontal fusion on the CPU: a reduction's loop also evaluates and
//! stores the elementwise roots of its source's shape, and a value whose
//! every use lands in one loop is computed there instead of stored.
//!
//! Consumes the `Schedule` of `schedule.rs` (before `plan.rs` places
//! buffers); changes it in place:
//! 1. *Siblings.* A later fusion root `s` of exactly the shape and dtype of
//!    reduction `r`'s source becomes hosted by `r` (`Schedule::siblings`,
//!    `hosted[s] = r`, with the values `s` hosted): `r`'s loop, which visits
//!    every source element once in row-major order, evaluates `s`'s tree
//!    at each element and stores it. When: `r` is a float `ReduceSum` or
//!    `ReduceMax` whose loop runs vectors (a contiguous reduced run, or a
//!    kept innermost dim as vectors of outputs), the
//!    merged loop still does, and everything `s`'s tree reads is written
//!    before `r` runs. Nothing between `r` and `s` reads `s`'s outputs: their
//!    users come after `s`.
//!    Before its siblings, `r` may also adopt its own source when that is
//!    an elementwise root with a buffer (other loops or calls read it) and
//!    a cheap tree (`adopt_source`): `r`'s loop evaluates and stores it
//!    (a bias gradient's `sum(g, axis = 0)` stores the `g` its matrix
//!    products read; a layer norm's mean stores the residual sum).
//! 2. *One-loop values.* A materialized fusible value whose uses are all
//!    evaluated in one loop (after step 1, a loss and its gradient share
//!    W4's tanh) is inlined: the loop's trees share it (`emit::Tree`
//!    memoizes), so it is computed once per element and never stored.
//!    When: it may be inlined at all (`schedule::may_inline`), what it reads
//!    is written before that loop runs, and the loop keeps its vector width.
//!
//! Why: a loss and its gradient read the same inputs. W4's step
//! (`sum(gelu(x·w + b)^2)` and its gradient) was a tanh pass over `x, w,
//! b`, a reduction pass over them and the tanh, and a gradient pass over
//! them again; merged, it is one pass that reads `x, w, b` once and
//! evaluates the tanh once. Results are unchanged, bitwise: every value is
//! the same scalar ops per element as in its own loop.
//!
//! The PTX backend does the same for its parallel reductions
//! (`ptx/siblings.rs`, after `ptx/recompute.rs`).

use super::emit;
use super::schedule::{self, Schedule};
use crate::ir::{Func, Op};

/// Applies both steps of the module doc to `sched`.
pub(super) fn fuse(func: &Func, sched: &mut Schedule, fusible: &dyn Fn(usize) -> bool) {
    let n = func.insts.len();
    let users = schedule::users(func);
    for r in 0..n {
        if fusable_reduction(func, sched, r) {
            adopt_source(func, sched, &users, fusible, r);
            adopt_siblings(func, sched, fusible, r);
        }
    }
    inline_one_loop_values(func, sched, fusible);
}

/// Whether reduction `r` may host siblings: a float sum or max with a
/// nonempty source, whose loop runs vectors.
fn fusable_reduction(func: &Func, sched: &Schedule, r: usize) -> bool {
    let inst = &func.insts[r];
    if !matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. }) || sched.inlined[r] {
        return false;
    }
    let src = func.ty(inst.args[0]);
    src.dtype.is_float() && src.shape.num_elements() > 0 && emit::reduction_lanes(func, sched, r) > 1
}

/// Step 1 for reduction `r`, first: its source, when that is an
/// elementwise root with a buffer of its own (other users read it: the
/// matrix products of a bias gradient's `sum(g, axis = 0)`, the later
/// loops of a layer norm's residual sum) whose every other user comes
/// after `r`: `r`'s loop evaluates it and stores it on the way, one pass
/// over its inputs instead of a pass that writes it and one that reads it.
fn adopt_source(func: &Func, sched: &mut Schedule, users: &[Vec<usize>], fusible: &dyn Fn(usize) -> bool, r: usize) {
    let v = func.insts[r].args[0].index();
    let root = fusible(v)
        && !sched.wide_roots[v]
        && !sched.inlined[v]
        && sched.hosted[v].is_none()
        && sched.guests[v].is_empty()
        && !matches!(func.insts[v].op, Op::Constant(_) | Op::Broadcast { .. });
    if !root || func.outputs.iter().any(|o| o.index() == v) {
        return;
    }
    // Every other loop that reads `v` runs after `r` has stored it.
    let reading_loops: Vec<usize> =
        users[v].iter().filter(|&&u| u != r).flat_map(|&u| schedule::loops_evaluating(sched, users, u)).collect();
    let ready = |leaf: &schedule::Leaf| schedule::written_before(func, sched, leaf.value, r);
    if reading_loops.iter().any(|&l| l <= r) || !schedule::leaves(func, sched, v).iter().all(ready) {
        return;
    }
    let before = emit::reduction_lanes(func, sched, r);
    sched.hosted[v] = Some(r);
    sched.guests[r].insert(0, v);
    // A cheap tree only: a reduction's rows are interleaved only then, and
    // an exp computed in the serial reduction loop measured slower than
    // its own vector loop (a softmax's exp and sum: W3 3% slower).
    let light = emit::tree_cost(func, sched, r, &[v]) <= emit::MAX_INTERLEAVED_COST;
    if light && emit::reduction_lanes(func, sched, r) >= before.max(2) {
        return;
    }
    sched.guests[r].remove(0);
    sched.hosted[v] = None;
}

/// Step 1 for reduction `r`: takes every later root that qualifies.
fn adopt_siblings(func: &Func, sched: &mut Schedule, fusible: &dyn Fn(usize) -> bool, r: usize) {
    let src_ty = func.ty(func.insts[r].args[0]).clone();
    for s in r + 1..func.insts.len() {
        let inst = &func.insts[s];
        let root = fusible(s)
            && !sched.wide_roots[s]
            && !sched.inlined[s]
            && sched.hosted[s].is_none()
            && !matches!(inst.op, Op::Constant(_) | Op::Broadcast { .. });
        if !root || inst.ty != src_ty || sched.guests[s].iter().any(|&g| func.insts[g].ty.dtype != src_ty.dtype) {
            continue;
        }
        // Written before `r` runs, or stored by `r`'s loop itself (an earlier
        // sibling: evaluated again from the shared registers).
        let ready = |v: usize| schedule::written_before(func, sched, v, r) || sched.hosted[v] == Some(r);
        if !schedule::leaves(func, sched, s).iter().all(|leaf| ready(leaf.value)) {
            continue;
        }
        let moved = std::mem::take(&mut sched.guests[s]);
        for &v in std::iter::once(&s).chain(&moved) {
            sched.hosted[v] = Some(r);
        }
        let at = sched.guests[r].len();
        sched.guests[r].push(s);
        sched.guests[r].extend(moved.iter().copied());
        sched.siblings[r].push(s);
        if emit::reduction_lanes(func, sched, r) > 1 {
            continue;
        }
        // The merged loop would run scalar: undo.
        sched.siblings[r].pop();
        sched.guests[r].truncate(at);
        sched.hosted[s] = None;
        for &v in &moved {
            sched.hosted[v] = Some(s);
        }
        sched.guests[s] = moved;
    }
}

/// Where a value is evaluated: in no loop yet, in exactly one, or in several.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loops {
    None,
    One(usize),
    Many,
}

impl Loops {
    fn join(self, other: Loops) -> Loops {
        match (self, other) {
            (Loops::None, x) | (x, Loops::None) => x,
            (Loops::One(a), Loops::One(b)) if a == b => Loops::One(a),
            _ => Loops::Many,
        }
    }
}

/// Step 2: users before operands, so each value sees its users' final loops.
fn inline_one_loop_values(func: &Func, sched: &mut Schedule, fusible: &dyn Fn(usize) -> bool) {
    let n = func.insts.len();
    let users = schedule::users(func);
    let is_sibling: Vec<bool> = {
        let mut v = vec![false; n];
        for &s in sched.siblings.iter().flatten() {
            v[s] = true;
        }
        v
    };
    let mut loops = vec![Loops::None; n];
    for v in (0..n).rev() {
        let used_in = users[v].iter().fold(Loops::None, |acc, &u| {
            let of_user = if sched.inlined[u] { loops[u] } else { Loops::One(sched.hosted[u].unwrap_or(u)) };
            acc.join(of_user)
        });
        if sched.inlined[v] {
            loops[v] = used_in;
            continue;
        }
        loops[v] = Loops::One(sched.hosted[v].unwrap_or(v));
        let Loops::One(home) = used_in else { continue };
        // A root that hosts values keeps its loop (they are stored there).
        let candidate = users[v].len() > 1
            && !is_sibling[v]
            && !sched.wide_roots[v]
            && sched.guests[v].is_empty()
            && schedule::may_inline(func, &users, v, fusible);
        if candidate && try_inline(func, sched, v, home) {
            loops[v] = used_in;
        }
    }
}

/// Inlines value `v` into loop `home` (the only loop that uses it) if what
/// it reads is written before `home` runs and `home` keeps its vector
/// width; reports whether it did.
fn try_inline(func: &Func, sched: &mut Schedule, v: usize, home: usize) -> bool {
    let lanes = |sched: &Schedule| {
        if sched.siblings[home].is_empty() && !is_reduction(func, home) {
            emit::fused_lanes(func, sched, home)
        } else {
            emit::reduction_lanes(func, sched, home)
        }
    };
    let before = lanes(sched);
    let host = sched.hosted[v];
    sched.inlined[v] = true;
    sched.hosted[v] = None;
    if let Some(h) = host {
        sched.guests[h].retain(|&g| g != v);
    }
    let reads_ready = schedule::leaves(func, sched, v)
        .iter()
        .all(|leaf| schedule::written_before(func, sched, leaf.value, home) || sched.hosted[leaf.value] == Some(home));
    if reads_ready && lanes(sched) >= before {
        return true;
    }
    sched.inlined[v] = false;
    sched.hosted[v] = host;
    if let Some(h) = host {
        sched.guests[h].push(v);
        sched.guests[h].sort_unstable();
    }
    false
}

fn is_reduction(func: &Func, index: usize) -> bool {
    matches!(func.insts[index].op, Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. })
}
