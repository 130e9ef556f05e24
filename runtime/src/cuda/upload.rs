//! The next call's fresh inputs (a training step's batch) on their way to
//! the device while the current call computes.
//!
//! `stage` writes them into pinned (page-locked) host buffers and enqueues
//! their copies into device staging buffers on a stream of their own;
//! `unstage`, at the start of the call that uses them, has the engine's
//! stream wait for those copies and move the staging buffers into the
//! input buffers (device-to-device, a microsecond for a batch). The staging
//! buffers keep the input buffers' addresses fixed, which the step's
//! captured CUDA graph needs, and let the copy of batch k + 1 run while the
//! graph of step k reads batch k.
//!
//! Two events order the three parties: `copied` (recorded on the copy
//! stream after the host-to-device copies; the engine's stream waits for
//! it, and the host waits for it before writing the pinned buffers again)
//! and `consumed` (recorded on the engine's stream after the moves; the
//! copy stream waits for it before overwriting the staging buffers).

use std::sync::Arc;

use compiler::ir::{Data, Tensor};
use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, PinnedHostSlice};

use super::{alloc, cuda_err, device_ptr};
use crate::Error;

pub(super) struct Upload {
    /// The stream the host-to-device copies run on.
    copies: Arc<CudaStream>,
    /// The engine's stream (it moves the staged inputs into place).
    engine: Arc<CudaStream>,
    /// The inputs (`Holding::fresh`) the buffers were made for.
    inputs: Vec<usize>,
    /// Per input: pinned host bytes and device staging bytes (`None` for
    /// empty inputs).
    host: Vec<Option<PinnedHostSlice<u8>>>,
    device: Vec<Option<(CudaSlice<u8>, u64)>>,
    copied: CudaEvent,
    consumed: CudaEvent,
    /// Inputs are staged and not yet moved into place.
    pending: bool,
}

impl Upload {
    /// Buffers for the inputs `inputs`, of `bytes[k]` bytes each.
    pub(super) fn new(
        ctx: &Arc<CudaContext>,
        engine: &Arc<CudaStream>,
        inputs: &[usize],
        bytes: &[usize],
    ) -> Result<Upload, Error> {
        let copies = ctx.new_stream().map_err(cuda_err("creating the input copy stream"))?;
        let mut host = Vec::with_capacity(bytes.len());
        let mut device = Vec::with_capacity(bytes.len());
        for &n in bytes {
            if n == 0 {
                host.push(None);
                device.push(None);
                continue;
            }
            // Safety: the bytes are written (`stage`) before any copy reads them.
            let pinned = unsafe { ctx.alloc_pinned::<u8>(n) }.map_err(cuda_err("allocating pinned host memory"))?;
            host.push(Some(pinned));
            let slice = alloc(&copies, n)?;
            let ptr = device_ptr(&slice, &copies);
            device.push(Some((slice, ptr)));
        }
        let event = || ctx.new_event(None).map_err(cuda_err("creating an event"));
        Ok(Upload {
            copies,
            engine: engine.clone(),
            inputs: inputs.to_vec(),
            host,
            device,
            copied: event()?,
            consumed: event()?,
            pending: false,
        })
    }

    /// Whether these buffers serve the inputs `inputs`.
    pub(super) fn serves(&self, inputs: &[usize]) -> bool {
        self.inputs == inputs
    }

    /// Starts copying `tensors` (one per input, of the sizes `new` was
    /// given) to the device; returns once they are in pinned memory.
    pub(super) fn stage(&mut self, tensors: &[Tensor]) -> Result<(), Error> {
        assert_eq!(tensors.len(), self.host.len(), "one tensor per staged input");
        self.pending = false;
        // The last copies have finished reading the pinned buffers.
        self.copied.synchronize().map_err(cuda_err("waiting for the last input copies"))?;
        // And the engine has moved the last staged inputs into place.
        self.copies.wait(&self.consumed).map_err(cuda_err("ordering the input copies"))?;
        let enqueued = self.enqueue_copies(tensors);
        if enqueued.is_err() {
            // Copies enqueued before the failure may still read the pinned
            // buffers, and `copied` does not cover them: wait for them here.
            let _ = self.copies.synchronize();
        }
        enqueued?;
        self.pending = true;
        Ok(())
    }

    /// `stage`'s copies: each tensor into its pinned buffer, then on the
    /// copy stream into its staging buffer; `copied` recorded after them.
    fn enqueue_copies(&mut self, tensors: &[Tensor]) -> Result<(), Error> {
        for ((t, host), device) in tensors.iter().zip(&mut self.host).zip(&self.device) {
            let (Some(host), Some((_, dst))) = (host.as_mut(), device) else { continue };
            let bytes = host.as_mut_slice().map_err(cuda_err("writing pinned host memory"))?;
            write_le_bytes(t, bytes);
            // Safety: `bytes` is pinned and stays untouched until `copied`
            // completes (the host waits for it in `stage` before writing
            // again); `dst` is our staging allocation of the same size.
            unsafe { cudarc::driver::result::memcpy_htod_async(*dst, &*bytes, self.copies.cu_stream()) }
                .map_err(cuda_err("copying an input to the device"))?;
        }
        self.copied.record(&self.copies).map_err(cuda_err("recording the input copies"))
    }

    /// Enqueues on the engine's stream the moves of the staged inputs into
    /// their input buffers at `dst` (one address per input); an error when
    /// nothing is staged.
    pub(super) fn unstage(&mut self, dst: &[u64]) -> Result<(), Error> {
        if !std::mem::take(&mut self.pending) {
            return Err(Error::Holding("no inputs are staged (the call before passed no `next`)".into()));
        }
        self.engine.wait(&self.copied).map_err(cuda_err("waiting for the staged inputs"))?;
        for ((host, device), &to) in self.host.iter().zip(&self.device).zip(dst) {
            let (Some(host), Some((_, from))) = (host, device) else { continue };
            // Safety: both are our allocations of `host.len()` bytes (the
            // input buffer's size, `new`), ordered on the engine's stream.
            unsafe { cudarc::driver::result::memcpy_dtod_async(to, *from, host.len(), self.engine.cu_stream()) }
                .map_err(cuda_err("moving a staged input into place"))?;
        }
        self.consumed.record(&self.engine).map_err(cuda_err("recording the staged inputs' move"))?;
        Ok(())
    }

    /// Forgets a staged batch (a new holding, or a call with its inputs given).
    pub(super) fn discard(&mut self) {
        self.pending = false;
    }
}

impl Drop for Upload {
    /// The pinned and staging buffers are freed only after every copy that
    /// uses them.
    fn drop(&mut self) {
        let _ = self.copies.synchronize();
        let _ = self.engine.synchronize();
    }
}

/// Writes `t`'s elements into `out` as the device stores them
/// (little-endian; bool as 0/1), as `to_bytes` but into a given buffer.
pub(super) fn write_le_bytes(t: &Tensor, out: &mut [u8]) {
    fn put<const N: usize, T: Copy>(v: &[T], out: &mut [u8], le: impl Fn(T) -> [u8; N]) {
        assert_eq!(out.len(), v.len() * N, "the buffer holds the tensor");
        for (chunk, &x) in out.chunks_exact_mut(N).zip(v) {
            chunk.copy_from_slice(&le(x));
        }
    }
    match &t.data {
        Data::F32(v) => put(v, out, f32::to_le_bytes),
        Data::F64(v) => put(v, out, f64::to_le_bytes),
        Data::I32(v) => put(v, out, i32::to_le_bytes),
        Data::Bool(v) => put(v, out, |b: bool| [u8::from(b)]),
    }
}
