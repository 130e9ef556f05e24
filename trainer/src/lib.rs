//! The trainer: Lightning's loop around one compiled step program.
//!
//! `config` reads the model file's `data` and `trainer` sections, `data`
//! loads and batches examples, `fit` runs the loop, `logger` writes
//! Lightning-layout CSV logs. The trainer uses only the compiler's front-end
//! entry points and the runtime's `Executable`.

pub mod config;
pub mod data;
pub mod fit;
pub mod logger;
pub mod rng;

pub use fit::{fit, FitError, FitOptions, FitSummary};
