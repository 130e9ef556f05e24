//! Host routines for `BatchMatMul`: one `gemm` call per batch element, as
//! `MatMul` does (so, like `MatMul`, not bitwise equal to the interpreter's
//! sequential dot products; `codegen::tests` uses a tolerance).

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
            for p in 0..batch {
                // Safety: the buffers hold `batch` matrices of the named sizes.
                unsafe { $matmul(a.add(p * m * k), b.add(p * k * n), c.add(p * m * n), m, k, n, trans) }
            }
        }
    };
}

batch_matmul_routine!(jl_batch_matmul_f32, f32, super::kernels::jl_matmul_f32);
batch_matmul_routine!(jl_batch_matmul_f64, f64, super::kernels::jl_matmul_f64);
