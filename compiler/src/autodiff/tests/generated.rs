//! The harness of `tests.rs` on generated programs (`ir::generate`), so that
//! every op and the compositions the generator makes have their derivatives
//! checked, not only the hand-written cases: grad and jvp vs central finite
//! differences in f64, `<J t, c> = <t, J^T c>`, second order (reverse over
//! reverse vs FD of the gradient; forward over reverse and forward over
//! forward vs reverse over reverse). (`vmap(grad f)` on generated programs: `vmap/tests.rs`.)
//!
//! Generated programs have kinks and jumps (abs, max, comparisons, floor,
//! argmax, clamped indices), and a central difference across one is not a
//! derivative. So a trial's FD is used only when the differences at `EPS`
//! and at `10 EPS` agree to the check's own tolerance (a kink or jump within
//! reach makes them disagree; on a smooth f64 function they agree to about
//! 1e-8), and when every value is finite. The test asserts that most trials
//! are checked, so a generator change cannot quietly skip them all.

use super::{
    assert_close, dot, dots, eval, forward_over_reverse, hessian_vector_func, jvp_vjp_products, shifted,
    sum_of_products, Domain, Rng, ATOL, EPS, RTOL,
};
use crate::autodiff::{grad, inline_outputs, jvp};
use crate::ir::generate::{random_func, GenOptions};
use std::sync::Arc;

use crate::ir::{Builder, DType, Func, Op, Tensor, ValueId};

/// Generated programs per test.
const PROGRAMS: u64 = 2000;

/// f64 programs without custom_vjp ops (their generated rule is not the
/// derivative, by design).
fn options() -> GenOptions {
    GenOptions { dtype: Some(DType::F64), custom_vjp: false, ..GenOptions::default() }
}

/// `func` with every `stop_gradient` (scan bodies included) an identity
/// reshape: finite differences see through it, by definition, and its own
/// rule is checked in `tests.rs`.
fn without_stop_gradient(func: &Func) -> Func {
    let mut res = func.clone();
    for inst in &mut res.insts {
        match &mut inst.op {
            Op::StopGradient => inst.op = Op::Reshape,
            Op::Scan(s) => s.body = Arc::new(without_stop_gradient(&s.body)),
            _ => {}
        }
    }
    res
}

/// `f(x..., c...) = sum_o sum(out_o * c_o)`: a scalar whose gradient reaches
/// every element of every output; the `c` params are data.
fn reduced(func: &Func) -> Func {
    let mut types = func.param_types();
    types.extend(func.output_types());
    let mut b = Builder::new("reduced", &types);
    let args: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    let outs = inline_outputs(&mut b, func, &args);
    let total = sum_of_products(&mut b, &outs, func.n_params);
    b.finish(vec![total])
}

fn all_finite(ts: &[Tensor]) -> bool {
    ts.iter().all(|t| t.to_f64_vec().iter().all(|v| v.is_finite()))
}

/// The central difference of `read(program at inputs ± eps t)`, when the
/// difference at `EPS` and at `10 EPS` agree (see the file doc) and the
/// rounding of `read`'s values cannot reach the check's tolerance (a program
/// whose value is 1e9 has differences that are mostly rounding at EPS).
fn smooth_difference(inputs: &[Tensor], t: &[Tensor], read: impl Fn(&[Tensor]) -> Option<f64>) -> Option<f64> {
    let at = |eps: f64| -> Option<f64> {
        let plus = read(&shifted(inputs, t, eps))?;
        let minus = read(&shifted(inputs, t, -eps))?;
        let rounding = 16.0 * f64::EPSILON * plus.abs().max(minus.abs()) / eps;
        (rounding <= ATOL / 10.0).then_some((plus - minus) / (2.0 * eps))
    };
    let (near, far) = (at(EPS)?, at(10.0 * EPS)?);
    let agree = (near - far).abs() <= ATOL + RTOL * near.abs();
    (near.is_finite() && agree).then_some(near)
}

/// What one program's checks ran.
#[derive(Default)]
struct Ran {
    /// The gradient was finite (else nothing ran).
    finite: bool,
    /// Checks against a finite difference (0, 1 or 2).
    against_fd: usize,
    /// Checks left out because a derivative other than the gradient was not
    /// finite: `0 * inf` where a zero tangent meets an infinite derivative
    /// (`sqrt(max(x, 0))` at `x < 0` has the tangent `0 * 0.5 / 0`, JAX's
    /// jvp gives the same NaN; its second derivative likewise), which the
    /// gradient avoids because max's reverse rule selects instead of
    /// multiplying.
    not_finite: usize,
}

/// Checks one program at one random point.
fn check_program(func: &Func, seed: u64, rng: &mut Rng) -> Ran {
    let n = func.n_params;
    let wrt: Vec<usize> = (0..n).collect();
    let f = reduced(func);
    let g = grad(&f, &wrt);
    let fj = jvp(&f, &wrt);
    let inputs: Vec<Tensor> = f.param_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    let t: Vec<Tensor> = func.param_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    let v: Vec<Tensor> = func.param_types().iter().map(|ty| rng.tensor(ty, Domain::Any)).collect();
    let g_out = eval(&g, &inputs);
    if !all_finite(&g_out) {
        return Ran::default();
    }
    let what = |check: &str| format!("generated program {seed}: {check}\n{}", crate::ir::text::print(func));
    assert_eq!(g_out[0], eval(&f, &inputs)[0], "{}", what("grad's output 0 is f"));
    let mut ran = Ran { finite: true, ..Ran::default() };

    // First order: grad and jvp vs FD along t.
    let value = |x: &[Tensor]| Some(eval(&f, x)[0].scalar_value()).filter(|v| v.is_finite());
    let mut jvp_inputs = inputs.clone();
    jvp_inputs.extend(t.iter().cloned());
    let tangent = eval(&fj, &jvp_inputs)[1].scalar_value();
    if let Some(fd) = smooth_difference(&inputs, &t, value) {
        assert_close(dots(&t, &g_out[1..]), fd, ATOL, RTOL, &what("<t, grad> vs FD"));
        if tangent.is_finite() {
            assert_close(tangent, fd, ATOL, RTOL, &what("jvp vs FD"));
        } else {
            ran.not_finite += 1;
        }
        ran.against_fd += 1;
    }

    // The identity between our forward and reverse modes, on every output:
    // exact algebra, so no FD and no skipping (beyond non-finite values).
    // Relative to |t| |c| too where that is larger: a program whose J t
    // cancels to zero (`x - max(x)` over equal rows) leaves rounding of
    // that size in one mode and an exact 0 in the other; a wrong rule is
    // off by about |t| |J| |c|.
    let (lhs, rhs, c_norm) = jvp_vjp_products(func, &wrt, &inputs[..n], &t, rng);
    if lhs.is_finite() && rhs.is_finite() {
        let scale = lhs.abs().max(rhs.abs()).max(dots(&t, &t).sqrt() * c_norm);
        let ok = (lhs - rhs).abs() <= 1e-12 * scale;
        assert!(ok, "{}", what(&format!("<Jt, c> = {lhs:e} vs <t, J^T c> = {rhs:e}")));
    } else {
        ran.not_finite += 1;
    }

    // Second order: H v by reverse over reverse, vs FD of the gradient, vs
    // forward over reverse, and vs forward over forward (`jvp(jvp f)` along
    // v, then t: its last output is t^T H v).
    let hv_func = hessian_vector_func(&f, &g, &wrt);
    let mut h_inputs = inputs.clone();
    h_inputs.extend(v.iter().cloned());
    let t_hv = dots(&t, &eval(&hv_func, &h_inputs)[1..]);
    let ht_v = forward_over_reverse(&g, &wrt, &inputs, &t, &v);
    let fjj = jvp(&fj, &wrt);
    let mut jj_inputs = h_inputs.clone();
    jj_inputs.extend(t.iter().cloned());
    let t_h_v = eval(&fjj, &jj_inputs)[3].scalar_value();
    if t_hv.is_finite() && ht_v.is_finite() && t_h_v.is_finite() {
        assert_close(ht_v, t_hv, 1e-9, 1e-9, &what("<jvp(grad f) t, v> vs <t, H v>"));
        assert_close(t_h_v, t_hv, 1e-9, 1e-9, &what("jvp(jvp f) along v, t vs <t, H v>"));
    } else {
        ran.not_finite += 1;
    }
    let gradient_along_v = |x: &[Tensor]| {
        let gx = eval(&g, x);
        Some((0..n).map(|k| dot(&gx[1 + k], &v[k])).sum::<f64>()).filter(|s| s.is_finite())
    };
    if let Some(fd) = smooth_difference(&inputs, &t, gradient_along_v) {
        if t_hv.is_finite() {
            assert_close(t_hv, fd, ATOL, RTOL, &what("<t, H v> vs FD of grad"));
        } else {
            ran.not_finite += 1;
        }
        ran.against_fd += 1;
    }
    ran
}

#[test]
fn derivatives_of_generated_programs_match_finite_differences_to_second_order() {
    let mut rng = Rng(0x6e4e_1a7e);
    let (mut finite, mut against_fd, mut not_finite) = (0, 0, 0);
    for seed in 0..PROGRAMS {
        let func = without_stop_gradient(&random_func(0xAD_0000 + seed, &options()));
        let ran = check_program(&func, seed, &mut rng);
        finite += ran.finite as usize;
        against_fd += ran.against_fd;
        not_finite += ran.not_finite;
    }
    // Most programs are finite at inputs in [-2, 2), and most of those are
    // smooth within 1e-5 of them; the bounds are far below what a broken
    // skip rule (or generator) would give.
    let total = PROGRAMS as usize;
    assert!(finite >= total * 3 / 4, "only {finite} of {total} programs were finite");
    assert!(against_fd >= finite * 2 * 3 / 4, "only {against_fd} of {} finite-difference checks ran", finite * 2);
    assert!(not_finite <= finite * 3 / 20, "{not_finite} derivatives were not finite");
}
