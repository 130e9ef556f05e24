//! The runtime: executing compiled programs on a device.
//!
//! `Executable` is one compiled IR function, run by the Cranelift JIT
//! (`Backend::Cpu`, the default), by the reference interpreter
//! (`Backend::Interpreter`, the oracle), or on an NVIDIA GPU
//! (`Backend::Cuda`, only in builds with the `cuda` feature: `cuda.rs`).
//! The runtime knows nothing of syntax. CPU runs flush subnormals to zero
//! unless asked not to (`denormals.rs` says why).

use compiler::ir::{Func, Tensor, Type};

pub mod cubin_cache;
pub mod denormals;
pub mod held;

pub use held::Holding;

#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda")]
pub mod nvjitlink;

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
    /// What runs the programs, for the run's header: `cpu (Cranelift JIT)`,
    /// `interpreter`, or `cuda (NVIDIA H100 80GB HBM3)`.
    pub fn describe(self) -> String {
        match self {
            Backend::Cpu => "cpu (Cranelift JIT)".into(),
            Backend::Interpreter => "interpreter (reference, slow)".into(),
            #[cfg(feature = "cuda")]
            Backend::Cuda => match cuda::device_name() {
                Ok(name) => format!("cuda ({name})"),
                Err(e) => format!("cuda ({e})"),
            },
            #[cfg(not(feature = "cuda"))]
            Backend::Cuda => "cuda (not built in)".into(),
        }
    }

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
    #[error("input {index} has shape {ty} ({expected} values) but holds {found} values")]
    InputData { index: usize, ty: Type, expected: usize, found: usize },
    #[error("CUDA backend: {0}")]
    Cuda(String),
    #[error("held inputs: {0}")]
    Holding(String),
}

/// True when this binary was built with the CUDA backend.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Whether `Backend::Cuda` can run here (a CUDA build, a driver, a device),
/// or why not.
pub fn cuda_available() -> Result<(), Error> {
    #[cfg(feature = "cuda")]
    return cuda::probe();
    #[cfg(not(feature = "cuda"))]
    Err(Error::Cuda("this binary was built without CUDA support (rebuild with `--features cuda`)".into()))
}

/// Lightning's `accelerator="auto"`: the GPU when `cuda_available`, else
/// the CPU JIT, with a line saying which and why.
pub fn auto_backend() -> (Backend, String) {
    match cuda_available() {
        #[cfg(feature = "cuda")]
        Ok(()) => {
            let name = cuda::device_name().unwrap_or_else(|_| "a CUDA device".into());
            (Backend::Cuda, format!("accelerator auto: cuda ({name})"))
        }
        #[cfg(not(feature = "cuda"))]
        Ok(()) => (Backend::Cuda, "accelerator auto: cuda".into()),
        Err(e) => (Backend::Cpu, format!("accelerator auto: cpu ({e})")),
    }
}

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
    /// Held inputs and carried outputs (`held.rs`); `None` until `hold`.
    holding: Option<Holding>,
    /// The CPU engines' held values (CUDA keeps them on the device).
    host_held: held::HostHeld,
    /// The next call's fresh inputs, when the last call staged them.
    staged: Staged,
}

/// A `run_held_staging` call's fresh inputs.
pub enum Fresh {
    /// Given with the call.
    Given(Vec<Tensor>),
    /// The `next` of the call before.
    Staged,
}

/// Where the fresh inputs staged for the next call are.
#[derive(Default)]
enum Staged {
    #[default]
    Nothing,
    /// Kept on the host (CPU engines).
    Host(Vec<Tensor>),
    /// In the engine (CUDA: on their way to the device).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    Engine,
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
        Ok(Executable {
            func,
            engine,
            flush_denormals: true,
            holding: None,
            host_held: Default::default(),
            staged: Staged::Nothing,
        })
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

    /// Runs the program; checks the inputs' types first. Not while inputs
    /// are held (`release` first): on a GPU, held values live in the input
    /// buffers that `run` fills.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        if self.holding.is_some() {
            return Err(Error::Holding("run while inputs are held (call run_held, or release first)".into()));
        }
        if inputs.len() != self.func.n_params {
            return Err(Error::InputCount { expected: self.func.n_params, found: inputs.len() });
        }
        self.check_types(inputs.iter().enumerate())?;
        self.run_unchecked(inputs)
    }

    fn check_types<'a>(&self, inputs: impl Iterator<Item = (usize, &'a Tensor)>) -> Result<(), Error> {
        for (index, input) in inputs {
            let expected = self.func.ty(self.func.param(index));
            if !input.has_type(expected) {
                if input.dtype() == expected.dtype && input.shape == expected.shape {
                    return Err(Error::InputData {
                        index,
                        ty: expected.clone(),
                        expected: expected.shape.num_elements(),
                        found: input.stored_len(),
                    });
                }
                return Err(Error::InputType { index, expected: expected.clone(), found: input.ty() });
            }
        }
        Ok(())
    }

    /// Holds inputs between calls (see `held.rs`): `values` gives each held
    /// input's index and first value; after every `run_held`, output `o` of
    /// each `(o, i)` in `carry` becomes held input `i`'s value. Replaces any
    /// earlier holding.
    pub fn hold(&mut self, values: Vec<(usize, Tensor)>, carry: &[(usize, usize)]) -> Result<(), Error> {
        let indices: Vec<usize> = values.iter().map(|(i, _)| *i).collect();
        let holding = Holding::new(&self.func, &indices, carry)?;
        self.check_types(values.iter().map(|(i, t)| (*i, t)))?;
        self.holding = None;
        self.staged = Staged::Nothing;
        self.host_held.recorded.clear();
        // The last holding's kept outputs are not this one's values.
        self.host_held.kept.clear();
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => {
                self.host_held.values = (0..self.func.n_params).map(|_| None).collect();
                for (i, t) in values {
                    self.host_held.values[i] = Some(t);
                }
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => {
                for (i, t) in &values {
                    exe.write_input(*i, t)?;
                }
                exe.set_carry(&holding)?;
            }
        }
        self.holding = Some(holding);
        Ok(())
    }

    /// Runs the program on the held inputs and `fresh` (the other inputs, in
    /// order); returns the outputs that are not carried, in order.
    pub fn run_held(&mut self, fresh: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        self.run_held_staging(Fresh::Given(fresh), None)
    }

    /// `run_held` with the fresh inputs given or staged by the call before,
    /// staging `next` (the next call's fresh inputs, checked now) for the
    /// call after. On a GPU, `next` goes to the device while this call
    /// computes (pinned memory, a copy stream of its own): a training loop
    /// passes batch k + 1 with step k, and `Fresh::Staged` to step k + 1.
    /// Any other call (`run_held`, `hold`) forgets a staged batch, as does
    /// a call that fails (its `next` is checked first: a rejected call
    /// stages nothing and leaves nothing staged).
    pub fn run_held_staging(&mut self, fresh: Fresh, next: Option<Vec<Tensor>>) -> Result<Vec<Tensor>, Error> {
        self.with_holding(|exe, holding| exe.run_staging_with(holding, fresh, next))
    }

    /// Runs `call` with the holding lent out of `self` (it needs `self`
    /// mutably too), put back afterwards whatever `call` returns.
    fn with_holding<R>(&mut self, call: impl FnOnce(&mut Self, &Holding) -> Result<R, Error>) -> Result<R, Error> {
        let holding = self.holding.take().ok_or_else(|| Error::Holding("run_held before hold".into()))?;
        let result = call(self, &holding);
        self.holding = Some(holding);
        result
    }

    fn run_staging_with(
        &mut self,
        holding: &Holding,
        fresh: Fresh,
        next: Option<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>, Error> {
        let staged = std::mem::take(&mut self.staged);
        if let Some(next) = &next {
            self.check_fresh(holding, next)?;
        }
        let fresh = match fresh {
            Fresh::Given(fresh) => {
                self.check_fresh(holding, &fresh)?;
                Some(fresh)
            }
            Fresh::Staged => match staged {
                Staged::Nothing => {
                    return Err(Error::Holding("Fresh::Staged, but the call before staged no inputs".into()))
                }
                Staged::Host(fresh) => Some(fresh),
                Staged::Engine => None,
            },
        };
        let outputs = match &mut self.engine {
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.run_held_staging(holding, fresh.as_deref(), next.as_deref())?,
            _ => self.run_held_with(holding, fresh.expect("host engines stage on the host"))?,
        };
        self.staged = match next {
            None => Staged::Nothing,
            #[cfg(feature = "cuda")]
            Some(_) if matches!(self.engine, Engine::Cuda(_)) => Staged::Engine,
            Some(next) => Staged::Host(next),
        };
        Ok(outputs)
    }

    fn check_fresh(&self, holding: &Holding, fresh: &[Tensor]) -> Result<(), Error> {
        if fresh.len() != holding.fresh.len() {
            return Err(Error::InputCount { expected: holding.fresh.len(), found: fresh.len() });
        }
        self.check_types(holding.fresh.iter().copied().zip(fresh))
    }

    /// One call on the held inputs and `fresh` (checked).
    fn run_held_with(&mut self, holding: &Holding, fresh: Vec<Tensor>) -> Result<Vec<Tensor>, Error> {
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => {
                let (mut fresh, mut returned) = (fresh, Vec::new());
                self.run_held_host(holding, &mut fresh, &mut returned)?;
                Ok(returned)
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.run_held(holding, &fresh),
        }
    }

    /// `run_held` writing into the caller's vectors: `fresh` (checked) is
    /// taken for the call and given back after it (the same tensors, the
    /// caller's to refill), and `outputs` is cleared and filled with the
    /// returned outputs, the tensors it held (the caller's last outputs,
    /// handed back) reused for them (after an error it is empty, and the
    /// fresh inputs are given back still). On the CPU engines a
    /// steady-state call then allocates nothing (`tests/alloc.rs`). Forgets
    /// a staged batch.
    pub fn run_held_into(&mut self, fresh: &mut Vec<Tensor>, outputs: &mut Vec<Tensor>) -> Result<(), Error> {
        self.with_holding(|exe, holding| exe.run_held_into_with(holding, fresh, outputs))
    }

    fn run_held_into_with(
        &mut self,
        holding: &Holding,
        fresh: &mut Vec<Tensor>,
        outputs: &mut Vec<Tensor>,
    ) -> Result<(), Error> {
        self.staged = Staged::Nothing;
        self.check_fresh(holding, fresh)?;
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => self.run_held_host(holding, fresh, outputs),
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => {
                *outputs = exe.run_held_staging(holding, Some(fresh), None)?;
                Ok(())
            }
        }
    }

    /// One call of a CPU engine on the held inputs and `fresh` (checked,
    /// given back after the call); the returned outputs into `returned`,
    /// whose old tensors become spares for this call's outputs.
    fn run_held_host(
        &mut self,
        holding: &Holding,
        fresh: &mut Vec<Tensor>,
        returned: &mut Vec<Tensor>,
    ) -> Result<(), Error> {
        self.host_held.spare.append(returned);
        let mut inputs = std::mem::take(&mut self.host_held.inputs);
        self.host_held.assemble_into(holding, fresh.drain(..), &mut inputs);
        let mut outputs = std::mem::take(&mut self.host_held.outputs);
        let ran = match &mut self.engine {
            Engine::Jit(f) => {
                let _flush = self.flush_denormals.then(denormals::FlushDenormals::new);
                f.run_into(&inputs, &mut self.host_held.spare, &mut outputs);
                Ok(())
            }
            _ => self.run_unchecked(&inputs).map(|o| outputs = o),
        };
        if let Err(e) = ran {
            // The held values go back, the fresh inputs to the caller.
            self.host_held.restore(holding, &mut inputs, fresh);
            self.host_held.inputs = inputs;
            return Err(e);
        }
        self.host_held.settle_into(holding, &mut inputs, &mut outputs, fresh, returned);
        self.host_held.inputs = inputs;
        self.host_held.outputs = outputs;
        Ok(())
    }

    /// From now on, `run_held` leaves `outputs` in the engine (on the
    /// device, for CUDA) instead of returning them; `kept_output` reads them.
    pub fn keep_outputs(&mut self, outputs: &[usize]) -> Result<(), Error> {
        let holding = self.holding.as_mut().ok_or_else(|| Error::Holding("keep_outputs before hold".into()))?;
        holding.keep(outputs)
    }

    /// From now on, each `run_held` appends the values of `outputs` (in
    /// this order) to a record instead of returning them, and
    /// `take_recorded` hands over the rows so far. On a GPU the values
    /// stay on the device, so a call that returns nothing else does not
    /// wait for the device: a training loop reads its logged values every
    /// few steps, not every step. `capacity` is how many rows the engine
    /// holds before it copies them out itself (on a GPU, a wait); the
    /// record holds every row either way.
    pub fn record_outputs(&mut self, outputs: &[usize], capacity: usize) -> Result<(), Error> {
        let holding = self.holding.as_mut().ok_or_else(|| Error::Holding("record_outputs before hold".into()))?;
        if !holding.recorded.is_empty() {
            return Err(Error::Holding("outputs are recorded already".into()));
        }
        if outputs.is_empty() {
            return Err(Error::Holding("record_outputs names no outputs to record".into()));
        }
        // Checked on a copy: the holding changes only once the engine
        // has its record (a failed device allocation leaves it as it was).
        let mut recording = holding.clone();
        recording.record(outputs)?;
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => {
                let _ = capacity; // The host record simply grows.
                self.host_held.recorded.clear();
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.set_recording(outputs, capacity.max(1))?,
        }
        self.holding = Some(recording);
        Ok(())
    }

    /// The recorded outputs of every `run_held` since the last take, one
    /// row per call, in call order (on a GPU, waits for the last call).
    pub fn take_recorded(&mut self) -> Result<Vec<Vec<Tensor>>, Error> {
        if self.holding.as_ref().is_none_or(|h| h.recorded.is_empty()) {
            return Err(Error::Holding("take_recorded, but no outputs are recorded".into()));
        }
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => Ok(std::mem::take(&mut self.host_held.recorded)),
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.take_recorded(),
        }
    }

    /// Kept output `index` of the last `run_held` (a copy).
    pub fn kept_output(&mut self, index: usize) -> Result<Tensor, Error> {
        let holding = self.holding.as_ref().ok_or_else(|| Error::Holding("kept_output before hold".into()))?;
        if !holding.kept.contains(&index) {
            return Err(Error::Holding(format!("output {index} is not kept")));
        }
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => self.host_held.kept.get(index).cloned().flatten().ok_or_else(|| {
                Error::Holding(format!("output {index} has no value yet (no run_held since it was kept)"))
            }),
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.read_output(index),
        }
    }

    /// The current value of held input `index` (a copy).
    pub fn held_value(&mut self, index: usize) -> Result<Tensor, Error> {
        let holding = self.holding.as_ref().ok_or_else(|| Error::Holding("held_value before hold".into()))?;
        if index >= holding.held.len() || !holding.held[index] {
            return Err(Error::Holding(format!("input {index} is not held")));
        }
        match &mut self.engine {
            Engine::Jit(_) | Engine::Interp => {
                Ok(self.host_held.values[index].clone().expect("held value present between calls"))
            }
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.read_input(index),
        }
    }

    /// Ends the holding and returns the held inputs' current values, by
    /// input index.
    pub fn release(&mut self) -> Result<Vec<(usize, Tensor)>, Error> {
        let Some(holding) = self.holding.as_ref() else { return Ok(Vec::new()) };
        let held: Vec<usize> = (0..holding.held.len()).filter(|&i| holding.held[i]).collect();
        let values = held.into_iter().map(|i| Ok((i, self.held_value(i)?))).collect::<Result<Vec<_>, Error>>()?;
        self.holding = None;
        self.host_held = Default::default();
        self.staged = Staged::Nothing;
        Ok(values)
    }

    fn run_unchecked(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        let _flush = self.flush_denormals.then(denormals::FlushDenormals::new);
        Ok(match &mut self.engine {
            Engine::Jit(f) => f.run(inputs),
            Engine::Interp => compiler::ir::interp::run(&self.func, inputs),
            #[cfg(feature = "cuda")]
            Engine::Cuda(exe) => exe.run(inputs)?,
        })
    }
}
