//! The CPU loop step against the reference interpreter: the scan programs of
//! `ir::scan::tests` (cumsum forward and reversed, length 0, a loop without
//! xs, a nested scan: bitwise; the RNN, whose body has a matmul summed in
//! gemm's order: to 1e-5 relative), sibling results in and out of a run, and
//! the gradient of the RNN (scans of transformed bodies).

use crate::codegen::cpu::compile;
use crate::ir::generate::random_inputs;
use crate::ir::scan::tests::{bits, programs, rnn};
use crate::ir::{interp, DType, Func, Tensor};

fn close(a: &Tensor, b: &Tensor, rtol: f64) -> bool {
    let (x, y) = (a.to_f64_vec(), b.to_f64_vec());
    let same = |p: &f64, q: &f64| p == q || (p.is_nan() && q.is_nan()) || (p - q).abs() <= rtol * (1.0 + q.abs());
    a.shape == b.shape && x.iter().zip(&y).all(|(p, q)| same(p, q))
}

fn check(name: &str, f: &Func, rtol: Option<f64>) {
    let mut jit = compile(f).unwrap_or_else(|e| panic!("{name}: {e}"));
    for seed in 0..3 {
        let inputs = random_inputs(f, seed);
        let (got, want) = (jit.run(&inputs), interp::run(f, &inputs));
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            let ok = match rtol {
                None => bits(g) == bits(w),
                Some(r) => close(g, w, r),
            };
            assert!(ok, "{name}, inputs seed {seed}, output {k}: jit {g:?} vs interp {w:?}");
        }
    }
}

#[test]
fn jit_scans_equal_the_interpreter() {
    for dtype in [DType::F32, DType::F64] {
        for (name, p) in programs(dtype) {
            let rtol = (name == "rnn").then_some(1e-5);
            check(name, &p.scanned(), rtol);
            // Each result alone (no sibling run) and the results reordered
            // (the run split in two) compute the same values.
            let all = p.scanned();
            for k in 0..all.outputs.len() {
                let mut one = all.clone();
                one.outputs = vec![all.outputs[k]];
                check(name, &crate::ir::dce::dce(&one), rtol);
            }
        }
    }
}

#[test]
fn jit_gradient_of_an_rnn_equals_the_interpreter() {
    for dtype in [DType::F32, DType::F64] {
        let p = rnn(dtype, 5);
        let mut f = p.scanned();
        // loss = sum(ys) (output 2 of the scan), all float params differentiated.
        let mut b = crate::ir::Builder::new("loss", &f.param_types());
        let args: Vec<_> = (0..f.n_params).map(|i| b.param(i)).collect();
        let outs = crate::autodiff::inline_outputs(&mut b, &f, &args);
        let loss = b.reduce_sum(outs[2], vec![0, 1]);
        f = b.finish(vec![loss]);
        let g = crate::autodiff::grad(&f, &[0, 1, 2, 4]);
        check("grad rnn", &g, Some(1e-5));
    }
}

#[test]
fn dead_and_separated_siblings_are_computed_in_place() {
    // Results nothing reads are not written (their buffers die at once), and
    // a sibling after another instruction is its own loop.
    use crate::ir::{Builder, Op};
    use std::sync::Arc;
    for dtype in [DType::F32, DType::F64] {
        let p = crate::ir::scan::tests::cumsum(dtype, 5, false);
        let body = Arc::new(p.body.clone());
        let mut b = Builder::new("siblings", &p.params);
        let args = [b.param(0), b.param(1)];
        let outs = b.scan(body.clone(), 0, 1, 5, false, &args); // both dead below
        let ys = b.scan(body.clone(), 0, 1, 5, false, &args)[1]; // carry sibling dead
        let x = b.unary(Op::Neg, ys);
        let s = crate::ir::Scan { body, n_const: 0, n_carry: 1, length: 5, reverse: false, output: 0 };
        let dead = b.scan_output(&s, 1, &args);
        let carry = b.scan_output(&s, 0, &args);
        let f = b.finish(vec![x, carry, ys]);
        assert_eq!(f.insts.len(), 9, "{outs:?} {dead:?}: 2 params, 7 instructions");
        check("dead and separated siblings", &f, None);
    }
}

#[test]
fn the_ptx_backend_rejects_scans_cleanly() {
    let f = crate::ir::scan::tests::cumsum(DType::F32, 3, false).scanned();
    let res = crate::codegen::ptx::emit(&f);
    assert!(matches!(res, Err(crate::codegen::ptx::PtxError::Unsupported { op: "scan", .. })), "{:?}", res.err());
}
