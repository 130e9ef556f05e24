//! `fit`: Lightning's training loop around one compiled step program.
//!
//! Per batch the trainer calls the compiled step once (forward, backward and
//! optimizer update are all inside it), then swaps in the new parameters and
//! optimizer state. Validation runs a separately compiled program that has
//! no parameter outputs, so it cannot train.

use crate::config::{self, DataConfig, TrainerConfig};
use crate::data::{self, Dataset};
use crate::logger::CsvLogger;
use crate::rng::Rng;
use compiler::diagnostic::Diagnostic;
use compiler::ir::{DType, Tensor, Type};
use compiler::lower::{Init, ParamSpec, TrainPrograms};
use compiler::span::SourceMap;
use indicatif::{ProgressBar, ProgressStyle};
use runtime::{Backend, Executable};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// Rendered diagnostics (the model file has errors).
    #[error("{rendered}")]
    Diagnostics { rendered: String, count: usize },
    #[error("{0}")]
    Data(#[from] data::DataError),
    #[error("{0}")]
    Runtime(#[from] runtime::Error),
    #[error("{0}")]
    Config(String),
    #[error("cannot write logs: {0}")]
    Io(#[from] std::io::Error),
}

pub struct FitOptions {
    pub overrides: Vec<String>,
    pub backend: Backend,
    pub color: bool,
    /// Show the progress bar (off when stderr is not a terminal, in tests).
    pub progress: bool,
    pub compiler: compiler::Options,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub log_dir: PathBuf,
    pub epochs: usize,
    pub steps: usize,
    /// The last epoch's aggregated metrics (`train_loss_epoch`, `val_acc`, ...).
    pub final_metrics: Vec<(String, f64)>,
    pub params: Vec<(ParamSpec, Tensor)>,
}

fn diagnostics(diags: Vec<Diagnostic>, sources: &SourceMap, color: bool) -> FitError {
    FitError::Diagnostics { rendered: compiler::diagnostic::render_all(&diags, sources, color), count: diags.len() }
}

/// Trains the model file at `path` (whose text is `text`) as its `data` and `trainer` sections say.
pub fn fit(path: &Path, text: &str, opts: &FitOptions) -> Result<FitSummary, FitError> {
    let (prog, diags) = compiler::lower::load(&path.display().to_string(), text);
    let err = |d: Vec<Diagnostic>| diagnostics(d, &prog.sources, opts.color);
    let mut all = diags;
    all.extend(compiler::lower::check_program(&prog));
    if all.iter().any(Diagnostic::is_error) {
        return Err(err(all));
    }
    let sections = compiler::lower::training_sections(&prog).map_err(err)?;
    let (mut data_sec, mut trainer_sec) = (sections.data, sections.trainer);
    for spec in &opts.overrides {
        config::apply_override(&mut data_sec, &mut trainer_sec, spec).map_err(FitError::Config)?;
    }
    let Some(data_sec) = data_sec else {
        return Err(FitError::Config(format!("{}: a training run needs a `data = csv(...)` section", path.display())));
    };
    let data_cfg = config::data_config(&data_sec).map_err(err)?;
    let trainer_cfg = config::trainer_config(trainer_sec.as_ref()).map_err(err)?;

    // Data paths are relative to the model file's directory.
    let data_path = path.parent().unwrap_or(Path::new(".")).join(&data_cfg.path);
    let dataset = data::load_csv(&data_path, data_cfg.scale as f32)?;
    if data_cfg.val_split >= dataset.len() {
        return Err(FitError::Config(format!(
            "val_split = {} leaves no training data: {} has {} examples",
            data_cfg.val_split,
            data_path.display(),
            dataset.len()
        )));
    }
    let (train, val) = data::split(&dataset, data_cfg.val_split, trainer_cfg.seed);
    let bs = data_cfg.batch_size;
    if train.len() < bs {
        return Err(FitError::Config(format!("batch_size = {bs} is larger than the {} training examples", train.len())));
    }
    let d = dataset.n_features;

    let compile_start = Instant::now();
    let x_ty = Type::new(DType::F32, &[bs, d]);
    let y_ty = Type::new(DType::I32, &[bs]);
    let progs = compiler::compile_training(&prog, trainer_sec.as_ref(), &x_ty, &y_ty, &opts.compiler).map_err(err)?;
    let mut step_exe = Executable::compile(progs.train_step.clone(), opts.backend)?;
    let mut val_exes = Vec::new();
    if let Some(v) = &progs.val_step {
        val_exes.push((bs, Executable::compile(v.clone(), opts.backend)?));
        let rem = val.len() % bs;
        if rem > 0 {
            // Static shapes per compile: the last, smaller batch gets its own program.
            let small = compiler::compile_training(&prog, trainer_sec.as_ref(), &Type::new(DType::F32, &[rem, d]), &Type::new(DType::I32, &[rem]), &opts.compiler)
                .map_err(err)?;
            if let Some(vs) = small.val_step {
                val_exes.push((rem, Executable::compile(vs, opts.backend)?));
            }
        }
    }
    let compile_ms = compile_start.elapsed().as_secs_f64() * 1e3;
    print_summary(&progs, compile_ms, &train, &val);

    let mut params = init_params(&progs.params, trainer_cfg.seed);
    let mut states: Vec<Tensor> = progs.params.iter().flat_map(|p| (0..progs.states_per_param).map(|_| Tensor::zeros(&p.ty))).collect();

    let mut metric_names: Vec<String> = Vec::new();
    metric_names.push("train_loss_step".into());
    metric_names.push("train_loss_epoch".into());
    for (n, _) in &progs.train_logs {
        metric_names.push(format!("{n}_step"));
        metric_names.push(format!("{n}_epoch"));
    }
    metric_names.extend(progs.val_logs.iter().map(|(n, _)| n.clone()));
    let hparams = hparams_yaml(&data_cfg, &trainer_cfg, &progs, path);
    let mut logger = CsvLogger::create(&Path::new(&trainer_cfg.default_root_dir).to_path_buf(), &trainer_cfg.name, &metric_names, &hparams)?;

    let n_batches = {
        let full = train.len() / bs;
        if trainer_cfg.limit_train_batches > 0 { full.min(trainer_cfg.limit_train_batches) } else { full }
    };
    let mut global_step = 0usize;
    let mut final_metrics = Vec::new();
    let n_params = progs.params.len();
    let n_states = states.len();
    for epoch in 0..trainer_cfg.max_epochs {
        let order = if data_cfg.shuffle { Rng::derive(trainer_cfg.seed.wrapping_add(epoch as u64), "shuffle").permutation(train.len()) } else { (0..train.len()).collect() };
        let bar = if opts.progress { ProgressBar::new(n_batches as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("Epoch {prefix}: {percent:>3}%|{bar:25}| {pos}/{len} [{elapsed}<{eta}, {its}] {msg}")
                .expect("valid template")
                .with_key("its", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.2}it/s", state.per_sec());
                })
                .progress_chars("█▉ "),
        );
        bar.set_prefix(epoch.to_string());
        let mut loss_sum = 0.0;
        let mut log_sums = vec![0.0; progs.train_logs.len()];
        for b in 0..n_batches {
            let (x, y) = train.batch(&order, b * bs, bs);
            let mut inputs = Vec::with_capacity(n_params + n_states + 3);
            inputs.append(&mut params);
            inputs.append(&mut states);
            inputs.push(Tensor::scalar_f32((global_step + 1) as f32));
            inputs.push(x);
            inputs.push(y);
            let mut outs = step_exe.run(&inputs)?.into_iter();
            params = outs.by_ref().take(n_params).collect();
            states = outs.by_ref().take(n_states).collect();
            let loss = outs.next().expect("loss output").scalar_value();
            let logs: Vec<f64> = outs.map(|t| t.scalar_value()).collect();
            global_step += 1;
            loss_sum += loss;
            for (s, v) in log_sums.iter_mut().zip(&logs) {
                *s += v;
            }
            if global_step % trainer_cfg.log_every_n_steps == 0 {
                let mut row = vec![("train_loss_step".to_string(), loss)];
                row.extend(progs.train_logs.iter().zip(&logs).map(|((n, _), v)| (format!("{n}_step"), *v)));
                logger.log(epoch, global_step - 1, &row)?;
            }
            let mut msg = format!("train_loss={loss:.4}");
            for ((n, prog_bar), v) in progs.train_logs.iter().zip(&logs) {
                if *prog_bar && n != "train_loss" {
                    msg.push_str(&format!(" {n}={v:.4}"));
                }
            }
            bar.set_message(msg);
            bar.inc(1);
        }
        let denom = n_batches.max(1) as f64;
        let mut epoch_metrics = vec![("train_loss_epoch".to_string(), loss_sum / denom)];
        epoch_metrics.extend(progs.train_logs.iter().zip(&log_sums).map(|((n, _), s)| (format!("{n}_epoch"), s / denom)));
        // Validation: every logged value averaged over examples (weighted by batch size).
        if !val_exes.is_empty() && !val.is_empty() {
            let order: Vec<usize> = (0..val.len()).collect();
            let mut sums = vec![0.0; progs.val_logs.len()];
            let mut start = 0;
            while start < val.len() {
                let size = (val.len() - start).min(bs);
                let exe = &mut val_exes.iter_mut().find(|(s, _)| *s == size).expect("a program per batch size").1;
                let (x, y) = val.batch(&order, start, size);
                let mut inputs: Vec<Tensor> = params.clone();
                inputs.push(x);
                inputs.push(y);
                for (s, t) in sums.iter_mut().zip(exe.run(&inputs)?) {
                    *s += t.scalar_value() * size as f64;
                }
                start += size;
            }
            epoch_metrics.extend(progs.val_logs.iter().zip(&sums).map(|((n, _), s)| (n.clone(), s / val.len() as f64)));
        }
        logger.log(epoch, global_step.saturating_sub(1), &epoch_metrics)?;
        logger.flush()?;
        let shown: Vec<String> = epoch_metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        bar.finish_with_message(shown.join(" "));
        if !opts.progress {
            eprintln!("epoch {epoch}: {}", shown.join(" "));
        }
        final_metrics = epoch_metrics;
    }
    logger.flush()?;
    let params = progs.params.iter().cloned().zip(params).collect();
    Ok(FitSummary { log_dir: logger.dir.clone(), epochs: trainer_cfg.max_epochs, steps: global_step, final_metrics, params })
}

/// Draws every parameter's initial value from one seeded stream, in order.
pub fn init_params(specs: &[ParamSpec], seed: u64) -> Vec<Tensor> {
    let mut rng = Rng::derive(seed, "init");
    specs
        .iter()
        .map(|p| {
            let n = p.ty.shape.num_elements();
            let values: Vec<f64> = match &p.init {
                Init::Zeros => vec![0.0; n],
                Init::Ones => vec![1.0; n],
                Init::Uniform { low, high } => (0..n).map(|_| rng.uniform(*low, *high)).collect(),
                Init::Normal { mean, std } => (0..n).map(|_| mean + std * rng.normal()).collect(),
                Init::GlorotUniform => {
                    let dims = p.ty.shape.dims();
                    let (fan_in, fan_out) = (dims.first().copied().unwrap_or(1), dims.get(1).copied().unwrap_or(1));
                    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                    (0..n).map(|_| rng.uniform(-a, a)).collect()
                }
            };
            Tensor::from_f64(p.ty.dtype, p.ty.shape.dims(), &values)
        })
        .collect()
}

fn print_summary(progs: &TrainPrograms, compile_ms: f64, train: &Dataset, val: &Dataset) {
    let total: usize = progs.params.iter().map(|p| p.ty.shape.num_elements()).sum();
    eprintln!("   | {:<24} | {:<16} | {:>8}", "Name", "Type", "Params");
    for (i, p) in progs.params.iter().enumerate() {
        eprintln!("{i:<3}| {:<24} | {:<16} | {:>8}", p.path, p.ty.to_string(), p.ty.shape.num_elements());
    }
    eprintln!("{total} trainable params in model `{}`; optimizer {}", progs.model_name, progs.optimizer);
    eprintln!(
        "train step: {} IR instructions; compiled in {compile_ms:.0} ms; {} training and {} validation examples",
        progs.train_step.insts.len(),
        train.len(),
        val.len()
    );
}

fn hparams_yaml(data: &DataConfig, trainer: &TrainerConfig, progs: &TrainPrograms, path: &Path) -> String {
    format!(
        "model_file: {:?}\nmodel: {}\noptimizer: {}\ndata:\n  path: {:?}\n  scale: {}\n  batch_size: {}\n  val_split: {}\n  shuffle: {}\ntrainer:\n  max_epochs: {}\n  seed: {}\n  log_every_n_steps: {}\n  limit_train_batches: {}\n",
        path.display().to_string(),
        progs.model_name,
        progs.optimizer,
        data.path,
        data.scale,
        data.batch_size,
        data.val_split,
        data.shuffle,
        trainer.max_epochs,
        trainer.seed,
        trainer.log_every_n_steps,
        trainer.limit_train_batches
    )
}
