//! `...` in a written type (`f32[..., D]`): any number of leading dims.
//!
//! `...` works as a dim name does, for a run of dims: the first type of a
//! signature (or the first `let` annotation) that meets it binds it to the
//! value's leading dims, and every later `...` in the same function must
//! cover the same dims. So `fn layer_norm(x: f32[..., D]) -> f32[..., D]`
//! promises the leading dims come back unchanged, and `x: f32[..., D],
//! mask: f32[..., D]` with `[B, T, D]` and `[T, D]` is an error that names
//! both runs (write `mask: f32[T, D]` for a broadcast operand).
//!
//! The binding lives in the function's `Env` under the name `...`, which no
//! identifier can spell, as a tuple of its dims.

use super::elab::{Elaborator, Env};
use super::value::Val;
use crate::check::Dim;
use crate::syntax::ast::DimExpr;

/// The name the binding takes in an `Env`.
pub const ELLIPSIS: &str = "...";

/// Splits a written type's dims at a leading `...`: whether it has one,
/// and the dims written after it.
pub fn split_ellipsis(declared: &[DimExpr]) -> (bool, &[DimExpr]) {
    match declared.split_first() {
        Some((DimExpr::Ellipsis(_), rest)) => (true, rest),
        _ => (false, declared),
    }
}

/// A written type's dims laid against a value's: with a leading `...`, the
/// value's dims it covers (`lead`) and the written dims after it paired
/// with the value's last dims; `None` when the ranks cannot fit (fewer
/// dims than written, or, without `...`, a different count).
pub struct Aligned<'a> {
    pub leading: bool,
    pub lead: &'a [Dim],
    pub pairs: Vec<(&'a DimExpr, &'a Dim)>,
}

pub fn align<'a>(declared: &'a [DimExpr], got: &'a [Dim]) -> Option<Aligned<'a>> {
    let (leading, written) = split_ellipsis(declared);
    let fits = if leading { got.len() >= written.len() } else { got.len() == written.len() };
    if !fits {
        return None;
    }
    let (lead, tail) = got.split_at(got.len() - written.len());
    Some(Aligned { leading, lead, pairs: written.iter().zip(tail).collect() })
}

/// The dims `...` stands for in `env`, if a type has bound it.
pub fn ellipsis_dims(env: &Env) -> Option<Vec<Dim>> {
    match env.lookup(ELLIPSIS)? {
        Val::Tuple(vs) => Some(
            vs.iter()
                .map(|v| match v {
                    Val::Int(d) => d.clone(),
                    other => unreachable!("`...` binds dims only, found {}", other.describe()),
                })
                .collect(),
        ),
        other => unreachable!("`...` binds a tuple of dims, found {}", other.describe()),
    }
}

/// A run of dims as a value `Env` can hold.
pub fn dims_value(dims: &[Dim]) -> Val {
    Val::Tuple(dims.iter().cloned().map(Val::Int).collect())
}

/// `[B, T]`, for messages (`[]` for no dims).
pub fn show_dims(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

impl Elaborator<'_> {
    /// Matches the leading dims `lead` of a value against `...`: `Ok(Some)`
    /// with the binding to make when `...` is not bound yet, `Ok(None)` when
    /// they are the bound dims (a dim only the build knows matches any),
    /// `Err(note)` for a mismatch.
    pub fn match_ellipsis(&self, env: &Env, lead: &[Dim]) -> Result<Option<Val>, String> {
        let Some(bound) = ellipsis_dims(env) else {
            return Ok(Some(dims_value(lead)));
        };
        let same = bound.len() == lead.len() && bound.iter().zip(lead).all(|(b, g)| b == g || self.is_unknown(g));
        if same {
            return Ok(None);
        }
        // A generic check binds `...` to one placeholder dim named `...`.
        if bound == [Dim::Sym(ELLIPSIS.into())] {
            return Err(format!(
                "the value's leading dims are {}, not `...`, the parameters' leading dims",
                show_dims(lead)
            ));
        }
        Err(format!(
            "`...` is {} here (from an earlier type), but the value's leading dims are {}",
            show_dims(&bound),
            show_dims(lead)
        ))
    }
}
