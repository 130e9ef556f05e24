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

/// Data without targets, `npz(..., y = false)`, `npy(..., y = false)` and
/// `csv(..., y = false)`:
/// an autoencoder trains on it exactly as on the same inputs with labels it
/// ignores; a step that takes `y` is refused, naming it.
#[test]
fn data_without_targets_trains_target_free_steps_and_refuses_the_others() {
    use trainer::data::{npy, npz, Values};
    let dir = tempdir("no-targets");
    let x: Vec<f32> = (0..96).map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.5).collect();
    let xs = npy::write(&[24, 4], &Values::F32(x.clone()));
    let labels = npy::write(&[24], &Values::I32(vec![0; 24]));
    std::fs::write(dir.join("x_only.npz"), npz::write(&[("x", xs.clone())], false)).unwrap();
    std::fs::write(dir.join("labelled.npz"), npz::write(&[("x", xs.clone()), ("y", labels)], false)).unwrap();
    std::fs::write(dir.join("x.npy"), xs).unwrap();
    // The same inputs as CSV rows without a label column (f32 `{}` prints
    // the shortest text that reads back to the same value).
    let rows: String =
        x.chunks(4).map(|r| r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n").collect();
    std::fs::write(dir.join("x_only.csv"), rows).unwrap();
    let with_source = |source: &str| MODEL.replace(r#"csv("rows.csv")"#, source);
    let run = |name: &str, text: &str| {
        let path = dir.join(format!("{name}.jl"));
        std::fs::write(&path, text).unwrap();
        fit(&path, text, &tempdir(&format!("no-targets-{name}")), &[], None)
    };
    let labelled = run("labelled", &with_source(r#"npz("labelled.npz")"#));
    let sources = [
        ("npz", r#"npz("x_only.npz", y = false)"#),
        ("npy", r#"npy("x.npy", y = false)"#),
        ("csv", r#"csv("x_only.csv", y = false)"#),
    ];
    for (name, source) in sources {
        let got = run(name, &with_source(source));
        for ((spec, a), (_, b)) in labelled.params.iter().zip(&got.params) {
            assert_eq!(bits(a), bits(b), "{name}: {} differs from the labelled run", spec.path);
        }
    }
    // A step that takes targets: refused before training, naming the step.
    let text = with_targets().replace(r#"csv("rows.csv")"#, r#"npz("x_only.npz", y = false)"#);
    let path = dir.join("takes_y.jl");
    std::fs::write(&path, &text).unwrap();
    let opts = trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", tempdir("no-targets-refused").display())],
        ..Default::default()
    };
    let err = trainer::fit(&path, &text, &opts).err().expect("refused").to_string();
    assert!(err.contains("the data has no targets (`y = false`), but `training_step` takes `y`"), "{err}");
    // A test split without targets beside training data with them.
    let text = MODEL
        .replace(r#"csv("rows.csv")"#, r#"npz("labelled.npz")"#)
        .replace("val_split = 4 }", r#"val_split = 4; test = npz("x_only.npz", y = false) }"#);
    assert!(text.contains("x_only.npz"));
    std::fs::write(&path, &text).unwrap();
    let err = trainer::fit(&path, &text, &opts).err().expect("refused").to_string();
    assert!(err.contains("the test split has no targets (`y = false`) but the training data has"), "{err}");
}

/// `jlc dump` of a model without targets (typed `x`), `on_train_end(self,
/// x)`, and the signatures that would hand the targets to a random key.
#[test]
fn dumps_hooks_and_key_like_names_of_target_free_models() {
    // The dump is the step of the same model with an unused `y` (class labels).
    let dump = |text: &str| {
        jaxlightning::dump("ae.jl", text, jaxlightning::DumpStage::Grad, false, 8, &[], false)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let ir = dump(MODEL);
    assert!(ir.starts_with("func @train_step("), "{ir}");
    assert_eq!(ir, dump(&with_targets()));
    let hook = MODEL.replace(
        "    fn configure_optimizers",
        "    fn on_train_end(self, x: f32[N, 4]) {\n        log(\"final_mse\", mse(self.reconstruct(x), x))\n    }\n    fn configure_optimizers",
    );
    let (diags, _) = jaxlightning::check_source("ae.jl", &hook);
    assert!(diags.is_empty(), "{diags:?}");
    for (signature, want) in [
        ("training_step(self, x: f32[B, 4], rng)", "rename `rng` to `key`"),
        ("training_step(self, key, x: f32[B, 4])", "the random key comes last"),
    ] {
        let (diags, _) =
            jaxlightning::check_source("ae.jl", &MODEL.replace("training_step(self, x: f32[B, 4])", signature));
        let help: Vec<String> = diags.iter().filter_map(|d| d.help.clone()).collect();
        assert!(help.iter().any(|h| h.contains(want)), "{signature}: {diags:?}");
    }
    // Targets whose name only contains a key-like word are targets.
    let keypoints = MODEL.replace("training_step(self, x: f32[B, 4])", "training_step(self, x: f32[B, 4], keypoints)");
    let (diags, _) = jaxlightning::check_source("ae.jl", &keypoints);
    assert!(diags.is_empty(), "{diags:?}");
}

/// `on_train_end(self, x, key)`: the whole split and a key, the key at its
/// own input after the (unused) targets.
#[test]
fn a_target_free_hook_gets_the_split_and_its_key() {
    let dir = tempdir("target-free-hook");
    let rows: String = (0..12).map(|i| format!("{},{},{},{},0\n", i, 2 * i, 0, 1)).collect();
    std::fs::write(dir.join("rows.csv"), rows).unwrap();
    let text = MODEL.replace(
        "    fn configure_optimizers",
        "    fn on_train_end(self, x: f32[N, 4], key) {\n        log(\"x_sum\", sum(x))\n        log(\"key_size\", float(size(key, 0)))\n    }\n    fn configure_optimizers",
    );
    let path = dir.join("ae.jl");
    std::fs::write(&path, &text).unwrap();
    let run = fit(&path, &text, &tempdir("target-free-hook-logs"), &["trainer.max_epochs=1".to_string()], None);
    let metric = |name: &str| {
        run.on_train_end
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", run.on_train_end))
            .1
    };
    // The training split: the 8 rows the validation split leaves (val_split = 4).
    let all: f64 = (0..12).map(|i| 3.0 * i as f64 + 1.0).sum();
    let x_sum = metric("x_sum");
    assert!(x_sum > 0.0 && x_sum < all && x_sum.fract() == 0.0, "x_sum = {x_sum}");
    assert_eq!(metric("key_size"), 2.0);
}

/// A training step without targets and a validation step that declares
/// them as floats: the byte labels convert as the validation step declares.
#[test]
fn targets_an_evaluation_step_declares_convert_without_a_training_step_declaration() {
    use trainer::data::{npy, npz, Values};
    let dir = tempdir("no-targets-eval-y");
    let x = npy::write(&[24, 4], &Values::U8((0..96).map(|i| (i * 7 % 11) as u8).collect()));
    let y = npy::write(&[24], &Values::U8((0..24).map(|i| (i % 3) as u8).collect()));
    std::fs::write(dir.join("bytes.npz"), npz::write(&[("x", x), ("y", y)], false)).unwrap();
    let text = MODEL.replace(r#"csv("rows.csv")"#, r#"npz("bytes.npz")"#).replace(
        "fn validation_step(self, x: f32[B, 4]) {",
        "fn validation_step(self, x: f32[B, 4], y: f32[B]) {\n        log(\"y_mean\", mean(y))",
    );
    let path = dir.join("ae.jl");
    std::fs::write(&path, &text).unwrap();
    let run = fit(&path, &text, &tempdir("no-targets-eval-y-logs"), &[], None);
    let y_mean = run.final_metrics.iter().find(|(n, _)| n == "y_mean").expect("y_mean").1;
    assert!(y_mean.is_finite() && (0.0..=2.0).contains(&y_mean), "{y_mean}");
}
