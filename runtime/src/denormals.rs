//! Flush-to-zero for the duration of a program run.
//!
//! Consumes nothing; produces a guard that, while alive, makes the calling
//! thread's SSE/AVX arithmetic flush subnormal results to zero (FTZ) and
//! read subnormal inputs as zero (DAZ), and restores the previous mode when
//! dropped.
//!
//! Why: as a classifier grows confident, `exp(x - max)` underflows into the
//! subnormal range, and the gradients and matrix products downstream run on
//! subnormals, which cost a microcode assist per operation on x86. Measured
//! on W1 (`cargo bench --bench trainer_overhead -- --no-checkpoint`, this
//! 2-vCPU VM): the step went 4.2 -> 6.8 -> 8.5 ms over three epochs without
//! flushing, 4.2 -> 5.4 -> 5.4 ms with it, with the same losses to four
//! digits. XLA's CPU client (so JAX) and TensorFlow run with FTZ and DAZ set
//! for the same reason; PyTorch does not by default.
//!
//! The mode is per thread, and every kernel of a CPU program (the JIT code,
//! `gemm` with `Parallelism::None`, the host kernels, the interpreter) runs on
//! the calling thread, so the guard covers all of them. On targets other than
//! x86-64 the guard does nothing: results there keep IEEE subnormals.

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// While alive, subnormals flush to zero on this thread (x86-64).
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    /// Sets FTZ and DAZ; the drop restores the mode found here.
    pub fn new() -> FlushDenormals {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read_mxcsr();
            write_mxcsr(saved | FTZ_DAZ);
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: stmxcsr stores the 32-bit control register to the given address.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags)) };
    value
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(value: u32) {
    // SAFETY: ldmxcsr loads the control register; callers only toggle the
    // FTZ/DAZ bits of a value read from it, so no exception gets unmasked.
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, readonly, preserves_flags)) };
}

#[cfg(test)]
mod tests;
