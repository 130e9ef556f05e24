"""Reference values for `ir::threefry` from JAX itself.

Run: python3 jax_reference.py > jax_reference.txt  (needs `pip install jax`).
Each line: `<kind> <key word 0> <key word 1> <shape> <values...>`, all words
as 8 or 16 hex digits (u32 / f32 bit patterns, f64 bit patterns):
  key      PRNGKey(seed) for the seed given as <shape> (decimal)
  bits     jax.random.bits(key, shape, uint32)
  split    jax.random.split(key, shape): the key words, row-major
  uniform_f32 / uniform_f64   jax.random.uniform(key, shape, dtype) bits
The threefry implementation is pinned: threefry2x32, partitionable.
"""
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_default_prng_impl", "threefry2x32")
jax.config.update("jax_threefry_partitionable", True)

KEYS = [(0, 0), (0, 42), (0x13198A2E, 0x03707344), (0xFFFFFFFF, 0xFFFFFFFF), (0xDEADBEEF, 7)]
SHAPES = [(1,), (7,), (2, 3), (3, 2, 2)]


def key_of(words):
    return jnp.array(np.array(words, dtype=np.uint32))


def hex32(a):
    return " ".join(f"{int(v):08x}" for v in np.asarray(a).reshape(-1).view(np.uint32))


def hex64(a):
    return " ".join(f"{int(v):016x}" for v in np.asarray(a).reshape(-1).view(np.uint64))


def shape_text(s):
    return ",".join(str(d) for d in s)


print(f"# jax {jax.__version__}, threefry2x32, jax_threefry_partitionable=True")
for seed in [0, 1, 42, 123456789, 2**31 - 1]:
    k = jax.random.PRNGKey(seed)
    print(f"key {hex32(k)} {seed}")
for words in KEYS:
    k = key_of(words)
    kw = f"{words[0]:08x} {words[1]:08x}"
    for s in SHAPES:
        print(f"bits {kw} {shape_text(s)} {hex32(jax.random.bits(k, s, jnp.uint32))}")
        print(f"split {kw} {shape_text(s)} {hex32(jax.random.split(k, s))}")
        print(f"uniform_f32 {kw} {shape_text(s)} {hex32(jax.random.uniform(k, s, jnp.float32))}")
jax.config.update("jax_enable_x64", True)
for words in KEYS:
    k = key_of(words)
    kw = f"{words[0]:08x} {words[1]:08x}"
    for s in SHAPES:
        print(f"uniform_f64 {kw} {shape_text(s)} {hex64(jax.random.uniform(k, s, jnp.float64))}")
