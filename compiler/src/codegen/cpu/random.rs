//! Host routines for `RandomBits`, `RandomSplit` and `RandomUniform`: the
//! very `ir::threefry` functions the interpreter calls, so results are
//! bitwise equal.
//!
//! Each takes the key buffer (`keys` keys, i32[keys.., 2]; one for an op that
//! vmap has not batched), the result buffer, the elements (or key pairs, for
//! split) per key `n`, and `keys`: key `k` fills block `k` of the result.

use crate::ir::threefry;

/// The key buffer's words.
fn key_words<'a>(k: *const i32, keys: usize) -> &'a [i32] {
    // Safety: the key buffer holds `keys` pairs of i32 words.
    unsafe { std::slice::from_raw_parts(k, 2 * keys) }
}

pub(super) extern "C" fn jl_random_bits(k: *const i32, dst: *mut i32, n: usize, keys: usize) {
    // Safety: `dst` holds `n` elements per key.
    let out = unsafe { std::slice::from_raw_parts_mut(dst, n * keys) };
    threefry::per_key(key_words(k, keys), out, threefry::fill_bits);
}

/// `n` key pairs per key: `2 * n` words each.
pub(super) extern "C" fn jl_random_split(k: *const i32, dst: *mut i32, n: usize, keys: usize) {
    // Safety: `dst` holds `2 * n` elements per key.
    let out = unsafe { std::slice::from_raw_parts_mut(dst, 2 * n * keys) };
    threefry::per_key(key_words(k, keys), out, threefry::fill_split);
}

pub(super) extern "C" fn jl_random_uniform_f32(k: *const i32, dst: *mut f32, n: usize, keys: usize) {
    // Safety: `dst` holds `n` elements per key.
    let out = unsafe { std::slice::from_raw_parts_mut(dst, n * keys) };
    threefry::per_key(key_words(k, keys), out, threefry::fill_uniform_f32);
}

pub(super) extern "C" fn jl_random_uniform_f64(k: *const i32, dst: *mut f64, n: usize, keys: usize) {
    // Safety: `dst` holds `n` elements per key.
    let out = unsafe { std::slice::from_raw_parts_mut(dst, n * keys) };
    threefry::per_key(key_words(k, keys), out, threefry::fill_uniform_f64);
}
