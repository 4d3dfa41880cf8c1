//! Job-wide counters, the periodic status line and the end-of-run summary.
//!
//! Counters are shared by the workers of one process (atomics); with several
//! processes each prints its own.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::JobError;

/// Counters and control shared by all workers of a process.
#[derive(Debug)]
pub struct JobShared {
    started: Instant,
    stop: AtomicBool,
    error: Mutex<Option<JobError>>,
    /// Records read by sources (decoded or not).
    pub events_in: AtomicU64,
    /// Records that became dead letters.
    pub dead_letters: AtomicU64,
    /// Records that arrived after their window closed.
    pub late: AtomicU64,
    /// Records written by sinks.
    pub records_out: AtomicU64,
    /// Checkpoints recorded complete (by this process's manifest writer).
    pub checkpoints: AtomicU64,
    /// One more than the newest complete checkpoint's epoch (0: none).
    pub last_checkpoint: AtomicU64,
    /// Calls retried after a transient fault (connectors and backends).
    pub retries: AtomicU64,
    /// The newest transient fault still being retried, for the status line.
    retrying: Mutex<Option<String>>,
    /// Each local worker's source watermark (ms; `u64::MAX` before any).
    watermarks: Vec<AtomicU64>,
    /// The highest final watermark of a source whose input ended (`None`
    /// while every source runs).
    final_watermark: Mutex<Option<u64>>,
}

impl JobShared {
    /// State for a process running `local_workers` worker threads.
    pub fn new(local_workers: usize) -> Arc<Self> {
        Arc::new(JobShared {
            started: Instant::now(),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
            events_in: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            late: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            last_checkpoint: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            retrying: Mutex::new(None),
            watermarks: (0..local_workers)
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            final_watermark: Mutex::new(None),
        })
    }

    /// Counts a retry after a transient fault of `step`, and shows it in
    /// the status line until [`JobShared::clear_fault`].
    pub fn note_retry(&self, step: &str, message: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut slot) = self.retrying.lock() {
            *slot = Some(format!("`{step}`: {message}"));
        }
    }

    /// Calls `f` until it succeeds, fails fatally, or the job stops; a
    /// transient fault is counted, shown in the status line, and tried
    /// again after [`crate::error::retry_delay`]. (The calling worker waits
    /// meanwhile.)
    pub fn retrying<T>(
        &self,
        step: &str,
        mut f: impl FnMut() -> Result<T, crate::error::Fault>,
    ) -> Result<T, crate::error::Fault> {
        let mut attempt = 0;
        loop {
            match f() {
                Ok(value) => {
                    if attempt > 0 {
                        self.clear_fault();
                    }
                    return Ok(value);
                }
                Err(fault) if fault.is_transient() && !self.stop_requested() => {
                    attempt += 1;
                    self.note_retry(step, &fault.message);
                    std::thread::sleep(crate::error::retry_delay(attempt));
                }
                Err(fault) => return Err(fault),
            }
        }
    }

    /// A retried call succeeded: the status line stops showing its fault.
    pub fn clear_fault(&self) {
        if let Ok(mut slot) = self.retrying.lock() {
            *slot = None;
        }
    }

    /// The transient fault being retried, if any.
    pub fn current_fault(&self) -> Option<String> {
        self.retrying.lock().ok().and_then(|s| s.clone())
    }

    /// Asks every source to finish as if its input had ended (Ctrl-C, or an error).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records a fault; the first one wins and stops the job.
    pub fn fail(&self, error: JobError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(error);
        }
        self.request_stop();
    }

    /// Takes the recorded fault, if any.
    pub fn take_error(&self) -> Option<JobError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    /// Publishes a local worker's source watermark.
    pub fn publish_watermark(&self, local_worker: usize, watermark: u64) {
        if let Some(slot) = self.watermarks.get(local_worker) {
            slot.store(watermark, Ordering::Relaxed);
        }
    }

    /// Records a source's final watermark, when its input ended (or the job
    /// stopped). The job's final watermark is the highest of them: a source
    /// that ended earlier dropped out of the job's minimum, as a finished
    /// split drops out of its source's.
    pub fn record_final_watermark(&self, watermark: u64) {
        if let Ok(mut slot) = self.final_watermark.lock() {
            *slot = Some(slot.map_or(watermark, |w| w.max(watermark)));
        }
    }

    /// The job's final watermark, once a source recorded one.
    pub fn final_watermark(&self) -> Option<u64> {
        self.final_watermark.lock().ok().and_then(|w| *w)
    }

    /// The highest watermark published by a local worker other than `me`.
    pub fn highest_other_watermark(&self, me: usize) -> Option<u64> {
        self.watermarks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != me)
            .map(|(_, w)| w.load(Ordering::Relaxed))
            .filter(|w| *w != u64::MAX)
            .max()
    }

    /// The lowest published watermark, if any.
    pub fn watermark(&self) -> Option<u64> {
        self.watermarks
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .filter(|w| *w != u64::MAX)
            .min()
    }

    /// The counters at the end of the run: as [`JobShared::summary`], with
    /// the job's final watermark (see [`JobShared::record_final_watermark`])
    /// where one was recorded.
    pub fn final_summary(&self) -> Summary {
        let mut summary = self.summary();
        if let Some(w) = self.final_watermark() {
            summary.watermark = Some(w);
        }
        summary
    }

    /// A snapshot of the counters.
    pub fn summary(&self) -> Summary {
        Summary {
            elapsed: self.started.elapsed(),
            events_in: self.events_in.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            watermark: self.watermark(),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            last_checkpoint: self.last_checkpoint.load(Ordering::Relaxed).checked_sub(1),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

/// Counters at one moment (or at the end of a run).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Time since the job started.
    pub elapsed: Duration,
    /// Records read by sources.
    pub events_in: u64,
    /// Records sent to dead letters.
    pub dead_letters: u64,
    /// Late records.
    pub late: u64,
    /// Records written by sinks.
    pub records_out: u64,
    /// While the job runs, the lowest source watermark (ms since the epoch
    /// of event time); at the end, the job's final watermark: the highest a
    /// source reached when its input ended (a split that read records in its
    /// last step counts with what they moved it to).
    pub watermark: Option<u64>,
    /// Checkpoints completed in this run (process 0 counts those it
    /// records, other processes those it announces to them).
    pub checkpoints: u64,
    /// The epoch of the newest of them.
    pub last_checkpoint: Option<u64>,
    /// Calls retried after a transient fault.
    pub retries: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "{} events in {:.1}s ({:.0} events/s), {} records out, {} late, {} dead letters",
            self.events_in,
            secs,
            self.events_in as f64 / secs,
            self.records_out,
            self.late,
            self.dead_letters
        )?;
        if let Some(w) = self.watermark {
            write!(f, ", watermark {w} ms")?;
        }
        if let Some(epoch) = self.last_checkpoint {
            write!(f, ", {} checkpoints (last epoch {epoch})", self.checkpoints)?;
        }
        if self.retries > 0 {
            write!(f, ", {} retries", self.retries)?;
        }
        Ok(())
    }
}

/// Prints a status line to stderr every `interval` until `done` is set.
pub(crate) fn spawn_status_thread(
    shared: Arc<JobShared>,
    interval: Duration,
    done: Arc<AtomicBool>,
) -> Option<std::thread::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    std::thread::Builder::new()
        .name("weir-status".into())
        .spawn(move || {
            let mut last = shared.summary();
            let tick = Duration::from_millis(50);
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                waited += tick;
                if waited < interval {
                    continue;
                }
                waited = Duration::ZERO;
                let now = shared.summary();
                let dt = (now.elapsed - last.elapsed).as_secs_f64().max(1e-9);
                let rate = (now.events_in - last.events_in) as f64 / dt;
                let watermark = now
                    .watermark
                    .map(|w| format!("{w} ms"))
                    .unwrap_or_else(|| "none yet".into());
                let checkpoint = now
                    .last_checkpoint
                    .map(|e| format!("  checkpoint {e}"))
                    .unwrap_or_default();
                let retrying = shared
                    .current_fault()
                    .map(|fault| format!("  retrying {fault} ({} retries)", now.retries))
                    .unwrap_or_default();
                eprintln!(
                    "weir: {:>6.1}s  {:>10.0} events/s  watermark {}  late {}  dead letters {}  out {}{}{}",
                    now.elapsed.as_secs_f64(),
                    rate,
                    watermark,
                    now.late,
                    now.dead_letters,
                    now.records_out,
                    checkpoint,
                    retrying
                );
                last = now;
            }
        })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_summary_shows_the_final_watermark() {
        let shared = JobShared::new(2);
        assert_eq!(shared.final_summary().watermark, None);
        // While running: the lowest published watermark.
        shared.publish_watermark(0, 0);
        shared.publish_watermark(1, 500);
        assert_eq!(shared.summary().watermark, Some(0));
        assert_eq!(shared.final_summary().watermark, Some(0));
        // The sources end, having read on to 9 000 and 4 000: the job's
        // final watermark is the highest, whatever the order they end in.
        shared.record_final_watermark(9_000);
        shared.record_final_watermark(4_000);
        assert_eq!(shared.final_summary().watermark, Some(9_000));
        assert!(shared
            .final_summary()
            .to_string()
            .contains("watermark 9000 ms"));
        // The status line keeps showing the running minimum.
        assert_eq!(shared.summary().watermark, Some(0));
    }
}
