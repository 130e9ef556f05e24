//! Evaluation: `validation_step` and `test_step` over a whole split, and
//! the `jlc validate` / `jlc test` commands that run them on a checkpoint.
//!
//! Consumes parameters and a dataset; produces each logged value averaged
//! over examples (weighted by batch size, as Lightning's epoch-level
//! `log`). The evaluation programs are compiled separately from the
//! training step and have no parameter outputs, so evaluating can never
//! change the parameters. Writes nothing but what it prints.

use crate::checkpoint;
use crate::data::Dataset;
use crate::fit::{checkpoint_names, resolve_checkpoint, FitError, Resume};
use crate::setup::{self, Stage};
use compiler::ir::Tensor;
use runtime::{Backend, Executable};
use std::path::{Path, PathBuf};

/// The random keys of an evaluation step that takes `key`: batch `i` of
/// the split gets `rng::step_key(seed, purpose, i)`, the same at every
/// evaluation, so two validations of one model give the same numbers.
#[derive(Clone, Copy, Debug)]
pub struct EvalKey {
    pub seed: u64,
    pub purpose: &'static str,
}

/// Runs the programs (one per batch size: full batches, and the last,
/// smaller one) over `data` in order; returns `(name, mean)` per logged value.
pub fn evaluate(
    exes: &mut [(usize, Executable)],
    params: &[Tensor],
    data: &Dataset,
    bs: usize,
    logs: &[(String, bool)],
    key: Option<EvalKey>,
) -> Result<Vec<(String, f64)>, FitError> {
    let order: Vec<usize> = (0..data.len()).collect();
    let mut sums = vec![0.0; logs.len()];
    let mut start = 0;
    while start < data.len() {
        let size = (data.len() - start).min(bs);
        let exe = &mut exes.iter_mut().find(|(s, _)| *s == size).expect("a program per batch size").1;
        let (x, y) = data.batch(&order, start, size);
        let mut inputs: Vec<Tensor> = params.to_vec();
        inputs.push(x);
        inputs.push(y);
        if let Some(k) = key {
            inputs.push(crate::rng::step_key(k.seed, k.purpose, (start / bs) as u64));
        }
        for (s, t) in sums.iter_mut().zip(exe.run(&inputs)?) {
            *s += t.scalar_value() * size as f64;
        }
        start += size;
    }
    Ok(logs.iter().zip(&sums).map(|((n, _), s)| (n.clone(), s / data.len() as f64)).collect())
}

/// Lightning's results table (its plain-text form), e.g.
///
/// ```text
/// ────────────────────────────────────────────────────────
///        Test metric             DataLoader 0
/// ────────────────────────────────────────────────────────
///         test_acc            0.9700000286102295
/// ────────────────────────────────────────────────────────
/// ```
pub fn results_table(stage: Stage, metrics: &[(String, f64)]) -> String {
    let title = match stage {
        Stage::Validate => "Validate metric",
        Stage::Test => "Test metric",
    };
    let w1 = metrics.iter().map(|(n, _)| n.len()).chain([title.len()]).max().unwrap_or(0) + 8;
    // Shortest round-trip text; a value that is an f32 (a one-batch
    // mean) as its f32 (`0.94`, not `0.9400000125169754`).
    let shortest = |v: f64| if (v as f32) as f64 == v { format!("{}", v as f32) } else { format!("{v}") };
    let values: Vec<String> = metrics.iter().map(|(_, v)| shortest(*v)).collect();
    let w2 = values.iter().map(String::len).chain(["DataLoader 0".len()]).max().unwrap_or(0) + 8;
    let rule = "─".repeat(w1 + w2);
    let mut out = format!("{rule}\n{title:^w1$}{:^w2$}\n{rule}\n", "DataLoader 0");
    for ((n, _), v) in metrics.iter().zip(&values) {
        out.push_str(&format!("{n:^w1$}{v:^w2$}\n"));
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

pub struct EvalOptions {
    pub overrides: Vec<String>,
    pub backend: Backend,
    pub color: bool,
    pub compiler: compiler::Options,
    /// The checkpoint to evaluate (`last` when None).
    pub ckpt: Option<Resume>,
}

#[derive(Clone, Debug)]
pub struct EvalSummary {
    pub checkpoint: PathBuf,
    pub examples: usize,
    pub metrics: Vec<(String, f64)>,
}

/// `jlc validate` / `jlc test`: loads a checkpoint strictly and runs
/// `validation_step` on the validation split or `test_step` on the test
/// split. Nothing is written.
pub fn run(stage: Stage, path: &Path, text: &str, opts: &EvalOptions) -> Result<EvalSummary, FitError> {
    run_with_data(stage, path, text, opts, None)
}

/// `run` on the splits of a Rust `DataModule` (`data_module.rs`) instead
/// of the model file's `data` section, when `module` is given.
pub fn run_with_data(
    stage: Stage,
    path: &Path,
    text: &str,
    opts: &EvalOptions,
    module: Option<&mut dyn crate::data_module::DataModule>,
) -> Result<EvalSummary, FitError> {
    let setup = setup::prepare(path, text, &opts.overrides, opts.color, &opts.compiler, module)?;
    let method = stage.method();
    let has_step = match stage {
        Stage::Validate => setup.progs.val_step.is_some(),
        Stage::Test => setup.progs.test_step.is_some(),
    };
    if !has_step {
        return Err(FitError::Config(format!(
            "model `{}` has no `{method}` method: add `fn {method}(self, x, y) {{ log(...) }}`",
            setup.progs.model_name
        )));
    }
    let data = match stage {
        Stage::Validate if setup.val.is_empty() => {
            return Err(FitError::Config("the data has no validation split: set data.val_split".into()))
        }
        Stage::Validate => &setup.val,
        Stage::Test => setup.test.as_ref().ok_or_else(|| {
            FitError::Config(format!(
                "the data has no test split: {}",
                match setup.data_cfg.source {
                    crate::config::SourceKind::Csv => "set `test = \"file.csv\"` in the data section",
                    crate::config::SourceKind::Idx =>
                        "the IDX directory has no t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte",
                    crate::config::SourceKind::Npz =>
                        "set `test = \"test.npz\"` or `test = npz(\"file.npz\", x = \"x_test\", y = \"y_test\")`",
                    crate::config::SourceKind::Npy => "set `test = npy(\"x_test.npy\", y = \"y_test.npy\")`",
                    crate::config::SourceKind::Safetensors => {
                        "set `test = \"test.safetensors\"` or `test = safetensors(\"file.safetensors\", x = \"x_test\", y = \"y_test\")`"
                    }
                    crate::config::SourceKind::Text => "set `test = \"test.txt\"` in the data section",
                    crate::config::SourceKind::Synthetic => "draw a test split: `synthetic(\"moons\", n = 1000, test = 200)`",
                    crate::config::SourceKind::Module => "return a test split from the DataModule's setup",
                }
            ))
        })?,
    };
    // limit_val_batches / limit_test_batches: the first batches, as in `fit`
    // (with fast_dev_run's and overfit_batches's limits).
    let cfg = crate::fit::effective_config(&setup.trainer_cfg);
    let limit = match stage {
        Stage::Validate => cfg.limit_val_batches,
        Stage::Test => cfg.limit_test_batches,
    };
    let bs = setup.data_cfg.batch_size;
    let data = &*data.first_batches(limit.of(data.len().div_ceil(bs)), bs);
    let ck_path = resolve_checkpoint(opts.ckpt.as_ref().unwrap_or(&Resume::Last), &setup.base, "--ckpt", "evaluate")?;
    let name = ck_path.display().to_string();
    let mut ck = checkpoint::load(&ck_path)?;
    if ck.meta.model_hash != checkpoint::model_hash(text) {
        eprintln!("warning: {} changed since {name} was saved (the parameters fit)", path.display());
    }
    let names = checkpoint_names(&setup.progs);
    let params = ck.take_params(&name, &names[..setup.progs.params.len()])?;
    let mut exes = setup.eval_programs(stage, data, opts.backend, &opts.compiler, opts.color)?;
    let (takes_key, purpose) = match stage {
        Stage::Validate => (setup.progs.keys.val, "validation_step"),
        Stage::Test => (setup.progs.keys.test, "test_step"),
    };
    let key = takes_key.then_some(EvalKey { seed: setup.trainer_cfg.seed, purpose });
    let metrics = evaluate(&mut exes, &params, data, setup.data_cfg.batch_size, setup.eval_logs(stage), key)?;
    Ok(EvalSummary { checkpoint: ck_path, examples: data.len(), metrics })
}

#[cfg(test)]
mod tests;
