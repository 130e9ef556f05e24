//! DCE tests: the interpreter is the oracle that the outputs are unchanged.

use crate::ir::dce::dce;
use crate::ir::interp::run;
use crate::ir::verify::assert_valid;
use crate::ir::{Builder, DType, Func, Op, Tensor, Type};

fn f64_ty(dims: &[usize]) -> Type {
    Type::new(DType::F64, dims)
}

fn count(func: &Func, op: &Op) -> usize {
    func.insts.iter().filter(|inst| &inst.op == op).count()
}

#[test]
fn dce_removes_dead_instructions_and_keeps_outputs() {
    let mut b = Builder::new("f", &[f64_ty(&[3]), f64_ty(&[3])]);
    let (x, y) = (b.param(0), b.param(1));
    let dead_exp = b.unary(Op::Exp, x);
    let _dead_chain = b.mul(dead_exp, y);
    let s = b.add(x, y);
    let _dead_tanh = b.unary(Op::Tanh, s);
    let out = b.unary(Op::Neg, s);
    let func = b.finish(vec![out]);
    let res = dce(&func);
    assert_valid(&res, "dce");
    assert_eq!(res.insts.len(), 4, "params + add + neg:\n{}", crate::ir::text::print(&res));
    assert_eq!(count(&res, &Op::Exp) + count(&res, &Op::Mul) + count(&res, &Op::Tanh), 0);
    let inputs = [Tensor::f64(&[3], vec![1.0, -2.0, 0.5]), Tensor::f64(&[3], vec![0.25, 4.0, -1.0])];
    assert_eq!(run(&res, &inputs), run(&func, &inputs));
}

#[test]
fn dce_keeps_unused_params() {
    let mut b = Builder::new("f", &[f64_ty(&[]), f64_ty(&[2]), Type::new(DType::I32, &[])]);
    let x = b.param(0);
    let out = b.unary(Op::Exp, x);
    let func = b.finish(vec![out]);
    let res = dce(&func);
    assert_valid(&res, "dce");
    assert_eq!(res.n_params, 3);
    assert_eq!(res.param_types(), func.param_types());
    assert_eq!(res.insts.len(), 4);
}

#[test]
fn dce_handles_param_and_duplicate_outputs() {
    let mut b = Builder::new("f", &[f64_ty(&[2]), f64_ty(&[2])]);
    let (x, y) = (b.param(0), b.param(1));
    let _dead = b.sub(x, y);
    let m = b.mul(x, y);
    let func = b.finish(vec![m, y, m, x]);
    let res = dce(&func);
    assert_valid(&res, "dce");
    assert_eq!(res.insts.len(), 3);
    assert_eq!(res.outputs.len(), 4);
    let inputs = [Tensor::f64(&[2], vec![1.5, -2.0]), Tensor::f64(&[2], vec![3.0, 0.5])];
    assert_eq!(run(&res, &inputs), run(&func, &inputs));
}

#[test]
fn dce_is_idempotent_and_keeps_order() {
    let mut b = Builder::new("f", &[f64_ty(&[2, 3])]);
    let x = b.param(0);
    let t = b.transpose(x, vec![1, 0]);
    let _dead = b.reduce_sum(t, vec![0]);
    let s = b.reduce_sum(x, vec![1]);
    let c = b.constant(2.0, DType::F64);
    let _dead_c = b.constant(3.0, DType::F64);
    let cb = b.broadcast_to(c, &crate::ir::Shape(vec![2]));
    let out = b.mul(s, cb);
    let func = b.finish(vec![out]);
    let once = dce(&func);
    assert_valid(&once, "dce");
    assert_eq!(dce(&once), once);
    let ops: Vec<&str> = once.insts.iter().map(|inst| crate::ir::op::name(&inst.op)).collect();
    assert_eq!(ops, ["param", "reduce_sum", "constant", "broadcast", "mul"]);
    let inputs = [Tensor::f64(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])];
    assert_eq!(run(&once, &inputs), vec![Tensor::f64(&[2], vec![12.0, 30.0])]);
}
