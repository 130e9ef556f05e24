//! Type and shape checking. The rules live here; the walk over the AST is
//! shared with lowering (`lower::Elaborator` in check mode, where dims may be
//! symbolic and no IR is built).

pub mod shape_rules;
pub mod types;

pub use types::{Dim, Ty};
