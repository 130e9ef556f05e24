//! What `jlc run` requires of the trained model, checked without data: it
//! exists (`model = Name(...)` or the model with a `training_step`), has
//! parameters, a `training_step` and a `configure_optimizers` that returns
//! an optimizer whose update has the optimizer convention's signature and,
//! applied to every parameter, returns `(p', states'...)` of the
//! parameter's type (`entry::check_optimizer_update`), and
//! every step method and `on_train_end` takes what the trainer passes.
//!
//! `lower_training` and the step lowerings use the same functions, so
//! `jlc check` and `jlc run` accept and reject the same files with the same
//! messages; `check_trained_model` is what `jlc check` adds for files with
//! a `trainer` section.

use super::artifacts::HOOK;
use super::elab::{CallArg, Elaborator};
use super::entry::{dedup, Section};
use super::param_groups::Plan;
use super::program::Program;
use super::step_inputs::{batch_params, trained_model, KEY_PARAM};
use super::value::{ParamSpec, Val};
use crate::diagnostic::{Code, Diagnostic};
use crate::syntax::ast;
use crate::syntax::visit::{walk_expr, Visit};

/// The trained model's parameters and optimizers, from a dry instantiation.
pub(super) struct Probed {
    /// With `ParamKind::Frozen` for the parameters
    /// `param_groups` freezes.
    pub params: Vec<ParamSpec>,
    /// Which optimizer updates each parameter.
    pub plan: Plan,
    /// The optimizers for the run's summary (`param_groups::plan`'s).
    pub description: String,
}

/// The model's parameters, from a dry instantiation in check mode (what the
/// step, predict and hook programs take as their first inputs).
pub(super) fn param_specs(
    prog: &Program,
    module: usize,
    item: usize,
    cfg_args: &[CallArg],
) -> Result<Vec<ParamSpec>, Vec<Diagnostic>> {
    let decl = prog.model_decl(module, item);
    let mut probe = Elaborator::new(prog, None);
    probe.instantiate(module, item, cfg_args.to_vec(), "", decl.name.span);
    if probe.diags.iter().any(Diagnostic::is_error) {
        return Err(dedup(probe.diags));
    }
    Ok(probe.param_specs)
}

/// Instantiates the model (check mode) and calls its `configure_optimizers`.
pub(super) fn probe(
    prog: &Program,
    module: usize,
    item: usize,
    cfg_args: &[CallArg],
) -> Result<Probed, Vec<Diagnostic>> {
    let decl = prog.model_decl(module, item);
    let mut probe = Elaborator::new(prog, None);
    let inst = probe.instantiate(module, item, cfg_args.to_vec(), "", decl.name.span);
    if probe.diags.iter().any(Diagnostic::is_error) {
        return Err(dedup(probe.diags));
    }
    let Val::Model(inst) = inst else { return Err(dedup(probe.diags)) };
    let params = probe.param_specs.clone();
    if !params.iter().any(|p| p.trainable()) {
        let only_buffers = if params.is_empty() { "" } else { " (only buffers, which are not trained)" };
        return Err(vec![Diagnostic::error(
            Code::BadSection,
            format!("model `{}` has no trainable parameters{only_buffers}", decl.name.name),
        )
        .with_label(decl.name.span, "defined here")
        .with_help("declare parameters as fields, e.g. `w: f32[4, 1]`, or submodules, e.g. `l: Linear(4, 1)`")]);
    }
    let Some(opt_idx) = decl.methods.iter().position(|f| f.name.name == "configure_optimizers") else {
        return Err(vec![Diagnostic::error(
            Code::BadSection,
            format!("model `{}` has no `configure_optimizers` method", decl.name.name),
        )
        .with_label(decl.name.span, "defined here")
        .with_help("add e.g. `fn configure_optimizers(self) = adam(lr = 1e-3)`")]);
    };
    let returned = probe.call_method(inst.clone(), opt_idx, vec![], decl.methods[opt_idx].span);
    // A call already reported (`adam(learning_rate = ...)`): nothing more to say.
    if probe.diags.iter().any(Diagnostic::is_error) || matches!(returned, Val::Poison) && !probe.diags.is_empty() {
        return Err(dedup(probe.diags));
    }
    let mut params = params;
    let span = decl.methods[opt_idx].body.span;
    let (plan, description) = super::param_groups::plan(prog, returned, &mut params, &inst, span)?;
    Ok(Probed { params, plan, description })
}

pub(super) fn no_training_step(decl: &ast::ModelDecl) -> Diagnostic {
    Diagnostic::error(Code::BadSection, format!("model `{}` has no `training_step` method", decl.name.name))
        .with_label(decl.name.span, "defined here")
        .with_help("add `fn training_step(self, x, y) -> f32 { ... }` returning the batch's loss")
}

/// The error for a step method or hook whose parameters are not what the
/// trainer passes; `None` for other methods and right signatures.
pub(super) fn bad_signature(method: &ast::FnDecl) -> Option<Diagnostic> {
    let name = method.name.name.as_str();
    let (allowed, usage): (&[usize], &str) = match name {
        "training_step" | "validation_step" | "test_step" => (
            &[2, 1],
            "(self, x, y), or (self, x) when it uses no targets, and optionally a random key last: (self, x, y, key)",
        ),
        "predict_step" => (&[1], "(self, x) or (self, x, key): the batch's inputs, without labels"),
        HOOK => (
            &[0, 2, 1],
            "(self), (self, x, y) or (self, x), and optionally `key` last: x and y are the whole training split",
        ),
        _ => return None,
    };
    let (batch, _) = batch_params(method);
    let d = Diagnostic::error(Code::BadSection, format!("`{name}` must take {usage}"));
    // Names of random keys elsewhere (JAX's `rng`, `prng_key`, ...): whole
    // names, so `keypoints` or `seeds_mask` are targets as written.
    let keyish = |name: &str| {
        ["rng", "rngs", "seed", "prng", "prng_key", "rng_key", "keys", "subkey", "random_key"]
            .contains(&name.to_lowercase().as_str())
    };
    // `key` anywhere but last would take the batch's inputs or targets.
    if let Some(key) = batch.iter().find(|p| p.name.name == KEY_PARAM) {
        return Some(
            d.with_label(key.name.span, "`key` before the batch")
                .with_help("the random key comes last: `(self, x, y, key)`"),
        );
    }
    // `(self, x, rng)` reads as inputs and targets; a key-like name there is
    // a random key under another name, which would receive the targets.
    if let [_, y] = batch.as_slice() {
        if name != "predict_step" && keyish(&y.name.name) {
            let y = y.name.name.as_str();
            return Some(d.with_label(batch[1].name.span, "this receives the targets").with_help(format!(
                "the trainer passes its random key to a parameter named `key`: rename `{y}` to `key`"
            )));
        }
    }
    if allowed.contains(&batch.len()) {
        return None;
    }
    // One parameter too many, last: labels where there are none, or a
    // random key under another name (`rng`), which must be named `key`.
    if let Some(&extra) = batch.last().filter(|_| allowed.contains(&(batch.len() - 1))) {
        let name = extra.name.name.as_str();
        let lower = name.to_lowercase();
        let help = if ["key", "rng", "seed", "rand", "prng", "gen"].iter().any(|k| lower.contains(k)) {
            format!("the trainer passes its random key to a parameter named `key`: rename `{name}` to `key`")
        } else {
            format!("remove `{name}` (a parameter for the trainer's random key must be named `key`)")
        };
        return Some(d.with_label(extra.name.span, "an extra parameter").with_help(help));
    }
    Some(d.with_label(method.name.span, "defined here"))
}

/// `jlc check`'s checks of the trained model of a file with a `trainer`
/// section (run beside the other checks, once the file parsed and its
/// imports resolved; `check_loaded` drops what they reported at the same place).
pub fn check_trained_model(prog: &Program, trainer: Option<&Section>) -> Vec<Diagnostic> {
    let m = match trained_model(prog, trainer) {
        Ok(m) => m,
        Err(d) => return d,
    };
    let decl = prog.model_decl(m.module, m.item);
    let log_lr = super::gradients::grad_settings(trainer).is_ok_and(|s| s.log_lr);
    // The learning rates' log names (`lr`, `lr/pgK` with parameter groups).
    let mut lr_logs = vec![super::gradients::LR_LOG.to_string()];
    let mut diags = match probe(prog, m.module, m.item, &m.cfg_args) {
        Ok(probed) => {
            lr_logs = probed.plan.optimizers.iter().map(|o| o.lr_log.clone()).collect();
            super::entry::check_optimizer_update(prog, &probed, log_lr)
        }
        Err(d) => d,
    };
    if !decl.methods.iter().any(|f| f.name.name == "training_step") {
        diags.push(no_training_step(decl));
    }
    diags.extend(decl.methods.iter().filter_map(bad_signature));
    // A value the trainer settings log too (`grad_norm`, `lr`): `jlc run`
    // finds it when it lowers the step, after loading the data; a `log`
    // with that literal name written in `training_step` is found here.
    if let (Ok(settings), Some(step)) =
        (super::gradients::grad_settings(trainer), decl.methods.iter().find(|f| f.name.name == "training_step"))
    {
        let logged = literal_logs(&step.body);
        let lr_logs: Vec<&str> = lr_logs.iter().map(String::as_str).collect();
        for (on, log, setting) in super::gradients::added_logs(&settings, &lr_logs) {
            if let Some((name, span)) = logged.iter().find(|(n, _)| on && n == log) {
                diags.push(super::gradients::log_clash(name, setting, *span, "logged here"));
            }
        }
    }
    diags
}

/// The `log("name", ...)` calls with a literal name written in `body`
/// (not those in functions it calls), with the name's span.
fn literal_logs(body: &ast::Expr) -> Vec<(String, crate::span::Span)> {
    struct Logs(Vec<(String, crate::span::Span)>);
    impl Visit for Logs {
        fn expr(&mut self, e: &ast::Expr) {
            use ast::ExprKind as K;
            if let K::Call { callee, args } = &e.kind {
                if let (K::Name(f), Some(first)) = (&callee.kind, args.first()) {
                    if let (true, K::Str(name)) = (f == "log", &first.value.kind) {
                        self.0.push((name.clone(), first.value.span));
                    }
                }
            }
            walk_expr(self, e);
        }
    }
    let mut logs = Logs(Vec::new());
    logs.expr(body);
    logs.0
}
