//! Kernel fusion in the PTX backend on a real GPU: the W1 training step
//! (PERFORMANCE.md: 784-256-256-10 MLP, Adam, batch 128) fused (one kernel
//! per fusion group) and unfused (`PtxOptions { fuse: false }`: one kernel
//! per instruction) gives bitwise the same outputs (the same scalar ops per
//! element and the same cuBLAS calls). Also prints both programs' kernel
//! counts and median step times (measured, not asserted).
//!
//! Built only with `--features cuda`; skips without a GPU unless
//! `JLC_REQUIRE_GPU=1` (as `gpu.rs`).

use crate::gpu::gpu;
use compiler::codegen::ptx::{self, PtxOptions, Step};
use compiler::ir::{DType, Tensor, Type};
use runtime::cuda::CudaExecutable;

const W1_SRC: &str = include_str!("../../benches/workloads/w1_mlp.jl");

/// Median milliseconds of `runs` calls (after 3 warm-up calls).
fn median_ms(exe: &mut CudaExecutable, inputs: &[Tensor], runs: usize) -> f64 {
    for _ in 0..3 {
        exe.run(inputs).unwrap();
    }
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            exe.run(inputs).unwrap();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    ms[runs / 2]
}

#[test]
fn gpu_w1_step_fused_equals_unfused_bitwise() {
    if !gpu() {
        return;
    }
    let (prog, diags) = compiler::lower::load("w1.jl", W1_SRC);
    assert!(diags.is_empty(), "{diags:?}");
    let (x_ty, y_ty) = (Type::new(DType::F32, &[128, 784]), Type::new(DType::I32, &[128]));
    let progs = compiler::compile_training(&prog, None, &x_ty, &y_ty, &compiler::Options::default()).unwrap();
    let func = &progs.train_step;
    let mut inputs = trainer::fit::init_params(&progs.params, 7);
    for p in &progs.params {
        for _ in 0..progs.states_per_param {
            inputs.push(Tensor::zeros(&p.ty));
        }
    }
    inputs.push(Tensor::scalar_f32(1.0));
    inputs.push(Tensor::f32(&[128, 784], (0..128 * 784).map(|i| ((i * 37 % 17) as f32) / 16.0).collect()));
    inputs.push(Tensor::i32(&[128], (0..128).map(|i| (i * 7 % 10) as i32).collect()));
    let fused_prog = ptx::emit(func).unwrap();
    let plain_prog = ptx::emit_with(func, &PtxOptions { fuse: false }).unwrap();
    let kernels = |p: &ptx::PtxProgram| p.steps.iter().filter(|s| matches!(s, Step::Kernel { .. })).count();
    let (fused_kernels, plain_kernels) = (kernels(&fused_prog), kernels(&plain_prog));
    let mut fused = CudaExecutable::load(fused_prog).unwrap();
    let mut plain = CudaExecutable::load(plain_prog).unwrap();
    let (got, want) = (fused.run(&inputs).unwrap(), plain.run(&inputs).unwrap());
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "output {k}");
        assert!(g.to_bits_vec() == w.to_bits_vec(), "output {k}: fused and unfused W1 steps differ on the GPU");
    }
    let (fused_ms, plain_ms) = (median_ms(&mut fused, &inputs, 30), median_ms(&mut plain, &inputs, 30));
    println!(
        "W1 step on {}: fused {fused_kernels} kernels, {fused_ms:.3} ms; unfused {plain_kernels} kernels, \
         {plain_ms:.3} ms (median of 30, inputs and outputs copied each call)",
        runtime::cuda::device_name().unwrap_or_default()
    );
}
