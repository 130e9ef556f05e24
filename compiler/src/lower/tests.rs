//! Lowering tests for the elementwise and indexing builtins: each lowers to
//! its IR op and computes what the interpreter's scalar definition says.

use crate::ir::{interp, Op};

/// Lowers `main` in `src` (unoptimized) and runs it; returns the printed tensors.
fn run_main(src: &str) -> (crate::ir::Func, Vec<crate::ir::Tensor>) {
    let (prog, diags) = super::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out = interp::run(&script.func, &[]);
    (script.func, out)
}

#[test]
fn elementwise_builtins_lower_to_their_ops() {
    let (func, out) = run_main(
        "use nn.sigmoid
fn main() {
    let x = linspace(-2.0, 2.0, 5)
    print(sigmoid(x), abs(x), sign(x), erf(x), log1p(abs(x)), expm1(x), sin(x), cos(x), rsqrt(abs(x) + 1.0), stop_gradient(x))
}
",
    );
    for op in
        [Op::Logistic, Op::Abs, Op::Sign, Op::Erf, Op::Log1p, Op::Expm1, Op::Sin, Op::Cos, Op::Rsqrt, Op::StopGradient]
    {
        assert!(func.insts.iter().any(|i| i.op == op), "no {op:?} in\n{}", crate::ir::text::print(&func));
    }
    let x = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
    let want: [fn(f32) -> f32; 10] = [
        interp::logistic::<f32>,
        f32::abs,
        interp::sign::<f32>,
        <f32 as interp::Erf>::erf,
        |v| v.abs().ln_1p(),
        f32::exp_m1,
        f32::sin,
        f32::cos,
        |v| 1.0 / (v.abs() + 1.0).sqrt(),
        |v| v,
    ];
    for (k, f) in want.iter().enumerate() {
        let expect: Vec<f32> = x.iter().map(|&v| f(v)).collect();
        assert_eq!(out[k].as_f32().unwrap(), &expect[..], "output {k}");
    }
}

#[test]
fn argmax_and_stop_gradient_in_programs() {
    let (_, out) = run_main(
        "fn f(w: f32[3]) -> f32 {
    sum(w * stop_gradient(w))
}
fn main() {
    let m = float(one_hot([2, 0], 3)) * 2.0 - 1.0
    print(argmax(m), argmax(m, axis = 0), grad(f)(linspace(1.0, 3.0, 3)))
}
",
    );
    assert_eq!(out[0], crate::ir::Tensor::i32(&[2], vec![2, 0]));
    assert_eq!(out[1], crate::ir::Tensor::i32(&[3], vec![1, 0, 0]));
    // d/dw sum(w * stop_gradient(w)) = stop_gradient(w) = w.
    assert_eq!(out[2], crate::ir::Tensor::f32(&[3], vec![1.0, 2.0, 3.0]));
}
