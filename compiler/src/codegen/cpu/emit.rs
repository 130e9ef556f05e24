//! Instruction selection for the CPU backend: one loop per fusion group
//! (see `schedule.rs`), one loop nest per other instruction.
//!
//! Consumes a verified `ir::Func` scheduled by `schedule.rs`, buffers placed by `plan.rs`;
//! produces CLIF in a `FunctionBuilder`. Loops are counted loops with
//! compile-time trip counts (shapes are concrete) whose pointers are carried
//! as block parameters and advanced by constant byte strides.

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{self as clif, types, AbiParam, BlockArg, FuncRef, InstBuilder, MemFlagsData};
use cranelift_frontend::FunctionBuilder;
use cranelift_jit::JITModule;
use cranelift_module::{Linkage, Module};

use super::kernels::{HostFn, HostSig};
use super::schedule::{self, Leaf, Schedule};
use super::vmath;
use super::CodegenError;
use crate::ir::{sum_order, DType, Func, Op, Tensor};

mod blocked_sum;
mod parallel;
mod wide_tree;

/// Every pointer and loop counter is a 64-bit integer (`compile` checks the
/// host's pointer width).
const PTR: clif::Type = types::I64;

/// Elements per call of a wide transcendental routine within a long row
/// (`Emitter::emit_fused_math`): 4 KB of f32, which the loop has just
/// stored and the routine finds in L1.
const WIDE_CHUNK: usize = 1024;

/// Rows shorter than this stay in Cranelift's code: a wide kernel's call
/// (a pointer table, the call, a masked tail) costs more than it saves.
const WIDE_MIN_ROW: usize = 32;

/// A loop body: gets the current pointers and carried values, returns the
/// next carried values.
type Body<'a> = &'a mut dyn FnMut(&mut FunctionBuilder, &[clif::Value], &[clif::Value]) -> Vec<clif::Value>;

/// Machine code defined apart from a chunk's own function, for listings.
pub(super) struct Listed {
    /// The instruction whose loop it is.
    pub(super) index: usize,
    pub(super) bytes: Vec<u8>,
    pub(super) text: String,
    /// A 512-bit kernel (`cpu/wide.rs`); else a loop outlined onto threads.
    pub(super) wide: bool,
}

pub(super) struct Emitter<'a, 'm> {
    b: FunctionBuilder<'a>,
    module: &'m mut JITModule,
    func: &'m Func,
    sched: &'m Schedule,
    /// The entry parameter: a table of buffer base pointers, one per value.
    table: clif::Value,
    host_refs: HashMap<HostFn, FuncRef>,
    /// Whether to keep the listing of outlined loops (`cpu::machine_code`).
    listing: bool,
    /// Whether large fused loops run on threads (`cpu::Options::parallel_loops`).
    parallel_loops: bool,
    /// The machine code and listing of the loops outlined so far
    /// (`parallel.rs`) and of the wide kernels (`cpu/wide.rs`), with the
    /// instruction each computes.
    outlined: Vec<Listed>,
}

impl<'a, 'm> Emitter<'a, 'm> {
    pub(super) fn new(
        mut b: FunctionBuilder<'a>,
        module: &'m mut JITModule,
        func: &'m Func,
        sched: &'m Schedule,
    ) -> Emitter<'a, 'm> {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        let table = b.block_params(entry)[0];
        Emitter {
            b,
            module,
            func,
            sched,
            table,
            host_refs: HashMap::new(),
            listing: false,
            parallel_loops: false,
            outlined: Vec::new(),
        }
    }

    /// Keeps the machine code and listing of outlined loops for `finish`.
    pub(super) fn with_listing(mut self, listing: bool) -> Self {
        self.listing = listing;
        self
    }

    /// Lets large fused loops run on threads (`parallel.rs`).
    pub(super) fn with_parallel_loops(mut self, parallel_loops: bool) -> Self {
        self.parallel_loops = parallel_loops;
        self
    }

    /// Whether the code so far calls a host routine that may split its
    /// work over the host kernels' threads.
    pub(super) fn calls_threaded_routines(&self) -> bool {
        self.host_refs.keys().any(|h| h.uses_threads())
    }

    /// Ends the function; returns the loops outlined from it and the wide
    /// kernels it calls (when listing).
    pub(super) fn finish(mut self) -> Vec<Listed> {
        self.b.ins().return_(&[]);
        self.b.seal_all_blocks();
        let config = self.module.target_config();
        self.b.finalize(config);
        self.outlined
    }

    /// Emits the code computing instruction `index` into its buffer.
    pub(super) fn emit_inst(&mut self, index: usize) -> Result<(), CodegenError> {
        let inst = &self.func.insts[index];
        if inst.ty.shape.num_elements() == 0 || self.sched.emitted_elsewhere(index) {
            return Ok(());
        }
        // Run chunk by chunk inside its reduction's loop (`tiled_pairs`).
        if self.sched.tiled[index].is_some() {
            return Ok(());
        }
        match &inst.op {
            // `run` fills parameter buffers; views share their operand's buffer.
            Op::Param(_) | Op::Reshape | Op::StopGradient => {}
            // Run by `cpu::scan` between the compiled chunks.
            Op::Scan(_) => {}
            Op::CustomVjp(_) => unreachable!("custom_vjp is inlined before codegen (`ir::custom_vjp::inline_rules`)"),
            Op::Constant(_) => self.emit_fused(index)?,
            Op::Iota { axis } => self.emit_iota(index, *axis),
            Op::Convert if self.func.ty(inst.args[0]).dtype == inst.ty.dtype => {}
            Op::Neg | Op::Sqrt | Op::Convert | Op::Select => self.emit_fused(index)?,
            Op::Abs | Op::Sign | Op::Rsqrt => self.emit_fused(index)?,
            Op::Floor | Op::Ceil | Op::Round => self.emit_fused(index)?,
            Op::Log1p => self.emit_host_elementwise(index, [HostFn::Log1pF32, HostFn::Log1pF64], None)?,
            Op::Expm1 => self.emit_host_elementwise(index, [HostFn::Expm1F32, HostFn::Expm1F64], None)?,
            Op::Logistic if self.sched.inline_math => self.emit_fused_math(index)?,
            Op::Logistic => self.emit_host_elementwise(index, [HostFn::LogisticF32, HostFn::LogisticF64], None)?,
            Op::Sin => self.emit_host_elementwise(index, [HostFn::SinF32, HostFn::SinF64], None)?,
            Op::Cos => self.emit_host_elementwise(index, [HostFn::CosF32, HostFn::CosF64], None)?,
            Op::Erf => self.emit_host_elementwise(index, [HostFn::ErfF32, HostFn::ErfF64], None)?,
            Op::ArgMax { axis } => self.emit_argmax(index, *axis),
            Op::Slice { start, stride, .. } => {
                // Result dim d walks the operand from start[d] by stride[d].
                let src_strides = self.func.ty(inst.args[0]).shape.strides();
                let offset: usize = start.iter().zip(&src_strides).map(|(s, t)| s * t).sum();
                let strides: Vec<i64> = src_strides.iter().zip(stride).map(|(&t, &k)| (t * k) as i64).collect();
                let dst_strides: Vec<i64> = inst.ty.shape.strides().iter().map(|&t| t as i64).collect();
                let dims = inst.ty.shape.0.clone();
                self.emit_copy(inst.args[0].index(), offset, &strides, index, 0, &dst_strides, &dims);
            }
            Op::Pad { low, interior, .. } => {
                self.emit_fill_zero(index);
                // Operand element idx lands at low + idx * (interior + 1).
                let src_ty = self.func.ty(inst.args[0]).clone();
                let out_strides = inst.ty.shape.strides();
                let offset: usize = low.iter().zip(&out_strides).map(|(l, t)| l * t).sum();
                let dst_strides: Vec<i64> =
                    out_strides.iter().zip(interior).map(|(&t, &i)| (t * (i + 1)) as i64).collect();
                let src_strides: Vec<i64> = src_ty.shape.strides().iter().map(|&t| t as i64).collect();
                self.emit_copy(inst.args[0].index(), 0, &src_strides, index, offset, &dst_strides, &src_ty.shape.0);
            }
            Op::Concat { axis } => {
                // Each operand is copied into its band along the axis.
                let out_strides = inst.ty.shape.strides();
                let dst_strides: Vec<i64> = out_strides.iter().map(|&t| t as i64).collect();
                let mut at = 0;
                for arg in inst.args.clone() {
                    let src_ty = self.func.ty(arg).clone();
                    let src_strides: Vec<i64> = src_ty.shape.strides().iter().map(|&t| t as i64).collect();
                    let offset = at * out_strides[*axis];
                    self.emit_copy(arg.index(), 0, &src_strides, index, offset, &dst_strides, &src_ty.shape.0);
                    at += src_ty.shape.0[*axis];
                }
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => self.emit_fused(index)?,
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => self.emit_fused(index)?,
            Op::Exp | Op::Log | Op::Tanh if self.sched.inline_math => self.emit_fused_math(index)?,
            Op::Exp => self.emit_host_elementwise(index, [HostFn::ExpF32, HostFn::ExpF64], None)?,
            Op::Log => self.emit_host_elementwise(index, [HostFn::LogF32, HostFn::LogF64], None)?,
            Op::Tanh => self.emit_host_elementwise(index, [HostFn::TanhF32, HostFn::TanhF64], None)?,
            Op::Pow if schedule::fusible(self.func, index, self.sched.inline_math) => self.emit_fused(index)?,
            Op::Pow => self.emit_host_elementwise(index, [HostFn::PowF32, HostFn::PowF64], Some(HostFn::PowI32))?,
            Op::Broadcast { .. } => self.emit_fused(index)?,
            Op::Transpose { perm } => {
                let src_strides = self.func.ty(inst.args[0]).shape.strides();
                let strides: Vec<i64> = perm.iter().map(|&p| src_strides[p] as i64).collect();
                self.emit_gather(index, &strides);
            }
            Op::ReduceSum { .. } => self.emit_reduce_tiled(index, ReduceKind::Sum)?,
            Op::ReduceMax { .. } => self.emit_reduce_tiled(index, ReduceKind::Max)?,
            Op::MatMul => self.emit_matmul(index)?,
            Op::ReduceMin { .. } => self.emit_reduce_tiled(index, ReduceKind::Min)?,
            Op::Gather | Op::ScatterAdd | Op::BatchMatMul => self.emit_host_op(index)?,
            Op::RandomBits | Op::RandomSplit | Op::RandomUniform => self.emit_host_op(index)?,
            Op::Reverse { dims } => {
                // Walk reversed dims backwards from their last element.
                let src_strides = self.func.ty(inst.args[0]).shape.strides();
                let shape = inst.ty.shape.0.clone();
                let offset: usize = dims.iter().map(|&d| (shape[d] - 1) * src_strides[d]).sum();
                let strides: Vec<i64> = (0..shape.len())
                    .map(|d| if dims.contains(&d) { -(src_strides[d] as i64) } else { src_strides[d] as i64 })
                    .collect();
                let dst_strides: Vec<i64> = inst.ty.shape.strides().iter().map(|&t| t as i64).collect();
                self.emit_copy(inst.args[0].index(), offset, &strides, index, 0, &dst_strides, &shape);
            }
            Op::Conv2d(_) => self.emit_described(index, [HostFn::Conv2dF32, HostFn::Conv2dF64])?,
            Op::ReduceWindowSum(_) => {
                self.emit_described(index, [HostFn::ReduceWindowSumF32, HostFn::ReduceWindowSumF64])?
            }
            Op::ReduceWindowMax(_) => {
                self.emit_described(index, [HostFn::ReduceWindowMaxF32, HostFn::ReduceWindowMaxF64])?
            }
            Op::SelectAndScatter(_) => {
                self.emit_described(index, [HostFn::SelectAndScatterF32, HostFn::SelectAndScatterF64])?
            }
        }
        Ok(())
    }

    /// Loads the base pointer of value `index`'s buffer from the table.
    fn base(&mut self, index: usize) -> clif::Value {
        self.b.ins().load(PTR, MemFlagsData::trusted(), self.table, (index * 8) as i32)
    }

    fn constant(&mut self, dtype: DType, value: f64) -> clif::Value {
        match dtype {
            DType::F32 => self.b.ins().f32const(value as f32),
            DType::F64 => self.b.ins().f64const(value),
            DType::I32 => self.b.ins().iconst(types::I32, value as i32 as i64),
            DType::Bool => self.b.ins().iconst(types::I8, (value != 0.0) as i64),
        }
    }

    /// Result `[d0.., n, inner..]` where element = its index along `axis`.
    fn emit_iota(&mut self, index: usize, axis: usize) {
        let ty = &self.func.insts[index].ty;
        let dims = ty.shape.dims();
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let size = ty.dtype.size_bytes() as i64;
        let dtype = ty.dtype;
        let dst = self.base(index);
        let zero = self.b.ins().iconst(PTR, 0);
        // Pointers: [dst, position along axis]; the position is an integer
        // carried like a pointer with stride 1 on the axis dim.
        let nest_dims = [outer, dims[axis], inner];
        let strides = [vec![dims[axis] as i64 * inner as i64 * size, 0], vec![inner as i64 * size, 1], vec![size, 0]];
        emit_nest(&mut self.b, &nest_dims, &strides, &[dst, zero], &[], &mut |b, ptrs, _| {
            let value = match dtype {
                DType::F32 => b.ins().fcvt_from_sint(types::F32, ptrs[1]),
                DType::F64 => b.ins().fcvt_from_sint(types::F64, ptrs[1]),
                DType::I32 => b.ins().ireduce(types::I32, ptrs[1]),
                DType::Bool => unreachable!("the verifier rejects bool iota"),
            };
            store(b, value, ptrs[0]);
            vec![]
        });
    }

    /// One loop over the elements of fusible value `root` that evaluates its
    /// whole fusion group (the tree of inlined producers, see `schedule`) in
    /// registers and stores only the result. Leaves are read through their
    /// strides (0 on broadcast dims). The innermost dim runs f32x4 / f64x2
    /// when every op of the tree is lane-wise exact (`vector_lanes`), with a
    /// scalar tail.
    fn emit_fused(&mut self, root: usize) -> Result<(), CodegenError> {
        self.emit_fused_with(root, None)
    }

    /// A fused loop rooted at an inline transcendental: with
    /// `Schedule::wide_math`, an f32 root whose rows hold at least 16
    /// elements gets its function from the 512-bit routine (`vmath_x16.rs`),
    /// called on each row (or chunk of `WIDE_CHUNK` elements) right after
    /// the loop stored the operand there, while it is in cache; otherwise
    /// the usual inline loop.
    fn emit_fused_math(&mut self, root: usize) -> Result<(), CodegenError> {
        let inst = &self.func.insts[root];
        let host = wide_routine(&inst.op);
        let inner = inst.ty.shape.0.last().copied().unwrap_or(1);
        if !self.sched.wide_math || inst.ty.dtype != DType::F32 || inner < 16 {
            return self.emit_fused(root);
        }
        self.emit_fused_with(root, Some(host))
    }

    /// `wide`: the root's function is computed by this 512-bit routine (see
    /// `emit_fused_math`); the loop itself stores the root's operand. A
    /// large loop is outlined and run in parts on the host kernels' threads
    /// (`parallel.rs`).
    fn emit_fused_with(&mut self, root: usize, wide: Option<HostFn>) -> Result<(), CodegenError> {
        if let Some(split) = self.parallel_split(root) {
            return self.emit_fused_parallel(root, wide, split);
        }
        let wide = wide.map(|host| self.host_ref(host)).transpose()?;
        let (func, sched) = (self.func, self.sched);
        let (fused, bases) = self.fused_loop(root, wide)?;
        let Some((&inner, outer_dims)) = fused.dims.split_last() else {
            // One element.
            let res = fused.tree(func, sched, 1, &[]).eval(&mut self.b, &bases);
            store(&mut self.b, res, bases[fused.out_at]);
            return Ok(());
        };
        let outer_strides = &fused.strides[..fused.dims.len() - 1];
        emit_nest(&mut self.b, outer_dims, outer_strides, &bases, &[], &mut |b, ptrs, _| {
            fused.rows(func, sched, b, ptrs, inner);
            vec![]
        });
        Ok(())
    }

    /// The walkers and trees of the fused loop rooted at `root`, and the
    /// base pointers of its walkers (leaves, the root, its guests).
    fn fused_loop(
        &mut self,
        root: usize,
        wide: Option<FuncRef>,
    ) -> Result<(FusedLoop, Vec<clif::Value>), CodegenError> {
        let mut fused = self.fused_plan(root, wide);
        fused.kernel = self.row_kernel(&fused)?;
        let mut bases: Vec<clif::Value> = fused.leaves.iter().map(|leaf| self.base(leaf.value)).collect();
        bases.push(self.base(root));
        for &guest in &fused.guests {
            bases.push(self.base(guest));
        }
        Ok((fused, bases))
    }

    /// The 512-bit kernel of `fused`'s rows (`cpu/wide.rs`), when wide loops
    /// are on, its rows hold at least `WIDE_MIN_ROW` elements and its tree
    /// has a wide form.
    fn row_kernel(&mut self, fused: &FusedLoop) -> Result<Option<FuncRef>, CodegenError> {
        let (func, sched) = (self.func, self.sched);
        if !sched.wide_loops || fused.dims.last().is_none_or(|&inner| inner < WIDE_MIN_ROW) {
            return Ok(None);
        }
        let inner_steps = fused.inner_steps();
        let tree = fused.tree(func, sched, 1, inner_steps);
        let Some(program) = wide_tree::program(&tree, &[], wide_tree::RootUse::Store(fused.out_at)) else {
            return Ok(None);
        };
        self.wide_kernel(fused.root, &program, inner_steps.len())
    }

    /// `program`'s machine code (`wide::encode`) defined as a function of
    /// the module, referenced from the function being emitted; `None` when
    /// it does not encode.
    fn wide_kernel(
        &mut self,
        index: usize,
        program: &super::wide::Program,
        walkers: usize,
    ) -> Result<Option<FuncRef>, CodegenError> {
        let Some(bytes) = super::wide::encode(program, walkers) else { return Ok(None) };
        let mut sig = self.module.make_signature();
        sig.params.extend([AbiParam::new(PTR); 3]);
        let name = format!("jl_wide{index}_{}", self.module.declarations().get_functions().count());
        let id = self.module.declare_function(&name, cranelift_module::Linkage::Local, &sig)?;
        self.module.define_function_bytes(id, 64, &bytes, &[])?;
        if self.listing {
            let text = bytes.chunks(16).map(|line| format!("  {:02x?}\n", line)).collect();
            self.outlined.push(Listed { index, bytes, text, wide: true });
        }
        Ok(Some(self.module.declare_func_in_func(id, self.b.func)))
    }

    /// The walkers, merged dims and trees of the fused loop rooted at `root`
    /// (no code emitted).
    fn fused_plan(&self, root: usize, wide: Option<FuncRef>) -> FusedLoop {
        let (func, sched) = (self.func, self.sched);
        let ty = &func.insts[root].ty;
        let leaves = schedule::leaves(func, sched, root);
        // Hosted values of the root's shape, stored by this loop as it goes
        // (empty ones are skipped: nothing to store).
        let guests: Vec<usize> =
            sched.guests[root].iter().copied().filter(|&g| func.insts[g].ty.shape.num_elements() > 0).collect();
        let out_strides = ty.shape.strides();
        let per_dim: Vec<Vec<i64>> = (0..ty.shape.rank())
            .map(|d| {
                let leaf_strides =
                    leaves.iter().map(|leaf| leaf.strides[d] * func.insts[leaf.value].ty.dtype.size_bytes() as i64);
                let outs = std::iter::once(root)
                    .chain(guests.iter().copied())
                    .map(|v| out_strides[d] as i64 * func.insts[v].ty.dtype.size_bytes() as i64);
                leaf_strides.chain(outs).collect()
            })
            .collect();
        let (dims, strides) = merge_dims(&ty.shape.0, &per_dim);
        let out_at = leaves.len();
        // With a wide routine, the loop evaluates (or loads) the operand.
        let operand = func.insts[root].args.first().map(|a| a.index());
        let (tree_root, evaluate_root) = match (wide, operand) {
            (Some(_), Some(arg)) => (arg, sched.evaluated_in(arg, root)),
            _ => (root, true),
        };
        let lanes = match strides.last() {
            Some(inner_steps) => {
                vector_lanes(func, sched, func.insts[root].ty.dtype, &[root], root, &leaves, &guests, inner_steps)
            }
            None => 1,
        };
        FusedLoop { root, leaves, guests, dims, strides, out_at, tree_root, evaluate_root, lanes, wide, kernel: None }
    }

    /// Exp, Log, Tanh, Pow: one call to a host routine for the whole array.
    /// `floats` holds the f32 and f64 routines, `int` the i32 one if any.
    fn emit_host_elementwise(
        &mut self,
        index: usize,
        floats: [HostFn; 2],
        int: Option<HostFn>,
    ) -> Result<(), CodegenError> {
        let inst = &self.func.insts[index];
        let host = match (inst.ty.dtype, int) {
            (DType::F32, _) => floats[0],
            (DType::F64, _) => floats[1],
            (DType::I32, Some(int)) => int,
            (dtype, _) => unreachable!("no host routine for {:?} on {dtype} (the verifier rejects it)", inst.op),
        };
        let n = inst.ty.shape.num_elements() as i64;
        let src = self.base(inst.args[0].index());
        // Unary routines ignore their second source.
        let src2 = self.base(inst.args[inst.args.len() - 1].index());
        let dst = self.base(index);
        let n = self.b.ins().iconst(PTR, n);
        self.call_host(host, &[src, src2, dst, n])
    }

    fn emit_matmul(&mut self, index: usize) -> Result<(), CodegenError> {
        let inst = &self.func.insts[index];
        let host = match inst.ty.dtype {
            DType::F32 => HostFn::MatMulF32,
            DType::F64 => HostFn::MatMulF64,
            other => unreachable!("matmul on {other} (the verifier rejects it)"),
        };
        let (lhs, rhs) = (inst.args[0], inst.args[1]);
        let (m, k) = (self.func.ty(lhs).shape.0[0], self.func.ty(lhs).shape.0[1]);
        let n = self.func.ty(rhs).shape.0[1];
        let a = self.base(lhs.index());
        let b = self.base(rhs.index());
        let c = self.base(index);
        let trans = super::host_ops::transposed_operands(self.sched, &self.func.insts[index].args);
        let ints: Vec<clif::Value> = [m, k, n, trans].iter().map(|&d| self.b.ins().iconst(PTR, d as i64)).collect();
        self.call_host(host, &[a, b, c, ints[0], ints[1], ints[2], ints[3]])
    }

    /// A whole-array host routine chosen by `host_ops::plan`, called with the
    /// operands' and the result's base pointers, then its integer arguments.
    fn emit_host_op(&mut self, index: usize) -> Result<(), CodegenError> {
        let (host, ints) = super::host_ops::plan(self.func, self.sched, index);
        let operands: Vec<usize> = self.func.insts[index].args.iter().map(|a| a.index()).collect();
        let mut args: Vec<clif::Value> = operands.into_iter().map(|a| self.base(a)).collect();
        args.push(self.base(index));
        for n in ints {
            args.push(self.b.ins().iconst(PTR, n as i64));
        }
        self.call_host(host, &args)
    }

    /// A host routine taking its first (and second) operand, the result and a
    /// descriptor (`conv::descriptor`), stored in a stack slot for the call.
    fn emit_described(&mut self, index: usize, hosts: [HostFn; 2]) -> Result<(), CodegenError> {
        let inst = &self.func.insts[index];
        let host = match inst.ty.dtype {
            DType::F32 => hosts[0],
            DType::F64 => hosts[1],
            other => unreachable!("windowed op on {other} (the verifier rejects it)"),
        };
        let desc = super::conv::descriptor(self.func, self.sched, index);
        let slot = self.b.create_sized_stack_slot(clif::StackSlotData::new(
            clif::StackSlotKind::ExplicitSlot,
            (desc.len() * 8) as u32,
            3,
        ));
        for (i, &v) in desc.iter().enumerate() {
            let v = self.b.ins().iconst(PTR, v);
            self.b.ins().stack_store(PTR, v, slot, (i * 8) as i32);
        }
        let desc_ptr = self.b.ins().stack_addr(PTR, slot, 0);
        let a = self.base(inst.args[0].index());
        let b = self.base(inst.args[inst.args.len() - 1].index());
        let out = self.base(index);
        self.call_host(host, &[a, b, out, desc_ptr])
    }

    fn call_host(&mut self, host: HostFn, args: &[clif::Value]) -> Result<(), CodegenError> {
        let func_ref = self.host_ref(host)?;
        self.b.ins().call(func_ref, args);
        Ok(())
    }

    /// The callee reference of `host` in this function, declared once.
    fn host_ref(&mut self, host: HostFn) -> Result<FuncRef, CodegenError> {
        let func_ref = match self.host_refs.get(&host) {
            Some(&func_ref) => func_ref,
            None => {
                let mut sig = self.module.make_signature();
                let n_params = match host.signature() {
                    HostSig::Array => 4,
                    HostSig::MatMul => 7,
                    HostSig::Ptrs(n) => n,
                    HostSig::Described => 4,
                };
                sig.params.extend(std::iter::repeat_n(AbiParam::new(PTR), n_params));
                let id = self.module.declare_function(host.name(), Linkage::Import, &sig)?;
                let func_ref = self.module.declare_func_in_func(id, self.b.func);
                self.host_refs.insert(host, func_ref);
                func_ref
            }
        };
        Ok(func_ref)
    }

    /// Result element at multi-index `idx` = operand element at flat index
    /// `sum(idx[d] * src_strides[d])` (strides in elements).
    fn emit_gather(&mut self, index: usize, src_strides: &[i64]) {
        let inst = &self.func.insts[index];
        let dst_strides: Vec<i64> = inst.ty.shape.strides().iter().map(|&t| t as i64).collect();
        let dims = inst.ty.shape.0.clone();
        self.emit_copy(inst.args[0].index(), 0, src_strides, index, 0, &dst_strides, &dims);
    }

    /// Copies a `dims`-shaped block of elements (of `dst`'s dtype) from value
    /// `src` to value `dst`: element `idx` moves from flat index `src_offset +
    /// sum(idx[d] * src_strides[d])` to `dst_offset + sum(idx[d] *
    /// dst_strides[d])` (offsets and strides in elements).
    #[allow(clippy::too_many_arguments)]
    fn emit_copy(
        &mut self,
        src: usize,
        src_offset: usize,
        src_strides: &[i64],
        dst: usize,
        dst_offset: usize,
        dst_strides: &[i64],
        dims: &[usize],
    ) {
        if dims.iter().product::<usize>() == 0 {
            return;
        }
        let dtype = self.func.insts[dst].ty.dtype;
        let size = dtype.size_bytes() as i64;
        let per_dim: Vec<Vec<i64>> =
            src_strides.iter().zip(dst_strides).map(|(&s, &d)| vec![s * size, d * size]).collect();
        let (dims, strides) = merge_dims(dims, &per_dim);
        let ty = clif_type(dtype);
        let src_base = self.base(src);
        let src_ptr = self.b.ins().iadd_imm_s(src_base, src_offset as i64 * size);
        let dst_base = self.base(dst);
        let dst_ptr = self.b.ins().iadd_imm_s(dst_base, dst_offset as i64 * size);
        // A contiguous innermost run (both sides) moves 16 bytes at a time.
        let lanes = (16 / size) as usize;
        let contiguous = strides.last().is_some_and(|s| s[0] == size && s[1] == size);
        let inner = dims.last().copied().unwrap_or(1);
        if !contiguous || inner < lanes {
            emit_nest(&mut self.b, &dims, &strides, &[src_ptr, dst_ptr], &[], &mut |b, ptrs, _| {
                let value = b.ins().load(ty, MemFlagsData::trusted(), ptrs[0], 0);
                store(b, value, ptrs[1]);
                vec![]
            });
            return;
        }
        let vector_ty = ty.by(lanes as u32).expect("16-byte vectors");
        let (outer_dims, outer_strides) = (&dims[..dims.len() - 1], &strides[..strides.len() - 1]);
        let n_vector = inner / lanes;
        emit_nest(&mut self.b, outer_dims, outer_strides, &[src_ptr, dst_ptr], &[], &mut |b, ptrs, _| {
            emit_loop(b, n_vector, ptrs, &[16, 16], &[], &mut |b, ptrs, _| {
                let value = b.ins().load(vector_ty, MemFlagsData::trusted(), ptrs[0], 0);
                store(b, value, ptrs[1]);
                vec![]
            });
            if n_vector * lanes < inner {
                let tail = advance(b, ptrs, &[size, size], n_vector * lanes);
                emit_loop(b, inner - n_vector * lanes, &tail, &[size, size], &[], &mut |b, ptrs, _| {
                    let value = b.ins().load(ty, MemFlagsData::trusted(), ptrs[0], 0);
                    store(b, value, ptrs[1]);
                    vec![]
                });
            }
            vec![]
        });
    }

    /// Stores zero (of the value's dtype) into every element of value `index`.
    fn emit_fill_zero(&mut self, index: usize) {
        let ty = &self.func.insts[index].ty;
        let (n, dtype) = (ty.shape.num_elements(), ty.dtype);
        let zero = self.constant(dtype, 0.0);
        let dst = self.base(index);
        emit_loop(&mut self.b, n, &[dst], &[dtype.size_bytes() as i64], &[], &mut |b, ptrs, _| {
            store(b, zero, ptrs[0]);
            vec![]
        });
    }

    /// For each output position, a loop along `axis` carrying the best value
    /// and its index; a later element wins if it is greater, or is NaN while
    /// the best is not (the interpreter's rule).
    fn emit_argmax(&mut self, index: usize, axis: usize) {
        let inst = &self.func.insts[index];
        let src_ty = self.func.ty(inst.args[0]).clone();
        let dims = src_ty.shape.dims();
        let outer: usize = dims[..axis].iter().product();
        let n = dims[axis];
        let inner: usize = dims[axis + 1..].iter().product();
        let dtype = src_ty.dtype;
        let size = dtype.size_bytes() as i64;
        let ty = clif_type(dtype);
        let lowest = match dtype {
            DType::F32 | DType::F64 => self.constant(dtype, f64::NEG_INFINITY),
            DType::I32 => self.b.ins().iconst(types::I32, i32::MIN as i64),
            DType::Bool => unreachable!("the verifier rejects bool argmax"),
        };
        let src = self.base(inst.args[0].index());
        let dst = self.base(index);
        // Output pointer steps 4 bytes (i32) per (outer, inner) position.
        let strides = [vec![n as i64 * inner as i64 * size, inner as i64 * 4], vec![size, 4]];
        emit_nest(&mut self.b, &[outer, inner], &strides, &[src, dst], &[], &mut |b, ptrs, _| {
            let zero = b.ins().iconst(PTR, 0);
            // Pointers: [element, its index along the axis (stride 1)].
            let best =
                emit_loop(b, n, &[ptrs[0], zero], &[inner as i64 * size, 1], &[lowest, zero], &mut |b, p, acc| {
                    let value = b.ins().load(ty, MemFlagsData::trusted(), p[0], 0);
                    let take = if dtype.is_float() {
                        let greater = b.ins().fcmp(FloatCC::GreaterThan, value, acc[0]);
                        let value_nan = b.ins().fcmp(FloatCC::Unordered, value, value);
                        let best_number = b.ins().fcmp(FloatCC::Ordered, acc[0], acc[0]);
                        let nan_wins = b.ins().band(value_nan, best_number);
                        b.ins().bor(greater, nan_wins)
                    } else {
                        b.ins().icmp(IntCC::SignedGreaterThan, value, acc[0])
                    };
                    let new_best = b.ins().select(take, value, acc[0]);
                    let new_index = b.ins().select(take, p[1], acc[1]);
                    vec![new_best, new_index]
                });
            let best_index = b.ins().ireduce(types::I32, best[1]);
            store(b, best_index, ptrs[1]);
            vec![]
        });
    }

    /// Fills the output with the identity, then walks the source in row-major
    /// order combining each element into its output element: exactly the
    /// interpreter's order, so results are bitwise equal. The trailing run of
    /// reduced dims accumulates in a register. At each source element the
    /// loop also evaluates and stores the reduction's siblings
    /// (`siblings.rs`).
    /// A reduction, with the wide root tiled into its loop if any.
    fn emit_reduce_tiled(&mut self, index: usize, kind: ReduceKind) -> Result<(), CodegenError> {
        let partner = (0..self.func.insts.len()).find(|&a| self.sched.tiled[a] == Some(index));
        if partner.is_none() {
            if let Some(rows) = self.parallel_reduce_split(index) {
                return self.emit_reduce_parallel(index, kind, rows);
            }
        }
        // A tiled pair splits with its reduction only when that is a
        // blocked sum (a tiled maximum has not been seen: it stays whole).
        if partner.is_none() || blocked_run(self.func, index).is_some() {
            if let Some(run) = self.parallel_run_split(index, kind) {
                return self.emit_reduce_run_parallel(index, kind, run, partner);
            }
        }
        let tile = self.tile_loop(partner)?;
        self.emit_reduce(index, kind, tile, None)
    }

    /// The loop of tiled root `tiled` (`Schedule::tiled`), with its routine
    /// and walker bases in the function being emitted.
    fn tile_loop(&mut self, tiled: Option<usize>) -> Result<Option<(FusedLoop, Vec<clif::Value>)>, CodegenError> {
        let Some(a) = tiled else { return Ok(None) };
        let routine = self.host_ref(wide_routine(&self.func.insts[a].op))?;
        Ok(Some(self.fused_loop(a, Some(routine))?))
    }

    /// `tile`: a tiled wide root's loop and walker bases (`tiled_pairs`),
    /// run on each chunk of the reduced run right before the reduction's.
    /// `part`: only a part of the reduction, run on a thread (`parallel.rs`).
    fn emit_reduce(
        &mut self,
        index: usize,
        kind: ReduceKind,
        tile: Option<(FusedLoop, Vec<clif::Value>)>,
        part: Option<ReducePart>,
    ) -> Result<(), CodegenError> {
        let (rows, run) = match part {
            Some(ReducePart::Rows { dim, count, first }) => (Some((dim, count, first)), None),
            Some(ReducePart::Run { count, first, out }) => (None, Some((count, first, out))),
            None => (None, None),
        };
        let inst = &self.func.insts[index];
        let src_ty = self.func.ty(inst.args[0]).clone();
        let dtype = inst.ty.dtype;
        let size = dtype.size_bytes() as i64;
        let ty = clif_type(dtype);
        let (func, sched) = (self.func, self.sched);
        let mut walk = reduce_walk(func, sched, index);
        let n_walk = walk.leaves.len() + walk.stored.len();
        // Pointers (walkers, then the output) move to the part's first row.
        let at_rows = |b: &mut FunctionBuilder, base: clif::Value, walker: usize| match rows {
            Some((dim, _, first)) if walk.outer_strides[dim][walker] != 0 => {
                let offset = b.ins().imul_imm_s(first, walk.outer_strides[dim][walker]);
                b.ins().iadd(base, offset)
            }
            _ => base,
        };
        let dst = match run {
            Some((_, _, out)) => out,
            None => {
                let dst = self.base(index);
                at_rows(&mut self.b, dst, n_walk)
            }
        };
        let n_outputs = match rows {
            Some((dim, count, _)) => count * walk.outer_strides[dim][n_walk] as usize / size as usize,
            None => inst.ty.shape.num_elements(),
        };
        let identity = match (kind, dtype) {
            (ReduceKind::Sum, DType::F32 | DType::F64) => self.constant(dtype, 0.0),
            (ReduceKind::Max, DType::F32 | DType::F64) => self.constant(dtype, f64::NEG_INFINITY),
            (ReduceKind::Sum, DType::I32) => self.b.ins().iconst(types::I32, 0),
            (ReduceKind::Max, DType::I32) => self.b.ins().iconst(types::I32, i32::MIN as i64),
            (ReduceKind::Min, DType::F32 | DType::F64) => self.constant(dtype, f64::INFINITY),
            (ReduceKind::Min, DType::I32) => self.b.ins().iconst(types::I32, i32::MAX as i64),
            (_, DType::Bool) => unreachable!("check_supported rejects bool reductions"),
        };
        emit_loop(&mut self.b, n_outputs, &[dst], &[size], &[], &mut |b, ptrs, _| {
            store(b, identity, ptrs[0]);
            vec![]
        });
        if src_ty.shape.num_elements() == 0 {
            return Ok(());
        }

        let root = inst.args[0].index();
        let walkers: Vec<usize> =
            walk.leaves.iter().map(|leaf| leaf.value).chain(walk.stored.iter().copied()).collect();
        let mut bases: Vec<clif::Value> = Vec::with_capacity(n_walk + 1);
        for (k, &value) in walkers.iter().enumerate() {
            let base = self.base(value);
            bases.push(at_rows(&mut self.b, base, k));
        }
        bases.push(dst);
        if let Some((dim, count, _)) = rows {
            walk.outer_dims[dim] = count;
        }
        if let Some((count, first, _)) = run {
            // Walkers start at element `first` of the run and reduce `count`.
            let (_, steps, lanes) = walk.vector.clone().expect("a run part is of a contiguous run");
            for (base, &step) in bases.iter_mut().zip(&steps) {
                if step != 0 {
                    let offset = self.b.ins().imul_imm_s(first, step);
                    *base = self.b.ins().iadd(*base, offset);
                }
            }
            walk.vector = Some((count, steps, lanes));
        }
        let walk = walk;
        let combine = |b: &mut FunctionBuilder, acc: clif::Value, value: clif::Value| match (kind, dtype.is_float()) {
            (ReduceKind::Sum, true) => b.ins().fadd(acc, value),
            (ReduceKind::Max, true) => b.ins().fmax(acc, value),
            (ReduceKind::Sum, false) => b.ins().iadd(acc, value),
            (ReduceKind::Max, false) => b.ins().smax(acc, value),
            (ReduceKind::Min, true) => b.ins().fmin(acc, value),
            (ReduceKind::Min, false) => b.ins().smin(acc, value),
        };
        let siblings = &sched.siblings[index];
        let tree = Tree {
            func,
            sched,
            root,
            loop_root: index,
            evaluate_root: sched.evaluated_in(root, index),
            leaves: &walk.leaves,
            guests: &walk.stored,
            guest_ptrs: walk.leaves.len(),
            lanes: 1,
            inner_steps: &[],
            offsets: &[],
        };
        // One contiguous reduced run (a softmax's row): the tree runs as
        // vectors and their lanes join the accumulator one by one, in
        // element order, so the result is the scalar loop's, bitwise (a max
        // or min keeps a vector accumulator: its result has no order).
        // Consecutive outputs (rows) are reduced ROWS at a time, their
        // chains interleaved: each row's order is unchanged, and the adds
        // of different rows overlap instead of waiting on one another.
        let order_free = matches!(kind, ReduceKind::Max | ReduceKind::Min);
        if let Some(n_run) = blocked_run(func, index) {
            // A long sum per output: `blocked_sum.rs`, in `sum_order`'s
            // order; a part run by a thread is one unit of it.
            let unit = run.map_or_else(|| sum_order::unit_len(n_run), |(count, _, _)| count);
            // The sum's elements as a 512-bit kernel where the tree allows,
            // with the tile's root computed in it where that allows too.
            let (mut kernel, mut kernel_covers_tile) = (None, false);
            if let (Some((_, steps, _)), true) = (&walk.vector, sched.wide_loops) {
                let wide = Tree { inner_steps: steps, ..tree };
                if let Some((fused, bases)) = &tile {
                    let tile_tree = fused.tree(func, sched, 1, fused.inner_steps());
                    if let Some(program) =
                        wide_tree::tiled_program(&tile_tree, fused.root, bases.len(), &wide, siblings)
                    {
                        kernel = self.wide_kernel(index, &program, bases.len() + n_walk)?;
                        kernel_covers_tile = kernel.is_some();
                    }
                }
                if kernel.is_none() {
                    if let Some(program) = wide_tree::program(&wide, siblings, wide_tree::RootUse::Accumulate) {
                        kernel = self.wide_kernel(index, &program, n_walk)?;
                    }
                }
            }
            let code = blocked_sum::BlockedSum { tree, siblings, dtype, n_walk, unit, kernel, kernel_covers_tile };
            let b = &mut self.b;
            match walk.vector.clone() {
                Some((n, steps, lanes)) => {
                    let tile = tile.as_ref();
                    // The tile's walkers, at the part's first element, go first.
                    let mut tile_ptrs: Vec<clif::Value> = tile.map_or(vec![], |(_, bases)| bases.clone());
                    let tile_steps: Vec<i64> = tile.map_or(vec![], |(fused, _)| fused.inner_steps().to_vec());
                    if let Some((_, first, _)) = run {
                        for (base, &step) in tile_ptrs.iter_mut().zip(&tile_steps) {
                            let offset = b.ins().imul_imm_s(first, step);
                            *base = b.ins().iadd(*base, offset);
                        }
                    }
                    assert!(tile.is_none() || walk.outer_dims.is_empty(), "a tiled sum has one output");
                    let all_steps: Vec<i64> =
                        tile_steps.iter().chain(&steps).copied().chain(std::iter::once(0)).collect();
                    emit_nest(b, &walk.outer_dims, &walk.outer_strides, &bases, &[], &mut |b, ptrs, _| {
                        let ptrs: Vec<clif::Value> = tile_ptrs.iter().chain(ptrs).copied().collect();
                        code.emit_vector_run(b, &ptrs, &all_steps, n, lanes, tile);
                        vec![]
                    });
                }
                None => {
                    assert!(tile.is_none(), "a tiled sum runs as vectors");
                    let slot = blocked_sum::partials_slot(b, dtype);
                    emit_nest(b, &walk.outer_dims, &walk.outer_strides, &bases, &[], &mut |b, ptrs, _| {
                        code.emit_scalar_run(b, ptrs, &walk.inner_dims, &walk.inner_strides, slot);
                        vec![]
                    });
                }
            }
            return Ok(());
        }
        if let Some((n, steps, lanes)) = walk.vector.clone() {
            let vector_steps: Vec<i64> = steps.iter().map(|&s| s * lanes as i64).collect();
            let vector_ty = ty.by(lanes as u32).expect("16-byte vectors");
            // Reduces `rows` consecutive rows whose pointers are `row_step`
            // bytes apart (walkers, then the output), `n` elements of each
            // (a whole row, or a chunk of it, at least `lanes`): the
            // accumulator is loaded from the output and stored back.
            let reduce_rows =
                |b: &mut FunctionBuilder, ptrs: &[clif::Value], rows: usize, row_step: &[i64], n: usize| {
                    let n_vector = n / lanes;
                    let offsets: Vec<Vec<i64>> =
                        (0..rows).map(|k| row_step.iter().map(|&s| s * k as i64).collect()).collect();
                    let out_at = |k: usize| offsets[k].get(n_walk).map_or(0, |&o| o as i32);
                    let vector_trees: Vec<Tree> =
                        offsets.iter().map(|o| Tree { lanes, inner_steps: &steps, offsets: o, ..tree }).collect();
                    let scalar_trees: Vec<Tree> =
                        offsets.iter().map(|o| Tree { lanes: 1, inner_steps: &steps, offsets: o, ..tree }).collect();
                    let accs: Vec<clif::Value> =
                        (0..rows).map(|k| b.ins().load(ty, MemFlagsData::trusted(), ptrs[n_walk], out_at(k))).collect();
                    let accs: Vec<clif::Value> = if order_free {
                        // Max/min of a set does not depend on the order (NaN wins,
                        // +0 > -0): lane-wise accumulators, joined at the end.
                        let starts: Vec<clif::Value> = accs.iter().map(|&a| b.ins().splat(vector_ty, a)).collect();
                        let vaccs =
                            emit_loop(b, n_vector, &ptrs[..n_walk], &vector_steps, &starts, &mut |b, inner, accs| {
                                let values: Vec<clif::Value> =
                                    vector_trees.iter().map(|t| t.eval_with(b, inner, siblings)).collect();
                                accs.iter().zip(values).map(|(&acc, v)| combine(b, acc, v)).collect()
                            });
                        vaccs
                            .iter()
                            .map(|&vacc| {
                                let mut acc = b.ins().extractlane(vacc, 0);
                                for lane in 1..lanes {
                                    let value = b.ins().extractlane(vacc, lane as u8);
                                    acc = combine(b, acc, value);
                                }
                                acc
                            })
                            .collect()
                    } else {
                        emit_loop(b, n_vector, &ptrs[..n_walk], &vector_steps, &accs, &mut |b, inner, accs| {
                            let values: Vec<clif::Value> =
                                vector_trees.iter().map(|t| t.eval_with(b, inner, siblings)).collect();
                            let mut accs = accs.to_vec();
                            for lane in 0..lanes {
                                for (acc, &v) in accs.iter_mut().zip(&values) {
                                    let value = b.ins().extractlane(v, lane as u8);
                                    *acc = combine(b, *acc, value);
                                }
                            }
                            accs
                        })
                    };
                    let done = n_vector * lanes;
                    let accs = if done < n {
                        let tail = advance(b, &ptrs[..n_walk], &steps, done);
                        emit_loop(b, n - done, &tail, &steps, &accs, &mut |b, inner, accs| {
                            let values: Vec<clif::Value> =
                                scalar_trees.iter().map(|t| t.eval_with(b, inner, siblings)).collect();
                            accs.iter().zip(values).map(|(&acc, v)| combine(b, acc, v)).collect()
                        })
                    } else {
                        accs
                    };
                    for (k, acc) in accs.into_iter().enumerate() {
                        b.ins().store(MemFlagsData::trusted(), acc, ptrs[n_walk], out_at(k));
                    }
                };
            if let Some((fused, tile_bases)) = &tile {
                // One run (`tiled_pairs`): chunks of WIDE_CHUNK elements, the
                // wide root's row code and routine, then this loop's, so
                // the root's values are read back from cache. The
                // accumulator goes through the output between chunks: the
                // order of the sum is unchanged.
                let n_tile = tile_bases.len();
                let ptrs: Vec<clif::Value> = tile_bases.iter().chain(&bases).copied().collect();
                let per_element: Vec<i64> =
                    fused.inner_steps().iter().chain(&steps).copied().chain(std::iter::once(0)).collect();
                assert_eq!(per_element.len(), ptrs.len(), "a step per walker");
                let (mut n_chunks, mut rest) = (n / WIDE_CHUNK, n % WIDE_CHUNK);
                if rest > 0 && rest < lanes && n_chunks > 0 {
                    // The last run keeps at least one vector.
                    n_chunks -= 1;
                    rest += WIDE_CHUNK;
                }
                let both = |b: &mut FunctionBuilder, ptrs: &[clif::Value], count: usize| {
                    fused.row(func, sched, b, &ptrs[..n_tile], count);
                    reduce_rows(b, &ptrs[n_tile..], 1, &[], count);
                };
                if n_chunks > 0 {
                    let chunk_steps: Vec<i64> = per_element.iter().map(|&s| s * WIDE_CHUNK as i64).collect();
                    emit_loop(&mut self.b, n_chunks, &ptrs, &chunk_steps, &[], &mut |b, ptrs, _| {
                        both(b, ptrs, WIDE_CHUNK);
                        vec![]
                    });
                }
                if rest > 0 {
                    let tail = advance(&mut self.b, &ptrs, &per_element, n_chunks * WIDE_CHUNK);
                    both(&mut self.b, &tail, rest);
                }
                return Ok(());
            }
            // The last outer dim, when it moves the output, runs ROWS at a
            // time, unless the trees are heavy enough to hide the chain's
            // latency themselves (four copies of them would only spill).
            let roots: Vec<usize> =
                sched.evaluated_in(root, index).then_some(root).into_iter().chain(siblings.iter().copied()).collect();
            let interleave = walk.outer_dims.last().is_some_and(|&m| m >= ROWS)
                && walk.outer_strides.last().is_some_and(|s| s[n_walk] != 0)
                && tree_cost(func, sched, index, &roots) <= MAX_INTERLEAVED_COST;
            if !interleave {
                emit_nest(&mut self.b, &walk.outer_dims, &walk.outer_strides, &bases, &[], &mut |b, ptrs, _| {
                    reduce_rows(b, ptrs, 1, &[], n);
                    vec![]
                });
                return Ok(());
            }
            let (&m, rest_dims) = walk.outer_dims.split_last().expect("an outer dim");
            let (row_step, rest_strides) = walk.outer_strides.split_last().expect("strides per outer dim");
            let group_step: Vec<i64> = row_step.iter().map(|&s| s * ROWS as i64).collect();
            emit_nest(&mut self.b, rest_dims, rest_strides, &bases, &[], &mut |b, ptrs, _| {
                let groups = m / ROWS;
                emit_loop(b, groups, ptrs, &group_step, &[], &mut |b, ptrs, _| {
                    reduce_rows(b, ptrs, ROWS, row_step, n);
                    vec![]
                });
                let rest = m - groups * ROWS;
                if rest > 0 {
                    let ptrs = advance(b, ptrs, &group_step, groups);
                    emit_loop(b, rest, &ptrs, row_step, &[], &mut |b, ptrs, _| {
                        reduce_rows(b, ptrs, 1, &[], n);
                        vec![]
                    });
                }
                vec![]
            });
            return Ok(());
        }
        // The innermost source dim is kept (a bias gradient's sum over the
        // batch): each vector of outputs takes a vector of that row, so each
        // output still adds its elements in row-major order.
        if let Some(lanes) = walk.outer_vector {
            let (&n, rest_dims) = walk.outer_dims.split_last().expect("an outer vector dim");
            let (steps, rest_strides) = walk.outer_strides.split_last().expect("strides per outer dim");
            let vector_ty = ty.by(lanes as u32).expect("16-byte vectors");
            let vector_tree = Tree { lanes, inner_steps: &steps[..n_walk], ..tree };
            let scalar_tree = Tree { lanes: 1, inner_steps: &steps[..n_walk], ..tree };
            let n_vector = n / lanes;
            let vector_steps: Vec<i64> = steps.iter().map(|&s| s * lanes as i64).collect();
            emit_nest(&mut self.b, rest_dims, rest_strides, &bases, &[], &mut |b, ptrs, _| {
                emit_loop(b, n_vector, ptrs, &vector_steps, &[], &mut |b, ptrs, _| {
                    let acc = b.ins().load(vector_ty, MemFlagsData::trusted(), ptrs[n_walk], 0);
                    let value = vector_tree.eval_with(b, ptrs, siblings);
                    let acc = combine(b, acc, value);
                    store(b, acc, ptrs[n_walk]);
                    vec![]
                });
                let done = n_vector * lanes;
                if done < n {
                    let tail = advance(b, ptrs, steps, done);
                    emit_loop(b, n - done, &tail, steps, &[], &mut |b, ptrs, _| {
                        let acc = b.ins().load(ty, MemFlagsData::trusted(), ptrs[n_walk], 0);
                        let value = scalar_tree.eval_with(b, ptrs, siblings);
                        let acc = combine(b, acc, value);
                        store(b, acc, ptrs[n_walk]);
                        vec![]
                    });
                }
                vec![]
            });
            return Ok(());
        }
        emit_nest(&mut self.b, &walk.outer_dims, &walk.outer_strides, &bases, &[], &mut |b, ptrs, _| {
            let acc = b.ins().load(ty, MemFlagsData::trusted(), ptrs[n_walk], 0);
            let res =
                emit_nest(b, &walk.inner_dims, &walk.inner_strides, &ptrs[..n_walk], &[acc], &mut |b, inner, accs| {
                    let value = tree.eval_with(b, inner, siblings);
                    vec![combine(b, accs[0], value)]
                });
            store(b, res[0], ptrs[n_walk]);
            vec![]
        });
        Ok(())
    }
}

/// A part of a reduction that one thread runs (`parallel.rs`).
#[derive(Clone, Copy)]
pub(super) enum ReducePart {
    /// `count` indices of the walk's outer dim `dim` from index `first`;
    /// that dim is the outermost that moves the output (those before it
    /// are reduced), so the part's outputs are a block of their own.
    Rows { dim: usize, count: usize, first: clif::Value },
    /// `count` elements of a full reduction's one contiguous run from
    /// element `first`, reduced into the value at `out` (a partial result;
    /// for reductions without an order, max and min, and for one unit of
    /// a blocked sum).
    Run { count: usize, first: clif::Value, out: clif::Value },
}

/// How reduction `r`'s loop walks its source, in row-major order (see
/// `Emitter::emit_reduce`).
pub(super) struct ReduceWalk {
    /// The buffers the loop reads: its source's tree's leaves (or the
    /// source itself) and its siblings' (`Schedule::siblings`).
    leaves: Vec<Leaf>,
    /// The values the loop stores besides the reduction (its guests:
    /// siblings and the values they host), each of the source's shape.
    stored: Vec<usize>,
    /// The dims that move the output pointer, merged, and the byte strides
    /// of every walker (leaves, stored) and of the output along them.
    outer_dims: Vec<usize>,
    outer_strides: Vec<Vec<i64>>,
    /// The trailing run of reduced (or size-1) dims, merged, and the
    /// walkers' byte strides along them.
    inner_dims: Vec<usize>,
    inner_strides: Vec<Vec<i64>>,
    /// `(n, steps, lanes)` when the inner run is one dim of `n` elements
    /// that the trees evaluate as vectors of `lanes`.
    vector: Option<(usize, Vec<i64>, usize)>,
    /// `lanes` when there is no inner run (the innermost source dim is
    /// kept) and the innermost outer dim runs as vectors of `lanes`
    /// outputs.
    outer_vector: Option<usize>,
}

/// The run length of reduction `index` when it is a float sum in the
/// blocked order (`ir::sum_order`).
pub(super) fn blocked_run(func: &Func, index: usize) -> Option<usize> {
    let inst = &func.insts[index];
    match &inst.op {
        Op::ReduceSum { axes } => sum_order::blocked_run(inst.ty.dtype, func.ty(inst.args[0]).shape.dims(), axes),
        _ => None,
    }
}

/// Calls wide kernel `kernel` (`cpu/wide.rs`) on `count` elements from
/// walker pointers `ptrs` (through a table in a stack slot), adding to the
/// 16 partial sums at `partials` when the kernel accumulates.
fn call_wide_kernel(
    b: &mut FunctionBuilder,
    kernel: FuncRef,
    ptrs: &[clif::Value],
    count: usize,
    partials: Option<clif::Value>,
) {
    let slot = b.create_sized_stack_slot(clif::StackSlotData::new(
        clif::StackSlotKind::ExplicitSlot,
        (ptrs.len() * 8).max(8) as u32,
        3,
    ));
    let table = b.ins().stack_addr(PTR, slot, 0);
    for (k, &p) in ptrs.iter().enumerate() {
        b.ins().store(MemFlagsData::trusted(), p, table, (k * 8) as i32);
    }
    let count = b.ins().iconst(PTR, count as i64);
    let partials = partials.unwrap_or_else(|| b.ins().iconst(PTR, 0));
    b.ins().call(kernel, &[table, count, partials]);
}

/// The 512-bit routine of an inline math op (`vmath_x16.rs`).
fn wide_routine(op: &Op) -> HostFn {
    match op {
        Op::Exp => HostFn::ExpF32X16,
        Op::Log => HostFn::LogF32X16,
        Op::Tanh => HostFn::TanhF32X16,
        Op::Logistic => HostFn::LogisticF32X16,
        other => unreachable!("{other:?} is not an inline math op"),
    }
}

/// The tiled pairs (`Schedule::tiled`): a 1-D wide root `a` whose buffer
/// only the loop of one reduction `r` reads, where that loop is one run
/// over the same elements (W4: the tanh, read by the loss's loop and its
/// sibling gradients), and no scan runs in between. `r`'s loop then runs
/// `a`'s code chunk by chunk before its own, so `a`'s values come back from
/// cache instead of memory (W4: 24 instead of 40 bytes of traffic per
/// element). Results are bitwise the untiled ones (the same code per
/// element, the same order of every sum).
pub(super) fn tiled_pairs(func: &Func, sched: &Schedule) -> Vec<Option<usize>> {
    let n = func.insts.len();
    let mut tiled = vec![None; n];
    if !sched.wide_math {
        return tiled;
    }
    for a in 0..n {
        let ty = &func.insts[a].ty;
        if !sched.wide_roots[a] || sched.emitted_elsewhere(a) || ty.shape.rank() != 1 {
            continue;
        }
        if func.outputs.iter().any(|o| o.index() == a) {
            continue;
        }
        let readers: Vec<usize> = (0..n).filter(|&j| j != a && schedule::reads(func, sched, j).contains(&a)).collect();
        let &[r] = readers.as_slice() else { continue };
        if !matches!(func.insts[r].op, Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::ReduceMin { .. }) {
            continue;
        }
        if func.insts[a + 1..r].iter().any(|inst| matches!(inst.op, Op::Scan(_))) {
            continue;
        }
        let walk = reduce_walk(func, sched, r);
        if walk.outer_dims.is_empty() && walk.vector.as_ref().is_some_and(|(len, _, _)| *len == ty.shape.num_elements())
        {
            tiled[a] = Some(r);
        }
    }
    tiled
}

/// The walk of reduction `r` (`ReduceSum`, `ReduceMax`, `ReduceMin`).
pub(super) fn reduce_walk(func: &Func, sched: &Schedule, r: usize) -> ReduceWalk {
    let inst = &func.insts[r];
    let axes = match &inst.op {
        Op::ReduceSum { axes } | Op::ReduceMax { axes } | Op::ReduceMin { axes } => axes,
        other => unreachable!("{other:?} is not a reduction"),
    };
    let src_ty = func.ty(inst.args[0]);
    let root = inst.args[0].index();
    let size = inst.ty.dtype.size_bytes() as i64;
    let leaves = schedule::reduction_leaves(func, sched, r);
    let stored: Vec<usize> = sched.guests[r].clone();
    let n_walk = leaves.len() + stored.len();
    // Byte strides per source dim: [leaves.., stored.., output (0 on reduced dims)].
    let src_strides = src_ty.shape.strides();
    let out_strides = inst.ty.shape.strides();
    let mut kept = 0;
    let per_dim: Vec<Vec<i64>> = (0..src_ty.shape.rank())
        .map(|d| {
            let out = if axes.contains(&d) {
                0
            } else {
                kept += 1;
                out_strides[kept - 1] as i64 * size
            };
            let leaf_strides =
                leaves.iter().map(|leaf| leaf.strides[d] * func.insts[leaf.value].ty.dtype.size_bytes() as i64);
            let stored_strides =
                stored.iter().map(|&v| src_strides[d] as i64 * func.insts[v].ty.dtype.size_bytes() as i64);
            leaf_strides.chain(stored_strides).chain(std::iter::once(out)).collect()
        })
        .collect();
    // The suffix: trailing dims that are reduced or of size 1 (both leave
    // the output pointer where it is).
    let mut split = src_ty.shape.rank();
    while split > 0 && (per_dim[split - 1][n_walk] == 0 || src_ty.shape.0[split - 1] == 1) {
        split -= 1;
    }
    let (outer_dims, outer_strides) = merge_dims(&src_ty.shape.0[..split], &per_dim[..split]);
    let inner_per_dim: Vec<Vec<i64>> = per_dim[split..].iter().map(|s| s[..n_walk].to_vec()).collect();
    let (inner_dims, inner_strides) = merge_dims(&src_ty.shape.0[split..], &inner_per_dim);
    // The source's tree (unless a buffer read as a leaf) and the siblings'.
    let roots: Vec<usize> =
        sched.evaluated_in(root, r).then_some(root).into_iter().chain(sched.siblings[r].iter().copied()).collect();
    let vector = match (inner_dims.as_slice(), inner_strides.as_slice()) {
        ([n], [steps]) => {
            let lanes = vector_lanes(func, sched, src_ty.dtype, &roots, r, &leaves, &stored, steps);
            (lanes > 1 && *n >= lanes).then(|| (*n, steps.clone(), lanes))
        }
        _ => None,
    };
    let outer_vector = match (inner_dims.is_empty(), outer_strides.last()) {
        (true, Some(steps)) if steps[n_walk] == size => {
            let lanes = vector_lanes(func, sched, src_ty.dtype, &roots, r, &leaves, &stored, &steps[..n_walk]);
            let n = *outer_dims.last().expect("a dim per stride");
            (lanes > 1 && n >= lanes).then_some(lanes)
        }
        _ => None,
    };
    ReduceWalk { leaves, stored, outer_dims, outer_strides, inner_dims, inner_strides, vector, outer_vector }
}

/// The vector width reduction `r`'s loop runs at (1: scalar).
pub(super) fn reduction_lanes(func: &Func, sched: &Schedule, r: usize) -> usize {
    let walk = reduce_walk(func, sched, r);
    walk.vector.map(|(_, _, lanes)| lanes).or(walk.outer_vector).unwrap_or(1)
}

/// The vector width fused elementwise root `root`'s loop runs at (1:
/// scalar), as `emit_fused` decides it.
pub(super) fn fused_lanes(func: &Func, sched: &Schedule, root: usize) -> usize {
    let ty = &func.insts[root].ty;
    let leaves = schedule::leaves(func, sched, root);
    let guests = &sched.guests[root];
    let Some(last) = ty.shape.rank().checked_sub(1) else { return 1 };
    // The innermost dim's steps (merging dims keeps the innermost's).
    let steps: Vec<i64> = leaves
        .iter()
        .map(|leaf| leaf.strides[last] * func.insts[leaf.value].ty.dtype.size_bytes() as i64)
        .chain(std::iter::once(root).chain(guests.iter().copied()).map(|v| func.insts[v].ty.dtype.size_bytes() as i64))
        .collect();
    vector_lanes(func, sched, ty.dtype, &[root], root, &leaves, guests, &steps)
}

/// Rows an interleaved reduction reduces at once (see `emit_reduce`):
/// enough independent add chains to cover the add latency.
pub(super) const ROWS: usize = 4;

/// The largest `tree_cost` of a reduction's trees that is interleaved.
pub(super) const MAX_INTERLEAVED_COST: usize = 8;

/// The operations the trees of `roots` evaluate per element in loop
/// `loop_root`, each once, an inline transcendental counting 16.
pub(super) fn tree_cost(func: &Func, sched: &Schedule, loop_root: usize, roots: &[usize]) -> usize {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<usize> = roots.to_vec();
    let mut cost = 0;
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        let inst = &func.insts[node];
        cost += match inst.op {
            Op::Constant(_) | Op::Broadcast { .. } => 0,
            Op::Exp | Op::Log | Op::Tanh | Op::Logistic => 16,
            _ => 1,
        };
        for arg in &inst.args {
            if sched.evaluated_in(arg.index(), loop_root) {
                stack.push(arg.index());
            }
        }
    }
    cost
}

/// A fused elementwise loop (`Emitter::fused_loop`): its walkers (leaves,
/// then the root, then its guests: `ptrs` in that order), its merged dims
/// and byte strides, and how its tree is evaluated.
struct FusedLoop {
    root: usize,
    leaves: Vec<Leaf>,
    guests: Vec<usize>,
    dims: Vec<usize>,
    strides: Vec<Vec<i64>>,
    /// Index of the root's pointer among the walkers.
    out_at: usize,
    /// The root, or its operand when `wide` computes the root's function.
    tree_root: usize,
    evaluate_root: bool,
    lanes: usize,
    wide: Option<FuncRef>,
    /// The row's code as a 512-bit kernel (`cpu/wide.rs`), when the tree
    /// allows and the rows are long enough.
    kernel: Option<FuncRef>,
}

impl FusedLoop {
    fn tree<'t>(&'t self, func: &'t Func, sched: &'t Schedule, lanes: usize, inner_steps: &'t [i64]) -> Tree<'t> {
        Tree {
            func,
            sched,
            root: self.tree_root,
            loop_root: self.root,
            evaluate_root: self.evaluate_root,
            leaves: &self.leaves,
            guests: &self.guests,
            guest_ptrs: self.out_at + 1,
            lanes,
            inner_steps,
            offsets: &[],
        }
    }

    /// Byte steps of the walkers along the innermost merged dim.
    fn inner_steps(&self) -> &[i64] {
        self.strides.last().map_or(&[], |s| s.as_slice())
    }

    /// One whole innermost row of `inner` elements from `ptrs`: in chunks of
    /// `WIDE_CHUNK` with a wide routine (so its operand is still in cache
    /// when it runs), else as one row.
    fn rows(&self, func: &Func, sched: &Schedule, b: &mut FunctionBuilder, ptrs: &[clif::Value], inner: usize) {
        let chunk = if self.wide.is_some() { WIDE_CHUNK } else { inner };
        emit_chunks(b, ptrs, self.inner_steps(), inner, chunk, &[], &mut |b, ptrs, count, _| {
            self.row(func, sched, b, ptrs, count);
            vec![]
        });
    }

    /// `count` elements of the innermost dim from `ptrs`: vectors, then a
    /// scalar tail; then the wide routine over them, in place in the
    /// root's buffer (which is contiguous).
    fn row(&self, func: &Func, sched: &Schedule, b: &mut FunctionBuilder, ptrs: &[clif::Value], count: usize) {
        if let Some(kernel) = self.kernel {
            call_wide_kernel(b, kernel, ptrs, count, None);
        } else {
            self.row_in_clif(func, sched, b, ptrs, count);
        }
        if let Some(routine) = self.wide {
            let n = b.ins().iconst(PTR, count as i64);
            let out = ptrs[self.out_at];
            b.ins().call(routine, &[out, out, out, n]);
        }
    }

    /// `row`'s elements in Cranelift's code: vectors, then a scalar tail.
    fn row_in_clif(&self, func: &Func, sched: &Schedule, b: &mut FunctionBuilder, ptrs: &[clif::Value], count: usize) {
        let (lanes, inner_steps, out_at) = (self.lanes, self.inner_steps(), self.out_at);
        let n_vector = if lanes > 1 { count / lanes } else { 0 };
        if n_vector > 0 {
            let steps: Vec<i64> = inner_steps.iter().map(|&s| s * lanes as i64).collect();
            let tree = self.tree(func, sched, lanes, inner_steps);
            emit_loop(b, n_vector, ptrs, &steps, &[], &mut |b, ptrs, _| {
                let res = tree.eval(b, ptrs);
                store(b, res, ptrs[out_at]);
                vec![]
            });
        }
        let done = n_vector * lanes;
        if done < count {
            let tail = advance(b, ptrs, inner_steps, done);
            let tree = self.tree(func, sched, 1, inner_steps);
            emit_loop(b, count - done, &tail, inner_steps, &[], &mut |b, ptrs, _| {
                let res = tree.eval(b, ptrs);
                store(b, res, ptrs[out_at]);
                vec![]
            });
        }
    }
}

/// The fusion group rooted at `root`, ready to evaluate one element (or one
/// vector of `lanes` elements) from the current leaf pointers.
struct Tree<'t> {
    func: &'t Func,
    sched: &'t Schedule,
    root: usize,
    /// The loop this tree runs in (`root`, or the reduction whose source
    /// `root` is): a value hosted by it is evaluated, not loaded.
    loop_root: usize,
    /// False when `root` itself is a materialized value read as a leaf (a
    /// reduction over a buffer).
    evaluate_root: bool,
    leaves: &'t [Leaf],
    /// Values hosted by this loop (`Schedule::guests`): stored, when
    /// evaluated, through `ptrs[guest_ptrs + k]`.
    guests: &'t [usize],
    guest_ptrs: usize,
    /// 1 for scalar code; else the vector width (see `vector_lanes`).
    lanes: usize,
    /// Byte step of each leaf pointer along the innermost dim: 0 means one
    /// element for all lanes (loaded once and splatted).
    inner_steps: &'t [i64],
    /// Byte offsets added to each pointer's loads and stores (another row
    /// of an interleaved reduction); empty: none.
    offsets: &'t [i64],
}

impl Tree<'_> {
    /// `ptrs[k]` points at leaf k's current element.
    fn eval(&self, b: &mut FunctionBuilder, ptrs: &[clif::Value]) -> clif::Value {
        self.eval_with(b, ptrs, &[])
    }

    /// The root's value, after also evaluating (and so storing) `siblings`:
    /// roots of the root's shape hosted by the same loop, sharing every
    /// value the trees have in common (`siblings.rs`).
    fn eval_with(&self, b: &mut FunctionBuilder, ptrs: &[clif::Value], siblings: &[usize]) -> clif::Value {
        let strides: Vec<i64> = self.func.insts[self.root].ty.shape.strides().iter().map(|&s| s as i64).collect();
        let mut memo = HashMap::new();
        let res = self.node(b, ptrs, self.root, &strides, &mut memo);
        for &sibling in siblings {
            self.node(b, ptrs, sibling, &strides, &mut memo);
        }
        res
    }

    fn node(
        &self,
        b: &mut FunctionBuilder,
        ptrs: &[clif::Value],
        node: usize,
        strides: &[i64],
        memo: &mut HashMap<usize, clif::Value>,
    ) -> clif::Value {
        let evaluated =
            if node == self.root { self.evaluate_root } else { self.sched.evaluated_in(node, self.loop_root) };
        if !evaluated {
            return self.load_leaf(b, ptrs, node, strides);
        }
        if let Some(&value) = memo.get(&node) {
            return value;
        }
        let func = self.func;
        let inst = &func.insts[node];
        let res = match &inst.op {
            Op::Constant(value) => self.constant(b, inst.ty.dtype, *value),
            Op::Broadcast { dims } => {
                let src = inst.args[0].index();
                match func.insts[src].op {
                    Op::Constant(value) => self.constant(b, inst.ty.dtype, value),
                    _ => self.load_leaf(b, ptrs, src, &schedule::broadcast_strides(func, node, dims)),
                }
            }
            Op::Pow => {
                let exponent = schedule::const_pow_exponent(func, node).expect("only constant pows are fused");
                let x = self.node(b, ptrs, inst.args[0].index(), strides, memo);
                let one = self.constant(b, inst.ty.dtype, 1.0);
                pow_by_multiplication(b, x, exponent, one)
            }
            op @ (Op::Exp | Op::Log | Op::Tanh | Op::Logistic) => {
                let x = self.node(b, ptrs, inst.args[0].index(), strides, memo);
                let mut arith =
                    vmath::ClifArith { b, dtype: inst.ty.dtype, lanes: self.lanes, fma: vmath::host_has_fma() };
                vmath::eval(&mut arith, op, x)
            }
            // Vector code: the condition is a lane mask (all ones or zeros).
            Op::Select if self.lanes > 1 => {
                let args: Vec<clif::Value> =
                    inst.args.iter().map(|arg| self.node(b, ptrs, arg.index(), strides, memo)).collect();
                let vector_ty = clif_type(inst.ty.dtype).by(self.lanes as u32).expect("16-byte vectors");
                let mask = b.ins().bitcast(vector_ty, MemFlagsData::new(), args[0]);
                b.ins().bitselect(mask, args[1], args[2])
            }
            op => {
                let args: Vec<clif::Value> =
                    inst.args.iter().map(|arg| self.node(b, ptrs, arg.index(), strides, memo)).collect();
                // The dtype the op computes in: the branches' for select, the
                // operands' for comparisons and converts.
                let compute_dtype = func.ty(*inst.args.last().expect("elementwise ops have operands")).dtype;
                scalar_op(b, op, compute_dtype, inst.ty.dtype, &args)
            }
        };
        if let Some(k) = self.guests.iter().position(|&g| g == node) {
            let at = self.guest_ptrs + k;
            b.ins().store(MemFlagsData::trusted(), res, ptrs[at], self.offset(at));
        }
        memo.insert(node, res);
        res
    }

    fn load_leaf(&self, b: &mut FunctionBuilder, ptrs: &[clif::Value], value: usize, strides: &[i64]) -> clif::Value {
        let k = self
            .leaves
            .iter()
            .position(|leaf| leaf.value == value && leaf.strides == strides)
            .expect("schedule::leaves lists every leaf the tree reads");
        let dtype = self.func.insts[value].ty.dtype;
        let ty = clif_type(dtype);
        let offset = self.offset(k);
        if self.lanes == 1 {
            return b.ins().load(ty, MemFlagsData::trusted(), ptrs[k], offset);
        }
        if dtype == DType::Bool {
            return self.load_mask(b, ptrs[k], offset, self.inner_steps[k] == 0);
        }
        let vector_ty = ty.by(self.lanes as u32).expect("16-byte vectors");
        if self.inner_steps[k] == 0 {
            let scalar = b.ins().load(ty, MemFlagsData::trusted(), ptrs[k], offset);
            b.ins().splat(vector_ty, scalar)
        } else {
            b.ins().load(vector_ty, MemFlagsData::trusted(), ptrs[k], offset)
        }
    }

    /// The byte offset of pointer `k`'s accesses (`offsets`).
    fn offset(&self, k: usize) -> i32 {
        self.offsets.get(k).map_or(0, |&o| i32::try_from(o).expect("row offsets fit an i32 displacement"))
    }

    /// The integer lane type of vector masks: as wide as the tree's floats.
    fn mask_type(&self) -> clif::Type {
        let float = self.func.insts[self.root].ty.dtype;
        let lane = if float == DType::F64 { types::I64 } else { types::I32 };
        lane.by(self.lanes as u32).expect("16-byte vectors")
    }

    /// Bools (bytes 0 or 1) at `ptr` as a lane mask: one byte for all lanes
    /// (`splat`), or `lanes` consecutive bytes (f32 trees only, see
    /// `vector_lanes`): the 4 bytes loaded as one i32, splatted, and lane
    /// `i` tests byte `i`.
    fn load_mask(&self, b: &mut FunctionBuilder, ptr: clif::Value, offset: i32, splat: bool) -> clif::Value {
        let mask_ty = self.mask_type();
        // Bool bytes carry no alignment promise.
        let flags = MemFlagsData::new().with_notrap();
        if splat {
            let byte = b.ins().load(types::I8, flags, ptr, offset);
            let wide = b.ins().uextend(mask_ty.lane_type(), byte);
            let all_or_none = b.ins().ineg(wide);
            return b.ins().splat(mask_ty, all_or_none);
        }
        debug_assert_eq!(mask_ty, types::I32X4, "byte masks are loaded for f32 trees only");
        let word = b.ins().load(types::I32, flags, ptr, offset);
        let word = b.ins().splat(types::I32X4, word);
        let bytes: Vec<u8> = [1u32, 1 << 8, 1 << 16, 1 << 24].iter().flat_map(|lane| lane.to_le_bytes()).collect();
        let handle = b.func.dfg.constants.insert(bytes.into());
        let lane_bits = b.ins().vconst(types::I32X4, handle);
        let picked = b.ins().band(word, lane_bits);
        let zero = b.ins().iconst(types::I32, 0);
        let zero = b.ins().splat(types::I32X4, zero);
        b.ins().icmp(IntCC::NotEqual, picked, zero)
    }

    /// A constant of `dtype` (rounded as the interpreter rounds it), splatted
    /// in vector code (a bool as a lane mask).
    fn constant(&self, b: &mut FunctionBuilder, dtype: DType, value: f64) -> clif::Value {
        if dtype == DType::Bool && self.lanes > 1 {
            let mask_ty = self.mask_type();
            let bits = b.ins().iconst(mask_ty.lane_type(), if value != 0.0 { -1 } else { 0 });
            return b.ins().splat(mask_ty, bits);
        }
        let value = Tensor::from_f64(dtype, &[], &[value]).scalar_value();
        let scalar = match dtype {
            DType::F32 => b.ins().f32const(value as f32),
            DType::F64 => b.ins().f64const(value),
            DType::I32 => b.ins().iconst(types::I32, value as i32 as i64),
            DType::Bool => b.ins().iconst(types::I8, (value != 0.0) as i64),
        };
        if self.lanes == 1 {
            scalar
        } else {
            let vector_ty = clif_type(dtype).by(self.lanes as u32).expect("16-byte vectors");
            b.ins().splat(vector_ty, scalar)
        }
    }
}

/// `x ^ exponent` for a small integer exponent, by multiplications in a
/// fixed order: x^2 = x*x, x^3 = (x*x)*x, x^4 = (x*x)*(x*x), x^-k = 1/x^k,
/// x^0 = 1 (also for NaN, as `powf`). Not bitwise `powf`: x^2 and x^-1 are
/// one rounding (equal to a correctly rounded `powf`), x^3, x^4, x^-2 two,
/// x^-3, x^-4 three; so the result is within 2 ulp of the exact power for
/// |k| <= 4 (normal range; see `codegen::tests` for the tested bound).
fn pow_by_multiplication(b: &mut FunctionBuilder, x: clif::Value, exponent: i32, one: clif::Value) -> clif::Value {
    let magnitude = match exponent.unsigned_abs() {
        0 => return one,
        1 => x,
        2 => b.ins().fmul(x, x),
        3 => {
            let square = b.ins().fmul(x, x);
            b.ins().fmul(square, x)
        }
        4 => {
            let square = b.ins().fmul(x, x);
            b.ins().fmul(square, square)
        }
        other => unreachable!("pow exponent {other} is above schedule::MAX_POW_EXPONENT"),
    };
    if exponent < 0 {
        b.ins().fdiv(one, magnitude)
    } else {
        magnitude
    }
}

/// The vector width (4 for f32, 2 for f64) of a loop over elements of
/// `dtype` that evaluates the trees of `roots` (in loop `loop_root`):
/// 16 bytes / dtype when every node of the trees is a lane-wise exact op on
/// that dtype, every leaf has that dtype, and every pointer moves by one
/// element (or, for leaves, 0) along the innermost dim; else 1.
#[allow(clippy::too_many_arguments)]
fn vector_lanes(
    func: &Func,
    sched: &Schedule,
    dtype: DType,
    roots: &[usize],
    loop_root: usize,
    leaves: &[Leaf],
    guests: &[usize],
    inner_steps: &[i64],
) -> usize {
    let size = dtype.size_bytes() as i64;
    if !dtype.is_float() {
        return 1;
    }
    // Bool leaves become lane masks: one byte splatted, or (f32) 4 bytes.
    let leaves_ok = leaves.iter().zip(inner_steps).all(|(leaf, &step)| match func.insts[leaf.value].ty.dtype {
        DType::Bool => step == 0 || (step == 1 && dtype == DType::F32),
        leaf_dtype => leaf_dtype == dtype && (step == 0 || step == size),
    });
    let out_ok = inner_steps[leaves.len()..].iter().all(|&step| step == size)
        && guests.iter().all(|&g| func.insts[g].ty.dtype == dtype);
    let trees_ok = roots.iter().all(|&root| tree_is_vectorizable(func, sched, loop_root, root, dtype));
    if leaves_ok && out_ok && trees_ok {
        16 / dtype.size_bytes()
    } else {
        1
    }
}

/// Whether `node` (of a tree evaluated in loop `loop_root`) computes
/// lane-wise on vectors of `dtype`: float nodes of `dtype`, and bool nodes
/// as lane masks (comparisons of `dtype` operands, constants, leaves)
/// feeding `select`s.
fn tree_is_vectorizable(func: &Func, sched: &Schedule, loop_root: usize, node: usize, dtype: DType) -> bool {
    let inst = &func.insts[node];
    let args_ok = |args: &[crate::ir::ValueId]| {
        args.iter().all(|arg| tree_is_vectorizable_arg(func, sched, loop_root, arg.index(), dtype))
    };
    match &inst.op {
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne => {
            return dtype.is_float() && func.ty(inst.args[0]).dtype == dtype && args_ok(&inst.args);
        }
        Op::Constant(_) | Op::Broadcast { .. } if inst.ty.dtype == DType::Bool => return dtype.is_float(),
        Op::Select => return inst.ty.dtype == dtype && args_ok(&inst.args),
        _ => {}
    }
    if inst.ty.dtype != dtype {
        return false;
    }
    match &inst.op {
        Op::Constant(_) | Op::Broadcast { .. } => true,
        Op::Pow => tree_is_vectorizable_arg(func, sched, loop_root, inst.args[0].index(), dtype),
        op => {
            is_vectorizable(op, dtype)
                && inst.args.iter().all(|arg| tree_is_vectorizable_arg(func, sched, loop_root, arg.index(), dtype))
        }
    }
}

fn tree_is_vectorizable_arg(func: &Func, sched: &Schedule, loop_root: usize, arg: usize, dtype: DType) -> bool {
    if sched.evaluated_in(arg, loop_root) {
        tree_is_vectorizable(func, sched, loop_root, arg, dtype)
    } else {
        // A leaf: `vector_lanes` checks its step (bools load as masks).
        let leaf = func.insts[arg].ty.dtype;
        leaf == dtype || (leaf == DType::Bool && dtype.is_float())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReduceKind {
    Sum,
    Max,
    Min,
}

fn clif_type(dtype: DType) -> clif::Type {
    match dtype {
        DType::F32 => types::F32,
        DType::F64 => types::F64,
        DType::I32 => types::I32,
        DType::Bool => types::I8,
    }
}

fn store(b: &mut FunctionBuilder, value: clif::Value, ptr: clif::Value) {
    b.ins().store(MemFlagsData::trusted(), value, ptr, 0);
}

/// Ops whose CLIF instructions work lane-wise on f32x4 / f64x2 with the same
/// IEEE results as the scalar ones.
fn is_vectorizable(op: &Op, dtype: DType) -> bool {
    let op_ok = match op {
        Op::Neg | Op::Sqrt | Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => true,
        Op::Abs => true,
        // Scalar constants and compare-and-select: not lane-wise as written.
        Op::Sign | Op::Rsqrt => false,
        // Lane-wise with SSE4.1's `roundps`, but a libcall per lane without
        // it: kept scalar (`roundss`, or one libcall per element).
        Op::Floor | Op::Ceil | Op::Round => false,
        // The inline algorithms are written lane-wise (see `vmath.rs`).
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic => true,
        Op::Pow => false,
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf | Op::StopGradient => false,
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => false,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::Select | Op::Convert => false,
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => false,
        Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } => false,
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul => false,
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => false,
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform | Op::Scan(_) | Op::CustomVjp(_) => false,
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => false,
        Op::SelectAndScatter(_) => false,
    };
    op_ok && dtype.is_float()
}

/// One element (or one vector of elements) of an elementwise op. `dtype` is
/// the dtype the op computes in (the operands', or the branches' for select);
/// `out` is the result dtype.
///
/// Rules, matching `ir::interp`:
///   float arithmetic: IEEE ops; max/min: `fmax`/`fmin` (NaN-propagating,
///     -0 < +0, the interpreter's rule);
///   i32 arithmetic wraps; x / 0 = 0 and MIN / -1 = 0 (`checked_div`);
///   comparisons: ordered for floats except `ne` (true on NaN), signed for
///     i32, unsigned for bool (false < true);
///   float -> i32 truncates and saturates, NaN -> 0 (Rust `as`);
///   x -> bool is x != 0 (NaN -> true); bool -> x is 0 or 1.
fn scalar_op(b: &mut FunctionBuilder, op: &Op, dtype: DType, out: DType, args: &[clif::Value]) -> clif::Value {
    let float = dtype.is_float();
    match op {
        Op::Neg if float => b.ins().fneg(args[0]),
        Op::Neg => b.ins().ineg(args[0]),
        Op::Sqrt => b.ins().sqrt(args[0]),
        // 1 / sqrt(x): two correctly rounded steps, as the interpreter.
        Op::Rsqrt => {
            let root = b.ins().sqrt(args[0]);
            let one = float_const(b, dtype, 1.0);
            b.ins().fdiv(one, root)
        }
        Op::Abs if float => b.ins().fabs(args[0]),
        Op::Abs => b.ins().iabs(args[0]),
        // x > 0 ? 1 : (x < 0 ? -1 : x), keeping ±0 and NaN.
        Op::Sign if float => {
            let zero = float_const(b, dtype, 0.0);
            let (one, minus_one) = (float_const(b, dtype, 1.0), float_const(b, dtype, -1.0));
            let positive = b.ins().fcmp(FloatCC::GreaterThan, args[0], zero);
            let negative = b.ins().fcmp(FloatCC::LessThan, args[0], zero);
            let res = b.ins().select(negative, minus_one, args[0]);
            b.ins().select(positive, one, res)
        }
        // clamp(x, -1, 1) is the sign of an integer.
        Op::Sign => {
            let lo = b.ins().iconst(types::I32, -1);
            let hi = b.ins().iconst(types::I32, 1);
            let clamped = b.ins().smax(args[0], lo);
            b.ins().smin(clamped, hi)
        }
        // IEEE roundings to an integral value (`nearest` is ties-to-even).
        Op::Floor => b.ins().floor(args[0]),
        Op::Ceil => b.ins().ceil(args[0]),
        Op::Round => b.ins().nearest(args[0]),
        Op::Add if float => b.ins().fadd(args[0], args[1]),
        Op::Add => b.ins().iadd(args[0], args[1]),
        Op::Sub if float => b.ins().fsub(args[0], args[1]),
        Op::Sub => b.ins().isub(args[0], args[1]),
        Op::Mul if float => b.ins().fmul(args[0], args[1]),
        Op::Mul => b.ins().imul(args[0], args[1]),
        Op::Div if float => b.ins().fdiv(args[0], args[1]),
        Op::Div => {
            let (x, y) = (args[0], args[1]);
            let by_zero = b.ins().icmp_imm_s(IntCC::Equal, y, 0);
            let x_min = b.ins().icmp_imm_s(IntCC::Equal, x, i32::MIN as i64);
            let y_neg_one = b.ins().icmp_imm_s(IntCC::Equal, y, -1);
            let overflow = b.ins().band(x_min, y_neg_one);
            let undefined = b.ins().bor(by_zero, overflow);
            let one = b.ins().iconst(types::I32, 1);
            let zero = b.ins().iconst(types::I32, 0);
            // Divide by 1 where undefined so that `sdiv` never traps.
            let safe_y = b.ins().select(undefined, one, y);
            let quotient = b.ins().sdiv(x, safe_y);
            b.ins().select(undefined, zero, quotient)
        }
        Op::Max if float => b.ins().fmax(args[0], args[1]),
        Op::Max => b.ins().smax(args[0], args[1]),
        Op::Min if float => b.ins().fmin(args[0], args[1]),
        Op::Min => b.ins().smin(args[0], args[1]),
        Op::Lt => compare(b, dtype, args, FloatCC::LessThan, IntCC::SignedLessThan, IntCC::UnsignedLessThan),
        Op::Le => compare(
            b,
            dtype,
            args,
            FloatCC::LessThanOrEqual,
            IntCC::SignedLessThanOrEqual,
            IntCC::UnsignedLessThanOrEqual,
        ),
        Op::Gt => compare(b, dtype, args, FloatCC::GreaterThan, IntCC::SignedGreaterThan, IntCC::UnsignedGreaterThan),
        Op::Ge => compare(
            b,
            dtype,
            args,
            FloatCC::GreaterThanOrEqual,
            IntCC::SignedGreaterThanOrEqual,
            IntCC::UnsignedGreaterThanOrEqual,
        ),
        Op::Eq => compare(b, dtype, args, FloatCC::Equal, IntCC::Equal, IntCC::Equal),
        Op::Ne => compare(b, dtype, args, FloatCC::NotEqual, IntCC::NotEqual, IntCC::NotEqual),
        Op::Select => b.ins().select(args[0], args[1], args[2]),
        Op::Convert => convert(b, args[0], dtype, out),
        Op::Exp | Op::Log | Op::Tanh | Op::Logistic => unreachable!("{op:?} is emitted by vmath"),
        Op::Pow => unreachable!("{op:?} runs as a host routine"),
        Op::Log1p | Op::Expm1 | Op::Sin | Op::Cos | Op::Erf => {
            unreachable!("{op:?} runs as a host routine")
        }
        Op::StopGradient => unreachable!("stop_gradient aliases its operand"),
        Op::ArgMax { .. } | Op::Slice { .. } | Op::Pad { .. } | Op::Concat { .. } => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::Param(_) | Op::Constant(_) | Op::Iota { .. } => unreachable!("{op:?} is not elementwise"),
        Op::Broadcast { .. } | Op::Reshape | Op::Transpose { .. } => unreachable!("{op:?} is not elementwise"),
        Op::ReduceSum { .. } | Op::ReduceMax { .. } | Op::MatMul => unreachable!("{op:?} is not elementwise"),
        Op::ReduceMin { .. } | Op::Gather | Op::ScatterAdd | Op::BatchMatMul => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::RandomBits | Op::RandomSplit | Op::RandomUniform | Op::Scan(_) | Op::CustomVjp(_) => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::Reverse { .. } | Op::Conv2d(_) | Op::ReduceWindowSum(_) | Op::ReduceWindowMax(_) => {
            unreachable!("{op:?} is not elementwise")
        }
        Op::SelectAndScatter(_) => unreachable!("{op:?} is not elementwise"),
    }
}

/// A scalar float constant of `dtype`.
fn float_const(b: &mut FunctionBuilder, dtype: DType, value: f64) -> clif::Value {
    match dtype {
        DType::F32 => b.ins().f32const(value as f32),
        DType::F64 => b.ins().f64const(value),
        DType::I32 | DType::Bool => unreachable!("float constant of {dtype}"),
    }
}

/// A comparison yielding a 0/1 byte: `float` for f32/f64 operands, `signed`
/// for i32, `unsigned` for bool.
fn compare(
    b: &mut FunctionBuilder,
    dtype: DType,
    args: &[clif::Value],
    float: FloatCC,
    signed: IntCC,
    unsigned: IntCC,
) -> clif::Value {
    match dtype {
        DType::F32 | DType::F64 => b.ins().fcmp(float, args[0], args[1]),
        DType::I32 => b.ins().icmp(signed, args[0], args[1]),
        DType::Bool => b.ins().icmp(unsigned, args[0], args[1]),
    }
}

/// Element conversion between distinct dtypes (same-dtype converts alias).
fn convert(b: &mut FunctionBuilder, x: clif::Value, from: DType, to: DType) -> clif::Value {
    match (from, to) {
        (DType::F32, DType::F64) => b.ins().fpromote(types::F64, x),
        (DType::F64, DType::F32) => b.ins().fdemote(types::F32, x),
        (DType::F32 | DType::F64, DType::I32) => b.ins().fcvt_to_sint_sat(types::I32, x),
        (DType::I32, DType::F32 | DType::F64) => b.ins().fcvt_from_sint(clif_type(to), x),
        (DType::Bool, DType::I32) => b.ins().uextend(types::I32, x),
        (DType::Bool, DType::F32 | DType::F64) => {
            let wide = b.ins().uextend(types::I32, x);
            b.ins().fcvt_from_sint(clif_type(to), wide)
        }
        (DType::F32, DType::Bool) => {
            let zero = b.ins().f32const(0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::F64, DType::Bool) => {
            let zero = b.ins().f64const(0.0);
            b.ins().fcmp(FloatCC::NotEqual, x, zero)
        }
        (DType::I32, DType::Bool) => b.ins().icmp_imm_s(IntCC::NotEqual, x, 0),
        (DType::F32, DType::F32) | (DType::F64, DType::F64) | (DType::I32, DType::I32) | (DType::Bool, DType::Bool) => {
            unreachable!("same-dtype convert aliases its operand")
        }
    }
}

/// Merges adjacent dims that every pointer walks contiguously (outer stride
/// = inner stride * inner size) and drops size-1 dims. The iteration order is
/// unchanged. `strides[d][k]` is pointer k's byte stride along dim d.
fn merge_dims(dims: &[usize], strides: &[Vec<i64>]) -> (Vec<usize>, Vec<Vec<i64>>) {
    let mut res_dims: Vec<usize> = Vec::new();
    let mut res_strides: Vec<Vec<i64>> = Vec::new();
    for (&dim, stride) in dims.iter().zip(strides) {
        if dim == 1 {
            continue;
        }
        if let (Some(last_dim), Some(last_stride)) = (res_dims.last_mut(), res_strides.last_mut()) {
            if last_stride.iter().zip(stride).all(|(&outer, &inner)| outer == inner * dim as i64) {
                *last_dim *= dim;
                last_stride.clone_from(stride);
                continue;
            }
        }
        res_dims.push(dim);
        res_strides.push(stride.clone());
    }
    (res_dims, res_strides)
}

/// `ptrs` moved forward by `count` steps of `steps` bytes each (a loop's
/// scalar tail starts where its vector part ended); pointers that do not
/// move are reused as they are.
fn advance(b: &mut FunctionBuilder, ptrs: &[clif::Value], steps: &[i64], count: usize) -> Vec<clif::Value> {
    ptrs.iter()
        .zip(steps)
        .map(|(&p, &step)| if count == 0 || step == 0 { p } else { b.ins().iadd_imm_s(p, count as i64 * step) })
        .collect()
}

/// Emits `body` on `len` elements from `ptrs` (moving `steps` bytes per
/// element) in pieces of `chunk`: a loop over the whole chunks, then the
/// rest; `body` gets the pointers, the piece's count and `accs`, carried
/// through and returned.
fn emit_chunks(
    b: &mut FunctionBuilder,
    ptrs: &[clif::Value],
    steps: &[i64],
    len: usize,
    chunk: usize,
    accs: &[clif::Value],
    body: &mut dyn FnMut(&mut FunctionBuilder, &[clif::Value], usize, &[clif::Value]) -> Vec<clif::Value>,
) -> Vec<clif::Value> {
    let (chunks, rest) = (len / chunk.max(1), len % chunk.max(1));
    let mut accs = accs.to_vec();
    if chunks > 0 {
        let chunk_steps: Vec<i64> = steps.iter().map(|&s| s * chunk as i64).collect();
        accs = emit_loop(b, chunks, ptrs, &chunk_steps, &accs, &mut |b, ptrs, accs| body(b, ptrs, chunk, accs));
    }
    if rest > 0 {
        let tail = advance(b, ptrs, steps, chunks * chunk);
        accs = body(b, &tail, rest, &accs);
    }
    accs
}

/// Emits a row-major loop nest over `dims`: pointer k starts at `ptrs[k]` and
/// moves by `strides[d][k]` bytes per step of dim d. `accs` are threaded
/// through every iteration. Returns the final carried values. Every dim must
/// be non-zero (callers skip empty arrays).
fn emit_nest(
    b: &mut FunctionBuilder,
    dims: &[usize],
    strides: &[Vec<i64>],
    ptrs: &[clif::Value],
    accs: &[clif::Value],
    body: Body,
) -> Vec<clif::Value> {
    match dims.split_first() {
        None => body(b, ptrs, accs),
        Some((&trip, inner_dims)) => emit_loop(b, trip, ptrs, &strides[0], accs, &mut |b, ptrs, accs| {
            emit_nest(b, inner_dims, &strides[1..], ptrs, accs, body)
        }),
    }
}

/// Emits `trip` iterations of `body` (a do-while loop: `trip >= 1`), with
/// pointer k advanced by `steps[k]` each iteration and `accs` carried.
/// Returns the carried values after the last iteration.
fn emit_loop(
    b: &mut FunctionBuilder,
    trip: usize,
    ptrs: &[clif::Value],
    steps: &[i64],
    accs: &[clif::Value],
    body: Body,
) -> Vec<clif::Value> {
    assert!(trip >= 1, "empty loops are skipped by the callers");
    if trip == 1 {
        return body(b, ptrs, accs);
    }
    let acc_types: Vec<clif::Type> = accs.iter().map(|&a| b.func.dfg.value_type(a)).collect();
    let header = b.create_block();
    let counter = b.append_block_param(header, PTR);
    let loop_ptrs: Vec<clif::Value> = ptrs.iter().map(|_| b.append_block_param(header, PTR)).collect();
    let loop_accs: Vec<clif::Value> = acc_types.iter().map(|&t| b.append_block_param(header, t)).collect();
    let exit = b.create_block();
    let exit_accs: Vec<clif::Value> = acc_types.iter().map(|&t| b.append_block_param(exit, t)).collect();

    let zero = b.ins().iconst(PTR, 0);
    let entry_args: Vec<BlockArg> =
        std::iter::once(zero).chain(ptrs.iter().copied()).chain(accs.iter().copied()).map(BlockArg::from).collect();
    b.ins().jump(header, &entry_args);

    b.switch_to_block(header);
    let next_accs = body(b, &loop_ptrs, &loop_accs);
    let next_counter = b.ins().iadd_imm_s(counter, 1);
    let next_ptrs: Vec<clif::Value> = loop_ptrs
        .iter()
        .zip(steps)
        .map(|(&p, &step)| if step == 0 { p } else { b.ins().iadd_imm_s(p, step) })
        .collect();
    let more = b.ins().icmp_imm_s(IntCC::SignedLessThan, next_counter, trip as i64);
    let back_args: Vec<BlockArg> =
        std::iter::once(next_counter).chain(next_ptrs).chain(next_accs.iter().copied()).map(BlockArg::from).collect();
    let exit_args: Vec<BlockArg> = next_accs.iter().copied().map(BlockArg::from).collect();
    b.ins().brif(more, header, &back_args, exit, &exit_args);

    b.switch_to_block(exit);
    exit_accs
}
