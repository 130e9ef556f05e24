//! Fused f32 loops as 512-bit kernels (`cpu/wide.rs`): bitwise the same
//! results as Cranelift's loops (`Options::wide_loops` off) and, with
//! libm transcendentals, as the interpreter; on every node kind the wide
//! encoder has, special values (NaN, infinities, signed zeros, subnormals)
//! included, rows with and without a masked tail, row and scalar
//! broadcasts, and values stored on the way (guests).

use super::{assert_outputs_equal, canonical_bits, float_specials, Rng};
use crate::codegen::cpu::{compile_with, machine_code, wide_available, Options};
use crate::ir::{interp, Builder, DType, Func, Op, Tensor, Type, ValueId};

/// Whether this host lacks wide loops (then the test says it skipped).
fn skipped_without_wide_loops() -> bool {
    let skip = !wide_available();
    if skip {
        eprintln!("skipped: this host has no AVX-512F, BMI2 and FMA");
    }
    skip
}

/// The trees: each takes `x`, `y` (the full shape) and `r` (a row
/// broadcast over the leading dims) and returns the root and a guest.
type TreeFn = fn(&mut Builder, &Type, ValueId, ValueId, ValueId) -> (ValueId, ValueId);

fn arithmetic(b: &mut Builder, ty: &Type, x: ValueId, y: ValueId, r: ValueId) -> (ValueId, ValueId) {
    let c = b.full(0.75, ty);
    let s = b.add(x, y);
    let p = b.mul(s, c);
    let q = b.binary(Op::Div, x, r);
    let d = b.sub(p, q);
    let m = b.binary(Op::Max, d, y);
    let ny = b.unary(Op::Neg, y);
    let n = b.binary(Op::Min, m, ny);
    let a = b.unary(Op::Abs, n);
    let root = b.unary(Op::Sqrt, a);
    (root, m)
}

fn powers(b: &mut Builder, ty: &Type, x: ValueId, y: ValueId, r: ValueId) -> (ValueId, ValueId) {
    let mut acc = b.binary(Op::Min, x, r);
    for e in [2.0, 3.0, -1.0, 4.0, -2.0, 0.0] {
        let k = b.full(e, ty);
        let p = b.binary(Op::Pow, y, k);
        acc = b.add(acc, p);
    }
    let m = b.binary(Op::Max, acc, x);
    (m, acc)
}

fn selects(b: &mut Builder, ty: &Type, x: ValueId, y: ValueId, r: ValueId) -> (ValueId, ValueId) {
    // Bit k of `v` is comparison k of x and y: every predicate shows.
    let mut v = b.full(0.0, ty);
    for (k, op) in [Op::Gt, Op::Lt, Op::Ge, Op::Le, Op::Eq, Op::Ne].into_iter().enumerate() {
        let c = b.binary(op, x, y);
        let w = b.full((1 << k) as f64, ty);
        let set = b.add(v, w);
        v = b.select(c, set, v);
    }
    let zero = b.full(0.0, ty);
    let pos = b.binary(Op::Gt, r, zero);
    let relu_grad = b.select(pos, y, zero);
    let root = b.add(v, relu_grad);
    (root, v)
}

/// Max and min of raw inputs (every pair of specials meets: signed zeros,
/// NaN on either side).
fn extrema(b: &mut Builder, _: &Type, x: ValueId, y: ValueId, r: ValueId) -> (ValueId, ValueId) {
    let max = b.binary(Op::Max, x, y);
    let min = b.binary(Op::Min, x, y);
    let min_r = b.binary(Op::Min, min, r);
    (min_r, max)
}

fn transcendentals(b: &mut Builder, ty: &Type, x: ValueId, y: ValueId, r: ValueId) -> (ValueId, ValueId) {
    let e = b.unary(Op::Exp, x);
    let one = b.full(1.0, ty);
    let ay = b.unary(Op::Abs, y);
    let ay1 = b.add(ay, one);
    let l = b.unary(Op::Log, ay1);
    let xr = b.mul(x, r);
    // A tanh inside a larger tree (not a wide root: its own loop would
    // take it away), then a logistic.
    let t = b.unary(Op::Tanh, xr);
    let tl = b.add(t, l);
    let g = b.unary(Op::Logistic, tl);
    let root = b.mul(g, e);
    (root, l)
}

fn func_for(tree: TreeFn, dims: &[usize]) -> Func {
    let full = Type::new(DType::F32, dims);
    let row = Type::new(DType::F32, &dims[dims.len() - 1..]);
    let mut b = Builder::new("wide", &[full.clone(), full.clone(), row]);
    let r = b.broadcast(b.param(2), &full.shape, vec![dims.len() - 1]);
    let (x, y) = (b.param(0), b.param(1));
    let (root, guest) = tree(&mut b, &full, x, y, r);
    b.finish(vec![root, guest])
}

/// Every pair of specials first (x runs through them, y steps once per
/// round, the row another way), then values over many magnitudes.
fn inputs_for(func: &Func, rng: &mut Rng) -> Vec<Tensor> {
    let specials = float_specials();
    let s = specials.len();
    func.param_types()
        .iter()
        .enumerate()
        .map(|(p, ty)| {
            let n = ty.shape.num_elements();
            let values: Vec<f64> = (0..n)
                .map(|i| match p {
                    _ if i >= s * s => rng.uniform(-4.0, 4.0) * 10f64.powi(rng.below(5) as i32 - 2),
                    0 => specials[i % s],
                    1 => specials[i / s],
                    _ => specials[(7 * i) % s],
                })
                .collect();
            Tensor::from_f64(DType::F32, ty.shape.dims(), &values)
        })
        .collect()
}

#[test]
fn wide_loops_match_cranelift_loops_and_the_interpreter_bitwise() {
    if skipped_without_wide_loops() {
        return;
    }
    let mut rng = Rng(0x51DE);
    let trees: [(&str, TreeFn); 5] = [
        ("arithmetic", arithmetic),
        ("powers", powers),
        ("selects", selects),
        ("extrema", extrema),
        ("transcendentals", transcendentals),
    ];
    // Rows of 37 (two full vectors and a tail of 5), 64 (no tail), 1029
    // (one row: every pair of specials), 100 x 4 (a tail of 4 per row).
    let shapes: [&[usize]; 4] = [&[3, 37], &[2, 64], &[1029], &[4, 100]];
    for (name, tree) in trees {
        for dims in shapes {
            let func = func_for(tree, dims);
            let inputs = inputs_for(&func, &mut rng);
            for inline_math in [true, false] {
                let label = format!("{name} {dims:?} inline_math {inline_math}");
                let wide = Options { inline_math, parallel_loops: false, ..Options::default() };
                let narrow = Options { wide_loops: false, ..wide.clone() };
                let kernels = machine_code(&func, &wide).unwrap().iter().filter(|c| c.wide).count();
                assert!(kernels >= 1, "{label}: no wide kernel");
                assert_eq!(machine_code(&func, &narrow).unwrap().iter().filter(|c| c.wide).count(), 0);
                let got = compile_with(&func, &wide).unwrap().run(&inputs);
                let want = compile_with(&func, &narrow).unwrap().run(&inputs);
                for (j, (a, b)) in want.iter().zip(&got).enumerate() {
                    let (a, b) = (canonical_bits(a), canonical_bits(b));
                    let first = a.iter().zip(&b).position(|(x, y)| x != y);
                    assert_eq!(first, None, "{label}: output {j} differs from Cranelift's loop");
                }
                // (A constant integer pow is multiplications in both loops,
                // not the interpreter's powf: not compared with it.)
                if !inline_math && name != "powers" {
                    assert_outputs_equal(&label, &func, &inputs, &interp::run(&func, &inputs), &got);
                }
            }
        }
    }
}

/// Rows shorter than `WIDE_MIN_ROW`, f64 loops and trees with an op the
/// encoder lacks (`sign`) keep Cranelift's loops.
#[test]
fn short_rows_f64_and_uncovered_ops_stay_in_cranelift() {
    let short = func_for(arithmetic, &[4, 31]);
    let ty = Type::new(DType::F64, &[1000]);
    let mut b = Builder::new("f64", &[ty.clone(), ty.clone()]);
    let s = b.add(b.param(0), b.param(1));
    let f64_loop = b.finish(vec![s]);
    let ty = Type::new(DType::F32, &[1000]);
    let mut b = Builder::new("sign", &[ty.clone(), ty.clone()]);
    let s = b.unary(Op::Sign, b.param(0));
    let p = b.mul(s, b.param(1));
    let sign_loop = b.finish(vec![p]);
    for func in [short, f64_loop, sign_loop] {
        let kernels = machine_code(&func, &Options::default()).unwrap().iter().filter(|c| c.wide).count();
        assert_eq!(kernels, 0, "{}", func.name);
    }
}

/// `func` with `wide_loops` on and off (and on threads where its loops are
/// long enough): bitwise the same outputs; returns the wide kernels made.
fn assert_wide_matches_narrow(label: &str, func: &Func, inputs: &[Tensor]) -> usize {
    let wide = Options::default();
    let narrow = Options { wide_loops: false, ..wide.clone() };
    let kernels = machine_code(func, &wide).unwrap().iter().filter(|c| c.wide).count();
    let want = compile_with(func, &narrow).unwrap().run(inputs);
    let mut compiled = compile_with(func, &wide).unwrap();
    for threads in [1, 3] {
        let got = super::with_threads(threads, || compiled.run(inputs));
        for (j, (a, b)) in want.iter().zip(&got).enumerate() {
            let (a, b) = (canonical_bits(a), canonical_bits(b));
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            assert_eq!(first, None, "{label}, {threads} threads: output {j} differs from Cranelift's loop");
        }
    }
    kernels
}

/// Walkers beyond the caller-saved registers (twelve leaves and outputs:
/// the kernel pushes and pops callee-saved ones), a column broadcast (a
/// walker that stays put within a row), long rows split over threads, and
/// a tree with more live values than registers (no kernel: Cranelift's
/// loop, the same results).
#[test]
fn many_walkers_column_broadcasts_threads_and_register_exhaustion() {
    if skipped_without_wide_loops() {
        return;
    }
    let mut rng = Rng(0xC0DE);
    // Eight full inputs, a column, the root and two guests: 12 walkers,
    // the most a kernel takes.
    let dims = [3usize, 70_001];
    let full = Type::new(DType::F32, &dims);
    let col = Type::new(DType::F32, &[3, 1]);
    let mut params = vec![full.clone(); 8];
    params.push(col);
    let mut b = Builder::new("many", &params);
    let c = b.broadcast(b.param(8), &full.shape, vec![0, 1]);
    let mut acc = b.mul(b.param(0), c);
    let mut guests = Vec::new();
    for k in 1..8 {
        let op = [Op::Add, Op::Mul, Op::Sub, Op::Max][k % 4].clone();
        acc = b.binary(op, acc, b.param(k));
        if k == 3 || k == 6 {
            guests.push(acc);
        }
    }
    let root = b.unary(Op::Abs, acc);
    let mut outputs = vec![root];
    outputs.extend(guests);
    let many = b.finish(outputs);
    let inputs = inputs_for(&many, &mut rng);
    assert!(assert_wide_matches_narrow("many walkers", &many, &inputs) >= 1, "many walkers: no wide kernel");

    // 40 products each used twice, the second uses after all the first:
    // 40 values live at once, more than the 31 vector registers.
    let ty = Type::new(DType::F32, &[2, 100]);
    let mut b = Builder::new("exhaust", &[ty.clone()]);
    let x = b.param(0);
    let products: Vec<ValueId> = (0..40)
        .map(|k| {
            let c = b.full(1.0 + k as f64 / 64.0, &ty);
            b.mul(x, c)
        })
        .collect();
    let mut s = products[0];
    for &p in &products[1..] {
        s = b.add(s, p);
    }
    let mut t = products[39];
    for &p in products[..39].iter().rev() {
        t = b.binary(Op::Max, t, p);
    }
    let root = b.sub(s, t);
    let exhaust = b.finish(vec![root]);
    let inputs = inputs_for(&exhaust, &mut rng);
    assert_eq!(assert_wide_matches_narrow("exhaustion", &exhaust, &inputs), 0, "a kernel past the registers");
}

/// A random f32 program over `dims` (rows of 32 or more): elementwise
/// trees of every kind the wide encoder covers, over three full inputs, a
/// row and a column broadcast and constants, some intermediate values also
/// outputs (guests, or loops of their own), and sometimes a long sum
/// (a blocked sum's kernel).
fn random_program(rng: &mut Rng, dims: &[usize]) -> Func {
    let full = Type::new(DType::F32, dims);
    let rank = dims.len();
    let row = Type::new(DType::F32, &dims[rank - 1..]);
    let mut col_dims = vec![1; rank];
    col_dims[0] = dims[0];
    let col = Type::new(DType::F32, &col_dims);
    let mut b = Builder::new("random_wide", &[full.clone(), full.clone(), full.clone(), row, col]);
    let r = b.broadcast(b.param(3), &full.shape, vec![rank - 1]);
    let c = b.broadcast(b.param(4), &full.shape, (0..rank).collect());
    let mut pool = vec![b.param(0), b.param(1), b.param(2), r, c];
    let mut outputs = Vec::new();
    for step in 0..8 + rng.below(25) {
        let pick = |rng: &mut Rng, pool: &[ValueId]| pool[rng.below(pool.len())];
        let x = pick(rng, &pool);
        let y = pick(rng, &pool);
        let v = match rng.below(14) {
            0 => b.add(x, y),
            1 => b.sub(x, y),
            2 => b.mul(x, y),
            3 => b.binary(Op::Div, x, y),
            4 => b.binary(Op::Max, x, y),
            5 => b.binary(Op::Min, x, y),
            6 => b.unary([Op::Neg, Op::Abs, Op::Sqrt][rng.below(3)].clone(), x),
            7 => {
                let k = b.full([2.0, 3.0, -1.0, 4.0, -2.0][rng.below(5)], &full);
                b.binary(Op::Pow, x, k)
            }
            8 => b.unary([Op::Exp, Op::Log, Op::Tanh, Op::Logistic][rng.below(4)].clone(), x),
            9 | 10 => {
                let op = [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne][rng.below(6)].clone();
                let cond = b.binary(op, x, y);
                let z = pick(rng, &pool);
                b.select(cond, y, z)
            }
            11 => {
                let k = b.full(rng.uniform(-3.0, 3.0), &full);
                b.mul(x, k)
            }
            _ => {
                let k = b.full(rng.uniform(-1.0, 1.0), &full);
                b.add(x, k)
            }
        };
        pool.push(v);
        if step % 7 == 3 && rng.chance(0.5) {
            outputs.push(v);
        }
    }
    let last = *pool.last().expect("the pool holds the inputs");
    outputs.insert(0, last);
    if rng.chance(0.4) {
        let axes: Vec<usize> = (0..rank).collect();
        let total = b.reduce_sum(last, axes);
        outputs.push(total);
    }
    b.finish(outputs)
}

/// Random programs (the wide encoder's every node kind, guests, broadcasts,
/// long sums, register pressure from shared values): wide loops on and
/// off give bitwise the same outputs, and most programs get a kernel.
#[test]
fn random_programs_match_with_and_without_wide_loops() {
    if skipped_without_wide_loops() {
        return;
    }
    let mut rng = Rng(0xF00D);
    let shapes: [&[usize]; 4] = [&[2, 45], &[4096], &[3, 1500], &[5000]];
    let (mut programs, mut with_kernels) = (0, 0);
    let count: usize = std::env::var("JLC_WIDE_PROGRAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    for k in 0..count {
        let dims = shapes[k % shapes.len()];
        let func = random_program(&mut rng, dims);
        let inputs = inputs_for(&func, &mut rng);
        let kernels = assert_wide_matches_narrow(&format!("program {k} {dims:?}"), &func, &inputs);
        programs += 1;
        with_kernels += usize::from(kernels > 0);
    }
    eprintln!("{with_kernels} of {programs} programs got a wide kernel");
    assert!(with_kernels * 2 >= programs, "only {with_kernels} of {programs} programs got a wide kernel");
}
