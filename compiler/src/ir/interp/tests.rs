//! The interpreter's gather, scatter_add, batch_matmul and reduce_min against
//! independent oracles: explicit index loops written from the op contracts,
//! the adjoint identity `<gather(x, i), u> = <x, scatter_add(u, i)>`, 2-D
//! `MatMul` per batch element, and `min = -max(-x)`.

use crate::ir::generate::Rng;
use crate::ir::{interp, Builder, DType, Func, Shape, Tensor, Type};

fn random_f64(rng: &mut Rng, dims: &[usize]) -> Tensor {
    let n = dims.iter().product();
    Tensor::f64(dims, (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect())
}

fn run1(func: &Func, inputs: &[Tensor]) -> Tensor {
    interp::run(func, inputs).remove(0)
}

const INDICES: [i32; 8] = [1, 3, 1, -2, 7, 4, 0, 1];

#[test]
fn gather_picks_clamped_rows() {
    let mut rng = Rng(1);
    let (v, r, c) = (5usize, 2usize, 3usize);
    let table = random_f64(&mut rng, &[v, r, c]);
    let idx = Tensor::i32(&[2, 4], INDICES.to_vec());
    let mut b = Builder::new("gather", &[table.ty(), idx.ty()]);
    let g = b.gather(b.param(0), b.param(1));
    let got = run1(&b.finish(vec![g]), &[table.clone(), idx]);
    assert_eq!(got.shape, Shape(vec![2, 4, r, c]));
    let (t, out) = (table.to_f64_vec(), got.to_f64_vec());
    for (k, &i) in INDICES.iter().enumerate() {
        // Clamping, written as the contract says: below 0 -> 0, past V-1 -> V-1.
        let row = if i < 0 {
            0
        } else if i as usize >= v {
            v - 1
        } else {
            i as usize
        };
        for e in 0..r * c {
            assert_eq!(out[k * r * c + e], t[row * r * c + e], "index {i} element {e}");
        }
    }
}

#[test]
fn scatter_add_is_the_adjoint_of_gather_and_accumulates_in_order() {
    let mut rng = Rng(2);
    let (v, c) = (5usize, 3usize);
    let x = random_f64(&mut rng, &[v, c]);
    let u = random_f64(&mut rng, &[2, 4, c]);
    let idx = Tensor::i32(&[2, 4], INDICES.to_vec());
    let mut b = Builder::new("pair", &[x.ty(), u.ty(), idx.ty()]);
    let g = b.gather(b.param(0), b.param(2));
    let s = b.scatter_add(b.param(1), b.param(2), v);
    let outs = interp::run(&b.finish(vec![g, s]), &[x.clone(), u.clone(), idx]);
    let dot = |a: &Tensor, b: &Tensor| a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(p, q)| p * q).sum::<f64>();
    let (lhs, rhs) = (dot(&outs[0], &u), dot(&x, &outs[1]));
    assert!((lhs - rhs).abs() <= 1e-12 * lhs.abs().max(1.0), "<Gx, u> = {lhs} vs <x, G^T u> = {rhs}");
    // Row 1 receives positions 0, 2, 7 in that order (f64 sums in order).
    let uv = u.to_f64_vec();
    let s = outs[1].to_f64_vec();
    for e in 0..c {
        assert_eq!(s[c + e], (uv[e] + uv[2 * c + e]) + uv[7 * c + e]);
        assert_eq!(s[2 * c + e], 0.0, "row 2 gets nothing");
    }
}

#[test]
fn batch_matmul_is_matmul_per_batch_element() {
    let mut rng = Rng(3);
    let (batch, m, k, n) = ([2usize, 3usize], 4usize, 5usize, 2usize);
    let a = random_f64(&mut rng, &[batch[0], batch[1], m, k]);
    let bb = random_f64(&mut rng, &[batch[0], batch[1], k, n]);
    let mut b = Builder::new("bmm", &[a.ty(), bb.ty()]);
    let r = b.batch_matmul(b.param(0), b.param(1));
    let got = run1(&b.finish(vec![r]), &[a.clone(), bb.clone()]).to_f64_vec();
    let mut b = Builder::new("mm", &[Type::new(DType::F64, &[m, k]), Type::new(DType::F64, &[k, n])]);
    let r = b.matmul(b.param(0), b.param(1));
    let mm = b.finish(vec![r]);
    let (av, bv) = (a.to_f64_vec(), bb.to_f64_vec());
    for p in 0..batch[0] * batch[1] {
        let ap = Tensor::f64(&[m, k], av[p * m * k..(p + 1) * m * k].to_vec());
        let bp = Tensor::f64(&[k, n], bv[p * k * n..(p + 1) * k * n].to_vec());
        assert_eq!(run1(&mm, &[ap, bp]).to_f64_vec(), got[p * m * n..(p + 1) * m * n], "batch element {p}");
    }
}

#[test]
fn reduce_min_mirrors_reduce_max() {
    let mut rng = Rng(4);
    let mut values: Vec<f64> = (0..24).map(|_| rng.uniform(-2.0, 2.0)).collect();
    values[5] = -0.0;
    values[6] = 0.0;
    values[13] = f64::NAN;
    values[20] = f64::NEG_INFINITY;
    let x = Tensor::f64(&[2, 3, 4], values.clone());
    for axes in [vec![0], vec![1, 2], vec![0, 1, 2], vec![2]] {
        let mut b = Builder::new("min", &[x.ty()]);
        let m = b.reduce_min(b.param(0), axes.clone());
        let n = b.neg(b.param(0));
        let mx = b.reduce_max(n, axes.clone());
        let neg_max = b.neg(mx);
        let outs = interp::run(&b.finish(vec![m, neg_max]), std::slice::from_ref(&x));
        let bits =
            |t: &Tensor| t.to_f64_vec().iter().map(|v| if v.is_nan() { 1 } else { v.to_bits() }).collect::<Vec<_>>();
        assert_eq!(bits(&outs[0]), bits(&outs[1]), "axes {axes:?}");
    }
    // i32: an explicit loop over the reduced axis.
    let xi = Tensor::i32(&[3, 4], values.iter().take(12).map(|v| (v * 1e9) as i32).collect());
    let mut b = Builder::new("min_i32", &[xi.ty()]);
    let m = b.reduce_min(b.param(0), vec![1]);
    let got = run1(&b.finish(vec![m]), std::slice::from_ref(&xi));
    let xv = xi.to_f64_vec();
    let want: Vec<f64> = (0..3).map(|r| (0..4).map(|c| xv[r * 4 + c]).fold(f64::INFINITY, f64::min)).collect();
    assert_eq!(got.to_f64_vec(), want);
}
