//! Large fused elementwise loops and reductions on the host kernels' threads.
//!
//! Why: GEMMs and convolutions already run on every thread (`threads.rs`),
//! so in a training step on a many-core host the single-threaded fused
//! loops (activations, their gradients, softmax, the optimizer's update)
//! were what the other cores waited for.
//!
//! How: the loop of a large fusion group is outlined into a function of its
//! own, `fn(table, part, parts)`, that runs part `part` of `parts` of the
//! loop's units of work: the outermost merged dim, or, for a loop with one
//! merged dim, chunks of `UNIT` elements (the last part also does the
//! static tail). The chunk calls it through `threads::jl_parallel_for`,
//! which picks the number of parts at run time (one part with one thread),
//! so the machine code does not depend on the thread count. Every element
//! is computed by one part with exactly the code the single-threaded loop
//! has, so results are bitwise the same for any thread count and split.
//!
//! A reduction is split likewise by the outermost dim of its walk that
//! moves the output (rows of a layer norm or a softmax; the channels of a
//! conv's bias gradient, whose batch dim before them is reduced): each part
//! runs the reduction's own code (`Emitter::emit_reduce` with a row range)
//! over equal stretches of rows, each output's sum in its usual order.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self as clif, AbiParam, BlockArg, InstBuilder, UserFuncName};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::Module;

use super::{advance, emit_nest, CodegenError, Emitter, HostFn, ReduceKind, ReducePart, PTR, WIDE_CHUNK};
use crate::ir::sum_order;

/// Elements from which a fused loop is outlined: below, rayon's dispatch
/// (a few microseconds) is a large part of the loop's time.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;

/// Elements per unit of work of a loop with one merged dim: a multiple of
/// `WIDE_CHUNK` and of every vector width, so that the parts' rows are
/// those the single-threaded loop has.
const UNIT: usize = 4 * WIDE_CHUNK;

/// Most units a full maximum or minimum's run is cut into (its partial
/// results live in a stack slot of the caller).
const MAX_RUN_UNITS: usize = 256;

/// Most units of work a reduction is cut into: each is a stretch of rows
/// with the same static count, so that one copy of the reduction's code
/// serves them all.
const MAX_REDUCTION_UNITS: usize = 64;

/// How a reduction's loop is cut: `units` stretches of `rows` indices of
/// its walk's outer dim `dim`.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowSplit {
    dim: usize,
    units: usize,
    rows: usize,
}

/// How an outlined loop's work is cut into units.
#[derive(Clone, Copy, Debug)]
pub(super) enum Split {
    /// Units are the indices of the outermost merged dim.
    Outer { units: usize },
    /// One merged dim: units of `chunk` elements, `rest` more at the end.
    Flat { units: usize, chunk: usize, rest: usize },
}

impl Split {
    fn units(self) -> usize {
        match self {
            Split::Outer { units } | Split::Flat { units, .. } => units,
        }
    }
}

impl Emitter<'_, '_> {
    /// How to split the fused loop rooted at `root` over threads, or `None`
    /// for a loop too small to gain.
    pub(super) fn parallel_split(&self, root: usize) -> Option<Split> {
        if !self.parallel_loops || self.func.insts[root].ty.shape.num_elements() < PARALLEL_MIN_ELEMENTS {
            return None;
        }
        let plan = self.fused_plan(root, None);
        match plan.dims[..] {
            [] => None,
            [inner] => {
                let units = inner / UNIT;
                (units >= 2).then_some(Split::Flat { units, chunk: UNIT, rest: inner % UNIT })
            }
            [outer, ..] => (outer >= 2).then_some(Split::Outer { units: outer }),
        }
    }

    /// How to split reduction `index` over threads: by the outermost dim
    /// of its walk that moves the output (so parts write disjoint outputs
    /// and each output's sum keeps its order; the dims before it are
    /// reduced, as a bias gradient's batch), into equal stretches of rows;
    /// `None` for a reduction too small, one with no outer dim that moves
    /// the output, or one whose row count has no divisor giving 2 to
    /// `MAX_REDUCTION_UNITS` stretches.
    pub(super) fn parallel_reduce_split(&self, index: usize) -> Option<RowSplit> {
        let src = self.func.ty(self.func.insts[index].args[0]);
        if !self.parallel_loops || src.shape.num_elements() < PARALLEL_MIN_ELEMENTS {
            return None;
        }
        let walk = super::reduce_walk(self.func, self.sched, index);
        let n_walk = walk.leaves.len() + walk.stored.len();
        let dim = walk.outer_strides.iter().position(|strides| strides[n_walk] != 0)?;
        let m = walk.outer_dims[dim];
        // When `dim` is the last outer dim, at least ROWS rows a unit where
        // that still leaves 2 units, so that a unit reduces ROWS rows at a
        // time as the inline loop does (one row at a time, a bias
        // gradient's channel per unit, took twice the time).
        let stretch = |fewest: usize| (fewest..=m).find(|&r| m % r == 0 && m / r <= MAX_REDUCTION_UNITS && m / r >= 2);
        let last = dim + 1 == walk.outer_dims.len();
        let rows = if last { stretch(super::ROWS).or_else(|| stretch(1)) } else { stretch(1) }?;
        Some(RowSplit { dim, units: m / rows, rows })
    }

    /// How to split a full maximum, minimum or blocked sum (one output)
    /// over threads: its one contiguous run in `units` units of `unit`
    /// elements (`UNIT` or a multiple: at most `MAX_RUN_UNITS` of them)
    /// and a tail of `rest`, each reduced into a partial result of its
    /// own: `(units, unit, rest)`; `None` for a sum in the interpreter's
    /// serial order, a small run, or a run that is not contiguous.
    pub(super) fn parallel_run_split(&self, index: usize, kind: ReduceKind) -> Option<(usize, usize, usize)> {
        if !self.parallel_loops || self.func.insts[index].ty.shape.num_elements() != 1 {
            return None;
        }
        let blocked = super::blocked_run(self.func, index).is_some();
        if kind == ReduceKind::Sum && !blocked {
            return None;
        }
        let walk = super::reduce_walk(self.func, self.sched, index);
        let &(n, _, lanes) = walk.vector.as_ref()?;
        if !walk.outer_dims.is_empty() || n < PARALLEL_MIN_ELEMENTS {
            return None;
        }
        // A blocked sum's units are those of its order (the same lengths).
        let unit = if blocked { sum_order::unit_len(n) } else { UNIT * n.div_ceil(UNIT * MAX_RUN_UNITS) };
        let (units, rest) = (n / unit, n % unit);
        if units < 2 {
            return None;
        }
        // A maximum's tail shorter than a vector joins the last unit (the
        // loop's rows hold at least one vector); a sum's stays a unit.
        let units = if rest > 0 && rest < lanes && !blocked { units - 1 } else { units };
        Some((units, unit, n - units * unit))
    }

    /// A full maximum, minimum or blocked sum on threads: each part reduces
    /// its units of the run into partial results (the last part also the
    /// rest), then this thread combines them in unit order. A maximum or
    /// minimum has no order, and a blocked sum adds its units' sums in
    /// unit order to 0.0, so the result is the single loop's, bitwise.
    /// `tiled`: the wide root run chunk by chunk inside the sum's loop
    /// (`emit::tiled_pairs`), each part running it on its own units.
    pub(super) fn emit_reduce_run_parallel(
        &mut self,
        index: usize,
        kind: ReduceKind,
        (units, unit, rest): (usize, usize, usize),
        tiled: Option<usize>,
    ) -> Result<(), CodegenError> {
        let dtype = self.func.insts[index].ty.dtype;
        let size = dtype.size_bytes();
        let slots = units + usize::from(rest > 0);
        let slot = self.b.create_sized_stack_slot(clif::StackSlotData::new(
            clif::StackSlotKind::ExplicitSlot,
            (slots * size) as u32,
            4,
        ));
        let partials = self.b.ins().stack_addr(PTR, slot, 0);
        self.outline_with(index, units, partials, &mut |part, index_value, parts, partials| {
            let (first, end) = part_range(&mut part.b, units, index_value, parts);
            part.emit_unit_loop(first, end, &mut |part, u| {
                let first_element = part.b.ins().imul_imm_s(u, unit as i64);
                let out_offset = part.b.ins().imul_imm_s(u, size as i64);
                let out = part.b.ins().iadd(partials, out_offset);
                let tile = part.tile_loop(tiled)?;
                part.emit_reduce(index, kind, tile, Some(ReducePart::Run { count: unit, first: first_element, out }))
            })?;
            if rest > 0 {
                // The last part also reduces the elements after the last unit.
                let mut failed = Ok(());
                part.emit_in_last_part(index_value, parts, &mut |part| {
                    let first_element = part.b.ins().iconst(PTR, (units * unit) as i64);
                    let out = part.b.ins().iadd_imm_s(partials, (units * size) as i64);
                    let run = ReducePart::Run { count: rest, first: first_element, out };
                    failed = part.tile_loop(tiled).and_then(|tile| part.emit_reduce(index, kind, tile, Some(run)));
                });
                failed?;
            }
            Ok(())
        })?;
        // Combine the partial results in unit order into the output.
        let ty = super::clif_type(dtype);
        let flags = clif::MemFlagsData::trusted();
        // A sum adds its units' sums to 0.0 (as the single loop adds them
        // to its output's 0.0); a maximum or minimum starts at the first.
        let (mut acc, first) = match kind {
            ReduceKind::Sum => (super::float_const(&mut self.b, dtype, 0.0), 0),
            _ => (self.b.ins().load(ty, flags, partials, 0), 1),
        };
        for k in first..slots {
            let value = self.b.ins().load(ty, flags, partials, (k * size) as i32);
            acc = match (kind, dtype.is_float()) {
                (ReduceKind::Max, true) => self.b.ins().fmax(acc, value),
                (ReduceKind::Min, true) => self.b.ins().fmin(acc, value),
                (ReduceKind::Max, false) => self.b.ins().smax(acc, value),
                (ReduceKind::Min, false) => self.b.ins().smin(acc, value),
                (ReduceKind::Sum, true) => self.b.ins().fadd(acc, value),
                (ReduceKind::Sum, false) => unreachable!("integer sums are not blocked"),
            };
        }
        let dst = self.base(index);
        self.b.ins().store(flags, acc, dst, 0);
        Ok(())
    }

    /// Outlines reduction `index` and calls it through `jl_parallel_for`;
    /// each part reduces its stretches of rows with the reduction's own code.
    pub(super) fn emit_reduce_parallel(
        &mut self,
        index: usize,
        kind: ReduceKind,
        split: RowSplit,
    ) -> Result<(), CodegenError> {
        self.outline(index, split.units, &mut |part, index_value, parts| {
            let (first, end) = part_range(&mut part.b, split.units, index_value, parts);
            // For each unit: the reduction of its stretch of rows.
            part.emit_unit_loop(first, end, &mut |part, unit| {
                let first_row = part.b.ins().imul_imm_s(unit, split.rows as i64);
                let rows = ReducePart::Rows { dim: split.dim, count: split.rows, first: first_row };
                part.emit_reduce(index, kind, None, Some(rows))
            })
        })
    }

    /// Emits `body` to run only in the last part (a tail after the last unit).
    fn emit_in_last_part(&mut self, part: clif::Value, parts: clif::Value, body: &mut dyn FnMut(&mut Emitter)) {
        let tail = self.b.create_block();
        let done = self.b.create_block();
        let last = self.b.ins().iadd_imm_s(parts, -1);
        let is_last = self.b.ins().icmp(IntCC::Equal, part, last);
        self.b.ins().brif(is_last, tail, &[], done, &[]);
        self.b.switch_to_block(tail);
        body(self);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Emits iterations `unit = first..end` (run-time values, possibly
    /// none) of `body`, which may emit anything (blocks included).
    fn emit_unit_loop(
        &mut self,
        first: clif::Value,
        end: clif::Value,
        body: &mut dyn FnMut(&mut Emitter, clif::Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let header = self.b.create_block();
        let unit = self.b.append_block_param(header, PTR);
        let exit = self.b.create_block();
        let any = self.b.ins().icmp(IntCC::UnsignedLessThan, first, end);
        self.b.ins().brif(any, header, &[BlockArg::from(first)], exit, &[]);
        self.b.switch_to_block(header);
        body(self, unit)?;
        let next = self.b.ins().iadd_imm_s(unit, 1);
        let more = self.b.ins().icmp(IntCC::UnsignedLessThan, next, end);
        self.b.ins().brif(more, header, &[BlockArg::from(next)], exit, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    /// Outlines `body` (given the new function's emitter, its `part` and
    /// `parts` parameters) as `fn(table, part, parts)` computing
    /// instruction `index`, and calls it through `jl_parallel_for` with
    /// `units` units of work.
    fn outline(
        &mut self,
        index: usize,
        units: usize,
        body: &mut dyn FnMut(&mut Emitter, clif::Value, clif::Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let zero = self.b.ins().iconst(PTR, 0);
        self.outline_with(index, units, zero, &mut |part, index, parts, _| body(part, index, parts))
    }

    /// `outline`, the body also getting the function's fourth parameter,
    /// `extra` as the caller passes it (the address of per-unit partial
    /// results).
    fn outline_with(
        &mut self,
        index: usize,
        units: usize,
        extra: clif::Value,
        body: &mut dyn FnMut(&mut Emitter, clif::Value, clif::Value, clif::Value) -> Result<(), CodegenError>,
    ) -> Result<(), CodegenError> {
        let mut sig = self.module.make_signature();
        sig.params.extend([AbiParam::new(PTR); 4]);
        // Named for profiles (`perf` shows `jl_loop{index}_{n}`).
        let name = format!("jl_loop{index}_{}", self.module.declarations().get_functions().count());
        let id = self.module.declare_function(&name, cranelift_module::Linkage::Local, &sig)?;
        let mut ctx = self.module.make_context();
        ctx.func.signature = sig;
        ctx.func.name = UserFuncName::user(0, id.as_u32());
        ctx.set_disasm(self.listing);
        let mut builder_ctx = FunctionBuilderContext::new();
        {
            let b = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
            let mut part = Emitter::new(b, &mut *self.module, self.func, self.sched).with_listing(self.listing);
            let entry = part.b.current_block().expect("`new` switched to the entry block");
            let params = part.b.block_params(entry).to_vec();
            body(&mut part, params[1], params[2], params[3])?;
            let nested = part.finish();
            debug_assert!(nested.iter().all(|listed| listed.wide), "an outlined loop outlines nothing");
            // Its wide kernels, listed before it.
            self.outlined.extend(nested);
        }
        self.module.define_function(id, &mut ctx)?;
        if self.listing {
            if let Some(code) = ctx.compiled_code() {
                let text = code.vcode.clone().unwrap_or_default();
                self.outlined.push(super::Listed { index, bytes: code.code_buffer().to_vec(), text, wide: false });
            }
        }
        let callee = self.module.declare_func_in_func(id, self.b.func);
        let address = self.b.ins().func_addr(PTR, callee);
        let units = self.b.ins().iconst(PTR, units as i64);
        let table = self.table;
        self.call_host(HostFn::ParallelFor, &[address, table, units, extra])
    }

    /// Outlines the fused loop rooted at `root` and calls it through
    /// `jl_parallel_for`.
    pub(super) fn emit_fused_parallel(
        &mut self,
        root: usize,
        wide: Option<HostFn>,
        split: Split,
    ) -> Result<(), CodegenError> {
        self.outline(root, split.units(), &mut |part, index, parts| {
            part.emit_fused_part(root, wide, split, index, parts)
        })
    }

    /// The body of an outlined loop: units `units * part / parts` up to
    /// `units * (part + 1) / parts` of the loop rooted at `root`.
    fn emit_fused_part(
        &mut self,
        root: usize,
        wide: Option<HostFn>,
        split: Split,
        part: clif::Value,
        parts: clif::Value,
    ) -> Result<(), CodegenError> {
        let wide = wide.map(|host| self.host_ref(host)).transpose()?;
        let (func, sched) = (self.func, self.sched);
        let (fused, bases) = self.fused_loop(root, wide)?;
        let b = &mut self.b;
        let (first, end) = part_range(b, split.units(), part, parts);
        match split {
            Split::Outer { .. } => {
                let (&inner, middle) = fused.dims[1..].split_last().expect("an outer split has two dims or more");
                let middle_strides = &fused.strides[1..fused.dims.len() - 1];
                emit_range_loop(b, first, end, &bases, &fused.strides[0], &mut |b, ptrs| {
                    emit_nest(b, middle, middle_strides, ptrs, &[], &mut |b, ptrs, _| {
                        fused.rows(func, sched, b, ptrs, inner);
                        vec![]
                    });
                });
            }
            Split::Flat { units, chunk, rest } => {
                let steps: Vec<i64> = fused.inner_steps().iter().map(|&s| s * chunk as i64).collect();
                emit_range_loop(b, first, end, &bases, &steps, &mut |b, ptrs| {
                    fused.rows(func, sched, b, ptrs, chunk);
                });
                if rest > 0 {
                    // The last part also does the elements after the last unit.
                    self.emit_in_last_part(part, parts, &mut |e| {
                        let tail = advance(&mut e.b, &bases, fused.inner_steps(), units * chunk);
                        fused.rows(func, sched, &mut e.b, &tail, rest);
                    });
                }
            }
        }
        Ok(())
    }
}

/// The units part `part` of `parts` runs: `units * part / parts` up to
/// `units * (part + 1) / parts` (every unit in exactly one part).
fn part_range(
    b: &mut FunctionBuilder,
    units: usize,
    part: clif::Value,
    parts: clif::Value,
) -> (clif::Value, clif::Value) {
    let units = b.ins().iconst(PTR, units as i64);
    let bound = |b: &mut FunctionBuilder, k: clif::Value| {
        let scaled = b.ins().imul(units, k);
        b.ins().udiv(scaled, parts)
    };
    let first = bound(b, part);
    let next = b.ins().iadd_imm_s(part, 1);
    (first, bound(b, next))
}

/// Emits iterations `first..end` (run-time values, possibly none) of
/// `body`, pointer k starting at `bases[k] + first * steps[k]` and moving
/// by `steps[k]` bytes per iteration.
fn emit_range_loop(
    b: &mut FunctionBuilder,
    first: clif::Value,
    end: clif::Value,
    bases: &[clif::Value],
    steps: &[i64],
    body: &mut dyn FnMut(&mut FunctionBuilder, &[clif::Value]),
) {
    let starts: Vec<clif::Value> = bases
        .iter()
        .zip(steps)
        .map(|(&base, &step)| {
            if step == 0 {
                base
            } else {
                let offset = b.ins().imul_imm_s(first, step);
                b.ins().iadd(base, offset)
            }
        })
        .collect();
    let header = b.create_block();
    let counter = b.append_block_param(header, PTR);
    let ptrs: Vec<clif::Value> = bases.iter().map(|_| b.append_block_param(header, PTR)).collect();
    let exit = b.create_block();
    let any = b.ins().icmp(IntCC::UnsignedLessThan, first, end);
    let entry_args: Vec<BlockArg> = std::iter::once(first).chain(starts).map(BlockArg::from).collect();
    b.ins().brif(any, header, &entry_args, exit, &[]);

    b.switch_to_block(header);
    body(b, &ptrs);
    let next = b.ins().iadd_imm_s(counter, 1);
    let next_ptrs: Vec<clif::Value> =
        ptrs.iter().zip(steps).map(|(&p, &step)| if step == 0 { p } else { b.ins().iadd_imm_s(p, step) }).collect();
    let more = b.ins().icmp(IntCC::UnsignedLessThan, next, end);
    let back_args: Vec<BlockArg> = std::iter::once(next).chain(next_ptrs).map(BlockArg::from).collect();
    b.ins().brif(more, header, &back_args, exit, &[]);
    b.switch_to_block(exit);
}
