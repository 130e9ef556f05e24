//! Benchmark: the trainer's overhead on W1 (shared/design/PERFORMANCE.md):
//! each epoch's wall time against the sum of its compiled step calls.
//!
//! Consumes `examples/fashion_mnist_mlp.jl` (784-256-256-10, Adam 1e-3,
//! batch 128: 468 steps per epoch) on Fashion-MNIST from
//! `/usr/share/datasets/fashion-mnist`, or on random IDX files of the same
//! shape when that is missing; produces a table on stdout: per epoch, the
//! time inside `Executable::run`, the training loop's wall time and the
//! whole epoch's (logs and queuing the epoch-end checkpoints, whose fsyncs
//! run on the writer thread during the next epoch; the last epoch waits for
//! its own), and
//! their ratios to the step time. The acceptance: epoch / steps <= 1.05.
//!
//! Run: `cargo bench --bench trainer_overhead [-- --epochs N] [--no-checkpoint] [--backend cpu|cuda]`
//! (`cuda` needs `--features cuda`; on the GPU the parameters stay on the
//! device, each step copies the batch in, and the loss and logs are read
//! every `log_every_n_steps` steps and at the epoch's end).
//! Not a test: nothing here asserts speed.

use std::path::{Path, PathBuf};

struct Args {
    epochs: usize,
    checkpoint: bool,
    backend: runtime::Backend,
}

fn parse_args() -> Args {
    let mut a = Args { epochs: 3, checkpoint: true, backend: runtime::Backend::Cpu };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        match s.as_str() {
            "--epochs" => a.epochs = it.next().and_then(|n| n.parse().ok()).expect("--epochs N"),
            "--no-checkpoint" => a.checkpoint = false,
            "--backend" => {
                a.backend = it.next().and_then(|b| runtime::Backend::parse(&b)).expect("--backend cpu|cuda");
            }
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            other => panic!("unknown argument `{other}` (expected --epochs N, --no-checkpoint, --backend B)"),
        }
    }
    a
}

/// Random IDX files of Fashion-MNIST's training shape (60,000 28x28 images, 10 classes).
fn random_idx(dir: &Path) {
    let n: u32 = 60_000;
    let mut rng = compiler::ir::generate::Rng(0xfa5e);
    let mut images = Vec::with_capacity(16 + 784 * n as usize);
    for v in [0x0803u32, n, 28, 28] {
        images.extend_from_slice(&v.to_be_bytes());
    }
    images.extend((0..784 * n as usize).map(|_| rng.below(256) as u8));
    let mut labels = Vec::with_capacity(8 + n as usize);
    for v in [0x0801u32, n] {
        labels.extend_from_slice(&v.to_be_bytes());
    }
    labels.extend((0..n).map(|_| rng.below(10) as u8));
    std::fs::write(dir.join("train-images-idx3-ubyte"), images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels).unwrap();
}

fn main() {
    let args = parse_args();
    // JLC_REPO_ROOT: the checkout a prebuilt binary runs in (the GPU check).
    let root: PathBuf = std::env::var_os("JLC_REPO_ROOT").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into);
    let model = root.join("examples/fashion_mnist_mlp.jl");
    let text = std::fs::read_to_string(&model).unwrap();
    let work: PathBuf = std::env::temp_dir().join(format!("jlc-trainer-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let fashion = Path::new("/usr/share/datasets/fashion-mnist");
    let (data, what) = if fashion.join("train-images-idx3-ubyte.gz").exists() {
        (fashion.to_path_buf(), "Fashion-MNIST")
    } else {
        random_idx(&work);
        (work.clone(), "random IDX data (Fashion-MNIST not installed)")
    };
    let text = text.replace("/usr/share/datasets/fashion-mnist", &data.display().to_string());
    let overrides = vec![
        format!("trainer.default_root_dir={}", work.display()),
        format!("trainer.max_epochs={}", args.epochs),
        format!("trainer.enable_checkpointing={}", args.checkpoint),
        // W1 is training only: no validation split, no test afterwards.
        "data.val_split=0".to_string(),
        "trainer.test_after_fit=false".to_string(),
        "trainer.checkpoint_monitor=train_loss_epoch".to_string(),
        "trainer.checkpoint_mode=min".to_string(),
    ];
    let opts = trainer::FitOptions { overrides, backend: args.backend, ..Default::default() };
    let summary = trainer::fit(&model, &text, &opts).unwrap_or_else(|e| panic!("{e}"));
    let steps_per_epoch = summary.steps / summary.timing.len().max(1);
    println!(
        "W1 on {what}, backend {:?}: {steps_per_epoch} steps per epoch, checkpoints {}",
        args.backend,
        if args.checkpoint { "on (epoch file + last, fsync on the writer thread)" } else { "off" }
    );
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>8} {:>11} {:>10}",
        "epoch", "steps_s", "loop_s", "epoch_s", "step_ms", "loop/steps", "epoch/steps"
    );
    for (i, t) in summary.timing.iter().enumerate() {
        let (s, l, e) = (t.steps.as_secs_f64(), t.train_loop.as_secs_f64(), t.epoch.as_secs_f64());
        println!(
            "{i:>5} {s:>10.3} {l:>10.3} {e:>10.3} {:>8.2} {:>11.4} {:>10.4}",
            s * 1e3 / steps_per_epoch as f64,
            l / s,
            e / s
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
