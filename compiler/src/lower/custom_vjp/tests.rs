//! `custom_vjp(f, fwd, bwd)` in the language: the rule gives the gradient
//! (checked against float64 central differences where the rule is the true
//! derivative, and against the rule's own formula where it is not), the
//! gradient of the gradient differentiates the rule, batching and tuples
//! work, and the optimized CPU program computes what the interpreter does.

use crate::ir::{interp, DType, Tensor, Type};

/// `name`'s results on `inputs` (float64 vectors), with `wrt` its value and
/// gradient: by the interpreter on the unoptimized program, checked against
/// the CPU backend on the optimized one (equal within rounding: the
/// optimizer may reorder).
fn run(src: &str, name: &str, inputs: &[&[f64]], wrt: Option<&[usize]>) -> Vec<Vec<f64>> {
    let (prog, diags) = crate::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let types: Vec<Type> = inputs.iter().map(|x| Type::new(DType::F64, &[x.len()])).collect();
    let tensors: Vec<Tensor> = inputs.iter().map(|x| Tensor::from_f64(DType::F64, &[x.len()], x)).collect();
    let compile = |no_opt: bool| {
        crate::compile_function(&prog, name, &types, wrt, &crate::Options { no_opt, ..Default::default() })
            .unwrap_or_else(|d| panic!("{d:?}"))
    };
    let plain = interp::run(&compile(true), &tensors);
    let fast = crate::codegen::cpu::compile(&compile(false)).expect("compiles").run(&tensors);
    assert_eq!(plain.len(), fast.len());
    for (k, (a, b)) in plain.iter().zip(&fast).enumerate() {
        for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
            let same = (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-12 * (1.0 + x.abs());
            assert!(same, "output {k}: interpreter {x} vs CPU {y}");
        }
    }
    plain.iter().map(Tensor::to_f64_vec).collect()
}

const NORM: &str = "
fn norm(x: f64[N]) -> f64 = sqrt(sum(x ^ 2))
fn norm_fwd(x: f64[N]) = (norm(x), x)
fn norm_bwd(x: f64[N], g: f64) = where(x == 0.0, 0.0, x / norm(x) * g)
fn safe(x: f64[N]) -> f64 = custom_vjp(norm, norm_fwd, norm_bwd)(x)
";

fn norm64(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// Central differences of `f` at `x`, one entry per coordinate.
fn fd(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let (mut p, mut m) = (x.to_vec(), x.to_vec());
            p[i] += h;
            m[i] -= h;
            (f(&p) - f(&m)) / (2.0 * h)
        })
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-6 * (1.0 + w.abs()), "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn the_rule_gives_the_gradient_where_the_derivative_is_nan() {
    let x = [3.0, -4.0, 12.0];
    let out = run(NORM, "safe", &[&x], Some(&[0]));
    assert_eq!(out[0], vec![13.0]);
    assert_close(&out[1], &fd(norm64, &x), "gradient against finite differences");
    let at_zero = run(NORM, "safe", &[&[0.0; 3]], Some(&[0]));
    assert_eq!(at_zero[1], vec![0.0; 3], "the rule's gradient at 0");
    let without = run(NORM, "norm", &[&[0.0; 3]], Some(&[0]));
    assert!(without[1].iter().all(|v| v.is_nan()), "without the rule, 0/0: {:?}", without[1]);
}

#[test]
fn a_rule_that_is_not_the_derivative_is_what_the_gradient_uses() {
    // Gradient scaling (as in a gradient reversal layer): the value passes
    // through unchanged and the cotangent is multiplied by -0.5.
    let src = "
fn ident(x: f64[N]) -> f64[N] = x
fn ident_fwd(x: f64[N]) = (x, ())
fn flip_bwd(r, g: f64[N]) = (-0.5 * g,)
fn loss(x: f64[N], w: f64[N]) -> f64 = sum(custom_vjp(ident, ident_fwd, flip_bwd)(x) * w) + sum(x * x)
";
    let (x, w) = ([0.5, 0.0, 1.0], [1.0, 2.0, -3.0]);
    let out = run(src, "loss", &[&x, &w], Some(&[0, 1]));
    assert_eq!(out[0], vec![0.5 - 3.0 + 1.25], "the value is the function's");
    // -0.5 w from the rule, plus 2 x from the rest; w's gradient is x as usual.
    assert_eq!(out[1], vec![-0.5 + 1.0, -1.0, 1.5 + 2.0]);
    assert_eq!(out[2], x.to_vec());
}

#[test]
fn tuples_of_arguments_and_results_against_finite_differences() {
    // f(x, y) = (x * y, x + y) with its exact rule; the loss mixes both results.
    let src = "
fn f(x: f64[N], y: f64[N]) = (x * y, x + y)
fn f_fwd(x: f64[N], y: f64[N]) = (f(x, y), (x, y))
fn f_bwd(res, cts) {
    let (x, y) = res
    let (g1, g2) = cts
    (g1 * y + g2, g1 * x + g2)
}
fn loss(x: f64[N], y: f64[N]) -> f64 {
    let (a, b) = custom_vjp(f, f_fwd, f_bwd)(x, y)
    sum(sin(a) * b)
}
";
    let (x, y) = ([0.3, -1.2, 2.0], [1.5, 0.7, -0.4]);
    let out = run(src, "loss", &[&x, &y], Some(&[0, 1]));
    let loss = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| (a * b).sin() * (a + b)).sum::<f64>();
    assert_close(&out[1], &fd(|x| loss(x, &y), &x), "d loss / dx");
    assert_close(&out[2], &fd(|y| loss(&x, y), &y), "d loss / dy");
}

#[test]
fn second_derivatives_differentiate_the_rule_and_vmap_batches_it() {
    let src = format!(
        "{NORM}
fn d0(x: f64[N]) -> f64[N] = grad(fn(x) = grad(safe)(x)[0])(x)
fn per_row(flat: f64[6]) -> f64[3, 2] = vmap(grad(safe))(reshape(flat, (3, 2)))
"
    );
    let x = [3.0, -4.0, 12.0];
    let out = run(&src, "d0", &[&x], None);
    // d/dx of the rule's first component x0 / |x|.
    assert_close(&out[0], &fd(|x| x[0] / norm64(x), &x), "second derivative");
    let rows = [3.0, 4.0, 0.0, 0.0, 1.0, -1.0];
    let out = run(&src, "per_row", &[&rows], None);
    for r in 0..3 {
        let row = &rows[2 * r..2 * r + 2];
        let n = norm64(row);
        let want: Vec<f64> = row.iter().map(|v| if n == 0.0 { 0.0 } else { v / n }).collect();
        assert_close(&out[0][2 * r..2 * r + 2], &want, &format!("row {r}"));
    }
}

#[test]
fn a_builtin_can_be_the_function() {
    // tanh with a rule that doubles its derivative.
    let src = "
fn tanh_fwd(x) = (tanh(x), tanh(x))
fn tanh_bwd(t, g) = g * (1.0 - t * t) * 2.0
fn loss(x: f64[N]) -> f64 = sum(custom_vjp(tanh, tanh_fwd, tanh_bwd)(x))
";
    let x = [0.5, -1.0, 2.0];
    let out = run(src, "loss", &[&x], Some(&[0]));
    let want: Vec<f64> = x.iter().map(|v: &f64| 2.0 * (1.0 - v.tanh().powi(2))).collect();
    assert_close(&out[1], &want, "the rule's gradient");
}
