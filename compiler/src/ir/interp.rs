//! The reference interpreter: the definition of what every IR op computes.
//!
//! Plain loops, no cleverness. Every backend and every rewrite is tested
//! against it. Float32 programs compute in f32 (each result rounded to f32),
//! float64 programs in f64. Reductions and matmul accumulate sequentially in
//! row-major order of the reduced elements.
//!
//! Semantics worth knowing: `max`/`min` propagate NaN and order -0 < +0 (as
//! Cranelift's `fmax`/`fmin` do); float -> i32 conversion truncates toward
//! zero and saturates, NaN converts to 0 (as Rust's `as`).

use super::func::Func;
use super::op::Op;
use super::tensor::{Data, Tensor};
use super::types::{DType, Shape, Type};

/// Runs `func` on `inputs`; returns its outputs. Panics if the input types do
/// not match the parameters (callers check that).
pub fn run(func: &Func, inputs: &[Tensor]) -> Vec<Tensor> {
    assert_eq!(inputs.len(), func.n_params, "interp: wrong number of inputs");
    let mut values: Vec<Tensor> = Vec::with_capacity(func.insts.len());
    for inst in &func.insts {
        let args: Vec<&Tensor> = inst.args.iter().map(|a| &values[a.index()]).collect();
        let res = eval(&inst.op, &args, &inst.ty, inputs);
        debug_assert_eq!(res.ty(), inst.ty, "interp produced the wrong type for {:?}", inst.op);
        values.push(res);
    }
    func.outputs.iter().map(|o| values[o.index()].clone()).collect()
}

fn eval(op: &Op, args: &[&Tensor], ty: &Type, inputs: &[Tensor]) -> Tensor {
    match op {
        Op::Param(i) => {
            let input = &inputs[*i as usize];
            assert_eq!(&input.ty(), ty, "interp: input {i} has the wrong type");
            input.clone()
        }
        Op::Constant(v) => Tensor::from_f64(ty.dtype, &[], &[*v]),
        Op::Iota { axis } => {
            let strides = ty.shape.strides();
            let values: Vec<f64> = (0..ty.shape.num_elements())
                .map(|flat| ((flat / strides[*axis]) % ty.shape.0[*axis]) as f64)
                .collect();
            Tensor::from_f64(ty.dtype, ty.shape.dims(), &values)
        }
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => unary(op, args[0]),
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => binary(op, args[0], args[1]),
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => compare(op, args[0], args[1]),
        Op::Select => {
            let cond = match &args[0].data {
                Data::Bool(c) => c,
                other => panic!("select condition is {other:?}"),
            };
            let pick = |t: &[f64], f: &[f64]| -> Vec<f64> {
                cond.iter().zip(t.iter().zip(f)).map(|(&c, (&x, &y))| if c { x } else { y }).collect()
            };
            select_data(&args[1].data, &args[2].data, cond, ty, pick)
        }
        Op::Convert => convert(args[0], ty.dtype),
        Op::Broadcast { dims } => {
            let src = &args[0].shape;
            let src_strides = src.strides();
            // Result index -> source index: broadcast dims of size 1 contribute nothing.
            let index_map = |out_idx: &[usize]| -> usize {
                dims.iter()
                    .enumerate()
                    .map(|(i, &d)| if src.0[i] == 1 { 0 } else { out_idx[d] * src_strides[i] })
                    .sum()
            };
            gather_by(args[0], &ty.shape, index_map)
        }
        Op::Reshape => Tensor { shape: ty.shape.clone(), data: args[0].data.clone() },
        Op::Transpose { perm } => {
            let src_strides = args[0].shape.strides();
            let index_map =
                |out_idx: &[usize]| -> usize { perm.iter().enumerate().map(|(i, &p)| out_idx[i] * src_strides[p]).sum() };
            gather_by(args[0], &ty.shape, index_map)
        }
        Op::ReduceSum { axes } => reduce(args[0], axes, ty, false),
        Op::ReduceMax { axes } => reduce(args[0], axes, ty, true),
        Op::MatMul => matmul(args[0], args[1]),
    }
}

/// NaN-propagating maximum with -0 < +0.
pub fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// NaN-propagating minimum with -0 < +0.
pub fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

macro_rules! float_unary {
    ($op:expr, $x:expr) => {
        match $op {
            Op::Neg => -$x,
            Op::Exp => $x.exp(),
            Op::Log => $x.ln(),
            Op::Tanh => $x.tanh(),
            Op::Sqrt => $x.sqrt(),
            other => unreachable!("not a unary op: {other:?}"),
        }
    };
}

fn unary(op: &Op, x: &Tensor) -> Tensor {
    let data = match &x.data {
        Data::F32(v) => Data::F32(v.iter().map(|&a| float_unary!(op, a)).collect()),
        Data::F64(v) => Data::F64(v.iter().map(|&a| float_unary!(op, a)).collect()),
        Data::I32(v) if *op == Op::Neg => Data::I32(v.iter().map(|&a| a.wrapping_neg()).collect()),
        other => panic!("unary {op:?} on {other:?}"),
    };
    Tensor { shape: x.shape.clone(), data }
}

macro_rules! float_binary {
    ($op:expr, $a:expr, $b:expr, $t:ty) => {
        match $op {
            Op::Add => $a + $b,
            Op::Sub => $a - $b,
            Op::Mul => $a * $b,
            Op::Div => $a / $b,
            Op::Max => fmax($a as f64, $b as f64) as $t,
            Op::Min => fmin($a as f64, $b as f64) as $t,
            Op::Pow => $a.powf($b),
            other => unreachable!("not a binary op: {other:?}"),
        }
    };
}

fn binary(op: &Op, a: &Tensor, b: &Tensor) -> Tensor {
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(x.iter().zip(y).map(|(&p, &q)| float_binary!(op, p, q, f32)).collect()),
        (Data::F64(x), Data::F64(y)) => Data::F64(x.iter().zip(y).map(|(&p, &q)| float_binary!(op, p, q, f64)).collect()),
        (Data::I32(x), Data::I32(y)) => Data::I32(
            x.iter()
                .zip(y)
                .map(|(&p, &q)| match op {
                    Op::Add => p.wrapping_add(q),
                    Op::Sub => p.wrapping_sub(q),
                    Op::Mul => p.wrapping_mul(q),
                    // Integer division by zero yields 0 rather than trapping.
                    Op::Div => p.checked_div(q).unwrap_or(0),
                    Op::Max => p.max(q),
                    Op::Min => p.min(q),
                    Op::Pow => (p as f64).powf(q as f64) as i32,
                    other => unreachable!("not a binary op: {other:?}"),
                })
                .collect(),
        ),
        (x, y) => panic!("binary {op:?} on {x:?} and {y:?}"),
    };
    Tensor { shape: a.shape.clone(), data }
}

fn compare(op: &Op, a: &Tensor, b: &Tensor) -> Tensor {
    fn cmp<T: PartialOrd>(op: &Op, x: &[T], y: &[T]) -> Vec<bool> {
        x.iter()
            .zip(y)
            .map(|(p, q)| match op {
                Op::Lt => p < q,
                Op::Le => p <= q,
                Op::Gt => p > q,
                Op::Ge => p >= q,
                Op::Eq => p == q,
                Op::Ne => p != q,
                other => unreachable!("not a comparison: {other:?}"),
            })
            .collect()
    }
    let res = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => cmp(op, x, y),
        (Data::F64(x), Data::F64(y)) => cmp(op, x, y),
        (Data::I32(x), Data::I32(y)) => cmp(op, x, y),
        (Data::Bool(x), Data::Bool(y)) => cmp(op, x, y),
        (x, y) => panic!("compare {op:?} on {x:?} and {y:?}"),
    };
    Tensor { shape: a.shape.clone(), data: Data::Bool(res) }
}

fn select_data(t: &Data, f: &Data, cond: &[bool], ty: &Type, pick: impl Fn(&[f64], &[f64]) -> Vec<f64>) -> Tensor {
    let data = match (t, f) {
        (Data::F32(x), Data::F32(y)) => Data::F32(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect()),
        (Data::F64(x), Data::F64(y)) => Data::F64(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect()),
        (Data::I32(x), Data::I32(y)) => Data::I32(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect()),
        (Data::Bool(_), Data::Bool(_)) => {
            let x = Tensor { shape: ty.shape.clone(), data: t.clone() }.to_f64_vec();
            let y = Tensor { shape: ty.shape.clone(), data: f.clone() }.to_f64_vec();
            Data::Bool(pick(&x, &y).into_iter().map(|v| v != 0.0).collect())
        }
        (x, y) => panic!("select on {x:?} and {y:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}

fn convert(x: &Tensor, dtype: DType) -> Tensor {
    let data = match (&x.data, dtype) {
        (Data::F32(v), DType::F64) => Data::F64(v.iter().map(|&a| a as f64).collect()),
        (Data::F64(v), DType::F32) => Data::F32(v.iter().map(|&a| a as f32).collect()),
        (Data::F32(v), DType::I32) => Data::I32(v.iter().map(|&a| a as i32).collect()),
        (Data::F64(v), DType::I32) => Data::I32(v.iter().map(|&a| a as i32).collect()),
        (Data::I32(v), DType::F32) => Data::F32(v.iter().map(|&a| a as f32).collect()),
        (Data::I32(v), DType::F64) => Data::F64(v.iter().map(|&a| a as f64).collect()),
        (Data::Bool(v), DType::F32) => Data::F32(v.iter().map(|&a| a as u8 as f32).collect()),
        (Data::Bool(v), DType::F64) => Data::F64(v.iter().map(|&a| a as u8 as f64).collect()),
        (Data::Bool(v), DType::I32) => Data::I32(v.iter().map(|&a| a as i32).collect()),
        (Data::F32(v), DType::Bool) => Data::Bool(v.iter().map(|&a| a != 0.0).collect()),
        (Data::F64(v), DType::Bool) => Data::Bool(v.iter().map(|&a| a != 0.0).collect()),
        (Data::I32(v), DType::Bool) => Data::Bool(v.iter().map(|&a| a != 0).collect()),
        (same, _) => same.clone(),
    };
    Tensor { shape: x.shape.clone(), data }
}

/// Builds a tensor of `shape` whose element at each multi-index is the source
/// element at flat index `index_map(idx)`.
fn gather_by(src: &Tensor, shape: &Shape, index_map: impl Fn(&[usize]) -> usize) -> Tensor {
    let n = shape.num_elements();
    let mut idx = vec![0usize; shape.rank()];
    let mut flat_src = Vec::with_capacity(n);
    for _ in 0..n {
        flat_src.push(index_map(&idx));
        // Advance the multi-index in row-major order.
        for axis in (0..shape.rank()).rev() {
            idx[axis] += 1;
            if idx[axis] < shape.0[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
    let data = match &src.data {
        Data::F32(v) => Data::F32(flat_src.iter().map(|&i| v[i]).collect()),
        Data::F64(v) => Data::F64(flat_src.iter().map(|&i| v[i]).collect()),
        Data::I32(v) => Data::I32(flat_src.iter().map(|&i| v[i]).collect()),
        Data::Bool(v) => Data::Bool(flat_src.iter().map(|&i| v[i]).collect()),
    };
    Tensor { shape: shape.clone(), data }
}

fn reduce(x: &Tensor, axes: &[usize], ty: &Type, is_max: bool) -> Tensor {
    let src = &x.shape;
    let out_strides = ty.shape.strides();
    // For each source element (row-major), the flat index of its output element.
    let kept: Vec<usize> = (0..src.rank()).filter(|d| !axes.contains(d)).collect();
    let mut idx = vec![0usize; src.rank()];
    let n_out = ty.shape.num_elements();
    macro_rules! run_reduce {
        ($v:expr, $t:ty, $init:expr, $combine:expr) => {{
            let mut acc: Vec<$t> = vec![$init; n_out];
            for &value in $v.iter() {
                let out: usize = kept.iter().enumerate().map(|(k, &d)| idx[d] * out_strides[k]).sum();
                acc[out] = $combine(acc[out], value);
                for axis in (0..src.rank()).rev() {
                    idx[axis] += 1;
                    if idx[axis] < src.0[axis] {
                        break;
                    }
                    idx[axis] = 0;
                }
            }
            acc
        }};
    }
    let data = match &x.data {
        Data::F32(v) if is_max => Data::F32(run_reduce!(v, f32, f32::NEG_INFINITY, |a: f32, b: f32| fmax(a as f64, b as f64) as f32)),
        Data::F32(v) => Data::F32(run_reduce!(v, f32, 0.0f32, |a: f32, b: f32| a + b)),
        Data::F64(v) if is_max => Data::F64(run_reduce!(v, f64, f64::NEG_INFINITY, fmax)),
        Data::F64(v) => Data::F64(run_reduce!(v, f64, 0.0f64, |a: f64, b: f64| a + b)),
        Data::I32(v) if is_max => Data::I32(run_reduce!(v, i32, i32::MIN, |a: i32, b: i32| a.max(b))),
        Data::I32(v) => Data::I32(run_reduce!(v, i32, 0i32, |a: i32, b: i32| a.wrapping_add(b))),
        other => panic!("reduce on {other:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}

fn matmul(a: &Tensor, b: &Tensor) -> Tensor {
    let (m, k, n) = (a.shape.0[0], a.shape.0[1], b.shape.0[1]);
    macro_rules! mm {
        ($x:expr, $y:expr, $t:ty) => {{
            let mut out = vec![0 as $t; m * n];
            for i in 0..m {
                for j in 0..n {
                    let mut acc: $t = 0.0;
                    for p in 0..k {
                        acc += $x[i * k + p] * $y[p * n + j];
                    }
                    out[i * n + j] = acc;
                }
            }
            out
        }};
    }
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => Data::F32(mm!(x, y, f32)),
        (Data::F64(x), Data::F64(y)) => Data::F64(mm!(x, y, f64)),
        (x, y) => panic!("matmul on {x:?} and {y:?}"),
    };
    Tensor { shape: Shape(vec![m, n]), data }
}
