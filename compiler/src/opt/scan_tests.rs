//! The optimizer on scans: the body is optimized as its own function (here
//! `(h + x) * 1 -> h + x`), siblings keep one body, and the values are the
//! interpreter's on the unoptimized program, bitwise.

use std::sync::Arc;

use crate::ir::generate::random_inputs;
use crate::ir::{interp, Builder, DType, Func, Op, Type};

fn body_sizes(f: &Func) -> Vec<usize> {
    f.insts
        .iter()
        .filter_map(|i| match &i.op {
            Op::Scan(s) => Some(s.body.insts.len()),
            _ => None,
        })
        .collect()
}

#[test]
fn scan_bodies_are_optimized_and_siblings_kept() {
    let t = Type::new(DType::F32, &[3]);
    let mut b = Builder::new("body", &[t.clone(), t.clone()]);
    let s = b.add(b.param(0), b.param(1));
    let one = b.full(1.0, &t);
    let h = b.mul(s, one);
    let body = Arc::new(b.finish(vec![h, h]));
    let mut b = Builder::new("scanned", &[t.clone(), Type::new(DType::F32, &[4, 3])]);
    let outs = b.scan(body, 0, 1, 4, false, &[b.param(0), b.param(1)]);
    let f = b.finish(outs);
    let (g, _) = super::optimize(&f, &super::Options::default());
    crate::ir::verify::assert_valid(&g, "optimize");
    let (before, after) = (body_sizes(&f), body_sizes(&g));
    assert_eq!(after.len(), 2, "both results stay scans:\n{}", crate::ir::text::print(&g));
    assert!(after.iter().all(|&n| n < before[0]), "{before:?} -> {after:?}\n{}", crate::ir::text::print(&g));
    let bodies: Vec<_> =
        g.insts.iter().filter_map(|i| if let Op::Scan(s) = &i.op { Some(s.body.clone()) } else { None }).collect();
    assert_eq!(bodies[0], bodies[1], "siblings share one body");
    for seed in 0..3 {
        let inputs = random_inputs(&f, seed);
        let bits = |f: &Func| interp::run(f, &inputs).iter().map(crate::ir::scan::tests::bits).collect::<Vec<_>>();
        assert_eq!(bits(&f), bits(&g), "seed {seed}");
    }
}
