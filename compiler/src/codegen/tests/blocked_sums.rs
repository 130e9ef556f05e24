//! Long float sums in the blocked order (`ir::sum_order`,
//! `cpu/emit/blocked_sum.rs`): bitwise the interpreter's, on vector trees
//! and on the scalar fallback, one output or many, units with and without
//! a short last unit, split over threads or not, and with a wide tanh tiled
//! into the sum's loop (W4's shape).

use super::with_threads;
use super::{assert_outputs_equal, canonical_bits, Rng};
use crate::codegen::cpu::{compile_with, machine_code, Options};
use crate::ir::{interp, sum_order, Builder, DType, Func, Op, Tensor, Type, ValueId};

/// Values of mixed magnitudes (1e-3 .. 1e5, both signs): long sums of them
/// depend on the order of their additions.
fn mixed_values(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-1.0, 1.0) * 10f64.powi(rng.below(9) as i32 - 3)).collect()
}

fn inputs_for(func: &Func, rng: &mut Rng) -> Vec<Tensor> {
    func.param_types()
        .iter()
        .map(|ty| Tensor::from_f64(ty.dtype, ty.shape.dims(), &mixed_values(ty.shape.num_elements(), rng)))
        .collect()
}

/// `sum(x * y + 0.25, axes)` and, stored by the sum's loop, `x * y * 3`
/// (a sibling of the source's shape); with `sign`, `sign(x) * y` instead of
/// `x * y` (`sign` has no vector code, so the product gets a buffer and the
/// sum reads it); with `row`, `y` is a row broadcast over the leading dims:
/// where the run spans two dims (`[2, 3, 64, 65]` over the last two) its
/// leaves do not merge into one dim and the sum takes the scalar fallback.
fn sum_func(dtype: DType, dims: &[usize], axes: &[usize], sign: bool, row: bool) -> Func {
    let full = Type::new(dtype, dims);
    let y_ty = if row { Type::new(dtype, &dims[dims.len() - 1..]) } else { full.clone() };
    let mut b = Builder::new("blocked", &[full.clone(), y_ty]);
    let x = if sign { b.unary(Op::Sign, b.param(0)) } else { b.param(0) };
    let y = if row { b.broadcast(b.param(1), &full.shape, vec![dims.len() - 1]) } else { b.param(1) };
    let prod = b.mul(x, y);
    let quarter = b.full(0.25, &full);
    let shifted = b.add(prod, quarter);
    let sum = b.reduce_sum(shifted, axes.to_vec());
    let three = b.full(3.0, &full);
    let sibling = b.mul(prod, three);
    b.finish(vec![sum, sibling])
}

/// The sums of `func`'s first output in the interpreter's serial order
/// (each output's run added one element after the other), to show that
/// the inputs make the order visible.
fn serial_sums(func: &Func, inputs: &[Tensor], n: usize) -> Vec<f64> {
    let source =
        interp::run(&Func { outputs: vec![func.insts[func.outputs[0].index()].args[0]], ..func.clone() }, inputs);
    let values = source[0].to_f64_vec();
    let f32 = source[0].dtype() == DType::F32;
    values
        .chunks(n)
        .map(|run| if f32 { run.iter().fold(0f32, |a, &x| a + x as f32) as f64 } else { run.iter().sum() })
        .collect()
}

#[test]
fn blocked_sums_match_the_interpreter_bitwise() {
    let mut rng = Rng(0xB10C);
    // (dims, axes): one unit exactly; a scalar tail in the unit; several
    // units and a short last one; 8192-element units (over 1M elements)
    // with a last unit of 7; rows of a matrix; two reduced dims with a
    // size-1 dim between kept ones.
    let shapes: [(&[usize], &[usize]); 7] = [
        (&[4096], &[0]),
        (&[4103], &[0]),
        (&[3 * 4096 + 1000 + 5], &[0]),
        (&[(1 << 20) + 2 * 8192 + 7], &[0]),
        (&[3, 5000], &[1]),
        (&[2, 3, 64, 65], &[2, 3]),
        (&[5, 1, 4099], &[1, 2]),
    ];
    let (mut order_visible, mut outlined) = (0, 0);
    for dtype in [DType::F32, DType::F64] {
        for &(dims, axes) in &shapes {
            for (sign, row) in [(false, false), (true, false), (false, true)] {
                let label = format!("{dtype}{dims:?} axes {axes:?} sign {sign} row {row}");
                let func = sum_func(dtype, dims, axes, sign, row);
                let src_dims = func.ty(func.insts[func.outputs[0].index()].args[0]).shape.dims().to_vec();
                let n = sum_order::blocked_run(dtype, &src_dims, axes).expect("every case is blocked");
                let inputs = inputs_for(&func, &mut rng);
                let want = interp::run(&func, &inputs);
                let serial = serial_sums(&func, &inputs, n);
                if want[0].to_f64_vec() != serial {
                    order_visible += 1;
                }
                let options = Options { inline_math: false, ..Options::default() };
                outlined += machine_code(&func, &options).unwrap().iter().filter(|c| c.outlined).count();
                // Wide loops off: Cranelift's four vector accumulators.
                for (parallel_loops, wide_loops) in [(true, true), (false, true), (true, false), (false, false)] {
                    let mut compiled =
                        compile_with(&func, &Options { parallel_loops, wide_loops, ..options.clone() }).unwrap();
                    for threads in [1, 3] {
                        let got = with_threads(threads, || compiled.run(&inputs));
                        let label = format!("{label}, parallel {parallel_loops}, wide {wide_loops}, {threads} threads");
                        assert_outputs_equal(&label, &func, &inputs, &want, &got);
                    }
                }
            }
        }
    }
    assert!(order_visible >= 30, "the serial order gave the same sums in {} of 42 cases", 42 - order_visible);
    assert!(outlined >= 4, "only {outlined} blocked sums ran on threads");
}

/// W4's shape: `u = x * w + b`, `t = tanh(0.8 u)` (an f32 wide root, run
/// chunk by chunk inside the sum's loop), `loss = sum((0.5 u (1 + t))^2)`,
/// and the gradient-like `g (1 - t^2)` stored by the same loop. The tanh
/// values come from the 512-bit routine, so the interpreter gets them as
/// an input (computed by a compiled program that outputs only `t`, the
/// same routine): the rest must then match bitwise.
#[test]
fn a_tiled_blocked_sum_matches_the_interpreter_on_the_same_tanh() {
    let mut rng = Rng(0x7A11);
    for n in [40 * 4096 + 100, (1 << 20) + 3 * 1024 + 5] {
        let ty = Type::new(DType::F32, &[n]);
        let affine = |b: &mut Builder| {
            let xw = b.mul(b.param(0), b.param(1));
            b.add(xw, b.param(2))
        };
        // The whole step, as compiled.
        let mut b = Builder::new("w4", &[ty.clone(), ty.clone(), ty.clone()]);
        let u = affine(&mut b);
        let scale = b.full(0.8, &ty);
        let arg = b.mul(u, scale);
        let t = b.unary(Op::Tanh, arg);
        let (loss, grad) = w4_outputs(&mut b, &ty, u, t);
        let whole = b.finish(vec![loss, grad]);
        // The tanh alone, and the rest with the tanh as a fourth input.
        let mut b = Builder::new("tanh", &[ty.clone(), ty.clone(), ty.clone()]);
        let u = affine(&mut b);
        let scale = b.full(0.8, &ty);
        let arg = b.mul(u, scale);
        let t = b.unary(Op::Tanh, arg);
        let tanh_only = b.finish(vec![t]);
        let mut b = Builder::new("rest", &[ty.clone(), ty.clone(), ty.clone(), ty.clone()]);
        let u = affine(&mut b);
        let t = b.param(3);
        let (loss, grad) = w4_outputs(&mut b, &ty, u, t);
        let rest = b.finish(vec![loss, grad]);

        let inputs: Vec<Tensor> = (0..3)
            .map(|_| {
                let values: Vec<f64> = (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect();
                Tensor::from_f64(DType::F32, &[n], &values)
            })
            .collect();
        let options = Options::default();
        let listing = crate::codegen::cpu::schedule_listing(&whole, &options).unwrap();
        if crate::codegen::cpu::vmath_x16::available() {
            assert!(listing.contains("tiled into"), "n = {n}: the tanh is not tiled:\n{listing}");
        }
        let t = compile_with(&tanh_only, &options).unwrap().run(&inputs).remove(0);
        let mut rest_inputs = inputs.clone();
        rest_inputs.push(t);
        let want = interp::run(&rest, &rest_inputs);
        // Wide loops on: one kernel computes the tanh in registers and the
        // sum (`wide_tree::tiled_program`); off: the tanh's row code and
        // 512-bit routine per chunk, then the sum's 4-lane loop.
        for (parallel_loops, wide_loops) in [(true, true), (false, true), (true, false)] {
            let options = Options { parallel_loops, wide_loops, ..options.clone() };
            let mut compiled = compile_with(&whole, &options).unwrap();
            for threads in [1, 3] {
                let got = with_threads(threads, || compiled.run(&inputs));
                for (j, (a, b)) in want.iter().zip(&got).enumerate() {
                    let (a, b) = (canonical_bits(a), canonical_bits(b));
                    let first = a.iter().zip(&b).position(|(x, y)| x != y);
                    let label = format!("n = {n}, parallel {parallel_loops}, wide {wide_loops}, {threads} threads");
                    assert_eq!(first, None, "{label}: output {j}");
                }
            }
        }
    }
}

/// `loss = sum((0.5 u (1 + t))^2)` and `g (1 - t^2)` with `g = 0.5 u (1 + t)`.
fn w4_outputs(b: &mut Builder, ty: &Type, u: ValueId, t: ValueId) -> (ValueId, ValueId) {
    let half = b.full(0.5, ty);
    let one = b.full(1.0, ty);
    let hu = b.mul(half, u);
    let one_t = b.add(one, t);
    let g = b.mul(hu, one_t);
    let g2 = b.mul(g, g);
    let loss = b.reduce_sum(g2, vec![0]);
    let tt = b.mul(t, t);
    let one_tt = b.sub(one, tt);
    let grad = b.mul(g, one_tt);
    (loss, grad)
}
