//! Matrix products `c = a x b` (row-major `c`) on the `gemm` crate's
//! microkernels, with our own blocking and packing, whose scratch is a
//! buffer per thread kept between calls: a steady-state training step
//! allocates nothing for its GEMMs (gemm 0.19's own driver allocates its
//! packing buffer inside every call).
//!
//! The layout is gemm's (BLIS's): the microkernels compute a column-major
//! tile `d[j.., i..] += l[j.., p] * r[p, i..]`, MR rows by NR columns. A
//! row-major `c[m, n]` is the column-major `d = c^T` (n x m) with
//! `l = b^T`, `r = a^T`. Per block of `kc` depths and `mc` columns of `c`,
//! `b` is packed into MR-wide panels (zero-padded), which stay in L2 while
//! every group of NR rows of `c` streams over them, reading `a` in place (its
//! NR rows stay in L1). The first depth block writes `c` without reading it,
//! the others add to it.
//!
//! Each element of `c` is summed over the same depth blocks in the same
//! order whichever part of the work computes it, so results do not depend
//! on how the work is split (`run_part`). The microkernels are picked once
//! by the CPU's features (AVX-512, else AVX2+FMA); elsewhere `Gemm::new`
//! gives `None` and callers use the `gemm` crate.

use std::cell::RefCell;

/// gemm's microkernel signature: `(m, n, k, dst, packed_lhs, packed_rhs,
/// dst_cs, dst_rs, lhs_cs, rhs_rs, rhs_cs, alpha, beta, alpha_status,
/// conj_dst, conj_lhs, conj_rhs, next_lhs)`; `dst = alpha * dst + beta *
/// lhs x rhs`, where alpha_status 0 means alpha = 0 (`dst` is not read) and
/// 1 means alpha = 1.
type Microkernel<T> = gemm_common::microkernel::MicroKernelFn<T>;

/// The microkernels of one element type and instruction set.
pub struct Microkernels<T: 'static> {
    /// Elements per vector register.
    lanes: usize,
    /// Tile rows in vectors (MR = `mr_div_n * lanes`).
    mr_div_n: usize,
    /// Tile columns.
    nr: usize,
    /// `[rows in vectors - 1][columns - 1]`, flattened.
    table: &'static [Microkernel<T>],
}

impl<T> Microkernels<T> {
    fn mr(&self) -> usize {
        self.mr_div_n * self.lanes
    }

    /// The kernel for a tile of `rows` x `cols` (at most MR x NR).
    fn for_tile(&self, rows: usize, cols: usize) -> Microkernel<T> {
        self.table[(rows.div_ceil(self.lanes) - 1) * self.nr + cols - 1]
    }
}

/// The element types with microkernels.
pub trait GemmElem: Copy + Default + 'static {
    /// The microkernel sets this CPU runs, the best first.
    fn kernel_sets() -> &'static [&'static Microkernels<Self>];
    /// The best microkernels for this CPU, if any.
    fn microkernels() -> Option<&'static Microkernels<Self>> {
        Self::kernel_sets().first().copied()
    }
    const ZERO: Self;
    const ONE: Self;
    /// This thread's packing buffer.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
}

macro_rules! elem {
    ($t:ident, $krate:ident, $scratch:ident) => {
        impl GemmElem for $t {
            fn kernel_sets() -> &'static [&'static Microkernels<$t>] {
                #[cfg(target_arch = "x86_64")]
                {
                    use $krate::microkernel::{avx512f::$t as v4, fma::$t as v3};
                    static AVX512_TABLE: [[Microkernel<$t>; v4::NR]; v4::MR_DIV_N] = v4::UKR;
                    static AVX2_TABLE: [[Microkernel<$t>; v3::NR]; v3::MR_DIV_N] = v3::UKR;
                    static AVX512: Microkernels<$t> = Microkernels {
                        lanes: 64 / std::mem::size_of::<$t>(),
                        mr_div_n: v4::MR_DIV_N,
                        nr: v4::NR,
                        table: AVX512_TABLE.as_flattened(),
                    };
                    static AVX2: Microkernels<$t> = Microkernels {
                        lanes: 32 / std::mem::size_of::<$t>(),
                        mr_div_n: v3::MR_DIV_N,
                        nr: v3::NR,
                        table: AVX2_TABLE.as_flattened(),
                    };
                    static SETS: std::sync::OnceLock<Vec<&'static Microkernels<$t>>> = std::sync::OnceLock::new();
                    SETS.get_or_init(|| {
                        let mut sets = Vec::new();
                        if std::arch::is_x86_feature_detected!("avx512f") {
                            sets.push(&AVX512);
                        }
                        if std::arch::is_x86_feature_detected!("fma") && std::arch::is_x86_feature_detected!("avx2") {
                            sets.push(&AVX2);
                        }
                        sets
                    })
                }
                #[cfg(not(target_arch = "x86_64"))]
                &[]
            }
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                thread_local! {
                    static $scratch: RefCell<Vec<$t>> = const { RefCell::new(Vec::new()) };
                }
                // Taken out for the call (not borrowed), so that a nested
                // call on this thread gets a buffer of its own.
                let mut buf = $scratch.with(|s| std::mem::take(&mut *s.borrow_mut()));
                // 64 bytes more, to start at a cache line.
                let align = 64 / std::mem::size_of::<$t>();
                if buf.len() < len + align {
                    // Straight to the most any product packs, so that a
                    // thread allocates once, not again whenever it first
                    // gets a larger part (which parts a pool thread gets
                    // varies from step to step).
                    buf.resize(len.max(scratch_bound::<$t>()) + align, 0.0);
                }
                let skip = buf.as_ptr().align_offset(64).min(align);
                let r = f(&mut buf[skip..skip + len]);
                $scratch.with(|s| {
                    let mut s = s.borrow_mut();
                    if s.capacity() < buf.capacity() {
                        *s = buf;
                    }
                });
                r
            }
        }
    };
}

elem!(f32, gemm_f32, SCRATCH_F32);
elem!(f64, gemm_f64, SCRATCH_F64);

/// Makes this thread's packing buffers (f32 and f64) as large as any
/// product needs, so that its products allocate nothing later. A pool
/// thread calls this as it starts: which parts of a split product it gets
/// varies from call to call, and a buffer grown mid-run would be a
/// steady-state step's allocation.
pub fn reserve_scratch() {
    f32::with_scratch(0, |_| ());
    f64::with_scratch(0, |_| ());
}

/// L2's size in bytes (at least 256 KiB).
fn l2_bytes() -> usize {
    gemm_common::cache::CACHE_INFO[1].cache_bytes.max(256 * 1024)
}

/// The most elements `run_part_on` packs at once: `mc x kc` with
/// `kc <= 512` (`depth_block`) and `mc` either within half of L2 or one
/// panel of MR columns.
fn scratch_bound<T: GemmElem>() -> usize {
    let widest_panel = T::kernel_sets().iter().map(|uk| uk.mr()).max().unwrap_or(0);
    (l2_bytes() / 2 / std::mem::size_of::<T>()).max(widest_panel * 512)
}

/// One product `c[m, n] = a[m, k] x b[k, n]`, `c` row-major and `a`, `b`
/// read through strides (a transposed operand is read in place).
#[derive(Clone, Copy)]
pub struct Gemm<T: GemmElem> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub a: *const T,
    /// `a[i, p]` is at `a + i * a_rs + p * a_cs`.
    pub a_rs: isize,
    pub a_cs: isize,
    pub b: *const T,
    /// `b[p, j]` is at `b + p * b_rs + j * b_cs`.
    pub b_rs: isize,
    pub b_cs: isize,
    pub c: *mut T,
}

// Safety: plain addresses; `run_part`'s contract says who may touch what.
unsafe impl<T: GemmElem> Send for Gemm<T> {}
unsafe impl<T: GemmElem> Sync for Gemm<T> {}

/// The most rows of `c` for which `b` is read in place (`blocks`).
const IN_PLACE_MAX_ROWS: usize = 256;

/// Depth block: gemm's choice (at most 512, the depth split evenly).
fn depth_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(512).max(1)).max(1)
}

impl<T: GemmElem> Gemm<T> {
    /// How many parts `run_part` can split this product into, at most
    /// `max_parts`: one below about half a million multiply-adds (gemm's
    /// threading threshold), else up to one per MR columns or NR rows.
    pub fn parts(&self, max_parts: usize) -> usize {
        let Some(uk) = T::microkernels() else { return 1 };
        if self.m.saturating_mul(self.n).saturating_mul(self.k) < 48 * 48 * 256 {
            return 1;
        }
        let by_cols = self.n.div_ceil(uk.mr());
        let by_rows = self.m.div_ceil(uk.nr);
        max_parts.min(by_cols.max(by_rows)).max(1)
    }

    /// Computes part `part` of `parts` of `c`: a range of rows (in groups
    /// of NR) when `c` has at least as many rows as columns, else a range
    /// of columns (in whole MR panels), whichever has enough for `parts`.
    /// (Splitting the rows repeats the packing of `b` in every part, which
    /// costs little where `c` is tall; splitting the columns reads all of
    /// `a` in every part.)
    /// Returns false (and computes nothing) without microkernels.
    ///
    /// # Safety
    /// `a`, `b` and `c` are valid for the shapes and strides given; `c`
    /// does not overlap `a` or `b`; parts run at the same time write
    /// disjoint parts of `c`.
    pub unsafe fn run_part(&self, part: usize, parts: usize) -> bool {
        let Some(uk) = T::microkernels() else { return false };
        unsafe { self.run_part_on(uk, part, parts) };
        true
    }

    /// `run_part` with the microkernels `uk`.
    ///
    /// # Safety
    /// As `run_part`; `uk` runs on this CPU.
    unsafe fn run_part_on(&self, uk: &Microkernels<T>, part: usize, parts: usize) {
        let (m, n) = (self.m, self.n);
        if m == 0 || n == 0 {
            return;
        }
        let (mr, nr) = (uk.mr(), uk.nr);
        let (panels, groups) = (n.div_ceil(mr), m.div_ceil(nr));
        let by_cols = panels >= parts && (m < n || groups < parts);
        let (cols, rows) = if by_cols {
            let (first, end) = (panels * part / parts, panels * (part + 1) / parts);
            ((first * mr).min(n)..(end * mr).min(n), 0..m)
        } else {
            let (first, end) = (groups * part / parts, groups * (part + 1) / parts);
            (0..n, (first * nr).min(m)..(end * nr).min(m))
        };
        if cols.is_empty() || rows.is_empty() {
            return;
        }
        if self.k == 0 {
            for i in rows {
                for j in cols.clone() {
                    unsafe { *self.c.add(i * n + j) = T::ZERO };
                }
            }
            return;
        }
        let kc = depth_block(self.k);
        // Columns of `c` per packed block: the block (mc x kc) in half of L2.
        let l2 = l2_bytes();
        let mc = ((l2 / 2 / (kc * std::mem::size_of::<T>())) / mr * mr).max(mr);
        let mc = mc.min(cols.len().div_ceil(mr) * mr);
        debug_assert!(mc * kc <= scratch_bound::<T>(), "reserve_scratch's bound");
        T::with_scratch(mc * kc, |pack| unsafe { self.blocks(uk, pack, kc, mc, cols, rows) });
    }

    /// Runs the whole product in `parts(max_parts)` parts, calling
    /// `split(parts, run)` to spread them (`run(part, parts)` computes one)
    /// when there is more than one. False without microkernels.
    ///
    /// # Safety
    /// As `run_part`.
    pub unsafe fn run_split(
        &self,
        max_parts: usize,
        split: impl FnOnce(usize, &(dyn Fn(usize, usize) + Sync)),
    ) -> bool {
        if T::microkernels().is_none() {
            return false;
        }
        let parts = self.parts(max_parts);
        // Safety: this function's contract.
        let run = |part: usize, parts: usize| unsafe {
            self.run_part(part, parts);
        };
        if parts > 1 {
            split(parts, &run);
        } else {
            run(0, 1);
        }
        true
    }

    /// The loop nest over depth blocks, column blocks, row groups, panels.
    unsafe fn blocks(
        &self,
        uk: &Microkernels<T>,
        pack: &mut [T],
        kc: usize,
        mc: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
    ) {
        let (mr, nr, n) = (uk.mr(), uk.nr, self.n);
        let mut p0 = 0;
        while p0 < self.k {
            let depth = kc.min(self.k - p0);
            // The first depth block overwrites `c`, the later ones add to it.
            let (alpha, alpha_status) = if p0 == 0 { (T::ZERO, 0u8) } else { (T::ONE, 1u8) };
            let mut j0 = cols.start;
            while j0 < cols.end {
                let width = mc.min(cols.end - j0);
                // A row-major `b` already holds each full panel's MR values
                // per depth contiguously (the next depth a row further on):
                // for a short `c` (few row groups to share the packing) the
                // microkernel reads those in place, and only a partial last
                // panel (whose full-width loads would run past `b`) is
                // packed; a tall `c` re-reads each panel hundreds of times,
                // faster from a packed copy. The same values in the same
                // order either way: the same bits. (Measured: W1 steps -3%,
                // W1 shapes 1.02-1.06x the bare crate; in place for every
                // shape, W3's and 1024^3 fell to 0.91-0.97x.)
                let in_place = if self.b_cs == 1 && rows.len() <= IN_PLACE_MAX_ROWS { width / mr } else { 0 };
                unsafe { self.pack_b(pack, mr, p0, depth, j0 + in_place * mr, width - in_place * mr) };
                let mut i0 = rows.start;
                while i0 < rows.end {
                    let height = nr.min(rows.end - i0);
                    // `r = a^T`: r[p, c] = a[i0 + c, p0 + p], read in place.
                    let r = unsafe { self.a.offset(i0 as isize * self.a_rs + p0 as isize * self.a_cs) };
                    let mut q = 0;
                    while q * mr < width {
                        let tile_rows = mr.min(width - q * mr);
                        let kernel = uk.for_tile(tile_rows, height);
                        let (lhs, lhs_cs) = if q < in_place {
                            let at = p0 as isize * self.b_rs + (j0 + q * mr) as isize;
                            (unsafe { self.b.offset(at) }, self.b_rs)
                        } else {
                            (pack[(q - in_place) * mr * depth..].as_ptr(), mr as isize)
                        };
                        let dst = unsafe { self.c.add(i0 * n + j0 + q * mr) };
                        unsafe {
                            kernel(
                                tile_rows,
                                height,
                                depth,
                                dst,
                                lhs,
                                r,
                                n as isize,
                                1,
                                lhs_cs,
                                self.a_cs,
                                self.a_rs,
                                alpha,
                                T::ONE,
                                alpha_status,
                                false,
                                false,
                                false,
                                lhs,
                            )
                        };
                        q += 1;
                    }
                    i0 += height;
                }
                j0 += width;
            }
            p0 += depth;
        }
    }

    /// Packs `l = b^T` for depths `p0..p0 + depth` and columns of `c`
    /// `j0..j0 + width` into MR-row panels: panel q holds, for each depth
    /// p, the MR values `b[p0 + p, j0 + q * MR + r]`, zero past `width`.
    unsafe fn pack_b(&self, pack: &mut [T], mr: usize, p0: usize, depth: usize, j0: usize, width: usize) {
        for q in 0..width.div_ceil(mr) {
            let panel = &mut pack[q * mr * depth..(q + 1) * mr * depth];
            let cols = mr.min(width - q * mr);
            let col0 = j0 + q * mr;
            for p in 0..depth {
                let row = unsafe { self.b.offset((p0 + p) as isize * self.b_rs + col0 as isize * self.b_cs) };
                let out = &mut panel[p * mr..(p + 1) * mr];
                if self.b_cs == 1 {
                    // In fixed blocks of 16, which compile to vector moves
                    // (a `copy_from_slice` of a row this short was a
                    // `memmove` call per row).
                    let src = unsafe { std::slice::from_raw_parts(row, cols) };
                    let (mut dst16, mut src16) = (out[..cols].chunks_exact_mut(16), src.chunks_exact(16));
                    for (d, s) in (&mut dst16).zip(&mut src16) {
                        let s: &[T; 16] = s.try_into().expect("a block of 16");
                        d.copy_from_slice(s);
                    }
                    dst16.into_remainder().copy_from_slice(src16.remainder());
                } else {
                    for (r, o) in out[..cols].iter_mut().enumerate() {
                        *o = unsafe { *row.offset(r as isize * self.b_cs) };
                    }
                }
                out[cols..].fill(T::ZERO);
            }
        }
    }
}

#[cfg(test)]
mod tests;
