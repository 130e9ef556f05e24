//! End-to-end tests: model files in, numbers and diagnostics out.
//! One integration binary; each module is one area.

mod backends;
mod buffers;
mod checkpoints;
mod crashes;
mod data_module;
mod datasets;
mod diagnostics;
mod docs;
mod evaluate;
mod examples;
mod format;
mod fuzz;
#[cfg(feature = "cuda")]
mod gpu;
#[cfg(feature = "cuda")]
mod gpu_fusion;
mod gradients;
mod held;
mod higher_order;
mod jacobians;
mod keys;
mod language;
mod loggers;
mod optimizer;
mod param_groups;
mod progress_bar;
mod pytrees;
mod seed_examples;
mod stdlib;
mod stopping;
mod target_free_steps;
