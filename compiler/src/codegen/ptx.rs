//! The GPU backend's code generator: an `ir::Func` becomes PTX text plus a
//! launch plan.
//!
//! Consumes a verified `ir::Func`; produces a `PtxProgram`: one PTX module
//! (ISA 7.8, `.target sm_80`, 64-bit addresses) with one kernel per fusion
//! group, the ordered list of steps to run (kernel launches and cuBLAS GEMM
//! calls), and the buffer plan. The runtime (`runtime::cuda`) loads the
//! module and executes the steps; this module needs no GPU and no CUDA
//! library.
//!
//! Fusion (`ptx/fusion.rs`): the CPU backend's kernel schedule
//! (`cpu/schedule.rs`) with this backend's notion of fusible (every
//! elementwise op, transcendentals included, constants, broadcasts, iota).
//! An inlined value has no buffer and no kernel: it is evaluated per
//! element in registers by its consumer's kernel. Each fusion root is ONE
//! grid-stride kernel that evaluates its whole tree of inlined producers
//! (a broadcast of a materialized value is a strided load) and also stores
//! the values it hosts (multi-output fusion); a reduction evaluates its
//! inlined operand tree per source element. Fused kernels run the same
//! scalar instructions per element as one kernel per instruction
//! (`PtxOptions { fuse: false }`), so results are bitwise the same.
//!
//! Memory model (as the CPU arena): one buffer per materialized
//! value, plus scratch buffers owned by no value (a two-pass reduction's
//! partials, a large convolution's im2col columns); `Reshape`, `StopGradient` and same-dtype `Convert` alias their
//! operand's buffer; buffers whose lives do not overlap share device
//! memory (`ptx/memory_plan.rs`). Bools are one byte, 0 or 1. Shapes are static, so
//! every size, stride and divisor is a constant baked into the PTX;
//! kernels take only buffer pointers, the buffers they write first.
//!
//! Kernel shapes:
//! - fusion groups (elementwise ops, iota, constants, broadcasts): a
//!   grid-stride loop over the root's elements (64-bit indices); a
//!   broadcast maps the output index to the source index by div/rem by the
//!   output dims and the source strides;
//! - transpose: the same index map; `Slice` likewise, plus a constant
//!   offset; `Pad` gathers (each output element decides whether it is
//!   padding from its coordinates, else loads its source element);
//!   `Concat` branches on the coordinate along the axis to the operand
//!   that supplies it;
//! - reductions (`ReduceSum`/`Max`/`Min`, `ArgMax`): below 64 elements
//!   reduced per output, one thread per output element, looping over the
//!   reduced elements in row-major order (each loaded, or evaluated by the
//!   operand's fused tree) from the interpreter's identity
//!   (the same order of float additions as `ir::interp`, so bitwise
//!   equal); from 64 on, the parallel deterministic kernels of
//!   `ptx/reduce.rs`: a warp per output (< 4096 elements), a block per
//!   output, or two passes through a scratch buffer for few outputs with
//!   huge extents (warp shuffles and static shared memory, a fixed
//!   partition and combining order: reproducible run to run; max, min,
//!   argmax and i32 sums stay exact, float sums are within `n eps sum |x|`
//!   of the exact sum, see that file; they too evaluate an inlined
//!   operand tree per source element);
//! - `MatMul` and `BatchMatMul`: a `Step::Gemm` for cuBLAS (FP32/FP64
//!   strided-batched GEMM, not in PTX), or a zero fill when the inner dim
//!   is 0;
//! - `Reverse`: an index map as transpose; `ReduceMin` as `ReduceMax`;
//! - `Gather`, `ScatterAdd` (deterministic, no atomics): `ptx/indexing.rs`;
//! - `RandomBits`/`RandomSplit`/`RandomUniform` (threefry2x32):
//!   `ptx/random.rs`;
//! - `ReduceWindowSum`/`Max` and `Conv2d` (direct, one thread per output):
//!   `ptx/window.rs`.
//!
//! All but the fusion groups and reductions are one kernel per instruction
//! reading materialized operands.
//!
//! Semantics match `ir::interp` bitwise except the transcendental ops
//! (exp, log, tanh, pow, logistic, log1p, expm1, sin, cos, erf: bounds in
//! `math.rs`; sin and cos are NaN beyond |x| = 2^42), float sums of 64 or
//! more elements per output (`reduce.rs`) and the GEMMs (cuBLAS summation order): `.rn`
//! arithmetic without FMA contraction, no flush-to-zero, correctly rounded
//! `div.rn`/`sqrt.rn`, the interpreter's max/min on NaN and signed zeros,
//! saturating float->i32 conversion with NaN -> 0, wrapping i32 arithmetic,
//! i32 division by zero (and MIN / -1) giving 0.
//!
//! `Scan` is rejected (`PtxError::Unsupported`): it needs a host-driven
//! loop over its body's launch plan.
//!
//! The text is deterministic: kernel names are `k{inst}_{op}` (of the
//! fusion root; a two-pass reduction's first pass `k{inst}_{op}_part`, a
//! large convolution's gather `k{inst}_im2col`), registers are numbered in
//! emission order, and nothing depends on hashing or addresses. A kernel
//! whose text equals an earlier one's but for the name is dropped, and its
//! steps launch the earlier one (`ptx/dedupe.rs`: the driver's JIT time
//! grows with the kernel count, and repeated layers repeat kernels).

mod builder;
mod conv_gemm;
mod dedupe;
mod fusion;
mod indexing;
mod math;
pub mod memory_plan;
mod random;
mod recompute;
mod reduce;
mod siblings;
pub mod split;
mod window;

use std::fmt::Write;

use crate::codegen::cpu::schedule::Schedule;
use crate::ir::{self, op, DType, Func, Op, Type};
use builder::{imm_f32, imm_f64, Class, Kernel};

/// Threads per block for every kernel.
pub const BLOCK: u32 = 256;
/// At most this many blocks per launch; the grid-stride loop covers the rest.
pub const MAX_GRID: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum PtxError {
    #[error("invalid IR function: {0}")]
    InvalidFunc(String),
    #[error("%{inst} = {op}: not supported by the GPU backend on {ty}")]
    Unsupported { inst: usize, op: &'static str, ty: ir::Type },
}

/// One device buffer: `len` elements of `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    pub dtype: DType,
    pub len: usize,
}

impl Buffer {
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size_bytes()
    }
}

/// One thing the runtime does, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Launch kernel `name` (the kernel of instruction `inst`, a fusion
    /// root or an unfused instruction; named after another instruction when
    /// an identical kernel was emitted for it first) with `grid` x `BLOCK` threads; its
    /// parameters are the device addresses of `args` (buffer indices):
    /// the buffers it writes first (`inst`'s, then those of the values it
    /// hosts, see `ptx/fusion.rs`), then the distinct buffers it reads.
    Kernel { name: String, inst: usize, grid: u32, args: Vec<usize> },
    /// Row-major `c[p, m, n] = a[p, m, k] · b[p, k, n]` for each `p < batch`
    /// with cuBLAS (k > 0, m, n, batch > 0): matrix `p` of operand `x` (a,
    /// b, c) starts `offsets[x] + p * strides[x]` elements into its buffer
    /// and is contiguous. `MatMul` has `batch == 1`; `BatchMatMul` flattens
    /// its batch dims (strides: the matrix sizes); a convolution's GEMM
    /// (`conv_gemm.rs`) shares one weight matrix (stride 0).
    Gemm {
        inst: usize,
        dtype: DType,
        batch: usize,
        m: usize,
        n: usize,
        k: usize,
        a: usize,
        b: usize,
        c: usize,
        offsets: [usize; 3],
        strides: [usize; 3],
    },
}

/// A function compiled for the GPU, not yet loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct PtxProgram {
    /// The PTX module text.
    pub ptx: String,
    pub steps: Vec<Step>,
    pub buffers: Vec<Buffer>,
    /// The buffer holding each value (`ValueId` index); `None` for values
    /// that live only in the registers of a fused kernel (inlined).
    pub value_buffers: Vec<Option<usize>>,
    /// The buffer of each parameter, in order (the runtime copies inputs in).
    pub params: Vec<usize>,
    /// The buffer of each output, in order (the runtime copies them out).
    pub outputs: Vec<usize>,
    pub param_types: Vec<Type>,
    pub output_types: Vec<Type>,
    /// Which buffers share device memory (`ptx/memory_plan.rs`).
    pub memory: memory_plan::MemoryPlan,
}

/// How `emit_with` compiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PtxOptions {
    /// One kernel per fusion group (`ptx/fusion.rs`); false: one kernel per
    /// instruction, every value in its own buffer (bitwise the same
    /// results, many more launches).
    pub fuse: bool,
    /// Fused elementwise kernels move four elements per thread trip with
    /// 16-byte loads and stores (`ptx/fusion.rs`); false: one element.
    /// Either gives the same results, bit for bit.
    pub vector_loads: bool,
    /// Elements per trip of each thread's fold in a parallel reduction,
    /// their loads issued before any is folded (`ptx/reduce.rs`); 1: one
    /// at a time. Any value gives the same results, bit for bit.
    pub fold_unroll: usize,
}

/// `PtxOptions::fold_unroll`'s default.
pub const FOLD_UNROLL: usize = 4;

impl Default for PtxOptions {
    fn default() -> PtxOptions {
        PtxOptions { fuse: true, vector_loads: true, fold_unroll: FOLD_UNROLL }
    }
}

/// Compiles `func` to PTX and a launch plan, fused.
pub fn emit(func: &Func) -> Result<PtxProgram, PtxError> {
    emit_with(func, &PtxOptions::default())
}

/// Compiles `func` to PTX and a launch plan.
pub fn emit_with(func: &Func, options: &PtxOptions) -> Result<PtxProgram, PtxError> {
    ir::verify::verify(func).map_err(PtxError::InvalidFunc)?;
    // A custom derivative rule matters only to autodiff: run the function.
    let inlined = ir::custom_vjp::inline_rules(func);
    let func = &inlined;
    let sched = fusion::schedule(func, options.fuse);
    let siblings = match options.fuse {
        true => siblings::plan(func, &sched, &|index| fusion::fusible(func, index)),
        false => vec![Vec::new(); func.insts.len()],
    };
    let merged: Vec<bool> = {
        let mut merged = vec![false; func.insts.len()];
        siblings.iter().flatten().for_each(|&s| merged[s] = true);
        merged
    };
    // Buffers of values a sibling's kernel writes before the loop below
    // reaches them (a reduction's kernel hosts later siblings).
    let mut early: std::collections::HashMap<usize, usize> = Default::default();
    let mut buffers = Vec::new();
    let mut value_buffers: Vec<Option<usize>> = Vec::with_capacity(func.insts.len());
    let mut steps = Vec::new();
    let mut ptx = String::new();
    let _ = writeln!(ptx, "//\n// Generated by jaxlightning for `{}`\n//\n", func.name.replace('\n', " "));
    ptx.push_str(".version 7.8\n.target sm_80\n.address_size 64\n");
    for (i, inst) in func.insts.iter().enumerate() {
        // Aliases first: they get no buffer and no step.
        let alias = match &inst.op {
            Op::Reshape | Op::StopGradient => Some(value_buffers[inst.args[0].index()]),
            Op::Convert if func.ty(inst.args[0]).dtype == inst.ty.dtype => Some(value_buffers[inst.args[0].index()]),
            _ => None,
        };
        if let Some(b) = alias {
            value_buffers.push(Some(b.expect("views of inlined values do not exist: a view is not fusible")));
            continue;
        }
        let unsupported = || PtxError::Unsupported { inst: i, op: op::name(&inst.op), ty: inst.ty.clone() };
        if matches!(inst.op, Op::MatMul | Op::BatchMatMul) && !inst.ty.dtype.is_float() {
            return Err(unsupported());
        }
        if is_not_yet_in_ptx(&inst.op) {
            return Err(unsupported());
        }
        // Neg and reductions on bool pass the verifier but mean nothing
        // (the interpreter rejects them too).
        let bool_reduce = matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. })
            && inst.ty.dtype == DType::Bool;
        if (inst.op == Op::Neg && inst.ty.dtype == DType::Bool) || bool_reduce {
            return Err(unsupported());
        }
        // Inlined values live in the registers of their consumer's kernel.
        if sched.inlined[i] {
            value_buffers.push(None);
            continue;
        }
        let out = early.remove(&i).unwrap_or_else(|| {
            buffers.push(Buffer { dtype: inst.ty.dtype, len: inst.ty.shape.num_elements() });
            buffers.len() - 1
        });
        value_buffers.push(Some(out));
        // Hosted values are stored by their host's kernel, siblings by
        // their reduction's (`ptx/siblings.rs`).
        if sched.hosted[i].is_some() || merged[i] {
            continue;
        }
        let n = inst.ty.shape.num_elements() as u64;
        if let Op::MatMul | Op::BatchMatMul = inst.op {
            let (a, b) = (func.ty(inst.args[0]), func.ty(inst.args[1]));
            let r = a.shape.rank();
            let (m, k, nn) = (a.shape.0[r - 2], a.shape.0[r - 1], b.shape.0[r - 1]);
            let batch: usize = a.shape.0[..r - 2].iter().product();
            if batch * m * nn == 0 {
                continue;
            }
            if k > 0 {
                let operand = |j: usize| value_buffers[inst.args[j].index()].expect("matmul operands are materialized");
                steps.push(Step::Gemm {
                    inst: i,
                    dtype: inst.ty.dtype,
                    batch,
                    m,
                    n: nn,
                    k,
                    a: operand(0),
                    b: operand(1),
                    c: out,
                    offsets: [0; 3],
                    strides: [m * k, k * nn, m * nn],
                });
                continue;
            }
        }
        if let Op::Conv2d(attrs) = &inst.op {
            let (lhs, rhs) = (func.ty(inst.args[0]), func.ty(inst.args[1]));
            if inst.ty.dtype.is_float() && conv_gemm::use_gemm(lhs, rhs, &inst.ty) {
                let operand = |j: usize| value_buffers[inst.args[j].index()].expect("conv operands are materialized");
                let plan = conv_gemm::Plan::new(i, lhs, rhs, &inst.ty, attrs);
                plan.emit([operand(0), operand(1), out], &mut buffers, &mut ptx, &mut steps);
                continue;
            }
        }
        if let Op::Param(_) = inst.op {
            continue;
        }
        if n == 0 {
            continue;
        }
        let name = format!("k{i}_{}", op::name(&inst.op));
        // Large reductions: parallel kernels (and maybe a scratch buffer),
        // evaluating their operand's fused tree per source element.
        if let Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. } | Op::ArgMax { .. } = inst.op {
            let operand = inst.args[0].index();
            let hosts = siblings[i].clone();
            let tree = fusion::Tree::with_siblings(
                func,
                &sched,
                operand,
                sched.inlined[operand],
                Vec::new(),
                hosts,
                &value_buffers,
            );
            let outs: Vec<usize> = tree
                .outputs()
                .into_iter()
                .map(|v| match value_buffers.get(v) {
                    Some(b) => b.expect("outputs have buffers"),
                    None => *early.entry(v).or_insert_with(|| {
                        let ty = &func.insts[v].ty;
                        buffers.push(Buffer { dtype: ty.dtype, len: ty.shape.num_elements() });
                        buffers.len() - 1
                    }),
                })
                .collect();
            let unroll = options.fold_unroll.max(1);
            if reduce::emit_parallel(func, i, &name, out, &tree, &outs, &mut buffers, &mut ptx, &mut steps, unroll) {
                continue;
            }
            assert!(outs.is_empty(), "siblings are only planned for parallel reductions");
        }
        let (kernel, args, items) = kernel_for(func, &sched, i, &name, &value_buffers, options.vector_loads);
        ptx.push('\n');
        ptx.push_str(&kernel);
        let grid = if uses_warp_scatter(func, i) {
            indexing::scatter_add_grid(&inst.ty)
        } else {
            items.div_ceil(u64::from(BLOCK)).min(u64::from(MAX_GRID)) as u32
        };
        steps.push(Step::Kernel { name, inst: i, grid, args });
    }
    let ptx = dedupe::dedupe(&ptx, &mut steps);
    let buffer = |v: usize| value_buffers[v].expect("params and outputs are materialized");
    let params: Vec<usize> = (0..func.n_params).map(buffer).collect();
    let outputs: Vec<usize> = func.outputs.iter().map(|o| buffer(o.index())).collect();
    let pinned: Vec<usize> = params.iter().chain(&outputs).copied().collect();
    let memory = memory_plan::plan(&buffers, &steps, &pinned);
    Ok(PtxProgram {
        ptx,
        steps,
        buffers,
        value_buffers,
        params,
        outputs,
        param_types: func.param_types(),
        output_types: func.output_types(),
        memory,
    })
}

/// The register class holding one element of `dtype`.
fn class(dtype: DType) -> Class {
    match dtype {
        DType::F32 => Class::F32,
        DType::F64 => Class::F64,
        DType::I32 | DType::Bool => Class::B32,
    }
}

/// Loads element `idx` (u64 register) of the buffer at `base`.
fn load(k: &mut Kernel, dtype: DType, base: &str, idx: &str) -> String {
    let size = dtype.size_bytes();
    let addr = k.op3("mad.lo.u64", Class::B64, idx, &size.to_string(), base);
    let ty = match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I32 => "s32",
        DType::Bool => "u8",
    };
    let d = k.reg(class(dtype));
    k.ins(&format!("ld.global.{ty} {d}, [{addr}]"));
    d
}

/// Stores `value` as element `idx` of the buffer at `base`.
fn store(k: &mut Kernel, dtype: DType, base: &str, idx: &str, value: &str) {
    let size = dtype.size_bytes();
    let addr = k.op3("mad.lo.u64", Class::B64, idx, &size.to_string(), base);
    let ty = match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I32 => "s32",
        DType::Bool => "u8",
    };
    k.ins(&format!("st.global.{ty} [{addr}], {value}"));
}

/// Loads elements `i0..i0 + 4` (`i0` a multiple of 4, a u64 register) of
/// the 4-byte buffer at `base` with one 16-byte load: four registers.
fn vector_load(k: &mut Kernel, dtype: DType, base: &str, i0: &str) -> Vec<String> {
    assert_eq!(dtype.size_bytes(), 4, "16-byte loads of 4-byte elements");
    let addr = k.op3("mad.lo.u64", Class::B64, i0, "4", base);
    let regs: Vec<String> = (0..4).map(|_| k.reg(class(dtype))).collect();
    let ty = if dtype == DType::F32 { "f32" } else { "b32" };
    k.ins(&format!("ld.global.v4.{ty} {{{}}}, [{addr}]", regs.join(", ")));
    regs
}

/// Stores `values` as elements `i0..i0 + 4` (`i0` a multiple of 4) of the
/// 4-byte buffer at `base` with one 16-byte store.
fn vector_store(k: &mut Kernel, dtype: DType, base: &str, i0: &str, values: &[String]) {
    assert_eq!((dtype.size_bytes(), values.len()), (4, 4), "16-byte stores of four 4-byte elements");
    let addr = k.op3("mad.lo.u64", Class::B64, i0, "4", base);
    let ty = if dtype == DType::F32 { "f32" } else { "b32" };
    k.ins(&format!("st.global.v4.{ty} [{addr}], {{{}}}", values.join(", ")));
}

/// A register holding the scalar constant `v` of `dtype` (converted as
/// `Tensor::from_f64` does).
fn constant(k: &mut Kernel, dtype: DType, v: f64) -> String {
    match dtype {
        DType::F32 => k.op1("mov.f32", Class::F32, &imm_f32(v as f32)),
        DType::F64 => k.op1("mov.f64", Class::F64, &imm_f64(v)),
        DType::I32 => k.op1("mov.b32", Class::B32, &(v as i32).to_string()),
        DType::Bool => k.op1("mov.b32", Class::B32, if v != 0.0 { "1" } else { "0" }),
    }
}

/// 0/1 in a b32 register from a predicate.
fn bool_of(k: &mut Kernel, p: &str) -> String {
    k.op3("selp.u32", Class::B32, "1", "0", p)
}

/// Source element offset for the output element at flat index `i`, when
/// output axis `a` (of size `dims[a]`) advances the source by `strides[a]`.
fn mapped_index(k: &mut Kernel, i: &str, dims: &[usize], strides: &[usize]) -> String {
    let coords = coords(k, i, dims);
    let mut src = k.op1("mov.u64", Class::B64, "0");
    for axis in (0..dims.len()).rev() {
        if strides[axis] != 0 && dims[axis] != 1 {
            src = k.op3("mad.lo.u64", Class::B64, &coords[axis], &strides[axis].to_string(), &src);
        }
    }
    src
}

/// `(x / d, x % d)` for a u64 register `x` known to be below `bound`, as
/// u64 registers: the index math of every data-movement kernel (broadcast,
/// transpose, pad, im2col, gather, pooling), per element and per dim.
/// ptxas does not strength-reduce a division by an immediate (sm_90 SASS
/// of `div.u32 x, 26`: a reciprocal through the float unit and two
/// correction steps; of `div.u64`: a call to a software routine), so:
/// `d = 1` and powers of two are moves, shifts and masks; `x < 2^31` is a
/// multiply-high by a magic number (`DivMagic`); other `x < 2^32` the
/// 32-bit instruction; the rest the 64-bit one.
pub(super) fn divrem(k: &mut Kernel, x: &str, d: usize, bound: u64) -> (String, String) {
    assert!(d > 0, "division by zero in index math");
    if d == 1 {
        return (x.to_string(), k.op1("mov.u64", Class::B64, "0"));
    }
    if d.is_power_of_two() {
        let q = k.op2("shr.u64", Class::B64, x, &d.trailing_zeros().to_string());
        let r = k.op2("and.b64", Class::B64, x, &(d - 1).to_string());
        return (q, r);
    }
    if let Some(magic) = DivMagic::new(d as u64, bound) {
        let x32 = k.op1("cvt.u32.u64", Class::B32, x);
        let hi = k.op2("mul.hi.u32", Class::B32, &x32, &magic.multiplier.to_string());
        let q = k.op2("shr.u32", Class::B32, &hi, &magic.shift.to_string());
        let qd = k.op2("mul.lo.u32", Class::B32, &q, &d.to_string());
        let r = k.op2("sub.u32", Class::B32, &x32, &qd);
        return (k.op1("cvt.u64.u32", Class::B64, &q), k.op1("cvt.u64.u32", Class::B64, &r));
    }
    if bound <= u64::from(u32::MAX) && d <= u32::MAX as usize {
        let x32 = k.op1("cvt.u32.u64", Class::B32, x);
        let q = k.op2("div.u32", Class::B32, &x32, &d.to_string());
        let r = k.op2("rem.u32", Class::B32, &x32, &d.to_string());
        (k.op1("cvt.u64.u32", Class::B64, &q), k.op1("cvt.u64.u32", Class::B64, &r))
    } else {
        (k.op2("div.u64", Class::B64, x, &d.to_string()), k.op2("rem.u64", Class::B64, x, &d.to_string()))
    }
}

/// Division by a constant `d` (not a power of two) for `x < 2^31` as
/// `mulhi32(x, multiplier) >> shift`, with `l = floor(log2 d)`, `shift =
/// l` and `multiplier = ceil(2^(32+l) / d)` (below 2^32 since `d > 2^l`).
/// Exact: with `e = multiplier * d - 2^(32+l)`, `0 <= e < d < 2^(l+1)`,
/// the product is `2^(32+l) * (x/d + x*e/(d*2^(32+l)))` and `x*e <
/// 2^31 * 2^(l+1) = 2^(32+l)`, so the error term stays below `1/d` and
/// cannot carry the floor past `x/d`'s. (Granlund and Montgomery, 1994.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DivMagic {
    pub multiplier: u32,
    pub shift: u32,
}

impl DivMagic {
    /// The magic for `x < bound`, or `None` where it does not apply.
    pub(super) fn new(d: u64, bound: u64) -> Option<DivMagic> {
        if bound > 1 << 31 || d < 3 || d.is_power_of_two() || d >= 1 << 31 {
            return None;
        }
        let l = 63 - d.leading_zeros();
        let multiplier = (1u64 << (32 + l)).div_ceil(d);
        Some(DivMagic { multiplier: u32::try_from(multiplier).ok()?, shift: l })
    }

    /// The quotient as the emitted code computes it (tests).
    #[cfg(test)]
    pub(super) fn quotient(self, x: u32) -> u32 {
        (((u64::from(x) * u64::from(self.multiplier)) >> 32) as u32) >> self.shift
    }
}

/// Whether instruction `i` is a `ScatterAdd` with enough indices for the
/// warp-ballot kernel (`indexing::scatter_add_warps`).
fn uses_warp_scatter(func: &Func, i: usize) -> bool {
    let inst = &func.insts[i];
    inst.op == Op::ScatterAdd && func.ty(inst.args[1]).shape.num_elements() >= indexing::WARP_SCAN_MIN
}

/// Ops the PTX backend does not emit yet (see `emit`).
fn is_not_yet_in_ptx(op: &Op) -> bool {
    // TODO(gpu): a scan needs a host-driven loop over a body's launch plan.
    matches!(op, Op::Scan(_))
}

/// The kernel text for instruction `i` (which needs one), its launch
/// arguments (buffers, output first) and its work items (the grid-stride
/// trip count over all threads: elements, or groups of four when a fused
/// kernel moves four at a time, `vector_loads`).
fn kernel_for(
    func: &Func,
    sched: &Schedule,
    i: usize,
    name: &str,
    value_buffers: &[Option<usize>],
    vector_loads: bool,
) -> (String, Vec<usize>, u64) {
    if fusion::fusible(func, i) {
        return fusion::kernel(func, sched, i, name, value_buffers, vector_loads);
    }
    let inst = &func.insts[i];
    let ty = &inst.ty;
    let n = ty.shape.num_elements() as u64;
    let arg_ty = |k: usize| func.ty(inst.args[k]).clone();
    let buffer = |v: usize| value_buffers[v].expect("operands of unfused kernels are materialized");
    // A reduction reads its operand as a tree evaluated per source element
    // (when the schedule inlines it) or from its buffer.
    let source = matches!(inst.op, Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. }).then(|| {
        let operand = inst.args[0].index();
        fusion::Tree::new(func, sched, operand, sched.inlined[operand], Vec::new(), value_buffers)
    });
    let mut args = vec![buffer(i)];
    match &source {
        Some(tree) => args.extend(&tree.buffers),
        None => args.extend(inst.args.iter().map(|a| buffer(a.index()))),
    }
    let mut k = Kernel::new(name, args.len());
    let out = k.param_ptr(0);
    let ins: Vec<String> = (1..args.len()).map(|p| k.param_ptr(p)).collect();
    let load_source = |k: &mut Kernel, j: &str| source.as_ref().expect("a reduction").eval(k, j, &ins, &[]);
    match &inst.op {
        Op::Param(_) | Op::Reshape | Op::StopGradient => unreachable!("{:?} has no kernel", inst.op),
        Op::Scan(_) => unreachable!("scan is rejected by `emit`"),
        Op::CustomVjp(_) => unreachable!("custom_vjp is inlined before codegen (`ir::custom_vjp::inline_rules`)"),
        Op::Gather => indexing::gather(&mut k, &arg_ty(0), ty, &out, &ins),
        Op::ScatterAdd if uses_warp_scatter(func, i) => indexing::scatter_add_warps(&mut k, &arg_ty(1), ty, &out, &ins),
        Op::ScatterAdd => indexing::scatter_add(&mut k, &arg_ty(1), ty, &out, &ins),
        Op::RandomBits => random::bits(&mut k, ty, &out, &ins[0], arg_ty(0).shape.num_elements() / 2),
        Op::RandomSplit => random::split(&mut k, ty, &out, &ins[0], arg_ty(0).shape.num_elements() / 2),
        Op::RandomUniform => random::uniform(&mut k, ty, &out, &ins[0], arg_ty(0).shape.num_elements() / 2),
        Op::ReduceWindowSum(w) => window::reduce_window(&mut k, &arg_ty(0), ty, w, false, &out, &ins[0]),
        Op::ReduceWindowMax(w) => window::reduce_window(&mut k, &arg_ty(0), ty, w, true, &out, &ins[0]),
        Op::SelectAndScatter(w) => window::select_and_scatter(&mut k, &arg_ty(0), &arg_ty(1), w, &out, &ins),
        Op::Conv2d(attrs) => window::conv2d(&mut k, &arg_ty(0), &arg_ty(1), ty, attrs, &out, &ins),
        Op::Slice { start, stride, .. } => {
            // out[idx] = src[sum_d (start[d] + idx[d] * stride[d]) * src_strides[d]]
            let src_strides = arg_ty(0).shape.strides();
            let strides: Vec<usize> = (0..stride.len()).map(|d| stride[d] * src_strides[d]).collect();
            let offset: usize = (0..start.len()).map(|d| start[d] * src_strides[d]).sum();
            k.grid_stride_loop(n, |k, i| {
                let s = mapped_index(k, i, ty.shape.dims(), &strides);
                let s = k.op2("add.u64", Class::B64, &s, &offset.to_string());
                let v = load(k, ty.dtype, &ins[0], &s);
                store(k, ty.dtype, &out, i, &v);
            });
        }
        Op::Pad { low, interior, .. } => pad(&mut k, &arg_ty(0), ty, low, interior, &out, &ins[0]),
        Op::Concat { axis } => {
            let sizes: Vec<usize> = inst.args.iter().map(|a| func.ty(*a).shape.0[*axis]).collect();
            concat(&mut k, ty, *axis, &sizes, &out, &ins);
        }
        Op::ArgMax { axis } => argmax(&mut k, &arg_ty(0), ty, *axis, &out, &ins[0]),
        // A (batched) matmul with an empty inner dim is a zero fill.
        Op::MatMul | Op::BatchMatMul => k.grid_stride_loop(n, |k, i| {
            let c = constant(k, ty.dtype, 0.0);
            store(k, ty.dtype, &out, i, &c);
        }),
        Op::Transpose { perm } => {
            let src_strides = arg_ty(0).shape.strides();
            let strides: Vec<usize> = perm.iter().map(|&p| src_strides[p]).collect();
            k.grid_stride_loop(n, |k, i| {
                let s = mapped_index(k, i, ty.shape.dims(), &strides);
                let v = load(k, ty.dtype, &ins[0], &s);
                store(k, ty.dtype, &out, i, &v);
            });
        }
        Op::ReduceSum { axes } => reduce(&mut k, &arg_ty(0), ty, axes, Reduce::Sum, &out, &load_source),
        Op::ReduceMax { axes } => reduce(&mut k, &arg_ty(0), ty, axes, Reduce::Max, &out, &load_source),
        Op::ReduceMin { axes } => reduce(&mut k, &arg_ty(0), ty, axes, Reduce::Min, &out, &load_source),
        Op::Reverse { dims } => {
            // out[idx] = src[idx with idx[d] -> n_d - 1 - idx[d] for d in dims]
            let shape = ty.shape.dims();
            let strides = ty.shape.strides();
            k.grid_stride_loop(n, |k, i| {
                let cs = coords(k, i, shape);
                let mut s = k.op1("mov.u64", Class::B64, "0");
                for (d, c) in cs.iter().enumerate() {
                    let c = if dims.contains(&d) {
                        k.op2("sub.u64", Class::B64, &(shape[d] - 1).to_string(), c)
                    } else {
                        c.clone()
                    };
                    s = k.op3("mad.lo.u64", Class::B64, &c, &strides[d].to_string(), &s);
                }
                let v = load(k, ty.dtype, &ins[0], &s);
                store(k, ty.dtype, &out, i, &v);
            });
        }
        Op::Neg | Op::Exp | Op::Log | Op::Tanh | Op::Sqrt | Op::Logistic | Op::Rsqrt | Op::Abs | Op::Sign => {
            unreachable!("{:?} is fused (`fusion::kernel`)", inst.op)
        }
        Op::Floor | Op::Ceil | Op::Round => unreachable!("{:?} is fused (`fusion::kernel`)", inst.op),
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => {
            unreachable!("{:?} is fused (`fusion::kernel`)", inst.op)
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min | Op::Pow => {
            unreachable!("{:?} is fused (`fusion::kernel`)", inst.op)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select | Op::Convert => {
            unreachable!("{:?} is fused (`fusion::kernel`)", inst.op)
        }
        Op::Constant(_) | Op::Iota { .. } | Op::Broadcast { .. } => {
            unreachable!("{:?} is fused (`fusion::kernel`)", inst.op)
        }
    }
    (k.finish(), args, n)
}
/// PTX type suffix of arithmetic on `dtype` (i32 is signed).
fn arith(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::F64 => "f64",
        DType::I32 => "s32",
        DType::Bool => "u32",
    }
}

/// Runs an f64 routine on an f32 value: widen, compute, round once.
fn via_f64(k: &mut Kernel, dtype: DType, args: &[String], f: impl FnOnce(&mut Kernel, &[String]) -> String) -> String {
    match dtype {
        DType::F64 => f(k, args),
        DType::F32 => {
            let wide: Vec<String> = args.iter().map(|a| k.op1("cvt.f64.f32", Class::F64, a)).collect();
            let r = f(k, &wide);
            k.op1("cvt.rn.f32.f64", Class::F32, &r)
        }
        other => unreachable!("float routine on {other}"),
    }
}

/// One element of an elementwise op: operand registers in, result out.
fn scalar_op(k: &mut Kernel, op: &Op, arg_dtypes: &[DType], a: &[String], out: DType) -> String {
    let dt = arg_dtypes[0];
    let t = arith(dt);
    let cls = class(dt);
    match op {
        Op::Log1p => via_f64(k, dt, a, |k, x| math::log1p_f64(k, &x[0])),
        Op::Expm1 => via_f64(k, dt, a, |k, x| math::expm1_f64(k, &x[0])),
        Op::Sin => via_f64(k, dt, a, |k, x| math::sin_cos_f64(k, &x[0], 0)),
        Op::Cos => via_f64(k, dt, a, |k, x| math::sin_cos_f64(k, &x[0], 1)),
        Op::Erf => via_f64(k, dt, a, |k, x| math::erf_f64(k, &x[0])),
        Op::Scan(_) => unreachable!("scan is rejected by `emit`"),
        Op::CustomVjp(_) => unreachable!("custom_vjp is inlined before codegen (`ir::custom_vjp::inline_rules`)"),
        Op::Neg => k.op1(&format!("neg.{t}"), cls, &a[0]),
        Op::Logistic => via_f64(k, dt, a, |k, x| math::logistic_f64(k, &x[0])),
        // 1 / sqrt(x), two correctly rounded steps, as the interpreter.
        Op::Rsqrt => {
            let s = k.op1(&format!("sqrt.rn.{t}"), cls, &a[0]);
            let one = constant(k, dt, 1.0);
            k.op2(&format!("div.rn.{t}"), cls, &one, &s)
        }
        // Floats: clear the sign bit (NaN payloads kept, as `f64::abs`);
        // i32: `abs.s32` wraps MIN to MIN, as `wrapping_abs`.
        Op::Abs => match dt {
            DType::F32 => {
                let bits = k.op1("mov.b32", Class::B32, &a[0]);
                let cleared = k.op2("and.b32", Class::B32, &bits, "2147483647");
                k.op1("mov.b32", Class::F32, &cleared)
            }
            DType::F64 => {
                let bits = k.op1("mov.b64", Class::B64, &a[0]);
                let cleared = k.op2("and.b64", Class::B64, &bits, "9223372036854775807");
                k.op1("mov.b64", Class::F64, &cleared)
            }
            DType::I32 => k.op1("abs.s32", cls, &a[0]),
            DType::Bool => unreachable!("the verifier rejects abs on bool"),
        },
        // x > 0 -> 1, x < 0 -> -1, else x itself (±0, NaN; 0 for i32).
        Op::Sign => {
            let (pos, neg) = (k.reg(Class::Pred), k.reg(Class::Pred));
            let zero = constant(k, dt, 0.0);
            k.ins(&format!("setp.gt.{t} {pos}, {}, {zero}", a[0]));
            k.ins(&format!("setp.lt.{t} {neg}, {}, {zero}", a[0]));
            let st = if dt == DType::I32 { "s32" } else { t };
            let (one, m1) = (constant(k, dt, 1.0), constant(k, dt, -1.0));
            let r = k.op3(&format!("selp.{st}"), cls, &m1, &a[0], &neg);
            k.op3(&format!("selp.{st}"), cls, &one, &r, &pos)
        }
        // Float-to-float conversions rounding to an integral value: toward
        // -inf, toward +inf, to nearest even (exact, as IEEE's roundings).
        Op::Floor => k.op1(&format!("cvt.rmi.{t}.{t}"), cls, &a[0]),
        Op::Ceil => k.op1(&format!("cvt.rpi.{t}.{t}"), cls, &a[0]),
        Op::Round => k.op1(&format!("cvt.rni.{t}.{t}"), cls, &a[0]),
        Op::Exp => via_f64(k, dt, a, |k, x| math::exp_f64(k, &x[0])),
        Op::Log => via_f64(k, dt, a, |k, x| math::log_f64(k, &x[0])),
        // An f32 result needs ~2^-30 of relative accuracy, not f64's 2^-52.
        Op::Tanh if dt == DType::F32 => via_f64(k, dt, a, |k, x| math::tanh_for_f32(k, &x[0])),
        Op::Tanh => via_f64(k, dt, a, |k, x| math::tanh_f64(k, &x[0])),
        Op::Sqrt => k.op1(&format!("sqrt.rn.{t}"), cls, &a[0]),
        Op::Add | Op::Sub | Op::Mul if dt.is_float() => {
            let name = match op {
                Op::Add => "add",
                Op::Sub => "sub",
                _ => "mul",
            };
            k.op2(&format!("{name}.rn.{t}"), cls, &a[0], &a[1])
        }
        Op::Add => k.op2("add.s32", cls, &a[0], &a[1]),
        Op::Sub => k.op2("sub.s32", cls, &a[0], &a[1]),
        Op::Mul => k.op2("mul.lo.s32", cls, &a[0], &a[1]),
        Op::Div if dt.is_float() => k.op2(&format!("div.rn.{t}"), cls, &a[0], &a[1]),
        Op::Div => {
            // q == 0 or (p == MIN and q == -1) -> 0, as `checked_div`.
            let (zero, min, m1, ovf, bad) =
                (k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred));
            k.ins(&format!("setp.eq.s32 {zero}, {}, 0", a[1]));
            k.ins(&format!("setp.eq.s32 {min}, {}, -2147483648", a[0]));
            k.ins(&format!("setp.eq.s32 {m1}, {}, -1", a[1]));
            k.ins(&format!("and.pred {ovf}, {min}, {m1}"));
            k.ins(&format!("or.pred {bad}, {zero}, {ovf}"));
            let q = k.op3("selp.s32", cls, "1", &a[1], &bad);
            let r = k.op2("div.s32", cls, &a[0], &q);
            k.op3("selp.s32", cls, "0", &r, &bad)
        }
        Op::Max | Op::Min if dt.is_float() => math::fmaxmin(k, cls, &a[0], &a[1], *op == Op::Max),
        Op::Max => k.op2("max.s32", cls, &a[0], &a[1]),
        Op::Min => k.op2("min.s32", cls, &a[0], &a[1]),
        Op::Pow if dt.is_float() => via_f64(k, dt, a, |k, x| math::pow_f64(k, &x[0], &x[1])),
        Op::Pow => math::pow_i32(k, &a[0], &a[1]),
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => {
            let cmp = match op {
                Op::Lt => "lt",
                Op::Le => "le",
                Op::Gt => "gt",
                Op::Ge => "ge",
                Op::Eq => "eq",
                // Unordered: NaN != x is true, as in Rust.
                Op::Ne if dt.is_float() => "neu",
                _ => "ne",
            };
            let p = k.reg(Class::Pred);
            k.ins(&format!("setp.{cmp}.{t} {p}, {}, {}", a[0], a[1]));
            bool_of(k, &p)
        }
        Op::Select => {
            let p = k.reg(Class::Pred);
            k.ins(&format!("setp.ne.u32 {p}, {}, 0", a[0]));
            let st = match out {
                DType::F32 => "f32",
                DType::F64 => "f64",
                DType::I32 | DType::Bool => "b32",
            };
            k.op3(&format!("selp.{st}"), class(out), &a[1], &a[2], &p)
        }
        Op::Convert => convert(k, dt, out, &a[0]),
        Op::Param(_)
        | Op::Constant(_)
        | Op::Iota { .. }
        | Op::Broadcast { .. }
        | Op::Reshape
        | Op::Transpose { .. }
        | Op::ReduceSum { .. }
        | Op::ReduceMax { .. }
        | Op::MatMul
        | Op::StopGradient
        | Op::ArgMax { .. }
        | Op::Slice { .. }
        | Op::Pad { .. }
        | Op::Concat { .. } => unreachable!("{op:?} is not elementwise"),
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform => unreachable!("{op:?} is not elementwise"),
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::SelectAndScatter(_) => unreachable!("{op:?} is not elementwise"),
    }
}

/// Element conversion, as `interp::convert` (Rust `as`, bool as 0/1).
fn convert(k: &mut Kernel, from: DType, to: DType, x: &str) -> String {
    match (from, to) {
        (DType::F32, DType::F64) => k.op1("cvt.f64.f32", Class::F64, x),
        (DType::F64, DType::F32) => k.op1("cvt.rn.f32.f64", Class::F32, x),
        (DType::F32 | DType::F64, DType::I32) => {
            // Truncate and saturate; NaN -> 0 explicitly.
            let t = arith(from);
            let r = k.op1(&format!("cvt.rzi.sat.s32.{t}"), Class::B32, x);
            let nan = k.reg(Class::Pred);
            k.ins(&format!("setp.nan.{t} {nan}, {x}, {x}"));
            k.op3("selp.s32", Class::B32, "0", &r, &nan)
        }
        (DType::I32, DType::F32) => k.op1("cvt.rn.f32.s32", Class::F32, x),
        (DType::I32, DType::F64) => k.op1("cvt.rn.f64.s32", Class::F64, x),
        (DType::Bool, DType::F32) => k.op1("cvt.rn.f32.u32", Class::F32, x),
        (DType::Bool, DType::F64) => k.op1("cvt.rn.f64.u32", Class::F64, x),
        (DType::Bool, DType::I32) => k.op1("mov.b32", Class::B32, x),
        (DType::F32 | DType::F64 | DType::I32, DType::Bool) => {
            let (t, zero) = match from {
                DType::F32 => ("neu.f32", imm_f32(0.0)),
                DType::F64 => ("neu.f64", imm_f64(0.0)),
                _ => ("ne.s32", "0".to_string()),
            };
            let p = k.reg(Class::Pred);
            k.ins(&format!("setp.{t} {p}, {x}, {zero}"));
            bool_of(k, &p)
        }
        // Same-dtype converts alias their operand (see `emit`); kept for
        // completeness.
        (DType::F32, DType::F32) => k.op1("mov.f32", Class::F32, x),
        (DType::F64, DType::F64) => k.op1("mov.f64", Class::F64, x),
        (DType::I32 | DType::Bool, DType::I32 | DType::Bool) => k.op1("mov.b32", Class::B32, x),
    }
}

/// How a reduction combines elements.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reduce {
    Sum,
    Max,
    Min,
}

/// A reduction kernel: one thread per output element, summing (or taking
/// the max or min of) the reduced elements in row-major order, as the
/// interpreter, from its identity (0, -inf / i32::MIN, +inf / i32::MAX).
///
/// `source(k, j)` is the operand's element at flat index `j` (a u64
/// register): a load, or its fused tree evaluated in registers.
fn reduce(
    k: &mut Kernel,
    src: &Type,
    ty: &Type,
    axes: &[usize],
    how: Reduce,
    out: &str,
    source: &dyn Fn(&mut Kernel, &str) -> String,
) {
    let dtype = ty.dtype;
    let src_strides = src.shape.strides();
    let kept: Vec<usize> = (0..src.shape.rank()).filter(|d| !axes.contains(d)).collect();
    let kept_strides: Vec<usize> = kept.iter().map(|&d| src_strides[d]).collect();
    let red_dims: Vec<usize> = axes.iter().map(|&d| src.shape.0[d]).collect();
    let red_strides: Vec<usize> = axes.iter().map(|&d| src_strides[d]).collect();
    let n_red: usize = red_dims.iter().product();
    let n = ty.shape.num_elements() as u64;
    let cls = class(dtype);
    k.grid_stride_loop(n, |k, o| {
        let base = mapped_index(k, o, ty.shape.dims(), &kept_strides);
        let acc = match (dtype, how) {
            (DType::F32, Reduce::Sum) => k.op1("mov.f32", cls, &imm_f32(0.0)),
            (DType::F32, Reduce::Max) => k.op1("mov.f32", cls, &imm_f32(f32::NEG_INFINITY)),
            (DType::F32, Reduce::Min) => k.op1("mov.f32", cls, &imm_f32(f32::INFINITY)),
            (DType::F64, Reduce::Sum) => k.op1("mov.f64", cls, &imm_f64(0.0)),
            (DType::F64, Reduce::Max) => k.op1("mov.f64", cls, &imm_f64(f64::NEG_INFINITY)),
            (DType::F64, Reduce::Min) => k.op1("mov.f64", cls, &imm_f64(f64::INFINITY)),
            (DType::I32, Reduce::Sum) => k.op1("mov.b32", cls, "0"),
            (DType::I32, Reduce::Max) => k.op1("mov.b32", cls, "-2147483648"),
            (DType::I32, Reduce::Min) => k.op1("mov.b32", cls, "2147483647"),
            (DType::Bool, _) => unreachable!("the verifier rejects bool reductions"),
        };
        if n_red == 0 {
            store(k, dtype, out, o, &acc);
            return;
        }
        let r = k.op1("mov.u64", Class::B64, "0");
        let head = k.label("red");
        k.place(&head);
        let off = mapped_index(k, &r, &red_dims, &red_strides);
        let at = k.op2("add.u64", Class::B64, &base, &off);
        let v = source(k, &at);
        let next = match (dtype, how) {
            (DType::F32 | DType::F64, Reduce::Sum) => k.op2(&format!("add.rn.{}", arith(dtype)), cls, &acc, &v),
            (DType::F32 | DType::F64, Reduce::Max) => math::fmaxmin(k, cls, &acc, &v, true),
            (DType::F32 | DType::F64, Reduce::Min) => math::fmaxmin(k, cls, &acc, &v, false),
            (DType::I32, Reduce::Sum) => k.op2("add.s32", cls, &acc, &v),
            (DType::I32, Reduce::Max) => k.op2("max.s32", cls, &acc, &v),
            (DType::I32, Reduce::Min) => k.op2("min.s32", cls, &acc, &v),
            (DType::Bool, _) => unreachable!("the verifier rejects bool reductions"),
        };
        let mov = if dtype == DType::I32 { "mov.b32".to_string() } else { format!("mov.{}", arith(dtype)) };
        k.ins(&format!("{mov} {acc}, {next}"));
        k.ins(&format!("add.u64 {r}, {r}, 1"));
        let more = k.reg(Class::Pred);
        k.ins(&format!("setp.lt.u64 {more}, {r}, {n_red}"));
        k.ins(&format!("@{more} bra {head}"));
        store(k, dtype, out, o, &acc);
    });
}

/// The coordinate (u64 register) along each axis of the flat row-major
/// index `i` into `dims`.
fn coords(k: &mut Kernel, i: &str, dims: &[usize]) -> Vec<String> {
    let mut out = vec![String::new(); dims.len()];
    let mut rem = i.to_string();
    // `i` indexes the row-major `dims` (at most their product).
    let mut bound: u64 = dims.iter().map(|&d| d as u64).product();
    for axis in (0..dims.len()).rev() {
        if axis == 0 {
            // The outermost axis needs no remainder: what is left is its coord.
            out[axis] = rem.clone();
        } else {
            let (q, r) = divrem(k, &rem, dims[axis], bound);
            out[axis] = r;
            rem = q;
            bound = bound / dims[axis].max(1) as u64 + 1;
        }
    }
    out
}

/// A pad kernel, gathering: output coord `c` along dim `d` holds source
/// coord `(c - low) / (interior + 1)` when `c >= low`, `(c - low)` is a
/// multiple of `interior + 1` and the quotient is below the source dim;
/// otherwise zero. The load index is clamped to 0 where the element is
/// padding, so every load stays in bounds.
fn pad(k: &mut Kernel, src: &Type, ty: &Type, low: &[usize], interior: &[usize], out: &str, input: &str) {
    let dtype = ty.dtype;
    let n = ty.shape.num_elements() as u64;
    let src_strides = src.shape.strides();
    let empty_src = src.shape.num_elements() == 0;
    k.grid_stride_loop(n, |k, i| {
        let zero = constant(k, dtype, 0.0);
        if empty_src {
            store(k, dtype, out, i, &zero);
            return;
        }
        let cs = coords(k, i, ty.shape.dims());
        let valid = k.reg(Class::Pred);
        // Starts true (`i == i`); each dim's conditions are and-ed in.
        k.ins(&format!("setp.eq.u64 {valid}, {i}, {i}"));
        let mut s = k.op1("mov.u64", Class::B64, "0");
        for d in 0..cs.len() {
            let step = interior[d] + 1;
            let (ge, rem0, inside) = (k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred));
            k.ins(&format!("setp.ge.u64 {ge}, {}, {}", cs[d], low[d]));
            let t = k.op2("sub.u64", Class::B64, &cs[d], &low[d].to_string());
            // (t wraps around below `low`; that lane is invalid (`ge`), so
            // its 32-bit quotient is never used.)
            let (q, r) = divrem(k, &t, step, ty.shape.0[d] as u64);
            k.ins(&format!("setp.eq.u64 {rem0}, {r}, 0"));
            k.ins(&format!("setp.lt.u64 {inside}, {q}, {}", src.shape.0[d]));
            k.ins(&format!("and.pred {valid}, {valid}, {ge}"));
            k.ins(&format!("and.pred {valid}, {valid}, {rem0}"));
            k.ins(&format!("and.pred {valid}, {valid}, {inside}"));
            s = k.op3("mad.lo.u64", Class::B64, &q, &src_strides[d].to_string(), &s);
        }
        let at = k.op3("selp.u64", Class::B64, &s, "0", &valid);
        let v = load(k, dtype, input, &at);
        let st = match dtype {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I32 | DType::Bool => "b32",
        };
        let r = k.op3(&format!("selp.{st}"), class(dtype), &v, &zero, &valid);
        store(k, dtype, out, i, &r);
    });
}

/// A concat kernel: the output coord `c` along `axis` picks operand `j`
/// with `offset_j <= c < offset_j + sizes[j]` (a chain of branches), which
/// supplies element `(outer, c - offset_j, inner)`.
fn concat(k: &mut Kernel, ty: &Type, axis: usize, sizes: &[usize], out: &str, ins: &[String]) {
    let dtype = ty.dtype;
    let n = ty.shape.num_elements() as u64;
    let dims = ty.shape.dims();
    let inner: usize = dims[axis + 1..].iter().product();
    let total = dims[axis];
    k.grid_stride_loop(n, |k, i| {
        let (rows, inner_i) = divrem(k, i, inner, n);
        let (outer, c) = divrem(k, &rows, total, n);
        let done = k.label("cat_done");
        let mut cases = Vec::new();
        let mut end = 0;
        for (j, &size) in sizes.iter().enumerate() {
            end += size;
            if size == 0 {
                continue;
            }
            let p = k.reg(Class::Pred);
            k.ins(&format!("setp.lt.u64 {p}, {c}, {end}"));
            let case = k.label("cat");
            k.ins(&format!("@{p} bra {case}"));
            cases.push((j, end - size, case));
        }
        k.ins(&format!("bra {done}"));
        for (j, offset, case) in cases {
            k.place(&case);
            let local = k.op2("sub.u64", Class::B64, &c, &offset.to_string());
            let row = k.op3("mad.lo.u64", Class::B64, &outer, &sizes[j].to_string(), &local);
            let at = k.op3("mad.lo.u64", Class::B64, &row, &inner.to_string(), &inner_i);
            let v = load(k, dtype, &ins[j], &at);
            store(k, dtype, out, i, &v);
            k.ins(&format!("bra {done}"));
        }
        k.place(&done);
    });
}

/// An argmax kernel: one thread per output element scanning the axis in
/// order, as the interpreter: element `v` replaces the best if `v > best`
/// or `v` is NaN and the best is not (so the first NaN wins).
fn argmax(k: &mut Kernel, src: &Type, ty: &Type, axis: usize, out: &str, input: &str) {
    let dtype = src.dtype;
    let dims = src.shape.dims();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let n = ty.shape.num_elements() as u64;
    let t = arith(dtype);
    let cls = class(dtype);
    k.grid_stride_loop(n, |k, o| {
        let (outer, inner_i) = divrem(k, o, inner, n);
        let base = k.op3("mad.lo.u64", Class::B64, &outer, &(len * inner).to_string(), &inner_i);
        let best = match dtype {
            DType::F32 => k.op1("mov.f32", cls, &imm_f32(f32::NEG_INFINITY)),
            DType::F64 => k.op1("mov.f64", cls, &imm_f64(f64::NEG_INFINITY)),
            DType::I32 => k.op1("mov.b32", cls, "-2147483648"),
            DType::Bool => unreachable!("the verifier rejects argmax on bool"),
        };
        let best_idx = k.op1("mov.b32", Class::B32, "0");
        let r = k.op1("mov.u64", Class::B64, "0");
        let head = k.label("argmax");
        k.place(&head);
        let at = k.op3("mad.lo.u64", Class::B64, &r, &inner.to_string(), &base);
        let v = load(k, dtype, input, &at);
        let better = k.reg(Class::Pred);
        k.ins(&format!("setp.gt.{t} {better}, {v}, {best}"));
        if dtype.is_float() {
            let (v_nan, best_num, nan_wins) = (k.reg(Class::Pred), k.reg(Class::Pred), k.reg(Class::Pred));
            k.ins(&format!("setp.nan.{t} {v_nan}, {v}, {v}"));
            k.ins(&format!("setp.num.{t} {best_num}, {best}, {best}"));
            k.ins(&format!("and.pred {nan_wins}, {v_nan}, {best_num}"));
            k.ins(&format!("or.pred {better}, {better}, {nan_wins}"));
        }
        let idx32 = k.op1("cvt.u32.u64", Class::B32, &r);
        let st = if dtype == DType::I32 { "s32" } else { t };
        k.ins(&format!("selp.{st} {best}, {v}, {best}, {better}"));
        k.ins(&format!("selp.s32 {best_idx}, {idx32}, {best_idx}, {better}"));
        k.ins(&format!("add.u64 {r}, {r}, 1"));
        let more = k.reg(Class::Pred);
        k.ins(&format!("setp.lt.u64 {more}, {r}, {len}"));
        k.ins(&format!("@{more} bra {head}"));
        store(k, DType::I32, out, o, &best_idx);
    });
}

#[cfg(test)]
pub(crate) mod sim;
#[cfg(test)]
mod tests;
