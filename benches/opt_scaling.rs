//! Benchmark: how the e-graph optimizer's time grows with program size.
//!
//! Consumes generated programs of about 1k, 4k, 10k and 30k instructions of
//! three kinds: `deep` (the training step of a ReLU network with one shared
//! 16x16 layer applied K times: forward, autodiff, SGD; a gradient graph
//! with a long shared spine), `loop` (a script's unrolled `for` loop, the
//! case that once took 40 s at 30k instructions) and `random` (ir::generate's
//! random programs, every op). Produces a table on stdout: instructions
//! before and after, the e-graph's size, iterations and stop reason, and
//! the time of each phase (build the e-graph, run the rules, extract).
//!
//! Run: `cargo bench --bench opt_scaling [-- deep|loop|random ...] [--sizes 1000,4000]`.
//! Not a test: nothing here asserts speed.

use compiler::diagnostic::Diagnostic;
use compiler::ir::{self, DType, Func, Type};
use compiler::lower;
use compiler::opt::{self, Options};
use std::time::Instant;

fn deep_src(layers: usize) -> String {
    format!(
        r#"
use nn.relu
use optim.sgd

model Deep {{
    w: f32[16, 16] = uniform(-0.25, 0.25)
    b: f32[16] = uniform(-0.25, 0.25)

    fn training_step(self, x: f32[B, 16], y: i32[B]) -> f32 {{
        let h = x
        for i in 0..{layers} {{
            h = relu(h @ self.w + self.b)
        }}
        mean(h * h)
    }}

    fn configure_optimizers(self) = sgd(lr = 0.01)
}}

trainer {{ seed = 0 }}
"#
    )
}

fn loop_src(steps: usize) -> String {
    format!(
        r#"
fn main() {{
    let x = linspace(0.0, 1.0, 64)
    let acc = x
    for i in 0..{steps} {{
        acc = tanh(acc * 0.5 + x * i) - acc / 4.0
    }}
    print(sum(acc))
}}
"#
    )
}

fn die(prog: &lower::Program, diags: &[Diagnostic]) -> ! {
    panic!("{}", compiler::diagnostic::render_all(diags, &prog.sources, false))
}

fn deep(layers: usize) -> Func {
    let (prog, mut diags) = lower::load("deep.jl", &deep_src(layers));
    diags.extend(lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        die(&prog, &diags);
    }
    let sections = lower::training_sections(&prog).unwrap_or_else(|d| die(&prog, &d));
    let (x, y) = (Type::new(DType::F32, &[8, 16]), Type::new(DType::I32, &[8]));
    lower::lower_training(&prog, sections.trainer.as_ref(), &x, &y).unwrap_or_else(|d| die(&prog, &d)).train_step
}

fn unrolled(steps: usize) -> Func {
    let (prog, mut diags) = lower::load("loop.jl", &loop_src(steps));
    diags.extend(lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        die(&prog, &diags);
    }
    lower::lower_main(&prog).unwrap_or_else(|d| die(&prog, &d)).func
}

fn random(steps: usize) -> Func {
    let opts = ir::generate::GenOptions { min_steps: steps, max_steps: steps, ..Default::default() };
    ir::generate::random_func(0x5CA1E, &opts)
}

/// The kind's program with about `target` instructions: grows the size
/// parameter from a probe's instructions per unit.
fn program(kind: &str, target: usize) -> Func {
    let make = |n: usize| match kind {
        "deep" => deep(n),
        "loop" => unrolled(n),
        "random" => random(n),
        other => panic!("unknown kind `{other}` (expected deep, loop, random)"),
    };
    let probe = make(20).insts.len().max(1);
    let per_unit = probe as f64 / 20.0;
    make(((target as f64 / per_unit).round() as usize).max(1))
}

fn main() {
    let mut kinds: Vec<String> = vec![];
    let mut sizes = vec![1_000, 4_000, 10_000, 30_000];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--sizes" => {
                let list = args.next().expect("--sizes N,N,...");
                sizes = list.split(',').map(|s| s.parse().expect("a size")).collect();
            }
            k => kinds.push(k.to_string()),
        }
    }
    if kinds.is_empty() {
        kinds = vec!["deep".into(), "loop".into(), "random".into()];
    }
    println!(
        "{:<7} {:>7} {:>7} {:>8} {:>8} {:>5} {:<18} {:>8} {:>8} {:>8} {:>8}  extraction",
        "kind", "insts", "after", "e-nodes", "classes", "iters", "stop", "build_s", "run_s", "extr_s", "total_s"
    );
    for kind in &kinds {
        for &size in &sizes {
            let func = program(kind, size);
            let start = Instant::now();
            let (opt, report, t) = opt::optimize_timed(&func, &Options::default());
            let total = start.elapsed().as_secs_f64();
            ir::verify::assert_valid(&opt, "opt::optimize");
            println!(
                "{:<7} {:>7} {:>7} {:>8} {:>8} {:>5} {:<18} {:>8.3} {:>8.3} {:>8.3} {:>8.3}  {}",
                kind,
                report.nodes_before,
                report.nodes_after,
                report.egraph_nodes,
                report.egraph_classes,
                report.iterations,
                report.stop_reason,
                t.build,
                t.run,
                t.extract,
                total,
                report.extraction
            );
        }
    }
}
