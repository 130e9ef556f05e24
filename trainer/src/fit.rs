//! `fit`: Lightning's training loop around one compiled step program.
//!
//! Per batch the trainer calls the compiled step once (forward, backward and
//! optimizer update are all inside it), then swaps in the new parameters and
//! optimizer state. Validation runs a separately compiled program that has
//! no parameter outputs, so it cannot train.

use crate::checkpoint::{self, CheckpointError, Meta};
use crate::config::{self, DataConfig, SourceKind, TrainerConfig};
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
    #[error("{0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot write logs: {0}")]
    Io(#[from] std::io::Error),
}

/// Where `--resume` continues from.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// `last.safetensors` of the newest `version_N` under `<root>/<name>` that has one.
    Last,
    Path(PathBuf),
}

pub struct FitOptions {
    pub overrides: Vec<String>,
    pub backend: Backend,
    pub color: bool,
    /// Show the progress bar (off when stderr is not a terminal, in tests).
    pub progress: bool,
    pub compiler: compiler::Options,
    /// Continue a run from a checkpoint (bit-exactly, also mid-epoch).
    pub resume: Option<Resume>,
}

/// What a finished run reports.
#[derive(Clone, Debug)]
pub struct FitSummary {
    pub log_dir: PathBuf,
    /// Epochs completed, counting those before a resume.
    pub epochs: usize,
    pub steps: usize,
    /// The last epoch's aggregated metrics (`train_loss_epoch`, `val_acc`, ...).
    pub final_metrics: Vec<(String, f64)>,
    pub params: Vec<(ParamSpec, Tensor)>,
    /// Optimizer state by checkpoint name (`opt.<path>.<k>`).
    pub states: Vec<(String, Tensor)>,
    /// The `last.safetensors` this run wrote (None if it wrote none).
    pub last_checkpoint: Option<PathBuf>,
    /// The run ended at `trainer.max_steps` before `max_epochs`.
    pub stopped_at_max_steps: bool,
}

fn diagnostics(diags: Vec<Diagnostic>, sources: &SourceMap, color: bool) -> FitError {
    FitError::Diagnostics { rendered: compiler::diagnostic::render_all(&diags, sources, color), count: diags.len() }
}

/// Trains the model file at `path` (whose text is `text`) as its `data` and `trainer` sections say.
pub fn fit(path: &Path, text: &str, opts: &FitOptions) -> Result<FitSummary, FitError> {
    // Files the model imports (`use "layers.jl"`) are read from disk.
    let mut read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let (prog, diags) = compiler::lower::load_with(&path.display().to_string(), text, &mut read);
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
        return Err(FitError::Config(format!(
            "{}: a training run needs a `data = csv(...)` or `data = idx(...)` section",
            path.display()
        )));
    };
    let data_cfg = config::data_config(&data_sec).map_err(err)?;
    let trainer_cfg = config::trainer_config(trainer_sec.as_ref()).map_err(err)?;

    // Data paths are relative to the model file's directory (absolute ones replace it).
    let data_path = path.parent().unwrap_or(Path::new(".")).join(&data_cfg.path);
    let dataset = match data_cfg.source {
        SourceKind::Csv => data::load_csv(&data_path, data_cfg.scale as f32)?,
        SourceKind::Idx => data::load_idx_dir(&data_path, data_cfg.scale as f32)?,
    };
    if data_cfg.val_split >= dataset.len() {
        return Err(FitError::Config(format!(
            "val_split = {} leaves no training data: {} has {} examples",
            data_cfg.val_split,
            data_path.display(),
            dataset.len()
        )));
    }
    let (train, val) = data::split(&dataset, data_cfg.val_split, trainer_cfg.seed);
    drop(dataset);
    let bs = data_cfg.batch_size;
    if train.len() < bs {
        return Err(FitError::Config(format!(
            "batch_size = {bs} is larger than the {} training examples",
            train.len()
        )));
    }
    let d = train.n_features;

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
            let small = compiler::compile_training(
                &prog,
                trainer_sec.as_ref(),
                &Type::new(DType::F32, &[rem, d]),
                &Type::new(DType::I32, &[rem]),
                &opts.compiler,
            )
            .map_err(err)?;
            if let Some(vs) = small.val_step {
                val_exes.push((rem, Executable::compile(vs, opts.backend)?));
            }
        }
    }
    let compile_ms = compile_start.elapsed().as_secs_f64() * 1e3;
    print_summary(&progs, compile_ms, &train, &val);

    let n_batches = {
        let full = train.len() / bs;
        if trainer_cfg.limit_train_batches > 0 {
            full.min(trainer_cfg.limit_train_batches)
        } else {
            full
        }
    };
    // Everything besides the seed that decides which examples batch `b` of epoch `e` holds.
    let data_order = format!(
        "batch_size={bs},val_split={},shuffle={},n_train={},n_batches={n_batches}",
        data_cfg.val_split,
        data_cfg.shuffle,
        train.len()
    );
    let n_params = progs.params.len();
    let names: Vec<(String, Type)> = progs
        .params
        .iter()
        .map(|p| (p.path.clone(), p.ty.clone()))
        .chain(
            progs
                .params
                .iter()
                .flat_map(|p| (0..progs.states_per_param).map(|k| (checkpoint::state_name(&p.path, k), p.ty.clone()))),
        )
        .collect();

    let base = Path::new(&trainer_cfg.default_root_dir).join(&trainer_cfg.name);
    remove_stray_checkpoint_temps(&base)?;

    let mut params = init_params(&progs.params, trainer_cfg.seed);
    let mut states: Vec<Tensor> =
        progs.params.iter().flat_map(|p| (0..progs.states_per_param).map(|_| Tensor::zeros(&p.ty))).collect();
    let mut pos =
        Position { epoch: 0, batch: 0, global_step: 0, loss_sum: 0.0, log_sums: vec![0.0; progs.train_logs.len()] };
    let mut resumed_from = None;
    if let Some(resume) = &opts.resume {
        let ck_path = match resume {
            Resume::Last => checkpoint::find_last(&base).ok_or_else(|| {
                FitError::Config(format!(
                    "--resume last: no checkpoint to resume from: no {}/version_*/checkpoints/last.safetensors",
                    base.display()
                ))
            })?,
            Resume::Path(p) => p.clone(),
        };
        let name = ck_path.display().to_string();
        let mut ck = checkpoint::load(&ck_path)?;
        let m = ck.meta.clone();
        let mut problems = Vec::new();
        if m.seed != trainer_cfg.seed {
            problems.push(format!(
                "it was trained with seed {}, this run has seed {} (set trainer.seed = {})",
                m.seed, trainer_cfg.seed, m.seed
            ));
        }
        if m.data_order != data_order {
            problems.push(format!("its data order was `{}`, this run's is `{data_order}`", m.data_order));
        }
        if m.log_sums.len() != progs.train_logs.len() || m.batch >= n_batches.max(1) {
            problems.push(format!(
                "its position (epoch {}, batch {} with {} logged values) does not fit this run ({n_batches} batches per epoch, {} logged values)",
                m.epoch,
                m.batch,
                m.log_sums.len(),
                progs.train_logs.len()
            ));
        }
        if !problems.is_empty() {
            return Err(FitError::Config(format!(
                "cannot resume bit-exactly from {name}:\n  {}",
                problems.join("\n  ")
            )));
        }
        if m.model_hash != checkpoint::model_hash(text) {
            eprintln!(
                "warning: {} changed since {name} was saved; resuming anyway (the parameters fit)",
                path.display()
            );
        }
        let mut tensors = ck.take_strict(&name, &names)?;
        states = tensors.split_off(n_params);
        params = tensors;
        pos = Position {
            epoch: m.epoch,
            batch: m.batch,
            global_step: m.global_step,
            loss_sum: m.loss_sum,
            log_sums: m.log_sums,
        };
        eprintln!("resuming from {name}: epoch {}, batch {}, global step {}", pos.epoch, pos.batch, pos.global_step);
        resumed_from = Some(ck_path);
    }

    let mut metric_names: Vec<String> = Vec::new();
    metric_names.push("train_loss_step".into());
    metric_names.push("train_loss_epoch".into());
    for (n, _) in &progs.train_logs {
        metric_names.push(format!("{n}_step"));
        metric_names.push(format!("{n}_epoch"));
    }
    metric_names.extend(progs.val_logs.iter().map(|(n, _)| n.clone()));
    let mut hparams = hparams_yaml(&data_cfg, &trainer_cfg, &progs, path);
    if let Some(p) = &resumed_from {
        hparams.push_str(&format!("resumed_from: {:?}\n", p.display().to_string()));
    }
    let mut logger =
        CsvLogger::create(Path::new(&trainer_cfg.default_root_dir), &trainer_cfg.name, &metric_names, &hparams)?;
    let ckpt_dir = logger.dir.join("checkpoints");
    if trainer_cfg.enable_checkpointing {
        std::fs::create_dir_all(&ckpt_dir)?;
    }
    let saver = Saver {
        dir: ckpt_dir,
        names: &names,
        meta: Meta {
            format_version: checkpoint::FORMAT_VERSION,
            jlc_version: env!("CARGO_PKG_VERSION").to_string(),
            model_name: progs.model_name.clone(),
            model_hash: checkpoint::model_hash(text),
            seed: trainer_cfg.seed,
            epoch: 0,
            batch: 0,
            global_step: 0,
            loss_sum: 0.0,
            log_sums: vec![],
            data_order,
            config: hparams.clone(),
        },
    };

    let mut global_step = pos.global_step;
    let mut final_metrics = Vec::new();
    let mut last_checkpoint = None;
    let mut stopped_at_max_steps = false;
    let mut epochs_done = pos.epoch;
    // Trained since the last checkpoint was written.
    let mut dirty = false;
    let max_steps_reached = |step: usize| trainer_cfg.max_steps > 0 && step >= trainer_cfg.max_steps;
    let n_states = states.len();
    'epochs: for epoch in pos.epoch..trainer_cfg.max_epochs {
        // The data order is a pure function of (seed, epoch): resuming mid-epoch re-derives it.
        let order = if data_cfg.shuffle {
            Rng::derive(trainer_cfg.seed.wrapping_add(epoch as u64), "shuffle").permutation(train.len())
        } else {
            (0..train.len()).collect()
        };
        let bar = if opts.progress { ProgressBar::new(n_batches as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(
                "Epoch {prefix}: {percent:>3}%|{bar:25}| {pos}/{len} [{elapsed}<{eta}, {its}] {msg}",
            )
            .expect("valid template")
            .with_key("its", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.2}it/s", state.per_sec());
            })
            .progress_chars("█▉ "),
        );
        bar.set_prefix(epoch.to_string());
        let resumed_epoch = epoch == pos.epoch;
        let first = if resumed_epoch { pos.batch } else { 0 };
        bar.set_position(first as u64);
        let mut loss_sum = if resumed_epoch { pos.loss_sum } else { 0.0 };
        let mut log_sums = if resumed_epoch { pos.log_sums.clone() } else { vec![0.0; progs.train_logs.len()] };
        for b in first..n_batches {
            if max_steps_reached(global_step) {
                bar.abandon();
                stopped_at_max_steps = true;
                if dirty && trainer_cfg.enable_checkpointing {
                    let at = Position { epoch, batch: b, global_step, loss_sum, log_sums: log_sums.clone() };
                    last_checkpoint = Some(saver.save(&[], &at, &params, &states)?);
                }
                break 'epochs;
            }
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
            dirty = true;
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
        epoch_metrics
            .extend(progs.train_logs.iter().zip(&log_sums).map(|((n, _), s)| (format!("{n}_epoch"), s / denom)));
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
        epochs_done = epoch + 1;
        if trainer_cfg.enable_checkpointing {
            // Resuming from here starts the next epoch.
            let at = Position {
                epoch: epoch + 1,
                batch: 0,
                global_step,
                loss_sum: 0.0,
                log_sums: vec![0.0; progs.train_logs.len()],
            };
            last_checkpoint =
                Some(saver.save(&[format!("epoch={epoch}-step={global_step}.safetensors")], &at, &params, &states)?);
            dirty = false;
        }
    }
    logger.flush()?;
    if stopped_at_max_steps {
        let saved = last_checkpoint.as_ref().map(|p| format!("; checkpoint {}", p.display())).unwrap_or_default();
        eprintln!("stopped at max_steps = {} (global step {global_step}){saved}", trainer_cfg.max_steps);
    }
    let states = names[n_params..].iter().map(|(n, _)| n.clone()).zip(states).collect();
    let params = progs.params.iter().cloned().zip(params).collect();
    Ok(FitSummary {
        log_dir: logger.dir.clone(),
        epochs: epochs_done,
        steps: global_step,
        final_metrics,
        params,
        states,
        last_checkpoint,
        stopped_at_max_steps,
    })
}

/// The loop's position: what a checkpoint must hold besides tensors.
struct Position {
    epoch: usize,
    batch: usize,
    global_step: usize,
    loss_sum: f64,
    log_sums: Vec<f64>,
}

/// Writes a run's checkpoints: the named files first, `last.safetensors` last.
struct Saver<'a> {
    dir: PathBuf,
    /// Checkpoint names of the parameters, then of the optimizer states.
    names: &'a [(String, Type)],
    /// The run's constant metadata; the position is filled in per save.
    meta: Meta,
}

impl Saver<'_> {
    fn save(&self, files: &[String], at: &Position, params: &[Tensor], states: &[Tensor]) -> Result<PathBuf, FitError> {
        let meta = Meta {
            epoch: at.epoch,
            batch: at.batch,
            global_step: at.global_step,
            loss_sum: at.loss_sum,
            log_sums: at.log_sums.clone(),
            ..self.meta.clone()
        };
        let tensors: Vec<(String, &Tensor)> =
            self.names.iter().map(|(n, _)| n.clone()).zip(params.iter().chain(states)).collect();
        let bytes = checkpoint::encode(&meta, &tensors)?;
        let last = self.dir.join("last.safetensors");
        for name in files.iter().map(|f| self.dir.join(f)).chain([last.clone()]) {
            checkpoint::write_atomic(&name, &bytes).map_err(|e| CheckpointError {
                path: name.display().to_string(),
                message: format!("cannot write: {e}"),
            })?;
        }
        Ok(last)
    }
}

/// Removes the temp files that interrupted checkpoint writes left in any
/// `<base>/version_*/checkpoints/`.
fn remove_stray_checkpoint_temps(base: &Path) -> Result<(), FitError> {
    let Ok(entries) = std::fs::read_dir(base) else { return Ok(()) };
    for entry in entries.flatten() {
        let dir = entry.path().join("checkpoints");
        let n = checkpoint::remove_stray_temps(&dir)?;
        if n > 0 {
            eprintln!("removed {n} unfinished checkpoint file{} in {}", if n == 1 { "" } else { "s" }, dir.display());
        }
    }
    Ok(())
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
        "model_file: {:?}\nmodel: {}\noptimizer: {}\ndata:\n  source: {:?}\n  path: {:?}\n  scale: {}\n  batch_size: {}\n  val_split: {}\n  shuffle: {}\ntrainer:\n  max_epochs: {}\n  seed: {}\n  log_every_n_steps: {}\n  limit_train_batches: {}\n  max_steps: {}\n  enable_checkpointing: {}\n",
        path.display().to_string(),
        progs.model_name,
        progs.optimizer,
        data.source,
        data.path,
        data.scale,
        data.batch_size,
        data.val_split,
        data.shuffle,
        trainer.max_epochs,
        trainer.seed,
        trainer.log_every_n_steps,
        trainer.limit_train_batches,
        trainer.max_steps,
        trainer.enable_checkpointing
    )
}
