//! Recomputation instead of materialization in the GPU's fusion schedule.
//!
//! Consumes the shared scheduler's result (`cpu/schedule.rs`), which gives
//! a buffer to every fusible value with several users (on the CPU, where
//! arithmetic is the scarce resource, that is the right default); produces
//! a schedule where such values are instead evaluated again inside each
//! user's kernel whenever that does not raise the program's memory traffic.
//!
//! Why: the GPU's fused kernels are bound by memory, not arithmetic. A
//! materialized intermediate costs a store and a load in every kernel that
//! reads it; recomputed, it costs the loads of its own leaves, which the
//! user kernels often read anyway. In W4's gradient (`gelu(x·w + b)`), the
//! forward kernel stored six intermediates (`x·w + b`, its square, the
//! tanh, ...) for the backward kernel to read back: 9 passes over the data
//! where 5 suffice.
//!
//! How: values are tried one at a time in definition order (operands before
//! users, so a value's operands are decided when it is); a value is inlined
//! when the modelled traffic (`Cost`: per kernel, the bytes of each distinct
//! buffer it loads plus the bytes it stores) does not grow and no kernel's
//! arithmetic passes `MAX_KERNEL_OPS` (the PTX the driver must JIT, and the
//! registers a thread needs, grow with it). Only kernels that evaluate trees
//! (fusion roots and reductions) are modelled: every other kernel reads
//! materialized operands, which no decision here changes.
//!
//! Results do not change: an inlined value runs the same scalar ops in its
//! user's kernel as in its own, so fused output stays bitwise the unfused
//! (`fusion/tests.rs`).

use crate::codegen::cpu::schedule::{self, Schedule};
use crate::ir::{Func, Op};

/// The most weighted operations (`op_weight`) one kernel's tree may
/// evaluate per element once values are recomputed in it.
const MAX_KERNEL_OPS: u64 = 1024;

/// The modelled cost of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cost {
    /// Bytes loaded (each distinct buffer once per kernel) and stored.
    traffic: u64,
    /// The largest weighted op count of one kernel's tree.
    max_kernel_ops: u64,
}

/// `sched` with every multi-use value that is cheaper to recompute than to
/// store and load inlined into its users (see the module doc).
pub(super) fn improve(func: &Func, sched: Schedule, fusible: &dyn Fn(usize) -> bool) -> Schedule {
    let users = schedule::users(func);
    let mut best = cost(func, &sched, fusible);
    let mut sched = sched;
    for value in 0..func.insts.len() {
        if sched.inlined[value] || !schedule::may_inline(func, &users, value, fusible) {
            continue;
        }
        let mut inlined = sched.inlined.clone();
        inlined[value] = true;
        let trial = schedule::with_inlined(func, &users, fusible, inlined, vec![false; func.insts.len()]);
        let trial_cost = cost(func, &trial, fusible);
        let ops_ok = trial_cost.max_kernel_ops <= MAX_KERNEL_OPS.max(best.max_kernel_ops);
        if trial_cost.traffic <= best.traffic && ops_ok {
            sched = trial;
            best = trial_cost;
        }
    }
    sched
}

/// Arithmetic weight of one evaluation of `op`: the software
/// transcendentals of `math.rs` run tens of f64 instructions.
fn op_weight(op: &Op) -> u64 {
    match op {
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic | Op::Pow => 64,
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => 64,
        Op::Div | Op::Sqrt | Op::Rsqrt => 8,
        _ => 1,
    }
}

fn cost(func: &Func, sched: &Schedule, fusible: &dyn Fn(usize) -> bool) -> Cost {
    let bytes = |v: usize| (func.insts[v].ty.shape.num_elements() * func.insts[v].ty.dtype.size_bytes()) as u64;
    let mut walk = Walk { func, sched, visited: vec![usize::MAX; func.insts.len()], loaded: Vec::new(), ops: 0 };
    let mut total = Cost { traffic: 0, max_kernel_ops: 0 };
    for (index, inst) in func.insts.iter().enumerate() {
        if sched.inlined[index] || sched.hosted[index].is_some() {
            continue;
        }
        // The tree the kernel evaluates: (its root, whether the root is
        // evaluated rather than loaded).
        let tree = match inst.op {
            _ if fusible(index) => (index, true),
            Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::ArgMax { .. } => {
                let operand = inst.args[0].index();
                (operand, sched.inlined[operand])
            }
            _ => continue,
        };
        walk.loaded.clear();
        walk.ops = 0;
        walk.node(index, tree.0, tree.0, tree.1);
        let stored = bytes(index) + sched.guests[index].iter().map(|&g| bytes(g)).sum::<u64>();
        total.traffic += stored + walk.loaded.iter().map(|&v| bytes(v)).sum::<u64>();
        total.max_kernel_ops = total.max_kernel_ops.max(walk.ops);
    }
    total
}

/// The materialized values the tree of `root` (evaluated when
/// `evaluate_root`, else loaded) loads, as its kernel would.
pub(super) fn loads(func: &Func, sched: &Schedule, root: usize, evaluate_root: bool) -> Vec<usize> {
    let mut walk = Walk { func, sched, visited: vec![usize::MAX; func.insts.len()], loaded: Vec::new(), ops: 0 };
    walk.node(0, root, root, evaluate_root);
    walk.loaded
}

/// One kernel's tree walk (as `fusion::Tree::visit`): the distinct buffers
/// it loads and its weighted op count.
struct Walk<'a> {
    func: &'a Func,
    sched: &'a Schedule,
    /// `visited[v] == kernel`: `v` was already walked for this kernel.
    visited: Vec<usize>,
    loaded: Vec<usize>,
    ops: u64,
}

impl Walk<'_> {
    fn node(&mut self, kernel: usize, root: usize, node: usize, evaluate_root: bool) {
        if self.visited[node] == kernel {
            return;
        }
        self.visited[node] = kernel;
        let inst = &self.func.insts[node];
        let evaluated = if node == root { evaluate_root } else { self.sched.evaluated_in(node, root) };
        match inst.op {
            Op::Constant(_) => {}
            _ if !evaluated => self.load(node),
            Op::Broadcast { .. } => {
                let src = inst.args[0].index();
                if !matches!(self.func.insts[src].op, Op::Constant(_)) {
                    self.load(src);
                }
            }
            Op::Iota { .. } => self.ops += 1,
            _ => {
                self.ops += op_weight(&inst.op);
                for arg in &inst.args {
                    self.node(kernel, root, arg.index(), evaluate_root);
                }
            }
        }
    }

    fn load(&mut self, value: usize) {
        if !self.loaded.contains(&value) {
            self.loaded.push(value);
        }
    }
}
