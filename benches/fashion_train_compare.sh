#!/usr/bin/env bash
# Trains W1 (examples/fashion_mnist_mlp.jl) or W2 (examples/fashion_mnist_cnn.jl)
# on all 60,000 Fashion-MNIST images with ours and the peers (JAX jit and
# PyTorch eager, benches/peers/train_fashion.py: same architecture, Adam,
# batch, initialization rule, per-epoch shuffle and dropped last batch),
# interleaved per seed (ours, jax, torch, then the next seed), and prints
# one JSON line per run and a summary: median per-epoch training-loop wall
# time and each run's test accuracy. Issue #8's "wall time per epoch next to
# JAX's from the same run" and the accuracy bars come from here.
# Usage: benches/fashion_train_compare.sh [w1|w2] [EPOCHS] (SEEDS="0 1 2"
# PEERS="jax torch"). Peers and ours run on PEER_THREADS threads (default
# 1, benches/peers/threads.sh). Needs Debian's dataset-fashion-mnist. Never run
# from `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
workload="${1:-w1}"
case "$workload" in
    w1) model=examples/fashion_mnist_mlp.jl; epochs="${2:-5}"; peer_args=() ;;
    # The CNN standardizes its pixels in `forward`; the peers do the same.
    w2) model=examples/fashion_mnist_cnn.jl; epochs="${2:-2}"; peer_args=(--standardize) ;;
    *) echo "usage: $0 [w1|w2] [EPOCHS]" >&2; exit 2 ;;
esac
seeds="${SEEDS:-0 1 2}"
peers="${PEERS:-jax torch}"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$(benches/peers/setup_venv.sh)"
. benches/peers/threads.sh
cargo build --release --bin jlc >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
lines="$work/runs.jsonl"
for seed in $seeds; do
    # Ours: no validation split and no checkpoint monitor, as the peers.
    log="$work/ours-$seed.log"
    (cd "$work" && "$target/release/jlc" run "$root/$model" --seed "$seed" \
        --set data.val_split=0 --set trainer.checkpoint_monitor=train_loss_epoch \
        --set trainer.checkpoint_mode=min --set "trainer.max_epochs=$epochs" >"$log" 2>&1) || { cat "$log" >&2; exit 1; }
    python3 - "$log" "$workload" "$seed" "$epochs" >>"$lines" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
epoch_s = [float(s) for s in re.findall(r"\[([0-9.]+) s training\]", text)]
acc = float(re.findall(r"test_acc\s+([0-9.]+)", text)[-1])
print(json.dumps({"peer": "ours", "workload": sys.argv[2], "seed": int(sys.argv[3]), "epochs": int(sys.argv[4]),
                  "epoch_s": epoch_s, "test_acc": acc}))
PY
    tail -1 "$lines"
    for peer in $peers; do
        "$venv/bin/python" benches/peers/train_fashion.py "$peer" "$workload" --epochs "$epochs" --seed "$seed" "${peer_args[@]}" >>"$lines"
        tail -1 "$lines"
    done
done
python3 - "$lines" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("\npeer   median epoch s   test_acc by seed          mean")
for peer in dict.fromkeys(r["peer"] for r in runs):
    rs = [r for r in runs if r["peer"] == peer]
    ep = statistics.median(s for r in rs for s in r["epoch_s"])
    accs = [r["test_acc"] for r in rs]
    print(f"{peer:6} {ep:14.3f}   {' '.join(f'{a:.4f}' for a in accs):25} {statistics.mean(accs):.4f}")
ours = [s for r in runs if r["peer"] == "ours" for s in r["epoch_s"]]
for peer in dict.fromkeys(r["peer"] for r in runs if r["peer"] != "ours"):
    theirs = [s for r in runs if r["peer"] == peer for s in r["epoch_s"]]
    print(f"epoch time ours / {peer}: {statistics.median(ours) / statistics.median(theirs):.2f}")
PY
