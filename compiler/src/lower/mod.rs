//! Checking and lowering: the checked AST becomes tensor IR.
//!
//! `program` gathers the user's file and the stdlib modules it uses;
//! `elab` walks the AST (check mode: types only; build mode: IR too), with
//! `ops` for operators, `index` for `x[...]`, `builtins` for built-in
//! functions, `transform` for `grad`, `jvp` and `vjp` and `vmap` for `vmap`; `entry` has the entry points used by
//! `jlc` and the trainer; `gradients` what the training step does to gradients
//! before the update (clipping); `typed` prints the signatures the checker infers; `step_inputs` the
//! types step methods declare for the batch, `predict` the `predict_step` program.

mod array_literal;
pub mod artifacts;
mod buffers;
pub mod builtins;
mod checkpoint;
mod cumulative;
mod custom_vjp;
mod einsum;
pub mod elab;
pub mod entry;
pub mod gradients;
pub mod hook;
pub mod index;
mod jacobian;
mod join;
mod keywords;
mod leading_dims;
pub mod model_checks;
pub mod ops;
pub mod param_groups;
pub mod predict;
pub mod program;
mod random;
mod scan;
pub mod step_inputs;
pub mod suggest;
mod take_along_axis;
mod tensor_ops;
pub mod transform;
mod tree;
pub mod typed;
mod unbound_names;
mod unparsed;
pub mod value;
pub mod vmap;
pub mod window_builtins;

pub use elab::PrintItem;
pub use entry::{
    check_program, lower_fn, lower_fn_at, lower_main, lower_training, lower_training_with, training_sections,
    training_sections_lenient, Accumulation, ConstValue, Script, Section, Sections, SettingEntry, StepKeys,
    TrainPrograms,
};
pub use hook::{lower_on_train_end, ArtifactSpec, HookProgram};
pub use predict::{lower_predict, PredictProgram};
pub use program::{load, load_with, Program, ReadFile};
pub use step_inputs::{declared_batch_inputs, declared_step_inputs, DeclaredInput, KEY_PARAM};
pub use value::{Init, ParamKind, ParamSpec};

#[cfg(test)]
mod stdlib_numerics;
#[cfg(test)]
mod tests;
