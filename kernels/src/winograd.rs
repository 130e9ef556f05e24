//! Winograd's minimal filtering F(2x2, 3x3) for 3x3, stride-1
//! convolutions: each 2x2 block of output pixels (a tile) comes from its
//! 4x4 input patch `d` and the kernel `g` as
//!   `Y = A^T [(G g G^T) . (B^T d B)] A`
//! (`.` elementwise), 16 multiplications per tile and channel pair instead
//! of im2col's 36. Over channels, the 16 positions `xi` of the 4x4 products
//! are 16 matrix products: `M[xi] = U[xi] x V[xi]` with
//! `U[xi][o, c] = (G g[o, c] G^T)[xi]` (the kernel, transformed once per
//! call) and `V[xi][c, t] = (B^T d[c, t] B)[xi]` (each tile `t`'s patch);
//! then `Y[o, t] = A^T M[., o, t] A`. The caller runs the products (on its
//! GEMM) between `transform_input` and `transform_output`, over blocks of
//! whole images whose transforms stay in the caches.
//!
//! Numbers: the transforms only add, subtract and halve (exact), so the
//! rounding is that of a few more additions per output than a direct sum:
//! the error bound grows by a small constant factor (`docs/numerics.md`),
//! tested against the interpreter with the conv tolerance.
//!
//! ```text
//! B^T = [1  0 -1  0]   G = [1    0    0  ]   A^T = [1 1  1  0]
//!       [0  1  1  0]       [1/2  1/2  1/2]         [0 1 -1 -1]
//!       [0 -1  1  0]       [1/2 -1/2  1/2]
//!       [0  1  0 -1]       [0    0    1  ]
//! ```

use crate::Elem;

/// A 3x3 convolution with stride 1, no dilation, one group: input
/// `[n, c, h, w]`, kernel `[o, c, 3, 3]`, output `[n, o, oh, ow]`, the
/// input padded by `top` rows and `left` columns (the bottom and right
/// padding follow from `oh`, `ow`: `oh = h + top + bottom - 2`).
#[derive(Clone, Copy, Debug)]
pub struct WinogradConv {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub oh: usize,
    pub ow: usize,
    pub top: usize,
    pub left: usize,
}

/// Positions of a transformed 4x4 tile.
pub const TILE_POSITIONS: usize = 16;

impl WinogradConv {
    /// Rows of 2x2 tiles per image (the last may hang over the output).
    pub fn tile_rows(&self) -> usize {
        self.oh.div_ceil(2)
    }

    /// Tiles per row.
    pub fn tile_cols(&self) -> usize {
        self.ow.div_ceil(2)
    }

    pub fn tiles_per_image(&self) -> usize {
        self.tile_rows() * self.tile_cols()
    }

    /// The scratch `transform_input` needs (`work`).
    pub fn input_work_len(&self) -> usize {
        8 * (self.tile_rows() + 1) * self.tile_cols() + 2 * self.tile_cols() + 2
    }

    /// The scratch `transform_output` needs for `count` images.
    pub fn output_work_len(&self, count: usize) -> usize {
        4 * count * self.tiles_per_image()
    }

    /// `u[xi][o][c]` (16 matrices `[o, c]`) from `kernel[o][c][3][3]`.
    pub fn transform_kernel<T: Elem>(&self, kernel: &[T], u: &mut [T]) {
        let (o_n, c_n) = (self.o, self.c);
        assert!(kernel.len() >= o_n * c_n * 9 && u.len() >= TILE_POSITIONS * o_n * c_n);
        // G x (three values) -> four: x0, (x0 + x1 + x2) / 2, (x0 - x1 + x2) / 2, x2.
        let g_times = |x: [T; 3]| -> [T; 4] {
            let even = x[0] + x[2];
            [x[0], (even + x[1]) * T::HALF, (even - x[1]) * T::HALF, x[2]]
        };
        for o in 0..o_n {
            for c in 0..c_n {
                let g = &kernel[(o * c_n + c) * 9..][..9];
                // Columns of G g (G applied down each kernel column).
                let cols: [[T; 4]; 3] = std::array::from_fn(|s| g_times([g[s], g[3 + s], g[6 + s]]));
                for i in 0..4 {
                    // Row i of (G g) G^T.
                    let row = g_times([cols[0][i], cols[1][i], cols[2][i]]);
                    for (j, &v) in row.iter().enumerate() {
                        u[((4 * i + j) * o_n + o) * c_n + c] = v;
                    }
                }
            }
        }
    }

    /// `v[xi][c][t]` (16 matrices `[c, tiles]`, `tiles = count *
    /// tiles_per_image()`) for images `first..first + count` of `x` (the
    /// whole input), tile `t = (image - first, tile row, tile column)`.
    ///
    /// In two passes per channel plane, each over long runs: along x, each
    /// padded input row's `d B` (four values per tile column) into the rows
    /// of `xb[j]`, even and odd padded rows apart; then along y, `B^T (d B)`
    /// for all tiles of the plane at once, as tile `t`'s rows 2ty..2ty+3
    /// are `even[t]`, `odd[t]`, `even[t + cols]`, `odd[t + cols]`.
    /// `work` is scratch of `input_work_len()` values.
    pub fn transform_input<T: Elem>(&self, x: &[T], first: usize, count: usize, v: &mut [T], work: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if std::mem::size_of::<T>() == 4 && self.tile_cols() <= x86::MAX_TILE_COLS && x86::avx512() {
            // Safety: a 4-byte `Elem` is f32; the CPU has AVX-512F.
            unsafe {
                let x = std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len());
                let v = std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<f32>(), v.len());
                let work = std::slice::from_raw_parts_mut(work.as_mut_ptr().cast::<f32>(), work.len());
                return x86::transform_input(self, x, first, count, v, work);
            }
        }
        self.transform_input_with(x, first, count, v, work, x_pass_portable);
    }

    /// `transform_input` with `x_pass` for the pass along x.
    #[inline(always)]
    fn transform_input_with<T: Elem>(
        &self,
        x: &[T],
        first: usize,
        count: usize,
        v: &mut [T],
        work: &mut [T],
        x_pass: impl Fn(Option<&[T]>, usize, usize, &mut [T], [&mut [T]; 4]),
    ) {
        let (c_n, h, w) = (self.c, self.h, self.w);
        let (rows, cols) = (self.tile_rows(), self.tile_cols());
        let (plane_tiles, tiles) = (rows * cols, count * rows * cols);
        assert!(x.len() >= (first + count) * c_n * h * w && v.len() >= TILE_POSITIONS * c_n * tiles);
        // xb[j][parity]: rows+1 rows of `cols` values, plus room for a
        // padded row (the portable pass's).
        let half = (rows + 1) * cols;
        let xb = &mut work[..self.input_work_len()];
        for b in 0..count {
            for c in 0..c_n {
                let plane = &x[((first + b) * c_n + c) * h * w..][..h * w];
                let (passes, pad) = xb.split_at_mut(8 * half);
                for y in 0..2 * rows + 2 {
                    let row = y.checked_sub(self.top).filter(|&iy| iy < h).map(|iy| &plane[iy * w..][..w]);
                    let at = (y % 2) * half + (y / 2) * cols;
                    let [d0, d1, d2, d3] = four_rows(passes, 2 * half, at, cols);
                    x_pass(row, self.left, cols, pad, [d0, d1, d2, d3]);
                }
                let t0 = b * plane_tiles;
                for j in 0..4 {
                    let (even, odd) = xb[2 * j * half..][..2 * half].split_at(half);
                    let (e0, e1) = (&even[..plane_tiles], &even[cols..cols + plane_tiles]);
                    let (o0, o1) = (&odd[..plane_tiles], &odd[cols..cols + plane_tiles]);
                    let at = |i: usize| ((4 * i + j) * c_n + c) * tiles + t0;
                    for (t, r) in v[at(0)..][..plane_tiles].iter_mut().enumerate() {
                        *r = e0[t] - e1[t];
                    }
                    for (t, r) in v[at(1)..][..plane_tiles].iter_mut().enumerate() {
                        *r = o0[t] + e1[t];
                    }
                    for (t, r) in v[at(2)..][..plane_tiles].iter_mut().enumerate() {
                        *r = e1[t] - o0[t];
                    }
                    for (t, r) in v[at(3)..][..plane_tiles].iter_mut().enumerate() {
                        *r = o0[t] - o1[t];
                    }
                }
            }
        }
    }

    /// `out` (`count` images' outputs, `[count, o, oh, ow]`) from
    /// `m[xi][o][t]` (16 matrices `[o, tiles]`, tiles as `transform_input`'s):
    /// per output channel, the four values of every tile in one pass over
    /// the 16 rows (long runs), then stored into the 2x2 blocks.
    /// `work` is scratch of `output_work_len(count)` values.
    pub fn transform_output<T: Elem>(&self, m: &[T], count: usize, out: &mut [T], work: &mut [T]) {
        #[cfg(target_arch = "x86_64")]
        if std::mem::size_of::<T>() == 4 && self.tile_cols() <= x86::MAX_TILE_COLS && x86::avx512() {
            // Safety: a 4-byte `Elem` is f32; the CPU has AVX-512F.
            unsafe {
                let m = std::slice::from_raw_parts(m.as_ptr().cast::<f32>(), m.len());
                let out = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len());
                let work = std::slice::from_raw_parts_mut(work.as_mut_ptr().cast::<f32>(), work.len());
                return x86::transform_output(self, m, count, out, work);
            }
        }
        self.transform_output_with(m, count, out, work, interleave_portable);
    }

    /// `transform_output` with `interleave` storing a tile row's left and
    /// right output columns into an output row.
    #[inline(always)]
    fn transform_output_with<T: Elem>(
        &self,
        m: &[T],
        count: usize,
        out: &mut [T],
        work: &mut [T],
        interleave: impl Fn(&[T], &[T], &mut [T]),
    ) {
        let (o_n, oh, ow) = (self.o, self.oh, self.ow);
        let (rows, cols) = (self.tile_rows(), self.tile_cols());
        let tiles = count * rows * cols;
        assert!(m.len() >= TILE_POSITIONS * o_n * tiles && out.len() >= count * o_n * oh * ow);
        let ys = &mut work[..4 * tiles];
        for o in 0..o_n {
            let row: [&[T]; TILE_POSITIONS] = std::array::from_fn(|xi| &m[(xi * o_n + o) * tiles..][..tiles]);
            {
                let (y00, rest) = ys.split_at_mut(tiles);
                let (y01, rest) = rest.split_at_mut(tiles);
                let (y10, y11) = rest.split_at_mut(tiles);
                for t in 0..tiles {
                    // A^T m: rows 0 + 1 + 2 and 1 - 2 - 3, per column j.
                    let s0: [T; 4] = std::array::from_fn(|j| row[j][t] + row[4 + j][t] + row[8 + j][t]);
                    let s1: [T; 4] = std::array::from_fn(|j| row[4 + j][t] - row[8 + j][t] - row[12 + j][t]);
                    // (A^T m) A: columns 0 + 1 + 2 and 1 - 2 - 3.
                    y00[t] = s0[0] + s0[1] + s0[2];
                    y01[t] = s0[1] - s0[2] - s0[3];
                    y10[t] = s1[0] + s1[1] + s1[2];
                    y11[t] = s1[1] - s1[2] - s1[3];
                }
            }
            for b in 0..count {
                let plane = &mut out[(b * o_n + o) * oh * ow..][..oh * ow];
                for ty in 0..rows {
                    let t0 = (b * rows + ty) * cols;
                    for a in 0..2 {
                        let oy = 2 * ty + a;
                        if oy >= oh {
                            break;
                        }
                        let (left, right) =
                            (&ys[2 * a * tiles + t0..][..cols], &ys[(2 * a + 1) * tiles + t0..][..cols]);
                        interleave(left, right, &mut plane[oy * ow..][..ow]);
                    }
                }
            }
        }
    }
}

/// The four rows `at + k * stride` (`cols` values each) of `buf`.
fn four_rows<T>(buf: &mut [T], stride: usize, at: usize, cols: usize) -> [&mut [T]; 4] {
    let (r0, rest) = buf[at..].split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, r3) = rest.split_at_mut(stride);
    [&mut r0[..cols], &mut r1[..cols], &mut r2[..cols], &mut r3[..cols]]
}

/// `dst = [left[0], right[0], left[1], right[1], ...]` (as far as `dst`
/// goes: an odd output width drops the last right value).
fn interleave_portable<T: Elem>(left: &[T], right: &[T], dst: &mut [T]) {
    for (pair, (&l, &r)) in dst.chunks_mut(2).zip(left.iter().zip(right)) {
        pair[0] = l;
        if let Some(second) = pair.get_mut(1) {
            *second = r;
        }
    }
}

/// The pass along x for one padded input row (`None`: a row of padding;
/// else the input row, placed at padded column `left`): `d B` for each
/// tile column, `dst[j][tx]` (`cols` values each), element by element.
/// `pad` is scratch of `2 * cols + 2` values.
fn x_pass_portable<T: Elem>(row: Option<&[T]>, left: usize, cols: usize, pad: &mut [T], dst: [&mut [T]; 4]) {
    let width = 2 * cols + 2;
    let pad = &mut pad[..width];
    pad.fill(T::ZERO);
    if let Some(row) = row {
        let (j0, j1) = (left.min(width), (left + row.len()).min(width));
        if j0 < j1 {
            pad[j0..j1].copy_from_slice(&row[..j1 - j0]);
        }
    }
    let [d0, d1, d2, d3] = dst;
    for tx in 0..cols {
        let p = &pad[2 * tx..2 * tx + 4];
        d0[tx] = p[0] - p[2];
        d1[tx] = p[1] + p[2];
        d2[tx] = p[2] - p[1];
        d3[tx] = p[1] - p[3];
    }
}

/// AVX-512 versions: the pass along x on one or two registers (masked
/// loads place the input row, permutes pick the even and odd columns),
/// the rest compiled with AVX-512F so that its long runs vectorize 16
/// wide. The same operations on the same values as the portable code:
/// bitwise the same results (tested).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::WinogradConv;
    pub(super) use crate::avx512::available as avx512;
    use crate::avx512::lane_masks;
    use std::arch::x86_64::*;

    /// The widest tile row the register pass takes: 2 x 15 + 2 = 32 padded
    /// columns, two registers.
    pub(super) const MAX_TILE_COLS: usize = 15;

    /// Safety: AVX-512F; `w.tile_cols() <= MAX_TILE_COLS`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_input(
        w: &WinogradConv,
        x: &[f32],
        first: usize,
        count: usize,
        v: &mut [f32],
        work: &mut [f32],
    ) {
        w.transform_input_with(x, first, count, v, work, |row, left, cols, _, dst| unsafe {
            x_pass(row, left, cols, dst)
        });
    }

    /// Safety: AVX-512F; `w.tile_cols() <= MAX_TILE_COLS`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transform_output(
        w: &WinogradConv,
        m: &[f32],
        count: usize,
        out: &mut [f32],
        work: &mut [f32],
    ) {
        w.transform_output_with(m, count, out, work, |left, right, dst| unsafe { interleave(left, right, dst) });
    }

    /// `super::interleave_portable` on two registers.
    ///
    /// Safety: AVX-512F; `left` and `right` hold the same count <= 16,
    /// `dst` at most twice that.
    #[target_feature(enable = "avx512f")]
    unsafe fn interleave(left: &[f32], right: &[f32], dst: &mut [f32]) {
        let cols = left.len();
        assert!(cols <= 16 && right.len() == cols && dst.len() <= 2 * cols);
        let (m, _) = lane_masks(0, cols);
        let (l, r) = unsafe { (_mm512_maskz_loadu_ps(m, left.as_ptr()), _mm512_maskz_loadu_ps(m, right.as_ptr())) };
        // Lane 2k: l[k], lane 2k + 1: r[k] (index 16 + k picks r[k]).
        let first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
        let (s_lo, s_hi) = lane_masks(0, dst.len());
        unsafe {
            _mm512_mask_storeu_ps(dst.as_mut_ptr(), s_lo, _mm512_permutex2var_ps(l, first, r));
            _mm512_mask_storeu_ps(dst.as_mut_ptr().wrapping_add(16), s_hi, _mm512_permutex2var_ps(l, second, r));
        }
    }

    /// `super::x_pass_portable` on registers: padded column j is lane j of (lo, hi).
    ///
    /// Safety: AVX-512F; `cols <= MAX_TILE_COLS`; each `dst` holds `cols`.
    #[target_feature(enable = "avx512f")]
    unsafe fn x_pass(row: Option<&[f32]>, left: usize, cols: usize, dst: [&mut [f32]; 4]) {
        let (lo, hi) = match row {
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
            Some(row) => {
                // Lane j reads row[j - left]: only lanes left..left + len
                // are read (masked loads touch nothing else).
                let (m_lo, m_hi) = lane_masks(left, left + row.len());
                let base = row.as_ptr().wrapping_sub(left);
                unsafe { (_mm512_maskz_loadu_ps(m_lo, base), _mm512_maskz_loadu_ps(m_hi, base.wrapping_add(16))) }
            }
        };
        // Lane tx of each: padded columns 2tx, 2tx + 1, 2tx + 2, 2tx + 3
        // (indices past 31 wrap: lanes tx >= 15, never stored).
        let pick = |first: i32| {
            let idx = _mm512_setr_epi32(
                first,
                first + 2,
                first + 4,
                first + 6,
                first + 8,
                first + 10,
                first + 12,
                first + 14,
                first + 16,
                first + 18,
                first + 20,
                first + 22,
                first + 24,
                first + 26,
                first + 28,
                first + 30,
            );
            _mm512_permutex2var_ps(lo, _mm512_and_si512(idx, _mm512_set1_epi32(31)), hi)
        };
        let (p0, p1, p2, p3) = (pick(0), pick(1), pick(2), pick(3));
        let results = [_mm512_sub_ps(p0, p2), _mm512_add_ps(p1, p2), _mm512_sub_ps(p2, p1), _mm512_sub_ps(p1, p3)];
        let keep = ((1u32 << cols) - 1) as __mmask16;
        for (d, r) in dst.into_iter().zip(results) {
            assert!(d.len() >= cols);
            unsafe { _mm512_mask_storeu_ps(d.as_mut_ptr(), keep, r) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: &mut u32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                (*seed % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// The AVX-512 transforms (where the CPU has them) give the portable
    /// ones' bits, over widths up to the register limit, paddings that
    /// cut into and reach past the input, and odd outputs.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn register_transforms_are_the_portable_ones_bitwise() {
        if !x86::avx512() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let mut seed = 0x2545_F491;
        let mut checked = 0;
        for (h, w) in [(3, 3), (5, 8), (13, 13), (11, 11), (4, 29), (7, 30)] {
            for (top, left, bottom, right) in [(0, 0, 0, 0), (2, 2, 2, 2), (1, 0, 0, 3), (0, 3, 2, 0)] {
                let (oh, ow) = (h + top + bottom - 2, w + left + right - 2);
                let wino = WinogradConv { n: 3, c: 2, h, w, o: 3, oh, ow, top, left };
                if wino.tile_cols() > x86::MAX_TILE_COLS {
                    continue;
                }
                let (first, count) = (1, 2);
                let tiles = count * wino.tiles_per_image();
                let x = values(wino.n * wino.c * h * w, &mut seed);
                let mut v_fast = vec![0.0f32; TILE_POSITIONS * wino.c * tiles];
                let mut v_portable = v_fast.clone();
                let mut work = vec![3.0f32; wino.input_work_len().max(wino.output_work_len(count))];
                unsafe { x86::transform_input(&wino, &x, first, count, &mut v_fast, &mut work) };
                wino.transform_input_with(&x, first, count, &mut v_portable, &mut work, x_pass_portable);
                assert!(v_fast.iter().zip(&v_portable).all(|(a, b)| a.to_bits() == b.to_bits()), "{wino:?}");
                let m = values(TILE_POSITIONS * wino.o * tiles, &mut seed);
                let mut out_fast = vec![7.0f32; count * wino.o * oh * ow];
                let mut out_portable = out_fast.clone();
                unsafe { x86::transform_output(&wino, &m, count, &mut out_fast, &mut work) };
                wino.transform_output_with(&m, count, &mut out_portable, &mut work, interleave_portable);
                assert!(out_fast.iter().zip(&out_portable).all(|(a, b)| a.to_bits() == b.to_bits()), "{wino:?}");
                assert!(!out_fast.contains(&7.0), "every output written: {wino:?}");
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked} shapes");
    }

    /// One tile's transforms against their matrix definitions (f64 sums of
    /// products with B^T, G, A^T): a conv of one 4x4 patch and one kernel.
    #[test]
    fn one_tile_is_the_direct_convolution() {
        let mut seed = 0x1234_5678;
        let wino = WinogradConv { n: 1, c: 1, h: 4, w: 4, o: 1, oh: 2, ow: 2, top: 0, left: 0 };
        let (x, g) = (values(16, &mut seed), values(9, &mut seed));
        let (mut u, mut v, mut out) = (vec![0.0f32; 16], vec![0.0f32; 16], vec![0.0f32; 4]);
        wino.transform_kernel(&g, &mut u);
        let mut work = vec![0.0f32; wino.input_work_len().max(wino.output_work_len(1))];
        wino.transform_input_with(&x, 0, 1, &mut v, &mut work, x_pass_portable);
        let m: Vec<f32> = u.iter().zip(&v).map(|(a, b)| a * b).collect();
        wino.transform_output_with(&m, 1, &mut out, &mut work, interleave_portable);
        for (y, x_) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let direct: f64 = (0..9).map(|t| (x[(y + t / 3) * 4 + x_ + t % 3] as f64) * g[t] as f64).sum();
            let got = out[y * 2 + x_] as f64;
            assert!((got - direct).abs() <= 1e-5, "({y}, {x_}): {got} vs {direct}");
        }
    }
}
