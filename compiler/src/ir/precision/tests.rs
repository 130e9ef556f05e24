//! Every op of random float32 programs against the same op in float64 on
//! the same operands (the interpreter in both), within `tolerance`.

use super::*;
use crate::ir::generate::{random_func, random_inputs, GenOptions};
use crate::ir::interp::run;
use crate::ir::ValueId;
use std::collections::BTreeMap;

/// `func` with every value as an output.
fn every_value(func: &Func) -> Func {
    let mut all = func.clone();
    all.outputs = (0..all.insts.len()).map(|i| ValueId(i as u32)).collect();
    all
}

#[test]
fn every_op_of_random_float32_programs_is_within_its_tolerance_of_float64() {
    let opts = GenOptions { dtype: Some(DType::F32), ..GenOptions::default() };
    // Per op name: (values checked, worst |error| / bound over inexact values).
    let mut seen: BTreeMap<&'static str, (usize, f64)> = BTreeMap::new();
    for seed in 0..4000u64 {
        let func = random_func(seed, &opts);
        let inputs = random_inputs(&func, seed ^ 0x9e37);
        let values = run(&every_value(&func), &inputs);
        for (i, inst) in func.insts.iter().enumerate() {
            let Some(tol) = tolerance(&func, inst) else { continue };
            let operands: Vec<Tensor> = inst.args.iter().map(|a| to_f64(&values[a.index()])).collect();
            let single = alone_f64(&func, inst);
            let want = run(&single, &operands)[0].to_f64_vec();
            let scale = match inst.op {
                // Abs of the summed source only: the operand picks where it goes.
                Op::SelectAndScatter(_) => {
                    let mut a = operands.clone();
                    a[1] = abs(&a[1]);
                    run(&single, &a)[0].to_f64_vec()
                }
                _ => run(&single, &operands.iter().map(abs).collect::<Vec<_>>())[0].to_f64_vec(),
            };
            let got = values[i].to_f64_vec();
            let entry = seen.entry(crate::ir::op::name(&inst.op)).or_insert((0, 0.0));
            for k in 0..got.len() {
                assert!(
                    within(tol, got[k], want[k], scale[k]),
                    "seed {seed}, %{i} = {} ({tol:?}): f32 {} vs f64 {} (scale {})\n{}",
                    crate::ir::op::name(&inst.op),
                    got[k],
                    want[k],
                    scale[k],
                    crate::ir::text::print(&func)
                );
                let err = (got[k] - want[k]).abs();
                if err.is_finite() && got[k] != want[k] as f32 as f64 {
                    let bound = match tol {
                        Tolerance::Exact => f64::INFINITY,
                        Tolerance::Ulps(n) => n as f64 * ulp_f32(want[k]),
                        Tolerance::Sum { terms } => terms as f64 * f64::from(f32::EPSILON) / 2.0 * scale[k],
                    };
                    entry.1 = entry.1.max(err / bound);
                }
            }
            entry.0 += got.len();
        }
    }
    for (name, (n, worst)) in &seen {
        println!("{name:20} {n:8} values, worst error / bound {worst:.3}");
    }
    // Every checked kind of op was met (the generator covers them all).
    for name in [
        "exp",
        "log",
        "tanh",
        "sqrt",
        "log1p",
        "expm1",
        "logistic",
        "sin",
        "cos",
        "rsqrt",
        "erf",
        "pow",
        "add",
        "sub",
        "mul",
        "div",
        "max",
        "min",
        "select",
        "reduce_sum",
        "matmul",
        "batch_matmul",
        "conv2d",
        "reduce_window_sum",
        "reduce_window_max",
        "select_and_scatter",
        "scatter_add",
        "gather",
        "reduce_max",
        "reduce_min",
        "broadcast",
        "transpose",
        "slice",
        "pad",
        "concat",
        "reverse",
    ] {
        assert!(seen.get(name).is_some_and(|(n, _)| *n > 0), "no `{name}` was checked: {seen:?}");
    }
}

#[test]
fn the_bounds_reject_what_they_should() {
    // One ulp off is not exact; two ulps pass `Ulps(2)`, three do not.
    let y = 1.5f64;
    let u = ulp_f32(y);
    assert!(within(Tolerance::Exact, y, y, 0.0));
    assert!(!within(Tolerance::Exact, y + u, y, 0.0));
    assert!(within(Tolerance::Ulps(2), y + 2.0 * u, y, 0.0));
    assert!(!within(Tolerance::Ulps(2), y + 3.0 * u, y, 0.0));
    // A 4-term sum of |terms| 8 may be off by 4 * 2^-24 * 8 (+ half an ulp).
    let bound = 4.0 * f64::from(f32::EPSILON) / 2.0 * 8.0 + u / 2.0;
    assert!(within(Tolerance::Sum { terms: 4 }, y + bound * 0.99, y, 8.0));
    assert!(!within(Tolerance::Sum { terms: 4 }, y + bound * 1.01, y, 8.0));
    // NaN only matches NaN.
    assert!(within(Tolerance::Exact, f64::NAN, f64::NAN, 0.0));
    assert!(!within(Tolerance::Ulps(4), f64::NAN, 1.0, 0.0));
}

/// Past f32's largest value only infinity of the right sign, or a finite
/// value within the bound of the exact one, passes (infinity's ulp must not
/// admit everything).
#[test]
fn results_past_the_largest_f32_are_checked() {
    let exact = 4.0e38;
    assert!(within(Tolerance::Ulps(2), f64::INFINITY, exact, 0.0));
    assert!(!within(Tolerance::Ulps(2), f64::NEG_INFINITY, exact, 0.0));
    assert!(!within(Tolerance::Ulps(2), 0.0, exact, 0.0));
    assert!(!within(Tolerance::Ulps(2), f64::from(f32::MAX), exact, 0.0));
    assert!(!within(Tolerance::Sum { terms: 3 }, 0.0, exact, exact));
    // Just past the largest: the largest itself is within 2 ulp.
    let just_past = f64::from(f32::MAX) * (1.0 + 2f64.powi(-25));
    assert!(within(Tolerance::Ulps(2), f64::from(f32::MAX), just_past, 0.0));
}
