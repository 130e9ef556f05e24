//! Host routines for `BatchMatMul`: one `gemm` call per batch element, as
//! `MatMul` does (so, like `MatMul`, not bitwise equal to the interpreter's
//! sequential dot products; `codegen::tests` uses a tolerance).

macro_rules! batch_matmul_routine {
    ($name:ident, $t:ty) => {
        /// `c[p] = a[p] x b[p]` for `p < batch`, each `[m,k] x [k,n]` row-major.
        pub(super) extern "C" fn $name(
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            batch: usize,
            m: usize,
            k: usize,
            n: usize,
        ) {
            if m == 0 || n == 0 || batch == 0 {
                return;
            }
            if k == 0 {
                // An empty sum; the arena may hold the previous run's values.
                unsafe { std::slice::from_raw_parts_mut(c, batch * m * n) }.fill(0.0);
                return;
            }
            for p in 0..batch {
                // Safety: the buffers hold `batch` matrices of the named sizes.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.add(p * m * n),
                        1,
                        n as isize,
                        false,
                        a.add(p * m * k),
                        1,
                        k as isize,
                        b.add(p * k * n),
                        1,
                        n as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                }
            }
        }
    };
}

batch_matmul_routine!(jl_batch_matmul_f32, f32);
batch_matmul_routine!(jl_batch_matmul_f64, f64);
