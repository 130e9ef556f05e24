//! The trainer: Lightning's loop around one compiled step program.
//!
//! `config` reads the model file's `data` and `trainer` sections, `data`
//! loads (CSV, IDX, NPY, NPZ) and batches examples, `setup` checks, loads and compiles
//! what every command needs, `fit` runs the loop, `eval` runs validation
//! and test over a split (`jlc validate`, `jlc test`), `predict` runs
//! `predict_step` over a split into a `.npy` file, `check` lowers every
//! program on the data for `jlc check`, `callback` holds the
//! hooks (ModelCheckpoint, EarlyStopping), `logger` writes Lightning-layout
//! logs (CSV, and TensorBoard event files through `tensorboard`),
//! `checkpoint` saves and strictly loads the run's state (safetensors) so
//! that `--resume` continues bit-exactly. The trainer uses only the
//! compiler's front-end entry points and the runtime's `Executable`.

pub mod artifact;
pub mod callback;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod data_module;
pub mod debug_nans;
pub mod eval;
pub mod fit;
pub mod hook;
pub mod logger;
pub mod orthogonal;
pub mod plot;
pub mod predict;
pub mod prefetch;
mod resume;
pub mod rng;
mod run_summary;
mod saver;
pub mod setup;
pub mod tensorboard;

pub use callback::{Callback, Ctx};
pub use data::{Column, Dataset, Values};
pub use data_module::{DataModule, DataSplits};
pub use fit::{fit, fit_with, fit_with_data, EpochTiming, FitError, FitOptions, FitSummary, Resume, RunExtras, Stop};
/// The JSON type of callback states (`Callback::state_dict`).
pub use serde_json;
