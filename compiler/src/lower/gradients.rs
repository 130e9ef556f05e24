//! What happens to the gradients between autodiff and the optimizer update.
//!
//! Consumes the `trainer` section's gradient settings and the gradient
//! values of a step under construction; produces IR: the global gradient
//! norm, clipped gradients, and the settings the entry points need to
//! assemble the step (`entry.rs`). It exists so that clipping runs inside
//! the compiled step, where the gradients already are, instead of in the
//! trainer, which never sees them.
//!
//! The rules, in optax's words (`optax.clip_by_global_norm`, `optax.clip`):
//!
//! | setting | math, per gradient `g` of the step |
//! |---|---|
//! | norm | `n = sqrt(0 + sum_p sum(g_p^2))` over the parameters in order (`optax.tree.norm`) |
//! | `gradient_clip_algorithm = "norm"` | `g' = n < c ? g : (g / n) * c` (`clip_by_global_norm`: no epsilon, a select) |
//! | `gradient_clip_algorithm = "value"` | `g' = min(max(g, -c), c)` (`jnp.clip`) |
//!
//! PyTorch's `clip_grad_norm_` (what Lightning calls) multiplies by
//! `min(1, c / (n + 1e-6))` instead; the two differ by about `1e-6 / n`
//! relatively when clipping, and not at all otherwise.

use super::entry::{ConstValue, Section, SettingEntry};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, Op, Type, ValueId};

/// How gradients are clipped (Lightning's `gradient_clip_algorithm`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClipAlgorithm {
    /// Scale all gradients together so that their global 2-norm is at most the value.
    Norm,
    /// Clamp every element to `[-value, value]`.
    Value,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradClip {
    /// Lightning's `gradient_clip_val`: positive.
    pub val: f64,
    pub algorithm: ClipAlgorithm,
}

/// The gradient settings of a `trainer` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GradSettings {
    /// `None`: no clipping (`gradient_clip_val` unset or 0, as in Lightning).
    pub clip: Option<GradClip>,
    /// Log the global norm of the gradient (before clipping) as `grad_norm`.
    pub log_grad_norm: bool,
    /// Lightning's `accumulate_grad_batches`: micro-batches per optimizer step (>= 1).
    pub accumulate: usize,
    /// Log the optimizer's learning rate at each optimizer step as `lr`
    /// (its schedule evaluated at the step): Lightning's `LearningRateMonitor`.
    pub log_lr: bool,
    /// `stop_on_nonfinite` (default on): the step also returns, last and
    /// unlogged, the largest gradient element's magnitude (`GRAD_CHECK`):
    /// NaN or infinite exactly when some element is (a maximum, so finite
    /// gradients cannot overflow it as a sum of them or of their squares
    /// could), and the trainer stops at that step, before its parameters
    /// reach a checkpoint.
    pub check_finite: bool,
}

impl Default for GradSettings {
    fn default() -> Self {
        GradSettings { clip: None, log_grad_norm: false, accumulate: 1, log_lr: false, check_finite: true }
    }
}

/// The `trainer` keys read here.
pub const GRAD_KEYS: &[&str] =
    &["gradient_clip_val", "gradient_clip_algorithm", "accumulate_grad_batches", "log_grad_norm", "log_lr"];

/// The name of the logged global gradient norm.
pub const GRAD_NORM_LOG: &str = "grad_norm";

/// What the trainer calls the finiteness check's value in its message.
pub const GRAD_CHECK: &str = "the gradients' largest |g|";

/// The name of the logged learning rate (`log_lr = true`).
pub const LR_LOG: &str = "lr";

/// The values the trainer settings add to `training_step`'s logs, in the
/// step's order: (setting on, logged name, setting). `lr_logs` are the
/// learning rates' names (`lr`, and `lr/pgK` with parameter groups).
pub fn added_logs<'a>(settings: &GradSettings, lr_logs: &[&'a str]) -> Vec<(bool, &'a str, &'static str)> {
    let mut logs = vec![(settings.log_grad_norm, GRAD_NORM_LOG, "log_grad_norm")];
    logs.extend(lr_logs.iter().map(|name| (settings.log_lr, *name, "log_lr")));
    logs
}

/// The error for a `training_step` that logs `name`, which the trainer
/// setting `setting` logs too (`jlc check` and `jlc run` alike), labelled
/// at `span` with `label`.
pub fn log_clash(name: &str, setting: &str, span: crate::span::Span, label: &str) -> Diagnostic {
    Diagnostic::error(Code::BadSection, format!("`training_step` logs `{name}`, which `{setting} = true` logs too"))
        .with_label(span, label)
        .with_help(format!("rename the logged value or turn `{setting}` off"))
}

/// Reads the gradient settings of a `trainer` section (other keys are
/// ignored here: the trainer's configuration reports unknown ones).
pub fn grad_settings(trainer: Option<&Section>) -> Result<GradSettings, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut res = GradSettings::default();
    let mut clip_val = 0.0;
    let mut algorithm = ClipAlgorithm::Norm;
    let error = |e: &SettingEntry, expected: &str| e.value_error(expected);
    for e in trainer.map(|s| s.entries.as_slice()).unwrap_or_default() {
        match (e.key.as_str(), &e.value) {
            ("gradient_clip_val", ConstValue::Float(x)) if x.is_finite() && *x >= 0.0 => clip_val = *x,
            ("gradient_clip_val", ConstValue::Int(i)) if *i >= 0 => clip_val = *i as f64,
            ("gradient_clip_val", _) => diags.push(error(e, "a non-negative number (0: no clipping)")),
            ("gradient_clip_algorithm", ConstValue::Str(s)) if s == "norm" => algorithm = ClipAlgorithm::Norm,
            ("gradient_clip_algorithm", ConstValue::Str(s)) if s == "value" => algorithm = ClipAlgorithm::Value,
            ("gradient_clip_algorithm", _) => diags.push(error(e, "\"norm\" or \"value\"")),
            ("accumulate_grad_batches", ConstValue::Int(i)) if *i >= 1 => res.accumulate = *i as usize,
            ("accumulate_grad_batches", _) => diags.push(error(e, "a positive integer")),
            ("log_grad_norm", ConstValue::Bool(b)) => res.log_grad_norm = *b,
            ("log_grad_norm", _) => diags.push(error(e, "`true` or `false`")),
            ("log_lr", ConstValue::Bool(b)) => res.log_lr = *b,
            ("log_lr", _) => diags.push(error(e, "`true` or `false`")),
            // The trainer's configuration reads (and checks) this key too.
            ("stop_on_nonfinite", ConstValue::Bool(b)) => res.check_finite = *b,
            _ => {}
        }
    }
    if clip_val > 0.0 {
        res.clip = Some(GradClip { val: clip_val, algorithm });
    }
    if diags.is_empty() {
        Ok(res)
    } else {
        Err(diags)
    }
}

/// The gradients as the optimizer gets them, and the step outputs that
/// describe them.
pub struct Transformed {
    pub grads: Vec<ValueId>,
    /// With `log_grad_norm`: the global norm before clipping, logged.
    pub logged_norm: Option<ValueId>,
    /// With `check_finite`: the largest |g| over every gradient element
    /// (before clipping), the step's last output.
    pub check: Option<ValueId>,
}

/// Clips `grads` as `settings` say, and computes their global norm before
/// clipping where a setting needs it.
pub fn transform(b: &mut Builder, grads: &[ValueId], settings: &GradSettings) -> Transformed {
    let by_norm = settings.clip.is_some_and(|c| c.algorithm == ClipAlgorithm::Norm);
    let norm = (settings.log_grad_norm || by_norm).then(|| global_norm(b, grads));
    let check = settings.check_finite.then(|| abs_max(b, grads));
    let clipped = match settings.clip {
        Some(clip) => clip_gradients(b, grads, clip, norm),
        None => grads.to_vec(),
    };
    Transformed { grads: clipped, logged_norm: norm.filter(|_| settings.log_grad_norm), check }
}

/// `max_p max(|g_p|)` in the first gradient's dtype: non-finite exactly
/// when an element is (a maximum propagates NaN, and unlike a sum it cannot
/// overflow on finite elements). A maximum has no summation order, so the
/// CPU backend may split it over threads and still give the interpreter's
/// bits (`codegen/cpu/emit/parallel.rs`).
fn abs_max(b: &mut Builder, grads: &[ValueId]) -> ValueId {
    let dtype = b.ty(grads[0]).dtype;
    let maxima: Vec<ValueId> = grads
        .iter()
        .map(|&g| {
            let a = b.unary(Op::Abs, g);
            let rank = b.ty(a).shape.rank();
            let m = b.reduce_max(a, (0..rank).collect());
            b.convert(m, dtype)
        })
        .collect();
    maxima.into_iter().reduce(|t, m| b.binary(Op::Max, t, m)).expect("a model has at least one parameter")
}

/// The global 2-norm of `grads` in their dtype, summed as `optax.tree.norm`
/// does: each gradient's sum of squares, added in parameter order, then the
/// square root, in the first gradient's dtype.
pub fn global_norm(b: &mut Builder, grads: &[ValueId]) -> ValueId {
    let dtype = b.ty(grads[0]).dtype;
    let mut total: Option<ValueId> = None;
    for &g in grads {
        let sq = b.mul(g, g);
        let rank = b.ty(sq).shape.rank();
        let s = b.reduce_sum(sq, (0..rank).collect());
        let s = b.convert(s, dtype);
        total = Some(match total {
            None => s,
            Some(t) => b.add(t, s),
        });
    }
    let total = total.expect("a model has at least one parameter");
    b.unary(Op::Sqrt, total)
}

/// The gradients after `clip`; `norm` is their global norm (needed only by
/// `ClipAlgorithm::Norm`).
pub fn clip_gradients(b: &mut Builder, grads: &[ValueId], clip: GradClip, norm: Option<ValueId>) -> Vec<ValueId> {
    match clip.algorithm {
        ClipAlgorithm::Norm => {
            let norm = norm.expect("clipping by norm needs the norm");
            let c = b.constant(clip.val, b.ty(norm).dtype);
            let trigger = b.binary(Op::Lt, norm, c);
            grads
                .iter()
                .map(|&g| {
                    let Type { dtype, shape } = b.ty(g).clone();
                    let (norm, c) = (b.convert(norm, dtype), b.convert(c, dtype));
                    let n = b.broadcast_to(norm, &shape);
                    let cs = b.broadcast_to(c, &shape);
                    let t = b.broadcast_to(trigger, &shape);
                    let scaled = b.div(g, n);
                    let scaled = b.mul(scaled, cs);
                    b.select(t, g, scaled)
                })
                .collect()
        }
        ClipAlgorithm::Value => grads
            .iter()
            .map(|&g| {
                let ty = b.ty(g).clone();
                let hi = b.full(clip.val, &ty);
                let lo = b.full(-clip.val, &ty);
                let above = b.binary(Op::Max, g, lo);
                b.binary(Op::Min, above, hi)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
