//! Backends: turn a verified `ir::Func` into something that runs.
//!
//! `cpu` JIT-compiles with Cranelift for the host. Every backend must agree
//! with `ir::interp::run`, the definition of each op.

pub mod cpu;
pub mod ptx;

pub use cpu::{compile, CodegenError, CpuFunc};

#[cfg(test)]
pub(crate) mod tests;
