//! im2col for `Conv2d`: the input patches of one (image, group) as the
//! columns of a matrix, so that the convolution is one GEMM.
//!
//! Consumes one image's `cg` channel planes (`h x w`, row-major) and the
//! per-tap input rows/columns (`ys[ky][y]`, `xs[kx][x]`: the input index the
//! output position reads through that tap, or -1 in padding / between
//! dilated elements); produces `col[(ci, ky, kx), (y, x)]`, zeros where the
//! tap reads nothing.

use crate::Elem;

/// Fills `col` (`cg * ys.len() * xs.len()` rows of `oh * ow` pixels).
pub fn im2col<T: Elem>(image: &[T], h: usize, w: usize, ys: &[Vec<isize>], xs: &[Vec<isize>], col: &mut [T]) {
    let pixels = ys.first().map_or(0, Vec::len) * xs.first().map_or(0, Vec::len);
    im2col_strided(image, h, w, ys, xs, col, pixels.max(1));
}

/// `im2col` with row `r` of the matrix at `col[r * row_stride..][..oh *
/// ow]` (`row_stride >= oh * ow`): the rows of one block of columns of a
/// wider matrix; the rest of `col` is left as it is.
pub fn im2col_strided<T: Elem>(
    image: &[T],
    h: usize,
    w: usize,
    ys: &[Vec<isize>],
    xs: &[Vec<isize>],
    col: &mut [T],
    row_stride: usize,
) {
    let (oh, ow) = (ys.first().map_or(0, Vec::len), xs.first().map_or(0, Vec::len));
    let pixels = oh * ow;
    // Row r, while it fits in `col`.
    let mut r = 0;
    let mut next_row = |col: &mut [T]| -> Option<std::ops::Range<usize>> {
        let start = r * row_stride;
        r += 1;
        (start + pixels <= col.len()).then_some(start..start + pixels)
    };
    if h * w == 0 {
        // Every tap falls outside an empty image.
        while let Some(row) = next_row(col) {
            col[row].fill(T::ZERO);
        }
        return;
    }
    let runs = runs_of(xs);
    for plane in image.chunks_exact(h * w) {
        for ky_taps in ys {
            for (kx_taps, run) in xs.iter().zip(&runs) {
                let Some(row) = next_row(col) else { return };
                let dst = &mut col[row];
                for (dst, &iy) in dst.chunks_exact_mut(ow.max(1)).zip(ky_taps) {
                    if iy < 0 {
                        dst.fill(T::ZERO);
                        continue;
                    }
                    let src = &plane[iy as usize * w..][..w];
                    match run {
                        // Zeros, one contiguous copy, zeros.
                        Some(r) => {
                            dst[..r.start].fill(T::ZERO);
                            dst[r.start..r.end].copy_from_slice(&src[r.src..r.src + (r.end - r.start)]);
                            dst[r.end..].fill(T::ZERO);
                        }
                        None => {
                            for (v, &ix) in dst.iter_mut().zip(kx_taps) {
                                *v = if ix < 0 { T::ZERO } else { src[ix as usize] };
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The second half of a convolution in scatter form: `t` holds, for each
/// output channel `o` and tap `(ky, kx)`, the kernel tap times every input
/// pixel (`t[(o, ky, kx), (iy, ix)]`, one GEMM over the input); each output
/// pixel sums the entries its taps read:
/// `out[o, y, x] = sum over (ky, kx) of t[(o, ky, kx), (ys[ky][y], xs[kx][x])]`,
/// skipping taps that read padding, added in `(ky, kx)` order from zero.
/// Cheaper than im2col when the output has more pixels than the input
/// (a data gradient: the cotangent padded by the kernel size).
pub fn col2im_sum<T: Elem>(t: &[T], h: usize, w: usize, ys: &[Vec<isize>], xs: &[Vec<isize>], out: &mut [T]) {
    let (oh, ow) = (ys.first().map_or(0, Vec::len), xs.first().map_or(0, Vec::len));
    let (pixels, taps) = (oh * ow, ys.len() * xs.len());
    let runs = runs_of(xs);
    for (o, plane) in out.chunks_exact_mut(pixels.max(1)).enumerate() {
        plane.fill(T::ZERO);
        for (ky, ky_taps) in ys.iter().enumerate() {
            for (kx, (kx_taps, run)) in xs.iter().zip(&runs).enumerate() {
                let rows = &t[((o * taps) + ky * xs.len() + kx) * h * w..][..h * w];
                for (dst, &iy) in plane.chunks_exact_mut(ow.max(1)).zip(ky_taps) {
                    if iy < 0 {
                        continue;
                    }
                    let src = &rows[iy as usize * w..][..w];
                    match run {
                        Some(r) => {
                            // Equal-length slices: one bounds check, a vector loop.
                            let src = &src[r.src..r.src + (r.end - r.start)];
                            for (d, &s) in dst[r.start..r.end].iter_mut().zip(src) {
                                *d = *d + s;
                            }
                        }
                        None => {
                            for (d, &ix) in dst.iter_mut().zip(kx_taps) {
                                if ix >= 0 {
                                    *d = *d + src[ix as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `Run` of each kernel column's taps: on the stack for up to 32
/// columns, so that a call allocates nothing (a W2 step calls im2col a
/// few hundred times).
type RunTable = smallvec::SmallVec<[Option<Run>; 32]>;

fn runs_of(xs: &[Vec<isize>]) -> RunTable {
    xs.iter().map(|taps| Run::of(taps)).collect()
}

/// Output columns `start..end` read input columns `src..` one by one; the
/// others read nothing (the common case: stride 1, no input dilation).
#[derive(Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    src: usize,
}

impl Run {
    fn of(taps: &[isize]) -> Option<Run> {
        let start = taps.iter().position(|&ix| ix >= 0).unwrap_or(taps.len());
        let end = taps[start..].iter().position(|&ix| ix < 0).map_or(taps.len(), |n| start + n);
        if start == end {
            return Some(Run { start, end, src: 0 });
        }
        let src = taps[start] as usize;
        let contiguous = taps[start..end].iter().enumerate().all(|(i, &ix)| ix as usize == src + i);
        let rest_empty = taps[end..].iter().all(|&ix| ix < 0);
        (contiguous && rest_empty).then_some(Run { start, end, src })
    }
}

/// The transpose of `im2col`: `col_t[(y, x), (ci, ky, kx)]`, so that a
/// kernel row (`kx`) is a contiguous run in both the input and `col_t`.
/// Faster than `im2col` when the output rows are shorter than the kernel
/// rows (the weight gradient of a convolution: a large "kernel", a few
/// output pixels).
pub fn im2col_transposed<T: Elem>(
    image: &[T],
    h: usize,
    w: usize,
    ys: &[Vec<isize>],
    xs: &[Vec<isize>],
    col_t: &mut [T],
) {
    let (oh, ow) = (ys.first().map_or(0, Vec::len), xs.first().map_or(0, Vec::len));
    let (kh, kw) = (ys.len(), xs.len());
    let rows = if h * w == 0 { 0 } else { image.len() / (h * w) * kh * kw };
    if rows == 0 || h * w == 0 {
        col_t.fill(T::ZERO);
        return;
    }
    // x_taps[ox][kx]: the input column of output column ox under tap kx.
    let x_taps: Vec<Vec<isize>> = (0..ow).map(|ox| xs.iter().map(|t| t[ox]).collect()).collect();
    let x_runs: Vec<Option<Run>> = x_taps.iter().map(|taps| Run::of(taps)).collect();
    for (pixel, dst) in col_t.chunks_exact_mut(rows).enumerate().take(oh * ow) {
        let (oy, ox) = (pixel / ow, pixel % ow);
        let mut runs = dst.chunks_exact_mut(kw);
        for plane in image.chunks_exact(h * w) {
            for ky_taps in ys {
                let Some(run) = runs.next() else { return };
                let iy = ky_taps[oy];
                if iy < 0 {
                    run.fill(T::ZERO);
                    continue;
                }
                let src = &plane[iy as usize * w..][..w];
                match &x_runs[ox] {
                    // Zeros, one contiguous copy, zeros.
                    Some(r) => {
                        run[..r.start].fill(T::ZERO);
                        run[r.start..r.end].copy_from_slice(&src[r.src..r.src + (r.end - r.start)]);
                        run[r.end..].fill(T::ZERO);
                    }
                    None => {
                        for (v, &ix) in run.iter_mut().zip(&x_taps[ox]) {
                            *v = if ix < 0 { T::ZERO } else { src[ix as usize] };
                        }
                    }
                }
            }
        }
    }
}
