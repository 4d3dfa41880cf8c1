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
use crate::error::Fault;
use crate::ids::SplitId;
use crate::pipeline::{run, Pipeline};
use crate::sink::Sink;
use crate::source::{
    position_of, position_word, ReadItem, ReadStatus, Source, SplitReader, SplitStart,
};

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
    /// 1.5 s and a failure: the input a job saw before it crashed. (The
    /// pause lets the other workers reach their own crash point, so the
    /// epochs every split closed can complete before the job stops, also
    /// on a loaded machine: with 300 ms, 4 workers on 2 busy cores sometimes
    /// crashed before any checkpoint completed.)
    pub fn crash_after(&self, n: usize) -> Self {
        Script {
            splits: self
                .splits
                .iter()
                .map(|steps| {
                    let mut cut: Vec<Step<T>> = steps.iter().take(n).cloned().collect();
                    cut.push(Step::Idle(Duration::from_millis(1_500)));
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

    /// A script that places epoch ends keeps them where they are.
    fn reader_epochs(&self) -> bool {
        self.splits
            .iter()
            .flatten()
            .any(|step| matches!(step, Step::EndEpoch))
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
        let mut readers: Vec<Box<dyn SplitReader<T>>> = Vec::with_capacity(splits.len());
        for start in splits {
            let split = start.split;
            let steps = self
                .splits
                .get(split.0 as usize)
                .cloned()
                .ok_or_else(|| Fault::fatal(format!("the script has no {split}")))?;
            let position = start
                .position
                .map_or_else(|| position_of(&[0, 0]), <[u8]>::to_vec);
            readers.push(Box::new(ScriptReader {
                split,
                steps,
                next: position_word(&position, 0)? as usize,
                offset: position_word(&position, 1)?,
                idle_until: None,
            }));
        }
        Ok(readers)
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

    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
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
                    return Err(Fault::fatal(message.clone()));
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
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        let at = self.capture.started.elapsed();
        let mut all = self
            .capture
            .records
            .lock()
            .map_err(|e| Fault::fatal(e.to_string()))?;
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

/// A parallel exactly-once sink for tests: every worker stages each epoch's
/// records as JSON lines in `DIR/staged/<epoch>-w<worker>.jsonl`, syncs the
/// file when the input has passed the epoch, and renames it into
/// `DIR/committed/` when the epoch's checkpoint is complete — the sink
/// protocol ([`crate::sink_protocol`]) on files, with one file per worker
/// and epoch so that any worker count can restore any other's.
///
/// It has no at-least-once path: [`Sink::write`] fails, so a job that does
/// not drive it by the protocol fails instead of passing by accident.
///
/// `WEIR_TEST_SINK_CRASH=commit:N` makes worker 0 abort the process (as
/// `kill -9` would) at its `N`-th commit after a complete checkpoint, before
/// committing: the gap between a complete checkpoint and its commit.
pub struct StagedFiles<T> {
    dir: std::path::PathBuf,
    worker: usize,
    /// Epochs being written: epoch → file.
    open: std::collections::BTreeMap<u64, std::io::BufWriter<std::fs::File>>,
    /// Epochs prepared, not yet committed.
    prepared: std::collections::BTreeSet<u64>,
    commits: u64,
    crash_at_commit: Option<u64>,
    _record: std::marker::PhantomData<T>,
}

impl<T> Clone for StagedFiles<T> {
    fn clone(&self) -> Self {
        StagedFiles::new(&self.dir)
    }
}

impl<T> StagedFiles<T> {
    /// A sink staging into `dir` (created when the job starts).
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        let crash_at_commit = std::env::var("WEIR_TEST_SINK_CRASH")
            .ok()
            .and_then(|v| v.strip_prefix("commit:")?.parse().ok());
        StagedFiles {
            dir: dir.into(),
            worker: 0,
            open: std::collections::BTreeMap::new(),
            prepared: std::collections::BTreeSet::new(),
            commits: 0,
            crash_at_commit,
            _record: std::marker::PhantomData,
        }
    }

    /// The file name of `worker`'s output of `epoch`.
    pub fn file_name(epoch: u64, worker: usize) -> String {
        format!("{epoch:020}-w{worker}.jsonl")
    }

    /// The (epoch, worker) a file name stands for.
    pub fn parse_name(name: &str) -> Option<(u64, usize)> {
        let (epoch, rest) = name.strip_suffix(".jsonl")?.split_once("-w")?;
        Some((epoch.parse().ok()?, rest.parse().ok()?))
    }

    /// The (epoch, worker, path) of every file in `DIR/<folder>`.
    pub fn files(
        dir: &std::path::Path,
        folder: &str,
    ) -> Result<Vec<(u64, usize, std::path::PathBuf)>, Fault> {
        let folder = dir.join(folder);
        let reading =
            |e: std::io::Error| Fault::io(format!("reading {}: {e}", folder.display()), &e);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(reading(e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(reading)?;
            if let Some((epoch, worker)) = entry.file_name().to_str().and_then(Self::parse_name) {
                files.push((epoch, worker, entry.path()));
            }
        }
        files.sort();
        Ok(files)
    }

    /// Every committed line, sorted: what a reader of the output sees.
    pub fn committed(dir: &std::path::Path) -> Result<Vec<String>, Fault> {
        let mut lines = Vec::new();
        for (_, _, path) in Self::files(dir, "committed")? {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| Fault::io(format!("reading {}: {e}", path.display()), &e))?;
            lines.extend(text.lines().map(String::from));
        }
        lines.sort();
        Ok(lines)
    }

    fn path(&self, folder: &str, epoch: u64, worker: usize) -> std::path::PathBuf {
        self.dir.join(folder).join(Self::file_name(epoch, worker))
    }

    fn commit_file(&self, epoch: u64, worker: usize) -> Result<(), Fault> {
        let from = self.path("staged", epoch, worker);
        let to = self.path("committed", epoch, worker);
        std::fs::rename(&from, &to)
            .map_err(|e| Fault::fatal(format!("committing {}: {e}", from.display())))
    }
}

fn remove(path: &std::path::Path) -> Result<(), Fault> {
    std::fs::remove_file(path)
        .map_err(|e| Fault::fatal(format!("removing {}: {e}", path.display())))
}

impl<T: Data> Sink<T> for StagedFiles<T> {
    fn open(&mut self, worker: crate::ids::WorkerIndex) -> Result<(), Fault> {
        self.worker = worker.0;
        for folder in ["staged", "committed"] {
            let path = self.dir.join(folder);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn write(&mut self, _records: &mut Vec<T>) -> Result<(), Fault> {
        Err(Fault::fatal(
            "StagedFiles is exactly-once: run it in a job with checkpoints",
        ))
    }

    fn parallel(&self) -> bool {
        true
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn needs_checkpoints(&self) -> bool {
        true
    }

    fn recover(&mut self, recovery: &crate::sink::Recovery) -> Result<(), Fault> {
        use crate::sink_protocol::Resolve;
        for (folder, committed) in [("staged", false), ("committed", true)] {
            for (epoch, worker, path) in Self::files(&self.dir, folder)? {
                if !recovery.resolves(worker) {
                    continue;
                }
                match recovery.resolve(epoch, committed) {
                    Resolve::Keep => {}
                    Resolve::Commit => self.commit_file(epoch, worker)?,
                    Resolve::Abort | Resolve::Withdraw => remove(&path)?,
                }
            }
        }
        Ok(())
    }

    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), Fault> {
        use std::io::Write;
        if !self.open.contains_key(&epoch) {
            let path = self.path("staged", epoch, self.worker);
            let file = std::fs::File::create(&path)
                .map_err(|e| format!("creating {}: {e}", path.display()))?;
            self.open.insert(epoch, std::io::BufWriter::new(file));
        }
        let Some(file) = self.open.get_mut(&epoch) else {
            return Err(Fault::fatal("weir invariant: a file just opened is open"));
        };
        for record in records.drain(..) {
            let line = serde_json::to_string(&record).map_err(|e| Fault::fatal(e.to_string()))?;
            writeln!(file, "{line}").map_err(|e| Fault::fatal(e.to_string()))?;
        }
        Ok(())
    }

    fn prepare(&mut self, through: u64) -> Result<(), Fault> {
        use std::io::Write;
        let later = match through.checked_add(1) {
            Some(next) => self.open.split_off(&next),
            None => std::collections::BTreeMap::new(),
        };
        for (epoch, mut file) in std::mem::replace(&mut self.open, later) {
            file.flush()
                .and_then(|()| file.get_ref().sync_all())
                .map_err(|e| format!("syncing epoch {epoch}: {e}"))?;
            self.prepared.insert(epoch);
        }
        Ok(())
    }

    fn commit(&mut self, through: u64) -> Result<(), Fault> {
        if through != u64::MAX && self.worker == 0 {
            self.commits += 1;
            if self.crash_at_commit == Some(self.commits) {
                eprintln!("weir: WEIR_TEST_SINK_CRASH: aborting before committing {through}");
                std::process::abort();
            }
        }
        let later = match through.checked_add(1) {
            Some(next) => self.prepared.split_off(&next),
            None => std::collections::BTreeSet::new(),
        };
        for epoch in std::mem::replace(&mut self.prepared, later) {
            self.commit_file(epoch, self.worker)?;
        }
        Ok(())
    }
}
