//! Checkpoints and resuming: an interrupted and resumed run is bitwise the
//! uninterrupted one; bad checkpoints are clear errors (never panics); the
//! IDX source trains end to end.

use crate::examples::tempdir;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn digits() -> (PathBuf, String) {
    let path = root().join("examples/digits_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

pub fn fit(
    path: &Path,
    text: &str,
    logs: &Path,
    extra: &[String],
    resume: Option<trainer::Resume>,
) -> trainer::FitSummary {
    let mut overrides = extra.to_vec();
    overrides.push(format!("trainer.default_root_dir={}", logs.display()));
    let opts = trainer::FitOptions { overrides, resume, ..Default::default() };
    trainer::fit(path, text, &opts).unwrap_or_else(|e| panic!("{e}"))
}

pub fn bits(t: &compiler::ir::Tensor) -> Vec<u64> {
    t.to_f64_vec().iter().map(|x| x.to_bits()).collect()
}

/// The rows of metrics.csv (header first).
pub fn rows(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.csv")).unwrap().lines().map(str::to_string).collect()
}

/// The project's splitmix64 (same sequence for a seed as every other generator).
use compiler::ir::generate::Rng as SplitMix;

#[test]
fn interrupted_and_resumed_training_is_bitwise_the_uninterrupted_run() {
    let (path, text) = digits();
    let epochs = vec!["trainer.max_epochs=2".to_string()];
    let logs_a = tempdir("resume-uninterrupted");
    let full = fit(&path, &text, &logs_a, &epochs, None);
    // 1,500 training examples in batches of 64: 23 steps per epoch.
    assert_eq!(full.steps, 46);
    let per_epoch = full.steps / 2;

    // 20 stop points: exact epoch boundaries (23 = the end of epoch 0, 24 =
    // one batch into epoch 1, 46 = the very end) plus 17 random ones.
    let seed = compiler::ir::generate::run_seed(0x5eed_c4ec);
    let mut rng = SplitMix(seed);
    let mut stops = std::collections::BTreeSet::from([per_epoch, per_epoch + 1, full.steps]);
    while stops.len() < 20 {
        stops.insert(1 + (rng.next_u64() % (full.steps as u64 - 1)) as usize);
    }
    let stops: Vec<usize> = stops.into_iter().collect();
    eprintln!("seed {seed:#x}: stopping at global steps {stops:?}");

    let logs_b = tempdir("resume-interrupted");
    let mut resume = None;
    let mut segments = Vec::new();
    for &stop in &stops {
        let mut o = epochs.clone();
        o.push(format!("trainer.max_steps={stop}"));
        let s = fit(&path, &text, &logs_b, &o, resume.take());
        assert_eq!(s.steps, stop, "seed {seed:#x}: stop at {stop}");
        assert!(s.last_checkpoint.is_some(), "a run that trained saves last.safetensors");
        segments.push(s.log_dir.clone());
        resume = Some(trainer::Resume::Last);
    }
    // The last segment has nothing left to train: no new checkpoint.
    let end = fit(&path, &text, &logs_b, &epochs, Some(trainer::Resume::Last));
    assert_eq!((end.steps, end.epochs, end.last_checkpoint.is_none()), (46, 2, true));
    let end2 = fit(
        &path,
        &text,
        &logs_b,
        &epochs,
        Some(trainer::Resume::Path(segments.last().unwrap().join("checkpoints/last.safetensors"))),
    );

    for resumed in [&end, &end2] {
        for ((spec, a), (_, b)) in full.params.iter().zip(&resumed.params) {
            assert_eq!(bits(a), bits(b), "seed {seed:#x}: parameter {} differs", spec.path);
        }
        assert_eq!(full.states.len(), resumed.states.len());
        for ((name, a), (name_b, b)) in full.states.iter().zip(&resumed.states) {
            assert_eq!(name, name_b);
            assert_eq!(bits(a), bits(b), "seed {seed:#x}: optimizer state {name} differs");
        }
    }
    // The final checkpoints hold the same tensors and position.
    let a = trainer::checkpoint::load(&full.last_checkpoint.clone().unwrap()).unwrap();
    let b = trainer::checkpoint::load(&segments.last().unwrap().join("checkpoints/last.safetensors")).unwrap();
    assert_eq!(a.tensors.len(), 3 * 4, "4 parameters, 2 Adam states each");
    assert_eq!(format!("{:?}", a.tensors), format!("{:?}", b.tensors));
    assert_eq!((b.meta.epoch, b.meta.batch, b.meta.global_step), (2, 0, 46));
    assert_eq!(a.meta.data_order, b.meta.data_order);

    // metrics.csv: each resumed run writes a new version directory holding
    // the rows from its resume point on; the segments' rows, concatenated,
    // are the uninterrupted run's rows.
    let want = rows(&full.log_dir);
    let mut got = vec![want[0].clone()];
    for dir in &segments {
        let r = rows(dir);
        assert_eq!(r[0], want[0], "same header");
        got.extend(r[1..].iter().cloned());
    }
    assert_eq!(got.len(), want.len(), "seed {seed:#x}: stops {stops:?}");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "seed {seed:#x}: metrics.csv row {i} (stops {stops:?})");
    }
    // The newest epoch checkpoint (save_top_k = 1 without a monitor, as
    // Lightning's default), hparams name the source.
    assert!(!full.log_dir.join("checkpoints/epoch=0-step=23.safetensors").exists());
    assert!(full.log_dir.join("checkpoints/epoch=1-step=46.safetensors").is_file());
    let hp = std::fs::read_to_string(segments[1].join("hparams.yaml")).unwrap();
    assert!(hp.contains("resumed_from: ") && hp.contains(&segments[0].display().to_string()), "{hp}");
}

/// `checkpoint_every_n_train_steps = 5`: `last.safetensors` is rewritten
/// within the epoch (steps 5, 10, 15, 20 of 23; with `save_last = false`
/// the epoch's end does not overwrite it), and resuming from it finishes
/// bitwise like the run that was never stopped.
#[test]
fn last_is_written_every_n_train_steps_and_resumes_bit_exactly() {
    let (path, text) = digits();
    let base = vec!["trainer.max_epochs=1".to_string(), "trainer.save_last=false".to_string()];
    let full = fit(&path, &text, &tempdir("every-n-full"), &base, None);
    assert_eq!(full.steps, 23);
    let mut every = base.clone();
    every.push("trainer.checkpoint_every_n_train_steps=5".to_string());
    let run = fit(&path, &text, &tempdir("every-n"), &every, None);
    let last = run.log_dir.join("checkpoints/last.safetensors");
    let ck = trainer::checkpoint::load(&last).unwrap();
    assert_eq!((ck.meta.epoch, ck.meta.batch, ck.meta.global_step), (0, 20, 20), "the last mid-epoch save");
    let resumed = fit(&path, &text, &tempdir("every-n-resumed"), &base, Some(trainer::Resume::Path(last)));
    assert_eq!(resumed.steps, 23);
    for ((spec, a), (_, b)) in full.params.iter().zip(&resumed.params) {
        assert_eq!(bits(a), bits(b), "parameter {} differs", spec.path);
    }
    for ((name, a), (_, b)) in full.states.iter().zip(&resumed.states) {
        assert_eq!(bits(a), bits(b), "optimizer state {name} differs");
    }
}

/// The `.safetensors` files of a run's checkpoint directory, sorted.
fn checkpoint_files(run: &trainer::FitSummary) -> Vec<String> {
    let dir = run.log_dir.join("checkpoints");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// `checkpoint_every_n_train_steps = 5` over two epochs of 23 steps, as
/// Lightning's ModelCheckpoint: a checkpoint named `epoch=E-step=S` at steps
/// 5, 10, ..., 45 (all kept with `save_top_k = -1`; none at epoch ends, whose
/// checkpoints `every_n_epochs` now enables only when set), each loading
/// at its epoch, batch and step; with `checkpoint_monitor = "train_loss"`
/// and `save_top_k = 2`, exactly the two steps of lowest `train_loss` (read
/// from metrics.csv) remain; with `checkpoint_every_n_epochs = 1` and
/// `val_acc` in the file name, step files carry the last epoch end's
/// `val_acc` (nan before the first); a monitor that is nowhere is an error.
#[test]
fn model_checkpoint_every_n_train_steps_names_and_ranks_step_checkpoints() {
    let (path, text) = digits();
    let base: Vec<String> =
        ["trainer.max_epochs=2", "trainer.checkpoint_every_n_train_steps=5"].map(String::from).to_vec();
    let mut all_kept = base.clone();
    all_kept.push("trainer.save_top_k=-1".into());
    let run = fit(&path, &text, &tempdir("every-n-named"), &all_kept, None);
    assert_eq!(run.steps, 46);
    let steps: Vec<usize> = (1..=9).map(|i| 5 * i).collect();
    let mut want: Vec<String> =
        steps.iter().map(|&s| format!("epoch={}-step={s}.safetensors", usize::from(s > 23))).collect();
    want.push("last.safetensors".into());
    want.sort();
    assert_eq!(checkpoint_files(&run), want);
    for &s in &steps {
        let file = run.log_dir.join(format!("checkpoints/epoch={}-step={s}.safetensors", usize::from(s > 23)));
        let meta = trainer::checkpoint::load(&file).unwrap().meta;
        assert_eq!((meta.epoch, meta.batch, meta.global_step), (s / 23, s % 23, s), "{}", file.display());
    }

    let mut ranked = base.clone();
    ranked.extend(
        ["trainer.checkpoint_monitor=\"train_loss\"", "trainer.save_top_k=2", "trainer.log_every_n_steps=1"]
            .map(String::from),
    );
    let run = fit(&path, &text, &tempdir("every-n-ranked"), &ranked, None);
    let csv = rows(&run.log_dir);
    let header: Vec<&str> = csv[0].split(',').collect();
    let (step_col, loss_col) = (
        header.iter().position(|h| *h == "step").unwrap(),
        header.iter().position(|h| *h == "train_loss_step").unwrap(),
    );
    // Global step s is logged as step s - 1.
    let loss_at = |s: usize| -> f64 {
        let row = csv[1..]
            .iter()
            .map(|r| r.split(',').collect::<Vec<_>>())
            .find(|r| r[step_col] == (s - 1).to_string() && !r[loss_col].is_empty())
            .unwrap_or_else(|| panic!("no train_loss_step at step {s}"));
        row[loss_col].parse().unwrap()
    };
    let mut by_loss = steps.clone();
    by_loss.sort_by(|&a, &b| loss_at(a).total_cmp(&loss_at(b)).then(a.cmp(&b)));
    let mut want: Vec<String> =
        by_loss[..2].iter().map(|&s| format!("epoch={}-step={s}.safetensors", usize::from(s > 23))).collect();
    want.push("last.safetensors".into());
    want.sort();
    assert_eq!(checkpoint_files(&run), want, "the two lowest train_loss steps of {by_loss:?}");

    let mut named = all_kept.clone();
    named.extend(
        ["trainer.checkpoint_every_n_epochs=1", "trainer.checkpoint_filename=\"{epoch}-{step}-{val_acc:.2}\""]
            .map(String::from),
    );
    let run = fit(&path, &text, &tempdir("every-n-val"), &named, None);
    let files = checkpoint_files(&run);
    assert!(files.contains(&"0-5-NaN.safetensors".to_string()), "{files:?}");
    let val_acc_0 = files.iter().find(|f| f.starts_with("0-23-")).expect("the epoch 0 checkpoint");
    let acc = val_acc_0.trim_start_matches("0-23-").trim_end_matches(".safetensors");
    assert!(files.contains(&format!("1-25-{acc}.safetensors")), "step 25 carries epoch 0's val_acc {acc}: {files:?}");

    let mut bad = base.clone();
    bad.push("trainer.checkpoint_monitor=\"nowhere\"".into());
    let opts = trainer::FitOptions {
        overrides: [bad, vec![format!("trainer.default_root_dir={}", tempdir("every-n-bad").display())]].concat(),
        ..Default::default()
    };
    let err = trainer::fit(&path, &text, &opts).unwrap_err().to_string();
    assert!(err.contains("trainer.checkpoint_monitor: no value `nowhere` at the end of a step"), "{err}");
}

pub fn jlc(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_jlc")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `--init-from`: a new run starts from a checkpoint's parameters, with
/// another optimizer (its Adam states are not taken), at step 0, in a new
/// version directory; combined with --resume it is refused, and a model
/// whose parameters differ is told which.
#[test]
fn init_from_starts_a_new_run_from_a_checkpoints_parameters() {
    let (path, text) = digits();
    let logs = tempdir("init-from");
    let first = fit(&path, &text, &logs, &["trainer.max_epochs=1".to_string()], None);
    let ck = first.last_checkpoint.clone().unwrap();
    // SGD with lr = 0: one step leaves the parameters as they were loaded.
    let sgd = text.replace("use optim.adam", "use optim.sgd").replace("adam(lr = 1e-2)", "sgd(lr = 0.0)");
    let opts = |resume: Option<trainer::Resume>| trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", logs.display()), "trainer.max_steps=1".into()],
        init_from: Some(ck.clone()),
        resume,
        ..Default::default()
    };
    let second = trainer::fit(&path, &sgd, &opts(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.steps, 1, "a new run counts from 0");
    for ((spec, got), (_, want)) in second.params.iter().zip(&first.params) {
        assert_eq!(bits(got), bits(want), "{}", spec.path);
    }
    let hparams = std::fs::read_to_string(second.log_dir.join("hparams.yaml")).unwrap();
    assert!(hparams.contains(&format!("init_from: {:?}", ck.display().to_string())), "{hparams}");
    let err = trainer::fit(&path, &sgd, &opts(Some(trainer::Resume::Last))).unwrap_err().to_string();
    assert!(err.contains("give one of them"), "{err}");
    let wider = text.replace("hidden: int = 64", "hidden: int = 32");
    let err = trainer::fit(&path, &wider, &opts(None)).unwrap_err().to_string();
    assert!(err.contains("mis-shaped: `l1.weight`") && !err.contains("opt."), "{err}");
    // A parameter the model leaves out: the parameter is reported, its optimizer states are not.
    let no_bias = text.replace("l1: Linear(64, hidden)", "l1: Linear(64, hidden, use_bias = false)");
    assert_ne!(no_bias, text);
    let err = trainer::fit(&path, &no_bias, &opts(None)).unwrap_err().to_string();
    assert!(err.contains("`l1.bias`") && !err.contains("opt.l1.bias"), "{err}");
}

/// A validation value named like a training column (`train_loss_epoch`)
/// would share its metrics.csv column: refused before training.
#[test]
fn a_validation_log_named_like_a_training_column_is_refused() {
    let (path, text) = digits();
    let clash = text.replace("log(\"val_loss\"", "log(\"train_loss_epoch\"");
    assert_ne!(clash, text);
    let opts = trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", tempdir("log-clash").display())],
        ..Default::default()
    };
    let err = trainer::fit(&path, &clash, &opts).unwrap_err().to_string();
    assert!(err.starts_with("validation_step logs `train_loss_epoch`, the name of a training column"), "{err}");
}

/// A file where the run directory should be: said so (it was `File exists (os error 17)`).
#[test]
fn a_file_in_place_of_the_run_directory_is_named() {
    let root_dir = tempdir("logs-file");
    std::fs::write(root_dir.join("lightning_logs"), "").unwrap();
    let file = root().join("examples/digits_mlp.jl");
    let logs_arg = format!("trainer.default_root_dir={}", root_dir.display());
    let (code, err) = jlc(&["run", file.to_str().unwrap(), "--set", &logs_arg, "--set", "trainer.max_steps=1"]);
    assert_eq!(code, 1, "{err}");
    let want = format!("{} is a file, where the run directory", root_dir.join("lightning_logs").display());
    assert!(err.contains(&want), "{err}");
}

#[test]
fn cli_resume_errors_are_clear_and_never_panics() {
    let logs = tempdir("resume-cli");
    let logs_arg = format!("trainer.default_root_dir={}", logs.display());
    let file = root().join("examples/digits_mlp.jl");
    let file = file.to_str().unwrap();
    let (code, err) = jlc(&["run", file, "--set", &logs_arg, "--resume", "last"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--resume last: no checkpoint to resume from"), "{err}");

    let (code, err) = jlc(&["run", file, "--set", &logs_arg, "--set", "trainer.max_steps=5"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("accelerator: cpu (Cranelift JIT)"), "the header names what runs the steps: {err}");
    let last = logs.join("lightning_logs/version_0/checkpoints/last.safetensors");
    assert!(last.is_file());

    // Another seed would not continue the same run.
    let (code, err) = jlc(&["run", file, "--set", &logs_arg, "--set", "trainer.seed=3", "--resume", "last"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot resume bit-exactly") && err.contains("trained with seed 0, this run has seed 3"),
        "{err}"
    );
    // Another batch size neither: the error says what to set.
    let (code, err) = jlc(&["run", file, "--set", &logs_arg, "--set", "data.batch_size=16", "--resume", "last"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("(--set data.batch_size=64 to continue it)"), "{err}");
    // Resuming a run that already reached its limit trains nothing and says so.
    let (code, err) =
        jlc(&["run", file, "--set", &logs_arg, "--set", "trainer.max_steps=5", "--resume", last.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("note: nothing left to train:")
            && err.contains("(global step 5)")
            && err.contains("raise max_steps"),
        "{err}"
    );

    // A model with another hidden size: every tensor is listed.
    let dir = tempdir("resume-cli-model");
    let data = root().join("examples/data/digits.csv.gz");
    let other = std::fs::read_to_string(file)
        .unwrap()
        .replace("hidden: int = 64", "hidden: int = 32")
        .replace("data/digits.csv.gz", data.to_str().unwrap());
    let other_path = dir.join("mlp32.jl");
    std::fs::write(&other_path, other).unwrap();
    let (code, err) =
        jlc(&["run", other_path.to_str().unwrap(), "--set", &logs_arg, "--resume", last.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("checkpoint {}: does not fit this model (9 problems)", last.display())), "{err}");
    for name in ["l1.weight", "l1.bias", "head.weight", "opt.l1.weight.0", "opt.l1.weight.1", "opt.l1.bias.1"] {
        assert!(err.contains(&format!("mis-shaped: `{name}`")), "{name}: {err}");
    }

    // A truncated and a bit-flipped checkpoint: errors that name the file.
    let bytes = std::fs::read(&last).unwrap();
    for (what, corrupt) in [
        ("truncated", bytes[..bytes.len() - 7].to_vec()),
        ("flipped", {
            let mut b = bytes.clone();
            let at = b.len() - 100;
            b[at] ^= 0x10;
            b
        }),
    ] {
        let bad = dir.join(format!("{what}.safetensors"));
        std::fs::write(&bad, corrupt).unwrap();
        let (code, err) = jlc(&["run", file, "--set", &logs_arg, "--resume", bad.to_str().unwrap()]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains(&format!("checkpoint {}: ", bad.display())), "{what}: {err}");
    }
}

#[test]
fn stray_temp_files_are_removed_when_a_run_starts() {
    let logs = tempdir("resume-stray");
    let ck = logs.join("lightning_logs/version_0/checkpoints");
    std::fs::create_dir_all(&ck).unwrap();
    // pid 0 is never a live user process.
    std::fs::write(ck.join(".last.safetensors.tmp-0"), b"half a checkpoint").unwrap();
    let (path, text) = digits();
    let s = fit(&path, &text, &logs, &["trainer.max_epochs=1".into()], None);
    assert!(!ck.join(".last.safetensors.tmp-0").exists());
    assert!(s.log_dir.ends_with("version_1"));
    let names: Vec<String> = std::fs::read_dir(s.log_dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["epoch=0-step=23.safetensors", "last.safetensors"]);
}

/// Builds a tiny IDX dataset in which the label is the brightest quadrant
/// of a 4x4 image, so that a model can learn it.
fn write_idx_dir(dir: &Path, n: usize) {
    write_idx(dir, "train", n, 42);
}

/// Writes `<prefix>-images-idx3-ubyte` and `<prefix>-labels-idx1-ubyte`
/// (`prefix`: `train` or `t10k`) of `n` quadrant images drawn with `seed`.
pub fn write_idx(dir: &Path, prefix: &str, n: usize, seed: u64) {
    let mut rng = SplitMix(seed);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for _ in 0..n {
        let label = (rng.next_u64() % 4) as usize;
        for r in 0..4 {
            for c in 0..4 {
                let quadrant = (r / 2) * 2 + c / 2;
                let base = if quadrant == label { 160 } else { 0 };
                pixels.push((base + rng.next_u64() % 96) as u8);
            }
        }
        labels.push(label as u8);
    }
    let header = |dims: &[u32]| {
        let mut h = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            h.extend(d.to_be_bytes());
        }
        h
    };
    let mut img = header(&[n as u32, 4, 4]);
    img.extend(pixels);
    let mut lab = header(&[n as u32]);
    lab.extend(labels);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab).unwrap();
}

#[test]
fn idx_source_trains_end_to_end() {
    let dir = tempdir("idx-train");
    write_idx_dir(&dir, 600);
    let model = r#"
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
    fn configure_optimizers(self) = adam(lr = 1e-1)
}
data = idx(".", scale = 1.0 / 255.0) { batch_size = 50; val_split = 100 }
trainer { max_epochs = 5 }
"#;
    let path = dir.join("quadrants.jl");
    std::fs::write(&path, model).unwrap();
    let s = fit(&path, model, &dir.join("logs"), &[], None);
    let acc = s.final_metrics.iter().find(|(k, _)| k == "val_acc").unwrap().1;
    assert!(acc >= 0.95, "val_acc = {acc}");
    let hp = std::fs::read_to_string(s.log_dir.join("hparams.yaml")).unwrap();
    assert!(hp.contains("source: idx"), "{hp}");
}

pub const FASHION: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn fashion_mnist_example_trains_on_the_real_files() {
    if !Path::new(FASHION).is_dir() {
        eprintln!("skipped: {FASHION} is absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    // The real files load and validate: 60,000 28x28 images.
    let d = trainer::data::load_idx_dir(Path::new(FASHION), 1.0 / 255.0).unwrap();
    assert_eq!((d.len(), d.x.describe()), (60_000, "u8[784]".to_string()));
    let trainer::data::Values::U8(labels) = &d.y.values else { unreachable!() };
    assert!(labels.iter().all(|&l| l < 10));
    let path = root().join("examples/fashion_mnist_mlp.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir("fashion");
    let s = fit(&path, &text, &logs, &["trainer.max_epochs=1".into(), "trainer.limit_train_batches=40".into()], None);
    assert_eq!(s.steps, 40);
    let acc = s.final_metrics.iter().find(|(k, _)| k == "val_acc").unwrap().1;
    // 40 Adam steps already beat chance (0.1) by far.
    assert!(acc >= 0.6, "val_acc = {acc}");
    // The t10k files are the test split, run after training.
    let test_acc = s.test_metrics.iter().find(|(k, _)| k == "test_acc").unwrap().1;
    assert!(test_acc >= 0.6, "test_acc = {test_acc}");
    assert!(s.best_checkpoint.unwrap().ends_with("epoch=0-step=40.safetensors"));
}

/// A Fashion-MNIST example shortened to 20 training steps and 4
/// validation batches (512 images): its val_acc, or `None` (skipped) when
/// the dataset is absent.
fn shortened_fashion_val_acc(example: &str) -> Option<f64> {
    if !Path::new(FASHION).is_dir() {
        eprintln!("skipped: {FASHION} is absent (apt-get install dataset-fashion-mnist)");
        return None;
    }
    let path = root().join("examples").join(example);
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir(example.trim_end_matches(".jl"));
    let sets = [
        "trainer.max_epochs=1".into(),
        "trainer.limit_train_batches=20".into(),
        "trainer.limit_val_batches=4".into(),
        "trainer.test_after_fit=false".into(),
    ];
    let s = fit(&path, &text, &logs, &sets, None);
    assert_eq!(s.steps, 20);
    Some(s.final_metrics.iter().find(|(k, _)| k == "val_acc").unwrap().1)
}

#[test]
fn fashion_mnist_cnn_example_learns() {
    // The W2 CNN (conv, max-pool, reshape, flatten) on the real files.
    let Some(acc) = shortened_fashion_val_acc("fashion_mnist_cnn.jl") else { return };
    // Chance is 0.1; 20 Adam steps (seed 0) measured 0.672 on these 512
    // images with the standardized pixels (0.459 before).
    assert!(acc >= 0.3, "val_acc = {acc}");
}

#[test]
fn fashion_mnist_strong_cnn_example_learns() {
    // The stronger variant (padded convs, dropout with the step's key,
    // AdamW on a cosine schedule), batch 128.
    let Some(acc) = shortened_fashion_val_acc("fashion_mnist_cnn_strong.jl") else { return };
    // Chance is 0.1; 20 steps (seed 0) measured 0.643 on these 512 images.
    assert!(acc >= 0.4, "val_acc = {acc}");
}

#[test]
fn seed_flag_sets_the_trainer_seed_and_completions_list_the_commands() {
    let logs = tempdir("seed-flag");
    let logs_arg = format!("trainer.default_root_dir={}", logs.display());
    let file = root().join("examples/digits_mlp.jl");
    let file = file.to_str().unwrap();
    // `--seed` wins over a `--set trainer.seed` given with it.
    let args =
        ["run", file, "--set", &logs_arg, "--set", "trainer.max_steps=1", "--set", "trainer.seed=1", "--seed", "7"];
    let (code, err) = jlc(&args);
    assert_eq!(code, 0, "{err}");
    let hparams = std::fs::read_to_string(logs.join("lightning_logs/version_0/hparams.yaml")).unwrap();
    assert!(hparams.lines().any(|l| l.trim() == "seed: 7"), "{hparams}");
    let out = Command::new(env!("CARGO_BIN_EXE_jlc")).args(["completions", "bash"]).output().unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["run", "plot", "--disable-rule", "--seed", "--resume"] {
        assert!(script.contains(word), "bash completions mention {word}");
    }
}

/// Two runs with one seed write byte-identical checkpoints wherever they
/// are written (the metadata's order no longer follows a `HashMap`'s, and
/// ModelCheckpoint records its kept files relative to the run's directory).
#[test]
fn two_runs_with_one_seed_write_identical_checkpoints() {
    let (path, text) = digits();
    let o: Vec<String> = ["trainer.max_epochs=2", "trainer.save_top_k=2", "trainer.seed=11"].map(String::from).into();
    let a = fit(&path, &text, &tempdir("same-seed-a"), &o, None);
    let b = fit(&path, &text, &tempdir("same-seed-b/deeper"), &o, None);
    let (a, b) = (a.last_checkpoint.unwrap(), b.last_checkpoint.unwrap());
    assert_ne!(a, b);
    assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(), "{} and {} differ", a.display(), b.display());
}

/// A run resumed from a checkpoint of another run directory (an archived
/// run) deletes nothing there nor in its own directory that it did not
/// write: ModelCheckpoint's kept files are the other run's. (It had deleted
/// a third run's file of the same name: the state held absolute paths.)
#[test]
fn resuming_from_another_run_directory_deletes_none_of_its_files() {
    let (path, text) = digits();
    let o = |epochs: usize| vec![format!("trainer.max_epochs={epochs}")];
    let listing = |dir: &Path| {
        let mut files: Vec<String> =
            walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
        files.sort();
        files
    };
    let top = tempdir("resume-elsewhere");
    let exp = top.join("exp");
    fit(&path, &text, &exp, &o(2), None);
    let archive = top.join("archive");
    std::fs::rename(&exp, &archive).unwrap();
    // Another run in `exp`: the same file names as the archived one.
    fit(&path, &text, &exp, &o(2), None);
    let (before_exp, before_archive) = (listing(&exp), listing(&archive));
    assert!(before_exp.iter().any(|f| f.ends_with("epoch=1-step=46.safetensors")), "{before_exp:?}");
    let last = archive.join("lightning_logs/version_0/checkpoints/last.safetensors");
    let resumed = fit(&path, &text, &top.join("elsewhere"), &o(3), Some(trainer::Resume::Path(last)));
    assert_eq!(resumed.steps, 69);
    assert_eq!(listing(&exp), before_exp, "the third run's files");
    assert_eq!(listing(&archive), before_archive, "the archived run's files");
    // In its own directory the resumed run keeps its own newest (save_top_k = 1).
    let own = listing(&top.join("elsewhere"));
    assert!(own.iter().any(|f| f.ends_with("epoch=2-step=69.safetensors")), "{own:?}");
    // `best` names a file that is gone: said so, with the file that names it.
    let base = top.join("elsewhere/lightning_logs");
    let best = trainer::fit::resolve_checkpoint(&trainer::Resume::Best, &base, "--ckpt", "evaluate").unwrap();
    std::fs::remove_file(&best).unwrap();
    let err = trainer::fit::resolve_checkpoint(&trainer::Resume::Best, &base, "--ckpt", "evaluate").unwrap_err();
    assert!(err.to_string().contains("as the best checkpoint, and it is not there"), "{err}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A checkpoint `jlc` writes opens in Python's `safetensors` (the reference
/// reader, where Python has it: `$JLC_PYTHON` or `python3`): the same
/// tensor names, dtypes, shapes and values, bit for bit, and its metadata.
#[test]
fn checkpoints_load_in_pythons_safetensors() {
    const SCRIPT: &str = r#"
import sys
from safetensors import safe_open
with safe_open(sys.argv[1], framework="np") as f:
    print("format_version", f.metadata()["format_version"])
    for k in sorted(f.keys()):
        t = f.get_tensor(k)
        print(k, t.dtype.str, "x".join(map(str, t.shape)) or "scalar", t.astype("<f8").tobytes().hex())
"#;
    let (path, text) = digits();
    let s = fit(&path, &text, &tempdir("python-safetensors"), &["trainer.max_epochs=1".into()], None);
    let last = s.last_checkpoint.expect("last is written");
    let python = std::env::var("JLC_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = match std::process::Command::new(&python).arg("-c").arg(SCRIPT).arg(&last).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "skipped: {python} cannot read safetensors ({}); set JLC_PYTHON to a Python with `safetensors` and `numpy`",
                err.lines().last().unwrap_or("")
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run {python}: {e}");
            return;
        }
    };
    let ck = trainer::checkpoint::load(&last).unwrap();
    let mut want = vec![format!("format_version {}", trainer::checkpoint::FORMAT_VERSION)];
    let mut tensors: Vec<_> = ck.tensors.iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in tensors {
        let dtype = match t.data {
            compiler::ir::Data::F32(_) => "<f4",
            compiler::ir::Data::F64(_) => "<f8",
            compiler::ir::Data::I32(_) => "<i4",
            compiler::ir::Data::Bool(_) => "|b1",
        };
        let dims = t.shape.dims().iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x");
        let hex: String = t.to_f64_vec().iter().flat_map(|v| v.to_le_bytes()).map(|b| format!("{b:02x}")).collect();
        want.push(format!("{name} {dtype} {} {hex}", if dims.is_empty() { "scalar" } else { &dims }));
    }
    let got: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert!(want.len() > 4, "{want:?}");
    assert_eq!(got.len(), want.len(), "tensor count: {got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

/// With `save_last = false` the epoch end writes no `last`, so a stop right
/// after it (here `max_steps` at an epoch boundary; an interrupt is the
/// same path) must still write one, as a stop mid-epoch does: otherwise the
/// finished epoch could not be resumed.
#[test]
fn a_stop_at_an_epoch_boundary_writes_last_even_without_save_last() {
    let (path, text) = digits();
    let logs = tempdir("stop-boundary-no-save-last");
    // 23 steps per epoch: max_steps = 23 stops at the start of epoch 1.
    let sets = ["trainer.max_epochs=5", "trainer.max_steps=23", "trainer.save_last=false", "trainer.save_top_k=0"];
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let run = fit(&path, &text, &logs, &sets, None);
    assert_eq!(run.steps, 23);
    let last = logs.join("lightning_logs/version_0/checkpoints/last.safetensors");
    let ck = trainer::checkpoint::load(&last).unwrap_or_else(|e| panic!("no `last` after the stop: {e}"));
    assert_eq!((ck.meta.global_step, ck.meta.epoch, ck.meta.batch), (23, 1, 0));
}
