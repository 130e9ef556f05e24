//! The numerically delicate stdlib functions (`nn.logsumexp`, and through it
//! `log_softmax` and `losses.cross_entropy`): their gradients, lowered and
//! run by the reference interpreter in f32, against a float64 reference
//! written here (the shifted formula and its central finite differences) on
//! huge (+-1e4), tiny and -inf (masked, as in causal attention) logits. The
//! naive formula's gradient is shown to be nan there, and the gradient
//! program to evaluate `exp` once (the backward reuses the forward's).

use crate::ir::{interp, Func, Op, Tensor};

const MASKED: f64 = -1e30;

/// Rows of logits; `MASKED` entries become -inf in the program.
const X: [[f64; 4]; 3] = [[1e4, -1e4, 9999.0, 3.0], [MASKED, 2.0, 0.5, MASKED], [-1e4, -1e4 + 1.0, MASKED, -1e4 - 2.0]];
const LABELS: [usize; 3] = [0, 1, 3];
/// The cotangent of each row's logsumexp (so that the rule is checked for a
/// general cotangent, not only 1).
const G: [f64; 3] = [0.3, -1.7, 2.5];

const SRC: &str = "use nn.logsumexp
use losses.cross_entropy

fn naive(x) = log(sum(exp(x), axis = -1, keepdims = true))
fn weighted(x: f32[3, 4]) -> f32 = sum(logsumexp(x) * reshape([0.3, -1.7, 2.5], (3, 1)))
fn weighted_naive(x: f32[3, 4]) -> f32 = sum(naive(x) * reshape([0.3, -1.7, 2.5], (3, 1)))
fn ce(x: f32[3, 4]) -> f32 = cross_entropy(x, [0, 1, 3])

fn main() {
    let x = reshape([10000.0, -10000.0, 9999.0, 3.0, -1e30, 2.0, 0.5, -1e30, -10000.0, -9999.0, -1e30, -10002.0], (3, 4))
    let x = where(x < -1e29, log(0.0 * x), x)
    print(logsumexp(x), grad(weighted)(x), grad(ce)(x), grad(weighted_naive)(x), ce(x))
}
";

fn run() -> (Func, Vec<Tensor>) {
    let (prog, diags) = super::load("t.jl", SRC);
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out = interp::run(&script.func, &[]);
    (script.func, out)
}

/// float64 logsumexp of a row (masked entries left out), shifted by its max.
fn lse(row: &[f64]) -> f64 {
    let live: Vec<f64> = row.iter().copied().filter(|&v| v != MASKED).collect();
    let m = live.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + live.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Central finite differences of `f` at each unmasked entry of `row`
/// (step 1e-3: the functions are smooth and the rows well scaled after the
/// shift, so truncation error is ~1e-7); masked entries have derivative 0.
fn fd(row: &[f64; 4], f: impl Fn(&[f64]) -> f64) -> [f64; 4] {
    let mut d = [0.0; 4];
    for j in 0..4 {
        if row[j] == MASKED {
            continue;
        }
        let h = 1e-3;
        let (mut p, mut m) = (*row, *row);
        p[j] += h;
        m[j] -= h;
        d[j] = (f(&p) - f(&m)) / (2.0 * h);
    }
    d
}

fn assert_close(got: &[f64], want: &[f64], what: &str) {
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{k}] = {g}, want {w}");
        assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "{what}[{k}] = {g}, want {w}");
    }
}

#[test]
fn logsumexp_and_cross_entropy_gradients_are_exact_for_huge_tiny_and_masked_logits() {
    let (_, out) = run();
    let lse_got = out[0].to_f64_vec();
    for (i, row) in X.iter().enumerate() {
        // f32 rounding of a value near 1e4 is ~1e-3.
        assert!((lse_got[i] - lse(row)).abs() <= 2e-3, "lse row {i}: {} vs {}", lse_got[i], lse(row));
    }
    let (mut want_lse, mut want_ce) = (Vec::new(), Vec::new());
    for (i, row) in X.iter().enumerate() {
        want_lse.extend(fd(row, |r| G[i] * lse(r)));
        // cross_entropy = mean over rows of lse(row) - row[label].
        want_ce.extend(fd(row, |r| (lse(r) - r[LABELS[i]]) / 3.0));
    }
    assert_close(&out[1].to_f64_vec(), &want_lse, "grad logsumexp");
    assert_close(&out[2].to_f64_vec(), &want_ce, "grad cross_entropy");
    // The same against the closed form softmax(x) - one_hot, exact in f64.
    let analytic: Vec<f64> = X
        .iter()
        .enumerate()
        .flat_map(|(i, row)| {
            let l = lse(row);
            (0..4).map(move |j| {
                let p = if row[j] == MASKED { 0.0 } else { (row[j] - l).exp() };
                (p - if j == LABELS[i] { 1.0 } else { 0.0 }) / 3.0
            })
        })
        .collect();
    assert_close(&out[2].to_f64_vec(), &analytic, "grad cross_entropy (closed form)");
    // The loss itself is finite (no 0 * -inf from a one-hot product).
    let loss = out[4].scalar_value();
    let want: f64 = X.iter().zip(LABELS).map(|(r, l)| lse(r) - r[l]).sum::<f64>() / 3.0;
    assert!((loss - want).abs() <= 1e-3, "cross_entropy {loss} vs {want}");
}

#[test]
fn the_naive_formula_gradient_is_nan_where_ours_is_exact() {
    let (_, out) = run();
    let naive = out[3].to_f64_vec();
    // exp(1e4) overflows f32: inf / inf in the first row, 0 / 0 in the last.
    assert!(naive[..4].iter().any(|v| v.is_nan()), "naive row 0: {naive:?}");
    assert!(naive[8..].iter().any(|v| v.is_nan()), "naive row 2: {naive:?}");
    assert!(out[1].to_f64_vec().iter().all(|v| v.is_finite()));
}

#[test]
fn logsumexp_backward_reuses_the_forward_exp() {
    // grad of cross_entropy alone: one exp (the forward's, reused by the
    // backward) and no log (the loss value is not needed), no max-gradient
    // mask: the backward costs less than the forward.
    let src = "use losses.cross_entropy
fn ce(x: f32[3, 4]) -> f32 = cross_entropy(x, [0, 1, 3])
fn main() {
    print(grad(ce)(reshape(linspace(-1.0, 1.0, 12), (3, 4))))
}
";
    let (prog, diags) = super::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    let f = crate::ir::dce::dce(&script.func);
    let count = |op: Op| f.insts.iter().filter(|i| i.op == op).count();
    assert_eq!((count(Op::Exp), count(Op::Log)), (1, 0), "{}", crate::ir::text::print(&f));
}
