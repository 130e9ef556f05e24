//! Transformations called from source: `grad(f, wrt = ...)(args)` and
//! `value_and_grad`. In build mode the function is lowered on its own,
//! differentiated by `autodiff` (IR to IR), and the result is inlined at the
//! call site.

use super::elab::{CallArg, Elaborator};
use super::value::{FnRef, TVal, Val};
use crate::autodiff::inline_outputs as inline;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Builder, DType, ValueId};
use crate::span::Span;

pub fn call_grad(
    el: &mut Elaborator,
    f: FnRef,
    wrt: &[String],
    with_value: bool,
    args: Vec<CallArg>,
    span: Span,
) -> Val {
    let decl = el.prog.fn_decl(f.module, f.item);
    let mut wrt_idx = Vec::new();
    for w in wrt {
        match decl.params.iter().position(|p| &p.name.name == w) {
            Some(i) => wrt_idx.push(i),
            None => {
                let mut d = Diagnostic::error(
                    Code::BadCall,
                    format!("`{}` has no parameter `{w}` to differentiate", decl.name.name),
                )
                .with_label(span, "in this grad");
                if let Some(s) = super::suggest::closest(w, decl.params.iter().map(|p| p.name.name.as_str())) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                }
                return el.error(d);
            }
        }
    }
    if args.len() != decl.params.len() || args.iter().any(|a| a.name.is_some()) {
        return el.error(
            Diagnostic::error(
                Code::BadCall,
                format!("a gradient of `{}` takes its {} arguments by position", decl.name.name, decl.params.len()),
            )
            .with_label(span, "in this call"),
        );
    }
    // Every argument becomes a tensor (scalars as f32), so the function can be lowered alone.
    let mut tensors = Vec::new();
    for a in &args {
        let dtype = match &a.value {
            Val::Tensor(t) => t.ty.dtype,
            _ => DType::F32,
        };
        match el.as_tensor(&a.value, dtype, a.span) {
            Some(t) => tensors.push(t),
            None => return Val::Poison,
        }
    }
    for &i in &wrt_idx {
        if !tensors[i].ty.dtype.is_float() {
            return el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("cannot differentiate with respect to `{}`: it is {}", wrt[0], tensors[i].ty),
                )
                .with_label(args[i].span, "not a float"),
            );
        }
    }
    if !el.building() {
        // Check mode: check the function on these types; the gradients have the inputs' types.
        let out = el.call_fn(f, None, args.clone(), span);
        if let Err(d) = scalar_output(&out, &decl.name.name, span) {
            return el.error(d);
        }
        return package(
            with_value,
            out,
            wrt_idx.iter().map(|&i| TVal { ty: tensors[i].ty.clone(), id: None }).collect(),
        );
    }
    // Build mode: lower `f` alone on the argument types.
    let param_types: Vec<_> = tensors.iter().map(|t| t.ty.to_ir().expect("known dims in build mode")).collect();
    let saved_builder = el.builder.replace(Builder::new(&decl.name.name, &param_types));
    let saved_logs = el.logs.take();
    let saved_prints = el.prints.take();
    let inner_args: Vec<CallArg> = tensors
        .iter()
        .enumerate()
        .zip(&args)
        .map(|((i, t), a)| CallArg {
            name: None,
            name_span: None,
            value: Val::Tensor(TVal { ty: t.ty.clone(), id: Some(ValueId(i as u32)) }),
            span: a.span,
        })
        .collect();
    let out = el.call_fn(f, None, inner_args, span);
    let inner = std::mem::replace(&mut el.builder, saved_builder).expect("inner builder");
    el.logs = saved_logs;
    el.prints = saved_prints;
    let out_t = match scalar_output(&out, &decl.name.name, span) {
        Ok(t) => t,
        Err(d) => return el.error(d),
    };
    let func = inner.finish(vec![out_t.id.expect("built")]);
    crate::ir::verify::assert_valid(&func, "lower (grad body)");
    let grad_func = crate::autodiff::grad(&func, &wrt_idx);
    crate::ir::verify::assert_valid(&grad_func, "autodiff::grad");
    let arg_ids: Vec<ValueId> = tensors.iter().map(|t| t.id.expect("built")).collect();
    let outs = inline(el.b(), &grad_func, &arg_ids);
    let value = TVal { ty: out_t.ty.clone(), id: Some(outs[0]) };
    let grads =
        wrt_idx.iter().enumerate().map(|(k, &i)| TVal { ty: tensors[i].ty.clone(), id: Some(outs[1 + k]) }).collect();
    package(with_value, Val::Tensor(value), grads)
}

fn scalar_output(out: &Val, name: &str, span: Span) -> Result<TVal, Diagnostic> {
    match out {
        Val::Tensor(t) if t.ty.rank() == 0 && t.ty.dtype.is_float() => Ok(t.clone()),
        other => Err(Diagnostic::error(
            Code::TypeMismatch,
            format!("`grad` needs `{name}` to return a float scalar, but it returns {}", other.describe()),
        )
        .with_label(span, "differentiated here")
        .with_help("reduce the output first, e.g. with `sum` or `mean`")),
    }
}

fn package(with_value: bool, value: Val, grads: Vec<TVal>) -> Val {
    let grads = if grads.len() == 1 {
        Val::Tensor(grads.into_iter().next().expect("one"))
    } else {
        Val::Tuple(grads.into_iter().map(Val::Tensor).collect())
    };
    if with_value {
        Val::Tuple(vec![value, grads])
    } else {
        grads
    }
}
