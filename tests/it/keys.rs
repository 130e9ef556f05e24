//! Per-step random keys: a step method whose last parameter is `key`
//! receives a fresh `i32[2]` key from the trainer at every call, a pure
//! function of the seed and the step (so resuming is still bitwise exact),
//! and the same keys at every evaluation of a split.

use crate::checkpoints::{bits, fit, root, rows};
use crate::examples::tempdir;
use std::path::PathBuf;

/// The digits MLP with dropout in its training step and a key-dependent
/// logged value in validation (noise a fixed key must make repeatable).
const KEYED: &str = r#"
use nn.{Linear, relu, dropout}
use losses.cross_entropy
use metrics.accuracy
use optim.adam

model Mlp {
    l1: Linear(64, 32)
    head: Linear(32, 10)

    fn training_step(self, x: f32[B, 64], y: i32[B], key) -> f32 {
        log("key_word", float(key[1]))
        cross_entropy(self.head(dropout(relu(self.l1(x)), key, rate = 0.2)), y)
    }

    fn validation_step(self, x: f32[B, 64], y: i32[B], key) {
        let noisy = self.head(relu(self.l1(x + 0.1 * normal(key, shape(x)))))
        log("val_acc_noisy", accuracy(noisy, y))
    }

    fn configure_optimizers(self) = adam(lr = 1e-2)
}

data = csv("data/digits.csv.gz", scale = 1.0 / 16.0) {
    batch_size = 64
    val_split = 297
}

trainer {
    max_epochs = 2
    log_every_n_steps = 1
}
"#;

fn keyed() -> (PathBuf, String) {
    (root().join("examples/keyed.jl"), KEYED.to_string())
}

/// The `key_word_step` column of a run's metrics.csv, in step order.
fn key_words(dir: &std::path::Path) -> Vec<String> {
    let rows = rows(dir);
    let col = rows[0].split(',').position(|c| c == "key_word_step").expect("key_word_step column");
    rows[1..].iter().filter_map(|r| r.split(',').nth(col).filter(|v| !v.is_empty()).map(str::to_string)).collect()
}

#[test]
fn keys_differ_per_step_repeat_per_seed_and_survive_resume() {
    let (path, text) = keyed();
    let a = fit(&path, &text, &tempdir("keys-a"), &[], None);
    let b = fit(&path, &text, &tempdir("keys-b"), &[], None);
    let other = fit(&path, &text, &tempdir("keys-seed"), &["trainer.seed=7".into()], None);
    let (wa, wb, wo) = (key_words(&a.log_dir), key_words(&b.log_dir), key_words(&other.log_dir));
    assert_eq!(wa.len(), a.steps, "one logged key per step");
    assert_eq!(wa, wb, "one seed, one key sequence");
    assert_ne!(wa, wo, "another seed, other keys");
    let distinct: std::collections::HashSet<&String> = wa.iter().collect();
    assert_eq!(distinct.len(), wa.len(), "a fresh key every step: {wa:?}");
    // The validation noise is the same at every evaluation: same params, same metric.
    for ((spec, x), (_, y)) in a.params.iter().zip(&b.params) {
        assert_eq!(bits(x), bits(y), "{} differs between two runs with one seed", spec.path);
    }

    // Interrupted after 5 and 30 steps and resumed: bitwise the same parameters and rows.
    let logs = tempdir("keys-resume");
    let mut resume = None;
    let mut segments = Vec::new();
    for stop in [5, 30] {
        let s = fit(&path, &text, &logs, &[format!("trainer.max_steps={stop}")], resume.take());
        assert_eq!(s.steps, stop);
        segments.push(s.log_dir.clone());
        resume = Some(trainer::Resume::Last);
    }
    let end = fit(&path, &text, &logs, &[], resume);
    segments.push(end.log_dir.clone());
    for ((spec, x), (_, y)) in a.params.iter().zip(&end.params) {
        assert_eq!(bits(x), bits(y), "{} differs after resuming", spec.path);
    }
    let resumed: Vec<String> = segments.iter().flat_map(|d| key_words(d)).collect();
    assert_eq!(resumed, wa, "the resumed run drew the uninterrupted run's keys");
}

#[test]
fn accumulation_gives_each_micro_batch_its_own_key() {
    let (path, text) = keyed();
    let s = fit(
        &path,
        &text,
        &tempdir("keys-accumulate"),
        &["trainer.accumulate_grad_batches=2".into(), "trainer.max_epochs=1".into()],
        None,
    );
    // 1,500 examples in batches of 64: 23 micro-batches, 12 optimizer steps.
    assert_eq!(s.steps, 12);
    assert!(s.params.iter().all(|(_, t)| t.to_f64_vec().iter().all(|v| v.is_finite())));
}

#[test]
fn validation_with_a_key_is_repeatable() {
    let (path, text) = keyed();
    let logs = tempdir("keys-validate");
    let s = fit(&path, &text, &logs, &["trainer.max_epochs=1".into()], None);
    let opts = |ckpt: &std::path::Path| trainer::eval::EvalOptions {
        overrides: vec![format!("trainer.default_root_dir={}", logs.display())],
        backend: runtime::Backend::Cpu,
        color: false,
        compiler: Default::default(),
        ckpt: Some(trainer::Resume::Path(ckpt.to_path_buf())),
    };
    let ckpt = s.last_checkpoint.clone().unwrap();
    let v1 = trainer::eval::run(trainer::setup::Stage::Validate, &path, &text, &opts(&ckpt)).unwrap();
    let v2 = trainer::eval::run(trainer::setup::Stage::Validate, &path, &text, &opts(&ckpt)).unwrap();
    assert_eq!(format!("{:?}", v1.metrics), format!("{:?}", v2.metrics));
    // And it is the value the fit logged at its end.
    let fitted = s.final_metrics.iter().find(|(n, _)| n == "val_acc_noisy").expect("logged by fit").1;
    assert_eq!(v1.metrics[0].1, fitted);
}

#[test]
fn a_third_step_parameter_must_be_the_key() {
    let renamed = KEYED
        .replace("y: i32[B], key) -> f32", "y: i32[B], noise) -> f32")
        .replace("float(key[1])", "float(noise[1])")
        .replace("relu(self.l1(x)), key, rate", "relu(self.l1(x)), noise, rate");
    let opts = trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", tempdir("keys-bad").display())],
        ..Default::default()
    };
    let err = trainer::fit(&root().join("examples/keyed.jl"), &renamed, &opts).err().expect("rejected").to_string();
    assert!(err.contains("must take (self, x, y), or (self, x) when it uses no targets"), "{err}");
    // Renamed in the signature only: the body's `key` is unknown, and the
    // message says where a step's key comes from.
    let text = KEYED.replace("y: i32[B], key) -> f32", "y: i32[B], noise) -> f32");
    let err = trainer::fit(&root().join("examples/keyed.jl"), &text, &opts).err().expect("rejected").to_string();
    assert!(err.contains("unknown name `key`") && err.contains("its parameter named `key`"), "{err}");
}

#[test]
fn predict_with_a_key_is_repeatable_and_noisy() {
    // Monte-Carlo dropout at prediction time: the key makes it repeatable.
    let text = KEYED.replace(
        "    fn configure_optimizers",
        "    fn predict_step(self, x: f32[B, 64], key) = self.head(dropout(relu(self.l1(x)), key, rate = 0.5))\n\n    fn configure_optimizers",
    );
    let path = root().join("examples/keyed_predict.jl");
    let logs = tempdir("keys-predict");
    let s = fit(&path, &text, &logs, &["trainer.max_epochs=1".into()], None);
    let run = |out: &str| {
        let opts = trainer::predict::PredictOptions {
            overrides: vec![format!("trainer.default_root_dir={}", logs.display())],
            backend: runtime::Backend::Cpu,
            color: false,
            compiler: Default::default(),
            ckpt: Some(trainer::Resume::Path(s.last_checkpoint.clone().unwrap())),
            split: trainer::predict::Split::Val,
            out: logs.join(out),
        };
        trainer::predict::run(&path, &text, &opts).unwrap();
        std::fs::read(logs.join(out)).unwrap()
    };
    let (a, b) = (run("a.npy"), run("b.npy"));
    assert_eq!(a, b, "one seed, one key per batch: the same predictions");
    // Dropout at rate 0.5 zeroes about half of the hidden units: the
    // predictions differ from the deterministic forward pass.
    let plain = text.replace("dropout(relu(self.l1(x)), key, rate = 0.5)", "relu(self.l1(x))");
    let opts = trainer::predict::PredictOptions {
        overrides: vec![format!("trainer.default_root_dir={}", logs.display())],
        backend: runtime::Backend::Cpu,
        color: false,
        compiler: Default::default(),
        ckpt: Some(trainer::Resume::Path(s.last_checkpoint.clone().unwrap())),
        split: trainer::predict::Split::Val,
        out: logs.join("plain.npy"),
    };
    trainer::predict::run(&path, &plain, &opts).unwrap();
    assert_ne!(a, std::fs::read(logs.join("plain.npy")).unwrap());
}
