#!/usr/bin/env bash
# Builds the GPU device-check artifacts into target-gpu-dist/ (run here, on a
# machine with a Rust toolchain and no GPU). The device machine has no Rust
# toolchain: `benches/gpu/check.sh` runs these prebuilt binaries there.
#
# Produces (stripped):
#   target-gpu-dist/it    the integration-test binary built with --features cuda
#                         (its gpu_* tests compare the GPU with the interpreter)
#   target-gpu-dist/jlc   the CLI built with --features cuda
#   target-gpu-dist/train_step  the step benchmark (release) with --features cuda
#   target-gpu-dist/trainer_overhead  W1 epochs through the trainer (release, cuda)
#   target-gpu-dist/BUILD_INFO  commit, rustc, sizes
# Usage: benches/gpu/build.sh   (honours CARGO_TARGET_DIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
DIST=target-gpu-dist
rm -rf "$DIST"
mkdir -p "$DIST"

cargo build --features cuda --bin jlc
# The test binary's path is only known from cargo's JSON messages.
cargo test --features cuda --test it --no-run --message-format=json >"$DIST/.cargo-test.json"
IT=$(python3 - "$DIST/.cargo-test.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "it" and msg.get("executable"):
        print(msg["executable"])
PY
)
rm "$DIST/.cargo-test.json"
[ -n "$IT" ] || { echo "build.sh: could not find the 'it' test binary" >&2; exit 1; }
# The bench binaries' paths are only known from cargo's JSON messages too.
bench_exe() {
    cargo bench --features cuda --bench "$1" --no-run --message-format=json >"$DIST/.cargo-bench.json"
    python3 - "$DIST/.cargo-bench.json" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == sys.argv[2] and msg.get("executable"):
        print(msg["executable"])
PY
    rm "$DIST/.cargo-bench.json"
}
BENCH=$(bench_exe train_step)
OVERHEAD=$(bench_exe trainer_overhead)
[ -n "$OVERHEAD" ] || { echo "build.sh: could not find the trainer_overhead bench binary" >&2; exit 1; }
[ -n "$BENCH" ] || { echo "build.sh: could not find the train_step bench binary" >&2; exit 1; }
JLC="${CARGO_TARGET_DIR:-target}/debug/jlc"

cp "$IT" "$DIST/it"
cp "$JLC" "$DIST/jlc"
cp "$BENCH" "$DIST/train_step"
cp "$OVERHEAD" "$DIST/trainer_overhead"
strip "$DIST/it" "$DIST/jlc" "$DIST/train_step" "$DIST/trainer_overhead"
{
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "rustc: $(rustc --version)"
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    ls -l "$DIST/it" "$DIST/jlc" "$DIST/train_step" "$DIST/trainer_overhead"
} >"$DIST/BUILD_INFO"
cat "$DIST/BUILD_INFO"
du -sh "$DIST"
