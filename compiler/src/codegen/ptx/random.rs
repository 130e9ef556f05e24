//! PTX kernels for the counter-based PRNG ops `RandomBits`, `RandomSplit`
//! and `RandomUniform`: threefry2x32 in 32-bit integer instructions.
//!
//! Consumes the result type, the key pointer (i32[2], or `keys` keys
//! i32[K.., 2] where vmap batched the op) and the key count; produces the
//! kernel body. Each element is a pure function of (its key, its row-major
//! index `n` within its key's block) (`ir::threefry`, `threefry::per_key`),
//! so one thread per element needs no communication and the bits equal the
//! interpreter's exactly: only wrapping `add.u32`, `xor.b32` and rotations
//! (`shl`/`shr`/`or`) are used.

use super::builder::{imm_f32, imm_f64, Class, Kernel};
use super::{load, store};
use crate::ir::{DType, Type};

/// The rotation amounts of threefry2x32's two alternating round groups.
const ROTATIONS: [[u32; 4]; 2] = [[13, 15, 26, 6], [17, 29, 16, 24]];

/// `(y0, y1) = threefry2x32(key, (n >> 32, n & 0xffffffff))` for the u64
/// register `n`; `key` holds the two key words (b32 registers). Mirrors
/// `ir::threefry::threefry2x32` line by line.
fn threefry(k: &mut Kernel, key: &[String; 2], n: &str) -> [String; 2] {
    let ks2a = k.op2("xor.b32", Class::B32, &key[0], &key[1]);
    let ks2 = k.op2("xor.b32", Class::B32, &ks2a, "466688986"); // 0x1BD11BDA
    let ks = [key[0].clone(), key[1].clone(), ks2];
    let hi64 = k.op2("shr.u64", Class::B64, n, "32");
    let hi = k.op1("cvt.u32.u64", Class::B32, &hi64);
    let lo = k.op1("cvt.u32.u64", Class::B32, n);
    let mut x0 = k.op2("add.u32", Class::B32, &hi, &ks[0]);
    let mut x1 = k.op2("add.u32", Class::B32, &lo, &ks[1]);
    for group in 0..5usize {
        for &rot in &ROTATIONS[group % 2] {
            x0 = k.op2("add.u32", Class::B32, &x0, &x1);
            let l = k.op2("shl.b32", Class::B32, &x1, &rot.to_string());
            let r = k.op2("shr.b32", Class::B32, &x1, &(32 - rot).to_string());
            let rotated = k.op2("or.b32", Class::B32, &l, &r);
            x1 = k.op2("xor.b32", Class::B32, &rotated, &x0);
        }
        x0 = k.op2("add.u32", Class::B32, &x0, &ks[(group + 1) % 3]);
        let t = k.op2("add.u32", Class::B32, &x1, &ks[(group + 2) % 3]);
        x1 = k.op2("add.u32", Class::B32, &t, &(group + 1).to_string());
    }
    [x0, x1]
}

/// The words of key `q` (a u64 register) of the key buffer.
fn key_words(k: &mut Kernel, key: &str, q: &str) -> [String; 2] {
    let i0 = k.op2("shl.b64", Class::B64, q, "1");
    let i1 = k.op2("add.u64", Class::B64, &i0, "1");
    [load(k, DType::I32, key, &i0), load(k, DType::I32, key, &i1)]
}

/// The words of a single key, loaded once before the loop; `None` for a
/// stack of keys (each item loads its own: `threefry_of_item`).
fn single_key(k: &mut Kernel, key: &str, keys: usize) -> Option<[String; 2]> {
    (keys <= 1).then(|| {
        let q = k.op1("mov.u64", Class::B64, "0");
        key_words(k, key, &q)
    })
}

/// Item `i` of a grid-stride loop over blocks of `per_key` items, one block
/// per key: the threefry of its key and its index in the block.
fn threefry_of_item(k: &mut Kernel, key: &str, single: &Option<[String; 2]>, per_key: u64, i: &str) -> [String; 2] {
    if let Some(kw) = single {
        return threefry(k, kw, i);
    }
    let per_key = per_key.max(1).to_string();
    let q = k.op2("div.u64", Class::B64, i, &per_key);
    let n = k.op2("rem.u64", Class::B64, i, &per_key);
    let kw = key_words(k, key, &q);
    threefry(k, &kw, &n)
}

/// `RandomBits`: element `n` is `y0 ^ y1`.
pub fn bits(k: &mut Kernel, ty: &Type, out: &str, key: &str, keys: usize) {
    let n = ty.shape.num_elements() as u64;
    let per_key = n / keys.max(1) as u64;
    let single = single_key(k, key, keys);
    k.grid_stride_loop(n, |k, i| {
        let [y0, y1] = threefry_of_item(k, key, &single, per_key, i);
        let b = k.op2("xor.b32", Class::B32, &y0, &y1);
        store(k, DType::I32, out, i, &b);
    });
}

/// `RandomSplit`: key `n` (elements `2n`, `2n + 1`) is `(y0, y1)`.
pub fn split(k: &mut Kernel, ty: &Type, out: &str, key: &str, keys: usize) {
    let pairs = (ty.shape.num_elements() / 2) as u64;
    let per_key = pairs / keys.max(1) as u64;
    let single = single_key(k, key, keys);
    k.grid_stride_loop(pairs, |k, i| {
        let [y0, y1] = threefry_of_item(k, key, &single, per_key, i);
        let at0 = k.op2("shl.b64", Class::B64, i, "1");
        let at1 = k.op2("add.u64", Class::B64, &at0, "1");
        store(k, DType::I32, out, &at0, &y0);
        store(k, DType::I32, out, &at1, &y1);
    });
}

/// `RandomUniform`: 23 (f32) or 52 (f64) random mantissa bits under the
/// exponent of 1.0, minus one (exact), as `ir::threefry::uniform_f32/f64`.
pub fn uniform(k: &mut Kernel, ty: &Type, out: &str, key: &str, keys: usize) {
    let n = ty.shape.num_elements() as u64;
    let per_key = n / keys.max(1) as u64;
    let single = single_key(k, key, keys);
    k.grid_stride_loop(n, |k, i| {
        let [y0, y1] = threefry_of_item(k, key, &single, per_key, i);
        let r = match ty.dtype {
            DType::F32 => {
                let b = k.op2("xor.b32", Class::B32, &y0, &y1);
                let m = k.op2("shr.b32", Class::B32, &b, "9");
                let one_bits = k.op2("or.b32", Class::B32, &m, "1065353216"); // 0x3f800000
                let f = k.op1("mov.b32", Class::F32, &one_bits);
                k.op2("sub.rn.f32", Class::F32, &f, &imm_f32(1.0))
            }
            DType::F64 => {
                // bits64 = (y0 << 32) | y1: `mov.b64 d, {lo, hi}`.
                let b = k.op1("mov.b64", Class::B64, &format!("{{{y1}, {y0}}}"));
                let m = k.op2("shr.b64", Class::B64, &b, "12");
                let one_bits = k.op2("or.b64", Class::B64, &m, "4607182418800017408"); // 0x3ff0..0
                let f = k.op1("mov.b64", Class::F64, &one_bits);
                k.op2("sub.rn.f64", Class::F64, &f, &imm_f64(1.0))
            }
            other => unreachable!("the verifier rejects random_uniform of {other}"),
        };
        store(k, ty.dtype, out, i, &r);
    });
}
