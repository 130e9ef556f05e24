//! The CNN builtins `conv2d`, `conv_transpose2d`, `max_pool2d` and
//! `avg_pool2d`: argument parsing, shape checking (with symbolic dims in
//! check mode) and lowering to `Conv2d` (a transposed conv is the conv
//! gradient's IR, built by `autodiff::transposed_conv2d`) /
//! `ReduceWindowMax` / `ReduceWindowSum`.
//!
//! Consumes elaborated call arguments; produces a tensor value (IR appended
//! in build mode) or a diagnostic showing the shapes involved. Kept apart
//! from `builtins.rs`, which only dispatches here.

use super::elab::{CallArg, Elaborator};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Conv, DType, Window};
use crate::span::Span;

/// The largest stride, padding, dilation, window or group count accepted
/// (far beyond any image; keeps the size arithmetic from overflowing).
const MAX_OPTION: usize = 1 << 24;

/// `(a, b)` from an int or a tuple of two ints (per spatial dim), each at
/// most `MAX_OPTION`.
fn pair(value: &Val) -> Option<[usize; 2]> {
    let int = |v: &Val| match v {
        Val::Int(Dim::Known(n)) if *n <= MAX_OPTION => Some(*n),
        Val::Float(x) if x.fract() == 0.0 && *x >= 0.0 && *x <= MAX_OPTION as f64 => Some(*x as usize),
        _ => None,
    };
    match value {
        Val::Tuple(items) if items.len() == 2 => Some([int(&items[0])?, int(&items[1])?]),
        v => int(v).map(|n| [n, n]),
    }
}

fn bad(el: &mut Elaborator, msg: &str, span: Span) -> Val {
    el.error(Diagnostic::error(Code::BadCall, msg.to_string()).with_label(span, "in this call"))
}

/// The output size along one spatial dim: `(n + low + high - extent) / stride
/// + 1` with `extent = (k - 1) * dilation + 1`; for a symbolic `n`, that
/// formula as the dim's name. `Err` when a known size is too small.
fn out_dim(n: &Dim, pad: usize, k: usize, dilation: usize, stride: usize) -> Result<Dim, usize> {
    // Options are at most MAX_OPTION; a kernel dim from a type may be huge.
    let extent = (k - 1).checked_mul(dilation).and_then(|e| e.checked_add(1)).ok_or(usize::MAX)?;
    match n {
        Dim::Known(n) if n.checked_add(2 * pad).is_none() => Err(extent),
        Dim::Known(n) if n + 2 * pad >= extent && *n > 0 => Ok(Dim::Known((n + 2 * pad - extent) / stride + 1)),
        Dim::Known(_) => Err(extent),
        Dim::Sym(s) => {
            let shift = 2 * pad as i64 - extent as i64;
            let sum = match shift {
                0 => s.clone(),
                d if d > 0 => format!("{s} + {d}"),
                d => format!("{s} - {}", -d),
            };
            Ok(Dim::Sym(match (stride, shift + 1) {
                (1, 0) => s.clone(),
                (1, d) if d > 0 => format!("{s} + {d}"),
                (1, d) => format!("{s} - {}", -d),
                (st, _) => format!("({sum}) / {st} + 1"),
            }))
        }
    }
}

fn tensor(el: &mut Elaborator, arg: Option<&CallArg>, span: Span, what: &str) -> Option<TVal> {
    match arg {
        Some(CallArg { value: Val::Tensor(t), .. }) if t.ty.dtype.is_float() && t.ty.rank() == 4 => Some(t.clone()),
        Some(a) => {
            bad(el, &format!("{what} must be a rank-4 float tensor (NCHW input, OIHW kernel)"), a.span);
            None
        }
        None => {
            bad(el, &format!("missing {what}"), span);
            None
        }
    }
}

/// `conv2d(x, w, stride = 1, padding = 0, dilation = 1, groups = 1)`:
/// `x: [N, C, H, W]`, `w: [O, C / groups, KH, KW]` -> `[N, O, OH, OW]`;
/// each option is an int or a pair `(h, w)`; padding is symmetric.
pub fn conv2d(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let Some(x) = tensor(el, args.first(), span, "the input of `conv2d`") else { return Val::Poison };
    let Some(w) = tensor(el, args.get(1), span, "the kernel of `conv2d`") else { return Val::Poison };
    let (mut stride, mut padding, mut dilation, mut groups) = ([1, 1], [0, 0], [1, 1], 1usize);
    for a in args.iter().skip(2) {
        let p = pair(&a.value);
        match (a.name.as_deref(), p) {
            (Some("stride"), Some(v)) if v[0] > 0 && v[1] > 0 => stride = v,
            (Some("padding"), Some(v)) => padding = v,
            (Some("dilation"), Some(v)) if v[0] > 0 && v[1] > 0 => dilation = v,
            (Some("groups"), Some([g, h])) if g == h && g > 0 && !matches!(a.value, Val::Tuple(_)) => groups = g,
            _ => {
                let msg = "`conv2d` takes (x, w, stride = s, padding = p, dilation = d, groups = g): positive ints or \
                           (h, w) pairs (padding may be 0)";
                return bad(el, msg, a.span);
            }
        }
    }
    let shape_error = |el: &mut Elaborator, msg: String| {
        el.error(
            Diagnostic::error(Code::ShapeMismatch, msg)
                .with_label(args[0].span, format!("the input is {}", x.ty))
                .with_label(args[1].span, format!("the kernel is {}", w.ty))
                .with_label(span, "in this conv2d"),
        )
    };
    if x.ty.dtype != w.ty.dtype {
        return shape_error(el, "`conv2d` input and kernel have different dtypes".into());
    }
    // Channels: w's dim 1 times groups must be x's dim 1; groups divides O.
    match (&x.ty.dims[1], &w.ty.dims[1], &w.ty.dims[0]) {
        (Dim::Known(c), Dim::Known(cg), _) if *c != cg * groups => {
            let msg = if groups == 1 {
                format!("channel mismatch: the input has {c} channels, the kernel expects {cg}")
            } else {
                format!("channel mismatch: the input has {c} channels, the kernel expects {cg} x {groups} groups")
            };
            return shape_error(el, msg);
        }
        (Dim::Sym(c), Dim::Sym(cg), _) if groups == 1 && c != cg => {
            return shape_error(el, format!("channel mismatch: the input has {c} channels, the kernel expects {cg}"));
        }
        (_, _, Dim::Known(o)) if !o.is_multiple_of(groups) => {
            return shape_error(el, format!("groups ({groups}) must divide the output channels ({o})"));
        }
        (Dim::Known(0), _, _) | (_, _, Dim::Known(0)) => {
            return shape_error(el, "a conv needs at least one input and one output channel".into());
        }
        _ => {}
    }
    let mut dims = vec![x.ty.dims[0].clone(), w.ty.dims[0].clone()];
    for d in 0..2 {
        let Dim::Known(k) = w.ty.dims[2 + d] else {
            return shape_error(el, "the kernel's spatial size must be known".into());
        };
        if k == 0 {
            return shape_error(el, "the kernel's spatial size must be at least 1".into());
        }
        match out_dim(&x.ty.dims[2 + d], padding[d], k, dilation[d], stride[d]) {
            Ok(dim) => dims.push(dim),
            Err(extent) => {
                let msg = format!(
                    "the (dilated) kernel ({extent}) is larger than the padded input along spatial dim {}",
                    d + 2
                );
                return shape_error(el, msg);
            }
        }
    }
    let attrs = Conv { stride, low: padding, high: padding, lhs_dilation: [1, 1], rhs_dilation: dilation, groups };
    let id = match (x.id, w.id) {
        (Some(xi), Some(wi)) => Some(el.b().conv2d(xi, wi, attrs)),
        _ => None,
    };
    Val::Tensor(TVal { ty: Ty { dtype: x.ty.dtype, dims }, id })
}

/// The output size of a transposed conv along one spatial dim, PyTorch's
/// `(n - 1) * stride - 2 * pad + (k - 1) * dilation + out_pad + 1`; for a
/// symbolic `n`, that formula as the dim's name. `Err` when it is below 1.
fn transposed_out_dim(
    n: &Dim,
    pad: usize,
    k: usize,
    dilation: usize,
    stride: usize,
    out_pad: usize,
) -> Result<Dim, ()> {
    // What is added to `(n - 1) * stride` (options are at most MAX_OPTION;
    // a kernel or input dim from a type may be huge: checked).
    let extent = i64::try_from(k - 1).ok().and_then(|e| e.checked_mul(dilation as i64)).ok_or(())?;
    let shift = extent.checked_add((out_pad + 1) as i64 - 2 * pad as i64).ok_or(())?;
    let signed = |d: i64| if d >= 0 { format!(" + {d}") } else { format!(" - {}", -d) };
    match n {
        Dim::Known(n) if *n > 0 => {
            let size = i64::try_from(*n - 1)
                .ok()
                .and_then(|m| m.checked_mul(stride as i64))
                .and_then(|m| m.checked_add(shift))
                .ok_or(())?;
            if size >= 1 {
                Ok(Dim::Known(size as usize))
            } else {
                Err(())
            }
        }
        Dim::Known(_) => Err(()),
        // `n * stride + (shift - stride)`, the product spelled as `Dim::product`
        // spells it, so that a declared `H * 2` matches a stride-2 upsampling.
        Dim::Sym(_) => {
            let scaled = Dim::product(&[n.clone(), Dim::Known(stride)]);
            Ok(match shift - stride as i64 {
                0 => scaled,
                d => Dim::Sym(format!("{scaled}{}", signed(d))),
            })
        }
    }
}

/// `conv_transpose2d(x, w, stride = 1, padding = 0, output_padding = 0,
/// dilation = 1, groups = 1)`, PyTorch's `conv_transpose2d`: `x: [N, C, H,
/// W]`, `w: [C, O / groups, KH, KW]` -> `[N, O, OH, OW]`, the transpose (the
/// input gradient) of the `conv2d` with these options that maps `[N, O, OH,
/// OW]` to `[N, C, H, W]`. `output_padding` (below the stride or the
/// dilation) picks among the input sizes that conv maps to `H`.
pub fn conv_transpose2d(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let what = "conv_transpose2d";
    let Some(x) = tensor(el, args.first(), span, &format!("the input of `{what}`")) else { return Val::Poison };
    let Some(w) = tensor(el, args.get(1), span, &format!("the kernel of `{what}`")) else { return Val::Poison };
    let (mut stride, mut padding, mut out_pad, mut dilation, mut groups) = ([1, 1], [0, 0], [0, 0], [1, 1], 1usize);
    for a in args.iter().skip(2) {
        match (a.name.as_deref(), pair(&a.value)) {
            (Some("stride"), Some(v)) if v[0] > 0 && v[1] > 0 => stride = v,
            (Some("padding"), Some(v)) => padding = v,
            (Some("output_padding"), Some(v)) => out_pad = v,
            (Some("dilation"), Some(v)) if v[0] > 0 && v[1] > 0 => dilation = v,
            (Some("groups"), Some([g, h])) if g == h && g > 0 && !matches!(a.value, Val::Tuple(_)) => groups = g,
            _ => {
                let msg = "`conv_transpose2d` takes (x, w, stride = s, padding = p, output_padding = q, dilation = d, \
                           groups = g): positive ints or (h, w) pairs (padding and output_padding may be 0)";
                return bad(el, msg, a.span);
            }
        }
    }
    if let Some(d) = (0..2).find(|&d| out_pad[d] >= stride[d].max(dilation[d])) {
        let at = args.iter().find(|a| a.name.as_deref() == Some("output_padding")).map_or(span, |a| a.span);
        let msg = format!(
            "`output_padding` ({}) must be smaller than the stride ({}) or the dilation ({}) along spatial dim {}",
            out_pad[d],
            stride[d],
            dilation[d],
            d + 2
        );
        return bad(el, &msg, at);
    }
    let shape_error = |el: &mut Elaborator, msg: String| {
        el.error(
            Diagnostic::error(Code::ShapeMismatch, msg)
                .with_label(args[0].span, format!("the input is {}", x.ty))
                .with_label(args[1].span, format!("the kernel is {}", w.ty))
                .with_label(span, format!("in this {what}")),
        )
    };
    if x.ty.dtype != w.ty.dtype {
        return shape_error(el, format!("`{what}` input and kernel have different dtypes"));
    }
    // Channels: the kernel's dim 0 is the input's channels, divided into groups.
    let out_channels = match (&x.ty.dims[1], &w.ty.dims[0], &w.ty.dims[1]) {
        (Dim::Known(c), Dim::Known(k), _) if c != k => {
            let msg = format!("channel mismatch: the input has {c} channels, the kernel expects {k} (its dim 0)");
            return shape_error(el, msg);
        }
        (Dim::Sym(c), Dim::Sym(k), _) if c != k => {
            let msg = format!("channel mismatch: the input has {c} channels, the kernel expects {k} (its dim 0)");
            return shape_error(el, msg);
        }
        (_, Dim::Known(c), _) if !c.is_multiple_of(groups) => {
            return shape_error(el, format!("groups ({groups}) must divide the input channels ({c})"));
        }
        (_, Dim::Known(0), _) | (_, _, Dim::Known(0)) => {
            return shape_error(el, "a transposed conv needs at least one input and one output channel".into());
        }
        (_, _, Dim::Known(og)) => Dim::Known(og * groups),
        (_, _, d) if groups == 1 => d.clone(),
        (_, _, Dim::Sym(og)) => Dim::Sym(format!("{og} * {groups}")),
    };
    let mut dims = vec![x.ty.dims[0].clone(), out_channels];
    for d in 0..2 {
        let Dim::Known(k) = w.ty.dims[2 + d] else {
            return shape_error(el, "the kernel's spatial size must be known".into());
        };
        if k == 0 {
            return shape_error(el, "the kernel's spatial size must be at least 1".into());
        }
        match transposed_out_dim(&x.ty.dims[2 + d], padding[d], k, dilation[d], stride[d], out_pad[d]) {
            Ok(dim) => dims.push(dim),
            Err(()) => {
                let msg = format!(
                    "the padding ({}) leaves no output along spatial dim {}: the output size would be \
                     (H - 1) * stride - 2 * padding + (KH - 1) * dilation + output_padding + 1 < 1",
                    padding[d],
                    d + 2
                );
                return shape_error(el, msg);
            }
        }
    }
    // The conv this transposes maps [N, O, OH, OW] to x's shape.
    let conv = Conv { stride, low: padding, high: padding, lhs_dilation: [1, 1], rhs_dilation: dilation, groups };
    let id = match (x.id, w.id) {
        (Some(xi), Some(wi)) => {
            let known: Option<Vec<usize>> =
                dims.iter().map(|d| if let Dim::Known(n) = d { Some(*n) } else { None }).collect();
            let Some(input_dims) = known else {
                return shape_error(el, "the output of `conv_transpose2d` must have known dims when compiled".into());
            };
            Some(crate::autodiff::transposed_conv2d(el.b(), &conv, &input_dims, wi, xi))
        }
        _ => None,
    };
    Val::Tensor(TVal { ty: Ty { dtype: x.ty.dtype, dims }, id })
}

/// `max_pool2d(x, window, stride = window, padding = 0)` and `avg_pool2d`
/// (the window sum divided by the window size, padding counted as zeros):
/// pooling over the last two dims of `x: [N, C, H, W]`.
pub fn pool2d(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    let Some(x) = tensor(el, args.first(), span, &format!("the input of `{name}`")) else { return Val::Poison };
    let usage = format!(
        "`{name}` takes (x, window, stride = s, padding = p): positive ints or (h, w) pairs (padding may be 0)"
    );
    let Some(window) = args.get(1).and_then(|a| pair(&a.value)).filter(|w| w[0] > 0 && w[1] > 0) else {
        return bad(el, &usage, args.get(1).map_or(span, |a| a.span));
    };
    let (mut stride, mut padding) = (window, [0, 0]);
    for a in args.iter().skip(2) {
        match (a.name.as_deref(), pair(&a.value)) {
            (Some("stride"), Some(v)) if v[0] > 0 && v[1] > 0 => stride = v,
            (Some("padding"), Some(v)) => {
                // As PyTorch: more padding would give windows wholly in
                // the padding (-inf for a max, 0 for a mean).
                if let Some(d) = (0..2).find(|&d| 2 * v[d] > window[d]) {
                    let msg = format!(
                        "`{name}`'s padding {} is more than half its window {} along dim {}: some windows would \
                         hold only padding",
                        v[d],
                        window[d],
                        d + 2
                    );
                    return el.error(Diagnostic::error(Code::BadCall, msg).with_label(a.span, "this padding"));
                }
                padding = v
            }
            _ => return bad(el, &usage, a.span),
        }
    }
    let mut dims = x.ty.dims[..2].to_vec();
    for d in 0..2 {
        match out_dim(&x.ty.dims[2 + d], padding[d], window[d], 1, stride[d]) {
            Ok(dim) => dims.push(dim),
            Err(extent) => {
                return el.error(
                    Diagnostic::error(
                        Code::ShapeMismatch,
                        format!("the window ({extent}) is larger than the padded input along dim {}", d + 2),
                    )
                    .with_label(args[0].span, format!("this is {}", x.ty))
                    .with_label(span, format!("in this {name}")),
                )
            }
        }
    }
    let is_max = name == "max_pool2d";
    let id = x.id.map(|xi| {
        let w = Window {
            size: vec![1, 1, window[0], window[1]],
            stride: vec![1, 1, stride[0], stride[1]],
            low: vec![0, 0, padding[0], padding[1]],
            high: vec![0, 0, padding[0], padding[1]],
        };
        let b = el.b();
        let pooled = b.reduce_window(xi, w, is_max);
        if is_max {
            pooled
        } else {
            let ty = b.ty(pooled).clone();
            let count = b.full((window[0] * window[1]) as f64, &ty);
            b.div(pooled, count)
        }
    });
    debug_assert!(x.ty.dtype != DType::Bool);
    Val::Tensor(TVal { ty: Ty { dtype: x.ty.dtype, dims }, id })
}
