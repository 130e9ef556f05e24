//! Kernel fusion for the PTX backend: which values live only in registers,
//! and the kernels that evaluate a whole fusion group per element.
//!
//! Consumes a verified `ir::Func`; produces its `Schedule` (the CPU
//! backend's scheduler, `cpu/schedule.rs`, run with this backend's notion
//! of fusible) and, per fusion root, ONE grid-stride kernel: each thread
//! evaluates the tree of inlined producers below the root in registers
//! (the same `scalar_op`, `convert` and `constant` code as an unfused
//! kernel, so results are bitwise those of one kernel per instruction),
//! stores the root, and stores the root's hosted guests on the way
//! (multi-output fusion: Adam's new moments are written by the update's
//! kernel that reads them anyway). A reduction evaluates its operand's tree
//! per source element through `Tree::eval` (see `ptx::reduce`).
//!
//! Fusible here (more than on the CPU, which has host routines per array):
//! every elementwise op this backend emits, exp, log, tanh, logistic and
//! pow (any exponent) included, plus `Constant`, `Broadcast` and `Iota`.
//! Inside a tree a `Constant` (materialized or not) is an immediate and a
//! `Broadcast` of a materialized value a strided load.
//!
//! Kernel parameters: the root's buffer, its guests' buffers, then each
//! distinct buffer the tree reads (its leaves), in first-visit order.

use std::collections::HashMap;

use super::builder::{Class, Kernel};
use super::{constant, load, mapped_index, scalar_op, store, vector_load, vector_store};
use crate::codegen::cpu::schedule::{self, Schedule};
use crate::ir::{DType, Func, Op};

/// Whether instruction `index` can be evaluated per element inside a fused
/// kernel (its value at flat index `i` depends only on its operands at
/// index `i`, or is a constant, an index function, or a strided load).
pub(super) fn fusible(func: &Func, index: usize) -> bool {
    let inst = &func.insts[index];
    match &inst.op {
        Op::Neg | Op::Sqrt | Op::Rsqrt | Op::Abs | Op::Sign => true,
        Op::Floor | Op::Ceil | Op::Round => true,
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic | Op::Pow => true,
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => true,
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => true,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select => true,
        Op::Constant(_) | Op::Broadcast { .. } | Op::Iota { .. } => true,
        // A same-dtype convert is a view (it aliases its operand).
        Op::Convert => func.ty(inst.args[0]).dtype != inst.ty.dtype,
        // Rejected by `emit` (no PTX rules yet).
        Op::Scan(_) | Op::CustomVjp(_) => false,
        Op::Param(_) | Op::Reshape | Op::StopGradient | Op::Transpose { .. } | Op::Reverse { .. } => false,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::ArgMax { .. } => false,
        Op::MatMul | Op::BatchMatMul | Op::Gather | Op::ScatterAdd => false,
        Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => false,
        Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) | Op::SelectAndScatter(_) => false,
    }
}

/// The schedule `emit` uses: fused (with multi-use values recomputed
/// where that saves memory traffic, `ptx/recompute.rs`), or (`fuse == false`) every value
/// materialized, one kernel per instruction (the reference the fusion
/// tests compare against bitwise).
pub(super) fn schedule(func: &Func, fuse: bool) -> Schedule {
    if fuse {
        let fusible = |index| fusible(func, index);
        super::recompute::improve(func, schedule::schedule_with(func, &fusible), &fusible)
    } else {
        schedule::schedule_with(func, &|_| false)
    }
}

/// A materialized value a tree reads, with its element strides over the
/// tree's iteration shape (0 on broadcast dims).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Leaf {
    value: usize,
    strides: Vec<usize>,
}

/// The fusion group rooted at `root`, ready to evaluate at one flat index
/// of `root`'s shape.
pub(super) struct Tree<'t> {
    func: &'t Func,
    sched: &'t Schedule,
    root: usize,
    /// False when `root` is a materialized value read as the only leaf (a
    /// reduction over a buffer).
    evaluate_root: bool,
    leaves: Vec<Leaf>,
    /// The buffer of each leaf value (`value_buffers`).
    leaf_buffers: Vec<usize>,
    /// The distinct buffers the tree reads, in first-visit order: the
    /// kernel parameters `eval`'s `ins` point at.
    pub(super) buffers: Vec<usize>,
    /// Values hosted by this tree's kernel, stored when evaluated through
    /// `eval`'s `outs`.
    guests: Vec<usize>,
    /// Fusion roots of `root`'s shape evaluated (sharing registers with
    /// the root's tree) and stored at each index `eval` visits, after the
    /// guests in `outs` (`ptx/siblings.rs`); their guests are in `guests`.
    siblings: Vec<usize>,
}

impl<'t> Tree<'t> {
    /// The tree of `root` (evaluated when `evaluate_root`, else read from
    /// its buffer) with the guests `guests`.
    pub(super) fn new(
        func: &'t Func,
        sched: &'t Schedule,
        root: usize,
        evaluate_root: bool,
        guests: Vec<usize>,
        value_buffers: &[Option<usize>],
    ) -> Tree<'t> {
        Tree::with_siblings(func, sched, root, evaluate_root, guests, Vec::new(), value_buffers)
    }

    /// The tree of `root` with the guests `guests`, which also evaluates
    /// and stores the fusion roots `siblings` (of `root`'s dims) and
    /// their guests at each index.
    pub(super) fn with_siblings(
        func: &'t Func,
        sched: &'t Schedule,
        root: usize,
        evaluate_root: bool,
        mut guests: Vec<usize>,
        siblings: Vec<usize>,
        value_buffers: &[Option<usize>],
    ) -> Tree<'t> {
        for &s in &siblings {
            assert_eq!(func.insts[s].ty.shape, func.insts[root].ty.shape, "siblings share the root's dims");
            guests.extend(&sched.guests[s]);
        }
        let mut tree = Tree {
            func,
            sched,
            root,
            evaluate_root,
            leaves: Vec::new(),
            leaf_buffers: Vec::new(),
            buffers: Vec::new(),
            guests,
            siblings,
        };
        let strides = func.insts[root].ty.shape.strides();
        let mut leaves = Vec::new();
        tree.visit(root, &strides, &mut leaves);
        for &s in &tree.siblings {
            tree.visit(s, &strides, &mut leaves);
        }
        for leaf in &leaves {
            let buffer = value_buffers[leaf.value].expect("a tree's leaves are materialized");
            tree.leaf_buffers.push(buffer);
            if !tree.buffers.contains(&buffer) {
                tree.buffers.push(buffer);
            }
        }
        tree.leaves = leaves;
        tree
    }

    fn evaluated(&self, node: usize) -> bool {
        if node == self.root {
            self.evaluate_root
        } else {
            self.sched.evaluated_in(node, self.root)
                || self.siblings.iter().any(|&s| node == s || self.sched.evaluated_in(node, s))
        }
    }

    /// The values `eval` stores through `outs`, in order: the guests, then
    /// the siblings.
    pub(super) fn outputs(&self) -> Vec<usize> {
        [self.guests.clone(), self.siblings.clone()].concat()
    }

    /// Collects the leaves `eval` loads, as `node` does.
    fn visit(&self, node: usize, strides: &[usize], leaves: &mut Vec<Leaf>) {
        let inst = &self.func.insts[node];
        if let Op::Constant(_) = inst.op {
            return;
        }
        let mut push = |leaf: Leaf| {
            if !leaves.contains(&leaf) {
                leaves.push(leaf);
            }
        };
        if !self.evaluated(node) {
            push(Leaf { value: node, strides: strides.to_vec() });
            return;
        }
        match &inst.op {
            Op::Broadcast { dims } => {
                let src = inst.args[0].index();
                if !matches!(self.func.insts[src].op, Op::Constant(_)) {
                    push(Leaf { value: src, strides: broadcast_strides(self.func, node, dims) });
                }
            }
            Op::Iota { .. } => {}
            _ => {
                for arg in &inst.args {
                    self.visit(arg.index(), strides, leaves);
                }
            }
        }
    }

    /// The tree's value at flat index `i` (a u64 register) of `root`'s
    /// shape; `ins[k]` points at `buffers[k]`, `outs[o]` at the buffer of
    /// `outputs()[o]` (guests stored on the way, siblings after the root).
    pub(super) fn eval(&self, k: &mut Kernel, i: &str, ins: &[String], outs: &[String]) -> String {
        self.eval_with(k, i, ins, outs, None)
    }

    /// Loads every leaf at flat index `i` (one register per leaf, in
    /// `leaves` order) for a later `eval_loaded` at the same `i`. An
    /// unrolled loop loads several elements' leaves before computing any,
    /// so a thread has several loads in flight, not one (`ptx/reduce.rs`).
    pub(super) fn load_leaves(&self, k: &mut Kernel, i: &str, ins: &[String]) -> Vec<String> {
        assert_eq!(ins.len(), self.buffers.len(), "one pointer per buffer the tree reads");
        (0..self.leaves.len()).map(|at| self.load_leaf_at(k, i, ins, at)).collect()
    }

    /// `eval` at `i` with the leaves `load_leaves` loaded at `i`: the same
    /// instructions, less the loads (so the same value, bit for bit).
    pub(super) fn eval_loaded(
        &self,
        k: &mut Kernel,
        i: &str,
        ins: &[String],
        outs: &[String],
        leaves: &[String],
    ) -> String {
        assert_eq!(leaves.len(), self.leaves.len(), "one register per leaf");
        self.eval_with(k, i, ins, outs, Some(leaves))
    }

    fn eval_with(&self, k: &mut Kernel, i: &str, ins: &[String], outs: &[String], loaded: Option<&[String]>) -> String {
        assert_eq!(outs.len(), self.guests.len() + self.siblings.len(), "one pointer per output");
        let mut at = Eval { i, ins, outs, loaded, memo: HashMap::new(), deferred: None };
        self.eval_at(k, &mut at)
    }

    /// `eval_loaded` that stores nothing: returns the root's value and the
    /// values of `outputs()`, in order, for the caller to store.
    pub(super) fn eval_loaded_unstored(
        &self,
        k: &mut Kernel,
        i: &str,
        ins: &[String],
        leaves: &[String],
    ) -> (String, Vec<String>) {
        assert_eq!(leaves.len(), self.leaves.len(), "one register per leaf");
        let n_outs = self.guests.len() + self.siblings.len();
        let mut at =
            Eval { i, ins, outs: &[], loaded: Some(leaves), memo: HashMap::new(), deferred: Some(vec![None; n_outs]) };
        let res = self.eval_at(k, &mut at);
        let outputs =
            at.deferred.expect("deferred").into_iter().map(|v| v.expect("every output is evaluated")).collect();
        (res, outputs)
    }

    fn eval_at(&self, k: &mut Kernel, at: &mut Eval) -> String {
        assert_eq!(at.ins.len(), self.buffers.len(), "one pointer per buffer the tree reads");
        let strides = self.func.insts[self.root].ty.shape.strides();
        let res = self.node(k, at, self.root, &strides);
        for (s, &sibling) in self.siblings.iter().enumerate() {
            let value = self.node(k, at, sibling, &strides);
            let slot = self.guests.len() + s;
            match at.deferred.as_mut() {
                Some(deferred) => deferred[slot] = Some(value),
                None => store(k, self.func.insts[sibling].ty.dtype, &at.outs[slot], at.i, &value),
            }
        }
        res
    }

    /// Loads every leaf at the four flat indices `is` (`is[0]` a multiple
    /// of 4): a 4-byte leaf read at the root's strides with one 16-byte
    /// vector load (`ld.global.v4`), others element by element. Per index,
    /// one register per leaf, as `load_leaves` gives.
    pub(super) fn load_leaves_x4(&self, k: &mut Kernel, is: &[String; 4], ins: &[String]) -> [Vec<String>; 4] {
        assert_eq!(ins.len(), self.buffers.len(), "one pointer per buffer the tree reads");
        let mut out: [Vec<String>; 4] = Default::default();
        let root_strides = self.func.insts[self.root].ty.shape.strides();
        for (leaf, Leaf { value, strides }) in self.leaves.iter().enumerate() {
            let dtype = self.func.insts[*value].ty.dtype;
            if *strides == root_strides && dtype.size_bytes() == 4 {
                let param = self.param_of(leaf);
                let regs = vector_load(k, dtype, &ins[param], &is[0]);
                for (u, r) in regs.into_iter().enumerate() {
                    out[u].push(r);
                }
            } else {
                for (u, i) in is.iter().enumerate() {
                    let r = self.load_leaf_at(k, i, ins, leaf);
                    out[u].push(r);
                }
            }
        }
        out
    }

    fn param_of(&self, leaf: usize) -> usize {
        self.buffers.iter().position(|&b| b == self.leaf_buffers[leaf]).expect("leaf buffers are listed")
    }

    fn node(&self, k: &mut Kernel, at: &mut Eval, node: usize, strides: &[usize]) -> String {
        let inst = &self.func.insts[node];
        if let Op::Constant(v) = inst.op {
            // What its kernel would have stored, as an immediate.
            return constant(k, inst.ty.dtype, v);
        }
        if let Some(r) = at.memo.get(&node) {
            return r.clone();
        }
        if !self.evaluated(node) {
            // Loaded once per element, however many users (`strides` is
            // always the root's here: broadcasts load their operand below).
            let r = self.leaf(k, at, node, strides);
            at.memo.insert(node, r.clone());
            return r;
        }
        let dtype = inst.ty.dtype;
        let res = match &inst.op {
            Op::Broadcast { dims } => {
                let src = inst.args[0].index();
                match self.func.insts[src].op {
                    Op::Constant(v) => constant(k, dtype, v),
                    _ => self.leaf(k, at, src, &broadcast_strides(self.func, node, dims)),
                }
            }
            Op::Iota { axis } => {
                let (stride, dim) = (inst.ty.shape.strides()[*axis], inst.ty.shape.0[*axis]);
                let n = inst.ty.shape.num_elements() as u64;
                let (q, _) = super::divrem(k, at.i, stride, n);
                let (_, v) = super::divrem(k, &q, dim, n);
                match dtype {
                    DType::F32 => k.op1("cvt.rn.f32.u64", Class::F32, &v),
                    DType::F64 => k.op1("cvt.rn.f64.u64", Class::F64, &v),
                    DType::I32 | DType::Bool => k.op1("cvt.u32.u64", Class::B32, &v),
                }
            }
            op => {
                let vals: Vec<String> = inst.args.iter().map(|a| self.node(k, at, a.index(), strides)).collect();
                let arg_dtypes: Vec<DType> = inst.args.iter().map(|a| self.func.ty(*a).dtype).collect();
                scalar_op(k, op, &arg_dtypes, &vals, dtype)
            }
        };
        if let Some(g) = self.guests.iter().position(|&g| g == node) {
            match at.deferred.as_mut() {
                Some(deferred) => deferred[g] = Some(res.clone()),
                None => store(k, dtype, &at.outs[g], at.i, &res),
            }
        }
        at.memo.insert(node, res.clone());
        res
    }

    /// Leaf `value` (read through `strides`) at the evaluated index: its
    /// register from `load_leaves`, or a load.
    fn leaf(&self, k: &mut Kernel, at: &Eval, value: usize, strides: &[usize]) -> String {
        let leaf = self
            .leaves
            .iter()
            .position(|leaf| leaf.value == value && leaf.strides == strides)
            .expect("`visit` lists every leaf `node` loads");
        match at.loaded {
            Some(loaded) => loaded[leaf].clone(),
            None => self.load_leaf_at(k, at.i, at.ins, leaf),
        }
    }

    /// Loads `leaves[leaf]` at flat index `i`.
    fn load_leaf_at(&self, k: &mut Kernel, i: &str, ins: &[String], leaf: usize) -> String {
        let Leaf { value, strides } = &self.leaves[leaf];
        let param = self.param_of(leaf);
        let root_shape = &self.func.insts[self.root].ty.shape;
        let idx = if *strides == root_shape.strides() {
            i.to_string()
        } else {
            mapped_index(k, i, root_shape.dims(), strides)
        };
        load(k, self.func.insts[*value].ty.dtype, &ins[param], &idx)
    }
}

/// One evaluation of a tree: the index, the kernel's pointers, the leaves
/// already loaded (if any) and the registers of the nodes evaluated so far.
struct Eval<'a> {
    i: &'a str,
    ins: &'a [String],
    outs: &'a [String],
    loaded: Option<&'a [String]>,
    memo: HashMap<usize, String>,
    /// `Some`: the values for `outs` are collected here (in `outputs()`
    /// order) instead of stored, for the caller's vector stores.
    deferred: Option<Vec<Option<String>>>,
}

/// Element strides of `Broadcast` `index`'s operand over the result's
/// dims: result dim `dims[s]` walks operand dim `s`; size-1 operand dims
/// and new dims have stride 0.
fn broadcast_strides(func: &Func, index: usize, dims: &[usize]) -> Vec<usize> {
    let inst = &func.insts[index];
    let src = &func.ty(inst.args[0]).shape;
    let src_strides = src.strides();
    let mut strides = vec![0usize; inst.ty.shape.rank()];
    for (s, &d) in dims.iter().enumerate() {
        if src.0[s] != 1 {
            strides[d] = src_strides[s];
        }
    }
    strides
}

/// The kernel of fusion root `root` (a `fusible` instruction with a buffer
/// and a non-empty shape), its launch arguments (the root's buffer, its
/// guests' buffers, then the buffers its tree reads) and its work items
/// (the grid-stride loop's trip count over all threads).
///
/// With `vector` and an element count divisible by 4, each work item is
/// four neighbouring elements: 4-byte leaves read at the root's strides
/// come in with one 16-byte load (`ld.global.v4`), 4-byte outputs go out
/// with one 16-byte store, each element computed by the same instructions
/// as one at a time (so bitwise the same values). Every buffer starts a
/// device allocation (`ptx/memory_plan.rs`: slots are whole allocations,
/// 256-byte aligned), so element `4q` is 16-byte aligned.
pub(super) fn kernel(
    func: &Func,
    sched: &Schedule,
    root: usize,
    name: &str,
    value_buffers: &[Option<usize>],
    vector: bool,
) -> (String, Vec<usize>, u64) {
    let buffer = |v: usize| value_buffers[v].expect("fusion roots and guests have buffers");
    let guests = sched.guests[root].clone();
    let tree = Tree::new(func, sched, root, true, guests.clone(), value_buffers);
    let mut args = vec![buffer(root)];
    args.extend(guests.iter().map(|&g| buffer(g)));
    let n_outs = args.len();
    args.extend(&tree.buffers);
    let mut k = Kernel::new(name, args.len());
    let ptrs: Vec<String> = (0..args.len()).map(|p| k.param_ptr(p)).collect();
    let ty = &func.insts[root].ty;
    let n = ty.shape.num_elements() as u64;
    let same_count = guests.iter().all(|&g| func.insts[g].ty.shape.num_elements() as u64 == n);
    if vector && n.is_multiple_of(4) && same_count {
        let dtypes: Vec<DType> =
            std::iter::once(root).chain(guests.iter().copied()).map(|v| func.insts[v].ty.dtype).collect();
        k.grid_stride_loop(n / 4, |k, q| {
            let i0 = k.op2("shl.b64", Class::B64, q, "2");
            let is: [String; 4] = std::array::from_fn(|u| match u {
                0 => i0.clone(),
                _ => k.op2("add.u64", Class::B64, &i0, &u.to_string()),
            });
            let loaded = tree.load_leaves_x4(k, &is, &ptrs[n_outs..]);
            // values[o][u]: output o (the root, then the guests) at is[u].
            let mut values: Vec<Vec<String>> = vec![Vec::new(); n_outs];
            for (u, leaves) in loaded.iter().enumerate() {
                let (r, outs) = tree.eval_loaded_unstored(k, &is[u], &ptrs[n_outs..], leaves);
                values[0].push(r);
                for (o, v) in outs.into_iter().enumerate() {
                    values[1 + o].push(v);
                }
            }
            for (o, vals) in values.iter().enumerate() {
                if dtypes[o].size_bytes() == 4 {
                    vector_store(k, dtypes[o], &ptrs[o], &is[0], vals);
                } else {
                    for (i, v) in is.iter().zip(vals) {
                        store(k, dtypes[o], &ptrs[o], i, v);
                    }
                }
            }
        });
        return (k.finish(), args, n / 4);
    }
    k.grid_stride_loop(n, |k, i| {
        let r = tree.eval(k, i, &ptrs[n_outs..], &ptrs[1..n_outs]);
        store(k, ty.dtype, &ptrs[0], i, &r);
    });
    (k.finish(), args, n)
}

#[cfg(test)]
mod tests;
