//! Transformations of transformations: `grad(grad(f))`, `jvp(grad(f), ...)`
//! (Hessian-vector products), `vjp` and `value_and_grad` of `grad(f)`,
//! lambdas calling `grad(f)`, and transformations of `vmap(f)`.
//!
//! Everything runs in float64 (functions with `f64` parameter types, lowered
//! by `compiler::lower::lower_fn` and run by the reference interpreter).
//! Oracles: derivatives written out by hand, and central finite differences
//! of the source-level function `f` itself (its own lowering, run at shifted
//! points), never the transformed program's output.

use compiler::ir::generate::Rng;
use compiler::ir::{interp, DType, Func, Tensor};

/// Lowers `name` from the source `src`.
pub(crate) fn lower(src: &str, name: &str) -> Func {
    let (prog, mut diags) = compiler::lower::load("t.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    assert!(diags.is_empty(), "{}\n{src}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    compiler::lower::lower_fn(&prog, name).unwrap_or_else(|d| {
        panic!("{}\n{src}", compiler::diagnostic::render_all(&d, &prog.sources, false));
    })
}

/// Runs `func` on float64 tensors (`(dims, values)`); returns each output's values.
pub(crate) fn run(func: &Func, args: &[(&[usize], Vec<f64>)]) -> Vec<Vec<f64>> {
    let inputs: Vec<Tensor> = args.iter().map(|(d, v)| Tensor::f64(d, v.clone())).collect();
    interp::run(func, &inputs)
        .iter()
        .map(|t| {
            assert_eq!(t.dtype(), DType::F64, "the program must compute in float64");
            t.to_f64_vec()
        })
        .collect()
}

fn scalar(func: &Func, args: &[f64]) -> f64 {
    let args: Vec<(&[usize], Vec<f64>)> = args.iter().map(|&a| (&[][..], vec![a])).collect();
    run(func, &args)[0][0]
}

pub(crate) fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol * (1.0 + want.abs()), "{what}: got {got}, want {want}");
}

/// f(x) = x^3 and a smooth non-polynomial g: second and third derivatives,
/// against closed forms and against finite differences of `f`/`g` themselves.
#[test]
fn grad_of_grad_matches_closed_forms_and_finite_differences() {
    let src = "fn f(x: f64) -> f64 = x ^ 3\n\
               fn g(x: f64) -> f64 = sin(x) * exp(0.5 * x) + x ^ 2\n\
               fn d2f(x: f64) -> f64 = grad(grad(f))(x)\n\
               fn d3f(x: f64) -> f64 = grad(grad(grad(f)))(x)\n\
               fn d2g(x: f64) -> f64 = grad(grad(g))(x)\n\
               fn twice(x: f64) -> f64 = grad(fn(y) = grad(f)(y) * 2.0)(x)\n\
               fn vg(x: f64) = value_and_grad(grad(g))(x)\n\
               fn pull(x: f64, ct: f64) -> f64 {\n    let (_, back) = vjp(grad(g), x)\n    back(ct)\n}\n";
    let (f, g) = (lower(src, "f"), lower(src, "g"));
    let (d2f, d3f, d2g, twice, vg, pull) = (
        lower(src, "d2f"),
        lower(src, "d3f"),
        lower(src, "d2g"),
        lower(src, "twice"),
        lower(src, "vg"),
        lower(src, "pull"),
    );
    // Central second difference of the source function: error O(h^2) + O(eps / h^2).
    let h = 1e-4;
    let fd2 =
        |func: &Func, x: f64| (scalar(func, &[x + h]) - 2.0 * scalar(func, &[x]) + scalar(func, &[x - h])) / (h * h);
    let fd1 = |func: &Func, x: f64| (scalar(func, &[x + h]) - scalar(func, &[x - h])) / (2.0 * h);
    // g' and g'' by hand: g = s e + x^2 with s = sin x, e = exp(x/2).
    let dg = |x: f64| x.cos() * (0.5 * x).exp() + 0.5 * x.sin() * (0.5 * x).exp() + 2.0 * x;
    let ddg = |x: f64| (0.5 * x).exp() * (-0.75 * x.sin() + x.cos()) + 2.0;
    let mut rng = Rng(0x0d2_0001);
    for case in 0..8 {
        let x = rng.uniform(-2.0, 2.0);
        let what = |s: &str| format!("{s} at x = {x} (seed 0xd20001, case {case})");
        close(scalar(&d2f, &[x]), 6.0 * x, 1e-12, &what("d2/dx2 x^3"));
        close(scalar(&d2f, &[x]), fd2(&f, x), 1e-6, &what("d2/dx2 x^3 vs FD"));
        close(scalar(&d3f, &[x]), 6.0, 1e-12, &what("d3/dx3 x^3"));
        close(scalar(&twice, &[x]), 12.0 * x, 1e-12, &what("grad of a lambda calling grad(f)"));
        close(scalar(&d2g, &[x]), ddg(x), 1e-12, &what("g''"));
        close(scalar(&d2g, &[x]), fd2(&g, x), 1e-6, &what("g'' vs FD of g"));
        let out = run(&vg, &[(&[], vec![x])]);
        close(out[0][0], dg(x), 1e-12, &what("value_and_grad(grad(g)): value"));
        close(out[0][0], fd1(&g, x), 1e-7, &what("g' vs FD of g"));
        close(out[1][0], ddg(x), 1e-12, &what("value_and_grad(grad(g)): gradient"));
        let ct = rng.uniform(-1.0, 1.0);
        close(scalar(&pull, &[x, ct]), ct * ddg(x), 1e-12, &what("vjp(grad(g)) pullback"));
    }
}

/// grad(grad(h), wrt = y) of h(x, y) = x^2 y^3: d/dy (2 x y^3) = 6 x y^2,
/// and the mixed partial against a finite difference of `h`.
#[test]
fn mixed_partials_follow_wrt_at_each_level() {
    let src = "fn h(x: f64, y: f64) -> f64 = x ^ 2 * y ^ 3\n\
               fn hxy(x: f64, y: f64) -> f64 = grad(grad(h), wrt = y)(x, y)\n\
               fn hxx(x: f64, y: f64) -> f64 = grad(grad(h, wrt = x), wrt = x)(x, y)\n";
    let (h, hxy, hxx) = (lower(src, "h"), lower(src, "hxy"), lower(src, "hxx"));
    let e = 1e-4;
    let mut rng = Rng(0x0d2_0002);
    for case in 0..8 {
        let (x, y) = (rng.uniform(-2.0, 2.0), rng.uniform(-2.0, 2.0));
        let what = |s: &str| format!("{s} at ({x}, {y}) (seed 0xd20002, case {case})");
        close(scalar(&hxy, &[x, y]), 6.0 * x * y * y, 1e-12, &what("d2h/dydx"));
        let fd = (scalar(&h, &[x + e, y + e]) - scalar(&h, &[x + e, y - e]) - scalar(&h, &[x - e, y + e])
            + scalar(&h, &[x - e, y - e]))
            / (4.0 * e * e);
        close(scalar(&hxy, &[x, y]), fd, 1e-6, &what("d2h/dydx vs FD of h"));
        close(scalar(&hxx, &[x, y]), 2.0 * y.powi(3), 1e-12, &what("d2h/dx2"));
    }
}

/// Hessian-vector products by forward-over-reverse, `jvp(grad(f), ...)`:
/// of a quadratic form (H = (A + A^T) / 2 exactly) and of a non-quadratic
/// function (H from second finite differences of the source function).
#[test]
fn jvp_of_grad_and_grad_of_jvp_are_hessian_vector_products() {
    const N: usize = 4;
    let src = "fn q(x: f64[4], a: f64[4, 4]) -> f64 = 0.5 * sum(x * (a @ x))\n\
               fn hvp_q(x: f64[4], a: f64[4, 4], v: f64[4]) -> f64[4] {\n\
               \x20   let (_, t) = jvp(grad(q), (x, a), (v, 0.0 * a))\n    t\n}\n\
               fn hvp_q2(x: f64[4], a: f64[4, 4], v: f64[4]) -> f64[4] {\n\
               \x20   let (_, t) = jvp(fn(y) = grad(q)(y, a), (x,), (v,))\n    t\n}\n\
               fn r(x: f64[4]) -> f64 = sum(sin(x) * x ^ 2) + sum(x) ^ 2 + log(1.0 + sum(x * x))\n\
               fn hvp_r(x: f64[4], v: f64[4]) -> f64[4] {\n    let (_, t) = jvp(grad(r), (x,), (v,))\n    t\n}\n\
               fn along(y: f64[4], v: f64[4]) -> f64 {\n    let (_, t) = jvp(r, (y,), (v,))\n    t\n}\n\
               fn hvp_rev(x: f64[4], v: f64[4]) -> f64[4] = grad(along)(x, v)\n";
    let (hvp_q, hvp_q2, r, hvp_r) = (lower(src, "hvp_q"), lower(src, "hvp_q2"), lower(src, "r"), lower(src, "hvp_r"));
    // Reverse over forward: grad of the directional derivative, H v again.
    let hvp_rev = lower(src, "hvp_rev");
    let mut rng = Rng(0x0d2_0003);
    let vec = |rng: &mut Rng, n: usize| (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect::<Vec<f64>>();
    for case in 0..5 {
        let what = |s: &str| format!("{s} (seed 0xd20003, case {case})");
        let (x, a, v) = (vec(&mut rng, N), vec(&mut rng, N * N), vec(&mut rng, N));
        let want: Vec<f64> = (0..N).map(|i| (0..N).map(|j| 0.5 * (a[i * N + j] + a[j * N + i]) * v[j]).sum()).collect();
        for func in [&hvp_q, &hvp_q2] {
            let got = run(func, &[(&[N], x.clone()), (&[N, N], a.clone()), (&[N], v.clone())]);
            for i in 0..N {
                close(got[0][i], want[i], 1e-12, &what(&format!("quadratic form H v [{i}]")));
            }
        }
        // H_ij of r by central differences of r, then H v.
        let e = 1e-4;
        let at = |dx: &[(usize, f64)]| {
            let mut y = x.clone();
            for &(i, d) in dx {
                y[i] += d;
            }
            run(&r, &[(&[N], y)])[0][0]
        };
        let hess = |i: usize, j: usize| {
            (at(&[(i, e), (j, e)]) - at(&[(i, e), (j, -e)]) - at(&[(i, -e), (j, e)]) + at(&[(i, -e), (j, -e)]))
                / (4.0 * e * e)
        };
        let got = run(&hvp_r, &[(&[N], x.clone()), (&[N], v.clone())]);
        let rev = run(&hvp_rev, &[(&[N], x.clone()), (&[N], v.clone())]);
        for (i, &g) in got[0].iter().enumerate() {
            let fd: f64 = (0..N).map(|j| hess(i, j) * v[j]).sum();
            close(g, fd, 1e-5, &what(&format!("H v of r [{i}] vs FD of r")));
            close(rev[0][i], fd, 1e-5, &what(&format!("reverse-over-forward H v of r [{i}] vs FD of r")));
            close(rev[0][i], g, 1e-12, &what(&format!("reverse-over-forward vs forward-over-reverse [{i}]")));
        }
    }
}

/// Transformations of `vmap(f)`: `jvp(vmap(f), ...)` is the per-example jvp;
/// `grad(fn(x) = sum(vmap(grad(f))(x)))` sums per-example second derivatives.
#[test]
fn transformations_compose_with_vmap() {
    let src = "fn f(x: f64) -> f64 = x ^ 3 + sin(x)\n\
               fn tangent(xs: f64[5], vs: f64[5]) -> f64[5] {\n    let (_, t) = jvp(vmap(f), (xs,), (vs,))\n    t\n}\n\
               fn second(xs: f64[5]) -> f64[5] = grad(fn(x) = sum(vmap(grad(f))(x)))(xs)\n";
    let (tangent, second) = (lower(src, "tangent"), lower(src, "second"));
    let mut rng = Rng(0x0d2_0004);
    let xs: Vec<f64> = (0..5).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let vs: Vec<f64> = (0..5).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let t = run(&tangent, &[(&[5], xs.clone()), (&[5], vs.clone())]);
    let s = run(&second, &[(&[5], xs.clone())]);
    for i in 0..5 {
        let x = xs[i];
        close(t[0][i], (3.0 * x * x + x.cos()) * vs[i], 1e-12, &format!("jvp(vmap(f)) [{i}]"));
        close(s[0][i], 6.0 * x - x.sin(), 1e-12, &format!("d/dx sum(vmap(grad(f))) [{i}]"));
    }
}

/// A transformation of something that is not a scalar function still says
/// what is wrong: `grad(value_and_grad(f))` returns a tuple.
#[test]
fn grad_of_a_tuple_valued_transformation_is_reported() {
    let src = "fn f(x: f32) -> f32 = x * x\n\nfn main() {\n    print(grad(value_and_grad(f))(1.0))\n}\n";
    let (diags, sources) = jaxlightning::check_source("t.jl", src);
    let text = compiler::diagnostic::render_all(&diags, &sources, false);
    assert_eq!(diags.len(), 1, "{text}");
    assert!(
        text.contains("differentiating needs value_and_grad(`f`) to return a float scalar, but it returns (f32, f32)"),
        "{text}"
    );
}

/// Models and methods are function values too: `jvp(self.l, ...)`
/// differentiates a submodule's `forward`, `grad(self.energy)` a method; the
/// parameters they capture become inputs of the transformed function. Models
/// have parameters only in training programs, so this compiles a training
/// step (the numbers of transformed function values are checked above).
#[test]
fn models_and_methods_are_transformed_like_functions() {
    let src = "use nn.Linear\nuse optim.sgd\n\nmodel M {\n    l: Linear(4, 2)\n\n\
               \x20   fn energy(self, x: f32[1, 4]) -> f32 = sum(self.l(x) ^ 2)\n\n\
               \x20   fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 {\n\
               \x20       let (_, t) = jvp(self.l, (x[0:1],), (x[1:2],))\n\
               \x20       let g = grad(self.energy)(x[0:1])\n\
               \x20       let h = grad(fn(v) = sum(grad(self.energy)(v)))(x[1:2])\n\
               \x20       mean(self.l(x)[:, 0]) + sum(t) + sum(g * h)\n    }\n\n\
               \x20   fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n";
    let (prog, mut diags) = compiler::lower::load("t.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let x = compiler::ir::Type::new(DType::F32, &[2, 4]);
    let y = compiler::ir::Type::new(DType::I32, &[2]);
    let progs = compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default());
    assert!(progs.is_ok(), "{:?}", progs.err());
}

/// A model in `fn main` has no parameter values (the trainer draws them):
/// a clean error, not an internal one.
#[test]
fn a_model_outside_training_is_an_error_not_a_crash() {
    let src = "model M {\n    w: f32[3] = ones()\n\n    fn forward(self, x: f32[3]) -> f32 = sum(x * self.w)\n}\n\n\
               fn main() {\n    let m = M()\n    print(grad(m)(linspace(0.0, 1.0, 3)))\n}\n";
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let err = compiler::lower::lower_main(&prog).err().expect("an error");
    let text = compiler::diagnostic::render_all(&err, &prog.sources, false);
    assert!(text.contains("model `M` has trainable parameters, which exist only in training"), "{text}");
    // `jlc check` refuses it too, so checking agrees with running.
    let checked = compiler::lower::check_program(&prog);
    let text = compiler::diagnostic::render_all(&checked, &prog.sources, false);
    assert!(text.contains("model `M` has trainable parameters, which exist only in training"), "{text}");
}
