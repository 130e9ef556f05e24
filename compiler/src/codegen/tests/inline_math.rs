//! The inline transcendentals (`cpu/vmath.rs`): the model (the algorithms on
//! Rust floats) against the interpreter's libm within the documented ULP
//! bounds over many inputs; the JIT against the model bitwise, alone (scalar
//! and vector code, special values) and inside every fusion context (a
//! broadcast operand, a chain, a reduction, a chain of two inline ops, a
//! value with several uses), with the expected result computed by plain
//! Rust arithmetic around the model.

use super::{canonical_bits, Rng};
use crate::codegen::cpu::vmath::{Model, TESTED_ULP};
use crate::codegen::cpu::{compile_with, Options};
use crate::ir::{interp, Builder, DType, Func, Op, Shape, Tensor, Type};

const OPS: [Op; 4] = [Op::Exp, Op::Log, Op::Tanh, Op::Logistic];

/// Distance in representable values between two floats of `dtype` (0 for
/// two NaNs, `u64::MAX` for one NaN); ±0 are the same point.
fn ulp_distance(dtype: DType, a: f64, b: f64) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    let key = |x: f64| -> i128 {
        let (bits, sign) = if dtype == DType::F32 {
            let bits = (x as f32).to_bits();
            ((bits & 0x7fff_ffff) as i128, bits >> 31 == 1)
        } else {
            let bits = x.to_bits();
            ((bits & 0x7fff_ffff_ffff_ffff) as i128, bits >> 63 == 1)
        };
        if sign {
            -bits
        } else {
            bits
        }
    };
    (key(a) - key(b)).unsigned_abs() as u64
}

fn bound(op: &Op, dtype: DType) -> u64 {
    let (_, b32, b64) = TESTED_ULP.iter().find(|(o, _, _)| o == op).expect("every inline op has a bound");
    if dtype == DType::F32 {
        *b32
    } else {
        *b64
    }
}

/// The interpreter's results for `op` on `values`.
fn libm(op: &Op, dtype: DType, values: &[f64]) -> Vec<f64> {
    let ty = Type::new(dtype, &[values.len()]);
    let mut b = Builder::new("oracle", std::slice::from_ref(&ty));
    let res = b.unary(op.clone(), b.param(0));
    let func = b.finish(vec![res]);
    interp::run(&func, &[Tensor::from_f64(dtype, &[values.len()], values)])[0].to_f64_vec()
}

/// Specials and the boundaries of each algorithm's ranges.
fn edge_inputs(dtype: DType) -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        0.625,
        -0.625,
        0.6249999,
        0.6250001,
        1e-40,
        -1e-40,
        1e-30,
        1e-10,
        -1e-10,
        1e-310,
        5e-324,
        2f64.powi(-126),
        2f64.powi(-1022),
        f32::MAX as f64,
        f64::MAX,
        -f64::MAX,
        88.0,
        88.72,
        88.7228,
        88.73,
        89.0,
        -87.3,
        -103.0,
        -103.9,
        -104.0,
        -150.0,
        709.0,
        709.78,
        709.79,
        710.0,
        -708.4,
        -744.4,
        -745.1,
        -745.2,
        -746.0,
        9.0,
        -9.0,
        9.1,
        19.0,
        20.0,
        44.0,
        355.0,
        1.0000001,
        0.99999994,
        std::f64::consts::SQRT_2,
        std::f64::consts::FRAC_1_SQRT_2,
        std::f64::consts::LN_2,
        std::f64::consts::LN_2 * 0.5,
        -std::f64::consts::LN_2 * 0.5,
    ];
    if dtype == DType::F32 {
        v.extend([f32::MIN_POSITIVE as f64, 1.4e-45, f32::MAX as f64 * 0.5]);
    }
    v
}

/// `n` inputs: edges, random bit patterns over the whole float range, and
/// dense uniform ranges where each function does its work.
fn sweep_inputs(dtype: DType, n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v = edge_inputs(dtype);
    while v.len() < n {
        let x = match rng.below(5) {
            0 if dtype == DType::F32 => f32::from_bits(rng.next_u64() as u32) as f64,
            0 => f64::from_bits(rng.next_u64()),
            1 => rng.uniform(-1.0, 1.0),
            2 => rng.uniform(-12.0, 12.0),
            3 if dtype == DType::F32 => rng.uniform(-110.0, 95.0),
            3 => rng.uniform(-750.0, 715.0),
            _ => rng.uniform(0.0, 4.0),
        };
        v.push(x);
    }
    v
}

#[test]
fn model_is_within_the_documented_ulp_bound_of_the_interpreter() {
    for dtype in [DType::F32, DType::F64] {
        for op in &OPS {
            let mut rng = Rng(0x7A7E + op_index(op) as u64);
            let inputs = sweep_inputs(dtype, 60_000, &mut rng);
            let mut model = Model::new(dtype == DType::F64);
            let mut worst = (0, 0.0, 0.0, 0.0);
            for (&x, &want) in inputs.iter().zip(&libm(op, dtype, &inputs)) {
                let got = model.run(op, x);
                let d = ulp_distance(dtype, want, got);
                // Exact on specials: signed zeros and infinities keep their bits.
                if want == 0.0 || want.is_infinite() {
                    assert_eq!(
                        want.to_bits(),
                        got.to_bits(),
                        "{op:?} {dtype} at {x:e}: libm {want:e} vs model {got:e}"
                    );
                }
                if d > worst.0 {
                    worst = (d, x, want, got);
                }
            }
            let (d, x, want, got) = worst;
            assert!(d <= bound(op, dtype), "{op:?} {dtype}: {d} ulp at {x:e} (libm {want:e}, model {got:e})");
        }
    }
}

fn op_index(op: &Op) -> usize {
    OPS.iter().position(|o| o == op).expect("an inline op")
}

fn round(dtype: DType, x: f64) -> f64 {
    if dtype == DType::F32 {
        x as f32 as f64
    } else {
        x
    }
}

fn compile_inline(func: &Func) -> crate::codegen::CpuFunc {
    compile_with(func, &Options::default()).unwrap_or_else(|e| panic!("compile: {e}"))
}

#[track_caller]
fn assert_bitwise(label: &str, want: &[f64], got: &Tensor, inputs: &[f64]) {
    let dtype = got.ty().dtype;
    let want_t = Tensor::from_f64(dtype, got.shape.dims(), want);
    let (wb, gb) = (canonical_bits(&want_t), canonical_bits(got));
    if let Some(i) = (0..wb.len()).find(|&i| wb[i] != gb[i]) {
        let x = inputs.get(i).copied().unwrap_or(f64::NAN);
        panic!("{label}: element {i} (input {x:e}): model {:e} vs jit {:e}", want[i], got.to_f64_vec()[i]);
    }
}

#[test]
fn jit_equals_the_model_bitwise_in_scalar_and_vector_code() {
    for dtype in [DType::F32, DType::F64] {
        for op in &OPS {
            let mut rng = Rng(0x51_4D + op_index(op) as u64);
            // 4003 elements: the vector body and a scalar tail; [] the scalar path.
            for n in [4003, 0] {
                let dims: Vec<usize> = if n == 0 { vec![] } else { vec![n] };
                let values = if n == 0 { vec![-0.3] } else { sweep_inputs(dtype, n, &mut rng) };
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("inline", std::slice::from_ref(&ty));
                let res = b.unary(op.clone(), b.param(0));
                let func = b.finish(vec![res]);
                let got = compile_inline(&func).run(&[Tensor::from_f64(dtype, &dims, &values)]);
                let mut model = Model::new(dtype == DType::F64);
                let want: Vec<f64> = values.iter().map(|&x| model.run(op, x)).collect();
                assert_bitwise(&format!("{op:?} {ty}"), &want, &got[0], &values);
            }
        }
    }
}

/// Each inline op inside fusion groups: `op(x * w + c)` with `c` broadcast
/// along rows, then `* 2 + 1`; row sums and the total max of `op(x)`;
/// `exp(op(x))` (two inline ops in one tree); `t * t + t` with `t = op(x)`
/// (two uses: `t` gets a buffer). Expected values: plain Rust arithmetic
/// (rounded to the dtype after each op: exact for +, -, *) around the model,
/// summing in the interpreter's order.
#[test]
fn inline_ops_fuse_with_neighbours_and_match_the_model_bitwise() {
    let (rows, cols) = (5, 23);
    for dtype in [DType::F32, DType::F64] {
        for op in &OPS {
            let mut rng = Rng(0xF05E + op_index(op) as u64);
            let mat = Type::new(dtype, &[rows, cols]);
            let row = Type::new(dtype, &[cols]);
            let mut b = Builder::new("fused", &[mat.clone(), mat.clone(), row]);
            let (x, w, c) = (b.param(0), b.param(1), b.param(2));
            let xw = b.mul(x, w);
            let cb = b.broadcast(c, &Shape(vec![rows, cols]), vec![1]);
            let lin = b.add(xw, cb);
            let t = b.unary(op.clone(), lin);
            let two = b.full(2.0, &mat);
            let one = b.full(1.0, &mat);
            let t2 = b.mul(t, two);
            let affine = b.add(t2, one);
            let ox = b.unary(op.clone(), x);
            let sums = b.reduce_sum(ox, vec![1]);
            let ox2 = b.unary(op.clone(), x);
            let max = b.reduce_max(ox2, vec![0, 1]);
            let ox3 = b.unary(op.clone(), x);
            let chained = b.unary(Op::Exp, ox3);
            let u = b.unary(op.clone(), w);
            let uu = b.mul(u, u);
            let multi = b.add(uu, u);
            let func = b.finish(vec![affine, sums, max, chained, multi]);
            let n = rows * cols;
            // Moderate values (and a few specials) so every branch is taken.
            let mut xs: Vec<f64> = (0..n).map(|_| rng.uniform(-4.0, 4.0)).collect();
            xs[3] = 0.0;
            xs[7] = -0.0;
            xs[11] = 0.3;
            let ws: Vec<f64> = (0..n).map(|_| rng.uniform(0.0, 3.0)).collect();
            let cs: Vec<f64> = (0..cols).map(|_| rng.uniform(-1.0, 1.0)).collect();
            let inputs = [
                Tensor::from_f64(dtype, &[rows, cols], &xs),
                Tensor::from_f64(dtype, &[rows, cols], &ws),
                Tensor::from_f64(dtype, &[cols], &cs),
            ];
            let got = compile_inline(&func).run(&inputs);
            // The inputs as the program sees them.
            let (xs, ws, cs): (Vec<f64>, Vec<f64>, Vec<f64>) =
                (inputs[0].to_f64_vec(), inputs[1].to_f64_vec(), inputs[2].to_f64_vec());
            let mut m = Model::new(dtype == DType::F64);
            let r = |v: f64| round(dtype, v);
            let affine: Vec<f64> = (0..n)
                .map(|i| {
                    let lin = r(r(xs[i] * ws[i]) + cs[i % cols]);
                    r(r(m.run(op, lin) * 2.0) + 1.0)
                })
                .collect();
            assert_bitwise(&format!("{op:?} {dtype} affine"), &affine, &got[0], &xs);
            let sums: Vec<f64> =
                (0..rows).map(|i| (0..cols).fold(0.0, |acc, j| r(acc + m.run(op, xs[i * cols + j])))).collect();
            assert_bitwise(&format!("{op:?} {dtype} row sums"), &sums, &got[1], &[]);
            let max = xs.iter().fold(f64::NEG_INFINITY, |acc, &x| interp::fmax(acc, m.run(op, x)));
            assert_bitwise(&format!("{op:?} {dtype} max"), &[max], &got[2], &[]);
            let chained: Vec<f64> = xs
                .iter()
                .map(|&x| {
                    let t = m.run(op, x);
                    m.run(&Op::Exp, t)
                })
                .collect();
            assert_bitwise(&format!("{op:?} {dtype} exp chain"), &chained, &got[3], &xs);
            let multi: Vec<f64> = ws
                .iter()
                .map(|&w| {
                    let u = m.run(op, w);
                    r(r(u * u) + u)
                })
                .collect();
            assert_bitwise(&format!("{op:?} {dtype} two uses"), &multi, &got[4], &ws);
        }
    }
}

/// With `inline_math` off, the same ops are host libm calls: bitwise the
/// interpreter.
#[test]
fn without_inline_math_the_ops_are_bitwise_the_interpreter() {
    let mut rng = Rng(0xB17);
    for dtype in [DType::F32, DType::F64] {
        for op in &OPS {
            let values = sweep_inputs(dtype, 501, &mut rng);
            let ty = Type::new(dtype, &[values.len()]);
            let mut b = Builder::new("exact", std::slice::from_ref(&ty));
            let res = b.unary(op.clone(), b.param(0));
            let func = b.finish(vec![res]);
            let input = Tensor::from_f64(dtype, &[values.len()], &values);
            let got = compile_with(&func, &Options { inline_math: false, ..Options::default() })
                .unwrap()
                .run(std::slice::from_ref(&input));
            let want = libm(op, dtype, &values);
            assert_bitwise(&format!("{op:?} {dtype} exact"), &want, &got[0], &values);
        }
    }
}

/// The 512-bit routines (`cpu/vmath_x16.rs`) run the same algorithms as the
/// model, so they agree bitwise on the sweep (NaNs as NaNs), including the
/// masked tail (60,003 elements) and in place. Skipped on hosts without
/// AVX-512F, where the JIT never calls them.
#[test]
fn x16_routines_equal_the_model_bitwise() {
    use crate::codegen::cpu::vmath_x16 as x16;
    if !x16::available() {
        eprintln!("skipped: no AVX-512F on this host");
        return;
    }
    let routines: [(Op, extern "C" fn(*const f32, *const f32, *mut f32, usize)); 4] = [
        (Op::Exp, x16::jl_exp_f32_x16),
        (Op::Log, x16::jl_log_f32_x16),
        (Op::Tanh, x16::jl_tanh_f32_x16),
        (Op::Logistic, x16::jl_logistic_f32_x16),
    ];
    for (op, routine) in routines {
        let mut rng = Rng(0x1616 + op_index(&op) as u64);
        let inputs: Vec<f32> = sweep_inputs(DType::F32, 60_003, &mut rng).iter().map(|&x| x as f32).collect();
        let mut model = Model::new(false);
        let mut got = vec![0.0f32; inputs.len()];
        routine(inputs.as_ptr(), std::ptr::null(), got.as_mut_ptr(), inputs.len());
        let mut in_place = inputs.clone();
        routine(in_place.as_ptr(), std::ptr::null(), in_place.as_mut_ptr(), in_place.len());
        for (i, &x) in inputs.iter().enumerate() {
            let want = model.run(&op, x as f64) as f32;
            for (label, g) in [("out of place", got[i]), ("in place", in_place[i])] {
                assert!(
                    (want.is_nan() && g.is_nan()) || want.to_bits() == g.to_bits(),
                    "{op:?} {label} at {x:e} (element {i}): model {want:e} vs x16 {g:e}"
                );
            }
        }
    }
}

/// Loops rooted at an inline op call its 512-bit routine per row or chunk
/// (`Options::wide_math`, on hosts with AVX-512F): `op(x - m)` with `m`
/// broadcast along rows of 37 (a strided leaf, rows not a multiple of 16),
/// and `op(y * 0.5)` over 2,100 elements (two 1,024-element chunks and a
/// rest). Bitwise the model, and the same bits with `wide_math` off.
#[test]
fn wide_roots_match_the_model_bitwise() {
    let (rows, cols, long) = (3, 37, 2100);
    for op in &OPS {
        let mut rng = Rng(0x1DE + op_index(op) as u64);
        let mat = Type::new(DType::F32, &[rows, cols]);
        let mut b = Builder::new("rows", &[mat.clone(), Type::new(DType::F32, &[rows])]);
        let mb = b.broadcast(b.param(1), &Shape(vec![rows, cols]), vec![0]);
        let centered = b.sub(b.param(0), mb);
        let res = b.unary(op.clone(), centered);
        let by_rows = b.finish(vec![res]);
        let mut b = Builder::new("long", &[Type::new(DType::F32, &[long])]);
        let half = b.full(0.5, &Type::new(DType::F32, &[long]));
        let scaled = b.mul(b.param(0), half);
        let res = b.unary(op.clone(), scaled);
        let chunked = b.finish(vec![res]);

        let xs: Vec<f64> = sweep_inputs(DType::F32, rows * cols, &mut rng);
        let ms: Vec<f64> = (0..rows).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let ys: Vec<f64> = sweep_inputs(DType::F32, long, &mut rng);
        let cases = [
            (
                &by_rows,
                vec![Tensor::from_f64(DType::F32, &[rows, cols], &xs), Tensor::from_f64(DType::F32, &[rows], &ms)],
            ),
            (&chunked, vec![Tensor::from_f64(DType::F32, &[long], &ys)]),
        ];
        let mut m = Model::new(false);
        for (k, (func, inputs)) in cases.iter().enumerate() {
            let seen: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_f64_vec()).collect();
            let want: Vec<f64> = if k == 0 {
                (0..rows * cols).map(|i| m.run(op, round(DType::F32, seen[0][i] - seen[1][i / cols]))).collect()
            } else {
                seen[0].iter().map(|&y| m.run(op, round(DType::F32, y * 0.5))).collect()
            };
            let got = compile_inline(func).run(inputs);
            assert_bitwise(&format!("{op:?} case {k} wide"), &want, &got[0], &seen[0]);
            let narrow = Options { wide_math: false, ..Options::default() };
            let got = compile_with(func, &narrow).unwrap().run(inputs);
            assert_bitwise(&format!("{op:?} case {k} narrow"), &want, &got[0], &seen[0]);
        }
    }
}
