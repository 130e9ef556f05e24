//! Window reductions (`ReduceWindowSum`, `ReduceWindowMax`: sum and max
//! pooling) over row-major arrays of any rank.
//!
//! Consumes the operand, its dims, the window and the result dims; produces
//! the result. Same element order as the definition
//! (`compiler::ir::interp_window::reduce_window_into`: per output, the
//! window's in-range elements in row-major window order), so bitwise equal;
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
    let rank = dims.len();
    let init = if is_max { T::NEG_INFINITY } else { T::ZERO };
    let combine = |acc: T, v: T| if is_max { acc.max_op(v) } else { acc + v };
    if out.is_empty() {
        return;
    }
    if rank == 0 {
        out[0] = combine(init, x[0]);
        return;
    }
    // taps[d][o]: the flat offsets (input index * stride of dim d) of the
    // in-range taps of output index o along dim d, in increasing tap order.
    let mut x_strides = vec![1usize; rank];
    for d in (0..rank - 1).rev() {
        x_strides[d] = x_strides[d + 1] * dims[d + 1];
    }
    let taps: Vec<Vec<Vec<usize>>> = (0..rank)
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
    let walk = Walk { x, taps: &taps, out_dims, init, combine: &combine };
    walk.dim(0, &[0], out);
}

struct Walk<'a, T, F> {
    x: &'a [T],
    taps: &'a [Vec<Vec<usize>>],
    out_dims: &'a [usize],
    init: T,
    combine: &'a F,
}

impl<T: Elem, F: Fn(T, T) -> T> Walk<'_, T, F> {
    /// Fills `out` (the block of outputs below a fixed index prefix) given
    /// `prefix`, the window offsets of that prefix's dims in row-major tap
    /// order.
    fn dim(&self, d: usize, prefix: &[usize], out: &mut [T]) {
        let rank = self.out_dims.len();
        if d == rank - 1 {
            for (slot, taps) in out.iter_mut().zip(&self.taps[d]) {
                let mut acc = self.init;
                for &p in prefix {
                    for &t in taps {
                        acc = (self.combine)(acc, self.x[p + t]);
                    }
                }
                *slot = acc;
            }
            return;
        }
        let block: usize = self.out_dims[d + 1..].iter().product();
        let mut offsets = Vec::new();
        for (o, out) in out.chunks_mut(block.max(1)).enumerate().take(self.out_dims[d]) {
            offsets.clear();
            for &p in prefix {
                offsets.extend(self.taps[d][o].iter().map(|&t| p + t));
            }
            self.dim(d + 1, &offsets, out);
        }
    }
}
