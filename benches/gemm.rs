//! Benchmark: our matmul calls against the bare `gemm` crate on the same
//! shapes (issue #5: GEMM calls reach >= 90% of the bare crate's
//! throughput).
//!
//! Consumes nothing; prints one row per shape: GFLOP/s of our call (an
//! `Executable` compiled from `matmul(a, b)`, or `matmul(transpose(a), b)`
//! for weight-gradient shapes, on the CPU backend, inputs held as the
//! trainer holds them, the output returned as a fresh tensor) and of one
//! `gemm::gemm` call into a preallocated buffer, interleaved round by round,
//! medians over the rounds, and their ratio.
//!
//! Run: `cargo bench --bench gemm [-- --rounds N --runs N]`. Not a test:
//! nothing here asserts speed.

use compiler::ir::{Builder, DType, Tensor, Type};
use runtime::{Backend, Executable};
use std::time::Instant;

/// (label, m, k, n, left operand stored transposed).
const SHAPES: &[(&str, usize, usize, usize, bool)] = &[
    ("w1 layer 1", 128, 784, 256, false),
    ("w1 layer 2", 128, 256, 256, false),
    ("w1 dW1 (x^T g)", 784, 128, 256, true),
    ("w3 qkv", 4096, 128, 384, false),
    ("w3 mlp up", 4096, 128, 512, false),
    ("w3 mlp down", 4096, 512, 128, false),
    ("w3 dW up (h^T g)", 128, 4096, 512, true),
    ("square 1024", 1024, 1024, 1024, false),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, runs) = (flag("--rounds", 5), flag("--runs", 10));
    println!(
        "{:<18} {:>6} {:>6} {:>6}  {:>10} {:>10} {:>7}",
        "shape", "m", "k", "n", "ours GF/s", "gemm GF/s", "ratio"
    );
    for &(label, m, k, n, trans) in SHAPES {
        let a_dims = if trans { [k, m] } else { [m, k] };
        let (ta, tb) = (Type::new(DType::F32, &a_dims), Type::new(DType::F32, &[k, n]));
        let mut b = Builder::new("mm", &[ta.clone(), tb.clone()]);
        let lhs = if trans { b.transpose(b.param(0), vec![1, 0]) } else { b.param(0) };
        let prod = b.matmul(lhs, b.param(1));
        let func = b.finish(vec![prod]);
        let a: Vec<f64> = (0..m * k).map(|i| ((i * 7 + 3) % 13) as f64 * 0.1 - 0.6).collect();
        let bv: Vec<f64> = (0..k * n).map(|i| ((i * 5 + 1) % 11) as f64 * 0.1 - 0.5).collect();
        let (a, bt) = (Tensor::from_f64(DType::F32, &a_dims, &a), Tensor::from_f64(DType::F32, &[k, n], &bv));
        let mut exe = Executable::compile(func, Backend::Cpu).expect("compile");
        exe.hold(vec![(0, a.clone()), (1, bt.clone())], &[]).expect("hold");
        let (a32, b32) = (
            a.to_f64_vec().iter().map(|&v| v as f32).collect::<Vec<_>>(),
            bt.to_f64_vec().iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
        let mut c = vec![0f32; m * n];
        let bare = |c: &mut [f32]| {
            // Safety: `a32`, `b32`, `c` hold m*k, k*n and m*n elements.
            let (a_cs, a_rs) = if trans { (m as isize, 1) } else { (1, k as isize) };
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a32.as_ptr(),
                    a_cs,
                    a_rs,
                    b32.as_ptr(),
                    1,
                    n as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        };
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..=rounds {
            let mut t_ours = Vec::new();
            for _ in 0..runs {
                let start = Instant::now();
                let out = exe.run_held(vec![]).expect("run");
                t_ours.push(start.elapsed().as_secs_f64());
                std::hint::black_box(out);
            }
            let mut t_bare = Vec::new();
            for _ in 0..runs {
                let start = Instant::now();
                bare(&mut c);
                t_bare.push(start.elapsed().as_secs_f64());
                std::hint::black_box(&c);
            }
            // Round 0 warms up.
            if round > 0 {
                ours.push(median(&mut t_ours));
                theirs.push(median(&mut t_bare));
            }
        }
        let flops = 2.0 * (m * k * n) as f64;
        let (ours, theirs) = (flops / median(&mut ours) / 1e9, flops / median(&mut theirs) / 1e9);
        println!("{label:<18} {m:>6} {k:>6} {n:>6}  {ours:>10.1} {theirs:>10.1} {:>7.3}", ours / theirs);
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    v[v.len() / 2]
}
