//! The runtime: executing compiled programs on a device.
//!
//! `Executable` is one compiled IR function, run by the Cranelift JIT
//! (`Backend::Cpu`, the default), by the reference interpreter
//! (`Backend::Interpreter`, the oracle), or on an NVIDIA GPU
//! (`Backend::Cuda`, only in builds with the `cuda` feature: `cuda.rs`).
//! The runtime knows nothing of syntax. CPU runs flush subnormals to zero
//! unless asked not to (`denormals.rs` says why).

use compiler::ir::{Func, Tensor, Type};

pub mod denormals;

#[cfg(feature = "cuda")]
pub mod cuda;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Machine code from Cranelift, with GEMM calls for matrix products.
    Cpu,
    /// The reference interpreter: slow, obviously correct.
    Interpreter,
    /// PTX kernels and cuBLAS on an NVIDIA GPU (needs the `cuda` feature).
    Cuda,
}

impl Backend {
    pub fn parse(name: &str) -> Option<Backend> {
        match name {
            "cpu" | "jit" => Some(Backend::Cpu),
            "interp" | "interpreter" => Some(Backend::Interpreter),
            "cuda" | "gpu" => Some(Backend::Cuda),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("code generation failed: {0}")]
    Codegen(String),
    #[error("input {index} has type {found}, but the program expects {expected}")]
    InputType { index: usize, expected: Type, found: Type },
    #[error("the program takes {expected} inputs, {found} were given")]
    InputCount { expected: usize, found: usize },
    #[error("CUDA backend: {0}")]
    Cuda(String),
}

/// True when this binary was built with the CUDA backend.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

enum Engine {
    Jit(Box<compiler::codegen::cpu::CpuFunc>),
    Interp,
    #[cfg(feature = "cuda")]
    Cuda(Box<cuda::CudaExecutable>),
}

pub struct Executable {
    func: Func,
    engine: Engine,
    /// Run CPU engines with subnormals flushed to zero (default: yes).
    flush_denormals: bool,
}

impl Executable {
    pub fn compile(func: Func, backend: Backend) -> Result<Executable, Error> {
        let engine = match backend {
            Backend::Cpu => Engine::Jit(Box::new(
                compiler::codegen::cpu::compile(&func).map_err(|e| Error::Codegen(e.to_string()))?,
            )),
            Backend::Interpreter => Engine::Interp,
            #[cfg(feature = "cuda")]
            Backend::Cuda => Engine::Cuda(Box::new(cuda::CudaExecutable::compile(&func)?)),
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => {
                return Err(Error::Cuda(
                    "this binary was built without CUDA support (rebuild with `--features cuda`)".into(),
                ))
            }
        };
        Ok(Executable { func, engine, flush_denormals: true })
    }

    pub fn func(&self) -> &Func {
        &self.func
    }

    /// Whether CPU runs (the JIT and the interpreter alike, so they stay
    /// comparable) flush subnormal floats to zero, as XLA's CPU client does.
    /// On by default; off gives IEEE subnormals at their cost in speed.
    pub fn set_flush_denormals(&mut self, flush: bool) {
        self.flush_denormals = flush;
    }

    /// Runs the program; checks the inputs' types first.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        if inputs.len() != self.func.n_params {
            return Err(Error::InputCount { expected: self.func.n_params, found: inputs.len() });
        }
        for (index, (input, expected)) in inputs.iter().zip(self.func.param_types()).enumerate() {
            if input.ty() != expected {
                return Err(Error::InputType { index, expected, found: input.ty() });
            }
        }
        let _flush = self.flush_denormals.then(denormals::FlushDenormals::new);
        Ok(match &mut self.engine {
            Engine::Jit(f) => f.run(inputs),
            Engine::Interp => compiler::ir::interp::run(&self.func, inputs),
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.run(inputs)?,
        })
    }
}
