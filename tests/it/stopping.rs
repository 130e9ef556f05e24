//! How runs end: a non-finite loss stops with a clear message and loses
//! nothing saved; EarlyStopping and ModelCheckpoint decide the same after
//! a resume as without one; SIGINT/SIGTERM stop after a step with `last`
//! written, and the run resumes bit-exactly.

use crate::checkpoints::{bits, digits, fit, root, rows};
use crate::evaluate::jlc_out;
use crate::examples::tempdir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A loss that grows 121-fold per SGD step: with x = 1 and s = w + b,
/// loss = s^2 and the update s -= 3 * (2s + 2s) gives s' = -11 s, so the
/// f32 loss overflows after about 19 steps (two per epoch).
const DIVERGE: &str = r#"
use nn.Linear
use optim.sgd
model Diverge {
    l: Linear(1, 1)
    fn training_step(self, x: f32[B, 1], y: i32[B]) -> f32 {
        let out = self.l(x)
        log("s", mean(out))
        mean(out * out)
    }
    fn configure_optimizers(self) = sgd(lr = 3.0)
}
data = csv("ones.csv") { batch_size = 4; shuffle = false }
trainer { max_epochs = 40; log_every_n_steps = 1 }
"#;

/// A finite loss with an infinite gradient: d sqrt(w) / dw at w = 0. One
/// batch per epoch, so the epoch's end would save the step's parameters.
const KINK: &str = r#"
use optim.sgd
model Kink {
    w: f32[1] = zeros()
    fn training_step(self, x: f32[B, 1], y: i32[B]) -> f32 = mean(sqrt(self.w) + 0.0 * x)
    fn configure_optimizers(self) = sgd(lr = 0.1)
}
data = csv("ones.csv") { batch_size = 8; shuffle = false }
trainer { max_epochs = 3 }
"#;

/// The 0-based step "NAME is VALUE at global step N" names.
fn reported_step(err: &str) -> usize {
    let at = err.find("at global step ").unwrap_or_else(|| panic!("{err}")) + "at global step ".len();
    err[at..].split_whitespace().next().unwrap().parse().unwrap()
}

/// The first step (0-based) at or after `from` whose value of `f(s)` is not
/// finite, simulating the SGD update in f32 from the checkpoint's w and b.
fn oracle_first_non_finite(ckpt: &Path, f: impl Fn(f32) -> f32) -> usize {
    let ck = trainer::checkpoint::load(ckpt).unwrap();
    let get = |n: &str| ck.tensors.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec()[0] as f32;
    let (mut w, mut b) = (get("l.weight"), get("l.bias"));
    let mut step = ck.meta.global_step;
    loop {
        let s = w + b;
        if !f(s).is_finite() {
            return step;
        }
        let g = 2.0 * s;
        w -= 3.0 * g;
        b -= 3.0 * g;
        step += 1;
    }
}

#[test]
fn a_non_finite_loss_stops_with_the_step_and_the_last_good_checkpoint() {
    let dir = tempdir("nonfinite");
    std::fs::write(dir.join("ones.csv"), "1,0\n".repeat(8)).unwrap();
    let model = dir.join("diverge.jl");
    std::fs::write(&model, DIVERGE).unwrap();
    let model = model.to_str().unwrap();
    let logs = format!("trainer.default_root_dir={}", dir.join("logs").display());
    let (code, _, err) = jlc_out(&["run", model, "--set", &logs]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: train_loss is inf at global step"), "{err}");
    let step = reported_step(&err);
    let version = dir.join("logs/lightning_logs/version_0");
    let ck_dir = version.join("checkpoints").canonicalize().unwrap();
    // Two steps per epoch: the last epoch that ended before the bad step.
    let epoch = step / 2;
    let good = ck_dir.join(format!("epoch={}-step={}.safetensors", epoch - 1, epoch * 2));
    let last = ck_dir.join("last.safetensors");
    assert!(err.contains(&format!("the last good checkpoint is {}", last.display())), "{err}");
    // `mean` sums the batch's four equal rows first: 4 s^2 overflows before s^2 does.
    let mean_sq = |s: f32| (s * s + s * s + s * s + s * s) / 4.0;
    assert_eq!(oracle_first_non_finite(&good, mean_sq), step, "the f32 simulation overflows at the same step");
    // Nothing after the last good step was saved: `last` is that epoch's file.
    assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&good).unwrap());
    let ck = trainer::checkpoint::load(&good).unwrap();
    assert!(ck.tensors.iter().all(|(_, t)| t.to_f64_vec().iter().all(|x| x.is_finite())));
    // The logs are flushed up to the bad step (one row per step, plus the epoch rows).
    let r = rows(&version);
    let last_step_row = r.iter().rev().find(|l| l.split(',').nth(1).is_some()).unwrap();
    assert_eq!(last_step_row.split(',').nth(1).unwrap(), (step - 1).to_string(), "{r:?}");

    // A watched logged value: `s` itself overflows later than s^2.
    let (code, _, err) = jlc_out(&[
        "run",
        model,
        "--set",
        &logs,
        "--set",
        "trainer.stop_on_nonfinite=false",
        "--set",
        "trainer.nonfinite_metrics=s",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error: s is "), "{err}");
    let s_step = reported_step(&err);
    assert!(s_step > step, "{s_step} vs {step}");
    let version = dir.join("logs/lightning_logs/version_1/checkpoints");
    let last_good = std::fs::read_dir(&version)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("epoch="))
        .max_by_key(|p| trainer::checkpoint::load(p).unwrap().meta.global_step)
        .unwrap();
    assert_eq!(oracle_first_non_finite(&last_good, |s| (s + s + s + s) / 4.0), s_step);

    // Off: the run goes on through the overflow and ends normally.
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.stop_on_nonfinite=false"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("finished 40 epochs") && out.contains("train_loss_epoch=NaN"), "{out}");

    // A watched name that is not logged is a configuration error.
    let (code, _, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.nonfinite_metrics=nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("trainer.nonfinite_metrics: `nope` is not logged"), "{err}");
}

/// A step's values stay in the engine until a step that needs them (a
/// log row, a checkpoint, the epoch's end): read in bulk, they decide as
/// when read every step. DIVERGE with 8 batches per epoch overflows at step
/// 19 (epoch 2, batch 3); with log_every_n_steps = 50 its values are read at
/// epoch ends only, so steps 20-23 run first, yet the error names step 19,
/// the last good checkpoint is epoch 1's, nothing later is saved, and the
/// epoch rows are bitwise those of a run that reads every step.
#[test]
fn values_read_every_few_steps_stop_at_the_same_step_as_every_step() {
    let dir = tempdir("nonfinite-deferred");
    std::fs::write(dir.join("ones.csv"), "1,0\n".repeat(32)).unwrap();
    let model = dir.join("diverge.jl");
    std::fs::write(&model, DIVERGE).unwrap();
    let model = model.to_str().unwrap();
    let run = |every: usize, root: &str| {
        let root = dir.join(root);
        let set_root = format!("trainer.default_root_dir={}", root.display());
        let set_every = format!("trainer.log_every_n_steps={every}");
        let (code, _, err) = jlc_out(&["run", model, "--set", &set_root, "--set", &set_every]);
        assert_eq!(code, 1, "{err}");
        (err, root.join("lightning_logs/version_0"))
    };
    let (err_each, version_each) = run(1, "each");
    let (err_bulk, version_bulk) = run(50, "bulk");
    let step = reported_step(&err_bulk);
    assert_eq!(step, 19, "{err_bulk}");
    assert_eq!(reported_step(&err_each), step, "{err_each}");
    assert!(err_bulk.contains("train_loss is inf at global step 19 (epoch 2, batch 3)"), "{err_bulk}");
    let ck_dir = version_bulk.join("checkpoints").canonicalize().unwrap();
    let good = ck_dir.join("epoch=1-step=16.safetensors");
    let last = ck_dir.join("last.safetensors");
    assert!(err_bulk.contains(&format!("the last good checkpoint is {}", last.display())), "{err_bulk}");
    assert_eq!(std::fs::read(&last).unwrap(), std::fs::read(&good).unwrap(), "nothing saved after step 16");
    let mean_sq = |s: f32| (s * s + s * s + s * s + s * s) / 4.0;
    assert_eq!(oracle_first_non_finite(&good, mean_sq), step);
    // The epoch rows (train_loss_epoch, s_epoch), bitwise alike.
    let epoch_rows = |version: &Path| {
        let r = rows(version);
        let header: Vec<String> = r[0].split(',').map(str::to_string).collect();
        let col = header.iter().position(|h| h == "train_loss_epoch").unwrap();
        let s_col = header.iter().position(|h| h == "s_epoch").unwrap();
        let picked: Vec<(String, String)> = r[1..]
            .iter()
            .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
            .filter(|c| !c[col].is_empty())
            .map(|c| (c[col].clone(), c[s_col].clone()))
            .collect();
        picked
    };
    let bulk = epoch_rows(&version_bulk);
    assert_eq!(bulk.len(), 2, "epochs 0 and 1 ended: {bulk:?}");
    assert_eq!(bulk, epoch_rows(&version_each));
}

fn callback_settings() -> Vec<String> {
    [
        "trainer.max_epochs=20",
        "trainer.checkpoint_monitor=val_acc",
        "trainer.checkpoint_mode=max",
        "trainer.save_top_k=2",
        "trainer.checkpoint_filename=epoch={epoch}-val_acc={val_acc:.4}",
        "trainer.early_stopping_monitor=val_loss",
        "trainer.early_stopping_patience=2",
        "trainer.early_stopping_min_delta=0.005",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Epoch-end rows of metrics.csv: (epoch, val_acc, val_loss).
fn epoch_rows(dirs: &[PathBuf]) -> Vec<(usize, f64, f64)> {
    let mut out = Vec::new();
    for dir in dirs {
        let r = rows(dir);
        let header: Vec<&str> = r[0].split(',').collect();
        let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
        for line in &r[1..] {
            let cells: Vec<&str> = line.split(',').collect();
            if !cells[col("val_acc")].is_empty() {
                out.push((
                    cells[0].parse().unwrap(),
                    cells[col("val_acc")].parse().unwrap(),
                    cells[col("val_loss")].parse().unwrap(),
                ));
            }
        }
    }
    out
}

/// The checkpoint files of all version directories under `root`, sorted.
fn epoch_files(logs: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for v in std::fs::read_dir(logs.join("lightning_logs")).unwrap() {
        let Ok(entries) = std::fs::read_dir(v.unwrap().path().join("checkpoints")) else { continue };
        for e in entries {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.starts_with("epoch=") {
                names.push(n);
            }
        }
    }
    names.sort();
    names
}

#[test]
fn early_stopping_and_top_k_decide_the_same_after_resumes() {
    let (path, text) = digits();
    let settings = callback_settings();
    let logs_a = tempdir("callbacks-full");
    let full = fit(&path, &text, &logs_a, &settings, None);
    assert_eq!(full.stop, trainer::Stop::Callback);
    assert!(full.epochs < 20, "stops early: {} epochs", full.epochs);

    // Oracle from metrics.csv: EarlyStopping's rule and the top-2 by val_acc.
    let rows_a = epoch_rows(std::slice::from_ref(&full.log_dir));
    assert_eq!(rows_a.len(), full.epochs);
    let (mut best, mut wait, mut stop_at) = (f64::INFINITY, 0, None);
    for &(epoch, _, loss) in &rows_a {
        if loss < best - 0.005 {
            (best, wait) = (loss, 0);
        } else {
            wait += 1;
            if wait >= 2 {
                stop_at = Some(epoch);
                break;
            }
        }
    }
    assert_eq!(stop_at, Some(full.epochs - 1), "EarlyStopping stops where its rule says: {rows_a:?}");
    let mut ranked = rows_a.clone();
    ranked.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    let mut want: Vec<String> =
        ranked.iter().take(2).map(|(e, acc, _)| format!("epoch={e}-val_acc={acc:.4}.safetensors")).collect();
    let best_name = want[0].clone();
    want.sort();
    assert_eq!(epoch_files(&logs_a), want);
    assert_eq!(full.best_checkpoint.as_ref().unwrap().file_name().unwrap().to_string_lossy(), best_name);

    // The same run, interrupted by max_steps at several points and resumed from `last`.
    let logs_b = tempdir("callbacks-resumed");
    let mut resume = None;
    let mut dirs = Vec::new();
    for stop in [10, 23, 47, 80] {
        let mut o = settings.clone();
        o.push(format!("trainer.max_steps={stop}"));
        let s = fit(&path, &text, &logs_b, &o, resume.take());
        dirs.push(s.log_dir.clone());
        resume = Some(trainer::Resume::Last);
        if s.stop == trainer::Stop::Callback {
            break;
        }
    }
    let end = fit(&path, &text, &logs_b, &settings, resume);
    dirs.push(end.log_dir.clone());
    assert_eq!((end.stop, end.epochs, end.steps), (full.stop, full.epochs, full.steps));
    for ((spec, a), (_, b)) in full.params.iter().zip(&end.params) {
        assert_eq!(bits(a), bits(b), "parameter {} differs", spec.path);
    }
    assert_eq!(epoch_rows(&dirs), rows_a, "the same validation results");
    assert_eq!(epoch_files(&logs_b), want, "the same top-2 files, across the version directories");
    assert_eq!(end.best_checkpoint.unwrap().file_name(), full.best_checkpoint.as_ref().unwrap().file_name());

    // `--resume best` / `--ckpt best` name ModelCheckpoint's best file.
    let base = logs_a.join("lightning_logs");
    let best = trainer::fit::resolve_checkpoint(&trainer::Resume::Best, &base, "--ckpt", "evaluate").unwrap();
    assert_eq!(best.file_name().unwrap().to_string_lossy(), best_name);
    let logs_arg = format!("trainer.default_root_dir={}", logs_a.display());
    let mut args = vec!["validate", path.to_str().unwrap(), "--ckpt", "best", "--set", &logs_arg];
    let extra: Vec<String> = settings.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect();
    args.extend(extra.iter().map(String::as_str));
    let (code, out, err) = jlc_out(&args);
    assert_eq!(code, 0, "{err}");
    let shown: f64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("val_acc"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, ranked[0].1, "the best checkpoint's val_acc, as logged at its epoch");
    // Resuming from it continues after its epoch (and stops where EarlyStopping's restored state says).
    let resumed = fit(&path, &text, &logs_a, &settings, Some(trainer::Resume::Best));
    let hp = std::fs::read_to_string(resumed.log_dir.join("hparams.yaml")).unwrap();
    assert!(hp.contains(&format!("resumed_from: {:?}", best.display().to_string())), "{hp}");
    assert!(epoch_rows(std::slice::from_ref(&resumed.log_dir)).first().is_none_or(|r| r.0 == ranked[0].0 + 1));

    // A monitor that is not a metric is a clear error.
    let (code, _, err) = jlc_out(&[
        "run",
        path.to_str().unwrap(),
        "--set",
        &logs_arg,
        "--set",
        "trainer.checkpoint_monitor=val_accuracy",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("trainer.checkpoint_monitor: no metric `val_accuracy`") && err.contains("val_acc"), "{err}");
}

/// A `jlc` child process that is killed if the test panics before it is
/// waited for (a run with `max_epochs=100000` would otherwise train on).
struct Child(Option<std::process::Child>);

impl Child {
    /// Starts `jlc run digits_mlp.jl` logging under `logs`, for ever (until a signal).
    fn train_digits_until_signalled(logs: &Path) -> Child {
        let file = root().join("examples/digits_mlp.jl");
        let logs_arg = format!("trainer.default_root_dir={}", logs.display());
        let child = Command::new(env!("CARGO_BIN_EXE_jlc"))
            .args(["run", file.to_str().unwrap(), "--set", &logs_arg])
            .args(["--set", "trainer.max_epochs=100000", "--set", "trainer.save_top_k=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Child(Some(child))
    }

    fn id(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Polls until `path` exists; after a minute kills the child and
    /// panics with its stderr.
    fn wait_for(&mut self, path: &Path) {
        let start = Instant::now();
        while !path.exists() {
            if start.elapsed() > Duration::from_secs(60) || self.0.as_mut().unwrap().try_wait().unwrap().is_some() {
                let _ = self.0.as_mut().unwrap().kill();
                let out = self.0.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "{} never appeared ({}); stderr:\n{}",
                    path.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the exit: (exit code, stderr).
    fn finish(mut self) -> (Option<i32>, String) {
        let out = self.0.take().unwrap().wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

#[test]
fn sigint_stops_after_a_step_with_last_written_and_resumes_bit_exactly() {
    let logs = tempdir("sigint");
    let mut child = Child::train_digits_until_signalled(&logs);
    let last = logs.join("lightning_logs/version_0/checkpoints/last.safetensors");
    child.wait_for(&last);
    std::thread::sleep(Duration::from_millis(50));
    kill("-INT", child.id());
    let (code, err) = child.finish();
    assert_eq!(code, Some(130), "{err}");
    let g = reported_step(&err);
    assert!(err.contains("continue with --resume last"), "{err}");
    let ck = trainer::checkpoint::load(&last).unwrap();
    assert_eq!(ck.meta.global_step, g, "`last` holds the step the message names");
    // metrics.csv was flushed whole: every row has the header's columns.
    let r = rows(&logs.join("lightning_logs/version_0"));
    let n = r[0].split(',').count();
    assert!(r.iter().all(|l| l.split(',').count() == n), "{r:?}");

    // Resume 30 more steps; compare with an uninterrupted run of as many steps.
    let (path, text) = digits();
    let more = vec![
        "trainer.max_epochs=100000".to_string(),
        "trainer.save_top_k=0".to_string(),
        format!("trainer.max_steps={}", g + 30),
    ];
    let resumed = fit(&path, &text, &logs, &more, Some(trainer::Resume::Last));
    let straight = fit(&path, &text, &tempdir("sigint-straight"), &more, None);
    assert_eq!((resumed.steps, straight.steps), (g + 30, g + 30));
    for ((spec, a), (_, b)) in straight.params.iter().zip(&resumed.params) {
        assert_eq!(bits(a), bits(b), "parameter {} differs after SIGINT at step {g} and resume", spec.path);
    }
    for ((name, a), (_, b)) in straight.states.iter().zip(&resumed.states) {
        assert_eq!(bits(a), bits(b), "optimizer state {name} differs");
    }
}

/// A second signal exits at once. SIGINT then SIGTERM (two kinds, so the
/// kernel cannot merge them into one pending signal), from one shell. The
/// first signal also ends the run on its own (after the step, `last`
/// written), and which comes first is a race: the handler thread may see
/// the second signal only after the loop has already stopped (2 in 40
/// under load). Every try must exit 130 with a loadable `last`; at least
/// one of up to eight must show the immediate exit.
#[test]
fn a_second_signal_exits_at_once_and_last_still_loads() {
    let mut outcomes = Vec::new();
    for attempt in 0..8 {
        let logs = tempdir(&format!("sigterm-{attempt}"));
        let mut child = Child::train_digits_until_signalled(&logs);
        let last = logs.join("lightning_logs/version_0/checkpoints/last.safetensors");
        child.wait_for(&last);
        let pid = child.id();
        let status = Command::new("sh").args(["-c", &format!("kill -INT {pid}; kill -TERM {pid}")]).status().unwrap();
        assert!(status.success());
        let (code, err) = child.finish();
        assert_eq!(code, Some(130), "{err}");
        let at_once = err.contains("interrupted again: exiting now");
        assert!(at_once || err.contains("continue with --resume last"), "{err}");
        // Checkpoint writes are atomic: whatever `last` holds loads.
        trainer::checkpoint::load(&last).unwrap();
        outcomes.push(at_once);
        if at_once {
            return;
        }
    }
    panic!("no try exited at the second signal: {outcomes:?}");
}

/// Accuracy of the digits MLP in the checkpoint on `data`, in f64 (ties count as hits).
fn mlp_accuracy(ckpt: &Path, data: &trainer::data::Dataset) -> f64 {
    let ck = trainer::checkpoint::load(ckpt).unwrap();
    let get = |n: &str| ck.tensors.iter().find(|(k, _)| k == n).unwrap().1.to_f64_vec();
    let (w1, b1, w2, b2) = (get("l1.weight"), get("l1.bias"), get("head.weight"), get("head.bias"));
    let (d, h) = (64, b1.len());
    let trainer::data::Values::F32(x) = &data.x.values else { unreachable!() };
    let trainer::data::Values::I32(labels) = &data.y.values else { unreachable!() };
    let mut hits = 0;
    for (i, &label) in labels.iter().enumerate() {
        let row = &x[i * d..(i + 1) * d];
        let hidden: Vec<f64> =
            (0..h).map(|j| (b1[j] + (0..d).map(|k| row[k] as f64 * w1[k * h + j]).sum::<f64>()).max(0.0)).collect();
        let logits: Vec<f64> =
            (0..10).map(|c| b2[c] + (0..h).map(|j| hidden[j] * w2[j * 10 + c]).sum::<f64>()).collect();
        let max = logits.iter().copied().fold(f64::MIN, f64::max);
        hits += (logits[label as usize] >= max) as usize;
    }
    hits as f64 / data.len() as f64
}

#[test]
fn fast_dev_run_val_limits_and_max_time() {
    let (path, text) = digits();
    // fast_dev_run: two batches of training and validation, nothing written.
    let logs = tempdir("fast-dev-run");
    let s = fit(&path, &text, &logs, &["trainer.fast_dev_run=2".into()], None);
    assert_eq!((s.epochs, s.steps, s.last_checkpoint.is_none()), (1, 2, true));
    assert!(s.final_metrics.iter().any(|(k, _)| k == "val_acc"));
    assert!(!logs.join("lightning_logs").exists(), "a dev run writes no logs or checkpoints");

    // Validation every second epoch, on its first two batches (128 of 297 examples).
    let logs = tempdir("val-limits");
    let o: Vec<String> = [
        "trainer.max_epochs=4",
        "trainer.check_val_every_n_epoch=2",
        "trainer.limit_val_batches=2",
        "trainer.save_top_k=-1",
    ]
    .map(String::from)
    .into();
    let s = fit(&path, &text, &logs, &o, None);
    let vals = epoch_rows(std::slice::from_ref(&s.log_dir));
    assert_eq!(vals.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3], "validated after epochs 1 and 3 only");
    let data = trainer::data::load_csv(&root().join("examples/data/digits.csv.gz"), 1.0 / 16.0).unwrap();
    let (_, val) = trainer::data::split(&data, 297, 0);
    let first_128 = val.subset(&(0..128).collect::<Vec<_>>());
    for (epoch, acc, _) in vals {
        let ck = s.log_dir.join(format!("checkpoints/epoch={epoch}-step={}.safetensors", 23 * (epoch + 1)));
        let want = mlp_accuracy(&ck.canonicalize().unwrap(), &first_128);
        assert!((acc - want).abs() < 1e-6, "epoch {epoch}: val_acc {acc}, f64 oracle on 128 examples {want}");
    }

    // max_time: stops between steps, saving `last` at the step reached.
    let logs = tempdir("max-time");
    let o: Vec<String> =
        ["trainer.max_epochs=1000000", "trainer.max_time=1", "trainer.save_top_k=0"].map(String::from).into();
    let start = Instant::now();
    let s = fit(&path, &text, &logs, &o, None);
    assert_eq!(s.stop, trainer::Stop::MaxTime);
    assert!(start.elapsed() >= Duration::from_secs(1));
    let ck = trainer::checkpoint::load(s.last_checkpoint.as_ref().unwrap()).unwrap();
    assert_eq!(ck.meta.global_step, s.steps);
    // The Timer's state holds the training time; a resumed run counts it:
    // with the same max_time it has no time left and takes no step.
    let json = &ck.meta.callbacks;
    let at = json.find(r#""Timer":{"elapsed_s":""#).unwrap_or_else(|| panic!("no Timer state in {json}")) + 22;
    let hex = &json[at..at + 16];
    let trained = f64::from_bits(u64::from_str_radix(hex, 16).unwrap());
    assert!(trained >= 1.0, "{trained} s of training saved");
    let again = fit(&path, &text, &logs, &o, Some(trainer::Resume::Last));
    assert_eq!((again.stop, again.steps), (trainer::Stop::MaxTime, s.steps), "no time left after the resume");
    // Without max_time there is no Timer (checkpoints stay byte-identical across runs).
    let first = trainer::checkpoint::load(&full_last(&path, &text)).unwrap();
    assert!(!first.meta.callbacks.contains("Timer"), "{}", first.meta.callbacks);
}

/// `last.safetensors` of a one-epoch run without `max_time`.
fn full_last(path: &std::path::Path, text: &str) -> std::path::PathBuf {
    let s = fit(path, text, &tempdir("no-timer"), &["trainer.max_epochs=1".into()], None);
    s.last_checkpoint.expect("last is written")
}

/// The step whose gradients are not finite stops training before its
/// parameters (here -inf) can reach a checkpoint, though its loss is finite;
/// the same with the norm logged too (`log_grad_norm`).
#[test]
fn a_non_finite_gradient_stops_before_its_step_is_saved() {
    let dir = tempdir("nonfinite-grad");
    std::fs::write(dir.join("ones.csv"), "1,0\n".repeat(8)).unwrap();
    let model = dir.join("kink.jl");
    std::fs::write(&model, KINK).unwrap();
    let model = model.to_str().unwrap();
    for (run, extra) in [("plain", "trainer.log_grad_norm=false"), ("logged", "trainer.log_grad_norm=true")] {
        let logs = format!("trainer.default_root_dir={}", dir.join(run).display());
        let (code, _, err) = jlc_out(&["run", model, "--set", &logs, "--set", extra]);
        assert_eq!(code, 1, "{run}: {err}");
        assert!(
            err.contains("error: the gradients' largest |g| is inf at global step 0 (epoch 0, batch 0)"),
            "{run}: {err}"
        );
        assert!(err.contains("no checkpoint was saved before it"), "{run}: {err}");
        let ckpts = dir.join(run).join("lightning_logs/version_0/checkpoints");
        assert!(!ckpts.join("last.safetensors").exists(), "{run}: nothing saved after the bad step");
    }
    // Off: the infinite step goes through and the loss turns NaN one step later.
    let logs = format!("trainer.default_root_dir={}", dir.join("off").display());
    let (code, out, err) = jlc_out(&["run", model, "--set", &logs, "--set", "trainer.stop_on_nonfinite=false"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("train_loss_epoch=NaN"), "{out}");
}

/// `--debug-nans` names the operation that made the first non-finite value
/// of the failing step, replayed from the last good checkpoint (or from the
/// start) in the interpreter: an overflowing sum (DIVERGE: at step 19, after
/// a resume from epoch 9's checkpoint), the division of sqrt's gradient at
/// 0 (KINK, step 0), the log of a negative number, and seven more sources
/// in the forward (sqrt, 1 / 0, exp, log 0, an overflowing product, rsqrt,
/// pow): ten in all (TESTING.md #23).
#[test]
fn debug_nans_names_the_operation_that_made_the_value() {
    let dir = tempdir("debug-nans");
    std::fs::write(dir.join("ones.csv"), "1,0\n".repeat(8)).unwrap();
    // Sources at step 0 (w = 0): KINK with its loss term `sqrt(self.w)` replaced.
    let sources = [
        ("neglog", "log(self.w - 1.0)", "`log`", "the first NaN"),
        ("sqrt", "sqrt(self.w - 1.0)", "`sqrt`", "the first NaN"),
        ("recip", "1.0 / self.w", "`div`", "the first inf"),
        ("exp", "exp(self.w + 100.0)", "`exp`", "the first inf"),
        ("log0", "log(self.w)", "`log`", "the first -inf"),
        ("square", "(self.w + 1e30) * (self.w + 1e30)", "`mul`", "the first inf"),
        ("rsqrt", "rsqrt(self.w)", "`rsqrt`", "the first inf"),
        ("pow", "(self.w - 1.0) ^ 0.5", "`pow`", "the first NaN"),
    ];
    let mut cases = vec![
        ("diverge", DIVERGE.to_string(), "global step 19", "`reduce_sum`", "the first inf"),
        ("kink", KINK.to_string(), "global step 0", "`div`", "the first inf"),
    ];
    for (name, expr, op, value) in sources {
        cases.push((name, KINK.replace("sqrt(self.w)", expr), "global step 0", op, value));
    }
    assert_eq!(cases.len(), 10, "TESTING.md #23: ten seeded sources");
    for (name, text, step, op, value) in cases {
        let model = dir.join(format!("{name}.jl"));
        std::fs::write(&model, text).unwrap();
        let logs = format!("trainer.default_root_dir={}", dir.join(name).display());
        let (code, _, err) = jlc_out(&["run", model.to_str().unwrap(), "--set", &logs, "--debug-nans"]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(step), "{name}: {err}");
        let found =
            err.split("--debug-nans: the first non-finite value").nth(1).unwrap_or_else(|| panic!("{name}: {err}"));
        assert!(
            found.contains("made by instruction %") && found.contains(op) && found.contains(value),
            "{name}: {err}"
        );
    }
}

/// `min_epochs` holds off early stopping; `overfit_batches = n` is the
/// first n batches, unshuffled, for training and validation (the same run
/// as `shuffle = false` with both limits); `limit_test_batches` tests on
/// the first batches, after fit and in `jlc test` (against an f64 oracle).
#[test]
fn min_epochs_overfit_batches_and_limit_test_batches() {
    use crate::evaluate::{oracle_accuracy_first, table_value, QUADRANTS};
    let dir = tempdir("min-epochs-overfit");
    crate::checkpoints::write_idx(&dir, "train", 600, 42);
    crate::checkpoints::write_idx(&dir, "t10k", 230, 7);
    let model = dir.join("quadrants.jl");
    std::fs::write(&model, QUADRANTS).unwrap();
    let model = model.to_str().unwrap();
    let run = |root: &str, extra: &[&str]| {
        let logs = format!("trainer.default_root_dir={}", dir.join(root).display());
        let mut args = vec!["run", model, "--set", &logs, "--set", "trainer.max_epochs=8"];
        for e in extra {
            args.extend(["--set", e]);
        }
        jlc_out(&args)
    };
    // No validation ever improves by 2.0: patience 0 stops after the second epoch...
    let es = [
        "trainer.early_stopping_monitor=val_acc",
        "trainer.early_stopping_mode=max",
        "trainer.early_stopping_min_delta=2.0",
        "trainer.early_stopping_patience=0",
    ];
    let (code, out, err) = run("es", &es);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("stopped early after 2 epochs"), "{out}");
    // ... unless min_epochs asks for five.
    let (code, out, err) = run("es-min", &[&es[..], &["trainer.min_epochs=5"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("stopped early after 5 epochs") && err.contains("min_epochs = 5 is not reached"),
        "{out}\n{err}"
    );

    let (code, _, err) = run("overfit", &["trainer.overfit_batches=2", "trainer.max_epochs=3"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(
        "limits",
        &["data.shuffle=false", "trainer.limit_train_batches=2", "trainer.limit_val_batches=2", "trainer.max_epochs=3"],
    );
    assert_eq!(code, 0, "{err}");
    let metrics =
        |root: &str| std::fs::read_to_string(dir.join(root).join("lightning_logs/version_0/metrics.csv")).unwrap();
    assert_eq!(metrics("overfit"), metrics("limits"));
    assert!(metrics("overfit").lines().count() >= 4);

    // 230 test examples, batches of 50: two batches are the first 100.
    let (code, out, err) = run("limit-test", &["trainer.limit_test_batches=2", "trainer.max_epochs=1"]);
    assert_eq!(code, 0, "{err}");
    let ckpt = trainer::checkpoint::find_last(&dir.join("limit-test/lightning_logs")).unwrap();
    let want = oracle_accuracy_first(&dir, "t10k", &ckpt, 100);
    assert!((table_value(&out, "test_acc") - want).abs() < 1e-6, "{out} vs {want}");
    let logs = format!("trainer.default_root_dir={}", dir.join("limit-test").display());
    let (code, out, err) = jlc_out(&["test", model, "--set", &logs, "--set", "trainer.limit_test_batches=2"]);
    assert_eq!(code, 0, "{err}");
    assert!((table_value(&out, "test_acc") - want).abs() < 1e-6, "{out} vs {want}");
    assert!(err.starts_with("100 examples"), "{err}");
    // `jlc validate` honours limit_val_batches as `fit` does: one batch of
    // the 100-example validation split.
    let (code, _, err) = jlc_out(&["validate", model, "--set", &logs, "--set", "trainer.limit_val_batches=1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("50 examples"), "{err}");
}

/// `val_check_interval` validates within the epoch (an int: every n
/// batches; a float: every `int(f * 23)` batches), on the parameters of that
/// step (checked against an f64 oracle on the checkpoint a `max_steps` run
/// writes there); `num_sanity_val_steps` validates before training, logs
/// nothing, and is skipped on resume and in a dev run.
#[test]
fn val_check_interval_and_sanity_validation() {
    let (path, text) = digits();
    let run = |name: &str, extra: &[&str], resume: Option<trainer::Resume>| {
        let o: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let logs = tempdir(name);
        (fit(&path, &text, &logs, &o, resume), logs)
    };
    let val_steps = |s: &trainer::FitSummary| -> Vec<(usize, f64)> {
        let r = rows(&s.log_dir);
        let header: Vec<&str> = r[0].split(',').collect();
        let (step, acc) =
            (header.iter().position(|h| *h == "step").unwrap(), header.iter().position(|h| *h == "val_acc").unwrap());
        r[1..]
            .iter()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| !c[acc].is_empty())
            .map(|c| (c[step].parse().unwrap(), c[acc].parse().unwrap()))
            .collect()
    };
    // 23 batches per epoch: every 10 batches, and the epoch's end.
    let (every10, _) = run("val-interval-int", &["trainer.max_epochs=1", "trainer.val_check_interval=10"], None);
    let got = val_steps(&every10);
    assert_eq!(got.iter().map(|r| r.0).collect::<Vec<_>>(), [9, 19, 22]);
    assert_eq!(every10.sanity_val_batches, 2, "Lightning's default: two sanity batches");
    let (at10, _) = run("val-interval-at10", &["trainer.max_epochs=1", "trainer.max_steps=10"], None);
    let data = trainer::data::load_csv(&root().join("examples/data/digits.csv.gz"), 1.0 / 16.0).unwrap();
    let (_, val) = trainer::data::split(&data, 297, 0);
    let want = mlp_accuracy(at10.last_checkpoint.as_ref().unwrap(), &val);
    assert!((got[0].1 - want).abs() < 1e-6, "val_acc after 10 steps {}, f64 oracle {want}", got[0].1);

    // A fraction: int(23 * 0.25) = 5; all validation batches as the sanity check (5 of 64, 41).
    let (quarter, _) = run(
        "val-interval-frac",
        &["trainer.max_epochs=1", "trainer.val_check_interval=0.25", "trainer.num_sanity_val_steps=-1"],
        None,
    );
    assert_eq!(val_steps(&quarter).iter().map(|r| r.0).collect::<Vec<_>>(), [4, 9, 14, 19, 22]);
    assert_eq!(quarter.sanity_val_batches, 5);

    // The sanity check logs nothing: metrics.csv is byte-identical without it.
    let (none, _) = run("sanity-none", &["trainer.max_epochs=1", "trainer.num_sanity_val_steps=0"], None);
    let (two, logs) = run("sanity-two", &["trainer.max_epochs=1", "trainer.max_steps=5"], None);
    assert_eq!(none.sanity_val_batches, 0);
    assert_eq!(two.sanity_val_batches, 2);
    let (full, _) = run("sanity-full", &["trainer.max_epochs=1"], None);
    assert_eq!(rows(&none.log_dir), rows(&full.log_dir));
    // Resuming skips it, as does a dev run.
    let o: Vec<String> = ["trainer.max_epochs=1".to_string()].into();
    let resumed = fit(&path, &text, &logs, &o, Some(trainer::Resume::Last));
    assert_eq!((resumed.steps, resumed.sanity_val_batches), (23, 0));
    let (dev, _) = run("sanity-dev", &["trainer.fast_dev_run=2"], None);
    assert_eq!(dev.sanity_val_batches, 0);
}

/// A custom_vjp rule reaches the trainer's compiled step: `|w|` written as
/// `sqrt(w^2)` has a 0/0 gradient at w = 0 (training stops on it), and the
/// same with a rule that says the gradient there is 0 trains to the end
/// with w still 0 (and the forward optimized before autodiff keeps the
/// rule: that path is on by default).
#[test]
fn a_custom_vjp_rule_is_the_gradient_the_trainer_steps_with() {
    const ABS: &str = r#"
use optim.sgd
fn root(x: f32[N]) -> f32[N] = sqrt(x)
fn root_fwd(x: f32[N]) = (root(x), x)
fn root_bwd(x: f32[N], g: f32[N]) = where(x > 0.0, 0.5 * g / sqrt(x), 0.0)
model Abs {
    w: f32[1] = zeros()
    fn training_step(self, x: f32[B, 1], y: i32[B]) -> f32 = mean(ROOT(self.w * self.w) + 0.0 * x)
    fn configure_optimizers(self) = sgd(lr = 0.1)
}
data = csv("ones.csv") { batch_size = 8; shuffle = false }
trainer { max_epochs = 3 }
"#;
    let dir = tempdir("custom-vjp-train");
    std::fs::write(dir.join("ones.csv"), "1,0\n".repeat(8)).unwrap();
    for (run, root) in [("rule", "custom_vjp(root, root_fwd, root_bwd)"), ("plain", "root")] {
        let model = dir.join(format!("{run}.jl"));
        std::fs::write(&model, ABS.replace("ROOT", root)).unwrap();
        let logs = format!("trainer.default_root_dir={}", dir.join(run).display());
        let (code, out, err) = jlc_out(&["run", model.to_str().unwrap(), "--set", &logs]);
        if run == "plain" {
            assert_eq!(code, 1, "{out}{err}");
            assert!(err.contains("is NaN at global step 0"), "{err}");
            continue;
        }
        assert_eq!(code, 0, "{out}{err}");
        let last = dir.join(run).join("lightning_logs/version_0/checkpoints/last.safetensors");
        let ck = trainer::checkpoint::load(&last).unwrap();
        let w = ck.tensors.iter().find(|(k, _)| k == "w").unwrap().1.to_f64_vec();
        assert_eq!((ck.meta.global_step, w), (3, vec![0.0]));
    }
}

/// `limit_*_batches` as a fraction (Lightning's float form): that share of
/// the split's batches, rounded down, at least one; 1.0 is all; anything
/// else is a clear error.
#[test]
fn batch_limits_take_fractions() {
    let (path, text) = digits();
    let logs = tempdir("limit-fractions");
    // 23 training batches: half is 11; 297 validation examples are 5 batches
    // of 64: a quarter is 1 (the first 64 examples).
    let o: Vec<String> = ["trainer.max_epochs=2", "trainer.limit_train_batches=0.5", "trainer.limit_val_batches=0.25"]
        .map(String::from)
        .into();
    let s = fit(&path, &text, &logs, &o, None);
    assert_eq!(s.steps, 22);
    let data = trainer::data::load_csv(&root().join("examples/data/digits.csv.gz"), 1.0 / 16.0).unwrap();
    let (_, val) = trainer::data::split(&data, 297, 0);
    let first_64 = val.subset(&(0..64).collect::<Vec<_>>());
    let acc = s.final_metrics.iter().find(|(k, _)| k == "val_acc").unwrap().1;
    let ck = s.log_dir.join("checkpoints/epoch=1-step=22.safetensors");
    let want = mlp_accuracy(&ck.canonicalize().unwrap(), &first_64);
    assert!((acc - want).abs() < 1e-6, "val_acc {acc}, f64 oracle on the first 64 examples {want}");
    // 1.0 is every batch.
    let o: Vec<String> = ["trainer.max_epochs=1", "trainer.limit_train_batches=1.0"].map(String::from).into();
    assert_eq!(fit(&path, &text, &tempdir("limit-one"), &o, None).steps, 23);
    for bad in ["1.5", "-0.5", "true"] {
        let opts =
            trainer::FitOptions { overrides: vec![format!("trainer.limit_train_batches={bad}")], ..Default::default() };
        let e = trainer::fit(&path, &text, &opts).err().unwrap_or_else(|| panic!("{bad} accepted")).to_string();
        assert!(e.contains("a number of batches (an integer, 0 for all) or a fraction of them in (0, 1]"), "{e}");
    }
}
