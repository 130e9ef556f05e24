//! The CPU backend: JIT-compiles an `ir::Func` to host machine code with
//! Cranelift and runs it on host tensors.
//!
//! Consumes a verified `ir::Func`; produces a `CpuFunc` that owns the machine
//! code and a buffer arena.
//!
//! Memory model: one arena. `schedule.rs` decides which values are computed
//! in registers inside a consumer's loop (inlined: no buffer at all);
//! `plan.rs` places the other buffers by liveness, reusing the bytes of dead
//! values (first fit, 64-byte aligned). `Reshape`, `StopGradient` and
//! same-dtype `Convert` alias their operand's buffer. The compiled function
//! takes one argument, a table of buffer base pointers indexed by `ValueId`
//! (built once in `compile`). `run` points the parameters' table entries at
//! the input tensors' own data (no copy; inputs are only read) and the
//! entries of each output's buffer at a freshly allocated result tensor (the
//! code writes the result in place), then calls it; it falls back to copying
//! through the arena for data not aligned to 16 bytes (the widest vector
//! access), outputs that are parameters, and outputs sharing a buffer. Bools
//! are stored as one byte, 0 or 1.
//!
//! Code shape (`emit.rs`): one loop per fusion group, in program order: a
//! materialized elementwise value is ONE loop over its elements evaluating
//! the whole tree of its inlined producers (elementwise ops, constants,
//! broadcasts read through stride-0 pointers, `pow` by a constant small
//! integer as multiplications), f32x4/f64x2 on the innermost dim when every
//! op of the tree is lane-wise exact. Reductions evaluate their inlined
//! producer tree per source element. Every other op (matmul, argmax,
//! slice/pad/concat/transpose, iota, anything new) is one loop nest per
//! instruction reading its operands' buffers. Exp, log, tanh and logistic
//! are inline polynomial code in the fused loops (`vmath.rs`, lane-wise, so
//! vectorized too) unless `Options::inline_math` is off; the other
//! transcendentals (non-constant pow, log1p, expm1, sin, cos, erf; and exp,
//! log, tanh, logistic without `inline_math`) and MatMul call host routines
//! once per array (`kernels.rs`).
//! A scan's body is compiled as its own `CpuFunc`, run by a loop step
//! between the chunks (`scan.rs`).
//!
//! Results equal `ir::interp::run` bitwise except `MatMul` (the `gemm`
//! crate's summation order), constant-integer `pow` (within 3 ulp of
//! `powf`, see `emit::pow_by_multiplication`) and, with `inline_math` (the
//! default), exp/log (within 1 ulp of the host libm), tanh/logistic (within
//! 2 ulp), see `vmath.rs` for the per-dtype bounds and how they are tested.

mod batch_matmul;
mod conv;
mod emit;
mod gather;
mod host_ops;
mod kernels;
pub(crate) mod plan;
mod random;
mod reduction_order;
mod scan;
pub(crate) mod schedule;
mod scratch;
mod siblings;
pub mod threads;
pub(crate) mod vmath;
pub(crate) mod vmath_x16;
mod wide;

use std::mem::ManuallyDrop;

use cranelift_codegen::ir::{types, AbiParam, UserFuncName};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};

use crate::ir::{self, DType, Data, Func, Op, Tensor};
use kernels::HostFn;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error("invalid IR function: {0}")]
    InvalidFunc(String),
    #[error("%{inst} = {op}: not supported by the CPU backend on {ty}")]
    Unsupported { inst: usize, op: &'static str, ty: ir::Type },
    #[error("host CPU not supported: {0}")]
    Host(String),
    #[error("cranelift setting: {0}")]
    Setting(#[from] settings::SetError),
    #[error("cranelift: {0}")]
    Codegen(#[from] cranelift_codegen::CodegenError),
    #[error("cranelift module: {0}")]
    Module(Box<cranelift_module::ModuleError>),
}

impl From<cranelift_module::ModuleError> for CodegenError {
    fn from(err: cranelift_module::ModuleError) -> CodegenError {
        CodegenError::Module(Box::new(err))
    }
}

/// One 64-byte line of the arena; a `Vec` of these is 64-byte aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Instructions per Cranelift function (see `compile`).
const INSTS_PER_FUNCTION: usize = 64;

/// The signature of the compiled function: a table of buffer base pointers.
type EntryFn = unsafe extern "C" fn(*const *mut u8);

/// A compiled function, ready to run on host tensors.
pub struct CpuFunc {
    /// Owns the machine code; freed in `Drop`, after which `entries` dangle.
    module: ManuallyDrop<JITModule>,
    /// The chunks of the program and its scan loops, run in order.
    steps: Vec<Step>,
    arena: Vec<Line>,
    /// The base pointer of each value's buffer (into `arena`), the compiled
    /// code's argument.
    table: Vec<*mut u8>,
    /// Byte offset in the arena of each value's buffer.
    offsets: Vec<usize>,
    /// For each parameter, the values sharing its buffer (itself and its
    /// views): their table entries point at the input's data during `run`.
    param_views: Vec<Vec<usize>>,
    /// For each output, the values sharing its buffer when the code may
    /// write it straight into the result tensor (a buffer of its own, not a
    /// parameter's, not another output's); `None`: copied out of the arena.
    output_views: Vec<Option<Vec<usize>>>,
    /// Tests: always copy inputs and outputs through the arena.
    #[cfg(test)]
    copy_io: bool,
    param_types: Vec<ir::Type>,
    output_types: Vec<ir::Type>,
    outputs: Vec<ir::ValueId>,
    /// How many transposes the GEMMs read through strides (no copy).
    strided_transposes: usize,
    /// Whether the program calls routines that may split work over the
    /// host kernels' threads: then a call runs on the pool (`execute`).
    threaded: bool,
    /// `run_into`'s result tensors written in place, kept between calls.
    direct: Vec<Option<Tensor>>,
}

/// One piece of a compiled program: a chunk of machine code, or a scan loop
/// (`scan.rs`) running between chunks.
enum Step {
    Jit(EntryFn),
    Scan(Box<scan::ScanStep>),
}

/// A piece before finalization.
enum Pending {
    Jit(cranelift_module::FuncId),
    Scan(Box<scan::ScanStep>),
}

impl Drop for CpuFunc {
    fn drop(&mut self) {
        // Safety: `entry` points into this module's memory and is never called
        // again: `self` is going away.
        unsafe { ManuallyDrop::take(&mut self.module).free_memory() };
    }
}

/// Code generation choices of the CPU backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Exp, log, tanh and logistic as inline polynomials fused with their
    /// neighbours (within 1-2 ulp of the interpreter, see `vmath.rs`);
    /// false: one host libm call per array, bitwise the interpreter.
    pub inline_math: bool,
    /// A reduction's loop also computes the elementwise results of its
    /// source's shape, and values used by one loop only are computed there
    /// (`cpu/siblings.rs`); false: the plain schedule (for tests: the same
    /// values, bitwise, by more loops).
    pub horizontal_fusion: bool,
    /// With `inline_math`, on hosts with AVX-512F: a fused loop whose result
    /// is an f32 exp, log, tanh or logistic computes that function on
    /// 512-bit vectors, one host call per row or chunk of 1024 elements
    /// (`vmath_x16.rs`), bitwise the same results as on Cranelift's 128-bit
    /// vectors; false: inline code only.
    pub wide_math: bool,
    /// Large fused elementwise loops are outlined and run in parts on the
    /// host kernels' threads (`emit/parallel.rs`), bitwise the same results;
    /// false: every loop inline on the calling thread.
    pub parallel_loops: bool,
    /// On hosts with AVX-512F: fused f32 loops (elementwise rows and long
    /// sums) whose trees the wide encoder covers run as 512-bit machine
    /// code (`wide.rs`), bitwise the same results; false: Cranelift's
    /// 128-bit loops only.
    pub wide_loops: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { inline_math: true, horizontal_fusion: true, wide_math: true, parallel_loops: true, wide_loops: true }
    }
}

/// Whether this host runs wide loops (`Options::wide_loops`): AVX-512F,
/// BMI2 and FMA.
pub fn wide_available() -> bool {
    wide::available()
}

/// Compiles `func` for the host CPU with the default `Options`.
pub fn compile(func: &Func) -> Result<CpuFunc, CodegenError> {
    compile_with(func, &Options::default())
}

/// Compiles `func` for the host CPU.
pub fn compile_with(func: &Func, options: &Options) -> Result<CpuFunc, CodegenError> {
    compile_listing(func, options, None)
}

/// The machine code of one Cranelift function of a compiled program: the
/// instructions `insts` of the IR as compiled (after the backend's own
/// passes: `JLC_SCHEDULE_DUMP` writes that IR), before linking (the
/// addresses of host routines are still zeros, named in `text`). An
/// `outlined` function is the loop of one instruction, run in parts on the
/// host kernels' threads and called from the chunk listed after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkCode {
    pub insts: std::ops::Range<usize>,
    pub outlined: bool,
    /// A 512-bit kernel of a fused loop (`wide.rs`), called by the code
    /// listed after it; its text is its bytes in hex.
    pub wide: bool,
    pub bytes: Vec<u8>,
    /// Cranelift's listing of the code (its VCode text).
    pub text: String,
}

/// The machine code `compile_with` generates for `func`, chunk by chunk
/// (scan loops run their bodies' own code, not listed). `jlc dump --stage
/// asm` prints it; compiling one program twice gives the same bytes.
pub fn machine_code(func: &Func, options: &Options) -> Result<Vec<ChunkCode>, CodegenError> {
    let mut listing = Vec::new();
    compile_listing(func, options, Some(&mut listing))?;
    Ok(listing)
}

/// The IR as the backend compiles `func` (custom rules inlined, scans
/// grouped, reductions placed), each line tagged with its schedule
/// (`inlined`, `loop`, `hosted by %r`, `tiled into %r`, ...).
pub fn schedule_listing(func: &Func, options: &Options) -> Result<String, CodegenError> {
    let (func, sched) = scheduled(func, options)?;
    Ok(schedule::annotated(&func, &sched))
}

/// `func` checked and prepared for code generation, and its schedule.
fn scheduled(func: &Func, options: &Options) -> Result<(Func, schedule::Schedule), CodegenError> {
    ir::verify::verify(func).map_err(CodegenError::InvalidFunc)?;
    // A custom derivative rule matters only to autodiff: run the function.
    let inlined = ir::custom_vjp::inline_rules(func);
    check_supported(&inlined)?;
    // Sibling scans adjacent, so that each loop runs once (`scan.rs`).
    let grouped = ir::scan::group_siblings(&ir::scan_prune::tidy(&inlined));
    // Reductions before the loops they can host (`reduction_order.rs`).
    let func =
        if options.horizontal_fusion { reduction_order::place_reductions_before_siblings(&grouped) } else { grouped };
    let wide_math = options.wide_math && vmath_x16::available();
    let mut sched = schedule::schedule(&func, options.inline_math, options.horizontal_fusion, wide_math);
    sched.wide_loops = options.wide_loops && wide::available();
    Ok((func, sched))
}

fn compile_listing(
    func: &Func,
    options: &Options,
    mut listing: Option<&mut Vec<ChunkCode>>,
) -> Result<CpuFunc, CodegenError> {
    let (prepared, sched) = scheduled(func, options)?;
    let func = &prepared;
    let plan = plan::plan(func, &sched);
    // For profiles: the IR as compiled, each line tagged with its schedule.
    if let Some(path) = std::env::var_os("JLC_SCHEDULE_DUMP") {
        let _ = std::fs::write(path, schedule::annotated(func, &sched));
    }

    let mut flags = settings::builder();
    flags.set("opt_level", "speed")?;
    flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    // The JIT places host routines anywhere in the address space.
    flags.set("use_colocated_libcalls", "false")?;
    flags.set("is_pic", "false")?;
    let isa = cranelift_native::builder()
        .map_err(|msg| CodegenError::Host(msg.to_string()))?
        .finish(settings::Flags::new(flags))?;
    if isa.pointer_type() != types::I64 {
        return Err(CodegenError::Host("the CPU backend needs 64-bit pointers".into()));
    }
    let mut jit_builder = JITBuilder::with_isa(isa, default_libcall_names());
    for host in HostFn::ALL {
        jit_builder.symbol(host.name(), host.address());
    }
    let mut module = JITModule::new(jit_builder);

    // One Cranelift function per chunk of instructions, called in order:
    // compile time stays linear in program size (register allocation over
    // one huge function is not: an unrolled 10,000-step loop took minutes).
    let mut sig = module.make_signature();
    sig.params.push(AbiParam::new(types::I64));
    let mut ctx = module.make_context();
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut pending = Vec::new();
    // For profiles: the machine code of every chunk (Cranelift's VCode text).
    let disasm_path = std::env::var_os("JLC_DISASM");
    let mut disasm = String::new();
    let want_text = disasm_path.is_some() || listing.is_some();
    ctx.set_disasm(want_text);
    let n_insts = func.insts.len();
    // Chunks end where a scan loop runs (after its run's last instruction).
    let mut pieces: Vec<(usize, usize, Option<Vec<usize>>)> = Vec::new();
    let mut at = 0;
    for group in scan::groups(func) {
        let end = group.last().expect("groups are non-empty") + 1;
        pieces.extend((at..end).step_by(INSTS_PER_FUNCTION).map(|s| (s, (s + INSTS_PER_FUNCTION).min(end), None)));
        pieces.push((end, end, Some(group)));
        at = end;
    }
    let end = n_insts.max(1);
    pieces.extend((at..end).step_by(INSTS_PER_FUNCTION).map(|s| (s, (s + INSTS_PER_FUNCTION).min(end), None)));
    // Whether any chunk calls a routine that may use the host kernels' threads.
    let mut threaded = false;
    for (chunk, (start, stop, group)) in pieces.into_iter().enumerate() {
        if let Some(group) = group {
            pending.push(Pending::Scan(Box::new(scan::ScanStep::new(func, &group, options)?)));
            // A scan's body may call anything.
            threaded = true;
            continue;
        }
        let func_id = module.declare_function(&format!("jl_chunk{chunk}"), Linkage::Local, &sig)?;
        ctx.func.signature = sig.clone();
        ctx.func.name = UserFuncName::user(0, func_id.as_u32());
        let outlined = {
            let builder = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
            let mut emitter = emit::Emitter::new(builder, &mut module, func, &sched)
                .with_listing(want_text)
                .with_parallel_loops(options.parallel_loops);
            for index in start..stop.min(n_insts) {
                emitter.emit_inst(index)?;
            }
            threaded |= emitter.calls_threaded_routines();
            emitter.finish()
        };
        // Loops outlined to run on threads, listed before their caller.
        for emit::Listed { index, bytes, text, wide } in outlined {
            if disasm_path.is_some() {
                let what = if wide { "512-bit kernel of the loop" } else { "loop" };
                let threads = if wide { "" } else { ", run in parts on threads" };
                disasm.push_str(&format!("; {what} of instruction {index}{threads}\n{text}\n"));
            }
            if let Some(listing) = listing.as_deref_mut() {
                listing.push(ChunkCode { insts: index..index + 1, outlined: !wide, wide, bytes, text });
            }
        }
        module.define_function(func_id, &mut ctx)?;
        if let Some(code) = ctx.compiled_code() {
            let text = code.vcode.clone().unwrap_or_default();
            if disasm_path.is_some() {
                disasm.push_str(&format!("; jl_chunk{chunk}: instructions {start}..{stop}\n{text}\n"));
            }
            if let Some(listing) = listing.as_deref_mut() {
                listing.push(ChunkCode {
                    insts: start..stop,
                    outlined: false,
                    wide: false,
                    bytes: code.code_buffer().to_vec(),
                    text,
                });
            }
        }
        module.clear_context(&mut ctx);
        ctx.set_disasm(want_text);
        pending.push(Pending::Jit(func_id));
    }
    if let Some(path) = disasm_path {
        let _ = std::fs::write(path, disasm);
    }
    module.finalize_definitions()?;
    let steps = pending
        .into_iter()
        .map(|piece| match piece {
            Pending::Jit(id) => {
                let code = module.get_finalized_function(id);
                // Safety: `code` was compiled from a function with exactly this signature
                // in the host's default calling convention (`extern "C"`).
                Step::Jit(unsafe { std::mem::transmute::<*const u8, EntryFn>(code) })
            }
            Pending::Scan(step) => Step::Scan(step),
        })
        .collect();

    let mut arena = vec![Line([0; 64]); plan.bytes.div_ceil(64).max(1)];
    let base = arena.as_mut_ptr() as *mut u8;
    // Safety: every offset lies inside the arena (see `plan`). The arena is
    // never resized, so these pointers stay valid as long as `CpuFunc` lives.
    let table = plan.offsets.iter().map(|&offset| unsafe { base.add(offset) }).collect();
    let views_of = |owner: usize| -> Vec<usize> { (0..n_insts).filter(|&v| plan.owners[v] == owner).collect() };
    let param_views = (0..func.n_params).map(views_of).collect();
    let output_owners: Vec<usize> = func.outputs.iter().map(|out| plan.owners[out.index()]).collect();
    let output_views = output_owners
        .iter()
        .enumerate()
        .map(|(k, &owner)| {
            let shared = output_owners.iter().enumerate().any(|(j, &other)| j != k && other == owner);
            (owner >= func.n_params && !shared).then(|| views_of(owner))
        })
        .collect();
    Ok(CpuFunc {
        module: ManuallyDrop::new(module),
        steps,
        arena,
        table,
        offsets: plan.offsets,
        param_views,
        output_views,
        #[cfg(test)]
        copy_io: false,
        param_types: func.param_types(),
        output_types: func.output_types(),
        outputs: func.outputs.clone(),
        strided_transposes: sched.strided.iter().filter(|&&s| s).count(),
        threaded,
        direct: Vec::new(),
    })
}

/// Rejects the typings the verifier allows but the interpreter does not
/// define (it panics on them), so that no such program reaches codegen.
fn check_supported(func: &Func) -> Result<(), CodegenError> {
    for (index, inst) in func.insts.iter().enumerate() {
        let unsupported = match &inst.op {
            Op::Neg | Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } => {
                inst.ty.dtype == DType::Bool
            }
            Op::Gather | Op::ScatterAdd | Op::BatchMatMul => false,
            Op::RandomBits | Op::RandomSplit | Op::RandomUniform => false,
            // The body is checked when `scan::ScanStep::new` compiles it.
            Op::Scan(_) => false,
            // Inlined by `compile_with` before this check.
            Op::CustomVjp(_) => true,
            Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => false,
            Op::Exp | Op::Log | Op::Tanh | Op::Sqrt => false,
            Op::Log1p | Op::Expm1 | Op::Logistic | Op::Sin | Op::Cos | Op::Rsqrt | Op::Erf => false,
            Op::Abs | Op::Sign | Op::StopGradient => false,
            Op::Floor | Op::Ceil | Op::Round => false,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => false,
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => false,
            Op::Select | Op::Convert | Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } => false,
            Op::MatMul | Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
            Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => false,
            Op::SelectAndScatter(_) => false,
        };
        if unsupported {
            return Err(CodegenError::Unsupported { inst: index, op: ir::op::name(&inst.op), ty: inst.ty.clone() });
        }
    }
    Ok(())
}

impl CpuFunc {
    /// Runs on host tensors; panics if input types differ from the params
    /// (the caller checks).
    pub fn run(&mut self, inputs: &[Tensor]) -> Vec<Tensor> {
        self.run_reusing(inputs, &mut Vec::new())
    }

    /// `run`, writing outputs into tensors of `spare` of their type where
    /// there are some (taken out of it) instead of fresh ones: the code
    /// writes every element of its results (as it must in the arena, which
    /// is never cleared), so old contents do not matter. `spare` must not
    /// hold any of `inputs`.
    pub fn run_reusing(&mut self, inputs: &[Tensor], spare: &mut Vec<Tensor>) -> Vec<Tensor> {
        let mut outputs = Vec::new();
        self.run_into(inputs, spare, &mut outputs);
        outputs
    }

    /// `run_reusing`, writing the results into `outputs` (cleared first,
    /// its capacity kept): with enough `spare` tensors and `outputs`'
    /// capacity from an earlier call, a call allocates nothing.
    pub fn run_into(&mut self, inputs: &[Tensor], spare: &mut Vec<Tensor>, outputs: &mut Vec<Tensor>) {
        assert_eq!(inputs.len(), self.param_types.len(), "cpu: wrong number of inputs");
        let arena = self.arena.as_mut_ptr() as *mut u8;
        for (index, (input, ty)) in inputs.iter().zip(&self.param_types).enumerate() {
            assert!(input.has_type(ty), "cpu: input {index} has type {}, not {ty}", input.ty());
            let data = data_ptr(&input.data);
            if self.in_place(data) {
                // The code only reads parameter buffers (see `plan`).
                for &view in &self.param_views[index] {
                    self.table[view] = data;
                }
            } else {
                for &view in &self.param_views[index] {
                    // Safety: the plan's offsets lie inside the arena.
                    self.table[view] = unsafe { arena.add(self.offsets[view]) };
                }
                let offset = self.offsets[index];
                write_data(&mut arena_bytes_mut(&mut self.arena)[offset..], &input.data);
            }
        }
        // Result tensors the code writes in place.
        let mut direct = std::mem::take(&mut self.direct);
        direct.clear();
        direct.resize_with(self.outputs.len(), || None);
        for (k, ty) in self.output_types.iter().enumerate() {
            let Some(views) = &self.output_views[k] else { continue };
            let tensor = match spare.iter().position(|t| t.has_type(ty)) {
                Some(at) => spare.swap_remove(at),
                None => Tensor::zeros(ty),
            };
            let data = data_ptr(&tensor.data);
            let target = if self.in_place(data) {
                direct[k] = Some(tensor);
                data
            } else {
                // Safety: the plan's offsets lie inside the arena.
                unsafe { arena.add(self.offsets[views[0]]) }
            };
            for &view in views {
                self.table[view] = target;
            }
        }
        // Safety: the table has one valid buffer per materialized value, each
        // as large as its result type and aligned for any access the code
        // makes (the arena's 64 bytes, or 16 for tensors' data: `in_place`),
        // which is all the compiled code touches; the code never writes the
        // parameters' buffers, which may be the inputs' data.
        unsafe { self.execute() };
        outputs.clear();
        outputs.extend(self.outputs.iter().zip(&self.output_types).zip(direct.drain(..)).map(
            |((value, ty), direct)| {
                // Safety: the buffer holds a value of type `ty` (see above).
                direct.unwrap_or_else(|| unsafe { read_tensor(self.table[value.index()], ty) })
            },
        ));
        self.direct = direct;
    }

    /// Whether the code may use tensor data at `data` as a buffer: aligned
    /// for the widest vector access (16 bytes).
    fn in_place(&self, data: *mut u8) -> bool {
        #[cfg(test)]
        if self.copy_io {
            return false;
        }
        data as usize % 16 == 0
    }

    /// Runs the steps on the arena as it is.
    ///
    /// # Safety
    /// The param buffers hold values of the param types.
    unsafe fn execute(&mut self) {
        // The whole call runs on a thread of the host kernels' pool (with
        // more than one thread): the GEMMs and parallel loops inside it then
        // split on that pool directly, instead of handing work from this
        // thread to the pool and back once per kernel.
        struct Call(*mut CpuFunc);
        // Safety: the caller's `&mut self` is lent to the pool thread for
        // the call, and this thread waits for it.
        unsafe impl Send for Call {}
        impl Call {
            fn run(self) {
                // Safety: see `execute`'s contract.
                unsafe { (*self.0).execute_here() }
            }
        }
        if !self.threaded {
            // Safety: as this function's.
            return unsafe { self.execute_here() };
        }
        let call = Call(self as *mut CpuFunc);
        threads::parallel(move || call.run());
    }

    /// `execute` on this thread.
    ///
    /// # Safety
    /// As `execute`.
    unsafe fn execute_here(&mut self) {
        for step in &mut self.steps {
            match step {
                // Safety: the table has one valid, aligned buffer per
                // materialized value, each as large as its result type, which
                // is all the compiled code touches.
                Step::Jit(entry) => unsafe { entry(self.table.as_ptr()) },
                // Safety: the steps before it computed the scan's operands.
                Step::Scan(scan) => unsafe { scan.run(&self.table) },
            }
        }
    }

    pub fn param_types(&self) -> &[ir::Type] {
        &self.param_types
    }

    pub fn output_types(&self) -> &[ir::Type] {
        &self.output_types
    }

    /// How many transposes the GEMMs read through swapped strides instead
    /// of copying them (`schedule::Schedule::strided`).
    pub fn strided_transposes(&self) -> usize {
        self.strided_transposes
    }
}

fn arena_bytes_mut(arena: &mut [Line]) -> &mut [u8] {
    // Safety: `Line` is plain bytes with no padding.
    unsafe { std::slice::from_raw_parts_mut(arena.as_mut_ptr() as *mut u8, arena.len() * 64) }
}

/// Writes tensor data into the start of `dst` in the arena's layout.
fn write_data(dst: &mut [u8], data: &Data) {
    fn put<T: Copy>(dst: &mut [u8], values: &[T]) {
        let bytes = std::mem::size_of_val(values);
        assert!(dst.len() >= bytes, "cpu: buffer too small");
        // Safety: `T` is a primitive number type and `dst` holds `bytes` bytes.
        unsafe { std::ptr::copy_nonoverlapping(values.as_ptr() as *const u8, dst.as_mut_ptr(), bytes) };
    }
    match data {
        Data::F32(values) => put(dst, values),
        Data::F64(values) => put(dst, values),
        Data::I32(values) => put(dst, values),
        Data::Bool(values) => {
            for (byte, &value) in dst.iter_mut().zip(values) {
                *byte = value as u8;
            }
        }
    }
}

/// The address of tensor data (dangling but aligned when empty).
fn data_ptr(data: &Data) -> *mut u8 {
    match data {
        Data::F32(values) => values.as_ptr() as *mut u8,
        Data::F64(values) => values.as_ptr() as *mut u8,
        Data::I32(values) => values.as_ptr() as *mut u8,
        // One byte, 0 or 1: the arena's layout of bools.
        Data::Bool(values) => values.as_ptr() as *mut u8,
    }
}

/// Reads a tensor of type `ty` from a buffer at `src`.
///
/// Safety: `src` points to a live buffer holding a value of type `ty`,
/// aligned for its element type.
unsafe fn read_tensor(src: *const u8, ty: &ir::Type) -> Tensor {
    unsafe fn get<T: Copy>(src: *const u8, n: usize) -> Vec<T> {
        assert_eq!(src as usize % std::mem::align_of::<T>(), 0, "cpu: misaligned buffer");
        // Safety: the caller's contract; `T` is a primitive number type,
        // valid for any bit pattern.
        unsafe { std::slice::from_raw_parts(src as *const T, n) }.to_vec()
    }
    let n = ty.shape.num_elements();
    let data = match ty.dtype {
        DType::F32 => Data::F32(unsafe { get(src, n) }),
        DType::F64 => Data::F64(unsafe { get(src, n) }),
        DType::I32 => Data::I32(unsafe { get(src, n) }),
        DType::Bool => Data::Bool(unsafe { get::<u8>(src, n) }.into_iter().map(|b| b != 0).collect()),
    };
    Tensor { shape: ty.shape.clone(), data }
}

/// `func` compiled with `options`, always copying inputs and outputs
/// through the arena (the fallback of `run` for unaligned data).
#[cfg(test)]
pub(super) fn compile_copying_io(func: &Func, options: &Options) -> Result<CpuFunc, CodegenError> {
    let mut cpu = compile_with(func, options)?;
    cpu.copy_io = true;
    Ok(cpu)
}

/// The schedule `compile` uses, for tests of the memory plan.
#[cfg(test)]
pub(super) fn schedule_for_tests(func: &Func) -> schedule::Schedule {
    let o = Options::default();
    schedule::schedule(func, o.inline_math, o.horizontal_fusion, o.wide_math && vmath_x16::available())
}

/// The order `compile` schedules (`reduction_order.rs`), for tests.
#[cfg(test)]
pub(super) fn reorder_for_tests(func: &Func) -> Func {
    reduction_order::place_reductions_before_siblings(&ir::scan::group_siblings(func))
}

/// The buffers `compile` places, for tests of the memory plan.
#[cfg(test)]
pub(super) fn plan_for_tests(func: &Func, sched: &schedule::Schedule) -> Vec<plan::Buffer> {
    plan::plan(func, sched).buffers
}
