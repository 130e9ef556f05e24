//! Benchmark: how long `jlc check` takes on a large model file.
//!
//! Consumes a generated model file of at least 2,000 lines: a template of
//! realistic items (constants, annotated and generic functions, `grad`,
//! `vmap` of `grad`, models built from stdlib layers with training steps
//! that log metrics) repeated with fresh names. Produces the file's size
//! and the median and minimum time of `jaxlightning::check_source` (load,
//! lex, parse, check; the library call behind `jlc check`) over the runs,
//! after a warm-up. Acceptance in issue #3: median under 50 ms.
//!
//! Run: `cargo bench --bench check [-- [--lines N] [--runs N] [--print]]`
//! (`--print` writes the generated file to stdout instead of timing it).
//! Not a test: nothing here asserts speed.

use std::time::{Duration, Instant};

const HEADER: &str = "use nn.{Linear, relu, sigmoid}\nuse losses.cross_entropy\nuse metrics.accuracy\nuse optim.adam\n";

/// One block of the file; `{k}` becomes the block's number.
const BLOCK: &str = r#"
const H{k} = {h}

# A generic activation: checked at each call.
fn act{k}(x) = relu(x) * 0.5 + sigmoid(x) * 0.5

fn score{k}(x: f32[B, 32], w: f32[32, H{k}]) -> f32[B, H{k}] {
    let h = x @ w
    let m = max(h, axis = 1, keepdims = true)
    act{k}(h - m)
}

fn loss{k}(w: f32[32, H{k}], x: f32[B, 32], y: f32[B, H{k}]) -> f32 {
    let d = score{k}(x, w) - y
    mean(d * d)
}

fn step{k}(w: f32[32, H{k}], x: f32[B, 32], y: f32[B, H{k}]) -> f32[32, H{k}] {
    let g = grad(loss{k})(w, x, y)
    w - 0.01 * g
}

fn per_example{k}(w: f32[32, H{k}], x: f32[B, 32], y: f32[B, H{k}]) {
    let g = vmap(grad(fn(v, xi, yi) = sum((xi @ v - yi) ^ 2)), in_axes = (None, 0, 0))(w, x, y)
    sqrt(sum(g * g, axis = (1, 2)))
}

model Block{k}(hidden: int = {hidden}) {
    l1: Linear(32, hidden)
    l2: Linear(hidden, hidden)
    head: Linear(hidden, 10)

    fn forward(self, x: f32[B, 32]) -> f32[B, 10] {
        let h = relu(self.l1(x))
        let h = h + relu(self.l2(h))
        self.head(h)
    }

    fn training_step(self, x: f32[B, 32], y: i32[B]) -> f32 {
        let logits = self(x)
        let loss = cross_entropy(logits, y)
        log("train_acc", accuracy(logits, y), prog_bar = true)
        loss
    }

    fn validation_step(self, x: f32[B, 32], y: i32[B]) {
        let logits = self(x)
        log("val_loss", cross_entropy(logits, y))
        log("val_acc", accuracy(logits, y))
    }

    fn configure_optimizers(self) = adam(lr = 1e-3)
}
"#;

/// A model file of at least `min_lines` lines.
fn model_file(min_lines: usize) -> String {
    let mut text = HEADER.to_string();
    let mut k = 0;
    while text.lines().count() < min_lines {
        let block = BLOCK
            .replace("{k}", &k.to_string())
            .replace("{h}", &(8 + k % 9).to_string())
            .replace("{hidden}", &(16 + 8 * (k % 5)).to_string());
        text.push_str(&block);
        k += 1;
    }
    text
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (min_lines, runs) = (value("--lines", 2000), value("--runs", 30).max(3));
    let text = model_file(min_lines);
    if args.iter().any(|a| a == "--print") {
        print!("{text}");
        return;
    }
    // The file must check cleanly, or the timing would measure an early exit.
    let (diags, sources) = jaxlightning::check_source("bench.jl", &text);
    if !diags.is_empty() {
        eprint!("{}", compiler::diagnostic::render_all(&diags, &sources, false));
        panic!("the generated file does not check cleanly");
    }
    for _ in 0..2 {
        jaxlightning::check_source("bench.jl", &text);
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let (diags, _) = jaxlightning::check_source("bench.jl", &text);
            let took = start.elapsed();
            assert!(diags.is_empty());
            took
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "check: {} lines, {} bytes: median {:.2} ms, min {:.2} ms over {runs} runs",
        text.lines().count(),
        text.len(),
        ms(times[runs / 2]),
        ms(times[0]),
    );
}
