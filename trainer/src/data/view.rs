//! How a step sees the data: the per-example dims and the dtype of a batch,
//! from the stored column and the type the step method declares for it.
//!
//! Consumes a `Column` and the declared type (`f32[B, 1, 28, 28]`, dims
//! known or symbolic); produces the dims and dtype its batches get, or the
//! reason they cannot fit. Rules, per column (the first declared dim is the
//! batch):
//!
//! | declared | stored | batch |
//! |---|---|---|
//! | nothing (no annotation) | any | the stored dims; bytes as f32 (inputs) or i32 (targets) |
//! | dtype `f32`, `f64` or `i32` | `u8` | that dtype (floats times `scale`) |
//! | dtype `f32`, `f64`, `i32`, `bool` | the same dtype | as stored (numpy's `<i8` is stored as i32) |
//! | dtype other than the stored one | not `u8` | an error (no silent f64 -> f32 rounding) |
//! | all dims known | `n` values per example | those dims when their product is `n` (a free reshape: rows are row-major either way) |
//! | some dims symbolic, same rank as stored | any | the stored dims (known ones must match) |
//! | one symbolic dim, another rank | `n` values | solved as `n / product(known)` when that divides |
//!
//! So IDX images, stored flattened (`u8[784]`, as before shapes existed),
//! batch as `f32[B, 784]` for `x: f32[B, 784]` and as `f32[B, 1, 28, 28]`
//! for `x: f32[B, 1, 28, 28]`, with no copy.

use super::Column;
use compiler::check::{Dim, Ty};
use compiler::ir::DType;

/// The dims (per example) and dtype a batch of `col` gets under `declared`,
/// or why it cannot.
pub fn fit(col: &Column, declared: &Ty) -> Result<(Vec<usize>, DType), String> {
    let stored = col.values.type_name();
    let dtype = match (stored, declared.dtype) {
        ("u8", DType::F32 | DType::F64 | DType::I32) => declared.dtype,
        ("u8", d) => return Err(format!("bytes (u8) can be batched as f32, f64 or i32, not {d}")),
        (s, d) if s == d.to_string() => d,
        (s, d) => {
            return Err(format!(
                "the data holds {s} values, not {d}: convert them when saving (numpy: `a.astype(np.{})`)",
                match d {
                    DType::F32 => "float32",
                    DType::F64 => "float64",
                    DType::I32 => "int32",
                    DType::Bool => "bool_",
                }
            ))
        }
    };
    let Some((_, per)) = declared.dims.split_first() else {
        return Err("the declaration has no batch dimension: expected the batch first, e.g. `f32[B, ...]`".into());
    };
    let n = col.example_len();
    let known: Vec<Option<usize>> = per
        .iter()
        .map(|d| match d {
            Dim::Known(k) => Some(*k),
            Dim::Sym(_) => None,
        })
        .collect();
    let n_sym = known.iter().filter(|k| k.is_none()).count();
    let product: usize = known.iter().flatten().product();
    let dims = if n_sym == 0 {
        if product != n {
            return Err(format!("the declaration has {product} values per example, the data {n}"));
        }
        known.iter().flatten().copied().collect()
    } else if per.len() == col.dims.len() {
        for (i, (k, &d)) in known.iter().zip(&col.dims).enumerate() {
            if let Some(k) = k {
                if *k != d {
                    return Err(format!(
                        "dimension {} (after the batch) is {k} in the declaration, {d} in the data",
                        i + 1
                    ));
                }
            }
        }
        col.dims.clone()
    } else if n_sym == 1 && product > 0 && n.is_multiple_of(product) {
        known.iter().map(|k| k.unwrap_or(n / product)).collect()
    } else {
        return Err(format!(
            "the declaration has {} dimensions per example, the data {}, and its symbolic dimensions cannot be solved for {n} values",
            per.len(),
            col.dims.len()
        ));
    };
    Ok((dims, dtype))
}

#[cfg(test)]
mod tests;
