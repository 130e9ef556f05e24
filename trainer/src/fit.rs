//! `fit`: Lightning's training loop around one compiled step program.
//!
//! Per batch the trainer calls the compiled step once (forward, backward,
//! gradient clipping and optimizer update are all inside it), then swaps in
//! the new parameters and optimizer state. With `accumulate_grad_batches =
//! k`, it calls a gradient program per batch and an update program per
//! window of k batches, and stops only between windows. Validation runs a separately compiled program that has
//! no parameter outputs, so it cannot train. Callbacks (`callback.rs`)
//! decide which epoch checkpoints to keep and when to stop early; a
//! non-finite loss, an interrupt (SIGINT/SIGTERM through
//! `FitOptions::interrupt`) or `max_steps` end the loop with every file
//! already written intact.

use crate::callback::{self, Callback, Ctx, EarlyStopping, ModelCheckpoint};
use crate::checkpoint::{self, CheckpointError, Meta};
use crate::config::{BatchLimit, Mode, TrainerConfig, ValCheckInterval};
use crate::data;
use crate::data_module::DataModule;
use crate::eval;
use crate::logger::Logger;
use crate::prefetch::Prefetch;
use crate::resume::{load_for_resume, remove_stray_checkpoint_temps, RunShape};
pub use crate::resume::{resolve_checkpoint, Resume};
use crate::rng::{step_key, Rng};
use crate::run_summary::{hparams_yaml, print_summary};
use crate::saver::{Position, Saver};
use crate::setup::{self, Stage};
use compiler::ir::{Tensor, Type};
use compiler::lower::gradients::GRAD_CHECK;
use compiler::lower::{Init, ParamSpec, TrainPrograms};
use indicatif::{ProgressBar, ProgressStyle};
use runtime::{Backend, Executable, Fresh};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
    /// The loss or a watched logged value became NaN or infinite; nothing
    /// was saved after the last good step.
    #[error("{}", .0.message)]
    NonFinite(NonFiniteAt),
    /// A training step failed on its engine (GPU error, out of memory).
    #[error("{0}")]
    StepFailed(String),
    /// Stopped by SIGINT/SIGTERM after finishing a step; `last` was written.
    #[error("{0}")]
    Interrupted(String),
    /// A picture `on_train_end` saves could not be drawn or written.
    #[error("{0}")]
    Artifact(String),
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
    /// Start a new run from a checkpoint's parameters (fine-tuning): the
    /// optimizer's state, the position and the callbacks start afresh.
    pub init_from: Option<PathBuf>,
    /// On a non-finite loss or gradient, replay the step in the
    /// interpreter and name the first operation that made one
    /// (`debug_nans.rs`; JAX's `jax_debug_nans`).
    pub debug_nans: bool,
    /// Set (by a signal handler) to stop after the current step: `last` is
    /// written, logs are flushed, and `fit` returns `FitError::Interrupted`.
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// A plain run: the CPU backend, no colour, no progress bar, the default
/// compiler options, no resume, no interrupt flag (tests and Rust programs
/// write `FitOptions { overrides, ..Default::default() }`).
impl Default for FitOptions {
    fn default() -> FitOptions {
        FitOptions {
            overrides: Vec::new(),
            backend: Backend::Cpu,
            color: false,
            progress: false,
            compiler: compiler::Options::default(),
            resume: None,
            init_from: None,
            debug_nans: false,
            interrupt: None,
        }
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// `max_epochs` epochs are done.
    MaxEpochs,
    /// `trainer.max_steps` steps are done (possibly mid-epoch).
    MaxSteps,
    /// `trainer.max_time` has passed (checked between steps).
    MaxTime,
    /// A callback asked to stop (EarlyStopping).
    Callback,
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
    /// The `last.safetensors` this run wrote (else the last checkpoint file it wrote; None if none).
    pub last_checkpoint: Option<PathBuf>,
    pub stop: Stop,
    /// ModelCheckpoint's best file (None without `checkpoint_monitor`).
    pub best_checkpoint: Option<PathBuf>,
    /// `test_step`'s metrics on the test split after training (when run).
    pub test_metrics: Vec<(String, f64)>,
    /// Where each completed epoch's time went.
    pub timing: Vec<EpochTiming>,
    /// The values `on_train_end` logged.
    pub on_train_end: Vec<(String, f64)>,
    /// The pictures `on_train_end` wrote.
    pub artifacts: Vec<PathBuf>,
    /// Validation batches the sanity check ran before training (`num_sanity_val_steps`).
    pub sanity_val_batches: usize,
}

/// One epoch's wall time against the time inside compiled step calls: the
/// trainer's overhead is the difference (batching, logging, callbacks,
/// validation, checkpoints).
#[derive(Clone, Copy, Debug, Default)]
pub struct EpochTiming {
    /// Inside `Executable::run` of the training programs (all of the epoch's calls).
    pub steps: std::time::Duration,
    /// From the epoch's start to its last training step's end.
    pub train_loop: std::time::Duration,
    /// From the epoch's start to its end: validation, logs and queuing its
    /// checkpoints included. Checkpoints are written on a thread of their
    /// own (`saver.rs`) while the next epoch trains; the last epoch's time
    /// includes the wait for its writes.
    pub epoch: std::time::Duration,
}

/// The compiled training programs the loop calls.
enum Steps {
    /// One call per batch: gradients, clipping and the update (`train_step`).
    /// The parameters and optimizer states are held by the executable
    /// (`Executable::hold`; on the device, for CUDA) from the first step on,
    /// and the new values carry into them: see `Resident`.
    Fused(Executable),
    /// `accumulate_grad_batches > 1`: `grad_exe` per micro-batch, then
    /// `apply_exe` once per window; `n_grad_logs` values are logged per micro-batch.
    Accumulate { grad_exe: Executable, apply_exe: Executable, n_grad_logs: usize },
}

/// Where the parameters and optimizer states live during `fit`: in the
/// host vectors, or held by the fused step's executable between steps (so a
/// GPU step copies neither in nor out). While held, the host vectors are
/// empty, so a use that forgot to `pull` fails loudly (a wrong input count)
/// instead of reading stale values; `pull` copies the current values back
/// (they stay held) and the next step empties the vectors again.
#[derive(Default)]
struct Resident {
    held: bool,
}

impl Resident {
    /// Hands `params` and `states` to the step (first call only), and has
    /// it record its other outputs, `record_capacity` steps' worth in the
    /// engine (`Executable::record_outputs`).
    fn hold(
        &mut self,
        exe: &mut Executable,
        params: &mut Vec<Tensor>,
        states: &mut Vec<Tensor>,
        record_capacity: usize,
    ) -> Result<(), FitError> {
        if self.held {
            params.clear();
            states.clear();
            return Ok(());
        }
        let n = params.len() + states.len();
        let values: Vec<(usize, Tensor)> = params.drain(..).chain(states.drain(..)).enumerate().collect();
        let carry: Vec<(usize, usize)> = (0..n).map(|i| (i, i)).collect();
        exe.hold(values, &carry)?;
        // The loss and logged values (every output not carried) stay in
        // the engine until the loop reads them (`read_step_values`).
        let logged: Vec<usize> = (n..exe.func().outputs.len()).collect();
        exe.record_outputs(&logged, record_capacity)?;
        self.held = true;
        Ok(())
    }

    /// Makes `params` and `states` current on the host (no-op unless held).
    fn pull(
        &self,
        steps: &mut Steps,
        params: &mut Vec<Tensor>,
        states: &mut Vec<Tensor>,
        n_params: usize,
        n_states: usize,
    ) -> Result<(), FitError> {
        let Steps::Fused(exe) = steps else { return Ok(()) };
        if !self.held || params.len() == n_params {
            return Ok(());
        }
        *params = (0..n_params).map(|i| exe.held_value(i)).collect::<Result<_, _>>()?;
        *states = (n_params..n_params + n_states).map(|i| exe.held_value(i)).collect::<Result<_, _>>()?;
        Ok(())
    }
}

/// Checkpoint names of the parameters, then of the optimizer states.
pub fn checkpoint_names(progs: &TrainPrograms) -> Vec<(String, Type)> {
    progs
        .params
        .iter()
        .map(|p| (p.path.clone(), p.ty.clone()))
        .chain(progs.state_specs().map(|(p, k)| (checkpoint::state_name(&p.path, k), p.ty.clone())))
        .collect()
}

fn progress_bar(show: bool, len: usize) -> ProgressBar {
    let bar = if show { ProgressBar::new(len as u64) } else { ProgressBar::hidden() };
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
    bar
}

/// Whether an epoch metric is shown on the progress bar, as Lightning
/// shows only `prog_bar = true` values: the epoch's training loss always,
/// then what the step methods log with `prog_bar = true` (the text log
/// line without a bar shows every metric).
fn on_progress_bar(progs: &TrainPrograms, metric: &str) -> bool {
    metric == "train_loss_epoch"
        || progs.train_logs.iter().any(|(n, bar)| *bar && metric.strip_suffix("_epoch") == Some(n))
        || progs.val_logs.iter().any(|(n, bar)| *bar && metric == n)
}

/// Why an interrupted run names no checkpoint.
fn no_checkpoint(enabled: bool) -> &'static str {
    if enabled {
        "no new checkpoint (interrupted before this run took a step)"
    } else {
        "no checkpoint (checkpointing is off)"
    }
}

/// The first non-finite value among `watched` (name, value) pairs.
fn non_finite<'a>(values: impl IntoIterator<Item = (&'a str, f64)>) -> Option<(&'a str, f64)> {
    values.into_iter().find(|(_, v)| !v.is_finite())
}

/// Trains the model file at `path` (whose text is `text`) as its `data` and `trainer` sections say.
pub fn fit(path: &Path, text: &str, opts: &FitOptions) -> Result<FitSummary, FitError> {
    match fit_with(path, text, opts, RunExtras::default()) {
        // `--debug-nans`: the step replayed op by op names the operation.
        Err(FitError::NonFinite(mut at)) if opts.debug_nans => {
            at.message.push_str(&crate::debug_nans::locate(path, text, opts, &at));
            Err(FitError::NonFinite(at))
        }
        other => other,
    }
}

/// Where a run stopped on a non-finite value (`FitError::NonFinite`).
#[derive(Debug)]
pub struct NonFiniteAt {
    pub message: String,
    pub global_step: usize,
    pub epoch: usize,
    pub batch: usize,
    /// The newest checkpoint written whole before that step.
    pub last_good: Option<PathBuf>,
}

/// `fit` on data from Rust code: `module` replaces the model file's `data`
/// section (which may then be absent; see `data_module.rs`).
pub fn fit_with_data(
    path: &Path,
    text: &str,
    opts: &FitOptions,
    module: &mut dyn DataModule,
) -> Result<FitSummary, FitError> {
    fit_with(path, text, opts, RunExtras { data: Some(module), ..RunExtras::default() })
}

/// What a Rust program adds to a run (`fit_with`).
#[derive(Default)]
pub struct RunExtras<'a> {
    /// Data from Rust code in place of the model file's `data` section.
    pub data: Option<&'a mut dyn DataModule>,
    /// Callbacks of the program's own (`callback::Callback`), called after
    /// the built-in ones at every hook. Each one's `state_dict` goes into
    /// every checkpoint under its `name`, and `--resume` gives it back, so
    /// names must be unique (and not a built-in's: ModelCheckpoint,
    /// EarlyStopping, Timer).
    pub callbacks: Vec<Box<dyn Callback>>,
}

/// `fit` with a Rust program's own data and callbacks.
pub fn fit_with(path: &Path, text: &str, opts: &FitOptions, extras: RunExtras) -> Result<FitSummary, FitError> {
    let setup = setup::prepare(path, text, &opts.overrides, opts.color, &opts.compiler, extras.data)?;
    let user_callbacks = extras.callbacks;
    // The scope of the threads that form batches ahead (`prefetch.rs`).
    std::thread::scope(|scope| fit_prepared(scope, &setup, path, text, opts, user_callbacks))
}

/// `fit` once the model is compiled: the loop over epochs and batches.
fn fit_prepared<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    setup: &'env setup::Setup,
    path: &Path,
    text: &str,
    opts: &FitOptions,
    user_callbacks: Vec<Box<dyn Callback>>,
) -> Result<FitSummary, FitError> {
    let (data_cfg, progs) = (&setup.data_cfg, &setup.progs);
    let bs = data_cfg.batch_size;
    let trainer_cfg = effective_config(&setup.trainer_cfg);
    let dev_run = trainer_cfg.fast_dev_run;
    if dev_run > 0 && opts.resume.is_some() {
        return Err(FitError::Config("fast_dev_run is a fresh smoke run: it cannot --resume".into()));
    }
    let overfit = trainer_cfg.overfit_batches;
    let shuffle = data_cfg.shuffle && overfit == 0;
    let trainer_cfg = &trainer_cfg;
    let train = &setup.train;
    // limit_val_batches: the first batches of the (fixed) validation order.
    let val = &*setup.val.first_batches(trainer_cfg.limit_val_batches.of(setup.val.len().div_ceil(bs)), bs);
    let compile = |f: &compiler::ir::Func| -> Result<Executable, runtime::Error> {
        let mut exe = Executable::compile(f.clone(), opts.backend)?;
        exe.set_flush_denormals(trainer_cfg.flush_denormals);
        Ok(exe)
    };
    let mut steps = match &progs.accumulation {
        None => Steps::Fused(compile(&progs.train_step)?),
        Some(a) => Steps::Accumulate {
            grad_exe: compile(&a.grad_step)?,
            apply_exe: compile(&a.apply_step)?,
            n_grad_logs: a.grad_step.outputs.len() - progs.params.len() - 1,
        },
    };
    // Micro-batches per optimizer step (accumulate_grad_batches).
    let k = progs.accumulation.as_ref().map_or(1, |a| a.k);
    let mut val_exes = if val.is_empty() {
        vec![]
    } else {
        setup.eval_programs(Stage::Validate, val, opts.backend, &opts.compiler, opts.color)?
    };
    let mut hook = crate::hook::compile(setup, opts.backend, &opts.compiler, opts.color)?;
    let will_test = trainer_cfg.test_after_fit && progs.test_step.is_some() && setup.test.is_some();
    print_summary(progs, setup.compile_ms, train, val, setup.test.as_ref().filter(|_| will_test));
    // Lightning's "GPU available: ..., used: ..." line.
    eprintln!("accelerator: {}", opts.backend.describe());
    if progs.val_step.is_some() && val_exes.is_empty() && dev_run == 0 {
        let why = if trainer_cfg.limit_val_batches.of(1) == 0 {
            "trainer.limit_val_batches = 0"
        } else {
            "no validation examples (set data.val_split = N to hold N out)"
        };
        eprintln!("note: `validation_step` will not run: {why}");
    }

    let n_batches = trainer_cfg.limit_train_batches.of(train.len() / bs);
    // Training batches are all full: say what an epoch leaves out.
    let left_over = train.len() - n_batches * bs;
    if n_batches == train.len() / bs && left_over > 0 {
        let which = if shuffle {
            "a different few each epoch, as the shuffle falls"
        } else {
            "the same ones every epoch: the data is not shuffled"
        };
        eprintln!(
            "an epoch is {n_batches} batches of {bs}: training batches are full, so {left_over} examples \
             are not trained on in an epoch ({which})"
        );
    }
    // Everything besides the seed that decides which examples batch `b` of epoch `e` holds.
    let mut data_order = format!(
        "batch_size={bs},val_split={},shuffle={},n_train={},n_batches={n_batches}",
        data_cfg.val_split,
        shuffle,
        train.len()
    );
    if k > 1 {
        // Which batches one optimizer step sums (absent for k = 1, as in files written before it existed).
        data_order.push_str(&format!(",accumulate_grad_batches={k}"));
    }
    // Validation within an epoch: after every `val_every` batches (the epoch's end always validates).
    let val_every = trainer_cfg.val_check_interval.every(n_batches);
    if let ValCheckInterval::Batches(n) = trainer_cfg.val_check_interval {
        if n > n_batches && !val_exes.is_empty() {
            return Err(FitError::Config(format!(
                "trainer.val_check_interval = {n} must be at most the number of training batches per epoch \
                 ({n_batches}); write a fraction of the epoch (0.5) or use check_val_every_n_epoch"
            )));
        }
    }
    let n_params = progs.params.len();
    let names = checkpoint_names(progs);
    // The keys of evaluation steps that take one (`eval::EvalKey`).
    let eval_key =
        |takes: bool, purpose: &'static str| takes.then_some(eval::EvalKey { seed: trainer_cfg.seed, purpose });

    let epoch_names = epoch_metric_names(progs, !val_exes.is_empty());
    check_metric_names(trainer_cfg, &epoch_names, progs)?;
    check_log_clashes(progs)?;
    for note in mode_notes(trainer_cfg) {
        eprintln!("note: {note}");
    }
    let mut callbacks: Vec<Box<dyn Callback>> = Vec::new();
    if let Some(es) = &trainer_cfg.early_stopping {
        callbacks.push(Box::new(EarlyStopping::new(es.clone())));
    }
    if trainer_cfg.enable_checkpointing {
        callbacks.push(Box::new(ModelCheckpoint::new(trainer_cfg.checkpoint.clone())));
    }
    // The training time, resumed runs included (the Timer's clock).
    let mut clock = None;
    if trainer_cfg.max_time.is_some() {
        let (timer, timer_clock) = callback::Timer::new();
        callbacks.push(Box::new(timer));
        clock = Some(timer_clock);
    }
    for user in user_callbacks {
        if callback::BUILT_IN_NAMES.contains(&user.name()) || callbacks.iter().any(|c| c.name() == user.name()) {
            return Err(FitError::Config(format!(
                "two callbacks are named `{}`: a callback's name keys its state in checkpoints, so names must be \
                 unique and not a built-in's ({})",
                user.name(),
                callback::BUILT_IN_NAMES.join(", ")
            )));
        }
        callbacks.push(user);
    }

    let base = &setup.base;
    remove_stray_checkpoint_temps(base)?;

    let mut params = init_params(&progs.params, trainer_cfg.seed);
    let mut states: Vec<Tensor> = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)).collect();
    let mut pos =
        Position { epoch: 0, batch: 0, global_step: 0, loss_sum: 0.0, log_sums: vec![0.0; progs.train_logs.len()] };
    let mut resumed_from = None;
    if opts.init_from.is_some() && opts.resume.is_some() {
        return Err(FitError::Config(
            "--init-from starts a new run from a checkpoint's parameters and --resume continues a run: \
             give one of them"
                .into(),
        ));
    }
    if let Some(resume) = &opts.resume {
        let run = RunShape { names: &names, n_params, n_batches, data_order: &data_order, seed: trainer_cfg.seed, k };
        let ck_path = resolve_checkpoint(resume, base, "--resume", "resume from")?;
        (params, states, pos) = load_for_resume(&ck_path, &run, base, progs, path, text, &mut callbacks)?;
        // Lightning warns too: the run goes on (validation, test) but trains nothing.
        let steps_done = trainer_cfg.max_steps > 0 && pos.global_step >= trainer_cfg.max_steps;
        if pos.epoch >= trainer_cfg.max_epochs || steps_done {
            eprintln!(
                "note: nothing left to train: {} is at epoch {} (global step {}), and max_epochs = {}{}; \
                 raise {} to train further",
                ck_path.display(),
                pos.epoch,
                pos.global_step,
                trainer_cfg.max_epochs,
                if trainer_cfg.max_steps > 0 {
                    format!(", max_steps = {}", trainer_cfg.max_steps)
                } else {
                    String::new()
                },
                if steps_done {
                    "max_steps (--set trainer.max_steps=N)"
                } else {
                    "max_epochs (--set trainer.max_epochs=N)"
                }
            );
        }
        resumed_from = Some(ck_path);
    }
    if let Some(from) = &opts.init_from {
        let name = from.display().to_string();
        let mut ck = checkpoint::load(from)?;
        params = ck.take_params(&name, &names[..n_params])?;
        eprintln!("parameters from {name}; the optimizer's state, the step count and the callbacks start afresh");
    }

    let mut metric_names: Vec<String> = Vec::new();
    metric_names.push("train_loss_step".into());
    metric_names.push("train_loss_epoch".into());
    for (n, _) in &progs.train_logs {
        metric_names.push(format!("{n}_step"));
        metric_names.push(format!("{n}_epoch"));
    }
    metric_names.extend(progs.val_logs.iter().map(|(n, _)| n.clone()));
    if will_test {
        metric_names.extend(progs.test_logs.iter().map(|(n, _)| n.clone()));
    }
    let mut hparams = hparams_yaml(data_cfg, trainer_cfg, progs, path);
    if let Some(p) = &resumed_from {
        hparams.push_str(&format!("resumed_from: {:?}\n", p.display().to_string()));
    }
    if let Some(p) = &opts.init_from {
        hparams.push_str(&format!("init_from: {:?}\n", p.display().to_string()));
    }
    let mut logger = if dev_run > 0 {
        Logger::disabled(base.join("fast_dev_run"))
    } else {
        let root = Path::new(&trainer_cfg.default_root_dir);
        Logger::create(root, &trainer_cfg.name, &metric_names, &hparams, trainer_cfg.loggers)?
    };
    let mut ckpt_dir = logger.dir.join("checkpoints");
    if trainer_cfg.enable_checkpointing {
        std::fs::create_dir_all(&ckpt_dir)?;
        // Absolute, so that the paths callbacks record stay valid from any directory.
        ckpt_dir = ckpt_dir.canonicalize()?;
    }
    let saver = Saver::new(
        ckpt_dir.clone(),
        &names,
        Meta {
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
            callbacks: String::new(),
        },
    );

    let mut global_step = pos.global_step;
    let mut final_metrics = Vec::new();
    let mut last_checkpoint = None;
    let mut stop = Stop::MaxEpochs;
    let mut epochs_done = pos.epoch;
    // Trained since the last checkpoint was written.
    let mut dirty = false;
    let max_steps_reached = |step: usize| trainer_cfg.max_steps > 0 && step >= trainer_cfg.max_steps;
    let train_start = std::time::Instant::now();
    let trained = || clock.as_ref().map_or_else(|| train_start.elapsed(), |c| c.elapsed());
    let out_of_time = || trainer_cfg.max_time.is_some_and(|t| trained() >= t);
    let interrupted = || opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
    let n_states = states.len();
    let mut resident = Resident::default();
    let watched = |name: &str| trainer_cfg.nonfinite_metrics.iter().any(|m| m == name);
    // The first non-finite value of a step that must stay finite: the loss
    // and the gradients (stop_on_nonfinite: the step's unlogged last output,
    // the largest |g|), then the watched logged values (`logs` in
    // `train_logs` order).
    let checks_gradients = progs.grad_settings.check_finite;
    // Steps the engine records before it copies them out itself: values
    // are read at least every log_every_n_steps steps and at epoch ends.
    let record_capacity = trainer_cfg.log_every_n_steps.min(n_batches).clamp(1, 1 << 16);
    let bad_value = |loss: f64, logs: &[f64], grad_check: Option<f64>| -> Option<(String, f64)> {
        let must_be_finite = std::iter::once(("train_loss", loss))
            .chain(grad_check.map(|v| (GRAD_CHECK, v)))
            .filter(|_| trainer_cfg.stop_on_nonfinite);
        let logged = progs.train_logs.iter().zip(logs).map(|((n, _), v)| (n.as_str(), *v));
        non_finite(must_be_finite.chain(logged.filter(|(n, _)| watched(n)))).map(|(n, v)| (n.to_string(), v))
    };
    let check = StepCheck { checks_gradients, bad_value: &bad_value };
    {
        let mut ctx = Ctx::new(pos.epoch, global_step, &[], &ckpt_dir);
        for c in callbacks.iter_mut() {
            c.on_train_start(&mut ctx);
        }
        for m in &ctx.messages {
            eprintln!("note: {m}");
        }
    }
    // Lightning's sanity check: a few validation batches before training, so a
    // broken validation_step fails now rather than after an epoch; nothing is logged.
    let mut sanity_val_batches = 0;
    if resumed_from.is_none() && dev_run == 0 && !val_exes.is_empty() {
        let n = trainer_cfg.num_sanity_val_steps.unwrap_or(usize::MAX);
        if n > 0 {
            let sanity = val.first_batches(n, bs);
            eval::evaluate(
                &mut val_exes,
                &params,
                &sanity,
                bs,
                &progs.val_logs,
                eval_key(progs.keys.val, "validation_step"),
            )?;
            sanity_val_batches = sanity.len().div_ceil(bs);
        }
    }
    let mut timing = Vec::new();
    'epochs: for epoch in pos.epoch..trainer_cfg.max_epochs {
        let epoch_start = std::time::Instant::now();
        let mut step_time = std::time::Duration::ZERO;
        // The data order is a pure function of (seed, epoch): resuming mid-epoch re-derives it.
        let order: Arc<[usize]> = if shuffle {
            Rng::derive(trainer_cfg.seed.wrapping_add(epoch as u64), "shuffle").permutation(train.len()).into()
        } else {
            (0..train.len()).collect()
        };
        let bar = progress_bar(opts.progress, n_batches);
        bar.set_prefix(epoch.to_string());
        let resumed_epoch = epoch == pos.epoch;
        let first = if resumed_epoch { pos.batch } else { 0 };
        bar.set_position(first as u64);
        let mut loss_sum = if resumed_epoch { pos.loss_sum } else { 0.0 };
        let mut log_sums = if resumed_epoch { pos.log_sums.clone() } else { vec![0.0; progs.train_logs.len()] };
        let validate = !val_exes.is_empty() && (epoch + 1) % trainer_cfg.check_val_every_n_epoch == 0;
        let mut ahead = Prefetch::start(scope, train, order, bs, first..n_batches);
        // The fused step's inputs: step k + 1's are staged with step k
        // (`Executable::run_held_staging`: on a GPU their copy overlaps step
        // k), as (batch, global step) they were made for.
        let mut staged: Option<(usize, usize)> = None;
        // Fused steps run whose values are still in the engine, in order.
        let mut unread: Vec<StepAt> = Vec::new();
        let mut last_read: Option<std::time::Instant> = None;
        // `JLC_STAGED_BATCHES=0`: every batch given with its own step (to
        // measure what staging saves).
        let stage_batches = std::env::var("JLC_STAGED_BATCHES").map_or(true, |v| v != "0");
        let step_inputs = |ahead: &mut Prefetch, b: usize, global_step: usize| {
            let (x, y) = ahead.take(b);
            let mut fresh = vec![Tensor::scalar_f32((global_step + 1) as f32), x, y];
            if progs.keys.train {
                fresh.push(step_key(trainer_cfg.seed, "training_step", global_step as u64));
            }
            fresh
        };
        let mut b = first;
        while b < n_batches {
            // A checkpoint the writer thread failed to write stops the run now.
            if let Err(e) = saver.check() {
                bar.abandon();
                logger.flush()?;
                return Err(e);
            }
            let stop_now = interrupted();
            let time_up = out_of_time();
            if stop_now || time_up || max_steps_reached(global_step) {
                bar.abandon();
                // The steps since the last read are checked before anything is saved.
                if let Steps::Fused(exe) = &mut steps {
                    let read = read_step_values(exe, &mut unread, &check, (&mut loss_sum, &mut log_sums[..]), &saver);
                    if let Err(e) = read {
                        logger.flush()?;
                        return Err(e);
                    }
                }
                // At max_time the Timer's state changed even without a step
                // since the last save: `last` must say the time is used up.
                let timer_moved = time_up && clock.is_some();
                if (dirty || timer_moved) && trainer_cfg.enable_checkpointing {
                    resident.pull(&mut steps, &mut params, &mut states, n_params, n_states)?;
                    let at = Position { epoch, batch: b, global_step, loss_sum, log_sums: log_sums.clone() };
                    last_checkpoint = saver.save(&[], true, &[], &at, &params, &states, &callbacks)?;
                }
                logger.flush()?;
                if stop_now {
                    let saved = match &saver.last_good() {
                        Some(p) => format!("checkpoint {}; continue with --resume last", p.display()),
                        None => no_checkpoint(trainer_cfg.enable_checkpointing).to_string(),
                    };
                    return Err(FitError::Interrupted(format!(
                        "interrupted at global step {global_step} (epoch {epoch}, batch {b}): {saved}; logs {}",
                        logger.dir.join("metrics.csv").display()
                    )));
                }
                stop = if time_up { Stop::MaxTime } else { Stop::MaxSteps };
                break 'epochs;
            }
            // One optimizer step: batch `b`, or with accumulation the window
            // of micro-batches `b..end`; its loss and logs are the window's means.
            let end = (b + k).min(n_batches);
            // The step's loss and logs: read now (accumulation), or left in
            // the engine until a step whose values are needed (`None`).
            let read = match &mut steps {
                Steps::Fused(step_exe) => {
                    resident.hold(step_exe, &mut params, &mut states, record_capacity)?;
                    // The step's inputs: staged by the step before (batch b
                    // and this global step), else given now.
                    let fresh = if staged == Some((b, global_step)) {
                        Fresh::Staged
                    } else {
                        Fresh::Given(step_inputs(&mut ahead, b, global_step))
                    };
                    // The next step's (same epoch), sent to the device during this one.
                    let next =
                        (stage_batches && b + 1 < n_batches).then(|| step_inputs(&mut ahead, b + 1, global_step + 1));
                    staged = next.is_some().then_some((b + 1, global_step + 1));
                    let call = std::time::Instant::now();
                    // Every output is carried or recorded: nothing comes back.
                    if let Err(e) = step_exe.run_held_staging(fresh, next) {
                        let first_unread = unread.first().map_or(global_step, |at| at.global_step);
                        return Err(step_failed(e, first_unread, global_step, &saver.last_good()));
                    }
                    step_time += call.elapsed();
                    unread.push(StepAt { global_step, epoch, batch: b });
                    None
                }
                Steps::Accumulate { grad_exe, apply_exe, n_grad_logs } => {
                    // Gradient sums start at zero; the slot of a buffer or a frozen
                    // parameter carries its value (see `lower::entry`).
                    let mut accs: Vec<Tensor> = progs
                        .params
                        .iter()
                        .zip(&params)
                        .map(|(p, value)| if p.trainable() { Tensor::zeros(&p.ty) } else { value.clone() })
                        .collect();
                    let (mut w_loss, mut w_logs) = (0.0, vec![0.0; *n_grad_logs]);
                    for mb in b..end {
                        let (x, y) = ahead.take(mb);
                        let mut inputs = Vec::with_capacity(2 * n_params + 2);
                        inputs.append(&mut params);
                        inputs.append(&mut accs);
                        inputs.push(x);
                        inputs.push(y);
                        if progs.keys.train {
                            // One key per micro-batch: k per optimizer step.
                            let micro = (global_step * k + (mb - b)) as u64;
                            inputs.push(step_key(trainer_cfg.seed, "training_step", micro));
                        }
                        let call = std::time::Instant::now();
                        let mut outs = grad_exe.run(&inputs)?.into_iter();
                        step_time += call.elapsed();
                        params = inputs.drain(..n_params).collect();
                        accs = outs.by_ref().take(n_params).collect();
                        let loss = outs.next().expect("loss output").scalar_value();
                        let logs: Vec<f64> = outs.map(|t| t.scalar_value()).collect();
                        if let Some((name, value)) = bad_value(loss, &logs, None) {
                            bar.abandon();
                            logger.flush()?;
                            return Err(non_finite_error(&name, value, global_step, epoch, mb, &saver.last_good()));
                        }
                        loss_sum += loss;
                        w_loss += loss;
                        for ((s, w), v) in log_sums.iter_mut().zip(&mut w_logs).zip(&logs) {
                            *s += v;
                            *w += v;
                        }
                    }
                    let n = (end - b) as f64;
                    let mut inputs = Vec::with_capacity(2 * n_params + n_states + 2);
                    inputs.append(&mut params);
                    inputs.append(&mut states);
                    inputs.push(Tensor::scalar_f32((global_step + 1) as f32));
                    inputs.append(&mut accs);
                    inputs.push(Tensor::scalar_f32(n as f32));
                    let call = std::time::Instant::now();
                    let mut outs = apply_exe.run(&inputs)?.into_iter();
                    step_time += call.elapsed();
                    params = outs.by_ref().take(n_params).collect();
                    states = outs.by_ref().take(n_states).collect();
                    let mut logs: Vec<f64> = w_logs.iter().map(|v| v / n).collect();
                    let mut window: Vec<f64> = outs.map(|t| t.scalar_value()).collect();
                    let grad_check = checks_gradients.then(|| window.pop().expect("the gradients' check"));
                    // Values of the whole window (grad_norm): weighted by its micro-batches in the epoch's mean.
                    for v in window {
                        log_sums[logs.len()] += v * n;
                        logs.push(v);
                    }
                    if let Some((name, value)) = bad_value(w_loss / n, &logs, grad_check) {
                        bar.abandon();
                        logger.flush()?;
                        return Err(non_finite_error(&name, value, global_step, epoch, end - 1, &saver.last_good()));
                    }
                    Some((w_loss / n, logs))
                }
            };
            global_step += 1;
            dirty = true;
            // val_check_interval: this step crossed a multiple of `val_every` before the epoch's end.
            let validate_now = validate && end < n_batches && b / val_every != end / val_every;
            // checkpoint_every_n_train_steps: ModelCheckpoint's file of this
            // step (in `ctx.save`), and `last` within the epoch (the epoch's
            // end writes its own).
            let every = trainer_cfg.checkpoint.every_n_train_steps;
            let last_now = every > 0 && global_step % every == 0 && end < n_batches;
            let log_now = global_step % trainer_cfg.log_every_n_steps == 0;
            // A shown progress bar's metrics are refreshed every BAR_REFRESH
            // (from each epoch's first step on), as often as it redraws.
            let bar_due = opts.progress && last_read.is_none_or(|t| t.elapsed() >= BAR_REFRESH);
            // A step whose values something reads: they are read now (on a
            // GPU, the one wait for the device in these steps), checked
            // and summed in step order; other steps' wait in the engine.
            let needed = read.is_some()
                || bar_due
                || log_now
                || validate_now
                || last_now
                || end == n_batches
                || max_steps_reached(global_step)
                || callbacks.iter().any(|c| c.reads_batch_end(global_step));
            let read = match (read, &mut steps) {
                (Some(values), _) => values,
                (None, Steps::Fused(exe)) if needed => {
                    let call = std::time::Instant::now();
                    let read = read_step_values(exe, &mut unread, &check, (&mut loss_sum, &mut log_sums[..]), &saver);
                    step_time += call.elapsed();
                    match read {
                        Ok(values) => values,
                        Err(e) => {
                            bar.abandon();
                            logger.flush()?;
                            return Err(e);
                        }
                    }
                }
                (None, _) => {
                    bar.inc((end - b) as u64);
                    b = end;
                    continue;
                }
            };
            last_read = Some(std::time::Instant::now());
            let (loss, logs) = read;
            if log_now {
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
            bar.inc((end - b) as u64);
            if validate_now {
                resident.pull(&mut steps, &mut params, &mut states, n_params, n_states)?;
                let val_metrics = eval::evaluate(
                    &mut val_exes,
                    &params,
                    val,
                    bs,
                    &progs.val_logs,
                    eval_key(progs.keys.val, "validation_step"),
                )?;
                logger.log(epoch, global_step - 1, &val_metrics)?;
            }
            let mut step_metrics = vec![("train_loss".to_string(), loss)];
            step_metrics.extend(progs.train_logs.iter().zip(&logs).map(|((n, _), v)| (n.clone(), *v)));
            let mut ctx = Ctx::new(epoch, global_step, &step_metrics, &ckpt_dir);
            for c in callbacks.iter_mut() {
                c.on_train_batch_end(&mut ctx);
            }
            if (last_now || !ctx.save.is_empty()) && trainer_cfg.enable_checkpointing {
                resident.pull(&mut steps, &mut params, &mut states, n_params, n_states)?;
                let at = Position { epoch, batch: end, global_step, loss_sum, log_sums: log_sums.clone() };
                last_checkpoint = saver.save(&ctx.save, last_now, &ctx.remove, &at, &params, &states, &callbacks)?;
                logger.flush()?;
                dirty = dirty && !last_now;
            }
            b = end;
        }
        let train_loop = epoch_start.elapsed();
        let denom = n_batches.max(1) as f64;
        let mut epoch_metrics = vec![("train_loss_epoch".to_string(), loss_sum / denom)];
        epoch_metrics
            .extend(progs.train_logs.iter().zip(&log_sums).map(|((n, _), s)| (format!("{n}_epoch"), s / denom)));
        resident.pull(&mut steps, &mut params, &mut states, n_params, n_states)?;
        if validate {
            epoch_metrics.extend(eval::evaluate(
                &mut val_exes,
                &params,
                val,
                bs,
                &progs.val_logs,
                eval_key(progs.keys.val, "validation_step"),
            )?);
        }
        logger.log(epoch, global_step.saturating_sub(1), &epoch_metrics)?;
        logger.flush()?;
        let shown: Vec<String> = epoch_metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        let on_bar: Vec<&String> =
            epoch_metrics.iter().zip(&shown).filter(|((k, _), _)| on_progress_bar(progs, k)).map(|(_, s)| s).collect();
        bar.finish_with_message(on_bar.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "));
        if !opts.progress {
            // The training loop's wall time (batches and steps, not
            // validation), what the progress bar shows as elapsed.
            // Three significant digits for short epochs (a tiny model's is milliseconds).
            let secs = train_loop.as_secs_f64();
            let digits = if secs >= 1.0 { 2 } else { (2 - secs.max(1e-6).log10().floor() as i32) as usize };
            eprintln!("epoch {epoch}: {} [{secs:.digits$} s training]", shown.join(" "));
        }
        let bad = non_finite(
            epoch_metrics
                .iter()
                .map(|(n, v)| (n.as_str(), *v))
                .filter(|(n, _)| watched(n.trim_end_matches("_epoch")) || watched(n)),
        );
        if let Some((name, value)) = bad {
            return Err(non_finite_error(
                name,
                value,
                global_step.saturating_sub(1),
                epoch,
                n_batches,
                &saver.last_good(),
            ));
        }
        final_metrics = epoch_metrics;
        epochs_done = epoch + 1;
        let mut ctx = Ctx::new(epoch, global_step, &final_metrics, &ckpt_dir);
        // Epochs that skip validation (check_val_every_n_epoch) have no validation end.
        if validate || val_exes.is_empty() {
            for c in callbacks.iter_mut() {
                c.on_validation_end(&mut ctx);
            }
        }
        for m in &ctx.messages {
            eprintln!("{m}");
        }
        if trainer_cfg.enable_checkpointing {
            // Resuming from here starts the next epoch.
            let at = Position {
                epoch: epoch + 1,
                batch: 0,
                global_step,
                loss_sum: 0.0,
                log_sums: vec![0.0; progs.train_logs.len()],
            };
            let save_last = trainer_cfg.checkpoint.save_last;
            if let Some(p) = saver.save(&ctx.save, save_last, &ctx.remove, &at, &params, &states, &callbacks)? {
                last_checkpoint = Some(p);
            }
            // Without `last` (save_last = false) an interrupt must still
            // write one: the epoch's progress is not in `last` yet.
            dirty = !save_last;
        }
        timing.push(EpochTiming { steps: step_time, train_loop, epoch: epoch_start.elapsed() });
        if ctx.should_stop && epochs_done < trainer_cfg.min_epochs {
            eprintln!(
                "a callback asked to stop after epoch {epoch}, but min_epochs = {} is not reached: training continues",
                trainer_cfg.min_epochs
            );
        } else if ctx.should_stop {
            stop = Stop::Callback;
            break;
        }
    }
    // Every save on disk before anything names, loads or tests from one.
    // The wait counts in the last epoch's time (earlier epochs' writes
    // overlap the next epoch's steps).
    let wait = std::time::Instant::now();
    saver.finish()?;
    if let Some(t) = timing.last_mut() {
        t.epoch += wait.elapsed();
    }
    resident.pull(&mut steps, &mut params, &mut states, n_params, n_states)?;
    {
        let mut ctx = Ctx::new(epochs_done, global_step, &final_metrics, &ckpt_dir);
        for c in callbacks.iter_mut() {
            c.on_train_end(&mut ctx);
        }
    }
    logger.flush()?;
    if interrupted() {
        // Stopped during the last epoch's end: its checkpoint is written; skip the test.
        let saved = match &last_checkpoint {
            Some(p) => format!("checkpoint {}", p.display()),
            None => no_checkpoint(trainer_cfg.enable_checkpointing).to_string(),
        };
        return Err(FitError::Interrupted(format!(
            "interrupted after training (global step {global_step}): {saved}; logs {}",
            logger.dir.join("metrics.csv").display()
        )));
    }
    let saved = last_checkpoint.as_ref().map(|p| format!("; checkpoint {}", p.display())).unwrap_or_default();
    match stop {
        Stop::MaxSteps => {
            eprintln!("stopped at max_steps = {} (global step {global_step}){saved}", trainer_cfg.max_steps)
        }
        Stop::MaxTime => eprintln!(
            "stopped at max_time = {:?} after {:.1} s of training, resumed runs included (global step {global_step}){saved}",
            trainer_cfg.max_time.unwrap_or_default(),
            trained().as_secs_f64()
        ),
        Stop::MaxEpochs | Stop::Callback => {}
    }
    // Lightning's on_train_end: after the last step and checkpoint, before testing.
    let (on_train_end, artifacts) = match &mut hook {
        Some(h) => h.run(setup, &params, &logger.dir, dev_run == 0)?,
        None => (vec![], vec![]),
    };
    let mut test_metrics = Vec::new();
    if will_test {
        // Lightning runs `trainer.test` only when asked; `jlc run` runs it
        // after training (trainer.test_after_fit = false turns it off), on
        // the final parameters.
        let test = setup.test.as_ref().expect("checked by will_test");
        let test = &*test.first_batches(trainer_cfg.limit_test_batches.of(test.len().div_ceil(bs)), bs);
        let mut exes = setup.eval_programs(Stage::Test, test, opts.backend, &opts.compiler, opts.color)?;
        test_metrics =
            eval::evaluate(&mut exes, &params, test, bs, &progs.test_logs, eval_key(progs.keys.test, "test_step"))?;
        logger.log(epochs_done.saturating_sub(1), global_step.saturating_sub(1), &test_metrics)?;
        logger.flush()?;
    }
    let best_checkpoint = callbacks
        .iter()
        .filter(|_| trainer_cfg.checkpoint.monitor.is_some())
        .find(|c| c.name() == "ModelCheckpoint")
        .and_then(|c| {
            let state = format!("{{\"ModelCheckpoint\":{}}}", c.state_dict());
            ModelCheckpoint::best_path_in(&state, callback::run_base(&ckpt_dir))
        });
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
        stop,
        best_checkpoint,
        test_metrics,
        timing,
        on_train_end,
        artifacts,
        sanity_val_batches,
    })
}

/// `jlc run --print-config`: the fully resolved configuration (defaults
/// filled in, `--set` overrides and `fast_dev_run`/`overfit_batches`
/// applied) in the run directory's `hparams.yaml` format. Compiles the
/// model (the model's and the optimizer's names come from it); trains nothing.
pub fn resolved_config(path: &Path, text: &str, opts: &FitOptions) -> Result<String, FitError> {
    let setup = setup::prepare(path, text, &opts.overrides, opts.color, &opts.compiler, None)?;
    Ok(hparams_yaml(&setup.data_cfg, &effective_config(&setup.trainer_cfg), &setup.progs, path))
}

/// The settings a run uses: `fast_dev_run` and `overfit_batches` override
/// others (also in `jlc validate`, `jlc test` and `jlc predict`, as in
/// Lightning, where both are Trainer flags).
pub(crate) fn effective_config(cfg: &TrainerConfig) -> TrainerConfig {
    let mut trainer_cfg = cfg.clone();
    let dev_run = trainer_cfg.fast_dev_run;
    if dev_run > 0 {
        // Lightning's fast_dev_run: n batches of each loop, one epoch, nothing saved.
        trainer_cfg.limit_train_batches = BatchLimit::Batches(dev_run);
        trainer_cfg.limit_val_batches = BatchLimit::Batches(dev_run);
        trainer_cfg.limit_test_batches = BatchLimit::Batches(dev_run);
        trainer_cfg.limit_predict_batches = BatchLimit::Batches(dev_run);
        trainer_cfg.max_epochs = 1;
        trainer_cfg.max_steps = 0;
        trainer_cfg.max_time = None;
        trainer_cfg.check_val_every_n_epoch = 1;
        trainer_cfg.val_check_interval = ValCheckInterval::Fraction(1.0);
        trainer_cfg.enable_checkpointing = false;
        trainer_cfg.early_stopping = None;
    }
    // Lightning's overfit_batches: the same first n batches every epoch
    // (no shuffling), and validation on n batches.
    let overfit = trainer_cfg.overfit_batches;
    if overfit > 0 {
        trainer_cfg.limit_train_batches = BatchLimit::Batches(overfit);
        trainer_cfg.limit_val_batches = BatchLimit::Batches(overfit);
    }
    trainer_cfg
}

/// `step` counts as metrics.csv's `step` column does (0-based).
/// A training step that failed on its engine (a GPU's sticky error, an
/// out-of-memory): the error, where, and the last good checkpoint.
/// How often a shown progress bar's metrics are read (indicatif redraws
/// at most 20 times a second).
const BAR_REFRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// A fused step whose values are still in the engine: where it ran.
struct StepAt {
    global_step: usize,
    epoch: usize,
    batch: usize,
}

/// How a step's values are checked: whether its last output is the
/// gradients' check, and the first value that must be finite and is not
/// (`bad_value(loss, logs, gradients' check)`).
struct StepCheck<'a> {
    checks_gradients: bool,
    bad_value: &'a dyn Fn(f64, &[f64], Option<f64>) -> Option<(String, f64)>,
}

/// Reads the values of the steps in `unread` from the fused step's record
/// (one wait for the device on a GPU) and goes through them in step order:
/// each is checked (the first non-finite one stops training, named with
/// its step) and added to the epoch's sums (loss, logs), exactly as if
/// read step by step. Returns the last one's loss and logged values.
fn read_step_values(
    exe: &mut Executable,
    unread: &mut Vec<StepAt>,
    check: &StepCheck,
    (loss_sum, log_sums): (&mut f64, &mut [f64]),
    saver: &Saver,
) -> Result<(f64, Vec<f64>), FitError> {
    let Some(first) = unread.first() else { return Ok((f64::NAN, Vec::new())) };
    let last = unread.last().expect("not empty").global_step;
    let rows = exe.take_recorded().map_err(|e| step_failed(e, first.global_step, last, &saver.last_good()))?;
    assert_eq!(rows.len(), unread.len(), "one recorded row per step run");
    let mut last = (f64::NAN, Vec::new());
    for (row, at) in rows.into_iter().zip(unread.drain(..)) {
        let mut values = row.iter().map(Tensor::scalar_value);
        let loss = values.next().expect("loss output");
        let mut logs: Vec<f64> = values.collect();
        let grad_check = check.checks_gradients.then(|| logs.pop().expect("the gradients' check"));
        if let Some((name, value)) = (check.bad_value)(loss, &logs, grad_check) {
            return Err(non_finite_error(&name, value, at.global_step, at.epoch, at.batch, &saver.last_good()));
        }
        *loss_sum += loss;
        for (s, v) in log_sums.iter_mut().zip(&logs) {
            *s += v;
        }
        last = (loss, logs);
    }
    Ok(last)
}

/// A step call (or the read of recorded values) failed at global step
/// `step`; on a GPU the failure may be that of any step queued since the
/// last read, `first_unread` on.
fn step_failed(e: runtime::Error, first_unread: usize, step: usize, last: &Option<PathBuf>) -> FitError {
    let saved = match last {
        Some(p) => format!("the last good checkpoint is {} (continue with --resume PATH)", p.display()),
        None => "no checkpoint was saved before it".to_string(),
    };
    let which = if first_unread < step {
        format!("a training step of global steps {first_unread}-{step} (queued since the last read)")
    } else {
        format!("training step {step}")
    };
    FitError::StepFailed(format!("{which} failed: {e}; nothing was saved after it; {saved}"))
}

fn non_finite_error(
    name: &str,
    value: f64,
    step: usize,
    epoch: usize,
    batch: usize,
    last: &Option<PathBuf>,
) -> FitError {
    let saved = match last {
        Some(p) => format!("the last good checkpoint is {} (continue with --resume PATH after a fix)", p.display()),
        None => "no checkpoint was saved before it".to_string(),
    };
    FitError::NonFinite(NonFiniteAt {
        message: format!(
            "error: {name} is {value} at global step {step} (epoch {epoch}, batch {batch}): training stopped \
             (trainer.stop_on_nonfinite); nothing was saved after it; {saved}"
        ),
        global_step: step,
        epoch,
        batch,
        last_good: last.clone(),
    })
}

/// Monitors and file name templates must name metrics that exist where
/// they are read: at an epoch's end, and (ModelCheckpoint with
/// `checkpoint_every_n_train_steps`) at a step's end, where the values are
/// the step's `train_loss` and `training_step` logs and, for other names,
/// the last epoch end's metrics; nonfinite_metrics must name logged values.
pub(crate) fn check_metric_names(
    cfg: &TrainerConfig,
    epoch_names: &[String],
    progs: &TrainPrograms,
) -> Result<(), FitError> {
    let step_names: Vec<String> =
        std::iter::once("train_loss".to_string()).chain(progs.train_logs.iter().map(|(n, _)| n.clone())).collect();
    // (key, metric, checked at epoch ends, checked at step ends)
    let mut wanted: Vec<(&str, String, bool, bool)> = Vec::new();
    let ck = &cfg.checkpoint;
    let (ck_epochs, ck_steps) = (ck.every_n_epochs > 0, ck.every_n_train_steps > 0);
    if let Some(m) = &ck.monitor {
        wanted.push(("checkpoint_monitor", m.clone(), ck_epochs, ck_steps));
    }
    if let Some(es) = &cfg.early_stopping {
        wanted.push(("early_stopping_monitor", es.monitor.clone(), true, false));
    }
    let template = callback::parse_template(&ck.filename).expect("checked by config");
    for m in callback::template_metrics(&template) {
        wanted.push(("checkpoint_filename", m.to_string(), ck_epochs, ck_steps));
    }
    // What to add to a name that is nowhere: the close one, or why a
    // validation metric is missing.
    let hint = |m: &str| -> String {
        let validation_logs = progs.val_logs.iter().any(|(n, _)| n == m);
        if validation_logs {
            return format!(
                " (validation_step logs `{m}`, but this run validates nothing: no validation examples, \
                 data.val_split = 0 or trainer.limit_val_batches = 0)"
            );
        }
        let known = epoch_names.iter().map(String::as_str).chain(step_names.iter().map(String::as_str));
        compiler::lower::suggest::closest(m, known).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    };
    for (key, m, at_epochs, at_steps) in wanted {
        if at_epochs && !epoch_names.contains(&m) {
            return Err(FitError::Config(format!(
                "trainer.{key}: no metric `{m}` at the end of an epoch{}; the epoch's metrics are: {}",
                hint(&m),
                epoch_names.join(", ")
            )));
        }
        // At a step, the last epoch end's metrics stand in for those the step lacks.
        if at_steps && !step_names.contains(&m) && !epoch_names.contains(&m) {
            return Err(FitError::Config(format!(
                "trainer.{key}: no value `{m}` at the end of a step (checkpoint_every_n_train_steps) or of \
                 an epoch{}; a step's values are: {}; the epoch's metrics are: {}",
                hint(&m),
                step_names.join(", "),
                epoch_names.join(", ")
            )));
        }
    }
    for m in &cfg.nonfinite_metrics {
        let logged = progs.train_logs.iter().chain(&progs.val_logs).any(|(n, _)| n == m);
        if !logged && m != "train_loss" {
            return Err(FitError::Config(format!(
                "trainer.nonfinite_metrics: `{m}` is not logged by training_step or validation_step"
            )));
        }
    }
    Ok(())
}

/// A monitor whose name reads as a score (accuracy, F1, AUC, ...) under
/// mode "min", the default: it keeps or waits for the lowest, which is
/// rarely meant (Lightning says nothing; a run of a hundred epochs would
/// keep the first).
fn mode_notes(cfg: &TrainerConfig) -> Vec<String> {
    let score = |m: &str| {
        let m = m.to_lowercase();
        ["acc", "f1", "auc", "precision", "recall", "iou", "bleu", "top"].iter().any(|s| m.contains(s))
    };
    let mut notes = Vec::new();
    if let Some(m) = cfg.checkpoint.monitor.as_deref().filter(|m| score(m) && cfg.checkpoint.mode == Mode::Min) {
        notes.push(format!(
            "checkpoint_monitor = \"{m}\" with checkpoint_mode = \"min\" keeps the lowest `{m}`; for a score to \
             maximize set checkpoint_mode = \"max\""
        ));
    }
    if let Some(es) = cfg.early_stopping.as_ref().filter(|es| score(&es.monitor) && es.mode == Mode::Min) {
        notes.push(format!(
            "early_stopping_monitor = \"{0}\" with early_stopping_mode = \"min\" waits for `{0}` to fall; for a \
             score to maximize set early_stopping_mode = \"max\"",
            es.monitor
        ));
    }
    notes
}

/// A validation or test value named like a training column
/// (`train_loss_epoch`, or `acc_step` when training logs `acc`) would share
/// its column in metrics.csv and hide one of the two.
fn check_log_clashes(progs: &TrainPrograms) -> Result<(), FitError> {
    let mut train_columns = vec!["train_loss_step".to_string(), "train_loss_epoch".to_string()];
    for (n, _) in &progs.train_logs {
        train_columns.push(format!("{n}_step"));
        train_columns.push(format!("{n}_epoch"));
    }
    for (step, logs) in [("validation_step", &progs.val_logs), ("test_step", &progs.test_logs)] {
        if let Some((n, _)) = logs.iter().find(|(n, _)| train_columns.contains(n)) {
            return Err(FitError::Config(format!(
                "{step} logs `{n}`, the name of a training column (training logs: {}): rename it",
                train_columns.join(", ")
            )));
        }
    }
    Ok(())
}

/// The metrics each epoch end has, what monitors and file names may use:
/// the training means, and the validation values when the run validates.
pub(crate) fn epoch_metric_names(progs: &TrainPrograms, validates: bool) -> Vec<String> {
    let mut names = vec!["train_loss_epoch".to_string()];
    names.extend(progs.train_logs.iter().map(|(n, _)| format!("{n}_epoch")));
    if validates {
        names.extend(progs.val_logs.iter().map(|(n, _)| n.clone()));
    }
    names
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
                Init::Full(v) => vec![*v; n],
                Init::Uniform { low, high } => (0..n).map(|_| rng.uniform(*low, *high)).collect(),
                Init::Normal { mean, std } => (0..n).map(|_| mean + std * rng.normal()).collect(),
                Init::Absent => unreachable!("an absent field is no parameter"),
                Init::Orthogonal(gain) => {
                    let dims = p.ty.shape.dims();
                    let rows = dims.first().copied().unwrap_or(1);
                    crate::orthogonal::orthogonal(rows, n / rows.max(1), *gain, &mut || rng.normal())
                }
                Init::GlorotUniform | Init::GlorotNormal | Init::HeUniform | Init::HeNormal => {
                    let (fan_in, fan_out) = compiler::lower::value::fans(p.ty.shape.dims());
                    let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
                    match &p.init {
                        Init::GlorotUniform => {
                            let a = (6.0 / (fan_in + fan_out)).sqrt();
                            (0..n).map(|_| rng.uniform(-a, a)).collect()
                        }
                        Init::GlorotNormal => {
                            let std = (2.0 / (fan_in + fan_out)).sqrt();
                            (0..n).map(|_| std * rng.normal()).collect()
                        }
                        Init::HeUniform => {
                            let a = (6.0 / fan_in).sqrt();
                            (0..n).map(|_| rng.uniform(-a, a)).collect()
                        }
                        _ => {
                            let std = (2.0 / fan_in).sqrt();
                            (0..n).map(|_| std * rng.normal()).collect()
                        }
                    }
                }
            };
            Tensor::from_f64(p.ty.dtype, p.ty.shape.dims(), &values)
        })
        .collect()
}
