//! Declared step inputs (resolved with the trained model's config) and the
//! `predict_step` program (checked against the interpreter on a hand
//! computation).

use super::declared_step_inputs;
use crate::check::{Dim, Ty};
use crate::ir::{interp, DType, Tensor, Type};
use crate::lower::{load, lower_predict, training_sections};

const MODEL: &str = r#"
use losses.mse
use optim.sgd
model Lin(d: int = 4) {
    w: f32[d, 2]
    fn training_step(self, x: f32[B, d], y) -> f32 = mse(x @ self.w, y)
    fn predict_step(self, x: f32[B, d]) -> f32[B, 2] = x @ self.w + 1.0
    fn configure_optimizers(self) = sgd()
}
"#;

fn prog(extra: &str) -> crate::lower::Program {
    let (prog, diags) = load("t.jl", &format!("{MODEL}{extra}"));
    assert!(diags.is_empty(), "{diags:?}");
    prog
}

#[test]
fn declared_types_use_the_trained_models_config() {
    let p = prog("");
    let inputs = declared_step_inputs(&p, None, "training_step").unwrap().unwrap();
    let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
    assert_eq!(inputs[0].ty, Some(Ty { dtype: DType::F32, dims: vec![Dim::Sym("B".into()), Dim::Known(4)] }));
    assert_eq!(inputs[1].ty, None, "y has no annotation");
    // `model = Lin(d = 7)` in the trainer section changes the declared dim.
    let p = prog("trainer { model = Lin(d = 7) }");
    let trainer = training_sections(&p).unwrap().trainer;
    let inputs = declared_step_inputs(&p, trainer.as_ref(), "training_step").unwrap().unwrap();
    assert_eq!(inputs[0].ty.as_ref().unwrap().dims[1], Dim::Known(7));
    assert_eq!(declared_step_inputs(&p, trainer.as_ref(), "validation_step").unwrap(), None);
}

#[test]
fn predict_program_takes_params_and_x_and_returns_the_prediction() {
    let p = prog("");
    let pp = lower_predict(&p, None, &Type::new(DType::F32, &[3, 4])).unwrap().expect("a predict_step");
    assert_eq!(pp.params.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), ["w"]);
    assert_eq!(pp.func.outputs.len(), 1, "no parameter outputs");
    let w: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
    let x: Vec<f32> = (0..12).map(|i| i as f32 * 0.25).collect();
    let out = interp::run(&pp.func, &[Tensor::f32(&[4, 2], w.clone()), Tensor::f32(&[3, 4], x.clone())]);
    let want: Vec<f64> = (0..3)
        .flat_map(|r| {
            let (x, w) = (&x, &w);
            (0..2).map(move |c| 1.0 + (0..4).map(|k| x[r * 4 + k] as f64 * w[k * 2 + c] as f64).sum::<f64>())
        })
        .collect();
    assert_eq!(out[0].shape.dims(), [3, 2]);
    for (g, w) in out[0].to_f64_vec().iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn predict_step_must_take_x_and_return_a_batch() {
    let bad = |method: &str| {
        let src = MODEL.replace("fn predict_step(self, x: f32[B, d]) -> f32[B, 2] = x @ self.w + 1.0", method);
        let (p, diags) = load("t.jl", &src);
        assert!(diags.is_empty(), "{diags:?}");
        let e = lower_predict(&p, None, &Type::new(DType::F32, &[3, 4])).expect_err("an error");
        e[0].message.clone()
    };
    assert_eq!(
        bad("fn predict_step(self, x, y) = x"),
        "`predict_step` must take (self, x) or (self, x, key): the batch's inputs, without labels"
    );
    assert_eq!(
        bad("fn predict_step(self, x) = sum(x)"),
        "`predict_step` must return a tensor, or a tuple of tensors, whose first dimension is the batch (3), not a tensor of type f32"
    );
    // A tuple with one element that is not batched is refused as a whole.
    assert_eq!(
        bad("fn predict_step(self, x) = (x, sum(x))"),
        "`predict_step` must return a tensor, or a tuple of tensors, whose first dimension is the batch (3), not a tuple of 2 values"
    );
}
