//! The run's configuration, read from the model file's `data` and `trainer`
//! sections (with `--set section.key=value` overrides applied first).
//! Unknown keys and wrong types are diagnostics with spans.

use crate::data::synthetic::{SyntheticKind, SyntheticSpec};
use crate::data::CsvTargets;
use compiler::diagnostic::{Code, Diagnostic};
use compiler::lower::gradients::{self, GradSettings};
use compiler::lower::{ConstValue, Section, SettingEntry};
use compiler::span::Span;

#[derive(Clone, Debug, PartialEq)]
pub struct DataConfig {
    pub source: SourceKind,
    /// The CSV file, or the IDX directory (relative to the model file's directory).
    pub path: String,
    /// Multiplies every feature (e.g. 1/16 for 4-bit pixel counts).
    pub scale: f64,
    pub batch_size: usize,
    /// Examples held out for validation.
    pub val_split: usize,
    pub shuffle: bool,
    /// NPZ: the arrays' names in the archive (default `"x"`, `"y"`); NPY:
    /// `y_key` is the targets file (`x_key` unused, empty). An empty
    /// `y_key` with these sources: no targets (`y = false`).
    pub x_key: String,
    pub y_key: String,
    /// The test split's file: `test = "file.csv[.gz]"` for CSV, `"file.npz"`
    /// for NPZ (the IDX source reads `t10k-*` files from its directory
    /// instead); with `test = npz(...)` / `npy(...)`, also `test_keys`.
    pub test: Option<String>,
    /// The test split's `(x_key, y_key)` when they differ from training's.
    pub test_keys: Option<(String, String)>,
    /// `text(...)`: the length of each example's token sequence.
    pub seq_len: usize,
    /// `synthetic(...)`: what to generate.
    pub synthetic: Option<SyntheticSpec>,
    /// `csv(..., y = ...)`: what the last column holds (both splits).
    pub csv_targets: CsvTargets,
}

impl DataConfig {
    /// Whether the training data holds targets: every source but an
    /// archive, array file or CSV file given `y = false`.
    pub fn has_targets(&self) -> bool {
        match self.source {
            SourceKind::Csv => self.csv_targets != CsvTargets::None,
            _ => !self.keyed() || !self.y_key.is_empty(),
        }
    }

    /// Whether the test split holds targets (as `has_targets`).
    pub fn test_has_targets(&self) -> bool {
        match self.source {
            SourceKind::Csv => self.has_targets(),
            _ => !self.keyed() || !self.test_keys.as_ref().map_or(&self.y_key, |(_, y)| y).is_empty(),
        }
    }

    /// Sources that name their targets (and may have none).
    fn keyed(&self) -> bool {
        matches!(self.source, SourceKind::Npz | SourceKind::Npy | SourceKind::Safetensors)
    }
}

/// The built-in data sources.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceKind {
    /// `csv("file.csv[.gz]", scale = s)`: one example per line, the label last.
    Csv,
    /// `idx("dir", scale = s)`: `train-images-idx3-ubyte[.gz]` and
    /// `train-labels-idx1-ubyte[.gz]` in `dir` (the MNIST family).
    Idx,
    /// `npz("file.npz", x = "x", y = "y", scale = s)`: two arrays of an archive.
    Npz,
    /// `npy("x.npy", y = "y.npy", scale = s)`: two `.npy` files.
    Npy,
    /// `safetensors("file.safetensors", x = "x", y = "y", scale = s)`: two
    /// tensors of a safetensors file.
    Safetensors,
    /// `text("file.txt[.gz]", seq = 128)`: a byte-level corpus cut into
    /// sequences; the targets are the inputs shifted by one byte.
    Text,
    /// `synthetic("moons" | "blobs" | "regression", n = 1000, ...)`:
    /// generated data (`data/synthetic.rs`); `path` is the kind.
    Synthetic,
    /// A Rust `DataModule` (`trainer::fit_with_data`); `path` is its name.
    Module,
}

impl SourceKind {
    fn name(self) -> &'static str {
        match self {
            SourceKind::Csv => "csv",
            SourceKind::Idx => "idx",
            SourceKind::Npz => "npz",
            SourceKind::Npy => "npy",
            SourceKind::Safetensors => "safetensors",
            SourceKind::Text => "text",
            SourceKind::Synthetic => "synthetic",
            SourceKind::Module => "module",
        }
    }
}

/// A source call's arguments: `name(path, key = value...)`.
struct SourceArgs {
    kind: SourceKind,
    path: String,
    x_key: String,
    y_key: String,
    scale: f64,
    seq_len: usize,
    synthetic: Option<SyntheticSpec>,
    csv_targets: CsvTargets,
}

/// The signature of each source, for messages.
fn signature(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Csv => "csv(\"file.csv\", y = \"class\" | \"float\" | false (no targets), scale = 1.0)",
        SourceKind::Idx => "idx(\"directory\", scale = 1.0)",
        SourceKind::Npz => "npz(\"file.npz\", x = \"x\", y = \"y\" (or false: no targets), scale = 1.0)",
        SourceKind::Npy => "npy(\"x.npy\", y = \"y.npy\" (or false: no targets), scale = 1.0)",
        SourceKind::Safetensors => {
            "safetensors(\"file.safetensors\", x = \"x\", y = \"y\" (or false: no targets), scale = 1.0)"
        }
        SourceKind::Text => "text(\"file.txt\", seq = 128)",
        SourceKind::Synthetic => {
            "synthetic(\"moons\" | \"blobs\" | \"regression\", n = 1000, test = 0, features = 2, classes = 2, noise = 0.1, seed = 0)"
        }
        SourceKind::Module => "a Rust DataModule",
    }
}

impl SourceArgs {
    fn of(kind: SourceKind) -> SourceArgs {
        SourceArgs {
            kind,
            path: String::new(),
            x_key: String::new(),
            y_key: String::new(),
            scale: 1.0,
            seq_len: 0,
            synthetic: None,
            csv_targets: CsvTargets::Class,
        }
    }
}

/// Reads `synthetic("moons", n = 1000, test = 0, features = 2, classes = 2,
/// noise = 0.1, seed = 0)`; every count must be positive (test: >= 0),
/// `noise` >= 0.
fn synthetic_args(args: &[(Option<String>, ConstValue)], span: Span, diags: &mut Vec<Diagnostic>) -> SourceArgs {
    let sig = signature(SourceKind::Synthetic);
    let mut out = SourceArgs::of(SourceKind::Synthetic);
    let kind = match args.first() {
        Some((None, ConstValue::Str(k))) => {
            out.path = k.clone();
            SyntheticKind::parse(k)
        }
        _ => None,
    };
    if kind.is_none() {
        diags.push(
            Diagnostic::error(
                Code::BadSection,
                "synthetic(...) takes the kind first: \"moons\", \"blobs\" or \"regression\"",
            )
            .with_label(span, "here")
            .with_help(format!("write {sig}")),
        );
    }
    let mut spec = SyntheticSpec {
        kind: kind.unwrap_or(SyntheticKind::Moons),
        n: 1000,
        n_test: 0,
        features: 2,
        classes: 2,
        noise: 0.1,
        seed: 0,
    };
    for (k, v) in args.iter().skip(1) {
        let count = match v {
            ConstValue::Int(i) if *i >= 0 => Some(*i as usize),
            _ => None,
        };
        match (k.as_deref(), count, v) {
            (Some("n"), Some(c), _) if c >= 1 => spec.n = c,
            (Some("test"), Some(c), _) => spec.n_test = c,
            (Some("features"), Some(c), _) if c >= 1 && kind != Some(SyntheticKind::Moons) => spec.features = c,
            (Some("classes"), Some(c), _) if c >= 1 && kind != Some(SyntheticKind::Moons) => spec.classes = c,
            (Some("seed"), Some(c), _) => spec.seed = c as u64,
            (Some("noise"), _, ConstValue::Float(x)) if *x >= 0.0 && x.is_finite() => spec.noise = *x,
            (Some("noise"), Some(c), _) => spec.noise = c as f64,
            _ => {
                let what = match k {
                    Some(k) => format!("`{k} = ...`"),
                    None => "a second positional argument".to_string(),
                };
                diags.push(
                    Diagnostic::error(Code::BadSection, format!("synthetic data: {what} is not a valid argument"))
                        .with_label(span, "in this call")
                        .with_note("counts are positive integers (`test` may be 0), `noise` is a number >= 0; moons are 2-D with 2 classes")
                        .with_help(format!("write {sig}")),
                )
            }
        }
    }
    if kind == Some(SyntheticKind::Moons) {
        (spec.features, spec.classes) = (2, 2);
    }
    out.synthetic = Some(spec);
    out
}

/// Reads `csv(...)`, `idx(...)`, `npz(...)` or `npy(...)`; `None` (with a
/// diagnostic) for anything else.
fn source_args(value: &ConstValue, span: Span, diags: &mut Vec<Diagnostic>) -> Option<SourceArgs> {
    let ConstValue::Call { name, args } = value else { return None };
    let kind = match name.as_str() {
        "synthetic" => return Some(synthetic_args(args, span, diags)),
        "csv" => SourceKind::Csv,
        "idx" => SourceKind::Idx,
        "npz" => SourceKind::Npz,
        "npy" => SourceKind::Npy,
        "safetensors" => SourceKind::Safetensors,
        "text" => SourceKind::Text,
        _ => return None,
    };
    let sig = signature(kind);
    let mut out = SourceArgs::of(kind);
    if kind == SourceKind::Text {
        out.seq_len = 128;
    }
    if matches!(kind, SourceKind::Npz | SourceKind::Safetensors) {
        (out.x_key, out.y_key) = ("x".into(), "y".into());
    }
    match args.first() {
        Some((None, ConstValue::Str(p))) => out.path = p.clone(),
        _ => diags.push(
            Diagnostic::error(Code::BadSection, format!("{sig} needs the path as its first argument, a string"))
                .with_label(span, "here"),
        ),
    }
    let mut has_y = false;
    for (k, v) in args.iter().skip(1) {
        match (kind, k.as_deref(), v) {
            (SourceKind::Text, Some("seq"), ConstValue::Int(n)) if *n >= 1 && *n <= 1 << 20 => {
                out.seq_len = *n as usize
            }
            (_, Some("scale"), ConstValue::Float(x)) => out.scale = *x,
            (_, Some("scale"), ConstValue::Int(i)) => out.scale = *i as f64,
            (SourceKind::Npz | SourceKind::Safetensors, Some("x"), ConstValue::Str(s)) => out.x_key = s.clone(),
            (SourceKind::Npz | SourceKind::Npy | SourceKind::Safetensors, Some("y"), ConstValue::Str(s))
                if !s.is_empty() =>
            {
                out.y_key = s.clone();
                has_y = true;
            }
            (SourceKind::Csv, Some("y"), ConstValue::Str(s)) if s == "class" => out.csv_targets = CsvTargets::Class,
            (SourceKind::Csv, Some("y"), ConstValue::Str(s)) if s == "float" => out.csv_targets = CsvTargets::Float,
            (SourceKind::Csv, Some("y"), ConstValue::Bool(false)) => out.csv_targets = CsvTargets::None,
            // No targets (an autoencoder's data): `y_key` empty.
            (SourceKind::Npz | SourceKind::Npy | SourceKind::Safetensors, Some("y"), ConstValue::Bool(false)) => {
                out.y_key = String::new();
                has_y = true;
            }
            _ => diags.push(
                Diagnostic::error(Code::BadSection, format!("{} takes {sig}", kind.name()))
                    .with_label(span, "unexpected argument"),
            ),
        }
    }
    if kind == SourceKind::Npy && !has_y {
        diags.push(
            Diagnostic::error(
                Code::BadSection,
                "npy(...) needs the targets file: `y = \"y.npy\"`, or `y = false` for none",
            )
            .with_label(span, "here")
            .with_help(format!("write {sig}")),
        );
    }
    Some(out)
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainerConfig {
    pub max_epochs: usize,
    pub seed: u64,
    pub log_every_n_steps: usize,
    pub default_root_dir: String,
    pub name: String,
    /// The `model` setting as written (`Mlp(hidden = 8)`), for
    /// `hparams.yaml`; `None` when the file trains its only model.
    pub model: Option<String>,
    /// Stop each training epoch after this many batches, or this fraction
    /// of them (0 or 1.0: no limit).
    pub limit_train_batches: BatchLimit,
    /// Stop after this many optimizer steps in all (0: no limit), saving a
    /// checkpoint there, even mid-epoch.
    pub max_steps: usize,
    /// Save `last.safetensors` and one checkpoint per epoch.
    pub enable_checkpointing: bool,
    /// Validate on at most this many batches, or this fraction (0: all).
    pub limit_val_batches: BatchLimit,
    /// Test (after `fit`, and `jlc test`) on at most this many batches, or
    /// this fraction (0: all).
    pub limit_test_batches: BatchLimit,
    /// `jlc predict` on at most this many batches of its split, or this fraction (0: all).
    pub limit_predict_batches: BatchLimit,
    /// Early stopping (a callback's stop request) waits until this many epochs are done.
    pub min_epochs: usize,
    /// Debugging: train and validate on the first n training batches, in
    /// the same order every epoch (0: off).
    pub overfit_batches: usize,
    /// Validate after every n-th epoch (Lightning counts `(epoch + 1) % n == 0`).
    pub check_val_every_n_epoch: usize,
    /// How often to validate within an epoch that validates (Lightning's `val_check_interval`).
    pub val_check_interval: ValCheckInterval,
    /// Validation batches run before training to catch errors early, their
    /// values discarded (`None`: all, Lightning's -1).
    pub num_sanity_val_steps: Option<usize>,
    /// Stop (saving `last`) once training has run this long, checked between steps.
    pub max_time: Option<std::time::Duration>,
    /// A smoke run: this many batches of training, validation and test in one
    /// epoch, with no checkpoints, callbacks or logs (0: off).
    pub fast_dev_run: usize,
    /// After `fit`, run `test_step` on the test split (when both exist).
    pub test_after_fit: bool,
    /// Stop when the loss is NaN or infinite.
    pub stop_on_nonfinite: bool,
    /// Run the compiled steps with subnormal floats flushed to zero, as
    /// XLA's CPU client does (`runtime::denormals` says why).
    pub flush_denormals: bool,
    /// Threads of the CPU backend's host kernels (GEMM, convolution); 0:
    /// every CPU available (`codegen::cpu::threads`).
    pub threads: usize,
    /// Logged values (training or validation) that must stay finite too.
    pub nonfinite_metrics: Vec<String>,
    pub checkpoint: CheckpointConfig,
    /// `None`: no early stopping (no `early_stopping_monitor`).
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Clipping, `grad_norm` and accumulation (`gradient_clip_val`,
    /// `gradient_clip_algorithm`, `log_grad_norm`, `accumulate_grad_batches`):
    /// the compiler reads the same settings and builds them into the step.
    pub grad: GradSettings,
    /// Where metrics go (`logger = "csv,tensorboard"`): at least one.
    pub loggers: Loggers,
}

/// Lightning's `val_check_interval`: validate every n training batches, or
/// after each fraction of the epoch; the epoch's end always validates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValCheckInterval {
    /// An integer: every n batches (counted from the epoch's start).
    Batches(usize),
    /// A float in (0, 1]: every `floor(f * batches per epoch)` batches (at least 1), as Lightning.
    Fraction(f64),
}

impl ValCheckInterval {
    /// Validate after every this many batches of an epoch of `n_batches`.
    pub fn every(self, n_batches: usize) -> usize {
        match self {
            ValCheckInterval::Batches(n) => n,
            ValCheckInterval::Fraction(f) => ((n_batches as f64 * f) as usize).max(1),
        }
    }
}

/// The loggers of a run; both write into the run's `version_N` directory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loggers {
    /// `metrics.csv` (Lightning's CSVLogger).
    pub csv: bool,
    /// `events.out.tfevents.*` (Lightning's TensorBoardLogger).
    pub tensorboard: bool,
}

/// Min or max: which direction of a monitored metric is better.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    Min,
    Max,
}

/// ModelCheckpoint's settings (`checkpoint_*`, `save_top_k`, `save_last`).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// The metric that ranks checkpoints; `None`: the newest are kept.
    pub monitor: Option<String>,
    pub mode: Mode,
    /// How many epoch checkpoints to keep (the best, or the newest without
    /// a monitor; default 1, as Lightning's): `None` (`-1`) keeps all, 0 none.
    pub save_top_k: Option<usize>,
    /// Write `last.safetensors` too.
    pub save_last: bool,
    /// The file name without `.safetensors`: `{epoch}`, `{step}` and
    /// metrics, optionally with a precision (`{val_acc:.4}`).
    pub filename: String,
    /// Every N optimizer steps (0: never), a checkpoint named by
    /// `filename` ranked with the others (`save_top_k`, by the monitored
    /// value among the step's own, `train_loss` and `training_step`'s logs,
    /// or else the last epoch end's metrics), and `last.safetensors`
    /// rewritten within the epoch, so a crash loses at most N steps.
    pub every_n_train_steps: usize,
    /// Consider an epoch checkpoint only after every N-th epoch (Lightning's
    /// `every_n_epochs`: epochs N, 2N, ... counted from 1; 0: none, the
    /// default when `every_n_train_steps` is set, as in Lightning); `last`
    /// is written at every epoch end regardless.
    pub every_n_epochs: usize,
}

/// EarlyStopping's settings (`early_stopping_*`).
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStoppingConfig {
    pub monitor: String,
    pub mode: Mode,
    /// Validation checks without improvement before stopping.
    pub patience: usize,
    /// An improvement must exceed this.
    pub min_delta: f64,
}

const DATA_KEYS: &[&str] = &["batch_size", "val_split", "shuffle", "test"];
const TRAINER_KEYS: &[&str] = &[
    "max_epochs",
    "seed",
    "log_every_n_steps",
    "default_root_dir",
    "name",
    "limit_train_batches",
    "max_steps",
    "enable_checkpointing",
    "model",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "min_epochs",
    "overfit_batches",
    "check_val_every_n_epoch",
    "val_check_interval",
    "num_sanity_val_steps",
    "max_time",
    "fast_dev_run",
    "test_after_fit",
    "stop_on_nonfinite",
    "flush_denormals",
    "threads",
    "nonfinite_metrics",
    "checkpoint_monitor",
    "checkpoint_mode",
    "checkpoint_filename",
    "save_top_k",
    "save_last",
    "checkpoint_every_n_train_steps",
    "checkpoint_every_n_epochs",
    "early_stopping_monitor",
    "early_stopping_mode",
    "early_stopping_patience",
    "early_stopping_min_delta",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "accumulate_grad_batches",
    "log_grad_norm",
    "log_lr",
    "logger",
];

pub fn data_config(section: &Section) -> Result<DataConfig, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let src = match &section.source {
        Some((value, span)) => match source_args(value, *span, &mut diags) {
            Some(a) => a,
            None => {
                diags.push(
                    Diagnostic::error(Code::BadSection, "unknown data source")
                        .with_label(
                            *span,
                            "expected `csv(\"path.csv.gz\", scale = ...)`, `idx(\"directory\", scale = ...)`, `npz(\"file.npz\", x = \"x\", y = \"y\")`, `npy(\"x.npy\", y = \"y.npy\")`, `safetensors(\"file.safetensors\", x = \"x\", y = \"y\")` or `text(\"file.txt\", seq = 128)`",
                        )
                        .with_note("the CSV holds one example per line: features, then an integer label")
                        .with_note(
                            "the IDX directory holds train-images-idx3-ubyte and train-labels-idx1-ubyte (raw or .gz)",
                        )
                        .with_note("NPZ and NPY hold arrays whose first axis indexes the examples (numpy's np.savez, np.save)"),
                );
                SourceArgs::of(SourceKind::Csv)
            }
        },
        None => {
            diags.push(
                Diagnostic::error(Code::BadSection, "the data section names no source")
                    .with_label(section.span, "here"),
            );
            SourceArgs::of(SourceKind::Csv)
        }
    };
    let source = src.kind;
    let mut cfg = DataConfig {
        source,
        path: src.path,
        scale: src.scale,
        batch_size: 32,
        val_split: 0,
        shuffle: true,
        x_key: src.x_key,
        y_key: src.y_key,
        test: None,
        test_keys: None,
        seq_len: src.seq_len,
        synthetic: src.synthetic,
        csv_targets: src.csv_targets,
    };
    for e in &section.entries {
        match e.key.as_str() {
            "batch_size" => cfg.batch_size = positive(e, &mut diags),
            "val_split" => cfg.val_split = non_negative(e, &mut diags),
            "shuffle" => cfg.shuffle = boolean(e, &mut diags),
            "test" if source == SourceKind::Synthetic => diags.push(
                Diagnostic::error(Code::BadSection, "`test` names the test split's file")
                    .with_label(e.key_span, "not a setting of `synthetic`")
                    .with_help("a synthetic source draws its test split: `synthetic(\"moons\", n = 1000, test = 200)`"),
            ),
            "test" if source == SourceKind::Idx => diags.push(
                Diagnostic::error(Code::BadSection, "`test` names the test split's file")
                    .with_label(e.key_span, "not a setting of `idx`")
                    .with_note(
                        "the IDX source reads t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte as its test split",
                    ),
            ),
            "test" => match (&e.value, source) {
                (
                    ConstValue::Str(s),
                    SourceKind::Csv | SourceKind::Npz | SourceKind::Text | SourceKind::Safetensors,
                ) => {
                    cfg.test = Some(s.clone())
                }
                (ConstValue::Call { .. }, SourceKind::Npz | SourceKind::Npy | SourceKind::Safetensors) => {
                    match source_args(&e.value, e.value_span, &mut diags) {
                        Some(t) if t.kind == source && t.scale == src.scale => {
                            cfg.test = Some(t.path);
                            cfg.test_keys = Some((t.x_key, t.y_key));
                        }
                        _ => diags.push(type_error(
                            e,
                            &format!("a source like the training data's, {} (with the same scale)", signature(source)),
                        )),
                    }
                }
                (_, SourceKind::Csv) => diags.push(type_error(e, "a file name: \"file.csv\"")),
                (_, SourceKind::Text) => diags.push(type_error(e, "a file name: \"test.txt\"")),
                (_, SourceKind::Safetensors) => diags.push(type_error(
                    e,
                    "\"file.safetensors\" (the same tensor names) or safetensors(\"file.safetensors\", x = \"x_test\", y = \"y_test\")",
                )),
                (_, SourceKind::Npz) => diags.push(type_error(
                    e,
                    "\"file.npz\" (the same array names) or npz(\"file.npz\", x = \"x_test\", y = \"y_test\")",
                )),
                _ => diags.push(type_error(e, "npy(\"x_test.npy\", y = \"y_test.npy\")")),
            },
            _ => diags.push(unknown_key(e, "data", DATA_KEYS)),
        }
    }
    if diags.is_empty() {
        Ok(cfg)
    } else {
        Err(diags)
    }
}

pub fn trainer_config(section: Option<&Section>) -> Result<TrainerConfig, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut cfg = TrainerConfig {
        max_epochs: 10,
        seed: 0,
        log_every_n_steps: 10,
        default_root_dir: ".".into(),
        name: "lightning_logs".into(),
        limit_train_batches: BatchLimit::All,
        max_steps: 0,
        enable_checkpointing: true,
        limit_val_batches: BatchLimit::All,
        limit_test_batches: BatchLimit::All,
        limit_predict_batches: BatchLimit::All,
        min_epochs: 0,
        overfit_batches: 0,
        check_val_every_n_epoch: 1,
        val_check_interval: ValCheckInterval::Fraction(1.0),
        num_sanity_val_steps: Some(2),
        max_time: None,
        model: None,
        fast_dev_run: 0,
        test_after_fit: true,
        stop_on_nonfinite: true,
        flush_denormals: true,
        threads: 0,
        nonfinite_metrics: vec![],
        checkpoint: CheckpointConfig {
            monitor: None,
            mode: Mode::Min,
            save_top_k: None,
            save_last: true,
            filename: "epoch={epoch}-step={step}".into(),
            every_n_train_steps: 0,
            every_n_epochs: 1,
        },
        early_stopping: None,
        grad: GradSettings::default(),
        loggers: Loggers { csv: true, tensorboard: false },
    };
    match gradients::grad_settings(section) {
        Ok(g) => cfg.grad = g,
        Err(mut d) => diags.append(&mut d),
    }
    let mut es = EarlyStoppingConfig { monitor: String::new(), mode: Mode::Min, patience: 3, min_delta: 0.0 };
    let mut es_keys = Vec::new();
    let mut top_k_setting = None;
    let mut every_n_epochs_setting = None;
    for e in section.map(|s| s.entries.as_slice()).unwrap_or_default() {
        match e.key.as_str() {
            "max_epochs" => cfg.max_epochs = non_negative(e, &mut diags),
            "seed" => cfg.seed = non_negative(e, &mut diags) as u64,
            "log_every_n_steps" => cfg.log_every_n_steps = positive(e, &mut diags),
            "limit_train_batches" => cfg.limit_train_batches = batch_limit(e, &mut diags),
            "max_steps" => cfg.max_steps = non_negative(e, &mut diags),
            "enable_checkpointing" => cfg.enable_checkpointing = boolean(e, &mut diags),
            "default_root_dir" => cfg.default_root_dir = string(e, &mut diags),
            "name" => cfg.name = string(e, &mut diags),
            "model" => cfg.model = Some(e.value.to_string()),
            k if gradients::GRAD_KEYS.contains(&k) => {}
            "logger" => cfg.loggers = loggers(e, &mut diags),
            "limit_val_batches" => cfg.limit_val_batches = batch_limit(e, &mut diags),
            "limit_test_batches" => cfg.limit_test_batches = batch_limit(e, &mut diags),
            "limit_predict_batches" => cfg.limit_predict_batches = batch_limit(e, &mut diags),
            "min_epochs" => cfg.min_epochs = non_negative(e, &mut diags),
            "overfit_batches" => cfg.overfit_batches = non_negative(e, &mut diags),
            "check_val_every_n_epoch" => cfg.check_val_every_n_epoch = positive(e, &mut diags),
            "val_check_interval" => cfg.val_check_interval = val_check_interval(e, &mut diags),
            "num_sanity_val_steps" => {
                cfg.num_sanity_val_steps = match e.value {
                    ConstValue::Int(-1) => None,
                    ConstValue::Int(i) if i >= 0 => Some(i as usize),
                    _ => {
                        diags.push(type_error(e, "-1 (all) or a non-negative integer"));
                        None
                    }
                }
            }
            "max_time" => cfg.max_time = duration(e, &mut diags),
            "fast_dev_run" => {
                cfg.fast_dev_run = match e.value {
                    ConstValue::Bool(b) => b as usize,
                    _ => non_negative(e, &mut diags),
                }
            }
            "test_after_fit" => cfg.test_after_fit = boolean(e, &mut diags),
            "flush_denormals" => cfg.flush_denormals = boolean(e, &mut diags),
            "threads" => cfg.threads = thread_count(e, &mut diags),
            "stop_on_nonfinite" => cfg.stop_on_nonfinite = boolean(e, &mut diags),
            "nonfinite_metrics" => cfg.nonfinite_metrics = names(e, &mut diags),
            "checkpoint_monitor" => cfg.checkpoint.monitor = Some(string(e, &mut diags)),
            "checkpoint_mode" => cfg.checkpoint.mode = mode(e, &mut diags),
            "checkpoint_filename" => cfg.checkpoint.filename = filename(e, &mut diags),
            "save_top_k" => top_k_setting = Some(top_k(e, &mut diags)),
            "save_last" => cfg.checkpoint.save_last = boolean(e, &mut diags),
            "checkpoint_every_n_train_steps" => cfg.checkpoint.every_n_train_steps = non_negative(e, &mut diags),
            "checkpoint_every_n_epochs" => every_n_epochs_setting = Some(non_negative(e, &mut diags)),
            "early_stopping_monitor" => es.monitor = string(e, &mut diags),
            "early_stopping_mode" => es.mode = mode(e, &mut diags),
            "early_stopping_patience" => es.patience = non_negative(e, &mut diags),
            "early_stopping_min_delta" => es.min_delta = number(e, &mut diags),
            _ => diags.push(unknown_key(e, "trainer", TRAINER_KEYS)),
        }
        if e.key.starts_with("early_stopping_") {
            es_keys.push(e);
        }
    }
    // Lightning's default: an epoch checkpoint every epoch, unless they
    // come every N train steps (then none at epoch ends unless asked).
    cfg.checkpoint.every_n_epochs = match every_n_epochs_setting {
        Some(n) => n,
        None if cfg.checkpoint.every_n_train_steps > 0 => 0,
        None => 1,
    };
    // Lightning's default (save_top_k = 1): the best checkpoint with a
    // monitor, the newest without (a long run does not fill the disk with
    // one file per epoch; -1 keeps them all).
    cfg.checkpoint.save_top_k = top_k_setting.unwrap_or(Some(1));
    if !es.monitor.is_empty() {
        cfg.early_stopping = Some(es);
    } else if let Some(e) = es_keys.first() {
        diags.push(
            Diagnostic::error(Code::BadSection, format!("`{}` needs `early_stopping_monitor`", e.key))
                .with_label(e.key_span, "early stopping is off without a monitored metric")
                .with_help("add e.g. `early_stopping_monitor = \"val_loss\"`"),
        );
    }
    if diags.is_empty() {
        Ok(cfg)
    } else {
        Err(diags)
    }
}

fn unknown_key(e: &SettingEntry, section: &str, known: &[&str]) -> Diagnostic {
    let mut d = Diagnostic::error(Code::BadSection, format!("unknown {section} setting `{}`", e.key))
        .with_label(e.key_span, "not a setting");
    // A key of the other section (`trainer.batch_size`) says where it belongs.
    let (other, other_keys) = if section == "data" { ("trainer", TRAINER_KEYS) } else { ("data", DATA_KEYS) };
    d = match compiler::lower::suggest::closest(&e.key, known.iter().copied()) {
        _ if e.key == "callbacks" => d.with_help(
            "ModelCheckpoint and EarlyStopping are set flat: checkpoint_monitor, checkpoint_mode, save_top_k, \
             save_last, checkpoint_filename, early_stopping_monitor, early_stopping_mode, early_stopping_patience, \
             early_stopping_min_delta; a callback of your own is Rust (`trainer::Callback`)",
        ),
        _ if other_keys.contains(&e.key.as_str()) => d.with_help(format!(
            "`{}` is a {other} setting: {}",
            e.key,
            if e.set_by.is_some() {
                format!("--set {other}.{}=...", e.key)
            } else {
                format!("write it in the `{other}` section")
            }
        )),
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("the {section} settings are: {}", known.join(", "))),
    };
    e.noting_override(d)
}

/// How many batches of a loop run: `limit_*_batches` as Lightning takes
/// it, a count (an integer) or a fraction of the split (a float).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BatchLimit {
    All,
    Batches(usize),
    /// In (0, 1): that share of the batches, rounded down, at least one.
    Fraction(f64),
}

impl BatchLimit {
    /// The batches to run of `available`.
    pub fn of(self, available: usize) -> usize {
        match self {
            BatchLimit::All => available,
            BatchLimit::Batches(n) => n.min(available),
            BatchLimit::Fraction(f) => ((available as f64 * f) as usize).clamp(1.min(available), available),
        }
    }
}

impl std::fmt::Display for BatchLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            BatchLimit::All => write!(f, "0"),
            BatchLimit::Batches(n) => write!(f, "{n}"),
            BatchLimit::Fraction(x) => write!(f, "{x:?}"),
        }
    }
}

/// `limit_*_batches`: an integer >= 0 (0: all) or a fraction in (0, 1].
fn batch_limit(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> BatchLimit {
    match e.value {
        ConstValue::Int(0) => BatchLimit::All,
        ConstValue::Int(i) if i > 0 => BatchLimit::Batches(i as usize),
        ConstValue::Float(x) if x == 1.0 => BatchLimit::All,
        ConstValue::Float(x) if x > 0.0 && x < 1.0 => BatchLimit::Fraction(x),
        _ => {
            diags.push(type_error(e, "a number of batches (an integer, 0 for all) or a fraction of them in (0, 1]"));
            BatchLimit::All
        }
    }
}

fn non_negative(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> usize {
    match e.value {
        ConstValue::Int(i) if i >= 0 => i as usize,
        _ => {
            diags.push(type_error(e, "a non-negative integer"));
            0
        }
    }
}

/// `threads`: 0 (every CPU) up to `threads::MAX_THREADS`.
fn thread_count(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> usize {
    use compiler::codegen::cpu::threads::{checked_count, count_range};
    match e.value {
        ConstValue::Int(i) if checked_count(i).is_some() => i as usize,
        _ => {
            diags.push(type_error(e, &count_range()));
            0
        }
    }
}

fn positive(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> usize {
    match e.value {
        ConstValue::Int(i) if i > 0 => i as usize,
        _ => {
            diags.push(type_error(e, "a positive integer"));
            1
        }
    }
}

fn boolean(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> bool {
    match e.value {
        ConstValue::Bool(b) => b,
        _ => {
            diags.push(type_error(e, "`true` or `false`"));
            false
        }
    }
}

fn string(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> String {
    match &e.value {
        ConstValue::Str(s) => s.clone(),
        _ => {
            diags.push(type_error(e, "a string"));
            String::new()
        }
    }
}

/// Seconds (a number) or Lightning's `"DD:HH:MM:SS"` (also `"HH:MM:SS"`, `"MM:SS"`).
fn duration(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> Option<std::time::Duration> {
    let seconds = match &e.value {
        ConstValue::Int(i) if *i > 0 => Some(*i as f64),
        ConstValue::Float(x) if *x > 0.0 && x.is_finite() => Some(*x),
        ConstValue::Str(s) => {
            let parts: Option<Vec<u64>> = s.split(':').map(|p| p.trim().parse::<u64>().ok()).collect();
            match parts {
                Some(p) if (2..=4).contains(&p.len()) => {
                    // Right to left: seconds, minutes, hours, days.
                    let total: u64 = p.iter().rev().zip([1, 60, 3600, 86400]).map(|(v, unit)| v * unit).sum();
                    (total > 0).then_some(total as f64)
                }
                _ => None,
            }
        }
        _ => None,
    };
    if seconds.is_none() {
        diags.push(type_error(e, "a positive number of seconds or \"DD:HH:MM:SS\""));
    }
    seconds.map(std::time::Duration::from_secs_f64)
}

/// A positive integer (batches) or a float in (0, 1] (a fraction of the epoch).
fn val_check_interval(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> ValCheckInterval {
    match e.value {
        ConstValue::Int(i) if i > 0 => ValCheckInterval::Batches(i as usize),
        ConstValue::Float(x) if x > 0.0 && x <= 1.0 => ValCheckInterval::Fraction(x),
        _ => {
            diags.push(type_error(
                e,
                "a positive integer (every n training batches) or a float in (0, 1] (a fraction of the epoch)",
            ));
            ValCheckInterval::Fraction(1.0)
        }
    }
}

/// `-1` (keep all) or a non-negative count.
fn top_k(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> Option<usize> {
    match e.value {
        ConstValue::Int(-1) => None,
        ConstValue::Int(i) if i >= 0 => Some(i as usize),
        _ => {
            diags.push(type_error(e, "-1 (keep all) or a non-negative integer"));
            None
        }
    }
}

fn mode(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> Mode {
    match &e.value {
        ConstValue::Str(s) if s == "min" => Mode::Min,
        ConstValue::Str(s) if s == "max" => Mode::Max,
        _ => {
            diags.push(type_error(e, "\"min\" or \"max\""));
            Mode::Min
        }
    }
}

fn number(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> f64 {
    match e.value {
        ConstValue::Int(i) => i as f64,
        ConstValue::Float(x) if x.is_finite() => x,
        _ => {
            diags.push(type_error(e, "a number"));
            0.0
        }
    }
}

/// A comma-separated list of names in one string (the settings have no lists).
fn names(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> Vec<String> {
    string(e, diags).split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// `"csv"`, `"tensorboard"` or both, comma-separated.
fn loggers(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> Loggers {
    let mut res = Loggers { csv: false, tensorboard: false };
    let list = names(e, diags);
    for name in &list {
        match name.as_str() {
            "csv" => res.csv = true,
            "tensorboard" => res.tensorboard = true,
            other => diags.push(
                Diagnostic::error(Code::BadSection, format!("unknown logger `{other}`"))
                    .with_label(e.value_span, "in this list")
                    .with_help("the loggers are \"csv\" and \"tensorboard\": write e.g. \"csv,tensorboard\""),
            ),
        }
    }
    if list.is_empty() && matches!(e.value, ConstValue::Str(_)) {
        diags.push(type_error(e, "\"csv\", \"tensorboard\" or \"csv,tensorboard\""));
    }
    res
}

/// A file name template: its placeholders must be well-formed; which
/// metrics exist is checked once the model is compiled.
fn filename(e: &SettingEntry, diags: &mut Vec<Diagnostic>) -> String {
    let s = string(e, diags);
    if let Err(msg) = crate::callback::parse_template(&s) {
        diags.push(
            Diagnostic::error(Code::BadSection, format!("`{}`: {msg}", e.key))
                .with_label(e.value_span, "this file name template")
                .with_help("write e.g. \"epoch={epoch}-val_acc={val_acc:.4}\""),
        );
    }
    if s.contains('/') || s.contains('\\') {
        diags.push(
            Diagnostic::error(Code::BadSection, format!("`{}` must be a file name, not a path", e.key))
                .with_label(e.value_span, "contains a path separator"),
        );
    }
    s
}

fn type_error(e: &SettingEntry, expected: &str) -> Diagnostic {
    e.value_error(expected)
}

/// Applies a command-line override `section.key=value` to the sections,
/// replacing or adding the entry. The value is parsed as an int, a float, a
/// bool, or else taken as a string.
/// A `--set` value read as the language reads it in a section (`3`,
/// `1e-3`, `true`, `"name"`, `Net(width = 64)`), or else as a bare string
/// (`--set trainer.name=run1`, `--set trainer.max_time=00:01:00:00`).
fn parse_value(value: &str) -> ConstValue {
    let text = format!("trainer {{\n    v = {value}\n}}\n");
    let (prog, diags) = compiler::lower::load("--set", &text);
    if diags.is_empty() {
        if let Ok(sections) = compiler::lower::training_sections(&prog) {
            if let Some(entry) = sections.trainer.and_then(|t| t.entries.into_iter().next()) {
                return entry.value;
            }
        }
    }
    ConstValue::Str(value.to_string())
}

pub fn apply_override(data: &mut Option<Section>, trainer: &mut Option<Section>, spec: &str) -> Result<(), String> {
    let (lhs, value) = spec.split_once('=').ok_or_else(|| format!("--set expects section.key=value, got {spec:?}"))?;
    let (section, key) = lhs.split_once('.').ok_or_else(|| {
        // `--set max_epochs=2`: name the section the key is in.
        let section = [("trainer", TRAINER_KEYS), ("data", DATA_KEYS)]
            .into_iter()
            .find(|(_, keys)| keys.contains(&lhs.trim()))
            .map(|(s, _)| format!(" (did you mean `--set {s}.{}={value}`?)", lhs.trim()))
            .unwrap_or_default();
        format!("--set expects section.key=value, got {spec:?}{section}")
    })?;
    if section == "data" && (key == "source" || key == "path") {
        return override_source(data, key, value, spec);
    }
    let target = match section {
        "data" => data,
        "trainer" => trainer,
        other => return Err(format!("--set: unknown section `{other}` (expected `data` or `trainer`)")),
    };
    let value = parse_value(value);
    let sec = target.get_or_insert_with(|| Section { span: Span::default(), source: None, entries: vec![] });
    let set_by = Some(spec.to_string());
    match sec.entries.iter_mut().find(|e| e.key == key) {
        Some(e) => (e.value, e.set_by) = (value, set_by),
        None => sec.entries.push(SettingEntry {
            key: key.to_string(),
            key_span: sec.span,
            value,
            value_span: sec.span,
            set_by,
        }),
    }
    Ok(())
}

/// `--set data.source=csv("other.csv")` replaces the data source;
/// `--set data.path=other.csv` its file (the source's first argument). A
/// relative path is taken from the current directory, as any path typed on
/// the command line (a path in the file is from the model file's).
fn override_source(data: &mut Option<Section>, key: &str, value: &str, spec: &str) -> Result<(), String> {
    let sec = data.as_mut().ok_or_else(|| {
        format!("--set {spec}: the file has no `data` section to change (its data come from a Rust DataModule)")
    })?;
    let from_here = |p: &str| match std::env::current_dir() {
        Ok(cwd) if std::path::Path::new(p).is_relative() => cwd.join(p).display().to_string(),
        _ => p.to_string(),
    };
    let span = sec.source.as_ref().map_or(sec.span, |(_, s)| *s);
    match key {
        "source" => match parse_value(value) {
            ConstValue::Call { name, mut args } => {
                if let Some((None, ConstValue::Str(p))) = args.first_mut().filter(|_| name != "synthetic") {
                    *p = from_here(p);
                }
                sec.source = Some((ConstValue::Call { name, args }, span));
                Ok(())
            }
            _ => Err(format!("--set {spec}: expected a data source such as data.source='csv(\"file.csv\")'")),
        },
        _ => match &mut sec.source {
            Some((ConstValue::Call { name, args }, _)) if name != "synthetic" => match args.first_mut() {
                Some((None, ConstValue::Str(p))) => {
                    *p = from_here(value);
                    Ok(())
                }
                _ => Err(format!("--set {spec}: the data source `{name}` has no path to replace")),
            },
            _ => Err(format!("--set {spec}: the data source has no path (synthetic data)")),
        },
    }
}

#[cfg(test)]
mod tests;
