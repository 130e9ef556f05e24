//! The IR verifier: checks every structural and typing invariant of a `Func`.
//!
//! Run after every pass in tests and debug builds. A failure is a compiler
//! bug, never a user error, so callers panic with the pass name and the dump.

use super::func::Func;
use super::op::{arity, Op};
use super::types::{DType, Type};

pub fn verify(func: &Func) -> Result<(), String> {
    for i in 0..func.insts.len() {
        check_inst(func, i)?;
    }
    if let Some(bad) = func.outputs.iter().find(|o| o.index() >= func.insts.len()) {
        return Err(format!("output %{} is not defined", bad.0));
    }
    Ok(())
}

/// Checks instruction `i` of `func`, given that the ones before it are valid
/// (the parser checks each line as it reads it).
pub fn check_inst(func: &Func, i: usize) -> Result<(), String> {
    let inst = &func.insts[i];
    let err = |msg: String| Err(format!("%{i} = {}: {msg}", super::op::name(&inst.op)));
    match arity(&inst.op) {
        Some(n) if inst.args.len() != n => return err(format!("expects {n} args, has {}", inst.args.len())),
        None if inst.args.is_empty() => return err("expects at least one arg".into()),
        Some(_) | None => {}
    }
    if let Some(bad) = inst.args.iter().find(|a| a.index() >= i) {
        return err(format!("uses %{} before its definition", bad.0));
    }
    let is_param = matches!(inst.op, Op::Param(_));
    if is_param != (i < func.n_params) || (is_param && inst.op != Op::Param(i as u32)) {
        return err("params must be exactly the first instructions, in order".into());
    }
    let arg = |k: usize| &func.insts[inst.args[k].index()].ty;
    if let Err(msg) = check_type(&inst.op, &inst.ty, &(0..inst.args.len()).map(arg).collect::<Vec<_>>()) {
        return err(msg);
    }
    Ok(())
}

fn check_type(op: &Op, ty: &Type, args: &[&Type]) -> Result<(), String> {
    let want = |cond: bool, what: &str| if cond { Ok(()) } else { Err(what.to_string()) };
    match op {
        Op::Param(_) => Ok(()),
        Op::Constant(_) => want(ty.shape.rank() == 0, "constant must be a scalar"),
        Op::Iota { axis } => want(*axis < ty.shape.rank() && ty.dtype != DType::Bool, "iota axis/dtype"),
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => {
            want(args[0] == ty, "result type must equal operand type")?;
            want(op == &Op::Neg || ty.dtype.is_float(), "transcendental op needs a float operand")
        }
        Op::Log1p
        | Op::Expm1
        | Op::Logistic
        | Op::Sin
        | Op::Cos
        | Op::Rsqrt
        | Op::Erf
        | Op::Floor
        | Op::Ceil
        | Op::Round => {
            want(args[0] == ty, "result type must equal operand type")?;
            want(ty.dtype.is_float(), "transcendental op needs a float operand")
        }
        Op::Abs | Op::Sign => {
            want(args[0] == ty, "result type must equal operand type")?;
            want(ty.dtype != DType::Bool, "abs/sign need a float or i32 operand")
        }
        Op::StopGradient => want(args[0] == ty, "result type must equal operand type"),
        Op::ArgMax { axis } => {
            let src = args[0];
            want(src.dtype != DType::Bool, "argmax needs a float or i32 operand")?;
            want(*axis < src.shape.rank(), "axis out of range")?;
            want(src.shape.0[*axis] > 0, "argmax over an empty axis")?;
            let dims: Vec<usize> = (0..src.shape.rank()).filter(|d| d != axis).map(|d| src.shape.0[d]).collect();
            want(ty == &Type::new(DType::I32, &dims), "argmax yields i32 with the axis removed")
        }
        Op::Slice { start, limit, stride } => {
            let src = args[0];
            let rank = src.shape.rank();
            want(
                start.len() == rank && limit.len() == rank && stride.len() == rank,
                "one start, limit, stride per dim",
            )?;
            let mut dims = Vec::with_capacity(rank);
            for d in 0..rank {
                want(start[d] <= limit[d] && limit[d] <= src.shape.0[d], "need start <= limit <= dim")?;
                want(stride[d] >= 1, "stride must be at least 1")?;
                dims.push((limit[d] - start[d]).div_ceil(stride[d]));
            }
            want(ty == &Type::new(src.dtype, &dims), "slice result type")
        }
        Op::Pad { low, high, interior } => {
            let src = args[0];
            let rank = src.shape.rank();
            want(low.len() == rank && high.len() == rank && interior.len() == rank, "one low, high, interior per dim")?;
            let mut dims = Vec::with_capacity(rank);
            for d in 0..rank {
                // Checked: the parser hands us arbitrary attribute values.
                let n = src.shape.0[d];
                let size = n
                    .saturating_sub(1)
                    .checked_mul(interior[d])
                    .and_then(|i| i.checked_add(n))
                    .and_then(|s| s.checked_add(low[d]))
                    .and_then(|s| s.checked_add(high[d]));
                dims.push(size.ok_or_else(|| "padded size overflows".to_string())?);
            }
            want(ty == &Type::new(src.dtype, &dims), "pad result type")
        }
        Op::Concat { axis } => {
            let first = args[0];
            want(*axis < first.shape.rank(), "axis out of range")?;
            let mut total: usize = 0;
            for a in args {
                want(
                    a.dtype == first.dtype && a.shape.rank() == first.shape.rank(),
                    "operands differ in dtype or rank",
                )?;
                let same_off_axis = (0..first.shape.rank()).all(|d| d == *axis || a.shape.0[d] == first.shape.0[d]);
                want(same_off_axis, "operands differ off the concat axis")?;
                total = total.checked_add(a.shape.0[*axis]).ok_or_else(|| "concat size overflows".to_string())?;
            }
            let mut dims = first.shape.0.clone();
            dims[*axis] = total;
            want(ty == &Type::new(first.dtype, &dims), "concat result type")
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => {
            want(args[0] == ty && args[1] == ty, "operands and result must have one type")?;
            want(ty.dtype != DType::Bool, "arithmetic on bool")
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => {
            want(args[0] == args[1], "compared operands must have one type")?;
            want(ty == &args[0].with_dtype(DType::Bool), "comparison yields bool of operand shape")
        }
        Op::Select => {
            want(args[0] == &ty.with_dtype(DType::Bool), "select condition must be bool of result shape")?;
            want(args[1] == ty && args[2] == ty, "select branches must have the result type")
        }
        Op::Convert => want(args[0].shape == ty.shape, "convert keeps the shape"),
        Op::Broadcast { dims } => {
            want(args[0].dtype == ty.dtype, "broadcast keeps the dtype")?;
            want(dims.len() == args[0].shape.rank(), "one target dim per operand dim")?;
            want(dims.windows(2).all(|w| w[0] < w[1]), "dims must increase")?;
            for (i, &d) in dims.iter().enumerate() {
                want(d < ty.shape.rank(), "dim out of range")?;
                let (src, dst) = (args[0].shape.0[i], ty.shape.0[d]);
                want(src == dst || src == 1, "operand dim must equal target or be 1")?;
            }
            Ok(())
        }
        Op::Reshape => {
            want(args[0].dtype == ty.dtype, "reshape keeps the dtype")?;
            want(args[0].shape.num_elements() == ty.shape.num_elements(), "reshape keeps the size")
        }
        Op::Transpose { perm } => {
            let mut sorted = perm.clone();
            sorted.sort();
            want(sorted == (0..args[0].shape.rank()).collect::<Vec<_>>(), "perm must be a permutation")?;
            let dims: Vec<usize> = perm.iter().map(|&p| args[0].shape.0[p]).collect();
            want(ty == &Type::new(args[0].dtype, &dims), "transpose result type")
        }
        Op::ReduceSum { axes } | Op::ReduceMax { axes } | Op::ReduceMin { axes } => {
            want(axes.windows(2).all(|w| w[0] < w[1]), "axes must be sorted and unique")?;
            want(axes.iter().all(|&a| a < args[0].shape.rank()), "axis out of range")?;
            let dims: Vec<usize> =
                (0..args[0].shape.rank()).filter(|d| !axes.contains(d)).map(|d| args[0].shape.0[d]).collect();
            want(ty == &Type::new(args[0].dtype, &dims), "reduce result type")
        }
        Op::Reverse { dims } => {
            super::window::check_reverse(args[0].shape.rank(), dims)?;
            want(args[0] == ty, "result type must equal operand type")
        }
        Op::Conv2d(attrs) => {
            let dims = super::window::conv2d_dims(args[0], args[1], attrs)?;
            want(ty == &Type::new(args[0].dtype, &dims), "conv2d result type")
        }
        Op::ReduceWindowSum(window) | Op::ReduceWindowMax(window) => {
            let dims = super::window::reduce_window_dims(args[0], window)?;
            want(ty == &Type::new(args[0].dtype, &dims), "reduce_window result type")
        }
        Op::SelectAndScatter(window) => {
            let dims = super::window::reduce_window_dims(args[0], window)?;
            want(args[1] == &Type::new(args[0].dtype, &dims), "select_and_scatter cotangent has one value per window")?;
            want(ty == args[0], "select_and_scatter result type equals the operand's")
        }
        Op::MatMul => {
            let (a, b) = (args[0], args[1]);
            want(a.shape.rank() == 2 && b.shape.rank() == 2, "matmul operands are rank 2")?;
            want(a.dtype == b.dtype && a.dtype == ty.dtype && ty.dtype.is_float(), "matmul dtypes")?;
            want(a.shape.0[1] == b.shape.0[0], "matmul inner dims")?;
            want(ty.shape.0 == vec![a.shape.0[0], b.shape.0[1]], "matmul result shape")
        }
        Op::Gather => super::verify_ext::gather(ty, args),
        Op::ScatterAdd => super::verify_ext::scatter_add(ty, args),
        Op::BatchMatMul => super::verify_ext::batch_matmul(ty, args),
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => super::verify_ext::random(op, ty, args),
        Op::Scan(s) => super::scan::check(s, ty, args),
        Op::CustomVjp(c) => super::custom_vjp::check(c, ty, args),
    }
}

/// `func`, verified in debug builds (every test run): the passes outside
/// the transforms' and the optimizer's own checks end with this, so that the
/// verifier runs after every pass.
pub fn debug_valid(func: Func, pass: &str) -> Func {
    if cfg!(debug_assertions) {
        assert_valid(&func, pass);
    }
    func
}

/// Panics with the pass name and the IR dump if `func` is malformed.
pub fn assert_valid(func: &Func, pass: &str) {
    if let Err(msg) = verify(func) {
        panic!("IR verifier failed after `{pass}`: {msg}\n{}", super::text::print(func));
    }
}
