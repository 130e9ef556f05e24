//! Callbacks: small objects the loop calls at fixed points (Lightning's
//! hooks), with a state that is saved into every checkpoint and restored on
//! `--resume`, so that a resumed run decides exactly as the uninterrupted
//! one (the same patience count, best score and top-k list).
//!
//! A callback never touches tensors or files itself: it asks the loop, through
//! `Ctx`, to write checkpoint files, to delete evicted ones, or to stop. The
//! loop runs every callback's hook, then writes the files with every
//! callback's updated state in their metadata, so a file always holds the
//! state of the moment it was written.
//!
//! The built-in callbacks are `ModelCheckpoint` (which epoch checkpoints
//! to keep, ranked by a monitored metric), `EarlyStopping` (stop when a
//! monitored metric stops improving), both configured from the `trainer`
//! section (see `config::CheckpointConfig` and
//! `config::EarlyStoppingConfig`), and `Timer` (the training time of a run
//! and of the runs it resumes, for `max_time`).

use crate::config::{CheckpointConfig, EarlyStoppingConfig, Mode};
use serde_json::{json, Value};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a hook sees of the loop, and what it asks of it.
pub struct Ctx<'a> {
    /// The epoch in progress (at `on_validation_end`: the epoch that just ended).
    pub epoch: usize,
    /// Optimizer steps taken so far.
    pub global_step: usize,
    /// At `on_validation_end`: the epoch's aggregated metrics (training
    /// `*_epoch` averages and validation values); at a batch end: the step's
    /// loss (`train_loss`) and logged values.
    pub metrics: &'a [(String, f64)],
    /// The directory checkpoint files go to (absolute).
    pub ckpt_dir: &'a Path,
    /// Set to end training after this hook.
    pub should_stop: bool,
    /// Checkpoint files to write now, as file names in `ckpt_dir`.
    pub save: Vec<String>,
    /// Checkpoint files to delete once the new ones are written.
    pub remove: Vec<PathBuf>,
    /// Lines for the user (printed on stderr).
    pub messages: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(epoch: usize, global_step: usize, metrics: &'a [(String, f64)], ckpt_dir: &'a Path) -> Ctx<'a> {
        Ctx {
            epoch,
            global_step,
            metrics,
            ckpt_dir,
            should_stop: false,
            save: vec![],
            remove: vec![],
            messages: vec![],
        }
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

/// Lightning's callback hooks, the few this loop has. Every hook has a
/// default that does nothing.
pub trait Callback {
    /// The key of this callback's state in the checkpoint metadata.
    fn name(&self) -> &'static str;
    fn on_train_start(&mut self, _ctx: &mut Ctx) {}
    /// After a training step, with its metrics; called at least after
    /// every step where `reads_batch_end` is true (the loop may call it
    /// after others too).
    fn on_train_batch_end(&mut self, _ctx: &mut Ctx) {}
    /// Whether `on_train_batch_end` must run after the step that makes
    /// `global_step` steps. A step's metrics stay in the engine (on a GPU,
    /// on the device) until something reads them, and a read waits for the
    /// device to finish; a callback that acts only at some steps says which,
    /// so the others run without a wait. Default: every step.
    fn reads_batch_end(&self, _global_step: usize) -> bool {
        true
    }
    /// After each epoch's validation (after the training epoch when the
    /// model has no `validation_step`).
    fn on_validation_end(&mut self, _ctx: &mut Ctx) {}
    fn on_train_end(&mut self, _ctx: &mut Ctx) {}
    /// Everything the callback's future decisions depend on, as JSON.
    fn state_dict(&self) -> Value;
    /// Restores `state_dict`'s output; an error says why it does not fit.
    fn load_state_dict(&mut self, state: &Value) -> Result<(), String>;
}

/// The names of the built-in callbacks (their states' keys in checkpoints).
pub const BUILT_IN_NAMES: [&str; 3] = ["ModelCheckpoint", "EarlyStopping", "Timer"];

/// Floats in states are the hex of their bits: exact, and NaN survives.
fn f64_hex(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn parse_f64_hex(v: &Value) -> Option<f64> {
    let s = v.as_str()?;
    (s.len() == 16).then(|| u64::from_str_radix(s, 16).ok().map(f64::from_bits)).flatten()
}

/// Is `a` better than `b` by more than `delta`?
fn better(mode: Mode, a: f64, b: f64, delta: f64) -> bool {
    match mode {
        Mode::Min => a < b - delta,
        Mode::Max => a > b + delta,
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Min => "min",
        Mode::Max => "max",
    }
}

/// One piece of a file name template.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    Text(String),
    /// `{name}` or `{name:.precision}`.
    Field {
        name: String,
        precision: Option<usize>,
    },
}

/// Parses `epoch={epoch}-val_acc={val_acc:.4}`.
pub fn parse_template(s: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("unmatched `}}` at byte {}", s.len() - rest.len() + open));
        }
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed `{{` at byte {}", s.len() - rest.len() + open));
        };
        let field = &rest[open + 1..open + close];
        let (name, precision) = match field.split_once(':') {
            None => (field, None),
            Some((n, p)) => match p.strip_prefix('.').and_then(|d| d.parse::<usize>().ok()) {
                Some(d) if d <= 17 => (n, Some(d)),
                _ => return Err(format!("`{{{field}}}`: a precision is written `:.N` with N at most 17")),
            },
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{{{field}}}`: expected a metric name such as `{{val_acc}}`"));
        }
        pieces.push(Piece::Field { name: name.to_string(), precision });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

/// The names a template refers to (besides `epoch` and `step`).
pub fn template_metrics(pieces: &[Piece]) -> Vec<&str> {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Field { name, .. } if name != "epoch" && name != "step" => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// Fills a template: `epoch` and `step` are integers, metrics floats (with
/// the precision, if given). A metric the epoch did not log is `nan`.
pub fn format_template(pieces: &[Piece], epoch: usize, step: usize, metrics: &[(String, f64)]) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field { name, .. } if name == "epoch" => out.push_str(&epoch.to_string()),
            Piece::Field { name, .. } if name == "step" => out.push_str(&step.to_string()),
            Piece::Field { name, precision } => {
                let v = metrics.iter().find(|(k, _)| k == name).map_or(f64::NAN, |(_, v)| *v);
                match precision {
                    Some(d) => out.push_str(&format!("{v:.d$}")),
                    None => out.push_str(&format!("{v}")),
                }
            }
        }
    }
    out
}

/// Keeps the epoch (and every-N-steps) checkpoints: all of them, the
/// newest `k` (without a monitor), or the best `k` by the monitored metric.
pub struct ModelCheckpoint {
    cfg: CheckpointConfig,
    template: Vec<Piece>,
    /// Invariant: best first (newest first without a monitor); at most
    /// `save_top_k` entries when that is set. Scores are NaN without a monitor.
    kept: Vec<(f64, PathBuf)>,
    /// The metrics of the last epoch end it saw: a step checkpoint
    /// (`every_n_train_steps`) reads a monitored value or a file name's
    /// metric the step does not have (`val_loss`) here, as Lightning's
    /// callback metrics keep the last validation's values. Saved with the
    /// state, so a resumed run ranks as the uninterrupted one.
    seen: Vec<(String, f64)>,
    /// The run's directory of version directories (`<root>/<name>`,
    /// absolute), known from train start: the state records kept files
    /// relative to it, so a checkpoint's bytes do not depend on where the
    /// run was written, and a moved run still finds its files.
    base: Option<PathBuf>,
}

impl ModelCheckpoint {
    pub fn new(cfg: CheckpointConfig) -> ModelCheckpoint {
        let template = parse_template(&cfg.filename).expect("checked by config::trainer_config");
        ModelCheckpoint { cfg, template, kept: vec![], seen: vec![], base: None }
    }

    /// The best checkpoint so far (without a monitor: the newest).
    pub fn best_model_path(&self) -> Option<&Path> {
        self.kept.first().map(|(_, p)| p.as_path())
    }

    /// The kept checkpoints and their scores, best first.
    pub fn kept(&self) -> &[(f64, PathBuf)] {
        &self.kept
    }

    /// Names a checkpoint of now (`ctx`'s epoch, step and metrics), ranks
    /// it among the kept ones, and asks the trainer to write it (unless it
    /// ranks out at once) and to delete the ones it pushes out.
    fn consider(&mut self, ctx: &mut Ctx, metrics: &[(String, f64)]) {
        if self.cfg.save_top_k == Some(0) {
            return;
        }
        let name = format!("{}.safetensors", format_template(&self.template, ctx.epoch, ctx.global_step, metrics));
        let path = ctx.ckpt_dir.join(&name);
        // A template without `{epoch}` names one file again: it replaces its entry.
        self.kept.retain(|(_, p)| *p != path);
        let score = match &self.cfg.monitor {
            None => f64::NAN,
            Some(m) => metrics.iter().find(|(k, _)| k == m).map_or(f64::NAN, |(_, v)| *v),
        };
        let pos = match &self.cfg.monitor {
            None => 0,
            // NaN ranks last; ties keep the older checkpoint first.
            Some(_) => self
                .kept
                .iter()
                .position(|(s, _)| !score.is_nan() && (s.is_nan() || better(self.cfg.mode, score, *s, 0.0)))
                .unwrap_or(self.kept.len()),
        };
        self.kept.insert(pos, (score, path.clone()));
        let mut evicted = match self.cfg.save_top_k {
            Some(k) if self.kept.len() > k => self.kept.split_off(k),
            _ => vec![],
        };
        if let Some(i) = evicted.iter().position(|(_, p)| *p == path) {
            // Not among the best: never written.
            evicted.remove(i);
        } else {
            ctx.save.push(name);
        }
        ctx.remove.extend(evicted.into_iter().map(|(_, p)| p));
    }

    /// Reads the best path out of a checkpoint's `callbacks` metadata:
    /// relative to the run's `base` (`<root>/<name>`; older files recorded
    /// absolute paths, which `join` keeps).
    pub fn best_path_in(callbacks: &str, base: &Path) -> Option<PathBuf> {
        let all: Value = serde_json::from_str(callbacks).ok()?;
        let kept = all.get("ModelCheckpoint")?.get("kept")?.as_array()?;
        kept.first()?.get(1)?.as_str().map(|p| base.join(p))
    }

    /// Forgets the kept checkpoints a resumed state names: they belong to
    /// another run directory, which this run must not delete from (nor rank
    /// against), as Lightning does when the checkpoint directory changed.
    pub fn forget_kept(callbacks: &str) -> String {
        let Ok(mut all) = serde_json::from_str::<Value>(callbacks) else { return callbacks.to_string() };
        if let Some(kept) = all.get_mut("ModelCheckpoint").and_then(|m| m.get_mut("kept")) {
            *kept = json!([]);
        }
        all.to_string()
    }
}

/// The run's directory of version directories for a checkpoint directory
/// `<base>/version_N/checkpoints`.
pub fn run_base(ckpt_dir: &Path) -> &Path {
    ckpt_dir.parent().and_then(Path::parent).unwrap_or(ckpt_dir)
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> &'static str {
        BUILT_IN_NAMES[0]
    }

    /// `every_n_train_steps`: a checkpoint of this step, ranked by the
    /// step's values (and the last epoch end's, for names the step lacks).
    fn reads_batch_end(&self, global_step: usize) -> bool {
        let every = self.cfg.every_n_train_steps;
        every > 0 && global_step.is_multiple_of(every)
    }

    /// Resolves the kept files a resumed state names against this run's
    /// directory. An absolute path (older files) outside it is dropped:
    /// never deleted from here.
    fn on_train_start(&mut self, ctx: &mut Ctx) {
        let base = run_base(ctx.ckpt_dir).to_path_buf();
        let mut outside = Vec::new();
        self.kept.retain_mut(|(_, p)| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
            let inside = p.starts_with(&base);
            if !inside {
                outside.push(p.display().to_string());
            }
            inside
        });
        if !outside.is_empty() {
            ctx.messages.push(format!(
                "ModelCheckpoint: the resumed state keeps {} outside {}: left alone (neither ranked nor deleted)",
                outside.join(", "),
                base.display()
            ));
        }
        self.base = Some(base);
    }

    fn on_train_batch_end(&mut self, ctx: &mut Ctx) {
        if self.reads_batch_end(ctx.global_step) {
            let mut metrics = ctx.metrics.to_vec();
            metrics.extend(self.seen.iter().filter(|(k, _)| ctx.metric(k).is_none()).cloned());
            self.consider(ctx, &metrics);
        }
    }

    /// `every_n_epochs`: a checkpoint of this epoch, ranked by its metrics.
    fn on_validation_end(&mut self, ctx: &mut Ctx) {
        self.seen = ctx.metrics.to_vec();
        let every = self.cfg.every_n_epochs;
        if every > 0 && (ctx.epoch + 1).is_multiple_of(every) {
            self.consider(ctx, ctx.metrics);
        }
    }

    fn state_dict(&self) -> Value {
        let relative = |p: &Path| self.base.as_ref().and_then(|b| p.strip_prefix(b).ok()).unwrap_or(p).to_path_buf();
        let kept: Vec<Value> =
            self.kept.iter().map(|(s, p)| json!([f64_hex(*s), relative(p).display().to_string()])).collect();
        let seen: Vec<Value> = self.seen.iter().map(|(k, v)| json!([k, f64_hex(*v)])).collect();
        json!({ "monitor": self.cfg.monitor, "mode": mode_name(self.cfg.mode), "kept": kept, "seen": seen })
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<(), String> {
        let monitor = state.get("monitor").and_then(|m| m.as_str()).map(str::to_string);
        let mode = state.get("mode").and_then(|m| m.as_str()).unwrap_or("");
        if monitor != self.cfg.monitor || mode != mode_name(self.cfg.mode) {
            return Err(format!(
                "it ranked checkpoints by {} ({mode}), this run by {} ({})",
                monitor.as_deref().unwrap_or("nothing"),
                self.cfg.monitor.as_deref().unwrap_or("nothing"),
                mode_name(self.cfg.mode)
            ));
        }
        let bad = || "ModelCheckpoint: malformed `kept` list".to_string();
        let mut kept = Vec::new();
        for entry in state.get("kept").and_then(|k| k.as_array()).ok_or_else(bad)? {
            let score = entry.get(0).and_then(parse_f64_hex).ok_or_else(bad)?;
            let path = PathBuf::from(entry.get(1).and_then(|p| p.as_str()).ok_or_else(bad)?);
            // A relative path names a file below the run's directory: no
            // `..`; and only checkpoint files are ever deleted.
            let plain = path.components().all(|c| matches!(c, std::path::Component::Normal(_)));
            if path.is_relative() && !plain {
                return Err(format!("ModelCheckpoint: kept path {} leaves the run's directory", path.display()));
            }
            if path.extension().is_none_or(|e| e != "safetensors") {
                return Err(format!("ModelCheckpoint: kept path {} is not a .safetensors file", path.display()));
            }
            kept.push((score, path));
        }
        // Checkpoints written before `seen` existed have none.
        let mut seen = Vec::new();
        for entry in state.get("seen").and_then(|k| k.as_array()).into_iter().flatten() {
            let bad = || "ModelCheckpoint: malformed `seen` list".to_string();
            let name = entry.get(0).and_then(|n| n.as_str()).ok_or_else(bad)?;
            let value = entry.get(1).and_then(parse_f64_hex).ok_or_else(bad)?;
            seen.push((name.to_string(), value));
        }
        self.kept = kept;
        self.seen = seen;
        Ok(())
    }
}

/// Stops training when the monitored metric has not improved by more than
/// `min_delta` for `patience` validation checks in a row, or is not finite.
pub struct EarlyStopping {
    cfg: EarlyStoppingConfig,
    /// Checks since the last improvement.
    wait: usize,
    best: Option<f64>,
}

impl EarlyStopping {
    pub fn new(cfg: EarlyStoppingConfig) -> EarlyStopping {
        EarlyStopping { cfg, wait: 0, best: None }
    }
    pub fn wait_count(&self) -> usize {
        self.wait
    }
    pub fn best_score(&self) -> Option<f64> {
        self.best
    }
}

impl Callback for EarlyStopping {
    fn name(&self) -> &'static str {
        BUILT_IN_NAMES[1]
    }
    /// Acts at epoch ends (and the Timer at train start and end) only.
    fn reads_batch_end(&self, _global_step: usize) -> bool {
        false
    }

    fn on_validation_end(&mut self, ctx: &mut Ctx) {
        let m = &self.cfg.monitor;
        let Some(current) = ctx.metric(m) else { return };
        if !current.is_finite() {
            ctx.should_stop = true;
            ctx.messages
                .push(format!("EarlyStopping: {m} = {current} is not finite; stopping after epoch {}", ctx.epoch));
            return;
        }
        match self.best {
            Some(best) if !better(self.cfg.mode, current, best, self.cfg.min_delta) => {
                self.wait += 1;
                if self.wait >= self.cfg.patience {
                    ctx.should_stop = true;
                    ctx.messages.push(format!(
                        "EarlyStopping: {m} did not improve by more than {} for {} epoch{} (best {best:.6}); stopping after epoch {}",
                        self.cfg.min_delta,
                        self.wait,
                        if self.wait == 1 { "" } else { "s" },
                        ctx.epoch
                    ));
                }
            }
            _ => {
                self.best = Some(current);
                self.wait = 0;
            }
        }
    }

    fn state_dict(&self) -> Value {
        json!({ "monitor": self.cfg.monitor, "wait": self.wait, "best": self.best.map(f64_hex) })
    }

    fn load_state_dict(&mut self, state: &Value) -> Result<(), String> {
        let monitor = state.get("monitor").and_then(|m| m.as_str()).unwrap_or("");
        if monitor != self.cfg.monitor {
            return Err(format!("it monitored {monitor}, this run monitors {}", self.cfg.monitor));
        }
        let bad = || "EarlyStopping: malformed state".to_string();
        self.wait = state.get("wait").and_then(|w| w.as_u64()).ok_or_else(bad)? as usize;
        self.best = match state.get("best") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_f64_hex(v).ok_or_else(bad)?),
        };
        Ok(())
    }
}

/// Lightning's Timer: the training time of this run plus that of every run
/// it resumes (restored from the checkpoint), so `max_time` bounds the
/// whole training, not each segment. Present only when `max_time` is set:
/// wall time in a checkpoint would make two runs' files differ.
pub struct Timer {
    clock: Rc<TrainingClock>,
}

/// The Timer's clock, shared with the loop, which compares `elapsed` with
/// `max_time` before every step: one clock, so a checkpoint written after
/// the loop stopped at `max_time` holds at least `max_time`.
#[derive(Default)]
pub struct TrainingClock {
    /// Training time before this run (restored on resume).
    before: Cell<Duration>,
    /// When this run's training started (`on_train_start`).
    started: Cell<Option<Instant>>,
}

impl TrainingClock {
    /// The training time so far, resumed runs included.
    pub fn elapsed(&self) -> Duration {
        self.before.get() + self.started.get().map_or(Duration::ZERO, |t| t.elapsed())
    }
}

impl Timer {
    /// The timer and the loop's handle on its clock.
    pub fn new() -> (Timer, Rc<TrainingClock>) {
        let clock = Rc::new(TrainingClock::default());
        (Timer { clock: clock.clone() }, clock)
    }
}

impl Callback for Timer {
    fn name(&self) -> &'static str {
        BUILT_IN_NAMES[2]
    }
    /// Acts at epoch ends (and the Timer at train start and end) only.
    fn reads_batch_end(&self, _global_step: usize) -> bool {
        false
    }
    fn on_train_start(&mut self, _ctx: &mut Ctx) {
        self.clock.started.set(Some(Instant::now()));
    }
    fn state_dict(&self) -> Value {
        json!({ "elapsed_s": f64_hex(self.clock.elapsed().as_secs_f64()) })
    }
    fn load_state_dict(&mut self, state: &Value) -> Result<(), String> {
        let seconds = parse_f64_hex(&state["elapsed_s"])
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or("`elapsed_s` is not a time in seconds")?;
        self.clock.before.set(Duration::from_secs_f64(seconds));
        Ok(())
    }
}

/// Every callback's state, as the checkpoint's `callbacks` metadata (a JSON object by name).
pub fn states_json(callbacks: &[Box<dyn Callback>]) -> String {
    let map: serde_json::Map<String, Value> =
        callbacks.iter().map(|c| (c.name().to_string(), c.state_dict())).collect();
    Value::Object(map).to_string()
}

/// Restores each callback whose state the checkpoint holds. Returns the
/// warnings for states that did not fit and for callbacks the checkpoint
/// has no state for (those start fresh), and for states of callbacks this
/// run does not have (dropped).
pub fn load_states(callbacks: &mut [Box<dyn Callback>], json: &str) -> Vec<String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
        return if json.is_empty() { vec![] } else { vec!["the callbacks' state is not a JSON object".into()] };
    };
    let mut warnings = Vec::new();
    for c in callbacks.iter_mut() {
        match map.get(c.name()) {
            Some(state) => {
                if let Err(e) = c.load_state_dict(state) {
                    warnings.push(format!("{}: {e}; it starts afresh", c.name()));
                }
            }
            None => warnings.push(format!("no state saved for callback `{}`; it starts afresh", c.name())),
        }
    }
    for name in map.keys().filter(|n| !callbacks.iter().any(|c| c.name() == n.as_str())) {
        warnings.push(format!("the state of callback `{name}` is not used: this run has no callback of that name"));
    }
    warnings
}

#[cfg(test)]
mod tests;
