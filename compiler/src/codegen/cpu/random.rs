//! Host routines for `RandomBits`, `RandomSplit` and `RandomUniform`: the
//! very `ir::threefry` functions the interpreter calls, so results are
//! bitwise equal.

use crate::ir::threefry;

/// Reads the i32[2] key buffer.
fn key(key: *const i32) -> [u32; 2] {
    // Safety: the key buffer holds two i32 words.
    threefry::key_words(unsafe { std::slice::from_raw_parts(key, 2) })
}

pub(super) extern "C" fn jl_random_bits(k: *const i32, dst: *mut i32, n: usize) {
    // Safety: `dst` holds `n` elements.
    threefry::fill_bits(key(k), unsafe { std::slice::from_raw_parts_mut(dst, n) });
}

/// `n` key pairs: `2 * n` words.
pub(super) extern "C" fn jl_random_split(k: *const i32, dst: *mut i32, n: usize) {
    // Safety: `dst` holds `2 * n` elements.
    threefry::fill_split(key(k), unsafe { std::slice::from_raw_parts_mut(dst, 2 * n) });
}

pub(super) extern "C" fn jl_random_uniform_f32(k: *const i32, dst: *mut f32, n: usize) {
    // Safety: `dst` holds `n` elements.
    threefry::fill_uniform_f32(key(k), unsafe { std::slice::from_raw_parts_mut(dst, n) });
}

pub(super) extern "C" fn jl_random_uniform_f64(k: *const i32, dst: *mut f64, n: usize) {
    // Safety: `dst` holds `n` elements.
    threefry::fill_uniform_f64(key(k), unsafe { std::slice::from_raw_parts_mut(dst, n) });
}
