//! `Op::Scan` against independent oracles: the same program with the loop
//! unrolled by hand (the body inlined `length` times, bitwise equal in f32
//! and f64), the text round trip with nested bodies, and the verifier's
//! rejections.

use std::sync::Arc;

use super::Scan;
use crate::ir::generate::{random_inputs, Rng};
use crate::ir::{interp, parse, text, verify, Builder, DType, Func, Op, Shape, Tensor, Type, ValueId};

/// A scan test program: its body and how the outer function feeds it.
pub(crate) struct Program {
    pub(crate) body: Func,
    pub(crate) n_const: usize,
    pub(crate) n_carry: usize,
    pub(crate) length: usize,
    pub(crate) reverse: bool,
    /// Outer params: consts ++ init ++ xs (stacked), in the scan's order.
    pub(crate) params: Vec<Type>,
}

impl Program {
    /// The outer function: every result of the scan as an output.
    pub(crate) fn scanned(&self) -> Func {
        let mut b = Builder::new("scanned", &self.params);
        let args: Vec<ValueId> = (0..self.params.len()).map(|i| b.param(i)).collect();
        let outs = b.scan(Arc::new(self.body.clone()), self.n_const, self.n_carry, self.length, self.reverse, &args);
        b.finish(outs)
    }
    /// The same function with the loop unrolled: the body inlined once per
    /// iteration on slices of the xs, ys stacked by reshape + concat.
    pub(crate) fn unrolled(&self) -> Func {
        let (nc, nh) = (self.n_const, self.n_carry);
        let mut b = Builder::new("unrolled", &self.params);
        let args: Vec<ValueId> = (0..self.params.len()).map(|i| b.param(i)).collect();
        let mut carries: Vec<ValueId> = args[nc..nc + nh].to_vec();
        let n_y = self.body.outputs.len() - nh;
        let mut ys: Vec<Vec<Option<ValueId>>> = vec![vec![None; self.length]; n_y];
        let order: Vec<usize> =
            if self.reverse { (0..self.length).rev().collect() } else { (0..self.length).collect() };
        for i in order {
            let mut inputs: Vec<ValueId> = args[..nc].to_vec();
            inputs.extend(&carries);
            for &x in &args[nc + nh..] {
                let ty = b.ty(x).clone();
                let mut start = vec![0; ty.shape.rank()];
                let mut limit = ty.shape.0.clone();
                start[0] = i;
                limit[0] = i + 1;
                let row = b.slice(x, start, limit, vec![1; ty.shape.rank()]);
                inputs.push(b.reshape(row, &Shape(ty.shape.0[1..].to_vec())));
            }
            let outs = crate::autodiff::inline_outputs(&mut b, &self.body, &inputs);
            carries = outs[..nh].to_vec();
            for (j, &y) in outs[nh..].iter().enumerate() {
                let mut dims = vec![1];
                dims.extend(&b.ty(y).shape.0);
                ys[j][i] = Some(b.reshape(y, &Shape(dims)));
            }
        }
        let mut outs = carries;
        for (j, parts) in ys.into_iter().enumerate() {
            let parts: Vec<ValueId> = parts.into_iter().map(|p| p.expect("every row is written")).collect();
            let y_ty = self.body.ty(self.body.outputs[nh + j]).clone();
            outs.push(match parts.is_empty() {
                true => b.full(0.0, &super::stacked(&y_ty, 0)),
                false => b.concat(parts, 0),
            });
        }
        b.finish(outs)
    }
}

fn ty(dtype: DType, dims: &[usize]) -> Type {
    Type::new(dtype, dims)
}

/// Cumulative sum: h' = h + x, y = h'.
pub(crate) fn cumsum(dtype: DType, length: usize, reverse: bool) -> Program {
    let mut b = Builder::new("cumsum", &[ty(dtype, &[3]), ty(dtype, &[3])]);
    let h = b.add(b.param(0), b.param(1));
    Program {
        body: b.finish(vec![h, h]),
        n_const: 0,
        n_carry: 1,
        length,
        reverse,
        params: vec![ty(dtype, &[3]), ty(dtype, &[length, 3])],
    }
}

/// An RNN: consts W [4, 4], U [4, 2]; h' = tanh(W h + U x); ys = h' and
/// sum(h'), a second carry counts steps (i32), showing mixed dtypes.
pub(crate) fn rnn(dtype: DType, length: usize) -> Program {
    let types = [ty(dtype, &[4, 4]), ty(dtype, &[4, 2]), ty(dtype, &[4]), ty(DType::I32, &[]), ty(dtype, &[2])];
    let mut b = Builder::new("rnn_cell", &types);
    let (w, u, h, n, x) = (b.param(0), b.param(1), b.param(2), b.param(3), b.param(4));
    let hc = b.reshape(h, &Shape(vec![4, 1]));
    let xc = b.reshape(x, &Shape(vec![2, 1]));
    let wh = b.matmul(w, hc);
    let ux = b.matmul(u, xc);
    let s = b.add(wh, ux);
    let s = b.reshape(s, &Shape(vec![4]));
    let h2 = b.unary(Op::Tanh, s);
    let one = b.constant(1.0, DType::I32);
    let n2 = b.add(n, one);
    let total = b.reduce_sum(h2, vec![0]);
    Program {
        body: b.finish(vec![h2, n2, h2, total]),
        n_const: 2,
        n_carry: 2,
        length,
        reverse: false,
        params: vec![types[0].clone(), types[1].clone(), types[2].clone(), types[3].clone(), ty(dtype, &[length, 2])],
    }
}

/// A scan without xs: h' = h * c + 1 for `length` steps, c a const.
pub(crate) fn no_xs(dtype: DType, length: usize) -> Program {
    let mut b = Builder::new("affine", &[ty(dtype, &[2, 2]), ty(dtype, &[2, 2])]);
    let hc = b.mul(b.param(1), b.param(0));
    let one = b.full(1.0, &ty(dtype, &[2, 2]));
    let h = b.add(hc, one);
    Program {
        body: b.finish(vec![h]),
        n_const: 1,
        n_carry: 1,
        length,
        reverse: false,
        params: vec![ty(dtype, &[2, 2]); 2],
    }
}

/// A scan whose body holds a scan: each step adds the cumulative sum of its
/// x row's entries (an inner scan over the row) to the carry.
pub(crate) fn nested(dtype: DType, length: usize) -> Program {
    let inner = cumsum(dtype, 2, true).scanned();
    // The outer body: carry [3], x [2, 3] -> carry + inner_final, y = inner ys.
    let mut b = Builder::new("outer", &[ty(dtype, &[3]), ty(dtype, &[2, 3])]);
    let (h, x) = (b.param(0), b.param(1));
    let outs = crate::autodiff::inline_outputs(&mut b, &inner, &[h, x]);
    let h2 = b.add(h, outs[0]);
    Program {
        body: b.finish(vec![h2, outs[1]]),
        n_const: 0,
        n_carry: 1,
        length,
        reverse: false,
        params: vec![ty(dtype, &[3]), ty(dtype, &[length, 2, 3])],
    }
}

pub(crate) fn programs(dtype: DType) -> Vec<(&'static str, Program)> {
    vec![
        ("cumsum", cumsum(dtype, 5, false)),
        ("cumsum reversed", cumsum(dtype, 5, true)),
        ("cumsum of length 0", cumsum(dtype, 0, false)),
        ("rnn", rnn(dtype, 5)),
        ("no xs", no_xs(dtype, 4)),
        ("nested", nested(dtype, 3)),
    ]
}

#[test]
fn scan_equals_the_hand_unrolled_loop_bitwise() {
    for dtype in [DType::F32, DType::F64] {
        for (name, p) in programs(dtype) {
            let (s, u) = (p.scanned(), p.unrolled());
            verify::assert_valid(&s, "scanned");
            verify::assert_valid(&u, "unrolled");
            for seed in 0..3 {
                let inputs = random_inputs(&s, seed);
                let (got, want) = (interp::run(&s, &inputs), interp::run(&u, &inputs));
                let same = got.iter().zip(&want).all(|(g, w)| bits(g) == bits(w));
                assert!(same, "{name} ({dtype}), inputs seed {seed}: {got:?} vs unrolled {want:?}");
            }
        }
    }
}

/// The values' bit patterns (NaN-safe equality).
pub(crate) fn bits(t: &Tensor) -> (Vec<usize>, Vec<u64>) {
    let v = match &t.data {
        crate::ir::Data::F32(v) => v.iter().map(|x| x.to_bits() as u64).collect(),
        crate::ir::Data::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
        crate::ir::Data::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
        crate::ir::Data::Bool(v) => v.iter().map(|&x| x as u64).collect(),
    };
    (t.shape.0.clone(), v)
}

#[test]
fn cumsum_has_the_known_values() {
    // An oracle independent of our code: prefix sums computed here.
    let p = cumsum(DType::F64, 4, false);
    let xs: Vec<f64> = (0..12).map(|i| i as f64 * 0.5 - 2.0).collect();
    let init = vec![1.0, -1.0, 0.25];
    let out = interp::run(&p.scanned(), &[Tensor::f64(&[3], init.clone()), Tensor::f64(&[4, 3], xs.clone())]);
    let mut acc = init;
    let mut ys = Vec::new();
    for i in 0..4 {
        for j in 0..3 {
            acc[j] += xs[i * 3 + j];
        }
        ys.extend(acc.clone());
    }
    assert_eq!(out[0].to_f64_vec(), acc);
    assert_eq!(out[1].to_f64_vec(), ys);
}

#[test]
fn text_round_trips_with_nested_bodies() {
    for dtype in [DType::F32, DType::F64] {
        for (name, p) in programs(dtype) {
            let f = p.scanned();
            let printed = text::print(&f);
            let back = parse::parse(&printed).unwrap_or_else(|e| panic!("{name}: {e}\n{printed}"));
            assert_eq!(back, f, "{name}");
        }
    }
    let printed = text::print(&nested(DType::F32, 3).scanned());
    assert!(printed.contains("        func @cumsum("), "the inner body is indented twice:\n{printed}");
}

#[test]
fn verifier_rejects_ill_typed_scans() {
    let p = cumsum(DType::F32, 5, false);
    let good = p.scanned();
    let with = |f: &dyn Fn(&mut Scan)| {
        let mut g = good.clone();
        let Op::Scan(s) = &mut g.insts[2].op else { panic!("inst 2 is the scan") };
        f(s);
        verify::verify(&g)
    };
    assert!(with(&|_| {}).is_ok());
    // A carry that changes its type across an iteration.
    let mut b = Builder::new("bad", &[ty(DType::F32, &[3]), ty(DType::F32, &[3])]);
    let h = b.add(b.param(0), b.param(1));
    let wide = b.convert(h, DType::F64);
    let bad_body = Arc::new(b.finish(vec![wide, h]));
    let err = with(&|s| s.body = bad_body.clone()).unwrap_err();
    assert!(err.contains("carry changes its type"), "{err}");
    let err = with(&|s| s.length = 4).unwrap_err();
    assert!(err.contains("xs operand"), "{err}");
    let err = with(&|s| s.output = 2).unwrap_err();
    assert!(err.contains("output index"), "{err}");
    // Errors inside the body name it; parse errors name the body's line.
    let printed = text::print(&good).replace("add %0, %1 : f32[3]", "add %0, %1 : f32[4]");
    let err = parse::parse(&printed).unwrap_err();
    assert!(err.starts_with("line 4:"), "{err}");
    let truncated: String = text::print(&good).lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(parse::parse(&truncated).is_err());
}

#[test]
fn siblings_agree_with_separately_computed_results() {
    // Each sibling alone (the other results dead) equals its value in the group.
    let mut rng = Rng(7);
    for dtype in [DType::F32, DType::F64] {
        let p = rnn(dtype, 4);
        let all = p.scanned();
        let inputs = random_inputs(&all, rng.next_u64());
        let together = interp::run(&all, &inputs);
        for k in 0..all.outputs.len() {
            let mut alone = all.clone();
            alone.outputs = vec![all.outputs[k]];
            let alone = crate::ir::dce::dce(&alone);
            assert_eq!(alone.insts.len(), all.n_params + 1, "dce keeps one scan instruction");
            assert_eq!(bits(&interp::run(&alone, &inputs)[0]), bits(&together[k]), "result {k}");
        }
    }
}

#[test]
fn grouping_siblings_keeps_values_and_makes_them_adjacent() {
    // rnn's four results, separated by other instructions and reordered.
    for dtype in [DType::F32, DType::F64] {
        let p = rnn(dtype, 3);
        let mut b = Builder::new("spread", &p.params);
        let args: Vec<ValueId> = (0..p.params.len()).map(|i| b.param(i)).collect();
        let s = Scan { body: Arc::new(p.body.clone()), n_const: 2, n_carry: 2, length: 3, reverse: false, output: 0 };
        let y = b.scan_output(&s, 2, &args);
        let t = b.unary(Op::Tanh, y);
        let h = b.scan_output(&s, 0, &args);
        let e = b.unary(Op::Exp, h);
        let total = b.scan_output(&s, 3, &args);
        let f = b.finish(vec![t, e, total, h]);
        let g = super::group_siblings(&f);
        verify::assert_valid(&g, "group_siblings");
        let scans: Vec<usize> = (0..g.insts.len()).filter(|&i| matches!(g.insts[i].op, Op::Scan(_))).collect();
        assert_eq!(scans, vec![scans[0], scans[0] + 1, scans[0] + 2], "{}", text::print(&g));
        let inputs = random_inputs(&f, 5);
        let (a, c) = (interp::run(&f, &inputs), interp::run(&g, &inputs));
        assert_eq!(a.iter().map(bits).collect::<Vec<_>>(), c.iter().map(bits).collect::<Vec<_>>());
    }
}
