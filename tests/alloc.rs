//! Heap use of a steady-state training step, counted by a global allocator
//! (its own test binary: the count is process-wide). W1's step (the MLP of
//! shared/design/PERFORMANCE.md, forward + backward + Adam) and W2's (the
//! CNN) run with their parameters, optimizer states and batch held, as the
//! trainer runs them.
//! A steady-state step allocates nothing: called as the trainer would
//! call it with `run_held_into` (one input list and one output list reused,
//! the step number written into the same scalar), its bookkeeping reuses
//! the engine's lists, its GEMMs pack into a buffer per thread
//! (`kernels::gemm`), and nothing is allocated per instruction or per
//! intermediate tensor, with one host thread or several.

use compiler::ir::{Data, Tensor};
use runtime::{Backend, Executable};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations per step, largest allocation in bytes) over `steps` steps
/// after a warm-up, the training step of model file `src` at batch 128 of
/// 784 features on `threads` host threads.
fn step_heap_use(src: &str, threads: usize, steps: usize) -> (f64, usize) {
    compiler::codegen::cpu::threads::set_threads(threads);
    let (prog, diags) = compiler::lower::load("model.jl", src);
    assert!(diags.is_empty(), "{diags:?}");
    let sections = compiler::lower::training_sections(&prog).expect("sections");
    let (b, d) = (128, 784);
    let x = Tensor::f32(&[b, d], (0..b * d).map(|i| (i % 97) as f32 / 97.0).collect());
    let y = Tensor::i32(&[b], (0..b).map(|i| (i % 10) as i32).collect());
    let progs = compiler::lower::lower_training(&prog, sections.trainer.as_ref(), &x.ty(), &y.ty()).expect("lower");
    let (step, _) = compiler::opt::optimize(&progs.train_step, &compiler::opt::Options::default());
    let mut exe = Executable::compile(step, Backend::Cpu).expect("compile");
    let n_params = progs.params.len();
    let n_states = progs.n_states();
    let params = trainer::fit::init_params(&progs.params, 0);
    let states = progs.state_specs().map(|(p, _)| Tensor::zeros(&p.ty));
    let mut held: Vec<(usize, Tensor)> = params.into_iter().chain(states).enumerate().collect();
    held.push((n_params + n_states + 1, x));
    held.push((n_params + n_states + 2, y));
    let carry: Vec<(usize, usize)> = (0..n_params + n_states).map(|i| (i, i)).collect();
    exe.hold(held, &carry).expect("hold");
    // The trainer's way: one input list and one output list for the whole
    // run, the step number written into the same scalar each time.
    let mut step = 0;
    let mut fresh = vec![Tensor::scalar_f32(0.0)];
    let mut outs = Vec::new();
    let mut run = |exe: &mut Executable| {
        step += 1;
        let Data::F32(s) = &mut fresh[0].data else { unreachable!("an f32 scalar") };
        s[0] = step as f32;
        exe.run_held_into(&mut fresh, &mut outs).expect("step");
        assert!(outs[0].scalar_value().is_finite());
    };
    for _ in 0..3 {
        run(&mut exe);
    }
    ALLOCATIONS.store(0, Ordering::Relaxed);
    LARGEST.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..steps {
        run(&mut exe);
    }
    COUNTING.store(false, Ordering::Relaxed);
    exe.release().expect("release");
    (ALLOCATIONS.load(Ordering::Relaxed) as f64 / steps as f64, LARGEST.load(Ordering::Relaxed))
}

#[test]
fn steady_state_steps_allocate_nothing() {
    // W1's step makes 8 matrix products. Before our GEMM driver, a step
    // allocated 24 times (30 on two threads), up to 402,432 bytes (gemm's
    // packing buffer); then 10 times, at most 1,176 bytes (the call's
    // bookkeeping vectors), before `run_held_into` and the reused lists.
    for threads in [1, 2] {
        let (per_step, largest) = step_heap_use(include_str!("../benches/workloads/w1_mlp.jl"), threads, 20);
        eprintln!("W1 step, {threads} host thread(s): {per_step:.1} allocations per step, largest {largest} bytes");
        assert_eq!(per_step, 0.0, "{threads} thread(s): {per_step} allocations per step, the largest {largest} bytes");
    }
    // W2's CNN (convs in three forms, pooling and its backward): its conv
    // tap tables once were a few hundred small allocations per step (523),
    // now made once per conv and kept (`cpu/conv.rs`).
    for threads in [1, 2] {
        let (per_step, largest) = step_heap_use(include_str!("../examples/fashion_mnist_cnn.jl"), threads, 10);
        eprintln!("W2 step, {threads} host thread(s): {per_step:.2} allocations per step, largest {largest} bytes");
        assert_eq!(
            per_step, 0.0,
            "W2, {threads} thread(s): {per_step} allocations per step, the largest {largest} bytes"
        );
    }
    compiler::codegen::cpu::threads::set_threads(0);
}
