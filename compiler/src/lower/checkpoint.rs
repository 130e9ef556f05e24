//! `checkpoint(f)` (jax.checkpoint, PyTorch's torch.utils.checkpoint): a
//! function that computes what `f` computes, but whose intermediate values
//! are not kept for a gradient: the backward pass recomputes them from `f`'s
//! inputs. It trades compute (one more forward of `f`) for memory.
//!
//! Lowering: a call `checkpoint(f)(args...)` lowers `f` alone into a body
//! function whose params are the IR values `f` and `args` hold (captured
//! tensors, model parameters, the argument tensors), and emits it as an
//! `Op::Scan` of length 1 with those values as consts and `f`'s outputs as
//! ys (each then reshaped to drop the length-1 axis). The scan's VJP rule
//! (`autodiff/scan_rules.rs`) stores only carries (there are none here) and
//! runs the body's VJP, forward included, inside the backward scan: so the
//! gradient of the surrounding program keeps `f`'s inputs and outputs live
//! but none of `f`'s intermediates. Every other pass (JVP, vmap, DCE, the
//! e-graph, the interpreter and the CPU backend) already handles scans.
//!
//! In check mode the call is `f`'s call. `log`s and `print`s inside `f` are
//! dropped (as inside a scan body).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use super::elab::{CallArg, Elaborator, Env};
use super::transform::{collect_ids, remap};
use super::tree;
use super::value::Val;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, Shape, ValueId};
use crate::span::Span;

pub fn call_checkpoint(el: &mut Elaborator, env: &mut Env, f: &Rc<Val>, args: Vec<CallArg>, span: Span) -> Val {
    if !el.building() {
        return el.call(env, (**f).clone(), span, args, span);
    }
    // Every IR value reachable from f and the arguments becomes a const.
    let mut captured: Vec<(ValueId, crate::ir::Type)> = Vec::new();
    collect_ids(el, f, &mut captured);
    for a in &args {
        collect_ids(el, &a.value, &mut captured);
    }
    let nc = captured.len();
    let types: Vec<crate::ir::Type> = captured.iter().map(|(_, t)| t.clone()).collect();
    let map: HashMap<ValueId, ValueId> =
        captured.iter().enumerate().map(|(k, (outer, _))| (*outer, ValueId(k as u32))).collect();
    let inner_f = remap(f, &map);
    let inner_args: Vec<CallArg> = args
        .iter()
        .map(|a| CallArg { name: a.name.clone(), name_span: a.name_span, value: remap(&a.value, &map), span: a.span })
        .collect();

    let saved_builder = el.builder.replace(Builder::new("checkpoint_body", &types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let out = el.call(env, inner_f, span, inner_args, span);
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;

    if !tree::only_tensors(&out) {
        if matches!(out, Val::Poison) {
            return Val::Poison;
        }
        let msg = format!("a checkpointed function must return tensors (or tuples of them), not {}", out.describe());
        return el.error(Diagnostic::error(Code::BadCall, msg).with_label(span, "in this call"));
    }
    let outputs: Vec<ValueId> = tree::leaf_ids(&out);
    let (body, kept) = crate::ir::scan::drop_unused_consts(&inner.finish(outputs), nc);
    crate::ir::verify::assert_valid(&body, "lower (checkpoint body)");
    let operands: Vec<ValueId> = kept.iter().map(|&k| captured[k].0).collect();
    let stacked = el.b().scan(Arc::new(body), kept.len(), 0, 1, false, &operands);
    let mut ids = stacked.into_iter().map(|v| {
        let b = el.b();
        let shape = Shape(b.ty(v).shape.0[1..].to_vec());
        b.reshape(v, &shape)
    });
    let ids: Vec<ValueId> = ids.by_ref().collect();
    tree::with_ids(&out, &mut ids.into_iter())
}

#[cfg(test)]
mod tests;
