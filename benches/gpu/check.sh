#!/usr/bin/env bash
# The GPU device check: runs the prebuilt binaries from target-gpu-dist/
# (made by benches/gpu/build.sh) on a machine with an NVIDIA GPU and no Rust
# toolchain. Run from the repository root:  bash benches/gpu/check.sh
#
#   1. it gpu_*           every op on the GPU vs the interpreter (incl. gather,
#                         scatter_add, random_*, conv2d, pooling, batch_matmul), and three
#                         digits training steps + validation (JLC_REQUIRE_GPU=1:
#                         a missing GPU fails instead of skipping)
#   2. jlc --backend cuda trains examples/digits_mlp.jl; val_acc >= 0.90; and
#      40 steps of examples/char_transformer.jl (its on_train_end sampling
#      uses scan, so it runs on the CPU): exit 0 and sample.txt written
#   3. compute-sanitizer  memcheck over 1 and over a 1-epoch jlc run, initcheck
#                         over 1 (skipped with a note if not installed)
#   5. trainer epochs     W1 through the trainer on the GPU (3 epochs of
#                         trainer_overhead --backend cuda, then again with
#                         JLC_STAGED_BATCHES=0; reported)
#   4. timings            W1-W5 step times, ours (train_step --backend cuda)
#                         and JAX (benches/gpu/jax_gpu.py) on this GPU,
#                         interleaved for ROUNDS rounds, summarized as ratios
#                         by benches/peers/summarize.py (reported, not
#                         pass/fail; skipped if JAX cannot be imported)
# Exits non-zero if any check fails; prints a summary table at the end.
# Environment: DIST (default target-gpu-dist), CHECK_LOG_DIR (default
# $DIST/logs; the summary is kept in summary.txt there), SKIP_SANITIZER=1
# to skip step 3, SANITIZER_ALONGSIDE=1 to run it during steps 1-2, SKIP_TIMINGS=1 to skip
# step 4, ROUNDS (default 3), RUNS (default 50), WORKLOADS (default
# "w1 w2 w3 w4 w5"), JAX_PRECISIONS (default "highest default"),
# TF32_WORKLOADS (ours with JLC_CUDA_TF32=1; default "w2 w3").
set -u
cd "$(dirname "$0")/../.."
DIST=${DIST:-target-gpu-dist}
LOGS=${CHECK_LOG_DIR:-$DIST/logs}
mkdir -p "$LOGS"

if [ ! -x "$DIST/it" ] || [ ! -x "$DIST/jlc" ]; then
    echo "check.sh: $DIST/it and $DIST/jlc are missing: run benches/gpu/build.sh first" >&2
    exit 2
fi
[ -f "$DIST/BUILD_INFO" ] && cat "$DIST/BUILD_INFO"

. benches/gpu/cuda_libs.sh
# A cubin cache of this check's own: the first timing round compiles cold.
export JLC_CACHE_DIR="${JLC_CACHE_DIR:-$(mktemp -d)}"
export JLC_REQUIRE_GPU=1 JLC_REPO_ROOT="$PWD" RUST_BACKTRACE=1
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not available)"

# The summary is a file, not a shell array: the sanitizer block may run in a
# background subshell (SANITIZER_ALONGSIDE=1), and a check cut short by a
# time limit still leaves every finished line behind.
SUMMARY_FILE="$LOGS/summary.txt"
: >"$SUMMARY_FILE"
# summary LINE: records one line ("PASS ...", "FAIL ...", "SKIP ...", "INFO ...").
summary() {
    echo "$1" >>"$SUMMARY_FILE"
}
# run NAME TIMEOUT CMD...: runs CMD with a time limit, logs to $LOGS/NAME.log.
run() {
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name: $*"
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    local secs=$((SECONDS - start))
    if [ $rc -eq 0 ]; then
        summary "PASS  $name (${secs}s)"
        tail -n 3 "$LOGS/$name.log"
    else
        summary "FAIL  $name (rc $rc, ${secs}s, log $LOGS/$name.log)"
        tail -n 60 "$LOGS/$name.log"
    fi
    return $rc
}

# 3. The same under compute-sanitizer.
sanitizer_checks() {
    local san train_dir
    san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
    if [ "${SKIP_SANITIZER:-0}" = 1 ]; then
        summary "SKIP  compute-sanitizer (SKIP_SANITIZER=1)"
        return
    elif [ -z "$san" ]; then
        summary "SKIP  compute-sanitizer (not installed)"
        return
    fi
    train_dir=$(mktemp -d)
    # The out-of-memory test fails an allocation on purpose: the sanitizer
    # counts that API error, so it runs outside the sanitizer (step 1).
    run memcheck-tests 400 "$san" --tool memcheck --error-exitcode 1 "$DIST/it" gpu_ --test-threads=1 --skip gpu_out_of_memory
    run memcheck-train 300 "$san" --tool memcheck --error-exitcode 1 "$DIST/jlc" run examples/digits_mlp.jl --backend cuda \
        --set trainer.max_epochs=1 --set "trainer.default_root_dir=$train_dir"
    run initcheck-tests 400 "$san" --tool initcheck --error-exitcode 1 "$DIST/it" gpu_ --test-threads=1 --skip gpu_out_of_memory
    rm -rf "$train_dir"
}

# SANITIZER_ALONGSIDE=1 runs step 3 in the background during steps 1-2 (the
# GPU has room for both; results are pass/fail, not timings), which saves
# minutes of a short device lease. Timings always run alone.
SANITIZER_PID=
if [ "${SANITIZER_ALONGSIDE:-0}" = 1 ]; then
    sanitizer_checks &
    SANITIZER_PID=$!
fi

# 1. Every op and the digits step against the interpreter.
run gpu-tests 300 "$DIST/it" gpu_ --test-threads=1

# 2. Train the digits classifier on the GPU.
TRAIN_DIR=$(mktemp -d)
if run digits-train 300 "$DIST/jlc" run examples/digits_mlp.jl --backend cuda --set "trainer.default_root_dir=$TRAIN_DIR"; then
    ACC=$(grep -o 'val_acc=[0-9.]*' "$LOGS/digits-train.log" | tail -n 1 | cut -d= -f2)
    if python3 -c "import sys; sys.exit(0 if float('${ACC:-0}') >= 0.90 else 1)"; then
        summary "PASS  digits val_acc = $ACC (>= 0.90)"
    else
        summary "FAIL  digits val_acc = ${ACC:-missing} (< 0.90)"
    fi
fi

CT_DIR=$(mktemp -d)
if run char-transformer 300 "$DIST/jlc" run examples/char_transformer.jl --backend cuda \
    --set trainer.max_steps=40 --set trainer.limit_val_batches=4 --set "trainer.default_root_dir=$CT_DIR"; then
    SAMPLE=$(ls "$CT_DIR"/lightning_logs/version_*/sample.txt 2>/dev/null | head -n 1)
    if [ -n "$SAMPLE" ] && [ -s "$SAMPLE" ]; then
        summary "PASS  char_transformer on the GPU wrote $(wc -c <"$SAMPLE") bytes of sample.txt"
    else
        summary "FAIL  char_transformer: no sample.txt"
    fi
fi
rm -rf "$CT_DIR"
rm -rf "$TRAIN_DIR"

if [ -n "$SANITIZER_PID" ]; then
    wait "$SANITIZER_PID"
else
    sanitizer_checks
fi

# 4. Step times against JAX on the same GPU, interleaved by round.
if [ "${SKIP_TIMINGS:-0}" = 1 ]; then
    summary "SKIP  timings (SKIP_TIMINGS=1)"
elif [ ! -x "$DIST/train_step" ]; then
    summary "SKIP  timings ($DIST/train_step missing)"
else
    TIMES="$LOGS/timings.jsonl"
    : >"$TIMES"
    HAVE_JAX=0
    python3 -c 'import jax' 2>/dev/null && HAVE_JAX=1
    for r in $(seq 1 "${ROUNDS:-3}"); do
        for w in ${WORKLOADS:-w1 w2 w3 w4 w5}; do
            # One workload per process, so that one failure costs one row.
            timeout 180 "$DIST/train_step" "$w" --backend cuda --json --runs "${RUNS:-50}" 2>>"$LOGS/timings-ours.log" |
                sed "s/^{/{\"round\": $r, /" >>"$TIMES" || echo "ours $w (round $r) failed: see $LOGS/timings-ours.log"
        done
        # Ours with TF32 GEMMs (opt-in), against JAX's default below.
        for w in ${TF32_WORKLOADS:-w2 w3}; do
            JLC_CUDA_TF32=1 timeout 180 "$DIST/train_step" "$w" --backend cuda --json --runs "${RUNS:-50}" 2>>"$LOGS/timings-ours.log" |
                sed -e "s/^{/{\"round\": $r, /" -e 's/"impl": "ours"/"impl": "ours_tf32"/' >>"$TIMES" ||
                echo "ours_tf32 $w (round $r) failed: see $LOGS/timings-ours.log"
        done
        # JAX with our matmul numerics (float32: "highest"), and with its
        # default (TF32 tensor cores on recent GPUs): see jax_gpu.py.
        for precision in ${JAX_PRECISIONS:-highest default}; do
            [ $HAVE_JAX = 1 ] || break
            timeout 300 python3 benches/gpu/jax_gpu.py ${WORKLOADS:-w1 w2 w3 w4 w5} --runs "${RUNS:-50}" \
                --precision "$precision" 2>>"$LOGS/timings-jax.log" |
                sed "s/^{/{\"round\": $r, /" >>"$TIMES" || echo "jax $precision (round $r) failed: see $LOGS/timings-jax.log"
        done
    done
    python3 benches/peers/summarize.py "$TIMES" "$(nvidia-smi -L 2>/dev/null | head -n 1)" | tee "$LOGS/timings.txt"
    summary "INFO  timings: $LOGS/timings.txt (JAX: $([ $HAVE_JAX = 1 ] && echo yes || echo 'not importable'))"
fi

# 5. Whole epochs of W1 through the trainer (random data of Fashion-MNIST's
# shape unless the dataset is installed).
if [ "${SKIP_TIMINGS:-0}" != 1 ] && [ -x "$DIST/trainer_overhead" ]; then
    if run trainer-epochs 300 "$DIST/trainer_overhead" --backend cuda --epochs 3; then
        summary "INFO  trainer epochs: $LOGS/trainer-epochs.log"
        tail -n 5 "$LOGS/trainer-epochs.log"
    fi
    # The same with each batch given with its own step (no copy overlap).
    if JLC_STAGED_BATCHES=0 run trainer-epochs-unstaged 300 "$DIST/trainer_overhead" --backend cuda --epochs 3; then
        summary "INFO  trainer epochs, batches not staged: $LOGS/trainer-epochs-unstaged.log"
        tail -n 5 "$LOGS/trainer-epochs-unstaged.log"
    fi
fi

echo
echo "===== GPU check summary ====="
cat "$SUMMARY_FILE"
if grep -q '^FAIL' "$SUMMARY_FILE"; then
    echo "GPU check: FAILED"
    exit 1
fi
echo "GPU check: all passed"
