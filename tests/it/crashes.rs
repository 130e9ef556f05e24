//! Crashes and full disks while checkpoints are written: `jlc run` killed
//! with SIGKILL at random moments never leaves a torn checkpoint (every
//! `.safetensors` file loads strictly, at a consistent position) and the
//! run resumes from it to the same tensors as an uninterrupted run; a full
//! disk stops the run with the path and the bytes needed, and the previous
//! checkpoint stays intact.

use crate::checkpoints::bits;
use crate::examples::tempdir;
use compiler::ir::generate::Rng as SplitMix;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A 1,300-parameter MLP with Adam: 67 kB checkpoints, 4 steps per epoch,
/// and (with fsync) tens of milliseconds per epoch, so that kills land in
/// every phase: compiling, training, writing, renaming, deleting old files.
const SMALL: &str = r#"
use nn.{Linear, relu}
use losses.cross_entropy
use optim.adam
model Small {
    l1: Linear(16, 256)
    head: Linear(256, 4)
    fn training_step(self, x: f32[B, 16], y: i32[B]) -> f32 {
        cross_entropy(self.head(relu(self.l1(x))), y)
    }
    fn configure_optimizers(self) = adam(lr = 1e-3)
}
data = csv("small.csv") { batch_size = 4 }
trainer { max_epochs = 1000000; save_top_k = 2; test_after_fit = false }
"#;

const STEPS_PER_EPOCH: usize = 4;
/// Parameters and two Adam moments, f32: 3 * 4 * (16*256 + 256 + 256*4 + 4) bytes.
const TENSOR_BYTES: u64 = 3 * 4 * (16 * 256 + 256 + 256 * 4 + 4);

fn setup(name: &str) -> (PathBuf, PathBuf) {
    let dir = tempdir(name);
    let mut rng = SplitMix(0xda7a);
    let mut csv = String::new();
    for _ in 0..16 {
        let row: Vec<String> = (0..16).map(|_| format!("{}", (rng.below(17) as f64 - 8.0) / 8.0)).collect();
        csv.push_str(&format!("{},{}\n", row.join(","), rng.below(4)));
    }
    std::fs::write(dir.join("small.csv"), csv).unwrap();
    let model = dir.join("small.jl");
    std::fs::write(&model, SMALL).unwrap();
    (dir, model)
}

/// The checkpoint names and types of the model, as the trainer expects them.
fn expected_names(model: &Path) -> Vec<(String, compiler::ir::Type)> {
    let text = std::fs::read_to_string(model).unwrap();
    let (prog, _) = compiler::lower::load(&model.display().to_string(), &text);
    let x = compiler::ir::Type::new(compiler::ir::DType::F32, &[4, 16]);
    let y = compiler::ir::Type::new(compiler::ir::DType::I32, &[4]);
    let progs = compiler::compile_training(&prog, None, &x, &y, &Default::default()).unwrap();
    trainer::fit::checkpoint_names(&progs)
}

/// Loads every finished checkpoint under `ckpt_dir` strictly and checks
/// its position; returns `last.safetensors`'s epoch if there is one.
/// `last` is written after each epoch's own file, so a kill can leave at
/// most one epoch file newer than `last` (or than nothing).
fn check_dir(ckpt_dir: &Path, names: &[(String, compiler::ir::Type)], what: &str) -> Option<usize> {
    let (last_epoch, newest_file) = read_dir_checked(ckpt_dir, names, what);
    let newest_allowed = last_epoch.map_or(1, |e| e + 1);
    assert!(
        newest_file.is_none_or(|e| e <= newest_allowed),
        "{what}: an epoch-{} checkpoint exists but `last` is {last_epoch:?}: `last` was lost",
        newest_file.unwrap()
    );
    last_epoch
}

/// `check_dir`'s reading: (`last`'s epoch, the newest other file's epoch).
fn read_dir_checked(
    ckpt_dir: &Path,
    names: &[(String, compiler::ir::Type)],
    what: &str,
) -> (Option<usize>, Option<usize>) {
    let (mut last_epoch, mut newest_file) = (None, None::<usize>);
    let Ok(entries) = std::fs::read_dir(ckpt_dir) else { return (None, None) };
    for entry in entries {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if file.starts_with('.') {
            continue; // an unfinished temp file of the killed process
        }
        let mut ck = trainer::checkpoint::load(&path).unwrap_or_else(|e| panic!("{what}: a torn checkpoint: {e}"));
        ck.take_strict(&file, names).unwrap_or_else(|e| panic!("{what}: {e}"));
        let m = &ck.meta;
        // Checkpoints are written at epoch ends only: the next epoch starts at batch 0.
        assert!(m.epoch >= 1 && m.batch == 0, "{what}: {file} at epoch {} batch {}", m.epoch, m.batch);
        assert_eq!(m.global_step, m.epoch * STEPS_PER_EPOCH, "{what}: {file}");
        if file == "last.safetensors" {
            last_epoch = Some(m.epoch);
        } else {
            assert_eq!(file, format!("epoch={}-step={}.safetensors", m.epoch - 1, m.global_step), "{what}");
            newest_file = newest_file.max(Some(m.epoch));
        }
    }
    (last_epoch, newest_file)
}

/// `jlc run` on `model` logging under `root`, with `--set` overrides and `--resume`.
fn spawn(model: &Path, root: &Path, sets: &[String], resume: Option<&Path>) -> std::process::Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jlc"));
    cmd.arg("run").arg(model).arg("--set").arg(format!("trainer.default_root_dir={}", root.display()));
    for s in sets {
        cmd.arg("--set").arg(s);
    }
    if let Some(p) = resume {
        cmd.arg("--resume").arg(p);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

fn ckpt_dir(root: &Path, version: usize) -> PathBuf {
    root.join(format!("lightning_logs/version_{version}/checkpoints"))
}

fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map_or(0, |d| d.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.')).count())
}

#[test]
fn sigkill_during_training_never_leaves_a_torn_checkpoint_and_resumes() {
    // JLC_KILL_POINTS=500 for a long soak; the default (the issue's 100)
    // takes about a minute here.
    let points: usize = std::env::var("JLC_KILL_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let (dir, model) = setup("kill9");
    let names = expected_names(&model);

    // Calibrate: how long until the first checkpoint exists.
    let root = dir.join("calibrate");
    let started = Instant::now();
    let mut child = spawn(&model, &root, &[], None);
    while !ckpt_dir(&root, 0).join("last.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint after 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    let first = started.elapsed().as_secs_f64() * 1e3;
    child.kill().unwrap();
    child.wait().unwrap();

    let seed = compiler::ir::generate::run_seed(0x0c1a_5e9d);
    let mut rng = SplitMix(seed);
    let mut resumed: Vec<(usize, PathBuf)> = Vec::new();
    let mut temps_left = 0;
    let mut mid_write = 0;
    for i in 0..points {
        // A quarter of the kills before the first checkpoint, a quarter as
        // soon as a checkpoint's temp file appears (in the middle of a
        // write), the rest at random times while training.
        let (ms, aim) = match rng.below(4) {
            0 => (rng.uniform(0.0, first), false),
            1 => (first + 2000.0, true),
            _ => (first + rng.uniform(0.0, 400.0), false),
        };
        let what = format!("seed {seed:#x}, kill {i} after {ms:.0} ms (aimed at a write: {aim})");
        let root = dir.join(format!("kill-{i}"));
        let started = Instant::now();
        let mut child = spawn(&model, &root, &[], None);
        if aim {
            let deadline = Duration::from_secs_f64(ms / 1e3);
            while temp_files(&ckpt_dir(&root, 0)) == 0 && started.elapsed() < deadline {
                std::thread::sleep(Duration::from_micros(50));
            }
            mid_write += (temp_files(&ckpt_dir(&root, 0)) > 0) as usize;
        } else {
            std::thread::sleep(Duration::from_secs_f64(ms / 1e3));
        }
        child.kill().unwrap(); // SIGKILL: no handler runs
        child.wait().unwrap();
        let killed = ckpt_dir(&root, 0);
        temps_left += temp_files(&killed);
        let Some(epoch) = check_dir(&killed, &names, &what) else { continue };
        // Resume for one more epoch: it finishes and removes the dead process's temp files.
        let last = killed.join("last.safetensors");
        let sets = [format!("trainer.max_epochs={}", epoch + 1), "trainer.save_top_k=-1".to_string()];
        let out = spawn(&model, &root, &sets, Some(&last)).wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: the resume from epoch {epoch} failed: {err}");
        assert_eq!(temp_files(&killed), 0, "{what}: stray temp files are removed on start");
        assert_eq!(check_dir(&ckpt_dir(&root, 1), &names, &what), Some(epoch + 1), "{what}");
        resumed.push((epoch, root));
    }
    eprintln!(
        "seed {seed:#x}: {points} kills ({mid_write} with a temp file present), first checkpoint after {first:.0} ms, \
         {} resumed, {temps_left} temp files left by kills",
        resumed.len()
    );
    assert!(!resumed.is_empty(), "seed {seed:#x}: no kill landed after the first checkpoint");
    assert!(points < 20 || mid_write > 0, "seed {seed:#x}: no kill landed while a checkpoint was being written");

    // The uninterrupted run: every resumed run ends with its tensors, bitwise.
    let end = resumed.iter().map(|(e, _)| e + 1).max().unwrap();
    let reference = dir.join("reference");
    let text = std::fs::read_to_string(&model).unwrap();
    let sets = vec![format!("trainer.max_epochs={end}"), "trainer.save_top_k=-1".to_string()];
    crate::checkpoints::fit(&model, &text, &reference, &sets, None);
    for (epoch, root) in &resumed {
        let got = trainer::checkpoint::load(&ckpt_dir(root, 1).join("last.safetensors")).unwrap();
        let want_path =
            ckpt_dir(&reference, 0).join(format!("epoch={epoch}-step={}.safetensors", (epoch + 1) * STEPS_PER_EPOCH));
        let want = trainer::checkpoint::load(&want_path).unwrap();
        assert_eq!(got.tensors.len(), want.tensors.len());
        for ((n, a), (m, b)) in got.tensors.iter().zip(&want.tensors) {
            assert_eq!((n, bits(a)), (m, bits(b)), "seed {seed:#x}: resumed from epoch {epoch}: tensor {n}");
        }
    }
}

/// Unmounts a tmpfs when the test ends, passed or failed.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_with_the_path_and_the_bytes_and_keeps_the_previous_checkpoint() {
    let (dir, model) = setup("enospc");
    let disk = dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    // 192 KiB: hparams.yaml and metrics.csv (a page each), epoch 0's file and
    // `last` (67 kB each), then epoch 1's file does not fit.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=192k", "tmpfs"])
        .arg(&disk)
        .stderr(Stdio::piped())
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped: cannot mount a tmpfs ({}); checkpoint::tests covers ENOSPC by injection",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount ({e}); checkpoint::tests covers ENOSPC by injection");
            return;
        }
    }
    let _unmount = Mount(disk.clone());
    let text = std::fs::read_to_string(&model).unwrap();
    let opts = trainer::FitOptions {
        overrides: vec![format!("trainer.default_root_dir={}", disk.display()), "trainer.save_top_k=-1".into()],
        ..Default::default()
    };
    let err = trainer::fit(&model, &text, &opts).unwrap_err();
    let msg = err.to_string();
    let ck = ckpt_dir(&disk, 0).canonicalize().unwrap();
    let failed = ck.join(format!("epoch=1-step={}.safetensors", 2 * STEPS_PER_EPOCH));
    assert!(matches!(err, trainer::FitError::Checkpoint(_)), "{msg}");
    let prefix = format!("checkpoint {}: cannot write ", failed.display());
    assert!(msg.starts_with(&prefix), "{msg}");
    // The file's size: the tensors plus a header that grows with the callbacks' list of kept files.
    let needed: u64 = msg[prefix.len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((TENSOR_BYTES..TENSOR_BYTES + 8192).contains(&needed), "{msg}");
    assert!(msg.contains("No space left on device") && msg.contains(&format!("{needed} bytes are needed")), "{msg}");
    let newest = ck.join("last.safetensors");
    assert!(msg.contains(&format!("the newest checkpoint written whole is {}", newest.display())), "{msg}");
    // The previous checkpoint is intact, and nothing half-written is left.
    let last = trainer::checkpoint::load(&ck.join("last.safetensors")).unwrap();
    assert_eq!((last.meta.epoch, last.meta.global_step), (1, STEPS_PER_EPOCH));
    let epoch0 = ck.join(format!("epoch=0-step={STEPS_PER_EPOCH}.safetensors"));
    assert_eq!(std::fs::read(&epoch0).unwrap(), std::fs::read(ck.join("last.safetensors")).unwrap());
    assert!(std::fs::metadata(&epoch0).unwrap().len() <= needed);
    assert!(!failed.exists() && temp_files(&ck) == 0);
}
