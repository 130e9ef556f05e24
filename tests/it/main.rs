//! End-to-end tests: model files in, numbers and diagnostics out.
//! One integration binary; each module is one area.

mod backends;
mod checkpoints;
mod diagnostics;
mod docs;
mod evaluate;
mod examples;
mod format;
mod fuzz;
#[cfg(feature = "cuda")]
mod gpu;
mod higher_order;
mod language;
mod optimizer;
mod stdlib;
mod stopping;
