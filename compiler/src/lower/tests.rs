//! Lowering tests for the elementwise and indexing builtins: each lowers to
//! its IR op and computes what the interpreter's scalar definition says.

use crate::ir::{interp, Op};

/// Lowers `main` in `src` (unoptimized) and runs it; returns the printed tensors.
fn run_main(src: &str) -> (crate::ir::Func, Vec<crate::ir::Tensor>) {
    let (prog, diags) = super::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let script = crate::compile_script(&prog, &crate::Options { no_opt: true, ..Default::default() })
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out = interp::run(&script.func, &[]);
    (script.func, out)
}

#[test]
fn elementwise_builtins_lower_to_their_ops() {
    let (func, out) = run_main(
        "use nn.sigmoid
fn main() {
    let x = linspace(-2.0, 2.0, 5)
    print(sigmoid(x), abs(x), sign(x), erf(x), log1p(abs(x)), expm1(x), sin(x), cos(x), rsqrt(abs(x) + 1.0), stop_gradient(x))
}
",
    );
    for op in
        [Op::Logistic, Op::Abs, Op::Sign, Op::Erf, Op::Log1p, Op::Expm1, Op::Sin, Op::Cos, Op::Rsqrt, Op::StopGradient]
    {
        assert!(func.insts.iter().any(|i| i.op == op), "no {op:?} in\n{}", crate::ir::text::print(&func));
    }
    let x = [-2.0f32, -1.0, 0.0, 1.0, 2.0];
    let want: [fn(f32) -> f32; 10] = [
        interp::logistic::<f32>,
        f32::abs,
        interp::sign::<f32>,
        <f32 as interp::Erf>::erf,
        |v| v.abs().ln_1p(),
        f32::exp_m1,
        f32::sin,
        f32::cos,
        |v| 1.0 / (v.abs() + 1.0).sqrt(),
        |v| v,
    ];
    for (k, f) in want.iter().enumerate() {
        let expect: Vec<f32> = x.iter().map(|&v| f(v)).collect();
        assert_eq!(out[k].as_f32().unwrap(), &expect[..], "output {k}");
    }
}

#[test]
fn argmax_and_stop_gradient_in_programs() {
    let (_, out) = run_main(
        "fn f(w: f32[3]) -> f32 {
    sum(w * stop_gradient(w))
}
fn main() {
    let m = float(one_hot([2, 0], 3)) * 2.0 - 1.0
    print(argmax(m), argmax(m, axis = 0), grad(f)(linspace(1.0, 3.0, 3)))
}
",
    );
    assert_eq!(out[0], crate::ir::Tensor::i32(&[2], vec![2, 0]));
    assert_eq!(out[1], crate::ir::Tensor::i32(&[3], vec![1, 0, 0]));
    // d/dw sum(w * stop_gradient(w)) = stop_gradient(w) = w.
    assert_eq!(out[2], crate::ir::Tensor::f32(&[3], vec![1.0, 2.0, 3.0]));
}

#[test]
fn cnn_model_trains_and_jit_agrees_with_interp() {
    // conv -> relu -> max pool -> avg pool -> global sum -> linear: build mode
    // of the CNN builtins, their gradients inside a training step, the
    // optimizer and the CPU JIT on one program.
    use crate::ir::{DType, Tensor, Type};
    let src = "use nn.relu
use losses.cross_entropy
use optim.sgd

model Cnn {
    k: f32[4, 1, 3, 3] = uniform(-0.5, 0.5)
    g: f32[4, 2, 2, 2] = uniform(-0.5, 0.5)
    w: f32[4, 3] = uniform(-0.5, 0.5)

    fn training_step(self, x: f32[B, 1, 6, 6], y: i32[B]) -> f32 {
        let h = max_pool2d(relu(conv2d(x, self.k, padding = 1)), 2)
        let h = avg_pool2d(conv2d(h, self.g, stride = (1, 1), padding = (1, 0), dilation = 1, groups = 2), 2, stride = 1)
        cross_entropy(sum(h, axis = (2, 3)) @ self.w, y)
    }

    fn configure_optimizers(self) = sgd(lr = 0.1)
}
";
    let (prog, diags) = super::load("cnn.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let (x_ty, y_ty) = (Type::new(DType::F32, &[4, 1, 6, 6]), Type::new(DType::I32, &[4]));
    let opts = crate::Options { no_opt: true, ..Default::default() };
    let progs = crate::compile_training(&prog, None, &x_ty, &y_ty, &opts).unwrap_or_else(|d| panic!("{d:?}"));
    let step = &progs.train_step;
    let mut inputs: Vec<Tensor> = Vec::new();
    for (i, p) in progs.params.iter().enumerate() {
        let n = p.ty.shape.num_elements();
        let values: Vec<f64> = (0..n).map(|j| (((i * 31 + j * 17) % 23) as f64 - 11.0) / 20.0).collect();
        inputs.push(Tensor::from_f64(DType::F32, p.ty.shape.dims(), &values));
    }
    assert_eq!(progs.n_states(), 0);
    inputs.push(Tensor::scalar_f32(1.0));
    inputs.push(Tensor::f32(&[4, 1, 6, 6], (0..144).map(|i| ((i * 37 % 19) as f32) / 9.0 - 1.0).collect()));
    inputs.push(Tensor::i32(&[4], vec![0, 1, 2, 1]));
    let n_params = progs.params.len();
    let loss_at = |inputs: &[Tensor]| interp::run(step, inputs)[n_params].scalar_value();
    let want = interp::run(step, &inputs);
    let got = crate::codegen::cpu::compile(step).unwrap().run(&inputs);
    for (w, g) in want.iter().zip(&got) {
        for (a, b) in w.to_f64_vec().iter().zip(g.to_f64_vec()) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + a.abs()), "jit {b} vs interp {a}");
        }
    }
    // A few SGD steps lower the loss.
    let first = loss_at(&inputs);
    for _ in 0..5 {
        let out = interp::run(step, &inputs);
        inputs[..n_params].clone_from_slice(&out[..n_params]);
    }
    let last = loss_at(&inputs);
    assert!(last < first, "loss {first} -> {last}");
}

/// `float[...]` binds one float dtype per call: the stdlib's cross-entropy
/// takes f64 logits and returns an f64 loss whose value and gradient are
/// the textbook formulas (mean of logsumexp - the label's logit; softmax -
/// one-hot, over the batch) to 1e-12, and the same source at f32 gives an
/// f32 loss.
#[test]
fn cross_entropy_is_generic_over_the_float_dtype() {
    use crate::ir::{DType, Tensor, Type};
    let src = "
use losses.cross_entropy
use metrics.accuracy
fn ce(logits: float[B, C], labels: i32[B]) -> float = cross_entropy(logits, labels)
fn acc(logits: f64[B, C], labels: i32[B]) -> f32 = accuracy(logits, labels)
";
    let (prog, diags) = crate::lower::load("t.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let (b, c) = (3, 4);
    let logits: Vec<f64> = (0..b * c).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
    let labels = vec![2, 0, 3];
    let inputs = |dtype| vec![Tensor::from_f64(dtype, &[b, c], &logits), Tensor::i32(&[b], labels.clone())];
    let types = |dtype| vec![Type::new(dtype, &[b, c]), Type::new(DType::I32, &[b])];
    let grad = crate::compile_function(&prog, "ce", &types(DType::F64), Some(&[0]), &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out = interp::run(&grad, &inputs(DType::F64));
    let (mut loss, mut want_grad) = (0.0, vec![0.0; b * c]);
    for (r, &label) in labels.iter().enumerate() {
        let row = &logits[r * c..(r + 1) * c];
        let top = row.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = row.iter().map(|v| (v - top).exp()).sum();
        loss += (top + z.ln() - row[label as usize]) / b as f64;
        for j in 0..c {
            let onehot = if j == label as usize { 1.0 } else { 0.0 };
            want_grad[r * c + j] = ((row[j] - top).exp() / z - onehot) / b as f64;
        }
    }
    assert!(out.iter().all(|t| t.dtype() == DType::F64), "f64 in, f64 out");
    assert!((out[0].scalar_value() - loss).abs() <= 1e-12 * loss.abs(), "{} vs {loss}", out[0].scalar_value());
    for (g, w) in out[1].to_f64_vec().iter().zip(&want_grad) {
        assert!((g - w).abs() <= 1e-12, "gradient {g} vs {w}");
    }
    let f32_loss = crate::compile_function(&prog, "ce", &types(DType::F32), None, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let out32 = interp::run(&f32_loss, &inputs(DType::F32));
    assert_eq!(out32[0].dtype(), DType::F32);
    assert!((out32[0].scalar_value() - loss).abs() <= 1e-5 * loss.abs());
    // Accuracy over f64 logits: rows 0 and 2 have their label's logit largest?
    let acc = crate::compile_function(&prog, "acc", &types(DType::F64), None, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let hits = (0..b)
        .filter(|&r| {
            let row = &logits[r * c..(r + 1) * c];
            row.iter().all(|&v| v <= row[labels[r] as usize])
        })
        .count();
    let got = interp::run(&acc, &inputs(DType::F64))[0].scalar_value();
    assert!((got - hits as f64 / b as f64).abs() < 1e-7, "accuracy {got}, {hits} hits of {b}");
}
