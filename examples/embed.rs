//! Embedding compiled functions in a Rust program: compile
//! `examples/embed_model.jl`, then fit sin(3x) on [-1, 1] with plain
//! gradient descent driven from Rust, calling the compiled loss and its
//! gradient (one executable each, compiled on first call).
//!
//! Run: `cargo run --example embed` (prints the loss falling from about 2
//! to below 0.01, then a few predictions next to their targets).

use jaxlightning::compiler::ir::Tensor;
use jaxlightning::embed::{EmbedError, Module};
use jaxlightning::runtime::Backend;

fn main() -> Result<(), EmbedError> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/embed_model.jl");
    let module = Module::from_file(path)?;
    let mut value_and_grad = module.function("loss")?.grad(&["w1", "b1", "w2"])?.jit(Backend::Cpu);
    let mut predict = module.function("predict")?.jit(Backend::Cpu);

    let (n, h) = (64, 16);
    let xs: Vec<f32> = (0..n).map(|i| -1.0 + 2.0 * i as f32 / (n - 1) as f32).collect();
    let ys: Vec<f32> = xs.iter().map(|x| (3.0 * x).sin()).collect();
    let (x, y) = (Tensor::f32(&[n, 1], xs.clone()), Tensor::f32(&[n, 1], ys.clone()));
    // Deterministic small initial weights (a fixed pattern, no RNG crate needed).
    let pattern =
        |k: usize, scale: f32| -> Vec<f32> { (0..k).map(|i| scale * ((i * 7 % 11) as f32 / 5.0 - 1.0)).collect() };
    let mut params = vec![
        Tensor::f32(&[1, h], pattern(h, 2.0)),
        Tensor::f32(&[h], pattern(h, 1.0)),
        Tensor::f32(&[h, 1], pattern(h, 0.3)),
    ];
    let lr = 0.05;
    for step in 0..=3000 {
        let mut inputs = params.clone();
        inputs.push(x.clone());
        inputs.push(y.clone());
        let out = value_and_grad.call(&inputs)?;
        if step % 500 == 0 {
            println!("step {step:>4}: loss {:.5}", out[0].scalar_value());
        }
        // out = [loss, dloss/dw1, dloss/db1, dloss/dw2]
        for (p, g) in params.iter_mut().zip(&out[1..]) {
            let updated: Vec<f32> =
                p.to_f64_vec().iter().zip(g.to_f64_vec()).map(|(p, g)| (p - lr * g) as f32).collect();
            *p = Tensor::f32(&p.ty().shape.0, updated);
        }
    }
    let mut inputs = params;
    inputs.push(x);
    let pred = predict.call(&inputs)?;
    for i in (0..n).step_by(16) {
        println!("x = {:+.3}: predicted {:+.4}, sin(3x) = {:+.4}", xs[i], pred[0].as_f32().unwrap()[i], ys[i]);
    }
    Ok(())
}
