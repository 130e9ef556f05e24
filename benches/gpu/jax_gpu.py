"""Peer benchmark on the GPU: W1-W5 of shared/design/PERFORMANCE.md in JAX,
jit-compiled, with every input a device array (as our bench holds its
inputs on the device). Prints one JSON line per workload: the median step
time over --runs calls after warm-up (each call waits for its result with
block_until_ready) and the compile time (trace + lower + XLA compile).

Matmul precision: JAX's default computes float32 matmuls and convolutions
with TF32 tensor cores on an H100; ours are true float32 (TF32 only on
request, JLC_CUDA_TF32=1). `--precision highest` (impl "jax") matches our
numerics and is the comparison the issue's targets mean; `--precision
default` (impl "jax_default") is what a JAX user gets out of the box.

Run by benches/gpu/check.sh on the device machine, interleaved with ours:
  python3 benches/gpu/jax_gpu.py w1 w2 w3 w4 w5 --runs 50
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peers"))
from common import W4_N, w1_data, w1_init, w4_data  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

B1, B2, EPS = 0.9, 0.999, 1e-8
IMPL = "jax"


def report(workload, times_s, compile_s, **extra):
    ms = [t * 1e3 for t in times_s]
    out = {"impl": IMPL, "workload": workload, "step_ms": round(statistics.median(ms), 4),
           "step_min_ms": round(min(ms), 4), "runs": len(ms), "compile_ms": round(compile_s * 1e3, 2),
           "version": jax.__version__, "device": str(jax.devices()[0].device_kind)}
    out.update(extra)
    print(json.dumps(out), flush=True)


def adam(params, grads, m, v, step, lr, wd=0.0):
    """optax.adam / adamw (decoupled weight decay), bias-corrected, written out."""
    m = [B1 * mi + (1 - B1) * g for mi, g in zip(m, grads)]
    v = [B2 * vi + (1 - B2) * g * g for vi, g in zip(v, grads)]
    c1, c2 = 1 - B1 ** step, 1 - B2 ** step
    params = [p - lr * ((mi / c1) / (jnp.sqrt(vi / c2) + EPS) + wd * p) for p, mi, vi in zip(params, m, v)]
    return params, m, v


def cross_entropy(logits, y):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


def time_train(name, loss_fn, params, x, y, runs, lr, wd=0.0):
    """Times a jitted Adam step (params, m, v, step, x, y) -> (params, m, v, loss)."""
    def step_fn(params, m, v, step, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        params, m, v = adam(params, grads, m, v, step, lr, wd)
        return params, m, v, loss

    params = [jnp.asarray(p) for p in params]
    m = [jnp.zeros_like(p) for p in params]
    v = [jnp.zeros_like(p) for p in params]
    x, y = jnp.asarray(x), jnp.asarray(y)
    t0 = time.perf_counter()
    compiled = jax.jit(step_fn).lower(params, m, v, jnp.float32(1.0), x, y).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(5 + runs):
        step = jnp.float32(i + 1)
        t0 = time.perf_counter()
        params, m, v, loss = compiled(params, m, v, step, x, y)
        loss.block_until_ready()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    report(name, times, compile_s)


def mlp_loss(params, x, y):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jax.nn.relu(h @ params[i] + params[i + 1])
    return cross_entropy(h @ params[-2] + params[-1], y)


def bench_w1(runs):
    x, y = w1_data()
    time_train("w1", mlp_loss, w1_init(), x, y, runs, 1e-3)


def uniform(rng, shape, fan_in):
    a = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-a, a, shape).astype(np.float32)


def bench_w2(runs):
    """conv 3x3 1->32 + ReLU + maxpool 2, conv 3x3 32->64 + ReLU + maxpool 2,
    dense 1600->128 + ReLU, dense 10; NCHW as our conv2d; Adam 1e-3."""
    rng = np.random.default_rng(0)
    params = [uniform(rng, (32, 1, 3, 3), 9), uniform(rng, (32,), 9),
              uniform(rng, (64, 32, 3, 3), 288), uniform(rng, (64,), 288),
              uniform(rng, (1600, 128), 1600), uniform(rng, (128,), 1600),
              uniform(rng, (128, 10), 128), uniform(rng, (10,), 128)]
    x, y = w1_data()

    def conv(h, w, b):
        out = jax.lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[None, :, None, None]

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    def loss(p, x, y):
        h = x.reshape(-1, 1, 28, 28)
        h = pool(jax.nn.relu(conv(h, p[0], p[1])))
        h = pool(jax.nn.relu(conv(h, p[2], p[3])))
        h = jax.nn.relu(h.reshape(h.shape[0], -1) @ p[4] + p[5])
        return cross_entropy(h @ p[6] + p[7], y)

    time_train("w2", loss, params, x, y, runs, 1e-3)


def bench_w3(runs):
    """vocab 256, d 128, 4 heads, 2 pre-LN layers, MLP 512 tanh-GELU, seq 128,
    batch 32, causal, AdamW 3e-4 (weight decay 0.01 as optax's default)."""
    V, D, H, F, T, B, L = 256, 128, 4, 512, 128, 32, 2
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((V, D)) * 0.02).astype(np.float32),
              (rng.standard_normal((T, D)) * 0.02).astype(np.float32)]
    for _ in range(L):
        params += [np.ones(D, np.float32), np.zeros(D, np.float32),
                   uniform(rng, (D, 3 * D), D), np.zeros(3 * D, np.float32),
                   uniform(rng, (D, D), D), np.zeros(D, np.float32),
                   np.ones(D, np.float32), np.zeros(D, np.float32),
                   uniform(rng, (D, F), D), np.zeros(F, np.float32),
                   uniform(rng, (F, D), F), np.zeros(D, np.float32)]
    params += [np.ones(D, np.float32), np.zeros(D, np.float32), uniform(rng, (D, V), D), np.zeros(V, np.float32)]
    stream = rng.integers(0, V, B * T + 1).astype(np.int32)
    x, y = stream[:-1].reshape(B, T), stream[1:].reshape(B, T)

    def layer_norm(h, g, b):
        mu = h.mean(-1, keepdims=True)
        var = ((h - mu) ** 2).mean(-1, keepdims=True)
        return (h - mu) / jnp.sqrt(var + 1e-5) * g + b

    def gelu(h):
        return 0.5 * h * (1.0 + jnp.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))

    mask = jnp.tril(jnp.ones((T, T), bool))

    def loss(p, x, y):
        h = p[0][x] + p[1]
        for l in range(L):
            g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, c1, w2, c2 = p[2 + 12 * l: 14 + 12 * l]
            a = layer_norm(h, g1, b1) @ wqkv + bqkv
            q, k, v = [t.reshape(B, T, H, D // H).transpose(0, 2, 1, 3) for t in jnp.split(a, 3, axis=-1)]
            s = (q @ k.transpose(0, 1, 3, 2)) / np.sqrt(D // H)
            s = jnp.where(mask, s, -1e9)
            o = (jax.nn.softmax(s, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
            h = h + o @ wo + bo
            h = h + gelu(layer_norm(h, g2, b2) @ w1 + c1) @ w2 + c2
        g, b, wh, bh = p[-4:]
        logits = (layer_norm(h, g, b) @ wh + bh).reshape(B * T, V)
        return cross_entropy(logits, y.reshape(-1))

    time_train("w3", loss, params, x, y, runs, 3e-4, wd=0.01)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + jnp.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def bench_w4(runs):
    w, b, x = (jnp.asarray(a) for a in w4_data())

    def loss(w, b, x):
        return jnp.sum(gelu_tanh(x * w + b) ** 2)

    t0 = time.perf_counter()
    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(w, b, x).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(5 + runs):
        t0 = time.perf_counter()
        out = f(w, b, x)
        jax.block_until_ready(out)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    report("w4", times, compile_s, **{"GB/s": round(20 * W4_N / (statistics.median(times) * 1e9), 2)})


def bench_w5(runs):
    x, y = w1_data()
    params = [jnp.asarray(p) for p in w1_init()]
    rng = np.random.default_rng(5)
    tangents = [jnp.asarray(rng.uniform(-1, 1, p.shape).astype(np.float32)) for p in params]
    x, y = jnp.asarray(x), jnp.asarray(y)

    def hvp(params, tangents, x, y):
        return jax.jvp(lambda p: jax.grad(mlp_loss)(p, x, y), (params,), (tangents,))[1]

    t0 = time.perf_counter()
    f = jax.jit(hvp).lower(params, tangents, x, y).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(5 + runs):
        t0 = time.perf_counter()
        out = f(params, tangents, x, y)
        jax.block_until_ready(out)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    report("w5", times, compile_s)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("workloads", nargs="*", default=["w1", "w2", "w3", "w4", "w5"],
                   choices=["w1", "w2", "w3", "w4", "w5"])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--precision", choices=["highest", "default"], default="highest")
    a = p.parse_args()
    global IMPL
    if a.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    else:
        IMPL = "jax_default"
    for w in a.workloads:
        globals()["bench_" + w](max(a.runs, 20))


if __name__ == "__main__":
    main()
