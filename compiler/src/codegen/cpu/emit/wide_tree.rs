//! A fused loop's tree as a wide program (`cpu/wide.rs`): the same values
//! as `Tree::node` computes, node for node, on 16 f32 lanes.
//!
//! Consumes a `Tree` (its leaves, guests and the walkers' steps along the
//! row) and what to do with the root's value (store it to a walker, or add
//! it to the partial sums); produces a `wide::Program`, or `None` when the
//! tree has anything the wide encoder does not do: a non-f32 value (bool
//! values only as a select's condition), a leaf that neither moves by one
//! element nor stays, or an op without a wide form (conversions, sign,
//! rsqrt, ...). The caller then keeps Cranelift's loop.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::FloatCC;

use super::super::wide::{self, BinOp, Node, Program, UnOp};
use super::{schedule, vmath, Tree};
use crate::ir::{DType, Op, Tensor};

/// What the program does with the root's value.
#[derive(Clone, Copy)]
pub(super) enum RootUse {
    /// Stored through walker `k` (a fused loop's output).
    Store(usize),
    /// Added to the partial sums (a blocked sum's source).
    Accumulate,
}

/// The wide program of `tree` (with `siblings` evaluated, and stored, after
/// the root, as `Tree::eval_with` does), or `None` (see the module doc).
pub(super) fn program(tree: &Tree, siblings: &[usize], root_use: RootUse) -> Option<Program> {
    if tree.inner_steps.iter().any(|&s| s != 0 && s != 4) || !tree.offsets.is_empty() {
        return None;
    }
    let mut builder = Builder::new(tree, 0, Program::default());
    let strides: Vec<i64> = tree.func.insts[tree.root].ty.shape.strides().iter().map(|&s| s as i64).collect();
    let root = builder.node(tree.root, &strides)?;
    for &sibling in siblings {
        builder.node(sibling, &strides)?;
    }
    match root_use {
        RootUse::Store(walker) => builder.program.push(Node::Store { walker, value: root }),
        RootUse::Accumulate => builder.program.push(Node::Accumulate(root)),
    };
    // Stores write 16 consecutive elements.
    let stores_move = builder.program.nodes.iter().all(|node| match *node {
        Node::Store { walker, .. } => tree.inner_steps.get(walker) == Some(&4),
        _ => true,
    });
    stores_move.then_some(builder.program)
}

/// A tiled pair (`emit::tiled_pairs`) as one program: `tile` is the wide
/// root's loop tree (its operand's), `tiled` the root (a tanh or
/// logistic, computed here in registers by `vmath`'s algorithm, the
/// 512-bit routine's, so the same bits), and `tree` the blocked sum that
/// reads it, whose walkers come after the tile's `n_tile`. The root's
/// buffer is then neither written nor read: one pass over memory instead
/// of a chunk written, transformed and read back (and later evicted).
pub(super) fn tiled_program(
    tile: &Tree,
    tiled: usize,
    n_tile: usize,
    tree: &Tree,
    siblings: &[usize],
) -> Option<Program> {
    if !tile.guests.is_empty() || tile.inner_steps.iter().chain(tree.inner_steps).any(|&s| s != 0 && s != 4) {
        return None;
    }
    let mut first = Builder::new(tile, 0, Program::default());
    let strides: Vec<i64> = tile.func.insts[tile.root].ty.shape.strides().iter().map(|&s| s as i64).collect();
    let operand = first.node(tile.root, &strides)?;
    let op = &tile.func.insts[tiled].op;
    if !matches!(op, Op::Tanh | Op::Logistic) {
        return None;
    }
    let value = vmath::eval(&mut first.program, op, operand);
    let mut second = Builder::new(tree, n_tile, first.program);
    second.inline = Some((tiled, value));
    let strides: Vec<i64> = tree.func.insts[tree.root].ty.shape.strides().iter().map(|&s| s as i64).collect();
    let root = second.node(tree.root, &strides)?;
    for &sibling in siblings {
        second.node(sibling, &strides)?;
    }
    second.program.push(Node::Accumulate(root));
    let stores_move = second.program.nodes.iter().all(|node| match *node {
        Node::Store { walker, .. } => walker >= n_tile && tree.inner_steps.get(walker - n_tile) == Some(&4),
        _ => true,
    });
    stores_move.then_some(second.program)
}

struct Builder<'t, 'a> {
    tree: &'t Tree<'a>,
    /// The tree's walker k is the program's `walker_offset + k`.
    walker_offset: usize,
    program: Program,
    memo: HashMap<usize, wide::V>,
    /// A leaf already computed in registers (`tiled_program`).
    inline: Option<(usize, wide::V)>,
}

impl<'t, 'a> Builder<'t, 'a> {
    fn new(tree: &'t Tree<'a>, walker_offset: usize, program: Program) -> Builder<'t, 'a> {
        Builder { tree, walker_offset, program, memo: HashMap::new(), inline: None }
    }
    /// `Tree::node`'s value of `node` (a vector, or a mask for a
    /// comparison), recorded into the program.
    fn node(&mut self, node: usize, strides: &[i64]) -> Option<wide::V> {
        let tree = self.tree;
        let func = tree.func;
        let evaluated =
            if node == tree.root { tree.evaluate_root } else { tree.sched.evaluated_in(node, tree.loop_root) };
        if !evaluated {
            return self.leaf(node, strides);
        }
        if let Some(&v) = self.memo.get(&node) {
            return Some(v);
        }
        let inst = &func.insts[node];
        let compare_dtype = inst.args.first().map(|a| func.ty(*a).dtype);
        let is_compare = matches!(inst.op, Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne);
        if inst.ty.dtype != DType::F32 && !(is_compare && compare_dtype == Some(DType::F32)) {
            return None;
        }
        let arg = |this: &mut Self, k: usize| this.node(inst.args[k].index(), strides);
        let p = |this: &mut Self, n: Node| Some(this.program.push(n));
        let v = match &inst.op {
            Op::Constant(value) => self.constant(*value),
            Op::Broadcast { dims } => {
                let src = inst.args[0].index();
                match func.insts[src].op {
                    Op::Constant(value) => self.constant(value),
                    _ => self.leaf(src, &schedule::broadcast_strides(func, node, dims))?,
                }
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => {
                let op = match inst.op {
                    Op::Add => BinOp::Add,
                    Op::Sub => BinOp::Sub,
                    Op::Mul => BinOp::Mul,
                    Op::Div => BinOp::Div,
                    Op::Max => BinOp::Max,
                    _ => BinOp::Min,
                };
                let (a, b) = (arg(self, 0)?, arg(self, 1)?);
                p(self, Node::Binary(op, a, b))?
            }
            Op::Neg | Op::Abs | Op::Sqrt => {
                let op = match inst.op {
                    Op::Neg => UnOp::Neg,
                    Op::Abs => UnOp::Abs,
                    _ => UnOp::Sqrt,
                };
                let a = arg(self, 0)?;
                p(self, Node::Unary(op, a))?
            }
            Op::Pow => {
                let exponent = schedule::const_pow_exponent(func, node)?;
                let x = arg(self, 0)?;
                self.pow(x, exponent)?
            }
            op @ (Op::Exp | Op::Log | Op::Tanh | Op::Logistic) => {
                let x = arg(self, 0)?;
                vmath::eval(&mut self.program, op, x)
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => {
                let cc = match inst.op {
                    Op::Lt => FloatCC::LessThan,
                    Op::Le => FloatCC::LessThanOrEqual,
                    Op::Gt => FloatCC::GreaterThan,
                    Op::Ge => FloatCC::GreaterThanOrEqual,
                    Op::Eq => FloatCC::Equal,
                    _ => FloatCC::NotEqual,
                };
                let (a, b) = (arg(self, 0)?, arg(self, 1)?);
                p(self, Node::Compare(cc, a, b))?
            }
            Op::Select => {
                // The branches first: a chain of selects then holds one
                // condition at a time (there are 5 mask registers).
                let (a, b) = (arg(self, 1)?, arg(self, 2)?);
                let mask = arg(self, 0)?;
                if !matches!(self.program.nodes[mask], Node::Compare(..) | Node::OrMask(..)) {
                    return None;
                }
                p(self, Node::Select(mask, a, b))?
            }
            _ => return None,
        };
        if let Some(k) = tree.guests.iter().position(|&g| g == node) {
            if is_compare {
                return None;
            }
            self.program.push(Node::Store { walker: self.walker_offset + tree.guest_ptrs + k, value: v });
        }
        self.memo.insert(node, v);
        Some(v)
    }

    /// A buffer read through walker k (`Tree::load_leaf`): f32 only.
    fn leaf(&mut self, value: usize, strides: &[i64]) -> Option<wide::V> {
        if let Some((inlined, v)) = self.inline {
            if inlined == value {
                return Some(v);
            }
        }
        let tree = self.tree;
        let k = tree.leaves.iter().position(|leaf| leaf.value == value && leaf.strides == strides)?;
        if tree.func.insts[value].ty.dtype != DType::F32 {
            return None;
        }
        Some(self.program.push(Node::Load { walker: self.walker_offset + k, broadcast: tree.inner_steps[k] == 0 }))
    }

    /// A constant rounded as the interpreter rounds it (`Tree::constant`).
    fn constant(&mut self, value: f64) -> wide::V {
        let value = Tensor::from_f64(DType::F32, &[], &[value]).scalar_value();
        self.program.constant(value as f32)
    }

    /// `emit::pow_by_multiplication`, the same multiplications.
    fn pow(&mut self, x: wide::V, exponent: i32) -> Option<wide::V> {
        let one = self.program.constant(1.0);
        let mul = |p: &mut Program, a, b| p.push(Node::Binary(BinOp::Mul, a, b));
        let magnitude = match exponent.unsigned_abs() {
            0 => return Some(one),
            1 => x,
            2 => mul(&mut self.program, x, x),
            3 => {
                let square = mul(&mut self.program, x, x);
                mul(&mut self.program, square, x)
            }
            4 => {
                let square = mul(&mut self.program, x, x);
                mul(&mut self.program, square, square)
            }
            _ => return None,
        };
        Some(if exponent < 0 { self.program.push(Node::Binary(BinOp::Div, one, magnitude)) } else { magnitude })
    }
}
