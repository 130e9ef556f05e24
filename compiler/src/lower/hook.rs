//! `fn on_train_end(self[, x, y][, key])`: the model's end-of-training hook,
//! lowered to a program the trainer runs once after `fit` (Lightning's
//! `on_train_end`, where the seed project draws its pictures).
//!
//! Consumes the checked program and the training split's types; produces a
//! `Func` over the parameters (then the whole training split as one batch
//! when the hook takes `x, y`, then a key when it takes `key`) whose
//! outputs are the values it logs and the tensors of the pictures it saves
//! (`artifacts.rs`). It has no parameter outputs, so it cannot change them.

use super::artifacts::{Artifact, ArtifactKind, HOOK};
use super::elab::{CallArg, Elaborator};
use super::entry::dedup;
use super::step_inputs::{batch_params, key_type, trained_model};
use super::value::{ParamSpec, TVal, Val};
use super::Section;
use crate::check::Ty;
use crate::diagnostic::Diagnostic;
use crate::ir::{Builder, Func, Type, ValueId};

use super::program::Program;

/// A picture the hook saves: where, what kind, and the roles of its
/// tensors (which are consecutive outputs of `HookProgram::func`).
#[derive(Clone, Debug, PartialEq)]
pub struct ArtifactSpec {
    pub path: String,
    pub kind: ArtifactKind,
    pub roles: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct HookProgram {
    pub params: Vec<ParamSpec>,
    /// Inputs: params, then x, y (with `takes_data`), then the key (with
    /// `takes_key`). Outputs: the logged values, then every artifact's
    /// tensors in order.
    pub func: Func,
    pub takes_data: bool,
    pub takes_key: bool,
    pub logs: Vec<String>,
    pub artifacts: Vec<ArtifactSpec>,
}

/// Lowers the trained model's `on_train_end` for the training split of
/// types `x_ty`, `y_ty` (all its examples); `Ok(None)` without the hook.
pub fn lower_on_train_end(
    prog: &Program,
    trainer: Option<&Section>,
    x_ty: &Type,
    y_ty: &Type,
) -> Result<Option<HookProgram>, Vec<Diagnostic>> {
    let m = trained_model(prog, trainer)?;
    let decl = prog.model_decl(m.module, m.item);
    let Some(method) = decl.methods.iter().position(|f| f.name.name == HOOK) else { return Ok(None) };
    let mdecl = &decl.methods[method];
    if let Some(d) = super::model_checks::bad_signature(mdecl) {
        return Err(vec![d]);
    }
    let (batch, takes_key) = batch_params(mdecl);
    // `(self, x)` takes the split too, its targets unused (as a step's).
    let takes_data = !batch.is_empty();
    // The parameters, discovered by a dry instantiation in check mode (as for training).
    let params = super::model_checks::param_specs(prog, m.module, m.item, &m.cfg_args)?;
    let n = params.len();

    let mut types: Vec<Type> = params.iter().map(|p| p.ty.clone()).collect();
    if takes_data {
        types.push(x_ty.clone());
        types.push(y_ty.clone());
    }
    if takes_key {
        types.push(key_type());
    }
    let mut el = Elaborator::new(prog, Some(Builder::new(HOOK, &types)));
    for (i, p) in params.iter().enumerate() {
        el.param_values.insert(p.path.clone(), ValueId(i as u32));
    }
    let Val::Model(inst) = el.instantiate(m.module, m.item, m.cfg_args, "", decl.name.span) else {
        return Err(dedup(el.diags));
    };
    let mut args = Vec::new();
    for (k, p) in batch.iter().enumerate() {
        let ty = if k == 0 { x_ty } else { y_ty };
        let value = Val::Tensor(TVal { ty: Ty::known(ty), id: Some(ValueId((n + k) as u32)) });
        args.push(CallArg { name: None, name_span: None, value, span: p.name.span });
    }
    if takes_key {
        let key = TVal { ty: Ty::known(&key_type()), id: Some(ValueId((n + 2 * usize::from(takes_data)) as u32)) };
        let span = mdecl.params.last().expect("has key").name.span;
        args.push(CallArg { name: None, name_span: None, value: Val::Tensor(key), span });
    }
    el.logs = Some(Vec::new());
    el.artifacts = Some(Vec::new());
    el.call_method(inst, method, args, mdecl.span);
    if el.diags.iter().any(Diagnostic::is_error) {
        let mut diags = dedup(el.diags);
        if takes_data {
            for d in &mut diags {
                let y = if batch.len() > 1 { format!(", y: {y_ty}") } else { String::new() };
                d.notes.push(format!("while compiling `{HOOK}` for the training split x: {x_ty}{y}"));
            }
        }
        return Err(diags);
    }
    let logs = el.logs.take().unwrap_or_default();
    let artifacts: Vec<Artifact> = el.artifacts.take().unwrap_or_default();
    let mut outputs: Vec<ValueId> = logs.iter().map(|l| l.value.id.expect("built")).collect();
    let mut specs = Vec::new();
    for a in artifacts {
        outputs.extend(a.values.iter().map(|(_, t)| t.id.expect("built")));
        specs.push(ArtifactSpec { path: a.path, kind: a.kind, roles: a.values.into_iter().map(|(r, _)| r).collect() });
    }
    let func = crate::ir::dce::dce(&el.builder.take().expect("builder").finish(outputs));
    crate::ir::verify::assert_valid(&func, "lower (on_train_end)");
    Ok(Some(HookProgram {
        params,
        func,
        takes_data,
        takes_key,
        logs: logs.into_iter().map(|l| l.name).collect(),
        artifacts: specs,
    }))
}
