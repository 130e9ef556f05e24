//! Benchmark: compile time and step time of whole compiled programs.
//!
//! Consumes model files (the digits example, W1/W4 of
//! shared/design/PERFORMANCE.md written here as source strings, and W3 from
//! `benches/workloads/w3_transformer.jl`); produces a
//! table on stdout (or one JSON object per workload with `--json`, for
//! `benches/run_peers.sh`). Times are medians over repeated runs after a
//! warm-up; the memcpy baseline for W4 is measured in the same process, right
//! before W4, so that the GB/s ratio is immune to the VM's drift.
//!
//! Run: `cargo bench --bench train_step [-- [digits] [w1] [w2] [w3] [w4] [w5] [--json] [--runs N] [--threads N] [--interp] [--backend cpu|cuda]]`
//! (`w2`, the CNN of `examples/fashion_mnist_cnn.jl` at batch 128, and `w3`,
//! the transformer, only when named: they are slow). `--backend cuda` needs
//! `--features cuda`.
//!
//! Every call is timed with the inputs *held* (`Executable::hold`): the
//! parameters, optimizer states and the batch stay in the engine between
//! calls (on the device, for CUDA) and the new parameters and states carry
//! into them, as the peers' benchmarks keep device arrays; only the step
//! counter goes in and the loss comes out. W4's and W5's outputs are kept
//! in the engine (`keep_outputs`), as JAX's stay on its device; every call
//! still waits for its result.
//! Not a test: nothing here asserts speed.

use compiler::diagnostic::Diagnostic;
use compiler::ir::{self, DType, Func, Op, Tensor, Type};
use compiler::lower::{self, Program};
use runtime::{Backend, Executable};
use std::time::Instant;

/// W1 of PERFORMANCE.md: 784-256-256-10 ReLU MLP, softmax cross-entropy, Adam 1e-3.
const W1_SRC: &str = include_str!("workloads/w1_mlp.jl");

/// W4 of PERFORMANCE.md: value and gradient w.r.t. (w, b) of
/// sum(gelu_tanh(x*w + b)^2), tanh-GELU written out as in the peers.
const W4_SRC: &str = include_str!("workloads/w4_gelu.jl");

const W4_N: usize = 4_194_304;

/// Reductions alone (not a PERFORMANCE.md workload): row sums and maxima
/// over the last axis (layer norm's and softmax's shape: 8,192 rows of
/// 128) and a bias gradient's sum over the first axis, each of a fused
/// elementwise operand.
const REDUCE_SRC: &str = r#"
fn reduce(x: f32[8192, 128]) = (sum(x * x, axis = 1), max(x + 1.0, axis = 1), sum(x * 2.0, axis = 0))
"#;

/// W5 of PERFORMANCE.md: forward-over-reverse Hessian-vector product of the
/// W1 loss w.r.t. all its parameters (the tangents are the inputs `v*`,
/// `u*`); `jvp` differentiates one tensor, so the gradient is flattened
/// into one vector of all 269,322 parameters.
const W5_SRC: &str = r#"
use nn.relu
use losses.cross_entropy

fn w1_loss(w1: f32[784, 256], b1: f32[256], w2: f32[256, 256], b2: f32[256], w3: f32[256, 10], b3: f32[10], x: f32[B, 784], y: i32[B]) -> f32 {
    let h1 = relu(x @ w1 + b1)
    let h2 = relu(h1 @ w2 + b2)
    cross_entropy(h2 @ w3 + b3, y)
}

fn w5(w1: f32[784, 256], b1: f32[256], w2: f32[256, 256], b2: f32[256], w3: f32[256, 10], b3: f32[10], x: f32[B, 784], y: i32[B], v1: f32[784, 256], u1: f32[256], v2: f32[256, 256], u2: f32[256], v3: f32[256, 10], u3: f32[10]) -> f32[269322] {
    let flat_grad = fn(a1, c1, a2, c2, a3, c3) {
        let (g1, h1, g2, h2, g3, h3) = grad(w1_loss, wrt = (w1, b1, w2, b2, w3, b3))(a1, c1, a2, c2, a3, c3, x, y)
        concat((reshape(g1, (-1,)), h1, reshape(g2, (-1,)), h2, reshape(g3, (-1,)), h3), axis = 0)
    }
    let (g, hvp) = jvp(flat_grad, (w1, b1, w2, b2, w3, b3), (v1, u1, v2, u2, v3, u3))
    hvp
}
"#;

struct Args {
    which: Vec<String>,
    json: bool,
    runs: usize,
    interp: bool,
    backend: Backend,
}

fn parse_args() -> Args {
    let mut a = Args { which: vec![], json: false, runs: 30, interp: false, backend: Backend::Cpu };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--json" => a.json = true,
            "--interp" => a.interp = true,
            "--runs" => a.runs = it.next().and_then(|n| n.parse().ok()).expect("--runs N"),
            // The host kernels' threads (GEMM, convolution), as `jlc run --threads`.
            "--threads" => compiler::codegen::cpu::threads::set_threads(
                it.next().and_then(|n| n.parse().ok()).expect("--threads N"),
            ),
            "--backend" => {
                a.backend = it.next().and_then(|b| Backend::parse(&b)).expect("--backend cpu|cuda");
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            w @ ("digits" | "w1" | "w2" | "w3" | "w4" | "w5" | "reduce") => a.which.push(w.to_string()),
            other => panic!(
                "unknown argument `{other}` (expected digits, w1, w2, w3, w4, w5, --json, --runs N, --threads N, --interp, --backend B)"
            ),
        }
    }
    if a.which.is_empty() {
        a.which = vec!["digits".into(), "w1".into(), "w4".into()];
    }
    let slow_on_cpu = a.backend == Backend::Cpu && a.which == ["w2"];
    a.runs = a.runs.max(if slow_on_cpu { 3 } else { 20 });
    a
}

/// SplitMix64: fixed-seed random data without the `rand` crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn die(what: &str, prog: &Program, diags: &[Diagnostic]) -> ! {
    panic!("{what}:\n{}", compiler::diagnostic::render_all(diags, &prog.sources, false))
}

/// Compile-time split of one program, in milliseconds.
#[derive(Default)]
struct CompileTimes {
    front: f64,
    lower_ad: f64,
    opt: f64,
    codegen: f64,
}
impl CompileTimes {
    fn total(&self) -> f64 {
        self.front + self.lower_ad + self.opt + self.codegen
    }
}

struct Result {
    name: String,
    compile: CompileTimes,
    ir_insts: usize,
    step_ms: Vec<f64>,
    interp_ms: Option<f64>,
    extra: Vec<(String, f64)>,
}

/// Front end for a training file: load, check, read its sections.
fn front_end(name: &str, src: &str) -> (Program, Option<lower::Section>) {
    let (prog, mut diags) = lower::load(name, src);
    diags.extend(lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        die(name, &prog, &diags);
    }
    let sections = lower::training_sections(&prog).unwrap_or_else(|d| die(name, &prog, &d));
    (prog, sections.trainer)
}

/// Compiles a training step stage by stage (the same stages as
/// `compiler::compile_training` + `Executable::compile`, timed separately;
/// only the training step, not the validation step, is optimized and emitted).
fn compile_train(
    name: &str,
    src: &str,
    x_ty: &Type,
    y_ty: &Type,
    backend: Backend,
) -> (lower::TrainPrograms, Executable, CompileTimes) {
    let mut t = CompileTimes::default();
    let start = Instant::now();
    let (prog, trainer) = front_end(name, src);
    t.front = ms(start);
    let start = Instant::now();
    let mut progs = lower::lower_training(&prog, trainer.as_ref(), x_ty, y_ty).unwrap_or_else(|d| die(name, &prog, &d));
    t.lower_ad = ms(start);
    let start = Instant::now();
    let (optimized, _) = compiler::opt::optimize(&progs.train_step, &compiler::opt::Options::default());
    ir::verify::assert_valid(&optimized, "opt::optimize");
    progs.train_step = optimized;
    t.opt = ms(start);
    let start = Instant::now();
    let exe = Executable::compile(progs.train_step.clone(), backend).expect("codegen");
    t.codegen = ms(start);
    (progs, exe, t)
}

/// Runs a training step with the parameters, states and batch held and the
/// new parameters and states carried into them (the trainer's loop without
/// the batch copy); times each call.
fn time_train(progs: &lower::TrainPrograms, exe: &mut Executable, x: &Tensor, y: &Tensor, runs: usize) -> Vec<f64> {
    let n_params = progs.params.len();
    let n_states = progs.n_states();
    let params = trainer::fit::init_params(&progs.params, 0);
    let states = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty));
    // Inputs: params, states, step, x, y.
    let mut held: Vec<(usize, Tensor)> = params.into_iter().chain(states).enumerate().collect();
    let (xi, yi) = (n_params + n_states + 1, n_params + n_states + 2);
    held.push((xi, x.clone()));
    held.push((yi, y.clone()));
    let carry: Vec<(usize, usize)> = (0..n_params + n_states).map(|i| (i, i)).collect();
    exe.hold(held, &carry).expect("hold");
    let warmup = 5;
    let mut times = Vec::with_capacity(runs);
    for step in 0..warmup + runs {
        let start = Instant::now();
        let outs = exe.run_held(vec![Tensor::scalar_f32((step + 1) as f32)]).expect("step");
        let elapsed = ms(start);
        if step >= warmup {
            times.push(elapsed);
        }
        let loss = outs[0].scalar_value();
        assert!(loss.is_finite(), "loss diverged: {loss}");
    }
    exe.release().expect("release");
    times
}

fn random_batch(rng: &mut Rng, b: usize, d: usize, classes: usize) -> (Tensor, Tensor) {
    let x = Tensor::f32(&[b, d], (0..b * d).map(|_| rng.uniform()).collect());
    let y = Tensor::i32(&[b], (0..b).map(|_| (rng.next() % classes as u64) as i32).collect());
    (x, y)
}

fn bench_train(name: &str, src: &str, b: usize, d: usize, args: &Args) -> Result {
    let mut rng = Rng(42);
    let (x, y) = random_batch(&mut rng, b, d, 10);
    bench_train_on(name, src, &x, &y, args)
}

/// W3: random tokens (batch 32, sequence 128, vocabulary 256) and their
/// successors as targets.
fn bench_w3(args: &Args) -> Result {
    let (b, t, vocab) = (32, 128, 256);
    let mut rng = Rng(42);
    let stream: Vec<i32> = (0..b * t + 1).map(|_| (rng.next() % vocab) as i32).collect();
    let x = Tensor::i32(&[b, t], stream[..b * t].to_vec());
    let y = Tensor::i32(&[b, t], stream[1..].to_vec());
    bench_train_on("w3", include_str!("workloads/w3_transformer.jl"), &x, &y, args)
}

fn bench_train_on(name: &str, src: &str, x: &Tensor, y: &Tensor, args: &Args) -> Result {
    let (x, y) = (x.clone(), y.clone());
    let (progs, mut exe, compile) = compile_train(name, src, &x.ty(), &y.ty(), args.backend);
    let step_ms = time_train(&progs, &mut exe, &x, &y, args.runs);
    let interp_ms = args.interp.then(|| {
        let mut interp = Executable::compile(progs.train_step.clone(), Backend::Interpreter).expect("interp");
        median(time_train(&progs, &mut interp, &x, &y, 1))
    });
    // The bytes `CpuFunc::run` copies in and out per call (params, states, batch; new params, states).
    let io_bytes: usize = progs
        .train_step
        .param_types()
        .iter()
        .chain(progs.train_step.output_types().iter())
        .map(|t| t.shape.num_elements() * t.dtype.size_bytes())
        .sum();
    let arena_bytes: usize =
        progs.train_step.insts.iter().map(|i| i.ty.shape.num_elements() * i.ty.dtype.size_bytes()).sum();
    let mut extra =
        vec![("io_MB".to_string(), io_bytes as f64 / 1e6), ("arena_MB".to_string(), arena_bytes as f64 / 1e6)];
    if std::env::var_os("BENCH_OPS").is_some() {
        print_op_histogram(name, &progs.train_step);
    }
    write_ir(name, &progs.train_step);
    let flops = matmul_flops(&progs.train_step);
    extra.push(("matmul_GFLOP".into(), flops / 1e9));
    Result { name: name.into(), compile, ir_insts: progs.train_step.insts.len(), step_ms, interp_ms, extra }
}

fn matmul_flops(f: &Func) -> f64 {
    f.insts
        .iter()
        .filter(|i| matches!(i.op, Op::MatMul))
        .map(|i| {
            let k = f.ty(i.args[0]).shape.dims()[1];
            2.0 * (i.ty.shape.num_elements() * k) as f64
        })
        .sum()
}

/// BENCH_IR=DIR writes the optimized IR text of workload `name` to
/// DIR/<name>.jlir (profiles name JIT chunks `jl_chunkN`: instructions
/// 64N..64N+63 of it) and, where the GPU backend compiles it, its PTX
/// module to DIR/<name>.ptx (kernel names `k{inst}_{op}` are of that IR).
fn write_ir(name: &str, f: &Func) {
    if let Some(dir) = std::env::var_os("BENCH_IR") {
        let path = std::path::Path::new(&dir).join(format!("{name}.jlir"));
        std::fs::write(&path, ir::text::print(f)).expect("BENCH_IR: cannot write");
        if let Ok(program) = compiler::codegen::ptx::emit(f) {
            let path = std::path::Path::new(&dir).join(format!("{name}.ptx"));
            std::fs::write(&path, program.ptx).expect("BENCH_IR: cannot write");
        }
    }
}

/// Instruction count and result megabytes per op kind (set BENCH_OPS=1).
fn print_op_histogram(name: &str, f: &Func) {
    let mut rows: std::collections::BTreeMap<&'static str, (usize, usize)> = Default::default();
    for inst in &f.insts {
        let e = rows.entry(ir::op::name(&inst.op)).or_default();
        e.0 += 1;
        e.1 += inst.ty.shape.num_elements() * inst.ty.dtype.size_bytes();
    }
    eprintln!("{name}: op histogram (count, result MB)");
    for (op, (n, bytes)) in rows {
        eprintln!("  {op:<12} {n:>4} {:>9.3}", bytes as f64 / 1e6);
    }
}

/// Compiles `entry` of the function file `src` at `types` (the embedding
/// API's path: `lower_fn_at`, DCE, the e-graph, codegen), timed by stage.
fn compile_fn(
    name: &str,
    src: &str,
    entry: &str,
    types: &[Type],
    backend: Backend,
) -> (Func, Executable, CompileTimes) {
    let mut t = CompileTimes::default();
    let start = Instant::now();
    let (prog, mut diags) = lower::load(&format!("{name}.jl"), src);
    diags.extend(lower::check_program(&prog));
    if diags.iter().any(Diagnostic::is_error) {
        die(name, &prog, &diags);
    }
    t.front = ms(start);
    let start = Instant::now();
    let func = ir::dce::dce(&lower::lower_fn_at(&prog, entry, types).unwrap_or_else(|d| die(name, &prog, &d)));
    t.lower_ad = ms(start);
    let start = Instant::now();
    let (func, _) = compiler::opt::optimize(&func, &compiler::opt::Options::default());
    ir::verify::assert_valid(&func, "opt::optimize");
    t.opt = ms(start);
    let start = Instant::now();
    let exe = Executable::compile(func.clone(), backend).expect("codegen");
    t.codegen = ms(start);
    if std::env::var_os("BENCH_OPS").is_some() {
        print_op_histogram(name, &func);
    }
    write_ir(name, &func);
    (func, exe, t)
}

/// Times `exe` with every input held and every output kept (so each call
/// moves nothing between host and engine; it still waits for the result),
/// then checks that the outputs are finite.
fn time_held_fn(exe: &mut Executable, inputs: &[Tensor], runs: usize) -> Vec<f64> {
    exe.hold(inputs.iter().cloned().enumerate().collect(), &[]).expect("hold");
    let n_out = exe.func().outputs.len();
    exe.keep_outputs(&(0..n_out).collect::<Vec<_>>()).expect("keep");
    let warmup = 3;
    let mut step_ms = Vec::new();
    for i in 0..warmup + runs {
        let start = Instant::now();
        exe.run_held(vec![]).expect("call");
        let elapsed = ms(start);
        if i >= warmup {
            step_ms.push(elapsed);
        }
    }
    for o in 0..n_out {
        let out = exe.kept_output(o).expect("kept output");
        assert!(out.to_f64_vec().iter().all(|v| v.is_finite()), "output {o} is not finite");
    }
    exe.release().expect("release");
    step_ms
}

/// Times copies of `bytes` the way the backend moves memory: a host memcpy
/// for the CPU, a device-to-device copy for CUDA. Returns milliseconds.
fn time_copies(backend: Backend, bytes: usize, runs: usize) -> Vec<f64> {
    if backend == Backend::Cuda {
        #[cfg(feature = "cuda")]
        return runtime::cuda::time_device_copy(bytes, runs).expect("device copy");
        #[cfg(not(feature = "cuda"))]
        panic!("--backend cuda needs a build with --features cuda");
    }
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let mut copy_ms = Vec::new();
    for i in 0..runs + 3 {
        let start = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        if i >= 3 {
            copy_ms.push(ms(start));
        }
    }
    copy_ms
}

fn bench_w4(args: &Args) -> Result {
    let n = W4_N;
    let ty = Type::new(DType::F32, &[n]);
    let (func, mut exe, t) = compile_fn("w4", W4_SRC, "w4", &[ty.clone(), ty.clone(), ty], args.backend);
    let mut rng = Rng(7);
    let mut data = |lo: f32, hi: f32| Tensor::f32(&[n], (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect());
    let inputs = vec![data(-1.0, 1.0), data(-0.5, 0.5), data(-2.0, 2.0)];

    // The copy baseline: the same 20 bytes per element (84 MB) copied once
    // (read once and written once: twice that in memory traffic).
    let bytes = 20 * n;
    let copy_ms = time_copies(args.backend, bytes, args.runs);
    let step_ms = time_held_fn(&mut exe, &inputs, args.runs);
    let step = median(step_ms.clone());
    let copy = median(copy_ms);
    let gbs = bytes as f64 / (step * 1e6);
    let copy_traffic_gbs = 2.0 * bytes as f64 / (copy * 1e6);
    let interp_ms = args.interp.then(|| {
        let start = Instant::now();
        ir::interp::run(&func, &inputs);
        ms(start)
    });
    Result {
        name: "w4".into(),
        compile: t,
        ir_insts: func.insts.len(),
        step_ms,
        interp_ms,
        extra: vec![
            ("GB/s".into(), gbs),
            ("copy_ms".into(), copy),
            ("copy_traffic_GB/s".into(), copy_traffic_gbs),
            ("of_copy_bandwidth".into(), gbs / copy_traffic_gbs),
        ],
    }
}

fn bench_reduce(args: &Args) -> Result {
    let ty = Type::new(DType::F32, &[8192, 128]);
    let (func, mut exe, t) = compile_fn("reduce", REDUCE_SRC, "reduce", &[ty], args.backend);
    let mut rng = Rng(11);
    let inputs = vec![Tensor::f32(&[8192, 128], (0..8192 * 128).map(|_| rng.uniform() - 0.5).collect())];
    let step_ms = time_held_fn(&mut exe, &inputs, args.runs);
    Result { name: "reduce".into(), compile: t, ir_insts: func.insts.len(), step_ms, interp_ms: None, extra: vec![] }
}

/// W5: the HVP at W1's initialization on a random batch, random tangents.
fn bench_w5(args: &Args) -> Result {
    let b = 128;
    let shapes: [&[usize]; 6] = [&[784, 256], &[256], &[256, 256], &[256], &[256, 10], &[10]];
    let f32_ty = |s: &[usize]| Type::new(DType::F32, s);
    let mut types: Vec<Type> = shapes.iter().map(|s| f32_ty(s)).collect();
    types.push(f32_ty(&[b, 784]));
    types.push(Type::new(DType::I32, &[b]));
    types.extend(shapes.iter().map(|s| f32_ty(s)));
    let (func, mut exe, t) = compile_fn("w5", W5_SRC, "w5", &types, args.backend);
    let mut rng = Rng(5);
    let mut uniform = |s: &[usize], scale: f32| {
        let n: usize = s.iter().product();
        Tensor::f32(s, (0..n).map(|_| scale * (2.0 * rng.uniform() - 1.0)).collect())
    };
    let mut inputs: Vec<Tensor> = shapes.iter().map(|s| uniform(s, 1.0 / (s[0] as f32).sqrt())).collect();
    let (x, y) = random_batch(&mut Rng(42), b, 784, 10);
    inputs.push(x);
    inputs.push(y);
    inputs.extend(shapes.iter().map(|s| uniform(s, 1.0)));
    let step_ms = time_held_fn(&mut exe, &inputs, args.runs);
    let interp_ms = args.interp.then(|| {
        let start = Instant::now();
        ir::interp::run(&func, &inputs);
        ms(start)
    });
    let flops = matmul_flops(&func);
    Result {
        name: "w5".into(),
        compile: t,
        ir_insts: func.insts.len(),
        step_ms,
        interp_ms,
        extra: vec![("matmul_GFLOP".into(), flops / 1e9)],
    }
}

fn main() {
    let args = parse_args();
    let mut results = Vec::new();
    if args.backend == Backend::Cuda {
        // Opens the device (driver and context) before any compile is timed,
        // as the peer's script initializes JAX's backend before its timers
        // (cuBLAS still loads inside the first timed compile).
        #[cfg(feature = "cuda")]
        {
            let device = runtime::cuda::open().expect("--backend cuda: no usable GPU");
            if !args.json {
                println!("device: {}", device.name().unwrap_or_else(|e| e.to_string()));
            }
            // Kept open for the whole run.
            std::mem::forget(device);
        }
        #[cfg(not(feature = "cuda"))]
        panic!("--backend cuda needs a build with --features cuda");
    }
    for w in &args.which {
        let r = match w.as_str() {
            "digits" => bench_train("digits", include_str!("../examples/digits_mlp.jl"), 64, 64, &args),
            "w1" => bench_train("w1", W1_SRC, 128, 784, &args),
            // W2 of PERFORMANCE.md: the CNN example's training step (its logged accuracy included).
            "w2" => bench_train("w2", include_str!("../examples/fashion_mnist_cnn.jl"), 128, 784, &args),
            "w3" => bench_w3(&args),
            "reduce" => bench_reduce(&args),
            "w4" => bench_w4(&args),
            "w5" => bench_w5(&args),
            _ => unreachable!("checked in parse_args"),
        };
        if args.json {
            let mut fields = vec![
                format!("\"impl\": \"ours\""),
                format!("\"backend\": \"{:?}\"", args.backend),
                format!("\"workload\": \"{}\"", r.name),
                format!("\"step_ms\": {:.4}", median(r.step_ms.clone())),
                format!("\"step_min_ms\": {:.4}", r.step_ms.iter().cloned().fold(f64::INFINITY, f64::min)),
                format!("\"runs\": {}", r.step_ms.len()),
                format!("\"compile_ms\": {:.2}", r.compile.total()),
                format!("\"front_ms\": {:.2}", r.compile.front),
                format!("\"lower_autodiff_ms\": {:.2}", r.compile.lower_ad),
                format!("\"opt_ms\": {:.2}", r.compile.opt),
                format!("\"codegen_ms\": {:.2}", r.compile.codegen),
                format!("\"ir_insts\": {}", r.ir_insts),
            ];
            fields.extend(r.extra.iter().map(|(k, v)| format!("\"{k}\": {v:.4}")));
            println!("{{{}}}", fields.join(", "));
        }
        results.push(r);
    }
    if !args.json {
        print_table(&results);
    }
}

fn print_table(results: &[Result]) {
    println!(
        "{:<8} {:>9} {:>8} {:>9} {:>8} {:>9} {:>6} {:>10} {:>10} {:>11}  extra",
        "workload", "compile", "front", "lower+AD", "opt", "codegen", "insts", "step med", "step min", "interp"
    );
    for r in results {
        let c = &r.compile;
        let min = r.step_ms.iter().cloned().fold(f64::INFINITY, f64::min);
        let interp = r.interp_ms.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v:.3}")).collect();
        println!(
            "{:<8} {:>6.1} ms {:>8.1} {:>9.1} {:>8.1} {:>9.1} {:>6} {:>7.3} ms {:>7.3} ms {:>11}  {}",
            r.name,
            c.total(),
            c.front,
            c.lower_ad,
            c.opt,
            c.codegen,
            r.ir_insts,
            median(r.step_ms.clone()),
            min,
            interp,
            extra.join(" ")
        );
    }
    println!(
        "(compile split in ms; step times over {} runs after warm-up, median and min)",
        results.first().map_or(0, |r| r.step_ms.len())
    );
}
