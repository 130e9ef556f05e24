//! Tensor operators of the language (`+`, `@`, `^`, comparisons, unary
//! minus, reductions), checked by `check::shape_rules` and, in build mode,
//! lowered to IR with explicit broadcasts.
//!
//! Compile-time scalars (integer and float literals, config values) fold at
//! compile time; a float literal meeting a tensor takes the tensor's dtype.

use super::elab::Elaborator;
use super::value::{TVal, Val};
use crate::check::{shape_rules, Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{DType, Op, Shape, ValueId};
use crate::span::Span;
use crate::syntax::ast::{BinOp, UnOp};

impl<'p> Elaborator<'p> {
    /// A compile-time scalar as a rank-0 tensor of `dtype`.
    pub fn scalar_tensor(&mut self, v: &Val, dtype: DType) -> Option<TVal> {
        let x = match v {
            Val::Float(x) => *x,
            Val::Int(Dim::Known(n)) => *n as f64,
            Val::NegInt(n) => *n as f64,
            Val::Bool(b) => f64::from(u8::from(*b)),
            // A symbolic int (an `int` parameter or `size(x, 0)` while a
            // function is checked alone): a scalar of a value known once the
            // program is built, when it is a number.
            Val::Int(Dim::Sym(_)) if !self.building() => return Some(TVal { ty: Ty::scalar(dtype), id: None }),
            _ => return None,
        };
        let id = self.builder.as_mut().map(|b| b.constant(x, dtype));
        Some(TVal { ty: Ty::scalar(dtype), id })
    }

    /// The default dtype a compile-time scalar takes on its own.
    fn natural_dtype(v: &Val) -> Option<DType> {
        match v {
            Val::Float(_) => Some(DType::F32),
            Val::Int(_) | Val::NegInt(_) => Some(DType::I32),
            Val::Bool(_) => Some(DType::Bool),
            Val::Tensor(t) => Some(t.ty.dtype),
            _ => None,
        }
    }

    pub fn unary(&mut self, op: UnOp, v: Val, span: Span) -> Val {
        match (op, v) {
            (_, Val::Poison) => Val::Poison,
            (UnOp::Neg, Val::Float(x)) => Val::Float(-x),
            (UnOp::Neg, v @ (Val::Int(Dim::Known(_)) | Val::NegInt(_))) => {
                match v.as_i64().and_then(i64::checked_neg) {
                    Some(n) => Val::int(n),
                    None => Val::Float(-v.as_i64().map_or(f64::NAN, |n| n as f64)),
                }
            }
            (UnOp::Not, Val::Bool(b)) => Val::Bool(!b),
            (UnOp::Neg, Val::Tensor(t)) if t.ty.dtype != DType::Bool => {
                let id = t.id.map(|x| self.b().neg(x));
                Val::Tensor(TVal { ty: t.ty, id })
            }
            (UnOp::Not, Val::Tensor(t)) if t.ty.dtype == DType::Bool => {
                let id = t.id.map(|x| {
                    let b = self.b();
                    let f = b.full(0.0, &b.ty(x).clone());
                    b.binary(Op::Eq, x, f)
                });
                Val::Tensor(TVal { ty: t.ty, id })
            }
            (op, other) => {
                let sym = if op == UnOp::Neg { "-" } else { "!" };
                self.error(
                    Diagnostic::error(Code::TypeMismatch, format!("cannot apply `{sym}` to {}", other.describe()))
                        .with_label(span, "here"),
                )
            }
        }
    }

    pub fn binary(&mut self, op: BinOp, a: Val, a_span: Span, b: Val, b_span: Span, span: Span) -> Val {
        if matches!(a, Val::Poison) || matches!(b, Val::Poison) {
            return Val::Poison;
        }
        if op == BinOp::Div && a.as_i64().is_some() && b.as_i64() == Some(0) {
            // As Rust's constant evaluation: an error, not inf (the float
            // fallback) and not a value picked for it.
            return self.error(
                Diagnostic::error(Code::TypeMismatch, "integer division by zero")
                    .with_label(b_span, "this compile-time integer is 0")
                    .with_label(span, "in this division")
                    .with_help("write a float (`7.0 / 0`) for IEEE division, which gives inf or NaN"),
            );
        }
        if let Some(v) = fold_scalars(op, &a, &b) {
            // Poison from operands that are not poison: a comparison of
            // symbolic integers, unknown here on purpose (`fold_scalars`).
            self.silent_poison |= matches!(v, Val::Poison);
            return v;
        }
        if matches!(op, BinOp::And | BinOp::Or) {
            return self.logical(op, a, a_span, b, b_span);
        }
        // `x ^ 2` is `x * x`: exact, and its gradient needs no `log`.
        if op == BinOp::Pow {
            if let (Val::Tensor(t), Val::Int(Dim::Known(2))) = (&a, &b) {
                let t = t.clone();
                return self.binary(BinOp::Mul, Val::Tensor(t.clone()), a_span, Val::Tensor(t), a_span, span);
            }
        }
        let dtype = match (&a, &b) {
            (Val::Tensor(x), Val::Tensor(y)) => {
                if x.ty.dtype != y.ty.dtype {
                    return self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            format!(
                                "`{}` needs operands of one dtype, found {} and {}",
                                op.symbol(),
                                x.ty.dtype,
                                y.ty.dtype
                            ),
                        )
                        .with_label(a_span, format!("this is {}", x.ty))
                        .with_label(b_span, format!("this is {}", y.ty))
                        .with_help("convert one side explicitly, e.g. `float(x)`"),
                    );
                }
                x.ty.dtype
            }
            (Val::Tensor(x), other) | (other, Val::Tensor(x)) => {
                // A weak scalar takes the tensor's dtype (an int tensor meeting
                // a float literal becomes an error below).
                if matches!(other, Val::Float(_)) && !x.ty.dtype.is_float() {
                    return self.error(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            format!("cannot combine {} tensor with a float literal", article(x.ty.dtype)),
                        )
                        .with_label(span, "here")
                        .with_help("convert the tensor first, e.g. `float(x)`"),
                    );
                }
                x.ty.dtype
            }
            _ => {
                return self.error(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("cannot apply `{}` to {} and {}", op.symbol(), a.describe(), b.describe()),
                    )
                    .with_label(a_span, format!("this is {}", a.describe()))
                    .with_label(b_span, format!("this is {}", b.describe())),
                )
            }
        };
        let (Some(x), Some(y)) = (self.as_tensor(&a, dtype, a_span), self.as_tensor(&b, dtype, b_span)) else {
            return Val::Poison;
        };
        if op == BinOp::MatMul {
            return self.matmul(x, a_span, y, b_span);
        }
        let dims = match shape_rules::broadcast(&x.ty.dims, &y.ty.dims) {
            Ok(d) => d,
            Err(msg) => {
                return self.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("shapes {} and {} cannot be broadcast for `{}`", x.ty, y.ty, op.symbol()),
                    )
                    .with_label(a_span, format!("this is {}", x.ty))
                    .with_label(b_span, format!("this is {}", y.ty))
                    .with_note(msg)
                    .with_help("trailing dimensions must be equal, or one of them 1"),
                )
            }
        };
        let is_cmp = matches!(op, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge);
        if !is_cmp && dtype == DType::Bool {
            return self.error(
                Diagnostic::error(Code::TypeMismatch, format!("`{}` is not defined on bool tensors", op.symbol()))
                    .with_label(span, "here")
                    .with_help("convert with `float(x)`"),
            );
        }
        if op == BinOp::Pow && !dtype.is_float() {
            return self
                .error(Diagnostic::error(Code::TypeMismatch, "`^` needs float operands").with_label(span, "here"));
        }
        let ty = Ty { dtype: if is_cmp { DType::Bool } else { dtype }, dims: dims.clone() };
        let id = match (x.id, y.id) {
            (Some(xi), Some(yi)) => {
                let shape = Shape(dims.iter().map(known).collect());
                let b = self.b();
                let xb = b.broadcast_to(xi, &shape);
                let yb = b.broadcast_to(yi, &shape);
                let ir_op = match op {
                    BinOp::Add => Op::Add,
                    BinOp::Sub => Op::Sub,
                    BinOp::Mul => Op::Mul,
                    BinOp::Div => Op::Div,
                    BinOp::Pow => Op::Pow,
                    BinOp::Eq => Op::Eq,
                    BinOp::Ne => Op::Ne,
                    BinOp::Lt => Op::Lt,
                    BinOp::Le => Op::Le,
                    BinOp::Gt => Op::Gt,
                    BinOp::Ge => Op::Ge,
                    BinOp::MatMul | BinOp::And | BinOp::Or => unreachable!("handled above"),
                };
                Some(b.binary(ir_op, xb, yb))
            }
            _ => None,
        };
        Val::Tensor(TVal { ty, id })
    }

    fn logical(&mut self, op: BinOp, a: Val, a_span: Span, b: Val, b_span: Span) -> Val {
        let (Some(x), Some(y)) = (self.as_tensor(&a, DType::Bool, a_span), self.as_tensor(&b, DType::Bool, b_span))
        else {
            return Val::Poison;
        };
        if x.ty.dtype != DType::Bool || y.ty.dtype != DType::Bool {
            return self.error(
                Diagnostic::error(Code::TypeMismatch, format!("`{}` needs bool operands", op.symbol()))
                    .with_label(a_span, format!("this is {}", x.ty))
                    .with_label(b_span, format!("this is {}", y.ty)),
            );
        }
        let dims = match shape_rules::broadcast(&x.ty.dims, &y.ty.dims) {
            Ok(d) => d,
            Err(msg) => {
                return self.error(
                    Diagnostic::error(Code::ShapeMismatch, format!("shapes {} and {} cannot be broadcast", x.ty, y.ty))
                        .with_label(a_span, format!("this is {}", x.ty))
                        .with_label(b_span, format!("this is {}", y.ty))
                        .with_note(msg),
                )
            }
        };
        let id = match (x.id, y.id) {
            (Some(xi), Some(yi)) => {
                let shape = Shape(dims.iter().map(known).collect());
                let b = self.b();
                let xb = b.broadcast_to(xi, &shape);
                let yb = b.broadcast_to(yi, &shape);
                let ty = b.ty(xb).clone();
                // a && b = select(a, b, false); a || b = select(a, true, b)
                Some(if op == BinOp::And {
                    let f = b.full(0.0, &ty);
                    b.select(xb, yb, f)
                } else {
                    let t = b.full(1.0, &ty);
                    b.select(xb, t, yb)
                })
            }
            _ => None,
        };
        Val::Tensor(TVal { ty: Ty { dtype: DType::Bool, dims }, id })
    }

    /// Whether a compile-time integer fits the tensor dtype it becomes
    /// (an i32 one would be clamped silently); reports it if not.
    pub fn int_fits(&mut self, v: &Val, dtype: DType, span: Span) -> bool {
        let n = match v {
            Val::Int(Dim::Known(n)) => *n as i128,
            Val::NegInt(n) => *n as i128,
            _ => return true,
        };
        if dtype != DType::I32 || (i32::MIN as i128..=i32::MAX as i128).contains(&n) {
            return true;
        }
        self.error(
            Diagnostic::error(Code::TypeMismatch, format!("{n} does not fit an i32 tensor"))
                .with_label(span, "this integer meets i32 values here")
                .with_help("write it as a float (`3e9`) and compute in f32 or f64"),
        );
        false
    }

    /// A value used as a tensor of `dtype` (scalars materialize as constants).
    pub fn as_tensor(&mut self, v: &Val, dtype: DType, span: Span) -> Option<TVal> {
        match v {
            Val::Tensor(t) => Some(t.clone()),
            Val::Int(_) | Val::NegInt(_) if !self.int_fits(v, dtype, span) => None,
            Val::Float(_) | Val::Int(Dim::Known(_)) | Val::NegInt(_) | Val::Bool(_) => self.scalar_tensor(v, dtype),
            Val::Int(Dim::Sym(_)) if !self.building() => self.scalar_tensor(v, dtype),
            Val::Poison => None,
            other => {
                self.error(
                    Diagnostic::error(Code::TypeMismatch, format!("expected a tensor, found {}", other.describe()))
                        .with_label(span, "here"),
                );
                None
            }
        }
    }

    fn matmul(&mut self, x: TVal, a_span: Span, y: TVal, b_span: Span) -> Val {
        if !x.ty.dtype.is_float() {
            return self.error(
                Diagnostic::error(Code::TypeMismatch, "`@` needs float operands")
                    .with_label(a_span, format!("this is {}", x.ty)),
            );
        }
        if y.ty.rank() >= 3 {
            return super::tensor_ops::batched_matmul(self, x, a_span, y, b_span);
        }
        let dims = match shape_rules::matmul(&x.ty.dims, &y.ty.dims) {
            Ok(d) => d,
            Err(msg) => {
                return self.error(
                    Diagnostic::error(Code::ShapeMismatch, format!("cannot multiply {} by {}: {msg}", x.ty, y.ty))
                        .with_label(a_span, format!("this is {}", x.ty))
                        .with_label(b_span, format!("this is {}", y.ty))
                        .with_help("the last dim of the left operand must equal the first dim of the right"),
                )
            }
        };
        let ty = Ty { dtype: x.ty.dtype, dims: dims.clone() };
        let id = match (x.id, y.id) {
            (Some(xi), Some(yi)) => {
                let b = self.b();
                let xs = b.ty(xi).shape.clone();
                let ys = b.ty(yi).shape.clone();
                let k = *xs.0.last().expect("rank >= 1");
                let m: usize = xs.0[..xs.rank() - 1].iter().product();
                let n = if ys.rank() == 2 { ys.0[1] } else { 1 };
                let x2 = b.reshape(xi, &Shape(vec![m, k]));
                let y2 = b.reshape(yi, &Shape(vec![k, n]));
                let p = b.matmul(x2, y2);
                Some(b.reshape(p, &Shape(dims.iter().map(known).collect())))
            }
            _ => None,
        };
        Val::Tensor(TVal { ty, id })
    }

    /// `x.T`: reverses all dims.
    pub fn transpose_all(&mut self, t: TVal, _span: Span) -> Val {
        let rank = t.ty.rank();
        let perm: Vec<usize> = (0..rank).rev().collect();
        let ty = Ty { dtype: t.ty.dtype, dims: perm.iter().map(|&p| t.ty.dims[p].clone()).collect() };
        let id = t.id.map(|x| self.b().transpose(x, perm));
        Val::Tensor(TVal { ty, id })
    }

    /// `sum`/`mean`/`max` over `axes` (all if `None`), optionally keeping dims.
    pub fn reduce(&mut self, kind: Reduce, t: TVal, axes: Option<Vec<usize>>, keepdims: bool) -> Val {
        let rank = t.ty.rank();
        let axes = axes.unwrap_or_else(|| (0..rank).collect());
        let mut dims = Vec::new();
        for (i, d) in t.ty.dims.iter().enumerate() {
            if !axes.contains(&i) {
                dims.push(d.clone());
            } else if keepdims {
                dims.push(Dim::Known(1));
            }
        }
        let ty = Ty { dtype: t.ty.dtype, dims: dims.clone() };
        let id = t.id.map(|x| {
            let b = self.b();
            let src = b.ty(x).clone();
            let r = match kind {
                Reduce::Max => b.reduce_max(x, axes.clone()),
                Reduce::Min => b.reduce_min(x, axes.clone()),
                Reduce::Sum | Reduce::Mean => b.reduce_sum(x, axes.clone()),
            };
            let r = if kind == Reduce::Mean {
                let count: usize = axes.iter().map(|&a| src.shape.0[a]).product();
                let c = b.full(count as f64, &b.ty(r).clone());
                b.div(r, c)
            } else {
                r
            };
            b.reshape(r, &Shape(dims.iter().map(known).collect()))
        });
        Val::Tensor(TVal { ty, id })
    }

    pub fn ir_of(&self, t: &TVal) -> Option<ValueId> {
        t.id
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
}

/// A known dim (build mode guarantees every dim is known).
pub fn known(d: &Dim) -> usize {
    match d {
        Dim::Known(n) => *n,
        Dim::Sym(s) => panic!("symbolic dim `{s}` in build mode"),
    }
}

/// Folds operators on compile-time scalars; `None` if either side is a tensor.
fn fold_scalars(op: BinOp, a: &Val, b: &Val) -> Option<Val> {
    let num = |v: &Val| match v {
        Val::Float(x) => Some(*x),
        Val::Int(Dim::Known(n)) => Some(*n as f64),
        Val::NegInt(n) => Some(*n as f64),
        _ => None,
    };
    if let (Val::Bool(x), Val::Bool(y)) = (a, b) {
        return match op {
            BinOp::And => Some(Val::Bool(*x && *y)),
            BinOp::Or => Some(Val::Bool(*x || *y)),
            BinOp::Eq => Some(Val::Bool(x == y)),
            BinOp::Ne => Some(Val::Bool(x != y)),
            _ => None,
        };
    }
    // Integer arithmetic stays integer, of either sign; `/` truncates toward
    // zero (`-7 / 2` is -3, as in Rust). Overflow falls through to floats.
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        let r = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div if y != 0 => x.checked_div(y),
            _ => None,
        };
        if let Some(r) = r {
            return Some(Val::int(r));
        }
    }
    if let (Val::Int(Dim::Sym(_)), Val::Int(_) | Val::NegInt(_))
    | (Val::Int(_) | Val::NegInt(_), Val::Int(Dim::Sym(_))) = (a, b)
    {
        // A comparison of symbolic integers (a function checked alone, with
        // its `int` parameters unknown): the answer is known only at each
        // call, where the function is checked again with the real values.
        // So it is unknown here, silently: `if k > 0 { ... }` is not an error.
        if matches!(op, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) {
            return Some(Val::Poison);
        }
        // Symbolic arithmetic (check mode): the result is an unknown integer.
        return Some(Val::Int(Dim::Sym(format!("({} {} {})", describe_dim(a), op.symbol(), describe_dim(b)))));
    }
    let (x, y) = (num(a)?, num(b)?);
    Some(match op {
        BinOp::Add => Val::Float(x + y),
        BinOp::Sub => Val::Float(x - y),
        BinOp::Mul => Val::Float(x * y),
        BinOp::Div => Val::Float(x / y),
        BinOp::Pow => Val::Float(x.powf(y)),
        BinOp::Eq => Val::Bool(x == y),
        BinOp::Ne => Val::Bool(x != y),
        BinOp::Lt => Val::Bool(x < y),
        BinOp::Le => Val::Bool(x <= y),
        BinOp::Gt => Val::Bool(x > y),
        BinOp::Ge => Val::Bool(x >= y),
        BinOp::MatMul | BinOp::And | BinOp::Or => return None,
    })
}

fn describe_dim(v: &Val) -> String {
    match v {
        Val::Int(d) => d.to_string(),
        Val::NegInt(n) => n.to_string(),
        other => other.describe(),
    }
}

#[allow(dead_code)]
fn natural(v: &Val) -> Option<DType> {
    Elaborator::natural_dtype(v)
}

/// `an i32`, `a bool`: the dtype with its article, for messages.
fn article(dtype: crate::ir::DType) -> String {
    let name = dtype.to_string();
    let vowel_sound = name.starts_with(['a', 'e', 'i', 'o', 'u', 'f']);
    format!("{} {name}", if vowel_sound { "an" } else { "a" })
}
