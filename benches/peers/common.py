"""Shared helpers of the peer benchmarks: argument parsing, fixed-seed data,
medians, and the JSON line each measurement prints (one object per workload,
the same keys as `cargo bench --bench train_step -- --json`)."""
import argparse
import json
import statistics

import numpy as np

W1_BATCH, W1_SIZES = 128, (784, 256, 256, 10)
W4_N = 4_194_304


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("workloads", nargs="*", default=["w1", "w4"], choices=["w1", "w2", "w3", "w4"])
    p.add_argument("--runs", type=int, default=30)
    a = p.parse_args()
    a.runs = max(a.runs, 20)
    return a


def w1_data(seed=42):
    """A random batch: inputs in [0, 1), integer labels in 0..9."""
    rng = np.random.default_rng(seed)
    x = rng.random((W1_BATCH, W1_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, 10, size=W1_BATCH).astype(np.int32)
    return x, y


def w1_init(seed=0):
    """PyTorch's nn.Linear rule: weight and bias uniform(+-1/sqrt(fan_in)).
    Weights are [fan_in, fan_out] (x @ W + b), as in our model files."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(W1_SIZES[:-1], W1_SIZES[1:]):
        a = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-a, a, (fan_in, fan_out)).astype(np.float32))
        params.append(rng.uniform(-a, a, (fan_out,)).astype(np.float32))
    return params


def w4_data(seed=7):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1.0, 1.0, W4_N).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, W4_N).astype(np.float32)
    x = rng.uniform(-2.0, 2.0, W4_N).astype(np.float32)
    return w, b, x


def report(impl, workload, times_s, **extra):
    ms = [t * 1e3 for t in times_s]
    out = {"impl": impl, "workload": workload, "step_ms": round(statistics.median(ms), 4),
           "step_min_ms": round(min(ms), 4), "runs": len(ms)}
    if workload == "w4":
        out["GB/s"] = round(20 * W4_N / (statistics.median(ms) * 1e6), 4)
    out.update(extra)
    print(json.dumps(out), flush=True)
