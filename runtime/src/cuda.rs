//! The CUDA engine: runs a `codegen::ptx::PtxProgram` on an NVIDIA GPU.
//!
//! Consumes an `ir::Func` (compiled here to PTX by `compiler::codegen::ptx`);
//! produces a `CudaExecutable` that owns the loaded module, one device
//! buffer per planned buffer, and a cuBLAS handle, and runs on host tensors:
//! copy the fresh inputs in, run the steps in order on one stream, copy the
//! returned outputs out. Held inputs (`held.rs`) stay in their input buffers
//! between calls; carried outputs are copied into them on the device at the
//! end of each call.
//!
//! CUDA graphs: the first call launches the steps one by one (a warm-up that
//! also surfaces launch errors); the second captures the same sequence
//! (kernels, GEMMs, carry copies) into a graph, and every later call with
//! the same carry replays it: one launch per step instead of hundreds.
//! Every buffer has a fixed address for the executable's life, so the
//! captured pointers stay valid. If capture fails (a driver or cuBLAS that
//! cannot capture), the engine says so once on stderr and keeps launching
//! plainly. `JLC_CUDA_GRAPHS=0` turns graphs off (for comparisons).
//!
//! `JLC_CUDA_PROFILE=1` times every step (graphs off, the stream
//! synchronized after each launch, so launch latency is included) and
//! prints the 25 slowest steps of each executable to stderr when it is
//! dropped: where a step's time goes, without a profiler on the machine.
//! `JLC_CUDA_LOAD_TIMES=1` prints where loading an executable's time goes
//! (the driver's PTX JIT, buffers, kernels and cuBLAS). `JLC_CUDA_TF32=1`
//! lets float32 GEMMs use TF32 tensor cores (off by default: true f32).
//!
//! The CUDA libraries are dlopen'ed by cudarc at run time, so this builds
//! anywhere. Before touching cudarc's driver API (which panics when
//! `libcuda` is missing) we probe for the library and return an error.
//! cuBLAS is needed (and probed) only for programs with a matrix product;
//! it gets a fixed workspace so that its calls can be captured.
//!
//! One stream of our own (the legacy default stream cannot be captured),
//! so cudarc's per-buffer event tracking is disabled; kernel arguments are
//! raw device addresses taken once at load time. Fresh inputs staged a call
//! ahead (`run_held_staging`) travel on a second stream, ordered against
//! this one by two events (`cuda/upload.rs`).

use std::sync::Arc;

use compiler::codegen::ptx::{self, PtxProgram, Step};
use compiler::ir::{DType, Data, Func, Tensor, Type};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};

mod record;
mod upload;

use crate::cubin_cache::CubinCache;
use crate::nvjitlink::NvJitLink;
use crate::{Error, Holding};

fn cuda_err(what: &str) -> impl Fn(cudarc::driver::DriverError) -> Error + '_ {
    move |e| Error::Cuda(format!("{what}: {e:?}"))
}

/// Checks that a CUDA driver and a device are present, without panicking.
pub fn probe() -> Result<(), Error> {
    // Safety: only tries to dlopen the library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(Error::Cuda("no CUDA driver found (libcuda.so could not be loaded)".into()));
    }
    let n = CudaContext::device_count().map_err(cuda_err("counting devices"))?;
    if n < 1 {
        return Err(Error::Cuda("no CUDA device found".into()));
    }
    Ok(())
}

/// The name of device 0, for logs ("NVIDIA H100 80GB HBM3").
pub fn device_name() -> Result<String, Error> {
    open()?.name()
}

/// Device 0's primary context, kept open while this lives. Every
/// `CudaExecutable` holds one too; a program that compiles several in turn
/// (a benchmark) holds one across them so that the context is created once,
/// not per executable.
pub struct Device(Arc<CudaContext>);

impl Device {
    pub fn name(&self) -> Result<String, Error> {
        self.0.name().map_err(cuda_err("reading the device name"))
    }
}

/// Opens device 0 (see `Device`).
pub fn open() -> Result<Device, Error> {
    probe()?;
    Ok(Device(CudaContext::new(0).map_err(cuda_err("creating a context"))?))
}

/// cuBLAS's workspace: NVIDIA recommends 32 MiB on Hopper; a fixed one
/// keeps cuBLAS from allocating inside a graph capture.
const CUBLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// What a step needs at run time.
enum Launch {
    Kernel {
        func: CudaFunction,
        grid: u32,
        args: Vec<usize>,
    },
    /// Operand buffers `a`, `b`, `c` with element offsets and batch strides.
    Gemm {
        dtype: DType,
        dims: (usize, usize, usize, usize),
        bufs: [usize; 3],
        offsets: [usize; 3],
        strides: [usize; 3],
    },
}

/// A device-to-device copy of `bytes` at the end of a call (carry).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Copy {
    src: u64,
    dst: u64,
    bytes: usize,
}

/// The graph of one carry plan.
struct Captured {
    carry: Vec<Copy>,
    graph: CudaGraph,
}

pub struct CudaExecutable {
    prog: PtxProgram,
    stream: Arc<CudaStream>,
    blas: Option<cudarc::cublas::CudaBlas>,
    _blas_workspace: Option<CudaSlice<u8>>,
    /// One allocation per slot of the memory plan (`prog.memory`: buffers
    /// whose lives do not overlap share one); `None` for empty slots
    /// (nothing is allocated or copied). Parameters and outputs have
    /// slots of their own, of their exact size.
    slots: Vec<Option<CudaSlice<u8>>>,
    /// Device address of each buffer (0 for empty ones).
    ptrs: Vec<u64>,
    launches: Vec<Launch>,
    /// The carry copies of the current holding, in order (staging copies
    /// first where a carried output lives in another held input's buffer).
    carry: Vec<Copy>,
    /// Buffers the staging copies go through.
    _staging: Vec<CudaSlice<u8>>,
    /// Outputs read from a copy taken before the carry: an output that is
    /// a held input (`self.log("t", self.t)`: the emitter gives it the
    /// input's buffer) would otherwise read the value carried into it, not
    /// this call's (the CPU engines return the call's).
    snapshots: Vec<(usize, CudaSlice<u8>)>,
    /// Calls made so far (the first one is never captured).
    calls: u64,
    graph: Option<Captured>,
    /// Graphs are off (`JLC_CUDA_GRAPHS=0`) or capture failed once.
    no_graphs: bool,
    /// `JLC_CUDA_PROFILE=1`: total seconds per step over all calls.
    profile: Option<Vec<f64>>,
    /// The next call's fresh inputs, copied during this one
    /// (`run_held_staging`); made at the first staging.
    upload: Option<upload::Upload>,
    /// The recorded outputs of `run_held` calls (`Executable::record_outputs`).
    recorder: Option<record::Recorder>,
    _modules: Vec<Arc<CudaModule>>,
    _ctx: Arc<CudaContext>,
}

impl CudaExecutable {
    /// Compiles `func` to PTX and loads it on device 0.
    pub fn compile(func: &Func) -> Result<CudaExecutable, Error> {
        let prog = ptx::emit(func).map_err(|e| Error::Codegen(e.to_string()))?;
        CudaExecutable::load(prog)
    }

    /// Loads an emitted program on device 0 and allocates its buffers.
    pub fn load(prog: PtxProgram) -> Result<CudaExecutable, Error> {
        let mut phases = LoadTimes::new();
        probe()?;
        let ctx = CudaContext::new(0).map_err(cuda_err("creating a context"))?;
        phases.done("context");
        // Safety: one stream, used in program order, so no cross-stream
        // synchronization is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;
        let needs_blas = prog.steps.iter().any(|step| matches!(step, Step::Gemm { .. }));
        let (modules, blas, how) = machine_code_and_blas(&ctx, &stream, &prog.ptx, needs_blas)?;
        let (blas, workspace) = blas.unzip();
        phases.done(&how);
        let mut slots = Vec::with_capacity(prog.memory.slot_bytes.len());
        let mut slot_ptrs = Vec::with_capacity(prog.memory.slot_bytes.len());
        for &bytes in &prog.memory.slot_bytes {
            if bytes == 0 {
                slots.push(None);
                slot_ptrs.push(0);
                continue;
            }
            let slice = alloc(&stream, bytes)?;
            let ptr = device_ptr(&slice, &stream);
            // Fused kernels move four 4-byte elements with one 16-byte
            // access from each buffer's start (a slot's start, the memory
            // plan's invariant): a misaligned one would be a sticky error.
            if ptr % 16 != 0 {
                return Err(Error::Cuda(format!(
                    "the driver returned a device allocation at {ptr:#x}, not 16-byte aligned (vector loads need it)"
                )));
            }
            // 0xFF bytes (NaN floats, -1 integers), not zeros: a kernel
            // that read what it had not written would show in the GPU tests
            // (as in `ptx::sim`), not pass by the zeros' luck.
            // Safety: our allocation of `bytes` bytes, on this stream.
            unsafe { cudarc::driver::result::memset_d8_async(ptr, 0xff, bytes, stream.cu_stream()) }
                .map_err(cuda_err("filling a new buffer"))?;
            slot_ptrs.push(ptr);
            slots.push(Some(slice));
        }
        let ptrs: Vec<u64> = prog.memory.slot_of.iter().map(|&slot| slot_ptrs[slot]).collect();
        phases.done("buffers");
        let mut launches = Vec::with_capacity(prog.steps.len());
        for step in &prog.steps {
            launches.push(match step {
                Step::Kernel { name, grid, args, .. } => {
                    let module = modules
                        .iter()
                        .find(|(names, _)| names.contains(name))
                        .map(|(_, m)| m)
                        .ok_or_else(|| Error::Cuda(format!("kernel {name} is missing from the PTX")))?;
                    let func = module.load_function(name).map_err(cuda_err("loading a kernel"))?;
                    Launch::Kernel { func, grid: *grid, args: args.clone() }
                }
                Step::Gemm { dtype, batch, m, n, k, a, b, c, offsets, strides, .. } => Launch::Gemm {
                    dtype: *dtype,
                    dims: (*batch, *m, *n, *k),
                    bufs: [*a, *b, *c],
                    offsets: *offsets,
                    strides: *strides,
                },
            });
        }
        phases.done("kernels");
        phases.report(&prog);
        let profile = std::env::var("JLC_CUDA_PROFILE").is_ok_and(|v| v == "1").then(|| vec![0.0; launches.len()]);
        let no_graphs = profile.is_some() || std::env::var("JLC_CUDA_GRAPHS").is_ok_and(|v| v == "0");
        Ok(CudaExecutable {
            prog,
            stream,
            blas,
            _blas_workspace: workspace,
            slots,
            ptrs,
            launches,
            carry: Vec::new(),
            _staging: Vec::new(),
            snapshots: Vec::new(),
            calls: 0,
            graph: None,
            no_graphs,
            profile,
            upload: None,
            recorder: None,
            _modules: modules.into_iter().map(|(_, m)| m).collect(),
            _ctx: ctx,
        })
    }

    pub fn program(&self) -> &PtxProgram {
        &self.prog
    }

    /// Copies `t` into input `index`'s buffer.
    pub fn write_input(&mut self, index: usize, t: &Tensor) -> Result<(), Error> {
        let buf = self.prog.params[index];
        if let Some(dst) = self.slots[self.prog.memory.slot_of[buf]].as_mut() {
            self.stream.memcpy_htod(&to_bytes(t), dst).map_err(cuda_err("copying an input to the device"))?;
        }
        Ok(())
    }

    /// Copies input `index`'s buffer to the host.
    pub fn read_input(&mut self, index: usize) -> Result<Tensor, Error> {
        let buf = self.prog.params[index];
        self.download(self.slots[self.prog.memory.slot_of[buf]].as_ref(), &self.prog.param_types[index])
    }

    /// Copies output `index` (as the last call left it) to the host.
    pub fn read_output(&mut self, index: usize) -> Result<Tensor, Error> {
        self.download(self.output_slice(index), &self.prog.output_types[index])
    }

    /// Where output `index`'s value is after a call: its snapshot, else its
    /// buffer's slot (`None`: empty).
    fn output_slice(&self, index: usize) -> Option<&CudaSlice<u8>> {
        match self.snapshots.iter().find(|(o, _)| *o == index) {
            Some((_, snapshot)) => Some(snapshot),
            None => self.slots[self.prog.memory.slot_of[self.prog.outputs[index]]].as_ref(),
        }
    }

    /// The bytes of `src` (`None`: an empty buffer) as a tensor of `ty`,
    /// once the calls queued before have run.
    fn download(&self, src: Option<&CudaSlice<u8>>, ty: &Type) -> Result<Tensor, Error> {
        let bytes = match src {
            Some(src) => self.stream.clone_dtoh(src).map_err(cuda_err("copying a buffer to the host"))?,
            None => Vec::new(),
        };
        self.stream.synchronize().map_err(cuda_err("running the program"))?;
        Ok(from_bytes(ty, &bytes))
    }

    /// Plans the carry copies of `holding`: output buffer to input buffer.
    /// A carried output that lives in another held input's buffer (an
    /// output that is an input) would be overwritten by that input's own
    /// carry first, so it goes through a staging buffer; an output not
    /// carried that lives in a buffer carried into is copied aside first
    /// (`snapshots`).
    pub fn set_carry(&mut self, holding: &Holding) -> Result<(), Error> {
        // A new holding: a staged batch and recorded values were for the old one.
        if let Some(up) = self.upload.as_mut() {
            up.discard();
        }
        self.recorder = None;
        let mut staged = Vec::new();
        let mut copies = Vec::new();
        let mut staging = Vec::new();
        let carried_into: Vec<usize> = holding.carry.iter().map(|&(_, i)| self.prog.params[i]).collect();
        // Buffers a carry overwrites (a carry onto itself does not).
        let mut overwritten = Vec::new();
        for &(o, i) in &holding.carry {
            let (src, dst) = (self.prog.outputs[o], self.prog.params[i]);
            let bytes = self.prog.buffers[src].bytes();
            if src == dst || bytes == 0 {
                continue;
            }
            overwritten.push(dst);
            if carried_into.contains(&src) {
                let tmp = alloc(&self.stream, bytes)?;
                let tmp_ptr = device_ptr(&tmp, &self.stream);
                staged.push(Copy { src: self.ptrs[src], dst: tmp_ptr, bytes });
                copies.push(Copy { src: tmp_ptr, dst: self.ptrs[dst], bytes });
                staging.push(tmp);
            } else {
                copies.push(Copy { src: self.ptrs[src], dst: self.ptrs[dst], bytes });
            }
        }
        let mut snapshots = Vec::new();
        for (o, &buf) in self.prog.outputs.iter().enumerate() {
            let carried = holding.carry.iter().any(|&(c, _)| c == o);
            if !carried && overwritten.contains(&buf) {
                let bytes = self.prog.buffers[buf].bytes();
                let tmp = alloc(&self.stream, bytes)?;
                staged.push(Copy { src: self.ptrs[buf], dst: device_ptr(&tmp, &self.stream), bytes });
                snapshots.push((o, tmp));
            }
        }
        staged.extend(copies);
        self.carry = staged;
        self._staging = staging;
        self.snapshots = snapshots;
        Ok(())
    }

    /// Runs the program; the caller has checked the inputs' types. Writes
    /// every input buffer and copies every output out; no carry.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        for (i, input) in inputs.iter().enumerate() {
            self.write_input(i, input)?;
        }
        self.carry.clear();
        self.snapshots.clear();
        self.execute()?;
        let outputs: Vec<usize> = (0..self.prog.outputs.len()).collect();
        self.read_outputs(&outputs)
    }

    /// Runs the program on the held inputs and `fresh` (the inputs
    /// `holding.fresh` names, types checked), carries, and returns the
    /// outputs `holding.returned` names.
    pub fn run_held(&mut self, holding: &Holding, fresh: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        self.run_held_staging(holding, Some(fresh), None)
    }

    /// `run_held` with the fresh inputs given (`Some`) or staged by the
    /// call before (`None`), staging `next` (types checked) for the call
    /// after: its copy to the device (`cuda/upload.rs`: pinned memory, a
    /// stream of its own) runs while this call's steps do.
    pub fn run_held_staging(
        &mut self,
        holding: &Holding,
        fresh: Option<&[Tensor]>,
        next: Option<&[Tensor]>,
    ) -> Result<Vec<Tensor>, Error> {
        match fresh {
            Some(fresh) => {
                if let Some(up) = self.upload.as_mut() {
                    up.discard();
                }
                for (&i, t) in holding.fresh.iter().zip(fresh) {
                    self.write_input(i, t)?;
                }
            }
            None => {
                let dst: Vec<u64> = holding.fresh.iter().map(|&i| self.ptrs[self.prog.params[i]]).collect();
                let up = self.upload.as_mut().filter(|up| up.serves(&holding.fresh));
                up.ok_or_else(|| Error::Holding("no inputs are staged for these fresh inputs".into()))?
                    .unstage(&dst)?;
            }
        }
        self.execute()?;
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.record(&self.stream)?;
        }
        if let Some(next) = next {
            if !self.upload.as_ref().is_some_and(|up| up.serves(&holding.fresh)) {
                let bytes: Vec<usize> =
                    holding.fresh.iter().map(|&i| self.prog.buffers[self.prog.params[i]].bytes()).collect();
                self.upload = None;
                self.upload = Some(upload::Upload::new(&self._ctx, &self.stream, &holding.fresh, &bytes)?);
            }
            self.upload.as_mut().expect("made above").stage(next)?;
        }
        self.read_outputs(&holding.returned)
    }

    /// From now on, `run_held` records `outputs` (`record.rs`), holding
    /// up to `capacity` calls' values on the device.
    pub fn set_recording(&mut self, outputs: &[usize], capacity: usize) -> Result<(), Error> {
        let recorded = outputs
            .iter()
            .map(|&o| {
                let buf = self.prog.outputs[o];
                let ptr = self.output_slice(o).map_or(0, |s| device_ptr(s, &self.stream));
                (ptr, self.prog.buffers[buf].bytes(), self.prog.output_types[o].clone())
            })
            .collect();
        self.recorder = Some(record::Recorder::new(&self.stream, recorded, capacity)?);
        Ok(())
    }

    /// The recorded outputs since the last take (one wait for the device).
    pub fn take_recorded(&mut self) -> Result<Vec<Vec<Tensor>>, Error> {
        let recorder = self.recorder.as_mut().ok_or_else(|| Error::Holding("no outputs are recorded".into()))?;
        recorder.take(&self.stream)
    }

    /// Copies the outputs `which` names to the host; with none, returns at
    /// once (no wait for the device: the call runs on while the host goes on).
    fn read_outputs(&mut self, which: &[usize]) -> Result<Vec<Tensor>, Error> {
        if which.is_empty() {
            return Ok(Vec::new());
        }
        let mut bytes = Vec::with_capacity(which.len());
        for &o in which {
            bytes.push(match self.output_slice(o) {
                Some(src) => self.stream.clone_dtoh(src).map_err(cuda_err("copying an output to the host"))?,
                None => Vec::new(),
            });
        }
        // Every copy has landed before the host reads the bytes.
        self.stream.synchronize().map_err(cuda_err("running the program"))?;
        Ok(bytes.iter().zip(which).map(|(b, &o)| from_bytes(&self.prog.output_types[o], b)).collect())
    }

    /// Enqueues one call's steps and carry copies: by replaying the graph
    /// when one matches the carry, by capturing one on the second call, or
    /// launch by launch.
    fn execute(&mut self) -> Result<(), Error> {
        self.calls += 1;
        if let Some(c) = &self.graph {
            if c.carry == self.carry {
                return c.graph.launch().map_err(cuda_err("replaying the step's CUDA graph"));
            }
            self.graph = None;
        }
        if self.no_graphs || self.calls < 2 {
            return self.enqueue();
        }
        match self.capture() {
            Ok(Some(graph)) => {
                graph.launch().map_err(cuda_err("replaying the step's CUDA graph"))?;
                self.graph = Some(Captured { carry: self.carry.clone(), graph });
                Ok(())
            }
            Ok(None) => self.enqueue(),
            Err(e) => {
                eprintln!("note: CUDA graph capture failed ({e}); launching kernels one by one");
                self.no_graphs = true;
                self.enqueue()
            }
        }
    }

    fn capture(&mut self) -> Result<Option<CudaGraph>, Error> {
        self.stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(cuda_err("beginning a graph capture"))?;
        let enqueued = self.enqueue();
        // Always end the capture, so the stream is usable whatever happened.
        let graph =
            self.stream.end_capture(sys::CUgraphInstantiate_flags(0)).map_err(cuda_err("ending a graph capture"));
        enqueued?;
        graph
    }

    fn enqueue(&mut self) -> Result<(), Error> {
        for (index, launch) in self.launches.iter().enumerate() {
            let start = std::time::Instant::now();
            match launch {
                Launch::Kernel { func, grid, args } => {
                    let mut builder = self.stream.launch_builder(func);
                    for a in args {
                        builder.arg(&self.ptrs[*a]);
                    }
                    let cfg =
                        LaunchConfig { grid_dim: (*grid, 1, 1), block_dim: (ptx::BLOCK, 1, 1), shared_mem_bytes: 0 };
                    // Safety: the kernel takes exactly these pointers (output
                    // first), and every buffer has the size the PTX assumes.
                    unsafe { builder.launch(cfg) }.map_err(cuda_err("launching a kernel"))?;
                }
                Launch::Gemm { dtype, dims, bufs, offsets, strides } => {
                    let blas = self.blas.as_ref().expect("cuBLAS handle created for programs with GEMMs");
                    let size = dtype.size_bytes() as u64;
                    let ptr = |x: usize| self.ptrs[bufs[x]] + offsets[x] as u64 * size;
                    gemm(blas, *dtype, *dims, [ptr(0), ptr(1), ptr(2)], *strides)?;
                }
            }
            if let Some(times) = self.profile.as_mut() {
                self.stream.synchronize().map_err(cuda_err("running a step"))?;
                // The first call loads kernels lazily (cuBLAS's too): not the step's cost.
                if self.calls > 1 {
                    times[index] += start.elapsed().as_secs_f64();
                }
            }
        }
        for c in &self.carry {
            // Safety: both buffers are ours and hold `bytes` bytes.
            unsafe { cudarc::driver::result::memcpy_dtod_async(c.dst, c.src, c.bytes, self.stream.cu_stream()) }
                .map_err(cuda_err("copying a carried output"))?;
        }
        Ok(())
    }
}

impl Drop for CudaExecutable {
    /// Waits for the calls still queued (a call whose outputs are all
    /// carried or recorded does not wait), so no kernel runs while its
    /// module is unloaded. `JLC_CUDA_PROFILE=1`: the slowest steps, per call.
    fn drop(&mut self) {
        let _ = self.stream.synchronize();
        let Some(times) = &self.profile else { return };
        let calls = self.calls.saturating_sub(1).max(1) as f64;
        let total: f64 = times.iter().sum::<f64>() / calls;
        let mut order: Vec<usize> = (0..times.len()).collect();
        order.sort_by(|&a, &b| times[b].total_cmp(&times[a]));
        eprintln!(
            "JLC_CUDA_PROFILE: {} steps, {:.3} ms per call (synchronized), over {} calls after the first; slowest:",
            times.len(),
            total * 1e3,
            self.calls.saturating_sub(1)
        );
        for &i in order.iter().take(25) {
            let what = match &self.prog.steps[i] {
                Step::Kernel { name, grid, inst, .. } => format!("{name} for %{inst} (grid {grid})"),
                Step::Gemm { inst, batch, m, n, k, .. } => format!("gemm %{inst} batch {batch} m {m} n {n} k {k}"),
            };
            eprintln!("  {:>9.3} ms {:>5.1}%  {what}", times[i] / calls * 1e3, 100.0 * times[i] / calls / total);
        }
    }
}

/// A cuBLAS handle on `stream` with its workspace (and TF32 when asked
/// for). Creating one takes ~130-160 ms on an H100 (the library's
/// start-up): most of a warm-cache compile.
fn new_blas(stream: &Arc<CudaStream>) -> Result<(cudarc::cublas::CudaBlas, CudaSlice<u8>), Error> {
    // Safety: only tries to dlopen the library.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(Error::Cuda(
            "cuBLAS not found (libcublas.so.12 could not be loaded; add its folder to LD_LIBRARY_PATH)".into(),
        ));
    }
    let blas = cudarc::cublas::CudaBlas::new(stream.clone())
        .map_err(|e| Error::Cuda(format!("creating a cuBLAS handle: {e:?}")))?;
    let workspace = alloc(stream, CUBLAS_WORKSPACE_BYTES)?;
    let ptr = device_ptr(&workspace, stream);
    // Safety: the workspace outlives the handle (both live in the executable).
    let status = unsafe {
        cudarc::cublas::sys::cublasSetWorkspace_v2(*blas.handle(), ptr as *mut std::ffi::c_void, CUBLAS_WORKSPACE_BYTES)
    };
    if status != cudarc::cublas::sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        return Err(Error::Cuda(format!("setting the cuBLAS workspace: {status:?}")));
    }
    if tf32_requested() {
        use cudarc::cublas::sys::{cublasMath_t, cublasSetMathMode, cublasStatus_t};
        // Safety: a live handle and a valid mode.
        let status = unsafe { cublasSetMathMode(*blas.handle(), cublasMath_t::CUBLAS_TF32_TENSOR_OP_MATH) };
        if status != cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(Error::Cuda(format!("enabling TF32 in cuBLAS: {status:?}")));
        }
    }
    Ok((blas, workspace))
}

/// `JLC_CUDA_TF32=1`: float32 GEMMs may round their inputs to TF32 (10
/// mantissa bits) on tensor cores, as JAX and PyTorch do by default on
/// recent GPUs. Off unless asked for: results then drift from the CPU
/// backend's by ~1e-3 relative instead of ~1e-6.
fn tf32_requested() -> bool {
    std::env::var("JLC_CUDA_TF32").is_ok_and(|v| v == "1")
}

/// `JLC_CUDA_LOAD_TIMES=1`: where `CudaExecutable::load`'s time goes,
/// printed to stderr (compile time on the GPU is mostly the driver's JIT).
struct LoadTimes {
    on: bool,
    last: std::time::Instant,
    phases: Vec<(String, f64)>,
}

impl LoadTimes {
    fn new() -> LoadTimes {
        let on = std::env::var("JLC_CUDA_LOAD_TIMES").is_ok_and(|v| v == "1");
        LoadTimes { on, last: std::time::Instant::now(), phases: Vec::new() }
    }

    fn done(&mut self, phase: &str) {
        if self.on {
            self.phases.push((phase.to_string(), self.last.elapsed().as_secs_f64() * 1e3));
            self.last = std::time::Instant::now();
        }
    }

    fn report(&self, prog: &PtxProgram) {
        if self.on {
            let phases: Vec<String> = self.phases.iter().map(|(p, ms)| format!("{p} {ms:.1} ms")).collect();
            let bytes: usize = prog.buffers.iter().map(|b| b.bytes()).sum();
            eprintln!(
                "JLC_CUDA_LOAD_TIMES: {} ({} KB of PTX, {} steps, {} buffers, {:.1} MB in {} slots of {:.1} MB)",
                phases.join(", "),
                prog.ptx.len() / 1024,
                prog.steps.len(),
                prog.buffers.len(),
                bytes as f64 / 1e6,
                prog.memory.slot_bytes.len(),
                prog.memory.bytes() as f64 / 1e6
            );
        }
    }
}

/// Loaded machine code for the module (`load_modules`) and, if asked, a
/// cuBLAS handle with its workspace, and what that took (for
/// `JLC_CUDA_LOAD_TIMES`). cuBLAS's start-up (0.13-0.25 s on an H100) runs
/// while nvJitLink assembles on other threads: that is host work, outside
/// the driver. Not beside the driver's JIT: that measured slower (W3 cold
/// 1288 -> 1513 ms; the driver seems to serialize the two).
#[allow(clippy::type_complexity)]
fn machine_code_and_blas(
    ctx: &Arc<CudaContext>,
    stream: &Arc<CudaStream>,
    ptx: &str,
    needs_blas: bool,
) -> Result<(Vec<(Vec<String>, Arc<CudaModule>)>, Option<(cudarc::cublas::CudaBlas, CudaSlice<u8>)>, String), Error> {
    let overlap = needs_blas && jit_way() != JitWay::Driver && nvjitlink().0.is_ok();
    let started = std::time::Instant::now();
    let ms = |t: std::time::Duration| t.as_secs_f64() * 1e3;
    let (jit, blas) = std::thread::scope(|scope| {
        let jit = overlap.then(|| scope.spawn(|| (load_modules(ctx, ptx), started.elapsed())));
        let blas = needs_blas.then(|| new_blas(stream).map(|b| (b, started.elapsed())));
        let jit = match jit {
            Some(handle) => handle.join().expect("the PTX assembling thread panicked"),
            None => (load_modules(ctx, ptx), started.elapsed()),
        };
        (jit, blas)
    });
    let ((modules, how), jit_done) = (jit.0?, jit.1);
    let mut note = format!("{how} done at {:.1} ms", ms(jit_done));
    let blas = match blas.transpose()? {
        Some((blas, done)) => {
            let way = if overlap { "alongside" } else { "first" };
            note += &format!(", cuBLAS ({way}) at {:.1} ms", ms(done));
            Some(blas)
        }
        None => None,
    };
    note += "; all done in";
    Ok((modules, blas, note))
}

/// Turns the PTX module text into loaded machine code, and says how (for
/// `JLC_CUDA_LOAD_TIMES`). `JLC_CUDA_JIT` picks the way: `nvjitlink`
/// (`assemble`: parts assembled on parallel threads in this process, one
/// per core by default), `driver` (the driver's JIT inside the module
/// load), or unset: nvJitLink where its library is found and its cubins
/// load, else the driver.
fn load_modules(ctx: &Arc<CudaContext>, ptx: &str) -> Result<(Vec<(Vec<String>, Arc<CudaModule>)>, String), Error> {
    let jit = jit_way();
    let threads = std::env::var("JLC_CUDA_JIT_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
    let mut fallback = String::new();
    if jit != JitWay::Driver {
        let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        match assemble(ctx, ptx, threads) {
            Ok(loaded) => return Ok(loaded),
            Err(e) if jit == JitWay::NvJitLink => return Err(Error::Cuda(format!("JLC_CUDA_JIT=nvjitlink: {e}"))),
            Err(e) => fallback = format!(" (nvJitLink: {e})"),
        }
    }
    let threads = threads.unwrap_or(1);
    Ok((driver_jit(ctx, ptx, threads)?, format!("driver PTX JIT, {threads} thread(s){fallback}")))
}

/// `JLC_CUDA_JIT`: how PTX becomes machine code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JitWay {
    /// nvJitLink where it is found and its cubins load, else the driver.
    Auto,
    Driver,
    NvJitLink,
}

fn jit_way() -> JitWay {
    match std::env::var("JLC_CUDA_JIT").as_deref() {
        Ok("driver") => JitWay::Driver,
        Ok("nvjitlink") => JitWay::NvJitLink,
        _ => JitWay::Auto,
    }
}

/// The process's nvJitLink library, opened once (or why it could not be),
/// and the driver's version (e.g. 12080).
fn nvjitlink() -> &'static (Result<NvJitLink, String>, i32) {
    static LIB: std::sync::OnceLock<(Result<NvJitLink, String>, i32)> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let mut version = 0;
        // Safety: an out-parameter; the driver library is loaded (`probe`).
        let status = unsafe { sys::cuDriverGetVersion(&mut version) };
        let major = if status == sys::CUresult::CUDA_SUCCESS { (version / 1000) as u32 } else { 12 };
        (NvJitLink::open(major), version)
    })
}

/// Assembles the module as `threads` parts with nvJitLink for this
/// device's architecture, each part taken from the cubin cache where it is
/// there (`cubin_cache.rs`), and loads the cubins. Fails (for the caller to
/// fall back) where the library is missing or the driver rejects its cubins
/// (a driver older than the library).
fn assemble(
    ctx: &Arc<CudaContext>,
    ptx: &str,
    threads: usize,
) -> Result<(Vec<(Vec<String>, Arc<CudaModule>)>, String), String> {
    let (lib, driver) = nvjitlink();
    let lib = lib.as_ref().map_err(|e| e.clone())?;
    let (major, minor) = ctx.compute_capability().map_err(|e| format!("reading the compute capability: {e:?}"))?;
    let arch = (major * 10 + minor) as u32;
    let (lib_major, lib_minor) = lib.version;
    let context = format!("sm_{arch}\nnvJitLink {lib_major}.{lib_minor}\ndriver {driver}");
    let cache = CubinCache::from_env();
    let parts = ptx::split::split_module(ptx, threads);
    let keys: Vec<Vec<u8>> = parts.iter().map(|(text, _)| CubinCache::key(text, &context)).collect();
    let load = |cubin: Vec<u8>| ctx.load_module(cudarc::nvrtc::Ptx::from_binary(cubin));
    // Cached parts first; one the driver rejects is assembled again below.
    let mut modules: Vec<Option<Arc<CudaModule>>> =
        keys.iter().map(|key| cache.get(key).and_then(|cubin| load(cubin).ok())).collect();
    let missing: Vec<usize> = (0..parts.len()).filter(|&i| modules[i].is_none()).collect();
    let texts: Vec<&str> = missing.iter().map(|&i| parts[i].0.as_str()).collect();
    let mut unsaved = String::new();
    for (&i, cubin) in missing.iter().zip(lib.compile_all(&texts, arch)?) {
        let module = load(cubin.clone()).map_err(|e| format!("loading its sm_{arch} cubin: {e:?}"))?;
        // Cached only once the driver has taken it.
        if let Err(e) = cache.put(&keys[i], &cubin) {
            unsaved = format!(", not cached: {e}");
        }
        modules[i] = Some(module);
    }
    let how = format!(
        "nvJitLink {lib_major}.{lib_minor} for sm_{arch}: {} of {} part(s) assembled, the rest cached{unsaved}",
        missing.len(),
        parts.len()
    );
    let modules = parts
        .into_iter()
        .zip(modules)
        .map(|((_, names), module)| (names, module.expect("every part loaded")))
        .collect();
    Ok((modules, how))
}

/// Loads the module as `threads` parts (`ptx::split::split_module`) on
/// parallel threads, each JIT-compiled by the driver. Measured on an H100
/// with the driver's cache off: W1 812 ms with 16 threads, 577 ms with 1;
/// W3 2605 ms and 2627 ms: the driver serializes module loads. Returns each
/// module with its kernel names.
fn driver_jit(ctx: &Arc<CudaContext>, ptx: &str, threads: usize) -> Result<Vec<(Vec<String>, Arc<CudaModule>)>, Error> {
    let mut parts = ptx::split::split_module(ptx, threads);
    let load =
        |src: String| ctx.load_module(cudarc::nvrtc::Ptx::from_src(src)).map_err(cuda_err("loading the PTX module"));
    if parts.len() == 1 {
        let (src, names) = parts.pop().expect("one part");
        return Ok(vec![(names, load(src)?)]);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> =
            parts.into_iter().map(|(src, names)| scope.spawn(move || load(src).map(|m| (names, m)))).collect();
        handles.into_iter().map(|h| h.join().expect("a PTX loading thread panicked")).collect()
    })
}

fn alloc(stream: &Arc<CudaStream>, bytes: usize) -> Result<CudaSlice<u8>, Error> {
    stream.alloc_zeros::<u8>(bytes).map_err(|e| {
        let (free, total) = cudarc::driver::result::mem_get_info().unwrap_or((0, 0));
        Error::Cuda(format!("allocating {bytes} bytes of device memory: {e:?} ({free} bytes free of {total})"))
    })
}

fn device_ptr(slice: &CudaSlice<u8>, stream: &Arc<CudaStream>) -> u64 {
    let (ptr, _sync) = slice.device_ptr(stream);
    ptr
}

/// Row-major `c[p, m, n] = a[p, m, k] · b[p, k, n]` for `p < batch`
/// (each matrix contiguous, matrix `p` of operand `x` at `ptrs[x] + p *
/// strides[x]` elements) with one strided-batched cuBLAS call. cuBLAS is
/// column-major: a row-major matrix is its transpose in column-major, so
/// compute `cᵀ[n, m] = bᵀ[n, k] · aᵀ[k, m]` by swapping the operands.
fn gemm(
    blas: &cudarc::cublas::CudaBlas,
    dtype: DType,
    (batch, m, n, k): (usize, usize, usize, usize),
    [a, b, c]: [u64; 3],
    strides: [usize; 3],
) -> Result<(), Error> {
    let dim = |x: usize| {
        i32::try_from(x).map_err(|_| Error::Cuda(format!("matrix dimension {x} exceeds cuBLAS's i32 range")))
    };
    let (mi, ni, ki, bi) = (dim(m)?, dim(n)?, dim(k)?, dim(batch)?);
    let (sa, sb, sc) = (strides[0] as i64, strides[1] as i64, strides[2] as i64);
    let op = cublasOperation_t::CUBLAS_OP_N;
    let handle = *blas.handle();
    // Safety: the buffers hold batch*m*k, batch*k*n and batch*m*n elements of
    // `dtype` (the plan's invariant), and the handle is bound to our stream.
    let res = unsafe {
        match dtype {
            DType::F32 => {
                let (alpha, beta) = (1.0f32, 0.0f32);
                cudarc::cublas::result::sgemm_strided_batched(
                    handle,
                    op,
                    op,
                    ni,
                    mi,
                    ki,
                    &alpha,
                    b as *const f32,
                    ni,
                    sb,
                    a as *const f32,
                    ki,
                    sa,
                    &beta,
                    c as *mut f32,
                    ni,
                    sc,
                    bi,
                )
            }
            DType::F64 => {
                let (alpha, beta) = (1.0f64, 0.0f64);
                cudarc::cublas::result::dgemm_strided_batched(
                    handle,
                    op,
                    op,
                    ni,
                    mi,
                    ki,
                    &alpha,
                    b as *const f64,
                    ni,
                    sb,
                    a as *const f64,
                    ki,
                    sa,
                    &beta,
                    c as *mut f64,
                    ni,
                    sc,
                    bi,
                )
            }
            other => unreachable!("the PTX emitter plans GEMMs of floats only, not {other}"),
        }
    };
    res.map_err(|e| Error::Cuda(format!("cuBLAS GEMM: {e:?}")))
}

/// A tensor's elements as the device stores them (little-endian; bool as 0/1).
fn to_bytes(t: &Tensor) -> Vec<u8> {
    let mut bytes = vec![0u8; t.shape.num_elements() * t.dtype().size_bytes()];
    upload::write_le_bytes(t, &mut bytes);
    bytes
}

fn from_bytes(ty: &Type, bytes: &[u8]) -> Tensor {
    let data = match ty.dtype {
        DType::F32 => {
            Data::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        }
        DType::F64 => {
            Data::F64(bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
        }
        DType::I32 => {
            Data::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
        }
        DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
    };
    Tensor { shape: ty.shape.clone(), data }
}

/// Times `runs` device-to-device copies of `bytes` on device 0 (after 3
/// warm-up copies), each synchronized and timed on the host: the card's
/// copy bandwidth, for benchmarks. Returns milliseconds per copy.
pub fn time_device_copy(bytes: usize, runs: usize) -> Result<Vec<f64>, Error> {
    probe()?;
    let ctx = CudaContext::new(0).map_err(cuda_err("creating a context"))?;
    let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;
    let (src, dst) = (alloc(&stream, bytes)?, alloc(&stream, bytes)?);
    let (src, dst) = (device_ptr(&src, &stream), device_ptr(&dst, &stream));
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs + 3 {
        let start = std::time::Instant::now();
        // Safety: both buffers hold `bytes` bytes.
        unsafe { cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, stream.cu_stream()) }
            .map_err(cuda_err("copying"))?;
        stream.synchronize().map_err(cuda_err("copying"))?;
        if i >= 3 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}
