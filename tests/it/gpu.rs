//! The CUDA backend against the reference interpreter, on a real GPU.
//!
//! Built only with `--features cuda`. Every test first probes for a driver
//! and a device and, without one, prints why and returns (so
//! `cargo test --features cuda` passes on a machine without a GPU) — unless
//! `JLC_REQUIRE_GPU=1`, which the device check (`benches/gpu/check.sh`) sets
//! so that a skipped run cannot pass as a green one.
//!
//! Tolerances (the bounds documented in `compiler/src/codegen/ptx/math.rs`):
//! bitwise (NaNs canonicalized) for every op except exp/log/tanh/pow/logistic
//! (f32: <= 1 ULP, logistic <= 3 ULP; f64: exp/log <= 2 ULP, tanh and
//! logistic <= 4 ULP, pow <= 4 + 2|y ln|x|| ULP), log1p/expm1/sin/cos/erf
//! (f32 <= 1 ULP, f64 <= 2 ULP; sin/cos NaN beyond |x| = 2^42), float sums
//! of 64 or more elements per output (`ptx/reduce.rs`: |gpu - interp| <=
//! 2 n eps sum|x|) and matmul (cuBLAS order: |gpu - interp| <= c sqrt(k) sum|a b|,
//! c = 1e-6 for f32, 1e-14 for f64). The digits training step is compared
//! with rtol 1e-5, as the CPU JIT is.

use compiler::ir::op::{Conv, Window};
use compiler::ir::{interp, text, Builder, DType, Func, Op, Shape, Tensor, Type};
use runtime::{Backend, Executable, Fresh};

/// Whether a GPU is usable; prints the reason when not. Panics instead when
/// `JLC_REQUIRE_GPU=1`.
pub(crate) fn gpu() -> bool {
    match runtime::cuda::probe() {
        Ok(()) => true,
        Err(e) if std::env::var("JLC_REQUIRE_GPU").is_ok_and(|v| v == "1") => panic!("JLC_REQUIRE_GPU=1 but {e}"),
        Err(e) => {
            println!("skipping GPU test: {e}");
            false
        }
    }
}

fn gpu_run(func: &Func, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut exe =
        Executable::compile(func.clone(), Backend::Cuda).unwrap_or_else(|e| panic!("{e}\n{}", text::print(func)));
    exe.run(inputs).unwrap_or_else(|e| panic!("{e}\n{}", text::print(func)))
}

/// How close a GPU result must be to the interpreter's.
#[derive(Clone, Copy, Debug)]
enum Tol {
    Bitwise,
    /// At most this many units in the last place (inf and NaN exact).
    Ulps(u64),
    /// pow: 4 + 2 |y ln|x|| ULP.
    Pow,
    /// A float `reduce_sum` of `param(0)` by the parallel kernels: both it
    /// and the interpreter are within `n eps sum|x|` of the exact sum, so
    /// `|gpu - interp| <= 2 n eps sum|x|` (n elements per output).
    ParallelSum,
}

/// `(n, sum|x|)` per output of a function whose output is `reduce_sum` of
/// its first parameter (sum |x| by the interpreter in f64).
fn abs_sums(func: &Func, inputs: &[Tensor]) -> (usize, Vec<f64>) {
    let out = &func.insts[func.outputs[0].index()];
    let Op::ReduceSum { axes } = &out.op else { panic!("ParallelSum on {:?}", out.op) };
    let ty = inputs[0].ty();
    let n: usize = axes.iter().map(|&a| ty.shape.0[a]).product();
    let mut b = Builder::new("abs_sum", std::slice::from_ref(&ty));
    let wide = b.push(Op::Convert, vec![b.param(0)], ty.with_dtype(DType::F64));
    let abs = b.unary(Op::Abs, wide);
    let r = b.reduce_sum(abs, axes.clone());
    (n, interp::run(&b.finish(vec![r]), &inputs[..1])[0].to_f64_vec())
}

/// Floats as integers whose order and distance are the floats' (±0 equal).
fn ordered(bits: u64, sign_bit: u64) -> i128 {
    if bits & sign_bit != 0 {
        -((bits & !sign_bit) as i128)
    } else {
        bits as i128
    }
}

/// pow's bound: 4 + 2 |y ln|x|| ULP (0 * inf counts as 0).
fn pow_allowed_ulps(x: f64, y: f64) -> f64 {
    let m = (y * x.abs().ln()).abs();
    4.0 + if m.is_nan() { 0.0 } else { 2.0 * m }
}

fn ulp_distance(dtype: DType, a: f64, b: f64) -> u64 {
    match dtype {
        DType::F32 => (ordered((a as f32).to_bits() as u64, 1 << 31) - ordered((b as f32).to_bits() as u64, 1 << 31))
            .unsigned_abs() as u64,
        _ => (ordered(a.to_bits(), 1 << 63) - ordered(b.to_bits(), 1 << 63)).unsigned_abs() as u64,
    }
}

/// Compares outputs; returns a description of the first mismatch.
fn compare(func: &Func, inputs: &[Tensor], want: &[Tensor], got: &[Tensor], tol: Tol) -> Result<(), String> {
    if want.len() != got.len() {
        return Err(format!("{} outputs, expected {}", got.len(), want.len()));
    }
    for (k, (w, g)) in want.iter().zip(got).enumerate() {
        if w.ty() != g.ty() {
            return Err(format!("output {k} has type {}, expected {}", g.ty(), w.ty()));
        }
        let (wv, gv) = (w.to_f64_vec(), g.to_f64_vec());
        let sums = matches!(tol, Tol::ParallelSum).then(|| abs_sums(func, inputs));
        for i in 0..wv.len() {
            let (x, y) = (wv[i], gv[i]);
            let ok = if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if !w.dtype().is_float() || x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                match tol {
                    Tol::Bitwise => {
                        x.to_bits() == y.to_bits()
                            || (w.dtype() == DType::F32 && (x as f32).to_bits() == (y as f32).to_bits())
                    }
                    Tol::Ulps(n) => ulp_distance(w.dtype(), x, y) <= n,
                    Tol::Pow => {
                        let (a, b) = (inputs[0].to_f64_vec()[i], inputs[1].to_f64_vec()[i]);
                        ulp_distance(w.dtype(), x, y) as f64 <= pow_allowed_ulps(a, b)
                    }
                    Tol::ParallelSum => {
                        let (n, mags) = sums.as_ref().expect("computed above");
                        let eps = if w.dtype() == DType::F32 { f64::from(f32::EPSILON) } else { f64::EPSILON };
                        (x - y).abs() <= 2.0 * *n as f64 * eps * mags[i]
                    }
                }
            };
            if !ok {
                let args: Vec<f64> = inputs.iter().filter(|t| t.len() == wv.len()).map(|t| t.to_f64_vec()[i]).collect();
                return Err(format!(
                    "output {k}[{i}]: interp {x:e} vs gpu {y:e} ({} ULP; tol {tol:?}; elementwise args {args:?})\n{}",
                    if w.dtype().is_float() { ulp_distance(w.dtype(), x, y) } else { 0 },
                    text::print(func)
                ));
            }
        }
    }
    Ok(())
}

/// Runs `cases` (label, func, inputs, tolerance) and reports every failure.
fn check_all(cases: Vec<(String, Func, Vec<Tensor>, Tol)>) {
    let mut failures = Vec::new();
    let n = cases.len();
    for (label, func, inputs, tol) in cases {
        let want = interp::run(&func, &inputs);
        let got = gpu_run(&func, &inputs);
        if let Err(msg) = compare(&func, &inputs, &want, &got, tol) {
            failures.push(format!("{label}: {msg}"));
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases differ:\n{}", failures.len(), failures.join("\n"));
    println!("{n} cases agree with the interpreter");
}

fn float_specials() -> Vec<f64> {
    vec![
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
        -20.0,
        3.0,
        2.0,
    ]
}

fn i32_specials() -> Vec<f64> {
    [0, 1, -1, 2, -2, 7, -7, 100, i32::MAX, i32::MIN, i32::MIN + 1, 46341, -65536, 3, 31, -31]
        .iter()
        .map(|&x| x as f64)
        .collect()
}

fn specials(dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F32 | DType::F64 => float_specials(),
        DType::I32 => i32_specials(),
        DType::Bool => vec![0.0, 1.0],
    }
}

/// splitmix64, for test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Specials, then `n_random` values spread over magnitudes.
fn unary_values(dtype: DType, n_random: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = specials(dtype);
    for _ in 0..n_random {
        v.push(match dtype {
            DType::I32 => rng.uniform(-1000.0, 1000.0).floor(),
            DType::Bool => (rng.next() < 0.5) as u8 as f64,
            _ => rng.uniform(-1.0, 1.0) * 10f64.powf(rng.uniform(-6.0, 2.5)),
        });
    }
    v
}

fn all_pairs(values: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut lhs = Vec::new();
    let mut rhs = Vec::new();
    for &x in values {
        for &y in values {
            lhs.push(x);
            rhs.push(y);
        }
    }
    (lhs, rhs)
}

fn unary_func(op: Op, ty: &Type) -> Func {
    let mut b = Builder::new("unary", std::slice::from_ref(ty));
    let r = b.unary(op, b.param(0));
    b.finish(vec![r])
}

fn binary_func(op: Op, ty: &Type) -> Func {
    let mut b = Builder::new("binary", &[ty.clone(), ty.clone()]);
    let r = b.binary(op, b.param(0), b.param(1));
    b.finish(vec![r])
}

fn transcendental_tol(op: &Op, dtype: DType) -> Tol {
    match (op, dtype) {
        (Op::Pow, DType::I32) => Tol::Bitwise,
        (Op::Tanh | Op::Logistic, DType::F32) => Tol::Ulps(3),
        (Op::Logistic, _) => Tol::Ulps(4),
        (Op::Exp | Op::Log | Op::Pow, DType::F32) => Tol::Ulps(1),
        (Op::Exp | Op::Log, _) => Tol::Ulps(2),
        (Op::Tanh, _) => Tol::Ulps(4),
        (Op::Pow, _) => Tol::Pow,
        (Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf, DType::F32) => Tol::Ulps(1),
        (Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf, _) => Tol::Ulps(2),
        _ => Tol::Bitwise,
    }
}

#[test]
fn gpu_elementwise_ops_match_interpreter() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(1);
    let mut cases = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        let values = unary_values(dtype, 4000, &mut rng);
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
            Op::Log1p,
            Op::Expm1,
            Op::Sin,
            Op::Cos,
            Op::Erf,
        ] {
            // sin/cos are NaN beyond 2^42 (`math.rs`), unlike the host's.
            let values: Vec<f64> = match op {
                Op::Sin | Op::Cos => {
                    values.iter().copied().filter(|x| x.is_nan() || x.abs() <= 4398046511104.0).collect()
                }
                _ => values.clone(),
            };
            let ty = Type::new(dtype, &[values.len()]);
            let input = Tensor::from_f64(dtype, &[values.len()], &values);
            cases.push((
                format!("{op:?} {dtype}"),
                unary_func(op.clone(), &ty),
                vec![input],
                transcendental_tol(&op, dtype),
            ));
        }
    }
    let ivals = unary_values(DType::I32, 100, &mut rng);
    for op in [Op::Neg, Op::Abs, Op::Sign, Op::StopGradient] {
        cases.push((
            format!("{op:?} i32"),
            unary_func(op, &Type::new(DType::I32, &[ivals.len()])),
            vec![Tensor::from_f64(DType::I32, &[ivals.len()], &ivals)],
            Tol::Bitwise,
        ));
    }
    for dtype in [DType::F32, DType::F64, DType::I32, DType::Bool] {
        let mut vals = specials(dtype);
        if dtype.is_float() {
            vals.extend((0..12).map(|_| rng.uniform(-4.0, 4.0)));
        }
        let (lhs, rhs) = all_pairs(&vals);
        let n = lhs.len();
        let ty = Type::new(dtype, &[n]);
        let inputs = vec![Tensor::from_f64(dtype, &[n], &lhs), Tensor::from_f64(dtype, &[n], &rhs)];
        let mut ops = vec![Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne];
        if dtype != DType::Bool {
            ops.extend([Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow]);
        }
        for op in ops {
            let tol = transcendental_tol(&op, dtype);
            cases.push((format!("{op:?} {dtype}"), binary_func(op, &ty), inputs.clone(), tol));
        }
        // Select with a mixed condition.
        let cond: Vec<bool> = (0..n).map(|i| (i * 7919) % 3 == 0).collect();
        let mut b = Builder::new("select", &[ty.with_dtype(DType::Bool), ty.clone(), ty.clone()]);
        let r = b.select(b.param(0), b.param(1), b.param(2));
        let func = b.finish(vec![r]);
        cases.push((
            format!("select {dtype}"),
            func,
            vec![Tensor::bool(&[n], cond), inputs[0].clone(), inputs[1].clone()],
            Tol::Bitwise,
        ));
        // Conversions to every dtype.
        for to in [DType::F32, DType::F64, DType::I32, DType::Bool] {
            let mut b = Builder::new("convert", std::slice::from_ref(&ty));
            let r = b.push(Op::Convert, vec![b.param(0)], ty.with_dtype(to));
            let func = b.finish(vec![r]);
            cases.push((format!("convert {dtype} -> {to}"), func, vec![inputs[0].clone()], Tol::Bitwise));
        }
    }
    check_all(cases);
}

#[test]
fn gpu_fills_and_data_movement_match_interpreter() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(2);
    let mut cases = Vec::new();
    let random = |ty: &Type, rng: &mut Rng| {
        let v: Vec<f64> = (0..ty.shape.num_elements())
            .map(|_| match ty.dtype {
                DType::Bool => (rng.next() < 0.5) as u8 as f64,
                DType::I32 => rng.uniform(-50.0, 50.0).floor(),
                _ => rng.uniform(-5.0, 5.0),
            })
            .collect();
        Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
    };
    let bcasts: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = vec![
        (vec![], vec![2, 3], vec![]),
        (vec![3], vec![2, 3], vec![1]),
        (vec![3], vec![3, 2], vec![0]),
        (vec![2, 1], vec![2, 4], vec![0, 1]),
        (vec![1, 3, 1], vec![2, 3, 4], vec![0, 1, 2]),
        (vec![1, 1], vec![5, 1, 6], vec![0, 2]),
        (vec![2, 3], vec![2, 5, 3], vec![0, 2]),
        (vec![300], vec![64, 300], vec![1]),
    ];
    for dtype in [DType::F32, DType::F64, DType::I32, DType::Bool] {
        for value in [0.0, -0.0, 2.75, -3.5, f64::NAN, f64::INFINITY, 1e10, -1e10] {
            let mut b = Builder::new("constant", &[]);
            let s = b.constant(value, dtype);
            let f = b.full(value, &Type::new(dtype, &[2, 3]));
            cases.push((format!("constant {value} {dtype}"), b.finish(vec![s, f]), vec![], Tol::Bitwise));
        }
        if dtype != DType::Bool {
            for dims in [vec![7], vec![2, 3, 4], vec![1, 5, 1], vec![70, 1000]] {
                for axis in 0..dims.len() {
                    let mut b = Builder::new("iota", &[]);
                    let r = b.iota(Type::new(dtype, &dims), axis);
                    cases.push((format!("iota {dtype} {dims:?} {axis}"), b.finish(vec![r]), vec![], Tol::Bitwise));
                }
            }
        }
        for (src, dst, dims) in &bcasts {
            let ty = Type::new(dtype, src);
            let mut b = Builder::new("broadcast", std::slice::from_ref(&ty));
            let r = b.broadcast(b.param(0), &Shape(dst.clone()), dims.clone());
            cases.push((
                format!("broadcast {ty} -> {dst:?}"),
                b.finish(vec![r]),
                vec![random(&ty, &mut rng)],
                Tol::Bitwise,
            ));
        }
        for perm in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            for dims in [[2, 3, 4], [1, 5, 3], [33, 17, 65]] {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("transpose", std::slice::from_ref(&ty));
                let r = b.transpose(b.param(0), perm.to_vec());
                cases.push((
                    format!("transpose {ty} {perm:?}"),
                    b.finish(vec![r]),
                    vec![random(&ty, &mut rng)],
                    Tol::Bitwise,
                ));
            }
        }
        for dims in [vec![7], vec![2, 3, 4], vec![1, 5, 1], vec![33, 17, 65]] {
            let ty = Type::new(dtype, &dims);
            let rank = dims.len();
            let x = random(&ty, &mut rng);
            let mut b = Builder::new("slice", std::slice::from_ref(&ty));
            let start: Vec<usize> = dims.iter().map(|&d| d.min(1)).collect();
            let stride: Vec<usize> = (0..rank).map(|d| 1 + d % 2 + (d == 0) as usize).collect();
            let r1 = b.slice(b.param(0), start.clone(), dims.clone(), stride);
            let r2 = b.slice(b.param(0), start, dims.clone(), vec![1; rank]);
            cases.push((format!("slice {ty}"), b.finish(vec![r1, r2]), vec![x.clone()], Tol::Bitwise));
            for (lo, hi, int) in [(1, 0, 0), (0, 2, 1), (2, 1, 3)] {
                let mut b = Builder::new("pad", std::slice::from_ref(&ty));
                let low: Vec<usize> = (0..rank).map(|d| if d % 2 == 0 { lo } else { hi }).collect();
                let high: Vec<usize> = (0..rank).map(|d| if d % 2 == 0 { hi } else { lo }).collect();
                let r = b.pad(b.param(0), low, high, vec![int; rank]);
                cases.push((format!("pad {ty} {lo} {hi} {int}"), b.finish(vec![r]), vec![x.clone()], Tol::Bitwise));
            }
            for axis in 0..rank {
                let mut other = dims.clone();
                other[axis] = 2;
                let mut empty = dims.clone();
                empty[axis] = 0;
                let (oty, ety) = (Type::new(dtype, &other), Type::new(dtype, &empty));
                let mut b = Builder::new("concat", &[ty.clone(), oty.clone(), ety.clone()]);
                let r = b.concat(vec![b.param(0), b.param(2), b.param(1), b.param(0)], axis);
                let inputs = vec![x.clone(), random(&oty, &mut rng), random(&ety, &mut rng)];
                cases.push((format!("concat {ty} axis {axis}"), b.finish(vec![r]), inputs, Tol::Bitwise));
                if dtype != DType::Bool {
                    let mut b = Builder::new("argmax", std::slice::from_ref(&ty));
                    let r = b.argmax(b.param(0), axis);
                    // Rounded values so the scan sees ties; plus specials.
                    let sp = specials(dtype);
                    let v: Vec<f64> = x
                        .to_f64_vec()
                        .iter()
                        .enumerate()
                        .map(|(i, &a)| if i % 7 == 0 { sp[(i / 7) % sp.len()] } else { a.round() })
                        .collect();
                    cases.push((
                        format!("argmax {ty} axis {axis}"),
                        b.finish(vec![r]),
                        vec![Tensor::from_f64(dtype, &dims, &v)],
                        Tol::Bitwise,
                    ));
                }
            }
        }
        let ty = Type::new(dtype, &[2, 3]);
        let mut b = Builder::new("reshape", std::slice::from_ref(&ty));
        let x = b.param(0);
        let r1 = b.reshape(x, &Shape(vec![3, 2]));
        let r2 = b.reshape(r1, &Shape(vec![6]));
        let t = b.transpose(r1, vec![1, 0]);
        cases.push((
            format!("reshape {dtype}"),
            b.finish(vec![r2, x, t, r1]),
            vec![random(&ty, &mut rng)],
            Tol::Bitwise,
        ));
    }
    check_all(cases);
}

#[test]
fn gpu_reductions_match_interpreter() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(3);
    let mut cases = Vec::new();
    for dtype in [DType::F32, DType::F64, DType::I32] {
        // Small extents (one thread per output), warps (64..4096 per
        // output), blocks and two passes (4097 x 3, 70000).
        let shapes = [
            vec![2, 3, 4],
            vec![3, 1, 5],
            vec![9],
            vec![64, 10],
            vec![0, 3],
            vec![16, 33, 7],
            vec![4097, 3],
            vec![70000],
        ];
        for dims in shapes {
            let rank = dims.len();
            for mask in 1..(1usize << rank) {
                let axes: Vec<usize> = (0..rank).filter(|a| mask & (1 << a) != 0).collect();
                for is_max in [false, true] {
                    let ty = Type::new(dtype, &dims);
                    let mut b = Builder::new("reduce", std::slice::from_ref(&ty));
                    let r = if is_max {
                        b.reduce_max(b.param(0), axes.clone())
                    } else {
                        b.reduce_sum(b.param(0), axes.clone())
                    };
                    let func = b.finish(vec![r]);
                    let mut values: Vec<f64> = (0..ty.shape.num_elements())
                        .map(|_| match dtype {
                            DType::I32 => rng.uniform(-2e9, 2e9).floor(),
                            _ => rng.uniform(-1.0, 1.0) * 10f64.powi((rng.next() * 8.0) as i32),
                        })
                        .collect();
                    if dtype.is_float() && values.len() > 20 {
                        // Specials in the middle: NaN, ±inf, ±0.
                        for (j, s) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0].iter().enumerate() {
                            values[7 + 3 * j] = *s;
                        }
                    }
                    let label = format!("{} {ty} {axes:?}", if is_max { "max" } else { "sum" });
                    // Float sums of >= 64 elements run in parallel (another order).
                    let n_red: usize = axes.iter().map(|&a| dims[a]).product();
                    let tol = if !is_max && dtype.is_float() && n_red >= 64 { Tol::ParallelSum } else { Tol::Bitwise };
                    cases.push((label, func, vec![Tensor::from_f64(dtype, &dims, &values)], tol));
                }
            }
        }
    }
    // Argmax by warps and blocks: few distinct values (ties: the first
    // index wins), NaN and ±inf in places.
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for (dims, axis) in [(vec![64, 10], 0), (vec![3, 300], 1), (vec![4097, 3], 0), (vec![2, 70000], 1)] {
            let ty = Type::new(dtype, &dims);
            let mut values: Vec<f64> = (0..ty.shape.num_elements()).map(|_| rng.uniform(-4.0, 4.0).round()).collect();
            if dtype.is_float() {
                let len = values.len();
                for (j, s) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0].iter().enumerate() {
                    values[(7 + 3 * j) * 11 % len] = *s;
                }
            }
            let mut b = Builder::new("argmax", std::slice::from_ref(&ty));
            let r = b.argmax(b.param(0), axis);
            let x = Tensor::from_f64(dtype, &dims, &values);
            cases.push((format!("argmax {ty} axis {axis}"), b.finish(vec![r]), vec![x], Tol::Bitwise));
        }
    }
    check_all(cases);
}

/// The transformer and CNN primitives (reduce_min, reverse, gather,
/// scatter_add, random_*, reduce_window_*, conv2d): deterministic kernels
/// with the interpreter's order of operations, so bitwise; sizes large
/// enough for many blocks and the grid-stride loop.
#[test]
fn gpu_transformer_and_cnn_ops_match_interpreter_bitwise() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(6);
    let mut cases = Vec::new();
    let random = |ty: &Type, rng: &mut Rng| {
        let mut v: Vec<f64> = (0..ty.shape.num_elements())
            .map(|_| match ty.dtype {
                DType::Bool => (rng.next() < 0.5) as u8 as f64,
                DType::I32 => rng.uniform(-2e9, 2e9).floor(),
                _ => rng.uniform(-1.0, 1.0) * 10f64.powi((rng.next() * 6.0) as i32 - 2),
            })
            .collect();
        if ty.dtype.is_float() && v.len() > 40 {
            for (j, s) in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0].iter().enumerate() {
                v[7 + 3 * j] = *s;
            }
        }
        Tensor::from_f64(ty.dtype, ty.shape.dims(), &v)
    };
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for (dims, axes) in [(vec![64, 10], vec![1]), (vec![16, 33, 7], vec![0, 2]), (vec![0, 3], vec![0])] {
            let ty = Type::new(dtype, &dims);
            let mut b = Builder::new("reduce_min", std::slice::from_ref(&ty));
            let r = b.reduce_min(b.param(0), axes.clone());
            cases.push((format!("min {ty} {axes:?}"), b.finish(vec![r]), vec![random(&ty, &mut rng)], Tol::Bitwise));
        }
    }
    for dtype in [DType::F32, DType::F64, DType::I32, DType::Bool] {
        let ty = Type::new(dtype, &[5, 7, 300]);
        let mut b = Builder::new("reverse", std::slice::from_ref(&ty));
        let (r1, r2) = (b.reverse(b.param(0), vec![0, 2]), b.reverse(b.param(0), vec![1]));
        cases.push((format!("reverse {ty}"), b.finish(vec![r1, r2]), vec![random(&ty, &mut rng)], Tol::Bitwise));
        // Embedding lookups: a [1000, 64] table at 4 x 128 indices, some out
        // of range (clamped) and many duplicates (scatter_add accumulates).
        let (table, idx) = (Type::new(dtype, &[1000, 64]), Type::new(DType::I32, &[4, 128]));
        let indices: Vec<i32> =
            (0..512).map(|i| if i % 37 == 0 { -5 + (i % 3) * 2000 } else { (i * 7919) % 300 }).collect();
        let indices = Tensor::i32(&[4, 128], indices);
        let mut b = Builder::new("gather", &[table.clone(), idx.clone()]);
        let r = b.gather(b.param(0), b.param(1));
        cases.push((
            format!("gather {table}"),
            b.finish(vec![r]),
            vec![random(&table, &mut rng), indices.clone()],
            Tol::Bitwise,
        ));
        if dtype != DType::Bool {
            let upd = Type::new(dtype, &[4, 128, 64]);
            let mut b = Builder::new("scatter_add", &[upd.clone(), idx.clone()]);
            let r = b.scatter_add(b.param(0), b.param(1), 1000);
            cases.push((
                format!("scatter_add {upd}"),
                b.finish(vec![r]),
                vec![random(&upd, &mut rng), indices],
                Tol::Bitwise,
            ));
        }
    }
    for key in [[0, 0], [42, -7], [i32::MIN, i32::MAX]] {
        let kt = Type::new(DType::I32, &[2]);
        let mut b = Builder::new("random", std::slice::from_ref(&kt));
        let k = b.param(0);
        let outs = vec![
            b.random_bits(k, &Shape(vec![1000, 100])),
            b.random_split(k, &Shape(vec![5000])),
            b.random_uniform(k, &Type::new(DType::F32, &[300, 300])),
            b.random_uniform(k, &Type::new(DType::F64, &[77, 13])),
        ];
        cases.push((format!("random {key:?}"), b.finish(outs), vec![Tensor::i32(&[2], key.to_vec())], Tol::Bitwise));
    }
    // A stack of keys (vmap's batching rule): block `k` from key `k` alone.
    {
        let kt = Type::new(DType::I32, &[3, 2]);
        let mut b = Builder::new("random_key_stack", std::slice::from_ref(&kt));
        let k = b.param(0);
        let outs = vec![
            b.random_bits(k, &Shape(vec![3, 1000, 7])),
            b.random_split(k, &Shape(vec![3, 501])),
            b.random_uniform(k, &Type::new(DType::F32, &[3, 300, 3])),
            b.random_uniform(k, &Type::new(DType::F64, &[3, 77])),
        ];
        let keys = Tensor::i32(&[3, 2], vec![0, 0, 42, -7, i32::MIN, i32::MAX]);
        cases.push(("random key stack".into(), b.finish(outs), vec![keys], Tol::Bitwise));
    }
    for dtype in [DType::F32, DType::F64] {
        let ty = Type::new(dtype, &[8, 16, 28, 28]);
        let pools = [
            Window { size: vec![1, 1, 2, 2], stride: vec![1, 1, 2, 2], low: vec![0; 4], high: vec![0; 4] },
            Window { size: vec![1, 1, 3, 3], stride: vec![1, 1, 2, 2], low: vec![0, 0, 1, 1], high: vec![0, 0, 1, 1] },
        ];
        for w in pools {
            for is_max in [false, true] {
                let mut b = Builder::new("pool", std::slice::from_ref(&ty));
                let r = b.reduce_window(b.param(0), w.clone(), is_max);
                let label = format!("reduce_window max={is_max} {ty} {w:?}");
                cases.push((label, b.finish(vec![r]), vec![random(&ty, &mut rng)], Tol::Bitwise));
            }
        }
        let plain = Conv::plain();
        let padded = Conv { low: [1, 1], high: [1, 1], ..Conv::plain() };
        let strided = Conv { stride: [2, 2], low: [1, 0], high: [0, 1], rhs_dilation: [1, 2], ..Conv::plain() };
        let transposed = Conv { low: [2, 2], high: [2, 2], lhs_dilation: [2, 2], ..Conv::plain() };
        let grouped = Conv { low: [1, 1], high: [1, 1], groups: 4, ..Conv::plain() };
        for (lhs, rhs, attrs) in [
            (vec![8, 16, 14, 14], vec![32, 16, 3, 3], plain),
            (vec![8, 16, 14, 14], vec![32, 16, 3, 3], padded),
            (vec![4, 3, 15, 16], vec![8, 3, 3, 3], strided),
            (vec![2, 8, 7, 7], vec![4, 8, 3, 3], transposed),
            (vec![2, 16, 9, 9], vec![8, 4, 3, 3], grouped),
        ] {
            let (lt, rt) = (Type::new(dtype, &lhs), Type::new(dtype, &rhs));
            let mut b = Builder::new("conv", &[lt.clone(), rt.clone()]);
            let r = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let inputs = vec![random(&lt, &mut rng), random(&rt, &mut rng)];
            cases.push((format!("conv2d {lt} x {rt} {attrs:?}"), b.finish(vec![r]), inputs, Tol::Bitwise));
        }
    }
    check_all(cases);
}

/// Batched matmul (one strided-batched cuBLAS call) against the interpreter,
/// each batch element within `matmul_close`'s tolerance.
#[test]
fn gpu_batch_matmul_matches_interpreter_within_tolerance() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(7);
    let mut failures = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        for (batch, m, k, n) in [(vec![3], 4, 5, 6), (vec![2, 4], 16, 32, 16), (vec![8], 1, 300, 7), (vec![2], 3, 0, 2)]
        {
            let mut ad = batch.clone();
            ad.extend([m, k]);
            let mut bd = batch.clone();
            bd.extend([k, n]);
            let (ta, tb) = (Type::new(dtype, &ad), Type::new(dtype, &bd));
            let mut b = Builder::new("bmm", &[ta.clone(), tb.clone()]);
            let r = b.batch_matmul(b.param(0), b.param(1));
            let func = b.finish(vec![r]);
            let gen = |ty: &Type, rng: &mut Rng| {
                let v: Vec<f64> = (0..ty.shape.num_elements()).map(|_| rng.uniform(-5.0, 5.0)).collect();
                Tensor::from_f64(dtype, ty.shape.dims(), &v)
            };
            let inputs = [gen(&ta, &mut rng), gen(&tb, &mut rng)];
            let want = interp::run(&func, &inputs);
            let got = gpu_run(&func, &inputs);
            let count: usize = batch.iter().product();
            // Compare matrix by matrix.
            let mat = |t: &Tensor, p: usize, r: usize, c: usize| {
                let v = t.to_f64_vec();
                Tensor::from_f64(dtype, &[r, c], &v[p * r * c..(p + 1) * r * c])
            };
            for p in 0..count {
                let (a, bb) = (mat(&inputs[0], p, m, k), mat(&inputs[1], p, k, n));
                if let Err(msg) = matmul_close(&a, &bb, &mat(&got[0], p, m, n), &mat(&want[0], p, m, n)) {
                    failures.push(format!("batch_matmul {ta} x {tb} matrix {p}: {msg}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Matmul tolerance, as the CPU backend's tests: cuBLAS sums in another
/// order than the interpreter.
fn matmul_close(a: &Tensor, b: &Tensor, got: &Tensor, want: &Tensor) -> Result<(), String> {
    let (m, k, n) = (a.shape.0[0], a.shape.0[1], b.shape.0[1]);
    let c = if a.dtype() == DType::F32 { 1e-6 } else { 1e-14 };
    let (av, bv, gv, wv) = (a.to_f64_vec(), b.to_f64_vec(), got.to_f64_vec(), want.to_f64_vec());
    if got.ty() != want.ty() {
        return Err(format!("type {} vs {}", got.ty(), want.ty()));
    }
    for i in 0..m {
        for j in 0..n {
            let scale: f64 = (0..k).map(|p| (av[i * k + p] * bv[p * n + j]).abs()).sum();
            let tol = c * (k as f64).sqrt().max(1.0) * scale;
            let (g, w) = (gv[i * n + j], wv[i * n + j]);
            if (g - w).abs() > tol {
                return Err(format!("[{i},{j}] gpu {g} vs interp {w} (tol {tol})"));
            }
        }
    }
    Ok(())
}

#[test]
fn gpu_matmul_matches_interpreter_within_tolerance() {
    if !gpu() {
        return;
    }
    let mut rng = Rng(4);
    let mut failures = Vec::new();
    for dtype in [DType::F32, DType::F64] {
        for (m, k, n) in
            [(1, 1, 1), (3, 4, 5), (17, 33, 9), (64, 64, 64), (2, 0, 3), (0, 4, 2), (8, 300, 1), (128, 256, 96)]
        {
            let (ta, tb) = (Type::new(dtype, &[m, k]), Type::new(dtype, &[k, n]));
            let mut b = Builder::new("matmul", &[ta.clone(), tb.clone()]);
            let r = b.matmul(b.param(0), b.param(1));
            let func = b.finish(vec![r]);
            let gen = |ty: &Type, rng: &mut Rng| {
                let v: Vec<f64> = (0..ty.shape.num_elements()).map(|_| rng.uniform(-5.0, 5.0)).collect();
                Tensor::from_f64(dtype, ty.shape.dims(), &v)
            };
            let inputs = [gen(&ta, &mut rng), gen(&tb, &mut rng)];
            let want = interp::run(&func, &inputs);
            let mut exe = Executable::compile(func.clone(), Backend::Cuda).unwrap();
            // Twice: the second run must not see the first run's results.
            for run in 0..2 {
                let got = exe.run(&inputs).unwrap();
                if let Err(msg) = matmul_close(&inputs[0], &inputs[1], &got[0], &want[0]) {
                    failures.push(format!("matmul {dtype} {m}x{k}x{n} run {run}: {msg}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The repository root: `JLC_REPO_ROOT` (set by the device check, whose
/// prebuilt binary runs in another checkout) or the build's.
pub(crate) fn repo_root() -> std::path::PathBuf {
    std::env::var_os("JLC_REPO_ROOT").map(Into::into).unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into())
}

fn digits_programs() -> compiler::lower::TrainPrograms {
    let path = repo_root().join("examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let (prog, diags) = compiler::lower::load("digits_mlp.jl", &text);
    assert!(diags.is_empty());
    let x = Type::new(DType::F32, &[64, 64]);
    let y = Type::new(DType::I32, &[64]);
    compiler::compile_training(&prog, None, &x, &y, &compiler::Options::default()).unwrap()
}

#[test]
fn gpu_digits_training_steps_match_interpreter() {
    if !gpu() {
        return;
    }
    let progs = digits_programs();
    let mut inputs = trainer::fit::init_params(&progs.params, 7);
    let n_params = inputs.len();
    let states: Vec<Tensor> = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)).collect();
    let n_states = states.len();
    inputs.extend(states);
    inputs.push(Tensor::scalar_f32(1.0));
    let mut rng = Rng(5);
    inputs.push(Tensor::f32(&[64, 64], (0..64 * 64).map(|_| (rng.next() * 17.0).floor() as f32 / 16.0).collect()));
    inputs.push(Tensor::i32(&[64], (0..64).map(|i| (i * 7 % 10) as i32).collect()));
    let mut exe = Executable::compile(progs.train_step.clone(), Backend::Cuda).unwrap();
    // Three chained steps, each compared with the interpreter on the same inputs.
    for step in 1..=3 {
        inputs[n_params + n_states] = Tensor::scalar_f32(step as f32);
        let want = interp::run(&progs.train_step, &inputs);
        let got = exe.run(&inputs).unwrap();
        assert_eq!(want.len(), got.len());
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.ty(), g.ty(), "step {step} output {k}");
            for (i, (p, q)) in w.to_f64_vec().iter().zip(g.to_f64_vec()).enumerate() {
                assert!(
                    (p - q).abs() <= 1e-5 * (1.0 + p.abs().max(q.abs())),
                    "step {step} output {k}[{i}]: interp {p} vs gpu {q}"
                );
            }
        }
        // Continue from the interpreter's parameters and states.
        for (slot, value) in want.into_iter().take(n_params + n_states).enumerate() {
            inputs[slot] = value;
        }
    }
    let val = progs.val_step.expect("digits has a validation step");
    let mut val_inputs: Vec<Tensor> = inputs[..n_params].to_vec();
    val_inputs.extend(inputs[inputs.len() - 2..].iter().cloned());
    let want = interp::run(&val, &val_inputs);
    let got = Executable::compile(val.clone(), Backend::Cuda).unwrap().run(&val_inputs).unwrap();
    for (w, g) in want.iter().zip(&got) {
        let (p, q) = (w.scalar_value(), g.scalar_value());
        assert!((p - q).abs() <= 1e-5 * (1.0 + p.abs()), "validation: interp {p} vs gpu {q}");
    }
}

#[test]
fn without_a_gpu_compiling_for_cuda_is_an_error_not_a_panic() {
    if runtime::cuda::probe().is_ok() {
        println!("a GPU is present: nothing to check here");
        return;
    }
    let ty = Type::new(DType::F32, &[3]);
    let func = unary_func(Op::Exp, &ty);
    let err = Executable::compile(func, Backend::Cuda).err().expect("no GPU: compile must fail");
    let msg = err.to_string();
    assert!(msg.contains("no CUDA"), "unexpected error: {msg}");
}

/// Held inputs on the GPU: the carry is a device copy, captured into the
/// step's CUDA graph from the second call on. First the bitwise swap check
/// of `held.rs` (its output 0 is an input buffer: staged) and its staged-
/// inputs check (copies on a second stream from pinned memory), then six digits
/// training steps held (one plain call, one capture, four replays), each
/// re-held from the interpreter's chained values and compared with it.
#[test]
fn gpu_held_inputs_and_graph_replay_match_interpreter() {
    if !gpu() {
        return;
    }
    crate::held::check_swap_carry(Backend::Cuda);
    crate::held::check_staged_calls(Backend::Cuda);
    crate::held::check_calls_into(Backend::Cuda);
    crate::held::check_recorded_outputs(Backend::Cuda);
    crate::held::check_outputs_that_are_held_inputs(Backend::Cuda);
    let progs = digits_programs();
    let mut inputs = trainer::fit::init_params(&progs.params, 11);
    inputs.extend(progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    let n_state = inputs.len();
    let mut rng = Rng(9);
    let x = Tensor::f32(&[64, 64], (0..64 * 64).map(|_| (rng.next() * 17.0).floor() as f32 / 16.0).collect());
    let y = Tensor::i32(&[64], (0..64).map(|i| (i * 3 % 10) as i32).collect());
    let carry: Vec<(usize, usize)> = (0..n_state).map(|i| (i, i)).collect();
    let mut exe = Executable::compile(progs.train_step.clone(), Backend::Cuda).unwrap();
    let close = |p: f64, q: f64| (p - q).abs() <= 1e-5 * (1.0 + p.abs().max(q.abs()));
    for step in 1..=6 {
        let mut all = inputs.clone();
        all.push(Tensor::scalar_f32(step as f32));
        all.push(x.clone());
        all.push(y.clone());
        let want = interp::run(&progs.train_step, &all);
        exe.hold(inputs.iter().cloned().enumerate().collect(), &carry).unwrap();
        let got = exe.run_held(vec![Tensor::scalar_f32(step as f32), x.clone(), y.clone()]).unwrap();
        assert_eq!(got.len(), want.len() - n_state, "step {step}: returned outputs");
        for (k, (w, g)) in want[n_state..].iter().zip(&got).enumerate() {
            let (p, q) = (w.scalar_value(), g.scalar_value());
            assert!(close(p, q), "step {step} returned output {k}: interp {p} vs gpu {q}");
        }
        for (slot, w) in want[..n_state].iter().enumerate() {
            let g = exe.held_value(slot).unwrap();
            for (i, (p, q)) in w.to_f64_vec().iter().zip(g.to_f64_vec()).enumerate() {
                assert!(close(*p, q), "step {step} carried {slot}[{i}]: interp {p} vs gpu {q}");
            }
        }
        inputs = want.into_iter().take(n_state).collect();
    }
}

/// W1's training step held on the GPU for eight steps of different
/// batches (128 x 784), the batches given with each call on one executable
/// and staged a call ahead on another (copied from pinned memory on a
/// second stream while the step before computes): bitwise the same losses,
/// logs and final parameters and moments. A copy racing the step that
/// reads the batch before would show here.
#[test]
fn gpu_staged_batches_equal_given_batches_bitwise() {
    if !gpu() {
        return;
    }
    let (prog, diags) = compiler::lower::load("w1.jl", crate::gpu_fusion::W1_SRC);
    assert!(diags.is_empty(), "{diags:?}");
    let (x_ty, y_ty) = (Type::new(DType::F32, &[128, 784]), Type::new(DType::I32, &[128]));
    let progs = compiler::compile_training(&prog, None, &x_ty, &y_ty, &compiler::Options::default()).unwrap();
    let mut held = trainer::fit::init_params(&progs.params, 5);
    held.extend(progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    let n_state = held.len();
    let carry: Vec<(usize, usize)> = (0..n_state).map(|i| (i, i)).collect();
    let mut rng = Rng(21);
    let batches: Vec<Vec<Tensor>> = (0..8)
        .map(|step| {
            let x = Tensor::f32(&[128, 784], (0..128 * 784).map(|_| rng.next() as f32).collect());
            let y = Tensor::i32(&[128], (0..128).map(|_| (rng.next() * 10.0) as i32 % 10).collect());
            vec![Tensor::scalar_f32((step + 1) as f32), x, y]
        })
        .collect();
    let mut given = Executable::compile(progs.train_step.clone(), Backend::Cuda).unwrap();
    let mut staged = Executable::compile(progs.train_step.clone(), Backend::Cuda).unwrap();
    given.hold(held.iter().cloned().enumerate().collect(), &carry).unwrap();
    staged.hold(held.iter().cloned().enumerate().collect(), &carry).unwrap();
    for (step, batch) in batches.iter().enumerate() {
        let want = given.run_held(batch.clone()).unwrap();
        let fresh = if step == 0 { Fresh::Given(batch.clone()) } else { Fresh::Staged };
        let got = staged.run_held_staging(fresh, batches.get(step + 1).cloned()).unwrap();
        for (k, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(w.to_bits_vec() == g.to_bits_vec(), "step {step} output {k}: staged {g:?} vs given {w:?}");
        }
    }
    for slot in 0..n_state {
        let (w, g) = (given.held_value(slot).unwrap(), staged.held_value(slot).unwrap());
        assert!(w.to_bits_vec() == g.to_bits_vec(), "held value {slot} differs after eight steps");
    }
}

/// Staging under stress: a 64 MB fresh input and a step that only reduces
/// it, so the copy of the next input (about 3 ms) dwarfs the step and a
/// missing wait would show. Call k's input is all k; the step returns its
/// maximum and its negated minimum's negation (max(x), -max(-x)): both
/// must be k, so neither the next input (k + 1) nor a stale one (k - 1)
/// may leak into what a step reads. Ten calls, all staged but the first.
#[test]
fn gpu_large_staged_inputs_arrive_whole() {
    if !gpu() {
        return;
    }
    const N: usize = 1 << 24;
    let (scalar, big) = (Type::scalar(DType::F32), Type::new(DType::F32, &[N]));
    let mut b = Builder::new("stress", &[scalar.clone(), big]);
    let (a, x) = (b.param(0), b.param(1));
    let top = b.reduce_max(x, vec![0]);
    let top = b.add(top, a);
    let neg = b.unary(Op::Neg, x);
    let bottom = b.reduce_max(neg, vec![0]);
    let bottom = b.unary(Op::Neg, bottom);
    let func = b.finish(vec![top, bottom]);
    let mut exe = Executable::compile(func, Backend::Cuda).unwrap();
    exe.hold(vec![(0, Tensor::scalar_f32(0.0))], &[]).unwrap();
    let input = |k: usize| vec![Tensor::f32(&[N], vec![k as f32; N])];
    for k in 0..10 {
        let fresh = if k == 0 { Fresh::Given(input(0)) } else { Fresh::Staged };
        let got = exe.run_held_staging(fresh, (k < 9).then(|| input(k + 1))).unwrap();
        let (max, min) = (got[0].scalar_value(), got[1].scalar_value());
        assert_eq!((max, min), (k as f64, k as f64), "call {k}: the step read another call's input");
    }
}

/// Convolutions with many taps run as im2col + cuBLAS GEMM
/// (`ptx/conv_gemm.rs`): within `T * eps * sum |x w|` of the interpreter
/// (T taps), for plain, strided/padded/dilated/grouped and
/// weight-gradient-like shapes, in f32 and f64.
#[test]
fn gpu_conv2d_by_gemm_matches_interpreter_within_tolerance() {
    if !gpu() {
        return;
    }
    let conv =
        |stride, low, high, ld, rd, groups| Conv { stride, low, high, lhs_dilation: ld, rhs_dilation: rd, groups };
    let cases: Vec<(&[usize], &[usize], Conv)> = vec![
        (&[2, 32, 6, 6], &[4, 32, 3, 3], Conv::plain()),
        (&[1, 64, 5, 7], &[4, 32, 3, 3], conv([2, 1], [1, 0], [0, 2], [2, 1], [1, 2], 2)),
        (&[8, 32, 13, 13], &[16, 32, 11, 11], Conv::plain()),
    ];
    let mut rng = Rng(31);
    for dtype in [DType::F32, DType::F64] {
        for (ld, rd, attrs) in &cases {
            let (lt, rt) = (Type::new(dtype, ld), Type::new(dtype, rd));
            let mut b = Builder::new("conv", &[lt.clone(), rt.clone()]);
            let r = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let func = b.finish(vec![r]);
            let mut random = |dims: &[usize]| {
                let v: Vec<f64> = (0..dims.iter().product::<usize>()).map(|_| rng.next() * 2.0 - 1.0).collect();
                Tensor::from_f64(dtype, dims, &v)
            };
            let inputs = [random(ld), random(rd)];
            let abs: Vec<Tensor> = inputs
                .iter()
                .map(|t| {
                    let v: Vec<f64> = t.to_f64_vec().iter().map(|x| x.abs()).collect();
                    Tensor::from_f64(dtype, t.shape.dims(), &v)
                })
                .collect();
            let want = interp::run(&func, &inputs)[0].to_f64_vec();
            let magnitude = interp::run(&func, &abs)[0].to_f64_vec();
            let got = gpu_run(&func, &inputs)[0].to_f64_vec();
            let taps: usize = rd[1..].iter().product();
            let eps = if dtype == DType::F32 { f32::EPSILON as f64 } else { f64::EPSILON };
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                let bound = taps as f64 * eps * magnitude[i];
                assert!((w - g).abs() <= bound, "{lt} x {rt} {attrs:?}[{i}]: interp {w} vs gpu {g} (bound {bound})");
            }
        }
    }
}

/// A program too large for the card fails to load with an error that says
/// how many bytes it asked for and how many are free of the total, and the
/// process stays usable: a small program compiles and runs right after.
#[test]
fn gpu_out_of_memory_is_a_clear_error_and_the_process_goes_on() {
    if !gpu() {
        return;
    }
    // 4e11 bytes (an output: it must have a buffer): more than any card has.
    let ty = Type::new(DType::F32, &[1]);
    let mut b = Builder::new("huge", std::slice::from_ref(&ty));
    let big = b.broadcast_to(b.param(0), &Shape(vec![100_000, 1_000_000]));
    let func = b.finish(vec![big]);
    let err = Executable::compile(func, Backend::Cuda).err().expect("400 GB cannot be allocated").to_string();
    assert!(err.contains("allocating 400000000000 bytes") && err.contains("bytes free of"), "{err}");
    let small = unary_func(Op::Exp, &Type::new(DType::F32, &[4]));
    let x = Tensor::f32(&[4], vec![0.0, 1.0, -1.0, 2.0]);
    assert_eq!(gpu_run(&small, &[x.clone()]).len(), 1, "the process is usable after the failure");
}

/// Parameter groups on the GPU: a whole run of `param_groups.rs`'s model
/// (Adam for the head, SGD for a batch norm whose running statistics are
/// buffers, a frozen first layer; uneven state counts, held parameters,
/// gradient accumulation) against the same run on the CPU, within the
/// digits step's tolerance; frozen parameters bitwise their initial values.
#[test]
fn gpu_runs_with_parameter_groups_match_the_cpu() {
    if !gpu() {
        return;
    }
    let path = crate::param_groups::run_model("gpu-param-groups");
    let text = crate::param_groups::RUN_MODEL;
    let run = |backend: Backend, logs: &str| {
        let overrides = vec![format!("trainer.default_root_dir={}", crate::examples::tempdir(logs).display())];
        let opts = trainer::FitOptions { overrides, backend, ..Default::default() };
        trainer::fit(&path, text, &opts).unwrap_or_else(|e| panic!("{e}"))
    };
    let (cpu, cuda) = (run(Backend::Cpu, "gpu-param-groups-cpu"), run(Backend::Cuda, "gpu-param-groups-cuda"));
    assert_eq!(cpu.steps, cuda.steps);
    let specs: Vec<compiler::lower::ParamSpec> = cpu.params.iter().map(|(p, _)| p.clone()).collect();
    let init = trainer::fit::init_params(&specs, 11);
    for (((spec, c), (_, g)), start) in cpu.params.iter().zip(&cuda.params).zip(&init) {
        if spec.kind == compiler::lower::ParamKind::Frozen {
            assert_eq!(g.to_f64_vec(), start.to_f64_vec(), "{} is frozen but moved on the GPU", spec.path);
        }
        for (i, (p, q)) in c.to_f64_vec().iter().zip(g.to_f64_vec()).enumerate() {
            assert!((p - q).abs() <= 1e-4 * (1.0 + p.abs()), "{}[{i}]: cpu {p} vs gpu {q}", spec.path);
        }
    }
    let names = |s: &trainer::FitSummary| s.states.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&cpu), names(&cuda));
}
