//! Tuples of tensors (JAX's pytrees) as arguments and results of the
//! transformations: `grad` and `value_and_grad` with respect to a nested
//! tuple of parameters, `jvp` and `vjp` with tuple primals, tangents,
//! outputs and cotangents, `jacrev`, `jacfwd` and `hessian` with respect
//! to a tuple, and `vmap` over a tuple argument (with nested `in_axes`).
//!
//! Everything runs in float64 on the reference interpreter. Oracles:
//! central finite differences of the source-level function itself, run on
//! flat arguments (never a transformed program); the adjoint identity
//! `<c, J t> = <J^T c, t>` between `vjp` and finite differences; and the
//! same transformation written with one tensor per argument, which
//! `jacobians.rs` checks against finite differences.

use super::higher_order::{close, lower, run};
use super::jacobians::finite_jacobian;
use compiler::ir::generate::Rng;

/// A network whose parameters are the nested tuple `(w1, (b1, w2))`, its
/// flat form, and a function from a pair to a pair.
const SRC: &str = "\
fn loss(p, x: f64[4, 3], y: f64[4]) -> f64 {
    let (w1, (b1, w2)) = p
    let h = tanh(x @ w1 + b1)
    mean((h @ w2 - y) ^ 2)
}
fn loss_flat(w1: f64[3, 5], b1: f64[5], w2: f64[5], x: f64[4, 3], y: f64[4]) -> f64 = loss((w1, (b1, w2)), x, y)
fn grads(w1: f64[3, 5], b1: f64[5], w2: f64[5], x: f64[4, 3], y: f64[4]) {
    let (g1, (gb, g2)) = grad(loss)((w1, (b1, w2)), x, y)
    (g1, gb, g2)
}
fn value_and_grads(w1: f64[3, 5], b1: f64[5], w2: f64[5], x: f64[4, 3], y: f64[4]) {
    let (value, ((g1, (gb, g2)), gx)) = value_and_grad(loss, wrt = (p, x))((w1, (b1, w2)), x, y)
    (value, g1, gb, g2, gx)
}
fn example_loss(p, x: f64[3], y: f64) -> f64 {
    let (w1, (b1, w2)) = p
    (sum(tanh(x @ w1 + b1) * w2) - y) ^ 2
}
fn per_example(w1: f64[3, 5], b1: f64[5], w2: f64[5], x: f64[4, 3], y: f64[4]) {
    let (g1, (gb, g2)) = vmap(grad(example_loss), in_axes = (None, 0, 0))((w1, (b1, w2)), x, y)
    (g1, gb, g2)
}
fn mixed(w: f64[3], s: f64, x: f64[4, 3], c: f64[3, 4]) {
    let (ys, zs) = vmap(fn(p, x) = (tanh(p[0] * x) * p[1][0], p[1][1] * x), in_axes = ((None, (None, 1)), 0))(
        (w, (s, c)),
        x,
    )
    (ys, zs)
}
fn mixed_one(w: f64[3], s: f64, x: f64[3], c: f64[3]) {
    (tanh(w * x) * s, c * x)
}
fn f(p, v: f64[3]) {
    let (a, s) = p
    (tanh(a @ v) * s, sum(a * a) * sin(v))
}
fn f_flat(a: f64[2, 3], s: f64, v: f64[3]) = f((a, s), v)
fn jvp_f(a: f64[2, 3], s: f64, v: f64[3], ta: f64[2, 3], ts: f64, tv: f64[3]) {
    let ((y0, y1), (t0, t1)) = jvp(f, ((a, s), v), ((ta, ts), tv))
    (y0, y1, t0, t1)
}
fn vjp_f(a: f64[2, 3], s: f64, v: f64[3], c0: f64[2], c1: f64[3]) {
    let ((y0, y1), pullback) = vjp(f, (a, s), v)
    let ((ga, gs), gv) = pullback((c0, c1))
    (ga, gs, gv)
}
fn jacrev_f(a: f64[2, 3], s: f64, v: f64[3]) {
    let ((y0a, y0s), (y1a, y1s)) = jacrev(f)((a, s), v)
    (y0a, y0s, y1a, y1s)
}
fn jacfwd_f(a: f64[2, 3], s: f64, v: f64[3]) {
    let ((y0a, y0s), (y1a, y1s)) = jacfwd(f)((a, s), v)
    (y0a, y0s, y1a, y1s)
}
fn energy(p, v: f64[3]) -> f64 {
    let (y0, y1) = f(p, v)
    sum(y0 * y0) + sum(y1) * p[1]
}
fn energy_flat(a: f64[2, 3], s: f64, v: f64[3]) -> f64 = energy((a, s), v)
fn hessian_tree(a: f64[2, 3], s: f64, v: f64[3]) {
    let ((h_aa, h_as), (h_sa, h_ss)) = hessian(energy)((a, s), v)
    (h_aa, h_as, h_sa, h_ss)
}
fn hessian_flat(a: f64[2, 3], s: f64, v: f64[3]) = hessian(energy_flat, wrt = (a, s))(a, s, v)
";

type Args = Vec<(&'static [usize], Vec<f64>)>;

fn random(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

fn network_args(rng: &mut Rng) -> Args {
    vec![
        (&[3, 5], random(rng, 15)),
        (&[5], random(rng, 5)),
        (&[5], random(rng, 5)),
        (&[4, 3], random(rng, 12)),
        (&[4], random(rng, 4)),
    ]
}

/// `grad` with respect to a nested tuple returns a tuple of the same
/// shape, each gradient matching central differences of the flat loss;
/// `value_and_grad` with `wrt = (p, x)` mixes a tuple and a tensor.
#[test]
fn grad_of_a_nested_tuple_matches_finite_differences() {
    let (flat, grads, both) = (lower(SRC, "loss_flat"), lower(SRC, "grads"), lower(SRC, "value_and_grads"));
    let types: Vec<String> = both.output_types().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["f64", "f64[3, 5]", "f64[5]", "f64[5]", "f64[4, 3]"]);
    let mut rng = Rng(0x7ee_0001);
    for case in 0..3 {
        let args = network_args(&mut rng);
        let (g, vg) = (run(&grads, &args), run(&both, &args));
        close(vg[0][0], run(&flat, &args)[0][0], 1e-12, &format!("value (case {case})"));
        for (k, arg) in [0, 1, 2, 3].into_iter().enumerate() {
            let fd = finite_jacobian(&flat, &args, arg, 0);
            for (j, &want) in fd[0].iter().enumerate() {
                let what = format!("d loss / d arg{arg}[{j}] (seed 0x7ee0001, case {case})");
                if k < 3 {
                    close(g[k][j], want, 1e-7, &format!("grad: {what}"));
                }
                close(vg[1 + k][j], want, 1e-7, &format!("value_and_grad: {what}"));
            }
        }
    }
}

/// `vmap(grad(example_loss), in_axes = (None, 0, 0))` with tuple
/// parameters: one gradient tuple per example, whose mean is the gradient
/// of the mean loss (checked against finite differences above).
#[test]
fn vmapped_gradients_of_tuple_parameters_average_to_the_batch_gradient() {
    let (per_example, grads) = (lower(SRC, "per_example"), lower(SRC, "grads"));
    let types: Vec<String> = per_example.output_types().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["f64[4, 3, 5]", "f64[4, 5]", "f64[4, 5]"]);
    let mut rng = Rng(0x7ee_0002);
    let args = network_args(&mut rng);
    let (each, batch) = (run(&per_example, &args), run(&grads, &args));
    for k in 0..3 {
        let n = batch[k].len();
        for j in 0..n {
            let mean = (0..4).map(|e| each[k][e * n + j]).sum::<f64>() / 4.0;
            close(mean, batch[k][j], 1e-12, &format!("mean of per-example gradient {k}[{j}]"));
        }
    }
}

/// `in_axes` entries nested as the tuple argument (`((None, (None, 1)),
/// 0)`): the shared tensors of the tuple reach every example unchanged and
/// the batched one is cut along its axis, as a loop over examples gives.
#[test]
fn nested_in_axes_share_and_batch_tensors_of_one_tuple() {
    let (mapped, one) = (lower(SRC, "mixed"), lower(SRC, "mixed_one"));
    let mut rng = Rng(0x7ee_0005);
    let (w, s, x, c) = (random(&mut rng, 3), random(&mut rng, 1), random(&mut rng, 12), random(&mut rng, 12));
    let args: Args = vec![(&[3], w.clone()), (&[], s.clone()), (&[4, 3], x.clone()), (&[3, 4], c.clone())];
    let out = run(&mapped, &args);
    for e in 0..4 {
        let column: Vec<f64> = (0..3).map(|k| c[k * 4 + e]).collect();
        let row = x[e * 3..e * 3 + 3].to_vec();
        let want = run(&one, &[(&[3], w.clone()), (&[], s.clone()), (&[3], row), (&[3], column)]);
        for k in 0..2 {
            for j in 0..3 {
                assert_eq!(out[k][e * 3 + j], want[k][j], "output {k} of example {e}, element {j}");
            }
        }
    }
}

/// `jvp` with a tuple primal and a tuple output: the tangents match central
/// differences along the direction; `vjp`'s cotangents (a tuple shaped as
/// the primals) satisfy `<c, J t> = <J^T c, t>` with `J t` from finite
/// differences.
#[test]
fn jvp_and_vjp_take_and_return_tuples() {
    let (flat, jvp, vjp) = (lower(SRC, "f_flat"), lower(SRC, "jvp_f"), lower(SRC, "vjp_f"));
    let mut rng = Rng(0x7ee_0003);
    for case in 0..3 {
        let primal: Args =
            vec![(&[2, 3], random(&mut rng, 6)), (&[], random(&mut rng, 1)), (&[3], random(&mut rng, 3))];
        let tangent: Args =
            vec![(&[2, 3], random(&mut rng, 6)), (&[], random(&mut rng, 1)), (&[3], random(&mut rng, 3))];
        let cotangent: Args = vec![(&[2], random(&mut rng, 2)), (&[3], random(&mut rng, 3))];
        // J t by central differences of f along t.
        let h = 1e-6;
        let along = |d: f64| {
            let args: Args = primal
                .iter()
                .zip(&tangent)
                .map(|(p, t)| (p.0, p.1.iter().zip(&t.1).map(|(a, b)| a + d * b).collect()))
                .collect();
            run(&flat, &args)
        };
        let (plus, minus) = (along(h), along(-h));
        let fd: Vec<Vec<f64>> =
            plus.iter().zip(&minus).map(|(p, m)| p.iter().zip(m).map(|(a, b)| (a - b) / (2.0 * h)).collect()).collect();
        let jvp_args: Args = primal.iter().chain(&tangent).cloned().collect();
        let out = run(&jvp, &jvp_args);
        let values = run(&flat, &primal);
        for k in 0..2 {
            for (j, &want) in fd[k].iter().enumerate() {
                close(out[2 + k][j], want, 1e-7, &format!("jvp tangent {k}[{j}] (case {case})"));
            }
            assert_eq!(out[k], values[k], "jvp's primal output {k} is f's (case {case})");
        }
        let vjp_args: Args = primal.iter().chain(&cotangent).cloned().collect();
        let ct = run(&vjp, &vjp_args);
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let left = dot(&cotangent[0].1, &fd[0]) + dot(&cotangent[1].1, &fd[1]);
        let right: f64 = (0..3).map(|k| dot(&ct[k], &tangent[k].1)).sum();
        close(right, left, 1e-7, &format!("<c, J t> = <J^T c, t> (case {case})"));
    }
}

/// `jacrev` and `jacfwd` of a function from a pair to a pair: the output's
/// structure outside, the argument's inside (JAX's arrangement), each block
/// matching central differences; `hessian` with respect to a pair is the
/// nested `((H_aa, H_as), (H_sa, H_ss))`, equal to the flat form's.
#[test]
fn jacobians_and_hessians_of_tuples_nest_as_jax_does() {
    let (flat, rev, fwd) = (lower(SRC, "f_flat"), lower(SRC, "jacrev_f"), lower(SRC, "jacfwd_f"));
    let types: Vec<String> = rev.output_types().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["f64[2, 2, 3]", "f64[2]", "f64[3, 2, 3]", "f64[3]"]);
    let (tree, flat_h) = (lower(SRC, "hessian_tree"), lower(SRC, "hessian_flat"));
    let mut rng = Rng(0x7ee_0004);
    for case in 0..3 {
        let args: Args = vec![(&[2, 3], random(&mut rng, 6)), (&[], random(&mut rng, 1)), (&[3], random(&mut rng, 3))];
        let (r, f) = (run(&rev, &args), run(&fwd, &args));
        for out in 0..2 {
            for arg in 0..2 {
                let fd = finite_jacobian(&flat, &args, arg, out);
                let n_in = args[arg].1.len();
                for (i, row) in fd.iter().enumerate() {
                    for (j, &want) in row.iter().enumerate() {
                        let what = format!("d y{out}[{i}] / d arg{arg}[{j}] (case {case})");
                        close(r[2 * out + arg][i * n_in + j], want, 1e-7, &format!("jacrev {what}"));
                        close(f[2 * out + arg][i * n_in + j], want, 1e-7, &format!("jacfwd {what}"));
                    }
                }
            }
        }
        let (h, hf) = (run(&tree, &args), run(&flat_h, &args));
        assert_eq!(h.len(), 4);
        for (k, (got, want)) in h.iter().zip(&hf).enumerate() {
            assert_eq!(got.len(), want.len(), "block {k}");
            for (j, (g, w)) in got.iter().zip(want).enumerate() {
                close(*g, *w, 1e-12, &format!("hessian block {k}[{j}] (case {case})"));
            }
        }
    }
}

/// `hessian` with several `wrt` names, one a tuple, is `jacfwd(jacrev(f,
/// wrt), wrt)` as JAX defines it: the gradient's structure outside (the
/// tuple's elements, then `x`), `(d/dp, d/dx)` inside. Closed forms for
/// `f = p0^2 p1 x + x^2 p0`.
#[test]
fn hessian_of_a_tuple_and_a_tensor_nests_as_jacfwd_of_jacrev() {
    let src = "\
fn f(p, x: f64) -> f64 = p[0] * p[0] * p[1] * x + x * x * p[0]
fn h(p0: f64, p1: f64, x: f64) {
    let ((((h00, h01), h0x), ((h10, h11), h1x)), ((hx0, hx1), hxx)) = hessian(f, wrt = (p, x))((p0, p1), x)
    (h00, h01, h0x, h10, h11, h1x, hx0, hx1, hxx)
}
fn composed(p0: f64, p1: f64, x: f64) {
    let ((((h00, h01), h0x), ((h10, h11), h1x)), ((hx0, hx1), hxx)) =
        jacfwd(jacrev(f, wrt = (p, x)), wrt = (p, x))((p0, p1), x)
    (h00, h01, h0x, h10, h11, h1x, hx0, hx1, hxx)
}
";
    let (h, composed) = (lower(src, "h"), lower(src, "composed"));
    let mut rng = Rng(0x7ee_0006);
    for case in 0..3 {
        let (p0, p1, x) = (rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0));
        let args: Args = vec![(&[], vec![p0]), (&[], vec![p1]), (&[], vec![x])];
        let got: Vec<f64> = run(&h, &args).into_iter().map(|v| v[0]).collect();
        let (f00, f01, f0x, f11, f1x, fxx) =
            (2.0 * p1 * x, 2.0 * p0 * x, 2.0 * p0 * p1 + 2.0 * x, 0.0, p0 * p0, 2.0 * p0);
        let want = [f00, f01, f0x, f01, f11, f1x, f0x, f1x, fxx];
        for (k, (g, w)) in got.iter().zip(want).enumerate() {
            close(*g, w, 1e-12, &format!("hessian entry {k} (case {case})"));
        }
        let again: Vec<f64> = run(&composed, &args).into_iter().map(|v| v[0]).collect();
        assert_eq!(got, again, "hessian is jacfwd(jacrev) (case {case})");
    }
}

/// A tuple holding an empty tensor: its Jacobian block is empty and the
/// others are still computed (not zeroed); `stop_gradient` of a tuple
/// stops every tensor in it.
#[test]
fn empty_leaves_and_stop_gradient_of_tuples() {
    let src = "\
fn jr(v: f64[2]) {
    let (je, jv) = jacrev(fn(q) = q[1] * q[1])((zeros(0), v))
    let (he, (hev, hv)) = hessian(fn(q) = sum(q[1] * q[1] * q[1]))((zeros(0), v))
    (jv, hv)
}
fn sg(x: f64[3], s: f64) {
    let (gx, gs) = grad(fn(p) = sum(stop_gradient(p)[0] * p[0]) * stop_gradient(p)[1])((x, s))
    (gx, gs)
}
";
    let (jr, sg) = (lower(src, "jr"), lower(src, "sg"));
    let v = vec![0.5, -1.5];
    let out = run(&jr, &[(&[2], v.clone())]);
    assert_eq!(out[0], [2.0 * v[0], 0.0, 0.0, 2.0 * v[1]], "jacrev of q1^2: diag(2 v)");
    assert_eq!(out[1], [6.0 * v[0], 0.0, 0.0, 6.0 * v[1]], "hessian of sum(q1^3): diag(6 v)");
    let x = vec![1.0, 1.5, 2.0];
    let out = run(&sg, &[(&[3], x.clone()), (&[], vec![3.0])]);
    assert_eq!(out[0], x.iter().map(|v| v * 3.0).collect::<Vec<_>>(), "d/dx of sum(sg(x) x) sg(s) is sg(x) s");
    assert_eq!(out[1], [0.0], "s enters only through stop_gradient");
}

/// `custom_vjp` of a function of a tuple and a tensor: `bwd` returns one
/// cotangent per argument, the tuple's a tuple (JAX's layout), and its rule
/// is what the gradient uses (here the true gradient times 10, so using
/// the function's own derivative would show).
#[test]
fn custom_vjp_takes_tuple_arguments() {
    let src = "\
fn f(p, x: f64[3]) = p[0] * x * p[1]
fn f_fwd(p, x: f64[3]) = (f(p, x), (p, x))
fn f_bwd(r, g) {
    let ((a, s), x) = r
    ((10.0 * g * x * s, 10.0 * sum(g * a * x)), 10.0 * g * a * s)
}
fn g(a: f64[3], s: f64, x: f64[3]) {
    let ((ga, gs), gx) = grad(fn(p, x) = sum(custom_vjp(f, f_fwd, f_bwd)(p, x)), wrt = (p, x))((a, s), x)
    (ga, gs, gx)
}
";
    let g = lower(src, "g");
    let (a, s, x) = (vec![0.5, -1.0, 2.0], 3.0, vec![1.5, 0.25, -0.5]);
    let out = run(&g, &[(&[3], a.clone()), (&[], vec![s]), (&[3], x.clone())]);
    let ga: Vec<f64> = x.iter().map(|x| 10.0 * x * s).collect();
    let gs = 10.0 * a.iter().zip(&x).map(|(a, x)| a * x).sum::<f64>();
    let gx: Vec<f64> = a.iter().map(|a| 10.0 * a * s).collect();
    assert_eq!(out, [ga, vec![gs], gx]);
    let text = errors(
        "fn f(p) = p[0] * p[1]\nfn f_fwd(p) = (f(p), p)\nfn f_bwd(r, g) = ((g, g, g),)\n\
         fn main() { print(grad(fn(p) = sum(custom_vjp(f, f_fwd, f_bwd)(p)))(([1.0, 2.0], 2.0))) }",
    );
    assert!(
        text.contains(
            "`bwd`'s cotangent 0 must have its argument's structure (f32[2], f32), not (f32[2], f32[2], f32[2])"
        ),
        "{text}"
    );
}

/// A number a vmapped function returns (a shared tuple's `2.0`, a literal
/// `3`) is stacked as a tensor, one copy per example, as JAX broadcasts it.
#[test]
fn numbers_returned_by_a_vmapped_function_are_stacked() {
    let src =
        "fn main() {\n    let w = linspace(0.0, 1.0, 3)\n    let xs = reshape(linspace(0.0, 1.0, 6), (2, 3))\n    \
               let ((qw, qs), y) = vmap(fn(q, x) = (q, x * q[1]), in_axes = (None, 0))((w, 2.0), xs)\n    \
               let (x, three) = vmap(fn(x) = (x, 3))(w)\n    print(qw, qs, y, three)\n}\n";
    let out = script_outputs(src);
    let types: Vec<String> = out.iter().map(|t| t.ty().to_string()).collect();
    assert_eq!(types, ["f32[2, 3]", "f32[2]", "f32[2, 3]", "i32[3]"]);
    assert_eq!(out[0].as_f32().unwrap(), [0.0, 0.5, 1.0, 0.0, 0.5, 1.0]);
    assert_eq!(out[1].as_f32().unwrap(), [2.0, 2.0]);
    let y: Vec<f32> = [0.0f32, 0.2, 0.4, 0.6, 0.8, 1.0].iter().map(|v| v * 2.0).collect();
    assert_eq!(out[2].as_f32().unwrap(), y);
    assert_eq!(out[3].to_f64_vec(), [3.0, 3.0, 3.0]);
}

/// A model is a tree: `grad(fn(m) = m.loss(x, y))(self)` is a gradient
/// shaped as the model, equal to the one the trainer steps with (read from
/// the SGD update); `vmap(grad(...), in_axes = (None, 0, 0))(self, x, y)`
/// gives one per example, whose mean is the batch gradient; `jvp` and
/// `vjp` take the model as a primal, and `jvp(grad(...))` is a
/// Hessian-vector product on it; all match `2/(B*2) x^T (x W + b - y)`
/// computed here in f64.
#[test]
fn gradients_with_respect_to_a_model_are_shaped_as_the_model() {
    use compiler::ir::{interp, Tensor};
    // Logged values are scalars: one `log` per element.
    let mut logs = String::new();
    for k in 0..4 {
        for j in 0..2 {
            logs += &format!("        log(\"g_w{}\", g.l.weight[{k}, {j}])\n", k * 2 + j);
            for e in 0..3 {
                logs += &format!("        log(\"each_w{}\", each.l.weight[{e}, {k}, {j}])\n", e * 8 + k * 2 + j);
            }
        }
    }
    for j in 0..2 {
        logs += &format!("        log(\"g_b{j}\", g.l.bias[{j}])\n");
    }
    let src = "\
use nn.Linear
use optim.sgd
model M {
    l: Linear(4, 2)
    fn loss(self, x: f32[B, 4], y: f32[B, 2]) -> f32 = mean((self.l(x) - y) ^ 2)
    fn training_step(self, x: f32[B, 4], y: f32[B, 2]) -> f32 {
        let g = grad(fn(m) = m.loss(x, y))(self)
        let each = vmap(grad(fn(m, xi: f32[4], yi: f32[2]) = m.loss(reshape(xi, (1, 4)), reshape(yi, (1, 2)))), in_axes = (None, 0, 0))(self, x, y)
        let (_, along) = jvp(fn(m) = m.loss(x, y), (self,), (self,))
        let (_, pullback) = vjp(fn(m) = m.loss(x, y), self)
        let (gm,) = pullback(1.0)
        let (_, hv) = jvp(grad(fn(m) = m.loss(x, y)), (self,), (self,))
        log(\"hv_w0\", sum(hv.l.weight))
        log(\"hv_b0\", sum(hv.l.bias))
        log(\"jvp0\", along)
        log(\"vjp_dot0\", sum(gm.l.weight * self.l.weight) + sum(gm.l.bias * self.l.bias))
LOGS        self.loss(x, y)
    }
    fn configure_optimizers(self) = sgd(lr = 0.5)
}
"
    .replace("LOGS", &logs);
    let (b, progs) = (3, linear_model_programs(&src));
    let names: Vec<&str> = progs.params.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(names, ["l.weight", "l.bias"]);
    let params = trainer::fit::init_params(&progs.params, 5);
    let mut rng = Rng(0x7ee_0007);
    let x: Vec<f32> = (0..12).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let y: Vec<f32> = (0..6).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let mut inputs = params.clone();
    inputs.extend([Tensor::scalar_f32(1.0), Tensor::f32(&[3, 4], x.clone()), Tensor::f32(&[3, 2], y.clone())]);
    let out = interp::run(&progs.train_step, &inputs);
    let log = |name: &str, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let k = progs.train_logs.iter().position(|(l, _)| *l == format!("{name}{i}")).expect("logged");
                out[2 + 1 + k].to_f64_vec()[0]
            })
            .collect()
    };
    let (weight, bias) = (params[0].to_f64_vec(), params[1].to_f64_vec());
    assert_eq!(b, 3);
    let (_, dw, db) = linear_mse(&x, &y, &weight, &bias);
    for (k, (g, w)) in log("g_w", 8).iter().zip(&dw).enumerate() {
        close(*g, *w, 1e-5, &format!("dL/dW[{k}] from grad of the model"));
    }
    for (k, (g, w)) in log("g_b", 2).iter().zip(&db).enumerate() {
        close(*g, *w, 1e-5, &format!("dL/db[{k}] from grad of the model"));
    }
    // jvp along the model itself and vjp's model-shaped cotangent: both
    // are <dL/dθ, θ>.
    let dot =
        dw.iter().zip(&weight).map(|(g, w)| g * w).sum::<f64>() + db.iter().zip(&bias).map(|(g, b)| g * b).sum::<f64>();
    close(log("jvp", 1)[0], dot, 1e-5, "jvp of the loss along the model");
    close(log("vjp_dot", 1)[0], dot, 1e-5, "<vjp's cotangent, model>");
    // The loss is quadratic in (W, b), so its gradient is affine: H θ is
    // g(θ) - g(0), what `jvp(grad(...), (self,), (self,))` gives.
    let (_, dw0, db0) = linear_mse(&x, &y, &[0.0; 8], &[0.0; 2]);
    let hv_w: f64 = dw.iter().zip(&dw0).map(|(a, b)| a - b).sum();
    let hv_b: f64 = db.iter().zip(&db0).map(|(a, b)| a - b).sum();
    close(log("hv_w", 1)[0], hv_w, 1e-5, "sum of (H θ) over W");
    close(log("hv_b", 1)[0], hv_b, 1e-5, "sum of (H θ) over b");
    // SGD at lr 0.5: the trainer's own gradient is (W - W') / 0.5.
    let stepped: Vec<f64> = weight.iter().zip(out[0].to_f64_vec()).map(|(w, n)| (w - n) / 0.5).collect();
    for (k, (g, s)) in log("g_w", 8).iter().zip(&stepped).enumerate() {
        close(*g, *s, 1e-5, &format!("dL/dW[{k}]: the model's gradient vs the trainer's"));
    }
    // Per example: each example's loss is a mean over 2 values, so the
    // batch gradient (a mean over 6) is their mean.
    let each = log("each_w", 24);
    assert_eq!(each.len(), 3 * 8);
    for kj in 0..8 {
        let mean = (0..3).map(|e| each[e * 8 + kj]).sum::<f64>() / 3.0;
        close(mean, dw[kj], 1e-5, &format!("mean of per-example dL/dW[{kj}]"));
    }
}

/// Checks `src` (no diagnostics), compiles its `fn main` and runs it on
/// the interpreter: the printed tensors.
fn script_outputs(src: &str) -> Vec<compiler::ir::Tensor> {
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let checked = compiler::lower::check_program(&prog);
    assert!(checked.is_empty(), "{}", compiler::diagnostic::render_all(&checked, &prog.sources, false));
    let script = compiler::compile_script(&prog, &compiler::Options::default()).unwrap_or_else(|d| panic!("{d:?}"));
    compiler::ir::interp::run(&script.func, &[])
}

/// Checks the model file `src` (no diagnostics) and compiles its training
/// programs for batches of 3 examples, `x: f32[3, 4]`, `y: f32[3, 2]`.
fn linear_model_programs(src: &str) -> compiler::lower::TrainPrograms {
    use compiler::ir::{DType, Type};
    let (prog, diags) = compiler::lower::load("m.jl", src);
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let checked = compiler::lower::check_program(&prog);
    assert!(checked.is_empty(), "{}", compiler::diagnostic::render_all(&checked, &prog.sources, false));
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let (x_ty, y_ty) = (Type::new(DType::F32, &[3, 4]), Type::new(DType::F32, &[3, 2]));
    compiler::compile_training(&prog, sections.trainer.as_ref(), &x_ty, &y_ty, &Default::default())
        .unwrap_or_else(|d| panic!("{}", compiler::diagnostic::render_all(&d, &prog.sources, false)))
}

/// The mean squared error of `x W + b` against `y` (3 examples, 4 inputs,
/// 2 outputs) in f64, and its gradients: with the residual `r = x W + b -
/// y`, `dW = 2/6 x^T r` and `db = 2/6 sum_rows r`.
fn linear_mse(x: &[f32], y: &[f32], w: &[f64], b: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
    let mut r = vec![0.0; 6];
    for i in 0..3 {
        for j in 0..2 {
            r[i * 2 + j] = (0..4).map(|k| x[i * 4 + k] as f64 * w[k * 2 + j]).sum::<f64>() + b[j] - y[i * 2 + j] as f64;
        }
    }
    let scale = 2.0 / 6.0;
    let dw =
        (0..8).map(|kj| scale * (0..3).map(|i| x[i * 4 + kj / 2] as f64 * r[i * 2 + kj % 2]).sum::<f64>()).collect();
    let db = (0..2).map(|j| scale * (0..3).map(|i| r[i * 2 + j]).sum::<f64>()).collect();
    (r.iter().map(|v| v * v).sum::<f64>() / 6.0, dw, db)
}

/// `tree_map(f, trees...)`: over a nested tuple (numbers are leaves too) it
/// is the update written out tensor by tensor, bit for bit; over a model it
/// makes a model, so one inner SGD step inside a training step (MAML's fast
/// weights) is `tree_map(fn(p, g) = p - 0.1 * g, self, grad(...)(self))`,
/// whose loss matches f64 at the stepped weights.
#[test]
fn tree_map_updates_tuples_and_models() {
    use compiler::ir::{interp, Tensor};
    let src = "\
fn loss(p, x: f32[4, 3], y: f32[4]) -> f32 {
    let (w, (b, v)) = p
    mean((tanh(x @ w + b) @ v - y) ^ 2)
}
fn main() {
    let x = reshape(linspace(-1.0, 1.0, 12), (4, 3))
    let y = linspace(0.0, 1.0, 4)
    let params = (reshape(linspace(-0.5, 0.5, 6), (3, 2)), (zeros(2), ones(2)))
    let grads = grad(loss)(params, x, y)
    let (w, (b, v)) = tree_map(fn(p, g) = p - 0.5 * g, params, grads)
    let ((w0, (b0, v0)), (gw, (gb, gv))) = (params, grads)
    let (two, (four, doubled)) = tree_map(fn(a) = a * 2, (1, (2.0, [1.0, 2.0])))
    print(w, b, v, w0 - 0.5 * gw, b0 - 0.5 * gb, v0 - 0.5 * gv, [float(two) + four], doubled)
}
";
    let out = script_outputs(src);
    for k in 0..3 {
        assert_eq!(out[k].as_f32().unwrap(), out[3 + k].as_f32().unwrap(), "tree_map's tensor {k}");
    }
    assert_eq!(out[6].as_f32().unwrap(), [6.0]);
    assert_eq!(out[7].as_f32().unwrap(), [2.0, 4.0]);

    let model = "\
use nn.Linear
use optim.sgd
model M {
    l: Linear(4, 2)
    fn loss(self, x: f32[B, 4], y: f32[B, 2]) -> f32 = mean((self.l(x) - y) ^ 2)
    fn training_step(self, x: f32[B, 4], y: f32[B, 2]) -> f32 {
        let fast = tree_map(fn(p, g) = p - 0.1 * g, self, grad(fn(m) = m.loss(x, y))(self))
        fast.loss(x, y)
    }
    fn configure_optimizers(self) = sgd(lr = 0.5)
}
";
    let progs = linear_model_programs(model);
    let params = trainer::fit::init_params(&progs.params, 9);
    let mut rng = Rng(0x7ee_0008);
    let x: Vec<f32> = (0..12).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let y: Vec<f32> = (0..6).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let mut inputs = params.clone();
    inputs.extend([Tensor::scalar_f32(1.0), Tensor::f32(&[3, 4], x.clone()), Tensor::f32(&[3, 2], y.clone())]);
    let out = interp::run(&progs.train_step, &inputs);
    let (w, b) = (params[0].to_f64_vec(), params[1].to_f64_vec());
    let (_, dw, db) = linear_mse(&x, &y, &w, &b);
    let fast_w: Vec<f64> = w.iter().zip(&dw).map(|(w, g)| w - 0.1 * g).collect();
    let fast_b: Vec<f64> = b.iter().zip(&db).map(|(b, g)| b - 0.1 * g).collect();
    let (want, _, _) = linear_mse(&x, &y, &fast_w, &fast_b);
    close(out[2].to_f64_vec()[0], want, 1e-5, "the loss at MAML's fast weights");
}

/// What a tree holds besides its tensors reaches the transformed function:
/// a model argument whose config is a tensor (under `grad` and `jvp`), and
/// a lambda capturing a tensor in a tuple whose other element `vmap`
/// batches. Values against the derivatives written out.
#[test]
fn config_tensors_and_closures_inside_trees_reach_the_transformed_function() {
    let src = "\
model Scale(w) {
    fn __call__(self, x: f32[2]) -> f32[2] = x * self.w
}
fn main() {
    let m = Scale([3.0, 5.0] * 1.0)
    let x = [1.0, 2.0]
    let g = grad(fn(m, x) = sum(m(x) * x), wrt = x)(m, x)
    let (y, t) = jvp(fn(m, x) = m(x), (m, x), (m, [1.0, 1.0]))
    let w = linspace(1.0, 2.0, 3) * 2.0
    let xs = reshape(linspace(0.0, 1.0, 6), (2, 3))
    let v = vmap(fn(p) = p[1](p[0]), in_axes = ((0, None),))((xs, fn(z) = z * w))
    print(g, y, t, v)
}
";
    let out = script_outputs(src);
    // d/dx sum(w x x) = 2 w x; m(x) = w x, its jvp along x = (1, 1) is w.
    assert_eq!(out[0].as_f32().unwrap(), [6.0, 20.0]);
    assert_eq!(out[1].as_f32().unwrap(), [3.0, 10.0]);
    assert_eq!(out[2].as_f32().unwrap(), [3.0, 5.0]);
    let w: Vec<f32> = (0..3).map(|i| (1.0 + 0.5 * i as f32) * 2.0).collect();
    let xs: Vec<f32> = (0..6).map(|i| i as f32 / 5.0).collect();
    let want: Vec<f32> = (0..6).map(|i| xs[i] * w[i % 3]).collect();
    let got = out[3].as_f32().unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6, "vmap with a closure in a tuple: {got:?} vs {want:?}");
    }
}

/// Compiles `src` and returns its rendered diagnostics.
fn errors(src: &str) -> String {
    let (prog, mut diags) = compiler::lower::load("t.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    compiler::diagnostic::render_all(&diags, &prog.sources, false)
}

/// Mistakes with tuples name the structure that was expected and the one
/// given.
#[test]
fn mismatched_trees_are_reported_with_both_structures() {
    let cases = [
        (
            "fn f(p) -> f32 = sum(float(p[0]) * p[1])\nfn main() { print(grad(f)(([1, 2], [1.0, 2.0]))) }",
            "cannot differentiate with respect to `p`: it holds i32[2]",
        ),
        (
            "fn f(p) = p[0] * p[1]\nfn main() { print(jvp(f, ((1.0, [1.0, 2.0]),), ((1.0, 2.0),))) }",
            "tangent 0 must have its primal's structure and float types",
        ),
        (
            "fn f(p) = (p[0] * p[1], p[1])\nfn main() {\n    let (y, pb) = vjp(f, (2.0, [1.0, 2.0]))\n    print(pb([1.0, 2.0]))\n}",
            "the cotangent must have the output's type (f32[2], f32[2]), but it is f32[2]",
        ),
        (
            "fn f(p) = (p[0] * p[1], p[1])\nfn main() {\n    let (y, pb) = vjp(f, (2.0, [1.0, 2.0]))\n    print(pb(([1.0, 2.0], [1, 2])))\n}",
            "it has i32[2] where the output has f32[2]",
        ),
        (
            "fn f(p) = p[0] * 2.0\nfn main() { print(vmap(f)(([1.0, 2.0], [1.0, 2.0, 3.0]))) }",
            "vmap's batch sizes disagree: argument 0 (its f32[2]) has 2 examples, argument 0 (its f32[3]) has 3",
        ),
        (
            "fn f(x) = (x * 2.0, [1, 2])\nfn main() { print(jvp(f, ([1.0, 2.0],), ([1.0, 1.0],))) }",
            "differentiating needs `f` to return float tensors (or tuples of them), but it returns (f32[2], i32[2])",
        ),
        (
            "fn f(p) = p[0] * 2.0\nfn main() { print(vmap(f, in_axes = ((0, None, 0),))(([1.0, 2.0], [1.0, 2.0]))) }",
            "argument 0 is (f32[2], f32[2]), but its in_axes entry is a tuple of 3 entries",
        ),
        (
            "fn f(p) = p[0] * 2.0\nfn main() { print(vmap(f, in_axes = ((0, 0),))(([1.0, 2.0], \"s\"))) }",
            "vmap batches tensors (or tuples of them), but part of argument 0 is the string \"s\"",
        ),
        (
            "fn f(p) = p[0] * 2.0\nfn main() { print(vmap(f, in_axes = ((None, None),))(([1.0, 2.0], [1.0]))) }",
            "vmap needs at least one batched argument, but every in_axes entry is None",
        ),
        (
            "fn f(p) -> f32 = sum(p[0])\nfn main() { print(grad(f)(([1.0, 2.0], true))) }",
            "cannot differentiate with respect to `p`: it holds bool",
        ),
        (
            "fn f(p) = p[0]\nfn main() { print(jvp(f, (([1.0, 2.0], [1, 2]),), (([1.0, 2.0], [1, 2]),))) }",
            "cannot differentiate with respect to primal 0: it holds i32[2]",
        ),
        (
            "fn f(p) = p[0] * p[1]\nfn main() { print(jvp(f, (1.0, 2.0), (1.0, 1.0))) }",
            "a transformation of `f` takes its 1 argument by position",
        ),
        (
            "fn main() { print(tree_map(fn(a, b) = a + b, (1.0, (2.0, 3.0)), (1.0, 2.0))) }",
            "tree_map's trees must have one structure, but tree 1 is the number 2.0 where the first is (the number 2.0, the number 3.0)",
        ),
        (
            "use nn.Linear\nuse optim.sgd\nmodel M {\n    l: Linear(2, 2)\n    fn training_step(self, x: f32[B, 2], y: f32[B, 2]) -> f32 {\n        let h = tree_map(fn(p) = (p, p), self)\n        sum(self.l(x) - y)\n    }\n    fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n",
            "tree_map over a `M` model needs `f` to return a tensor for each of its tensors",
        ),
    ];
    for (src, want) in cases {
        let text = errors(src);
        assert!(text.contains(want), "expected {want:?} in:\n{text}\nfor:\n{src}");
    }
}
