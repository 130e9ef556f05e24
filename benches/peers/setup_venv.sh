#!/usr/bin/env bash
# Creates (once) the Python virtual environment the peer benchmarks run in:
# JAX (CPU) and PyTorch (CPU). Prints the venv's path on stdout.
# Usage: benches/peers/setup_venv.sh [VENV_DIR]
# Default VENV_DIR: ${CARGO_TARGET_DIR:-target}/peers-venv (under target/ so
# `cargo clean` removes it and git ignores it).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-${CARGO_TARGET_DIR:-$root/target}/peers-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import jax, torch' 2>/dev/null; then
    echo "$venv"
    exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet 'jax[cpu]' numpy >&2
# PyTorch's CPU-only wheels live on its own index; where that index cannot be
# reached, fall back to the default (PyPI) wheel, which also runs on the CPU.
if ! "$venv/bin/python" -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu >&2 2>/dev/null; then
    echo "setup_venv: the PyTorch CPU index is unreachable; installing torch from the default index" >&2
    "$venv/bin/python" -m pip install --quiet torch >&2
fi
"$venv/bin/python" -c 'import jax, torch; print("jax", jax.__version__, "torch", torch.__version__)' >&2
echo "$venv"
