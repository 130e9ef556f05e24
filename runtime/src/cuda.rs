//! The CUDA engine: runs a `codegen::ptx::PtxProgram` on an NVIDIA GPU.
//!
//! Consumes an `ir::Func` (compiled here to PTX by `compiler::codegen::ptx`);
//! produces a `CudaExecutable` that owns the loaded module, one device
//! buffer per planned buffer, and a cuBLAS handle, and runs on host tensors:
//! copy the inputs in, launch the steps in order on one stream, copy the
//! outputs out.
//!
//! The CUDA libraries are dlopen'ed by cudarc at run time, so this builds
//! anywhere. Before touching cudarc's driver API (which panics when
//! `libcuda` is missing) we probe for the library and return an error.
//! cuBLAS is needed (and probed) only for programs with a matrix product.
//!
//! Single stream, so cudarc's per-buffer event tracking is disabled; kernel
//! arguments are raw device addresses taken once at load time.

use std::sync::Arc;

use compiler::codegen::ptx::{self, PtxProgram, Step};
use compiler::ir::{DType, Data, Func, Tensor, Type};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig, PushKernelArg,
};

use crate::Error;

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
    probe()?;
    let ctx = CudaContext::new(0).map_err(cuda_err("creating a context"))?;
    ctx.name().map_err(cuda_err("reading the device name"))
}

/// What a step needs at run time.
enum Launch {
    Kernel { func: CudaFunction, grid: u32, args: Vec<usize> },
    Gemm { dtype: DType, batch: usize, m: usize, n: usize, k: usize, a: usize, b: usize, c: usize },
}

pub struct CudaExecutable {
    prog: PtxProgram,
    stream: Arc<CudaStream>,
    blas: Option<cudarc::cublas::CudaBlas>,
    /// `None` for empty buffers (nothing is allocated or copied).
    buffers: Vec<Option<CudaSlice<u8>>>,
    /// Device address of each buffer (0 for empty ones).
    ptrs: Vec<u64>,
    launches: Vec<Launch>,
    _module: Arc<CudaModule>,
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
        probe()?;
        let ctx = CudaContext::new(0).map_err(cuda_err("creating a context"))?;
        // Safety: one stream, used in program order, so no cross-stream
        // synchronization is needed.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(prog.ptx.clone()))
            .map_err(cuda_err("loading the PTX module"))?;
        let mut buffers = Vec::with_capacity(prog.buffers.len());
        let mut ptrs = Vec::with_capacity(prog.buffers.len());
        for b in &prog.buffers {
            if b.bytes() == 0 {
                buffers.push(None);
                ptrs.push(0);
                continue;
            }
            let slice = stream.alloc_zeros::<u8>(b.bytes()).map_err(cuda_err("allocating device memory"))?;
            let ptr = {
                let (ptr, _sync) = slice.device_ptr(&stream);
                ptr
            };
            ptrs.push(ptr);
            buffers.push(Some(slice));
        }
        let mut launches = Vec::with_capacity(prog.steps.len());
        let mut needs_blas = false;
        for step in &prog.steps {
            launches.push(match step {
                Step::Kernel { name, grid, args, .. } => {
                    let func = module.load_function(name).map_err(cuda_err("loading a kernel"))?;
                    Launch::Kernel { func, grid: *grid, args: args.clone() }
                }
                Step::Gemm { dtype, batch, m, n, k, a, b, c, .. } => {
                    needs_blas = true;
                    Launch::Gemm { dtype: *dtype, batch: *batch, m: *m, n: *n, k: *k, a: *a, b: *b, c: *c }
                }
            });
        }
        let blas = if needs_blas {
            // Safety: only tries to dlopen the library.
            if !unsafe { cudarc::cublas::sys::is_culib_present() } {
                return Err(Error::Cuda(
                    "cuBLAS not found (libcublas.so.12 could not be loaded; add its folder to LD_LIBRARY_PATH)".into(),
                ));
            }
            Some(
                cudarc::cublas::CudaBlas::new(stream.clone())
                    .map_err(|e| Error::Cuda(format!("creating a cuBLAS handle: {e:?}")))?,
            )
        } else {
            None
        };
        Ok(CudaExecutable { prog, stream, blas, buffers, ptrs, launches, _module: module, _ctx: ctx })
    }

    pub fn program(&self) -> &PtxProgram {
        &self.prog
    }

    /// Runs the program; the caller has checked the inputs' types.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, Error> {
        for (input, &buf) in inputs.iter().zip(&self.prog.params) {
            if let Some(dst) = self.buffers[buf].as_mut() {
                self.stream.memcpy_htod(&to_bytes(input), dst).map_err(cuda_err("copying an input to the device"))?;
            }
        }
        for launch in &self.launches {
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
                Launch::Gemm { dtype, batch, m, n, k, a, b, c } => {
                    let blas = self.blas.as_ref().expect("cuBLAS handle created for programs with GEMMs");
                    gemm(blas, *dtype, (*batch, *m, *n, *k), self.ptrs[*a], self.ptrs[*b], self.ptrs[*c])?;
                }
            }
        }
        let mut bytes = Vec::with_capacity(self.prog.outputs.len());
        for &buf in &self.prog.outputs {
            bytes.push(match &self.buffers[buf] {
                Some(src) => self.stream.clone_dtoh(src).map_err(cuda_err("copying an output to the host"))?,
                None => Vec::new(),
            });
        }
        // Every copy has landed before the host reads the bytes.
        self.stream.synchronize().map_err(cuda_err("running the program"))?;
        Ok(bytes.iter().zip(&self.prog.output_types).map(|(b, ty)| from_bytes(ty, b)).collect())
    }
}

/// Row-major `c[p, m, n] = a[p, m, k] · b[p, k, n]` for `p < batch`
/// (contiguous matrices) with one strided-batched cuBLAS call. cuBLAS is
/// column-major: a row-major matrix is its transpose in column-major, so
/// compute `cᵀ[n, m] = bᵀ[n, k] · aᵀ[k, m]` by swapping the operands; the
/// batch strides are the matrix sizes.
fn gemm(
    blas: &cudarc::cublas::CudaBlas,
    dtype: DType,
    (batch, m, n, k): (usize, usize, usize, usize),
    a: u64,
    b: u64,
    c: u64,
) -> Result<(), Error> {
    let dim = |x: usize| {
        i32::try_from(x).map_err(|_| Error::Cuda(format!("matrix dimension {x} exceeds cuBLAS's i32 range")))
    };
    let (mi, ni, ki, bi) = (dim(m)?, dim(n)?, dim(k)?, dim(batch)?);
    let stride = |x: usize| x as i64;
    let (sa, sb, sc) = (stride(m * k), stride(k * n), stride(m * n));
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
    match &t.data {
        Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
    }
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
