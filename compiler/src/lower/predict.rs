//! The prediction program: a model's `fn predict_step(self, x)` lowered on
//! (params, x) with one output per returned tensor (a tensor or a tuple of
//! them), the predictions for the batch (`jlc predict`).
//!
//! Consumes a checked program, its `trainer` section and the batch type of
//! `x`; produces a `Func` whose inputs are the parameters then `x` and whose
//! only output is the returned tensor (batch dim first). It is compiled
//! separately from the training step and has no parameter outputs, so
//! predicting cannot change the parameters. `log(...)` in `predict_step` is
//! allowed (the method is a step) but its values are not outputs.

use super::elab::{CallArg, Elaborator};
use super::entry::{dedup, Section};
use super::program::Program;
use super::step_inputs::{batch_params, key_type, trained_model};
use super::value::{ParamSpec, TVal, Val};
use crate::check::Ty;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, Func, Type, ValueId};

/// The prediction program and the parameters it takes (in input order, the
/// same order as `TrainPrograms::params`).
#[derive(Clone, Debug)]
pub struct PredictProgram {
    pub params: Vec<ParamSpec>,
    /// Inputs: params, x (then the key, with `takes_key`). Outputs: the
    /// returned tensor, or each tensor of the returned tuple, batch dim first.
    pub func: Func,
    /// `predict_step(self, x, key)`: the trainer passes a random key.
    pub takes_key: bool,
}

/// Lowers `predict_step` for batches of type `x_ty`; `Ok(None)` when the
/// trained model has no `predict_step`.
pub fn lower_predict(
    prog: &Program,
    trainer: Option<&Section>,
    x_ty: &Type,
) -> Result<Option<PredictProgram>, Vec<Diagnostic>> {
    let m = trained_model(prog, trainer)?;
    let decl = prog.model_decl(m.module, m.item);
    let Some(method) = decl.methods.iter().position(|f| f.name.name == "predict_step") else { return Ok(None) };
    let mdecl = &decl.methods[method];
    if let Some(d) = super::model_checks::bad_signature(mdecl) {
        return Err(vec![d]);
    }
    let (batch, takes_key) = batch_params(mdecl);
    // The parameters, discovered by a dry instantiation in check mode (as for training).
    let params = super::model_checks::param_specs(prog, m.module, m.item, &m.cfg_args)?;

    let mut types: Vec<Type> = params.iter().map(|p| p.ty.clone()).collect();
    types.push(x_ty.clone());
    if takes_key {
        types.push(key_type());
    }
    let mut el = Elaborator::new(prog, Some(Builder::new("predict_step", &types)));
    for (i, p) in params.iter().enumerate() {
        el.param_values.insert(p.path.clone(), ValueId(i as u32));
    }
    let Val::Model(inst) = el.instantiate(m.module, m.item, m.cfg_args, "", decl.name.span) else {
        return Err(dedup(el.diags));
    };
    let n = params.len();
    let x = TVal { ty: Ty::known(x_ty), id: Some(ValueId(n as u32)) };
    let mut args = vec![CallArg { name: None, name_span: None, value: Val::Tensor(x), span: batch[0].name.span }];
    if takes_key {
        let key = TVal { ty: Ty::known(&key_type()), id: Some(ValueId(n as u32 + 1)) };
        let span = mdecl.params.last().expect("has key").name.span;
        args.push(CallArg { name: None, name_span: None, value: Val::Tensor(key), span });
    }
    el.logs = Some(Vec::new());
    let out = el.call_method(inst, method, args, mdecl.span);
    if el.diags.iter().any(Diagnostic::is_error) {
        let mut diags = dedup(el.diags);
        for d in &mut diags {
            d.notes.push(format!("while compiling `predict_step` for batches x: {x_ty}"));
        }
        return Err(diags);
    }
    let batch = x_ty.shape.dims().first().copied();
    // One tensor, or a tuple of them (Lightning returns whatever
    // predict_step returns): each with the batch first.
    let batched = |v: &Val| match v {
        Val::Tensor(t) if t.ty.to_ir().and_then(|ty| ty.shape.dims().first().copied()) == batch => t.id,
        _ => None,
    };
    let ids: Option<Vec<ValueId>> = match &out {
        Val::Tuple(items) if !items.is_empty() => items.iter().map(batched).collect(),
        other => batched(other).map(|id| vec![id]),
    };
    let Some(ids) = ids else {
        return Err(vec![Diagnostic::error(
            Code::TypeMismatch,
            format!(
                "`predict_step` must return a tensor, or a tuple of tensors, whose first dimension is the batch ({}), not {}",
                batch.unwrap_or(0),
                out.describe()
            ),
        )
        .with_label(mdecl.body.span, "returned here")
        .with_note(format!("while compiling `predict_step` for batches x: {x_ty}"))]);
    };
    let func = crate::ir::dce::dce(&el.builder.take().expect("builder").finish(ids));
    crate::ir::verify::assert_valid(&func, "lower (predict step)");
    Ok(Some(PredictProgram { params, func, takes_key }))
}
