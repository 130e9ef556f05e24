//! The CPU backend against the interpreter on gather, scatter_add,
//! reduce_min and the random ops (bitwise), and batch_matmul (within the
//! matmul tolerance, per batch element).

use super::{assert_matmul_close, assert_same, axis_subsets, compile, float_specials, random_tensor, tensor_of, Rng};
use crate::ir::{interp, Builder, DType, Shape, Tensor, Type};

const DTYPES: [DType; 3] = [DType::F32, DType::F64, DType::I32];

#[test]
fn gather_and_scatter_add_match_interp_with_duplicates_and_clamping() {
    let mut rng = Rng(41);
    // Duplicates, negatives and indices past the end (they clamp).
    let idx = Tensor::i32(&[2, 4], vec![1, 3, 1, -2, 7, 4, i32::MIN, i32::MAX]);
    for dtype in [DType::F32, DType::F64, DType::I32, DType::Bool] {
        for table_dims in [vec![5], vec![5, 3], vec![5, 2, 2]] {
            let table = Type::new(dtype, &table_dims);
            let mut b = Builder::new("gather", &[table.clone(), idx.ty()]);
            let g = b.gather(b.param(0), b.param(1));
            let func = b.finish(vec![g]);
            let x = if dtype == DType::Bool {
                Tensor::bool(&table_dims, (0..table.shape.num_elements()).map(|i| i % 3 == 0).collect())
            } else {
                random_tensor(&table, &mut rng)
            };
            assert_same(&format!("gather {table}"), &func, &[x, idx.clone()]);
        }
    }
    for dtype in DTYPES {
        for (rest, rows) in [(vec![], 5), (vec![3], 2), (vec![2, 2], 9)] {
            let mut dims = vec![2, 4];
            dims.extend(&rest);
            let upd = Type::new(dtype, &dims);
            let mut b = Builder::new("scatter_add", &[upd.clone(), idx.ty()]);
            let s = b.scatter_add(b.param(0), b.param(1), rows);
            let func = b.finish(vec![s]);
            let inputs = [random_tensor(&upd, &mut rng), idx.clone()];
            assert_same(&format!("scatter_add {upd} into {rows}"), &func, &inputs);
            // Twice on one compiled function: the result must be re-zeroed.
            let mut cpu = compile(&func).unwrap();
            let first = cpu.run(&inputs);
            assert_eq!(first, cpu.run(&inputs), "scatter_add {upd}: second run differs");
        }
    }
    // No indices: gather gives nothing, scatter_add gives zeros.
    let empty = Tensor::i32(&[0], vec![]);
    let mut b = Builder::new("empty", &[Type::new(DType::F32, &[0, 3]), empty.ty(), Type::new(DType::F32, &[4, 3])]);
    let s = b.scatter_add(b.param(0), b.param(1), 3);
    let g = b.gather(b.param(2), b.param(1));
    let func = b.finish(vec![s, g]);
    assert_same("empty indices", &func, &[Tensor::f32(&[0, 3], vec![]), empty, Tensor::f32(&[4, 3], vec![1.0; 12])]);
}

#[test]
fn reduce_min_matches_interp_bitwise() {
    let mut rng = Rng(42);
    for dtype in DTYPES {
        for dims in [vec![2, 3, 4], vec![3, 1, 5], vec![9], vec![0, 3]] {
            for axes in axis_subsets(dims.len()) {
                let ty = Type::new(dtype, &dims);
                let mut b = Builder::new("reduce_min", std::slice::from_ref(&ty));
                let res = b.reduce_min(b.param(0), axes.clone());
                let func = b.finish(vec![res]);
                assert_same(&format!("min {ty} {axes:?}"), &func, &[random_tensor(&ty, &mut rng)]);
            }
        }
    }
    // NaN, infinities and signed zeros in every position.
    for dtype in [DType::F32, DType::F64] {
        let specials = float_specials();
        let n = specials.len();
        let mut values = specials.clone();
        values.extend(specials.iter().map(|&x| if x.is_nan() { 0.0 } else { -x }));
        let ty = Type::new(dtype, &[2, n]);
        let mut b = Builder::new("specials", std::slice::from_ref(&ty));
        let (r0, r1) = (b.reduce_min(b.param(0), vec![0]), b.reduce_min(b.param(0), vec![1]));
        let func = b.finish(vec![r0, r1]);
        assert_same(&format!("min specials {dtype}"), &func, &[tensor_of(dtype, &[2, n], &values)]);
    }
}

#[test]
fn random_ops_match_interp_bitwise() {
    let key_ty = Type::new(DType::I32, &[2]);
    for key in [[0, 0], [0, 42], [-1, -1], [0x1319_8a2e, 0x0370_7344]] {
        let mut b = Builder::new("random", std::slice::from_ref(&key_ty));
        let k = b.param(0);
        let outs = vec![
            b.random_bits(k, &Shape(vec![3, 5])),
            b.random_split(k, &Shape(vec![4])),
            b.random_uniform(k, &Type::new(DType::F32, &[7])),
            b.random_uniform(k, &Type::new(DType::F64, &[2, 3])),
            b.random_bits(k, &Shape(vec![])),
        ];
        let func = b.finish(outs);
        assert_same(&format!("random key {key:?}"), &func, &[Tensor::i32(&[2], key.to_vec())]);
    }
}

#[test]
fn batch_matmul_matches_interp_within_tolerance() {
    let mut rng = Rng(43);
    for dtype in [DType::F32, DType::F64] {
        for (batch, m, k, n) in [(vec![2], 3, 4, 5), (vec![2, 3], 4, 1, 2), (vec![], 5, 6, 7), (vec![3], 2, 0, 2)] {
            let dims = |r: usize, c: usize| {
                let mut d = batch.clone();
                d.extend([r, c]);
                d
            };
            let (ta, tb) = (Type::new(dtype, &dims(m, k)), Type::new(dtype, &dims(k, n)));
            let mut b = Builder::new("bmm", &[ta.clone(), tb.clone()]);
            let res = b.batch_matmul(b.param(0), b.param(1));
            let func = b.finish(vec![res]);
            let inputs = [random_tensor(&ta, &mut rng), random_tensor(&tb, &mut rng)];
            let want = &interp::run(&func, &inputs)[0];
            let mut cpu = compile(&func).unwrap();
            for _ in 0..2 {
                let got = &cpu.run(&inputs)[0];
                assert_eq!(got.ty(), want.ty());
                let count: usize = batch.iter().product();
                // Compare batch element by element as 2-D matmuls.
                let slice = |t: &Tensor, p: usize, r: usize, c: usize| {
                    let v = t.to_f64_vec();
                    Tensor::from_f64(dtype, &[r, c], &v[p * r * c..(p + 1) * r * c])
                };
                for p in 0..count {
                    assert_matmul_close(
                        &format!("batch_matmul {ta} x {tb} element {p}"),
                        &slice(&inputs[0], p, m, k),
                        &slice(&inputs[1], p, k, n),
                        &slice(got, p, m, n),
                        &slice(want, p, m, n),
                    );
                }
            }
        }
    }
}

/// The PTX backend emits every new op (their numerics are checked against
/// the interpreter by `codegen::ptx::tests` through the PTX simulator).
#[test]
fn ptx_emits_the_new_ops() {
    use crate::codegen::ptx::{emit, Step};
    let (table, idx, key) = (Type::new(DType::F32, &[4, 3]), Type::new(DType::I32, &[5]), Type::new(DType::I32, &[2]));
    let mut b = Builder::new("new_ops", &[table, idx, key, Type::new(DType::F32, &[5, 3])]);
    let (t, i, k, u) = (b.param(0), b.param(1), b.param(2), b.param(3));
    let mut values = vec![b.gather(t, i), b.reduce_min(t, vec![1]), b.random_bits(k, &Shape(vec![3]))];
    values.push(b.scatter_add(u, i, 4));
    let tt = b.transpose_last2(t);
    values.push(b.batch_matmul(t, tt));
    values.push(b.random_split(k, &Shape(vec![2])));
    values.push(b.random_uniform(k, &Type::new(DType::F32, &[2])));
    let full = b.finish(vec![]);
    for v in values {
        // A function whose only non-param instruction (with its operands) is v.
        let mut one = full.clone();
        one.outputs = vec![v];
        let one = crate::ir::dce::dce(&one);
        let prog = emit(&one).unwrap_or_else(|e| panic!("{:?}: {e}", full.insts[v.index()].op));
        let last = one.insts.len() - 1;
        let planned = prog.steps.iter().any(|s| match s {
            Step::Kernel { inst, .. } | Step::Gemm { inst, .. } => *inst == last,
        });
        assert!(planned, "{:?}: no step", full.insts[v.index()].op);
    }
}
