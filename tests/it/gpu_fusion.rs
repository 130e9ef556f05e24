//! Kernel fusion in the PTX backend on a real GPU: the W1 training step
//! (PERFORMANCE.md: 784-256-256-10 MLP, Adam, batch 128) fused (one kernel
//! per fusion group) and unfused (`PtxOptions { fuse: false }`: one kernel
//! per instruction) gives bitwise the same outputs (the same scalar ops per
//! element and the same cuBLAS calls), as does W4; also prints both W1
//! programs' kernel counts and median step times (measured, not asserted).
//! The whole W1 and W3 training steps on the GPU match the CPU backend's
//! within a normwise bound.
//!
//! Built only with `--features cuda`; skips without a GPU unless
//! `JLC_REQUIRE_GPU=1` (as `gpu.rs`).

use crate::gpu::gpu;
use compiler::codegen::ptx::{self, PtxOptions, Step};
use compiler::ir::{DType, Tensor, Type};
use runtime::cuda::CudaExecutable;

pub(crate) const W1_SRC: &str = include_str!("../../benches/workloads/w1_mlp.jl");

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
    inputs.extend(progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    inputs.push(Tensor::scalar_f32(1.0));
    inputs.push(Tensor::f32(&[128, 784], (0..128 * 784).map(|i| ((i * 37 % 17) as f32) / 16.0).collect()));
    inputs.push(Tensor::i32(&[128], (0..128).map(|i| (i * 7 % 10) as i32).collect()));
    let fused_prog = ptx::emit(func).unwrap();
    let plain_prog = ptx::emit_with(func, &PtxOptions { fuse: false, ..Default::default() }).unwrap();
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

/// W4 of PERFORMANCE.md (`value_and_grad` of `sum(gelu_tanh(x·w + b)^2)`)
/// at 2^20 elements: fused (recomputed intermediates, the gradient inside
/// the sum's first pass: 2 kernels) and unfused give bitwise the same
/// value and gradients on the GPU.
#[test]
fn gpu_w4_loss_and_gradient_fused_equals_unfused_bitwise() {
    if !gpu() {
        return;
    }
    const N: usize = 1 << 20;
    let src = include_str!("../../benches/workloads/w4_gelu.jl");
    let (prog, diags) = compiler::lower::load("w4.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let ty = Type::new(DType::F32, &[N]);
    let func = compiler::lower::lower_fn_at(&prog, "w4", &[ty.clone(), ty.clone(), ty]).unwrap();
    let (func, _) = compiler::opt::optimize(&compiler::ir::dce::dce(&func), &compiler::opt::Options::default());
    let ramp = |scale: f32, offset: f32| {
        Tensor::f32(&[N], (0..N).map(|i| ((i * 7 % 11) as f32 - 5.0) * scale + offset).collect())
    };
    let inputs = [ramp(0.2, 0.05), ramp(0.1, -0.02), ramp(0.4, 0.1)];
    let fused_prog = ptx::emit(&func).unwrap();
    assert_eq!(fused_prog.steps.iter().filter(|s| matches!(s, Step::Kernel { .. })).count(), 2);
    let plain_prog = ptx::emit_with(&func, &PtxOptions { fuse: false, ..Default::default() }).unwrap();
    let got = CudaExecutable::load(fused_prog).unwrap().run(&inputs).unwrap();
    let want = CudaExecutable::load(plain_prog).unwrap().run(&inputs).unwrap();
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(g.to_bits_vec() == w.to_bits_vec(), "output {k}: fused and unfused W4 differ on the GPU");
    }
}

/// The W3 transformer's whole training step (batch 8) on the GPU against
/// the CPU backend (`assert_steps_match_cpu`).
#[test]
fn gpu_w3_training_step_matches_cpu_backend() {
    if !gpu() {
        return;
    }
    let src = std::fs::read_to_string(crate::gpu::repo_root().join("benches/workloads/w3_transformer.jl")).unwrap();
    let (b, t) = (8, 128);
    let stream: Vec<i32> = (0..b * t + 1).map(|i| ((i * 7919 + 13) % 256) as i32).collect();
    let x = Tensor::i32(&[b, t], stream[..b * t].to_vec());
    let y = Tensor::i32(&[b, t], stream[1..].to_vec());
    assert_steps_match_cpu("W3", "w3_transformer.jl", &src, x, y, 3);
}

/// The W1 MLP's whole training step (784-256-256-10, Adam, batch 128) on
/// the GPU against the CPU backend (`assert_steps_match_cpu`).
#[test]
fn gpu_w1_training_step_matches_cpu_backend() {
    if !gpu() {
        return;
    }
    let x = Tensor::f32(&[128, 784], (0..128 * 784).map(|i| ((i * 37 % 17) as f32) / 16.0).collect());
    let y = Tensor::i32(&[128], (0..128).map(|i| (i * 7 % 10) as i32).collect());
    assert_steps_match_cpu("W1", "w1.jl", W1_SRC, x, y, 7);
}

/// Three chained training steps of the model in `src` on batch `(x, y)`,
/// parameters from `seed`, on the GPU and the CPU backend from the same
/// inputs (each step continues from the CPU's parameters and states). The
/// two differ by GEMM summation order (cuBLAS), parallel reduction order
/// and the transcendentals' last bits, so the bound is normwise: per
/// output tensor, ||gpu - cpu||₂ <= 1e-4 ||cpu||₂ + 1e-7 sqrt(n) (the loss,
/// parameters and optimizer moments; printed per step); integer outputs
/// equal.
fn assert_steps_match_cpu(label: &str, file: &str, src: &str, x: Tensor, y: Tensor, seed: u64) {
    let (prog, diags) = compiler::lower::load(file, src);
    assert!(diags.is_empty(), "{diags:?}");
    let (x_ty, y_ty) = (x.ty(), y.ty());
    let progs = compiler::compile_training(&prog, None, &x_ty, &y_ty, &compiler::Options::default()).unwrap();
    let mut inputs = trainer::fit::init_params(&progs.params, seed);
    let n_carried = inputs.len() + progs.n_states();
    inputs.extend(progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    inputs.push(Tensor::scalar_f32(1.0));
    inputs.push(x);
    inputs.push(y);
    let step_slot = n_carried;
    let mut gpu_exe = runtime::Executable::compile(progs.train_step.clone(), runtime::Backend::Cuda).unwrap();
    let mut cpu_exe = runtime::Executable::compile(progs.train_step.clone(), runtime::Backend::Cpu).unwrap();
    for step in 1..=3 {
        inputs[step_slot] = Tensor::scalar_f32(step as f32);
        let (want, got) = (cpu_exe.run(&inputs).unwrap(), gpu_exe.run(&inputs).unwrap());
        assert_eq!(want.len(), got.len(), "{label} step {step}: output count");
        let mut worst = 0.0f64;
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.ty(), g.ty(), "{label} step {step} output {k}");
            if !w.ty().dtype.is_float() {
                assert_eq!(w, g, "{label} step {step} output {k}");
                continue;
            }
            let (w, g) = (w.to_f64_vec(), g.to_f64_vec());
            let diff = w.iter().zip(&g).map(|(p, q)| (p - q).powi(2)).sum::<f64>().sqrt();
            let norm = w.iter().map(|p| p * p).sum::<f64>().sqrt();
            let bound = 1e-4 * norm + 1e-7 * (w.len() as f64).sqrt();
            assert!(
                diff <= bound,
                "{label} step {step} output {k} ({} values): ||gpu - cpu|| = {diff:e} > {bound:e}",
                w.len()
            );
            worst = worst.max(diff / norm.max(f64::MIN_POSITIVE));
        }
        println!(
            "{label} step {step}: loss cpu {} gpu {}; worst relative difference {worst:.2e}",
            want[n_carried].scalar_value(),
            got[n_carried].scalar_value()
        );
        // Continue from the CPU's parameters and states.
        for (slot, value) in want.into_iter().take(n_carried).enumerate() {
            inputs[slot] = value;
        }
    }
}
