//! The reference interpreter: the definition of what every IR op computes.
//!
//! Plain loops, no cleverness. Every backend and every rewrite is tested
//! against it. Float32 programs compute in f32 (each result rounded to f32),
//! float64 programs in f64. Reductions and matmul accumulate sequentially in
//! row-major order of the reduced elements.
//!
//! Semantics worth knowing: `max`/`min` propagate NaN and order -0 < +0 (as
//! Cranelift's `fmax`/`fmin` do); float -> i32 conversion truncates toward
//! zero and saturates, NaN converts to 0 (as Rust's `as`). `sign` keeps ±0
//! and NaN; `abs` clears the sign bit. `erf` is libm's (`erf` for f64, `erff`
//! for f32; both under 1 ulp); sin, cos, log1p and expm1 are Rust's `std`.
//! The CPU backend's host routines call these very functions.

mod batch_matmul;
pub mod gather;
mod random;
mod reduce_min;

use super::func::Func;
use super::op::Op;
use super::tensor::{Data, Tensor};
use super::types::{DType, Shape, Type};

/// Runs `func` on `inputs`; returns its outputs. Panics if the input types do
/// not match the parameters (callers check that).
pub fn run(func: &Func, inputs: &[Tensor]) -> Vec<Tensor> {
    run_observed(func, inputs, &mut |_, _, result| result)
}

/// Runs `func` as `run` does, passing each instruction's result through
/// `observe(index, operands, result)`; what it returns is the value the rest
/// of the run uses. Differential tests of a backend use it to check an op
/// whose summation order differs (a GEMM) within its tolerance and then
/// continue from the backend's own result, so that everything downstream
/// can still be compared bitwise.
pub fn run_observed(
    func: &Func,
    inputs: &[Tensor],
    observe: &mut dyn FnMut(usize, &[&Tensor], Tensor) -> Tensor,
) -> Vec<Tensor> {
    assert_eq!(inputs.len(), func.n_params, "interp: wrong number of inputs");
    let mut values: Vec<Tensor> = Vec::with_capacity(func.insts.len());
    // The results of the last scan run, for its adjacent siblings (Note [One
    // instruction per result] in `scan.rs`).
    let mut last_scan: Option<(usize, Vec<Tensor>)> = None;
    for (i, inst) in func.insts.iter().enumerate() {
        let args: Vec<&Tensor> = inst.args.iter().map(|a| &values[a.index()]).collect();
        let res = match &inst.op {
            Op::Scan(s) => {
                let sibling = |&(j, _): &(usize, Vec<Tensor>)| {
                    let prev = &func.insts[j];
                    matches!(&prev.op, Op::Scan(p) if p.same_loop(s)) && prev.args == inst.args
                };
                if !last_scan.as_ref().is_some_and(sibling) {
                    last_scan = Some((i, super::scan::eval(s, &args)));
                }
                last_scan.as_ref().expect("just computed").1[s.output].clone()
            }
            op => eval(op, &args, &inst.ty, inputs),
        };
        debug_assert_eq!(res.ty(), inst.ty, "interp produced the wrong type for {:?}", inst.op);
        let res = observe(i, &args, res);
        assert_eq!(res.ty(), inst.ty, "interp: an observer replaced %{i} by a value of another type");
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
            let values: Vec<f64> =
                (0..ty.shape.num_elements()).map(|flat| ((flat / strides[*axis]) % ty.shape.0[*axis]) as f64).collect();
            Tensor::from_f64(ty.dtype, ty.shape.dims(), &values)
        }
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => unary(op, args[0]),
        Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => unary(op, args[0]),
        Op::Abs | Op::Sign | Op::Floor | Op::Ceil | Op::Round => unary(op, args[0]),
        Op::StopGradient => args[0].clone(),
        Op::ArgMax { axis } => argmax(args[0], *axis, ty),
        Op::Slice { start, stride, .. } => {
            let src_strides = args[0].shape.strides();
            let index_map = |out_idx: &[usize]| -> usize {
                (0..out_idx.len()).map(|d| (start[d] + out_idx[d] * stride[d]) * src_strides[d]).sum()
            };
            gather_by(args[0], &ty.shape, index_map)
        }
        Op::Pad { low, interior, .. } => pad(args[0], low, interior, ty),
        Op::Concat { axis } => concat(args, *axis, ty),
        Op::Reverse { dims } => super::interp_window::reverse(args[0], dims),
        Op::Conv2d(attrs) => super::interp_window::conv2d(args[0], args[1], attrs, ty),
        Op::ReduceWindowSum(window) => super::interp_window::reduce_window(args[0], window, ty, false),
        Op::ReduceWindowMax(window) => super::interp_window::reduce_window(args[0], window, ty, true),
        Op::SelectAndScatter(window) => super::interp_window::select_and_scatter(args[0], args[1], window),
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
                dims.iter().enumerate().map(|(i, &d)| if src.0[i] == 1 { 0 } else { out_idx[d] * src_strides[i] }).sum()
            };
            gather_by(args[0], &ty.shape, index_map)
        }
        Op::Reshape => Tensor { shape: ty.shape.clone(), data: args[0].data.clone() },
        Op::Transpose { perm } => {
            let src_strides = args[0].shape.strides();
            let index_map = |out_idx: &[usize]| -> usize {
                perm.iter().enumerate().map(|(i, &p)| out_idx[i] * src_strides[p]).sum()
            };
            gather_by(args[0], &ty.shape, index_map)
        }
        Op::ReduceSum { axes } => reduce(args[0], axes, ty, false),
        Op::ReduceMax { axes } => reduce(args[0], axes, ty, true),
        Op::MatMul => matmul(args[0], args[1]),
        Op::ReduceMin { axes } => reduce_min::reduce_min(args[0], axes, ty),
        Op::Gather => gather::gather(args[0], args[1], ty),
        Op::ScatterAdd => gather::scatter_add(args[0], args[1], ty),
        Op::BatchMatMul => batch_matmul::batch_matmul(args[0], args[1], ty),
        Op::RandomBits => random::random_bits(args[0], ty),
        Op::RandomSplit => random::random_split(args[0], ty),
        Op::RandomUniform => random::random_uniform(args[0], ty),
        Op::Scan(s) => super::scan::eval(s, args).swap_remove(s.output),
        // The function itself; the rule only matters to reverse mode.
        Op::CustomVjp(c) => {
            let inputs: Vec<Tensor> = args.iter().map(|&t| t.clone()).collect();
            run(&c.primal, &inputs).swap_remove(c.output)
        }
    }
}

/// NaN-propagating maximum with -0 < +0.
pub fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
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
        if a.is_sign_negative() {
            a
        } else {
            b
        }
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
            Op::Log1p => $x.ln_1p(),
            Op::Expm1 => $x.exp_m1(),
            Op::Logistic => logistic($x),
            Op::Sin => $x.sin(),
            Op::Cos => $x.cos(),
            Op::Rsqrt => 1.0 / $x.sqrt(),
            Op::Erf => Erf::erf($x),
            Op::Abs => $x.abs(),
            Op::Sign => sign($x),
            Op::Floor => $x.floor(),
            Op::Ceil => $x.ceil(),
            Op::Round => $x.round_ties_even(),
            other => unreachable!("not a unary op: {other:?}"),
        }
    };
}

/// Float types the scalar helpers below work on.
pub trait Float:
    Copy + PartialOrd + std::ops::Neg<Output = Self> + std::ops::Div<Output = Self> + std::ops::Add<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn exp(self) -> Self;
}

impl Float for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn exp(self) -> f32 {
        f32::exp(self)
    }
}

impl Float for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn exp(self) -> f64 {
        f64::exp(self)
    }
}

/// The logistic sigmoid without overflow: `1 / (1 + exp(-x))` for `x >= 0`
/// (exp(-x) <= 1), `e / (1 + e)` with `e = exp(x)` for `x < 0` (e < 1). NaN
/// takes the second branch and stays NaN.
pub fn logistic<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// -1, 1, or `x` itself for ±0 and NaN.
pub fn sign<T: Float>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        x
    }
}

/// libm's error function at each float width.
pub trait Erf {
    fn erf(self) -> Self;
}

impl Erf for f32 {
    fn erf(self) -> f32 {
        libm::erff(self)
    }
}

impl Erf for f64 {
    fn erf(self) -> f64 {
        libm::erf(self)
    }
}

fn unary(op: &Op, x: &Tensor) -> Tensor {
    let data = match &x.data {
        Data::F32(v) => Data::F32(v.iter().map(|&a| float_unary!(op, a)).collect()),
        Data::F64(v) => Data::F64(v.iter().map(|&a| float_unary!(op, a)).collect()),
        Data::I32(v) if *op == Op::Neg => Data::I32(v.iter().map(|&a| a.wrapping_neg()).collect()),
        Data::I32(v) if *op == Op::Abs => Data::I32(v.iter().map(|&a| a.wrapping_abs()).collect()),
        Data::I32(v) if *op == Op::Sign => Data::I32(v.iter().map(|&a| a.signum()).collect()),
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
        (Data::F32(x), Data::F32(y)) => {
            Data::F32(x.iter().zip(y).map(|(&p, &q)| float_binary!(op, p, q, f32)).collect())
        }
        (Data::F64(x), Data::F64(y)) => {
            Data::F64(x.iter().zip(y).map(|(&p, &q)| float_binary!(op, p, q, f64)).collect())
        }
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
        (Data::F32(x), Data::F32(y)) => {
            Data::F32(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect())
        }
        (Data::F64(x), Data::F64(y)) => {
            Data::F64(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect())
        }
        (Data::I32(x), Data::I32(y)) => {
            Data::I32(cond.iter().zip(x.iter().zip(y)).map(|(&c, (&p, &q))| if c { p } else { q }).collect())
        }
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
    if let (false, Some(n)) = (is_max, super::sum_order::blocked_run(x.dtype(), src.dims(), axes)) {
        // Each output's run is consecutive in the source: output o sums
        // elements o*n .. (o+1)*n, in the blocked order.
        let lanes = super::sum_order::lanes(x.dtype());
        let data = match &x.data {
            Data::F32(v) => Data::F32(v.chunks(n).map(|run| super::sum_order::blocked_sum(run, lanes)).collect()),
            Data::F64(v) => Data::F64(v.chunks(n).map(|run| super::sum_order::blocked_sum(run, lanes)).collect()),
            other => unreachable!("blocked sums are float: {other:?}"),
        };
        return Tensor { shape: ty.shape.clone(), data };
    }
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
        Data::F32(v) if is_max => {
            Data::F32(run_reduce!(v, f32, f32::NEG_INFINITY, |a: f32, b: f32| fmax(a as f64, b as f64) as f32))
        }
        Data::F32(v) => Data::F32(run_reduce!(v, f32, 0.0f32, |a: f32, b: f32| a + b)),
        Data::F64(v) if is_max => Data::F64(run_reduce!(v, f64, f64::NEG_INFINITY, fmax)),
        Data::F64(v) => Data::F64(run_reduce!(v, f64, 0.0f64, |a: f64, b: f64| a + b)),
        Data::I32(v) if is_max => Data::I32(run_reduce!(v, i32, i32::MIN, |a: i32, b: i32| a.max(b))),
        Data::I32(v) => Data::I32(run_reduce!(v, i32, 0i32, |a: i32, b: i32| a.wrapping_add(b))),
        other => panic!("reduce on {other:?}"),
    };
    Tensor { shape: ty.shape.clone(), data }
}

/// First index of the maximum along `axis`: a later element wins only if it
/// is greater, or is NaN while the best so far is not (so NaN beats numbers
/// and the first NaN stays).
fn argmax(x: &Tensor, axis: usize, ty: &Type) -> Tensor {
    let dims = x.shape.dims();
    let outer: usize = dims[..axis].iter().product();
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    fn run<T: Copy + PartialOrd>(v: &[T], lowest: T, outer: usize, n: usize, inner: usize) -> Vec<i32> {
        #[allow(clippy::eq_op)]
        let is_nan = |a: T| a != a;
        let mut res = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let (mut best, mut best_idx) = (lowest, 0);
                for k in 0..n {
                    let value = v[(o * n + k) * inner + i];
                    if value > best || (is_nan(value) && !is_nan(best)) {
                        best = value;
                        best_idx = k as i32;
                    }
                }
                res.push(best_idx);
            }
        }
        res
    }
    let res = match &x.data {
        Data::F32(v) => run(v, f32::NEG_INFINITY, outer, n, inner),
        Data::F64(v) => run(v, f64::NEG_INFINITY, outer, n, inner),
        Data::I32(v) => run(v, i32::MIN, outer, n, inner),
        other => panic!("argmax on {other:?}"),
    };
    Tensor { shape: ty.shape.clone(), data: Data::I32(res) }
}

/// Zero padding: the result starts as zeros and each operand element lands at
/// `low[d] + idx[d] * (interior[d] + 1)` along every dim.
fn pad(x: &Tensor, low: &[usize], interior: &[usize], ty: &Type) -> Tensor {
    let out_strides = ty.shape.strides();
    let mut res = Tensor::zeros(ty);
    let mut idx = vec![0usize; x.shape.rank()];
    for flat in 0..x.shape.num_elements() {
        let dst: usize = (0..idx.len()).map(|d| (low[d] + idx[d] * (interior[d] + 1)) * out_strides[d]).sum();
        copy_element(&x.data, flat, &mut res.data, dst);
        advance(&mut idx, x.shape.dims());
    }
    res
}

/// Operands placed one after another along `axis`.
fn concat(xs: &[&Tensor], axis: usize, ty: &Type) -> Tensor {
    let out_strides = ty.shape.strides();
    let mut res = Tensor::zeros(ty);
    let mut offset = 0;
    for x in xs {
        let mut idx = vec![0usize; x.shape.rank()];
        for flat in 0..x.shape.num_elements() {
            let dst: usize =
                (0..idx.len()).map(|d| (idx[d] + if d == axis { offset } else { 0 }) * out_strides[d]).sum();
            copy_element(&x.data, flat, &mut res.data, dst);
            advance(&mut idx, x.shape.dims());
        }
        offset += x.shape.0[axis];
    }
    res
}

/// `dst[j] = src[i]` for two buffers of one dtype.
fn copy_element(src: &Data, i: usize, dst: &mut Data, j: usize) {
    match (src, dst) {
        (Data::F32(s), Data::F32(d)) => d[j] = s[i],
        (Data::F64(s), Data::F64(d)) => d[j] = s[i],
        (Data::I32(s), Data::I32(d)) => d[j] = s[i],
        (Data::Bool(s), Data::Bool(d)) => d[j] = s[i],
        (s, d) => panic!("copy between {s:?} and {d:?}"),
    }
}

/// Advances a multi-index over `dims` in row-major order.
fn advance(idx: &mut [usize], dims: &[usize]) {
    for axis in (0..dims.len()).rev() {
        idx[axis] += 1;
        if idx[axis] < dims[axis] {
            return;
        }
        idx[axis] = 0;
    }
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

#[cfg(test)]
mod tests;
