//! Checking and lowering: the checked AST becomes tensor IR.
//!
//! `program` gathers the user's file and the stdlib modules it uses;
//! `elab` walks the AST (check mode: types only; build mode: IR too), with
//! `ops` for operators, `index` for `x[...]`, `builtins` for built-in
//! functions, `transform` for `grad`, `jvp` and `vjp` and `vmap` for `vmap`; `entry` has the entry points used by
//! `jlc` and the trainer; `typed` prints the signatures the checker infers.

pub mod builtins;
pub mod elab;
pub mod entry;
pub mod index;
pub mod ops;
pub mod program;
mod random;
mod scan;
pub mod suggest;
mod tensor_ops;
pub mod transform;
pub mod typed;
pub mod value;
pub mod vmap;
pub mod window_builtins;

pub use elab::PrintItem;
pub use entry::{
    check_program, lower_fn, lower_main, lower_training, lower_training_with, training_sections, ConstValue, Script,
    Section, Sections, SettingEntry, TrainPrograms,
};
pub use program::{load, load_with, Program, ReadFile};
pub use value::{Init, ParamSpec};

#[cfg(test)]
mod tests;
