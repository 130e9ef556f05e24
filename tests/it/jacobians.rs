//! `jacrev`, `jacfwd` and `hessian`: whole Jacobians and Hessians.
//!
//! Everything runs in float64 on the reference interpreter. Oracles:
//! central finite differences of the source-level function itself (its own
//! lowering, run at shifted points), never the transformed program; and the
//! two modes against each other. The optimized program on the Cranelift
//! backend is compared with the interpreter.

use super::higher_order::{close, lower, run};
use compiler::ir::generate::Rng;
use compiler::ir::{interp, Func, Tensor};

/// A function of a matrix and a vector to a matrix, smooth and not
/// polynomial, so every entry of its Jacobian differs.
const SRC: &str = "\
fn f(a: f64[2, 3], v: f64[3]) -> f64[3, 2] = transpose(tanh(a * v) + a ^ 2 * sum(v * v)) * exp(0.3 * v[0])
fn rev_a(a: f64[2, 3], v: f64[3]) -> f64[3, 2, 2, 3] = jacrev(f)(a, v)
fn rev_both(a: f64[2, 3], v: f64[3]) = jacrev(f, wrt = (a, v))(a, v)
fn fwd_both(a: f64[2, 3], v: f64[3]) = jacfwd(f, wrt = (a, v))(a, v)
fn s(a: f64[2, 3], v: f64[3]) -> f64 = sum(f(a, v) ^ 2) + sum(sin(a @ v)) * v[1]
fn hess_v(a: f64[2, 3], v: f64[3]) -> f64[3, 3] = hessian(s, wrt = v)(a, v)
fn hess_both(a: f64[2, 3], v: f64[3]) = hessian(s, wrt = (a, v))(a, v)
fn grad_s(a: f64[2, 3], v: f64[3]) -> f64[3] = grad(s, wrt = v)(a, v)
fn jac_of_grad(a: f64[2, 3], v: f64[3]) -> f64[3, 3] = jacfwd(grad(s, wrt = v), wrt = v)(a, v)
";

fn random(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

/// Central differences of output `out` of `func` with respect to argument
/// `arg`, entry by entry: `[output element][input element]`.
pub(crate) fn finite_jacobian(func: &Func, args: &[(&[usize], Vec<f64>)], arg: usize, out: usize) -> Vec<Vec<f64>> {
    let h = 1e-6;
    let shifted = |j: usize, d: f64| {
        let mut args = args.to_vec();
        args[arg].1[j] += d;
        run(func, &args)[out].clone()
    };
    let columns: Vec<Vec<f64>> = (0..args[arg].1.len())
        .map(|j| shifted(j, h).iter().zip(shifted(j, -h)).map(|(p, m)| (p - m) / (2.0 * h)).collect())
        .collect();
    (0..columns[0].len()).map(|i| columns.iter().map(|c| c[i]).collect()).collect()
}

/// `jacrev` and `jacfwd` with respect to a matrix and a vector: the layout
/// is the output's dims, then the input's, and every entry matches central
/// differences of `f`; the two modes agree to rounding.
#[test]
fn jacrev_and_jacfwd_match_finite_differences_of_the_function() {
    let (f, rev_a, rev_both, fwd_both) =
        (lower(SRC, "f"), lower(SRC, "rev_a"), lower(SRC, "rev_both"), lower(SRC, "fwd_both"));
    assert_eq!(rev_a.output_types()[0].to_string(), "f64[3, 2, 2, 3]");
    let types: Vec<String> = fwd_both.output_types().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["f64[3, 2, 2, 3]", "f64[3, 2, 3]"]);
    let mut rng = Rng(0x0ac_0001);
    for case in 0..4 {
        let args: Vec<(&[usize], Vec<f64>)> = vec![(&[2, 3], random(&mut rng, 6)), (&[3], random(&mut rng, 3))];
        let (rev, fwd, rev_a) = (run(&rev_both, &args), run(&fwd_both, &args), run(&rev_a, &args));
        for arg in 0..2 {
            let fd = finite_jacobian(&f, &args, arg, 0);
            let n_in = args[arg].1.len();
            for (i, row) in fd.iter().enumerate() {
                for (j, &want) in row.iter().enumerate() {
                    let what = |mode: &str| format!("{mode} d f[{i}] / d arg{arg}[{j}] (seed 0xac0001, case {case})");
                    close(rev[arg][i * n_in + j], want, 1e-7, &what("jacrev"));
                    close(fwd[arg][i * n_in + j], rev[arg][i * n_in + j], 1e-12, &what("jacfwd vs jacrev"));
                }
            }
        }
        assert_eq!(rev_a[0], rev[0], "jacrev(f) is jacrev(f, wrt = a): a is the first parameter");
    }
}

/// `hessian` with respect to one and to two arguments: against second
/// differences of `s` itself, symmetric, equal to `jacfwd(grad(s))`, and
/// nested as JAX nests it (`((H_aa, H_av), (H_va, H_vv))`).
#[test]
fn hessian_matches_second_differences_and_is_symmetric() {
    let (s, hess_v, hess_both, jac_of_grad) =
        (lower(SRC, "s"), lower(SRC, "hess_v"), lower(SRC, "hess_both"), lower(SRC, "jac_of_grad"));
    let types: Vec<String> = hess_both.output_types().iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["f64[2, 3, 2, 3]", "f64[2, 3, 3]", "f64[3, 2, 3]", "f64[3, 3]"]);
    let mut rng = Rng(0x0ac_0002);
    for case in 0..4 {
        let (a, v) = (random(&mut rng, 6), random(&mut rng, 3));
        let args: Vec<(&[usize], Vec<f64>)> = vec![(&[2, 3], a.clone()), (&[3], v.clone())];
        let h = run(&hess_v, &args)[0].clone();
        let both = run(&hess_both, &args);
        let jg = run(&jac_of_grad, &args)[0].clone();
        let e = 1e-4;
        let at = |dv: &[(usize, f64)]| {
            let mut v = v.clone();
            for &(i, d) in dv {
                v[i] += d;
            }
            run(&s, &[(&[2, 3], a.clone()), (&[3], v)])[0][0]
        };
        for i in 0..3 {
            for j in 0..3 {
                let what = |s: &str| format!("{s} [{i}, {j}] (seed 0xac0002, case {case})");
                let fd = (at(&[(i, e), (j, e)]) - at(&[(i, e), (j, -e)]) - at(&[(i, -e), (j, e)])
                    + at(&[(i, -e), (j, -e)]))
                    / (4.0 * e * e);
                close(h[i * 3 + j], fd, 1e-5, &what("hessian vs FD of s"));
                close(h[i * 3 + j], h[j * 3 + i], 1e-12, &what("symmetry"));
                close(h[i * 3 + j], jg[i * 3 + j], 1e-12, &what("hessian vs jacfwd(grad)"));
                close(both[3][i * 3 + j], h[i * 3 + j], 1e-12, &what("H_vv of hessian(wrt = (a, v))"));
            }
        }
        // The mixed blocks are transposes of each other: H_av[i, k, j] = H_va[j, i, k].
        for i in 0..2 {
            for k in 0..3 {
                for j in 0..3 {
                    let (av, va) = (both[1][(i * 3 + k) * 3 + j], both[2][j * 6 + i * 3 + k]);
                    close(av, va, 1e-12, &format!("H_av[{i}, {k}, {j}] vs H_va (case {case})"));
                }
            }
        }
    }
}

/// Jacobians compose with the other transformations and run through the
/// optimizer and the Cranelift backend: `vmap(jacrev(g))` is one Jacobian
/// per row, `grad` of a Jacobian's trace is the gradient of the divergence.
#[test]
fn jacobians_compose_and_run_on_the_cpu_backend() {
    let src = "\
use math.eye
fn g(x: f64[3]) -> f64[3] = sin(x) * sum(x) + x ^ 3
fn per_row(xs: f64[4, 3]) -> f64[4, 3, 3] = vmap(jacrev(g))(xs)
fn divergence(x: f64[3]) -> f64 = sum(jacfwd(g)(x) * f64(eye(3)))
fn grad_divergence(x: f64[3]) -> f64[3] = grad(divergence)(x)
";
    let (per_row, divergence, grad_divergence) =
        (lower(src, "per_row"), lower(src, "divergence"), lower(src, "grad_divergence"));
    let mut rng = Rng(0x0ac_0003);
    let xs = random(&mut rng, 12);
    let rows = run(&per_row, &[(&[4, 3], xs.clone())])[0].clone();
    for r in 0..4 {
        let x = &xs[r * 3..r * 3 + 3];
        let total: f64 = x.iter().sum();
        for i in 0..3 {
            for j in 0..3 {
                // d/dx_j (sin(x_i) * sum(x) + x_i^3)
                let diag = if i == j { x[i].cos() * total + 3.0 * x[i] * x[i] } else { 0.0 };
                let want = diag + x[i].sin();
                close(rows[(r * 3 + i) * 3 + j], want, 1e-12, &format!("vmap(jacrev(g)) row {r} [{i}, {j}]"));
            }
        }
    }
    let x = xs[..3].to_vec();
    let gd = run(&grad_divergence, &[(&[3], x.clone())])[0].clone();
    let fd = finite_jacobian(&divergence, &[(&[3], x.clone())], 0, 0);
    for j in 0..3 {
        close(gd[j], fd[0][j], 1e-7, &format!("grad of the divergence [{j}] vs FD"));
    }
    for func in [&per_row, &grad_divergence] {
        let (optimized, _) = compiler::opt::optimize(func, &compiler::opt::Options::default());
        let inputs: Vec<Tensor> = func
            .param_types()
            .iter()
            .map(|t| Tensor::f64(t.shape.dims(), xs[..t.shape.num_elements()].to_vec()))
            .collect();
        let want = interp::run(func, &inputs);
        let mut exe = runtime::Executable::compile(optimized, runtime::Backend::Cpu).unwrap();
        let got = exe.run(&inputs).unwrap();
        for (w, g) in want.iter().zip(&got) {
            for (k, (p, q)) in w.to_f64_vec().iter().zip(g.to_f64_vec()).enumerate() {
                close(q, *p, 1e-12, &format!("{}: Cranelift vs interpreter [{k}]", func.name));
            }
        }
    }
}
