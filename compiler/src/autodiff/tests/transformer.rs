//! Autodiff of gather, scatter_add, reduce_min, batch_matmul and the random
//! ops, through the harness of `tests.rs` (FD in f64, `<Jt, c> = <t, J^T c>`
//! to 1e-12, second order), and a whole attention block.

use super::{case, check_all, reduce_specs, Case, Domain};
use crate::ir::{Builder, DType, Shape, ValueId};

/// An i32 constant tensor of `dims` (for indices and keys).
fn i32_tensor(b: &mut Builder, dims: &[usize], values: &[i32]) -> ValueId {
    let parts: Vec<ValueId> = values
        .iter()
        .map(|&v| {
            let c = b.constant(v as f64, DType::I32);
            b.reshape(c, &Shape(vec![1]))
        })
        .collect();
    let flat = b.concat(parts, 0);
    b.reshape(flat, &Shape(dims.to_vec()))
}

/// (table dims, index dims, indices).
type GatherSpec = (&'static [usize], &'static [usize], Vec<i32>);
/// (update dims, index dims, indices, result rows).
type ScatterSpec = (&'static [usize], &'static [usize], Vec<i32>, usize);

#[test]
fn gather_gradients() {
    // Duplicates (1 three times) and out-of-range indices (-2, 7 clamp to 0, 4)
    // make the VJP accumulate several cotangent rows into one table row.
    let specs: Vec<GatherSpec> = vec![
        (&[5, 3], &[2, 4], vec![1, 3, 1, -2, 7, 4, 0, 1]),
        (&[5], &[6], vec![4, 4, 0, 2, 9, -1]),
        (&[4, 2, 3], &[], vec![2]),
        (&[3, 2], &[3, 1], vec![0, 0, 0]),
    ];
    let cases = specs
        .into_iter()
        .map(|(table, idx_dims, idx)| {
            case(
                format!("gather{table:?} at {idx:?}"),
                vec![(table, Domain::Any)],
                Box::new(move |b, p| {
                    let i = i32_tensor(b, idx_dims, &idx);
                    let g = b.gather(p[0], i);
                    b.mul(g, g)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn scatter_add_gradients() {
    let specs: Vec<ScatterSpec> = vec![
        (&[6, 3], &[6], vec![1, 3, 1, -2, 7, 1], 4),
        (&[2, 3], &[2, 3], vec![0, 1, 0, 1, 1, 5], 2),
        (&[3], &[3], vec![2, 2, 2], 3),
    ];
    let cases = specs
        .into_iter()
        .map(|(upd, idx_dims, idx, rows)| {
            case(
                format!("scatter_add{upd:?} at {idx:?} into {rows}"),
                vec![(upd, Domain::Any)],
                Box::new(move |b, p| {
                    let i = i32_tensor(b, idx_dims, &idx);
                    let s = b.scatter_add(p[0], i, rows);
                    b.mul(s, s)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn reduce_min_gradients() {
    let cases = reduce_specs()
        .into_iter()
        .map(|(src, axes)| {
            case(
                format!("reduce_min{src:?}{axes:?}"),
                vec![(src, Domain::Any)],
                Box::new(move |b, p| {
                    let m = b.reduce_min(p[0], axes.clone());
                    b.mul(m, m)
                }),
            )
        })
        .collect();
    check_all(cases);
}

#[test]
fn batch_matmul_gradients() {
    let specs: Vec<(&[usize], &[usize])> =
        vec![(&[2, 3, 4], &[2, 4, 5]), (&[2, 2, 3, 4], &[2, 2, 4, 1]), (&[3, 4], &[4, 2]), (&[1, 1, 3], &[1, 3, 1])];
    let mut cases: Vec<Case> = specs
        .into_iter()
        .map(|(sa, sb)| {
            case(
                format!("batch_matmul{sa:?}{sb:?}"),
                vec![(sa, Domain::Any), (sb, Domain::Any)],
                Box::new(|b, p| b.batch_matmul(p[0], p[1])),
            )
        })
        .collect();
    // x @ x^T per batch element: both operands come from one value.
    cases.push(case(
        "batch_matmul_gram",
        vec![(&[2, 3, 2], Domain::Any)],
        Box::new(|b, p| {
            let t = b.transpose_last2(p[0]);
            b.batch_matmul(p[0], t)
        }),
    ));
    check_all(cases);
}

#[test]
fn random_values_are_constants() {
    // x * uniform(key) + float(bits) * 1e-9 * x: the random parts get no
    // gradient, so d/dx is the (constant) random factor, which FD confirms.
    let cases = vec![case(
        "random",
        vec![(&[2, 3], Domain::Any)],
        Box::new(|b, p| {
            let ty = b.ty(p[0]).clone();
            let key = i32_tensor(b, &[2], &[0, 42]);
            let keys = b.random_split(key, &Shape(vec![2]));
            let k1 = b.slice(keys, vec![1, 0], vec![2, 2], vec![1, 1]);
            let k1 = b.reshape(k1, &Shape(vec![2]));
            let u = b.random_uniform(k1, &ty);
            let bits = b.random_bits(key, &ty.shape);
            let bf = b.convert(bits, DType::F32);
            let scale = b.full(1e-9, &ty);
            let bf = b.mul(bf, scale);
            let factor = b.add(u, bf);
            let y = b.mul(p[0], factor);
            b.mul(y, p[0])
        }),
    )];
    check_all(cases);
}

/// softmax over the last axis, stabilized by the row max.
fn softmax_last(b: &mut Builder, x: ValueId) -> ValueId {
    let shape = b.ty(x).shape.clone();
    let r = shape.rank();
    let kept: Vec<usize> = (0..r - 1).collect();
    let m = b.reduce_max(x, vec![r - 1]);
    let mb = b.broadcast(m, &shape, kept.clone());
    let sm = b.unary(crate::ir::Op::StopGradient, mb);
    let z = b.sub(x, sm);
    let e = b.unary(crate::ir::Op::Exp, z);
    let s = b.reduce_sum(e, vec![r - 1]);
    let sb = b.broadcast(s, &shape, kept);
    b.div(e, sb)
}

/// `[T, D] -> [H, T, D/H]`.
fn split_heads(b: &mut Builder, x: ValueId, heads: usize) -> ValueId {
    let (t, d) = (b.ty(x).shape.0[0], b.ty(x).shape.0[1]);
    let r = b.reshape(x, &Shape(vec![t, heads, d / heads]));
    b.transpose(r, vec![1, 0, 2])
}

#[test]
fn attention_block_gradients() {
    // Embedding lookup, then one multi-head self-attention block:
    // x = table[tokens]; q, k, v = x Wq, x Wk, x Wv split into 2 heads;
    // p = softmax(q k^T / sqrt(dh)); out = concat_heads(p v) Wo.
    let (vocab, t, d, heads) = (7usize, 4usize, 6usize, 2usize);
    let body: super::Body = Box::new(move |b, p| {
        let tokens = i32_tensor(b, &[t], &[3, 0, 3, 6]);
        let x = b.gather(p[0], tokens);
        let proj = |b: &mut Builder, w: ValueId| {
            let y = b.matmul(x, w);
            split_heads(b, y, heads)
        };
        let (q, k, v) = (proj(b, p[1]), proj(b, p[2]), proj(b, p[3]));
        let kt = b.transpose_last2(k);
        let scores = b.batch_matmul(q, kt);
        let ty = b.ty(scores).clone();
        let scale = b.full(1.0 / ((d / heads) as f64).sqrt(), &ty);
        let scores = b.mul(scores, scale);
        let probs = softmax_last(b, scores);
        let ctx = b.batch_matmul(probs, v);
        let ctx = b.transpose(ctx, vec![1, 0, 2]);
        let ctx = b.reshape(ctx, &Shape(vec![t, d]));
        b.matmul(ctx, p[4])
    });
    check_all(vec![case(
        "attention_block",
        vec![
            (&[vocab, d], Domain::Any),
            (&[d, d], Domain::Any),
            (&[d, d], Domain::Any),
            (&[d, d], Domain::Any),
            (&[d, d], Domain::Any),
        ],
        body,
    )]);
}
