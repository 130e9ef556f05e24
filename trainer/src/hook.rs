//! The model's `on_train_end` hook: compiled before training starts (so a
//! mistake in it is reported before hours of training, not after), run
//! once on the final parameters after the last step, its logged values
//! printed and its pictures written into the run directory.

use crate::artifact;
use crate::fit::FitError;
use crate::rng::step_key;
use crate::setup::{self, Setup};
use compiler::ir::Tensor;
use compiler::lower::HookProgram;
use runtime::{Backend, Executable};
use std::path::{Path, PathBuf};

/// The compiled hook.
pub struct Hook {
    program: HookProgram,
    exe: Executable,
}

/// Compiles the trained model's `on_train_end` for the training split;
/// `None` when it has none.
pub fn compile(
    setup: &Setup,
    backend: Backend,
    opts: &compiler::Options,
    color: bool,
) -> Result<Option<Hook>, FitError> {
    let n = setup.train.len();
    let (x_ty, y_ty) = (setup.train.x.batch_type(n), setup.train.y.batch_type(n));
    let Some(program) = compiler::compile_on_train_end(&setup.prog, setup.trainer_sec.as_ref(), &x_ty, &y_ty, opts)
        .map_err(|d| setup::diagnostics(d, &setup.prog, color))?
    else {
        return Ok(None);
    };
    // The hook runs once, after training: where the GPU backend cannot
    // compile it (a `scan`, say), it runs on the CPU, with a note.
    let mut exe = match Executable::compile(program.func.clone(), backend) {
        Err(runtime::Error::Codegen(why)) if backend == Backend::Cuda => {
            eprintln!("note: on_train_end runs on the CPU: the GPU backend cannot compile it ({why})");
            Executable::compile(program.func.clone(), Backend::Cpu)?
        }
        other => other?,
    };
    exe.set_flush_denormals(setup.trainer_cfg.flush_denormals);
    Ok(Some(Hook { program, exe }))
}

impl Hook {
    /// Runs the hook on `params`; prints its logged values and writes its
    /// pictures into `dir` (unless `write` is false: `fast_dev_run`).
    /// Returns its logged values and the files written.
    pub fn run(
        &mut self,
        setup: &Setup,
        params: &[Tensor],
        dir: &Path,
        write: bool,
    ) -> Result<(Vec<(String, f64)>, Vec<PathBuf>), FitError> {
        let p = &self.program;
        let mut inputs = params.to_vec();
        if p.takes_data {
            let order: Vec<usize> = (0..setup.train.len()).collect();
            let (x, y) = setup.train.batch(&order, 0, order.len());
            inputs.push(x);
            inputs.push(y);
        }
        if p.takes_key {
            inputs.push(step_key(setup.trainer_cfg.seed, "on_train_end", 0));
        }
        let outs = self.exe.run(&inputs)?;
        let (logged, mut pictures) = outs.split_at(p.logs.len());
        let metrics: Vec<(String, f64)> = p.logs.iter().cloned().zip(logged.iter().map(Tensor::scalar_value)).collect();
        if !metrics.is_empty() {
            let shown: Vec<String> = metrics.iter().map(|(n, v)| format!("{n}={v:.4}")).collect();
            eprintln!("on_train_end: {}", shown.join(" "));
        }
        let mut written = Vec::new();
        for spec in &p.artifacts {
            let (mine, rest) = pictures.split_at(spec.roles.len());
            pictures = rest;
            if !write {
                eprintln!("on_train_end: fast_dev_run, not writing {}", spec.path);
                continue;
            }
            let path = artifact::write(spec, mine, dir).map_err(FitError::Artifact)?;
            if spec.kind == compiler::lower::artifacts::ArtifactKind::Text {
                // Sampled text is what the user wants to see: print it too,
                // control bytes escaped (an undertrained model samples NUL,
                // BEL, ESC: raw, they would beep or drive the terminal);
                // the file holds the bytes as sampled.
                println!("{}", printable(&String::from_utf8_lossy(&artifact::text_bytes(&mine[0]))));
            }
            eprintln!("saved {}", path.display());
            written.push(path);
        }
        Ok((metrics, written))
    }
}

/// `text` with control characters other than newline and tab escaped
/// (`\u{7}`).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\n' && c != '\t' { c.escape_default().to_string() } else { c.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters_but_keeps_lines() {
        assert_eq!(super::printable("a\u{0}b\u{7}\nc\td\u{1b}[2J"), "a\\u{0}b\\u{7}\nc\td\\u{1b}[2J");
    }
}
