//! Checking and lowering: the checked AST becomes tensor IR.
//!
//! `program` gathers the user's file and the stdlib modules it uses;
//! `elab` walks the AST (check mode: types only; build mode: IR too), with
//! `ops` for operators, `builtins` for built-in functions and `transform`
//! for `grad`; `entry` has the entry points used by `jlc` and the trainer, `gradients`
//! what the training step does to gradients before the update (clipping).

pub mod builtins;
pub mod elab;
pub mod entry;
pub mod gradients;
pub mod ops;
pub mod program;
pub mod suggest;
pub mod transform;
pub mod value;

pub use elab::PrintItem;
pub use entry::{
    check_program, lower_main, lower_training, training_sections, Accumulation, ConstValue, Script, Section, Sections,
    SettingEntry, TrainPrograms,
};
pub use program::{load, Program};
pub use value::{Init, ParamSpec};

#[cfg(test)]
mod tests;
