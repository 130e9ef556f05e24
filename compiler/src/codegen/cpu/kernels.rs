//! Host routines that JIT code calls: whole-array transcendentals and matmul.
//!
//! Consumes raw buffer pointers handed over by the compiled function; produces
//! filled destination buffers. Each routine runs once per array, never once
//! per element, so the call overhead is paid once per instruction.
//!
//! The transcendentals use Rust's `f32::exp` etc. (and `interp::logistic`,
//! libm's erf through `interp::Erf`), the very functions the interpreter
//! calls, so their results are bitwise equal to `ir::interp`.
//! Matmul goes through the `gemm` crate, whose summation order differs from
//! the interpreter's sequential dot products (see `codegen::tests` for the
//! tolerance).

use super::conv;
use super::{batch_matmul, gather, random, vmath_x16};
use crate::ir::interp;

/// One host routine. `signature` and `address` are exhaustive matches so that
/// adding a routine lists every place to update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum HostFn {
    ExpF32,
    ExpF64,
    LogF32,
    LogF64,
    TanhF32,
    TanhF64,
    PowF32,
    PowF64,
    PowI32,
    Log1pF32,
    Log1pF64,
    Expm1F32,
    Expm1F64,
    LogisticF32,
    LogisticF64,
    SinF32,
    SinF64,
    CosF32,
    CosF64,
    ErfF32,
    ErfF64,
    MatMulF32,
    MatMulF64,
    Gather,
    ScatterAddF32,
    ScatterAddF64,
    ScatterAddI32,
    BatchMatMulF32,
    BatchMatMulF64,
    RandomBits,
    RandomSplit,
    RandomUniformF32,
    RandomUniformF64,
    Conv2dF32,
    Conv2dF64,
    ReduceWindowSumF32,
    ReduceWindowSumF64,
    ReduceWindowMaxF32,
    ReduceWindowMaxF64,
    SelectAndScatterF32,
    SelectAndScatterF64,
    /// `vmath_x16.rs`: the inline algorithms on 512-bit vectors, per chunk.
    ExpF32X16,
    LogF32X16,
    TanhF32X16,
    LogisticF32X16,
    /// `threads.rs`: an outlined fused loop run in parts on the host
    /// kernels' threads (`emit/parallel.rs`).
    ParallelFor,
}

/// The argument lists a host routine can take (all pointer-sized integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HostSig {
    /// `fn(src, src2, dst, n)`: elementwise over `n` elements; `src2` is
    /// ignored by unary routines.
    Array,
    /// `fn(a, b, c, m, k, n, trans)`: `c[m,n] = a[m,k] x b[k,n]`, row-major,
    /// `trans` saying which operand is stored transposed.
    MatMul,
    /// `fn(operand pointers.., dst, integer args..)`: this many pointer-sized
    /// arguments (see `host_ops::plan`).
    Ptrs(usize),
    /// `fn(src, src2, dst, desc)`: an op whose shapes and attributes are in
    /// the `i64` array `desc` (see `conv.rs`); `src2` may be unused.
    Described,
}

impl HostFn {
    /// Whether the routine may split its work over the host kernels'
    /// threads (`threads::parallel`, `threads::for_each_part`).
    pub(super) fn uses_threads(self) -> bool {
        use HostFn::*;
        matches!(
            self,
            MatMulF32
                | MatMulF64
                | BatchMatMulF32
                | BatchMatMulF64
                | Conv2dF32
                | Conv2dF64
                | ReduceWindowSumF32
                | ReduceWindowSumF64
                | ReduceWindowMaxF32
                | ReduceWindowMaxF64
                | SelectAndScatterF32
                | SelectAndScatterF64
                | ParallelFor
        )
    }

    pub(super) const ALL: [HostFn; 46] = [
        HostFn::ExpF32,
        HostFn::ExpF64,
        HostFn::LogF32,
        HostFn::LogF64,
        HostFn::TanhF32,
        HostFn::TanhF64,
        HostFn::PowF32,
        HostFn::PowF64,
        HostFn::PowI32,
        HostFn::Log1pF32,
        HostFn::Log1pF64,
        HostFn::Expm1F32,
        HostFn::Expm1F64,
        HostFn::LogisticF32,
        HostFn::LogisticF64,
        HostFn::SinF32,
        HostFn::SinF64,
        HostFn::CosF32,
        HostFn::CosF64,
        HostFn::ErfF32,
        HostFn::ErfF64,
        HostFn::MatMulF32,
        HostFn::MatMulF64,
        HostFn::Gather,
        HostFn::ScatterAddF32,
        HostFn::ScatterAddF64,
        HostFn::ScatterAddI32,
        HostFn::BatchMatMulF32,
        HostFn::BatchMatMulF64,
        HostFn::RandomBits,
        HostFn::RandomSplit,
        HostFn::RandomUniformF32,
        HostFn::RandomUniformF64,
        HostFn::Conv2dF32,
        HostFn::Conv2dF64,
        HostFn::ReduceWindowSumF32,
        HostFn::ReduceWindowSumF64,
        HostFn::ReduceWindowMaxF32,
        HostFn::ReduceWindowMaxF64,
        HostFn::SelectAndScatterF32,
        HostFn::SelectAndScatterF64,
        HostFn::ExpF32X16,
        HostFn::LogF32X16,
        HostFn::TanhF32X16,
        HostFn::LogisticF32X16,
        HostFn::ParallelFor,
    ];

    /// The symbol name registered with the JIT linker.
    pub(super) fn name(self) -> &'static str {
        match self {
            HostFn::ExpF32 => "jl_exp_f32",
            HostFn::ExpF64 => "jl_exp_f64",
            HostFn::LogF32 => "jl_log_f32",
            HostFn::LogF64 => "jl_log_f64",
            HostFn::TanhF32 => "jl_tanh_f32",
            HostFn::TanhF64 => "jl_tanh_f64",
            HostFn::PowF32 => "jl_pow_f32",
            HostFn::PowF64 => "jl_pow_f64",
            HostFn::PowI32 => "jl_pow_i32",
            HostFn::Log1pF32 => "jl_log1p_f32",
            HostFn::Log1pF64 => "jl_log1p_f64",
            HostFn::Expm1F32 => "jl_expm1_f32",
            HostFn::Expm1F64 => "jl_expm1_f64",
            HostFn::LogisticF32 => "jl_logistic_f32",
            HostFn::LogisticF64 => "jl_logistic_f64",
            HostFn::SinF32 => "jl_sin_f32",
            HostFn::SinF64 => "jl_sin_f64",
            HostFn::CosF32 => "jl_cos_f32",
            HostFn::CosF64 => "jl_cos_f64",
            HostFn::ErfF32 => "jl_erf_f32",
            HostFn::ErfF64 => "jl_erf_f64",
            HostFn::MatMulF32 => "jl_matmul_f32",
            HostFn::MatMulF64 => "jl_matmul_f64",
            HostFn::Gather => "jl_gather",
            HostFn::ScatterAddF32 => "jl_scatter_add_f32",
            HostFn::ScatterAddF64 => "jl_scatter_add_f64",
            HostFn::ScatterAddI32 => "jl_scatter_add_i32",
            HostFn::BatchMatMulF32 => "jl_batch_matmul_f32",
            HostFn::BatchMatMulF64 => "jl_batch_matmul_f64",
            HostFn::RandomBits => "jl_random_bits",
            HostFn::RandomSplit => "jl_random_split",
            HostFn::RandomUniformF32 => "jl_random_uniform_f32",
            HostFn::RandomUniformF64 => "jl_random_uniform_f64",
            HostFn::Conv2dF32 => "jl_conv2d_f32",
            HostFn::Conv2dF64 => "jl_conv2d_f64",
            HostFn::ReduceWindowSumF32 => "jl_reduce_window_sum_f32",
            HostFn::ReduceWindowSumF64 => "jl_reduce_window_sum_f64",
            HostFn::ReduceWindowMaxF32 => "jl_reduce_window_max_f32",
            HostFn::ReduceWindowMaxF64 => "jl_reduce_window_max_f64",
            HostFn::SelectAndScatterF32 => "jl_select_and_scatter_f32",
            HostFn::SelectAndScatterF64 => "jl_select_and_scatter_f64",
            HostFn::ExpF32X16 => "jl_exp_f32_x16",
            HostFn::LogF32X16 => "jl_log_f32_x16",
            HostFn::TanhF32X16 => "jl_tanh_f32_x16",
            HostFn::LogisticF32X16 => "jl_logistic_f32_x16",
            HostFn::ParallelFor => "jl_parallel_for",
        }
    }

    pub(super) fn signature(self) -> HostSig {
        match self {
            HostFn::ExpF32 | HostFn::ExpF64 | HostFn::LogF32 | HostFn::LogF64 => HostSig::Array,
            HostFn::TanhF32 | HostFn::TanhF64 => HostSig::Array,
            HostFn::PowF32 | HostFn::PowF64 | HostFn::PowI32 => HostSig::Array,
            HostFn::Log1pF32 | HostFn::Log1pF64 | HostFn::Expm1F32 | HostFn::Expm1F64 => HostSig::Array,
            HostFn::LogisticF32 | HostFn::LogisticF64 => HostSig::Array,
            HostFn::SinF32 | HostFn::SinF64 | HostFn::CosF32 | HostFn::CosF64 => HostSig::Array,
            HostFn::ErfF32 | HostFn::ErfF64 => HostSig::Array,
            HostFn::MatMulF32 | HostFn::MatMulF64 => HostSig::MatMul,
            HostFn::Gather | HostFn::ScatterAddF32 | HostFn::ScatterAddF64 | HostFn::ScatterAddI32 => HostSig::Ptrs(6),
            HostFn::BatchMatMulF32 | HostFn::BatchMatMulF64 => HostSig::Ptrs(8),
            HostFn::RandomBits | HostFn::RandomSplit => HostSig::Ptrs(4),
            HostFn::RandomUniformF32 | HostFn::RandomUniformF64 => HostSig::Ptrs(4),
            HostFn::Conv2dF32 | HostFn::Conv2dF64 => HostSig::Described,
            HostFn::ReduceWindowSumF32 | HostFn::ReduceWindowSumF64 => HostSig::Described,
            HostFn::ReduceWindowMaxF32 | HostFn::ReduceWindowMaxF64 => HostSig::Described,
            HostFn::SelectAndScatterF32 | HostFn::SelectAndScatterF64 => HostSig::Described,
            HostFn::ExpF32X16 | HostFn::LogF32X16 | HostFn::TanhF32X16 | HostFn::LogisticF32X16 => HostSig::Array,
            HostFn::ParallelFor => HostSig::Ptrs(4),
        }
    }

    pub(super) fn address(self) -> *const u8 {
        match self {
            HostFn::ExpF32 => jl_exp_f32 as *const u8,
            HostFn::ExpF64 => jl_exp_f64 as *const u8,
            HostFn::LogF32 => jl_log_f32 as *const u8,
            HostFn::LogF64 => jl_log_f64 as *const u8,
            HostFn::TanhF32 => jl_tanh_f32 as *const u8,
            HostFn::TanhF64 => jl_tanh_f64 as *const u8,
            HostFn::PowF32 => jl_pow_f32 as *const u8,
            HostFn::PowF64 => jl_pow_f64 as *const u8,
            HostFn::PowI32 => jl_pow_i32 as *const u8,
            HostFn::Log1pF32 => jl_log1p_f32 as *const u8,
            HostFn::Log1pF64 => jl_log1p_f64 as *const u8,
            HostFn::Expm1F32 => jl_expm1_f32 as *const u8,
            HostFn::Expm1F64 => jl_expm1_f64 as *const u8,
            HostFn::LogisticF32 => jl_logistic_f32 as *const u8,
            HostFn::LogisticF64 => jl_logistic_f64 as *const u8,
            HostFn::SinF32 => jl_sin_f32 as *const u8,
            HostFn::SinF64 => jl_sin_f64 as *const u8,
            HostFn::CosF32 => jl_cos_f32 as *const u8,
            HostFn::CosF64 => jl_cos_f64 as *const u8,
            HostFn::ErfF32 => jl_erf_f32 as *const u8,
            HostFn::ErfF64 => jl_erf_f64 as *const u8,
            HostFn::MatMulF32 => jl_matmul_f32 as *const u8,
            HostFn::MatMulF64 => jl_matmul_f64 as *const u8,
            HostFn::Gather => gather::jl_gather as *const u8,
            HostFn::ScatterAddF32 => gather::jl_scatter_add_f32 as *const u8,
            HostFn::ScatterAddF64 => gather::jl_scatter_add_f64 as *const u8,
            HostFn::ScatterAddI32 => gather::jl_scatter_add_i32 as *const u8,
            HostFn::BatchMatMulF32 => batch_matmul::jl_batch_matmul_f32 as *const u8,
            HostFn::BatchMatMulF64 => batch_matmul::jl_batch_matmul_f64 as *const u8,
            HostFn::RandomBits => random::jl_random_bits as *const u8,
            HostFn::RandomSplit => random::jl_random_split as *const u8,
            HostFn::RandomUniformF32 => random::jl_random_uniform_f32 as *const u8,
            HostFn::RandomUniformF64 => random::jl_random_uniform_f64 as *const u8,
            HostFn::Conv2dF32 => conv::jl_conv2d_f32 as *const u8,
            HostFn::Conv2dF64 => conv::jl_conv2d_f64 as *const u8,
            HostFn::ReduceWindowSumF32 => conv::jl_reduce_window_sum_f32 as *const u8,
            HostFn::ReduceWindowSumF64 => conv::jl_reduce_window_sum_f64 as *const u8,
            HostFn::ReduceWindowMaxF32 => conv::jl_reduce_window_max_f32 as *const u8,
            HostFn::ReduceWindowMaxF64 => conv::jl_reduce_window_max_f64 as *const u8,
            HostFn::SelectAndScatterF32 => conv::jl_select_and_scatter_f32 as *const u8,
            HostFn::SelectAndScatterF64 => conv::jl_select_and_scatter_f64 as *const u8,
            HostFn::ExpF32X16 => vmath_x16::jl_exp_f32_x16 as *const u8,
            HostFn::LogF32X16 => vmath_x16::jl_log_f32_x16 as *const u8,
            HostFn::TanhF32X16 => vmath_x16::jl_tanh_f32_x16 as *const u8,
            HostFn::LogisticF32X16 => vmath_x16::jl_logistic_f32_x16 as *const u8,
            HostFn::ParallelFor => super::threads::jl_parallel_for as *const u8,
        }
    }
}

// Safety of every routine below: the JIT code passes pointers to distinct,
// live arena buffers holding at least `n` (or `m*k`, `k*n`, `m*n`) elements of
// the named type, aligned to 64 bytes. The memory plan (`plan.rs`) never lets
// a destination share bytes with a source of the same instruction.

macro_rules! unary_routine {
    ($name:ident, $t:ty, $f:expr) => {
        extern "C" fn $name(src: *const $t, _src2: *const $t, dst: *mut $t, n: usize) {
            let (src, dst) = unsafe { (std::slice::from_raw_parts(src, n), std::slice::from_raw_parts_mut(dst, n)) };
            for (out, &x) in dst.iter_mut().zip(src) {
                *out = $f(x);
            }
        }
    };
}

macro_rules! binary_routine {
    ($name:ident, $t:ty, $f:expr) => {
        extern "C" fn $name(src: *const $t, src2: *const $t, dst: *mut $t, n: usize) {
            let (src, src2, dst) = unsafe {
                (
                    std::slice::from_raw_parts(src, n),
                    std::slice::from_raw_parts(src2, n),
                    std::slice::from_raw_parts_mut(dst, n),
                )
            };
            for (out, (&x, &y)) in dst.iter_mut().zip(src.iter().zip(src2)) {
                *out = $f(x, y);
            }
        }
    };
}

unary_routine!(jl_exp_f32, f32, f32::exp);
unary_routine!(jl_exp_f64, f64, f64::exp);
unary_routine!(jl_log_f32, f32, f32::ln);
unary_routine!(jl_log_f64, f64, f64::ln);
unary_routine!(jl_tanh_f32, f32, f32::tanh);
unary_routine!(jl_tanh_f64, f64, f64::tanh);
unary_routine!(jl_log1p_f32, f32, f32::ln_1p);
unary_routine!(jl_log1p_f64, f64, f64::ln_1p);
unary_routine!(jl_expm1_f32, f32, f32::exp_m1);
unary_routine!(jl_expm1_f64, f64, f64::exp_m1);
unary_routine!(jl_logistic_f32, f32, interp::logistic::<f32>);
unary_routine!(jl_logistic_f64, f64, interp::logistic::<f64>);
unary_routine!(jl_sin_f32, f32, f32::sin);
unary_routine!(jl_sin_f64, f64, f64::sin);
unary_routine!(jl_cos_f32, f32, f32::cos);
unary_routine!(jl_cos_f64, f64, f64::cos);
unary_routine!(jl_erf_f32, f32, <f32 as interp::Erf>::erf);
unary_routine!(jl_erf_f64, f64, <f64 as interp::Erf>::erf);
binary_routine!(jl_pow_f32, f32, f32::powf);
binary_routine!(jl_pow_f64, f64, f64::powf);
// Integer pow goes through f64 and saturates back, as the interpreter does.
binary_routine!(jl_pow_i32, i32, |x: i32, y: i32| (x as f64).powf(y as f64) as i32);

/// `trans` bit of `jl_matmul_*`: `a` holds the left operand transposed
/// (row-major `[k, m]`).
pub(super) const TRANS_A: usize = 1;
/// `trans` bit of `jl_matmul_*`: `b` holds the right operand transposed
/// (row-major `[n, k]`).
pub(super) const TRANS_B: usize = 2;

/// Runs `product` on our GEMM driver (`kernels::gemm`), its parts spread
/// over the host kernels' threads where `parallelism` allows; false (and
/// nothing computed) where the CPU has no microkernels for it.
///
/// Safety: `product`'s pointers are valid for its shapes and strides, `c`
/// overlaps neither operand.
pub(super) unsafe fn run_gemm<T: kernels::gemm::GemmElem>(
    product: &kernels::gemm::Gemm<T>,
    parallelism: gemm::Parallelism,
) -> bool {
    let max_parts = match parallelism {
        gemm::Parallelism::Rayon(t) => t,
        _ => 1,
    };
    unsafe { product.run_split(max_parts, |parts, run| super::threads::for_each_part(parts, run)) }
}

macro_rules! matmul_routine {
    ($name:ident, $inner:ident, $t:ty) => {
        /// `c[m,n] = a[m,k] x b[k,n]`, row-major, where `trans` (`TRANS_A`,
        /// `TRANS_B`) says which operand is stored transposed: read through
        /// swapped strides, never copied. On the host kernels' threads
        /// (`threads.rs`).
        pub(super) extern "C" fn $name(
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            m: usize,
            k: usize,
            n: usize,
            trans: usize,
        ) {
            // Addresses cross to the pool's thread as integers.
            let (a, b, c) = (a as usize, b as usize, c as usize);
            super::threads::parallel(move || unsafe {
                $inner(a as *const $t, b as *const $t, c as *mut $t, m, k, n, trans, super::threads::gemm_parallelism())
            })
        }

        /// `$name` with the parallelism given: the GEMM behind
        /// `BatchMatMul` (`batch_matmul.rs`) and `Conv2d` (`conv.rs`), which
        /// pass `None` where they spread the calls themselves.
        ///
        /// Safety: `a`, `b`, `c` point to buffers of the sizes named.
        #[allow(clippy::too_many_arguments)]
        pub(super) unsafe fn $inner(
            a: *const $t,
            b: *const $t,
            c: *mut $t,
            m: usize,
            k: usize,
            n: usize,
            trans: usize,
            parallelism: gemm::Parallelism,
        ) {
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                // An empty sum: gemm may leave `c` untouched, and the arena
                // keeps the previous run's values.
                unsafe { std::slice::from_raw_parts_mut(c, m * n) }.fill(0.0);
                return;
            }
            // (column stride, row stride) of each operand.
            let (a_cs, a_rs) = if trans & TRANS_A != 0 { (m, 1) } else { (1, k) };
            let (b_cs, b_rs) = if trans & TRANS_B != 0 { (k, 1) } else { (1, n) };
            // Our driver around gemm's microkernels (`kernels::gemm`: no
            // allocation per call), split over the pool's threads by
            // blocks of `c`; gemm's own driver where there are no
            // microkernels for this CPU.
            let product = kernels::gemm::Gemm {
                m,
                n,
                k,
                a,
                a_rs: a_rs as isize,
                a_cs: a_cs as isize,
                b,
                b_rs: b_rs as isize,
                b_cs: b_cs as isize,
                c,
            };
            // Safety: the caller's buffers, of the sizes named.
            if unsafe { run_gemm(&product, parallelism) } {
                return;
            }
            // `c := 0 * c + 1 * (a x b)`, without reading `c`.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c,
                    1,
                    n as isize,
                    false,
                    a,
                    a_cs as isize,
                    a_rs as isize,
                    b,
                    b_cs as isize,
                    b_rs as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    parallelism,
                )
            }
        }
    };
}

matmul_routine!(jl_matmul_f32, matmul_f32, f32);
matmul_routine!(jl_matmul_f64, matmul_f64, f64);
