//! Step methods without targets, `fn training_step(self, x)` (an
//! autoencoder): the compiled steps are the ones of the same method with an
//! unused `y`, bit for bit, and a whole run trains and validates.

use crate::checkpoints::{bits, fit};
use crate::examples::tempdir;
use compiler::ir::{interp, DType, Tensor, Type};

const MODEL: &str = r#"
use nn.{Linear, relu}
use losses.mse
use optim.adam
model AutoEncoder {
    enc: Linear(4, 2)
    dec: Linear(2, 4)
    fn reconstruct(self, x: f32[B, 4]) -> f32[B, 4] = self.dec(relu(self.enc(x)))
    fn training_step(self, x: f32[B, 4]) -> f32 = mse(self.reconstruct(x), x)
    fn validation_step(self, x: f32[B, 4]) {
        log("val_mse", mse(self.reconstruct(x), x))
    }
    fn configure_optimizers(self) = adam(lr = 0.05)
}
data = csv("rows.csv") { batch_size = 4; val_split = 4 }
trainer { max_epochs = 4; seed = 3 }
"#;

/// The same model, its steps taking the targets and ignoring them.
fn with_targets() -> String {
    MODEL
        .replace("training_step(self, x: f32[B, 4])", "training_step(self, x: f32[B, 4], y: i32[B])")
        .replace("validation_step(self, x: f32[B, 4])", "validation_step(self, x: f32[B, 4], y: i32[B])")
}

fn programs(src: &str) -> compiler::lower::TrainPrograms {
    let (prog, diags) = compiler::lower::load("ae.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).unwrap();
    let (x_ty, y_ty) = (Type::new(DType::F32, &[4, 4]), Type::new(DType::I32, &[4]));
    compiler::compile_training(&prog, sections.trainer.as_ref(), &x_ty, &y_ty, &Default::default())
        .unwrap_or_else(|d| panic!("{d:?}"))
}

#[test]
fn a_step_without_targets_compiles_to_the_step_that_ignores_them() {
    assert_ne!(with_targets(), MODEL);
    let (free, given) = (programs(MODEL), programs(&with_targets()));
    let params = trainer::fit::init_params(&free.params, 3);
    let x = Tensor::f32(&[4, 4], (0..16).map(|i| (i % 5) as f32 / 4.0 - 0.5).collect());
    let y = Tensor::i32(&[4], vec![0; 4]);
    let mut inputs = params.clone();
    inputs.extend(free.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)));
    inputs.extend([Tensor::scalar_f32(1.0), x.clone(), y.clone()]);
    let (a, b) = (interp::run(&free.train_step, &inputs), interp::run(&given.train_step, &inputs));
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(bits(a), bits(b), "the training steps differ");
    }
    let mut inputs = params;
    inputs.extend([x, y]);
    let (a, b) =
        (interp::run(free.val_step.as_ref().unwrap(), &inputs), interp::run(given.val_step.as_ref().unwrap(), &inputs));
    assert_eq!(bits(&a[0]), bits(&b[0]), "the validation steps differ");
}

#[test]
fn an_autoencoder_trains_without_declaring_targets() {
    let dir = tempdir("target-free");
    // Rows on a 2-dimensional subspace: (a, b, a + b, a - b), label 0.
    let rows: String = (0..24)
        .map(|i| {
            let (a, b) = ((i % 5) as f64 / 4.0, (i % 3) as f64 / 2.0);
            format!("{a},{b},{},{},0\n", a + b, a - b)
        })
        .collect();
    std::fs::write(dir.join("rows.csv"), rows).unwrap();
    let path = dir.join("ae.jl");
    std::fs::write(&path, MODEL).unwrap();
    let run = fit(&path, MODEL, &tempdir("target-free-logs"), &[], None);
    assert_eq!(run.steps, 20);
    let first = fit(&path, MODEL, &tempdir("target-free-one"), &["trainer.max_epochs=1".to_string()], None);
    let metric = |s: &trainer::FitSummary, name: &str| s.final_metrics.iter().find(|(n, _)| n == name).unwrap().1;
    let (loss, loss1) = (metric(&run, "train_loss_epoch"), metric(&first, "train_loss_epoch"));
    assert!(loss < 0.5 * loss1, "train_loss_epoch {loss} after 4 epochs, {loss1} after 1");
    assert!(metric(&run, "val_mse").is_finite());
}
