//! `Func`: one IR function in SSA form, and `Builder`, which appends
//! instructions and computes each result type from the shape rules.
//!
//! A value is identified by the index of the instruction that defines it.
//! Instructions are in definition order, so every argument refers to an
//! earlier instruction (checked by `verify`).

use super::op::Op;
use super::types::{DType, Shape, Type};

/// Identifies an IR value: the index of its defining instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    pub op: Op,
    pub args: Vec<ValueId>,
    pub ty: Type,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Func {
    pub name: String,
    /// Invariant: the first `n_params` instructions are `Param(0..n_params)`.
    pub insts: Vec<Inst>,
    pub n_params: usize,
    pub outputs: Vec<ValueId>,
}

impl Func {
    pub fn ty(&self, v: ValueId) -> &Type {
        &self.insts[v.index()].ty
    }
    pub fn param(&self, i: usize) -> ValueId {
        ValueId(i as u32)
    }
    pub fn param_types(&self) -> Vec<Type> {
        self.insts[..self.n_params].iter().map(|inst| inst.ty.clone()).collect()
    }
    pub fn output_types(&self) -> Vec<Type> {
        self.outputs.iter().map(|&v| self.ty(v).clone()).collect()
    }
    /// The same instructions in another order: `order` lists every index
    /// once, each after its arguments (params first), and values are
    /// renumbered to their new positions.
    pub fn reordered(&self, order: &[usize]) -> Func {
        let n = self.insts.len();
        assert_eq!(order.len(), n, "reordered: a permutation of every instruction");
        let mut new_id = vec![None; n];
        let mut insts = Vec::with_capacity(n);
        for &i in order {
            assert!(new_id[i].is_none(), "reordered: instruction {i} placed twice");
            let inst = &self.insts[i];
            let args =
                inst.args.iter().map(|a| new_id[a.index()].expect("reordered: an argument comes later")).collect();
            new_id[i] = Some(ValueId(insts.len() as u32));
            insts.push(Inst { op: inst.op.clone(), args, ty: inst.ty.clone() });
        }
        let outputs = self.outputs.iter().map(|o| new_id[o.index()].expect("reordered: every value placed")).collect();
        Func { name: self.name.clone(), insts, n_params: self.n_params, outputs }
    }
    /// The same program with every f32 value computed in f64 instead: how the
    /// gradient checks run a float32 program at double precision.
    pub fn widened_to_f64(&self) -> Func {
        let mut res = self.clone();
        for inst in &mut res.insts {
            if inst.ty.dtype == DType::F32 {
                inst.ty.dtype = DType::F64;
            }
            // A scan's body widens with it (its params are the operands' types).
            if let Op::Scan(s) = &mut inst.op {
                s.body = std::sync::Arc::new(s.body.widened_to_f64());
            }
            // So do a custom_vjp's functions.
            if let Op::CustomVjp(c) = &mut inst.op {
                for f in [&mut c.primal, &mut c.fwd, &mut c.bwd] {
                    *f = std::sync::Arc::new(f.widened_to_f64());
                }
            }
        }
        res
    }
}

/// Appends instructions to a function under construction.
///
/// The typed helpers (`add`, `matmul`, ...) apply the IR's shape rules and
/// panic on a violation: the front end has already reported user errors, so
/// a violation here is a compiler bug.
pub struct Builder {
    pub func: Func,
}

impl Builder {
    pub fn new(name: &str, param_types: &[Type]) -> Builder {
        let insts = param_types
            .iter()
            .enumerate()
            .map(|(i, ty)| Inst { op: Op::Param(i as u32), args: vec![], ty: ty.clone() })
            .collect();
        Builder { func: Func { name: name.to_string(), insts, n_params: param_types.len(), outputs: vec![] } }
    }
    pub fn finish(mut self, outputs: Vec<ValueId>) -> Func {
        self.func.outputs = outputs;
        self.func
    }
    pub fn ty(&self, v: ValueId) -> &Type {
        self.func.ty(v)
    }
    pub fn param(&self, i: usize) -> ValueId {
        assert!(i < self.func.n_params, "param {i} out of range");
        ValueId(i as u32)
    }
    /// Appends an instruction with an explicit result type (no checking here;
    /// `verify` checks it).
    pub fn push(&mut self, op: Op, args: Vec<ValueId>, ty: Type) -> ValueId {
        let id = ValueId(self.func.insts.len() as u32);
        self.func.insts.push(Inst { op, args, ty });
        id
    }

    pub fn constant(&mut self, value: f64, dtype: DType) -> ValueId {
        self.push(Op::Constant(value), vec![], Type::scalar(dtype))
    }
    /// A constant filled to `ty`'s shape.
    pub fn full(&mut self, value: f64, ty: &Type) -> ValueId {
        let c = self.constant(value, ty.dtype);
        self.broadcast_to(c, &ty.shape)
    }
    pub fn iota(&mut self, ty: Type, axis: usize) -> ValueId {
        assert!(axis < ty.shape.rank(), "iota axis out of range");
        self.push(Op::Iota { axis }, vec![], ty)
    }
    pub fn unary(&mut self, op: Op, x: ValueId) -> ValueId {
        let ty = self.ty(x).clone();
        self.push(op, vec![x], ty)
    }
    pub fn binary(&mut self, op: Op, a: ValueId, b: ValueId) -> ValueId {
        let (ta, tb) = (self.ty(a).clone(), self.ty(b).clone());
        assert_eq!(ta, tb, "binary {op:?} operand types differ");
        let ty = match op {
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => ta.with_dtype(DType::Bool),
            _ => ta,
        };
        self.push(op, vec![a, b], ty)
    }
    pub fn add(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Op::Add, a, b)
    }
    pub fn sub(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Op::Sub, a, b)
    }
    pub fn mul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Op::Mul, a, b)
    }
    pub fn div(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.binary(Op::Div, a, b)
    }
    pub fn neg(&mut self, x: ValueId) -> ValueId {
        self.unary(Op::Neg, x)
    }
    pub fn select(&mut self, cond: ValueId, on_true: ValueId, on_false: ValueId) -> ValueId {
        let ty = self.ty(on_true).clone();
        assert_eq!(&ty, self.ty(on_false), "select branch types differ");
        assert_eq!(self.ty(cond).shape, ty.shape, "select condition shape");
        self.push(Op::Select, vec![cond, on_true, on_false], ty)
    }
    pub fn convert(&mut self, x: ValueId, dtype: DType) -> ValueId {
        if self.ty(x).dtype == dtype {
            return x;
        }
        let ty = self.ty(x).with_dtype(dtype);
        self.push(Op::Convert, vec![x], ty)
    }
    /// `broadcast_in_dim`: operand dim `i` goes to result dim `dims[i]`.
    pub fn broadcast(&mut self, x: ValueId, shape: &Shape, dims: Vec<usize>) -> ValueId {
        let ty = Type { dtype: self.ty(x).dtype, shape: shape.clone() };
        if &self.ty(x).shape == shape && dims.iter().enumerate().all(|(i, &d)| i == d) {
            return x;
        }
        self.push(Op::Broadcast { dims }, vec![x], ty)
    }
    /// NumPy-style broadcast of `x` to `shape`, aligning trailing dims.
    pub fn broadcast_to(&mut self, x: ValueId, shape: &Shape) -> ValueId {
        let rank = self.ty(x).shape.rank();
        assert!(rank <= shape.rank(), "broadcast_to lowers the rank");
        let offset = shape.rank() - rank;
        self.broadcast(x, shape, (offset..shape.rank()).collect())
    }
    pub fn reshape(&mut self, x: ValueId, shape: &Shape) -> ValueId {
        if &self.ty(x).shape == shape {
            return x;
        }
        assert_eq!(self.ty(x).shape.num_elements(), shape.num_elements(), "reshape size");
        let ty = Type { dtype: self.ty(x).dtype, shape: shape.clone() };
        self.push(Op::Reshape, vec![x], ty)
    }
    pub fn transpose(&mut self, x: ValueId, perm: Vec<usize>) -> ValueId {
        let src = self.ty(x).clone();
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return x;
        }
        let dims = perm.iter().map(|&p| src.shape.0[p]).collect::<Vec<_>>();
        self.push(Op::Transpose { perm }, vec![x], Type::new(src.dtype, &dims))
    }
    fn reduce(&mut self, x: ValueId, axes: Vec<usize>, is_max: bool) -> ValueId {
        let src = self.ty(x).clone();
        let dims = (0..src.shape.rank()).filter(|d| !axes.contains(d)).map(|d| src.shape.0[d]).collect::<Vec<_>>();
        if axes.is_empty() {
            return x;
        }
        let op = if is_max { Op::ReduceMax { axes } } else { Op::ReduceSum { axes } };
        self.push(op, vec![x], Type::new(src.dtype, &dims))
    }
    pub fn reduce_sum(&mut self, x: ValueId, axes: Vec<usize>) -> ValueId {
        self.reduce(x, axes, false)
    }
    pub fn reduce_max(&mut self, x: ValueId, axes: Vec<usize>) -> ValueId {
        self.reduce(x, axes, true)
    }
    pub fn matmul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        let (ta, tb) = (self.ty(a).clone(), self.ty(b).clone());
        assert!(ta.shape.rank() == 2 && tb.shape.rank() == 2, "matmul needs rank-2 operands");
        assert_eq!(ta.shape.0[1], tb.shape.0[0], "matmul inner dims");
        assert_eq!(ta.dtype, tb.dtype, "matmul dtypes");
        let ty = Type::new(ta.dtype, &[ta.shape.0[0], tb.shape.0[1]]);
        self.push(Op::MatMul, vec![a, b], ty)
    }
    /// Index of the first maximum along `axis` (i32; the axis is removed).
    pub fn argmax(&mut self, x: ValueId, axis: usize) -> ValueId {
        let src = self.ty(x).clone();
        assert!(axis < src.shape.rank(), "argmax axis out of range");
        let dims: Vec<usize> = (0..src.shape.rank()).filter(|&d| d != axis).map(|d| src.shape.0[d]).collect();
        self.push(Op::ArgMax { axis }, vec![x], Type::new(DType::I32, &dims))
    }
    /// Per-dim strided window `start..limit` by `stride` (see `Op::Slice`).
    pub fn slice(&mut self, x: ValueId, start: Vec<usize>, limit: Vec<usize>, stride: Vec<usize>) -> ValueId {
        let src = self.ty(x).clone();
        assert!(
            start.len() == src.shape.rank() && limit.len() == start.len() && stride.len() == start.len(),
            "slice needs one start, limit and stride per dim"
        );
        let dims: Vec<usize> = (0..start.len())
            .map(|d| {
                assert!(start[d] <= limit[d] && limit[d] <= src.shape.0[d] && stride[d] >= 1, "slice bounds");
                (limit[d] - start[d]).div_ceil(stride[d])
            })
            .collect();
        if dims == src.shape.0 && start.iter().all(|&s| s == 0) {
            return x;
        }
        self.push(Op::Slice { start, limit, stride }, vec![x], Type::new(src.dtype, &dims))
    }
    /// Zero padding `low` before, `high` after, `interior` between elements (see `Op::Pad`).
    pub fn pad(&mut self, x: ValueId, low: Vec<usize>, high: Vec<usize>, interior: Vec<usize>) -> ValueId {
        let src = self.ty(x).clone();
        assert!(
            low.len() == src.shape.rank() && high.len() == low.len() && interior.len() == low.len(),
            "pad needs one low, high and interior per dim"
        );
        if low.iter().chain(&high).chain(&interior).all(|&p| p == 0) {
            return x;
        }
        let dims: Vec<usize> =
            (0..low.len()).map(|d| padded_dim(src.shape.0[d], low[d], high[d], interior[d])).collect();
        self.push(Op::Pad { low, high, interior }, vec![x], Type::new(src.dtype, &dims))
    }
    /// Concatenation of `xs` (at least one) along `axis`.
    pub fn concat(&mut self, xs: Vec<ValueId>, axis: usize) -> ValueId {
        let first = self.ty(xs[0]).clone();
        assert!(axis < first.shape.rank(), "concat axis out of range");
        let mut dims = first.shape.0.clone();
        dims[axis] = xs.iter().map(|&x| self.ty(x).shape.0[axis]).sum();
        if xs.len() == 1 {
            return xs[0];
        }
        self.push(Op::Concat { axis }, xs, Type::new(first.dtype, &dims))
    }
    /// Sums `x` down to `shape` (the adjoint of `broadcast_to`): trailing
    /// alignment, size-1 dims of `shape` summed and kept.
    pub fn sum_to_shape(&mut self, x: ValueId, shape: &Shape) -> ValueId {
        let src = self.ty(x).shape.clone();
        if &src == shape {
            return x;
        }
        let offset = src.rank() - shape.rank();
        let mut axes: Vec<usize> = (0..offset).collect();
        for (i, &d) in shape.0.iter().enumerate() {
            if d == 1 && src.0[offset + i] != 1 {
                axes.push(offset + i);
            }
        }
        let summed = self.reduce_sum(x, axes);
        self.reshape(summed, shape)
    }
}

/// The size of a dim of `n` elements after `Op::Pad` (see its doc).
pub fn padded_dim(n: usize, low: usize, high: usize, interior: usize) -> usize {
    low + n + n.saturating_sub(1) * interior + high
}
