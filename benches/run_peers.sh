#!/usr/bin/env bash
# Runs W1-W4 on ours and PyTorch (eager), W1 and W4 on JAX (jit; W2, W3
# and W5 in JAX: benches/gpu/jax_gpu.py, which also runs on the CPU), interleaved
# (ours, jax, torch, ours, jax, torch, ...) for ROUNDS rounds, then prints
# each peer's medians and the ratios ours / peer per round and overall.
# Usage: benches/run_peers.sh [ROUNDS=3] [RUNS=30]
# Needs python3 with venv and pip; the venv is made once under
# ${CARGO_TARGET_DIR:-target}/peers-venv by benches/peers/setup_venv.sh.
# PEER_THREADS (default 1): threads the peers and ours may use (ours as
# JLC_THREADS, benches/peers/threads.sh). 0 leaves the libraries' defaults
# (PyTorch's OpenMP pool spins badly when the 2-vCPU VM is shared: 200 ms
# W1 steps instead of 5-8 ms).
# Never run from `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rounds="${1:-3}"
runs="${2:-30}"
target="${CARGO_TARGET_DIR:-$root/target}"
venv="$(benches/peers/setup_venv.sh)"
py="$venv/bin/python"
. benches/peers/threads.sh

cargo bench --bench train_step --no-run >&2
# The bench binary cargo just built (the newest train_step-* executable).
ours="$(ls -t "$target"/release/deps/train_step-* | grep -v '\.d$' | head -1)"

out="$target/peers-results.jsonl"
: > "$out"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(getconf _NPROCESSORS_ONLN) vCPUs, load $(cut -d' ' -f1 /proc/loadavg) at start; threads (peers and ours): ${threads} (0 = default)" | tee "$out.machine" >&2
for r in $(seq 1 "$rounds"); do
    echo "round $r/$rounds" >&2
    "$ours" w1 w2 w3 w4 --json --runs "$runs" | sed "s/^{/{\"round\": $r, /" >> "$out"
    (cd benches/peers && "$py" jax_bench.py w1 w4 --runs "$runs") | sed "s/^{/{\"round\": $r, /" >> "$out"
    if "$py" -c 'import torch' 2>/dev/null; then
        (cd benches/peers && "$py" torch_bench.py w1 w2 w3 w4 --runs "$runs") | sed "s/^{/{\"round\": $r, /" >> "$out"
    fi
done
"$py" benches/peers/summarize.py "$out" "$(cat "$out.machine")"
