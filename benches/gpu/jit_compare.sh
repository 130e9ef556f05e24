#!/usr/bin/env bash
# Where a step's GPU compile time goes, by way of turning PTX into machine
# code: the driver's JIT (its cache off: cold), nvJitLink on one thread per
# core with an empty cubin cache (cold), and again with that cache filled
# (warm). Runs the prebuilt train_step from target-gpu-dist/ (see
# build.sh) with JLC_CUDA_LOAD_TIMES=1 and prints, per workload and way,
# the load-time phases and the compile total. Reported, not pass/fail.
# Usage (repository root, on the GPU machine): bash benches/gpu/jit_compare.sh
# Environment: DIST (default target-gpu-dist), WORKLOADS (default
# "w1 w2 w3 w4 w5"), REPEATS (default 2).
set -u
cd "$(dirname "$0")/../.."
DIST=${DIST:-target-gpu-dist}
. benches/gpu/cuda_libs.sh
CACHE=$(mktemp -d)
for rep in $(seq 1 "${REPEATS:-2}"); do
    rm -rf "$CACHE"/*
    for w in ${WORKLOADS:-w1 w2 w3 w4 w5}; do
        for way in driver-cold nvjitlink-cold nvjitlink-warm; do
            case $way in
            driver-cold) env=(JLC_CUDA_JIT=driver CUDA_CACHE_DISABLE=1) ;;
            nvjitlink-cold) rm -rf "$CACHE"/*; env=(JLC_CUDA_JIT=nvjitlink "JLC_CACHE_DIR=$CACHE") ;;
            nvjitlink-warm) env=(JLC_CUDA_JIT=nvjitlink "JLC_CACHE_DIR=$CACHE") ;;
            esac
            out=$(env "${env[@]}" JLC_CUDA_LOAD_TIMES=1 timeout 120 "$DIST/train_step" "$w" --backend cuda --json --runs 3 2>&1)
            load=$(grep -o 'JLC_CUDA_LOAD_TIMES: .*' <<<"$out" | head -n 1)
            total=$(grep -o '"compile_ms": *[0-9.]*' <<<"$out" | head -n 1)
            [ -n "$total" ] || total="failed: $(tail -n 3 <<<"$out")"
            echo "$rep $w $way | $load | $total"
        done
    done
done
rm -rf "$CACHE"
