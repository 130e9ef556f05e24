//! The embedding API: compile a model file's functions from Rust and call
//! them, with their gradients, as JAX's `jit` and `value_and_grad` do.
//!
//! Consumes a source file (its `use` imports read from disk, relative to it)
//! and host tensors; produces host tensors. A `Module` is the checked file;
//! `Module::function` names one of its functions; `Function::grad` asks
//! for its value and gradient with respect to some arguments; `Function::jit`
//! gives a callable that compiles on the first call for each combination of
//! argument types (functions are shape-generic, `f32[N]`, like a JAX
//! function traced per shape) and keeps the executables.
//!
//! ```no_run
//! use jaxlightning::embed::Module;
//! use jaxlightning::compiler::ir::Tensor;
//! let module = Module::from_file("examples/embed_model.jl")?;
//! let mut loss = module.function("loss")?.jit(jaxlightning::runtime::Backend::Cpu);
//! let mut step = module.function("loss")?.grad(&["w", "b"])?.jit(jaxlightning::runtime::Backend::Cpu);
//! # let (w, b, x, y) = (Tensor::scalar_f32(0.0), Tensor::scalar_f32(0.0), Tensor::scalar_f32(0.0), Tensor::scalar_f32(0.0));
//! let value = loss.call(&[w.clone(), b.clone(), x.clone(), y.clone()])?;
//! let value_and_grads = step.call(&[w, b, x, y])?; // [loss, dloss/dw, dloss/db]
//! # Ok::<(), jaxlightning::embed::EmbedError>(())
//! ```

use crate::{read_import, with_big_stack};
use compiler::diagnostic::{render_all, Diagnostic};
use compiler::ir::{Tensor, Type};
use compiler::lower::program::Global;
use compiler::syntax::ast::Item;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    /// Diagnostics, rendered with their source lines (no colour).
    #[error("{0}")]
    Compile(String),
    #[error("no function `{name}` in {file}; its functions are: {available}")]
    UnknownFunction { name: String, file: String, available: String },
    #[error("`{function}` has no parameter `{name}`; its parameters are: {params}")]
    UnknownParameter { function: String, name: String, params: String },
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
}

/// A checked source file.
pub struct Module {
    name: String,
    prog: Arc<compiler::lower::Program>,
}

impl Module {
    /// Reads, parses and checks `path` (and what it imports).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Module, EmbedError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| EmbedError::Read { path: path.display().to_string(), message: e.to_string() })?;
        Module::from_source(&path.display().to_string(), &text)
    }

    /// Parses and checks `text`; `name` is the file name that diagnostics
    /// show and that imports resolve against.
    pub fn from_source(name: &str, text: &str) -> Result<Module, EmbedError> {
        let loaded = with_big_stack(|| {
            let (prog, mut diags) = compiler::lower::load_with(name, text, &mut read_import);
            diags.extend(compiler::lower::check_program(&prog));
            if diags.iter().any(Diagnostic::is_error) {
                Err(render_all(&diags, &prog.sources, false))
            } else {
                Ok(prog)
            }
        });
        let prog = loaded.map_err(EmbedError::Compile)?;
        Ok(Module { name: name.to_string(), prog: Arc::new(prog) })
    }

    /// The names of the file's own functions (not its imports'), in order.
    pub fn functions(&self) -> Vec<String> {
        let items = &self.prog.user().ast.items;
        items.iter().filter_map(|it| if let Item::Fn(f) = it { Some(f.name.name.clone()) } else { None }).collect()
    }

    /// The function `name` of this file.
    pub fn function(&self, name: &str) -> Result<Function, EmbedError> {
        let Some(Global::Fn { module, item }) = self.prog.user().scope.get(name).copied() else {
            return Err(EmbedError::UnknownFunction {
                name: name.to_string(),
                file: self.name.clone(),
                available: self.functions().join(", "),
            });
        };
        let params = self.prog.fn_decl(module, item).params.iter().map(|p| p.name.name.clone()).collect();
        Ok(Function { prog: self.prog.clone(), name: name.to_string(), params, wrt: None })
    }
}

/// A function of a `Module`, possibly differentiated.
#[derive(Clone)]
pub struct Function {
    prog: Arc<compiler::lower::Program>,
    name: String,
    params: Vec<String>,
    wrt: Option<Vec<usize>>,
}

impl Function {
    /// The parameter names, in order.
    pub fn params(&self) -> &[String] {
        &self.params
    }

    /// Value and gradient: the function's results, then the gradient of its
    /// first result (a float scalar) with respect to each of `wrt`, in the
    /// order given.
    pub fn grad(&self, wrt: &[&str]) -> Result<Function, EmbedError> {
        if self.wrt.is_some() {
            // It would silently replace the first `wrt` (a first derivative, not a second).
            return Err(EmbedError::Compile(format!(
                "`{}` is a gradient already: for higher derivatives write them in the language \
                 (`grad(grad(f))`, `jvp(grad(f), ...)`) and embed that function",
                self.name
            )));
        }
        let indices = wrt
            .iter()
            .map(|w| {
                self.params.iter().position(|p| p == w).ok_or_else(|| EmbedError::UnknownParameter {
                    function: self.name.clone(),
                    name: w.to_string(),
                    params: self.params.join(", "),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Function { wrt: Some(indices), ..self.clone() })
    }

    /// A callable compiled for `backend` per argument types, on first use.
    pub fn jit(&self, backend: runtime::Backend) -> Jit {
        self.jit_with(backend, compiler::Options::default())
    }

    /// `jit` with compiler options (`no_opt`, disabled rules).
    pub fn jit_with(&self, backend: runtime::Backend, options: compiler::Options) -> Jit {
        Jit { function: self.clone(), backend, options, compiled: HashMap::new() }
    }
}

/// A compiled function: one executable per argument-type signature.
pub struct Jit {
    function: Function,
    backend: runtime::Backend,
    options: compiler::Options,
    compiled: HashMap<Vec<Type>, runtime::Executable>,
}

impl Jit {
    /// Runs the function on `inputs` (compiling first if these argument
    /// types are new); returns its outputs, flattened.
    pub fn call(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, EmbedError> {
        let types: Vec<Type> = inputs.iter().map(Tensor::ty).collect();
        if !self.compiled.contains_key(&types) {
            let exe = self.compile(&types)?;
            self.compiled.insert(types.clone(), exe);
        }
        Ok(self.compiled.get_mut(&types).expect("inserted above").run(inputs)?)
    }

    /// How many argument-type signatures have been compiled.
    pub fn compiled_signatures(&self) -> usize {
        self.compiled.len()
    }

    fn compile(&self, types: &[Type]) -> Result<runtime::Executable, EmbedError> {
        let (f, options) = (&self.function, &self.options);
        let func = with_big_stack(|| {
            compiler::compile_function(&f.prog, &f.name, types, f.wrt.as_deref(), options)
                .map_err(|d| render_all(&d, &f.prog.sources, false))
        })
        .map_err(EmbedError::Compile)?;
        Ok(runtime::Executable::compile(func, self.backend)?)
    }
}

#[cfg(test)]
mod tests;
