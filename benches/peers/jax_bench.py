"""Peer benchmark: W1 (MLP train step with Adam) and W4 (value and gradient
of sum(gelu_tanh(x*w+b)^2)) in JAX, jit-compiled, on the CPU. Prints one JSON
line per workload: median step time over --runs calls after warm-up, and the
compile time (trace + lower + XLA compile)."""
import os
import time

import jax
import jax.numpy as jnp

from common import parse_args, report, w1_data, w1_init, w4_data

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


def w1_loss(params, x, y):
    h = x
    for i in range(0, len(params) - 2, 2):
        h = jax.nn.relu(h @ params[i] + params[i + 1])
    logits = h @ params[-2] + params[-1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


def w1_step(params, m, v, step, x, y):
    """One training step; Adam as optax.adam (bias-corrected), written out."""
    loss, grads = jax.value_and_grad(w1_loss)(params, x, y)
    m = [B1 * mi + (1 - B1) * g for mi, g in zip(m, grads)]
    v = [B2 * vi + (1 - B2) * g * g for vi, g in zip(v, grads)]
    m_hat = [mi / (1 - B1 ** step) for mi in m]
    v_hat = [vi / (1 - B2 ** step) for vi in v]
    params = [p - LR * mh / (jnp.sqrt(vh) + EPS) for p, mh, vh in zip(params, m_hat, v_hat)]
    return params, m, v, loss


def bench_w1(runs):
    x, y = w1_data()
    x, y = jnp.asarray(x), jnp.asarray(y)
    params = [jnp.asarray(p) for p in w1_init()]
    m = [jnp.zeros_like(p) for p in params]
    v = [jnp.zeros_like(p) for p in params]
    t0 = time.perf_counter()
    step_fn = jax.jit(w1_step).lower(params, m, v, jnp.float32(1.0), x, y).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(5 + runs):
        t0 = time.perf_counter()
        params, m, v, loss = step_fn(params, m, v, jnp.float32(i + 1), x, y)
        loss.block_until_ready()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    report("jax", "w1", times, compile_ms=round(compile_s * 1e3, 2), version=jax.__version__,
           xla_flags=os.environ.get("XLA_FLAGS", ""))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + jnp.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def w4_loss(w, b, x):
    return jnp.sum(gelu_tanh(x * w + b) ** 2)


def bench_w4(runs):
    w, b, x = (jnp.asarray(a) for a in w4_data())
    t0 = time.perf_counter()
    fn = jax.jit(jax.value_and_grad(w4_loss, argnums=(0, 1))).lower(w, b, x).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(3 + runs):
        t0 = time.perf_counter()
        value, (gw, gb) = fn(w, b, x)
        jax.block_until_ready((value, gw, gb))
        if i >= 3:
            times.append(time.perf_counter() - t0)
    report("jax", "w4", times, compile_ms=round(compile_s * 1e3, 2), version=jax.__version__,
           xla_flags=os.environ.get("XLA_FLAGS", ""))


if __name__ == "__main__":
    args = parse_args()
    for w in args.workloads:
        {"w1": bench_w1, "w4": bench_w4}[w](args.runs)
