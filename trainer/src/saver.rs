//! Writes a run's checkpoints on a thread of their own, so that the two
//! fsyncs of a crash-proof save (`checkpoint::write_atomic`) do not stall the
//! training loop (on a GPU a W1 epoch is ~0.1 s of steps and its epoch-end
//! save ~15 ms, nearly all fsync).
//!
//! The loop encodes a checkpoint from the current parameters (so what is
//! saved is fixed when `save` returns) and queues the bytes; one writer
//! thread takes the queue in order: a save's named files, then
//! `last.safetensors`, then the files a callback ranked out are deleted. A
//! failed write stops the writer: nothing newer is written and every file
//! already on disk stays as it was. The loop gets that error at its next
//! `save` or at `finish` (and at every later one). Messages that name the
//! last good checkpoint (`last_good`: a run stopping on another error)
//! wait for the queue first, so the file they name exists, and print a
//! failed write beside their own error instead of replacing it.

use crate::callback::{self, Callback};
use crate::checkpoint::{self, CheckpointError, Meta};
use crate::fit::FitError;
use compiler::ir::{Tensor, Type};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Where the loop is when it saves.
pub(crate) struct Position {
    pub epoch: usize,
    pub batch: usize,
    pub global_step: usize,
    pub loss_sum: f64,
    pub log_sums: Vec<f64>,
}

pub(crate) struct Saver<'a> {
    dir: PathBuf,
    /// Checkpoint names of the parameters, then of the optimizer states.
    names: &'a [(String, Type)],
    /// The run's constant metadata; the position is filled in per save.
    meta: Meta,
    writer: Writer,
}

impl<'a> Saver<'a> {
    pub fn new(dir: PathBuf, names: &'a [(String, Type)], meta: Meta) -> Saver<'a> {
        Saver { dir, names, meta, writer: Writer::start() }
    }

    /// Queues `files` (names in the checkpoint directory), then
    /// `last.safetensors` if `last`, all with the callbacks' current state,
    /// then the removal of `remove`. Returns the file that will be written
    /// last. An earlier save that failed is the error.
    #[allow(clippy::too_many_arguments)]
    pub fn save(
        &self,
        files: &[String],
        last: bool,
        remove: &[PathBuf],
        at: &Position,
        params: &[Tensor],
        states: &[Tensor],
        callbacks: &[Box<dyn Callback>],
    ) -> Result<Option<PathBuf>, FitError> {
        self.writer.check()?;
        if files.is_empty() && !last {
            if !remove.is_empty() {
                self.writer.send(Job::Write { bytes: Vec::new(), files: Vec::new(), remove: remove.to_vec() })?;
            }
            return Ok(None);
        }
        let meta = Meta {
            epoch: at.epoch,
            batch: at.batch,
            global_step: at.global_step,
            loss_sum: at.loss_sum,
            log_sums: at.log_sums.clone(),
            callbacks: callback::states_json(callbacks),
            ..self.meta.clone()
        };
        let tensors: Vec<(String, &Tensor)> =
            self.names.iter().map(|(n, _)| n.clone()).zip(params.iter().chain(states)).collect();
        let bytes = checkpoint::encode(&meta, &tensors)?;
        let last = last.then(|| "last.safetensors".to_string());
        let files: Vec<PathBuf> = files.iter().chain(&last).map(|f| self.dir.join(f)).collect();
        let written = files.last().cloned();
        self.writer.send(Job::Write { bytes, files, remove: remove.to_vec() })?;
        Ok(written)
    }

    /// A save that failed so far (the loop asks between steps, so the run
    /// stops within a step of the failure, not at its next save).
    pub fn check(&self) -> Result<(), FitError> {
        self.writer.check()
    }

    /// Waits until every queued save is on disk. A failed write is the error.
    pub fn finish(&self) -> Result<(), FitError> {
        self.writer.drain()?;
        self.writer.check()
    }

    /// For a run stopping on another error: waits for the queued saves,
    /// then names the newest checkpoint file written whole. A failed write
    /// is printed (not returned: the caller's error stays the error).
    pub fn last_good(&self) -> Option<PathBuf> {
        let drained = self.writer.drain();
        if let Err(e) = drained.and_then(|()| self.writer.check()) {
            eprintln!("error: {e}");
        }
        self.writer.shared().last_good.clone()
    }
}

enum Job {
    /// Write `bytes` to each of `files` in order, then delete `remove`.
    Write { bytes: Vec<u8>, files: Vec<PathBuf>, remove: Vec<PathBuf> },
    /// Answer once every job before this one is done.
    Flush(mpsc::Sender<()>),
}

/// What the writer thread reports back.
#[derive(Default)]
struct Shared {
    /// The first failed write (the writer stops there).
    failed: Option<CheckpointError>,
    /// Whether the loop was told of `failed`.
    reported: bool,
    /// The newest file written whole.
    last_good: Option<PathBuf>,
}

/// The writer thread and what it reports back.
struct Writer {
    jobs: Option<SyncSender<Job>>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start() -> Writer {
        // One save queued while one is written: a loop that saves faster
        // than the disk takes waits, instead of holding copies in memory.
        let (jobs, queue) = mpsc::sync_channel(1);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let report = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("checkpoint-writer".into())
            .spawn(move || write_jobs(queue, report))
            .expect("cannot start the checkpoint writer thread");
        Writer { jobs: Some(jobs), shared, thread: Some(thread) }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first failed write, if any: an error from then on (every later
    /// save is dropped by the stopped writer).
    /// The error names the newest file written whole: the one to resume
    /// from (`last` may be older when an epoch's file was written and
    /// `last` was not).
    fn check(&self) -> Result<(), FitError> {
        let mut shared = self.shared();
        match shared.failed.clone() {
            Some(mut e) => {
                shared.reported = true;
                match &shared.last_good {
                    Some(good) => e.message.push_str(&format!(
                        "; the newest checkpoint written whole is {} (continue with --resume {0})",
                        good.display()
                    )),
                    None => e.message.push_str("; no checkpoint of this run was written whole"),
                }
                Err(e.into())
            }
            None => Ok(()),
        }
    }

    /// Waits until every job queued before is done.
    fn drain(&self) -> Result<(), FitError> {
        let (done, wait) = mpsc::channel();
        self.send(Job::Flush(done))?;
        wait.recv().map_err(|_| {
            FitError::Checkpoint(CheckpointError {
                path: String::new(),
                message: "the checkpoint writer thread stopped before the queued saves were written".into(),
            })
        })
    }

    fn send(&self, job: Job) -> Result<(), FitError> {
        let jobs = self.jobs.as_ref().expect("the writer runs until dropped");
        jobs.send(job).map_err(|_| {
            self.check().err().unwrap_or_else(|| {
                FitError::Checkpoint(CheckpointError {
                    path: String::new(),
                    message: "the checkpoint writer thread stopped".into(),
                })
            })
        })
    }
}

/// The writer thread: jobs in order until the loop drops its end; after a
/// failure, writes nothing more (flushes are still answered).
fn write_jobs(queue: Receiver<Job>, shared: Arc<Mutex<Shared>>) {
    let mut stopped = false;
    for job in queue {
        match job {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Write { .. } if stopped => {}
            Job::Write { bytes, files, remove } => {
                if let Err(e) = write_job(&bytes, &files, &remove, &shared) {
                    shared.lock().unwrap_or_else(|p| p.into_inner()).failed = Some(e);
                    stopped = true;
                }
            }
        }
    }
}

fn write_job(
    bytes: &[u8],
    files: &[PathBuf],
    remove: &[PathBuf],
    shared: &Mutex<Shared>,
) -> Result<(), CheckpointError> {
    for path in files {
        checkpoint::write_atomic(path, bytes).map_err(|e| CheckpointError {
            path: path.display().to_string(),
            message: checkpoint::write_error(&e, bytes.len()),
        })?;
        shared.lock().unwrap_or_else(|p| p.into_inner()).last_good = Some(path.clone());
    }
    // Files a callback ranked out go after the new ones are written; one
    // already gone is no error.
    for old in remove {
        match std::fs::remove_file(old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CheckpointError { path: old.display().to_string(), message: format!("cannot remove: {e}") })
            }
            _ => {}
        }
    }
    Ok(())
}

impl Drop for Writer {
    /// Lets the queued saves finish (a run that ends on another error
    /// still leaves its checkpoints whole); a failure nobody took is printed.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let shared = self.shared();
        if let (Some(e), false) = (&shared.failed, shared.reported) {
            eprintln!("error: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
