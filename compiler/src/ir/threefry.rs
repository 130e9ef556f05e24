//! The threefry2x32 counter-based PRNG and JAX's bit-to-float conversions:
//! the definition of `RandomBits`, `RandomSplit` and `RandomUniform`.
//!
//! Consumes a key (two u32 words, held in the IR as i32[2] bit patterns) and
//! an element count; produces the words JAX produces. Counter-based means each
//! output element is a pure function of (key, its index), so these ops are
//! ordinary pure functions: the optimizer may CSE them, backends may compute
//! elements in any order. The interpreter and the CPU backend's host routines
//! both call these functions.
//!
//! Conventions are JAX's with `jax_threefry_partitionable = True` (its
//! default since 0.5): element `n` (row-major) of a result of shape `S` uses
//! the counter `(n >> 32, n & 0xffffffff)` (`iota_2x32_shape`), and
//! - bits (32): `y0 ^ y1`;
//! - bits (64): `(y0 << 32) | y1`;
//! - split: the key pair `(y0, y1)`;
//! - uniform f32: `from_bits((bits32 >> 9) | 0x3f80_0000) - 1` (a float in
//!   [1, 2) made from 23 random mantissa bits, minus one: exactly 2^23
//!   equally spaced values in [0, 1));
//! - uniform f64: `from_bits((bits64 >> 12) | 0x3ff0_0000_0000_0000) - 1`.
//!
//! `tests.rs` checks the Random123 known-answer vectors and bit equality with
//! values computed by JAX (`tests/data/jax_threefry.txt`).

/// Threefry-2x32 with 20 rounds (Salmon et al. 2011; JAX's `threefry_2x32`).
pub fn threefry2x32(key: [u32; 2], count: [u32; 2]) -> [u32; 2] {
    const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];
    let ks = [key[0], key[1], key[0] ^ key[1] ^ 0x1BD1_1BDA];
    let mut x = [count[0].wrapping_add(ks[0]), count[1].wrapping_add(ks[1])];
    // Five groups of four rounds; after group g the key schedule injects
    // ks[(g + 1) % 3], ks[(g + 2) % 3] + g + 1.
    for group in 0..5usize {
        for &rot in &ROTATIONS[group % 2] {
            x[0] = x[0].wrapping_add(x[1]);
            x[1] = x[1].rotate_left(rot);
            x[1] ^= x[0];
        }
        x[0] = x[0].wrapping_add(ks[(group + 1) % 3]);
        x[1] = x[1].wrapping_add(ks[(group + 2) % 3]).wrapping_add(group as u32 + 1);
    }
    x
}

/// The key words of an i32[2] key value.
pub fn key_words(key: &[i32]) -> [u32; 2] {
    assert_eq!(key.len(), 2, "a threefry key has two words");
    [key[0] as u32, key[1] as u32]
}

/// The threefry output words for element `n` of a result.
pub fn block(key: [u32; 2], n: usize) -> [u32; 2] {
    let n = n as u64;
    threefry2x32(key, [(n >> 32) as u32, n as u32])
}

/// JAX's 32 random bits of element `n`.
pub fn bits32(key: [u32; 2], n: usize) -> u32 {
    let [y0, y1] = block(key, n);
    y0 ^ y1
}

/// JAX's 64 random bits of element `n`.
pub fn bits64(key: [u32; 2], n: usize) -> u64 {
    let [y0, y1] = block(key, n);
    ((y0 as u64) << 32) | y1 as u64
}

/// JAX's f32 uniform on [0, 1) from 32 random bits.
pub fn uniform_f32(bits: u32) -> f32 {
    f32::from_bits((bits >> 9) | 0x3f80_0000) - 1.0
}

/// JAX's f64 uniform on [0, 1) from 64 random bits.
pub fn uniform_f64(bits: u64) -> f64 {
    f64::from_bits((bits >> 12) | 0x3ff0_0000_0000_0000) - 1.0
}

/// `RandomBits`: fills `out` with the bits of elements `0..out.len()`.
pub fn fill_bits(key: [u32; 2], out: &mut [i32]) {
    for (n, o) in out.iter_mut().enumerate() {
        *o = bits32(key, n) as i32;
    }
}

/// `RandomSplit`: fills `out` (`2 * count` words) with the key pairs.
pub fn fill_split(key: [u32; 2], out: &mut [i32]) {
    for (n, pair) in out.chunks_exact_mut(2).enumerate() {
        let [y0, y1] = block(key, n);
        pair[0] = y0 as i32;
        pair[1] = y1 as i32;
    }
}

/// `RandomUniform` in f32.
pub fn fill_uniform_f32(key: [u32; 2], out: &mut [f32]) {
    for (n, o) in out.iter_mut().enumerate() {
        *o = uniform_f32(bits32(key, n));
    }
}

/// `RandomUniform` in f64.
pub fn fill_uniform_f64(key: [u32; 2], out: &mut [f64]) {
    for (n, o) in out.iter_mut().enumerate() {
        *o = uniform_f64(bits64(key, n));
    }
}

/// Fills `out` from a stack of keys: `keys` holds `K` keys (`2 K` words,
/// the i32[K.., 2] operand of a random op batched over keys) and `out` `K`
/// equal blocks, block `k` filled by `fill` from key `k` alone (counters from
/// 0 in each block). One key is the unbatched op.
pub fn per_key<T>(keys: &[i32], out: &mut [T], fill: impl Fn([u32; 2], &mut [T])) {
    let n_keys = keys.len() / 2;
    if n_keys == 0 || out.is_empty() {
        return;
    }
    let block = out.len() / n_keys;
    for (key, part) in keys.chunks_exact(2).zip(out.chunks_exact_mut(block)) {
        fill(key_words(key), part);
    }
}

#[cfg(test)]
mod tests;
