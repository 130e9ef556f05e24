//! What `fit`, `test` and `validate` share before their loops: the model
//! file checked, its `data` and `trainer` sections read (with `--set`
//! overrides), the data loaded and split, and the programs compiled.
//!
//! Consumes the model file's text and the command-line options; produces a
//! `Setup`. Never trains and never writes files.

use crate::config::{self, DataConfig, SourceKind, TrainerConfig};
use crate::data::{self, Dataset};
use crate::data_module::DataModule;
use crate::fit::FitError;
use compiler::diagnostic::{Code, Diagnostic};
use compiler::ir::Func;
use compiler::lower::{Program, Section, TrainPrograms};
use runtime::{Backend, Executable};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Setup {
    pub prog: Program,
    pub trainer_sec: Option<Section>,
    pub data_cfg: DataConfig,
    pub trainer_cfg: TrainerConfig,
    pub train: Dataset,
    pub val: Dataset,
    /// `None`: the data source has no test split.
    pub test: Option<Dataset>,
    /// The programs for full batches of `batch_size`.
    pub progs: TrainPrograms,
    pub compile_ms: f64,
    /// `<default_root_dir>/<name>`: where the run's version directories live.
    pub base: PathBuf,
}

/// Which evaluation program a loop runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stage {
    Validate,
    Test,
}

impl Stage {
    pub fn method(self) -> &'static str {
        match self {
            Stage::Validate => "validation_step",
            Stage::Test => "test_step",
        }
    }
}

pub(crate) fn diagnostics(diags: Vec<Diagnostic>, prog: &Program, color: bool) -> FitError {
    FitError::Diagnostics {
        rendered: compiler::diagnostic::render_all(&diags, &prog.sources, color),
        count: diags.len(),
    }
}

/// Checks, configures, loads and compiles (the training step for full batches).
/// `module`: the data come from Rust code (`data_module.rs`) instead of
/// the model file's `data` section.
pub fn prepare(
    path: &Path,
    text: &str,
    overrides: &[String],
    color: bool,
    opts: &compiler::Options,
    module: Option<&mut dyn DataModule>,
) -> Result<Setup, FitError> {
    // Files the model imports (`use "layers.jl"`) are read from disk.
    let mut read = |p: &str| std::fs::read_to_string(p).map_err(|e| e.to_string());
    let (prog, diags) = compiler::lower::load_with(&path.display().to_string(), text, &mut read);
    let mut all = diags;
    all.extend(compiler::lower::check_program(&prog));
    if all.iter().any(Diagnostic::is_error) {
        return Err(diagnostics(all, &prog, color));
    }
    let sections = compiler::lower::training_sections(&prog).map_err(|d| diagnostics(d, &prog, color))?;
    let (mut data_sec, mut trainer_sec) = (sections.data, sections.trainer);
    let mut module_overrides = Vec::new();
    for spec in overrides {
        if module.is_some() && spec.starts_with("data.") {
            module_overrides.push(spec.as_str());
            continue;
        }
        config::apply_override(&mut data_sec, &mut trainer_sec, spec).map_err(FitError::Config)?;
    }
    // Both sections' mistakes in one report (the data section's were
    // reported only after the trainer section's were fixed).
    let data_result = match (&module, &data_sec) {
        (None, Some(sec)) => Some(config::data_config(sec)),
        _ => None,
    };
    let trainer_cfg = match (config::trainer_config(trainer_sec.as_ref()), &data_result) {
        (Ok(cfg), None | Some(Ok(_))) => cfg,
        (trainer, data) => {
            let mut all = trainer.err().unwrap_or_default();
            all.extend(data.clone().and_then(Result::err).unwrap_or_default());
            return Err(diagnostics(all, &prog, color));
        }
    };
    // Before anything runs: every executable of this run shares the host kernels' threads.
    compiler::codegen::cpu::threads::set_threads(trainer_cfg.threads);
    // `what` names the training data in messages, `test_what` the test split.
    let (data_cfg, mut dataset, mut test, given_val, what, test_what) = match module {
        Some(module) => {
            if data_sec.is_some() {
                eprintln!(
                    "note: the `data` section of {} is not used: the data come from the DataModule `{}`",
                    path.display(),
                    module.name()
                );
            }
            let (cfg, train, test, val, name) = from_module(module, &module_overrides)?;
            let test_what = format!("the test split of {name}");
            (cfg, train, test, val, name, test_what)
        }
        None => {
            let Some(data_sec) = data_sec else {
                return Err(FitError::Config(format!(
                    "{}: a training run needs a `data = csv(...)`, `idx(...)`, `npz(...)`, `npy(...)`, `safetensors(...)`, `text(...)` or `synthetic(...)` section \
                     (or, from Rust, a DataModule: `trainer::fit_with_data`)",
                    path.display()
                )));
            };
            let data_cfg = data_result
                .unwrap_or_else(|| config::data_config(&data_sec))
                .map_err(|d| diagnostics(d, &prog, color))?;
            // Data paths are relative to the model file's directory (absolute ones replace it).
            let dir = path.parent().unwrap_or(Path::new("."));
            let (dataset, test) = load(&data_cfg, dir)?;
            let what = source_name(&data_cfg, &dir.join(&data_cfg.path));
            let test_what = match &data_cfg.test {
                // A test file of its own (CSV, NPZ, ...): named by its path.
                Some(t) => format!("the test split {}", dir.join(t).display()),
                None => format!("the test split of {what}"),
            };
            (data_cfg, dataset, test, None, what, test_what)
        }
    };
    if given_val.is_none() && data_cfg.val_split >= dataset.len() {
        return Err(FitError::Config(format!(
            "val_split = {} leaves no training data: {what} has {} examples",
            data_cfg.val_split,
            dataset.len()
        )));
    }
    // Data without targets (`y = false`) gets placeholder ones, which no
    // step may take; a test split without them would test on the placeholders.
    if data_cfg.has_targets() && !data_cfg.test_has_targets() {
        return Err(FitError::Config(format!(
            "{what}: the test split has no targets (`y = false`) but the training data has: \
             give the test split its targets, or leave them out of both"
        )));
    }
    if !data_cfg.has_targets() {
        let mut diags = Vec::new();
        for step in ["training_step", "validation_step", "test_step"] {
            let inputs = compiler::lower::declared_step_inputs(&prog, trainer_sec.as_ref(), step)
                .map_err(|d| diagnostics(d, &prog, color))?;
            if let Some(y) = inputs.as_ref().and_then(|i| i.get(1)) {
                diags.push(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!("the data has no targets (`y = false`), but `{step}` takes `{}`", y.name),
                    )
                    .with_label(y.span, "targets taken here")
                    .with_help(format!("take only the inputs: `fn {step}(self, x)`")),
                );
            }
        }
        if !diags.is_empty() {
            return Err(diagnostics(diags, &prog, color));
        }
    }
    // The batch types: the data's, as `training_step` declares them (`data/view.rs`).
    // Each input with the step that declares it.
    let inputs = compiler::lower::declared_batch_inputs(&prog, trainer_sec.as_ref())
        .map_err(|d| diagnostics(d, &prog, color))?;
    {
        let mut diags = Vec::new();
        for ((step, input), col) in inputs.iter().zip([&mut dataset.x, &mut dataset.y]) {
            let Some(ty) = &input.ty else { continue };
            match data::view::fit(col, ty) {
                Ok((dims, dtype)) => (col.dims, col.dtype) = (dims, dtype),
                Err(why) => {
                    // Generated data is not saved by the user: no conversion to advise.
                    let why = if data_cfg.synthetic.is_some() && why.contains("when saving") {
                        format!(
                            "the generator makes {} examples: declare `{}` with that dtype (class labels are i32, \
                             regression targets f32)",
                            col.describe(),
                            input.name
                        )
                    } else if data_cfg.source == SourceKind::Csv && why.contains("when saving") {
                        // A CSV's last column is read as the `y` setting says.
                        format!(
                            "the CSV source reads {} examples: declare `{}` with that dtype, or read the last column \
                             as `csv(..., y = \"class\")` (i32 labels) or `y = \"float\"` (f32 targets)",
                            col.describe(),
                            input.name
                        )
                    } else {
                        why
                    };
                    diags.push(
                    Diagnostic::error(
                        Code::TypeMismatch,
                        format!(
                            "the data does not fit `{step}`'s `{}`: {what} holds examples of {}, and the step declares {}",
                            input.name,
                            col.describe(),
                            ty
                        ),
                    )
                    .with_label(input.span, format!("declared as {ty}"))
                    .with_note(why),
                    )
                }
            }
        }
        if !diags.is_empty() {
            return Err(diagnostics(diags, &prog, color));
        }
    }
    let mut given_val = given_val;
    // The programs before the split (the batch types are the data's), so
    // that index data are checked with their examples numbered as stored.
    let bs = data_cfg.batch_size;
    let compile_start = Instant::now();
    let progs = compile(&prog, trainer_sec.as_ref(), &dataset, bs, opts, color)?;
    let compile_ms = compile_start.elapsed().as_secs_f64() * 1e3;
    let val_what = format!("the validation split of {what}");
    for (split, part) in [(&test_what, &mut test), (&val_what, &mut given_val)] {
        let Some(t) = part else { continue };
        for (name, tc, c) in [("inputs", &mut t.x, &dataset.x), ("targets", &mut t.y, &dataset.y)] {
            if tc.example_len() != c.example_len() || tc.values.type_name() != c.values.type_name() {
                return Err(FitError::Config(format!(
                    "{split}: its {name} are {} per example, {what}'s {}",
                    tc.describe(),
                    c.describe()
                )));
            }
            (tc.dims, tc.dtype, tc.scale) = (c.dims.clone(), c.dtype, c.scale);
        }
    }
    let splits = [(&what, Some(&dataset)), (&test_what, test.as_ref()), (&val_what, given_val.as_ref())];
    for (split, data) in splits {
        if let Some(data) = data {
            check_indices(&progs, data, split)?;
        }
    }
    let (train, val) = match given_val {
        Some(val) => (dataset, val),
        None => {
            let split = data::split(&dataset, data_cfg.val_split, trainer_cfg.seed);
            drop(dataset);
            split
        }
    };
    if train.len() < bs {
        return Err(FitError::Config(format!(
            "batch_size = {bs} is larger than the {} training examples",
            train.len()
        )));
    }
    let base = Path::new(&trainer_cfg.default_root_dir).join(&trainer_cfg.name);
    Ok(Setup { prog, trainer_sec, data_cfg, trainer_cfg, train, val, test, progs, compile_ms, base })
}

/// Integer data the steps use as indices (class labels in `one_hot`, tokens
/// in an embedding lookup) checked against the bound they are used with
/// (`compiler::ir::index_bounds`): an out-of-range label does not fault
/// but trains on nonsense (a loss and an accuracy of 0).
fn check_indices(progs: &TrainPrograms, data: &Dataset, what: &str) -> Result<(), FitError> {
    use compiler::ir::index_bounds::index_bound;
    let n_params = progs.params.len();
    let first_data = n_params + progs.n_states() + 1;
    let steps = [("training_step", Some(&progs.train_step), first_data)].into_iter().chain([
        ("validation_step", progs.val_step.as_ref(), n_params),
        ("test_step", progs.test_step.as_ref(), n_params),
    ]);
    for (step, func, first) in steps {
        let Some(func) = func else { continue };
        for (k, (name, col)) in [("inputs (x)", &data.x), ("targets (y)", &data.y)].into_iter().enumerate() {
            let Some(used) = index_bound(func, first + k) else { continue };
            if let Some((example, value)) = data::index_range::first_out_of_range(col, used.bound) {
                let how = match used.what {
                    "one_hot" => format!(
                        "class labels of {} classes (compared with {0} class columns, as `one_hot` and \
                         `cross_entropy` do: the model's output has {0} classes)",
                        used.bound
                    ),
                    _ => format!("indices into a table of {} rows (an embedding lookup)", used.bound),
                };
                return Err(FitError::Config(format!(
                    "{what}: the {name} hold {value} at example {example} (counting from 0), but `{step}` uses them as {how}: \
                     every value must be in [0, {}); a value outside would not fail, it would train on nonsense",
                    used.bound
                )));
            }
        }
    }
    Ok(())
}

/// The data a `DataModule` gives, with its settings as a `DataConfig`
/// (`--set data.batch_size|val_split|shuffle=...` override the module's),
/// and what to call it in messages.
#[allow(clippy::type_complexity)]
fn from_module(
    module: &mut dyn DataModule,
    overrides: &[&str],
) -> Result<(DataConfig, Dataset, Option<Dataset>, Option<Dataset>, String), FitError> {
    let name = module.name();
    let mut splits = module.setup().map_err(|e| FitError::Config(format!("{name}: {e}")))?;
    for spec in overrides {
        let (key, value) = spec.split_once('=').unwrap_or((spec, ""));
        let bad = |what: &str| FitError::Config(format!("--set {spec}: {what}"));
        match key {
            "data.batch_size" => splits.batch_size = value.parse().map_err(|_| bad("expected a whole number"))?,
            "data.val_split" => splits.val_split = value.parse().map_err(|_| bad("expected a whole number"))?,
            "data.shuffle" => splits.shuffle = value.parse().map_err(|_| bad("expected true or false"))?,
            _ => {
                return Err(bad(&format!(
                    "the data come from {name} (a Rust DataModule), which takes only data.batch_size, \
                     data.val_split and data.shuffle"
                )))
            }
        }
    }
    if splits.batch_size == 0 {
        return Err(FitError::Config(format!("{name}: batch_size must be at least 1")));
    }
    if splits.val.is_some() && splits.val_split > 0 {
        return Err(FitError::Config(format!(
            "{name}: val_split = {} and a validation split given: hold examples out of train, or give them, not both",
            splits.val_split
        )));
    }
    let parts =
        [("training", Some(&splits.train)), ("validation", splits.val.as_ref()), ("test", splits.test.as_ref())];
    for (split, data) in parts {
        if let Some(Err(e)) = data.map(Dataset::check) {
            return Err(FitError::Config(format!("{name}: the {split} split: {e}")));
        }
        // An empty split would give nothing to train on, or NaN test
        // metrics (a mean of nothing); an empty validation split only
        // skips validation, with a note (as Lightning does).
        if split != "validation" && data.is_some_and(Dataset::is_empty) {
            return Err(FitError::Config(format!(
                "{name}: the {split} split holds no examples (return None for a split there is none of)"
            )));
        }
    }
    let cfg = DataConfig {
        source: SourceKind::Module,
        path: name.clone(),
        scale: 1.0,
        batch_size: splits.batch_size,
        val_split: if splits.val.is_some() { 0 } else { splits.val_split },
        shuffle: splits.shuffle,
        x_key: String::new(),
        y_key: String::new(),
        test: None,
        test_keys: None,
        seq_len: 0,
        synthetic: None,
        csv_targets: Default::default(),
    };
    Ok((cfg, splits.train, splits.test, splits.val, name))
}

/// Loads the training data and the test split (when the source has one).
pub(crate) fn load(cfg: &DataConfig, dir: &Path) -> Result<(Dataset, Option<Dataset>), FitError> {
    let scale = cfg.scale as f32;
    let path = dir.join(&cfg.path);
    let test_path = cfg.test.as_ref().map(|t| dir.join(t));
    let test_keys = cfg.test_keys.clone().unwrap_or((cfg.x_key.clone(), cfg.y_key.clone()));
    Ok(match cfg.source {
        SourceKind::Csv => {
            let load = |p: &Path| data::load_csv_with(p, scale, cfg.csv_targets);
            let test = test_path.map(|t| load(&t)).transpose()?;
            (load(&path)?, test)
        }
        SourceKind::Idx => (data::load_idx_dir(&path, scale)?, data::load_idx_test_dir(&path, scale)?),
        SourceKind::Npz => {
            let test = test_path.map(|t| data::load_npz(&t, &test_keys.0, &test_keys.1, scale)).transpose()?;
            (data::load_npz(&path, &cfg.x_key, &cfg.y_key, scale)?, test)
        }
        SourceKind::Safetensors => {
            let load = |p: &Path, (x, y): (&str, &str)| data::load_safetensors(p, x, y, scale);
            let test = test_path.map(|t| load(&t, (&test_keys.0, &test_keys.1))).transpose()?;
            (load(&path, (&cfg.x_key, &cfg.y_key))?, test)
        }
        SourceKind::Npy => {
            let targets = |key: &str| (!key.is_empty()).then(|| dir.join(key));
            let test = test_path.map(|t| data::load_npy(&t, targets(&test_keys.1).as_deref(), scale)).transpose()?;
            (data::load_npy(&path, targets(&cfg.y_key).as_deref(), scale)?, test)
        }
        SourceKind::Text => {
            let test = test_path.map(|t| data::load_text(&t, cfg.seq_len)).transpose()?;
            (data::load_text(&path, cfg.seq_len)?, test)
        }
        SourceKind::Synthetic => data::synthetic::generate(cfg.synthetic.as_ref().expect("parsed with its spec")),
        SourceKind::Module => {
            return Err(FitError::Config(format!(
                "{}: a Rust DataModule has no data files to read again (predict on its train, val or test split)",
                cfg.path
            )))
        }
    })
}

/// The data's files, for messages: `train.npz (arrays "x", "y")`.
fn source_name(cfg: &DataConfig, path: &Path) -> String {
    match cfg.source {
        SourceKind::Csv | SourceKind::Idx => path.display().to_string(),
        SourceKind::Text => format!("{} (sequences of {} bytes)", path.display(), cfg.seq_len),
        SourceKind::Npz => format!("{} (arrays {:?}, {:?})", path.display(), cfg.x_key, cfg.y_key),
        SourceKind::Safetensors => format!("{} (tensors {:?}, {:?})", path.display(), cfg.x_key, cfg.y_key),
        SourceKind::Npy => format!("{} (with {})", path.display(), cfg.y_key),
        SourceKind::Synthetic => match &cfg.synthetic {
            Some(s) => format!("synthetic {:?} data (n = {}, seed {})", cfg.path, s.n, s.seed),
            None => cfg.path.clone(),
        },
        SourceKind::Module => cfg.path.clone(),
    }
}

/// The training programs for batches of `bs` examples of `data`.
fn compile(
    prog: &Program,
    trainer_sec: Option<&Section>,
    data: &Dataset,
    bs: usize,
    opts: &compiler::Options,
    color: bool,
) -> Result<TrainPrograms, FitError> {
    let (x_ty, y_ty) = (data.x.batch_type(bs), data.y.batch_type(bs));
    compiler::compile_training(prog, trainer_sec, &x_ty, &y_ty, opts).map_err(|d| diagnostics(d, prog, color))
}

impl Setup {
    /// The evaluation programs for `data` (full batches, and the last,
    /// smaller batch, which static shapes give its own program). Empty when
    /// the model has no such step. Each has inputs params, x, y and outputs
    /// only logged values: it cannot change the parameters.
    pub fn eval_programs(
        &self,
        stage: Stage,
        data: &Dataset,
        backend: Backend,
        opts: &compiler::Options,
        color: bool,
    ) -> Result<Vec<(usize, Executable)>, FitError> {
        let pick = |p: &TrainPrograms| -> Option<Func> {
            match stage {
                Stage::Validate => p.val_step.clone(),
                Stage::Test => p.test_step.clone(),
            }
        };
        let Some(full) = pick(&self.progs) else { return Ok(vec![]) };
        let bs = self.data_cfg.batch_size;
        let flush = self.trainer_cfg.flush_denormals;
        let executable = |f: Func| -> Result<Executable, FitError> {
            let mut exe = Executable::compile(f, backend)?;
            exe.set_flush_denormals(flush);
            Ok(exe)
        };
        let mut exes = Vec::new();
        if data.len() >= bs {
            exes.push((bs, executable(full)?));
        }
        let rem = data.len() % bs;
        if rem > 0 {
            let small = compile(&self.prog, self.trainer_sec.as_ref(), data, rem, opts, color)?;
            if let Some(f) = pick(&small) {
                exes.push((rem, executable(f)?));
            }
        }
        Ok(exes)
    }

    /// The logged names of `stage`'s step.
    pub fn eval_logs(&self, stage: Stage) -> &[(String, bool)] {
        match stage {
            Stage::Validate => &self.progs.val_logs,
            Stage::Test => &self.progs.test_logs,
        }
    }
}
