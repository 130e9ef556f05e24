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
}

/// The argument lists a host routine can take (all pointer-sized integers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HostSig {
    /// `fn(src, src2, dst, n)`: elementwise over `n` elements; `src2` is
    /// ignored by unary routines.
    Array,
    /// `fn(a, b, c, m, k, n)`: `c[m,n] = a[m,k] x b[k,n]`, all row-major.
    MatMul,
}

impl HostFn {
    pub(super) const ALL: [HostFn; 23] = [
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

macro_rules! matmul_routine {
    ($name:ident, $t:ty) => {
        extern "C" fn $name(a: *const $t, b: *const $t, c: *mut $t, m: usize, k: usize, n: usize) {
            if m == 0 || n == 0 {
                return;
            }
            if k == 0 {
                // An empty sum: gemm may leave `c` untouched, and the arena
                // keeps the previous run's values.
                unsafe { std::slice::from_raw_parts_mut(c, m * n) }.fill(0.0);
                return;
            }
            // Row-major: column stride 1, row stride = row length.
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
                    1,
                    k as isize,
                    b,
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
    };
}

matmul_routine!(jl_matmul_f32, f32);
matmul_routine!(jl_matmul_f64, f64);
