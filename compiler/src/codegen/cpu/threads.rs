//! How many threads the host kernels (GEMM, convolution, batched matrix
//! products) may use: `jlc run --threads N`, the trainer setting
//! `threads = N` or `JLC_THREADS`, set once per process before a step runs.
//! The default (0, or nothing set) is every CPU the process may use: on the
//! 2-vCPU dev VM two threads measured 0.86-0.9x the one-thread step time on
//! W1, W3 and W5 and the same median on W2 (benches/README.md).
//!
//! Process-wide rather than per compiled program: the JIT calls the host
//! routines as plain `extern "C"` functions, and one process trains one
//! model. Work runs on rayon's global pool (the `gemm` crate's own
//! threading uses it too), split so that every output element is computed
//! by one thread in the same order as with one thread: results are
//! bitwise the same for any thread count (`codegen::tests` checks it).
//! The fused Cranelift loops stay single-threaded.

use std::sync::atomic::{AtomicUsize, Ordering};

/// 0 until set or first read.
static HOST_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the host kernels' thread count; 0 picks the default.
pub fn set_threads(n: usize) {
    HOST_THREADS.store(if n == 0 { default_threads() } else { n }, Ordering::Relaxed);
}

/// The host kernels' thread count.
pub fn threads() -> usize {
    match HOST_THREADS.load(Ordering::Relaxed) {
        0 => {
            let n = default_threads();
            HOST_THREADS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// `JLC_THREADS` when it holds a positive number, else the CPUs available.
fn default_threads() -> usize {
    std::env::var("JLC_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The parallelism to give one `gemm` call that runs alone.
pub(super) fn gemm_parallelism() -> gemm::Parallelism {
    match threads() {
        1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// Whether `items` independent pieces of work of `flops_each` are worth
/// spreading over threads (rayon's task overhead is a few microseconds).
pub(super) fn split_items(items: usize, flops_each: usize) -> bool {
    threads() > 1 && items > 1 && items.saturating_mul(flops_each) >= 1 << 20
}
