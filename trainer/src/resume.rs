//! Continuing a run: the checkpoint `--resume` (or `--ckpt`) names, and
//! loading it after checking that it continues this run bit-exactly (seed,
//! data order, position, parameters and optimizer states).

use crate::callback::{self, Callback, ModelCheckpoint};
use crate::checkpoint;
use crate::fit::FitError;
use crate::saver::Position;
use compiler::ir::{Tensor, Type};
use compiler::lower::{ParamKind, TrainPrograms};
use std::path::{Path, PathBuf};

/// A checkpoint named on the command line: `--resume`, `--ckpt`.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// `last.safetensors` of the newest `version_N` under `<root>/<name>` that has one.
    Last,
    /// ModelCheckpoint's best file, as recorded in that `last.safetensors`.
    Best,
    Path(PathBuf),
}

impl Resume {
    /// `last`, `best`, or a path.
    pub fn parse(s: &str) -> Resume {
        match s {
            "last" => Resume::Last,
            "best" => Resume::Best,
            p => Resume::Path(PathBuf::from(p)),
        }
    }
}

/// The file a `Resume` names, for a run whose version directories are in
/// `base`; `flag` (`--resume`, `--ckpt`) and `purpose` (`resume from`,
/// `evaluate`) word the errors.
pub fn resolve_checkpoint(which: &Resume, base: &Path, flag: &str, purpose: &str) -> Result<PathBuf, FitError> {
    let last = || {
        let name = if *which == Resume::Best { "best" } else { "last" };
        checkpoint::find_last(base).ok_or_else(|| {
            FitError::Config(format!(
                "{flag} {name}: no checkpoint to {purpose}: no {}/version_*/checkpoints/last.safetensors",
                base.display()
            ))
        })
    };
    match which {
        Resume::Last => last(),
        Resume::Best => {
            let last = last()?;
            let ck = checkpoint::load(&last)?;
            let best = ModelCheckpoint::best_path_in(&ck.meta.callbacks, base).ok_or_else(|| {
                FitError::Config(format!(
                    "{flag} best: {} records no best checkpoint (ModelCheckpoint kept none: \
                     set trainer.checkpoint_monitor and save_top_k >= 1)",
                    last.display()
                ))
            })?;
            if !best.is_file() {
                return Err(FitError::Config(format!(
                    "{flag} best: {} records {} as the best checkpoint, and it is not there (moved or deleted?); \
                     name a checkpoint file instead",
                    last.display(),
                    best.display()
                )));
            }
            Ok(best)
        }
        Resume::Path(p) => Ok(p.clone()),
    }
}

/// What a checkpoint must match to continue this run bit-exactly.
pub(crate) struct RunShape<'a> {
    pub(crate) names: &'a [(String, Type)],
    pub(crate) n_params: usize,
    pub(crate) n_batches: usize,
    pub(crate) data_order: &'a str,
    pub(crate) seed: u64,
    /// Micro-batches per optimizer step: checkpoints lie on window boundaries.
    pub(crate) k: usize,
}

/// Loads a checkpoint to continue from: checks that it continues this run
/// (seed, data order, position), takes its tensors strictly and restores
/// the callbacks' states. Returns the parameters, optimizer states and position.
pub(crate) fn load_for_resume(
    ck_path: &Path,
    run: &RunShape,
    base: &Path,
    progs: &TrainPrograms,
    path: &Path,
    text: &str,
    callbacks: &mut [Box<dyn Callback>],
) -> Result<(Vec<Tensor>, Vec<Tensor>, Position), FitError> {
    let name = ck_path.display().to_string();
    let mut ck = checkpoint::load(ck_path)?;
    let m = ck.meta.clone();
    let (n_batches, data_order) = (run.n_batches, run.data_order);
    let mut problems = Vec::new();
    if m.seed != run.seed {
        problems.push(format!(
            "it was trained with seed {}, this run has seed {} (set trainer.seed = {})",
            m.seed, run.seed, m.seed
        ));
    }
    if m.data_order != data_order {
        problems.push(format!(
            "its data order was `{}`, this run's is `{data_order}`{}",
            m.data_order,
            data_order_hint(&m.data_order, data_order)
        ));
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
    if m.batch % run.k != 0 {
        problems.push(format!(
            "its position (batch {}) is inside a window of accumulate_grad_batches = {}",
            m.batch, run.k
        ));
    }
    // At most one step per batch: a larger count is not a position this run
    // could have reached (a hand-edited file; it would overflow the step count).
    let most_steps = m.epoch.checked_add(1).and_then(|e| e.checked_mul(n_batches.max(1)));
    if most_steps.is_none_or(|most| m.global_step > most) {
        problems.push(format!(
            "its global step {} cannot follow from epoch {}, batch {} with {n_batches} batches per epoch",
            m.global_step, m.epoch, m.batch
        ));
    }
    if !problems.is_empty() {
        return Err(FitError::Config(format!("cannot resume bit-exactly from {name}:\n  {}", problems.join("\n  "))));
    }
    // Checkpoints written before buffers lost their optimizer states
    // (2026-11-29) hold unused all-zero ones: not a mismatch.
    let buffers: Vec<&str> =
        progs.params.iter().filter(|p| p.kind == ParamKind::Buffer).map(|p| p.path.as_str()).collect();
    ck.drop_states_of(&buffers);
    let stored_states = ck.tensors.iter().filter(|(n, _)| checkpoint::state_of(n).is_some()).count();
    let mut params = ck.take_strict(&name, run.names).map_err(|e| {
        if stored_states == progs.n_states() {
            return FitError::from(e);
        }
        // Other states than this run keeps: the optimizer changed, not the model.
        FitError::Config(format!(
            "{e}\n  (the checkpoint holds {stored_states} optimizer states, this run keeps {}: the optimizer or its \
             parameter groups changed since it was saved; `--init-from` starts a new run from its parameters)",
            progs.n_states()
        ))
    })?;
    if m.model_hash != checkpoint::model_hash(text) {
        eprintln!("warning: {} changed since {name} was saved; resuming anyway (the parameters fit)", path.display());
    }
    let states = params.split_off(run.n_params);
    // The files ModelCheckpoint kept are another run directory's when the
    // checkpoint lies outside this run's `base`: not ours to delete.
    let inside = |base: &Path| Some(ck_path.canonicalize().ok()?.starts_with(base.canonicalize().ok()?));
    let mut states_json = m.callbacks.clone();
    if inside(base) != Some(true) && ModelCheckpoint::best_path_in(&states_json, base).is_some() {
        eprintln!(
            "note: {name} is not inside {}: the checkpoints its run kept stay where they are, \
             and this run keeps its own top-k",
            base.display()
        );
        states_json = ModelCheckpoint::forget_kept(&states_json);
    }
    for w in callback::load_states(callbacks, &states_json) {
        eprintln!("warning: {name}: {w}");
    }
    let pos = Position {
        epoch: m.epoch,
        batch: m.batch,
        global_step: m.global_step,
        loss_sum: m.loss_sum,
        log_sums: m.log_sums,
    };
    eprintln!("resuming from {name}: epoch {}, batch {}, global step {}", pos.epoch, pos.batch, pos.global_step);
    Ok((params, states, pos))
}

/// What to set to get a checkpoint's data order back: the settings that
/// differ (`batch_size=64` -> `--set data.batch_size=64`), or that the data
/// itself changed (its example count).
fn data_order_hint(saved: &str, now: &str) -> String {
    let fields = |s: &str| -> Vec<(String, String)> {
        s.split(',').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let now = fields(now);
    let mut sets = Vec::new();
    let mut data_changed = false;
    for (key, old) in fields(saved) {
        if now.iter().any(|(k, v)| *k == key && *v == old) {
            continue;
        }
        match key.as_str() {
            "batch_size" | "val_split" | "shuffle" => sets.push(format!("--set data.{key}={old}")),
            "accumulate_grad_batches" => sets.push(format!("--set trainer.{key}={old}")),
            "n_train" => data_changed = true,
            _ => {}
        }
    }
    // Absent in `saved` (k = 1 is not written) but present now.
    if now.iter().any(|(k, _)| k == "accumulate_grad_batches") && !saved.contains("accumulate_grad_batches") {
        sets.push("--set trainer.accumulate_grad_batches=1".into());
    }
    match (sets.is_empty(), data_changed) {
        (_, true) => " (the training data has another number of examples: a new run, not a resume)".into(),
        (false, false) => format!(" ({} to continue it)", sets.join(" ")),
        (true, false) => " (limit_train_batches or overfit_batches changed? set them as before)".into(),
    }
}

/// Removes the temp files that interrupted checkpoint writes left in any
/// `<base>/version_*/checkpoints/`.
pub(crate) fn remove_stray_checkpoint_temps(base: &Path) -> Result<(), FitError> {
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
