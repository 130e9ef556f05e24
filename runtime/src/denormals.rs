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
//! The mode is per thread. The JIT code, the interpreter and single-threaded
//! host kernels run on the calling thread; host kernels on several threads
//! run in the compiler's kernel pool, whose threads take the calling
//! thread's mode before each parallel run (`codegen::cpu::threads`), so the
//! guard covers all of them. On targets other than x86-64 the guard does
//! nothing: results there keep IEEE subnormals.

#[cfg(target_arch = "x86_64")]
use compiler::codegen::cpu::threads::fp_mode::{read as read_mxcsr, write as write_mxcsr, FTZ_DAZ};

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

#[cfg(test)]
mod tests;
