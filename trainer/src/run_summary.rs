//! What a run reports about itself before training: the model summary
//! printed at the start (parameters, data, compile time) and the
//! `hparams.yaml` written beside the logs.

use crate::config::{DataConfig, TrainerConfig, ValCheckInterval};
use crate::data::Dataset;
use compiler::lower::gradients::ClipAlgorithm;
use compiler::lower::{ParamKind, TrainPrograms};
use std::path::Path;

/// How the summary marks a parameter: trained, frozen or a buffer.
fn param_kind(p: &compiler::lower::value::ParamSpec) -> &'static str {
    match p.kind {
        ParamKind::Trained => "",
        ParamKind::Frozen => " (frozen)",
        ParamKind::Buffer => " (buffer)",
    }
}

/// The model summary: one row per parameter (name, type, count), then the totals.
pub(crate) fn print_summary(
    progs: &TrainPrograms,
    compile_ms: f64,
    train: &Dataset,
    val: &Dataset,
    test: Option<&Dataset>,
) {
    let count = |kind: &str| -> usize {
        progs.params.iter().filter(|p| param_kind(p) == kind).map(|p| p.ty.shape.num_elements()).sum()
    };
    let (total, frozen, buffers) = (count(""), count(" (frozen)"), count(" (buffer)"));
    // Columns as wide as their widest entry, so long types stay aligned.
    let name_w = progs.params.iter().map(|p| p.path.len()).chain([4]).max().unwrap_or(4);
    let ty_w = progs.params.iter().map(|p| p.ty.to_string().len()).chain([4]).max().unwrap_or(4);
    eprintln!("   | {:<name_w$} | {:<ty_w$} | {:>8}", "Name", "Type", "Params");
    for (i, p) in progs.params.iter().enumerate() {
        eprintln!(
            "{i:<3}| {:<name_w$} | {:<ty_w$} | {:>8}{}",
            p.path,
            p.ty.to_string(),
            p.ty.shape.num_elements(),
            param_kind(p)
        );
    }
    let mut others = Vec::new();
    if frozen > 0 {
        others.push(format!("{frozen} frozen"));
    }
    if buffers > 0 {
        others.push(format!("{buffers} in buffers (not trained)"));
    }
    let others = if others.is_empty() { String::new() } else { format!(" and {}", others.join(" and ")) };
    eprintln!("{total} trainable params{others} in model `{}`; optimizer {}", progs.model_name, progs.optimizer);
    let test = test.map(|t| format!(", {} test", t.len())).unwrap_or_default();
    eprintln!(
        "train step: {} IR instructions; compiled in {compile_ms:.0} ms; {} training and {} validation examples{test}",
        progs.train_step.insts.len(),
        train.len(),
        val.len()
    );
}

/// A mode as the settings spell it.
fn mode_name(mode: crate::config::Mode) -> &'static str {
    match mode {
        crate::config::Mode::Min => "min",
        crate::config::Mode::Max => "max",
    }
}

pub(crate) fn hparams_yaml(data: &DataConfig, trainer: &TrainerConfig, progs: &TrainPrograms, path: &Path) -> String {
    let ck = &trainer.checkpoint;
    let mut lines = vec![
        format!("model_file: {:?}", path.display().to_string()),
        // As the trainer setting gives it, with its arguments, so that the
        // file re-runs this configuration: `--set "trainer.model=..."`.
        format!("model: {}", trainer.model.as_deref().unwrap_or(&progs.model_name)),
        // Parameter groups' descriptions hold `: `, which YAML reads as a mapping.
        if progs.optimizer.chars().all(|c| c.is_alphanumeric() || c == '_') {
            format!("optimizer: {}", progs.optimizer)
        } else {
            format!("optimizer: {:?}", progs.optimizer)
        },
        "data:".into(),
        format!("  source: {}", format!("{:?}", data.source).to_lowercase()),
        format!("  path: {:?}", data.path),
        format!("  scale: {}", data.scale),
        format!("  batch_size: {}", data.batch_size),
        format!("  val_split: {}", data.val_split),
        // As the run takes it: overfit_batches trains on fixed batches.
        format!("  shuffle: {}", data.shuffle && trainer.overfit_batches == 0),
    ];
    if let Some(s) = &data.synthetic {
        // What is generated (all of it: `path` is the generator's name).
        lines.push(format!(
            "  synthetic: {{ n: {}, test: {}, features: {}, classes: {}, noise: {}, seed: {} }}",
            s.n, s.n_test, s.features, s.classes, s.noise, s.seed
        ));
    } else {
        lines.push(format!("  test: {:?}", data.test.as_deref().unwrap_or("")));
    }
    if data.seq_len > 0 {
        lines.push(format!("  seq_len: {}", data.seq_len));
    }
    // The arrays an NPZ or safetensors source reads, where given.
    for (key, value) in [("x_key", &data.x_key), ("y_key", &data.y_key)] {
        if !value.is_empty() {
            lines.push(format!("  {key}: {value:?}"));
        }
    }
    if let Some((x, y)) = &data.test_keys {
        lines.push(format!("  test_keys: [{x:?}, {y:?}]"));
    }
    if data.csv_targets != crate::data::CsvTargets::Class {
        lines.push(format!("  y: {}", data.csv_targets.setting()));
    }
    // Every line below is a setting, as `--set trainer.KEY=VALUE` takes it.
    // Not where the logs go (`default_root_dir`, `name`): the run directory
    // holds this file, and a checkpoint (which holds it too) stays the same
    // bytes wherever its run was written.
    lines.extend([
        "trainer:".into(),
        format!("  max_epochs: {}", trainer.max_epochs),
        format!("  seed: {}", trainer.seed),
        format!("  log_every_n_steps: {}", trainer.log_every_n_steps),
        format!("  limit_train_batches: {}", trainer.limit_train_batches),
        format!("  limit_val_batches: {}", trainer.limit_val_batches),
        format!("  limit_test_batches: {}", trainer.limit_test_batches),
        format!("  limit_predict_batches: {}", trainer.limit_predict_batches),
        format!("  min_epochs: {}", trainer.min_epochs),
        format!("  overfit_batches: {}", trainer.overfit_batches),
        format!("  check_val_every_n_epoch: {}", trainer.check_val_every_n_epoch),
        format!(
            "  val_check_interval: {}",
            match trainer.val_check_interval {
                ValCheckInterval::Batches(n) => n.to_string(),
                ValCheckInterval::Fraction(f) => format!("{f:?}"),
            }
        ),
        format!("  num_sanity_val_steps: {}", trainer.num_sanity_val_steps.map_or(-1, |n| n as i64)),
        format!("  max_steps: {}", trainer.max_steps),
        format!("  enable_checkpointing: {}", trainer.enable_checkpointing),
        format!("  test_after_fit: {}", trainer.test_after_fit),
        format!("  stop_on_nonfinite: {}", trainer.stop_on_nonfinite),
        format!("  flush_denormals: {}", trainer.flush_denormals),
        format!("  threads: {}", trainer.threads),
        format!("  nonfinite_metrics: {:?}", trainer.nonfinite_metrics.join(",")),
        format!("  checkpoint_monitor: {:?}", ck.monitor.as_deref().unwrap_or("")),
        format!("  checkpoint_mode: {:?}", mode_name(ck.mode)),
        format!("  checkpoint_filename: {:?}", ck.filename),
        format!("  save_top_k: {}", ck.save_top_k.map_or(-1, |k| k as i64)),
        format!("  save_last: {}", ck.save_last),
        format!("  checkpoint_every_n_train_steps: {}", ck.every_n_train_steps),
        format!("  checkpoint_every_n_epochs: {}", ck.every_n_epochs),
        format!("  gradient_clip_val: {}", trainer.grad.clip.map_or(0.0, |c| c.val)),
        format!(
            "  gradient_clip_algorithm: {:?}",
            match trainer.grad.clip.map(|c| c.algorithm) {
                Some(ClipAlgorithm::Value) => "value",
                _ => "norm",
            }
        ),
        format!("  accumulate_grad_batches: {}", trainer.grad.accumulate),
        format!("  log_grad_norm: {}", trainer.grad.log_grad_norm),
        format!("  log_lr: {}", trainer.grad.log_lr),
        format!(
            "  logger: {:?}",
            [("csv", trainer.loggers.csv), ("tensorboard", trainer.loggers.tensorboard)]
                .iter()
                .filter(|(_, on)| *on)
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(",")
        ),
    ]);
    // In seconds; none when the run has no time limit.
    if let Some(t) = trainer.max_time {
        lines.push(format!("  max_time: {:?}", t.as_secs_f64()));
    }
    if let Some(es) = &trainer.early_stopping {
        lines.push(format!("  early_stopping_monitor: {:?}", es.monitor));
        lines.push(format!("  early_stopping_mode: {:?}", mode_name(es.mode)));
        lines.push(format!("  early_stopping_patience: {}", es.patience));
        lines.push(format!("  early_stopping_min_delta: {}", es.min_delta));
    }
    lines.join("\n") + "\n"
}
