# Sourced by the peer scripts: how many threads JAX and PyTorch may use.
# PEER_THREADS (default 1, as ours is single threaded); 0 leaves the
# libraries' defaults (PyTorch's OpenMP pool spins badly when the 2-vCPU
# VM is shared).
threads="${PEER_THREADS:-1}"
if [ "$threads" != 0 ]; then
    export OMP_NUM_THREADS="$threads" MKL_NUM_THREADS="$threads"
    [ "$threads" = 1 ] && export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
fi
