# Sourced by the peer scripts and runners: how many threads JAX, PyTorch
# and ours may use, the same number for all. PEER_THREADS (default 1; ours
# reads it as JLC_THREADS, the host kernels' thread count); 0 leaves every
# library at its default (ours: every CPU; PyTorch's OpenMP pool spins
# badly when the 2-vCPU VM is shared).
threads="${PEER_THREADS:-1}"
if [ "$threads" != 0 ]; then
    export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads" JLC_THREADS="$threads"
    # (an `if`, not `&&`: a sourced file's last status is the caller's under `set -e`)
    if [ "$threads" = 1 ]; then
        export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    fi
fi
