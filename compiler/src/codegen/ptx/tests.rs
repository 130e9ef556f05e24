//! Tests of the PTX emitter that need no GPU: the plan (buffers, aliases,
//! steps), determinism, errors, and — when `ptxas` is installed — that the
//! PTX for every op and dtype assembles for sm_90.
//!
//! `ptxas` is found through `JLC_PTXAS`, then `PATH`, then the
//! `nvidia-cuda-nvcc-cu12` Python wheel (`pip install nvidia-cuda-nvcc-cu12`).
//! Without it the assembly check is skipped with a printed reason. Numerical
//! agreement with the interpreter is tested on a GPU (`tests/it/gpu.rs`).

use super::{emit, PtxError, PtxProgram, Step};
use crate::ir::op::{Conv, Window};
use crate::ir::{Builder, DType, Func, Op, Shape, Type, ValueId};
use std::path::PathBuf;
use std::process::Command;

const ALL_DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::Bool];

/// One function per dtype holding every op that accepts it, in the shapes
/// the CPU backend's tests use (scalars, vectors, rank 3, size-1 dims).
fn op_zoo(dtype: DType) -> Func {
    let dims = [2usize, 3, 4];
    let ty = Type::new(dtype, &dims);
    let cond_ty = ty.with_dtype(DType::Bool);
    let mut b = Builder::new(&format!("zoo_{dtype}"), &[ty.clone(), ty.clone(), cond_ty, Type::scalar(dtype)]);
    let (x, y, c, s) = (b.param(0), b.param(1), b.param(2), b.param(3));
    let mut outs: Vec<ValueId> = Vec::new();
    let float = dtype.is_float();
    if dtype != DType::Bool {
        outs.push(b.neg(x));
        for op in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow] {
            outs.push(b.binary(op, x, y));
        }
        let axis_sets: [&[usize]; 7] = [&[0], &[1], &[2], &[0, 1], &[0, 2], &[1, 2], &[0, 1, 2]];
        for axes in axis_sets {
            outs.push(b.reduce_sum(x, axes.to_vec()));
            outs.push(b.reduce_max(x, axes.to_vec()));
            outs.push(b.reduce_min(x, axes.to_vec()));
        }
        for axis in 0..3 {
            outs.push(b.iota(ty.clone(), axis));
            outs.push(b.argmax(x, axis));
        }
        // Parallel reductions (`ptx/reduce.rs`) of iotas, whose sums are
        // exact in any order (below 2^24): a warp per output ([6, 100] over
        // axis 1), a block per output (a middle axis of 5000), two passes
        // (40000 to a scalar), argmax with ties (the first index wins).
        let rows = b.iota(Type::new(dtype, &[6, 100]), 1);
        let mid = b.iota(Type::new(dtype, &[2, 5000, 3]), 1);
        let tall = b.iota(Type::new(dtype, &[40, 1000]), 0);
        let long = b.reshape(tall, &Shape(vec![40000]));
        outs.push(b.reduce_sum(rows, vec![1]));
        outs.push(b.reduce_max(rows, vec![1]));
        outs.push(b.reduce_min(rows, vec![1]));
        outs.push(b.argmax(rows, 1));
        outs.push(b.reduce_sum(mid, vec![1]));
        outs.push(b.reduce_min(mid, vec![0, 1]));
        outs.push(b.argmax(mid, 1));
        outs.push(b.reduce_sum(long, vec![0]));
        outs.push(b.reduce_max(long, vec![0]));
        outs.push(b.reduce_min(long, vec![0]));
        outs.push(b.argmax(long, 0));
        outs.push(b.unary(Op::Abs, x));
        outs.push(b.unary(Op::Sign, x));
    }
    outs.push(b.unary(Op::StopGradient, x));
    outs.push(b.slice(x, vec![0, 1, 1], vec![2, 3, 4], vec![1, 1, 2]));
    outs.push(b.slice(x, vec![1, 0, 0], vec![2, 3, 4], vec![1, 2, 3]));
    outs.push(b.slice(x, vec![0, 2, 0], vec![2, 2, 4], vec![1, 1, 1]));
    outs.push(b.pad(x, vec![1, 0, 2], vec![0, 2, 1], vec![0, 1, 2]));
    outs.push(b.pad(x, vec![0, 0, 0], vec![0, 0, 1], vec![0, 0, 0]));
    let e = b.slice(x, vec![0, 0, 0], vec![2, 0, 4], vec![1, 1, 1]);
    outs.push(b.pad(e, vec![0, 1, 0], vec![0, 1, 0], vec![0, 3, 0]));
    outs.push(b.concat(vec![x, y, x], 0));
    outs.push(b.concat(vec![x, e, y], 1));
    outs.push(b.concat(vec![y, x], 2));
    for dims in [vec![0], vec![2], vec![0, 2], vec![0, 1, 2]] {
        outs.push(b.reverse(x, dims));
    }
    if float {
        for op in [Op::Exp, Op::Log, Op::Tanh, Op::Sqrt, Op::Rsqrt, Op::Logistic] {
            outs.push(b.unary(op, x));
        }
        for op in [Op::Log1p, Op::Expm1, Op::Sin, Op::Cos, Op::Erf, Op::Floor, Op::Ceil, Op::Round] {
            outs.push(b.unary(op, x));
        }
        let m = b.reshape(x, &Shape(vec![6, 4]));
        let t = b.transpose(m, vec![1, 0]);
        outs.push(b.matmul(m, t));
        // Empty inner dim: a zero fill; empty outer dims: no step.
        let p = b.iota(Type::new(dtype, &[3, 0]), 0);
        let q = b.iota(Type::new(dtype, &[0, 2]), 0);
        outs.push(b.matmul(p, q));
        let r = b.iota(Type::new(dtype, &[0, 3]), 0);
        outs.push(b.matmul(r, p));
    }
    // Embedding lookups (any dtype), their transpose, and the PRNG.
    let idx = b.iota(Type::new(DType::I32, &[3, 2]), 1);
    let g = b.gather(x, idx);
    outs.push(g);
    let key = b.iota(Type::new(DType::I32, &[2]), 0);
    outs.push(b.random_bits(key, &Shape(vec![3, 5])));
    outs.push(b.random_split(key, &Shape(vec![4])));
    // A stack of keys (vmap's batching rule): one block per key.
    let keys = b.iota(Type::new(DType::I32, &[3, 2]), 0);
    outs.push(b.random_bits(keys, &Shape(vec![3, 5])));
    outs.push(b.random_split(keys, &Shape(vec![3, 2])));
    if dtype != DType::Bool {
        outs.push(b.scatter_add(g, idx, 5));
    }
    if float {
        outs.push(b.random_uniform(key, &Type::new(dtype, &[7])));
        outs.push(b.random_uniform(keys, &Type::new(dtype, &[3, 7])));
        let xt = b.transpose(x, vec![0, 2, 1]);
        outs.push(b.batch_matmul(x, xt));
        let window = Window { size: vec![1, 2, 3], stride: vec![1, 1, 2], low: vec![0, 1, 1], high: vec![0, 0, 2] };
        outs.push(b.reduce_window(x, window.clone(), false));
        let pooled = b.reduce_window(x, window.clone(), true);
        outs.push(pooled);
        outs.push(b.select_and_scatter(x, pooled, window));
        let img = b.reshape(x, &Shape(vec![1, 2, 3, 4]));
        let w = b.iota(Type::new(dtype, &[4, 1, 2, 2]), 3);
        let attrs =
            Conv { stride: [1, 2], low: [1, 0], high: [0, 1], lhs_dilation: [2, 1], rhs_dilation: [1, 2], groups: 2 };
        outs.push(b.conv2d(img, w, attrs));
    }
    for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne] {
        outs.push(b.binary(op, x, y));
    }
    outs.push(b.select(c, x, y));
    for to in ALL_DTYPES {
        outs.push(b.push(Op::Convert, vec![x], ty.with_dtype(to)));
    }
    let perms: [&[usize]; 5] = [&[0, 2, 1], &[1, 0, 2], &[1, 2, 0], &[2, 0, 1], &[2, 1, 0]];
    for perm in perms {
        outs.push(b.transpose(x, perm.to_vec()));
    }
    outs.push(b.broadcast(s, &Shape(vec![2, 3]), vec![]));
    let v = b.reshape(x, &Shape(vec![24]));
    outs.push(v);
    outs.push(b.broadcast(v, &Shape(vec![2, 24]), vec![1]));
    let col = b.reshape(x, &Shape(vec![2, 1, 12]));
    outs.push(b.broadcast(col, &Shape(vec![2, 5, 12]), vec![0, 1, 2]));
    for value in [0.0, -0.0, 2.75, f64::NAN, f64::INFINITY, -1e10] {
        outs.push(b.full(value, &Type::new(dtype, &[3, 2])));
    }
    outs.push(x);
    b.finish(outs)
}

/// `func` with each output `o` replaced by a consumer of it that is exact
/// (`-o` for f64, a conversion to f64 otherwise), so that every elementwise
/// op of the zoo is inlined into its consumer's fused kernel (outputs never
/// are). Returns the function and, per output, the instruction it wraps.
fn wrap_outputs(func: &Func) -> (Func, Vec<usize>) {
    let mut f = func.clone();
    f.name = format!("{}_wrapped", func.name);
    let mut inner = Vec::new();
    for k in 0..f.outputs.len() {
        let o = f.outputs[k];
        let ty = f.ty(o).clone();
        let op = if ty.dtype == DType::F64 { Op::Neg } else { Op::Convert };
        f.insts.push(crate::ir::Inst { op, args: vec![o], ty: ty.with_dtype(DType::F64) });
        f.outputs[k] = ValueId((f.insts.len() - 1) as u32);
        inner.push(o.index());
    }
    crate::ir::verify::assert_valid(&f, "wrap_outputs");
    (f, inner)
}

/// The `ptxas` binary, or why there is none.
fn find_ptxas() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("JLC_PTXAS") {
        return Ok(PathBuf::from(p));
    }
    if Command::new("ptxas").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(PathBuf::from("ptxas"));
    }
    let py = Command::new("python3")
        .args(["-c", "import nvidia.cuda_nvcc as m; print(list(m.__path__)[0])"])
        .output()
        .map_err(|e| format!("no ptxas on PATH, JLC_PTXAS unset, python3 not runnable: {e}"))?;
    let dir = String::from_utf8_lossy(&py.stdout).trim().to_string();
    let path = PathBuf::from(dir).join("bin/ptxas");
    if py.status.success() && path.exists() {
        Ok(path)
    } else {
        Err("no ptxas on PATH, JLC_PTXAS unset, and no nvidia-cuda-nvcc-cu12 wheel (pip install nvidia-cuda-nvcc-cu12)"
            .into())
    }
}

/// Assembles `prog` for sm_90 with ptxas; `Ok(false)` when ptxas is absent.
pub(super) fn assemble(label: &str, prog: &PtxProgram) -> bool {
    let ptxas = match find_ptxas() {
        Ok(p) => p,
        Err(why) => {
            println!("skipping ptxas check of {label}: {why}");
            return false;
        }
    };
    let dir = std::env::temp_dir().join(format!("jlc-ptx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{label}.ptx"));
    std::fs::write(&file, &prog.ptx).unwrap();
    let out = Command::new(&ptxas)
        .args(["-arch=sm_90", "-o", "/dev/null"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ptxas.display()));
    assert!(
        out.status.success(),
        "ptxas rejected {label} ({}):\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&file);
    true
}

/// W4 of PERFORMANCE.md at `n` elements (`value_and_grad` of
/// `sum(gelu_tanh(x·w + b)^2)`, `benches/workloads/w4_gelu.jl`), optimized.
pub(super) fn w4_program(n: usize) -> Func {
    let src = include_str!("../../../../benches/workloads/w4_gelu.jl");
    let (program, diags) = crate::lower::load("w4.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let ty = Type::new(DType::F32, &[n]);
    let func = crate::lower::lower_fn_at(&program, "w4", &[ty.clone(), ty.clone(), ty]).unwrap();
    crate::opt::optimize(&crate::ir::dce::dce(&func), &crate::opt::Options::default()).0
}

/// Structural checks every program must pass.
pub(super) fn check_plan(func: &Func, prog: &PtxProgram) {
    assert_eq!(prog.value_buffers.len(), func.insts.len());
    assert_eq!(prog.params.len(), func.n_params);
    assert_eq!(prog.outputs.len(), func.outputs.len());
    for (v, b) in prog.value_buffers.iter().enumerate() {
        let ty = &func.insts[v].ty;
        let Some(b) = *b else {
            // Inlined: neither a param nor an output.
            assert!(!matches!(func.insts[v].op, Op::Param(_)), "param %{v} has no buffer");
            assert!(!func.outputs.iter().any(|o| o.index() == v), "output %{v} has no buffer");
            continue;
        };
        assert_eq!(prog.buffers[b].dtype, ty.dtype, "value %{v}");
        assert_eq!(prog.buffers[b].len, ty.shape.num_elements(), "value %{v}");
    }
    for step in &prog.steps {
        match step {
            Step::Kernel { name, grid, args, inst } => {
                assert!(prog.ptx.contains(&format!(".visible .entry {name}(")), "kernel {name} missing");
                assert!(*grid >= 1 && *grid <= super::MAX_GRID);
                // Writes its output (with a fusion root's hosted values) or a
                // scratch buffer no value owns (a two-pass reduction's
                // partials, a convolution's im2col columns).
                let scratch = !prog.value_buffers.contains(&Some(args[0]));
                assert!(Some(args[0]) == prog.value_buffers[*inst] || scratch, "{name}: output or scratch first");
                assert!(!args[1..].contains(&args[0]), "{name}: reads its own output");
                assert!(args.iter().all(|&b| b < prog.buffers.len()));
            }
            Step::Gemm { batch, m, n, k, a, b, c, inst, offsets, strides, .. } => {
                assert!(*batch > 0 && *m > 0 && *n > 0 && *k > 0);
                // Every matrix lies inside its buffer.
                for (x, (buf, len)) in [(*a, m * k), (*b, k * n), (*c, m * n)].into_iter().enumerate() {
                    assert!(offsets[x] + (batch - 1) * strides[x] + len <= prog.buffers[buf].len, "gemm %{inst}");
                }
                // The product's value, or scratch (a folded convolution's
                // GEMM result, transposed into the value afterwards).
                let scratch = !prog.value_buffers.contains(&Some(*c));
                assert!(Some(*c) == prog.value_buffers[*inst] || scratch, "gemm %{inst}: output or scratch");
            }
        }
    }
}

#[test]
fn every_op_and_dtype_emits_deterministic_ptx_that_assembles() {
    for dtype in ALL_DTYPES {
        for func in [op_zoo(dtype), wrap_outputs(&op_zoo(dtype)).0] {
            let prog = emit(&func).unwrap_or_else(|e| panic!("{dtype}: {e}"));
            assert_eq!(emit(&func).unwrap(), prog, "{dtype}: emitting twice differs");
            check_plan(&func, &prog);
            assert!(prog.ptx.starts_with("//") && prog.ptx.contains(".target sm_80"));
            assert!(!prog.ptx.contains(".approx") && !prog.ptx.contains(".ftz"), "only IEEE-exact arithmetic");
            assemble(&func.name, &prog);
        }
    }
}

#[test]
fn reshape_and_same_dtype_convert_alias_and_matmul_is_a_gemm_step() {
    let ty = Type::new(DType::F32, &[2, 3]);
    let mut b = Builder::new("plan", std::slice::from_ref(&ty));
    let x = b.param(0);
    let r = b.reshape(x, &Shape(vec![3, 2]));
    let same = b.push(Op::Convert, vec![r], Type::new(DType::F32, &[3, 2]));
    let mm = b.matmul(x, same);
    let func = b.finish(vec![mm, r, x]);
    let prog = emit(&func).unwrap();
    check_plan(&func, &prog);
    assert_eq!(prog.value_buffers, vec![Some(0), Some(0), Some(0), Some(1)]);
    assert_eq!(prog.buffers.len(), 2);
    assert_eq!(
        prog.steps,
        vec![Step::Gemm {
            inst: 3,
            dtype: DType::F32,
            batch: 1,
            m: 2,
            n: 2,
            k: 3,
            a: 0,
            b: 0,
            c: 1,
            offsets: [0; 3],
            strides: [6, 6, 4]
        }]
    );
    assert_eq!(prog.params, vec![0]);
    assert_eq!(prog.outputs, vec![1, 0, 0]);
}

#[test]
fn unsupported_and_invalid_functions_are_errors() {
    let ty = Type::new(DType::Bool, &[3]);
    let mut b = Builder::new("neg_bool", std::slice::from_ref(&ty));
    let res = b.neg(b.param(0));
    assert!(matches!(emit(&b.finish(vec![res])), Err(PtxError::Unsupported { inst: 1, .. })));

    let mut b = Builder::new("sum_bool", std::slice::from_ref(&ty));
    let res = b.reduce_sum(b.param(0), vec![0]);
    assert!(matches!(emit(&b.finish(vec![res])), Err(PtxError::Unsupported { inst: 1, .. })));

    // A scan needs a host-driven loop (not yet): a clear error, not a panic.
    let ty = Type::new(DType::F32, &[3]);
    let mut body = Builder::new("body", &[Type::scalar(DType::F32), Type::scalar(DType::F32)]);
    let sum = body.binary(Op::Add, body.param(0), body.param(1));
    let body = std::sync::Arc::new(body.finish(vec![sum, sum]));
    let mut b = Builder::new("scan", &[Type::scalar(DType::F32), ty.clone()]);
    let res = b.scan(body, 0, 1, 3, false, &[b.param(0), b.param(1)]);
    let err = emit(&b.finish(res)).unwrap_err();
    assert!(matches!(err, PtxError::Unsupported { inst: 2, op: "scan", .. }), "{err}");
    assert!(err.to_string().contains("scan: not supported by the GPU backend"), "{err}");

    let mut b = Builder::new("bad", std::slice::from_ref(&ty));
    let res = b.push(Op::Exp, vec![b.param(0)], Type::new(DType::F32, &[4]));
    assert!(matches!(emit(&b.finish(vec![res])), Err(PtxError::InvalidFunc(_))));
}

#[test]
fn large_outputs_are_covered_by_a_capped_grid() {
    let ty = Type::new(DType::F32, &[4096, 4096]);
    let mut b = Builder::new("big", std::slice::from_ref(&ty));
    let res = b.unary(Op::Exp, b.param(0));
    let func = b.finish(vec![res]);
    for vector_loads in [false, true] {
        let prog = super::emit_with(&func, &super::PtxOptions { vector_loads, ..Default::default() }).unwrap();
        match &prog.steps[..] {
            [Step::Kernel { grid, .. }] => assert_eq!(*grid, super::MAX_GRID),
            other => panic!("unexpected steps {other:?}"),
        }
        // The bound is baked into the loop: 4096 * 4096 elements, or a
        // quarter as many groups of four.
        let items = if vector_loads { "4194304" } else { "16777216" };
        assert!(prog.ptx.contains(items), "the loop bound {items} (vector_loads {vector_loads})");
    }
}

// ---------------------------------------------------------------- simulated

use crate::ir::{interp, Tensor};

/// How close a simulated result must be to the interpreter's (the bounds
/// documented in `math.rs`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Tol {
    Bitwise,
    Ulps(u64),
    /// pow: 4 + 2 |y ln|x|| ULP.
    Pow,
}

/// pow's bound: 4 + 2 |y ln|x|| ULP (0 * inf counts as 0).
fn pow_allowed_ulps(x: f64, y: f64) -> f64 {
    let m = (y * x.abs().ln()).abs();
    4.0 + if m.is_nan() { 0.0 } else { 2.0 * m }
}

fn ulps(dtype: DType, a: f64, b: f64) -> u64 {
    let ord = |bits: u64, sign: u64| -> i128 {
        if bits & sign != 0 {
            -((bits & !sign) as i128)
        } else {
            bits as i128
        }
    };
    match dtype {
        DType::F32 => (ord((a as f32).to_bits() as u64, 1 << 31) - ord((b as f32).to_bits() as u64, 1 << 31))
            .unsigned_abs() as u64,
        _ => (ord(a.to_bits(), 1 << 63) - ord(b.to_bits(), 1 << 63)).unsigned_abs() as u64,
    }
}

#[track_caller]
pub(super) fn assert_sim(label: &str, func: &Func, inputs: &[Tensor], tol: Tol) {
    let want = interp::run(func, inputs);
    let got = super::sim::run(&emit(func).unwrap(), inputs);
    assert_eq!(want.len(), got.len(), "{label}");
    for (k, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.ty(), g.ty(), "{label}: output {k}");
        let (wv, gv) = (w.to_f64_vec(), g.to_f64_vec());
        for i in 0..wv.len() {
            let (x, y) = (wv[i], gv[i]);
            let ok = if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if !w.dtype().is_float() || x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                match tol {
                    Tol::Bitwise => ulps(w.dtype(), x, y) == 0 && x.is_sign_negative() == y.is_sign_negative(),
                    Tol::Ulps(n) => ulps(w.dtype(), x, y) <= n,
                    Tol::Pow => {
                        let (a, b) = (inputs[0].to_f64_vec()[i], inputs[1].to_f64_vec()[i]);
                        ulps(w.dtype(), x, y) as f64 <= pow_allowed_ulps(a, b)
                    }
                }
            };
            let args: Vec<f64> = inputs.iter().filter(|t| t.len() == wv.len()).map(|t| t.to_f64_vec()[i]).collect();
            assert!(
                ok,
                "{label}: output {k}[{i}] interp {x:e} vs ptx {y:e} ({} ULP, tol {tol:?}), args {args:?}",
                ulps(w.dtype(), x, y)
            );
        }
    }
}

fn specials(dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F32 | DType::F64 => vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.5,
            7.9,
            -7.9,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1e-40,
            3.0e38,
            -3.0e38,
            2147483520.0,
            2147483648.0,
            -2147483904.0,
            1e300,
            1e-310,
            88.7,
            -103.9,
            709.7,
            -745.0,
            0.3,
            1e-8,
            3.0,
            2.0,
            -20.0,
        ],
        DType::I32 => [0, 1, -1, 2, -2, 7, -7, 100, i32::MAX, i32::MIN, i32::MIN + 1, 46341, -65536, 3, 31, -31]
            .iter()
            .map(|&x| x as f64)
            .collect(),
        DType::Bool => vec![0.0, 1.0],
    }
}

/// splitmix64 in [0, 1).
fn rand01(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
}

/// log1p, expm1, sin, cos and erf: the bounds documented in `math.rs`.
const NEW_MATH_F32_ULPS: u64 = 1;
const NEW_MATH_F64_ULPS: u64 = 2;

/// Logistic's documented bounds (`math.rs`).
const LOGISTIC_F32_ULPS: u64 = 3;
const LOGISTIC_F64_ULPS: u64 = 4;

fn math_tol(op: &Op, dtype: DType) -> Tol {
    match (op, dtype) {
        (Op::Pow, DType::I32) => Tol::Bitwise,
        (Op::Tanh, DType::F32) => Tol::Ulps(3),
        (Op::Logistic, DType::F32) => Tol::Ulps(LOGISTIC_F32_ULPS),
        (Op::Logistic, _) => Tol::Ulps(LOGISTIC_F64_ULPS),
        (Op::Exp | Op::Log | Op::Pow, DType::F32) => Tol::Ulps(1),
        (Op::Exp | Op::Log, _) => Tol::Ulps(2),
        (Op::Tanh, _) => Tol::Ulps(4),
        (Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf, DType::F32) => Tol::Ulps(NEW_MATH_F32_ULPS),
        (Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf, _) => Tol::Ulps(NEW_MATH_F64_ULPS),
        (Op::Pow, _) => Tol::Pow,
        _ => Tol::Bitwise,
    }
}

#[test]
fn simulated_unary_ops_match_interp_within_documented_bounds() {
    let mut seed = 11u64;
    for dtype in [DType::F32, DType::F64] {
        let mut v = specials(dtype);
        for _ in 0..1500 {
            let mag = 10f64.powf(rand01(&mut seed) * 8.5 - 6.0);
            v.push(if rand01(&mut seed) < 0.5 { -mag } else { mag });
        }
        let ty = Type::new(dtype, &[v.len()]);
        for op in [
            Op::Neg,
            Op::Exp,
            Op::Log,
            Op::Tanh,
            Op::Sqrt,
            Op::Rsqrt,
            Op::Logistic,
            Op::Abs,
            Op::Sign,
            Op::StopGradient,
            Op::Floor,
            Op::Ceil,
            Op::Round,
        ] {
            let mut b = Builder::new("unary", std::slice::from_ref(&ty));
            let r = b.unary(op.clone(), b.param(0));
            let func = b.finish(vec![r]);
            assert_sim(
                &format!("{op:?} {dtype} (seed 11)"),
                &func,
                &[Tensor::from_f64(dtype, &[v.len()], &v)],
                math_tol(&op, dtype),
            );
        }
    }
}

#[test]
fn simulated_i32_abs_sign_neg_match_interp_bitwise() {
    let v = specials(DType::I32);
    let ty = Type::new(DType::I32, &[v.len()]);
    for op in [Op::Neg, Op::Abs, Op::Sign, Op::StopGradient] {
        let mut b = Builder::new("unary_i32", std::slice::from_ref(&ty));
        let r = b.unary(op.clone(), b.param(0));
        let func = b.finish(vec![r]);
        assert_sim(&format!("{op:?} i32"), &func, &[Tensor::from_f64(DType::I32, &[v.len()], &v)], Tol::Bitwise);
    }
}

/// Float NaN payloads: abs clears only the sign bit; sign passes NaN
/// through; both bitwise as the interpreter (which `assert_sim` cannot see:
/// it treats all NaNs alike).
#[test]
fn simulated_abs_and_sign_keep_nan_payloads_and_signed_zeros() {
    let bits = [0x7fc0_0001u32, 0xffc0_0002, 0x8000_0000, 0x0000_0000, 0xff80_0000, 0x8000_0001];
    let v: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    let ty = Type::new(DType::F32, &[v.len()]);
    for op in [Op::Abs, Op::Sign] {
        let mut b = Builder::new("bits", std::slice::from_ref(&ty));
        let r = b.unary(op.clone(), b.param(0));
        let func = b.finish(vec![r]);
        let inputs = [Tensor::f32(&[v.len()], v.clone())];
        let want = interp::run(&func, &inputs);
        let got = super::sim::run(&emit(&func).unwrap(), &inputs);
        match (&want[0].data, &got[0].data) {
            (crate::ir::Data::F32(w), crate::ir::Data::F32(g)) => {
                let (w, g): (Vec<u32>, Vec<u32>) =
                    (w.iter().map(|x| x.to_bits()).collect(), g.iter().map(|x| x.to_bits()).collect());
                assert_eq!(w, g, "{op:?}: interp vs ptx bits");
            }
            other => panic!("{other:?}"),
        }
    }
}

/// (The zoo above assembles these kernels with ptxas; here only the
/// simulator runs, as one ptxas call per case would take most of a minute.)
#[test]
fn simulated_slice_pad_concat_reverse_argmax_match_interp_bitwise() {
    let mut seed = 16u64;
    let mut random = |ty: &Type| {
        let sp = specials(ty.dtype);
        let v: Vec<f64> = (0..ty.shape.num_elements())
            .map(|i| match ty.dtype {
                DType::Bool => (rand01(&mut seed) < 0.5) as u8 as f64,
                // Small integers so argmax sees ties; some specials.
                _ if i % 5 == 0 => sp[(i / 5) % sp.len()],
                _ => (rand01(&mut seed) * 6.0 - 3.0).round(),
            })
            .collect();
        Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
    };
    for dtype in ALL_DTYPES {
        let shapes: [&[usize]; 5] = [&[7], &[2, 3, 4], &[1, 5, 1], &[4, 0, 3], &[3, 1]];
        for dims in shapes {
            let ty = Type::new(dtype, dims);
            let rank = dims.len();
            let x = random(&ty);
            let mut cases: Vec<(String, Func, Vec<Tensor>)> = Vec::new();
            // Slices: a middle window with stride 2, and a tail.
            let mut b = Builder::new("slice", std::slice::from_ref(&ty));
            let start: Vec<usize> = dims.iter().map(|&d| d.min(1)).collect();
            let stride: Vec<usize> = (0..rank).map(|d| 1 + d % 2 + (d == 0) as usize).collect();
            let r1 = b.slice(b.param(0), start.clone(), dims.to_vec(), stride);
            let r2 = b.slice(b.param(0), start, dims.to_vec(), vec![1; rank]);
            cases.push((format!("slice {ty}"), b.finish(vec![r1, r2]), vec![x.clone()]));
            // Pads: low/high/interior mixed per dim.
            for (lo, hi, int) in [(1, 0, 0), (0, 2, 1), (2, 1, 3)] {
                let mut b = Builder::new("pad", std::slice::from_ref(&ty));
                let low: Vec<usize> = (0..rank).map(|d| if d % 2 == 0 { lo } else { hi }).collect();
                let high: Vec<usize> = (0..rank).map(|d| if d % 2 == 0 { hi } else { lo }).collect();
                let r = b.pad(b.param(0), low, high, vec![int; rank]);
                cases.push((format!("pad {ty} {lo} {hi} {int}"), b.finish(vec![r]), vec![x.clone()]));
            }
            // Concats along every axis: three operands, one empty on that axis.
            for axis in 0..rank {
                let mut other = dims.to_vec();
                other[axis] = 2;
                let mut empty = dims.to_vec();
                empty[axis] = 0;
                let (oty, ety) = (Type::new(dtype, &other), Type::new(dtype, &empty));
                let mut b = Builder::new("concat", &[ty.clone(), oty.clone(), ety.clone()]);
                let r = b.concat(vec![b.param(0), b.param(2), b.param(1), b.param(0)], axis);
                cases.push((
                    format!("concat {ty} axis {axis}"),
                    b.finish(vec![r]),
                    vec![x.clone(), random(&oty), random(&ety)],
                ));
            }
            // Reverses along every subset of dims.
            for mask in 1..(1usize << rank) {
                let rev: Vec<usize> = (0..rank).filter(|d| mask & (1 << d) != 0).collect();
                let mut b = Builder::new("reverse", std::slice::from_ref(&ty));
                let r = b.reverse(b.param(0), rev.clone());
                cases.push((format!("reverse {ty} {rev:?}"), b.finish(vec![r]), vec![x.clone()]));
            }
            if dtype != DType::Bool {
                for (axis, &len) in dims.iter().enumerate() {
                    if len == 0 {
                        continue;
                    }
                    let mut b = Builder::new("argmax", std::slice::from_ref(&ty));
                    let r = b.argmax(b.param(0), axis);
                    cases.push((format!("argmax {ty} axis {axis}"), b.finish(vec![r]), vec![x.clone()]));
                }
            }
            for (label, func, inputs) in cases {
                assert_sim(&label, &func, &inputs, Tol::Bitwise);
            }
        }
    }
    // Argmax corner cases: NaN first/later, ties, -0 vs +0, all -inf.
    let rows: [[f64; 4]; 6] = [
        [1.0, f64::NAN, 3.0, f64::NAN],
        [f64::NAN, 5.0, f64::NAN, 1.0],
        [2.0, 2.0, 1.0, 2.0],
        [-0.0, 0.0, -0.0, 0.0],
        [f64::NEG_INFINITY; 4],
        [-1.0, f64::INFINITY, f64::INFINITY, -5.0],
    ];
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    for dtype in [DType::F32, DType::F64] {
        let ty = Type::new(dtype, &[6, 4]);
        for axis in 0..2 {
            let mut b = Builder::new("argmax_nan", std::slice::from_ref(&ty));
            let r = b.argmax(b.param(0), axis);
            let func = b.finish(vec![r]);
            assert_sim(
                &format!("argmax specials {dtype} axis {axis}"),
                &func,
                &[Tensor::from_f64(dtype, &[6, 4], &flat)],
                Tol::Bitwise,
            );
        }
    }
}

#[test]
fn simulated_binary_compare_select_convert_match_interp_on_special_pairs() {
    let mut seed = 12u64;
    for dtype in ALL_DTYPES {
        let mut vals = specials(dtype);
        if dtype.is_float() {
            vals.extend((0..10).map(|_| rand01(&mut seed) * 8.0 - 4.0));
        }
        let mut lhs = Vec::new();
        let mut rhs = Vec::new();
        for &x in &vals {
            for &y in &vals {
                lhs.push(x);
                rhs.push(y);
            }
        }
        let n = lhs.len();
        let ty = Type::new(dtype, &[n]);
        let inputs = [Tensor::from_f64(dtype, &[n], &lhs), Tensor::from_f64(dtype, &[n], &rhs)];
        let mut ops = vec![Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne];
        if dtype != DType::Bool {
            ops.extend([Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow]);
        }
        for op in ops {
            let mut b = Builder::new("binary", &[ty.clone(), ty.clone()]);
            let r = b.binary(op.clone(), b.param(0), b.param(1));
            let func = b.finish(vec![r]);
            assert_sim(&format!("{op:?} {dtype}"), &func, &inputs, math_tol(&op, dtype));
        }
        let cond: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
        let mut b = Builder::new("select", &[ty.with_dtype(DType::Bool), ty.clone(), ty.clone()]);
        let r = b.select(b.param(0), b.param(1), b.param(2));
        let func = b.finish(vec![r]);
        assert_sim(
            &format!("select {dtype}"),
            &func,
            &[Tensor::bool(&[n], cond), inputs[0].clone(), inputs[1].clone()],
            Tol::Bitwise,
        );
        for to in ALL_DTYPES {
            let mut b = Builder::new("convert", std::slice::from_ref(&ty));
            let r = b.push(Op::Convert, vec![b.param(0)], ty.with_dtype(to));
            let func = b.finish(vec![r]);
            assert_sim(&format!("convert {dtype} -> {to}"), &func, &inputs[..1], Tol::Bitwise);
        }
    }
}

#[test]
fn simulated_zoo_matches_interp_for_every_dtype() {
    let mut seed = 13u64;
    for (dtype, wrapped) in ALL_DTYPES.into_iter().flat_map(|d| [(d, false), (d, true)]) {
        // Wrapped: every elementwise op is inlined into a fused kernel.
        let (func, inner) = if wrapped {
            wrap_outputs(&op_zoo(dtype))
        } else {
            (op_zoo(dtype), op_zoo(dtype).outputs.iter().map(|o| o.index()).collect())
        };
        let inputs: Vec<Tensor> = func
            .param_types()
            .iter()
            .map(|ty| {
                let sp = specials(ty.dtype);
                let v: Vec<f64> = (0..ty.shape.num_elements())
                    .map(|i| {
                        if i % 2 == 0 {
                            sp[(i / 2) % sp.len()]
                        } else {
                            ((rand01(&mut seed) * 20.0 - 10.0) * 4.0).round() / 4.0
                        }
                    })
                    .map(|x| if ty.dtype == DType::Bool { (x != 0.0) as u8 as f64 } else { x })
                    .collect();
                Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
            })
            .collect();
        // The zoo mixes exact ops with exp/log/tanh/pow: compare those
        // outputs by ULP, everything else bitwise.
        let want = interp::run(&func, &inputs);
        let got = super::sim::run(&emit(&func).unwrap(), &inputs);
        for (k, (&o, (w, g))) in inner.iter().zip(want.iter().zip(&got)).enumerate() {
            let op = &func.insts[o].op;
            let tol = math_tol(op, dtype);
            let (wv, gv) = (w.to_f64_vec(), g.to_f64_vec());
            let xs = inputs[0].to_f64_vec();
            for i in 0..wv.len() {
                let (x, y) = (wv[i], gv[i]);
                // sin/cos give NaN beyond their documented range.
                let out_of_range = matches!(op, Op::Sin | Op::Cos) && xs[i].abs() > super::math::SIN_COS_MAX;
                let ok = (x.is_nan() && y.is_nan())
                    || (out_of_range && y.is_nan())
                    || match tol {
                        Tol::Bitwise => x.to_bits() == y.to_bits(),
                        Tol::Ulps(n) => x == y || ulps(dtype, x, y) <= n,
                        // Checked precisely in the pair test; here only plumbing.
                        Tol::Pow => x == y || ((x - y) / x).abs() < 1e-12,
                    };
                assert!(ok, "zoo {dtype} (wrapped: {wrapped}): output {k} ({op:?})[{i}]: interp {x:e} vs ptx {y:e}");
            }
        }
    }
}

#[test]
fn simulated_reductions_match_interp_bitwise() {
    let mut seed = 14u64;
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for dims in [vec![2, 3, 4], vec![3, 1, 5], vec![9], vec![0, 3], vec![5, 0]] {
            let rank = dims.len();
            for mask in 1..(1usize << rank) {
                let axes: Vec<usize> = (0..rank).filter(|a| mask & (1 << a) != 0).collect();
                for how in ["sum", "max", "min"] {
                    let ty = Type::new(dtype, &dims);
                    let mut b = Builder::new("reduce", std::slice::from_ref(&ty));
                    let r = match how {
                        "max" => b.reduce_max(b.param(0), axes.clone()),
                        "min" => b.reduce_min(b.param(0), axes.clone()),
                        _ => b.reduce_sum(b.param(0), axes.clone()),
                    };
                    let func = b.finish(vec![r]);
                    let mut v: Vec<f64> = (0..ty.shape.num_elements())
                        .map(|_| match dtype {
                            DType::I32 => (rand01(&mut seed) * 4e9 - 2e9).floor(),
                            _ => (rand01(&mut seed) * 2.0 - 1.0) * 10f64.powi((rand01(&mut seed) * 8.0) as i32),
                        })
                        .collect();
                    if dtype.is_float() && v.len() >= 24 {
                        v[5] = -0.0;
                        v[11] = f64::NAN;
                        v[17] = f64::INFINITY;
                    }
                    if dtype.is_float() && v.len() >= 8 && how == "min" {
                        // -0 vs +0 ties: -0 must win.
                        v[1] = 0.0;
                        v[2] = -0.0;
                    }
                    let label = format!("{how} {ty} {axes:?}");
                    assert_sim(&label, &func, &[Tensor::from_f64(dtype, &dims, &v)], Tol::Bitwise);
                }
            }
        }
    }
}

/// The digits training step (the program `jlc run examples/digits_mlp.jl`
/// runs) assembles and, simulated, agrees with the interpreter as the CPU JIT must
/// (rtol 1e-5: exp/log differ by an ULP, and so does everything after).
#[test]
fn simulated_digits_training_step_matches_interp() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let (prog, diags) = crate::lower::load("digits_mlp.jl", &text);
    assert!(diags.is_empty());
    let (x_ty, y_ty) = (Type::new(DType::F32, &[8, 64]), Type::new(DType::I32, &[8]));
    let progs = crate::compile_training(&prog, None, &x_ty, &y_ty, &crate::Options::default()).unwrap();
    let mut seed = 15u64;
    let mut inputs: Vec<Tensor> = progs
        .params
        .iter()
        .map(|p| {
            let v: Vec<f64> = (0..p.ty.shape.num_elements()).map(|_| rand01(&mut seed) * 0.4 - 0.2).collect();
            Tensor::from_f64(DType::F32, p.ty.shape.dims(), &v)
        })
        .collect();
    for (p, _) in progs.state_specs() {
        {
            let v: Vec<f64> = (0..p.ty.shape.num_elements()).map(|_| rand01(&mut seed) * 0.01).collect();
            inputs.push(Tensor::from_f64(DType::F32, p.ty.shape.dims(), &v));
        }
    }
    inputs.push(Tensor::scalar_f32(3.0));
    inputs.push(Tensor::f32(&[8, 64], (0..512).map(|i| ((i * 37 % 17) as f32) / 16.0).collect()));
    inputs.push(Tensor::i32(&[8], (0..8).map(|i| i % 10).collect()));
    for func in [&progs.train_step, progs.val_step.as_ref().unwrap()] {
        let ins: Vec<Tensor> = if std::ptr::eq(func, &progs.train_step) {
            inputs.clone()
        } else {
            let mut v = inputs[..progs.params.len()].to_vec();
            v.extend(inputs[inputs.len() - 2..].iter().cloned());
            v
        };
        let want = interp::run(func, &ins);
        let ptx = emit(func).unwrap();
        assemble(&format!("digits_{}", func.name), &ptx);
        let got = super::sim::run(&ptx, &ins);
        assert_eq!(want.len(), got.len());
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.ty(), g.ty());
            for (i, (p, q)) in w.to_f64_vec().iter().zip(g.to_f64_vec()).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + p.abs().max(q.abs())),
                    "{}: output {k}[{i}]: interp {p} vs ptx {q}",
                    func.name
                );
            }
        }
    }
}

/// Row tables `[V, rest..]` and index tensors with out-of-range (negative and
/// too large) and duplicate indices, so gather clamps and scatter_add
/// accumulates in the interpreter's order (checked bitwise: mixed magnitudes
/// make the float sums order-sensitive).
#[test]
fn simulated_gather_and_scatter_add_match_interp_bitwise() {
    let mut seed = 17u64;
    let pool = [-3, 0, 4, 2, 2, 100, 1, -1, 2, i32::MIN, 0, 3, i32::MAX];
    for dtype in ALL_DTYPES {
        for (v, rest) in [(5usize, vec![3usize]), (1, vec![2, 2]), (4, vec![]), (3, vec![0])] {
            for idx_dims in [vec![6usize], vec![2, 3], vec![], vec![0]] {
                let mut table_dims = vec![v];
                table_dims.extend(&rest);
                let table_ty = Type::new(dtype, &table_dims);
                let idx_ty = Type::new(DType::I32, &idx_dims);
                let n_idx = idx_ty.shape.num_elements();
                let indices = Tensor::i32(&idx_dims, (0..n_idx).map(|i| pool[i % pool.len()]).collect());
                let mut random = |ty: &Type| {
                    let v: Vec<f64> = (0..ty.shape.num_elements())
                        .map(|_| match ty.dtype {
                            DType::Bool => (rand01(&mut seed) < 0.5) as u8 as f64,
                            DType::I32 => (rand01(&mut seed) * 4e9 - 2e9).floor(),
                            _ => (rand01(&mut seed) * 2.0 - 1.0) * 10f64.powi((rand01(&mut seed) * 8.0) as i32),
                        })
                        .collect();
                    Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
                };
                let mut b = Builder::new("gather", &[table_ty.clone(), idx_ty.clone()]);
                let r = b.gather(b.param(0), b.param(1));
                let func = b.finish(vec![r]);
                let label = format!("gather {table_ty} at {idx_ty} (seed 17)");
                assert_sim(&label, &func, &[random(&table_ty), indices.clone()], Tol::Bitwise);
                if dtype == DType::Bool {
                    continue;
                }
                let mut upd_dims = idx_dims.clone();
                upd_dims.extend(&rest);
                let upd_ty = Type::new(dtype, &upd_dims);
                let mut b = Builder::new("scatter_add", &[upd_ty.clone(), idx_ty.clone()]);
                let r = b.scatter_add(b.param(0), b.param(1), v);
                let func = b.finish(vec![r]);
                let label = format!("scatter_add {upd_ty} at {idx_ty} into {v} rows (seed 17)");
                assert_sim(&label, &func, &[random(&upd_ty), indices], Tol::Bitwise);
            }
        }
    }
}

/// threefry2x32 in PTX gives the interpreter's bits (which `ir::threefry`
/// checks against JAX) for bits, split and uniform, on several keys and
/// shapes. (The counter's high word is 0 here: 2^32 elements are too many
/// for the simulator.)
#[test]
fn simulated_random_ops_match_interp_bitwise() {
    let keys = [[0, 0], [42, -7], [i32::MIN, i32::MAX], [0x1234_5678, -0x1234]];
    let shapes: [&[usize]; 5] = [&[7], &[2, 3, 4], &[], &[0], &[3, 1]];
    for key in keys {
        for dims in shapes {
            let key_ty = Type::new(DType::I32, &[2]);
            let mut b = Builder::new("random", std::slice::from_ref(&key_ty));
            let k = b.param(0);
            let shape = Shape(dims.to_vec());
            let outs = vec![
                b.random_bits(k, &shape),
                b.random_split(k, &shape),
                b.random_uniform(k, &Type::new(DType::F32, dims)),
                b.random_uniform(k, &Type::new(DType::F64, dims)),
            ];
            let func = b.finish(outs);
            assert_sim(&format!("random {key:?} {dims:?}"), &func, &[Tensor::i32(&[2], key.to_vec())], Tol::Bitwise);
        }
    }
}

fn random_float(dtype: DType, dims: &[usize], seed: &mut u64) -> Tensor {
    let mut v: Vec<f64> = (0..dims.iter().product::<usize>())
        .map(|_| (rand01(seed) * 2.0 - 1.0) * 10f64.powi((rand01(seed) * 6.0) as i32 - 2))
        .collect();
    // Specials where there is room: NaN, -0 next to +0, -inf.
    if v.len() > 40 {
        v[3] = f64::NAN;
        v[10] = -0.0;
        v[11] = 0.0;
        v[29] = f64::NEG_INFINITY;
    }
    Tensor::from_f64(dtype, dims, &v)
}

/// Pooling windows with strides and padding (including windows entirely in
/// the padding: sum 0, max -inf), on ranks 1 to 4, bitwise.
#[test]
fn simulated_reduce_windows_match_interp_bitwise() {
    let mut seed = 18u64;
    #[allow(clippy::type_complexity)]
    let cases: [(&[usize], &[usize], &[usize], &[usize], &[usize]); 5] = [
        // dims, size, stride, low, high
        (&[2, 3, 7, 6], &[1, 1, 3, 3], &[1, 1, 2, 2], &[0, 0, 1, 0], &[0, 0, 1, 2]),
        (&[9], &[3], &[2], &[4], &[4]),
        (&[3, 1, 5], &[2, 1, 2], &[1, 1, 1], &[1, 0, 0], &[0, 0, 1]),
        (&[4, 4], &[4, 4], &[1, 1], &[0, 0], &[0, 0]),
        (&[2, 1, 3], &[1, 2, 2], &[1, 1, 1], &[0, 1, 0], &[0, 0, 0]),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (dims, size, stride, low, high) in cases {
            let ty = Type::new(dtype, dims);
            let x = random_float(dtype, dims, &mut seed);
            let w = Window { size: size.to_vec(), stride: stride.to_vec(), low: low.to_vec(), high: high.to_vec() };
            for is_max in [false, true] {
                let mut b = Builder::new("window", std::slice::from_ref(&ty));
                let r = b.reduce_window(b.param(0), w.clone(), is_max);
                let func = b.finish(vec![r]);
                let label = format!("reduce_window max={is_max} {ty} {w:?} (seed 18)");
                assert_sim(&label, &func, std::slice::from_ref(&x), Tol::Bitwise);
            }
        }
    }
}

/// Max pooling's backward on the pooling cases above (overlapping windows,
/// padding, windows all in padding), with NaN, signed zeros and ties, bitwise.
#[test]
fn simulated_select_and_scatter_matches_interp_bitwise() {
    let mut seed = 23u64;
    #[allow(clippy::type_complexity)]
    let cases: [(&[usize], &[usize], &[usize], &[usize], &[usize]); 5] = [
        // dims, size, stride, low, high
        (&[2, 3, 7, 6], &[1, 1, 3, 3], &[1, 1, 2, 2], &[0, 0, 1, 0], &[0, 0, 1, 2]),
        (&[9], &[3], &[2], &[4], &[4]),
        (&[3, 1, 5], &[2, 1, 2], &[1, 1, 1], &[1, 0, 0], &[0, 0, 1]),
        (&[2, 2, 6, 6], &[1, 1, 2, 2], &[1, 1, 2, 2], &[0, 0, 0, 0], &[0, 0, 0, 0]),
        (&[2, 1, 3], &[1, 2, 2], &[1, 1, 1], &[0, 1, 0], &[0, 0, 0]),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (dims, size, stride, low, high) in cases {
            let ty = Type::new(dtype, dims);
            let w = Window { size: size.to_vec(), stride: stride.to_vec(), low: low.to_vec(), high: high.to_vec() };
            let ct_dims = crate::ir::window::reduce_window_dims(&ty, &w).unwrap();
            let ct_ty = Type::new(dtype, &ct_dims);
            let mut b = Builder::new("scatter", &[ty.clone(), ct_ty.clone()]);
            let r = b.select_and_scatter(b.param(0), b.param(1), w.clone());
            let func = b.finish(vec![r]);
            let ct = random_float(dtype, &ct_dims, &mut seed);
            let x = random_float(dtype, dims, &mut seed);
            let label = format!("select_and_scatter {ty} {w:?} (seed 23)");
            assert_sim(&label, &func, &[x, ct.clone()], Tol::Bitwise);
            let ties: Vec<f64> = (0..ty.shape.num_elements()).map(|i| (i % 2) as f64).collect();
            let x = Tensor::from_f64(dtype, dims, &ties);
            assert_sim(&format!("{label} ties"), &func, &[x, ct], Tol::Bitwise);
        }
    }
}

/// Convolutions with stride, asymmetric padding, input and kernel dilation,
/// groups (2 and depthwise) and 1x1 kernels, bitwise.
#[test]
fn simulated_conv2d_matches_interp_bitwise() {
    let mut seed = 19u64;
    let conv =
        |stride, low, high, ld, rd, groups| Conv { stride, low, high, lhs_dilation: ld, rhs_dilation: rd, groups };
    let cases: Vec<(&[usize], &[usize], Conv)> = vec![
        (&[2, 3, 5, 5], &[4, 3, 3, 3], Conv::plain()),
        (&[1, 2, 6, 5], &[3, 2, 3, 2], conv([2, 2], [1, 0], [1, 2], [1, 1], [1, 1], 1)),
        (&[1, 2, 4, 4], &[2, 2, 2, 3], conv([1, 1], [1, 2], [1, 2], [2, 1], [1, 2], 1)),
        (&[2, 4, 4, 4], &[6, 2, 2, 2], conv([1, 2], [0, 1], [1, 0], [1, 1], [1, 1], 2)),
        (&[1, 3, 4, 4], &[3, 1, 3, 3], conv([1, 1], [1, 1], [1, 1], [1, 1], [1, 1], 3)),
        (&[2, 3, 3, 2], &[5, 3, 1, 1], conv([2, 1], [0, 0], [0, 0], [1, 1], [1, 1], 1)),
        (&[1, 1, 3, 3], &[1, 1, 2, 2], conv([3, 3], [2, 2], [2, 2], [3, 2], [2, 1], 1)),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (ld, rd, attrs) in &cases {
            let (lt, rt) = (Type::new(dtype, ld), Type::new(dtype, rd));
            let mut b = Builder::new("conv", &[lt.clone(), rt.clone()]);
            let r = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let func = b.finish(vec![r]);
            let inputs = [random_float(dtype, ld, &mut seed), random_float(dtype, rd, &mut seed)];
            assert_sim(&format!("conv2d {lt} x {rt} {attrs:?} (seed 19)"), &func, &inputs, Tol::Bitwise);
        }
    }
}

/// Convolutions with at least `conv_gemm::MIN_TAPS` taps are an im2col
/// kernel plus one GEMM per group (weight batch stride 0); in the simulator
/// (the interpreter's product per matrix) they match the interpreter's
/// convolution within the GEMM bound `T * eps * sum |x w|` — padding
/// and dilation, groups, a weight-gradient-like shape (taps = batch x image).
#[test]
fn simulated_conv2d_by_gemm_matches_interp_within_the_gemm_bound() {
    let mut seed = 23u64;
    let conv =
        |stride, low, high, ld, rd, groups| Conv { stride, low, high, lhs_dilation: ld, rhs_dilation: rd, groups };
    let cases: Vec<(&[usize], &[usize], Conv)> = vec![
        (&[2, 32, 6, 6], &[4, 32, 3, 3], Conv::plain()),
        (&[1, 64, 5, 7], &[4, 32, 3, 3], conv([2, 1], [1, 0], [0, 2], [2, 1], [1, 2], 2)),
        (&[3, 8, 9, 9], &[5, 8, 7, 7], conv([1, 1], [0, 0], [0, 0], [1, 1], [1, 1], 1)),
        // 64 output positions: the per-image layout (the others fold).
        (&[2, 32, 10, 10], &[4, 32, 3, 3], conv([1, 1], [0, 0], [0, 0], [1, 1], [1, 1], 1)),
        (&[2, 64, 10, 10], &[6, 32, 3, 3], conv([1, 1], [1, 1], [1, 1], [1, 1], [1, 1], 2)),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (ld, rd, attrs) in &cases {
            let (lt, rt) = (Type::new(dtype, ld), Type::new(dtype, rd));
            let mut b = Builder::new("conv", &[lt.clone(), rt.clone()]);
            let r = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let func = b.finish(vec![r]);
            let prog = emit(&func).unwrap();
            check_plan(&func, &prog);
            let n_gemm = prog.steps.iter().filter(|s| matches!(s, Step::Gemm { .. })).count();
            assert_eq!(n_gemm, attrs.groups, "{lt} x {rt}: one GEMM per group");
            assert!(prog.ptx.contains("_im2col("), "{lt} x {rt}: an im2col kernel");
            let positions = func.insts.last().unwrap().ty.shape.0[2..].iter().product::<usize>();
            let folded = positions < super::conv_gemm::FOLD_BELOW_P;
            assert_eq!(prog.ptx.contains("_unfold("), folded, "{lt} x {rt}: folded iff < FOLD_BELOW_P positions");
            assemble(&format!("conv_gemm_{dtype}"), &prog);
            // Finite values (non-finite weights differ at padded taps: see conv_gemm.rs).
            let finite = |t: Tensor| {
                let v: Vec<f64> = t.to_f64_vec().iter().map(|x| if x.is_finite() { *x } else { 0.5 }).collect();
                Tensor::from_f64(dtype, t.shape.dims(), &v)
            };
            let inputs = [finite(random_float(dtype, ld, &mut seed)), finite(random_float(dtype, rd, &mut seed))];
            let want = interp::run(&func, &inputs);
            let abs: Vec<Tensor> = inputs
                .iter()
                .map(|t| {
                    Tensor::from_f64(dtype, t.shape.dims(), &t.to_f64_vec().iter().map(|v| v.abs()).collect::<Vec<_>>())
                })
                .collect();
            let magnitude = interp::run(&func, &abs)[0].to_f64_vec();
            let got = super::sim::run(&prog, &inputs);
            let taps: usize = rd[1..].iter().product();
            let eps = if dtype == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
            for (i, (w, g)) in want[0].to_f64_vec().iter().zip(got[0].to_f64_vec()).enumerate() {
                let bound = taps as f64 * eps * magnitude[i];
                assert!((w - g).abs() <= bound, "{lt} x {rt} {attrs:?}[{i}]: interp {w} vs gemm {g} (bound {bound})");
            }
        }
    }
    // Below the threshold the direct, bitwise kernel stays.
    let (lt, rt) = (Type::new(DType::F32, &[1, 2, 5, 5]), Type::new(DType::F32, &[3, 2, 3, 3]));
    let mut b = Builder::new("conv", &[lt, rt]);
    let r = b.conv2d(b.param(0), b.param(1), Conv::plain());
    let prog = emit(&b.finish(vec![r])).unwrap();
    assert!(prog.steps.iter().all(|s| matches!(s, Step::Kernel { .. })) && !prog.ptx.contains("_im2col("));
}

/// BatchMatMul is one strided-batched GEMM step (the simulator runs the
/// interpreter's product per matrix, so this checks the plan and the
/// buffers); empty inner dims are a zero fill, empty outer dims no step.
#[test]
fn batch_matmul_is_one_batched_gemm_step() {
    let mut seed = 20u64;
    let cases: [(&[usize], &[usize], usize); 4] = [
        (&[2, 3, 4], &[2, 4, 5], 1),
        (&[2, 2, 3, 1], &[2, 2, 1, 3], 1),
        (&[3, 2, 0], &[3, 0, 4], 0),
        (&[0, 2, 3], &[0, 3, 2], 0),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (ad, bd, gemms) in cases {
            let (at, bt) = (Type::new(dtype, ad), Type::new(dtype, bd));
            let mut b = Builder::new("bmm", &[at.clone(), bt.clone()]);
            let r = b.batch_matmul(b.param(0), b.param(1));
            let func = b.finish(vec![r]);
            let prog = emit(&func).unwrap();
            check_plan(&func, &prog);
            let n_gemm = prog.steps.iter().filter(|s| matches!(s, Step::Gemm { .. })).count();
            assert_eq!(n_gemm, gemms, "{at} x {bt}");
            if let Some(Step::Gemm { batch, .. }) = prog.steps.first() {
                assert_eq!(*batch, ad[..ad.len() - 2].iter().product::<usize>());
            }
            let inputs = [random_float(dtype, ad, &mut seed), random_float(dtype, bd, &mut seed)];
            assert_sim(&format!("batch_matmul {at} x {bt}"), &func, &inputs, Tol::Bitwise);
        }
    }
}

/// The kernel each launch step names, in launch order.
fn kernel_launches(prog: &PtxProgram) -> Vec<String> {
    prog.steps
        .iter()
        .filter_map(|s| match s {
            Step::Kernel { name, .. } => Some(name.clone()),
            Step::Gemm { .. } => None,
        })
        .collect()
}

/// The runtime loads a module split into parts on parallel threads: every
/// kernel lands in exactly one part, in order, each part carries the header
/// and (where `ptxas` is installed) assembles on its own.
#[test]
fn split_modules_partition_the_kernels_and_assemble() {
    let func = op_zoo(DType::F32);
    let prog = emit(&func).unwrap();
    let names = kernel_launches(&prog);
    assert!(names.len() > 10);
    for parts in [1, 2, 3, 7, 1000] {
        let split = super::split::split_module(&prog.ptx, parts);
        assert!(!split.is_empty() && split.len() <= parts.min(names.len()), "{parts} parts: {}", split.len());
        let got: Vec<String> = split.iter().flat_map(|(_, n)| n.clone()).collect();
        // Each kernel once, where it is first launched (a kernel launched
        // again, or an identical kernel of another instruction, is in the
        // module once: `ptx/dedupe.rs`).
        let mut want: Vec<String> = Vec::new();
        for name in &names {
            if !want.contains(name) {
                want.push(name.clone());
            }
        }
        assert_eq!(got, want, "{parts} parts");
        for (i, (text, kernels)) in split.iter().enumerate() {
            assert!(text.contains(".target sm_80") && text.matches(".visible .entry ").count() == kernels.len());
            if parts == 3 {
                let part = PtxProgram { ptx: text.clone(), ..prog.clone() };
                assemble(&format!("split_{i}"), &part);
            }
        }
    }
}

/// log1p, expm1, sin, cos and erf against the interpreter (the host's libm)
/// on random inputs over each op's interesting range, hard cases (near -1
/// for log1p, near multiples of pi/2 for sin/cos) and the specials, within
/// the bounds documented in `math.rs`; sin/cos beyond `SIN_COS_MAX` must be
/// NaN. Prints the measured maximum ULP distance per op and dtype.
#[test]
fn simulated_new_math_ops_match_interp_within_documented_bounds() {
    let mut seed = 21u64;
    for dtype in [DType::F32, DType::F64] {
        // Decimal exponent range of non-tiny magnitudes.
        let (lo, hi) = if dtype == DType::F32 { (-40.0, 38.0) } else { (-300.0, 300.0) };
        for op in [Op::Log1p, Op::Expm1, Op::Sin, Op::Cos, Op::Erf] {
            let mut v = specials(dtype);
            v.extend([SIN_COS_LIMIT_PROBE, -SIN_COS_LIMIT_PROBE, 1e15, -0.9999999, 1e-320, -1e-320]);
            for _ in 0..2500 {
                let u = rand01(&mut seed);
                let sign = if rand01(&mut seed) < 0.5 { -1.0 } else { 1.0 };
                let mag = |seed: &mut u64, a: f64, b: f64| 10f64.powf(a + rand01(seed) * (b - a));
                let x = match op {
                    Op::Log1p if u < 0.25 => -1.0 + mag(&mut seed, -15.0, 0.0),
                    Op::Log1p if u < 0.5 => -rand01(&mut seed),
                    Op::Log1p => mag(&mut seed, lo, hi),
                    Op::Expm1 => sign * mag(&mut seed, lo, 2.88),
                    Op::Sin | Op::Cos if u < 0.3 => {
                        // Near n pi/2: the reduction's cancellation cases.
                        let n = (mag(&mut seed, 0.0, 7.0)).round();
                        sign * n * std::f64::consts::FRAC_PI_2
                    }
                    Op::Sin | Op::Cos => sign * mag(&mut seed, lo.max(-30.0), 12.6),
                    _ => sign * mag(&mut seed, lo, 1.5),
                };
                v.push(x);
            }
            let n = v.len();
            let ty = Type::new(dtype, &[n]);
            let mut b = Builder::new("math", std::slice::from_ref(&ty));
            let r = b.unary(op.clone(), b.param(0));
            let func = b.finish(vec![r]);
            let inputs = [Tensor::from_f64(dtype, &[n], &v)];
            let xs = inputs[0].to_f64_vec();
            let want = interp::run(&func, &inputs)[0].to_f64_vec();
            let got = super::sim::run(&emit(&func).unwrap(), &inputs)[0].to_f64_vec();
            let Tol::Ulps(bound) = math_tol(&op, dtype) else { unreachable!() };
            let mut worst = 0;
            for i in 0..n {
                let (x, w, g) = (xs[i], want[i], got[i]);
                if matches!(op, Op::Sin | Op::Cos) && x.abs() > super::math::SIN_COS_MAX {
                    assert!(g.is_nan(), "{op:?} {dtype}({x:e}) = {g:e}: NaN beyond the range");
                    continue;
                }
                if w.is_nan() || g.is_nan() || w.is_infinite() || g.is_infinite() {
                    assert!(
                        w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()),
                        "{op:?} {dtype}({x:e}): {w:e} vs {g:e}"
                    );
                    continue;
                }
                let d = ulps(dtype, w, g);
                assert!(d <= bound, "{op:?} {dtype}({x:e}): interp {w:e} vs ptx {g:e}: {d} ULP > {bound} (seed 21)");
                assert!(w != 0.0 || w.is_sign_negative() == g.is_sign_negative(), "{op:?} {dtype}({x:e}): signed zero");
                worst = worst.max(d);
            }
            println!("{op:?} {dtype}: max {worst} ULP over {n} inputs");
        }
    }
}

/// Just above `SIN_COS_MAX` (so the NaN rule is exercised).
const SIN_COS_LIMIT_PROBE: f64 = 4.5e12;

/// The reduction `how` ("sum", "max", "min", "argmax") of `ty` over `axes`.
fn reduction(how: &str, ty: &Type, axes: &[usize]) -> Func {
    let mut b = Builder::new(how, std::slice::from_ref(ty));
    let x = b.param(0);
    let r = match how {
        "sum" => b.reduce_sum(x, axes.to_vec()),
        "max" => b.reduce_max(x, axes.to_vec()),
        "min" => b.reduce_min(x, axes.to_vec()),
        _ => b.argmax(x, axes[0]),
    };
    b.finish(vec![r])
}

/// The parallel reductions (`ptx/reduce.rs`) against the interpreter on
/// extents around every threshold (1, 63, 64, 65, 255, 256, 257, 4095,
/// 4096, 4097, 2 * CHUNK + 7), reduced middle axes, two reduced axes,
/// non-power-of-two output counts and empty tensors: max, min, argmax and
/// i32 sums bitwise (with NaN, ±inf, ±0 and ties in the data), float sums
/// within `n_red * eps * sum |x|` of the exact sum (the interpreter in f64).
#[test]
fn simulated_parallel_reductions_match_interp() {
    let mut seed = 22u64;
    let mut cases: Vec<(Vec<usize>, Vec<usize>)> = Vec::new();
    for n in [1, 63, 64, 65, 255, 256, 257, 4095, 4096, 4097, 2 * super::reduce::CHUNK + 7] {
        cases.push((vec![n], vec![0]));
    }
    cases.extend([
        (vec![3, 257, 5], vec![1]),
        (vec![3, 4097, 5], vec![1]),
        (vec![7, 300], vec![1]),
        (vec![300, 7], vec![0]),
        (vec![2, 33000], vec![1]),
        (vec![5, 70, 3], vec![0, 1]),
        (vec![10, 3, 10], vec![0, 2]),
        (vec![0, 100], vec![1]),
        (vec![100, 0], vec![1]),
    ]);
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for (dims, axes) in &cases {
            let ty = Type::new(dtype, dims);
            let len = ty.shape.num_elements();
            for how in ["sum", "max", "min", "argmax"] {
                if how == "argmax" && (axes.len() != 1 || dims[axes[0]] == 0) {
                    continue;
                }
                let big = len > 20_000;
                if big && (how == "min" || dtype == DType::F64) {
                    continue; // the simulator is slow; max covers the same kernels
                }
                // Few distinct values (ties) for argmax/max/min; spread
                // magnitudes and signs for sums.
                let mut v: Vec<f64> = (0..len)
                    .map(|_| match (dtype, how) {
                        (DType::I32, "sum") => (rand01(&mut seed) * 4e9 - 2e9).floor(),
                        (_, "sum") => {
                            (rand01(&mut seed) * 2.0 - 1.0) * 10f64.powi((rand01(&mut seed) * 6.0) as i32 - 3)
                        }
                        _ => (rand01(&mut seed) * 8.0 - 4.0).round(),
                    })
                    .collect();
                if dtype.is_float() && how != "sum" && len > 100 {
                    // Specials in some places (not every output sees them).
                    for (k, x) in [(5, f64::NAN), (17, f64::INFINITY), (29, -0.0), (30, 0.0), (64, f64::NAN)] {
                        v[(k * 7919) % len] = x;
                    }
                    v[len - 1] = f64::NEG_INFINITY;
                }
                let x = Tensor::from_f64(dtype, dims, &v);
                check_reduction(&format!("{how} {ty} over {axes:?} (seed 22)"), how, &x, axes);
            }
        }
    }
}

/// Runs reduction `how` of `x` over `axes` in the simulator: max, min, argmax
/// and i32 sums must equal the interpreter bitwise; float sums must be within
/// `n_red * eps * sum |x|` of the exact sum (the interpreter in f64; twice
/// that for f64, whose reference carries the same bound).
#[track_caller]
fn check_reduction(label: &str, how: &str, x: &Tensor, axes: &[usize]) {
    let (ty, dtype, dims) = (x.ty(), x.dtype(), x.shape.dims().to_vec());
    let func = reduction(how, &ty, axes);
    let prog = emit(&func).unwrap();
    check_plan(&func, &prog);
    let got = super::sim::run(&prog, std::slice::from_ref(x));
    if how != "sum" || dtype == DType::I32 {
        let want = interp::run(&func, std::slice::from_ref(x));
        assert_eq!(want[0].ty(), got[0].ty(), "{label}");
        let (w, g) = (want[0].to_f64_vec(), got[0].to_f64_vec());
        for i in 0..w.len() {
            let same = w[i].to_bits() == g[i].to_bits() || (w[i].is_nan() && g[i].is_nan());
            assert!(same, "{label}: [{i}] interp {:e} vs ptx {:e}", w[i], g[i]);
        }
        return;
    }
    let mut b = Builder::new("exact", std::slice::from_ref(&ty));
    let wide = b.push(Op::Convert, vec![b.param(0)], ty.with_dtype(DType::F64));
    let abs = b.unary(Op::Abs, wide);
    let outs = vec![b.reduce_sum(wide, axes.to_vec()), b.reduce_sum(abs, axes.to_vec())];
    let refs = interp::run(&b.finish(outs), std::slice::from_ref(x));
    let (exact, mag, g) = (refs[0].to_f64_vec(), refs[1].to_f64_vec(), got[0].to_f64_vec());
    let n_red: usize = axes.iter().map(|&a| dims[a]).product();
    let eps = if dtype == DType::F32 { f64::from(f32::EPSILON) } else { f64::EPSILON };
    let factor = if dtype == DType::F32 { 1.0 } else { 2.0 };
    for i in 0..g.len() {
        let bound = factor * n_red as f64 * eps * mag[i];
        assert!(
            (g[i] - exact[i]).abs() <= bound,
            "{label}: [{i}] exact {:e} vs ptx {:e} (bound {bound:e})",
            exact[i],
            g[i]
        );
    }
}

/// Random shapes (rank 1 to 4, dims around the thresholds), random reduced
/// axis sets and every reduction, against the interpreter (`check_reduction`).
#[test]
fn simulated_random_reductions_match_interp() {
    let mut seed = 24u64;
    let sizes = [1usize, 2, 3, 5, 7, 9, 16, 33, 64, 65, 100, 130];
    let mut done = 0;
    while done < 60 {
        let rank = 1 + (rand01(&mut seed) * 4.0) as usize;
        let dims: Vec<usize> = (0..rank).map(|_| sizes[(rand01(&mut seed) * sizes.len() as f64) as usize]).collect();
        let len: usize = dims.iter().product();
        let mask = 1 + (rand01(&mut seed) * ((1usize << rank) - 1) as f64) as usize;
        let axes: Vec<usize> = (0..rank).filter(|a| mask & (1 << a) != 0).collect();
        let n_red: usize = axes.iter().map(|&a| dims[a]).product();
        if !(64..=40_000).contains(&n_red) || len > 60_000 {
            continue; // only the parallel kernels, at simulator-friendly sizes
        }
        done += 1;
        let dtype = [DType::F32, DType::F64, DType::I32][done % 3];
        let how = ["sum", "max", "min", "argmax"][(done / 3) % 4];
        let axes = if how == "argmax" { vec![axes[0]] } else { axes };
        let v: Vec<f64> = (0..len)
            .map(|i| match dtype {
                DType::I32 => (rand01(&mut seed) * 4e9 - 2e9).floor(),
                _ if how != "sum" && i % 97 == 13 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][i % 4],
                _ if how == "sum" => (rand01(&mut seed) * 2.0 - 1.0) * 10f64.powi((rand01(&mut seed) * 6.0) as i32),
                _ => (rand01(&mut seed) * 6.0 - 3.0).round(),
            })
            .collect();
        let x = Tensor::from_f64(dtype, &dims, &v);
        check_reduction(&format!("{how} {} over {axes:?} (seed 24, case {done})", x.ty()), how, &x, &axes);
    }
}

/// Non-finite sums: a row with +inf gives +inf, with +inf and -inf or a NaN
/// gives NaN, as the interpreter, whatever the order.
#[test]
fn simulated_parallel_sums_propagate_inf_and_nan() {
    let n = 5000;
    for dtype in [DType::F32, DType::F64] {
        let ty = Type::new(dtype, &[4, n]);
        let mut v: Vec<f64> = (0..4 * n).map(|i| (i % 7) as f64 - 3.0).collect();
        v[n + 10] = f64::INFINITY;
        v[2 * n + 4000] = f64::INFINITY;
        v[2 * n + 3] = f64::NEG_INFINITY;
        v[3 * n + 2500] = f64::NAN;
        let func = reduction("sum", &ty, &[1]);
        let x = Tensor::from_f64(dtype, &[4, n], &v);
        let got = super::sim::run(&emit(&func).unwrap(), std::slice::from_ref(&x))[0].to_f64_vec();
        let want = interp::run(&func, std::slice::from_ref(&x))[0].to_f64_vec();
        assert_eq!(got[1], f64::INFINITY);
        assert!(got[2].is_nan() && got[3].is_nan() && want[2].is_nan() && want[3].is_nan());
        assert_eq!(want[1], f64::INFINITY);
        // Integers well below 2^24: exact in any order.
        assert_eq!(got[0], want[0]);
    }
}

/// The plans the thresholds promise: sequential below 64 elements per
/// output, one warp-per-output kernel below 4096, a block per output for
/// many outputs, two passes with a scratch buffer for few outputs with huge
/// extents (W4: 4M elements to a scalar); the sum of 4096 * 256 + 3
/// elements runs in the simulator within the bound.
#[test]
fn reduction_plans_follow_the_thresholds() {
    use super::reduce::{plan, Scheme};
    assert_eq!(plan(100, 63, true), Scheme::Sequential);
    assert_eq!(plan(100, 64, true), Scheme::Groups { group: 32 });
    assert_eq!(plan(1, 4095, true), Scheme::Groups { group: 32 });
    assert_eq!(plan(1, 4096, true), Scheme::Groups { group: super::BLOCK });
    assert_eq!(plan(4096, 1 << 20, true), Scheme::Groups { group: super::BLOCK });
    assert_eq!(plan(1, 1 << 22, true), Scheme::TwoPass { chunks: 1024 });
    assert_eq!(plan(4, 1 << 22, true), Scheme::TwoPass { chunks: 256 });
    assert_eq!(plan(1, 1 << 15, true), Scheme::TwoPass { chunks: 8 });
    assert_eq!(plan(1, 1 << 22, false), Scheme::Groups { group: super::BLOCK });
    let n = 4096 * 256 + 3;
    let ty = Type::new(DType::F32, &[n]);
    let func = reduction("sum", &ty, &[0]);
    let prog = emit(&func).unwrap();
    check_plan(&func, &prog);
    assert_eq!(prog.steps.len(), 2, "two passes");
    assert_eq!(prog.buffers.len(), 3, "input, output, partials");
    assemble("sum_two_pass", &prog);
    let mut seed = 23u64;
    let v: Vec<f64> = (0..n).map(|_| rand01(&mut seed) * 2.0 - 1.0).collect();
    let x = Tensor::from_f64(DType::F32, &[n], &v);
    let got = super::sim::run(&prog, std::slice::from_ref(&x))[0].to_f64_vec()[0];
    let exact: f64 = x.to_f64_vec().iter().sum();
    let mag: f64 = x.to_f64_vec().iter().map(|a| a.abs()).sum();
    assert!((got - exact).abs() <= n as f64 * f64::from(f32::EPSILON) * mag, "{got} vs {exact}");
}

/// Parallel reductions (warp, block and two-pass) evaluate a fused operand
/// tree per source element: no buffer for the operand, and bitwise the
/// same result as reducing the materialized operand (`fuse: false`), whose
/// kernels match the interpreter (tests above).
#[test]
fn parallel_reductions_of_fused_trees_equal_the_unfused_program_bitwise() {
    let mut seed = 41u64;
    let cases: [(&[usize], Vec<usize>); 4] =
        [(&[70_000], vec![0]), (&[4097, 3], vec![0]), (&[300, 70], vec![1]), (&[5, 9000], vec![1])];
    for (dims, axes) in cases {
        let ty = Type::new(DType::F32, dims);
        let mut b = Builder::new("fused_reduce", &[ty.clone(), ty.clone()]);
        let e = b.unary(Op::Exp, b.param(0));
        let prod = b.mul(e, b.param(1));
        let sum = b.reduce_sum(prod, axes.clone());
        let t = b.unary(Op::Tanh, b.param(1));
        let max = b.reduce_max(t, axes.clone());
        let func = b.finish(vec![sum, max]);
        let fused = emit(&func).unwrap();
        let unfused = super::emit_with(&func, &super::PtxOptions { fuse: false, ..Default::default() }).unwrap();
        check_plan(&func, &fused);
        assert!(fused.buffers.len() < unfused.buffers.len(), "{dims:?}: the operands have no buffers");
        let scale = |t: Tensor| {
            Tensor::from_f64(DType::F32, dims, &t.to_f64_vec().iter().map(|v| v.clamp(-5.0, 5.0)).collect::<Vec<_>>())
        };
        let inputs =
            [scale(random_float(DType::F32, dims, &mut seed)), scale(random_float(DType::F32, dims, &mut seed))];
        let (got, want) = (super::sim::run(&fused, &inputs), super::sim::run(&unfused, &inputs));
        for (g, w) in got.iter().zip(&want) {
            let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
            assert!(
                g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())),
                "{dims:?} over {axes:?}"
            );
        }
        assemble("fused_reduce", &fused);
    }
}

/// Unrolled folds (`PtxOptions::fold_unroll`: several elements' loads
/// issued before any is folded) give bitwise the results of folding one
/// element at a time, for warp, block and two-pass schemes, extents that
/// leave a tail after the unrolled trips, argmax's indices, NaN in max,
/// f64, a fused tree with a broadcast leaf, and W4 (its gradient stored
/// from inside the sum's first pass). The programs must differ (the
/// unrolled loop is there), and every one assembles.
#[test]
fn unrolled_folds_equal_one_element_folds_bitwise() {
    let mut seed = 47u64;
    let options = |unroll: usize| super::PtxOptions { fold_unroll: unroll, ..Default::default() };
    let compare = |label: &str, func: &Func, inputs: &[Tensor]| {
        let plain = super::emit_with(func, &options(1)).unwrap();
        assert!(!plain.ptx.contains("fold_unrolled"), "{label}: unroll 1 emits no unrolled loop");
        let want = super::sim::run(&plain, inputs);
        for unroll in [2, 3, 4, 8] {
            let prog = super::emit_with(func, &options(unroll)).unwrap();
            check_plan(func, &prog);
            assert!(prog.ptx.contains("fold_unrolled"), "{label}: unroll {unroll} emits the unrolled loop");
            let got = super::sim::run(&prog, inputs);
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                let (g, w) = (g.to_f64_vec(), w.to_f64_vec());
                let same = g.iter().zip(&w).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{label}, unroll {unroll}: output {o} differs from one element per trip");
            }
            if unroll == super::FOLD_UNROLL {
                assemble(&format!("unrolled_{}", label.replace(|c: char| !c.is_alphanumeric(), "_")), &prog);
            }
        }
    };
    // Plain reductions: warp per output (300), block per output (5000 with
    // a tail of 5000 % 1024), two passes (70_001), f32 and f64.
    for dtype in [DType::F32, DType::F64] {
        for (dims, axes) in [(vec![7, 300], vec![1]), (vec![3, 5000], vec![1]), (vec![70_001], vec![0])] {
            let x = random_float(dtype, &dims, &mut seed);
            for how in ["sum", "max", "min", "argmax"] {
                let func = reduction(how, &x.ty(), &axes);
                compare(&format!("{how} {} over {axes:?}", x.ty()), &func, std::slice::from_ref(&x));
            }
        }
    }
    // A fused operand with a broadcast leaf, reduced over a middle axis.
    let (big, row) = (Type::new(DType::F32, &[3, 4500, 2]), Type::new(DType::F32, &[3, 1, 2]));
    let mut b = Builder::new("fused_broadcast_reduce", &[big.clone(), row.clone()]);
    let bias = b.push(Op::Broadcast { dims: vec![0, 1, 2] }, vec![b.param(1)], big.clone());
    let t = b.add(b.param(0), bias);
    let e = b.unary(Op::Tanh, t);
    let sum = b.reduce_sum(e, vec![1]);
    let func = b.finish(vec![sum]);
    let inputs =
        [random_float(DType::F32, big.shape.dims(), &mut seed), random_float(DType::F32, &[3, 1, 2], &mut seed)];
    compare("tanh(x + b) summed over axis 1", &func, &inputs);
    // W4 at 40,001 elements: the loss's two passes with dw and db stored
    // inside the first.
    const N: usize = 40_001;
    let func = w4_program(N);
    let inputs: Vec<Tensor> = (0..3)
        .map(|_| {
            let v: Vec<f64> = (0..N).map(|_| rand01(&mut seed) * 4.0 - 2.0).collect();
            Tensor::from_f64(DType::F32, &[N], &v)
        })
        .collect();
    compare("w4", &func, &inputs);
}

/// Scatters of `WARP_SCAN_MIN` or more indices use the warp-ballot kernel
/// (32 indices per step): bitwise equal to the interpreter, with duplicate
/// and out-of-range indices, a partial last chunk, a partial last group of
/// 32 columns, rank-2 indices, and f32/f64/i32 with order-sensitive sums.
#[test]
fn simulated_scatter_add_by_warp_ballot_matches_interp_bitwise() {
    let mut seed = 43u64;
    let pool = [-3, 0, 4, 2, 2, 100, 1, -1, 2, i32::MIN, 0, 3, i32::MAX, 6, 5, 5];
    let cases: [(usize, Vec<usize>, Vec<usize>); 4] =
        [(7, vec![37], vec![300]), (5, vec![2, 3], vec![4, 33]), (9, vec![64], vec![64]), (3, vec![], vec![97])];
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for (v, rest, idx_dims) in &cases {
            let idx_ty = Type::new(DType::I32, idx_dims);
            let n_idx = idx_ty.shape.num_elements();
            assert!(n_idx >= super::indexing::WARP_SCAN_MIN);
            let indices = Tensor::i32(idx_dims, (0..n_idx).map(|i| pool[(i * 7 + i / 5) % pool.len()]).collect());
            let mut upd_dims = idx_dims.clone();
            upd_dims.extend(rest);
            let upd_ty = Type::new(dtype, &upd_dims);
            let v_: Vec<f64> = (0..upd_ty.shape.num_elements())
                .map(|_| match dtype {
                    DType::I32 => (rand01(&mut seed) * 4e9 - 2e9).floor(),
                    _ => (rand01(&mut seed) * 2.0 - 1.0) * 10f64.powi((rand01(&mut seed) * 8.0) as i32),
                })
                .collect();
            let updates = Tensor::from_f64(dtype, &upd_dims, &v_);
            let mut b = Builder::new("scatter_add", &[upd_ty.clone(), idx_ty.clone()]);
            let r = b.scatter_add(b.param(0), b.param(1), *v);
            let func = b.finish(vec![r]);
            let prog = emit(&func).unwrap();
            assert!(prog.ptx.contains("vote.sync.ballot.b32"), "{upd_ty}: the warp kernel");
            check_plan(&func, &prog);
            assemble(&format!("scatter_warps_{dtype}"), &prog);
            let label = format!("scatter_add {upd_ty} at {idx_ty} into {v} rows (seed 43)");
            assert_sim(&label, &func, &[updates, indices], Tol::Bitwise);
        }
    }
}

/// f32 tanh (`math::tanh_for_f32`) against the correctly rounded f32 of
/// the host's f64 tanh (within 1 ULP of the truth: the f64 routine is
/// within ~2^-52 relative): at most 1 ULP everywhere, and equal almost
/// everywhere (the bound says only values within 2^-38 of a rounding
/// boundary may round differently). Inputs: 20,000 log-uniform over
/// 1e-7..30 of both signs, dense around the branch point |x| = 2^-10.
#[test]
fn simulated_f32_tanh_is_within_one_ulp_of_correctly_rounded() {
    let mut seed = 5u64;
    let mut v: Vec<f64> = Vec::new();
    for i in 0..20_000 {
        let mag = if i % 4 == 0 {
            (1.0 / 1024.0) * (1.0 + (rand01(&mut seed) - 0.5) * 0.1)
        } else {
            10f64.powf(rand01(&mut seed) * 8.5 - 7.0)
        };
        v.push(f64::from(if i % 2 == 0 { mag as f32 } else { -mag as f32 }));
    }
    let ty = Type::new(DType::F32, &[v.len()]);
    let mut b = Builder::new("tanh_f32", std::slice::from_ref(&ty));
    let r = b.unary(Op::Tanh, b.param(0));
    let func = b.finish(vec![r]);
    let got = super::sim::run(&emit(&func).unwrap(), &[Tensor::from_f64(DType::F32, &[v.len()], &v)]);
    let got = got[0].to_f64_vec();
    let mut differ = 0;
    for (x, g) in v.iter().zip(&got) {
        let want = x.tanh() as f32 as f64;
        let d = ulps(DType::F32, *g, want);
        assert!(d <= 1, "tanh({x:e}): got {g:e}, correctly rounded {want:e} ({d} ULP)");
        differ += usize::from(d > 0);
    }
    println!("f32 tanh: {differ} of {} differ from the correctly rounded result by 1 ULP", v.len());
    assert!(differ * 1000 < v.len(), "{differ} of {} differ", v.len());
}

/// Two instructions with the same shapes and ops get one kernel, launched
/// twice on their own buffers (`ptx/dedupe.rs`), and the results are the
/// interpreter's.
#[test]
fn identical_kernels_are_emitted_once() {
    let ty = Type::new(DType::F32, &[3, 5]);
    let mut b = Builder::new("twice", &[ty.clone(), ty.clone()]);
    let e1 = b.unary(Op::Exp, b.param(0));
    let r1 = b.reduce_sum(e1, vec![1]);
    let e2 = b.unary(Op::Exp, b.param(1));
    let r2 = b.reduce_sum(e2, vec![1]);
    let func = b.finish(vec![r1, r2]);
    let prog = emit(&func).unwrap();
    let names = kernel_launches(&prog);
    assert_eq!(names.len(), 2);
    assert_eq!(names[0], names[1], "one kernel, launched twice:\n{}", prog.ptx);
    assert_eq!(prog.ptx.matches(".visible .entry ").count(), 1, "{}", prog.ptx);
    let x = Tensor::f32(&[3, 5], (0..15).map(|i| i as f32 / 7.0).collect());
    let y = Tensor::f32(&[3, 5], (0..15).map(|i| 1.0 - i as f32 / 5.0).collect());
    assert_sim("twice", &func, &[x, y], Tol::Ulps(1));
}

/// The magic-number division of the index math equals `/` for every
/// divisor it is used for at the edges of its range: around each multiple
/// of `d` near 0, around 2^31 (its bound), and on a pseudo-random sample.
#[test]
fn magic_division_is_exact_below_its_bound() {
    use super::DivMagic;
    let mut divisors: Vec<u64> = (3..5000).filter(|d: &u64| !d.is_power_of_two()).collect();
    divisors.extend([6_700_417, 46_341, 65_535, 65_537, 1_000_003, (1 << 30) + 1, (1 << 31) - 1, 3 << 29]);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for d in divisors {
        let magic = DivMagic::new(d, 1 << 31).unwrap_or_else(|| panic!("no magic for {d}"));
        let mut xs: Vec<u64> = (0..64).chain((1..64).flat_map(|m| [m * d - 1, m * d, m * d + 1])).collect();
        xs.extend(((1u64 << 31) - 3 * d.min(1 << 20)..1 << 31).step_by(((d.min(1 << 20)) / 7).max(1) as usize));
        xs.extend([(1 << 31) - 1, (1 << 31) - 2, ((1u64 << 31) - 1) / d * d, ((1u64 << 31) - 1) / d * d - 1]);
        for _ in 0..200 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            xs.push((state >> 33) & ((1 << 31) - 1));
        }
        for x in xs.into_iter().filter(|&x| x < 1 << 31) {
            assert_eq!(u64::from(magic.quotient(x as u32)), x / d, "{x} / {d} with {magic:?}");
        }
    }
    assert_eq!(DivMagic::new(7, (1 << 31) + 1), None, "past its bound");
    assert_eq!(DivMagic::new(8, 100), None, "powers of two shift");
}
