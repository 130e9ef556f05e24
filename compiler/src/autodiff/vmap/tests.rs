//! `vmap` tests. Oracle: the interpreter run once per example on the
//! unbatched function, the results stacked along axis 0 (`stack` here is
//! plain host code, independent of the IR). The batched program computes
//! every example with the same operations in the same order, so results
//! must agree bitwise (NaN equal to NaN).

use super::vmap;
use crate::autodiff::{grad, jvp};
use crate::ir::generate::{random_func, random_inputs, GenOptions, Rng};
use crate::ir::interp::run;
use crate::ir::verify::assert_valid;
use crate::ir::{Builder, Conv, DType, Func, Op, Shape, Tensor, Type, ValueId, Window};

/// `parts` (each of type `elem`) stacked into a new axis `axis`.
fn stack(parts: &[Tensor], axis: usize, elem: &Type) -> Tensor {
    let mut dims = elem.shape.0.clone();
    dims.insert(axis, parts.len());
    let outer: usize = elem.shape.0[..axis].iter().product();
    let inner: usize = elem.shape.0[axis..].iter().product();
    let values: Vec<Vec<f64>> = parts
        .iter()
        .map(|p| {
            assert_eq!(&p.ty(), elem, "stack: part of the wrong type");
            p.to_f64_vec()
        })
        .collect();
    let mut out = Vec::with_capacity(outer * parts.len() * inner);
    for o in 0..outer {
        for v in &values {
            out.extend_from_slice(&v[o * inner..(o + 1) * inner]);
        }
    }
    Tensor::from_f64(elem.dtype, &dims, &out)
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    a.ty() == b.ty()
        && a.to_f64_vec()
            .iter()
            .zip(b.to_f64_vec())
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// `func` batched by `levels` in turn (innermost first: `levels[0]` is
/// applied first), checked against running `func` on every example.
/// Example inputs are random; a param gets a distinct input per example
/// only along the levels that batch it.
struct Nest<'a> {
    funcs: Vec<Func>,
    levels: &'a [(Vec<Option<usize>>, usize)],
    seed: u64,
}

impl Nest<'_> {
    fn new<'a>(func: &Func, levels: &'a [(Vec<Option<usize>>, usize)], seed: u64) -> Nest<'a> {
        let mut funcs = vec![func.clone()];
        for (axes, size) in levels {
            let batched = vmap(funcs.last().expect("func"), axes, *size);
            assert_valid(&batched, "vmap");
            funcs.push(batched);
        }
        Nest { funcs, levels, seed }
    }
    fn base_input(&self, i: usize, idx: &[usize]) -> Tensor {
        let mut h = self.seed.wrapping_mul(0x9e37_79b9).wrapping_add(i as u64);
        for (l, &e) in idx.iter().enumerate() {
            if self.levels[l].0[i].is_some() {
                h = h.wrapping_mul(1_000_003).wrapping_add(e as u64 + 1);
            }
        }
        random_inputs(&self.funcs[0], h).swap_remove(i)
    }
    /// Param `i`'s input for the function batched `level` times, at the outer indices `idx`.
    fn input(&self, i: usize, level: usize, idx: &mut Vec<usize>) -> Tensor {
        if level == 0 {
            return self.base_input(i, idx);
        }
        let l = level - 1;
        let (axes, size) = &self.levels[l];
        match axes[i] {
            None => {
                idx[l] = 0;
                self.input(i, l, idx)
            }
            Some(axis) => {
                let parts: Vec<Tensor> = (0..*size)
                    .map(|e| {
                        idx[l] = e;
                        self.input(i, l, idx)
                    })
                    .collect();
                stack(&parts, axis, &self.funcs[l].param_types()[i])
            }
        }
    }
    /// The outputs of the function batched `level` times, computed one example at a time.
    fn expected(&self, level: usize, idx: &mut Vec<usize>) -> Vec<Tensor> {
        if level == 0 {
            let inputs: Vec<Tensor> = (0..self.funcs[0].n_params).map(|i| self.base_input(i, idx)).collect();
            return run(&self.funcs[0], &inputs);
        }
        let l = level - 1;
        let per_example: Vec<Vec<Tensor>> = (0..self.levels[l].1)
            .map(|e| {
                idx[l] = e;
                self.expected(l, idx)
            })
            .collect();
        let out_types = self.funcs[l].output_types();
        (0..out_types.len())
            .map(|j| {
                let parts: Vec<Tensor> = per_example.iter().map(|outs| outs[j].clone()).collect();
                stack(&parts, 0, &out_types[j])
            })
            .collect()
    }
    fn check(&self) {
        let n = self.levels.len();
        let batched = self.funcs.last().expect("func");
        let inputs: Vec<Tensor> = (0..batched.n_params).map(|i| self.input(i, n, &mut vec![0; n])).collect();
        let got = run(batched, &inputs);
        let want = self.expected(n, &mut vec![0; n]);
        for (j, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                same(g, w),
                "seed {}: output {j} of vmap {:?} differs\nfunc:\n{}\nbatched:\n{}\ngot  {g}\nwant {w}",
                self.seed,
                self.levels,
                crate::ir::text::print(&self.funcs[0]),
                crate::ir::text::print(batched),
            );
        }
    }
}

/// Random batch axes (30% shared) and a batch size (sometimes 0 or 1).
fn random_axes(func: &Func, rng: &mut Rng) -> (Vec<Option<usize>>, usize) {
    let axes = func
        .param_types()
        .iter()
        .map(|t| if rng.chance(0.3) { None } else { Some(rng.below(t.shape.rank() + 1)) })
        .collect();
    let size = if rng.chance(0.05) { rng.below(2) } else { 1 + rng.below(3) };
    (axes, size)
}

#[test]
fn vmap_equals_stacking_examples_on_random_programs() {
    for seed in 0..400 {
        let func = random_func(seed, &GenOptions::default());
        let mut rng = Rng(seed ^ 0x0b47_c400);
        let levels = [random_axes(&func, &mut rng)];
        Nest::new(&func, &levels, seed).check();
    }
}

#[test]
fn vmap_of_vmap_equals_stacking_twice() {
    for seed in 0..150 {
        let func = random_func(seed, &GenOptions { max_elements: 24, ..GenOptions::default() });
        let mut rng = Rng(seed ^ 0x0220_0220);
        let inner = random_axes(&func, &mut rng);
        let outer_types = vmap(&func, &inner.0, inner.1).param_types();
        let outer = {
            let axes = outer_types
                .iter()
                .map(|t| if rng.chance(0.3) { None } else { Some(rng.below(t.shape.rank() + 1)) })
                .collect();
            (axes, 1 + rng.below(3))
        };
        Nest::new(&func, &[inner, outer], seed).check();
    }
}

/// Random numbers under vmap: a key per example (at either axis of the
/// stacked keys) gives each example the stream its key alone draws, in one
/// instruction per op whatever the batch size (the key-stack form of the
/// random ops), also nested, also with a stack-of-keys op inside.
#[test]
fn vmap_of_random_ops_draws_each_examples_stream_without_unrolling() {
    let kt = Type::new(DType::I32, &[2]);
    let xt = Type::new(DType::F32, &[4, 3]);
    let mut b = Builder::new("noisy", &[kt, xt.clone()]);
    let (key, x) = (b.param(0), b.param(1));
    let u = b.random_uniform(key, &xt);
    let noisy = b.mul(x, u);
    let bits = b.random_bits(key, &Shape(vec![5]));
    let split = b.random_split(key, &Shape(vec![2]));
    let rows = b.slice(split, vec![0, 0], vec![1, 2], vec![1, 1]);
    let row_key = b.reshape(rows, &Shape(vec![2]));
    let again = b.random_uniform(row_key, &Type::new(DType::F64, &[3]));
    let f = b.finish(vec![noisy, bits, split, again]);
    for (axes, size) in [(vec![Some(0), None], 6), (vec![Some(1), Some(0)], 3), (vec![Some(0), Some(1)], 1)] {
        Nest::new(&f, &[(axes.clone(), size)], 17).check();
        let batched = vmap(&f, &axes, size);
        let randoms = |g: &Func| {
            g.insts.iter().filter(|i| matches!(i.op, Op::RandomBits | Op::RandomSplit | Op::RandomUniform)).count()
        };
        assert_eq!(randoms(&batched), randoms(&f), "{axes:?} x {size}: one random op per op, not per example");
    }
    Nest::new(&f, &[(vec![Some(0), None], 2), (vec![Some(1), Some(0)], 3)], 23).check();
}

/// `sum_o sum(out_o)` of a generated program: a scalar to take `grad` of.
fn summed(func: &Func) -> Func {
    let mut b = Builder::new("summed", &func.param_types());
    let args: Vec<ValueId> = (0..func.n_params).map(|i| b.param(i)).collect();
    let outs = crate::autodiff::inline_outputs(&mut b, func, &args);
    let sums: Vec<ValueId> = outs
        .iter()
        .map(|&o| {
            let rank = b.ty(o).shape.rank();
            b.reduce_sum(o, (0..rank).collect())
        })
        .collect();
    let total = sums.iter().skip(1).fold(sums[0], |acc, &s| b.add(acc, s));
    b.finish(vec![total])
}

/// Per-example gradients (`vmap(grad f)`, the composition) of
/// generated programs, params batched or shared at random.
#[test]
fn vmap_of_grad_equals_per_example_grad_on_random_programs() {
    for seed in 0..200 {
        let func = summed(&random_func(0x9AD0_0000 + seed, &GenOptions::default()));
        let grad_func = grad(&func, &(0..func.n_params).collect::<Vec<_>>());
        let mut rng = Rng(seed ^ 0x00a9_00a9);
        let levels = [random_axes(&grad_func, &mut rng)];
        Nest::new(&grad_func, &levels, seed).check();
    }
}

/// Tangents batched (the columns of a Jacobian, as `jax.jacfwd` does),
/// primals shared or batched at random.
#[test]
fn vmap_of_jvp_equals_per_example_jvp() {
    for seed in 0..150 {
        let func = random_func(seed, &GenOptions::default());
        let wrt: Vec<usize> = (0..func.n_params).collect();
        let jvp_func = jvp(&func, &wrt);
        let mut rng = Rng(seed ^ 0x0077_0077);
        let (mut axes, size) = random_axes(&jvp_func, &mut rng);
        for (i, t) in jvp_func.param_types().iter().enumerate().skip(func.n_params) {
            axes[i] = Some(rng.below(t.shape.rank() + 1));
        }
        Nest::new(&jvp_func, &[(axes, size)], seed).check();
    }
}

/// The loss of a one-hidden-layer MLP on one example (f64):
/// `sum((tanh(x w1 + b1) w2 - y)^2)`, params `w1 [3,4], b1 [4], w2 [4,2], x [3], y [2]`.
fn mlp_loss() -> Func {
    let f = DType::F64;
    let types =
        [Type::new(f, &[3, 4]), Type::new(f, &[4]), Type::new(f, &[4, 2]), Type::new(f, &[3]), Type::new(f, &[2])];
    let mut b = Builder::new("mlp_loss", &types);
    let (w1, b1, w2, x, y) = (b.param(0), b.param(1), b.param(2), b.param(3), b.param(4));
    let x = b.reshape(x, &Shape(vec![1, 3]));
    let h = b.matmul(x, w1);
    let bias = b.broadcast_to(b1, &Shape(vec![1, 4]));
    let h = b.add(h, bias);
    let h = b.unary(Op::Tanh, h);
    let o = b.matmul(h, w2);
    let o = b.reshape(o, &Shape(vec![2]));
    let d = b.sub(o, y);
    let sq = b.mul(d, d);
    let loss = b.reduce_sum(sq, vec![0]);
    b.finish(vec![loss])
}

/// The same loss summed over a batch `xs [n, 3], ys [n, 2]`, written by hand.
fn mlp_batch_loss(n: usize) -> Func {
    let f = DType::F64;
    let types = [
        Type::new(f, &[3, 4]),
        Type::new(f, &[4]),
        Type::new(f, &[4, 2]),
        Type::new(f, &[n, 3]),
        Type::new(f, &[n, 2]),
    ];
    let mut b = Builder::new("mlp_batch_loss", &types);
    let (w1, b1, w2, xs, ys) = (b.param(0), b.param(1), b.param(2), b.param(3), b.param(4));
    let h = b.matmul(xs, w1);
    let bias = b.broadcast_to(b1, &Shape(vec![n, 4]));
    let h = b.add(h, bias);
    let h = b.unary(Op::Tanh, h);
    let o = b.matmul(h, w2);
    let d = b.sub(o, ys);
    let sq = b.mul(d, d);
    let loss: ValueId = b.reduce_sum(sq, vec![0, 1]);
    b.finish(vec![loss])
}

/// `vmap(grad(loss), in_axes = (None, None, None, 0, 0))`: per-example
/// gradients, bitwise the gradients of each example alone, and summing to
/// the gradient of the batch's summed loss.
#[test]
fn vmap_of_grad_gives_per_example_gradients() {
    let n = 5;
    let loss_grad = grad(&mlp_loss(), &[0, 1, 2]);
    let axes = vec![None, None, None, Some(0), Some(0)];
    Nest::new(&loss_grad, &[(axes.clone(), n)], 7).check();

    let per_example = vmap(&loss_grad, &axes, n);
    let mut rng = Rng(11);
    let inputs: Vec<Tensor> = per_example
        .param_types()
        .iter()
        .map(|t| Tensor::f64(t.shape.dims(), (0..t.shape.num_elements()).map(|_| rng.uniform(-1.0, 1.0)).collect()))
        .collect();
    let outs = run(&per_example, &inputs);
    let batch_grads = run(&grad(&mlp_batch_loss(n), &[0, 1, 2]), &inputs);
    assert_eq!(outs[0].shape.dims(), &[n], "one loss per example");
    for k in 0..3 {
        assert_eq!(outs[1 + k].shape.0[0], n, "one gradient per example");
        let per = outs[1 + k].to_f64_vec();
        let total = batch_grads[1 + k].to_f64_vec();
        let m = total.len();
        for (i, &t) in total.iter().enumerate() {
            let sum: f64 = (0..n).map(|e| per[e * m + i]).sum();
            assert!((sum - t).abs() <= 1e-12 * (1.0 + t.abs()), "grad {k}[{i}]: sum of per-example {sum} vs batch {t}");
        }
    }
}

/// Shared operands of a matmul keep one matmul instruction (the cheap
/// rules); both batched is one batched product.
#[test]
fn matmul_rules_by_batched_side() {
    let f = DType::F32;
    let mut b = Builder::new("mm", &[Type::new(f, &[2, 3]), Type::new(f, &[3, 4])]);
    let (x, y) = (b.param(0), b.param(1));
    let z = b.matmul(x, y);
    let func = b.finish(vec![z]);
    let count = |g: &Func, op: &Op| g.insts.iter().filter(|i| &i.op == op).count();
    for (axes, matmuls, batched_products) in
        [(vec![Some(0), None], 1, 0), (vec![None, Some(2)], 1, 0), (vec![Some(1), Some(0)], 0, 1)]
    {
        let batched = vmap(&func, &axes, 3);
        assert_eq!(count(&batched, &Op::MatMul), matmuls, "in_axes {axes:?}");
        assert_eq!(count(&batched, &Op::BatchMatMul), batched_products, "in_axes {axes:?}");
        Nest::new(&func, &[(axes, 3)], 3).check();
    }
}

/// Every op but the random ones batches without a loop over examples: the
/// batched program has as many instructions for 5 examples as for 2, and
/// equals the stacked examples bitwise, for each combination of batched
/// operands (conv: batched images, kernels, both; gather and scatter-add:
/// batched table/updates, indices, both, with out-of-range indices).
#[test]
fn folding_rules_do_not_unroll_and_equal_stacking() {
    let f = DType::F32;
    let i32_ty = |d: &[usize]| Type::new(DType::I32, d);
    let conv =
        Conv { stride: [2, 1], low: [1, 0], high: [0, 1], lhs_dilation: [1, 2], rhs_dilation: [1, 1], groups: 2 };
    let window = Window { size: vec![1, 2, 2], stride: vec![1, 2, 1], low: vec![0, 1, 0], high: vec![0, 0, 1] };
    type Body = Box<dyn Fn(&mut Builder) -> ValueId>;
    let cases: Vec<(&str, Vec<Type>, Body)> = vec![
        ("conv2d", vec![Type::new(f, &[2, 4, 5, 5]), Type::new(f, &[6, 2, 3, 3])], {
            let conv = conv.clone();
            Box::new(move |b: &mut Builder| {
                let (x, w) = (b.param(0), b.param(1));
                b.conv2d(x, w, conv.clone())
            })
        }),
        ("reduce_window_sum", vec![Type::new(f, &[2, 5, 4])], {
            let w = window.clone();
            Box::new(move |b: &mut Builder| {
                let x = b.param(0);
                b.reduce_window(x, w.clone(), false)
            })
        }),
        ("reduce_window_max", vec![Type::new(f, &[2, 5, 4])], {
            let w = window.clone();
            Box::new(move |b: &mut Builder| {
                let x = b.param(0);
                b.reduce_window(x, w.clone(), true)
            })
        }),
        ("select_and_scatter", vec![Type::new(f, &[2, 5, 4]), Type::new(f, &[2, 3, 4])], {
            let w = window.clone();
            Box::new(move |b: &mut Builder| {
                let (x, ct) = (b.param(0), b.param(1));
                b.select_and_scatter(x, ct, w.clone())
            })
        }),
        (
            "gather",
            vec![Type::new(f, &[5, 3]), i32_ty(&[4])],
            Box::new(|b: &mut Builder| {
                let (t, i) = (b.param(0), b.param(1));
                b.gather(t, i)
            }),
        ),
        (
            "scatter_add",
            vec![Type::new(f, &[4, 3]), i32_ty(&[4])],
            Box::new(|b: &mut Builder| {
                let (u, i) = (b.param(0), b.param(1));
                b.scatter_add(u, i, 5)
            }),
        ),
        (
            "batch_matmul",
            vec![Type::new(f, &[2, 3, 4]), Type::new(f, &[2, 4, 5])],
            Box::new(|b: &mut Builder| {
                let (x, y) = (b.param(0), b.param(1));
                b.batch_matmul(x, y)
            }),
        ),
        (
            "reduce_min",
            vec![Type::new(f, &[3, 4])],
            Box::new(|b: &mut Builder| {
                let x = b.param(0);
                b.reduce_min(x, vec![1])
            }),
        ),
    ];
    for (name, types, body) in &cases {
        let mut b = Builder::new(name, types);
        let y = body(&mut b);
        let func = b.finish(vec![y]);
        let n = types.len();
        // Every non-empty choice of batched operands, batch axis 0 or last.
        for mask in 1..(1u32 << n) {
            for last in [false, true] {
                let axes: Vec<Option<usize>> = (0..n)
                    .map(|i| (mask >> i & 1 == 1).then(|| if last { types[i].shape.rank() } else { 0 }))
                    .collect();
                let (small, large) = (vmap(&func, &axes, 2), vmap(&func, &axes, 5));
                assert_eq!(
                    small.insts.len(),
                    large.insts.len(),
                    "{name} {axes:?} unrolls:\n{}",
                    crate::ir::text::print(&large)
                );
                for size in [2, 5] {
                    Nest::new(&func, &[(axes.clone(), size)], 7 + size as u64).check();
                }
            }
        }
    }
}

/// Per-example gradients (`vmap(grad(f))`) of a small CNN with an
/// embedding lookup: conv -> relu -> max pool -> linear, plus gathered
/// embedding rows. The batched gradient program does not grow with the
/// batch, equals the stacked per-example gradients bitwise in the
/// interpreter, and the CPU JIT and the (simulated) GPU backend agree with
/// the interpreter on it.
#[test]
fn per_example_cnn_gradients_fold_and_the_jit_agrees() {
    let f = DType::F32;
    let types = [
        Type::new(f, &[3, 1, 3, 3]),
        Type::new(f, &[27, 4]),
        Type::new(f, &[10, 4]),
        Type::new(f, &[1, 1, 6, 6]),
        Type::new(DType::I32, &[2]),
    ];
    let mut b = Builder::new("cnn_loss", &types);
    let (k, w, e, x, t) = (b.param(0), b.param(1), b.param(2), b.param(3), b.param(4));
    let conv =
        Conv { stride: [1, 1], low: [1, 1], high: [1, 1], lhs_dilation: [1, 1], rhs_dilation: [1, 1], groups: 1 };
    let h = b.conv2d(x, k, conv);
    let zero = b.full_like(0.0, h, f);
    let h = b.binary(Op::Max, h, zero);
    let pool = Window { size: vec![1, 1, 2, 2], stride: vec![1, 1, 2, 2], low: vec![0; 4], high: vec![0; 4] };
    let h = b.reduce_window(h, pool, true);
    let h = b.reshape(h, &Shape(vec![1, 27]));
    let logits = b.matmul(h, w);
    let rows = b.gather(e, t);
    let emb = b.reduce_sum(rows, vec![0]);
    let emb = b.reshape(emb, &Shape(vec![1, 4]));
    let z = b.add(logits, emb);
    let sq = b.mul(z, z);
    let loss = b.reduce_sum(sq, vec![0, 1]);
    let func = b.finish(vec![loss]);
    let g = grad(&func, &[0, 1, 2]);
    let axes = vec![None, None, None, Some(0), Some(0)];
    let (small, large) = (vmap(&g, &axes, 2), vmap(&g, &axes, 6));
    assert_eq!(small.insts.len(), large.insts.len(), "per-example gradients unroll");
    Nest::new(&g, &[(axes.clone(), 6)], 11).check();
    // Finite inputs (random_inputs' NaN and infinities would hide the sums).
    let inputs: Vec<Tensor> = random_inputs(&large, 12)
        .iter()
        .map(|t| {
            let v: Vec<f64> = t.to_f64_vec().iter().map(|x| if x.is_finite() { *x } else { 0.5 }).collect();
            Tensor::from_f64(t.dtype(), t.ty().shape.dims(), &v)
        })
        .collect();
    let want = run(&large, &inputs);
    let cpu = crate::codegen::cpu::compile(&large).expect("the CPU backend compiles the folded ops").run(&inputs);
    // The GPU backend's kernels and GEMM steps, run on the host by its simulator.
    let ptx = crate::codegen::ptx::emit(&large).expect("the GPU backend compiles the folded ops");
    let gpu = crate::codegen::ptx::sim::run(&ptx, &inputs);
    for (backend, got) in [("cpu", cpu), ("ptx", gpu)] {
        for (o, (w, g)) in want.iter().zip(&got).enumerate() {
            for (a, c) in w.to_f64_vec().iter().zip(g.to_f64_vec()) {
                assert!((a - c).abs() <= 1e-4 * (1.0 + a.abs()), "{backend} output {o}: {c} vs interp {a}");
            }
        }
    }
}
