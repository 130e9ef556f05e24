//! Host routines for `BatchMatMul`: one `gemm` call per batch element, as
//! `MatMul` does (so, like `MatMul`, not bitwise equal to the interpreter's
//! sequential dot products; `codegen::tests` uses a tolerance). With more
//! than one host thread the batch elements are spread over them.

use rayon::prelude::*;

/// A raw pointer that may cross to rayon's threads: each batch element
/// reads and writes only its own disjoint part.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

macro_rules! batch_matmul_routine {
    ($name:ident, $t:ty, $matmul:path) => {
        /// `c[p] = a[p] x b[p]` for `p < batch`, each `[m,k] x [k,n]` row-major,
        /// `trans` saying which operand is stored transposed (`jl_matmul_*`).
        pub(super) extern "C" fn $name(
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            batch: usize,
            m: usize,
            k: usize,
            n: usize,
            trans: usize,
        ) {
            let (a, b, c) = (Shared(a as *mut $t), Shared(b as *mut $t), Shared(c));
            // Safety: the buffers hold `batch` matrices of the named sizes,
            // and element `p` writes only `c[p]`.
            let one = move |p: usize, parallelism| unsafe {
                let (a, b, c) = (a, b, c);
                $matmul(a.0.add(p * m * k), b.0.add(p * k * n), c.0.add(p * m * n), m, k, n, trans, parallelism)
            };
            if super::threads::split_items(batch, 2 * m * k * n) {
                super::threads::parallel(|| (0..batch).into_par_iter().for_each(|p| one(p, gemm::Parallelism::None)));
            } else {
                super::threads::parallel(|| (0..batch).for_each(|p| one(p, super::threads::gemm_parallelism())));
            }
        }
    };
}

batch_matmul_routine!(jl_batch_matmul_f32, f32, super::kernels::matmul_f32);
batch_matmul_routine!(jl_batch_matmul_f64, f64, super::kernels::matmul_f64);
