//! The next training batches, formed on a background thread while the
//! compiled step runs.
//!
//! Forming a batch (gathering its examples in the epoch's order, bytes
//! converted to floats) is host work between two step calls: 1-2% of a W1
//! epoch on the CPU, and a larger share on a GPU, whose W1 step takes 0.13
//! ms. A thread of the fit's scope forms the epoch's batches in order,
//! `DEPTH` ahead, into a bounded channel; the loop takes them in the same
//! order. They are what `Dataset::batch` gives on the loop's thread (the
//! same function of the same data and order), so runs and resumes stay
//! bit-identical. A loop that stops early drops its `Prefetch`; the thread
//! then ends at its next send, and the scope joins it.

use std::ops::Range;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::Scope;

use compiler::ir::Tensor;

use crate::data::Dataset;

/// Batches formed ahead of the one the step is running on.
const DEPTH: usize = 2;

/// An epoch's batches, formed ahead on a thread.
pub struct Prefetch<'env> {
    data: &'env Dataset,
    order: Arc<[usize]>,
    batch_size: usize,
    ready: Receiver<(usize, (Tensor, Tensor))>,
}

impl<'env> Prefetch<'env> {
    /// Starts forming batches `batches` (batch `b` holds examples
    /// `order[b * batch_size..][..batch_size]`) on a thread of `scope`.
    pub fn start<'scope>(
        scope: &'scope Scope<'scope, 'env>,
        data: &'env Dataset,
        order: Arc<[usize]>,
        batch_size: usize,
        batches: Range<usize>,
    ) -> Prefetch<'env> {
        let (send, ready) = sync_channel(DEPTH);
        let thread_order = order.clone();
        scope.spawn(move || {
            for b in batches {
                let batch = data.batch(&thread_order, b * batch_size, batch_size);
                if send.send((b, batch)).is_err() {
                    break; // The epoch stopped early.
                }
            }
        });
        Prefetch { data, order, batch_size, ready }
    }

    /// Batch `b`: the thread's when the caller takes them in order (as the
    /// training loop does; batches skipped over are dropped), else formed here.
    pub fn take(&mut self, b: usize) -> (Tensor, Tensor) {
        while let Ok((formed, batch)) = self.ready.recv() {
            if formed == b {
                return batch;
            }
            if formed > b {
                break;
            }
        }
        self.data.batch(&self.order, b * self.batch_size, self.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Column, Values};
    use compiler::ir::DType;

    fn dataset(n: usize) -> Dataset {
        let x = Column {
            values: Values::U8((0..n * 3).map(|i| i as u8).collect()),
            dims: vec![3],
            dtype: DType::F32,
            scale: 0.5,
        };
        let y = Column { values: Values::I32((0..n as i32).collect()), dims: vec![], dtype: DType::I32, scale: 1.0 };
        Dataset { x, y }
    }

    /// Taken in order, the batches are those `Dataset::batch` forms; an
    /// out-of-order request still gets the right batch; stopping early
    /// ends the thread (the scope returns).
    #[test]
    fn batches_equal_the_loops_own_in_order_and_out_of_order() {
        let data = dataset(40);
        let order: Arc<[usize]> = (0..40).rev().collect::<Vec<_>>().into();
        std::thread::scope(|scope| {
            let mut ahead = Prefetch::start(scope, &data, order.clone(), 4, 2..10);
            for b in 2..6 {
                assert_eq!(ahead.take(b), data.batch(&order, b * 4, 4), "batch {b}");
            }
            assert_eq!(ahead.take(8), data.batch(&order, 32, 4), "skipped ahead");
            assert_eq!(ahead.take(9), data.batch(&order, 36, 4), "in step again after a skip");
            // Dropped with batches left: the thread must end for the scope to return.
        });
        std::thread::scope(|scope| {
            let mut ahead = Prefetch::start(scope, &data, order.clone(), 4, 0..2);
            for b in 0..2 {
                assert_eq!(ahead.take(b), data.batch(&order, b * 4, 4));
            }
            assert_eq!(ahead.take(2), data.batch(&order, 8, 4), "past the range: formed here");
        });
    }
}
