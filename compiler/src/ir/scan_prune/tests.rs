//! `prune` and `tidy` keep every program's results (the interpreter on
//! generated programs, bitwise) and do remove what a loop computes for
//! nobody: an unread stacked output, a carry only it reads, a const.

use std::sync::Arc;

use super::{prune, tidy};
use crate::ir::generate::{random_func, random_inputs, GenOptions};
use crate::ir::{interp, verify, Builder, DType, Func, Op, Type};

fn f32s(dims: &[usize]) -> Type {
    Type::new(DType::F32, dims)
}

/// A loop over xs [5, 3] with consts (k, unused) and carries (h, n):
/// h' = tanh(h * k + x), n' = n + h (a counter only the second ys reads);
/// ys: h' and n'. Yields `outputs` of it, plus the final h.
fn program(outputs: &[usize]) -> Func {
    let body = {
        let mut b = Builder::new("body", &[f32s(&[3]), f32s(&[3]), f32s(&[3]), f32s(&[3]), f32s(&[3])]);
        let (k, h, n, x) = (b.param(0), b.param(2), b.param(3), b.param(4));
        let hk = b.mul(h, k);
        let s = b.add(hk, x);
        let h2 = b.unary(Op::Tanh, s);
        let n2 = b.add(n, h);
        b.finish(vec![h2, n2, h2, n2])
    };
    let mut b = Builder::new("p", &[f32s(&[3]), f32s(&[3]), f32s(&[3]), f32s(&[5, 3])]);
    let args: Vec<_> = [0, 1, 0, 0, 3].iter().map(|&p| b.param(p)).collect();
    let s = crate::ir::Scan { body: Arc::new(body), n_const: 2, n_carry: 2, length: 5, reverse: false, output: 0 };
    let outs = outputs.iter().map(|&k| b.scan_output(&s, k, &args)).collect();
    b.finish(outs)
}

fn the_scan(f: &Func) -> crate::ir::Scan {
    f.insts.iter().find_map(|i| if let Op::Scan(s) = &i.op { Some(s.clone()) } else { None }).expect("a scan")
}

#[test]
fn an_unread_output_its_carry_and_an_unused_const_go() {
    // Only the final h and the stacked h are read: n, its ys and the const
    // that nothing reads go.
    let f = program(&[0, 2]);
    let p = prune(&f);
    verify::assert_valid(&p, "prune");
    let s = the_scan(&p);
    assert_eq!((s.n_const, s.n_carry, s.body.outputs.len(), s.body.n_params), (1, 1, 2, 3));
    let inputs = random_inputs(&f, 3);
    assert_eq!(interp::run(&p, &inputs), interp::run(&f, &inputs));
    // The counter's ys need the counter and h: everything but the unused const stays.
    let f = program(&[3]);
    let s = the_scan(&prune(&f));
    assert_eq!((s.n_const, s.n_carry, s.body.outputs.len()), (1, 2, 3));
    // Nothing to remove: the same program.
    let f = program(&[0, 1, 2, 3]);
    let s = the_scan(&prune(&f));
    assert_eq!((s.n_const, s.n_carry, s.body.outputs.len()), (1, 2, 4), "only the const goes");
}

#[test]
fn tidy_keeps_the_results_of_generated_programs_bitwise() {
    let mut pruned = 0;
    for seed in 0..300 {
        let f = random_func(seed, &GenOptions::default());
        let t = tidy(&f);
        verify::verify(&t).unwrap_or_else(|e| panic!("seed {seed}: {e}\n{}", crate::ir::text::print(&t)));
        let inputs = random_inputs(&f, seed);
        let (want, got) = (interp::run(&f, &inputs), interp::run(&t, &inputs));
        let bits = |ts: &[crate::ir::Tensor]| ts.iter().map(|t| t.to_bits_vec()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "seed {seed}");
        pruned += usize::from(crate::ir::text::print(&t) != crate::ir::text::print(&crate::ir::dce::dce(&f)));
    }
    assert!(pruned > 0, "no generated program had anything to prune");
}
