//! `max_op` against the interpreter's rule on every pair of special values
//! (a local copy of `compiler::ir::interp::fmax`: this crate cannot depend
//! on `compiler`; the window kernels themselves are tested against the
//! interpreter in `compiler::codegen::tests`).

use crate::Elem;

fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

#[test]
fn max_op_is_the_interpreters_fmax_on_special_pairs() {
    let values = [0.0, -0.0, 1.0, -1.0, 2.5, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-310, -3e38];
    for &a in &values {
        for &b in &values {
            let want = fmax(a, b);
            let got = a.max_op(b);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "f64 {a} {b}: {got}");
            let (a32, b32) = (a as f32, b as f32);
            let want = fmax(a32 as f64, b32 as f64) as f32;
            let got = a32.max_op(b32);
            assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "f32 {a} {b}: {got}");
        }
    }
}
