//! Host routines for `Gather` and `ScatterAdd`, called once per instruction.
//!
//! Consumes arena buffers (see `kernels.rs` for the safety contract);
//! produces the result buffer exactly as `interp::gather` defines it: rows
//! clamped to `[0, V - 1]`, scatter accumulating in index order (so results
//! are bitwise equal to the interpreter).

use crate::ir::interp::gather::clamp_index;

/// `dst[i] = src[clamp(idx[i])]`, rows of `row_bytes` bytes (any dtype).
pub(super) extern "C" fn jl_gather(
    src: *const u8,
    idx: *const i32,
    dst: *mut u8,
    v: usize,
    row_bytes: usize,
    n: usize,
) {
    // Safety: `src` holds `v` rows, `idx` `n` indices, `dst` `n` rows.
    let (src, idx, dst) = unsafe {
        (
            std::slice::from_raw_parts(src, v * row_bytes),
            std::slice::from_raw_parts(idx, n),
            std::slice::from_raw_parts_mut(dst, n * row_bytes),
        )
    };
    for (out, &i) in dst.chunks_exact_mut(row_bytes.max(1)).zip(idx) {
        let r = clamp_index(i, v);
        out.copy_from_slice(&src[r * row_bytes..(r + 1) * row_bytes]);
    }
}

macro_rules! scatter_add_routine {
    ($name:ident, $t:ty, $add:expr) => {
        /// `dst = 0; dst[clamp(idx[i])] += upd[i]` for `i` in order.
        pub(super) extern "C" fn $name(upd: *const $t, idx: *const i32, dst: *mut $t, v: usize, row: usize, n: usize) {
            // Safety: `upd` holds `n` rows of `row`, `idx` `n` indices, `dst` `v` rows.
            let (upd, idx, dst) = unsafe {
                (
                    std::slice::from_raw_parts(upd, n * row),
                    std::slice::from_raw_parts(idx, n),
                    std::slice::from_raw_parts_mut(dst, v * row),
                )
            };
            dst.fill(0 as $t);
            for (k, &i) in idx.iter().enumerate() {
                let r = clamp_index(i, v);
                for j in 0..row {
                    dst[r * row + j] = $add(dst[r * row + j], upd[k * row + j]);
                }
            }
        }
    };
}

scatter_add_routine!(jl_scatter_add_f32, f32, |a: f32, b: f32| a + b);
scatter_add_routine!(jl_scatter_add_f64, f64, |a: f64, b: f64| a + b);
scatter_add_routine!(jl_scatter_add_i32, i32, |a: i32, b: i32| a.wrapping_add(b));
