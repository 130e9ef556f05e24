//! The JaxLightning compiler: source text in, compiled programs out.
//!
//! source -lex-> tokens -parse-> ast -check-> checked ast -lower-> ir
//!   -differentiate-> ir (with grads) -optimize-> ir -emit-> machine code
//!
//! No stage does IO. Only `codegen::cpu` links Cranelift.

pub mod ir;
pub mod opt;
