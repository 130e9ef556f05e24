//! `cumsum(x, axis, reverse = false)`, `cummax` and `cummin`: running sums,
//! maxima and minima along an axis (`jnp.cumsum`, `lax.cummax`,
//! `lax.cummin`); without `axis`, of `x` flattened, as NumPy's.
//!
//! Each is one `ReduceWindowSum` / `ReduceWindowMax` whose window spans the
//! whole axis and is padded by `n - 1` on the low side (on the high side
//! for `reverse`), so output `i` reduces elements `0..=i`. This is how XLA
//! lowers `cumsum` on the CPU: no new op, so autodiff, `vmap` and both
//! backends already handle it. It costs `n` additions per element along
//! the axis (quadratic in the axis' length), which is nothing beside a
//! matrix product at the lengths models use. `cummin(x)` is
//! `-cummax(-x)`.

use super::elab::{CallArg, Elaborator};
use super::value::{TVal, Val};
use crate::check::{shape_rules, Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Shape, ValueId, Window};
use crate::span::Span;

pub fn cumulative(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let usage = format!("`{name}` takes (x, axis = int, reverse = bool)");
    let Some(CallArg { value: Val::Tensor(t), span: x_span, .. }) = args.first() else {
        return match args.first().map(|a| &a.value) {
            Some(Val::Poison) => Val::Poison,
            _ => bad(el, &format!("`{name}` needs a float tensor first"), span),
        };
    };
    if !t.ty.dtype.is_float() {
        let d = Diagnostic::error(Code::TypeMismatch, format!("`{name}` needs a float tensor, found {}", t.ty))
            .with_label(*x_span, format!("this is {}", t.ty))
            .with_help("convert with `float(x)`");
        return el.error(d);
    }
    let (mut axis, mut reverse) = (None, false);
    for a in &args[1..] {
        match (a.name.as_deref(), &a.value) {
            (Some("axis") | None, v) if v.as_i64().is_some() => axis = v.as_i64(),
            (Some("reverse"), Val::Bool(b)) => reverse = *b,
            _ => return bad(el, &usage, a.span),
        }
    }
    // Without an axis, the flattened tensor (NumPy's `axis = None`).
    let (t, axis) = match axis {
        None => (flattened(el, t), 0),
        Some(a) => match shape_rules::axis(a, t.ty.rank()) {
            Ok(a) => (t.clone(), a),
            Err(msg) => {
                let d = Diagnostic::error(Code::ShapeMismatch, msg)
                    .with_label(*x_span, format!("this is {}", t.ty))
                    .with_label(span, format!("in this {name}"));
                return el.error(d);
            }
        },
    };
    let Some(x) = t.id else { return Val::Tensor(t) };
    let id = match name {
        "cumsum" => running(el, x, axis, reverse, false),
        "cummax" => running(el, x, axis, reverse, true),
        _ => {
            let negated = el.b().neg(x);
            let max = running(el, negated, axis, reverse, true);
            el.b().neg(max)
        }
    };
    Val::Tensor(TVal { ty: t.ty, id: Some(id) })
}

/// `t` as one axis (its dims multiplied, symbolic ones too).
fn flattened(el: &mut Elaborator, t: &TVal) -> TVal {
    let ty = Ty { dtype: t.ty.dtype, dims: vec![Dim::product(&t.ty.dims)] };
    let id = t.id.map(|x| {
        let n = el.b().ty(x).shape.num_elements();
        el.b().reshape(x, &Shape(vec![n]))
    });
    TVal { ty, id }
}

/// The running sum (or maximum) of `x` along `axis`: a window of the
/// axis' whole length, padded so that output `i` covers `0..=i` (or
/// `i..n` with `reverse`).
fn running(el: &mut Elaborator, x: ValueId, axis: usize, reverse: bool, max: bool) -> ValueId {
    let dims = el.b().ty(x).shape.dims().to_vec();
    let n = dims[axis];
    if n == 0 {
        return x;
    }
    let along = |value: usize| (0..dims.len()).map(|d| if d == axis { value } else { 0 }).collect::<Vec<_>>();
    let window = Window {
        size: (0..dims.len()).map(|d| if d == axis { n } else { 1 }).collect(),
        stride: vec![1; dims.len()],
        low: if reverse { vec![0; dims.len()] } else { along(n - 1) },
        high: if reverse { along(n - 1) } else { vec![0; dims.len()] },
    };
    el.b().reduce_window(x, window, max)
}

fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg.to_string()).with_label(span, "in this call"))
}
