//! `einsum("bij,bjk->bik", a, b)`: Einstein summation over one or two
//! float tensors, as NumPy and JAX spell it (letters name axes; `->` and
//! the output's letters; without `->` the output is every letter used
//! once, in alphabetical order).
//!
//! Lowered to primitives the rest of the compiler already knows, as JAX
//! lowers it to `dot_general`: axes only one operand has and the output
//! lacks are summed first; then each operand is transposed to `[batch,
//! free, contracted]` (`[batch, contracted, free]` on the right) and
//! reshaped to rank 3, one `batch_matmul` contracts them, and a reshape
//! and a transpose give the output's order. So gradients, `vmap` and both
//! backends need nothing new. Not supported: a letter twice in one
//! operand (diagonals) and `...`.

use super::builtins::bad;
use super::elab::{CallArg, Elaborator};
use super::value::{TVal, Val};
use crate::check::{Dim, Ty};
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{Shape, ValueId};
use crate::span::Span;

/// One operand: its axis letters and value.
struct Operand {
    labels: Vec<char>,
    t: TVal,
    span: Span,
}

pub fn einsum(el: &mut Elaborator, args: &[CallArg], span: Span) -> Val {
    let usage = "`einsum(\"ij,jk->ik\", a, b)` takes a subscript string and one or two tensors";
    let Some((spec_arg, tensors)) = args.split_first() else { return bad(el, usage, span) };
    if args.iter().any(|a| a.name.is_some()) || !(1..=2).contains(&tensors.len()) {
        return bad(el, usage, span);
    }
    let Val::Str(spec) = &spec_arg.value else {
        let what = spec_arg.value.describe();
        return bad(el, &format!("{usage}; the first argument is {what}"), spec_arg.span);
    };
    let spec_error = |el: &mut Elaborator, msg: String| {
        el.error(
            Diagnostic::error(Code::TypeMismatch, format!("bad einsum subscripts \"{spec}\": {msg}"))
                .with_label(spec_arg.span, "these subscripts")
                .with_help("write one letter per axis of each operand, e.g. \"bij,bjk->bik\""),
        )
    };
    let (inputs, output) = match spec.split_once("->") {
        Some((i, o)) => (i, Some(o)),
        None => (spec.as_str(), None),
    };
    let letters = |s: &str| -> Option<Vec<char>> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        s.chars().all(|c| c.is_ascii_alphabetic()).then(|| s.chars().collect())
    };
    let parts: Vec<&str> = inputs.split(',').collect();
    if parts.len() != tensors.len() {
        let msg = format!("{} operand subscripts for {} tensors", parts.len(), tensors.len());
        return spec_error(el, msg);
    }
    let mut operands = Vec::new();
    for (part, arg) in parts.iter().zip(tensors) {
        let Some(labels) = letters(part) else {
            let msg = format!("`{part}` is not all letters (`...` is not supported)");
            return spec_error(el, msg);
        };
        if let Some(c) = labels.iter().find(|c| labels.iter().filter(|d| d == c).count() > 1) {
            let msg = format!("`{c}` appears twice in `{part}` (diagonals are not supported)");
            return spec_error(el, msg);
        }
        let t = match &arg.value {
            Val::Tensor(t) if t.ty.dtype.is_float() => t.clone(),
            other => {
                let what = other.describe();
                return el.error(
                    Diagnostic::error(Code::TypeMismatch, format!("einsum needs float tensors, found {what}"))
                        .with_label(arg.span, format!("this is {what}")),
                );
            }
        };
        if labels.len() != t.ty.rank() {
            return el.error(
                Diagnostic::error(
                    Code::ShapeMismatch,
                    format!("einsum subscripts `{part}` name {} axes, but the operand is {}", labels.len(), t.ty),
                )
                .with_label(arg.span, format!("this is {}", t.ty))
                .with_label(spec_arg.span, format!("`{part}` is for this operand")),
            );
        }
        operands.push(Operand { labels, t, span: arg.span });
    }
    if let [a, b] = operands.as_slice() {
        if a.t.ty.dtype != b.t.ty.dtype {
            return el.error(
                Diagnostic::error(
                    Code::TypeMismatch,
                    format!("einsum operands have different dtypes: {} and {}", a.t.ty, b.t.ty),
                )
                .with_label(a.span, format!("this is {}", a.t.ty))
                .with_label(b.span, format!("this is {}", b.t.ty))
                .with_help("make them one dtype: `float(x)` converts to f32"),
            );
        }
    }
    // Each letter's dim, equal wherever it appears.
    let mut dims: Vec<(char, Dim)> = Vec::new();
    for op in &operands {
        for (&c, d) in op.labels.iter().zip(&op.t.ty.dims) {
            match dims.iter().find(|(l, _)| *l == c) {
                Some((_, first)) if first != d => {
                    let (a, b) = (&operands[0], &operands[operands.len() - 1]);
                    return el.error(
                        Diagnostic::error(
                            Code::ShapeMismatch,
                            format!("einsum axis `{c}` is {first} in one operand and {d} in the other"),
                        )
                        .with_label(a.span, format!("this is {}", a.t.ty))
                        .with_label(b.span, format!("this is {}", b.t.ty))
                        .with_label(spec_arg.span, format!("`{c}` names both")),
                    );
                }
                Some(_) => {}
                None => dims.push((c, d.clone())),
            }
        }
    }
    let output = match output {
        Some(o) => match letters(o) {
            Some(o) => o,
            None => return spec_error(el, format!("the output `{o}` is not all letters")),
        },
        // NumPy's implicit output: the letters used once, alphabetically.
        None => {
            let mut once: Vec<char> = dims
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| operands.iter().map(|o| o.labels.iter().filter(|l| *l == c).count()).sum::<usize>() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    for (i, c) in output.iter().enumerate() {
        if output[..i].contains(c) {
            return spec_error(el, format!("`{c}` appears twice in the output"));
        }
        if !dims.iter().any(|(l, _)| l == c) {
            return spec_error(el, format!("the output's `{c}` names no operand axis"));
        }
    }
    let dim_of = |c: char| dims.iter().find(|(l, _)| *l == c).map(|(_, d)| d.clone()).expect("every letter has a dim");
    let ty = Ty { dtype: operands[0].t.ty.dtype, dims: output.iter().map(|&c| dim_of(c)).collect() };
    if operands.iter().any(|o| o.t.id.is_none()) {
        return Val::Tensor(TVal { ty, id: None });
    }
    let id = lower(el, &operands, &output);
    Val::Tensor(TVal { ty, id: Some(id) })
}

/// Builds the IR (build mode): sums, transposes, reshapes, one batched
/// product.
fn lower(el: &mut Elaborator, operands: &[Operand], output: &[char]) -> ValueId {
    // Sum the axes that only this operand has and the output drops.
    let mut reduced: Vec<(Vec<char>, ValueId)> = Vec::new();
    for (i, op) in operands.iter().enumerate() {
        let other: &[char] = operands.get(1 - i).map_or(&[], |o| o.labels.as_slice());
        let keep = |c: &char| output.contains(c) || other.contains(c);
        let axes: Vec<usize> = (0..op.labels.len()).filter(|&a| !keep(&op.labels[a])).collect();
        let x = op.t.id.expect("build mode");
        let x = if axes.is_empty() { x } else { el.b().reduce_sum(x, axes) };
        reduced.push((op.labels.iter().copied().filter(keep).collect(), x));
    }
    let b = el.b();
    let size = |labels: &[char], x: ValueId, b: &crate::ir::Builder, c: char| {
        b.ty(x).shape.0[labels.iter().position(|&l| l == c).expect("label of this operand")]
    };
    // One operand: a transpose into the output's order.
    let [(la, xa), (lb, xb)] = match reduced.as_slice() {
        [(labels, x)] => {
            let perm: Vec<usize> = output.iter().map(|c| labels.iter().position(|l| l == c).expect("kept")).collect();
            return if perm.iter().enumerate().all(|(i, &p)| i == p) { *x } else { b.transpose(*x, perm) };
        }
        [a, b] => [a.clone(), b.clone()],
        _ => unreachable!("one or two operands"),
    };
    let batch: Vec<char> = output.iter().copied().filter(|c| la.contains(c) && lb.contains(c)).collect();
    let contract: Vec<char> = la.iter().copied().filter(|c| lb.contains(c) && !output.contains(c)).collect();
    let free_a: Vec<char> = la.iter().copied().filter(|c| !lb.contains(c)).collect();
    let free_b: Vec<char> = lb.iter().copied().filter(|c| !la.contains(c)).collect();
    let arrange = |b: &mut crate::ir::Builder, labels: &[char], x: ValueId, groups: [&[char]; 3]| {
        let order: Vec<char> = groups.concat();
        let perm: Vec<usize> = order.iter().map(|c| labels.iter().position(|l| l == c).expect("grouped")).collect();
        let sizes: Vec<usize> =
            groups.iter().map(|g| g.iter().map(|&c| size(labels, x, b, c)).product::<usize>()).collect();
        let x = if perm.iter().enumerate().all(|(i, &p)| i == p) { x } else { b.transpose(x, perm) };
        b.reshape(x, &Shape(sizes))
    };
    let a3 = arrange(b, &la, xa, [&batch, &free_a, &contract]);
    let b3 = arrange(b, &lb, xb, [&batch, &contract, &free_b]);
    let product = b.batch_matmul(a3, b3);
    // [batch, free_a, free_b] with each letter's own dim, then the output's order.
    let order: Vec<char> = [batch.as_slice(), &free_a, &free_b].concat();
    let full: Vec<usize> =
        order.iter().map(|&c| if la.contains(&c) { size(&la, xa, b, c) } else { size(&lb, xb, b, c) }).collect();
    let product = b.reshape(product, &Shape(full));
    let perm: Vec<usize> = output.iter().map(|c| order.iter().position(|l| l == c).expect("in the product")).collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        product
    } else {
        b.transpose(product, perm)
    }
}
