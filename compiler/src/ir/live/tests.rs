//! `peak_live_bytes` on hand-built functions whose peaks are counted by hand.

use crate::ir::{Builder, DType, Type};

#[test]
fn a_chain_keeps_two_values_and_a_fan_out_keeps_all() {
    let t = Type::new(DType::F32, &[10]); // 40 bytes
                                          // x -> exp -> exp -> exp: at each step the input and the result are live.
    let mut b = Builder::new("chain", std::slice::from_ref(&t));
    let x = b.param(0);
    let a = b.unary(crate::ir::Op::Exp, x);
    let c = b.unary(crate::ir::Op::Exp, a);
    let d = b.unary(crate::ir::Op::Exp, c);
    // Each step's input and result: 2 values at the peak.
    assert_eq!(super::peak_live_bytes(&b.finish(vec![d])), 80);
    // Three values all used by the output sum.
    let mut b = Builder::new("fan", std::slice::from_ref(&t));
    let x = b.param(0);
    let a = b.unary(crate::ir::Op::Exp, x);
    let c = b.unary(crate::ir::Op::Exp, x);
    let d = b.unary(crate::ir::Op::Exp, x);
    let s = b.add(a, c);
    let s = b.add(s, d);
    // At d: x, a, c, d; at the first add: a, c, d and the sum.
    assert_eq!(super::peak_live_bytes(&b.finish(vec![s])), 160);
}
