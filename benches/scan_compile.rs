//! Benchmark: compile time of a `scan` against its number of steps (issue
//! #4's bar: a 1,000-step scan compiles within 2x of a 10-step one), next
//! to the same recurrence written as an unrolled `for` loop.
//!
//! Consumes generated scripts: the value and gradient (w.r.t. `w`, `u`) of
//! an RNN loss `h = tanh(W h + U x)` over `T` steps, 16 hidden units, 8
//! inputs, written with `scan` or with `for`. Produces a table on stdout:
//! per variant and `T`, the IR size (instructions, scan bodies included),
//! the median and minimum time of the whole compile (load + check + lower +
//! autodiff + e-graph optimizer + Cranelift) over `--runs`, and one run's
//! time of the compiled program on the CPU backend.
//!
//! Run: `cargo bench --profile dev --bench scan_compile [-- --steps 10,1000 --runs 5 --no-unrolled]`.
//! Not a test: nothing here asserts speed.

use compiler::ir::{Func, Op};
use std::time::{Duration, Instant};

fn script(steps: usize, unrolled: bool) -> String {
    let body = if unrolled {
        format!(
            "    let h = w[0] * 0.0
    let s = 0.0
    for i in 0..{steps} {{
        s = s + sum(h)
        h = tanh(w @ h + u @ xs[i])
    }}
    s + sum(h * h)"
        )
    } else {
        "    let (h, hs) = scan(fn(c, x) = (tanh(w @ c + u @ x), c), w[0] * 0.0, xs)
    sum(hs) + sum(h * h)"
            .to_string()
    };
    format!(
        "fn loss(w: f32[16, 16], u: f32[16, 8], xs: f32[T, 8]) -> f32 {{
{body}
}}

fn main() {{
    let w = reshape(linspace(-0.1, 0.1, 256), (16, 16))
    let u = reshape(linspace(0.1, -0.1, 128), (16, 8))
    let xs = reshape(linspace(-1.0, 1.0, {n}), ({steps}, 8))
    let (l, (gw, gu)) = value_and_grad(loss, wrt = (w, u))(w, u, xs)
    print(l, gw, gu)
}}
",
        n = steps * 8
    )
}

/// Instructions, scan bodies included.
fn size(f: &Func) -> usize {
    f.insts
        .iter()
        .map(|inst| match &inst.op {
            Op::Scan(s) => 1 + size(&s.body),
            _ => 1,
        })
        .sum()
}

/// One whole compile: source text to machine code.
fn compile(src: &str) -> (Func, compiler::codegen::cpu::CpuFunc) {
    let (prog, mut diags) = compiler::lower::load("bench.jl", src);
    diags.extend(compiler::lower::check_program(&prog));
    assert!(diags.iter().all(|d| !d.is_error()), "{diags:?}");
    let script = compiler::compile_script(&prog, &compiler::Options::default()).expect("compiles");
    let cpu = compiler::codegen::cpu::compile(&script.func).expect("codegen");
    (script.func, cpu)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let steps: Vec<usize> = value("--steps")
        .map(|s| s.split(',').map(|n| n.parse().expect("--steps N,M")).collect())
        .unwrap_or_else(|| vec![10, 100, 1000]);
    let runs: usize = value("--runs").map_or(5, |r| r.parse().expect("--runs N"));
    let unrolled = !args.iter().any(|a| a == "--no-unrolled");
    println!("{:<9} {:>6} {:>7} {:>12} {:>12} {:>10}", "variant", "T", "insts", "compile_med", "compile_min", "run_ms");
    let mut medians = Vec::new();
    for variant in ["scan", "unrolled"] {
        if variant == "unrolled" && !unrolled {
            continue;
        }
        for &t in &steps {
            let src = script(t, variant == "unrolled");
            let mut times = Vec::new();
            let mut last = None;
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                let compiled = compile(&src);
                times.push(start.elapsed());
                last = Some(compiled);
            }
            times.sort();
            let (func, mut cpu) = last.expect("at least one run");
            let start = Instant::now();
            let out = cpu.run(&[]);
            let run = start.elapsed();
            assert!(out.iter().all(|t| t.to_f64_vec().iter().all(|v| v.is_finite())));
            let med = times[times.len() / 2];
            println!(
                "{variant:<9} {t:>6} {:>7} {:>10.1}ms {:>10.1}ms {:>10.3}",
                size(&func),
                ms(med),
                ms(times[0]),
                ms(run)
            );
            medians.push((variant, t, med));
        }
    }
    let med = |v: &str, t: usize| medians.iter().find(|m| m.0 == v && m.1 == t).map(|m| m.2);
    if let (Some(&lo), Some(&hi)) = (steps.iter().min(), steps.iter().max()) {
        for v in ["scan", "unrolled"] {
            if let (Some(a), Some(b)) = (med(v, lo), med(v, hi)) {
                println!("{v}: compile({hi} steps) / compile({lo} steps) = {:.2}x", b.as_secs_f64() / a.as_secs_f64());
            }
        }
    }
}
