//! `--debug-nans`: where a non-finite loss or gradient came from.
//!
//! The run stopped at global step g (`FitError::NonFinite`). Training is
//! bit-exact from a checkpoint, so the parameters and optimizer state
//! before step g are those of a run resumed from the last good checkpoint
//! (or started afresh) and stopped at `max_steps = g`. That replay is
//! written to a temporary directory; then step g's program runs in the
//! reference interpreter on those values and step g's batch (the order is
//! a function of the seed and the epoch), and the first instruction whose
//! result holds a NaN or an infinity while its operands hold none is the
//! one named: the primitive that made it (as JAX's `jax_debug_nans`
//! re-runs a failing function op by op).

use crate::fit::{fit, FitOptions, NonFiniteAt, Resume};
use crate::rng::{step_key, Rng};
use compiler::ir::{interp, Func, Tensor};
use std::path::Path;

/// A paragraph for the error message: the first non-finite operation of
/// the step, or why it could not be found.
pub fn locate(path: &Path, text: &str, opts: &FitOptions, at: &NonFiniteAt) -> String {
    eprintln!("--debug-nans: replaying the run to global step {} (from the last good checkpoint)", at.global_step);
    match replay(path, text, opts, at) {
        Ok(found) => format!("\n--debug-nans: {found}"),
        Err(why) => format!("\n--debug-nans: could not replay global step {}: {why}", at.global_step),
    }
}

fn replay(path: &Path, text: &str, opts: &FitOptions, at: &NonFiniteAt) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("jlc-debug-nans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut overrides = opts.overrides.clone();
    overrides.extend([
        format!("trainer.default_root_dir={}", dir.display()),
        "trainer.test_after_fit=false".into(),
        // The replay must not stop on the value it is looking for.
        "trainer.stop_on_nonfinite=false".into(),
        "trainer.nonfinite_metrics=\"\"".into(),
    ]);
    // The program as written (autodiff and the update, not optimized):
    // its instructions are the ones named. The replayed run itself compiles
    // as the original did, so its values are bitwise the original's.
    let as_written = compiler::Options { no_opt: true, ..opts.compiler.clone() };
    let setup = crate::setup::prepare(path, text, &overrides, false, &as_written, None).map_err(|e| e.to_string())?;
    let cfg = crate::fit::effective_config(&setup.trainer_cfg);
    if cfg.grad.accumulate > 1 {
        return Err("the replay covers steps without gradient accumulation".into());
    }
    let (params, states) = if at.global_step == 0 && at.last_good.is_none() {
        let params = crate::fit::init_params(&setup.progs.params, cfg.seed);
        let states: Vec<Tensor> = setup.progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty)).collect();
        (params, states)
    } else {
        let mut o = overrides.clone();
        o.push(format!("trainer.max_steps={}", at.global_step));
        let replay_opts = FitOptions {
            overrides: o,
            backend: opts.backend,
            compiler: opts.compiler.clone(),
            resume: at.last_good.clone().map(Resume::Path),
            ..FitOptions::default()
        };
        let run = fit(path, text, &replay_opts).map_err(|e| e.to_string())?;
        if run.steps != at.global_step {
            return Err(format!("the replay stopped at global step {}", run.steps));
        }
        (run.params.into_iter().map(|(_, t)| t).collect(), run.states.into_iter().map(|(_, t)| t).collect())
    };
    let _ = std::fs::remove_dir_all(&dir);
    // Step g's inputs, as the training loop forms them.
    let bs = setup.data_cfg.batch_size;
    let shuffle = setup.data_cfg.shuffle && cfg.overfit_batches == 0;
    let train = &setup.train;
    let order: Vec<usize> = if shuffle {
        Rng::derive(cfg.seed.wrapping_add(at.epoch as u64), "shuffle").permutation(train.len())
    } else {
        (0..train.len()).collect()
    };
    let (x, y) = train.batch(&order, at.batch * bs, bs);
    let mut inputs: Vec<Tensor> = params.into_iter().chain(states).collect();
    inputs.extend([Tensor::scalar_f32((at.global_step + 1) as f32), x, y]);
    if setup.progs.keys.train {
        inputs.push(step_key(cfg.seed, "training_step", at.global_step as u64));
    }
    Ok(first_non_finite(&setup.progs.train_step, &inputs))
}

/// Runs `func` in the interpreter and describes the first instruction whose
/// result has a NaN or an infinity that its operands do not have.
pub fn first_non_finite(func: &Func, inputs: &[Tensor]) -> String {
    let bad = |t: &Tensor| t.dtype().is_float() && t.to_f64_vec().iter().any(|v| !v.is_finite());
    if let Some(i) = inputs.iter().position(bad) {
        return format!("input %{i} of the step already holds a NaN or an infinity (a parameter or the batch)");
    }
    let listing = compiler::ir::text::print(func);
    let mut found: Option<String> = None;
    interp::run_observed(func, inputs, &mut |i, operands, result| {
        if found.is_none() && bad(&result) && !operands.iter().any(|o| bad(o)) {
            let values = result.to_f64_vec();
            let n = values.iter().filter(|v| !v.is_finite()).count();
            let first = values.iter().find(|v| !v.is_finite()).copied().unwrap_or(f64::NAN);
            // The instruction's line of the IR listing, after its operands' lines.
            let line_of = |k: usize| listing.lines().find(|l| l.trim_start().starts_with(&format!("%{k} ")));
            let mut lines: Vec<&str> = func.insts[i].args.iter().filter_map(|a| line_of(a.index())).collect();
            lines.extend(line_of(i));
            found = Some(format!(
                "the first non-finite value of the step is made by instruction %{i}, `{}` ({n} of {} elements, \
                 the first {first}), from finite operands; in the step's program (after autodiff and the \
                 optimizer update, not optimized):\n    {}",
                compiler::ir::op::name(&func.insts[i].op),
                values.len(),
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n    ")
            ));
        }
        result
    });
    found.unwrap_or_else(|| {
        "the step's program, run in the interpreter, made no NaN or infinity (the compiled step rounds \
         differently in places, e.g. a matrix product's sums: a value at the edge of overflowing)"
            .into()
    })
}
