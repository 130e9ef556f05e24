"""Peer benchmark: W1 (MLP train step with Adam), W2 (CNN train step with
Adam), W3 (transformer train step with AdamW) and W4 (value and gradient of
sum(gelu_tanh(x*w+b)^2)) in PyTorch eager mode on the CPU. Prints one JSON
line per workload: median step time over --runs calls after warm-up."""
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import parse_args, report, w1_data, w1_init, w4_data


def time_steps(step, runs, warmup):
    """Seconds per call of `step` over `runs` calls after `warmup` untimed ones."""
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def bench_w1(runs):
    x, y = w1_data()
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    init = w1_init()
    # Weights stored [fan_in, fan_out] as in our model files: h @ W + b.
    params = [torch.from_numpy(p).clone().requires_grad_() for p in init]
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        h = x
        for i in range(0, len(params) - 2, 2):
            h = torch.relu(h @ params[i] + params[i + 1])
        logits = h @ params[-2] + params[-1]
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        return loss.item()

    times = time_steps(step, runs, warmup=5)
    report("torch", "w1", times, version=torch.__version__, threads=torch.get_num_threads())


def bench_w2(runs):
    """W2 as benches/gpu/jax_gpu.py writes it (and our train_step bench):
    conv 3x3 1->32 + ReLU + maxpool 2, conv 3x3 32->64 + ReLU + maxpool 2,
    dense 1600->128 + ReLU, dense 10; NCHW; cross-entropy; Adam 1e-3;
    batch 128 of random data (PyTorch's default initialization ranges)."""
    x, y = w1_data()
    x, y = torch.from_numpy(x).reshape(-1, 1, 28, 28), torch.from_numpy(y).long()
    rng = np.random.default_rng(0)

    def uniform(shape, fan_in):
        a = 1.0 / np.sqrt(fan_in)
        return torch.from_numpy(rng.uniform(-a, a, shape).astype(np.float32)).requires_grad_()

    params = [uniform((32, 1, 3, 3), 9), uniform((32,), 9), uniform((64, 32, 3, 3), 288), uniform((64,), 288),
              uniform((1600, 128), 1600), uniform((128,), 1600), uniform((128, 10), 128), uniform((10,), 128)]
    opt = torch.optim.Adam(params, lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        h = F.max_pool2d(torch.relu(F.conv2d(x, params[0], params[1])), 2)
        h = F.max_pool2d(torch.relu(F.conv2d(h, params[2], params[3])), 2)
        h = torch.relu(h.reshape(h.shape[0], -1) @ params[4] + params[5])
        loss = F.cross_entropy(h @ params[6] + params[7], y)
        loss.backward()
        opt.step()
        return loss.item()

    times = time_steps(step, runs, warmup=5)
    report("torch", "w2", times, version=torch.__version__, threads=torch.get_num_threads())


def bench_w3(runs):
    """W3 as benches/gpu/jax_gpu.py writes it: character transformer, vocab
    256, d 128, 4 heads, 2 pre-LN layers, MLP 512 with tanh-GELU, seq 128,
    batch 32, causal mask, AdamW 3e-4 (weight decay 0.01)."""
    V, D, H, Fd, T, B, L = 256, 128, 4, 512, 128, 32, 2
    rng = np.random.default_rng(0)

    def t(a):
        return torch.from_numpy(np.asarray(a, np.float32)).requires_grad_()

    def uniform(shape, fan_in):
        a = 1.0 / np.sqrt(fan_in)
        return t(rng.uniform(-a, a, shape))

    params = [t(rng.standard_normal((V, D)) * 0.02), t(rng.standard_normal((T, D)) * 0.02)]
    for _ in range(L):
        params += [t(np.ones(D)), t(np.zeros(D)), uniform((D, 3 * D), D), t(np.zeros(3 * D)),
                   uniform((D, D), D), t(np.zeros(D)), t(np.ones(D)), t(np.zeros(D)),
                   uniform((D, Fd), D), t(np.zeros(Fd)), uniform((Fd, D), Fd), t(np.zeros(D))]
    params += [t(np.ones(D)), t(np.zeros(D)), uniform((D, V), D), t(np.zeros(V))]
    stream = torch.from_numpy(rng.integers(0, V, B * T + 1)).long()
    x, y = stream[:-1].reshape(B, T), stream[1:].reshape(B, T)
    mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
    opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)

    def layer_norm(h, g, b):
        return F.layer_norm(h, (D,), g, b, eps=1e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        p = params
        h = p[0][x] + p[1]
        for l in range(L):
            g1, b1, wqkv, bqkv, wo, bo, g2, b2, w1, c1, w2, c2 = p[2 + 12 * l: 14 + 12 * l]
            a = layer_norm(h, g1, b1) @ wqkv + bqkv
            q, k, v = [u.reshape(B, T, H, D // H).transpose(1, 2) for u in a.split(D, dim=-1)]
            s = (q @ k.transpose(-1, -2)) / np.sqrt(D // H)
            s = torch.where(mask, s, torch.tensor(-1e9))
            o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, D)
            h = h + o @ wo + bo
            h = h + gelu_tanh(layer_norm(h, g2, b2) @ w1 + c1) @ w2 + c2
        g, b, wh, bh = p[-4:]
        logits = (layer_norm(h, g, b) @ wh + bh).reshape(B * T, V)
        loss = F.cross_entropy(logits, y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    times = time_steps(step, runs, warmup=3)
    report("torch", "w3", times, version=torch.__version__, threads=torch.get_num_threads())


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))


def bench_w4(runs):
    w, b, x = (torch.from_numpy(a) for a in w4_data())
    w.requires_grad_()
    b.requires_grad_()
    times = []
    for i in range(3 + runs):
        t0 = time.perf_counter()
        loss = torch.sum(gelu_tanh(x * w + b) ** 2)
        gw, gb = torch.autograd.grad(loss, (w, b))
        loss.item()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    report("torch", "w4", times, version=torch.__version__, threads=torch.get_num_threads())


if __name__ == "__main__":
    args = parse_args()
    for w in args.workloads:
        {"w1": bench_w1, "w2": bench_w2, "w3": bench_w3, "w4": bench_w4}[w](args.runs)
