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
