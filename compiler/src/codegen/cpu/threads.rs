//! How many threads the host kernels (GEMM, convolution, batched matrix
//! products) may use: `jlc run --threads N`, the trainer setting
//! `threads = N` or `JLC_THREADS`, set once per process before a step runs.
//! The default (0, or nothing set) is every CPU the process may use: on the
//! 2-vCPU dev VM two threads measured 0.86-0.9x the one-thread step time on
//! W1, W3 and W5 and the same median on W2 (benches/README.md).
//!
//! Process-wide rather than per compiled program: the JIT calls the host
//! routines as plain `extern "C"` functions, and one process trains one
//! model. With more than one thread a routine runs inside a rayon pool of
//! exactly that many threads (`parallel`), so `gemm`'s own split and our
//! per-image and per-batch-element splits stay within the count. Work is
//! split so that every output element is computed by one thread in the
//! same order as with one thread: results are bitwise the same for any
//! thread count (`codegen::tests` checks it). A compiled call that calls
//! any routine that may split runs whole on the pool (`CpuFunc::execute`),
//! so that the routines inside find themselves on the pool already (one
//! hand-off per call, not one per GEMM). Large fused elementwise loops,
//! row reductions and full maxima/minima are outlined by the JIT and run in
//! parts here (`jl_parallel_for`); copies and full sums stay on the calling
//! thread.
//!
//! Floating-point mode: FTZ/DAZ (`runtime`'s `FlushDenormals`) is per
//! thread. `parallel` gives the pool's threads the caller's mode before
//! running on them, so flushing covers the kernels on every thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// 0 until set or first read.
static HOST_THREADS: AtomicUsize = AtomicUsize::new(0);

/// The most threads a count may ask for (`jlc run --threads`, the trainer
/// setting and `JLC_THREADS` are checked against it; `set_threads` clamps
/// to it): each pool thread reserves a stack and packing buffers, and a
/// pool of 20,000 had exhausted memory before failing.
pub const MAX_THREADS: usize = 1024;

/// A requested thread count, 0 (every CPU) to `MAX_THREADS`; `None` outside.
/// The command line and the trainer setting read counts through this.
pub fn checked_count(n: i64) -> Option<usize> {
    (0..=MAX_THREADS as i64).contains(&n).then_some(n as usize)
}

/// What `checked_count` accepts, for messages.
pub fn count_range() -> String {
    format!("a thread count from 0 (every CPU) to {MAX_THREADS}")
}

/// Sets the host kernels' thread count; 0 picks the default.
pub fn set_threads(n: usize) {
    HOST_THREADS.store(if n == 0 { default_threads() } else { n.min(MAX_THREADS) }, Ordering::Relaxed);
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

/// `JLC_THREADS` when it holds a count from 1 to `MAX_THREADS`, else the
/// CPUs available (with a note, once, when it holds something else).
fn default_threads() -> usize {
    let cpus = || std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    let Ok(v) = std::env::var("JLC_THREADS") else { return cpus() };
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => n,
        // 0 asks for the default, as `--threads 0` does.
        Ok(0) => cpus(),
        _ => {
            static NOTED: std::sync::Once = std::sync::Once::new();
            NOTED.call_once(|| {
                eprintln!(
                    "note: JLC_THREADS={v:?} is not a thread count from 1 to {MAX_THREADS}; using {} (the CPUs available)",
                    cpus()
                )
            });
            cpus()
        }
    }
}

/// A pool of `threads` threads whose floating-point mode is `mode`, set
/// once as each thread starts.
struct Pool {
    threads: usize,
    mode: u32,
    pool: Arc<rayon::ThreadPool>,
}

/// The pools of the current count, one per floating-point mode in use.
static POOLS: Mutex<Vec<Pool>> = Mutex::new(Vec::new());

/// Runs `f` where the host kernels' threads are: directly on this thread
/// with one (so callers need no case of their own), else inside a pool of exactly `threads()` threads that have the caller's
/// floating-point mode (FTZ/DAZ).
pub(super) fn parallel<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let n = threads();
    if n == 1 {
        return f();
    }
    match pool_of(n) {
        Some(pool) => pool.install(f),
        // A pool that cannot start (no threads left) runs the work here.
        None => f(),
    }
}

/// Runs `body(part, parts)` for every part of `units` units of work split
/// into one part per thread (at most one per unit): on the pool, or on this
/// thread, part after part, with one thread or no pool. The count is read
/// once, so a count changed meanwhile cannot send the parts to rayon's
/// global pool (whose threads lack the caller's FTZ/DAZ mode).
pub(super) fn for_each_part(units: usize, body: impl Fn(usize, usize) + Sync) {
    use rayon::prelude::*;
    let n = threads();
    let parts = n.min(units);
    let pool = if parts > 1 { pool_of(n) } else { None };
    match pool {
        Some(pool) => pool.install(|| (0..parts).into_par_iter().for_each(|part| body(part, parts))),
        None => (0..parts.max(1)).for_each(|part| body(part, parts.max(1))),
    }
}

/// The pool of `n` threads with the caller's floating-point mode (made on
/// first use; those of another count are dropped); `None` when it cannot
/// start. One pool per mode, each thread's mode set once at its start:
/// callers with different modes (FTZ/DAZ or IEEE) at the same time never
/// share threads, so neither can change the mode under the other's work.
fn pool_of(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    let mode = fp_mode::read();
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    pools.retain(|p| p.threads == n);
    if let Some(p) = pools.iter().find(|p| p.mode == mode) {
        return Some(Arc::clone(&p.pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("jlc-kernels-{i}"))
        // Compiled programs run on these threads (`CpuFunc::execute`): the
        // main thread's stack size, not a spawned thread's 2 MiB.
        .stack_size(8 << 20)
        .start_handler(move |_| {
            fp_mode::write(mode);
            // Its GEMM buffers now, not when it first gets a large part.
            kernels::gemm::reserve_scratch();
        })
        .build()
        .ok()?;
    let pool = Arc::new(pool);
    pools.push(Pool { threads: n, mode, pool: Arc::clone(&pool) });
    Some(pool)
}

/// A loop the JIT outlined (`emit/parallel.rs`): `body(table, part,
/// parts, extra)` runs part `part` of `parts` of its work on the buffers of
/// `table` (`extra`: the address of per-unit partial results, or 0).
type LoopPart = unsafe extern "C" fn(table: usize, part: usize, parts: usize, extra: usize);

/// Runs an outlined loop of `units` units of work: in one part on this
/// thread with one host thread, else in one part per thread (at most one per
/// unit) on the pool. Each element is computed by one part in the same
/// order whatever the split, so results do not depend on the thread count.
///
/// Safety: `body` is the address of a function of type `LoopPart` that the
/// JIT compiled for `table`, whose buffers live for the call.
pub(super) unsafe extern "C" fn jl_parallel_for(body: usize, table: usize, units: usize, extra: usize) {
    // Safety: the JIT passes the address of a function of this type.
    let body = unsafe { std::mem::transmute::<usize, LoopPart>(body) };
    for_each_part(units, |part, parts| unsafe { body(table, part, parts, extra) });
}

/// The parallelism to give one `gemm` call that runs alone (inside
/// `parallel`, so its threads are the pool's).
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

/// The SSE control register's flush bits (x86-64; elsewhere a no-op).
pub mod fp_mode {
    /// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
    pub const FTZ_DAZ: u32 = 0x8040;

    /// The whole MXCSR of this thread (0 off x86-64).
    pub fn read() -> u32 {
        #[cfg(target_arch = "x86_64")]
        {
            let mut value: u32 = 0;
            // SAFETY: stmxcsr stores the 32-bit control register to the given address.
            unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
            value
        }
        #[cfg(not(target_arch = "x86_64"))]
        0
    }

    /// Loads `value`, read from some thread's MXCSR by `read` (so no
    /// exception gets unmasked), into this thread's.
    pub fn write(value: u32) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: ldmxcsr loads the control register from a value `read` produced.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = value;
    }
}
