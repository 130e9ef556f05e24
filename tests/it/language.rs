//! The language features added on top of the core: `use` of user files,
//! `const`, lambdas with `grad`/`jvp`/`vjp`, and `int` parameters in `if`
//! conditions. Numbers are compared with values computed here by hand
//! (derivatives written out analytically), never with our own output.

use std::collections::HashMap;
use std::path::Path;

/// Checks `main.jl` with imported files served from `files`.
fn check(files: &[(&str, &str)], main: &str) -> (Vec<compiler::diagnostic::Diagnostic>, String) {
    let map: HashMap<String, String> = files.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut read = move |p: &str| map.get(p).cloned().ok_or_else(|| "not found".to_string());
    let (diags, sources) = jaxlightning::check_source_with("dir/main.jl", main, &mut read);
    let rendered = compiler::diagnostic::render_all(&diags, &sources, false);
    (diags, rendered)
}

/// Compiles `fn main` (no imports) and runs it on the interpreter; returns the printed tensors as f32.
fn run_main(src: &str) -> Vec<Vec<f32>> {
    let (prog, mut diags) = compiler::lower::load("t.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let script = compiler::compile_script(&prog, &compiler::Options::default()).unwrap_or_else(|d| panic!("{d:?}"));
    compiler::ir::interp::run(&script.func, &[]).iter().map(|t| t.as_f32().expect("f32 output").to_vec()).collect()
}

fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()), "{what}: {got:?} vs {want:?}");
    }
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

#[test]
fn imports_resolve_relative_to_the_importing_file_and_load_once() {
    let layers = "use \"../common/act.jl\"\nconst WIDTH = 3\nfn layer(x: f32[WIDTH]) -> f32[WIDTH] = act(x)\n";
    let act = "fn act(x) = x * 2.0\nfn unused(x) = x\n";
    let main = "use \"lib/layers.jl\".{layer, WIDTH}\nuse \"common/act.jl\".act\n\n\
                fn main() {\n    print(layer(linspace(0.0, 1.0, WIDTH)), act(1.0))\n}\n";
    let files = [("dir/lib/layers.jl", layers), ("dir/common/act.jl", act)];
    let (diags, rendered) = check(&files, main);
    assert!(diags.is_empty(), "{rendered}");
    // Both paths name one file: it is read and parsed once.
    let mut reads = Vec::new();
    let (prog, _) = compiler::lower::load_with("dir/main.jl", main, &mut |p: &str| {
        reads.push(p.to_string());
        files.iter().find(|(k, _)| *k == p).map(|(_, v)| v.to_string()).ok_or_else(|| "not found".to_string())
    });
    assert_eq!(reads, ["dir/lib/layers.jl", "dir/common/act.jl"]);
    assert_eq!(prog.sources.files.len(), 3);
    // Only the names listed are imported.
    let (diags, rendered) = check(&files, "use \"lib/layers.jl\".layer\n\nfn main() {\n    print(unused(1.0))\n}\n");
    assert!(rendered.contains("unknown name `unused`"), "{rendered}");
    assert_eq!(diags.len(), 1, "{rendered}");
}

#[test]
fn a_missing_file_names_the_path_tried_and_a_cycle_shows_the_chain() {
    let (_, rendered) = check(&[], "use \"lib/nope.jl\"\n");
    assert!(rendered.contains("E0102") && rendered.contains("`dir/lib/nope.jl`"), "{rendered}");
    let (_, rendered) = check(
        &[("dir/a.jl", "use \"b.jl\"\nfn fa() = 1.0\n"), ("dir/b.jl", "use \"main.jl\".{x}\nfn fb() = 1.0\n")],
        "use \"a.jl\"\nfn x() = 1.0\n",
    );
    assert!(rendered.contains("import cycle: dir/main.jl -> dir/a.jl -> dir/b.jl -> dir/main.jl"), "{rendered}");
    // A failed import is one report: the names it would have brought in are
    // not reported again where they are used (a cycle, a missing file, an
    // unknown module, an item the module lacks).
    let (diags, rendered) = check(
        &[("dir/a.jl", "use \"main.jl\".h\nfn g(x) = h(x)\n")],
        "use \"a.jl\".g\nuse \"gone.jl\".k\nuse nnn.relu\nuse nn.reluu\n\n\
         fn h(x) = x\n\nfn main() {\n    print(g(1.0), k(1.0), relu(1.0), reluu(1.0))\n}\n",
    );
    assert_eq!(diags.len(), 4, "{rendered}");
    assert!(!rendered.contains("unknown name"), "{rendered}");
    // `check_source` (no reader given) reads from disk; the compiler itself opens no file.
    let (_, diags) = compiler::lower::load("x.jl", "use \"Cargo.toml\"\n");
    assert!(diags.iter().any(|d| d.message.contains("cannot read")), "{diags:?}");
}

#[test]
fn jlc_runs_and_checks_files_with_imports() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"))
        .args(["run", "--backend", "interp"])
        .arg(root.join("tests/data/imports/main.jl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // scaled(x) = 2x + 1 at x = 1; twice(x)[1:3] = 2 * [0.25, 0.5].
    assert_eq!(stdout.trim(), "3.000000 [0.500000, 1.000000]");
    let cycle = root.join("tests/data/imports/cycle_a.jl");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc")).arg("check").arg(&cycle).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("import cycle") && stderr.contains("lib/cycle_b.jl"), "{stderr}");
}

#[test]
fn consts_work_in_shapes_expressions_and_settings() {
    let out = run_main(
        "const N = 4\nconst SCALE = 0.5 * 2\n\n\
         fn head(x: f32[N]) -> f32[2] = x[:2] * SCALE\n\n\
         fn main() {\n    print(head(linspace(0.0, 3.0, N)), linspace(0.0, 1.0, N + 1))\n}\n",
    );
    close(&out[0], &[0.0, 1.0], "head");
    assert_eq!(out[1].len(), 5);
    let (prog, diags) = compiler::lower::load(
        "t.jl",
        "const EPOCHS = 3\nconst BATCH = 8 * 2\n\ndata = csv(\"d.csv\") {\n    batch_size = BATCH\n}\n\ntrainer {\n    max_epochs = EPOCHS\n}\n",
    );
    assert!(diags.is_empty());
    let sections = compiler::lower::training_sections(&prog).unwrap_or_else(|d| panic!("{d:?}"));
    let data = trainer::config::data_config(sections.data.as_ref().unwrap()).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(data.batch_size, 16);
    let t = trainer::config::trainer_config(sections.trainer.as_ref()).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(t.max_epochs, 3);
    // An imported constant works in settings too.
    let (prog, diags) = compiler::lower::load_with(
        "t.jl",
        "use \"cfg.jl\".EPOCHS\n\ntrainer {\n    max_epochs = EPOCHS\n}\n",
        &mut |_| Ok("const EPOCHS = 7\n".to_string()),
    );
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).unwrap_or_else(|d| panic!("{d:?}"));
    let t = trainer::config::trainer_config(sections.trainer.as_ref()).unwrap_or_else(|d| panic!("{d:?}"));
    assert_eq!(t.max_epochs, 7);
}

#[test]
fn grad_jvp_and_vjp_of_lambdas_match_hand_derivatives() {
    // loss(w) = sum((w * y - 1)^2), y = 3x:  d/dw = 2 (w y - 1) y.
    // jvp of f(a, b) = a * sin(b) with tangents (ta, tb): ta sin(b) + a cos(b) tb.
    // vjp of the same with cotangent c: (c sin(b), c a cos(b)).
    let out = run_main(
        "fn loss(w: f32[N], x: f32[N], y: f32[N]) -> f32 = sum((w * y - 1.0) ^ 2)\n\n\
         fn main() {\n\
         \x20   let x = linspace(0.0, 1.0, 5)\n\
         \x20   let y = 3.0 * x\n\
         \x20   let w = linspace(-1.0, 1.0, 5)\n\
         \x20   let g = grad(fn(v) = loss(v, x, y))(w)\n\
         \x20   let (value, g2) = value_and_grad(fn(a) { sum(a * a) })(w)\n\
         \x20   let (p, t) = jvp(fn(a, b) = a * sin(b), (w, x), (x, y))\n\
         \x20   let (q, pull) = vjp(fn(a, b) = a * sin(b), w, x)\n\
         \x20   let (ca, cb) = pull(y)\n\
         \x20   print(g, value, g2, p, t, q, ca, cb)\n\
         }\n",
    );
    let x = linspace(0.0, 1.0, 5);
    let y: Vec<f64> = x.iter().map(|v| 3.0 * v).collect();
    let w = linspace(-1.0, 1.0, 5);
    let z = |f: &dyn Fn(usize) -> f64| (0..5).map(f).collect::<Vec<f64>>();
    close(&out[0], &z(&|i| 2.0 * (w[i] * y[i] - 1.0) * y[i]), "grad of a lambda");
    close(&out[1], &[w.iter().map(|v| v * v).sum()], "value");
    close(&out[2], &z(&|i| 2.0 * w[i]), "value_and_grad");
    close(&out[3], &z(&|i| w[i] * x[i].sin()), "jvp primal");
    close(&out[4], &z(&|i| x[i] * x[i].sin() + w[i] * x[i].cos() * y[i]), "jvp tangent");
    close(&out[5], &z(&|i| w[i] * x[i].sin()), "vjp primal");
    close(&out[6], &z(&|i| y[i] * x[i].sin()), "vjp cotangent a");
    close(&out[7], &z(&|i| y[i] * w[i] * x[i].cos()), "vjp cotangent b");
}

/// `has_aux = true`, as JAX: f returns `(loss, aux)`; `grad` gives `(grads,
/// aux)` and `value_and_grad` gives `((loss, aux), grads)`; aux (a tensor, a
/// tuple, a compile-time number) is passed through, not differentiated.
#[test]
fn grad_and_value_and_grad_with_auxiliary_outputs() {
    // loss(w) = (w . x)^2, d/dw = 2 (w . x) x; aux = (2 w, sum(x), 3).
    let out = run_main(
        "fn loss(w: f32[N], x: f32[N]) {\n\
         \x20   let z = sum(w * x)\n\
         \x20   (z * z, (w * 2.0, sum(x), 3))\n\
         }\n\n\
         fn main() {\n\
         \x20   let x = linspace(0.5, 2.0, 4)\n\
         \x20   let w = linspace(-1.0, 1.5, 4)\n\
         \x20   let (g, (twice, total, three)) = grad(loss, has_aux = true)(w, x)\n\
         \x20   let ((value, aux), (gw, gx)) = value_and_grad(loss, wrt = (w, x), has_aux = true)(w, x)\n\
         \x20   let (twice2, total2, _) = aux\n\
         \x20   print(g, twice, total + three, value, twice2, total2, gw, gx)\n\
         }\n",
    );
    let (x, w) = (linspace(0.5, 2.0, 4), linspace(-1.0, 1.5, 4));
    let z: f64 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
    let (grad_w, grad_x): (Vec<f64>, Vec<f64>) =
        (x.iter().map(|v| 2.0 * z * v).collect(), w.iter().map(|v| 2.0 * z * v).collect());
    let twice: Vec<f64> = w.iter().map(|v| 2.0 * v).collect();
    close(&out[0], &grad_w, "grad with aux: the gradient");
    close(&out[1], &twice, "grad with aux: aux tensor");
    close(&out[2], &[x.iter().sum::<f64>() + 3.0], "grad with aux: aux scalar and compile-time aux");
    close(&out[3], &[z * z], "value_and_grad with aux: value");
    close(&out[4], &twice, "value_and_grad with aux: aux");
    close(&out[5], &[x.iter().sum()], "value_and_grad with aux: aux scalar");
    close(&out[6], &grad_w, "value_and_grad with aux: d/dw");
    close(&out[7], &grad_x, "value_and_grad with aux: d/dx");
}

/// Negative compile-time integers stay integers: `let i = -1`, `const`s,
/// `int` arguments and defaults, arithmetic below zero, array literals
/// (`[1, -1]` is i32), `/` truncating toward zero as in Rust.
#[test]
fn negative_compile_time_integers_index_count_and_divide() {
    let out = run_main(
        "const LAST = -1\n\
         fn pick(x: f32[N], i: int) = x[i]\n\
         fn norm(x: f32[B, D], axis: int = -1) = sum(x * x, axis = axis)\n\n\
         fn main() {\n\
         \x20   let x = linspace(0.0, 1.0, 5)\n\
         \x20   let i = -1\n\
         \x20   let j = 2 - 4\n\
         \x20   let m = reshape(linspace(0.0, 1.0, 6), (2, 3))\n\
         \x20   let total = 0.0 * x[0]\n\
         \x20   for k in -2..1 {\n\
         \x20       total = total + x[k]\n\
         \x20   }\n\
         \x20   print(x[i], x[LAST], x[j], pick(x, -2), float([1, -1]), x[0] + (-7 / 2), x[0] + 7 / 2, norm(m), norm(m, axis = 0), x[i - 1], total, x[abs(i)], x[max(i, -3)], x[min(2, 3) + sign(i)])\n\
         }\n",
    );
    close(&out[0], &[1.0], "x[i] with i = -1");
    close(&out[1], &[1.0], "x[LAST]");
    close(&out[2], &[0.75], "x[2 - 4]");
    close(&out[3], &[0.75], "an int argument -2");
    close(&out[4], &[1.0, -1.0], "[1, -1]");
    close(&out[5], &[-3.0], "-7 / 2 truncates toward zero");
    close(&out[6], &[3.0], "7 / 2");
    close(&out[7], &[0.2, 2.0], "axis = -1 by default");
    close(&out[8], &[0.36, 0.68, 1.16], "axis = 0");
    close(&out[9], &[0.75], "x[i - 1]");
    close(&out[10], &[0.75 + 1.0 + 0.0], "for k in -2..1");
    // abs, max, min and sign of compile-time integers stay integers.
    close(&out[11], &[0.25], "x[abs(-1)]");
    close(&out[12], &[1.0], "x[max(-1, -3)]");
    close(&out[13], &[0.25], "x[min(2, 3) + sign(-1)]");
    // Compile-time integer division by zero is an error (it had printed inf);
    // a float numerator divides as IEEE.
    let (diags, rendered) = check(&[], "fn main() {\n    let k = 2 - 2\n    print(7 / k)\n}\n");
    assert_eq!(diags.len(), 1, "{rendered}");
    assert!(rendered.contains("integer division by zero") && rendered.contains("this compile-time integer is 0"));
    let (diags, rendered) = check(&[], "fn main() {\n    print(7.0 / 0, -1.0 / 0)\n}\n");
    assert!(diags.is_empty(), "{rendered}");
}

/// Return types: a name the parameters bind must match exactly (a golden
/// shows `-> f32[B, 2, H, W]` refused for a conv's output), a new name
/// (`H2`) names the dim it meets, and a size only the build knows (a slice
/// with an `int` parameter's bound, checked alone) is checked per call.
#[test]
fn return_types_bind_new_names_and_check_int_sized_slices_per_call() {
    let out = run_main(
        "fn f(k: int, x: f32[N]) -> f32[k] = x[0:k]\n\
         fn g(x: f32[B, C, H, W]) -> f32[B, C, H2, W2] = max_pool2d(x, 2)\n\n\
         fn main() {\n\
         \x20   print(f(3, linspace(0.0, 1.0, 5)), g(reshape(linspace(0.0, 1.0, 16), (1, 1, 4, 4))))\n\
         }\n",
    );
    close(&out[0], &[0.0, 0.25, 0.5], "x[0:k] as f32[k]");
    close(&out[1], &[5.0 / 15.0, 7.0 / 15.0, 13.0 / 15.0, 1.0], "max pool as f32[B, C, H2, W2]");
    // At a call, the build's sizes are compared: k = 3 but the slice has 2.
    let (_, rendered) = check(
        &[],
        "fn f(k: int, x: f32[N]) -> f32[k] = x[1:k]\n\nfn main() {\n    print(f(3, linspace(0.0, 1.0, 5)))\n}\n",
    );
    assert!(rendered.contains("returns f32[2] but declares f32[3]"), "{rendered}");
}

#[test]
fn leading_dims_bind_once_per_signature_and_any_rank_fits() {
    // `...` covers zero, one or two leading dims; a `let` annotation and the
    // return type see the dims the parameter bound.
    let out = run_main(
        "fn center(x: f32[..., D]) -> f32[..., D] {\n\
         \x20   let m: f32[..., 1] = mean(x, axis = -1, keepdims = true)\n\
         \x20   x - m\n\
         }\n\
         fn scale(x: f32[..., D], w: f32[D]) -> f32[..., D] = x * w\n\
         fn twice(x: f32[...]) -> f32[...] = x * 2.0\n\n\
         fn main() {\n\
         \x20   let a = linspace(0.0, 1.0, 6)\n\
         \x20   print(center(a), center(reshape(a, (2, 3))), scale(reshape(a, (1, 2, 3)), [1.0, 2.0, 3.0]), twice(3.0))\n\
         }\n",
    );
    let a = linspace(0.0, 1.0, 6);
    close(&out[0], &a.iter().map(|v| v - 0.5).collect::<Vec<_>>(), "center of f32[6]");
    close(&out[1], &[-0.2, 0.0, 0.2, -0.2, 0.0, 0.2], "center of f32[2, 3] row by row");
    close(&out[2], &[0.0, 0.4, 1.2, 0.6, 1.6, 3.0], "f32[1, 2, 3] times f32[3]");
    close(&out[3], &[6.0], "a compile-time number fits f32[...] as a rank-0 tensor");
    // Two parameters with `...` must agree; the note names both runs.
    let (_, rendered) = check(
        &[],
        "fn add(x: f32[..., D], y: f32[..., D]) = x + y\n\n\
         fn main() {\n    print(add(reshape(linspace(0.0, 1.0, 6), (2, 3)), linspace(0.0, 1.0, 3)))\n}\n",
    );
    assert!(
        rendered.contains("`...` is [2] here (from an earlier type), but the value's leading dims are []"),
        "{rendered}"
    );
}

/// `einsum` against sums written out here: a matrix product, a batched one
/// with a transposed right operand (attention's scores), a contraction over
/// two letters, an outer product, a dot, a transpose, a sum of one
/// operand's private axis, NumPy's implicit output; and the gradient of a
/// contraction, which is the other operand contracted with the cotangent.
#[test]
fn einsum_contracts_batches_and_differentiates() {
    // a[i, j] = 0.1 (3i + j + 1) on [2, 3]; b[j, k] = 0.05 (4j - k) on [3, 4];
    // t[p, q, r] = 0.01 (12p + 4q + r + 1) on [2, 3, 4].
    let a = |i: usize, j: usize| 0.1 * (3 * i + j + 1) as f64;
    let b = |j: usize, k: usize| 0.05 * (4.0 * j as f64 - k as f64);
    let t = |p: usize, q: usize, r: usize| 0.01 * (12 * p + 4 * q + r + 1) as f64;
    let out = run_main(
        "fn main() {\n\
         \x20   let a = reshape(linspace(0.1, 0.6, 6), (2, 3))\n\
         \x20   let b = reshape(linspace(0.0, 0.55, 12), (3, 4)) - 0.1 * reshape(linspace(0.0, 3.0, 4), (1, 4))\n\
         \x20   let t = reshape(linspace(0.01, 0.24, 24), (2, 3, 4))\n\
         \x20   print(einsum(\"ij,jk->ik\", a, b), einsum(\"pqr,psr->pqs\", t, t), einsum(\"pqr,qr->p\", t, b))\n\
         \x20   print(einsum(\"i,j->ij\", a[0], a[1]), einsum(\"i,i->\", a[0], a[1]), einsum(\"ij->ji\", a), einsum(\"pqr,pq->q\", t, a))\n\
         \x20   print(einsum(\"jk,ij\", b, a), grad(fn(x) = sum(einsum(\"ij,jk->ik\", x, b) * einsum(\"ij,jk->ik\", a, b)))(a))\n\
         }\n",
    );
    let (ai, aj, bk, tq, tr) = (2, 3, 4, 3, 4);
    let ab: Vec<f64> = (0..ai).flat_map(|i| (0..bk).map(move |k| (0..aj).map(|j| a(i, j) * b(j, k)).sum())).collect();
    close(&out[0], &ab, "ij,jk->ik");
    let scores: Vec<f64> = (0..2)
        .flat_map(|p| (0..tq).flat_map(move |q| (0..tq).map(move |s| (0..tr).map(|r| t(p, q, r) * t(p, s, r)).sum())))
        .collect();
    close(&out[1], &scores, "pqr,psr->pqs");
    let two: Vec<f64> = (0..2)
        .map(|p| (0..tq).flat_map(|q| (0..tr).map(move |r| (q, r))).map(|(q, r)| t(p, q, r) * b(q, r)).sum())
        .collect();
    close(&out[2], &two, "pqr,qr->p");
    let outer: Vec<f64> = (0..aj).flat_map(|i| (0..aj).map(move |j| a(0, i) * a(1, j))).collect();
    close(&out[3], &outer, "i,j->ij");
    close(&out[4], &[(0..aj).map(|i| a(0, i) * a(1, i)).sum()], "i,i->");
    let at: Vec<f64> = (0..aj).flat_map(|j| (0..ai).map(move |i| a(i, j))).collect();
    close(&out[5], &at, "ij->ji");
    let private: Vec<f64> =
        (0..tq).map(|q| (0..2).map(|p| (0..tr).map(|r| t(p, q, r)).sum::<f64>() * a(p, q)).sum()).collect();
    close(&out[6], &private, "pqr,pq->q (r summed first)");
    close(&out[7], &ab, "implicit output: jk,ij is ik");
    // d/dx sum((x b) * (a b)) = (a b) b^T.
    let ab_ref = &ab;
    let grad: Vec<f64> =
        (0..ai).flat_map(|i| (0..aj).map(move |j| (0..bk).map(|k| ab_ref[i * bk + k] * b(j, k)).sum())).collect();
    close(&out[8], &grad, "gradient through einsum");
}

/// Functions nothing elaborates (untyped, uncalled) are still read for
/// unknown names (golden `unknown_names_in_uncalled_functions.jl`); every
/// way of binding a name counts, so none of these is reported.
#[test]
fn uncalled_untyped_functions_bind_names_every_way() {
    let (diags, rendered) = check(
        &[],
        "use nn.relu\n\n\
         const SCALE = 2.0\n\n\
         fn helper(x, n = 3) {\n\
         \x20   let (a, b) = (x, x)\n\
         \x20   let h: f32[R, C] = a\n\
         \x20   let total = x * 0.0\n\
         \x20   for i in 0..n {\n\
         \x20       total = total + relu(a) * SCALE * i\n\
         \x20   }\n\
         \x20   let g = grad(fn(w) = sum(w * b), wrt = w)\n\
         \x20   let v = vmap(fn(row) = row * C, in_axes = (None,))\n\
         \x20   if n > 1 { h } else { total + g(a) + later(b) }\n\
         }\n\n\
         fn later(y) = y\n\n\
         model Net(width: int = 4) {\n\
         \x20   fn forward(self, x) = x * width\n\
         }\n",
    );
    assert!(diags.is_empty(), "{rendered}");
}

#[test]
fn a_lambda_captures_its_scope_including_a_model() {
    // A method differentiates a lambda over `self`'s parameter: the
    // captured model's tensors become inputs of the differentiated function.
    let (diags, rendered) = check(
        &[],
        "model M {\n    w: f32[3] = ones()\n\n    fn f(self, x: f32[3]) -> f32 = sum(grad(fn(v) = sum(v * self.w * x))(x))\n}\n",
    );
    assert!(diags.is_empty(), "{rendered}");
    // Lowered inside a training step, the captured parameters become inputs of the transformed function.
    let src = "use nn.Linear\nuse optim.sgd\n\nmodel M {\n    l: Linear(4, 2)\n\n\
               fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 {\n\
               \x20       let pen = sum(grad(fn(v) = sum(v * self.l.weight))(self.l.weight))\n\
               \x20       mean(self.l(x)[:, 0]) + 0.0 * pen\n    }\n\n\
               \x20   fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n";
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x = compiler::ir::Type::new(compiler::ir::DType::F32, &[2, 4]);
    let y = compiler::ir::Type::new(compiler::ir::DType::I32, &[2]);
    let progs = compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default());
    assert!(progs.is_ok(), "{:?}", progs.err());
    // sum(v * x) over v = x gives x; summed: 0 + 0.5 + 1.
    let out = run_main(
        "fn main() {\n    let x = linspace(0.0, 1.0, 3)\n    let k = 2.0\n    print(grad(fn(v) = k * sum(v * x))(x))\n}\n",
    );
    close(&out[0], &[0.0, 1.0, 2.0], "captured tensor and number");
}

#[test]
fn int_parameters_in_conditions_are_checked_per_call() {
    // Checked alone, `k` is unknown: no error. Each call checks the branch taken.
    let ok = "fn pick(x: f32[N], k: int) {\n    if k > 0 {\n        x[k - 1]\n    } else {\n        x[0]\n    }\n}\n\n\
              fn main() {\n    print(pick(linspace(0.0, 1.0, 3), 2))\n}\n";
    let (diags, rendered) = check(&[], ok);
    assert!(diags.is_empty(), "{rendered}");
    let bad =
        "fn pick(x: f32[N], k: int) {\n    if k > 0 {\n        x[k + 5]\n    } else {\n        x[0]\n    }\n}\n\n\
               fn main() {\n    print(pick(linspace(0.0, 1.0, 3), 2))\n}\n";
    let (_, rendered) = check(&[], bad);
    assert!(rendered.contains("index 7 is out of bounds"), "{rendered}");
    // Loops over an `int` parameter likewise.
    let looped = "fn total(x: f32[N], k: int) -> f32 {\n    let acc = 0.0 * x[0]\n    for i in 0..k {\n        acc = acc + x[i]\n    }\n    acc\n}\n";
    let (diags, rendered) = check(&[], looped);
    assert!(diags.is_empty(), "{rendered}");
    let wrong = looped.replace("x[i]", "x[i + 3]");
    let (_, rendered) = check(&[], &format!("{wrong}\nfn main() {{\n    print(total(linspace(0.0, 1.0, 3), 1))\n}}\n"));
    assert!(rendered.contains("index 3 is out of bounds"), "{rendered}");
    // A tensor condition is still an error in a function checked alone.
    let (_, rendered) = check(&[], "fn f(x: f32[N], k: int) = if x > 0.0 { x } else { x }\n");
    assert!(rendered.contains("must be known at compile time"), "{rendered}");
}

#[test]
fn vmap_maps_functions_and_gradients_over_a_batch_axis() {
    // loss(w, x, y) = (w . x - y)^2:  d/dw = 2 (w . x - y) x, one row per example.
    let out = run_main(
        "fn loss(w: f32[3], x: f32[3], y: f32) -> f32 = (sum(w * x) - y) ^ 2\n\n\
         fn main() {\n\
         \x20   let w = linspace(-1.0, 1.0, 3)\n\
         \x20   let xs = one_hot([0, 2, 1, 1], 3) * 2.0 + 0.5\n\
         \x20   let ys = linspace(0.0, 3.0, 4)\n\
         \x20   let g = vmap(grad(loss), in_axes = (None, 0, 0))(w, xs, ys)\n\
         \x20   let sq = vmap(fn(x) = sum(x * x))(xs)\n\
         \x20   let cols = vmap(fn(c) = c * ys, in_axes = 1)(xs)\n\
         \x20   let outer = vmap(vmap(fn(a, b) = a * b, in_axes = (None, 0)), in_axes = (0, None))(w, ys)\n\
         \x20   let (l, gl) = vmap(value_and_grad(fn(v, x) = sum(v * x) ^ 2), in_axes = (None, 0))(w, xs)\n\
         \x20   let last = vmap(fn(c) = c * ys, in_axes = -1)(xs)\n\
         \x20   print(g, sq, cols, outer, l, gl, last)\n\
         }\n",
    );
    let w = linspace(-1.0, 1.0, 3);
    let ys = linspace(0.0, 3.0, 4);
    let xs: Vec<Vec<f64>> =
        [0, 2, 1, 1].iter().map(|&k| (0..3).map(|j| if j == k { 2.5 } else { 0.5 }).collect()).collect();
    let dot = |x: &[f64]| x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
    let g: Vec<f64> =
        (0..4).flat_map(|e| xs[e].iter().map(move |x| (e, x))).map(|(e, x)| 2.0 * (dot(&xs[e]) - ys[e]) * x).collect();
    close(&out[0], &g, "per-example gradients");
    close(&out[1], &xs.iter().map(|x| x.iter().map(|v| v * v).sum()).collect::<Vec<f64>>(), "sum of squares per row");
    close(
        &out[2],
        &(0..3).flat_map(|j| (0..4).map(move |e| (j, e))).map(|(j, e)| xs[e][j] * ys[e]).collect::<Vec<_>>(),
        "columns",
    );
    close(
        &out[3],
        &(0..3).flat_map(|i| (0..4).map(move |j| (i, j))).map(|(i, j)| w[i] * ys[j]).collect::<Vec<_>>(),
        "outer product",
    );
    close(&out[4], &xs.iter().map(|x| dot(x).powi(2)).collect::<Vec<_>>(), "value per example");
    let gl: Vec<f64> =
        (0..4).flat_map(|e| xs[e].iter().map(move |x| (e, x))).map(|(e, x)| 2.0 * dot(&xs[e]) * x).collect();
    close(&out[5], &gl, "value_and_grad per example");
    // in_axes = -1 is the last axis, as in JAX: the same columns.
    assert_eq!(out[6], out[2], "in_axes = -1 vs in_axes = 1");
}

#[test]
fn per_example_gradients_inside_a_training_step_compile() {
    // Per-example gradient norms of a model's weight (as in DP-SGD), with
    // the model captured by the lambda and shared across examples.
    let src = "use nn.Linear\nuse optim.sgd\n\nmodel M {\n    l: Linear(4, 2)\n\n\
               fn training_step(self, x: f32[B, 4], y: f32[B, 2]) -> f32 {\n\
               \x20       let per = vmap(grad(fn(w, xi, yi) = sum((xi @ w - yi) ^ 2)), in_axes = (None, 0, 0))(self.l.weight, x, y)\n\
               \x20       log(\"grad_norm\", mean(sqrt(sum(per * per, axis = (1, 2)))))\n\
               \x20       mean((self.l(x) - y) ^ 2)\n    }\n\n\
               \x20   fn configure_optimizers(self) = sgd(lr = 0.1)\n}\n";
    let (diags, rendered) = check(&[], src);
    assert!(diags.is_empty(), "{rendered}");
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let x = compiler::ir::Type::new(compiler::ir::DType::F32, &[3, 4]);
    let y = compiler::ir::Type::new(compiler::ir::DType::F32, &[3, 2]);
    let progs = compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default());
    assert!(progs.is_ok(), "{:?}", progs.err());
}

#[test]
fn dump_typed_prints_each_signature_with_inferred_types() {
    // The return types are derived by hand from the shape rules: `x @ w` is
    // [B, 4] @ [4, 2] = [B, 2], a sum is a scalar, a tuple keeps its parts.
    let src = "use nn.Linear\n\nconst N = 4\n\n\
               fn f(x: f32[B, N], w: f32[N, 2]) = (x @ w, sum(x))\n\n\
               fn g(x) = x\n\n\
               fn pick(flag: bool, x: f32[K]) -> f32[K] = if flag { x } else { -x }\n\n\
               model M(k: int = 3) {\n    l: Linear(N, k)\n\n    fn forward(self, x: f32[B, N]) = self.l(x)\n}\n";
    let out = jaxlightning::dump("t.jl", src, jaxlightning::DumpStage::Typed, false, 2, &[], false).unwrap();
    let want = "const N = 4\n\
                fn f(x: f32[B, 4], w: f32[4, 2]) -> (f32[B, 2], f32)\n\
                fn g(x) (checked at each call)\n\
                fn pick(flag: bool, x: f32[K]) -> f32[K]\n\
                model M(k = 3)\n    l.bias: f32[3]\n    l.weight: f32[4, 3]\n    fn forward(self, x: f32[B, 4]) -> f32[B, 3]\n";
    assert_eq!(out, want);
    let tokens =
        jaxlightning::dump("t.jl", "fn g(x) = x\n", jaxlightning::DumpStage::Tokens, false, 2, &[], false).unwrap();
    assert!(tokens.starts_with("0..2 `fn`\n3..4 name `g`\n"), "{tokens}");
    let ast = jaxlightning::dump("t.jl", "fn g(x) = x\n", jaxlightning::DumpStage::Ast, false, 2, &[], false).unwrap();
    for part in ["Fn(", "name: \"g\"", "params: [", "Name(", "\"x\""] {
        assert!(ast.contains(part), "{part} in {ast}");
    }
}

#[test]
fn transpose_with_axes_arange_and_compile_time_float() {
    // x[i, j, k] = i * 12 + j * 4 + k, shape [2, 3, 4]; result axis a is x's axis perm[a].
    let src = "fn main() {\n    let x = reshape(linspace(0.0, 23.0, 24), (2, 3, 4))\n    print(transpose(x, (2, 0, 1)))\n    print(transpose(x, (-1, 1, 0)))\n    print(float(arange(5)) * sqrt(float(16)))\n}\n";
    let out = run_main(src);
    let permuted = |perm: [usize; 3]| -> Vec<f64> {
        let dims = [2usize, 3, 4];
        let od = [dims[perm[0]], dims[perm[1]], dims[perm[2]]];
        let mut v = Vec::new();
        for a in 0..od[0] {
            for b in 0..od[1] {
                for c in 0..od[2] {
                    let mut idx = [0usize; 3];
                    idx[perm[0]] = a;
                    idx[perm[1]] = b;
                    idx[perm[2]] = c;
                    v.push((idx[0] * 12 + idx[1] * 4 + idx[2]) as f64);
                }
            }
        }
        v
    };
    close(&out[0], &permuted([2, 0, 1]), "transpose(x, (2, 0, 1))");
    close(&out[1], &permuted([2, 1, 0]), "transpose(x, (-1, 1, 0))");
    close(&out[2], &[0.0, 4.0, 8.0, 12.0, 16.0], "float(arange(5)) * sqrt(float(16))");
    let (diags, text) = check(&[], "fn f(x: f32[B, 3]) = transpose(x, (0, 0))\n");
    assert!(text.contains("needs a permutation of the 2 axes of f32[B, 3]"), "{text}");
    assert_eq!(diags.len(), 1, "{text}");
}

#[test]
fn reshape_sees_through_merged_symbolic_dims() {
    // (B * 128) x 384 elements regroup as (-1, 128, 3, 4, 32) with -1 = B, as
    // multi-head attention does after a flattened linear layer.
    let src = "fn same(x: f32[B, 128, 384]) -> f32[B, 128, 384] = x\nfn heads(x: f32[B, 128, 384]) {\n    let flat = reshape(x, (-1, 384))\n    let split = reshape(flat, (-1, 128, 3, 4, 32))\n    same(reshape(split, (-1, 128, 384)))\n}\n";
    let (_, text) = check(&[], src);
    assert!(text.is_empty(), "{text}");
}

#[test]
fn submodule_lists_make_independent_layers_with_module_list_paths() {
    // Three scalings applied in order: y = x * a0 * a1 * a2 where the list's
    // members are independent parameters (their gradients differ).
    let src = r#"
use optim.sgd

model Scale(n: int) {
    a: f32[n] = ones()

    fn __call__(self, x) = x * self.a
}

model Chain(layers: int = 3) {
    blocks: [Scale(2); layers]

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        let h = x
        for i in 0..layers {
            h = self.blocks[i](h)
        }
        sum(h * self.blocks[-1].a)
    }

    fn configure_optimizers(self) = sgd(lr = 0.5)
}
"#;
    let (prog, mut diags) = compiler::lower::load("t.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    assert!(diags.is_empty(), "{}", compiler::diagnostic::render_all(&diags, &prog.sources, false));
    let x_ty = compiler::ir::Type::new(compiler::ir::DType::F32, &[1, 2]);
    let y_ty = compiler::ir::Type::new(compiler::ir::DType::I32, &[1]);
    let progs = compiler::lower::lower_training(&prog, None, &x_ty, &y_ty).unwrap_or_else(|d| panic!("{d:?}"));
    let paths: Vec<&str> = progs.params.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["blocks.0.a", "blocks.1.a", "blocks.2.a"]);
    // One SGD step from a = 1 on x = (1, 2): loss = sum(x * a0 * a1 * a2^2), so
    // dL/da0 = dL/da1 = x and dL/da2 = 2x; the new a is 1 - 0.5 * grad.
    use compiler::ir::Tensor;
    let mut inputs: Vec<Tensor> = (0..3).map(|_| Tensor::f32(&[2], vec![1.0, 1.0])).collect();
    inputs.push(Tensor::scalar_f32(1.0));
    inputs.push(Tensor::f32(&[1, 2], vec![1.0, 2.0]));
    inputs.push(Tensor::i32(&[1], vec![0]));
    let outs = compiler::ir::interp::run(&progs.train_step, &inputs);
    close(outs[0].as_f32().unwrap(), &[0.5, 0.0], "blocks.0.a");
    close(outs[1].as_f32().unwrap(), &[0.5, 0.0], "blocks.1.a");
    close(outs[2].as_f32().unwrap(), &[0.0, -1.0], "blocks.2.a");
    close(outs[3].as_f32().unwrap(), &[3.0], "loss");
}

#[test]
fn let_annotations_check_the_value_and_bind_new_dims() {
    let src = "fn f(x: f32[B, 4], w: f32[4, 3]) {\n    let h: f32[B, K] = x @ w\n    let g: f32[K, K] = transpose(h) @ h\n    g\n}\nfn main() {\n    print(f(reshape(linspace(1.0, 8.0, 8), (2, 4)), reshape(linspace(0.0, 1.1, 12), (4, 3))))\n}\n";
    let (_, text) = check(&[], src);
    assert!(text.is_empty(), "{text}");
    let out = run_main(src);
    assert_eq!(out[0].len(), 9, "K = 3: a 3 x 3 result");
    let (_, text) = check(&[], "fn f(x: f32[4]) {\n    let (a, b): f32[4] = (x, x)\n    a\n}\n");
    assert!(text.contains("a type annotation needs a single name"), "{text}");
}

#[test]
fn product_dims_in_types_are_solved_and_checked() {
    let src = "fn flat(x: f32[B, T, D]) -> f32[B * T, D] = reshape(x, (-1, size(x, 2)))\nfn unflat(y: f32[B * 3, D]) -> f32[B, 3, D] = reshape(y, (-1, 3, size(y, 1)))\nfn main() {\n    let x = reshape(linspace(1.0, 12.0, 12), (2, 3, 2))\n    let y: f32[6, 2] = flat(x)\n    let z: f32[N, 3, 2] = unflat(y)\n    print(z)\n}\n";
    let out = run_main(src);
    close(&out[0], &linspace(1.0, 12.0, 12), "unflat(flat(x)) == x");
    // Two unknown names in one product cannot be solved.
    let (_, text) = check(&[], "fn f(y: f32[B * T]) = y\nfn main() {\n    print(f(linspace(0.0, 1.0, 6)))\n}\n");
    assert!(text.contains("only one unknown name can be solved for in a product, found B, T"), "{text}");
}

/// A `flag: bool` parameter given a compile-time bool stays one (a static
/// argument, as in JAX): `if flag` selects code, where it failed before
/// with "an `if` condition must be known at compile time". `where(flag, a,
/// b)` still takes it (a scalar bool tensor there), and a bool tensor
/// argument is still a tensor.
#[test]
fn bool_parameters_given_compile_time_bools_select_code() {
    let src =
        "fn scale(x, double: bool = false) {\n    if double {\n        2.0 * x\n    } else {\n        x\n    }\n}\n\n\
               fn pick(a: f32[3], b: f32[3], first: bool) = where(first, a, b)\n\n\
               fn main() {\n    let a = [1.0, 2.0, 3.0]\n    let b = [4.0, 5.0, 6.0]\n\
               \x20   print(scale(a, double = true))\n    print(scale(a))\n    print(pick(a, b, true))\n\
               \x20   print(pick(a, b, false))\n    print(pick(a, b, a[1] > 1.5))\n    print(where(true, a, b))\n}\n";
    let out = run_main(src);
    let want: [&[f64]; 6] =
        [&[2.0, 4.0, 6.0], &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], &[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]];
    assert_eq!(out.len(), want.len(), "{out:?}");
    for (k, (got, want)) in out.iter().zip(want).enumerate() {
        close(got, want, &format!("print {k}"));
    }
    // A tensor condition in `if` is still an error, with its help.
    let bad = src.replace("scale(a, double = true)", "scale(a, double = a[0] > 0.0)");
    let (_, rendered) = check(&[], &bad);
    assert!(rendered.contains("must be known at compile time"), "{rendered}");
}

/// `scan` with a compile-time integer as the initial carry carries an i32
/// scalar (`scan(count, 0, xs)`); the golden `scan_integer_carry_errors.jl`
/// has the errors (beyond i32, an i32 carry meeting a float).
#[test]
fn scan_takes_an_integer_carry() {
    let src = "fn main() {\n    let (n, ys) = scan(fn(c, x) = (c + 1, x * float(c)), -1, [1.0, 2.0, 3.0])\n    \
               print(float(n), ys)\n}\n";
    let out = run_main(src);
    close(&out[0], &[2.0], "the count");
    close(&out[1], &[-1.0, 0.0, 3.0], "x times the incoming count");
}

/// `zeros(shape)`, `ones(shape)` and `full(shape, v)` are f32 tensors as in
/// NumPy (the shape an integer, a tuple or `shape(x)`); without a shape
/// they stay parameter initializers (`zeros()`, `full(v)`); the golden
/// `filled_tensor_errors.jl` has the misuses.
#[test]
fn zeros_ones_and_full_with_a_shape_are_tensors() {
    let src = "fn main() {\n    let x = reshape(float(arange(6)), (2, 3))\n    \
               print(zeros((2, 3)) + x, ones(4), full(shape(x), 0.5) * x, full(3, -1))\n}\n";
    let out = run_main(src);
    close(&out[0], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "zeros + x");
    close(&out[1], &[1.0; 4], "ones(4)");
    close(&out[2], &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5], "full(shape(x), 0.5) * x");
    close(&out[3], &[-1.0; 3], "full(3, -1)");
}

/// Array literals as NumPy's `np.array`: nested rows give a rank-N tensor
/// (one float anywhere makes it f32), an array of tensors stacks them, a
/// number among scalar tensors takes their dtype, and `-0.0` stays apart
/// from `0.0` (the constant is built from runs of bitwise-equal values).
#[test]
fn array_literals_nest_stack_and_promote_as_numpy() {
    let src = "
fn main() {
    let a = linspace(0.0, 1.0, 3)
    print(float([[1, 2], [3, 4]]), [[1.0, 2], [3, 4]], [a, a * 2.0], [sum(a), 1, 2.5])
    print(float([[[1, 2]], [[3, 4]]]), [2.0, 2.0, -0.0, 0.0, 2.0])
}";
    let (prog, diags) = compiler::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let script = compiler::compile_script(&prog, &compiler::Options { no_opt: true, ..Default::default() }).unwrap();
    let out = compiler::ir::interp::run(&script.func, &[]);
    let types: Vec<String> = out.iter().map(|t| t.ty().to_string()).collect();
    assert_eq!(types, ["f32[2, 2]", "f32[2, 2]", "f32[2, 3]", "f32[3]", "f32[2, 1, 2]", "f32[5]"]);
    let v: Vec<Vec<f64>> = out.iter().map(|t| t.to_f64_vec()).collect();
    assert_eq!(v[0], [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(v[1], [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(v[2], [0.0, 0.5, 1.0, 0.0, 1.0, 2.0]);
    assert_eq!(v[3], [1.5, 1.0, 2.5]);
    assert_eq!(v[4], [1.0, 2.0, 3.0, 4.0]);
    let signs: Vec<bool> = v[5].iter().map(|x| x.is_sign_negative()).collect();
    assert_eq!((v[5].clone(), signs), (vec![2.0, 2.0, 0.0, 0.0, 2.0], vec![false, false, true, false, false]));
    // An all-integer nested literal is i32.
    let (prog, _) = compiler::lower::load("t.jl", "fn main() {\n    print([[1, 2], [3, 4]])\n}");
    let script = compiler::compile_script(&prog, &compiler::Options::default()).unwrap();
    assert_eq!(compiler::ir::interp::run(&script.func, &[])[0].ty().to_string(), "i32[2, 2]");
}

/// `take(x, idx, axis)` (NumPy's `take`) against a loop written here, on
/// every axis of a rank-3 tensor and with a negative axis (indices out of
/// range clamp), and its gradient: each element of x gets the cotangents of
/// the outputs that picked it.
#[test]
fn take_along_any_axis_matches_a_loop_and_differentiates() {
    let dims = [2usize, 3, 4];
    let x: Vec<f64> = (0..24).map(|v| v as f64 * 0.5 - 3.0).collect();
    // Indices [2, 3], from -1 to 4 (out of range at both ends on every axis).
    let idx: Vec<i64> = vec![2, -1, 0, 4, 1, 3];
    for (axis, written) in [(0, "0"), (1, "1"), (2, "2"), (2, "-1")] {
        let mut out_dims: Vec<usize> = dims[..axis].to_vec();
        out_dims.extend([2, 3]);
        out_dims.extend(&dims[axis + 1..]);
        let n: usize = out_dims.iter().product();
        let shape = out_dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
        let src = format!(
            "fn main() {{
    let x = reshape(linspace(-3.0, 8.5, 24), (2, 3, 4))
    let idx = reshape([2, -1, 0, 4, 1, 3], (2, 3))
    let w = reshape(linspace(1.0, 2.0, {n}), ({shape}))
    print(take(x, idx, axis = {written}), grad(fn(x) = sum(take(x, idx, {written}) * w))(x))
}}"
        );
        let out = run_main(&src);
        let w: Vec<f64> = (0..n).map(|k| 1.0 + k as f64 / (n - 1) as f64).collect();
        let mut want = vec![0.0; n];
        let mut grad = vec![0.0; 24];
        // Output index (pre.., i, j, post..) reads x at (pre.., idx[i, j], post..).
        let (pre, post): (usize, usize) = (dims[..axis].iter().product(), dims[axis + 1..].iter().product());
        for p in 0..pre {
            for (q, &at) in idx.iter().enumerate() {
                let at = at.clamp(0, dims[axis] as i64 - 1) as usize;
                for s in 0..post {
                    let o = (p * idx.len() + q) * post + s;
                    let src = (p * dims[axis] + at) * post + s;
                    want[o] = x[src];
                    grad[src] += w[o];
                }
            }
        }
        close(&out[0], &want, &format!("values, axis {written}"));
        close(&out[1], &grad, &format!("gradient, axis {written}"));
    }
}

/// `take_along_axis(x, idx, axis)` against a loop written here, on every
/// axis of a rank-3 tensor (indices out of range clamp), and its gradient:
/// each element of x gets the cotangents of the outputs that picked it.
#[test]
fn take_along_axis_matches_a_loop_on_every_axis_and_differentiates() {
    let dims = [2usize, 3, 4];
    let x: Vec<f64> = (0..24).map(|v| v as f64 * 0.5 - 3.0).collect();
    for axis in 0..3 {
        let mut idims = dims;
        idims[axis] = 5;
        let n: usize = idims.iter().product();
        // Indices from -1 to dims[axis] (both ends out of range).
        let idx: Vec<i64> = (0..n).map(|k| (k as i64 * 7 % (dims[axis] as i64 + 2)) - 1).collect();
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let idx_text = list(&idx.iter().map(|v| v.to_string()).collect::<Vec<_>>());
        let src = format!(
            "fn main() {{
    let x = reshape(linspace(-3.0, 8.5, 24), (2, 3, 4))
    let idx = reshape({idx_text}, ({}, {}, {}))
    let w = reshape(linspace(1.0, 2.0, {n}), ({}, {}, {}))
    print(take_along_axis(x, idx, axis = {axis}), grad(fn(x) = sum(take_along_axis(x, idx, axis = {axis}) * w))(x))
}}",
            idims[0], idims[1], idims[2], idims[0], idims[1], idims[2]
        );
        let out = run_main(&src);
        let w: Vec<f64> = (0..n).map(|k| 1.0 + k as f64 / (n - 1) as f64).collect();
        let mut want = vec![0.0; n];
        let mut grad = vec![0.0; 24];
        for i in 0..idims[0] {
            for j in 0..idims[1] {
                for k in 0..idims[2] {
                    let o = (i * idims[1] + j) * idims[2] + k;
                    let mut at = [i, j, k];
                    at[axis] = idx[o].clamp(0, dims[axis] as i64 - 1) as usize;
                    let src = (at[0] * dims[1] + at[1]) * dims[2] + at[2];
                    want[o] = x[src];
                    grad[src] += w[o];
                }
            }
        }
        close(&out[0], &want, &format!("values, axis {axis}"));
        close(&out[1], &grad, &format!("gradient, axis {axis}"));
    }
}

/// `int` parameters and compile-time ints (`size`) in tensor arithmetic,
/// and `if` on an `int` parameter feeding `concat`, `stack` and a shape:
/// checked alone (the int symbolic) they were rejected; each call decides.
#[test]
fn int_parameters_work_in_arithmetic_and_compile_time_branches() {
    let src = "fn g(x: f32[N], k: int = 2) = x * k\n\
               fn q(x: f32[N]) = x * size(x, 0)\n\
               fn f0(x: f32[3], k: int = 2) -> f32[4] = concat((x, if k == 2 { x[0:1] } else { x[1:2] }), axis = 0)\n\
               fn f1(x: f32[3], k: int = 2) = stack((x, if k == 2 { x } else { -x }))\n\
               fn f2(x: f32[3], k: int = 2) {\n    \
                   let v = if k == 2 { reshape(x, (1, 3)) } else { reshape(-x, (3, 1)) }\n    \
                   zeros((2, size(v, 1))) + 1.0\n}\n\
               fn main() {\n    \
                   let x = linspace(0.0, 1.0, 3)\n    \
                   print(g(x), g(x, k = 3), q(x), f0(x), f0(x, 3), f1(x, 3), f2(x), f2(x, 1))\n}\n";
    let out = run_main(src);
    close(&out[0], &[0.0, 1.0, 2.0], "x * k, k = 2");
    close(&out[1], &[0.0, 1.5, 3.0], "x * k, k = 3");
    close(&out[2], &[0.0, 1.5, 3.0], "x * size(x, 0)");
    close(&out[3], &[0.0, 0.5, 1.0, 0.0], "concat, k = 2");
    close(&out[4], &[0.0, 0.5, 1.0, 0.5], "concat, k = 3");
    close(&out[5], &[0.0, 0.5, 1.0, -0.0, -0.5, -1.0], "stack, k = 3");
    close(&out[6], &[1.0; 6], "zeros((2, 3)), k = 2");
    close(&out[7], &[1.0; 2], "zeros((2, 1)), k = 1");
}

/// `f32(x)` and `f64(x)` convert (a compile-time number to a scalar
/// tensor), and a gradient flows through them: d/dx sum(f64(x)^3) = 3x^2,
/// computed in f64 and converted back.
#[test]
fn f32_and_f64_convert_and_differentiate() {
    let out = run_main(
        "fn cube_sum(x: f32[N]) -> f32 = f32(sum(f64(x) * f64(x) * f64(x)))\n\n\
         fn main() {\n\
         \x20   let x = linspace(0.0, 1.0, 5)\n\
         \x20   print(grad(cube_sum)(x), f32(f64(1.0) / 3.0), f32(f64(x) * 2))\n\
         }\n",
    );
    close(&out[0], &linspace(0.0, 1.0, 5).iter().map(|x| 3.0 * x * x).collect::<Vec<_>>(), "3x^2");
    assert_eq!(out[1], [(1.0f64 / 3.0) as f32], "1/3 in f64, rounded once");
    close(&out[2], &linspace(0.0, 2.0, 5), "f64(x) * 2");
    // Dtypes do not mix: an f64 tensor meets an f32 one only through a conversion.
    let (diags, rendered) = check(&[], "fn main() {\n    print(f64(1.0) + linspace(0.0, 1.0, 2))\n}\n");
    assert_eq!(diags.len(), 1, "{rendered}");
}

/// `linspace` ends at `end` exactly (NumPy and JAX do): `start + (n - 1) *
/// step` in f32 misses it by an ulp for these (0.70000005, 2.8999999, 0.90000004).
#[test]
fn linspace_ends_exactly_at_end() {
    let cases = [(0.1, 0.7, 7), (-1.3, 2.9, 11), (0.3, 0.9, 3), (0.0, 1.0, 49)];
    let prints: Vec<String> = cases.iter().map(|(a, b, n)| format!("linspace({a:?}, {b:?}, {n})")).collect();
    let out = run_main(&format!("fn main() {{\n    print({})\n}}\n", prints.join(", ")));
    for ((a, b, n), got) in cases.iter().zip(&out) {
        assert_eq!(got[0], *a as f32, "linspace({a}, {b}, {n}) starts at start");
        assert_eq!(got[n - 1], *b as f32, "linspace({a}, {b}, {n}) ends at end: {got:?}");
        close(got, &linspace(*a, *b, *n), "linspace");
    }
}

/// `print` shows tuples as Python does: `(a, b)`, nested, `(a,)`.
#[test]
fn print_shows_tuples() {
    let dir = crate::examples::tempdir("print-tuples");
    let file = dir.join("t.jl");
    std::fs::write(
        &file,
        "fn f(x) = sum(x * x)\n\nfn main() {\n    let x = linspace(0.0, 1.0, 3)\n    \
         print(jvp(f, (x,), (x,)), (1, (2.5, x)), (true,))\n}\n",
    )
    .unwrap();
    let (code, out, err) = crate::evaluate::jlc_out(&["run", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), "(1.250000, 2.500000) (1, (2.5, [0.000000, 0.500000, 1.000000])) (true,)");
}

/// A scan step may give a number as its `y` (as its initial carry may):
/// an f32 scalar per step.
#[test]
fn scan_takes_numbers_as_per_step_outputs() {
    let out = run_main(
        "fn main() {\n\
         \x20   let (total, ys) = scan(fn(c, x) = (c + x, 0.5), 0.0, linspace(0.0, 1.0, 4))\n\
         \x20   print(total, ys)\n\
         }\n",
    );
    close(&out[0], &[2.0], "the carry");
    close(&out[1], &[0.5; 4], "a 0.5 per step");
}

/// `floor`, `ceil`, `round` (ties to even) and `i32` (truncating toward
/// zero) as NumPy's `floor`, `ceil`, `round` and `astype(np.int32)`, on
/// tensors and compile-time numbers (`i32` of one is a compile-time
/// integer, so it can size a tensor); no gradient flows through a
/// rounding, so d/dv sum(floor(v) * v) is floor(v).
#[test]
fn roundings_and_i32_follow_numpy() {
    let src = "fn main() {\n    let x = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.7, -2.7]\n\
               \x20   print(floor(x), ceil(x), round(x), float(i32(x)))\n\
               \x20   let n = i32(sqrt(float(17)))\n\
               \x20   print(zeros(n) + 1.0, f32(round(2.5) + floor(-0.5) + ceil(0.1)))\n\
               \x20   print(grad(fn(v) = sum(floor(v) * v))(x))\n}\n";
    let out = run_main(src);
    close(&out[0], &[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.0, -3.0], "floor");
    close(&out[1], &[-2.0, -1.0, -0.0, 1.0, 2.0, 3.0, 3.0, -2.0], "ceil");
    close(&out[2], &[-2.0, -2.0, -0.0, 0.0, 2.0, 2.0, 3.0, -3.0], "round");
    close(&out[3], &[-2.0, -1.0, 0.0, 0.0, 1.0, 2.0, 2.0, -2.0], "i32");
    close(&out[4], &[1.0; 4], "zeros(i32(sqrt(17.0)))");
    close(&out[5], &[2.0], "round(2.5) + floor(-0.5) + ceil(0.1)");
    close(&out[6], &[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 2.0, -3.0], "grad of sum(floor(v) * v)");
    assert!(out[2][2].is_sign_negative(), "round(-0.5) is -0.0, as NumPy's");
}

/// `var` and `std` as NumPy's (all axes by default, `ddof`): on values
/// offset by 1e4, where a one-pass E[x^2] - E[x]^2 in f32 would lose every
/// digit; the gradient of `std` is (x - mean) / (n std), written out here.
#[test]
fn var_and_std_follow_numpy_and_differentiate() {
    let src = "fn main() {\n    let x = reshape(linspace(0.0, 5.0, 6), (2, 3)) + 1e4\n\
               \x20   print(var(x), std(x), var(x, axis = 0), var(x, axis = -1, keepdims = true, ddof = 1))\n\
               \x20   print(std(x, ddof = 1), grad(fn(v) = std(v))(x[0]), var(x[0:1, 0:1], ddof = 1))\n}\n";
    let out = run_main(src);
    close(&out[0], &[17.5 / 6.0], "var");
    close(&out[1], &[(17.5f64 / 6.0).sqrt()], "std");
    close(&out[2], &[2.25; 3], "var over axis 0");
    close(&out[3], &[1.0, 1.0], "var over the last axis, ddof = 1, keepdims");
    close(&out[4], &[3.5f64.sqrt()], "std, ddof = 1");
    let s = (2.0f64 / 3.0).sqrt();
    close(&out[5], &[-1.0 / (3.0 * s), 0.0, 1.0 / (3.0 * s)], "grad of std");
    assert!(out[6][0].is_nan(), "one element with ddof = 1 has no degrees of freedom: NaN, as NumPy's");
}

/// `cumsum`, `cummax` and `cummin` (flattened without `axis`, along an
/// axis, reversed) and their gradients, on the interpreter and on the
/// Cranelift backend. The wanted numbers are `jnp.cumsum`, `lax.cummax`,
/// `lax.cummin` and `jax.grad` of them (JAX 0.10.2, run on this input),
/// each also derivable by hand: a running sum's gradient at `j` is the sum
/// of the weights of outputs `j..`; a running maximum's goes to the element
/// that is the maximum, once per output it reaches.
#[test]
fn cumulative_sums_and_extrema_match_jax_on_both_backends() {
    let src = "fn main() {\n    let x = reshape([1.0, -2.0, 3.0, 0.5, 4.0, -1.0], (2, 3))\n\
               \x20   print(cumsum(x), cumsum(x, axis = 1), cumsum(x, axis = 0, reverse = true))\n\
               \x20   print(cummax(x, axis = -1), cummin(x, axis = 1, reverse = true))\n\
               \x20   print(grad(fn(v) = sum(cumsum(v, axis = 1) * [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))(x))\n\
               \x20   print(grad(fn(v) = sum(cummax(v, axis = 1)))(x), vmap(fn(r) = cumsum(r))(x))\n}\n";
    let want: [&[f64]; 8] = [
        &[1.0, -1.0, 2.0, 2.5, 6.5, 5.5],
        &[1.0, -1.0, 2.0, 0.5, 4.5, 3.5],
        &[1.5, 2.0, 2.0, 0.5, 4.0, -1.0],
        &[1.0, 1.0, 3.0, 0.5, 4.0, 4.0],
        &[-2.0, -2.0, 3.0, -1.0, -1.0, -1.0],
        &[6.0, 5.0, 3.0, 15.0, 11.0, 6.0],
        &[2.0, 0.0, 1.0, 1.0, 2.0, 0.0],
        &[1.0, -1.0, 2.0, 0.5, 4.5, 3.5],
    ];
    let interp = run_main(src);
    let (prog, _) = compiler::lower::load("t.jl", src);
    let script = compiler::compile_script(&prog, &compiler::Options::default()).unwrap();
    let mut exe = runtime::Executable::compile(script.func, runtime::Backend::Cpu).unwrap();
    let jit: Vec<Vec<f32>> = exe.run(&[]).unwrap().iter().map(|t| t.as_f32().unwrap().to_vec()).collect();
    for (k, w) in want.iter().enumerate() {
        close(&interp[k], w, &format!("output {k} (interpreter)"));
        close(&jit[k], w, &format!("output {k} (Cranelift)"));
    }
}

/// `math.fori_loop` (jax.lax.fori_loop) as one scan: the values and the
/// gradient through it are JAX's (JAX 0.10.2 on the same input), an empty
/// range returns the initial carry.
#[test]
fn fori_loop_matches_jax_and_differentiates() {
    let src = "use math.fori_loop\n\nfn main() {\n    let x = linspace(0.0, 1.0, 3)\n\
               \x20   print(fori_loop(0, 4, fn(i, c) = c * 2.0 + float(i), x), fori_loop(2, 2, fn(i, c) = c + 1.0, x))\n\
               \x20   print(grad(fn(v) = sum(fori_loop(0, 3, fn(i, c) = sin(c) * v, v)))(x))\n}\n";
    let out = run_main(src);
    close(&out[0], &[11.0, 19.0, 27.0], "fori_loop values");
    close(&out[1], &[0.0, 0.5, 1.0], "an empty range");
    close(&out[2], &[0.0, 0.45773047, 1.9026695], "gradient through fori_loop");
}

/// `math.while_loop` (jax.lax.while_loop with a bound): Newton's method for
/// square roots until the step is below 1e-6, against f64 `sqrt`, and its
/// gradient against 1 / (2 sqrt a); Collatz step counts (a tuple carry of
/// integers) against a loop here; a condition that never fails stops at
/// the bound.
#[test]
fn while_loop_runs_until_its_condition_fails_and_differentiates() {
    let src = "use math.while_loop\n\n\
               fn newton_sqrt(a: f32[3]) -> f32[3] {\n\
               \x20   let (x, _) = while_loop(fn(c) = max(abs(c[1])) > 1e-6, fn(c) = (c[0] - (c[0] * c[0] - a) / (2.0 * c[0]), (c[0] * c[0] - a) / (2.0 * c[0])), (a, ones(3)), 40)\n\
               \x20   x\n}\n\n\
               fn collatz(n) {\n\
               \x20   let (steps, _) = while_loop(fn(c) = c[1] != 1, fn(c) = (c[0] + 1, where(c[1] - c[1] / 2 * 2 == 0, c[1] / 2, 3 * c[1] + 1)), (0, n), 200)\n\
               \x20   float(steps)\n}\n\n\
               fn main() {\n\
               \x20   let a = f32([2.0, 9.0, 0.5])\n\
               \x20   print(newton_sqrt(a), grad(fn(v) = sum(newton_sqrt(v)))(a))\n\
               \x20   print(collatz(27), collatz(7), collatz(1), while_loop(fn(c) = c > -1.0, fn(c) = c + 1.0, 0.0, 5))\n}\n";
    let out = run_main(src);
    let a = [2.0f64, 9.0, 0.5];
    close(&out[0], &a.map(f64::sqrt), "Newton's square roots");
    close(&out[1], &a.map(|v| 0.5 / v.sqrt()), "their gradient");
    let collatz = |mut n: u64| {
        let mut steps = 0;
        while n != 1 {
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
            steps += 1;
        }
        steps as f64
    };
    for (k, n) in [27, 7, 1].into_iter().enumerate() {
        close(&out[2 + k], &[collatz(n)], &format!("Collatz steps of {n}"));
    }
    close(&out[5], &[5.0], "a condition that never fails stops at the bound");
}

/// `vmap(..., out_axes = ...)`: where the examples go in each output, one
/// axis for all or one per element of a tuple output, negative from the
/// end; composed with `jvp`. The wanted numbers are `jax.vmap`'s (JAX
/// 0.10.2, same inputs), each also readable off the definition.
#[test]
fn vmap_out_axes_place_the_examples_as_jax() {
    let src = "fn f(x: f32[3]) = (x * 2.0, sum(x))\n\nfn main() {\n\
               \x20   let xs = reshape(linspace(0.0, 5.0, 6), (2, 3))\n\
               \x20   print(vmap(fn(r) = r * 2.0, out_axes = 1)(xs), vmap(fn(r) = r + 1.0, out_axes = -1)(xs))\n\
               \x20   let (a, b) = vmap(f, out_axes = (1, 0))(xs)\n\
               \x20   print(a, b, vmap(fn(r) = reshape(r, (3, 1)) * r, out_axes = 2)(xs)[0])\n\
               \x20   print(jvp(vmap(fn(r) = r * r, out_axes = 1), (xs,), (xs,)))\n}\n";
    let out = run_main(src);
    close(&out[0], &[0.0, 6.0, 2.0, 8.0, 4.0, 10.0], "out_axes = 1");
    close(&out[1], &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0], "out_axes = -1");
    close(&out[2], &[0.0, 6.0, 2.0, 8.0, 4.0, 10.0], "a tuple's first output at axis 1");
    close(&out[3], &[3.0, 12.0], "its second at axis 0");
    close(&out[4], &[0.0, 9.0, 0.0, 12.0, 0.0, 15.0], "out_axes = 2 of a matrix output, row 0");
    close(&out[5], &[0.0, 9.0, 1.0, 16.0, 4.0, 25.0], "jvp of vmap with out_axes: value");
    close(&out[6], &[0.0, 18.0, 2.0, 32.0, 8.0, 50.0], "jvp of vmap with out_axes: tangent");
}

/// Python's rules for argument and parameter lists, everywhere they are
/// written: calls (also in code never run), a submodule's arguments, the
/// trainer's `model = ...`, and parameter names.
#[test]
fn positional_after_keyword_and_repeated_parameters_are_errors_wherever_written() {
    let cases = [
        "fn f(a, b = 2.0) = a * 10.0 + b\nfn main() {\n    print(f(a = 1.0, 3.0))\n}\n",
        "fn f(a, b = 2.0) = a * 10.0 + b\nfn unused(x) = f(a = x, 3.0)\nfn main() {\n    print(1.0)\n}\n",
        "use nn.Linear\nmodel Net {\n    l: Linear(fan_in = 4, 8)\n}\n",
        "model Net(h: int = 4, k: int = 2) {\n    w: f32[h, k]\n}\ntrainer {\n    model = Net(h = 2, 6)\n}\n",
    ];
    for src in cases {
        let (diags, _) = check(&[], src);
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages, ["a positional argument follows a keyword argument"], "{src}");
    }
    for src in ["fn f(a, a) = a\n", "fn main() {\n    let g = fn(x, x) = x\n}\n", "model Net(h: int, h: int) {\n}\n"] {
        let (diags, _) = check(&[], src);
        assert!(diags.iter().any(|d| d.message.contains("is declared twice")), "{src}: {diags:?}");
    }
}
