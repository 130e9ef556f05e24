//! Autodiff of `Op::Scan` through the harness of `tests.rs`: grad and jvp vs
//! central finite differences in f64, `<Jt, c> = <t, J^T c>` to 1e-12, and
//! second order (grad of grad, forward over reverse), on a cumulative sum, a
//! product recurrence (forward and reversed), a loop without xs, a nested
//! scan, and an RNN `h = tanh(W h + U x)` over 5 steps with a loss (the
//! issue's whole-model check of a scan-based recurrence). Also: compile
//! time is linear in the body, not the length (the transformed programs of a
//! 1,000-step scan have as many instructions as those of a 10-step one).

use std::sync::Arc;

use super::{case, check_all, f32_ty, Domain};
use crate::autodiff::{grad, jvp, vjp, vmap};
use crate::ir::{Builder, Func, Op, Shape, ValueId};

/// `h' = op(h, x)`, `y = h'`, over `xs: [n] ++ shape`, as a body.
fn recurrence(op: Op, shape: &[usize]) -> Arc<Func> {
    let mut b = Builder::new("step", &[f32_ty(shape), f32_ty(shape)]);
    let h = b.binary(op, b.param(0), b.param(1));
    Arc::new(b.finish(vec![h, h]))
}

/// `ys + final carry` (broadcast): uses both results of one loop.
fn both(b: &mut Builder, outs: &[ValueId]) -> ValueId {
    let ys_shape = b.ty(outs[1]).shape.clone();
    let last = b.broadcast_to(outs[0], &ys_shape);
    b.add(outs[1], last)
}

/// The RNN cell: consts W [3, 3], U [3, 2]; carry h [3]; x [2].
fn rnn_cell() -> Arc<Func> {
    let mut b = Builder::new("rnn_cell", &[f32_ty(&[3, 3]), f32_ty(&[3, 2]), f32_ty(&[3]), f32_ty(&[2])]);
    let (w, u, h, x) = (b.param(0), b.param(1), b.param(2), b.param(3));
    let hc = b.reshape(h, &Shape(vec![3, 1]));
    let xc = b.reshape(x, &Shape(vec![2, 1]));
    let wh = b.matmul(w, hc);
    let ux = b.matmul(u, xc);
    let s = b.add(wh, ux);
    let s = b.reshape(s, &Shape(vec![3]));
    let h2 = b.unary(Op::Tanh, s);
    Arc::new(b.finish(vec![h2, h2]))
}

#[test]
fn cumsum_and_product_recurrence_gradients() {
    let cases = vec![
        case(
            "cumsum",
            vec![(&[3], Domain::Any), (&[5, 3], Domain::Any)],
            Box::new(|b, p| {
                let outs = b.scan(recurrence(Op::Add, &[3]), 0, 1, 5, false, &[p[0], p[1]]);
                both(b, &outs)
            }),
        ),
        case(
            "product recurrence",
            vec![(&[2], Domain::NonZero), (&[4, 2], Domain::NonZero)],
            Box::new(|b, p| {
                let outs = b.scan(recurrence(Op::Mul, &[2]), 0, 1, 4, false, &[p[0], p[1]]);
                both(b, &outs)
            }),
        ),
        case(
            "product recurrence reversed, final carry",
            vec![(&[2], Domain::NonZero), (&[4, 2], Domain::NonZero)],
            Box::new(|b, p| b.scan(recurrence(Op::Mul, &[2]), 0, 1, 4, true, &[p[0], p[1]])[0]),
        ),
    ];
    check_all(cases);
}

#[test]
fn loop_without_xs_and_nested_scan_gradients() {
    // h' = tanh(h * c) + h for 4 steps, c a const.
    let mut b = Builder::new("affine", &[f32_ty(&[2]), f32_ty(&[2])]);
    let hc = b.mul(b.param(1), b.param(0));
    let t = b.unary(Op::Tanh, hc);
    let h = b.add(t, b.param(1));
    let no_xs = Arc::new(b.finish(vec![h]));
    // Outer: carry [2], x [3, 2]: h' = h * (inner cumsum of x's rows from h).
    let mut b = Builder::new("outer", &[f32_ty(&[2]), f32_ty(&[3, 2])]);
    let (h, x) = (b.param(0), b.param(1));
    let inner = b.scan(recurrence(Op::Add, &[2]), 0, 1, 3, false, &[h, x]);
    let h2 = b.mul(h, inner[0]);
    let outer = Arc::new(b.finish(vec![h2, inner[1]]));
    let cases = vec![
        case(
            "no xs",
            vec![(&[2], Domain::Any), (&[2], Domain::Any)],
            Box::new(move |b, p| b.scan(no_xs.clone(), 1, 1, 4, false, &[p[0], p[1]])[0]),
        ),
        case(
            "nested",
            vec![(&[2], Domain::Any), (&[2, 3, 2], Domain::Any)],
            Box::new(move |b, p| {
                let outs = b.scan(outer.clone(), 0, 1, 2, false, &[p[0], p[1]]);
                let flat = b.reshape(outs[1], &Shape(vec![2, 6]));
                let fin = b.reshape(outs[0], &Shape(vec![2, 1]));
                let fin = b.broadcast(fin, &Shape(vec![2, 6]), vec![0, 1]);
                b.mul(flat, fin)
            }),
        ),
    ];
    check_all(cases);
}

#[test]
fn rnn_over_five_steps_whole_model_gradients() {
    // Loss pieces: every hidden state (ys) and the final one, then a linear
    // readout; W, U, h0 and the inputs xs all differentiated.
    let cases = vec![case(
        "rnn",
        vec![(&[3, 3], Domain::Any), (&[3, 2], Domain::Any), (&[3], Domain::Any), (&[5, 2], Domain::Any)],
        Box::new(|b, p| {
            let outs = b.scan(rnn_cell(), 2, 1, 5, false, &[p[0], p[1], p[2], p[3]]);
            both(b, &outs)
        }),
    )];
    check_all(cases);
}

/// Instructions in a function and in every scan body it holds.
fn size(f: &Func) -> usize {
    f.insts
        .iter()
        .map(|inst| match &inst.op {
            Op::Scan(s) => 1 + size(&s.body),
            _ => 1,
        })
        .sum()
}

#[test]
fn transformed_programs_do_not_grow_with_the_length() {
    let program = |n: usize| {
        let types = [f32_ty(&[3, 3]), f32_ty(&[3, 2]), f32_ty(&[3]), f32_ty(&[n, 2])];
        let mut b = Builder::new("rnn", &types);
        let args: Vec<ValueId> = (0..4).map(|i| b.param(i)).collect();
        let outs = b.scan(rnn_cell(), 2, 1, n, false, &args);
        let ys = b.reduce_sum(outs[1], vec![0, 1]);
        let fin = b.reduce_sum(outs[0], vec![0]);
        let loss = b.add(ys, fin);
        b.finish(vec![loss])
    };
    let (short, long) = (program(10), program(1000));
    let wrt = [0, 1, 2, 3];
    let g = |f: &Func| grad(f, &wrt);
    let gg = |f: &Func| {
        // grad of (sum of the gradients): second order, through scans of scans.
        let g1 = grad(f, &wrt);
        let mut b = Builder::new("sum_grads", &f.param_types());
        let args: Vec<ValueId> = (0..f.n_params).map(|i| b.param(i)).collect();
        let outs = crate::autodiff::inline_outputs(&mut b, &g1, &args);
        let mut total = outs[0];
        for &o in &outs[1..] {
            let rank = b.ty(o).shape.rank();
            let s = b.reduce_sum(o, (0..rank).collect());
            total = b.add(total, s);
        }
        grad(&b.finish(vec![total]), &wrt)
    };
    let transforms: [(&str, Box<dyn Fn(&Func) -> Func>); 5] = [
        ("grad", Box::new(g)),
        ("grad of grad", Box::new(gg)),
        ("jvp", Box::new(|f: &Func| jvp(f, &wrt))),
        ("vjp", Box::new(|f: &Func| vjp(f, &wrt))),
        ("vmap", Box::new(|f: &Func| vmap(f, &[Some(0), None, None, Some(1)], 3))),
    ];
    for (name, t) in transforms {
        let (a, b) = (t(&short), t(&long));
        crate::ir::verify::assert_valid(&b, name);
        assert_eq!(size(&a), size(&b), "{name}: the 1,000-step program is as large as the 10-step one");
        assert!(size(&b) < 10_000, "{name}: {} instructions", size(&b));
    }
}

/// The loops a program runs: one per group of sibling scan instructions
/// (same loop, same operands), after `merge_prefix_loops` as the backends
/// see it; `(forward, reverse)` counts.
fn loops(f: &Func) -> (usize, usize) {
    let f = crate::ir::scan::merge_prefix_loops(f);
    let firsts: Vec<usize> = crate::ir::scan::result_groups(&f).iter().map(|g| g[0]).collect();
    let reverse = firsts.iter().filter(|&&i| matches!(&f.insts[i].op, Op::Scan(s) if s.reverse)).count();
    (firsts.len() - reverse, reverse)
}

/// An RNN loss that reads both the final state and every output: its value
/// and gradient run the forward loop once (the replayed primal scan and
/// the one that stores the carries merge) and one backward loop (Note
/// [Sibling cotangents]); each result's cotangent used to build its own.
#[test]
fn value_and_gradient_of_a_scan_run_one_loop_each_way() {
    let mut b = Builder::new("rnn", &[f32_ty(&[3, 3]), f32_ty(&[3, 2]), f32_ty(&[3]), f32_ty(&[7, 2])]);
    let outs = b.scan(rnn_cell(), 2, 1, 7, false, &[b.param(0), b.param(1), b.param(2), b.param(3)]);
    let y = both(&mut b, &outs);
    let loss = b.reduce_sum(y, vec![0, 1]);
    let f = b.finish(vec![loss]);
    assert_eq!(loops(&f), (1, 0));
    let g = grad(&f, &[0, 1, 2]);
    crate::ir::verify::assert_valid(&g, "grad");
    assert_eq!(loops(&g), (1, 1), "{}", crate::ir::text::print(&g));
    // The merged program computes what the unmerged one does.
    let inputs = crate::ir::generate::random_inputs(&g, 7);
    let merged = crate::ir::scan::merge_prefix_loops(&g);
    assert_eq!(crate::ir::interp::run(&merged, &inputs), crate::ir::interp::run(&g, &inputs));
}
