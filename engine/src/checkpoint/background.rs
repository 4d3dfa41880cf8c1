//! Writing a stateful operator's flushes on a thread of their own, so that
//! the worker goes on with the next epoch while RocksDB writes and syncs the
//! last one (as Flink's asynchronous snapshot phase does).
//!
//! The worker still takes the epoch's changes and builds and seals the
//! batch: the state it writes is the state at the epoch's end, and the
//! checksum is known at once. What moves off the worker is the store write
//! and its sync. The rule that makes this safe: an operator reports an
//! epoch flushed (its `FlushRecord`) only once [`FlushThread::written`]
//! says that epoch's write returned, so an epoch is never recorded complete
//! before every step's flush of it is durable. Writes go in the order they
//! were sent, one at a time.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use timely::scheduling::SyncActivator;

use super::store::{write_sealed, BackgroundWriter, Batch, StoreError};

/// A sealed flush to write.
struct Job {
    batch: Batch,
    epoch: u64,
    checksum: u64,
}

/// A flush written (or not), with its batch back for its memory.
struct Written {
    epoch: u64,
    result: Result<(), StoreError>,
    batch: Batch,
}

/// One operator instance's writer thread.
pub(crate) struct FlushThread {
    jobs: Option<Sender<Job>>,
    done: Receiver<Written>,
    thread: Option<JoinHandle<()>>,
    /// (epoch, checksum) of every flush sent and not yet reported, in order.
    in_flight: VecDeque<(u64, u64)>,
}

impl FlushThread {
    /// Starts the thread for `step`'s flushes, writing through `writer` and
    /// waking the operator through `wake` when a write returns.
    pub(crate) fn start(
        step: &str,
        mut writer: Box<dyn BackgroundWriter>,
        wake: SyncActivator,
    ) -> std::io::Result<Self> {
        let (jobs, incoming) = mpsc::channel::<Job>();
        let (written, done) = mpsc::channel::<Written>();
        let name = step.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("weir-flush:{step}"))
            .spawn(move || {
                for mut job in incoming {
                    let result = write_sealed(
                        &mut job.batch,
                        job.epoch,
                        &name,
                        job.checksum,
                        &mut |b, synced| {
                            if synced {
                                writer.write(b)
                            } else {
                                writer.write_unsynced(b)
                            }
                        },
                    );
                    let failed = result.is_err();
                    let sent = written.send(Written {
                        epoch: job.epoch,
                        result,
                        batch: job.batch,
                    });
                    // The operator may have gone (the job is over).
                    let _ = wake.activate();
                    if failed || sent.is_err() {
                        break;
                    }
                }
            })?;
        Ok(FlushThread {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            in_flight: VecDeque::new(),
        })
    }

    /// Hands a sealed flush of `epoch` to the thread.
    pub(crate) fn send(&mut self, batch: Batch, epoch: u64, checksum: u64) -> Result<(), String> {
        self.in_flight.push_back((epoch, checksum));
        let job = Job {
            batch,
            epoch,
            checksum,
        };
        match &self.jobs {
            Some(jobs) if jobs.send(job).is_ok() => Ok(()),
            _ => Err("the checkpoint writer thread stopped".to_string()),
        }
    }

    /// The flushes written since the last call, in epoch order, as
    /// (epoch, checksum), or the first failure. With `wait`, blocks until
    /// every flush sent is written. A batch that comes back replaces an
    /// empty `spare` (kept for its memory).
    pub(crate) fn written(
        &mut self,
        wait: bool,
        spare: &mut Batch,
    ) -> Result<Vec<(u64, u64)>, String> {
        let mut out = Vec::new();
        while let Some(&(epoch, checksum)) = self.in_flight.front() {
            let next = if wait {
                self.done.recv().map_err(|_| ())
            } else {
                match self.done.try_recv() {
                    Ok(w) => Ok(w),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => Err(()),
                }
            };
            let Ok(written) = next else {
                return Err(format!(
                    "the checkpoint writer thread stopped before epoch {epoch} was written"
                ));
            };
            if written.epoch != epoch {
                return Err(format!(
                    "weir invariant broken: epoch {} written when {epoch} was next",
                    written.epoch
                ));
            }
            written.result.map_err(|e| e.to_string())?;
            self.in_flight.pop_front();
            if spare.is_empty() {
                *spare = written.batch;
            }
            out.push((epoch, checksum));
        }
        Ok(out)
    }
}

impl Drop for FlushThread {
    fn drop(&mut self) {
        // No more jobs: the thread writes what it has and ends.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
