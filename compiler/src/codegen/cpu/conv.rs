//! Host routines for the windowed ops: `Conv2d` as im2col + one `gemm` call
//! per (image, group), and `ReduceWindowSum`/`ReduceWindowMax` through the
//! interpreter's own loop (`interp_window::reduce_window_into`, so they agree
//! bitwise with `ir::interp`).
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

use crate::ir::interp_window::reduce_window_into;
use crate::ir::{Func, Op, Window};

/// The descriptor of instruction `index` (a `Conv2d` or a window reduction).
pub(super) fn descriptor(func: &Func, index: usize) -> Vec<i64> {
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
        }
        Op::ReduceWindowSum(w) | Op::ReduceWindowMax(w) => {
            d.push(out.len());
            d.extend(arg(0).iter().chain(&out).chain(&w.size).chain(&w.stride).chain(&w.low).chain(&w.high));
        }
        other => unreachable!("{other:?} has no descriptor"),
    }
    d.into_iter().map(|v| v as i64).collect()
}

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
}

impl ConvDesc {
    /// Safety: `desc` points to a descriptor built by `descriptor` for a conv.
    unsafe fn read(desc: *const i64) -> ConvDesc {
        let v: Vec<usize> = unsafe { std::slice::from_raw_parts(desc, 19) }.iter().map(|&x| x as usize).collect();
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

macro_rules! conv2d_routine {
    ($name:ident, $t:ty, $matmul:path) => {
        /// Safety: pointers to live, distinct arena buffers of the conv's
        /// operand and result sizes; `desc` from `descriptor`.
        pub(super) extern "C" fn $name(lhs: *const $t, rhs: *const $t, out: *mut $t, desc: *const i64) {
            let d = unsafe { ConvDesc::read(desc) };
            let pixels = d.oh * d.ow;
            let rows = d.cg * d.kh * d.kw;
            let og = d.o / d.groups;
            if d.n * d.o * pixels == 0 {
                return;
            }
            let x = unsafe { std::slice::from_raw_parts(lhs, d.n * d.c * d.h * d.w) };
            let out = unsafe { std::slice::from_raw_parts_mut(out, d.n * d.o * pixels) };
            let pointwise = d.is_pointwise();
            let ys: Vec<Vec<isize>> = (0..d.kh).map(|k| d.taps(0, k, d.h, d.oh)).collect();
            let xs: Vec<Vec<isize>> = (0..d.kw).map(|k| d.taps(1, k, d.w, d.ow)).collect();
            let mut col: Vec<$t> = vec![0.0; if pointwise { 0 } else { rows * pixels }];
            for b in 0..d.n {
                for g in 0..d.groups {
                    let image = &x[(b * d.c + g * d.cg) * d.h * d.w..][..d.cg * d.h * d.w];
                    // col[(ci, ky, kx), (y, x)] = input element under that tap, or 0.
                    if !pointwise {
                        let mut row = 0;
                        for ci in 0..d.cg {
                            let plane = &image[ci * d.h * d.w..][..d.h * d.w];
                            for ky in 0..d.kh {
                                for kx in 0..d.kw {
                                    let dst = &mut col[row * pixels..][..pixels];
                                    for (y, &iy) in ys[ky].iter().enumerate() {
                                        let dst = &mut dst[y * d.ow..][..d.ow];
                                        if iy < 0 {
                                            dst.fill(0.0);
                                            continue;
                                        }
                                        let src = &plane[iy as usize * d.w..][..d.w];
                                        for (v, &ix) in dst.iter_mut().zip(&xs[kx]) {
                                            *v = if ix < 0 { 0.0 } else { src[ix as usize] };
                                        }
                                    }
                                    row += 1;
                                }
                            }
                        }
                    }
                    let cols: *const $t = if pointwise { image.as_ptr() } else { col.as_ptr() };
                    let kernel = unsafe { rhs.add(g * og * rows) };
                    let dst = out[(b * d.o + g * og) * pixels..][..og * pixels].as_mut_ptr();
                    // dst[og, pixels] = kernel[og, rows] x cols[rows, pixels], row-major.
                    $matmul(kernel, cols, dst, og, rows, pixels);
                }
            }
        }
    };
}

conv2d_routine!(jl_conv2d_f32, f32, super::kernels::jl_matmul_f32);
conv2d_routine!(jl_conv2d_f64, f64, super::kernels::jl_matmul_f64);

/// A window descriptor, read back: operand dims, result dims, window.
///
/// Safety: `desc` points to a descriptor built by `descriptor` for a window op.
unsafe fn window_desc(desc: *const i64) -> (Vec<usize>, Vec<usize>, Window) {
    let rank = unsafe { *desc } as usize;
    let v: Vec<usize> =
        unsafe { std::slice::from_raw_parts(desc.add(1), 6 * rank) }.iter().map(|&x| x as usize).collect();
    let part = |k: usize| v[k * rank..(k + 1) * rank].to_vec();
    (part(0), part(1), Window { size: part(2), stride: part(3), low: part(4), high: part(5) })
}

macro_rules! window_routine {
    ($name:ident, $t:ty, $is_max:expr) => {
        /// Safety: pointers to live, distinct arena buffers of the operand's
        /// and the result's sizes (`_unused` is not read); `desc` from `descriptor`.
        pub(super) extern "C" fn $name(x: *const $t, _unused: *const $t, out: *mut $t, desc: *const i64) {
            let (dims, out_dims, window) = unsafe { window_desc(desc) };
            let x = unsafe { std::slice::from_raw_parts(x, dims.iter().product()) };
            let out = unsafe { std::slice::from_raw_parts_mut(out, out_dims.iter().product()) };
            reduce_window_into(x, &dims, &window, out, &out_dims, $is_max);
        }
    };
}

window_routine!(jl_reduce_window_sum_f32, f32, false);
window_routine!(jl_reduce_window_sum_f64, f64, false);
window_routine!(jl_reduce_window_max_f32, f32, true);
window_routine!(jl_reduce_window_max_f64, f64, true);
