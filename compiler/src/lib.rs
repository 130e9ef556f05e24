//! The JaxLightning compiler: source text in, compiled programs out.
//!
//! source -lex-> tokens -parse-> ast -check-> checked ast -lower-> ir
//!   -differentiate-> ir (with grads) -optimize-> ir -emit-> machine code
//!
//! No stage does IO: stdlib modules are embedded in the binary. Only
//! `codegen::cpu` links Cranelift.

pub mod autodiff;
pub mod check;
pub mod diagnostic;
pub mod codegen;
pub mod ir;
pub mod lower;
pub mod span;
pub mod syntax;
pub mod opt;
