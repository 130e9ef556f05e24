"""Peer training runs on Fashion-MNIST: W1 (MLP 784-256-256-10) or W2 (the
two-conv CNN) with Adam 1e-3, batch 128, PyTorch's default initialization,
trained on all 60,000 images as examples/fashion_mnist_{mlp,cnn}.jl are with
`--set data.val_split=0`: a fresh shuffle per epoch, the last partial batch
dropped (468 steps per epoch, as our trainer), then test accuracy on the
10,000 t10k images. Prints one JSON line: the peer, workload, seed, each
epoch's training-loop wall time (batch gathering + steps; JAX's compile is
done before the first epoch and reported apart) and the test accuracy.
Usage: train_fashion.py jax|torch w1|w2 [--epochs N] [--seed S] [--standardize]
(--standardize: pixels in [0, 1] mapped to (x - 0.2860) / 0.3530, the
training set's mean and standard deviation, as examples/fashion_mnist_cnn.jl
does in its forward).
Reads /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)."""
import argparse
import gzip
import json
import time

import numpy as np

DATA = "/usr/share/datasets/fashion-mnist/"
BATCH, LR, B1, B2, EPS = 128, 1e-3, 0.9, 0.999, 1e-8
PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


def idx(name, offset, shape):
    with gzip.open(DATA + name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset).reshape(shape)


def load(standardize):
    def pixels(name):
        x = idx(name, 16, (-1, 784)).astype(np.float32) / np.float32(255.0)
        return (x - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD) if standardize else x

    xtr = pixels("train-images-idx3-ubyte.gz")
    ytr = idx("train-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int32)
    xte = pixels("t10k-images-idx3-ubyte.gz")
    yte = idx("t10k-labels-idx1-ubyte.gz", 8, (-1,)).astype(np.int32)
    return xtr, ytr, xte, yte


def shapes(workload):
    """(shape, fan_in) of each parameter, weights as our model files hold them."""
    if workload == "w1":
        sizes = (784, 256, 256, 10)
        out = []
        for i, o in zip(sizes[:-1], sizes[1:]):
            out += [((i, o), i), ((o,), i)]
        return out
    return [((32, 1, 3, 3), 9), ((32,), 9), ((64, 32, 3, 3), 288), ((64,), 288),
            ((1600, 128), 1600), ((128,), 1600), ((128, 10), 128), ((10,), 128)]


def init(workload, rng):
    return [rng.uniform(-1 / np.sqrt(f), 1 / np.sqrt(f), s).astype(np.float32) for s, f in shapes(workload)]


def run_jax(workload, epochs, seed, data):
    import jax
    import jax.numpy as jnp

    def forward(p, x):
        if workload == "w1":
            h = jax.nn.relu(x @ p[0] + p[1])
            h = jax.nn.relu(h @ p[2] + p[3])
            return h @ p[4] + p[5]
        dn = ("NCHW", "OIHW", "NCHW")
        h = x.reshape(-1, 1, 28, 28)
        for w, b in ((p[0], p[1]), (p[2], p[3])):
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "VALID", dimension_numbers=dn) + b[None, :, None, None]
            h = jax.lax.reduce_window(jax.nn.relu(h), -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = jax.nn.relu(h.reshape(h.shape[0], -1) @ p[4] + p[5])
        return h @ p[6] + p[7]

    def loss(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))

    def step(p, m, v, t, x, y):
        g = jax.grad(loss)(p, x, y)
        m = [B1 * a + (1 - B1) * b for a, b in zip(m, g)]
        v = [B2 * a + (1 - B2) * b * b for a, b in zip(v, g)]
        p = [w - LR * (a / (1 - B1 ** t)) / (jnp.sqrt(b / (1 - B2 ** t)) + EPS) for w, a, b in zip(p, m, v)]
        return p, m, v

    xtr, ytr, xte, yte = data
    rng = np.random.default_rng(seed)
    p = [jnp.asarray(a) for a in init(workload, rng)]
    m = [jnp.zeros_like(a) for a in p]
    v = [jnp.zeros_like(a) for a in p]
    t0 = time.perf_counter()
    fn = jax.jit(step).lower(p, m, v, jnp.float32(1), xtr[:BATCH], ytr[:BATCH]).compile()
    compile_s = time.perf_counter() - t0
    epoch_s, t = [], 1
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = rng.permutation(len(xtr))
        for i in range(len(xtr) // BATCH):
            idx_ = perm[i * BATCH:(i + 1) * BATCH]
            p, m, v = fn(p, m, v, jnp.float32(t), xtr[idx_], ytr[idx_])
            t += 1
        jax.block_until_ready(p)
        epoch_s.append(time.perf_counter() - t0)
    logits = jax.jit(forward)(p, xte)
    acc = float(jnp.mean(jnp.argmax(logits, -1) == yte))
    return epoch_s, acc, {"compile_s": round(compile_s, 3), "version": jax.__version__}


def run_torch(workload, epochs, seed, data):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in data)
    ytr, yte = ytr.long(), yte.long()
    rng = np.random.default_rng(seed)
    p = [torch.tensor(a, requires_grad=True) for a in init(workload, rng)]
    opt = torch.optim.Adam(p, lr=LR, betas=(B1, B2), eps=EPS)

    def forward(x):
        if workload == "w1":
            h = F.relu(x @ p[0] + p[1])
            h = F.relu(h @ p[2] + p[3])
            return h @ p[4] + p[5]
        h = x.reshape(-1, 1, 28, 28)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[0], p[1])), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3])), 2)
        h = F.relu(h.flatten(1) @ p[4] + p[5])
        return h @ p[6] + p[7]

    epoch_s = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(rng.permutation(len(xtr)))
        for i in range(len(xtr) // BATCH):
            idx_ = perm[i * BATCH:(i + 1) * BATCH]
            loss = F.cross_entropy(forward(xtr[idx_]), ytr[idx_])
            opt.zero_grad()
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t0)
    with torch.no_grad():
        acc = float((forward(xte).argmax(-1) == yte).float().mean())
    return epoch_s, acc, {"version": torch.__version__}


def main():
    a = argparse.ArgumentParser()
    a.add_argument("peer", choices=["jax", "torch"])
    a.add_argument("workload", choices=["w1", "w2"])
    a.add_argument("--epochs", type=int, default=5)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--standardize", action="store_true")
    args = a.parse_args()
    run = run_jax if args.peer == "jax" else run_torch
    epoch_s, acc, extra = run(args.workload, args.epochs, args.seed, load(args.standardize))
    print(json.dumps({"peer": args.peer, "workload": args.workload, "seed": args.seed, "epochs": args.epochs,
                      "standardize": args.standardize,
                      "epoch_s": [round(s, 3) for s in epoch_s], "test_acc": round(acc, 4), **extra}))


if __name__ == "__main__":
    main()
