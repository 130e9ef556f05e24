//! Recorded outputs on the device: a training step's logged values, kept
//! call after call in a device buffer and copied to the host only when the
//! caller asks (`Executable::take_recorded`).
//!
//! Reading a value back waits for the device to finish the call, so a loop
//! that reads every step cannot enqueue step k + 1 while step k runs. Here
//! each call instead enqueues device-to-device copies of the recorded
//! outputs into the next row of `ring` (on the engine's stream, so they
//! follow the call and precede the next one, which overwrites the output
//! buffers); `take` copies the used rows out with one wait. A full ring is
//! copied out by `record` itself (one wait per `capacity` calls).

use std::sync::Arc;

use compiler::ir::{Tensor, Type};
use cudarc::driver::{CudaSlice, CudaStream};

use super::{alloc, cuda_err, device_ptr, from_bytes};
use crate::Error;

pub(super) struct Recorder {
    /// Each recorded output: device address, bytes and type.
    outputs: Vec<(u64, usize, Type)>,
    row_bytes: usize,
    capacity: usize,
    ring: CudaSlice<u8>,
    ring_ptr: u64,
    /// Rows of `ring` written since it was last copied out.
    used: usize,
    /// Rows copied out and not yet taken.
    rows: Vec<Vec<Tensor>>,
}

impl Recorder {
    pub(super) fn new(
        stream: &Arc<CudaStream>,
        outputs: Vec<(u64, usize, Type)>,
        capacity: usize,
    ) -> Result<Recorder, Error> {
        // At least one row: `record` writes a row before it checks for room.
        let capacity = capacity.max(1);
        let row_bytes: usize = outputs.iter().map(|(_, bytes, _)| bytes).sum();
        let ring = alloc(stream, (row_bytes * capacity).max(1))?;
        let ring_ptr = device_ptr(&ring, stream);
        Ok(Recorder { outputs, row_bytes, capacity, ring, ring_ptr, used: 0, rows: Vec::new() })
    }

    /// Enqueues the copies of this call's outputs into the next row (after
    /// copying the ring out when it is full).
    pub(super) fn record(&mut self, stream: &Arc<CudaStream>) -> Result<(), Error> {
        if self.used == self.capacity {
            self.download(stream)?;
        }
        let mut dst = self.ring_ptr + (self.used * self.row_bytes) as u64;
        for &(src, bytes, _) in &self.outputs {
            if bytes > 0 {
                // Safety: `src` is an output buffer of `bytes` bytes, and
                // `dst` lies in this row of the ring, which holds them all.
                unsafe { cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, stream.cu_stream()) }
                    .map_err(cuda_err("recording an output"))?;
            }
            dst += bytes as u64;
        }
        self.used += 1;
        Ok(())
    }

    /// Every row since the last take, in call order.
    pub(super) fn take(&mut self, stream: &Arc<CudaStream>) -> Result<Vec<Vec<Tensor>>, Error> {
        self.download(stream)?;
        Ok(std::mem::take(&mut self.rows))
    }

    /// Copies the used rows to the host (one wait) and empties the ring.
    fn download(&mut self, stream: &Arc<CudaStream>) -> Result<(), Error> {
        if self.used == 0 {
            return Ok(());
        }
        let bytes = if self.row_bytes == 0 {
            Vec::new()
        } else {
            let host = stream
                .clone_dtoh(&self.ring.slice(..self.used * self.row_bytes))
                .map_err(cuda_err("copying recorded outputs to the host"))?;
            stream.synchronize().map_err(cuda_err("running the program"))?;
            host
        };
        for r in 0..self.used {
            let mut at = r * self.row_bytes;
            let row = self.outputs.iter().map(|(_, n, ty)| {
                let t = from_bytes(ty, &bytes[at..at + n]);
                at += n;
                t
            });
            self.rows.push(row.collect());
        }
        self.used = 0;
        Ok(())
    }
}
