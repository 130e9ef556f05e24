//! `test_step` and `validation_step` on a checkpoint: `jlc test`, `jlc
//! validate`, and the test run after `fit`. The metrics are checked against
//! an independent computation (the checkpoint's parameters applied in f64
//! here), and evaluating never changes a checkpoint.

use crate::checkpoints::{root, rows, write_idx};
use crate::examples::tempdir;
use std::path::Path;
use std::process::Command;

/// Runs jlc; returns (exit code, stdout, stderr).
pub fn jlc_out(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jlc")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const QUADRANTS: &str = r#"
use nn.Linear
use losses.cross_entropy
use metrics.accuracy
use optim.adam
model Quadrants {
    l: Linear(16, 4)
    fn training_step(self, x: f32[B, 16], y: i32[B]) -> f32 = cross_entropy(self.l(x), y)
    fn validation_step(self, x: f32[B, 16], y: i32[B]) {
        log("val_acc", accuracy(self.l(x), y))
    }
    fn test_step(self, x: f32[B, 16], y: i32[B]) {
        let logits = self.l(x)
        log("test_acc", accuracy(logits, y))
        log("test_loss", cross_entropy(logits, y))
    }
    fn configure_optimizers(self) = adam(lr = 1e-1)
}
data = idx(".", scale = 1.0 / 255.0) { batch_size = 50; val_split = 100 }
trainer { max_epochs = 3 }
"#;

/// A value of the results table printed on stdout.
pub fn table_value(stdout: &str, name: &str) -> f64 {
    let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{stdout}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Accuracy of `x @ w + b` on the IDX split in `dir`, in f64 (ties count as hits, like `accuracy`).
fn oracle_accuracy(dir: &Path, prefix: &str, ckpt: &Path) -> f64 {
    oracle_accuracy_first(dir, prefix, ckpt, usize::MAX)
}

/// `oracle_accuracy` on the split's first `n` examples.
pub fn oracle_accuracy_first(dir: &Path, prefix: &str, ckpt: &Path, n: usize) -> f64 {
    let ck = trainer::checkpoint::load(ckpt).unwrap();
    let get = |n: &str| ck.tensors.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec();
    let (w, b) = (get("l.weight"), get("l.bias"));
    let images = std::fs::read(dir.join(format!("{prefix}-images-idx3-ubyte"))).unwrap();
    let labels = std::fs::read(dir.join(format!("{prefix}-labels-idx1-ubyte"))).unwrap();
    let (pixels, labels) = (&images[16..], &labels[8..]);
    let labels = &labels[..labels.len().min(n)];
    let mut hits = 0;
    for (i, &label) in labels.iter().enumerate() {
        let x: Vec<f64> = pixels[i * 16..(i + 1) * 16].iter().map(|&p| p as f64 / 255.0).collect();
        let logits: Vec<f64> = (0..4).map(|c| b[c] + (0..16).map(|k| x[k] * w[k * 4 + c]).sum::<f64>()).collect();
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        hits += (logits[label as usize] >= max) as usize;
    }
    hits as f64 / labels.len() as f64
}

#[test]
fn test_runs_after_fit_and_from_a_checkpoint_without_changing_it() {
    let dir = tempdir("eval-idx");
    write_idx(&dir, "train", 600, 42);
    // 230 test examples: four batches of 50 and one of 30 (its own program).
    write_idx(&dir, "t10k", 230, 7);
    let model = dir.join("quadrants.jl");
    std::fs::write(&model, QUADRANTS).unwrap();
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());

    // Every epoch's checkpoint kept (the default keeps the newest), for the epoch-0 check below.
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.save_top_k=-1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Test metric") && out.contains("DataLoader 0"), "{out}");
    assert!(err.contains("230 test"), "the summary counts the test split: {err}");
    // The model summary: one row per parameter with its type and count.
    for (name, ty, count) in [("l.weight", "f32[16, 4]", "64"), ("l.bias", "f32[4]", "4")] {
        let row = err.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{err}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[1..], [name, ty, count], "{row}");
    }
    assert!(err.contains("68 trainable params in model `Quadrants`"), "{err}");
    // 500 training examples in batches of 50: nothing is left over. In
    // batches of 64 (one epoch), 52 are, and the summary says so.
    assert!(!err.contains("wait for a later epoch"), "{err}");
    let other = format!("trainer.default_root_dir={}", dir.join("logs-64").display());
    let (code, _, err) =
        jlc_out(&["run", model, "--set", &other, "--set", "data.batch_size=64", "--set", "trainer.max_epochs=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("an epoch is 7 batches of 64: training batches are full, so 52 examples"), "{err}");
    let ckpt = dir.join("logs/lightning_logs/version_0/checkpoints/last.safetensors");
    let after_fit = table_value(&out, "test_acc");
    let want = oracle_accuracy(&dir, "t10k", &ckpt);
    assert!((after_fit - want).abs() < 1e-6, "test_acc {after_fit}, f64 oracle {want}");
    assert!(after_fit >= 0.9, "{after_fit}");
    // metrics.csv: the test row is the last one.
    let r = rows(&dir.join("logs/lightning_logs/version_0"));
    let header: Vec<&str> = r[0].split(',').collect();
    let last: Vec<&str> = r.last().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "test_acc").expect("a test_acc column");
    assert_eq!(last[col].parse::<f64>().unwrap(), after_fit);

    // `jlc test` on the last checkpoint: the same numbers; the file is untouched.
    let before = std::fs::read(&ckpt).unwrap();
    let (code, out, err) = jlc_out(&["test", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table_value(&out, "test_acc"), after_fit);
    assert!(err.contains("230 examples"), "{err}");
    // fast_dev_run limits `jlc test` too, as Lightning's flag does: one batch.
    let (code, _, err) = jlc_out(&["test", model, "--set", &logs, "--set", "trainer.fast_dev_run=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("50 examples") && !err.contains("230 examples"), "{err}");
    let (code, out2, err) = jlc_out(&["test", model, "--set", &logs, "--ckpt", ckpt.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out2, out, "--ckpt PATH and the default (last) are the same file here");
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "evaluating never writes a checkpoint");

    // An earlier epoch's checkpoint gives that epoch's parameters' accuracy.
    let epoch0 = dir.join("logs/lightning_logs/version_0/checkpoints/epoch=0-step=10.safetensors");
    let (code, out, err) = jlc_out(&["test", model, "--set", &logs, "--ckpt", epoch0.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let want0 = oracle_accuracy(&dir, "t10k", &epoch0);
    assert!((table_value(&out, "test_acc") - want0).abs() < 1e-6, "{out} vs {want0}");

    // `jlc validate`: the validation split's metrics, as the last epoch logged them.
    let (code, out, err) = jlc_out(&["validate", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Validate metric"), "{out}");
    let col = header.iter().position(|h| *h == "val_acc").unwrap();
    let logged = r.iter().rev().map(|l| l.split(',').nth(col).unwrap_or("").to_string()).find(|v| !v.is_empty());
    assert_eq!(table_value(&out, "val_acc"), logged.unwrap().parse::<f64>().unwrap());

    // test_after_fit = false: no table, no test column.
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.test_after_fit=false"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("Test metric"), "{out}");
    assert!(!rows(&dir.join("logs/lightning_logs/version_1"))[0].contains("test_acc"));
}

#[test]
fn csv_test_split_and_clear_errors() {
    let dir = tempdir("eval-csv");
    let data = root().join("examples/data/digits.csv.gz");
    // The first 200 digits, uncompressed, as a test file (the mechanics, not generalization).
    let text = trainer::data::load_csv(&data, 1.0).unwrap();
    let mut csv = String::new();
    for i in 0..200 {
        let trainer::data::Values::F32(v) = &text.x.values else { unreachable!() };
        let trainer::data::Values::I32(labels) = &text.y.values else { unreachable!() };
        let cells: Vec<String> = v[i * 64..(i + 1) * 64].iter().map(|x| x.to_string()).collect();
        csv.push_str(&format!("{},{}\n", cells.join(","), labels[i]));
    }
    std::fs::write(dir.join("test.csv"), csv).unwrap();
    let source = std::fs::read_to_string(root().join("examples/digits_mlp.jl")).unwrap();
    let with_test = source
        .replace("data/digits.csv.gz", data.to_str().unwrap())
        .replace("    shuffle = true\n", "    shuffle = true\n    test = \"test.csv\"\n")
        .replace(
            "    fn configure_optimizers",
            "    fn test_step(self, x: f32[B, 64], y: i32[B]) {\n        log(\"test_acc\", accuracy(self.forward(x), y))\n    }\n\n    fn configure_optimizers",
        );
    let model = dir.join("digits_test.jl");
    std::fs::write(&model, &with_test).unwrap();
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.max_epochs=2"]);
    assert_eq!(code, 0, "{err}");
    let acc = table_value(&out, "test_acc");
    assert!(acc > 0.8, "{out}");
    let (code, _, err) = jlc_out(&["test", model, "--set", &logs]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("200 examples"), "{err}");

    // No test split: the data section says how to add one.
    let no_split = dir.join("no_split.jl");
    std::fs::write(&no_split, with_test.replace("    test = \"test.csv\"\n", "")).unwrap();
    let (code, _, err) = jlc_out(&["test", no_split.to_str().unwrap(), "--set", &logs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the data has no test split: set `test = \"file.csv\"`"), "{err}");
    // No test_step: named.
    let digits = root().join("examples/digits_mlp.jl");
    let (code, _, err) = jlc_out(&["test", digits.to_str().unwrap(), "--set", &logs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("model `Mlp` has no `test_step` method"), "{err}");
    // No checkpoint yet.
    let fresh = format!("trainer.default_root_dir={}", dir.join("fresh").display());
    let (code, _, err) = jlc_out(&["validate", model, "--set", &fresh]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--ckpt last: no checkpoint to evaluate: no "), "{err}");
    // `test` is a CSV setting only.
    let (code, _, err) = jlc_out(&["check", root().join("examples/digits_mlp.jl").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}
