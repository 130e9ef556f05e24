//! The types a model's step methods declare for their batch inputs
//! (`fn training_step(self, x: f32[B, 784], y: i32[B])`), resolved with the
//! trained model's config values.
//!
//! Consumes a checked program and its `trainer` section; produces each
//! input's declared type (dims known, or symbolic like `B`) and its span.
//! The trainer compares them with the data's types before compiling: a
//! mismatch then names both the data file's type and the declaration,
//! instead of surfacing as a type error inside the step, and a declared
//! shape with as many elements as the data's examples (`f32[B, 1, 28, 28]`
//! for 784-pixel images) tells the trainer how to view the examples.

use super::elab::{CallArg, Elaborator, Env};
use super::entry::{const_to_val, dedup, find_model, Section};
use super::program::Program;
use super::value::{ModelInst, Val};
use crate::check::Ty;
use crate::diagnostic::Diagnostic;
use crate::span::Span;
use crate::syntax::ast;
use std::rc::Rc;

/// The name of a step method's optional last parameter that receives a
/// fresh random key (`i32[2]`) from the trainer at every call:
/// `fn training_step(self, x, y, key)`.
pub const KEY_PARAM: &str = "key";

/// A step method's parameters after `self`, without a trailing `key`, and
/// whether it has that `key`.
pub(super) fn batch_params(method: &ast::FnDecl) -> (Vec<&ast::Param>, bool) {
    let mut params: Vec<&ast::Param> = method.params.iter().filter(|p| p.name.name != "self").collect();
    let takes_key = params.last().is_some_and(|p| p.name.name == KEY_PARAM);
    if takes_key {
        params.pop();
    }
    (params, takes_key)
}

/// The type of the trainer-supplied random key.
pub(super) fn key_type() -> crate::ir::Type {
    crate::ir::Type { dtype: crate::ir::DType::I32, shape: crate::ir::Shape(vec![2]) }
}

/// One input of a step method.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredInput {
    pub name: String,
    /// `None`: the parameter has no type annotation.
    pub ty: Option<Ty>,
    /// The annotation, or the parameter's name when it has none.
    pub span: Span,
}

/// The trained model (per the `trainer` section): its declaration's place
/// and the config arguments it is instantiated with.
pub(super) struct TrainedModel {
    pub module: usize,
    pub item: usize,
    pub cfg_args: Vec<CallArg>,
}

/// Finds the trained model (`model = Name(args)` or the last model with a
/// `training_step`), as `lower_training` does.
pub(super) fn trained_model(prog: &Program, trainer: Option<&Section>) -> Result<TrainedModel, Vec<Diagnostic>> {
    let model_setting = trainer.and_then(|t| t.entries.iter().find(|e| e.key == "model"));
    let (module, item, cfg) = find_model(prog, model_setting).map_err(|d| vec![d])?;
    let decl = prog.model_decl(module, item);
    let cfg_args = cfg
        .iter()
        .map(|(n, v)| CallArg {
            name: n.clone(),
            name_span: None,
            value: const_to_val(v),
            span: model_setting.map_or(decl.span, |e| e.value_span),
        })
        .collect();
    Ok(TrainedModel { module, item, cfg_args })
}

/// The declared batch inputs (after `self`, without a trailing `key`) of
/// the trained model's `method`; `Ok(None)` when the model has no such method.
pub fn declared_step_inputs(
    prog: &Program,
    trainer: Option<&Section>,
    method: &str,
) -> Result<Option<Vec<DeclaredInput>>, Vec<Diagnostic>> {
    let m = trained_model(prog, trainer)?;
    let decl = prog.model_decl(m.module, m.item);
    let Some(mdecl) = decl.methods.iter().find(|f| f.name.name == method) else { return Ok(None) };
    // Check mode: no IR is built, the instance only gives the config values.
    let mut el = Elaborator::new(prog, None);
    let inst: Rc<ModelInst> = match el.instantiate(m.module, m.item, m.cfg_args, "", decl.name.span) {
        Val::Model(inst) if !el.diags.iter().any(Diagnostic::is_error) => inst,
        _ => return Err(dedup(el.diags)),
    };
    let mut env = Env::new(m.module);
    for (k, v) in &inst.config {
        env.bind(k, v.clone());
    }
    let mut inputs = Vec::new();
    for p in batch_params(mdecl).0 {
        let ty = match &p.ty {
            Some(t) => el.resolve_type(&env, t, true),
            None => None,
        };
        inputs.push(DeclaredInput {
            name: p.name.name.clone(),
            ty,
            span: p.ty.as_ref().map_or(p.name.span, |t| t.span),
        });
    }
    if el.diags.iter().any(Diagnostic::is_error) {
        return Err(dedup(el.diags));
    }
    Ok(Some(inputs))
}

/// The declared batch inputs of the trained model, each with the step that
/// declares it: `training_step`'s `x` and `y`; when it takes no targets,
/// `y` as the first evaluation step that declares one declares it (the
/// trainer converts the data's targets to that).
pub fn declared_batch_inputs(
    prog: &Program,
    trainer: Option<&Section>,
) -> Result<Vec<(&'static str, DeclaredInput)>, Vec<Diagnostic>> {
    let mut inputs: Vec<(&str, DeclaredInput)> = declared_step_inputs(prog, trainer, "training_step")?
        .unwrap_or_default()
        .into_iter()
        .map(|i| ("training_step", i))
        .collect();
    if inputs.len() == 1 {
        for step in ["validation_step", "test_step"] {
            if let Some(y) =
                declared_step_inputs(prog, trainer, step)?.and_then(|mut i| (i.len() == 2).then(|| i.remove(1)))
            {
                inputs.push((step, y));
                break;
            }
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests;
