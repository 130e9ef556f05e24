//! Front-end types: dtypes with possibly symbolic shapes (`f32[B, 784]`).
//!
//! A `Dim` is known (`784`) or symbolic (`B`). Checking a function on its
//! declared types uses symbolic dims; lowering for a concrete batch uses
//! known dims only, and then a `Ty` converts to an IR `Type`.

use crate::ir::{DType, Shape, Type};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    Sym(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => write!(f, "{s}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ty {
    pub dtype: DType,
    pub dims: Vec<Dim>,
}

impl Ty {
    pub fn scalar(dtype: DType) -> Ty {
        Ty { dtype, dims: vec![] }
    }
    pub fn known(ty: &Type) -> Ty {
        Ty { dtype: ty.dtype, dims: ty.shape.0.iter().map(|&d| Dim::Known(d)).collect() }
    }
    pub fn rank(&self) -> usize {
        self.dims.len()
    }
    pub fn with_dtype(&self, dtype: DType) -> Ty {
        Ty { dtype, dims: self.dims.clone() }
    }
    /// The IR type, if every dim is known.
    pub fn to_ir(&self) -> Option<Type> {
        let dims = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                Dim::Sym(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Type { dtype: self.dtype, shape: Shape(dims) })
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dtype)?;
        if !self.dims.is_empty() {
            write!(f, "[")?;
            for (i, d) in self.dims.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{d}")?;
            }
            write!(f, "]")?;
        }
        Ok(())
    }
}

impl Dim {
    /// The dim `a * b * ...`, canonical: a known product stays known; with
    /// symbols, `(B * T * 3)`: symbolic factors sorted, then the known
    /// factor, so equal products are equal dims whatever their order.
    pub fn product(dims: &[Dim]) -> Dim {
        let (known, syms) = dim_factors(dims);
        product_dim(known, syms)
    }
}

/// The product of `dims` as (known factor, symbolic factors): a merged dim
/// such as `(B * 128)` (from `Dim::product`, `flatten` or `reshape`) counts
/// as its factors.
pub fn dim_factors(dims: &[Dim]) -> (usize, Vec<String>) {
    fn add(text: &str, known: &mut usize, syms: &mut Vec<String>) {
        let inner = text.strip_prefix('(').and_then(|t| t.strip_suffix(')'));
        match inner {
            // Only the form `product_dim` writes: factors joined by " * ", no nesting.
            Some(inner) if !inner.contains('(') => {
                for part in inner.split(" * ") {
                    add(part, known, syms);
                }
            }
            _ => match text.parse::<usize>() {
                // Saturating: a written dim near usize::MAX (`N * 450` with a
                // huge const) must not overflow here; it is refused as too
                // large where its size matters.
                Ok(n) => *known = known.saturating_mul(n),
                Err(_) => syms.push(text.to_string()),
            },
        }
    }
    let (mut known, mut syms): (usize, _) = (1, Vec::new());
    for d in dims {
        match d {
            Dim::Known(n) => known = known.saturating_mul(*n),
            Dim::Sym(s) => add(s, &mut known, &mut syms),
        }
    }
    (known, syms)
}

/// The dim `known * syms...` in `Dim::product`'s canonical form.
pub fn product_dim(known: usize, mut syms: Vec<String>) -> Dim {
    if syms.is_empty() {
        return Dim::Known(known);
    }
    syms.sort();
    if known != 1 {
        syms.push(known.to_string());
    }
    if syms.len() == 1 {
        Dim::Sym(syms.remove(0))
    } else {
        Dim::Sym(format!("({})", syms.join(" * ")))
    }
}
