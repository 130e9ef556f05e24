//! Tests of the CPU backend against the oracle, `ir::interp::run`.
//!
//! Every op and dtype gets a hand-built program with special values (NaN,
//! ±inf, ±0, saturating conversions, i32 division by zero), compared bitwise
//! with NaNs canonicalized. Matmul is compared with a tolerance (see
//! `assert_matmul_close`). A generator of random well-typed programs covers
//! op combinations; its seeds are fixed and printed on failure.

use super::cpu::{compile_with, CpuFunc, Options};
use super::CodegenError;

/// The bitwise tests compile with host libm transcendentals (bitwise the
/// interpreter); `inline_math.rs` tests the inline ones (the default).
fn compile(func: &Func) -> Result<CpuFunc, CodegenError> {
    compile_with(func, &Options { inline_math: false, ..Options::default() })
}
use crate::ir::{interp, text, Builder, DType, Data, Func, Op, Shape, Tensor, Type, ValueId};

// ---------------------------------------------------------------- helpers

/// splitmix64: a tiny deterministic PRNG for test data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.uniform(0.0, 1.0) < p
    }
}

/// Element bits with every NaN mapped to one marker, so that NaN payload and
/// sign (unspecified for Cranelift's fmin/fmax) do not count as differences.
fn canonical_bits(t: &Tensor) -> Vec<u64> {
    const NAN: u64 = u64::MAX;
    match &t.data {
        Data::F32(v) => v.iter().map(|x| if x.is_nan() { NAN } else { x.to_bits() as u64 }).collect(),
        Data::F64(v) => v.iter().map(|x| if x.is_nan() { NAN } else { x.to_bits() }).collect(),
        Data::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        Data::Bool(v) => v.iter().map(|&x| x as u64).collect(),
    }
}

fn jit_run(func: &Func, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut cpu = compile(func).unwrap_or_else(|err| panic!("compile failed: {err}\n{}", text::print(func)));
    cpu.run(inputs)
}

/// Asserts the JIT's outputs equal the interpreter's, bitwise up to NaNs.
#[track_caller]
fn assert_same(label: &str, func: &Func, inputs: &[Tensor]) {
    let want = interp::run(func, inputs);
    let got = jit_run(func, inputs);
    assert_outputs_equal(label, func, inputs, &want, &got);
}

#[track_caller]
fn assert_outputs_equal(label: &str, func: &Func, inputs: &[Tensor], want: &[Tensor], got: &[Tensor]) {
    assert_eq!(want.len(), got.len(), "{label}: output count");
    for (k, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w.ty(), g.ty(), "{label}: output {k} type");
        let (wb, gb) = (canonical_bits(w), canonical_bits(g));
        if let Some(i) = (0..wb.len()).find(|&i| wb[i] != gb[i]) {
            panic!(
                "{label}: output {k} differs at flat index {i}: interp {} vs jit {}\n{}\ninputs: {inputs:?}",
                w.to_f64_vec()[i],
                g.to_f64_vec()[i],
                text::print(func)
            );
        }
    }
}

/// Float specials: signed zeros, infinities, NaN, subnormals, values that
/// saturate or just fit when converted to i32, and ordinary numbers.
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
    ]
}

fn i32_specials() -> Vec<i32> {
    vec![0, 1, -1, 2, -2, 7, -7, 100, i32::MAX, i32::MIN, i32::MIN + 1, 46341, -65536]
}

fn tensor_of(dtype: DType, dims: &[usize], values: &[f64]) -> Tensor {
    Tensor::from_f64(dtype, dims, values)
}

/// `n` values of `dtype`: the specials first, then random ones.
fn values_for(dtype: DType, n: usize, rng: &mut Rng) -> Vec<f64> {
    let specials: Vec<f64> = match dtype {
        DType::F32 | DType::F64 => float_specials(),
        DType::I32 => i32_specials().into_iter().map(f64::from).collect(),
        DType::Bool => vec![0.0, 1.0],
    };
    (0..n)
        .map(|i| match dtype {
            _ if i < specials.len() => specials[i],
            DType::F32 | DType::F64 => rng.uniform(-10.0, 10.0),
            DType::I32 => (rng.uniform(-1000.0, 1000.0)).floor(),
            DType::Bool => rng.below(2) as f64,
        })
        .collect()
}

fn random_tensor(ty: &Type, rng: &mut Rng) -> Tensor {
    let n = ty.shape.num_elements();
    let values: Vec<f64> = (0..n)
        .map(|_| match ty.dtype {
            DType::F32 | DType::F64 => rng.uniform(-5.0, 5.0),
            DType::I32 => rng.uniform(-50.0, 50.0).floor(),
            DType::Bool => rng.below(2) as f64,
        })
        .collect();
    tensor_of(ty.dtype, ty.shape.dims(), &values)
}

const ALL_DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::I32, DType::Bool];
const FLOATS: [DType; 2] = [DType::F32, DType::F64];

// ---------------------------------------------------------------- elementwise

#[test]
fn unary_float_ops_match_interp() {
    let mut rng = Rng(1);
    for dtype in FLOATS {
        for op in [Op::Neg, Op::Exp, Op::Log, Op::Tanh, Op::Sqrt] {
            // 18 specials + random: exercises the SIMD body and scalar tail.
            for dims in [vec![], vec![23], vec![3, 9]] {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("unary", std::slice::from_ref(&ty));
                let res = b.unary(op.clone(), b.param(0));
                let func = b.finish(vec![res]);
                let values = values_for(dtype, ty.shape.num_elements(), &mut rng);
                assert_same(&format!("{op:?} {ty}"), &func, &[tensor_of(dtype, &dims, &values)]);
            }
        }
    }
}

#[test]
fn neg_i32_wraps() {
    let mut rng = Rng(2);
    let ty = Type::new(DType::I32, &[20]);
    let mut b = Builder::new("neg", std::slice::from_ref(&ty));
    let res = b.neg(b.param(0));
    let func = b.finish(vec![res]);
    let values = values_for(DType::I32, 20, &mut rng);
    assert_same("neg i32", &func, &[tensor_of(DType::I32, &[20], &values)]);
}

/// Every pair of `values` as two flat operands.
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

fn binary_func(op: Op, ty: &Type) -> Func {
    let mut b = Builder::new("binary", &[ty.clone(), ty.clone()]);
    let res = b.binary(op, b.param(0), b.param(1));
    b.finish(vec![res])
}

#[test]
fn binary_float_ops_match_interp_on_all_special_pairs() {
    for dtype in FLOATS {
        let (lhs, rhs) = all_pairs(&float_specials());
        let n = lhs.len();
        let inputs = [tensor_of(dtype, &[n], &lhs), tensor_of(dtype, &[n], &rhs)];
        for op in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow] {
            let func = binary_func(op.clone(), &Type::new(dtype, &[n]));
            assert_same(&format!("{op:?} {dtype}"), &func, &inputs);
        }
    }
}

#[test]
fn max_min_order_signed_zeros_and_propagate_nan() {
    // Checked against fixed expectations too, not only the interpreter.
    let ty = Type::new(DType::F32, &[4]);
    let lhs = Tensor::f32(&[4], vec![-0.0, 0.0, f32::NAN, 1.0]);
    let rhs = Tensor::f32(&[4], vec![0.0, -0.0, 1.0, f32::NAN]);
    let max = jit_run(&binary_func(Op::Max, &ty), &[lhs.clone(), rhs.clone()]);
    let min = jit_run(&binary_func(Op::Min, &ty), &[lhs, rhs]);
    let (max, min) = (max[0].as_f32().unwrap(), min[0].as_f32().unwrap());
    assert!(max[0].to_bits() == 0.0f32.to_bits() && max[1].to_bits() == 0.0f32.to_bits());
    assert!(min[0].to_bits() == (-0.0f32).to_bits() && min[1].to_bits() == (-0.0f32).to_bits());
    assert!(max[2].is_nan() && max[3].is_nan() && min[2].is_nan() && min[3].is_nan());
}

#[test]
fn binary_i32_ops_match_interp_including_division_by_zero() {
    let mut values: Vec<f64> = i32_specials().into_iter().map(f64::from).collect();
    values.push(3.0);
    let (lhs, rhs) = all_pairs(&values);
    let n = lhs.len();
    let inputs = [tensor_of(DType::I32, &[n], &lhs), tensor_of(DType::I32, &[n], &rhs)];
    for op in [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow] {
        let func = binary_func(op.clone(), &Type::new(DType::I32, &[n]));
        assert_same(&format!("{op:?} i32"), &func, &inputs);
    }
    // And fixed expectations for the undefined divisions.
    let ty = Type::new(DType::I32, &[3]);
    let out = jit_run(
        &binary_func(Op::Div, &ty),
        &[Tensor::i32(&[3], vec![5, i32::MIN, -7]), Tensor::i32(&[3], vec![0, -1, 2])],
    );
    assert_eq!(out[0], Tensor::i32(&[3], vec![0, 0, -3]));
}

#[test]
fn comparisons_match_interp_for_every_dtype() {
    for dtype in ALL_DTYPES {
        let values: Vec<f64> = match dtype {
            DType::F32 | DType::F64 => float_specials(),
            DType::I32 => i32_specials().into_iter().map(f64::from).collect(),
            DType::Bool => vec![0.0, 1.0],
        };
        let (lhs, rhs) = all_pairs(&values);
        let n = lhs.len();
        let inputs = [tensor_of(dtype, &[n], &lhs), tensor_of(dtype, &[n], &rhs)];
        for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne] {
            let func = binary_func(op.clone(), &Type::new(dtype, &[n]));
            assert_same(&format!("{op:?} {dtype}"), &func, &inputs);
        }
    }
}

#[test]
fn select_matches_interp_for_every_dtype() {
    let mut rng = Rng(3);
    for dtype in ALL_DTYPES {
        for dims in [vec![], vec![11], vec![2, 5]] {
            let ty = Type::new(dtype, &dims);
            let cond_ty = ty.with_dtype(DType::Bool);
            let mut b = Builder::new("select", &[cond_ty.clone(), ty.clone(), ty.clone()]);
            let res = b.select(b.param(0), b.param(1), b.param(2));
            let func = b.finish(vec![res]);
            let n = ty.shape.num_elements();
            let inputs = [
                random_tensor(&cond_ty, &mut rng),
                tensor_of(dtype, &dims, &values_for(dtype, n, &mut rng)),
                random_tensor(&ty, &mut rng),
            ];
            assert_same(&format!("select {ty}"), &func, &inputs);
        }
    }
}

#[test]
fn convert_matches_interp_for_every_dtype_pair() {
    let mut rng = Rng(4);
    for from in ALL_DTYPES {
        for to in ALL_DTYPES {
            let n = 25;
            let ty = Type::new(from, &[n]);
            let mut b = Builder::new("convert", std::slice::from_ref(&ty));
            // `push`, not `convert`: the builder elides same-dtype converts.
            let res = b.push(Op::Convert, vec![b.param(0)], ty.with_dtype(to));
            let func = b.finish(vec![res]);
            let values = values_for(from, n, &mut rng);
            assert_same(&format!("convert {from} -> {to}"), &func, &[tensor_of(from, &[n], &values)]);
        }
    }
}

#[test]
fn float_to_i32_saturates_and_maps_nan_to_zero() {
    let ty = Type::new(DType::F32, &[5]);
    let mut b = Builder::new("sat", std::slice::from_ref(&ty));
    let res = b.convert(b.param(0), DType::I32);
    let func = b.finish(vec![res]);
    let input = Tensor::f32(&[5], vec![f32::NAN, 3e9, -3e9, -7.9, f32::INFINITY]);
    let out = jit_run(&func, &[input]);
    assert_eq!(out[0], Tensor::i32(&[5], vec![0, i32::MAX, i32::MIN, -7, i32::MAX]));
}

// ---------------------------------------------------------------- fills

#[test]
fn constants_match_interp_for_every_dtype() {
    for dtype in ALL_DTYPES {
        for value in [0.0, -0.0, 2.75, -3.5, f64::NAN, f64::INFINITY, 1e10, -1e10] {
            let ty = Type::new(dtype, &[2, 3]);
            let mut b = Builder::new("constant", &[]);
            let scalar = b.constant(value, dtype);
            let filled = b.full(value, &ty);
            let func = b.finish(vec![scalar, filled]);
            assert_same(&format!("constant {value} {dtype}"), &func, &[]);
        }
    }
}

#[test]
fn iota_matches_interp_on_every_axis() {
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for dims in [vec![7], vec![2, 3, 4], vec![1, 5, 1]] {
            for axis in 0..dims.len() {
                let mut b = Builder::new("iota", &[]);
                let res = b.iota(Type::new(dtype, &dims), axis);
                let func = b.finish(vec![res]);
                assert_same(&format!("iota {dtype} {dims:?} axis {axis}"), &func, &[]);
            }
        }
    }
}

// ---------------------------------------------------------------- data movement

#[test]
fn broadcast_matches_interp_including_size_one_dims() {
    let mut rng = Rng(5);
    // (operand dims, result dims, dims map)
    let cases: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = vec![
        (vec![], vec![2, 3], vec![]),
        (vec![3], vec![2, 3], vec![1]),
        (vec![3], vec![3, 2], vec![0]),
        (vec![2, 1], vec![2, 4], vec![0, 1]),
        (vec![1, 3, 1], vec![2, 3, 4], vec![0, 1, 2]),
        (vec![1, 1], vec![5, 1, 6], vec![0, 2]),
        (vec![4], vec![2, 4, 3], vec![1]),
        (vec![2, 3], vec![2, 5, 3], vec![0, 2]),
    ];
    for dtype in ALL_DTYPES {
        for (src, dst, dims) in &cases {
            let ty = Type::new(dtype, src);
            let mut b = Builder::new("broadcast", std::slice::from_ref(&ty));
            let res = b.broadcast(b.param(0), &Shape(dst.clone()), dims.clone());
            let func = b.finish(vec![res]);
            assert_same(&format!("broadcast {ty} -> {dst:?} {dims:?}"), &func, &[random_tensor(&ty, &mut rng)]);
        }
    }
}

#[test]
fn transpose_matches_interp_for_every_rank_3_perm() {
    let mut rng = Rng(6);
    let perms = [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    for dtype in ALL_DTYPES {
        for perm in perms {
            for dims in [[2, 3, 4], [1, 5, 3]] {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("transpose", std::slice::from_ref(&ty));
                let res = b.transpose(b.param(0), perm.to_vec());
                let func = b.finish(vec![res]);
                assert_same(&format!("transpose {ty} {perm:?}"), &func, &[random_tensor(&ty, &mut rng)]);
            }
        }
        let ty = Type::new(dtype, &[3, 7]);
        let mut b = Builder::new("transpose2", std::slice::from_ref(&ty));
        let res = b.transpose(b.param(0), vec![1, 0]);
        let func = b.finish(vec![res]);
        assert_same(&format!("transpose {ty}"), &func, &[random_tensor(&ty, &mut rng)]);
    }
}

#[test]
fn reshape_aliases_and_outputs_of_params_work() {
    let mut rng = Rng(7);
    for dtype in ALL_DTYPES {
        let ty = Type::new(dtype, &[2, 3]);
        let mut b = Builder::new("reshape", std::slice::from_ref(&ty));
        let x = b.param(0);
        let r1 = b.reshape(x, &Shape(vec![3, 2]));
        let r2 = b.reshape(r1, &Shape(vec![6]));
        let t = b.transpose(r1, vec![1, 0]);
        // Outputs: a view of a view, a param itself, and a copy of a view.
        let func = b.finish(vec![r2, x, t, r1]);
        assert_same(&format!("reshape {dtype}"), &func, &[random_tensor(&ty, &mut rng)]);
    }
}

// ---------------------------------------------------------------- reductions

fn axis_subsets(rank: usize) -> Vec<Vec<usize>> {
    (1..(1usize << rank)).map(|mask| (0..rank).filter(|a| mask & (1 << a) != 0).collect()).collect()
}

#[test]
fn reductions_match_interp_bitwise_over_every_axis_set() {
    let mut rng = Rng(8);
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for dims in [vec![2, 3, 4], vec![3, 1, 5], vec![9]] {
            for axes in axis_subsets(dims.len()) {
                for is_max in [false, true] {
                    let ty = Type::new(dtype, &dims);
                    let mut b = Builder::new("reduce", std::slice::from_ref(&ty));
                    let res = if is_max {
                        b.reduce_max(b.param(0), axes.clone())
                    } else {
                        b.reduce_sum(b.param(0), axes.clone())
                    };
                    let func = b.finish(vec![res]);
                    // Values spanning magnitudes make f32 sums order-sensitive.
                    let values: Vec<f64> = (0..ty.shape.num_elements())
                        .map(|_| match dtype {
                            DType::I32 => rng.uniform(-2e9, 2e9).floor(),
                            _ => rng.uniform(-1.0, 1.0) * 10f64.powi(rng.below(8) as i32),
                        })
                        .collect();
                    let label = format!("{} {ty} {axes:?}", if is_max { "max" } else { "sum" });
                    assert_same(&label, &func, &[tensor_of(dtype, &dims, &values)]);
                }
            }
        }
    }
}

#[test]
fn reductions_handle_nan_inf_signed_zero_and_empty_dims() {
    for dtype in FLOATS {
        let specials = float_specials();
        let n = specials.len();
        for is_max in [false, true] {
            let ty = Type::new(dtype, &[2, n]);
            let mut values = specials.clone();
            values.extend(specials.iter().map(|&x| if x.is_nan() { -0.0 } else { -x }));
            let mut b = Builder::new("reduce", std::slice::from_ref(&ty));
            let x = b.param(0);
            let (r0, r1) = if is_max {
                (b.reduce_max(x, vec![0]), b.reduce_max(x, vec![1]))
            } else {
                (b.reduce_sum(x, vec![0]), b.reduce_sum(x, vec![1]))
            };
            let func = b.finish(vec![r0, r1]);
            assert_same(&format!("specials {dtype} max={is_max}"), &func, &[tensor_of(dtype, &[2, n], &values)]);
        }
        // All -0.0: a sum starts from +0.0 and stays +0.0; a max gives -0.0
        // (also over vectors of lanes, and with one +0.0 anywhere: +0.0).
        for len in [3, 9] {
            let ty = Type::new(dtype, &[len]);
            let mut b = Builder::new("zeros", std::slice::from_ref(&ty));
            let (s, m) = (b.reduce_sum(b.param(0), vec![0]), b.reduce_max(b.param(0), vec![0]));
            let func = b.finish(vec![s, m]);
            assert_same(&format!("negative zeros {dtype}"), &func, &[tensor_of(dtype, &[len], &vec![-0.0; len])]);
            for plus in 0..len {
                let mut zeros = vec![-0.0; len];
                zeros[plus] = 0.0;
                assert_same(&format!("one +0 at {plus} {dtype}"), &func, &[tensor_of(dtype, &[len], &zeros)]);
            }
        }
    }
    // Empty reduced dims give the identity; empty kept dims give nothing.
    for dtype in [DType::F32, DType::F64, DType::I32] {
        let ty = Type::new(dtype, &[0, 3]);
        let mut b = Builder::new("empty", std::slice::from_ref(&ty));
        let x = b.param(0);
        let outs = vec![
            b.reduce_sum(x, vec![0]),
            b.reduce_max(x, vec![0]),
            b.reduce_sum(x, vec![1]),
            b.reduce_max(x, vec![0, 1]),
        ];
        let func = b.finish(outs);
        assert_same(&format!("empty {dtype}"), &func, &[Tensor::zeros(&ty)]);
    }
}

// ---------------------------------------------------------------- matmul

/// Matmul tolerance: gemm sums in a different (blocked, FMA) order than the
/// interpreter's sequential dot product. A reordered sum of k products has an
/// error of a few `eps * sqrt(k)` times the sum of their magnitudes in
/// practice, so each element must satisfy
///   |jit - interp| <= c * sqrt(k) * sum_p |a_ip * b_pj|
/// with c = 1e-6 (f32, eps 6e-8 with headroom) or 1e-14 (f64).
#[track_caller]
fn assert_matmul_close(label: &str, a: &Tensor, b: &Tensor, got: &Tensor, want: &Tensor) {
    let (m, k, n) = (a.shape.0[0], a.shape.0[1], b.shape.0[1]);
    let c = if a.dtype() == DType::F32 { 1e-6 } else { 1e-14 };
    let (av, bv, gv, wv) = (a.to_f64_vec(), b.to_f64_vec(), got.to_f64_vec(), want.to_f64_vec());
    assert_eq!(got.ty(), want.ty(), "{label}: type");
    for i in 0..m {
        for j in 0..n {
            let scale: f64 = (0..k).map(|p| (av[i * k + p] * bv[p * n + j]).abs()).sum();
            let tol = c * (k as f64).sqrt().max(1.0) * scale;
            let (g, w) = (gv[i * n + j], wv[i * n + j]);
            assert!((g - w).abs() <= tol, "{label}: [{i},{j}] jit {g} vs interp {w} (tol {tol})");
        }
    }
}

#[test]
fn matmul_matches_interp_within_tolerance() {
    let mut rng = Rng(9);
    for dtype in FLOATS {
        for (m, k, n) in [(1, 1, 1), (3, 4, 5), (17, 33, 9), (64, 64, 64), (2, 0, 3), (0, 4, 2), (8, 300, 1)] {
            let (ta, tb) = (Type::new(dtype, &[m, k]), Type::new(dtype, &[k, n]));
            let mut b = Builder::new("matmul", &[ta.clone(), tb.clone()]);
            let res = b.matmul(b.param(0), b.param(1));
            let func = b.finish(vec![res]);
            let inputs = [random_tensor(&ta, &mut rng), random_tensor(&tb, &mut rng)];
            let want = interp::run(&func, &inputs);
            let mut cpu = compile(&func).unwrap();
            // Twice: the second run must not see the first run's results.
            for _ in 0..2 {
                let got = cpu.run(&inputs);
                assert_matmul_close(&format!("matmul {dtype} {m}x{k}x{n}"), &inputs[0], &inputs[1], &got[0], &want[0]);
            }
        }
    }
}

/// Matmul and batch_matmul operands that are transposes (of the last two
/// dims) are read by the GEMM through swapped strides, not copied (unless
/// the transpose is also an output), and the products are within matmul's
/// tolerance of the interpreter. (Not bitwise equal to the copied operand's
/// product: gemm picks its summation order by the operands' layout.)
#[test]
fn transposed_matmul_operands_are_read_through_strides() {
    let mut rng = Rng(0x7A);
    for dtype in FLOATS {
        for (m, k, n) in [(3, 4, 5), (17, 33, 9), (1, 7, 1), (64, 40, 24)] {
            for trans in 1..4usize {
                let (ta_dims, tb_dims) =
                    (if trans & 1 != 0 { [k, m] } else { [m, k] }, if trans & 2 != 0 { [n, k] } else { [k, n] });
                let (ta, tb) = (Type::new(dtype, &ta_dims), Type::new(dtype, &tb_dims));
                let build = |materialize: bool| {
                    let mut b = Builder::new("matmul_t", &[ta.clone(), tb.clone()]);
                    // The left operand is computed (negated), the right a parameter.
                    let lhs = b.neg(b.param(0));
                    let (mut lhs, mut rhs) = (lhs, b.param(1));
                    let mut outs = Vec::new();
                    if trans & 1 != 0 {
                        lhs = b.transpose(lhs, vec![1, 0]);
                        outs.push(lhs);
                    }
                    if trans & 2 != 0 {
                        rhs = b.transpose(rhs, vec![1, 0]);
                        outs.push(rhs);
                    }
                    let prod = b.matmul(lhs, rhs);
                    let mut all = vec![prod];
                    if materialize {
                        all.extend(outs);
                    }
                    b.finish(all)
                };
                let (strided, copied) = (build(false), build(true));
                assert_eq!(compile(&strided).unwrap().strided_transposes(), trans.count_ones() as usize);
                assert_eq!(compile(&copied).unwrap().strided_transposes(), 0);
                let inputs = [random_tensor(&ta, &mut rng), random_tensor(&tb, &mut rng)];
                let label = format!("matmul {dtype} {m}x{k}x{n} trans {trans}");
                let got = jit_run(&strided, &inputs);
                // The operands as the product sees them, for the tolerance.
                let want = interp::run(&copied, &inputs);
                let lhs =
                    if trans & 1 != 0 { want[1].clone() } else { interp::run(&neg_of(&ta), &inputs[..1])[0].clone() };
                let rhs = if trans & 2 != 0 { want[want.len() - 1].clone() } else { inputs[1].clone() };
                assert_matmul_close(&label, &lhs, &rhs, &got[0], &want[0]);
            }
        }
    }
    // Batched: [2, 3] batches of [m, k] x [k, n], either operand transposed.
    for dtype in FLOATS {
        let (m, k, n) = (5, 6, 7);
        for trans in 1..4usize {
            let ta = Type::new(dtype, &if trans & 1 != 0 { [2, 3, k, m] } else { [2, 3, m, k] });
            let tb = Type::new(dtype, &if trans & 2 != 0 { [2, 3, n, k] } else { [2, 3, k, n] });
            let build = |materialize: bool| {
                let mut b = Builder::new("batch_matmul_t", &[ta.clone(), tb.clone()]);
                let (mut lhs, mut rhs) = (b.param(0), b.param(1));
                let mut outs = Vec::new();
                if trans & 1 != 0 {
                    lhs = b.transpose(lhs, vec![0, 1, 3, 2]);
                    outs.push(lhs);
                }
                if trans & 2 != 0 {
                    rhs = b.transpose(rhs, vec![0, 1, 3, 2]);
                    outs.push(rhs);
                }
                let prod = b.batch_matmul(lhs, rhs);
                let mut all = vec![prod];
                if materialize {
                    all.extend(outs);
                }
                b.finish(all)
            };
            let (strided, copied) = (build(false), build(true));
            assert_eq!(compile(&strided).unwrap().strided_transposes(), trans.count_ones() as usize);
            let inputs = [random_tensor(&ta, &mut rng), random_tensor(&tb, &mut rng)];
            let got = jit_run(&strided, &inputs);
            let want = interp::run(&copied, &inputs);
            let close = got[0]
                .to_f64_vec()
                .iter()
                .zip(want[0].to_f64_vec())
                .all(|(g, w)| (g - w).abs() <= 1e-5 * (1.0 + w.abs()));
            assert!(close, "batch_matmul {dtype} trans {trans}: {:?} vs {:?}", got[0], want[0]);
        }
    }
}

fn neg_of(ty: &Type) -> Func {
    let mut b = Builder::new("neg", std::slice::from_ref(ty));
    let r = b.neg(b.param(0));
    b.finish(vec![r])
}

// ---------------------------------------------------------------- errors, reuse

#[test]
fn unsupported_and_invalid_functions_are_errors_not_panics() {
    let ty = Type::new(DType::Bool, &[3]);
    let mut b = Builder::new("neg_bool", std::slice::from_ref(&ty));
    let res = b.neg(b.param(0));
    let func = b.finish(vec![res]);
    assert!(matches!(compile(&func), Err(CodegenError::Unsupported { inst: 1, .. })));

    let ty = Type::new(DType::F32, &[3]);
    let mut b = Builder::new("bad", std::slice::from_ref(&ty));
    // Wrong result type: the verifier must reject it.
    let res = b.push(Op::Exp, vec![b.param(0)], Type::new(DType::F32, &[4]));
    let func = b.finish(vec![res]);
    assert!(matches!(compile(&func), Err(CodegenError::InvalidFunc(_))));
}

#[test]
fn compiling_twice_and_running_twice_give_identical_results() {
    let mut rng = Rng(10);
    let func = random_func(&mut Rng(0xC0FFEE), 15);
    let inputs: Vec<Tensor> = func.param_types().iter().map(|ty| random_tensor(ty, &mut rng)).collect();
    let other: Vec<Tensor> = func.param_types().iter().map(|ty| random_tensor(ty, &mut rng)).collect();
    let mut first = compile(&func).unwrap();
    let mut second = compile(&func).unwrap();
    assert_eq!(first.param_types(), &func.param_types()[..]);
    assert_eq!(first.output_types(), &func.output_types()[..]);
    let a = first.run(&inputs);
    let _ = first.run(&other);
    let b = first.run(&inputs);
    let c = second.run(&inputs);
    let bits = |ts: &[Tensor]| ts.iter().map(canonical_bits).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(bits(&a), bits(&c));
    assert_outputs_equal("compile twice", &func, &inputs, &interp::run(&func, &inputs), &a);
}

// ---------------------------------------------------------------- random programs

/// Generates a random well-typed program: a chain of `n_steps` steps over a
/// few shapes, each adding one or more instructions. The pool of reusable
/// values holds only values of the program's float dtype; i32 and bool
/// values appear inside steps and are converted back. Log, sqrt and pow get
/// guarded operands so that most values stay finite.
fn random_func(rng: &mut Rng, n_steps: usize) -> Func {
    let float = if rng.chance(0.7) { DType::F32 } else { DType::F64 };
    let shapes: [&[usize]; 6] = [&[], &[5], &[2, 3], &[3, 1, 4], &[2, 3, 4], &[9]];
    let main = Type::new(float, shapes[rng.below(shapes.len())]);
    let other = Type::new(float, shapes[rng.below(shapes.len())]);
    let mut b = Builder::new("random", &[main.clone(), main.clone(), other]);
    let mut pool: Vec<ValueId> = vec![b.param(0), b.param(1), b.param(2)];
    for _ in 0..n_steps {
        // Prefer recent values so that chains get deep.
        let x = pool[pool.len() - 1 - rng.below(pool.len().min(4))];
        let res = random_step(rng, &mut b, &pool, x, float);
        pool.push(res);
    }
    let mut outputs = vec![*pool.last().unwrap()];
    for _ in 0..rng.below(3) {
        outputs.push(pool[rng.below(pool.len())]);
    }
    b.finish(outputs)
}

/// A value of `x`'s type to combine with it: another pool value of that
/// type when there is one, else something computed from `x`.
fn partner(rng: &mut Rng, b: &mut Builder, pool: &[ValueId], x: ValueId) -> ValueId {
    let ty = b.ty(x).clone();
    let same: Vec<ValueId> = pool.iter().copied().filter(|&v| v != x && b.ty(v) == &ty).collect();
    if !same.is_empty() && rng.chance(0.8) {
        return same[rng.below(same.len())];
    }
    match rng.below(3) {
        0 => b.full(rng.uniform(-3.0, 3.0).round() / 2.0, &ty),
        1 => b.unary(Op::Tanh, x),
        _ => {
            if ty.shape.rank() == 0 {
                b.neg(x)
            } else {
                let axis = rng.below(ty.shape.rank());
                let i = b.iota(ty.clone(), axis);
                b.sub(x, i)
            }
        }
    }
}

fn random_step(rng: &mut Rng, b: &mut Builder, pool: &[ValueId], x: ValueId, float: DType) -> ValueId {
    let ty = b.ty(x).clone();
    let rank = ty.shape.rank();
    let cmp_ops = [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne];
    match rng.below(14) {
        // Unary: exp of a value capped at 10.
        0 => match rng.below(3) {
            0 => b.neg(x),
            1 => b.unary(Op::Tanh, x),
            _ => {
                let cap = b.full(10.0, &ty);
                let capped = b.binary(Op::Min, x, cap);
                b.unary(Op::Exp, capped)
            }
        },
        // Guarded log and sqrt.
        1 => {
            let floor = b.full(if rng.chance(0.5) { 1e-3 } else { 0.0 }, &ty);
            let guarded = b.binary(Op::Max, x, floor);
            b.unary(if rng.chance(0.5) { Op::Log } else { Op::Sqrt }, guarded)
        }
        // Arithmetic.
        2 | 3 => {
            let y = partner(rng, b, pool, x);
            let ops = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min];
            b.binary(ops[rng.below(ops.len())].clone(), x, y)
        }
        // Guarded pow: base >= 0.1, exponent in [-3, 3].
        4 => {
            let y = partner(rng, b, pool, x);
            let floor = b.full(0.1, &ty);
            let base = b.binary(Op::Max, x, floor);
            let three = b.full(3.0, &ty);
            let minus_three = b.full(-3.0, &ty);
            let e = b.binary(Op::Min, y, three);
            let e = b.binary(Op::Max, e, minus_three);
            b.binary(Op::Pow, base, e)
        }
        // Compare and select.
        5 => {
            let y = partner(rng, b, pool, x);
            let c = b.binary(cmp_ops[rng.below(6)].clone(), x, y);
            if rng.chance(0.7) {
                b.select(c, x, y)
            } else {
                b.convert(c, float)
            }
        }
        // An i32 detour.
        6 => {
            let y = partner(rng, b, pool, x);
            let scale = b.full(4.0, &ty);
            let xs = b.mul(x, scale);
            let xi = b.convert(xs, DType::I32);
            let yi = b.convert(y, DType::I32);
            let ops = [Op::Add, Op::Sub, Op::Mul, Op::Div, Op::Max, Op::Min, Op::Pow, Op::Neg];
            let zi = match ops[rng.below(ops.len())].clone() {
                Op::Neg => b.neg(xi),
                op => b.binary(op, xi, yi),
            };
            let zi = if rng.chance(0.3) {
                let c = b.binary(cmp_ops[rng.below(6)].clone(), zi, yi);
                b.select(c, zi, xi)
            } else {
                zi
            };
            b.convert(zi, float)
        }
        // A bool or other-float detour.
        7 => {
            if rng.chance(0.5) {
                let xb = b.convert(x, DType::Bool);
                let xi = b.convert(xb, DType::I32);
                b.convert(xi, float)
            } else {
                let wide = if float == DType::F32 { DType::F64 } else { DType::F32 };
                let xw = b.convert(x, wide);
                let yw = b.unary(Op::Tanh, xw);
                let zw = b.add(xw, yw);
                b.convert(zw, float)
            }
        }
        // Broadcast to a new leading dim, or reduce-then-broadcast back
        // through size-1 dims.
        8 => {
            if rank > 0 && rng.chance(0.6) {
                let axis = rng.below(rank);
                let r = if rng.chance(0.5) { b.reduce_sum(x, vec![axis]) } else { b.reduce_max(x, vec![axis]) };
                let mut kept = ty.shape.0.clone();
                kept[axis] = 1;
                let r = b.reshape(r, &Shape(kept));
                let back = b.broadcast(r, &ty.shape, (0..rank).collect());
                b.sub(x, back)
            } else {
                let mut dims = vec![2];
                dims.extend(&ty.shape.0);
                b.broadcast(x, &Shape(dims), (1..=rank).collect())
            }
        }
        // Transpose.
        9 if rank >= 2 => {
            let mut perm: Vec<usize> = (0..rank).collect();
            for i in (1..rank).rev() {
                perm.swap(i, rng.below(i + 1));
            }
            b.transpose(x, perm)
        }
        // Reshape: flatten or reverse the dims.
        10 if rank >= 1 => {
            let dims: Vec<usize> = if rng.chance(0.5) {
                vec![ty.shape.num_elements()]
            } else {
                ty.shape.0.iter().rev().copied().collect()
            };
            b.reshape(x, &Shape(dims))
        }
        // Reduce over a random nonempty axis set.
        11 if rank >= 1 => {
            let subsets = axis_subsets(rank);
            let axes = subsets[rng.below(subsets.len())].clone();
            if rng.chance(0.5) {
                b.reduce_sum(x, axes)
            } else {
                b.reduce_max(x, axes)
            }
        }
        // Iota plus x.
        12 if rank >= 1 => {
            let i = b.iota(ty.clone(), rng.below(rank));
            b.add(x, i)
        }
        // Constant times x, or a scalar broadcast.
        _ => {
            let c = b.full(rng.uniform(-2.0, 2.0), &ty);
            b.mul(x, c)
        }
    }
}

/// Random input for the differential test: mostly moderate values, with a
/// few specials (NaN, ±inf, ±0).
fn random_input(ty: &Type, rng: &mut Rng) -> Tensor {
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
    let values: Vec<f64> = (0..ty.shape.num_elements())
        .map(|_| if rng.chance(0.03) { specials[rng.below(specials.len())] } else { rng.uniform(-3.0, 3.0) })
        .collect();
    tensor_of(ty.dtype, ty.shape.dims(), &values)
}

#[test]
fn random_programs_match_interp() {
    const PROGRAMS: u64 = 250;
    const INPUTS_PER_PROGRAM: usize = 4;
    let mut insts = 0;
    for seed in 0..PROGRAMS {
        let mut rng = Rng(seed);
        let n_steps = 5 + rng.below(16);
        let func = random_func(&mut rng, n_steps);
        crate::ir::verify::assert_valid(&func, "random_func");
        insts += func.insts.len();
        let mut cpu =
            compile(&func).unwrap_or_else(|err| panic!("seed {seed}: compile failed: {err}\n{}", text::print(&func)));
        for input_index in 0..INPUTS_PER_PROGRAM {
            let inputs: Vec<Tensor> = func.param_types().iter().map(|ty| random_input(ty, &mut rng)).collect();
            let want = interp::run(&func, &inputs);
            let got = cpu.run(&inputs);
            assert_outputs_equal(&format!("seed {seed}, input {input_index}"), &func, &inputs, &want, &got);
        }
    }
    // The generator must produce real programs, not trivial ones.
    assert!(insts > PROGRAMS as usize * 15, "programs too small: {insts} instructions in all");
}

// ---------------------------------------------------------------- newer ops

#[test]
fn newer_unary_float_ops_match_interp() {
    let mut rng = Rng(11);
    let ops =
        [Op::Log1p, Op::Expm1, Op::Logistic, Op::Sin, Op::Cos, Op::Rsqrt, Op::Erf, Op::Abs, Op::Sign, Op::StopGradient];
    let ops = ops.into_iter().chain([Op::Floor, Op::Ceil, Op::Round]);
    for dtype in FLOATS {
        for op in ops.clone() {
            let op = &op;
            // 18 specials + random; 23 elements exercise SIMD body and tail.
            for dims in [vec![], vec![23], vec![3, 9]] {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("unary", std::slice::from_ref(&ty));
                let res = b.unary(op.clone(), b.param(0));
                // Also through a copy, so a view (stop_gradient) feeds real code.
                let two = b.full(2.0, &ty);
                let scaled = b.mul(res, two);
                let func = b.finish(vec![res, scaled]);
                let values = values_for(dtype, ty.shape.num_elements(), &mut rng);
                assert_same(&format!("{op:?} {ty}"), &func, &[tensor_of(dtype, &dims, &values)]);
            }
        }
    }
}

#[test]
fn sign_keeps_signed_zero_and_nan_and_logistic_does_not_overflow() {
    let ty = Type::new(DType::F64, &[6]);
    let input = Tensor::f64(&[6], vec![-0.0, 0.0, f64::NAN, -3.0, 1e-300, -800.0]);
    let mut b = Builder::new("sign", std::slice::from_ref(&ty));
    let s = b.unary(Op::Sign, b.param(0));
    let l = b.unary(Op::Logistic, b.param(0));
    let out = jit_run(&b.finish(vec![s, l]), &[input]);
    let s = out[0].to_f64_vec();
    assert_eq!(s[0].to_bits(), (-0.0f64).to_bits());
    assert_eq!(s[1].to_bits(), 0.0f64.to_bits());
    assert!(s[2].is_nan());
    assert_eq!(&s[3..], &[-1.0, 1.0, -1.0]);
    let l = out[1].to_f64_vec();
    assert_eq!((l[0], l[1], l[5]), (0.5, 0.5, 0.0));
    assert!(l[2].is_nan());
}

/// Floor, ceil and round on the values where roundings differ: ties (round
/// is ties-to-even: `2.5 -> 2`, `-0.5 -> -0`), signed zeros, values too
/// large to have a fraction, infinities and NaN; against written-out
/// IEEE results, not only the interpreter.
#[test]
fn roundings_follow_ieee_on_ties_zeros_and_large_values() {
    let values = vec![-2.5, -1.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, 2.7, -2.7, 1e300, -4503599627370497.0, f64::INFINITY];
    let want: [(Op, Vec<f64>); 3] = [
        (
            Op::Floor,
            vec![-3.0, -2.0, -1.0, -0.0, 0.0, 0.0, 1.0, 2.0, 2.0, -3.0, 1e300, -4503599627370497.0, f64::INFINITY],
        ),
        (
            Op::Ceil,
            vec![-2.0, -1.0, -0.0, -0.0, 0.0, 1.0, 2.0, 3.0, 3.0, -2.0, 1e300, -4503599627370497.0, f64::INFINITY],
        ),
        (
            Op::Round,
            vec![-2.0, -2.0, -0.0, -0.0, 0.0, 0.0, 2.0, 2.0, 3.0, -3.0, 1e300, -4503599627370497.0, f64::INFINITY],
        ),
    ];
    let n = values.len() + 1;
    let ty = Type::new(DType::F64, &[n]);
    let input = Tensor::f64(&[n], values.iter().copied().chain([f64::NAN]).collect());
    for (op, want) in want {
        let mut b = Builder::new("round", std::slice::from_ref(&ty));
        let r = b.unary(op.clone(), b.param(0));
        let func = b.finish(vec![r]);
        let got = jit_run(&func, std::slice::from_ref(&input))[0].to_f64_vec();
        let interp = interp::run(&func, std::slice::from_ref(&input))[0].to_f64_vec();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(got[i].to_bits(), w.to_bits(), "{op:?}({}) = {} (jit), want {w}", values[i], got[i]);
            assert_eq!(interp[i].to_bits(), w.to_bits(), "{op:?}({}) = {} (interp), want {w}", values[i], interp[i]);
        }
        assert!(got[n - 1].is_nan() && interp[n - 1].is_nan(), "{op:?}(NaN)");
    }
}

#[test]
fn abs_and_sign_on_i32_match_interp() {
    let mut rng = Rng(12);
    for op in [Op::Abs, Op::Sign, Op::StopGradient] {
        let ty = Type::new(DType::I32, &[20]);
        let mut b = Builder::new("i32", std::slice::from_ref(&ty));
        let res = b.unary(op.clone(), b.param(0));
        let func = b.finish(vec![res]);
        let values = values_for(DType::I32, 20, &mut rng);
        assert_same(&format!("{op:?} i32"), &func, &[tensor_of(DType::I32, &[20], &values)]);
    }
    let ty = Type::new(DType::I32, &[4]);
    let mut b = Builder::new("abs", std::slice::from_ref(&ty));
    let a = b.unary(Op::Abs, b.param(0));
    let s = b.unary(Op::Sign, b.param(0));
    let out = jit_run(&b.finish(vec![a, s]), &[Tensor::i32(&[4], vec![i32::MIN, -5, 0, 7])]);
    assert_eq!(out[0], Tensor::i32(&[4], vec![i32::MIN, 5, 0, 7]));
    assert_eq!(out[1], Tensor::i32(&[4], vec![-1, -1, 0, 1]));
}

#[test]
fn argmax_matches_interp_on_every_axis_with_nan_and_ties() {
    let mut rng = Rng(13);
    for dtype in [DType::F32, DType::F64, DType::I32] {
        for dims in [vec![7], vec![2, 3, 4], vec![3, 1, 5], vec![1, 6]] {
            for axis in 0..dims.len() {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("argmax", std::slice::from_ref(&ty));
                let res = b.argmax(b.param(0), axis);
                let func = b.finish(vec![res]);
                // Few distinct values (ties), and specials for floats.
                let values: Vec<f64> = (0..ty.shape.num_elements())
                    .map(|_| match dtype {
                        DType::I32 => rng.below(4) as f64 - 2.0,
                        _ if rng.chance(0.15) => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0][rng.below(4)],
                        _ => rng.below(4) as f64,
                    })
                    .collect();
                assert_same(&format!("argmax {ty} axis {axis}"), &func, &[tensor_of(dtype, &dims, &values)]);
            }
        }
    }
    // Fixed expectations: first max, NaN beats numbers, all -inf gives 0.
    let ty = Type::new(DType::F32, &[4, 3]);
    let mut b = Builder::new("argmax", std::slice::from_ref(&ty));
    let res = b.argmax(b.param(0), 1);
    let func = b.finish(vec![res]);
    let inf = f32::INFINITY;
    let input = Tensor::f32(&[4, 3], vec![1.0, 3.0, 3.0, 2.0, f32::NAN, f32::NAN, -inf, -inf, -inf, 0.0, -0.0, 0.0]);
    assert_eq!(jit_run(&func, std::slice::from_ref(&input))[0], Tensor::i32(&[4], vec![1, 1, 0, 0]));
    assert_eq!(interp::run(&func, &[input])[0], Tensor::i32(&[4], vec![1, 1, 0, 0]));
}

#[test]
fn slice_pad_concat_match_interp_for_every_dtype() {
    let mut rng = Rng(14);
    for dtype in ALL_DTYPES {
        let ty = Type::new(dtype, &[3, 4, 5]);
        let x = random_tensor(&ty, &mut rng);
        let slices: [(Vec<usize>, Vec<usize>, Vec<usize>); 4] = [
            (vec![0, 1, 0], vec![3, 4, 5], vec![1, 1, 1]),
            (vec![1, 0, 1], vec![3, 4, 5], vec![2, 3, 2]),
            (vec![0, 2, 4], vec![2, 2, 5], vec![1, 1, 1]),
            (vec![2, 3, 0], vec![3, 4, 5], vec![1, 1, 4]),
        ];
        for (start, limit, stride) in slices {
            let mut b = Builder::new("slice", std::slice::from_ref(&ty));
            let res = b.slice(b.param(0), start.clone(), limit.clone(), stride.clone());
            let func = b.finish(vec![res]);
            assert_same(&format!("slice {ty} {start:?} {limit:?} {stride:?}"), &func, std::slice::from_ref(&x));
        }
        let pads: [(Vec<usize>, Vec<usize>, Vec<usize>); 3] = [
            (vec![1, 0, 2], vec![0, 2, 1], vec![0, 0, 0]),
            (vec![0, 1, 0], vec![1, 0, 0], vec![1, 2, 0]),
            (vec![0; 3], vec![0; 3], vec![0, 0, 1]),
        ];
        for (low, high, interior) in pads {
            let mut b = Builder::new("pad", std::slice::from_ref(&ty));
            let res = b.pad(b.param(0), low.clone(), high.clone(), interior.clone());
            let func = b.finish(vec![res]);
            // Twice on one compiled function: padding must be rewritten each run.
            let want = interp::run(&func, std::slice::from_ref(&x));
            let mut cpu = compile(&func).unwrap();
            let _ = cpu.run(&[random_tensor(&ty, &mut rng)]);
            assert_outputs_equal(
                &format!("pad {ty} {low:?} {high:?} {interior:?}"),
                &func,
                std::slice::from_ref(&x),
                &want,
                &cpu.run(std::slice::from_ref(&x)),
            );
        }
        for axis in 0..3 {
            let mut other_dims = vec![3, 4, 5];
            other_dims[axis] = 2;
            let mut empty_dims = vec![3, 4, 5];
            empty_dims[axis] = 0;
            let (t2, t0) = (Type::new(dtype, &other_dims), Type::new(dtype, &empty_dims));
            let mut b = Builder::new("concat", &[ty.clone(), t2.clone(), t0.clone()]);
            let res = b.concat(vec![b.param(1), b.param(0), b.param(2), b.param(1)], axis);
            let func = b.finish(vec![res]);
            let inputs = [x.clone(), random_tensor(&t2, &mut rng), Tensor::zeros(&t0)];
            assert_same(&format!("concat {dtype} axis {axis}"), &func, &inputs);
        }
    }
    // Empty results compile and run.
    let ty = Type::new(DType::F32, &[2, 3]);
    let mut b = Builder::new("empty", std::slice::from_ref(&ty));
    let res = b.slice(b.param(0), vec![1, 2], vec![1, 3], vec![1, 1]);
    let padded = b.pad(res, vec![1, 0], vec![0, 0], vec![0, 0]);
    let func = b.finish(vec![res, padded]);
    assert_same("empty slice", &func, &[random_tensor(&ty, &mut rng)]);
}

/// Runs `f` with the host kernels' thread count at `n` (then the default
/// again), holding a lock: the count is global and tests run in parallel,
/// so a test changing it mid-run would spoil another's comparison (a rare
/// CI failure of the FTZ test below came from that).
fn with_threads<T>(n: usize, f: impl FnOnce() -> T) -> T {
    static THREAD_COUNT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _held = THREAD_COUNT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    super::cpu::threads::set_threads(n);
    let result = f();
    super::cpu::threads::set_threads(0);
    result
}

mod blocked_sums;
mod differential;
mod inline_math;
mod parallel_loops;
mod transformer;
mod wide_loops;

// ---------------------------------------------------------------- windowed ops

/// Uniform values in [-2, 2) (no specials: im2col multiplies padding zeros
/// into the sum, where the interpreter skips the term; see `cpu/conv.rs`).
fn plain_tensor(ty: &Type, rng: &mut Rng) -> Tensor {
    let values: Vec<f64> = (0..ty.shape.num_elements()).map(|_| rng.uniform(-2.0, 2.0)).collect();
    tensor_of(ty.dtype, ty.shape.dims(), &values)
}

/// Asserts `got` (the JIT's first output, from a reordered sum of `terms`
/// products per element: a GEMM-based conv) is within `c * sqrt(terms) *
/// scale` of the interpreter's `want`, `scale` the interpreter's result on
/// the inputs' absolute values (matmul's tolerance).
#[track_caller]
fn assert_within_sum_tolerance(label: &str, func: &Func, inputs: &[Tensor], want: &Tensor, got: &Tensor, terms: usize) {
    let abs: Vec<Tensor> =
        inputs.iter().map(|t| Tensor::f64(t.shape.dims(), t.to_f64_vec().iter().map(|v| v.abs()).collect())).collect();
    let scale = interp::run(&func.widened_to_f64(), &abs)[0].to_f64_vec();
    let c = if want.ty().dtype == DType::F32 { 1e-6 } else { 1e-14 };
    assert_eq!(got.ty(), want.ty());
    for (i, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
        let tol = c * (terms as f64).sqrt() * scale[i];
        assert!((g - w).abs() <= tol, "{label} [{i}]: jit {g} vs interp {w}");
    }
}

/// Conv tolerance, as matmul's: each output is a reordered sum of
/// `k = C/groups * KH * KW` products, so
///   |jit - interp| <= c * sqrt(k) * conv(|x|, |w|)
/// with the scale computed by the interpreter on the absolute values.
#[test]
fn conv2d_matches_interp_within_tolerance() {
    let mut rng = Rng(0xC0);
    let conv = |stride, low, high, lhs_dilation, rhs_dilation, groups| crate::ir::Conv {
        stride,
        low,
        high,
        lhs_dilation,
        rhs_dilation,
        groups,
    };
    let specs: Vec<(&[usize], &[usize], crate::ir::Conv)> = vec![
        (&[1, 1, 5, 5], &[1, 1, 3, 3], crate::ir::Conv::plain()),
        (&[2, 3, 8, 7], &[4, 3, 3, 3], conv([2, 2], [1, 1], [1, 1], [1, 1], [1, 1], 1)),
        (&[2, 4, 5, 5], &[6, 4, 1, 1], crate::ir::Conv::plain()),
        (&[1, 4, 6, 6], &[6, 2, 2, 3], conv([1, 2], [0, 2], [1, 0], [1, 1], [2, 1], 2)),
        (&[2, 2, 4, 3], &[3, 2, 3, 3], conv([1, 1], [2, 2], [2, 2], [2, 2], [1, 1], 1)),
        (&[1, 3, 6, 6], &[3, 1, 3, 3], conv([2, 2], [1, 1], [1, 1], [1, 1], [1, 1], 3)),
        (&[4, 8, 12, 12], &[16, 8, 3, 3], conv([1, 1], [1, 1], [1, 1], [1, 1], [1, 1], 1)),
        // 3x3, stride 1, >= 8 channels each side: Winograd's F(2x2, 3x3),
        // over several blocks of images (W2's conv2 and its data gradient,
        // odd outputs whose last tiles hang over, uneven padding, an output
        // of one pixel, padding wider than the kernel reaches).
        (&[7, 32, 13, 13], &[64, 32, 3, 3], crate::ir::Conv::plain()),
        (&[5, 64, 11, 11], &[32, 64, 3, 3], conv([1, 1], [2, 2], [2, 2], [1, 1], [1, 1], 1)),
        (&[2, 9, 6, 7], &[8, 9, 3, 3], conv([1, 1], [0, 2], [1, 0], [1, 1], [1, 1], 1)),
        (&[3, 8, 3, 3], &[10, 8, 3, 3], crate::ir::Conv::plain()),
        (&[1, 8, 2, 4], &[8, 8, 3, 3], conv([1, 1], [3, 1], [2, 3], [1, 1], [1, 1], 1)),
        // Output rows shorter than kernel rows (weight-gradient shapes): the
        // transposed im2col layout, also with padding, strides and groups.
        (&[3, 2, 9, 9], &[4, 2, 7, 7], crate::ir::Conv::plain()),
        (&[2, 4, 8, 8], &[4, 2, 6, 5], conv([1, 2], [1, 0], [0, 1], [1, 1], [1, 1], 2)),
        // More images than pixels, and a dilated kernel (the weight
        // gradient of a strided conv): all images in one GEMM.
        (&[5, 3, 7, 7], &[4, 3, 5, 5], crate::ir::Conv::plain()),
        (&[3, 2, 9, 9], &[3, 2, 5, 5], conv([1, 1], [1, 1], [0, 0], [1, 1], [2, 2], 1)),
        // More output pixels than input pixels (data-gradient shapes): the
        // scatter form, also with input dilation, groups, strides and a
        // dilated kernel.
        (&[2, 8, 5, 5], &[4, 8, 3, 3], conv([1, 1], [2, 2], [2, 2], [1, 1], [1, 1], 1)),
        (&[2, 4, 3, 4], &[6, 2, 3, 2], conv([1, 1], [2, 1], [2, 1], [2, 2], [1, 1], 2)),
        (&[1, 2, 3, 3], &[2, 2, 2, 2], conv([2, 1], [3, 3], [3, 3], [1, 1], [2, 2], 1)),
    ];
    for dtype in FLOATS {
        for (xd, kd, attrs) in &specs {
            let (tx, tk) = (Type::new(dtype, xd), Type::new(dtype, kd));
            let mut b = Builder::new("conv", &[tx.clone(), tk.clone()]);
            let res = b.conv2d(b.param(0), b.param(1), attrs.clone());
            let func = b.finish(vec![res]);
            let inputs = [plain_tensor(&tx, &mut rng), plain_tensor(&tk, &mut rng)];
            let want = interp::run(&func, &inputs);
            let mut cpu = compile(&func).unwrap();
            for _ in 0..2 {
                let got = cpu.run(&inputs);
                let label = format!("{dtype} {xd:?} {kd:?} {attrs:?}");
                assert_within_sum_tolerance(&label, &func, &inputs, &want[0], &got[0], kd[1] * kd[2] * kd[3]);
            }
        }
    }
}

/// A weight gradient as autodiff writes it, `conv2d(transpose(x),
/// transpose(dy))` with images and channels swapped on both sides: the
/// conv routine reads both transposes in their operands' order (two
/// strided views, no copies), with padding, a stride's dilated kernel, and
/// images in one GEMM; a transpose that is also an output is copied, and
/// then the conv reads both operands materialized.
#[test]
fn weight_gradient_convs_read_swapped_operands_in_place() {
    let mut rng = Rng(0xC2);
    let conv = |low, rhs_dilation| crate::ir::Conv {
        stride: [1, 1],
        low,
        high: low,
        lhs_dilation: [1, 1],
        rhs_dilation,
        groups: 1,
    };
    // (x dims [n, c, h, w], dy dims [n, o, oh, ow], conv attrs, x^T also an output)
    let specs: Vec<(&[usize], &[usize], crate::ir::Conv, bool)> = vec![
        (&[3, 2, 7, 7], &[3, 4, 5, 5], conv([0, 0], [1, 1]), false),
        (&[2, 3, 6, 5], &[2, 2, 6, 5], conv([1, 1], [1, 1]), false),
        (&[2, 2, 9, 9], &[2, 3, 4, 4], conv([0, 0], [2, 2]), false),
        (&[1, 1, 5, 5], &[1, 2, 3, 3], conv([0, 0], [1, 1]), true),
        // 45 images of 25 taps: GEMMs over blocks of 20 channels (depth
        // 500), the last block 5.
        (&[45, 2, 7, 7], &[45, 4, 5, 5], conv([0, 0], [1, 1]), false),
    ];
    for dtype in FLOATS {
        for (xd, dyd, attrs, x_out) in &specs {
            let (tx, tdy) = (Type::new(dtype, xd), Type::new(dtype, dyd));
            let mut b = Builder::new("wgrad", &[tx.clone(), tdy.clone()]);
            let xt = b.transpose(b.param(0), vec![1, 0, 2, 3]);
            let dyt = b.transpose(b.param(1), vec![1, 0, 2, 3]);
            let res = b.conv2d(xt, dyt, attrs.clone());
            let func = b.finish(if *x_out { vec![res, xt] } else { vec![res] });
            let inputs = [plain_tensor(&tx, &mut rng), plain_tensor(&tdy, &mut rng)];
            let want = interp::run(&func, &inputs);
            let mut cpu = compile(&func).unwrap();
            assert_eq!(cpu.strided_transposes(), if *x_out { 0 } else { 2 }, "{xd:?} {dyd:?}");
            for _ in 0..2 {
                let got = cpu.run(&inputs);
                let label = format!("{dtype} {xd:?} {dyd:?} {attrs:?}");
                assert_within_sum_tolerance(&label, &func, &inputs, &want[0], &got[0], xd[0] * dyd[2] * dyd[3]);
                if *x_out {
                    assert_eq!(got[1], want[1]);
                }
            }
        }
    }
}

/// A weight gradient of 20 one-channel blocks (W2's conv1 shape, smaller):
/// its blocks summed in `SWAPPED_GROUPS` groups, in parallel on 3 threads
/// and serially on one, give the same bits either way, within the conv
/// tolerance of the interpreter; so does a Winograd conv.
#[test]
fn conv_groups_and_blocks_do_not_depend_on_threads() {
    let mut rng = Rng(0xC3);
    let (tx, tdy) = (Type::new(DType::F32, &[20, 1, 26, 26]), Type::new(DType::F32, &[20, 8, 24, 24]));
    let mut b = Builder::new("wgrad", &[tx.clone(), tdy.clone()]);
    let xt = b.transpose(b.param(0), vec![1, 0, 2, 3]);
    let dyt = b.transpose(b.param(1), vec![1, 0, 2, 3]);
    let res = b.conv2d(xt, dyt, crate::ir::Conv::plain());
    let func = b.finish(vec![res]);
    let inputs = [plain_tensor(&tx, &mut rng), plain_tensor(&tdy, &mut rng)];
    let want = interp::run(&func, &inputs);
    let run_on = |threads: usize| with_threads(threads, || compile(&func).unwrap().run(&inputs));
    let (one, three) = (run_on(1), run_on(3));
    assert_within_sum_tolerance("wgrad", &func, &inputs, &want[0], &one[0], 20 * 24 * 24);
    let bits = |t: &Tensor| t.to_f64_vec().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one[0]), bits(&three[0]));
    // A Winograd conv's blocks of images shrink to give every thread one
    // (3 images a block on one thread, 2 on three): the same bits.
    let (tx, tk) = (Type::new(DType::F32, &[5, 32, 13, 13]), Type::new(DType::F32, &[64, 32, 3, 3]));
    let mut b = Builder::new("winograd", &[tx.clone(), tk.clone()]);
    let res = b.conv2d(b.param(0), b.param(1), crate::ir::Conv::plain());
    let func = b.finish(vec![res]);
    let inputs = [plain_tensor(&tx, &mut rng), plain_tensor(&tk, &mut rng)];
    let run_on = |threads: usize| with_threads(threads, || compile(&func).unwrap().run(&inputs));
    assert_eq!(bits(&run_on(1)[0]), bits(&run_on(3)[0]));
}

/// A window of these sizes, strides and paddings.
fn window(size: Vec<usize>, stride: Vec<usize>, low: Vec<usize>, high: Vec<usize>) -> crate::ir::Window {
    crate::ir::Window { size, stride, low, high }
}

#[test]
fn window_ops_and_reverse_match_interp_bitwise() {
    let mut rng = Rng(0xC1);
    let specs: Vec<(&[usize], crate::ir::Window)> = vec![
        (&[2, 3, 6, 6], window(vec![1, 1, 2, 2], vec![1, 1, 2, 2], vec![0; 4], vec![0; 4])),
        // 2 x 2 tiles that leave a last row and column uncovered.
        (&[2, 3, 7, 5], window(vec![1, 1, 2, 2], vec![1, 1, 2, 2], vec![0; 4], vec![0; 4])),
        (&[3, 9, 4], window(vec![1, 2, 2], vec![1, 2, 2], vec![0; 3], vec![0, 1, 0])),
        (&[1, 2, 5, 5], window(vec![1, 1, 3, 3], vec![1, 1, 2, 2], vec![0, 0, 1, 1], vec![0, 0, 1, 1])),
        (&[7], window(vec![3], vec![2], vec![4], vec![3])),
        (&[3, 4], window(vec![3, 1], vec![1, 3], vec![0, 2], vec![2, 0])),
        // Windows wider than the padded input on some dims, overlapping on others.
        (&[2, 1, 4, 5], window(vec![1, 2, 3, 2], vec![1, 1, 1, 3], vec![0, 1, 2, 0], vec![0, 0, 2, 1])),
    ];
    for dtype in FLOATS {
        for (dims, w) in &specs {
            let ty = Type::new(dtype, dims);
            let ct_ty = Type::new(dtype, &crate::ir::window::reduce_window_dims(&ty, w).unwrap());
            let mut b = Builder::new("window", &[ty.clone(), ct_ty.clone()]);
            let sum = b.reduce_window(b.param(0), w.clone(), false);
            let max = b.reduce_window(b.param(0), w.clone(), true);
            let all: Vec<usize> = (0..dims.len()).collect();
            let rev = b.reverse(b.param(0), all);
            let rev_last = b.reverse(b.param(0), vec![dims.len() - 1]);
            let scattered = b.select_and_scatter(b.param(0), b.param(1), w.clone());
            let func = b.finish(vec![sum, max, rev, rev_last, scattered]);
            let ct = random_tensor(&ct_ty, &mut rng);
            assert_same(&format!("{dtype} {dims:?} {w:?}"), &func, &[random_tensor(&ty, &mut rng), ct.clone()]);
            // NaN, infinities and signed zeros among the elements; ties
            // (repeated values) for the first-maximum rule.
            let values = values_for(dtype, ty.shape.num_elements(), &mut rng);
            assert_same(
                &format!("{dtype} {dims:?} {w:?} specials"),
                &func,
                &[tensor_of(dtype, dims, &values), ct.clone()],
            );
            let ties: Vec<f64> = (0..ty.shape.num_elements()).map(|i| (i % 3) as f64).collect();
            assert_same(&format!("{dtype} {dims:?} {w:?} ties"), &func, &[tensor_of(dtype, dims, &ties), ct]);
        }
    }
}

// ---------------------------------------------------------------- fusion and memory plan

/// Compare-and-select trees run as vector code (lane masks, `bitselect`):
/// comparisons of every kind, a contiguous bool parameter, a bool row
/// broadcast along the inner dim (stride 0) and along an outer dim, and a
/// bool constant, on rows whose length leaves a scalar tail; bitwise equal to
/// the interpreter on specials (NaN, signed zeros, infinities).
#[test]
fn compare_and_select_trees_match_interp_bitwise() {
    let mut rng = Rng(0x5E1);
    for dtype in FLOATS {
        for dims in [[3usize, 11], [2, 4], [5, 1]] {
            let (ty, mask_ty) = (Type::new(dtype, &dims), Type::new(DType::Bool, &dims));
            let row_ty = Type::new(DType::Bool, &dims[1..]);
            let col_ty = Type::new(DType::Bool, &dims[..1]);
            let mut b =
                Builder::new("selects", &[ty.clone(), ty.clone(), mask_ty.clone(), row_ty.clone(), col_ty.clone()]);
            let (x, y) = (b.param(0), b.param(1));
            let mut outs = Vec::new();
            for op in [Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Eq, Op::Ne] {
                let c = b.binary(op, x, y);
                let s = b.select(c, x, y);
                outs.push(b.add(s, y));
            }
            // ReLU's backward: select(x >= 0, g, 0) with a constant branch.
            let zero = b.full(0.0, &ty);
            let ge = b.binary(Op::Ge, x, zero);
            outs.push(b.select(ge, y, zero));
            let row = b.broadcast(b.param(3), &Shape(dims.to_vec()), vec![1]);
            let col = b.broadcast(b.param(4), &Shape(dims.to_vec()), vec![0]);
            let picked = b.select(b.param(2), x, y);
            let by_row = b.select(row, picked, zero);
            let both = b.select(col, by_row, x);
            outs.push(b.mul(both, x));
            let always = b.full(1.0, &mask_ty);
            outs.push(b.select(always, y, x));
            let func = b.finish(outs);
            let n = ty.shape.num_elements();
            let bools = |k: usize, rng: &mut Rng| -> Tensor {
                let v: Vec<f64> = (0..k).map(|_| (rng.below(2)) as f64).collect();
                Tensor::from_f64(DType::Bool, &[k], &v)
            };
            for round in 0..3 {
                let (xs, ys) = if round == 0 {
                    (values_for(dtype, n, &mut rng), values_for(dtype, n, &mut rng))
                } else {
                    (random_tensor(&ty, &mut rng).to_f64_vec(), random_tensor(&ty, &mut rng).to_f64_vec())
                };
                // Ties, so that `eq`, `le` and `ge` pick both ways.
                let ys: Vec<f64> =
                    ys.iter().zip(&xs).enumerate().map(|(i, (&y, &x))| if i % 3 == 0 { x } else { y }).collect();
                let inputs = [
                    tensor_of(dtype, &dims, &xs),
                    tensor_of(dtype, &dims, &ys),
                    Tensor::from_f64(DType::Bool, &dims, &bools(n, &mut rng).to_f64_vec()),
                    bools(dims[1], &mut rng),
                    bools(dims[0], &mut rng),
                ];
                assert_same(&format!("selects {dtype} {dims:?} round {round}"), &func, &inputs);
            }
        }
    }
}

/// Long elementwise chains over broadcasts of every operand shape, so that
/// fusion groups with strided (stride-0) leaves and a fused reduction occur.
#[test]
fn long_fusible_chains_with_broadcasts_match_interp() {
    let mut rng = Rng(21);
    for seed in 0..40u64 {
        let dtype = if seed % 3 == 0 { DType::F64 } else { DType::F32 };
        let full = Type::new(dtype, &[3, 5, 7]);
        let row = Type::new(dtype, &[7]);
        let col = Type::new(dtype, &[3, 1, 1]);
        let mut b = Builder::new("chain", &[full.clone(), row.clone(), col.clone()]);
        let mut x = b.param(0);
        for _ in 0..12 {
            let y = match rng.below(4) {
                0 => b.broadcast(b.param(1), &full.shape, vec![2]),
                1 => b.broadcast(b.param(2), &full.shape, vec![0, 1, 2]),
                2 => b.full(rng.uniform(-2.0, 2.0), &full),
                _ => b.param(0),
            };
            let ops = [Op::Add, Op::Sub, Op::Mul, Op::Max, Op::Min];
            x = b.binary(ops[rng.below(ops.len())].clone(), x, y);
            if rng.chance(0.2) {
                let zero = b.full(0.0, &full);
                let c = b.binary(Op::Gt, x, zero);
                x = b.select(c, x, y);
            }
        }
        let sum = b.reduce_sum(x, vec![1, 2]);
        let func = b.finish(vec![x, sum]);
        let inputs: Vec<Tensor> = func.param_types().iter().map(|ty| random_input(ty, &mut rng)).collect();
        assert_same(&format!("chain seed {seed}"), &func, &inputs);
    }
}

/// `pow` with a constant integer exponent is lowered to multiplications:
/// within 3 ulp of `powf` on normal results (the documented bound of
/// `emit::pow_by_multiplication`: at most three roundings).
#[test]
fn constant_integer_pow_is_within_three_ulp_of_powf() {
    let mut rng = Rng(22);
    for dtype in FLOATS {
        for exponent in -4..=4 {
            let ty = Type::new(dtype, &[101]);
            let mut b = Builder::new("pow", std::slice::from_ref(&ty));
            let e = b.full(exponent as f64, &ty);
            let res = b.binary(Op::Pow, b.param(0), e);
            let func = b.finish(vec![res]);
            let values: Vec<f64> = (0..101).map(|_| rng.uniform(-20.0, 20.0)).collect();
            let input = tensor_of(dtype, &[101], &values);
            let want = interp::run(&func, std::slice::from_ref(&input))[0].to_f64_vec();
            let got = jit_run(&func, &[input])[0].to_f64_vec();
            let ulp = |x: f64| {
                if dtype == DType::F32 {
                    (x.abs() as f32 * f32::EPSILON) as f64
                } else {
                    x.abs() * f64::EPSILON
                }
            };
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                let ok = w.to_bits() == g.to_bits() || (w.is_nan() && g.is_nan()) || (w - g).abs() <= 3.0 * ulp(*w);
                assert!(ok, "pow {dtype} ^{exponent} at {i} ({}): interp {w} vs jit {g}", values[i]);
            }
        }
    }
}

/// `run` reads inputs in place and writes outputs straight into the result
/// tensors where it can; copying everything through the arena (its fallback
/// for unaligned data) gives the same bits, also on a second run with other
/// inputs (no stale pointers), on generated programs (params as outputs,
/// views of params, repeated outputs included).
#[test]
fn in_place_and_copied_inputs_and_outputs_agree() {
    use crate::ir::generate::{random_func as generate, random_inputs, GenOptions};
    for seed in 0..150u64 {
        let func = generate(0x10_0000 + seed, &GenOptions::default());
        let mut func = func;
        // Outputs that are params, and the same value twice.
        func.outputs.push(func.outputs[0]);
        func.outputs.push(crate::ir::ValueId(0));
        let options = Options::default();
        let mut direct = compile_with(&func, &options).unwrap();
        let mut copying = super::cpu::compile_copying_io(&func, &options).unwrap();
        for input_index in 0..2u64 {
            let inputs = random_inputs(&func, seed * 4 + input_index);
            let (a, b) = (direct.run(&inputs), copying.run(&inputs));
            assert_outputs_equal(&format!("seed {seed}, input {input_index}"), &func, &inputs, &b, &a);
        }
    }
}

/// The memory plan never gives overlapping bytes to two buffers that are
/// live at the same time, on generated programs.
#[test]
fn memory_plan_never_overlaps_live_buffers() {
    use crate::ir::generate::{random_func as generate, GenOptions};
    for seed in 0..200u64 {
        let func = generate(0x9A1A_0000 + seed, &GenOptions::default());
        let sched = super::cpu::schedule_for_tests(&func);
        let buffers = super::cpu::plan_for_tests(&func, &sched);
        for (i, a) in buffers.iter().enumerate() {
            assert_eq!(a.offset % 64, 0, "seed {seed}: misaligned buffer");
            for b in &buffers[i + 1..] {
                let live_together = a.first <= b.last && b.first <= a.last;
                let overlap = a.offset < b.offset + b.size && b.offset < a.offset + a.size;
                assert!(!(live_together && overlap), "seed {seed}: {a:?} and {b:?} overlap\n{}", text::print(&func));
            }
        }
    }
}

/// Multi-output fusion: in an Adam-like update the new moments `m'` and
/// `v'` (outputs, also read by the parameter update) are hosted by the
/// update's loop, and every output is bitwise the interpreter's, in vector
/// code and its scalar tail.
/// Adam's update of parameter `p` with gradient `g` and moments `m`, `v`
/// (constants as literals, no bias correction): `(p', m', v')`.
pub(crate) fn adam_update(b: &mut Builder, ty: &Type, [p, g, m, v]: [ValueId; 4]) -> (ValueId, ValueId, ValueId) {
    let mut c = |x: f64| b.full(x, ty);
    let (b1, one_b1, b2, one_b2, lr, eps) = (c(0.9), c(0.1), c(0.999), c(0.001), c(1e-3), c(1e-8));
    let bm = b.mul(b1, m);
    let gm = b.mul(one_b1, g);
    let m_new = b.add(bm, gm);
    let bv = b.mul(b2, v);
    let gg = b.mul(g, g);
    let gv = b.mul(one_b2, gg);
    let v_new = b.add(bv, gv);
    let root = b.unary(Op::Sqrt, v_new);
    let denom = b.add(root, eps);
    let step = b.div(m_new, denom);
    let scaled = b.mul(lr, step);
    (b.sub(p, scaled), m_new, v_new)
}

#[test]
fn adam_moments_are_stored_by_the_update_loop_and_match_interp() {
    let mut rng = Rng(0xADA);
    for dtype in FLOATS {
        let ty = Type::new(dtype, &[37]);
        let mut b = Builder::new("adam", &[ty.clone(), ty.clone(), ty.clone(), ty.clone()]);
        let (p, g, m, v) = (b.param(0), b.param(1), b.param(2), b.param(3));
        let (p_new, m_new, v_new) = adam_update(&mut b, &ty, [p, g, m, v]);
        let func = b.finish(vec![p_new, m_new, v_new]);
        let sched = super::cpu::schedule_for_tests(&func);
        assert_eq!(sched.hosted[m_new.index()], Some(p_new.index()), "m' is stored by the update loop");
        assert_eq!(sched.hosted[v_new.index()], Some(p_new.index()), "v' is stored by the update loop");
        let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
        let inputs: Vec<Tensor> =
            inputs.into_iter().enumerate().map(|(i, t)| if i == 3 { abs_tensor(&t) } else { t }).collect();
        assert_same(&format!("adam {dtype}"), &func, &inputs);
    }
}

/// Reductions that keep the innermost dim (a bias gradient's sum over the
/// batch) run that dim as vectors of outputs: still bitwise the
/// interpreter (each output adds its elements in row-major order), with
/// and without a scalar tail, over fused and materialized sources.
#[test]
fn reductions_keeping_the_innermost_dim_match_interp() {
    let mut rng = Rng(0x0E7);
    let cases: [(&[usize], &[usize]); 5] =
        [(&[7, 37], &[0]), (&[3, 5, 9], &[0]), (&[3, 5, 9], &[1]), (&[4, 6, 8], &[0, 1]), (&[2, 3, 4], &[0, 2])];
    for dtype in FLOATS {
        for (dims, axes) in cases {
            let ty = Type::new(dtype, dims);
            let mut b = Builder::new("outer", &[ty.clone(), ty.clone()]);
            let (x, y) = (b.param(0), b.param(1));
            let xy = b.mul(x, y);
            let one = b.full(1.0, &ty);
            let fused = b.add(xy, one);
            let sum = b.reduce_sum(fused, axes.to_vec());
            let max = b.reduce_max(y, axes.to_vec());
            let func = b.finish(vec![sum, max]);
            let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
            assert_same(&format!("{dtype} {dims:?} axes {axes:?}"), &func, &inputs);
        }
    }
}

/// Row reductions (a contiguous reduced run per output) reduce four rows
/// at a time with their add chains interleaved: still bitwise the
/// interpreter, for row counts with and without a remainder, runs with and
/// without a scalar tail, a leaf shared by every row (a broadcast bias),
/// a reduced dim outside the run, and sums, maxima and minima.
#[test]
fn interleaved_row_reductions_match_interp() {
    let mut rng = Rng(0x4044);
    let cases: [(&[usize], &[usize]); 5] =
        [(&[7, 13], &[1]), (&[8, 4], &[1]), (&[2, 6, 9], &[2]), (&[3, 5, 8], &[0, 2]), (&[5, 2, 7], &[1, 2])];
    for dtype in FLOATS {
        for (dims, axes) in cases {
            let ty = Type::new(dtype, dims);
            let last = Type::new(dtype, &dims[dims.len() - 1..]);
            let mut b = Builder::new("rows", &[ty.clone(), last]);
            let (x, bias) = (b.param(0), b.param(1));
            let shared = b.broadcast(bias, &ty.shape, vec![dims.len() - 1]);
            let biased = b.add(x, shared);
            let sum = b.reduce_sum(biased, axes.to_vec());
            let max = b.reduce_max(biased, axes.to_vec());
            let min = b.push(Op::ReduceMin { axes: axes.to_vec() }, vec![x], b.ty(max).clone());
            let func = b.finish(vec![sum, max, min]);
            let mut inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
            assert_same(&format!("{dtype} {dims:?} axes {axes:?}"), &func, &inputs);
            // Magnitudes that make the f32 sums order-sensitive, and specials.
            let n = ty.shape.num_elements();
            let mut values: Vec<f64> =
                (0..n).map(|_| rng.uniform(-1.0, 1.0) * 10f64.powi(rng.below(8) as i32)).collect();
            values[n / 3] = f64::NAN;
            values[n / 2] = -0.0;
            values[n - 1] = f64::INFINITY;
            inputs[0] = tensor_of(dtype, dims, &values);
            assert_same(&format!("{dtype} {dims:?} axes {axes:?} magnitudes"), &func, &inputs);
        }
    }
}

/// The instructions that run code of their own (a loop or a call): not
/// parameters, not inlined, hosted or views.
fn loops_of(func: &Func, sched: &super::cpu::schedule::Schedule) -> Vec<usize> {
    (0..func.insts.len())
        .filter(|&i| !matches!(func.insts[i].op, Op::Param(_)) && !sched.emitted_elsewhere(i))
        .collect()
}

/// A residual sum `a + b + c` that a layer norm's two reductions and its
/// output loop each read is stored once (`schedule::MAX_RECOMPUTE_LOADS`):
/// recomputing it would read all three terms in every loop. The centred
/// value `s - mean`, one buffer of its size plus a broadcast, is still
/// recomputed in each loop. Bitwise the interpreter, f32 and f64.
#[test]
fn a_residual_sum_read_by_several_loops_is_stored_once() {
    let mut rng = Rng(0x2e5);
    for dtype in FLOATS {
        let ty = Type::new(dtype, &[6, 67]);
        let mut b = Builder::new("residual", &[ty.clone(), ty.clone(), ty.clone()]);
        let (x, y, z) = (b.param(0), b.param(1), b.param(2));
        let xy = b.add(x, y);
        let s = b.add(xy, z);
        let total = b.reduce_sum(s, vec![1]);
        let mean = b.broadcast(total, &ty.shape, vec![0]);
        let centred = b.sub(s, mean);
        let sq = b.mul(centred, centred);
        let var = b.reduce_sum(sq, vec![1]);
        let spread = b.broadcast(var, &ty.shape, vec![0]);
        let out = b.mul(centred, spread);
        let func = b.finish(vec![out]);
        let sched = super::cpu::schedule_for_tests(&func);
        assert!(!sched.inlined[s.index()], "{dtype}: the residual sum has a buffer\n{}", text::print(&func));
        assert!(sched.inlined[xy.index()], "{dtype}: its single-use term is computed in its loop");
        assert!(sched.inlined[centred.index()], "{dtype}: s - mean is recomputed in each loop");
        let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
        assert_same(&format!("residual {dtype}"), &func, &inputs);
    }
}

/// A reduction whose source has a buffer for other readers (a bias
/// gradient `sum(g, axis = 0)` of a `g` that a matrix product, here a
/// transpose, reads) stores that source from its own loop
/// (`siblings::adopt_source`): one pass over `g`'s inputs, no loop of
/// `g`'s own. Not when a loop before the reduction reads `g`. Bitwise the
/// interpreter, f32 and f64.
#[test]
fn a_bias_gradient_sum_stores_its_source() {
    let mut rng = Rng(0xb1a5);
    for dtype in FLOATS {
        for early_reader in [false, true] {
            let ty = Type::new(dtype, &[9, 12]);
            let mut b = Builder::new("bias_grad", &[ty.clone(), ty.clone()]);
            let (x, y) = (b.param(0), b.param(1));
            let g = b.mul(x, y);
            let early = early_reader.then(|| b.transpose(g, vec![1, 0]));
            let bias_grad = b.reduce_sum(g, vec![0]);
            let late = b.transpose(g, vec![1, 0]);
            let mut outputs = vec![bias_grad, late];
            outputs.extend(early);
            let func = b.finish(outputs);
            let sched = super::cpu::schedule_for_tests(&func);
            let label = format!("{dtype} early_reader={early_reader}");
            assert_eq!(sched.hosted[g.index()], (!early_reader).then_some(bias_grad.index()), "{label}");
            let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
            assert_same(&format!("bias grad {label}"), &func, &inputs);
        }
    }
}

/// Horizontal fusion (`cpu/siblings.rs`): a loss `sum(g^2)` and a gradient
/// that share a multi-use, not cheaply recomputed value `t` (a division
/// and a square root) run as ONE loop, the reduction's: the gradient
/// (and the value it hosts) is its sibling, `t` is computed in registers.
/// Every output is bitwise the interpreter's, at sizes with and without a
/// scalar tail, f32 and f64.
#[test]
fn a_loss_and_its_gradient_share_one_loop_and_match_interp() {
    let mut rng = Rng(0x51B);
    for dtype in FLOATS {
        for n in [1003, 64] {
            let ty = Type::new(dtype, &[n]);
            let mut b = Builder::new("w4ish", &[ty.clone(), ty.clone(), ty.clone()]);
            let (x, w, c) = (b.param(0), b.param(1), b.param(2));
            let xw = b.mul(x, w);
            let y = b.add(xw, c);
            let one = b.full(1.0, &ty);
            let yy = b.mul(y, y);
            let yy1 = b.add(yy, one);
            let root = b.unary(Op::Sqrt, yy1);
            let t = b.div(y, root);
            let g = b.mul(x, t);
            let g2 = b.mul(g, g);
            let loss = b.reduce_sum(g2, vec![0]);
            let tt = b.mul(t, t);
            let d_hosted = b.sub(one, tt);
            let d = b.mul(d_hosted, w);
            let func = b.finish(vec![loss, d, d_hosted]);
            let sched = super::cpu::schedule_for_tests(&func);
            assert_eq!(loops_of(&func, &sched), vec![loss.index()], "{dtype} n={n}: one loop\n{}", text::print(&func));
            assert_eq!(sched.siblings[loss.index()], vec![d.index()]);
            assert!(sched.inlined[t.index()], "t is computed in the loop, not stored");
            let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
            assert_same(&format!("siblings {dtype} n={n}"), &func, &inputs);
        }
    }
}

/// A gradient norm emitted after the optimizer's update that reads the same
/// gradient (as the e-graph optimizer orders a training step's outputs)
/// moves before it (`cpu/reduction_order.rs`), and the update, with the
/// moments it hosts, runs inside the norm's loop: one pass over `g`.
/// Outputs are bitwise the interpreter's, f32 and f64, with and without a
/// scalar tail.
#[test]
fn a_gradient_norm_after_the_update_shares_its_loop() {
    let mut rng = Rng(0x4e0);
    for dtype in FLOATS {
        for n in [1003, 64] {
            let ty = Type::new(dtype, &[n]);
            let mut b = Builder::new("adamish", &[ty.clone(), ty.clone(), ty.clone(), ty.clone()]);
            let (g, m, v, p) = (b.param(0), b.param(1), b.param(2), b.param(3));
            let (p2, m2, v2) = adam_update(&mut b, &ty, [p, g, m, v]);
            let g_sq = b.mul(g, g);
            let sum = b.reduce_sum(g_sq, vec![0]);
            let norm = b.unary(Op::Sqrt, sum);
            let func = b.finish(vec![p2, m2, v2, norm]);
            let before = super::cpu::schedule_for_tests(&func);
            assert!(before.siblings.iter().all(Vec::is_empty), "{dtype} n={n}: no sibling in the emitted order");
            let placed = super::cpu::reorder_for_tests(&func);
            crate::ir::verify::assert_valid(&placed, "reduction_order");
            let sched = super::cpu::schedule_for_tests(&placed);
            let r = placed.insts.iter().position(|i| matches!(i.op, Op::ReduceSum { .. })).unwrap();
            assert_eq!(sched.siblings[r], vec![placed.outputs[0].index()], "{dtype} n={n}:\n{}", text::print(&placed));
            // The reduction's loop, then the scalar square root's.
            let loops = loops_of(&placed, &sched);
            assert_eq!(loops, vec![r, placed.outputs[3].index()], "{dtype} n={n}: one pass over the vectors");
            let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
            assert_same(&format!("norm and update {dtype} n={n}"), &func, &inputs);
        }
    }
}

/// W4 as the step IR (`sum(gelu_tanh(x*w+b)^2)` and its gradient w.r.t.
/// `w` and `b`, as `jlc` optimizes it) is one pass over `x, w, b`; with
/// 512-bit math (`Options::wide_math`, on hosts with AVX-512F) two: the
/// tanh's own loop (its argument fused in, the routine per chunk), then
/// everything else.
#[test]
fn w4_step_is_one_loop_on_the_cpu() {
    let func = crate::ir::parse::parse(W4_STEP_IR).expect("the W4 IR parses");
    let sched = super::cpu::schedule_for_tests(&func);
    let reduce = func.insts.iter().position(|inst| matches!(inst.op, Op::ReduceSum { .. })).expect("a sum");
    let tanh = func.insts.iter().position(|inst| matches!(inst.op, Op::Tanh)).expect("a tanh");
    let wide = super::cpu::vmath_x16::available();
    assert_eq!(loops_of(&func, &sched), if wide { vec![tanh, reduce] } else { vec![reduce] });
    // With wide math the tanh runs chunk by chunk inside the sum's loop.
    assert_eq!(sched.tiled[tanh], wide.then_some(reduce));
    // Oracle: the same inline math without horizontal fusion (four loops),
    // and on 128-bit vectors only (one loop), bitwise.
    let mut rng = Rng(0x3A4);
    let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
    let fused = compile_with(&func, &Options::default()).expect("compiles").run(&inputs);
    let plain = Options { horizontal_fusion: false, ..Options::default() };
    let unfused = compile_with(&func, &plain).expect("compiles").run(&inputs);
    assert_outputs_equal("w4 fused vs unfused", &func, &inputs, &unfused, &fused);
    let narrow = Options { wide_math: false, ..Options::default() };
    let one_loop = compile_with(&func, &narrow).expect("compiles").run(&inputs);
    assert_outputs_equal("w4 wide vs narrow", &func, &inputs, &one_loop, &fused);
}

/// W4's tanh tiled into the loss's loop (`emit::tiled_pairs`) at sizes
/// with whole 1024-element chunks and a rest, a rest shorter than a vector
/// (merged into the last chunk), and no whole chunk: bitwise the untiled
/// 128-bit loop and the unfused loops.
#[test]
fn tiled_w4_matches_the_one_loop_step_bitwise() {
    let mut rng = Rng(0x7113);
    for n in [3000, 2050, 1024, 17] {
        let func = crate::ir::parse::parse(&W4_STEP_IR.replace("1003", &n.to_string())).expect("parses");
        let sched = super::cpu::schedule_for_tests(&func);
        if super::cpu::vmath_x16::available() {
            assert!(sched.tiled.iter().any(Option::is_some), "n = {n}: the tanh is tiled");
        }
        let inputs: Vec<Tensor> = func.param_types().iter().map(|t| random_tensor(t, &mut rng)).collect();
        let tiled = compile_with(&func, &Options::default()).expect("compiles").run(&inputs);
        let narrow = Options { wide_math: false, ..Options::default() };
        let one_loop = compile_with(&func, &narrow).expect("compiles").run(&inputs);
        assert_outputs_equal(&format!("w4 n={n} tiled vs one loop"), &func, &inputs, &one_loop, &tiled);
        let plain = Options { horizontal_fusion: false, ..Options::default() };
        let unfused = compile_with(&func, &plain).expect("compiles").run(&inputs);
        assert_outputs_equal(&format!("w4 n={n} tiled vs unfused"), &func, &inputs, &unfused, &tiled);
    }
}

/// `BENCH_IR=dir cargo bench --bench train_step -- w4` at 1003 elements.
const W4_STEP_IR: &str = r#"func @w4(%0: f32[1003], %1: f32[1003], %2: f32[1003]) {
  %3 = mul %0, %2 : f32[1003]
  %4 = add %1, %3 : f32[1003]
  %5 = constant{value=0.5} : f32
  %6 = broadcast{dims=[]} %5 : f32[1003]
  %7 = mul %4, %6 : f32[1003]
  %8 = mul %4, %4 : f32[1003]
  %9 = mul %4, %8 : f32[1003]
  %10 = constant{value=0.044714998453855515} : f32
  %11 = broadcast{dims=[]} %10 : f32[1003]
  %12 = mul %9, %11 : f32[1003]
  %13 = add %4, %12 : f32[1003]
  %14 = constant{value=0.7978845608} : f32
  %15 = broadcast{dims=[]} %14 : f32[1003]
  %16 = mul %13, %15 : f32[1003]
  %17 = tanh %16 : f32[1003]
  %18 = constant{value=1.0} : f32
  %19 = broadcast{dims=[]} %18 : f32[1003]
  %20 = add %17, %19 : f32[1003]
  %21 = mul %7, %20 : f32[1003]
  %22 = mul %21, %21 : f32[1003]
  %23 = reduce_sum{axes=[0]} %22 : f32
  %24 = add %21, %21 : f32[1003]
  %25 = mul %7, %24 : f32[1003]
  %26 = mul %17, %17 : f32[1003]
  %27 = sub %19, %26 : f32[1003]
  %28 = mul %25, %27 : f32[1003]
  %29 = mul %15, %28 : f32[1003]
  %30 = mul %11, %29 : f32[1003]
  %31 = constant{value=3.0} : f32
  %32 = broadcast{dims=[]} %31 : f32[1003]
  %33 = mul %32, %8 : f32[1003]
  %34 = mul %30, %33 : f32[1003]
  %35 = add %29, %34 : f32[1003]
  %36 = mul %20, %24 : f32[1003]
  %37 = mul %6, %36 : f32[1003]
  %38 = add %35, %37 : f32[1003]
  %39 = mul %2, %38 : f32[1003]
  return %23, %39, %38
}
"#;

fn abs_tensor(t: &Tensor) -> Tensor {
    let values: Vec<f64> = t.to_f64_vec().iter().map(|x| x.abs()).collect();
    tensor_of(t.ty().dtype, t.shape.dims(), &values)
}

/// The host kernels' threads (`cpu::threads`) never change a result: the
/// convolution paths that spread images over threads (plain im2col, the
/// scatter form of a data gradient), the weight-gradient GEMMs and matrix
/// products that `gemm` splits, and batched products spread by batch
/// element give the same bits with 1 and 3 threads, and agree with the
/// interpreter. Shapes are large enough to pass the splitting thresholds.
#[test]
fn results_do_not_depend_on_the_host_thread_count() {
    let mut rng = Rng(0x7E);
    let conv = |low: [usize; 2]| crate::ir::Conv { low, high: low, ..crate::ir::Conv::plain() };
    let f32_ty = |dims: &[usize]| Type::new(DType::F32, dims);
    let mut funcs: Vec<(String, Func, usize)> = Vec::new();
    // (input, kernel, padding): plain im2col per image, then the scatter
    // form (padding 2 around a 3x3 kernel: more output than input pixels).
    for (xd, kd, low) in [([16, 8, 16, 16], [16, 8, 3, 3], [0, 0]), ([16, 16, 10, 10], [8, 16, 3, 3], [2, 2])] {
        let mut b = Builder::new("conv", &[f32_ty(&xd), f32_ty(&kd)]);
        let res = b.conv2d(b.param(0), b.param(1), conv(low));
        funcs.push((format!("conv {xd:?} {kd:?} pad {low:?}"), b.finish(vec![res]), kd[1] * 9));
    }
    // A weight gradient, images and channels swapped on both sides.
    let (xd, dyd) = ([32, 16, 12, 12], [32, 32, 10, 10]);
    let mut b = Builder::new("wgrad", &[f32_ty(&xd), f32_ty(&dyd)]);
    let xt = b.transpose(b.param(0), vec![1, 0, 2, 3]);
    let dyt = b.transpose(b.param(1), vec![1, 0, 2, 3]);
    let res = b.conv2d(xt, dyt, crate::ir::Conv::plain());
    funcs.push(("weight gradient".into(), b.finish(vec![res]), xd[0] * 100));
    let mut b = Builder::new("matmul", &[f32_ty(&[256, 192]), f32_ty(&[192, 320])]);
    let res = b.matmul(b.param(0), b.param(1));
    funcs.push(("matmul".into(), b.finish(vec![res]), 192));
    let mut b = Builder::new("batch_matmul", &[f32_ty(&[8, 64, 96]), f32_ty(&[8, 96, 80])]);
    let res = b.batch_matmul(b.param(0), b.param(1));
    funcs.push(("batch_matmul".into(), b.finish(vec![res]), 96));
    for (label, func, terms) in &funcs {
        let inputs: Vec<Tensor> = (0..func.n_params).map(|i| plain_tensor(func.ty(func.param(i)), &mut rng)).collect();
        let mut cpu = compile(func).unwrap();
        let one = with_threads(1, || cpu.run(&inputs));
        let three = with_threads(3, || cpu.run(&inputs));
        let (bits_one, bits_three) = (canonical_bits(&one[0]), canonical_bits(&three[0]));
        let first_difference = bits_one.iter().zip(&bits_three).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "{label}: 1 and 3 threads differ at that element");
        let want = interp::run(func, &inputs);
        assert_within_sum_tolerance(label, func, &inputs, &want[0], &three[0], *terms);
    }
}

/// Flush-to-zero set on the calling thread reaches the kernel pool's
/// threads, and clearing it reaches them too: a conv whose every product
/// is subnormal (2^-70 * 2^-70) gives zeros with FTZ/DAZ and subnormals
/// without, on every image, with 3 host threads.
#[test]
fn the_callers_subnormal_mode_reaches_the_kernel_threads() {
    use super::cpu::threads::fp_mode;
    let (xd, kd) = ([16, 8, 16, 16], [16, 8, 3, 3]);
    let mut b = Builder::new("conv", &[Type::new(DType::F32, &xd), Type::new(DType::F32, &kd)]);
    let res = b.conv2d(b.param(0), b.param(1), crate::ir::Conv::plain());
    let func = b.finish(vec![res]);
    let tiny = |dims: &[usize]| tensor_of(DType::F32, dims, &vec![2f64.powi(-70); dims.iter().product()]);
    let inputs = [tiny(&xd), tiny(&kd)];
    let mut cpu = compile(&func).unwrap();
    let (flushed, ieee) = with_threads(3, || {
        let saved = fp_mode::read();
        fp_mode::write(saved | fp_mode::FTZ_DAZ);
        let flushed = cpu.run(&inputs);
        fp_mode::write(saved);
        (flushed, cpu.run(&inputs))
    });
    let values = |t: &Tensor| t.as_f32().expect("f32").to_vec();
    assert!(values(&flushed[0]).iter().all(|&v| v == 0.0), "FTZ on every thread: all zero");
    assert!(values(&ieee[0]).iter().all(|&v| v > 0.0 && !v.is_normal()), "IEEE on every thread: subnormal sums");
}
