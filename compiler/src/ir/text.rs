//! The IR's text form, as `jlc dump --stage ir` prints it; `parse.rs` reads
//! it back (`parse(print(f)) == f`).
//!
//! ```text
//! func @loss(%0: f32[8, 4], %1: f32[4]) {
//!   %2 = broadcast{dims=[1]} %1 : f32[8, 4]
//!   %3 = add %0, %2 : f32[8, 4]
//!   return %3
//! }
//! ```
//!
//! A `scan` instruction's body is a nested function printed on the lines
//! after it, indented four more spaces.

use super::func::Func;
use super::op::{name, Op};
use std::fmt::Write;

pub fn print(func: &Func) -> String {
    let mut out = String::new();
    print_into(&mut out, func, "");
    out
}

/// Prints `func` with every line prefixed by `indent`. A scan's body follows
/// its instruction's line, indented four more spaces.
fn print_into(out: &mut String, func: &Func, indent: &str) {
    let params = (0..func.n_params).map(|i| format!("%{i}: {}", func.insts[i].ty)).collect::<Vec<_>>().join(", ");
    writeln!(out, "{indent}func @{}({params}) {{", func.name).unwrap();
    for (i, inst) in func.insts.iter().enumerate().skip(func.n_params) {
        let attrs = match &inst.op {
            Op::Constant(v) => format!("{{value={v:?}}}"),
            Op::Iota { axis } => format!("{{axis={axis}}}"),
            Op::Broadcast { dims } => format!("{{dims={dims:?}}}"),
            Op::Transpose { perm } => format!("{{perm={perm:?}}}"),
            Op::ReduceSum { axes } | Op::ReduceMax { axes } | Op::ReduceMin { axes } => format!("{{axes={axes:?}}}"),
            Op::ArgMax { axis } | Op::Concat { axis } => format!("{{axis={axis}}}"),
            Op::Slice { start, limit, stride } => format!("{{start={start:?}, limit={limit:?}, stride={stride:?}}}"),
            Op::Pad { low, high, interior } => format!("{{low={low:?}, high={high:?}, interior={interior:?}}}"),
            Op::Reverse { dims } => format!("{{dims={dims:?}}}"),
            Op::Conv2d(c) => format!(
                "{{stride={:?}, low={:?}, high={:?}, lhs_dilation={:?}, rhs_dilation={:?}, groups={}}}",
                c.stride, c.low, c.high, c.lhs_dilation, c.rhs_dilation, c.groups
            ),
            Op::ReduceWindowSum(w) | Op::ReduceWindowMax(w) | Op::SelectAndScatter(w) => {
                format!("{{size={:?}, stride={:?}, low={:?}, high={:?}}}", w.size, w.stride, w.low, w.high)
            }
            Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => String::new(),
            Op::Abs | Op::Sign | Op::StopGradient => String::new(),
            Op::Floor | Op::Ceil | Op::Round => String::new(),
            Op::Param(_) | Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => String::new(),
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => String::new(),
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => String::new(),
            Op::Select | Op::Convert | Op::Reshape | Op::MatMul => String::new(),
            Op::Gather | Op::ScatterAdd | Op::BatchMatMul => String::new(),
            Op::RandomBits | Op::RandomSplit | Op::RandomUniform => String::new(),
            Op::CustomVjp(c) => format!("{{output={}}}", c.output),
            Op::Scan(s) => format!(
                "{{n_const={}, n_carry={}, length={}, reverse={}, output={}}}",
                s.n_const, s.n_carry, s.length, s.reverse, s.output
            ),
        };
        let args = inst.args.iter().map(|a| format!("%{}", a.0)).collect::<Vec<_>>().join(", ");
        let sep = if args.is_empty() { "" } else { " " };
        writeln!(out, "{indent}  %{i} = {}{attrs}{sep}{args} : {}", name(&inst.op), inst.ty).unwrap();
        if let Op::Scan(s) = &inst.op {
            print_into(out, &s.body, &format!("{indent}    "));
        }
        if let Op::CustomVjp(c) = &inst.op {
            for f in [&c.primal, &c.fwd, &c.bwd] {
                print_into(out, f, &format!("{indent}    "));
            }
        }
    }
    let outs = func.outputs.iter().map(|v| format!("%{}", v.0)).collect::<Vec<_>>().join(", ");
    writeln!(out, "{indent}  return {outs}\n{indent}}}").unwrap();
}
