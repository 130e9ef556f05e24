//! Tests of kernel fusion in the PTX emitter, with no GPU: fused programs
//! run by the simulator (`ptx/sim.rs`) against the unfused emitter
//! (`PtxOptions { fuse: false }`: one kernel per instruction; bitwise, as
//! fusion must not change a single scalar op) and against `ir::interp`
//! (bitwise where every op is exact); the plan (inlined values have no
//! buffer, hosted ones are written by their host's kernel); the kernel count
//! of the W1 training step; ptxas (`JLC_PTXAS`) on fused kernels.

use super::super::tests::{assemble, assert_sim, check_plan, w4_program, Tol};
use super::super::{emit, emit_with, sim, PtxOptions, PtxProgram, Step};
use crate::ir::generate::{random_func, random_inputs, GenOptions};
use crate::ir::{text, Builder, DType, Func, Op, Shape, Tensor, Type};

fn unfused(func: &Func) -> PtxProgram {
    emit_with(func, &PtxOptions { fuse: false, ..Default::default() }).expect("emits unfused")
}

fn kernels(prog: &PtxProgram) -> usize {
    prog.steps.iter().filter(|s| matches!(s, Step::Kernel { .. })).count()
}

fn gemms(prog: &PtxProgram) -> usize {
    prog.steps.iter().filter(|s| matches!(s, Step::Gemm { .. })).count()
}

/// The fused program's outputs are bitwise the unfused program's (both
/// simulated); returns the fused program.
#[track_caller]
fn assert_fused_equals_unfused(label: &str, func: &Func, inputs: &[Tensor]) -> PtxProgram {
    let fused = emit(func).unwrap_or_else(|e| panic!("{label}: {e}"));
    let plain = unfused(func);
    check_plan(func, &fused);
    check_plan(func, &plain);
    let (got, want) = (sim::run(&fused, inputs), sim::run(&plain, inputs));
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.ty(), w.ty(), "{label}: output {k}");
        assert_eq!(
            g.to_bits_vec(),
            w.to_bits_vec(),
            "{label}: output {k}: fused vs unfused bits\n{}",
            text::print(func)
        );
    }
    fused
}

fn ramp(ty: &Type, scale: f64, offset: f64) -> Tensor {
    let v: Vec<f64> = (0..ty.shape.num_elements()).map(|i| ((i * 7 % 11) as f64 - 5.0) * scale + offset).collect();
    Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
}

/// W1's model (PERFORMANCE.md: 784-256-256-10 MLP, Adam; the program
/// `benches/train_step.rs` runs).
const W1_SRC: &str = include_str!("../../../../../benches/workloads/w1_mlp.jl");

/// The training step of the model in `text` for batches `x_ty`, `y_ty`.
fn training_step(name: &str, text: &str, x_ty: &Type, y_ty: &Type) -> Func {
    let (prog, diags) = crate::lower::load(name, text);
    assert!(diags.is_empty(), "{diags:?}");
    crate::compile_training(&prog, None, x_ty, y_ty, &crate::Options::default()).unwrap().train_step
}

/// Inputs for a training step: labels `i * label_step % 10` for i32
/// inputs, `ramp` with `scale_offset(p)` for float input `p`.
fn step_inputs(func: &Func, label_step: usize, scale_offset: impl Fn(usize) -> (f64, f64)) -> Vec<Tensor> {
    func.param_types()
        .iter()
        .enumerate()
        .map(|(p, ty)| match ty.dtype {
            DType::I32 => Tensor::i32(
                ty.shape.dims(),
                (0..ty.shape.num_elements()).map(|i| (i * label_step % 10) as i32).collect(),
            ),
            _ => {
                let (scale, offset) = scale_offset(p);
                ramp(ty, scale, offset)
            }
        })
        .collect()
}

/// A dense layer with bias and relu: the bias broadcast, the add, the zero
/// and the max are one kernel after the GEMM (the bias read through stride
/// 0 on the batch dim), and a reduction of `r * r` evaluates the product
/// per source element; bitwise as the interpreter.
#[test]
fn dense_relu_layer_is_one_kernel_after_the_gemm() {
    for dtype in [DType::F32, DType::F64] {
        let (xt, wt, bt) = (Type::new(dtype, &[4, 5]), Type::new(dtype, &[5, 3]), Type::new(dtype, &[3]));
        let mut b = Builder::new("dense", &[xt.clone(), wt.clone(), bt.clone()]);
        let h = b.matmul(b.param(0), b.param(1));
        let bias = b.broadcast(b.param(2), &Shape(vec![4, 3]), vec![1]);
        let z = b.add(h, bias);
        let zero = b.full(0.0, &Type::new(dtype, &[4, 3]));
        let r = b.binary(Op::Max, z, zero);
        let sq = b.mul(r, r);
        let s = b.reduce_sum(sq, vec![1]);
        let func = b.finish(vec![r, s]);
        let inputs = [ramp(&xt, 0.5, 0.1), ramp(&wt, 0.25, -0.05), ramp(&bt, 1.0, 0.5)];
        let prog = assert_fused_equals_unfused("dense", &func, &inputs);
        assert_sim(&format!("dense {dtype}"), &func, &inputs, Tol::Bitwise);
        for v in [bias, z, zero, sq] {
            assert_eq!(prog.value_buffers[v.index()], None, "%{} is inlined", v.index());
        }
        assert_eq!((gemms(&prog), kernels(&prog)), (1, 2), "{:?}", prog.steps);
        // bias, add, zero (a scalar and its broadcast), max, mul, sum.
        assert_eq!((gemms(&unfused(&func)), kernels(&unfused(&func))), (1, 7));
        // The relu kernel reads the GEMM's result and the bias vector.
        let relu = prog.steps.iter().find(|s| matches!(s, Step::Kernel { inst, .. } if *inst == r.index())).unwrap();
        let Step::Kernel { args, .. } = relu else { unreachable!() };
        let buffer = |v: crate::ir::ValueId| prog.value_buffers[v.index()].unwrap();
        assert_eq!(args, &vec![buffer(r), buffer(h), buffer(crate::ir::ValueId(2))]);
    }
}

/// Multi-output fusion: Adam's new moments (outputs, also read by the
/// parameter update) are written by the update's kernel, the only kernel;
/// all three outputs bitwise as the interpreter (sqrt and div are exact).
#[test]
fn adam_update_is_one_kernel_writing_three_buffers() {
    for dtype in [DType::F32, DType::F64] {
        let ty = Type::new(dtype, &[37]);
        let mut b = Builder::new("adam", &[ty.clone(), ty.clone(), ty.clone(), ty.clone()]);
        let (p, g, m, v) = (b.param(0), b.param(1), b.param(2), b.param(3));
        let (p_new, m_new, v_new) = crate::codegen::tests::adam_update(&mut b, &ty, [p, g, m, v]);
        let func = b.finish(vec![p_new, m_new, v_new]);
        let inputs = [ramp(&ty, 0.3, 0.0), ramp(&ty, 0.01, 0.001), ramp(&ty, 0.002, 0.0), ramp(&ty, 0.0, 0.0004)];
        let prog = assert_fused_equals_unfused("adam", &func, &inputs);
        assert_sim(&format!("adam {dtype}"), &func, &inputs, Tol::Bitwise);
        let buffer = |v: crate::ir::ValueId| prog.value_buffers[v.index()].unwrap();
        match &prog.steps[..] {
            [Step::Kernel { inst, args, .. }] => {
                assert_eq!(*inst, p_new.index());
                assert_eq!(args[..3], [buffer(p_new), buffer(m_new), buffer(v_new)], "outputs first");
                assert_eq!(args[3..], [buffer(p), buffer(m), buffer(g), buffer(v)], "then what the tree reads");
            }
            other => panic!("{dtype}: one kernel expected, got {other:?}"),
        }
    }
}

/// Logsumexp over rows: `exp(x - max)` is evaluated inside the sum's
/// kernel (no buffer), the final `log(s) + m` is one kernel: 3 kernels
/// instead of 7, bitwise as the unfused kernels and within exp's and log's
/// bounds of the interpreter.
#[test]
fn reductions_evaluate_their_operand_tree_per_element() {
    for dtype in [DType::F32, DType::F64] {
        let ty = Type::new(dtype, &[4, 6]);
        let mut b = Builder::new("logsumexp", std::slice::from_ref(&ty));
        let x = b.param(0);
        let m = b.reduce_max(x, vec![1]);
        let mb = b.broadcast(m, &Shape(vec![4, 6]), vec![0]);
        let d = b.sub(x, mb);
        let e = b.unary(Op::Exp, d);
        let s = b.reduce_sum(e, vec![1]);
        let l = b.unary(Op::Log, s);
        let r = b.add(l, m);
        // A min over an inlined tree reads a buffer (the CPU schedule only
        // fuses into sums and maxes) but still works.
        let n = b.neg(x);
        let lo = b.reduce_min(n, vec![0]);
        let func = b.finish(vec![r, lo]);
        let inputs = [ramp(&ty, 1.5, 0.25)];
        let prog = assert_fused_equals_unfused("logsumexp", &func, &inputs);
        assert_sim(&format!("logsumexp {dtype}"), &func, &inputs, Tol::Ulps(4));
        for v in [mb, d, e, l] {
            assert_eq!(prog.value_buffers[v.index()], None, "%{} is inlined", v.index());
        }
        // max, sum, log+add, neg, min.
        assert_eq!(kernels(&prog), 5, "{:?}", prog.steps);
        assert_eq!(kernels(&unfused(&func)), 9);
        assemble(&format!("logsumexp_{dtype}"), &prog);
    }
}

/// Ops the generator emits that the PTX backend does not support yet,
/// replaced by supported ones of the same type (so every generated program
/// but those with scans can be emitted).
fn ptx_compatible(func: &Func) -> Option<Func> {
    // The backends run a custom_vjp's function (`emit` inlines it too).
    let mut f = crate::ir::custom_vjp::inline_rules(func);
    for inst in &mut f.insts {
        inst.op = match &inst.op {
            Op::Scan(_) => return None,
            Op::Log1p => Op::Log,
            Op::Expm1 => Op::Exp,
            Op::Sin | Op::Erf => Op::Tanh,
            Op::Cos => Op::Logistic,
            other => other.clone(),
        };
    }
    crate::ir::verify::assert_valid(&f, "ptx_compatible");
    Some(f)
}

/// Whether every op of `func` is bitwise the interpreter's in PTX (no
/// exp/log/tanh/logistic/float pow; GEMMs run the interpreter's product in
/// the simulator).
fn exact_in_ptx(func: &Func) -> bool {
    func.insts.iter().all(|inst| match inst.op {
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic => false,
        Op::Pow => !inst.ty.dtype.is_float(),
        _ => true,
    })
}

/// Generated programs (every op the backend emits, in random chains with
/// broadcasts, reductions and shared values): fused == unfused bitwise on
/// every output, and == the interpreter bitwise when every op is exact.
#[test]
fn generated_programs_fused_match_unfused_bitwise() {
    const PROGRAMS: u64 = 300;
    let (mut tested, mut exact, mut fused_kernels, mut plain_kernels) = (0, 0, 0, 0);
    // Programs where a kernel hosts values, and where a reduction evaluates
    // an inlined operand: both paths must be exercised.
    let (mut hosting, mut reducing_trees) = (0, 0);
    for seed in 0..PROGRAMS {
        let Some(func) = ptx_compatible(&random_func(0x9F05_0000 + seed, &GenOptions::default())) else {
            continue;
        };
        tested += 1;
        let sched = super::schedule(&func, true);
        let hosts = sched.hosted.iter().any(Option::is_some);
        let reduces_tree = func.insts.iter().any(|inst| {
            matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. }) && sched.inlined[inst.args[0].index()]
        });
        hosting += usize::from(hosts);
        reducing_trees += usize::from(reduces_tree);
        if (hosts || reduces_tree) && hosting + reducing_trees <= 6 {
            assemble(&format!("generated_{seed}"), &emit(&func).unwrap());
        }
        for input_index in 0..2u64 {
            let inputs = random_inputs(&func, seed * 8 + input_index);
            let label = format!("generated seed {seed}, input {input_index}");
            let prog = assert_fused_equals_unfused(&label, &func, &inputs);
            if input_index == 0 {
                fused_kernels += kernels(&prog);
                plain_kernels += kernels(&unfused(&func));
            }
            if exact_in_ptx(&func) {
                exact += 1;
                assert_sim(&label, &func, &inputs, Tol::Bitwise);
            }
        }
    }
    assert!(tested >= PROGRAMS / 2, "only {tested} programs without scans");
    assert!(exact >= 20, "only {exact} exact runs compared with the interpreter");
    assert!(hosting >= 10 && reducing_trees >= 5, "{hosting} programs host values, {reducing_trees} reduce trees");
    assert!(fused_kernels * 10 < plain_kernels * 8, "fusion saved little: {fused_kernels} vs {plain_kernels} kernels");
}

/// Fused kernels moving four elements per trip (16-byte loads and stores,
/// `PtxOptions::vector_loads`) give bitwise the results of one element per
/// trip on generated programs (every op, broadcast leaves read element by
/// element, hosted values, bool and f64 values stored one at a time) and on
/// the W1 training step; the programs differ (vector loads are there) and
/// assemble.
#[test]
fn vector_loads_equal_one_element_kernels_bitwise() {
    let options = |vector_loads| PtxOptions { vector_loads, ..Default::default() };
    let (mut tested, mut vectorized) = (0, 0);
    let compare = |label: &str, func: &Func, inputs: &[Tensor]| -> bool {
        let plain = emit_with(func, &options(false)).expect("emits");
        let vector = emit_with(func, &options(true)).expect("emits");
        assert!(!plain.ptx.contains(".v4."), "{label}: no vector access without vector_loads");
        let (want, got) = (sim::run(&plain, inputs), sim::run(&vector, inputs));
        for (o, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(g.to_bits_vec() == w.to_bits_vec(), "{label}: output {o} differs with 16-byte loads");
        }
        vector.ptx.contains("ld.global.v4.") && vector.ptx.contains("st.global.v4.")
    };
    for seed in 0..200u64 {
        let Some(func) = ptx_compatible(&random_func(0x7EC4_0000 + seed, &GenOptions::default())) else {
            continue;
        };
        tested += 1;
        let inputs = random_inputs(&func, seed);
        if compare(&format!("generated seed {seed}"), &func, &inputs) {
            vectorized += 1;
            if vectorized <= 3 {
                assemble(&format!("vector_generated_{seed}"), &emit(&func).unwrap());
            }
        }
    }
    assert!(tested >= 100 && vectorized >= 30, "{vectorized} of {tested} programs used 16-byte loads and stores");
    let (x_ty, y_ty) = (Type::new(DType::F32, &[16, 784]), Type::new(DType::I32, &[16]));
    let step = training_step("w1.jl", W1_SRC, &x_ty, &y_ty);
    let func = &step;
    let inputs = step_inputs(func, 7, |p| (0.01, 0.001 * p as f64));
    assert!(compare("W1 step", func, &inputs), "the W1 step uses 16-byte loads");
    assemble("vector_w1", &emit(func).unwrap());
}

/// The W1 training step of PERFORMANCE.md (784-256-256-10 MLP, Adam, batch
/// 128; the program `benches/train_step.rs` runs) is far fewer kernels
/// than non-view instructions (the unfused emitter has about one per
/// instruction), with the same GEMMs; the fused PTX assembles.
#[test]
fn w1_training_step_fuses_into_few_kernels() {
    let (x_ty, y_ty) = (Type::new(DType::F32, &[128, 784]), Type::new(DType::I32, &[128]));
    let step = training_step("w1.jl", W1_SRC, &x_ty, &y_ty);
    let func = &step;
    let views = func
        .insts
        .iter()
        .filter(|inst| match inst.op {
            Op::Param(_) | Op::Reshape | Op::StopGradient => true,
            Op::Convert => func.ty(inst.args[0]).dtype == inst.ty.dtype,
            _ => false,
        })
        .count();
    let non_views = func.insts.len() - views;
    let (fused, plain) = (emit(func).unwrap(), unfused(func));
    check_plan(func, &fused);
    check_plan(func, &plain);
    println!(
        "W1 step: {} instructions ({non_views} not params or views); unfused {} kernels + {} GEMMs, {} buffers; \
         fused {} kernels + {} GEMMs, {} buffers",
        func.insts.len(),
        kernels(&plain),
        gemms(&plain),
        plain.buffers.len(),
        kernels(&fused),
        gemms(&fused),
        fused.buffers.len()
    );
    assert!(kernels(&plain) + gemms(&plain) * 2 > non_views, "the unfused emitter has ~one step per instruction");
    assert!(kernels(&fused) * 2 < non_views, "{} kernels for {non_views} instructions", kernels(&fused));
    assert_eq!(gemms(&fused), gemms(&plain));
    assemble("w1_step_fused", &fused);
}

/// The digits training step (a real MLP step: matmuls, cross-entropy,
/// Adam), fused, is bitwise the unfused program in the simulator (its
/// agreement with the interpreter is `simulated_digits_training_step_matches_interp`).
#[test]
fn digits_training_step_fused_equals_unfused() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let (x_ty, y_ty) = (Type::new(DType::F32, &[4, 64]), Type::new(DType::I32, &[4]));
    let step = training_step("digits_mlp.jl", &text, &x_ty, &y_ty);
    let func = &step;
    let inputs = step_inputs(func, 3, |p| (0.01 * (p + 1) as f64, 0.001));
    let fused = assert_fused_equals_unfused("digits step", func, &inputs);
    assert!(kernels(&fused) * 2 < kernels(&unfused(func)));
}

/// W4 of PERFORMANCE.md (`value_and_grad` of `sum(gelu_tanh(x·w + b)^2)`)
/// at 40,000 elements (two-pass sum): the intermediates the gradient
/// shares with the loss are recomputed rather than stored
/// (`ptx/recompute.rs`), and the gradient's kernel runs inside the sum's
/// first pass (`ptx/siblings.rs`): two kernels, no buffer but the inputs,
/// the outputs and the partials, each input read by one kernel; bitwise
/// the unfused program.
#[test]
fn w4_loss_and_gradient_share_one_pass() {
    const N: usize = 40_000;
    let ty = Type::new(DType::F32, &[N]);
    let func = w4_program(N);
    let inputs = [ramp(&ty, 0.2, 0.05), ramp(&ty, 0.1, -0.02), ramp(&ty, 0.4, 0.1)];
    let fused = assert_fused_equals_unfused("w4", &func, &inputs);
    assert_eq!(kernels(&fused), 2, "the sum's two passes, the gradient inside the first:\n{:?}", fused.steps);
    // Buffers: 3 inputs, the sum, dw, db and the partials.
    assert_eq!(fused.buffers.len(), 7, "{:?}", fused.buffers);
    let Step::Kernel { args, .. } = &fused.steps[0] else { panic!("a kernel first") };
    let (dw, db) = (fused.outputs[1], fused.outputs[2]);
    assert!(args[1..3].contains(&dw) && args[1..3].contains(&db), "the first pass writes dw and db: {args:?}");
    let mut reads = args[3..].to_vec();
    reads.sort();
    assert_eq!(reads, fused.params, "and reads the inputs, once");
    assemble("w4_fused", &fused);
}
