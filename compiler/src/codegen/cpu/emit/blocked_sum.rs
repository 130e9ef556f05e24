//! Long float sums in the blocked order of `ir::sum_order`.
//!
//! Consumes a reduction's walk (`emit::reduce_walk`) whose outputs each
//! sum one consecutive run of `n >= LONG_SUM` elements; emits, per output,
//! its units one after the other, each unit's sum added to the output
//! (which holds 0.0 before the first). A unit keeps its `L` partial sums
//! (`sum_order::lanes`: 16 for f32, 8 for f64) in `L / lanes` vector
//! accumulators of the tree's width: iteration `i` evaluates the tree on
//! elements `L*i .. L*i + L` as `L / lanes` vectors, and vector `a` joins
//! accumulator `a`, so partial `j` gets exactly the elements `k` with
//! `k % L == j`, in order. The last `n % L` elements of a unit join their
//! partials as scalars, then the partials are halved down to one. With four
//! independent vector chains the adds no longer wait on one another (the
//! serial chain cost about 4 cycles per element).
//!
//! A run whose tree is not evaluated as vectors, or that is not one merged
//! dim (a leaf broadcast inside the run), takes the scalar fallback: the
//! partials live in a stack slot, the element's lane is a counter, and a
//! unit's end is a branch. Bitwise the same order, only slower.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{self as clif, BlockArg, FuncRef, InstBuilder, MemFlagsData};
use cranelift_frontend::FunctionBuilder;

use super::{
    advance, call_wide_kernel, clif_type, emit_chunks, emit_loop, emit_nest, float_const, FusedLoop, Tree, PTR,
    WIDE_CHUNK,
};
use crate::ir::sum_order;
use crate::ir::DType;

/// What a blocked sum's code needs to evaluate its elements.
pub(super) struct BlockedSum<'t> {
    /// The reduction's tree (and its siblings' stores), as a scalar tree;
    /// vector and offset variants are made from it.
    pub(super) tree: Tree<'t>,
    pub(super) siblings: &'t [usize],
    pub(super) dtype: DType,
    /// Walkers (leaves, then stored values) before the output pointer.
    pub(super) n_walk: usize,
    /// Elements per unit (`sum_order::unit_len`, or the whole part run by
    /// a thread, which is one unit).
    pub(super) unit: usize,
    /// The tree and its accumulation as a 512-bit kernel (`cpu/wide.rs`):
    /// its 16 lanes are the 16 f32 partials.
    pub(super) kernel: Option<FuncRef>,
    /// The kernel also computes the tile's root in registers
    /// (`wide_tree::tiled_program`): it reads the tile's walkers, then the
    /// sum's, and the tile's row code is not run at all.
    pub(super) kernel_covers_tile: bool,
}

impl BlockedSum<'_> {
    fn partials(&self) -> usize {
        sum_order::lanes(self.dtype)
    }

    fn ty(&self) -> clif::Type {
        clif_type(self.dtype)
    }

    fn zero(&self, b: &mut FunctionBuilder) -> clif::Value {
        float_const(b, self.dtype, 0.0)
    }

    /// One output's run of `n` elements as vectors of `lanes`: `ptrs` are
    /// the tile's walkers (`tile`, run chunk by chunk before the sum's
    /// code, `emit::tiled_pairs`), the reduction's walkers, then the
    /// output; `steps` their byte steps per element (the output's 0).
    pub(super) fn emit_vector_run(
        &self,
        b: &mut FunctionBuilder,
        ptrs: &[clif::Value],
        steps: &[i64],
        n: usize,
        lanes: usize,
        tile: Option<&(FusedLoop, Vec<clif::Value>)>,
    ) {
        let unit = self.unit.min(n);
        let (full, rest) = (n / unit, n % unit);
        let out = *ptrs.last().expect("the output pointer");
        let add_unit = |b: &mut FunctionBuilder, ptrs: &[clif::Value], len: usize| {
            let sum = self.emit_vector_unit(b, ptrs, steps, len, lanes, tile);
            let acc = b.ins().load(self.ty(), MemFlagsData::trusted(), out, 0);
            let acc = b.ins().fadd(acc, sum);
            b.ins().store(MemFlagsData::trusted(), acc, out, 0);
        };
        let unit_steps: Vec<i64> = steps.iter().map(|&s| s * unit as i64).collect();
        emit_loop(b, full, ptrs, &unit_steps, &[], &mut |b, ptrs, _| {
            add_unit(b, ptrs, unit);
            vec![]
        });
        if rest > 0 {
            let tail = advance(b, ptrs, steps, full * unit);
            add_unit(b, &tail, rest);
        }
    }

    /// The sum of one unit of `len` elements (see the module doc).
    fn emit_vector_unit(
        &self,
        b: &mut FunctionBuilder,
        ptrs: &[clif::Value],
        steps: &[i64],
        len: usize,
        lanes: usize,
        tile: Option<&(FusedLoop, Vec<clif::Value>)>,
    ) -> clif::Value {
        if let Some(kernel) = self.kernel {
            return self.emit_kernel_unit(b, kernel, ptrs, steps, len, tile);
        }
        let l = self.partials();
        let n_acc = l / lanes;
        let vector_ty = self.ty().by(lanes as u32).expect("16-byte vectors");
        let zero = self.zero(b);
        let zero_vector = b.ins().splat(vector_ty, zero);
        let accs = vec![zero_vector; n_acc];
        let n_tile = tile.map_or(0, |(_, bases)| bases.len());
        let walkers = &ptrs[n_tile..n_tile + self.n_walk];
        let walker_steps = &steps[n_tile..n_tile + self.n_walk];
        // The tree on groups of L elements from `walkers`, `count` of them.
        let accumulate = |b: &mut FunctionBuilder, walkers: &[clif::Value], groups: usize, accs: &[clif::Value]| {
            if groups == 0 {
                return accs.to_vec();
            }
            let offsets: Vec<Vec<i64>> =
                (0..n_acc).map(|a| walker_steps.iter().map(|&s| s * (a * lanes) as i64).collect()).collect();
            let trees: Vec<Tree> =
                offsets.iter().map(|o| Tree { lanes, inner_steps: walker_steps, offsets: o, ..self.tree }).collect();
            let group_steps: Vec<i64> = walker_steps.iter().map(|&s| s * l as i64).collect();
            emit_loop(b, groups, walkers, &group_steps, accs, &mut |b, walkers, accs| {
                let values: Vec<clif::Value> = trees.iter().map(|t| t.eval_with(b, walkers, self.siblings)).collect();
                accs.iter().zip(values).map(|(&acc, v)| b.ins().fadd(acc, v)).collect()
            })
        };
        let (func, sched) = (self.tree.func, self.tree.sched);
        let accs = match tile {
            // Chunk by chunk: the tile's row code and routine, then the
            // sum's code on the same elements (L divides the chunk).
            Some((fused, _)) => emit_chunks(b, ptrs, steps, len, WIDE_CHUNK, &accs, &mut |b, ptrs, count, accs| {
                fused.row(func, sched, b, &ptrs[..n_tile], count);
                accumulate(b, &ptrs[n_tile..n_tile + self.n_walk], count / l, accs)
            }),
            None => accumulate(b, walkers, len / l, &accs),
        };
        // Partial j is lane j % lanes of accumulator j / lanes.
        let mut partials: Vec<clif::Value> =
            (0..l).map(|j| b.ins().extractlane(accs[j / lanes], (j % lanes) as u8)).collect();
        let done = len - len % l;
        if done < len {
            let tail = advance(b, walkers, walker_steps, done);
            for (t, partial) in partials.iter_mut().enumerate().take(len - done) {
                let offsets: Vec<i64> = walker_steps.iter().map(|&s| s * t as i64).collect();
                let tree = Tree { lanes: 1, inner_steps: walker_steps, offsets: &offsets, ..self.tree };
                let value = tree.eval_with(b, &tail, self.siblings);
                *partial = b.ins().fadd(*partial, value);
            }
        }
        halve(b, partials)
    }

    /// `emit_vector_unit` with the wide kernel: the partials in a stack slot
    /// (one 512-bit vector), the kernel called on the unit (or chunk by
    /// chunk, after the tile's row). Each call starts at a multiple of 16
    /// elements of the unit, so element k still lands in lane k % 16.
    fn emit_kernel_unit(
        &self,
        b: &mut FunctionBuilder,
        kernel: FuncRef,
        ptrs: &[clif::Value],
        steps: &[i64],
        len: usize,
        tile: Option<&(FusedLoop, Vec<clif::Value>)>,
    ) -> clif::Value {
        let l = self.partials();
        let size = self.dtype.size_bytes();
        // (The kernel reads and writes it unaligned: 4-byte alignment is enough.)
        let slot = b.create_sized_stack_slot(clif::StackSlotData::new(
            clif::StackSlotKind::ExplicitSlot,
            (l * size) as u32,
            2,
        ));
        let partials = b.ins().stack_addr(PTR, slot, 0);
        let zero = self.zero(b);
        for j in 0..l {
            b.ins().store(MemFlagsData::trusted(), zero, partials, (j * size) as i32);
        }
        let n_tile = tile.map_or(0, |(_, bases)| bases.len());
        let (func, sched) = (self.tree.func, self.tree.sched);
        match tile {
            _ if self.kernel_covers_tile => {
                call_wide_kernel(b, kernel, &ptrs[..n_tile + self.n_walk], len, Some(partials));
            }
            Some((fused, _)) => {
                emit_chunks(b, ptrs, steps, len, WIDE_CHUNK, &[], &mut |b, ptrs, count, _| {
                    fused.row(func, sched, b, &ptrs[..n_tile], count);
                    call_wide_kernel(b, kernel, &ptrs[n_tile..n_tile + self.n_walk], count, Some(partials));
                    vec![]
                });
            }
            None => call_wide_kernel(b, kernel, &ptrs[..self.n_walk], len, Some(partials)),
        }
        let values: Vec<clif::Value> =
            (0..l).map(|j| b.ins().load(self.ty(), MemFlagsData::trusted(), partials, (j * size) as i32)).collect();
        halve(b, values)
    }

    /// One output's run of `n` elements in scalar code, walked by the loop
    /// nest `dims`/`strides` (its elements in row-major order): the
    /// partials in a stack slot (see the module doc). `ptrs`: the walkers,
    /// then the output.
    pub(super) fn emit_scalar_run(
        &self,
        b: &mut FunctionBuilder,
        ptrs: &[clif::Value],
        dims: &[usize],
        strides: &[Vec<i64>],
        slot: clif::Value,
    ) {
        let l = self.partials();
        let size = self.dtype.size_bytes() as i64;
        let n: usize = dims.iter().product();
        let unit = self.unit.min(n);
        let out = ptrs[self.n_walk];
        let flags = MemFlagsData::trusted();
        let zero = self.zero(b);
        let clear = |b: &mut FunctionBuilder| {
            for j in 0..l {
                b.ins().store(flags, zero, slot, (j as i64 * size) as i32);
            }
        };
        // The unit's sum into the output, and the partials cleared.
        let flush = |b: &mut FunctionBuilder| {
            let partials: Vec<clif::Value> =
                (0..l).map(|j| b.ins().load(self.ty(), flags, slot, (j as i64 * size) as i32)).collect();
            let sum = halve(b, partials);
            let acc = b.ins().load(self.ty(), flags, out, 0);
            let acc = b.ins().fadd(acc, sum);
            b.ins().store(flags, acc, out, 0);
            clear(b);
        };
        clear(b);
        let start = b.ins().iconst(PTR, 0);
        let tree = Tree { lanes: 1, inner_steps: &[], offsets: &[], ..self.tree };
        emit_nest(b, dims, strides, &ptrs[..self.n_walk], &[start], &mut |b, walkers, carried| {
            let k = carried[0];
            let value = tree.eval_with(b, walkers, self.siblings);
            let lane = b.ins().band_imm_s(k, (l - 1) as i64);
            let offset = b.ins().imul_imm_s(lane, size);
            let at = b.ins().iadd(slot, offset);
            let partial = b.ins().load(self.ty(), flags, at, 0);
            let partial = b.ins().fadd(partial, value);
            b.ins().store(flags, partial, at, 0);
            let next = b.ins().iadd_imm_s(k, 1);
            let unit_done = b.ins().icmp_imm_s(IntCC::Equal, next, unit as i64);
            let flush_block = b.create_block();
            let join = b.create_block();
            let next_k = b.append_block_param(join, PTR);
            b.ins().brif(unit_done, flush_block, &[], join, &[BlockArg::from(next)]);
            b.switch_to_block(flush_block);
            flush(b);
            let restart = b.ins().iconst(PTR, 0);
            b.ins().jump(join, &[BlockArg::from(restart)]);
            b.switch_to_block(join);
            vec![next_k]
        });
        if !n.is_multiple_of(unit) {
            flush(b);
        }
    }
}

/// Partials combined by halving (`sum_order`): `p[j] += p[j + h]` for
/// `h` = len/2, len/4, ..., 1; returns `p[0]`.
fn halve(b: &mut FunctionBuilder, mut partials: Vec<clif::Value>) -> clif::Value {
    let mut h = partials.len() / 2;
    while h > 0 {
        for j in 0..h {
            partials[j] = b.ins().fadd(partials[j], partials[j + h]);
        }
        h /= 2;
    }
    partials[0]
}

/// The stack slot for the scalar fallback's partials of `dtype`.
pub(super) fn partials_slot(b: &mut FunctionBuilder, dtype: DType) -> clif::Value {
    let bytes = sum_order::lanes(dtype) * dtype.size_bytes();
    let slot = b.create_sized_stack_slot(clif::StackSlotData::new(clif::StackSlotKind::ExplicitSlot, bytes as u32, 4));
    b.ins().stack_addr(PTR, slot, 0)
}
