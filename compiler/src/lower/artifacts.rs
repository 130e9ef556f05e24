//! `save_image(path, images, nrow = 8)`, `save_plot(path, x, y, ...)` and
//! `save_text(path, bytes)`: pictures and text a model writes at the end of
//! training (`on_train_end`).
//!
//! Like `log`, they have no effect inside the program: each records an
//! `Artifact` whose tensors become outputs of the compiled hook, and the
//! trainer renders them to PNG files in the run directory after running it.
//! So the pictures come from the same compiled code as everything else,
//! and the language stays pure.

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::span::Span;

/// The method whose body may save pictures: run once after `fit`.
pub const HOOK: &str = "on_train_end";

/// A picture to write: its path (relative to the run directory), what
/// kind, and the tensors it is drawn from (outputs of the hook program).
#[derive(Clone, Debug)]
pub struct Artifact {
    pub path: String,
    pub kind: ArtifactKind,
    /// `(role, value)`: `images` for an image grid; `x`, `y` and the
    /// optional `lower`, `upper`, `samples`, `scatter_x`, `scatter_y` for a plot.
    pub values: Vec<(String, TVal)>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ArtifactKind {
    /// Images `[N, H, W]`, `[N, 1, H, W]` or `[N, 3, H, W]` (values in
    /// [0, 1], clamped) tiled `nrow` per row.
    ImageGrid { nrow: usize },
    /// A line `y(x)` with an optional band, sample curves and points.
    Plot { title: String },
    /// Bytes (`i32` values 0..255, e.g. sampled characters) as a text
    /// file, also printed at the end of the run.
    Text,
}

/// The optional tensors of `save_plot` and the shape each must have
/// relative to `x: f32[N]` ("N": like x; "K,N": K curves; "M": any length).
const PLOT_OPTIONS: &[(&str, &str)] =
    &[("lower", "N"), ("upper", "N"), ("samples", "K,N"), ("scatter_x", "M"), ("scatter_y", "M")];

pub fn save(el: &mut Elaborator, name: &str, args: &[CallArg], span: Span) -> Val {
    if el.artifacts.is_none() {
        return el.error(
            Diagnostic::error(Code::NotAllowed, format!("`{name}` is only allowed in `{HOOK}`"))
                .with_label(span, "called here")
                .with_help(format!(
                    "write pictures once, after training: `fn {HOOK}(self, key) {{ {name}(\"file.png\", ...) }}`"
                )),
        );
    }
    let path = match args.first() {
        Some(CallArg { value: Val::Str(p), name: None, .. }) => p.clone(),
        _ => return bad(el, &format!("`{name}` needs the file name first, a string such as \"samples.png\""), span),
    };
    let ext = if name == "save_text" { ".txt" } else { ".png" };
    if !path.ends_with(ext) || path.starts_with('/') || path.split(['/', '\\']).any(|c| c == "..") {
        return el.error(
            Diagnostic::error(
                Code::BadCall,
                format!("`{name}` writes a `{ext}` file inside the run directory, not {path:?}"),
            )
            .with_label(args[0].span, "this path")
            .with_help(format!("use a relative name such as \"samples{ext}\"")),
        );
    }
    let artifact = match name {
        "save_image" => image_grid(el, path, args, span),
        "save_plot" => plot(el, path, args, span),
        _ => text(el, path, args, span),
    };
    if let (Some(a), Some(list)) = (artifact, el.artifacts.as_mut()) {
        list.push(a);
    }
    Val::Unit
}

/// A float tensor argument, or an error naming what was expected.
fn float_tensor(el: &mut Elaborator, arg: &CallArg, what: &str) -> Option<TVal> {
    match &arg.value {
        Val::Tensor(t) if t.ty.dtype.is_float() => Some(t.clone()),
        v => {
            let d = v.describe();
            el.error(
                Diagnostic::error(Code::TypeMismatch, format!("{what} must be a float tensor, found {d}"))
                    .with_label(arg.span, format!("this is {d}")),
            );
            None
        }
    }
}

fn image_grid(el: &mut Elaborator, path: String, args: &[CallArg], span: Span) -> Option<Artifact> {
    let mut nrow = 8;
    let mut images = None;
    for a in &args[1..] {
        match (a.name.as_deref(), &a.value) {
            (None, _) if images.is_none() => images = Some(a),
            (Some("nrow"), Val::Int(Dim::Known(n))) if *n >= 1 => nrow = *n,
            _ => {
                bad(el, "`save_image(path, images, nrow = 8)`: images, then an integer nrow >= 1", a.span);
                return None;
            }
        }
    }
    let Some(arg) = images else {
        bad(el, "`save_image(path, images, nrow = 8)` needs the images", span);
        return None;
    };
    let t = float_tensor(el, arg, "`save_image`'s images")?;
    let ok = match t.ty.dims.as_slice() {
        [_, _] | [_, _, _] => true,
        [_, c, _, _] => matches!(c, Dim::Known(1) | Dim::Known(3)),
        _ => false,
    };
    if !ok {
        el.error(
            Diagnostic::error(
                Code::ShapeMismatch,
                format!(
                    "`save_image` takes images [N, H, W], [N, 1, H, W] or [N, 3, H, W] (or one [H, W]), not {}",
                    t.ty
                ),
            )
            .with_label(arg.span, format!("this is {}", t.ty)),
        );
        return None;
    }
    Some(Artifact { path, kind: ArtifactKind::ImageGrid { nrow }, values: vec![("images".into(), t)] })
}

fn plot(el: &mut Elaborator, path: String, args: &[CallArg], span: Span) -> Option<Artifact> {
    let usage =
        "`save_plot(path, x, y, lower = .., upper = .., samples = .., scatter_x = .., scatter_y = .., title = \"\")`";
    let positional: Vec<&CallArg> = args[1..].iter().filter(|a| a.name.is_none()).collect();
    let [x_arg, y_arg] = positional.as_slice() else {
        bad(el, &format!("{usage} takes x and y: two float vectors of one length"), span);
        return None;
    };
    let x = float_tensor(el, x_arg, "`save_plot`'s x")?;
    let y = float_tensor(el, y_arg, "`save_plot`'s y")?;
    let n = match x.ty.dims.as_slice() {
        [n] => n.clone(),
        _ => {
            el.error(
                Diagnostic::error(Code::ShapeMismatch, format!("`save_plot`'s x must be a vector, not {}", x.ty))
                    .with_label(x_arg.span, format!("this is {}", x.ty)),
            );
            return None;
        }
    };
    let vector_n = Ty { dtype: x.ty.dtype, dims: vec![n.clone()] };
    let mut values = vec![("x".to_string(), x.clone())];
    let mut title = String::new();
    let mut check = |el: &mut Elaborator, role: &str, t: TVal, arg: &CallArg, want: &str| -> Option<()> {
        let fits = match (want, t.ty.dims.as_slice()) {
            ("N", [d]) => *d == n,
            ("K,N", [_, d]) | ("K,N", [d]) => *d == n,
            ("M", [_]) => true,
            _ => false,
        };
        if !fits {
            let expected = match want {
                "N" => format!("{vector_n}, like x"),
                "K,N" => format!("[K, {n}]: K curves over x"),
                _ => "a vector".to_string(),
            };
            el.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("`save_plot`'s {role} must be {expected}, not {}", t.ty),
                )
                .with_label(arg.span, format!("this is {}", t.ty))
                .with_label(x_arg.span, format!("x is {}", x.ty)),
            );
            return None;
        }
        values.push((role.to_string(), t));
        Some(())
    };
    check(el, "y", y, y_arg, "N")?;
    for a in &args[1..] {
        let Some(role) = a.name.as_deref() else { continue };
        if role == "title" {
            match &a.value {
                Val::Str(s) => title = s.clone(),
                _ => {
                    bad(el, "`save_plot`'s title is a string", a.span);
                    return None;
                }
            }
            continue;
        }
        let Some((_, want)) = PLOT_OPTIONS.iter().find(|(r, _)| *r == role) else {
            bad(el, &format!("{usage}: no option `{role}`"), a.span);
            return None;
        };
        let t = float_tensor(el, a, &format!("`save_plot`'s {role}"))?;
        check(el, role, t, a, want)?;
    }
    let has = |r: &str| values.iter().any(|(role, _)| role == r);
    if has("lower") != has("upper") || has("scatter_x") != has("scatter_y") {
        bad(el, "`save_plot`: give `lower` with `upper` and `scatter_x` with `scatter_y`", span);
        return None;
    }
    Some(Artifact { path, kind: ArtifactKind::Plot { title }, values })
}

fn text(el: &mut Elaborator, path: String, args: &[CallArg], span: Span) -> Option<Artifact> {
    let usage = "`save_text(path, bytes)` takes an i32 vector of byte values (0..255)";
    let [_, arg] = args else {
        bad(el, usage, span);
        return None;
    };
    match &arg.value {
        Val::Tensor(t) if t.ty.dtype == crate::ir::DType::I32 && t.ty.rank() == 1 => {
            Some(Artifact { path, kind: ArtifactKind::Text, values: vec![("bytes".into(), t.clone())] })
        }
        v => {
            let d = v.describe();
            el.error(
                Diagnostic::error(Code::TypeMismatch, format!("{usage}, not {d}"))
                    .with_label(arg.span, format!("this is {d}")),
            );
            None
        }
    }
}
