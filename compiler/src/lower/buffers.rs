//! Buffers: model state that is not trained (a BatchNorm's running
//! statistics). A field declared `name: f32[C] = buffer(init)` is a
//! parameter input of every program like a trainable one (saved in
//! checkpoints, restored on resume, resident on the device), but the
//! optimizer never updates it and no gradient is taken with respect to it.
//! A training step changes it with `assign(self, name = value, ...)`: the
//! new values become outputs of the step (`entry.rs`), in place of the
//! optimizer's, so the state is threaded through steps purely functionally.
//! Reads of `self.name` in the same step still see the value the step
//! started with (as in Flax, unlike PyTorch's in-place update).

use super::elab::{Assigned, CallArg, Elaborator};
use super::value::{TVal, Val};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

/// `assign(self, name = value, ...)`: records new values for `self`'s
/// buffers, checked against their types.
pub fn assign(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    const USAGE: &str = "assign(self, name = value, ...) gives buffers of `self` new values";
    let model = match args.first() {
        Some(CallArg { value: Val::Model(m), name: None, .. }) => m.clone(),
        Some(CallArg { value: Val::Poison, .. }) => return Val::Poison,
        Some(a) => {
            let d =
                Diagnostic::error(Code::BadCall, USAGE).with_label(a.span, format!("this is {}", a.value.describe()));
            return el.error(d.with_help("the first argument is the model that owns the buffers: `assign(self, ...)`"));
        }
        None => return el.error(Diagnostic::error(Code::BadCall, USAGE).with_label(span, "in this call")),
    };
    if let Some(&call) = el.transformations.last() {
        let d = Diagnostic::error(
            Code::NotAllowed,
            "buffers cannot be assigned inside a transformation (grad, vmap, scan, jvp, vjp, jacrev, checkpoint, custom_vjp)",
        )
        .with_label(span, "assigned here")
        .with_label(call, "inside this transformation")
        .with_help("compute the new value inside, return it, and `assign` it in the step itself");
        return el.error(d);
    }
    if el.assigned.is_none() {
        let d =
            Diagnostic::error(Code::NotAllowed, "buffers change only while training: `assign` runs in a training step")
                .with_label(span, "outside training")
                .with_help(
                    "guard it with `if self.training { ... }`, which is false in validation, test and prediction",
                );
        return el.error(d);
    }
    for a in &args[1..] {
        let Some(name) = a.name.as_deref() else {
            return el.error(
                Diagnostic::error(Code::BadCall, USAGE).with_label(a.span, "name the buffer: `running_mean = value`"),
            );
        };
        if !model.buffers.contains(name) {
            let what = if model.params.contains_key(name) {
                format!("`{name}` of `{}` is a trained parameter: the optimizer updates it", model.name)
            } else {
                format!("model `{}` has no buffer `{name}`", model.name)
            };
            let mut d =
                Diagnostic::error(Code::BadCall, what).with_label(a.name_span.unwrap_or(a.span), "not a buffer");
            let buffers: Vec<&str> = model.buffers.iter().map(String::as_str).collect();
            d = match super::suggest::closest(name, buffers.iter().copied()) {
                Some(s) if !model.params.contains_key(name) => d.with_help(format!("did you mean `{s}`?")),
                _ if buffers.is_empty() => {
                    d.with_help("declare a buffer with `name: f32[...] = buffer(zeros())` in the model")
                }
                _ => d.with_help(format!("its buffers: {}", buffers.join(", "))),
            };
            return el.error(d);
        }
        let ty = model.params[name].ty.clone();
        let Some(value) = el.as_tensor(&a.value, ty.dtype, a.span) else { return Val::Poison };
        if value.ty != ty {
            let d = Diagnostic::error(
                Code::ShapeMismatch,
                format!("buffer `{name}` is {ty}, but the value assigned is {}", value.ty),
            )
            .with_label(a.span, format!("this is {}", value.ty));
            return el.error(d);
        }
        let path = if model.path.is_empty() { name.to_string() } else { format!("{}.{name}", model.path) };
        let assigned = el.assigned.as_mut().expect("checked above");
        if let Some(first) = assigned.iter().find(|x| x.path == path) {
            let first = first.span;
            let d = Diagnostic::error(Code::BadCall, format!("buffer `{path}` is assigned twice in one step"))
                .with_label(a.span, "assigned again here")
                .with_label(first, "first assigned here");
            return el.error(d);
        }
        assigned.push(Assigned { path, value: TVal { ty, id: value.id }, span: a.span });
    }
    Val::Unit
}
