//! Large fused loops outlined onto the host kernels' threads
//! (`cpu/emit/parallel.rs`): bitwise the same results as the inline loops
//! (`Options::parallel_loops` off), with one thread and with three, on
//! every way a loop is split (outer dim, one flat dim with and without a
//! tail, wide transcendental rows, hosted values stored by the loop), and
//! bitwise the interpreter with libm transcendentals.

use super::with_threads;
use super::{assert_outputs_equal, canonical_bits, window, Rng};
use crate::codegen::cpu::{compile_with, machine_code, Options};
use crate::ir::{interp, Builder, DType, Func, Op, Tensor, Type};

/// A chain of elementwise ops over `dims` mixing in a row (last dim), a
/// column (first dim) and constants, with inline transcendentals, compares
/// and selects; one intermediate value is also an output (a loop's guest).
fn chain(rng: &mut Rng, dtype: DType, dims: &[usize]) -> Func {
    let full = Type::new(dtype, dims);
    let rank = dims.len();
    let row = Type::new(dtype, &dims[rank - 1..]);
    let mut col_dims = vec![1; rank];
    col_dims[0] = dims[0];
    let col = Type::new(dtype, &col_dims);
    let mut b = Builder::new("chain", &[full.clone(), row.clone(), col.clone()]);
    let mut x = b.param(0);
    let mut kept = None;
    for step in 0..10 {
        let y = match rng.below(4) {
            0 => b.broadcast(b.param(1), &full.shape, vec![rank - 1]),
            1 => b.broadcast(b.param(2), &full.shape, (0..rank).collect()),
            2 => b.full(rng.uniform(-2.0, 2.0), &full),
            _ => b.param(0),
        };
        let ops = [Op::Add, Op::Sub, Op::Mul, Op::Max, Op::Min];
        x = b.binary(ops[rng.below(ops.len())].clone(), x, y);
        match rng.below(5) {
            0 => x = b.unary(Op::Tanh, x),
            1 => x = b.unary(Op::Logistic, x),
            2 => {
                let zero = b.full(0.0, &full);
                let c = b.binary(Op::Gt, x, zero);
                x = b.select(c, x, y);
            }
            _ => {}
        }
        if step == 4 {
            kept = Some(x);
        }
    }
    let last = b.unary(Op::Exp, x);
    b.finish(vec![last, kept.expect("set at step 4")])
}

fn inputs_for(func: &Func, rng: &mut Rng) -> Vec<Tensor> {
    func.param_types()
        .iter()
        .map(|ty| {
            let values: Vec<f64> = (0..ty.shape.num_elements()).map(|_| rng.uniform(-3.0, 3.0)).collect();
            Tensor::from_f64(ty.dtype, ty.shape.dims(), &values)
        })
        .collect()
}

#[test]
fn outlined_loops_match_inline_loops_and_the_interpreter_bitwise() {
    let mut rng = Rng(0x9A7A);
    // Outer splits (3, 2 and 129 units), flat splits with a tail (scalar
    // too: 993 elements) and without, f32 rows wide enough for the 512-bit
    // routines, and f64.
    let cases: [(DType, &[usize]); 6] = [
        (DType::F32, &[300_001]),
        (DType::F32, &[3, 70_001]),
        (DType::F32, &[129, 7, 73]),
        (DType::F64, &[2, 65_536]),
        (DType::F64, &[65_541]),
        (DType::F32, &[8 * 4096]),
    ];
    let mut outlined = 0;
    for (k, &(dtype, dims)) in cases.iter().enumerate() {
        let func = chain(&mut rng, dtype, dims);
        let inputs = inputs_for(&func, &mut rng);
        outlined += assert_outlining_is_invisible(&format!("case {k} {dtype}{dims:?}"), &func, &inputs);
    }
    assert!(outlined >= cases.len() * 2, "only {outlined} loops were outlined");
}

/// `func` compiled with and without outlined loops, run with one and
/// three host threads: bitwise the same outputs; with libm transcendentals
/// also bitwise the interpreter's. Returns how many loops were outlined.
fn assert_outlining_is_invisible(label: &str, func: &Func, inputs: &[Tensor]) -> usize {
    let mut outlined = 0;
    for inline_math in [true, false] {
        let label = format!("{label}, inline_math {inline_math}");
        let options = Options { inline_math, ..Options::default() };
        outlined += machine_code(func, &options).unwrap().iter().filter(|c| c.outlined).count();
        let mut parallel = compile_with(func, &options).unwrap();
        let inline = compile_with(func, &Options { parallel_loops: false, ..options.clone() }).unwrap().run(inputs);
        for threads in [1, 3] {
            let got = with_threads(threads, || parallel.run(inputs));
            for (j, (a, b)) in inline.iter().zip(&got).enumerate() {
                let (a, b) = (canonical_bits(a), canonical_bits(b));
                let first = a.iter().zip(&b).position(|(x, y)| x != y);
                assert_eq!(first, None, "{label}, {threads} threads: output {j} differs from the inline loop");
            }
        }
        if !inline_math {
            assert_outputs_equal(&label, func, inputs, &interp::run(func, inputs), &inline);
        }
    }
    outlined
}

/// Reductions split by rows: sums, maxima and minima over the last axis
/// (a layer norm's or softmax's rows, reduced four at a time when the tree
/// is cheap), over a middle axis, of a fused operand that also stores a
/// sibling of the source's shape (a loss and its gradient), in f32 and f64.
#[test]
fn outlined_reductions_match_inline_ones_and_the_interpreter_bitwise() {
    let mut rng = Rng(0x5EED);
    let cases: [(DType, &[usize], usize); 7] = [
        (DType::F32, &[4096, 128], 1),
        // 7 rows (prime): one row a unit.
        (DType::F32, &[7, 12_000], 1),
        (DType::F32, &[96, 33, 65], 1),
        (DType::F64, &[2, 40_000], 1),
        (DType::F32, &[512, 4, 64], 2),
        (DType::F32, &[1031, 67], 1),
        (DType::F64, &[300, 300], 1),
    ];
    let mut outlined = 0;
    for (k, &(dtype, dims, axis)) in cases.iter().enumerate() {
        let full = Type::new(dtype, dims);
        let mut b = Builder::new("reduce", &[full.clone(), full.clone()]);
        let prod = b.mul(b.param(0), b.param(1));
        let t = b.unary(Op::Tanh, prod);
        let sum = b.reduce_sum(t, vec![axis]);
        let max = b.reduce_max(prod, vec![axis]);
        let min = b.push(Op::ReduceMin { axes: vec![axis] }, vec![b.param(0)], b.ty(max).clone());
        let two = b.full(2.0, &full);
        let grad = b.mul(t, two);
        let func = b.finish(vec![sum, max, min, grad]);
        let inputs = inputs_for(&func, &mut rng);
        let here =
            assert_outlining_is_invisible(&format!("reduction case {k} {dtype}{dims:?} axis {axis}"), &func, &inputs);
        // The 7-row sums, maxima and minima split, with and without inline math.
        assert!(k != 1 || here >= 6, "7 rows: {here} loops outlined");
        outlined += here;
    }
    assert!(outlined >= 12, "only {outlined} loops were outlined");
}

/// Reductions whose leading dims are reduced (a conv's or a dense layer's
/// bias gradient: the batch, and the pixels after the channels) split by
/// their first kept dim, each output still summed in its order: bitwise
/// the inline loops and the interpreter, with an inner run, with the
/// innermost dim kept (outputs as vectors), in f32 and f64.
#[test]
fn bias_gradient_sums_split_by_their_kept_dim_bitwise() {
    let mut rng = Rng(0xB1A5);
    let cases: [(DType, &[usize], &[usize]); 4] = [
        (DType::F32, &[64, 24, 8, 8], &[0, 2, 3]),
        (DType::F32, &[512, 160], &[0]),
        (DType::F64, &[3, 40, 700], &[0, 2]),
        (DType::F32, &[2, 3, 50, 240], &[0, 1]),
    ];
    let mut outlined = 0;
    for (k, &(dtype, dims, axes)) in cases.iter().enumerate() {
        let full = Type::new(dtype, dims);
        let mut b = Builder::new("bias_grad", &[full.clone(), full.clone()]);
        let prod = b.mul(b.param(0), b.param(1));
        let zero = b.full(0.0, &full);
        let positive = b.binary(Op::Gt, b.param(0), zero);
        let masked = b.select(positive, prod, zero);
        let sum = b.reduce_sum(masked, axes.to_vec());
        let func = b.finish(vec![sum]);
        let inputs = inputs_for(&func, &mut rng);
        outlined +=
            assert_outlining_is_invisible(&format!("bias case {k} {dtype}{dims:?} axes {axes:?}"), &func, &inputs);
    }
    assert!(outlined >= 8, "only {outlined} reductions were outlined");
}

/// Small loops stay inline: outlining costs a thread dispatch per run.
#[test]
fn small_loops_are_not_outlined() {
    let func = chain(&mut Rng(3), DType::F32, &[64, 128]);
    assert!(machine_code(&func, &Options::default()).unwrap().iter().all(|c| !c.outlined));
}

/// Pooling (window sums and maxima) and max pooling's backward run by
/// blocks of images on threads when their windows never cross the leading
/// dim: bitwise the interpreter with one thread and with three, ties and
/// specials included; windows that cross it (size 2 on dim 0) stay whole.
#[test]
fn pooling_by_blocks_of_images_matches_the_interpreter_bitwise() {
    let specs: Vec<(&[usize], crate::ir::Window)> = vec![
        (&[41, 40, 26, 26], window(vec![1, 1, 2, 2], vec![1, 1, 2, 2], vec![0; 4], vec![0; 4])),
        (&[64, 24, 31, 33], window(vec![1, 1, 3, 3], vec![1, 1, 2, 2], vec![0, 0, 1, 1], vec![0, 0, 1, 1])),
        (&[20, 64, 40], window(vec![2, 1, 2], vec![1, 1, 2], vec![0; 3], vec![0; 3])),
    ];
    let mut rng = Rng(0xB10C);
    for dtype in [DType::F32, DType::F64] {
        for (dims, w) in &specs {
            let ty = Type::new(dtype, dims);
            let ct_ty = Type::new(dtype, &crate::ir::window::reduce_window_dims(&ty, w).unwrap());
            let mut b = Builder::new("pool", &[ty.clone(), ct_ty.clone()]);
            let sum = b.reduce_window(b.param(0), w.clone(), false);
            let max = b.reduce_window(b.param(0), w.clone(), true);
            let scattered = b.select_and_scatter(b.param(0), b.param(1), w.clone());
            let func = b.finish(vec![sum, max, scattered]);
            let n = ty.shape.num_elements();
            // Ties (repeated values) for the first-maximum rule, and specials.
            let x: Vec<f64> = (0..n)
                .map(|i| match i % 97 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -0.0,
                    _ => ((i * 7) % 5) as f64 + rng.below(2) as f64,
                })
                .collect();
            let inputs = [Tensor::from_f64(dtype, dims, &x), inputs_for(&func, &mut rng).swap_remove(1)];
            let want = interp::run(&func, &inputs);
            let mut cpu = crate::codegen::cpu::compile(&func).unwrap();
            for threads in [1, 3] {
                let got = with_threads(threads, || cpu.run(&inputs));
                assert_outputs_equal(&format!("{dtype} {dims:?} {threads} threads"), &func, &inputs, &want, &got);
            }
        }
    }
}

/// A full maximum or minimum (one output) runs in parts on threads, each
/// into a partial result, combined in order: bitwise the single loop and
/// the interpreter (a maximum has no order), with NaN, infinities and
/// signed zeros, with a tail after the last unit (shorter than a vector
/// too), and with values the loop stores besides (an update hosted by it,
/// as the optimizer's update is by the trainer's largest-|g| check).
#[test]
fn full_maxima_and_minima_on_threads_match_the_interpreter_bitwise() {
    let mut rng = Rng(0xF011);
    let sizes: [(DType, &[usize]); 5] = [
        (DType::F32, &[784, 256]),
        (DType::F32, &[300_001]),
        (DType::F64, &[70_002]),
        (DType::F32, &[3, 65_537]),
        (DType::F32, &[8 * 4096]),
    ];
    let mut outlined = 0;
    for (k, &(dtype, dims)) in sizes.iter().enumerate() {
        let full = Type::new(dtype, dims);
        let all: Vec<usize> = (0..dims.len()).collect();
        let mut b = Builder::new("full", &[full.clone(), full.clone()]);
        let g = b.mul(b.param(0), b.param(1));
        let a = b.unary(Op::Abs, g);
        let max = b.reduce_max(a, all.clone());
        let min = b.push(Op::ReduceMin { axes: all.clone() }, vec![g], Type::scalar(dtype));
        let three = b.full(3.0, &full);
        let update = b.sub(b.param(0), three);
        let update = b.mul(update, g);
        let func = b.finish(vec![max, min, update]);
        for specials in [false, true] {
            let mut inputs = inputs_for(&func, &mut rng);
            if specials {
                let n = full.shape.num_elements();
                let mut x = inputs[0].to_f64_vec();
                for (i, v) in [(n / 3, -0.0), (n / 2, f64::INFINITY), (n - 1, f64::NAN)] {
                    x[i] = v;
                }
                inputs[0] = Tensor::from_f64(dtype, dims, &x);
            }
            outlined += assert_outlining_is_invisible(
                &format!("full case {k} {dtype}{dims:?} specials {specials}"),
                &func,
                &inputs,
            );
        }
    }
    assert!(outlined >= 12, "only {outlined} loops were outlined");
}
