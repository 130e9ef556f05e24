//! Whole programs on every backend and through the optimizer agree with the
//! reference interpreter.

use compiler::ir::{interp, DType, Tensor, Type};

fn digits_step() -> (compiler::lower::TrainPrograms, compiler::lower::TrainPrograms) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let (prog, diags) = compiler::lower::load("digits_mlp.jl", &text);
    assert!(diags.is_empty());
    let x = Type::new(DType::F32, &[8, 64]);
    let y = Type::new(DType::I32, &[8]);
    let raw =
        compiler::compile_training(&prog, None, &x, &y, &compiler::Options { no_opt: true, ..Default::default() })
            .unwrap();
    let opt = compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default()).unwrap();
    (raw, opt)
}

fn inputs(progs: &compiler::lower::TrainPrograms) -> Vec<Tensor> {
    let mut params = trainer::fit::init_params(&progs.params, 7);
    let states: Vec<Tensor> = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)).collect();
    params.extend(states);
    params.push(Tensor::scalar_f32(1.0));
    params.push(Tensor::f32(&[8, 64], (0..512).map(|i| ((i * 37 % 17) as f32) / 16.0).collect()));
    params.push(Tensor::i32(&[8], (0..8).map(|i| i % 10).collect()));
    params
}

fn assert_close(a: &[Tensor], b: &[Tensor], rtol: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.ty(), y.ty(), "{what}: output {k} type");
        for (i, (p, q)) in x.to_f64_vec().iter().zip(y.to_f64_vec()).enumerate() {
            assert!((p - q).abs() <= rtol * (1.0 + p.abs().max(q.abs())), "{what}: output {k}[{i}]: {p} vs {q}");
        }
    }
}

#[test]
fn jit_train_step_matches_interpreter() {
    let (_, opt) = digits_step();
    let ins = inputs(&opt);
    let expected = interp::run(&opt.train_step, &ins);
    let mut exe = runtime::Executable::compile(opt.train_step.clone(), runtime::Backend::Cpu).unwrap();
    let got = exe.run(&ins).unwrap();
    // GEMM sums in another order than the interpreter: float32 rounding.
    assert_close(&expected, &got, 1e-5, "jit vs interp");
}

#[test]
fn optimized_train_step_matches_unoptimized() {
    let (raw, opt) = digits_step();
    assert!(opt.train_step.insts.len() < raw.train_step.insts.len(), "the optimizer should shrink the step");
    let ins = inputs(&raw);
    let a = interp::run(&raw.train_step, &ins);
    let b = interp::run(&opt.train_step, &ins);
    assert_close(&a, &b, 1e-6, "optimized vs unoptimized");
}

#[test]
fn compiling_twice_gives_identical_ir() {
    let (_, a) = digits_step();
    let (_, b) = digits_step();
    assert_eq!(compiler::ir::text::print(&a.train_step), compiler::ir::text::print(&b.train_step));
}

#[test]
fn validation_step_has_no_parameter_outputs() {
    let (_, opt) = digits_step();
    let val = opt.val_step.expect("digits has a validation_step");
    assert_eq!(val.outputs.len(), opt.val_logs.len(), "validation returns only its logged values");
    assert!(val.output_types().iter().all(|t| t.shape.rank() == 0));
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_backend_in_a_build_without_cuda_is_an_error() {
    let (_, opt) = digits_step();
    let err = runtime::Executable::compile(opt.train_step, runtime::Backend::Cuda).err().expect("built without CUDA");
    assert!(err.to_string().contains("built without CUDA"), "{err}");
    assert_eq!(runtime::Backend::parse("cuda"), Some(runtime::Backend::Cuda));
}

/// `jlc dump --stage asm` run twice, in two processes, prints the same
/// machine code for a CNN, a transformer and an MLP training step (issue
/// #5: compiling the same program twice gives byte-identical machine code;
/// the header's digest covers every byte). In-process on generated
/// programs: `codegen::tests::differential`.
#[test]
fn jlc_dump_asm_is_identical_across_processes() {
    for name in ["fashion_mnist_cnn.jl", "char_transformer.jl", "digits_mlp.jl"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
        let dump = || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_jlc"))
                .args(["dump", path.to_str().unwrap(), "--stage", "asm", "--batch", "8"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let (first, second) = (dump(), dump());
        let header = first.lines().next().unwrap_or_default();
        assert!(header.starts_with("; machine code of `train_step` for this CPU: "), "{name}: {header}");
        let bytes: usize = header.split(" chunks, ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!(bytes > 1000, "{name}: {header}");
        assert!(first.contains("\n; chunk 0: "), "{name}");
        assert!(first == second, "{name}: two dumps differ:\n{header}\n{}", second.lines().next().unwrap_or_default());
    }
}
