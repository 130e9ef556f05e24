//! The embedding API against hand derivatives and float64 finite
//! differences; its errors name what was wrong.

use super::*;
use runtime::Backend;

const SRC: &str = "
fn predict(w: f32[D], b: f32, x: f32[N, D]) -> f32[N] = x @ w + b

fn loss(w, b, x, y) = mean((predict(w, b, x) - y) ^ 2)

fn cubic(x: f64[N]) -> f64 = sum(x ^ 3 + 2.0 * x)
";

fn module() -> Module {
    Module::from_source("embedded.jl", SRC).unwrap()
}

#[test]
fn calls_a_function_and_compiles_once_per_signature() {
    let m = module();
    assert_eq!(m.functions(), ["predict", "loss", "cubic"]);
    let mut f = m.function("predict").unwrap().jit(Backend::Cpu);
    let w = Tensor::f32(&[2], vec![1.0, -2.0]);
    let out =
        f.call(&[w.clone(), Tensor::scalar_f32(0.5), Tensor::f32(&[3, 2], vec![1., 2., 3., 4., 5., 6.])]).unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[1.0 - 4.0 + 0.5, 3.0 - 8.0 + 0.5, 5.0 - 12.0 + 0.5]);
    // Another batch size is another signature; the same one is reused.
    f.call(&[w.clone(), Tensor::scalar_f32(0.0), Tensor::f32(&[1, 2], vec![1., 1.])]).unwrap();
    f.call(&[w, Tensor::scalar_f32(1.0), Tensor::f32(&[1, 2], vec![2., 2.])]).unwrap();
    assert_eq!(f.compiled_signatures(), 2);
}

#[test]
fn grad_matches_finite_differences_in_float64() {
    let m = module();
    let mut g = m.function("cubic").unwrap().grad(&["x"]).unwrap().jit(Backend::Interpreter);
    let x = vec![0.3, -1.2, 2.0];
    let out = g.call(&[Tensor::f64(&[3], x.clone())]).unwrap();
    let value = |x: &[f64]| x.iter().map(|v| v.powi(3) + 2.0 * v).sum::<f64>();
    assert!((out[0].scalar_value() - value(&x)).abs() < 1e-12);
    let grad = out[1].to_f64_vec();
    for j in 0..3 {
        let h = 1e-6;
        let (mut a, mut b) = (x.clone(), x.clone());
        a[j] += h;
        b[j] -= h;
        let fd = (value(&a) - value(&b)) / (2.0 * h);
        assert!((grad[j] - fd).abs() < 1e-6, "d/dx[{j}]: {} vs {fd}", grad[j]);
        assert!((grad[j] - (3.0 * x[j] * x[j] + 2.0)).abs() < 1e-12);
    }
}

#[test]
fn value_and_grad_of_a_generic_loss_in_the_order_asked() {
    let m = module();
    // loss = mean((x w + b - y)^2) with one example: r = x.w + b - y,
    // dL/dw = 2 r x, dL/db = 2 r.
    let mut g = m.function("loss").unwrap().grad(&["b", "w"]).unwrap().jit(Backend::Cpu);
    let out = g
        .call(&[
            Tensor::f32(&[2], vec![1.0, 2.0]),
            Tensor::scalar_f32(0.5),
            Tensor::f32(&[1, 2], vec![3.0, -1.0]),
            Tensor::f32(&[1], vec![1.0]),
        ])
        .unwrap();
    let r = 3.0 - 2.0 + 0.5 - 1.0;
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].scalar_value(), r * r);
    assert_eq!(out[1].scalar_value(), 2.0 * r, "dL/db first, as asked");
    assert_eq!(out[2].as_f32().unwrap(), &[2.0 * r as f32 * 3.0, 2.0 * r as f32 * -1.0]);
}

#[test]
fn errors_name_the_problem() {
    let m = module();
    let e = m.function("los").err().unwrap().to_string();
    assert_eq!(e, "no function `los` in embedded.jl; its functions are: predict, loss, cubic");
    let e = m.function("loss").unwrap().grad(&["v"]).err().unwrap().to_string();
    assert_eq!(e, "`loss` has no parameter `v`; its parameters are: w, b, x, y");
    // A gradient's gradient would have replaced the first `wrt`: refused.
    let e = m.function("loss").unwrap().grad(&["w"]).unwrap().grad(&["b"]).err().unwrap().to_string();
    assert!(e.starts_with("`loss` is a gradient already"), "{e}");
    // Not a scalar: no gradient.
    let mut g = m.function("predict").unwrap().grad(&["w"]).unwrap().jit(Backend::Cpu);
    let e = g
        .call(&[Tensor::f32(&[2], vec![1.0, 2.0]), Tensor::scalar_f32(0.0), Tensor::f32(&[1, 2], vec![1.0, 1.0])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("the gradient of `predict` needs a float scalar as its (first) result, not f32[1]"), "{e}");
    // A shape that does not fit the declared type is a diagnostic with both shapes.
    let mut f = m.function("predict").unwrap().jit(Backend::Cpu);
    let e = f
        .call(&[Tensor::f32(&[3], vec![1.0; 3]), Tensor::scalar_f32(0.0), Tensor::f32(&[1, 2], vec![1.0, 1.0])])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("argument `x` of `predict` has type f32[1, 2]")
            && e.contains("`D` is 3 in this call: argument `w` bound it"),
        "{e}"
    );
    let e = Module::from_source("bad.jl", "fn f(x) = x +\n").err().unwrap().to_string();
    assert!(e.contains("bad.jl:"), "{e}");
}
