//! `Op::CustomVjp` at the IR level, on a rule that deliberately differs from
//! the derivative of its function (`x * x`, whose rule says `3 x ct`), so
//! each check shows which one a pass used: reverse mode the rule, forward
//! mode and evaluation the function. Also the text round trip, inlining,
//! batching and the CPU backend, each against the interpreter.

use std::sync::Arc;

use crate::autodiff;
use crate::ir::{interp, parse, text, Builder, DType, Func, Tensor, Type};

fn vec3() -> Type {
    Type::new(DType::F64, &[3])
}

/// `loss` in float32.
fn loss_f32() -> Func {
    let text = text::print(&loss()).replace("f64", "f32");
    parse::parse(&text).expect("the same program in f32")
}

/// `loss(x, w) = sum(square(x) * w)` where `square` is `x * x` with the rule
/// `bwd(x, ct) = 3 x ct`.
fn loss() -> Func {
    let primal = {
        let mut b = Builder::new("square", &[vec3()]);
        let x = b.param(0);
        let y = b.mul(x, x);
        b.finish(vec![y])
    };
    let fwd = {
        let mut b = Builder::new("square_fwd", &[vec3()]);
        let x = b.param(0);
        let y = b.mul(x, x);
        b.finish(vec![y, x])
    };
    let bwd = {
        let mut b = Builder::new("square_bwd", &[vec3(), vec3()]);
        let (x, ct) = (b.param(0), b.param(1));
        let three = b.full(3.0, &vec3());
        let t = b.mul(three, x);
        let g = b.mul(t, ct);
        b.finish(vec![g])
    };
    let mut b = Builder::new("loss", &[vec3(), vec3()]);
    let (x, w) = (b.param(0), b.param(1));
    let sq = b.custom_vjp(Arc::new(primal), Arc::new(fwd), Arc::new(bwd), &[x])[0];
    let prod = b.mul(sq, w);
    let l = b.reduce_sum(prod, vec![0]);
    b.finish(vec![l])
}

fn t3(v: [f64; 3]) -> Tensor {
    Tensor::from_f64(DType::F64, &[3], &v)
}

const X: [f64; 3] = [0.5, -2.0, 3.0];
const W: [f64; 3] = [1.5, 0.25, -1.0];

#[test]
fn evaluation_runs_the_function_and_inlining_keeps_it() {
    let f = loss();
    crate::ir::verify::assert_valid(&f, "test");
    let want: f64 = X.iter().zip(&W).map(|(x, w)| x * x * w).sum();
    let got = interp::run(&f, &[t3(X), t3(W)])[0].scalar_value();
    assert_eq!(got, want);
    let inlined = super::inline_rules(&f);
    assert!(!super::has_rules(&inlined), "{}", text::print(&inlined));
    assert_eq!(interp::run(&inlined, &[t3(X), t3(W)])[0].scalar_value(), want);
}

#[test]
fn text_form_parses_back() {
    let f = loss();
    let printed = text::print(&f);
    assert!(printed.contains("custom_vjp{output=0}"), "{printed}");
    let parsed = parse::parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(parsed, f);
    // A truncated rule is an error, not a panic.
    let cut: String = printed.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(parse::parse(&cut).is_err());
}

#[test]
fn reverse_mode_uses_the_rule_and_forward_mode_the_function() {
    let f = loss();
    let g = autodiff::grad(&f, &[0]);
    crate::ir::verify::assert_valid(&g, "grad");
    let out = interp::run(&g, &[t3(X), t3(W)]);
    let rule: Vec<f64> = X.iter().zip(&W).map(|(x, w)| 3.0 * x * w).collect();
    assert_eq!(out[1].to_f64_vec(), rule, "d loss / dx by the rule 3 x ct");

    let j = autodiff::jvp(&f, &[0]);
    let t = [1.0, -1.0, 0.5];
    let out = interp::run(&j, &[t3(X), t3(W), t3(t)]);
    let true_derivative: f64 = (0..3).map(|i| 2.0 * X[i] * W[i] * t[i]).sum();
    assert!((out[1].scalar_value() - true_derivative).abs() < 1e-12);
}

#[test]
fn a_gradient_of_the_gradient_differentiates_the_rule() {
    // d/dx of the rule's gradient 3 x w is 3 w on the diagonal: with the
    // seed t, the HVP is 3 w t.
    let g = autodiff::grad(&loss(), &[0]);
    let hvp = autodiff::jvp(&g, &[0]);
    let t = [1.0, 2.0, -1.0];
    let out = interp::run(&hvp, &[t3(X), t3(W), t3(t)]);
    let want: Vec<f64> = (0..3).map(|i| 3.0 * W[i] * t[i]).collect();
    assert_eq!(out.last().unwrap().to_f64_vec(), want);
}

#[test]
fn batched_gradients_equal_per_example_gradients() {
    let g = autodiff::grad(&loss(), &[0]);
    // x batched at axis 1, w shared.
    let vg = autodiff::vmap(&g, &[Some(1), None], 2);
    let xs = [[0.5, -2.0, 3.0], [1.0, 0.0, -4.0]];
    let xt = Tensor::from_f64(DType::F64, &[3, 2], &[xs[0][0], xs[1][0], xs[0][1], xs[1][1], xs[0][2], xs[1][2]]);
    let out = interp::run(&vg, &[xt, t3(W)]);
    let grads = out[1].to_f64_vec();
    for (e, x) in xs.iter().enumerate() {
        let one = interp::run(&g, &[t3(*x), t3(W)]);
        assert_eq!(&grads[e * 3..e * 3 + 3], one[1].to_f64_vec().as_slice(), "example {e}");
    }
    // The batched program still carries the rule into a gradient of it.
    let vf = autodiff::vmap(&loss(), &[Some(0), None], 2);
    let summed = {
        let mut b = Builder::new("summed", &vf.param_types());
        let params: Vec<_> = (0..vf.n_params).map(|i| b.param(i)).collect();
        let vals = autodiff::inline(&mut b, &vf, &params);
        let l = b.reduce_sum(vals[vf.outputs[0].index()], vec![0]);
        b.finish(vec![l])
    };
    let gv = autodiff::grad(&summed, &[0]);
    let xr = Tensor::from_f64(DType::F64, &[2, 3], &[0.5, -2.0, 3.0, 1.0, 0.0, -4.0]);
    let out = interp::run(&gv, &[xr, t3(W)]);
    let want: Vec<f64> = xs.iter().flat_map(|x| (0..3).map(move |i| 3.0 * x[i] * W[i])).collect();
    assert_eq!(out[1].to_f64_vec(), want);
}

#[test]
fn the_cpu_backend_runs_the_gradient_as_the_interpreter_does() {
    let g = autodiff::grad(&loss(), &[0, 1]);
    let inputs = [t3(X), t3(W)];
    let want = interp::run(&g, &inputs);
    let mut compiled = crate::codegen::cpu::compile(&g).expect("compiles");
    assert_eq!(compiled.run(&inputs), want);
}

#[test]
fn widening_to_f64_widens_the_rule_too() {
    // How the gradient checks run a float32 program in float64.
    let wide = loss_f32().widened_to_f64();
    crate::ir::verify::assert_valid(&wide, "widened");
    assert_eq!(wide, loss());
    let g = autodiff::grad(&wide, &[0]);
    let rule: Vec<f64> = X.iter().zip(&W).map(|(x, w)| 3.0 * x * w).collect();
    assert_eq!(interp::run(&g, &[t3(X), t3(W)])[1].to_f64_vec(), rule);
}
