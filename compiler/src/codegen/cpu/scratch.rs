//! Scratch memory of the host routines (the convs' im2col matrices,
//! Winograd's transforms, accumulators), kept between calls so that a
//! steady-state step allocates nothing (`tests/alloc.rs`).
//!
//! Two kinds, neither tied to the thread a routine happens to run on (the
//! pool gives a call to whichever thread is free, a different one from step
//! to step, so per-thread buffers grew whenever a thread first got a larger
//! role, mid-run):
//! - the call's buffer: one for the whole process, taken by a routine's
//!   body for the call (kernel transforms, accumulators, reordered kernels);
//! - the units' buffers: one per host thread, used by the parallel units of
//!   a call (an image, a block of images, a group of channels), found by the
//!   pool's thread index. Before its units start, a call grows every
//!   thread's buffer to what a unit needs (`reserve_units`), so no thread
//!   grows its own later, whichever units it gets.
//!
//! A unit does no parallel work inside (its GEMMs are serial), so a thread
//! runs one unit at a time and its buffer is its own. Where a buffer is in
//! use all the same (two programs running at once in one process, or a
//! thread that steals work while it waits), the caller gets a fresh buffer
//! for that call: correct, and never in one program's steady state.

use std::sync::{Arc, Mutex};

/// Scratch buffers of one element type.
pub(super) struct Scratch<T> {
    call: Mutex<Vec<T>>,
    units: Mutex<Vec<Arc<Mutex<Vec<T>>>>>,
}

impl<T: Copy + Default> Scratch<T> {
    pub(super) const fn new() -> Self {
        Scratch { call: Mutex::new(Vec::new()), units: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on the call's buffer, `len` elements (contents unspecified).
    pub(super) fn with_call<R>(&self, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
        match self.call.try_lock() {
            Ok(mut buffer) => f(grown(&mut buffer, len)),
            Err(_) => f(&mut vec![T::default(); len]),
        }
    }

    /// Makes each of the host threads' unit buffers hold at least `len`
    /// elements; called before a call's parallel units start. A buffer in
    /// use elsewhere is left to grow when its thread next needs it.
    pub(super) fn reserve_units(&self, len: usize) {
        let threads = super::threads::threads();
        let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
        while units.len() < threads {
            units.push(Arc::new(Mutex::new(Vec::new())));
        }
        for unit in units.iter() {
            if let Ok(mut buffer) = unit.try_lock() {
                grown(&mut buffer, len);
            }
        }
    }

    /// Runs `f` on this thread's unit buffer, `len` elements (contents
    /// unspecified).
    pub(super) fn with_unit<R>(&self, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
        let index = rayon::current_thread_index().unwrap_or(0);
        let unit = {
            let mut units = self.units.lock().unwrap_or_else(|e| e.into_inner());
            while units.len() <= index {
                units.push(Arc::new(Mutex::new(Vec::new())));
            }
            Arc::clone(&units[index])
        };
        let result = match unit.try_lock() {
            Ok(mut buffer) => f(grown(&mut buffer, len)),
            Err(_) => f(&mut vec![T::default(); len]),
        };
        result
    }
}

/// `buffer`'s first `len` elements, grown to hold them.
fn grown<T: Copy + Default>(buffer: &mut Vec<T>, len: usize) -> &mut [T] {
    if buffer.len() < len {
        buffer.resize(len, T::default());
    }
    &mut buffer[..len]
}

#[cfg(test)]
mod tests {
    use super::Scratch;

    #[test]
    fn buffers_have_the_asked_length_and_a_busy_one_is_replaced() {
        let scratch: Scratch<f32> = Scratch::new();
        scratch.with_call(5, |outer| {
            assert_eq!(outer.len(), 5);
            outer.fill(1.0);
            // The call's buffer is busy: a fresh one, the outer untouched.
            scratch.with_call(3, |inner| {
                assert_eq!(inner.len(), 3);
                inner.fill(2.0);
            });
            assert_eq!(outer, &[1.0; 5]);
        });
        scratch.reserve_units(7);
        scratch.with_unit(4, |unit| {
            assert_eq!(unit.len(), 4);
            unit.fill(3.0);
            scratch.with_unit(2, |inner| {
                inner.fill(4.0);
                assert_eq!(inner.len(), 2);
            });
            assert_eq!(unit, &[3.0; 4]);
        });
    }

    #[test]
    fn reserved_unit_buffers_do_not_grow_again() {
        let scratch: Scratch<f64> = Scratch::new();
        scratch.reserve_units(100);
        let first = scratch.with_unit(100, |unit| unit.as_ptr() as usize);
        let again = scratch.with_unit(60, |unit| unit.as_ptr() as usize);
        assert_eq!(first, again, "the reserved buffer, not a new one");
    }
}
