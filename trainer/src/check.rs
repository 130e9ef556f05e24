//! What `jlc check` adds for a file that trains: the data loaded as `jlc
//! run` loads them, and every program of the run lowered for the data's
//! batch types (the training, validation and test steps, `predict_step`
//! and `on_train_end`). The file's own checks (`jaxlightning::check_source`)
//! cannot elaborate a method whose parameters have no types, such as
//! `fn on_train_end(self, x, y)`: without this, a mistake in one passed
//! `jlc check` and was found only by `jlc run`.
//!
//! Consumes the model file's path and text and `--set` overrides; produces
//! the batch types checked, or the error `jlc run` would report. Lowers
//! without optimizing and compiles no machine code; writes nothing.

use crate::fit::FitError;
use crate::setup;
use std::path::Path;

/// What the data check covered.
#[derive(Debug)]
pub struct DataCheck {
    /// The training batch's types, `x f32[32, 64], y i32[32]`.
    pub batch: String,
    /// The programs lowered: `training_step`, `validation_step`, ...
    pub programs: Vec<&'static str>,
}

/// Loads the data of the file at `path` (text `text`) and lowers its
/// programs for them; `None` when the file has no `data` section (its data
/// come from Rust, a `DataModule`).
pub fn check_with_data(
    path: &Path,
    text: &str,
    overrides: &[String],
    color: bool,
) -> Result<Option<DataCheck>, FitError> {
    let (prog, _) = compiler::lower::load(&path.display().to_string(), text);
    if compiler::lower::training_sections(&prog).is_ok_and(|s| s.data.is_none()) {
        return Ok(None);
    }
    // Lowering finds what `jlc run` would report; the optimizer adds no diagnostics.
    let opts = compiler::Options { no_opt: true, ..Default::default() };
    let setup = setup::prepare(path, text, overrides, color, &opts, None)?;
    let bs = setup.data_cfg.batch_size;
    // The monitors and file name templates against the metrics the run
    // will have (validation's only where it validates), as `fit` checks them.
    let trainer_cfg = crate::fit::effective_config(&setup.trainer_cfg);
    let val_batches = trainer_cfg.limit_val_batches.of(setup.val.len().div_ceil(bs));
    let validates = setup.progs.val_step.is_some() && val_batches > 0 && !setup.val.is_empty();
    crate::fit::check_metric_names(
        &trainer_cfg,
        &crate::fit::epoch_metric_names(&setup.progs, validates),
        &setup.progs,
    )?;
    let (x_ty, y_ty) = (setup.train.x.batch_type(bs), setup.train.y.batch_type(bs));
    let mut programs = vec!["training_step"];
    if setup.progs.val_step.is_some() {
        programs.push("validation_step");
    }
    if setup.progs.test_step.is_some() {
        programs.push("test_step");
    }
    let trainer = setup.trainer_sec.as_ref();
    let report = |d| setup::diagnostics(d, &setup.prog, color);
    if compiler::compile_predict(&setup.prog, trainer, &x_ty, &opts).map_err(report)?.is_some() {
        programs.push("predict_step");
    }
    // The hook gets the whole training split, as in `fit`.
    let n = setup.train.len();
    let (hook_x, hook_y) = (setup.train.x.batch_type(n), setup.train.y.batch_type(n));
    if compiler::compile_on_train_end(&setup.prog, trainer, &hook_x, &hook_y, &opts).map_err(report)?.is_some() {
        programs.push("on_train_end");
    }
    Ok(Some(DataCheck { batch: format!("x {x_ty}, y {y_ty}"), programs }))
}
