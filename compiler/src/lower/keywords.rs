//! The keyword arguments each builtin and transformation takes, so that a
//! misspelled one (`sum(x, axsi = 1)`, `grad(f, wtr = w)`) is reported with
//! "did you mean" instead of the builtin's generic usage message.

use super::elab::{CallArg, Elaborator};
use super::value::Val;
use crate::diagnostic::{Code, Diagnostic};

/// The keywords `builtin` reads (empty: none, or any name, as `save_plot`'s
/// series roles).
fn of(builtin: &str) -> &'static [&'static str] {
    match builtin {
        "sum" | "mean" | "max" | "min" => &["axis", "keepdims"],
        "var" | "std" => &["axis", "keepdims", "ddof"],
        "cumsum" | "cummax" | "cummin" => &["axis", "reverse"],
        "argmax" | "take" | "take_along_axis" | "stack" | "concat" => &["axis"],
        "conv2d" => &["stride", "padding", "dilation", "groups"],
        "conv_transpose2d" => &["stride", "padding", "output_padding", "dilation", "groups"],
        "max_pool2d" | "avg_pool2d" => &["stride", "padding"],
        "grad" | "value_and_grad" => &["wrt", "has_aux"],
        "jacfwd" | "jacrev" | "hessian" => &["wrt"],
        "vmap" => &["in_axes", "out_axes"],
        "scan" => &["length", "reverse"],
        "log" => &["prog_bar"],
        "flatten" => &["start"],
        "normal" => &["std", "mean"],
        "orthogonal" => &["gain"],
        "save_image" => &["nrow"],
        _ => &[],
    }
}

/// Whether keyword argument `kw` is, or is a likely typo of, `keyword`:
/// `wrt` and `in_axes` hold names (`w`, `None`) that are not evaluated,
/// so a misspelled one must not be evaluated either (its names would be
/// reported as unknown on top of the typo).
pub fn meant(kw: &str, keyword: &str) -> bool {
    kw == keyword || super::suggest::closest(kw, std::iter::once(keyword)).is_some()
}

/// The report for the first keyword argument of `builtin` that is not one
/// of its keywords but is close to one (a likely typo); None otherwise
/// (the builtin's own checks then say what it takes).
pub fn misspelled(el: &mut Elaborator, builtin: &str, args: &[CallArg]) -> Option<Val> {
    let known = of(builtin);
    args.iter().find_map(|a| {
        let name = a.name.as_deref().filter(|n| !known.contains(n))?;
        let close = super::suggest::closest(name, known.iter().copied())?;
        let msg = format!("`{builtin}` has no keyword argument `{name}`");
        let at = a.name_span.map_or(a.span, |n| n.to(a.span));
        let d = Diagnostic::error(Code::BadCall, msg)
            .with_label(at, format!("`{builtin}` takes {}", list(known)))
            .with_help(format!("did you mean `{close}`?"));
        Some(el.error(d))
    })
}

/// `a`, `a` or `b`, `a`, `b` or `c`, as code.
fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}
