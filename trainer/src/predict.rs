//! `jlc predict`: a model's `predict_step(self, x)` over a data split with a
//! checkpoint's parameters, the outputs written as one `.npy` file.
//!
//! Consumes the model file, a checkpoint and the data; produces an array of
//! shape `[examples, ...]` (each batch's output, concatenated in the
//! split's order). The prediction program is compiled separately from the
//! training step (`compiler::compile_predict`) and has no parameter
//! outputs, so predicting cannot change the parameters. Writes nothing but
//! the output file.

use crate::checkpoint;
use crate::data::{self, npy, Dataset, Values};
use crate::fit::{checkpoint_names, resolve_checkpoint, FitError, Resume};
use crate::setup;
use compiler::ir::{Data, Tensor};
use runtime::{Backend, Executable};
use std::path::{Path, PathBuf};

/// Which examples to predict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    /// The test split, in file order.
    Test,
    /// The validation split, in the (seeded) order the split drew it.
    Val,
    /// The training split, in the (seeded) order the split drew it.
    Train,
    /// Every example of the training file, in file order.
    All,
}

impl Split {
    pub fn parse(s: &str) -> Option<Split> {
        Some(match s {
            "test" => Split::Test,
            "val" => Split::Val,
            "train" => Split::Train,
            "all" => Split::All,
            _ => return None,
        })
    }
}

pub struct PredictOptions {
    pub overrides: Vec<String>,
    pub backend: Backend,
    pub color: bool,
    pub compiler: compiler::Options,
    /// The checkpoint (`last` when None).
    pub ckpt: Option<Resume>,
    pub split: Split,
    /// Where the outputs go: an `.npy` array, or an `.npz` archive (needed
    /// when `predict_step` returns a tuple).
    pub out: PathBuf,
}

#[derive(Clone, Debug)]
pub struct PredictSummary {
    pub checkpoint: PathBuf,
    pub examples: usize,
    /// The written arrays' shapes, `[examples, ...]`: one, or one per
    /// tensor of a tuple `predict_step` returns (`arr_0`, ... in the `.npz`).
    pub shapes: Vec<Vec<usize>>,
}

/// Runs `predict_step` over the split and writes the outputs to `opts.out`.
pub fn run(path: &Path, text: &str, opts: &PredictOptions) -> Result<PredictSummary, FitError> {
    run_with_data(path, text, opts, None)
}

/// `run` on the splits of a Rust `DataModule` (`data_module.rs`) instead of
/// the model file's `data` section, when `module` is given.
pub fn run_with_data(
    path: &Path,
    text: &str,
    opts: &PredictOptions,
    module: Option<&mut dyn crate::data_module::DataModule>,
) -> Result<PredictSummary, FitError> {
    check_out_name(&opts.out)?;
    let setup = setup::prepare(path, text, &opts.overrides, opts.color, &opts.compiler, module)?;
    let all;
    let data: &Dataset = match opts.split {
        Split::Test => setup.test.as_ref().ok_or_else(|| {
            FitError::Config("the data has no test split: pick another with --split val|train|all".into())
        })?,
        Split::Val if setup.val.is_empty() => {
            return Err(FitError::Config("the data has no validation split: set data.val_split".into()))
        }
        Split::Val => &setup.val,
        Split::Train => &setup.train,
        Split::All => {
            // The file again, in its order, seen as the training split is.
            let dir = path.parent().unwrap_or(Path::new("."));
            let (mut d, _) = setup::load(&setup.data_cfg, dir)?;
            for (c, t) in [(&mut d.x, &setup.train.x), (&mut d.y, &setup.train.y)] {
                (c.dims, c.dtype, c.scale) = (t.dims.clone(), t.dtype, t.scale);
            }
            all = d;
            &all
        }
    };
    let ck_path =
        resolve_checkpoint(opts.ckpt.as_ref().unwrap_or(&Resume::Last), &setup.base, "--ckpt", "predict with")?;
    let name = ck_path.display().to_string();
    let mut ck = checkpoint::load(&ck_path)?;
    if ck.meta.model_hash != checkpoint::model_hash(text) {
        eprintln!("warning: {} changed since {name} was saved (the parameters fit)", path.display());
    }
    let params = ck.take_params(&name, &checkpoint_names(&setup.progs)[..setup.progs.params.len()])?;

    // One program per batch size: full batches, and the last, smaller one.
    let bs = setup.data_cfg.batch_size;
    let limit = crate::fit::effective_config(&setup.trainer_cfg).limit_predict_batches;
    let data = &*data.first_batches(limit.of(data.len().div_ceil(bs)), bs);
    let mut sizes = vec![];
    if data.len() >= bs {
        sizes.push(bs);
    }
    if !data.len().is_multiple_of(bs) {
        sizes.push(data.len() % bs);
    }
    let mut exes = Vec::new();
    let mut takes_key = false;
    for &size in &sizes {
        let x_ty = data.x.batch_type(size);
        let prog = compiler::compile_predict(&setup.prog, setup.trainer_sec.as_ref(), &x_ty, &opts.compiler)
            .map_err(|d| setup::diagnostics(d, &setup.prog, opts.color))?
            .ok_or_else(|| {
                FitError::Config(format!(
                    "model `{}` has no `predict_step` method: add `fn predict_step(self, x) = ...`",
                    setup.progs.model_name
                ))
            })?;
        let paths: Vec<&str> = prog.params.iter().map(|p| p.path.as_str()).collect();
        let want: Vec<&str> = setup.progs.params.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, want, "predict_step and training_step instantiate the same model");
        takes_key = prog.takes_key;
        let n_out = prog.func.outputs.len();
        if n_out > 1 && !is_npz(&opts.out) {
            return Err(FitError::Config(format!(
                "`predict_step` returns {n_out} tensors, which go into an `.npz` archive (arr_0, arr_1, ...): \
                 write `--out {}`",
                opts.out.with_extension("npz").display()
            )));
        }
        let mut exe = Executable::compile(prog.func, opts.backend)?;
        exe.set_flush_denormals(setup.trainer_cfg.flush_denormals);
        exes.push((size, exe));
    }

    let order: Vec<usize> = (0..data.len()).collect();
    // Per output of predict_step: its shape so far and its values.
    let mut outs: Vec<(Vec<usize>, Data)> = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let size = (data.len() - start).min(bs);
        let exe = &mut exes.iter_mut().find(|(s, _)| *s == size).expect("a program per batch size").1;
        let (x, _) = data.batch(&order, start, size);
        let mut inputs: Vec<Tensor> = params.clone();
        inputs.push(x);
        if takes_key {
            inputs.push(crate::rng::step_key(setup.trainer_cfg.seed, "predict_step", (start / bs) as u64));
        }
        let ys = exe.run(&inputs)?;
        if outs.is_empty() {
            outs = ys.into_iter().map(|y| (y.shape.dims().to_vec(), y.data)).collect();
        } else {
            for ((dims, acc), y) in outs.iter_mut().zip(ys) {
                dims[0] += size;
                match (acc, y.data) {
                    (Data::F32(a), Data::F32(b)) => a.extend(b),
                    (Data::F64(a), Data::F64(b)) => a.extend(b),
                    (Data::I32(a), Data::I32(b)) => a.extend(b),
                    (Data::Bool(a), Data::Bool(b)) => a.extend(b),
                    _ => unreachable!("both programs return predict_step's dtypes"),
                }
            }
        }
        start += size;
    }
    let shapes: Vec<Vec<usize>> = outs.iter().map(|(d, _)| d.clone()).collect();
    let arrays: Vec<Vec<u8>> = outs
        .into_iter()
        .map(|(shape, values)| {
            let values = match values {
                Data::F32(v) => Values::F32(v),
                Data::F64(v) => Values::F64(v),
                Data::I32(v) => Values::I32(v),
                Data::Bool(v) => Values::Bool(v),
            };
            npy::write(&shape, &values)
        })
        .collect();
    // Temp file + fsync + rename: an interrupted predict leaves the old file or none, never a partial one.
    // A device or pipe (`--out /dev/null`, `/dev/stdout`) is written in place: renaming over it would replace it.
    let special = std::fs::metadata(&opts.out).is_ok_and(|m| !m.is_file());
    let bytes = if !is_npz(&opts.out) {
        arrays.into_iter().next().expect("checked: one output, or an .npz")
    } else {
        // numpy's names for positional arrays (`np.savez(path, a, b)`).
        let names: Vec<String> = (0..arrays.len()).map(|i| format!("arr_{i}")).collect();
        let members: Vec<(&str, Vec<u8>)> = names.iter().map(String::as_str).zip(arrays).collect();
        data::npz::write(&members, false)
    };
    if special { std::fs::write(&opts.out, &bytes) } else { checkpoint::write_atomic(&opts.out, &bytes) }
        .map_err(|e| FitError::Config(format!("cannot write {}: {e}", opts.out.display())))?;
    Ok(PredictSummary { checkpoint: ck_path, examples: data.len(), shapes })
}

/// `--out` names an `.npy` or `.npz` file (or a device or pipe, which gets
/// `.npy` bytes): `p.txt` or `p.csv` would have been NPY under a name that
/// says otherwise. Checked before anything is loaded.
fn check_out_name(out: &Path) -> Result<(), FitError> {
    let numpy = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) || is_npz(out);
    if numpy || std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Ok(());
    }
    Err(FitError::Config(format!(
        "--out {}: predictions are written as NumPy arrays: name an `.npy` file (`.npz` when `predict_step` \
         returns several tensors)",
        out.display()
    )))
}

/// `--out` names an `.npz` archive (one member per output) rather than one `.npy` array.
fn is_npz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}
