//! Host routines for the windowed ops: `Conv2d` as Winograd's F(2x2, 3x3)
//! where it is a 3x3, stride-1 conv of >= 8 channels each side (16 GEMMs
//! over blocks of images between the `kernels::WinogradConv` transforms),
//! else as im2col + one `gemm` call
//! per (image, group) (when the kernel's rows are longer than the output's,
//! as in weight gradients: the transposed im2col layout, and one GEMM per
//! group with every image's few pixels as its columns; when the output has
//! more pixels than the input, as in data gradients: the scatter form, one
//! GEMM of the kernel taps with the unpadded input and a tap sum per output
//! pixel, `kernels::col2im_sum`), `ReduceWindowSum`/`ReduceWindowMax`
//! and `SelectAndScatter` (by blocks of the leading dim on the host
//! kernels' threads when the windows never cross it, as in pooling); the
//! hot loops are in the `kernels` crate (built optimized even in the dev
//! profile). The window reductions visit elements in the interpreter's order
//! (`interp_window::reduce_window_into`), so they agree bitwise with
//! `ir::interp` (tested). The im2col matrices, transforms and accumulators
//! live in scratch buffers kept between calls (`scratch::Scratch`).
//!
//! Consumes the JIT's buffer pointers plus a descriptor: an `i64` array of
//! the op's shapes and attributes that the compiled code stores in a stack
//! slot right before the call (`descriptor` builds it, the routine reads it
//! back with `ConvDesc::read` / `window_desc`). Produces the filled output
//! buffer. One call per instruction, as for matmul.
//!
//! The conv's summation order is the `gemm` crate's, not the interpreter's,
//! and im2col multiplies padding zeros into the sum (so an infinite kernel
//! element gives NaN where the interpreter skips the term): tested against
//! the interpreter with matmul's tolerance (`codegen::tests`).

use super::scratch::Scratch;

use super::schedule::{swapped_conv_operands, Schedule};
use crate::ir::{Func, Op};

/// The descriptor of instruction `index` (a `Conv2d` or a window reduction).
pub(super) fn descriptor(func: &Func, sched: &Schedule, index: usize) -> Vec<i64> {
    let inst = &func.insts[index];
    let arg = |k: usize| func.ty(inst.args[k]).shape.0.clone();
    let out = inst.ty.shape.0.clone();
    let mut d: Vec<usize> = Vec::new();
    match &inst.op {
        Op::Conv2d(a) => {
            let (l, r) = (arg(0), arg(1));
            d.extend([l[0], l[1], l[2], l[3], r[0], r[1], r[2], r[3], out[2], out[3]]);
            d.extend(a.stride.iter().chain(&a.low).chain(&a.lhs_dilation).chain(&a.rhs_dilation));
            d.push(a.groups);
            d.push(swapped_conv_operands(func, sched, index) as usize);
        }
        Op::ReduceWindowSum(w) | Op::ReduceWindowMax(w) => {
            d.push(out.len());
            d.extend(arg(0).iter().chain(&out).chain(&w.size).chain(&w.stride).chain(&w.low).chain(&w.high));
        }
        // The window result dims are the cotangent's.
        Op::SelectAndScatter(w) => {
            d.push(out.len());
            d.extend(arg(0).iter().chain(&arg(1)).chain(&w.size).chain(&w.stride).chain(&w.low).chain(&w.high));
        }
        other => unreachable!("{other:?} has no descriptor"),
    }
    d.into_iter().map(|v| v as i64).collect()
}

/// The depth (channels x taps) of each GEMM of a swapped weight gradient:
/// deep enough that the products run near the microkernel's speed, small
/// enough that a block's patches stay in the caches.
const SWAPPED_BLOCK_DEPTH: usize = 512;

/// The groups of blocks of a swapped weight gradient, each with its own
/// accumulator: a fixed count (not the thread count), so that the sums
/// do not depend on the threads; 8 keeps 16 threads half busy and adds
/// 7 small sums.
const SWAPPED_GROUPS: usize = 8;

/// A `Conv2d` descriptor, read back.
struct ConvDesc {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    cg: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    low: [usize; 2],
    lhs_dilation: [usize; 2],
    rhs_dilation: [usize; 2],
    groups: usize,
    /// Both operands are stored with their first two dims swapped
    /// (`schedule::swapped_conv_operands`): `[c, n, h, w]` and `[cg, o, kh, kw]`.
    swapped: bool,
}

impl ConvDesc {
    /// Safety: `desc` points to a descriptor built by `descriptor` for a conv.
    unsafe fn read(desc: *const i64) -> ConvDesc {
        let v: [usize; 20] = std::array::from_fn(|i| unsafe { *desc.add(i) } as usize);
        ConvDesc {
            n: v[0],
            c: v[1],
            h: v[2],
            w: v[3],
            o: v[4],
            cg: v[5],
            kh: v[6],
            kw: v[7],
            oh: v[8],
            ow: v[9],
            stride: [v[10], v[11]],
            low: [v[12], v[13]],
            lhs_dilation: [v[14], v[15]],
            rhs_dilation: [v[16], v[17]],
            groups: v[18],
            swapped: v[19] != 0,
        }
    }

    /// For kernel tap `k` along spatial dim `d` (input size `size`, output
    /// size `out`), the input index each output position reads, or -1 where
    /// it falls in padding or between dilated elements.
    fn taps(&self, d: usize, k: usize, size: usize, out: usize) -> Vec<isize> {
        (0..out)
            .map(|o| {
                let pos = o * self.stride[d] + k * self.rhs_dilation[d];
                match pos.checked_sub(self.low[d]) {
                    Some(p) if p.is_multiple_of(self.lhs_dilation[d]) && p / self.lhs_dilation[d] < size => {
                        (p / self.lhs_dilation[d]) as isize
                    }
                    _ => -1,
                }
            })
            .collect()
    }

    /// A 1x1 kernel over the plain input: the input block is already the
    /// im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.low == [0, 0]
            && self.lhs_dilation == [1, 1]
            && (self.oh, self.ow) == (self.h, self.w)
    }
}

/// Input and output channels below which a 3x3 conv stays direct: the
/// Winograd form's 16 products have the channels as their sizes, and its
/// transforms cost per channel what a few im2col columns do.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Tiles per block of the Winograd form (whole images, at least one): a
/// block's transforms, 16 x (c + o) x tiles values (W2's conv2: 660 KB),
/// stay in L2 between the transforms and the products.
const WINOGRAD_BLOCK_TILES: usize = 128;

impl ConvDesc {
    /// This conv as Winograd's F(2x2, 3x3) (`kernels::WinogradConv`):
    /// a 3x3 kernel, stride 1, no dilation, one group, operands in their
    /// own layout, and enough channels for the products to pay. 2.25x
    /// fewer multiplications than the direct form (W2's conv2 and its data
    /// gradient).
    fn winograd_form(&self) -> Option<::kernels::WinogradConv> {
        let plain = (self.kh, self.kw) == (3, 3)
            && self.stride == [1, 1]
            && self.lhs_dilation == [1, 1]
            && self.rhs_dilation == [1, 1]
            && self.groups == 1
            && !self.swapped;
        let worth = self.c >= WINOGRAD_MIN_CHANNELS && self.o >= WINOGRAD_MIN_CHANNELS;
        (plain && worth).then_some(::kernels::WinogradConv {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            oh: self.oh,
            ow: self.ow,
            top: self.low[0],
            left: self.low[1],
        })
    }
}

/// The GEMM of an element type: `matmul_f32` / `matmul_f64`.
type Matmul<T> = unsafe fn(*const T, *const T, *mut T, usize, usize, usize, usize, gemm::Parallelism);

/// Runs a conv in Winograd's form: the kernel transformed once (in the
/// call's scratch), then per block of whole images (on the host kernels'
/// threads when worth it, each in its thread's unit scratch) the
/// input transform, the 16 products `M[xi] = U[xi] x V[xi]`, and the output
/// transform into the block's images. Each output's arithmetic is the same
/// whatever the blocks and threads.
///
/// Safety: `matmul` computes `c[m, n] = a[m, k] x b[k, n]` for valid
/// row-major buffers (`trans` 0).
unsafe fn winograd_conv<T: ::kernels::Elem + Default + Send + Sync + 'static>(
    wino: ::kernels::WinogradConv,
    x: &[T],
    kernel: &[T],
    out: &mut [T],
    scratch: &Scratch<T>,
    matmul: Matmul<T>,
) {
    use ::kernels::TILE_POSITIONS;
    use rayon::prelude::*;
    let (c, o) = (wino.c, wino.o);
    let per_image = wino.tiles_per_image();
    // Blocks of whole images, at least one per thread where there are
    // enough images (the products' sums do not depend on the block).
    let threads = super::threads::threads();
    let images = (WINOGRAD_BLOCK_TILES / per_image.max(1)).clamp(1, wino.n.div_ceil(threads).max(1));
    let image_len = o * wino.oh * wino.ow;
    // A whole block's scratch, whatever this one's images.
    let block_len =
        TILE_POSITIONS * (c + o) * images * per_image + wino.input_work_len().max(wino.output_work_len(images));
    scratch.with_call(TILE_POSITIONS * o * c, |u| {
        wino.transform_kernel(kernel, u);
        let u = &*u;
        scratch.reserve_units(block_len);
        let block = |first: usize, out_block: &mut [T]| {
            let count = out_block.len() / image_len;
            let tiles = count * per_image;
            scratch.with_unit(block_len, |work| {
                let (v_len, m_len) = (TILE_POSITIONS * c * tiles, TILE_POSITIONS * o * tiles);
                let (v, rest) = work.split_at_mut(v_len);
                let (m, work) = rest.split_at_mut(m_len);
                wino.transform_input(x, first, count, v, work);
                for xi in 0..TILE_POSITIONS {
                    // m[xi] = u[xi] (o x c) x v[xi] (c x tiles).
                    unsafe {
                        matmul(
                            u[xi * o * c..].as_ptr(),
                            v[xi * c * tiles..].as_ptr(),
                            m[xi * o * tiles..].as_mut_ptr(),
                            o,
                            c,
                            tiles,
                            0,
                            gemm::Parallelism::None,
                        )
                    };
                }
                wino.transform_output(m, count, out_block, work);
            });
        };
        let blocks = wino.n.div_ceil(images);
        let flops_each = 2 * TILE_POSITIONS * o * c * images * per_image;
        if super::threads::split_items(blocks, flops_each) {
            out.par_chunks_mut(images * image_len).enumerate().for_each(|(k, chunk)| block(k * images, chunk));
        } else {
            out.chunks_mut(images * image_len).enumerate().for_each(|(k, chunk)| block(k * images, chunk));
        }
    });
}

/// A conv's tap tables: for each kernel row (column) the input row
/// (column) each output row (column) reads (`ConvDesc::taps`), and the same
/// transposed (per output row, per tap), as the swapped form reads them.
struct TapTables {
    ys: Vec<Vec<isize>>,
    xs: Vec<Vec<isize>>,
    ys_t: Vec<Vec<isize>>,
    xs_t: Vec<Vec<isize>>,
}

/// The tap tables of every conv descriptor seen, made once each: a step
/// calls the same convs again, and building the tables was a few hundred
/// small allocations per W2 step.
static TAP_TABLES: std::sync::Mutex<Vec<([i64; 20], std::sync::Arc<TapTables>)>> = std::sync::Mutex::new(Vec::new());

/// `d`'s tap tables, from the cache.
///
/// Safety: `desc` is `d`'s descriptor (20 values).
unsafe fn tap_tables(d: &ConvDesc, desc: *const i64) -> std::sync::Arc<TapTables> {
    let key: [i64; 20] = std::array::from_fn(|i| unsafe { *desc.add(i) });
    let mut cache = TAP_TABLES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, tables)) = cache.iter().find(|(k, _)| *k == key) {
        return std::sync::Arc::clone(tables);
    }
    let ys: Vec<Vec<isize>> = (0..d.kh).map(|k| d.taps(0, k, d.h, d.oh)).collect();
    let xs: Vec<Vec<isize>> = (0..d.kw).map(|k| d.taps(1, k, d.w, d.ow)).collect();
    let ys_t = (0..d.oh).map(|y| ys.iter().map(|t| t[y]).collect()).collect();
    let xs_t = (0..d.ow).map(|x| xs.iter().map(|t| t[x]).collect()).collect();
    let tables = std::sync::Arc::new(TapTables { ys, xs, ys_t, xs_t });
    cache.push((key, std::sync::Arc::clone(&tables)));
    tables
}

/// The scratch of the f32 and f64 convs.
static SCRATCH_F32: Scratch<f32> = Scratch::new();
static SCRATCH_F64: Scratch<f64> = Scratch::new();

/// Runs `image(b, out_b)` for each image `b` and its block of the output
/// (`block` elements each), over the host kernels' threads when the work is
/// worth it (`threads::split_items`). Each image's arithmetic is the same
/// either way, so results do not depend on the thread count.
fn for_each_image<T: Send>(out: &mut [T], block: usize, flops_each: usize, image: impl Fn(usize, &mut [T]) + Sync) {
    use rayon::prelude::*;
    let images = out.len() / block.max(1);
    if super::threads::split_items(images, flops_each) {
        out.par_chunks_exact_mut(block).enumerate().for_each(|(b, o)| image(b, o));
    } else {
        out.chunks_exact_mut(block).enumerate().for_each(|(b, o)| image(b, o));
    }
}

macro_rules! conv2d_routine {
    ($name:ident, $body:ident, $t:ty, $matmul:path, $scratch:ident) => {
        /// Safety: pointers to live, distinct arena buffers of the conv's
        /// operand and result sizes; `desc` from `descriptor`. Runs on the
        /// host kernels' threads (`threads::parallel`).
        pub(super) extern "C" fn $name(lhs: *const $t, rhs: *const $t, out: *mut $t, desc: *const i64) {
            // Addresses cross to the pool's thread as integers.
            let (lhs, rhs, out, desc) = (lhs as usize, rhs as usize, out as usize, desc as usize);
            super::threads::parallel(move || unsafe {
                $body(lhs as *const $t, rhs as *const $t, out as *mut $t, desc as *const i64)
            })
        }

        /// `$name` on the current thread (which may be a pool thread).
        ///
        /// Safety: as `$name`.
        unsafe fn $body(lhs: *const $t, rhs: *const $t, out: *mut $t, desc: *const i64) {
            let d = unsafe { ConvDesc::read(desc) };
            let pixels = d.oh * d.ow;
            let rows = d.cg * d.kh * d.kw;
            let og = d.o / d.groups;
            if d.n * d.o * pixels == 0 {
                return;
            }
            let x = unsafe { std::slice::from_raw_parts(lhs, d.n * d.c * d.h * d.w) };
            let out = unsafe { std::slice::from_raw_parts_mut(out, d.n * d.o * pixels) };
            if let Some(wino) = d.winograd_form() {
                let kernel = unsafe { std::slice::from_raw_parts(rhs, d.o * d.c * 9) };
                // Safety: `$matmul` is the GEMM of this element type.
                unsafe { winograd_conv(wino, x, kernel, out, &$scratch, $matmul) };
                return;
            }
            let pointwise = d.is_pointwise();
            let tables = unsafe { tap_tables(&d, desc) };
            let (ys, xs) = (&tables.ys, &tables.xs);
            if d.swapped {
                // A weight gradient whose operands are stored as
                // `x[c][n][h][w]` (each "channel" c an image) and
                // `k[c][o][kh][kw]` (each a cotangent): out[n, o, p] is a
                // sum over c and the taps t of k[c][o, t] times image c's
                // patches[(n, p), t]. As GEMMs of depth (c, t) over blocks
                // of channels: `a[(n, p), (c, t)]` (each channel's im2col,
                // with the tap tables exchanged, written into its columns),
                // `b[(c, t), o]` (the kernels repacked), their product
                // summed block after block into `acc[(n, p), o]`. Few large
                // products on our GEMM driver instead of one small
                // accumulating product per channel (W2's conv2: 128 of
                // depth 121, each packed and synchronized on its own).
                let taps = d.kh * d.kw;
                let columns = d.n * pixels;
                if d.c == 0 || taps == 0 {
                    out.fill(0.0);
                    return;
                }
                let (ys_t, xs_t) = (&tables.ys_t, &tables.xs_t);
                let kernel = unsafe { std::slice::from_raw_parts(rhs, d.c * d.o * taps) };
                let block = (SWAPPED_BLOCK_DEPTH / taps).clamp(1, d.c);
                let depth = block * taps;
                let blocks = d.c.div_ceil(block);
                // The blocks in a fixed number of groups, each summed into
                // its own accumulator (in parallel when worth it), the
                // groups then added in order: the same sums whatever the
                // thread count, and no serial part between the GEMMs (W2's
                // conv1 gradient was 128 one-image GEMMs too small to split).
                // Groups run in parallel (their GEMMs then serial: a unit
                // does no parallel work, `scratch`) where each thread gets
                // one; else one after another, each GEMM split over the
                // threads (a small batch, or more threads than groups).
                let groups = blocks.min(SWAPPED_GROUPS);
                let acc_len = columns * d.o;
                let flops_each = 2 * acc_len * d.c.div_ceil(groups) * taps;
                let threads = super::threads::threads();
                let parallel_groups = groups >= threads && super::threads::split_items(groups, flops_each);
                let gemm_parallelism =
                    if parallel_groups { gemm::Parallelism::None } else { super::threads::gemm_parallelism() };
                let unit_len = columns * depth + d.o * depth + acc_len;
                let group = |g: usize, acc: &mut [$t]| {
                    let (first, end) = (blocks * g / groups, blocks * (g + 1) / groups);
                    $scratch.with_unit(unit_len, |scratch| {
                        let (a, rest) = scratch.split_at_mut(columns * depth);
                        let (b_t, product) = rest.split_at_mut(d.o * depth);
                        let product = &mut product[..acc_len];
                        for k in first..end {
                            let (c0, cb) = (k * block, block.min(d.c - k * block));
                            let kb = cb * taps;
                            for c in c0..c0 + cb {
                                // a[(n, y, x), (c, ky, kx)] = image c's n under that tap, or 0.
                                let image = &x[c * d.n * d.h * d.w..][..d.n * d.h * d.w];
                                ::kernels::im2col_strided(image, d.h, d.w, ys_t, xs_t, &mut a[(c - c0) * taps..], kb);
                            }
                            // b_t[o, (c, t)] = k[c][o][t]: b stored transposed,
                            // which for one channel is k[c] itself (W2's conv1:
                            // 128 blocks of one image, 11 MB of copies).
                            let b_t: &[$t] = if cb == 1 {
                                &kernel[c0 * d.o * taps..][..d.o * taps]
                            } else {
                                for o in 0..d.o {
                                    for c in c0..c0 + cb {
                                        b_t[o * kb + (c - c0) * taps..][..taps]
                                            .copy_from_slice(&kernel[(c * d.o + o) * taps..][..taps]);
                                    }
                                }
                                b_t
                            };
                            let target = if k == first { acc.as_mut_ptr() } else { product.as_mut_ptr() };
                            unsafe {
                                $matmul(
                                    a.as_ptr(),
                                    b_t.as_ptr(),
                                    target,
                                    columns,
                                    kb,
                                    d.o,
                                    super::kernels::TRANS_B,
                                    gemm_parallelism,
                                )
                            };
                            if k > first {
                                for (s, &v) in acc.iter_mut().zip(product.iter()) {
                                    *s += v;
                                }
                            }
                        }
                    });
                };
                $scratch.with_call(groups * acc_len, |accs| {
                    $scratch.reserve_units(unit_len);
                    if parallel_groups {
                        use rayon::prelude::*;
                        accs.par_chunks_exact_mut(acc_len).enumerate().for_each(|(g, acc)| group(g, acc));
                    } else {
                        accs.chunks_exact_mut(acc_len).enumerate().for_each(|(g, acc)| group(g, acc));
                    }
                    let (acc, later) = accs.split_at_mut(acc_len);
                    for other in later.chunks_exact(acc_len) {
                        for (s, &v) in acc.iter_mut().zip(other) {
                            *s += v;
                        }
                    }
                    // out[n, o, p] = acc[(n, p), o].
                    for n in 0..d.n {
                        for o in 0..d.o {
                            let dst = &mut out[(n * d.o + o) * pixels..][..pixels];
                            for (p, v) in dst.iter_mut().enumerate() {
                                *v = acc[(n * pixels + p) * d.o + o];
                            }
                        }
                    }
                });
                return;
            }
            let image = |b: usize, g: usize| &x[(b * d.c + g * d.cg) * d.h * d.w..][..d.cg * d.h * d.w];
            // More output pixels than input pixels (a data gradient: the
            // cotangent padded by the kernel size, or dilated by a stride):
            // the scatter form multiplies each kernel tap with the input
            // once, `t[(o, tap), input pixel]` (one GEMM per image and
            // group, the kernel's rows reordered to `(o, tap)` once), and
            // each output pixel sums its taps' entries (`col2im_sum`).
            // Fewer products than im2col's (which multiplies the padding's
            // zeros) and no im2col matrix, which for W2's data gradient was
            // 50 MB per step.
            if !pointwise && d.h * d.w < pixels && rows > 0 {
                let (taps, hw) = (d.kh * d.kw, d.h * d.w);
                $scratch.with_call(d.groups * og * taps * d.cg, |reordered| {
                    let kernel = unsafe { std::slice::from_raw_parts(rhs, d.o * rows) };
                    // reordered[g][(o, tap), ci] = kernel[g * og + o, ci, tap].
                    for (go, block) in reordered.chunks_exact_mut(taps * d.cg).enumerate() {
                        for (tap, row) in block.chunks_exact_mut(d.cg).enumerate() {
                            for (ci, v) in row.iter_mut().enumerate() {
                                *v = kernel[(go * d.cg + ci) * taps + tap];
                            }
                        }
                    }
                    let reordered = &*reordered;
                    $scratch.reserve_units(og * taps * hw);
                    for_each_image(out, d.o * pixels, 2 * d.o * taps * d.cg * hw, |b, out_b| {
                        $scratch.with_unit(og * taps * hw, |t| {
                            for g in 0..d.groups {
                                let kernel_g = &reordered[g * og * taps * d.cg..];
                                // t[(o, tap), pixel] = reordered[g][(o, tap), cg] x image[cg, pixel].
                                unsafe {
                                    $matmul(
                                        kernel_g.as_ptr(),
                                        image(b, g).as_ptr(),
                                        t.as_mut_ptr(),
                                        og * taps,
                                        d.cg,
                                        hw,
                                        0,
                                        gemm::Parallelism::None,
                                    )
                                };
                                let dst = &mut out_b[g * og * pixels..][..og * pixels];
                                ::kernels::col2im_sum(t, d.h, d.w, &ys, &xs, dst);
                            }
                        });
                    });
                });
                return;
            }
            // Kernel rows longer than output rows (weight gradients): the
            // transposed layout copies longer contiguous runs, and all
            // images go into one GEMM (their few pixels side by side as
            // columns) instead of one GEMM of a few columns per image.
            if !pointwise && d.ow < d.kw && rows > 0 {
                let columns = d.n * pixels;
                $scratch.with_call(columns * rows + og * columns, |scratch| {
                    let (col_t, folded) = scratch.split_at_mut(columns * rows);
                    for g in 0..d.groups {
                        // col_t[(b, y, x), (ci, ky, kx)] = image b's element under that tap, or 0.
                        for (b, dst) in col_t.chunks_exact_mut(pixels * rows).enumerate() {
                            ::kernels::im2col_transposed(image(b, g), d.h, d.w, &ys, &xs, dst);
                        }
                        let kernel = unsafe { rhs.add(g * og * rows) };
                        // folded[og, (b, pixel)] = kernel[og, rows] x col_t^T (`col_t`
                        // holds the right operand transposed).
                        unsafe {
                            $matmul(
                                kernel,
                                col_t.as_ptr(),
                                folded.as_mut_ptr(),
                                og,
                                rows,
                                columns,
                                super::kernels::TRANS_B,
                                super::threads::gemm_parallelism(),
                            )
                        };
                        // out[b, g * og + o, pixel] = folded[o, (b, pixel)].
                        for (o, row) in folded.chunks_exact(columns).enumerate() {
                            for (b, block) in row.chunks_exact(pixels).enumerate() {
                                out[(b * d.o + g * og + o) * pixels..][..pixels].copy_from_slice(block);
                            }
                        }
                    }
                });
                return;
            }
            let kernel = unsafe { std::slice::from_raw_parts(rhs, d.o * rows) };
            let col_len = if pointwise { 0 } else { rows * pixels };
            $scratch.reserve_units(col_len);
            for_each_image(out, d.o * pixels, 2 * d.o * rows * pixels, |b, out_b| {
                $scratch.with_unit(col_len, |col| {
                    for g in 0..d.groups {
                        let image = image(b, g);
                        let dst = out_b[g * og * pixels..][..og * pixels].as_mut_ptr();
                        // col[(ci, ky, kx), (y, x)] = input element under that tap, or 0.
                        if !pointwise {
                            ::kernels::im2col(image, d.h, d.w, &ys, &xs, col);
                        }
                        let cols: *const $t = if pointwise { image.as_ptr() } else { col.as_ptr() };
                        // dst[og, pixels] = kernel[og, rows] x cols[rows, pixels], row-major.
                        unsafe {
                            $matmul(
                                kernel[g * og * rows..].as_ptr(),
                                cols,
                                dst,
                                og,
                                rows,
                                pixels,
                                0,
                                gemm::Parallelism::None,
                            )
                        };
                    }
                });
            });
        }
    };
}

conv2d_routine!(jl_conv2d_f32, conv2d_f32, f32, super::kernels::matmul_f32, SCRATCH_F32);
conv2d_routine!(jl_conv2d_f64, conv2d_f64, f64, super::kernels::matmul_f64, SCRATCH_F64);

/// A window descriptor, read back: operand dims, result dims, window size,
/// stride, low padding (the high padding is implied by the result dims).
///
/// Safety: `desc` points to a descriptor built by `descriptor` for a window op.
unsafe fn window_desc(desc: *const i64) -> [Dims; 5] {
    let rank = unsafe { *desc } as usize;
    let v = unsafe { std::slice::from_raw_parts(desc.add(1), 6 * rank) };
    let part = |k: usize| v[k * rank..(k + 1) * rank].iter().map(|&x| x as usize).collect::<Dims>();
    [part(0), part(1), part(2), part(3), part(4)]
}

/// A window op's dims: on the stack up to rank 8 (a step calls these
/// routines every time; no allocation per call), else on the heap.
type Dims = smallvec::SmallVec<[usize; 8]>;

/// Runs `block(Some((first, count)))` over the leading dim's indices in
/// blocks, on the host kernels' threads, when the windows never cross that
/// dim (size and stride 1, no padding, as many result as operand indices:
/// pooling over `[N, C, H, W]`) and the work is worth it; else
/// `block(None)` once, for the whole arrays. Each block's outputs depend
/// only on its own indices, computed as in one call: results do not depend
/// on the thread count.
fn for_each_leading_block(
    dims: &[usize],
    result_dims: &[usize],
    size: &[usize],
    stride: &[usize],
    low: &[usize],
    work: usize,
    block: impl Fn(Option<(usize, usize)>) + Sync,
) {
    let n = dims.first().copied().unwrap_or(1);
    let independent =
        dims.len() > 1 && size[0] == 1 && stride[0] == 1 && low[0] == 0 && result_dims.first() == Some(&n);
    if !independent || !super::threads::split_items(n, work / n.max(1)) {
        return block(None);
    }
    super::threads::for_each_part(n, |p, parts| {
        let (first, end) = (n * p / parts, n * (p + 1) / parts);
        block(Some((first, end - first)))
    });
}

/// The dims of leading indices `first..first + count` of an array of
/// `dims` and the element range they hold (`None`: the whole array).
fn leading_block(dims: &[usize], part: Option<(usize, usize)>) -> (Dims, std::ops::Range<usize>) {
    let Some((first, count)) = part else { return (Dims::from_slice(dims), 0..dims.iter().product()) };
    let inner: usize = dims[1..].iter().product();
    let mut block = Dims::from_slice(dims);
    block[0] = count;
    (block, first * inner..(first + count) * inner)
}

macro_rules! window_routine {
    ($name:ident, $t:ty, $is_max:expr) => {
        /// Safety: pointers to live, distinct arena buffers of the operand's
        /// and the result's sizes (`_unused` is not read); `desc` from `descriptor`.
        pub(super) extern "C" fn $name(x: *const $t, _unused: *const $t, out: *mut $t, desc: *const i64) {
            let [dims, out_dims, size, stride, low] = unsafe { window_desc(desc) };
            // Addresses cross to the pool's threads as integers; blocks write disjoint outputs.
            let (x, out) = (x as usize, out as usize);
            let work = out_dims.iter().product::<usize>() * size.iter().product::<usize>();
            for_each_leading_block(&dims, &out_dims, &size, &stride, &low, work, |part| {
                let (in_dims, in_range) = leading_block(&dims, part);
                let (block_out_dims, out_range) = leading_block(&out_dims, part);
                let x = unsafe { std::slice::from_raw_parts((x as *const $t).add(in_range.start), in_range.len()) };
                let out =
                    unsafe { std::slice::from_raw_parts_mut((out as *mut $t).add(out_range.start), out_range.len()) };
                ::kernels::reduce_window(x, &in_dims, &size, &stride, &low, out, &block_out_dims, $is_max);
            });
        }
    };
}

window_routine!(jl_reduce_window_sum_f32, f32, false);
window_routine!(jl_reduce_window_sum_f64, f64, false);
window_routine!(jl_reduce_window_max_f32, f32, true);
window_routine!(jl_reduce_window_max_f64, f64, true);

macro_rules! select_and_scatter_routine {
    ($name:ident, $t:ty) => {
        /// Safety: pointers to live, distinct arena buffers of the operand's
        /// (`x`, `out`) and the cotangent's sizes; `desc` from `descriptor`.
        pub(super) extern "C" fn $name(x: *const $t, ct: *const $t, out: *mut $t, desc: *const i64) {
            let [dims, ct_dims, size, stride, low] = unsafe { window_desc(desc) };
            // Addresses cross to the pool's threads as integers; blocks write disjoint outputs.
            let (x, ct, out) = (x as usize, ct as usize, out as usize);
            let work = ct_dims.iter().product::<usize>() * size.iter().product::<usize>();
            for_each_leading_block(&dims, &ct_dims, &size, &stride, &low, work, |part| {
                let (block_dims, range) = leading_block(&dims, part);
                let (block_ct_dims, ct_range) = leading_block(&ct_dims, part);
                let x = unsafe { std::slice::from_raw_parts((x as *const $t).add(range.start), range.len()) };
                let ct = unsafe { std::slice::from_raw_parts((ct as *const $t).add(ct_range.start), ct_range.len()) };
                let out = unsafe { std::slice::from_raw_parts_mut((out as *mut $t).add(range.start), range.len()) };
                ::kernels::select_and_scatter(x, &block_dims, &size, &stride, &low, ct, &block_ct_dims, out);
            });
        }
    };
}

select_and_scatter_routine!(jl_select_and_scatter_f32, f32);
select_and_scatter_routine!(jl_select_and_scatter_f64, f64);
