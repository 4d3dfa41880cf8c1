//! A deterministic harness for testing jobs: a scripted source, a capturing
//! sink, and [`run_workers`].
//!
//! ```
//! use weir::testing::{run_workers, Script};
//! use weir::Watermarks;
//!
//! // Two splits; the second is behind. Records carry (key, event time).
//! let script = Script::new()
//!     .records(&[('a', 1_000u64), ('b', 2_000)])
//!     .watermark(5_000)
//!     .split()
//!     .records(&[('a', 1_500)])
//!     .end_epoch()
//!     .malformed("not a record", "cannot parse");
//!
//! for workers in [1, 2, 4] {
//!     let mut out = run_workers(workers, {
//!         let script = script.clone();
//!         move |p, capture| {
//!             p.source("script", script.clone())
//!                 .event_time(|r: &(char, u64)| r.1, Watermarks::ascending())
//!                 .map(|(k, ts)| format!("{k}@{ts}"))
//!                 .sink("out", capture.sink());
//!         }
//!     });
//!     out.sort();
//!     assert_eq!(out, vec!["a@1000", "a@1500", "b@2000"]);
//! }
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RunArgs;
use crate::data::Data;
use crate::dead_letter::{DeadLetter, Origin};
use crate::ids::SplitId;
use crate::pipeline::{run, Pipeline};
use crate::sink::Sink;
use crate::source::{position_of, position_word, ReadItem, ReadStatus, Source, SplitReader};

/// One step of a scripted split.
#[derive(Clone, Debug)]
pub enum Step<T> {
    /// A record.
    Record(T),
    /// An explicit watermark (ms).
    Watermark(u64),
    /// Close the current epoch.
    EndEpoch,
    /// A record that fails to decode: the raw text and the reason.
    Malformed(String, String),
    /// Produce nothing for this long (processing time), then go on.
    Idle(Duration),
    /// Fail the read with this message: the job stops with an error, as a
    /// crash would, without finishing the split.
    Fail(String),
}

/// A scripted source: one or more splits, each a list of [`Step`]s.
#[derive(Clone, Debug)]
pub struct Script<T> {
    splits: Vec<Vec<Step<T>>>,
}

impl<T> Default for Script<T> {
    fn default() -> Self {
        Script {
            splits: vec![Vec::new()],
        }
    }
}

impl<T: Clone> Script<T> {
    /// A script with one empty split.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, step: Step<T>) -> Self {
        if let Some(split) = self.splits.last_mut() {
            split.push(step);
        }
        self
    }

    /// Appends a record to the current split.
    pub fn record(self, record: T) -> Self {
        self.push(Step::Record(record))
    }

    /// Appends records to the current split.
    pub fn records(mut self, records: &[T]) -> Self {
        for r in records {
            self = self.record(r.clone());
        }
        self
    }

    /// Appends an explicit watermark to the current split.
    pub fn watermark(self, watermark: u64) -> Self {
        self.push(Step::Watermark(watermark))
    }

    /// Closes the current epoch at this point of the current split.
    pub fn end_epoch(self) -> Self {
        self.push(Step::EndEpoch)
    }

    /// Appends a record that fails to decode.
    pub fn malformed(self, raw: &str, reason: &str) -> Self {
        self.push(Step::Malformed(raw.into(), reason.into()))
    }

    /// Makes the current split produce nothing for `duration` of processing time.
    pub fn idle(self, duration: Duration) -> Self {
        self.push(Step::Idle(duration))
    }

    /// Makes the current split fail here (a crash, for restore tests).
    pub fn fail(self, message: &str) -> Self {
        self.push(Step::Fail(message.into()))
    }

    /// The first `n` steps of every split, each followed by a pause of
    /// 300 ms and a failure: the input a job saw before it crashed. (The
    /// pause lets the other workers reach their own crash point, so the
    /// epochs every split closed can complete before the job stops.)
    pub fn crash_after(&self, n: usize) -> Self {
        Script {
            splits: self
                .splits
                .iter()
                .map(|steps| {
                    let mut cut: Vec<Step<T>> = steps.iter().take(n).cloned().collect();
                    cut.push(Step::Idle(Duration::from_millis(300)));
                    cut.push(Step::Fail("simulated crash".into()));
                    cut
                })
                .collect(),
        }
    }

    /// Starts a new split; later steps go to it.
    pub fn split(mut self) -> Self {
        self.splits.push(Vec::new());
        self
    }
}

impl<T: Clone + 'static> Source for Script<T> {
    type Item = T;

    fn splits(&self) -> u32 {
        self.splits.len() as u32
    }

    fn open(&mut self, split: SplitId) -> Result<Box<dyn SplitReader<T>>, String> {
        self.open_at(split, &position_of(&[0, 0]))
    }

    fn open_at(
        &mut self,
        split: SplitId,
        position: &[u8],
    ) -> Result<Box<dyn SplitReader<T>>, String> {
        let steps = self
            .splits
            .get(split.0 as usize)
            .cloned()
            .ok_or_else(|| format!("the script has no {split}"))?;
        Ok(Box::new(ScriptReader {
            split,
            steps,
            next: position_word(position, 0)? as usize,
            offset: position_word(position, 1)?,
            idle_until: None,
        }))
    }
}

struct ScriptReader<T> {
    split: SplitId,
    steps: Vec<Step<T>>,
    next: usize,
    /// Records (good or malformed) produced: the offset of the next one.
    offset: u64,
    idle_until: Option<Instant>,
}

impl<T: Clone> SplitReader<T> for ScriptReader<T> {
    fn position(&self) -> Vec<u8> {
        position_of(&[self.next as u64, self.offset])
    }

    fn read(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, String> {
        let mut produced = 0;
        while produced < max {
            let Some(step) = self.steps.get(self.next) else {
                return Ok(ReadStatus::Done);
            };
            match step {
                Step::Idle(duration) => {
                    let until = *self
                        .idle_until
                        .get_or_insert_with(|| Instant::now() + *duration);
                    if Instant::now() < until {
                        return Ok(if produced > 0 {
                            ReadStatus::Ready
                        } else {
                            ReadStatus::Idle
                        });
                    }
                    self.idle_until = None;
                }
                Step::Fail(message) => {
                    if produced > 0 {
                        return Ok(ReadStatus::Ready);
                    }
                    return Err(message.clone());
                }
                Step::Record(r) => {
                    self.offset += 1;
                    out.push(ReadItem::Record(r.clone()))
                }
                Step::Watermark(w) => out.push(ReadItem::Watermark(*w)),
                Step::EndEpoch => {
                    // Return right after an epoch end, so the position the
                    // source records for the epoch is exactly here.
                    out.push(ReadItem::EndEpoch);
                    self.next += 1;
                    return Ok(ReadStatus::Ready);
                }
                Step::Malformed(raw, reason) => {
                    out.push(ReadItem::Bad(Box::new(DeadLetter {
                        source: String::new(),
                        origin: Origin::split(self.split.0, self.offset),
                        reason: reason.clone(),
                        raw: raw.as_str().into(),
                    })));
                    self.offset += 1;
                }
            }
            self.next += 1;
            produced += 1;
        }
        Ok(ReadStatus::Ready)
    }
}

/// Collects what a pipeline emits, from every worker of this process.
pub struct Capture<T> {
    records: Arc<Mutex<Vec<(Duration, T)>>>,
    started: Instant,
}

impl<T> Clone for Capture<T> {
    fn clone(&self) -> Self {
        Capture {
            records: Arc::clone(&self.records),
            started: self.started,
        }
    }
}

impl<T: Data> Capture<T> {
    /// An empty capture.
    pub fn new() -> Self {
        Capture {
            records: Arc::new(Mutex::new(Vec::new())),
            started: Instant::now(),
        }
    }

    /// A sink that appends to this capture (parallel: each worker appends its own).
    pub fn sink(&self) -> CaptureSink<T> {
        CaptureSink {
            capture: self.clone(),
        }
    }

    /// Everything captured so far, in arrival order.
    pub fn records(&self) -> Vec<T> {
        self.timed().into_iter().map(|(_, r)| r).collect()
    }

    /// Everything captured so far, with the time since the capture was made.
    pub fn timed(&self) -> Vec<(Duration, T)> {
        match self.records.lock() {
            Ok(records) => records.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl<T: Data> Default for Capture<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The sink side of a [`Capture`].
pub struct CaptureSink<T> {
    capture: Capture<T>,
}

impl<T: Data> Sink<T> for CaptureSink<T> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String> {
        let at = self.capture.started.elapsed();
        let mut all = self.capture.records.lock().map_err(|e| e.to_string())?;
        all.extend(records.drain(..).map(|r| (at, r)));
        Ok(())
    }

    fn parallel(&self) -> bool {
        true
    }
}

/// Runs `job` on `workers` threads and returns what it sent to the capture,
/// sorted (outputs of a parallel job have no order across workers). Panics if
/// the job fails: this is for tests.
pub fn run_workers<T, F>(workers: usize, job: F) -> Vec<T>
where
    T: Data + Ord,
    F: Fn(&mut Pipeline<'_>, &Capture<T>) + Send + Sync + 'static,
{
    let mut out = run_workers_timed(workers, job)
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>();
    out.sort();
    out
}

/// Like [`run_workers`], but keeps arrival order and each record's arrival
/// time (since the start), for tests about *when* results appear.
pub fn run_workers_timed<T, F>(workers: usize, job: F) -> Vec<(Duration, T)>
where
    T: Data,
    F: Fn(&mut Pipeline<'_>, &Capture<T>) + Send + Sync + 'static,
{
    run_with(RunArgs::threads(workers), job)
}

/// Runs `job` with explicit run flags (workers, epoch interval, flow-control
/// bound, …); returns records in arrival order with their arrival times.
pub fn run_with<T, F>(args: RunArgs, job: F) -> Vec<(Duration, T)>
where
    T: Data,
    F: Fn(&mut Pipeline<'_>, &Capture<T>) + Send + Sync + 'static,
{
    let capture = Capture::new();
    let inner = capture.clone();
    if let Err(e) = run(&args, move |p| job(p, &inner)) {
        panic!("the job failed: {e}");
    }
    capture.timed()
}
