//! The JaxLightning compiler: source text in, compiled programs out.
//!
//! source -lex-> tokens -parse-> ast -check-> checked ast -lower-> ir
//!   -differentiate-> ir (with grads) -optimize-> ir -emit-> machine code
//!
//! No stage does IO except `stdlib`'s loading of module files. Only
//! `codegen::cpu` links Cranelift.

pub mod diagnostic;
pub mod ir;
pub mod span;
pub mod syntax;
pub mod check;
pub mod lower;
