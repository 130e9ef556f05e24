//! Window ops over row-major arrays of any rank: the reductions
//! `ReduceWindowSum` and `ReduceWindowMax` (sum and max pooling) and
//! `SelectAndScatter` (max pooling's backward: each window's cotangent to
//! its first maximum).
//!
//! Consumes the operand, its dims, the window and the result (or cotangent)
//! dims; produces the result. Same element order as the definitions
//! (`compiler::ir::interp_window`: per window, its in-range elements in
//! row-major window order; windows in row-major order), so bitwise equal;
//! faster because each dim's in-range taps are tabulated once per output
//! index instead of bounds-checking every tap of every dim per element, and
//! nothing is allocated in the inner loops.

use crate::Elem;

/// `out[o] = combine over in-range window taps k (row-major) of x[o * stride + k - low]`,
/// starting from 0 (sum) or -inf (max).
#[allow(clippy::too_many_arguments)]
pub fn reduce_window<T: Elem>(
    x: &[T],
    dims: &[usize],
    size: &[usize],
    stride: &[usize],
    low: &[usize],
    out: &mut [T],
    out_dims: &[usize],
    is_max: bool,
) {
    let init = if is_max { T::NEG_INFINITY } else { T::ZERO };
    if out.is_empty() {
        return;
    }
    if dims.is_empty() {
        out[0] = if is_max { init.max_op(x[0]) } else { init + x[0] };
        return;
    }
    if let Some(planes) = Planes::of(dims, size, stride, low, out_dims) {
        if is_max && planes.tiles(2, 2) {
            let ow = planes.ow;
            planes.for_each_window_row(|window, at| {
                pool_row_2x2(
                    &x[at..at + 2 * ow],
                    &x[at + planes.w..at + planes.w + 2 * ow],
                    &mut out[window..window + ow],
                );
            });
            return;
        }
        if is_max {
            planes.for_each_window(x, &mut |w, first, _| out[w] = planes.fold(first, init, T::max_op));
        } else {
            planes.for_each_window(x, &mut |w, first, _| out[w] = planes.fold(first, init, |a, v| a + v));
        }
        return;
    }
    let taps = Taps::new(dims, size, stride, low, out_dims);
    if is_max {
        taps.for_each_window(&mut |w, prefix, last| {
            let mut acc = init;
            for &p in prefix {
                for &t in last {
                    acc = acc.max_op(x[p + t]);
                }
            }
            out[w] = acc;
        });
    } else {
        taps.for_each_window(&mut |w, prefix, last| {
            let mut acc = init;
            for &p in prefix {
                for &t in last {
                    acc = acc + x[p + t];
                }
            }
            out[w] = acc;
        });
    }
}

/// `out` (x's dims) = for each window `w` in row-major order, `ct[w]` added
/// at the window's first maximum among its in-range taps (row-major; a
/// later tap wins only if larger, or NaN over a non-NaN, as `ArgMax`),
/// starting from +0. A window without in-range taps scatters nothing.
#[allow(clippy::too_many_arguments)]
pub fn select_and_scatter<T: Elem>(
    x: &[T],
    dims: &[usize],
    size: &[usize],
    stride: &[usize],
    low: &[usize],
    ct: &[T],
    ct_dims: &[usize],
    out: &mut [T],
) {
    if let Some(planes) = Planes::of(dims, size, stride, low, ct_dims).filter(|p| p.tiles(2, 2) && !ct.is_empty()) {
        // Windows tile the planes: each element is in at most one window,
        // so every element is written once, with no scatter.
        if (planes.oh * planes.kh, planes.ow * planes.kw) != (planes.h, planes.w) {
            out.fill(T::ZERO);
        }
        scatter_2x2(&planes, x, ct, out);
        return;
    }
    out.fill(T::ZERO);
    if ct.is_empty() {
        return;
    }
    if dims.is_empty() {
        out[0] = out[0] + ct[0];
        return;
    }
    if let Some(planes) = Planes::of(dims, size, stride, low, ct_dims) {
        let kw = planes.kw;
        planes.for_each_window(x, &mut |w, first, at| {
            let mut best = first[0];
            let mut best_at = at;
            for ky in 0..planes.kh {
                let row = &first[ky * planes.w..][..kw];
                for (kx, &v) in row.iter().enumerate() {
                    let take = v.beats(best);
                    best = if take { v } else { best };
                    best_at = if take { at + ky * planes.w + kx } else { best_at };
                }
            }
            out[best_at] = out[best_at] + ct[w];
        });
        return;
    }
    let taps = Taps::new(dims, size, stride, low, ct_dims);
    taps.for_each_window(&mut |w, prefix, last| {
        let mut best: Option<(usize, T)> = None;
        for &p in prefix {
            for &t in last {
                let v = x[p + t];
                best = match best {
                    // Branch-free select: the comparison is data-dependent.
                    Some((at, b)) => {
                        let take = v.beats(b);
                        Some((if take { p + t } else { at }, if take { v } else { b }))
                    }
                    None => Some((p + t, v)),
                };
            }
        }
        if let Some((at, _)) = best {
            out[at] = out[at] + ct[w];
        }
    });
}

/// `select_and_scatter` where 2 x 2 windows tile the planes (stride 2), so
/// each element is in at most one window and is written once, with no
/// scatter: per window its maximum `m` (`pool_2x2`'s), then the first tap
/// equal to `m` (IEEE equality, so -0 ties +0; NaN matches NaN), which is
/// `ArgMax`'s pick, gets `0 + ct` and the other taps +0. Branch-free, one
/// window row pair at a time, so that the compiler can vectorize.
fn scatter_2x2<T: Elem>(planes: &Planes, x: &[T], ct: &[T], out: &mut [T]) {
    let (w, ow) = (planes.w, planes.ow);
    planes.for_each_window_row(|window, at| {
        let (r0, r1) = (&x[at..at + 2 * ow], &x[at + w..at + w + 2 * ow]);
        let g = &ct[window..window + ow];
        let (o0, rest) = out[at..].split_at_mut(w);
        T::scatter_row_2x2(r0, r1, g, &mut o0[..2 * ow], &mut rest[..2 * ow]);
    });
}

/// One row of 2 x 2 windows of `scatter_2x2`: taps `r0` (top) and `r1`
/// (bottom), cotangents `g`, results `o0`, `o1`. The portable version of
/// `Elem::scatter_row_2x2`.
pub(crate) fn scatter_row_2x2_scalar<T: Elem>(r0: &[T], r1: &[T], g: &[T], o0: &mut [T], o1: &mut [T]) {
    let taps = r0.chunks_exact(2).zip(r1.chunks_exact(2));
    let outs = o0.chunks_exact_mut(2).zip(o1.chunks_exact_mut(2));
    for (((top, bottom), (out_top, out_bottom)), &g) in taps.zip(outs).zip(g) {
        let m = top[0].max_op(bottom[0]).max_op(top[1].max_op(bottom[1]));
        // The first hit in row-major tap order.
        let a = top[0].is_max_of(m);
        let b = top[1].is_max_of(m) & !a;
        let c = bottom[0].is_max_of(m) & !(a | top[1].is_max_of(m));
        let d = !(a | b | c);
        let g = T::ZERO + g;
        out_top[0] = if a { g } else { T::ZERO };
        out_top[1] = if b { g } else { T::ZERO };
        out_bottom[0] = if c { g } else { T::ZERO };
        out_bottom[1] = if d { g } else { T::ZERO };
    }
}

/// The maxima of one row pair of 2 x 2 windows at stride 2: the vertical
/// maxima, then the horizontal. `max_op` is the max of a total order (-0 <
/// +0) with NaN absorbing and a canonical NaN result, so its result does
/// not depend on the order of the taps: bitwise the definition's.
fn pool_row_2x2<T: Elem>(r0: &[T], r1: &[T], out: &mut [T]) {
    for (j, slot) in out.iter_mut().enumerate() {
        let left = r0[2 * j].max_op(r1[2 * j]);
        let right = r0[2 * j + 1].max_op(r1[2 * j + 1]);
        *slot = left.max_op(right);
    }
}

/// Pooling over the last two dims of planes of `h x w` elements: every
/// leading dim has a window of 1 at stride 1 without padding, and every
/// window lies inside the operand (no padding reached). The common case
/// (max pooling), walked without per-tap tables.
struct Planes {
    count: usize,
    h: usize,
    /// The operand's row length: elements between a window's rows.
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    oh: usize,
    ow: usize,
}

impl Planes {
    fn of(dims: &[usize], size: &[usize], stride: &[usize], low: &[usize], out_dims: &[usize]) -> Option<Planes> {
        let rank = dims.len();
        if rank < 2 || low.iter().any(|&l| l != 0) {
            return None;
        }
        let leading_plain = (0..rank - 2).all(|d| size[d] == 1 && stride[d] == 1 && out_dims[d] == dims[d]);
        let inside = (rank - 2..rank).all(|d| out_dims[d] == 0 || (out_dims[d] - 1) * stride[d] + size[d] <= dims[d]);
        if !leading_plain || !inside {
            return None;
        }
        let w = dims[rank - 1];
        Some(Planes {
            count: dims[..rank - 2].iter().product(),
            h: dims[rank - 2],
            w,
            kh: size[rank - 2],
            kw: size[rank - 1],
            sh: stride[rank - 2],
            sw: stride[rank - 1],
            oh: out_dims[rank - 2],
            ow: out_dims[rank - 1],
        })
    }

    /// Calls `visit(window, x from the window's first element on, that
    /// element's flat index)` for every window in row-major order; the
    /// window's row `ky` starts `ky * w` elements further.
    fn for_each_window<T, V: FnMut(usize, &[T], usize)>(&self, x: &[T], visit: &mut V) {
        let plane = x.len() / self.count.max(1);
        let mut window = 0;
        for p in 0..self.count {
            for oy in 0..self.oh {
                for ox in 0..self.ow {
                    let at = p * plane + oy * self.sh * self.w + ox * self.sw;
                    visit(window, &x[at..], at);
                    window += 1;
                }
            }
        }
    }

    /// Whether `kh x kw` windows tile the planes (stride == size): no
    /// element is in two windows.
    fn tiles(&self, kh: usize, kw: usize) -> bool {
        (self.sh, self.sw) == (kh, kw) && (self.kh, self.kw) == (kh, kw)
    }

    /// Calls `visit(first window, its first element's flat index)` for each
    /// row of windows in row-major order.
    fn for_each_window_row(&self, mut visit: impl FnMut(usize, usize)) {
        let plane = self.h * self.w;
        for p in 0..self.count {
            for oy in 0..self.oh {
                visit((p * self.oh + oy) * self.ow, p * plane + oy * self.sh * self.w);
            }
        }
    }

    /// Folds the window starting at `first` into `init` with `combine`, its
    /// `kh` rows of `kw` elements in row-major order.
    fn fold<T: Elem>(&self, first: &[T], init: T, combine: impl Fn(T, T) -> T) -> T {
        let mut acc = init;
        for ky in 0..self.kh {
            for &v in &first[ky * self.w..][..self.kw] {
                acc = combine(acc, v);
            }
        }
        acc
    }
}

/// Per dim `d` and window index `o` along it, the flat offsets (input index
/// times the dim's stride) of the in-range taps, in increasing tap order.
struct Taps<'a> {
    taps: Vec<Vec<Vec<usize>>>,
    out_dims: &'a [usize],
}

impl<'a> Taps<'a> {
    fn new(dims: &[usize], size: &[usize], stride: &[usize], low: &[usize], out_dims: &'a [usize]) -> Taps<'a> {
        let rank = dims.len();
        let mut x_strides = vec![1usize; rank];
        for d in (0..rank.saturating_sub(1)).rev() {
            x_strides[d] = x_strides[d + 1] * dims[d + 1];
        }
        let taps = (0..rank)
            .map(|d| {
                (0..out_dims[d])
                    .map(|o| {
                        (0..size[d])
                            .filter_map(|k| (o * stride[d] + k).checked_sub(low[d]).filter(|&p| p < dims[d]))
                            .map(|p| p * x_strides[d])
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Taps { taps, out_dims }
    }

    /// Calls `visit(w, prefix, last)` for every window `w` (flat, row-major;
    /// rank >= 1): its in-range taps are `p + t` for `p` in `prefix` (the
    /// offsets of the leading dims, row-major) and `t` in `last` (the last
    /// dim's), in row-major tap order.
    fn for_each_window<V: FnMut(usize, &[usize], &[usize])>(&self, visit: &mut V) {
        self.dim(0, &[0], 0, visit);
    }

    fn dim<V: FnMut(usize, &[usize], &[usize])>(&self, d: usize, prefix: &[usize], first: usize, visit: &mut V) {
        let rank = self.out_dims.len();
        if d == rank - 1 {
            for (o, last) in self.taps[d].iter().enumerate() {
                visit(first + o, prefix, last);
            }
            return;
        }
        let block: usize = self.out_dims[d + 1..].iter().product();
        let mut offsets = Vec::new();
        for o in 0..self.out_dims[d] {
            offsets.clear();
            for &p in prefix {
                offsets.extend(self.taps[d][o].iter().map(|&t| p + t));
            }
            self.dim(d + 1, &offsets, first + o * block, visit);
        }
    }
}
