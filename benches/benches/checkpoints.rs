//! Checkpoints on RocksDB: what they cost a running job, what each epoch
//! writes, and how long a restore of about 1 GB of state takes.
//!
//! Isolates three things, each against its own reference:
//!
//! 1. **Throughput cost.** The fraud-like job (per card, count and spend in a
//!    5 min sliding window every 1 min) with checkpoints every 1 s on
//!    RocksDB, against the same job with the same 1 s epochs and no
//!    checkpoint directory: same records, same output (checked equal), so
//!    the ratio is what checkpointing costs. Goal: under 10 %. Two key
//!    counts: few cards (each epoch rewrites a small state) and many (each
//!    epoch changes a large part of a large state).
//! 2. **What each epoch writes as state grows.** The job at a fixed rate
//!    over far more cards than it sees per epoch, with no window firing, so
//!    the state grows every epoch by about as many keys as the epoch
//!    changes. Measured through a `Backend` that wraps `weir_rocks::Rocks`
//!    and times every store `write()` (a chunk of one step's flush on one
//!    worker, the last one synced with the flush's marker) into an HDR histogram and counts its bytes by
//!    epoch. Only changed keys are written, so bytes per epoch follow the
//!    keys changed, not the total state (the correlation of both is shown).
//! 3. **Restore time.** A job with large per-key state (`CK_RESTORE_MB` of
//!    values) writes it through the engine into a 2-worker checkpoint; then
//!    jobs start on it and the time from the start until every worker has
//!    its key groups loaded (plan, open, range scans, install) is measured,
//!    on 2 workers (each reads its own store) and on 1 (rescaled: it reads
//!    both). Goal: under 10 s. The page cache is warm (just written).
//!
//! Run: `cargo bench -p weir-benches --bench checkpoints` (release build).
//! Sizes come from the environment: `CK_KEYS` (card counts for part 1,
//! default `10000,1000000`), `CK_SECONDS` (part 1 runs are sized to about
//! this long without checkpoints, default 4) or `CK_EVENTS` (records per
//! run), `CK_RUNS` (runs per mode, default 3), `CK_GROW_KEYS`,
//! `CK_GROW_RATE`, `CK_GROW_SECONDS` (part 2: cards, records per second,
//! seconds; default 20 000 000, 100 000, 15), `CK_RESTORE_MB` (default
//! 1024; 0 skips part 3), `CK_VALUE_BYTES` (state per key in part 3,
//! default 1000), `CK_WORKERS` (default 2), `CK_DIR` (scratch directory,
//! default in the system temp dir; removed at the end), `CK_EPOCH_MS` (the
//! epoch and so checkpoint interval of parts 1 and 2, default 1000).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use weir::checkpoint::layout;
use weir::checkpoint::manifest;
use weir::checkpoint::runtime::{plan, store_path, Backend};
use weir::checkpoint::store::{Batch, Op, StateStore, StoreError};
use weir::config::BackendHandle;
use weir::rng::SplitMix64;
use weir::source::{position_of, position_word};
use weir::stateful::{Emit, KeyedLogic};
use weir::{ReadItem, ReadStatus, RunArgs, Sink, Source, SplitId, SplitReader, Watermarks};
use weir_connectors::{Generator, GeneratorConfig, Transaction};
use weir_operators::{Count, Sum, WindowExt, Windows};

/// `CK_EPOCH_MS` (default 1000): the epoch, so the checkpoint, interval.
fn epoch_ms() -> u64 {
    env("CK_EPOCH_MS", 1_000).max(1)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ' '], "").parse().ok())
        .unwrap_or(default)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn quantiles(h: &Histogram<u64>, unit: f64) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "p50 {:>8.2}  p99 {:>8.2}  max {:>8.2}",
        h.value_at_quantile(0.5) as f64 / unit,
        h.value_at_quantile(0.99) as f64 / unit,
        h.max() as f64 / unit
    )
}

/// The correlation of two series.
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt()).max(f64::MIN_POSITIVE)
}

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("valid histogram")
}

// ---------------------------------------------------------------------------
// The recording backend.

/// What one epoch's flushes wrote, over every step and worker.
#[derive(Default, Clone)]
struct EpochWrites {
    flushes: u64,
    /// Delta and position keys, and their key + value bytes.
    keys: u64,
    bytes: u64,
    /// State deltas among them (changed keys).
    delta_keys: u64,
    /// Time spent in `write()` by all of the epoch's flushes.
    write_micros: u64,
    /// From the first of the epoch's writes to the end of the last.
    first: Option<Instant>,
    last: Option<Instant>,
    /// The state after the epoch: live keys and their stored bytes.
    live_keys: u64,
    live_bytes: u64,
}

#[derive(Default)]
struct Recorded {
    /// Microseconds per flush `write()`.
    flush_micros: Option<Histogram<u64>>,
    /// Microseconds per fold `write()` (deltas into the base).
    fold_micros: Option<Histogram<u64>>,
    epochs: BTreeMap<u64, EpochWrites>,
    /// Live state keys (without their epoch) and the size of their value.
    live: HashMap<Vec<u8>, u64>,
    live_bytes: u64,
    /// Track the live state (costs a hash insert per written key).
    track_live: bool,
}

/// A `Backend` over `weir_rocks::Rocks` whose stores time and count writes.
#[derive(Clone)]
struct Recording {
    inner: Arc<weir_rocks::Rocks>,
    log: Arc<Mutex<Recorded>>,
}

impl Recording {
    fn new(track_live: bool) -> Self {
        Recording {
            inner: Arc::new(weir_rocks::Rocks),
            log: Arc::new(Mutex::new(Recorded {
                flush_micros: Some(histogram()),
                fold_micros: Some(histogram()),
                track_live,
                ..Recorded::default()
            })),
        }
    }

    fn handle(&self) -> BackendHandle {
        BackendHandle(Arc::new(self.clone()))
    }

    fn take(&self) -> Recorded {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

impl Backend for Recording {
    fn open(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(RecordingStore {
            inner: self.inner.open(path)?,
            log: Arc::clone(&self.log),
        }))
    }
    fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        self.inner.open_read_only(path)
    }
}

struct RecordingStore {
    inner: Box<dyn StateStore>,
    log: Arc<Mutex<Recorded>>,
}

impl RecordingStore {
    /// Times and counts one write, then hands it on.
    fn record(&mut self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
        // Read the batch before it goes: its epoch (from the flush marker),
        // what it writes, and whether it is a fold.
        let mut epoch = None;
        let mut fold = false;
        let (mut keys, mut bytes, mut delta_keys) = (0u64, 0u64, 0u64);
        let mut deltas: Vec<(Vec<u8>, Option<u64>)> = Vec::new();
        let track = self.log.lock().map(|l| l.track_live).unwrap_or(false);
        for op in batch.ops() {
            if let Op::Put(k, v) = op {
                match k.first() {
                    Some(&layout::MARKER) => epoch = layout::epoch_of(k),
                    Some(&layout::DELTA) | Some(&layout::POSITION) => {
                        // A flush's first chunks carry no marker.
                        epoch = epoch.or(layout::epoch_of(k));
                        keys += 1;
                        bytes += (k.len() + v.len()) as u64;
                        delta_keys += u64::from(k[0] == layout::DELTA);
                        if track && k[0] == layout::DELTA {
                            let live =
                                (v.first() == Some(&1)).then_some((k.len() + v.len()) as u64);
                            deltas.push((k.get(9..).unwrap_or_default().to_vec(), live));
                        }
                    }
                    _ if k == layout::FOLDED => fold = true,
                    _ => {}
                }
            }
        }
        let started = Instant::now();
        let result = if sync {
            self.inner.write(batch)
        } else {
            self.inner.write_unsynced(batch)
        };
        let done = Instant::now();
        let micros = done.duration_since(started).as_micros() as u64;
        let mut log = self.log.lock().expect("lock");
        if fold {
            if let Some(h) = log.fold_micros.as_mut() {
                let _ = h.record(micros.max(1));
            }
        }
        if let (Some(epoch), false) = (epoch, fold) {
            if let Some(h) = log.flush_micros.as_mut() {
                let _ = h.record(micros.max(1));
            }
            for (key, live) in deltas {
                let old = match live {
                    Some(size) => log.live.insert(key, size),
                    None => log.live.remove(&key),
                };
                log.live_bytes =
                    (log.live_bytes + live.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
            }
            let (live_keys, live_bytes) = (log.live.len() as u64, log.live_bytes);
            let e = log.epochs.entry(epoch).or_default();
            e.flushes += 1;
            e.keys += keys;
            e.bytes += bytes;
            e.delta_keys += delta_keys;
            e.write_micros += micros;
            e.first.get_or_insert(started);
            e.last = Some(done);
            e.live_keys = live_keys;
            e.live_bytes = live_bytes;
        }
        result
    }
}

impl StateStore for RecordingStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.record(batch, true)
    }

    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.record(batch, false)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        self.inner.scan(start, end, visit)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
}

// ---------------------------------------------------------------------------
// Parts 1 and 2: the fraud-like job.

/// The fraud-like job's input. `spacing` is event time per record; `rate`
/// caps records per second of wall-clock time.
fn transactions(events: u64, keys: u64, spacing: Duration, rate: Option<f64>) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        rate,
        keys,
        skew: 0.0,
        spacing,
        disorder: Duration::from_millis(500),
        late_fraction: 0.0,
        malformed_fraction: 0.0,
        splits: 4,
        ..GeneratorConfig::default()
    }
}

/// Counts what reaches it.
#[derive(Clone)]
struct Counting(Arc<AtomicU64>);

impl<T> Sink<T> for Counting {
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String> {
        self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
        records.clear();
        Ok(())
    }
}

struct RunResult {
    elapsed: Duration,
    fired: u64,
}

/// One run of the fraud-like job; with a backend: checkpoints in `dir`.
fn fraud_like(
    input: GeneratorConfig,
    workers: usize,
    checkpoint: Option<(&Path, BackendHandle)>,
) -> RunResult {
    let generator = Generator::<Transaction>::new(input).expect("config");
    let fired = Arc::new(AtomicU64::new(0));
    let sink = Counting(Arc::clone(&fired));
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_millis(epoch_ms());
    if let Some((dir, backend)) = checkpoint {
        let _ = std::fs::remove_dir_all(dir);
        args.checkpoint_dir = Some(dir.to_path_buf());
        args.backend = Some(backend);
    }
    let started = Instant::now();
    let result = weir::run(&args, move |p| {
        p.source("transactions", generator.clone())
            .event_time(
                |t: &Transaction| t.ts_ms,
                Watermarks::bounded(Duration::from_secs(2)),
            )
            .key_by("by_card", |t| t.card)
            .window(
                "card_activity",
                Windows::sliding(Duration::from_secs(300), Duration::from_secs(60)),
                (Count, Sum::of(|t: &Transaction| t.amount_cents)),
            )
            .fired
            .sink("windows", sink.clone());
    });
    let elapsed = started.elapsed();
    if let Err(e) = result {
        panic!("the fraud-like run failed: {e}");
    }
    RunResult {
        elapsed,
        fired: fired.load(Ordering::Relaxed),
    }
}

/// Per-epoch write statistics over one or more recorded runs.
#[derive(Default)]
struct WriteStats {
    flush_micros: Option<Histogram<u64>>,
    epoch_micros: Option<Histogram<u64>>,
    epoch_bytes: Option<Histogram<u64>>,
    epoch_keys: Option<Histogram<u64>>,
}

impl WriteStats {
    fn add(&mut self, log: &Recorded) {
        if let Some(f) = &log.flush_micros {
            let _ = self.flush_micros.get_or_insert_with(histogram).add(f);
        }
        // Epochs only sources flushed (the last ones) say nothing.
        for e in log.epochs.values().filter(|e| e.delta_keys > 0) {
            let _ = self
                .epoch_micros
                .get_or_insert_with(histogram)
                .record(e.write_micros.max(1));
            let _ = self
                .epoch_bytes
                .get_or_insert_with(histogram)
                .record(e.bytes.max(1));
            let _ = self
                .epoch_keys
                .get_or_insert_with(histogram)
                .record(e.keys.max(1));
        }
    }

    fn print(&self, indent: &str) {
        let show = |o: &Option<Histogram<u64>>, unit: f64| match o {
            Some(h) => quantiles(h, unit),
            None => "-".into(),
        };
        println!(
            "{indent}one write() of a flush (<= 4 MiB, last synced):    {} ms",
            show(&self.flush_micros, 1e3)
        );
        println!(
            "{indent}one epoch, all its flushes' write() time:          {} ms",
            show(&self.epoch_micros, 1e3)
        );
        println!(
            "{indent}bytes written per epoch:                           {} MiB",
            show(&self.epoch_bytes, 1024.0 * 1024.0)
        );
        println!(
            "{indent}keys written per epoch:                            {} k",
            show(&self.epoch_keys, 1e3)
        );
    }
}

fn throughput(
    events: Option<u64>,
    seconds: f64,
    keys: &[u64],
    workers: usize,
    runs: usize,
    scratch: &Path,
) {
    println!(
        "\n1. throughput: 5 min windows every 1 min (count, spend) per card, -w {workers}, {} ms \
         epochs, {runs} runs per mode, alternating (median); runs sized to ~{seconds} s without \
         checkpoints",
        epoch_ms()
    );
    let dir = scratch.join("throughput");
    let mut summary = Vec::new();
    for &keys in keys {
        // Size the runs: a short run without checkpoints (also a warm-up).
        let events = events.unwrap_or_else(|| {
            let probe = 2_000_000;
            let r = fraud_like(
                transactions(probe, keys, Duration::from_micros(100), None),
                workers,
                None,
            );
            ((probe as f64 / r.elapsed.as_secs_f64() * seconds) as u64).max(probe)
        });
        println!("   {keys} cards, {events} transactions per run:");
        let input = transactions(events, keys, Duration::from_micros(100), None);
        let mut plain = histogram();
        let mut checkpointed = histogram();
        let mut fired = None;
        let mut writes = WriteStats::default();
        for run in 0..runs {
            for with in [false, true] {
                let r = if with {
                    let recording = Recording::new(false);
                    let r = fraud_like(input.clone(), workers, Some((&dir, recording.handle())));
                    writes.add(&recording.take());
                    r
                } else {
                    fraud_like(input.clone(), workers, None)
                };
                assert_eq!(
                    *fired.get_or_insert(r.fired),
                    r.fired,
                    "both modes fire the same windows"
                );
                let micros = r.elapsed.as_micros() as u64;
                let _ = if with { &mut checkpointed } else { &mut plain }.record(micros);
                println!(
                    "     run {}  {:<22} {:>7.3} s  {:>10.0} events/s",
                    run + 1,
                    if with {
                        "checkpoints every epoch"
                    } else {
                        "no checkpoints"
                    },
                    r.elapsed.as_secs_f64(),
                    events as f64 / r.elapsed.as_secs_f64()
                );
            }
        }
        let median = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1e6;
        let (p, c) = (median(&plain), median(&checkpointed));
        let cost = (1.0 - p / c) * 100.0;
        println!(
            "     median: no checkpoints {:>10.0} events/s, checkpoints {:>10.0} events/s: \
             cost {cost:.1} % (goal < 10 %); {} windows fired per run",
            events as f64 / p,
            events as f64 / c,
            fired.unwrap_or(0)
        );
        writes.print("     ");
        summary.push((keys, events as f64 / p, events as f64 / c, cost, writes));
    }
    println!(
        "   {:>9}  {:>14}  {:>14}  {:>7}  {:>13}  {:>13}",
        "CARDS", "PLAIN EV/S", "CHECKPT EV/S", "COST", "K KEYS/EPOCH", "MIB/EPOCH"
    );
    for (keys, p, c, cost, writes) in &summary {
        let p50 = |h: &Option<Histogram<u64>>| h.as_ref().map_or(0, |h| h.value_at_quantile(0.5));
        println!(
            "   {keys:>9}  {p:>14.0}  {c:>14.0}  {cost:>6.1}%  {:>13.1}  {:>13.2}",
            p50(&writes.epoch_keys) as f64 / 1e3,
            mib(p50(&writes.epoch_bytes))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Growing state: far more cards than the job sees per epoch, at a fixed
/// rate, and windows that do not fire during the run (event time moves 2 s
/// per second), so every epoch adds about as many keys as the last.
fn epoch_writes(keys: u64, rate: u64, seconds: u64, workers: usize, scratch: &Path) {
    let events = rate * seconds;
    println!(
        "\n2. what each epoch writes as the state grows: {events} transactions at {rate}/s over \
         {keys} cards (each epoch sees new ones), no window fires; -w {workers}, {} ms epochs; \
         every store write() timed",
        epoch_ms()
    );
    let dir = scratch.join("epochs");
    let recording = Recording::new(true);
    let input = transactions(
        events,
        keys,
        Duration::from_micros(2_000_000 / rate.max(1)),
        Some(rate as f64),
    );
    let r = fraud_like(input, workers, Some((&dir, recording.handle())));
    let log = recording.take();
    println!(
        "   run: {:.3} s, {:.0} events/s",
        r.elapsed.as_secs_f64(),
        events as f64 / r.elapsed.as_secs_f64()
    );
    println!(
        "   {:>5}  {:>7}  {:>10}  {:>9}  {:>10}  {:>9}  {:>8}  {:>9}  {:>8}",
        "EPOCH",
        "FLUSHES",
        "KEYS WRIT.",
        "MIB WRIT.",
        "STATE KEYS",
        "STATE MIB",
        "WRIT/ALL",
        "WRITE MS",
        "SPAN MS"
    );
    println!(
        "   (written: the deltas and positions of the epoch's flushes, all workers; state: live \
         keys after it; write ms: in write(), summed; span: first write to last)"
    );
    for (epoch, e) in &log.epochs {
        let span = match (e.first, e.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() * 1e3,
            _ => 0.0,
        };
        let share = if e.live_keys > 0 {
            format!("{:.0} %", 100.0 * e.keys as f64 / e.live_keys as f64)
        } else {
            "-".into()
        };
        println!(
            "   {:>5}  {:>7}  {:>10}  {:>9.2}  {:>10}  {:>9.2}  {:>8}  {:>9.1}  {:>8.1}",
            epoch,
            e.flushes,
            e.keys,
            mib(e.bytes),
            e.live_keys,
            mib(e.live_bytes),
            share,
            e.write_micros as f64 / 1e3,
            span
        );
    }
    let mut stats = WriteStats::default();
    stats.add(&log);
    stats.print("   ");
    if let Some(h) = log.fold_micros.as_ref().filter(|h| !h.is_empty()) {
        println!(
            "   folding deltas into the base, per write():      {} ms  ({} folds)",
            quantiles(h, 1e3),
            h.len()
        );
    }
    // Bytes per epoch against keys changed and against the state size.
    let full: Vec<&EpochWrites> = log.epochs.values().filter(|e| e.delta_keys > 0).collect();
    if full.len() >= 3 {
        let bytes: Vec<f64> = full.iter().map(|e| e.bytes as f64).collect();
        let changed: Vec<f64> = full.iter().map(|e| e.delta_keys as f64).collect();
        let state: Vec<f64> = full.iter().map(|e| e.live_bytes as f64).collect();
        let per_key: Vec<f64> = full
            .iter()
            .map(|e| e.bytes as f64 / e.delta_keys.max(1) as f64)
            .collect();
        let (lo, hi) = per_key
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "   over {} epochs the state grew from {:.1} to {:.1} MiB; bytes an epoch wrote \
             correlate with the keys it changed (r = {:.3}; {lo:.0} to {hi:.0} bytes per changed \
             key), not with the state's size (r = {:.3})",
            full.len(),
            mib(full[0].live_bytes),
            mib(full[full.len() - 1].live_bytes),
            pearson(&bytes, &changed),
            pearson(&bytes, &state),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Part 3: large state, written by the engine, restored.

/// Keys `0..keys` over `splits` splits (key `k` on split `k % splits`), an
/// epoch every `per_epoch` records. After the last record it waits until
/// the manifest in `dir` records its last epoch complete, then fails, so
/// the run does not end cleanly (a finished run is not restored). Opened at
/// its end (a restore), it notes when and fails at once.
#[derive(Clone)]
struct KeysSource {
    keys: u64,
    splits: u32,
    per_epoch: u64,
    dir: PathBuf,
    opened_at_end: Arc<Mutex<Vec<Instant>>>,
}

impl KeysSource {
    /// The last epoch a split closes (every split closes as many).
    fn last_epoch(&self) -> u64 {
        let per_split = self.keys / self.splits as u64;
        per_split.div_ceil(self.per_epoch).max(1) - 1
    }
}

struct KeysSplit {
    source: KeysSource,
    split: u64,
    /// Keys this split produced.
    produced: u64,
    /// When the split ran out.
    ended: Option<Instant>,
    /// Opened at its end (a restore): fail at once.
    restored_at_end: bool,
}

impl KeysSplit {
    fn total(&self) -> u64 {
        let (k, n) = (self.source.keys, self.source.splits as u64);
        k / n + u64::from(self.split < k % n)
    }
}

impl Source for KeysSource {
    type Item = u64;

    fn splits(&self) -> u32 {
        self.splits
    }

    fn open(&mut self, split: SplitId) -> Result<Box<dyn SplitReader<u64>>, String> {
        self.open_at(split, &position_of(&[0]))
    }

    fn open_at(
        &mut self,
        split: SplitId,
        position: &[u8],
    ) -> Result<Box<dyn SplitReader<u64>>, String> {
        let mut reader = KeysSplit {
            source: self.clone(),
            split: split.0 as u64,
            produced: position_word(position, 0)?,
            ended: None,
            restored_at_end: false,
        };
        if reader.produced >= reader.total() && reader.produced > 0 {
            reader.restored_at_end = true;
            if let Ok(mut at) = self.opened_at_end.lock() {
                at.push(Instant::now());
            }
        }
        Ok(Box::new(reader))
    }
}

impl SplitReader<u64> for KeysSplit {
    fn read(&mut self, max: usize, out: &mut Vec<ReadItem<u64>>) -> Result<ReadStatus, String> {
        let total = self.total();
        if self.restored_at_end {
            return Err("stop (the bench ends its runs this way)".into());
        }
        if self.produced >= total {
            let ended = *self.ended.get_or_insert_with(Instant::now);
            let recorded = manifest::read(&self.source.dir)
                .ok()
                .and_then(|m| m.complete.last().map(|e| e.epoch));
            if recorded < Some(self.source.last_epoch()) {
                if ended.elapsed() > Duration::from_secs(600) {
                    return Err("the last epoch never completed".into());
                }
                return Ok(ReadStatus::Idle);
            }
            return Err("stop (the bench ends its runs this way)".into());
        }
        let per_epoch = self.source.per_epoch;
        let n = (max as u64).min(total - self.produced);
        for _ in 0..n {
            let key = self.produced * self.source.splits as u64 + self.split;
            out.push(ReadItem::Record(key));
            self.produced += 1;
            if self.produced.is_multiple_of(per_epoch) || self.produced == total {
                out.push(ReadItem::EndEpoch);
                return Ok(ReadStatus::Ready);
            }
        }
        Ok(ReadStatus::Ready)
    }

    fn position(&self) -> Vec<u8> {
        position_of(&[self.produced])
    }
}

/// Per key, `value_bytes` of (incompressible) state; counts what restores.
struct Blobs {
    value_bytes: usize,
    state: HashMap<u64, Vec<u8>>,
    changed: HashSet<u64>,
    tracking: bool,
    restored: Arc<(AtomicU64, AtomicU64)>,
}

fn blob(key: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(key);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

impl KeyedLogic<u64, u64> for Blobs {
    type Out = u64;
    type Late = u64;
    fn on_record(
        &mut self,
        key: u64,
        _event_time: u64,
        _record: u64,
        _stamp: u64,
        _emit: &mut Emit<u64, u64>,
    ) {
        let len = self.value_bytes;
        self.state.entry(key).or_insert_with(|| blob(key, len));
        if self.tracking {
            self.changed.insert(key);
        }
    }
    fn on_watermark(&mut self, _watermark: u64, _emit: &mut Emit<u64, u64>) {}
    fn next_fire(&self) -> Option<u64> {
        None
    }
    fn track_changes(&mut self, on: bool) {
        self.tracking = on;
    }
    fn take_changes(&mut self, out: &mut Vec<(u64, Option<Vec<u8>>)>) {
        for key in self.changed.drain() {
            out.push((key, self.state.get(&key).cloned()));
        }
    }
    fn restore(&mut self, key: u64, state: &[u8]) -> Result<(), String> {
        self.restored.0.fetch_add(1, Ordering::Relaxed);
        self.restored
            .1
            .fetch_add(state.len() as u64, Ordering::Relaxed);
        self.state.insert(key, state.to_vec());
        // A restore into a new generation writes what it restored.
        if self.tracking {
            self.changed.insert(key);
        }
        Ok(())
    }
}

struct Restored {
    /// From the call to `weir::run` until every worker had its state.
    loaded: Duration,
    /// The whole run (a rescale also writes the state into its new
    /// generation before it stops).
    run: Duration,
    keys: u64,
    bytes: u64,
}

fn blobs_job(
    dir: &Path,
    workers: usize,
    source: KeysSource,
    value_bytes: usize,
    restored: &Arc<(AtomicU64, AtomicU64)>,
    backend: BackendHandle,
) -> Duration {
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3_600);
    args.checkpoint_dir = Some(dir.to_path_buf());
    args.backend = Some(backend);
    let restored = Arc::clone(restored);
    let started = Instant::now();
    let result = weir::run(&args, move |p| {
        let _ = p
            .source("keys", source.clone())
            // Event times rise with the keys. (They must move: a source
            // whose watermark stands still never completes an epoch.)
            .event_time(|k: &u64| *k, Watermarks::ascending())
            .key_by("by_key", |k| *k)
            .stateful(
                "blobs",
                Blobs {
                    value_bytes,
                    state: HashMap::new(),
                    changed: HashSet::new(),
                    tracking: false,
                    restored: Arc::clone(&restored),
                },
            );
    });
    match result {
        Err(e) if e.to_string().contains("stop (the bench") => {}
        other => panic!("the state job should stop at its end: {other:?}"),
    }
    started.elapsed()
}

fn restore(mb: u64, value_bytes: u64, scratch: &Path) {
    let keys = (mb * 1024 * 1024 / value_bytes.max(1)).max(1);
    println!(
        "\n3. restore: {keys} keys x {value_bytes} B of state = {:.0} MiB of values, \
         written by a 2-worker job",
        mib(keys * value_bytes)
    );
    let dir = scratch.join("restore");
    let _ = std::fs::remove_dir_all(&dir);
    let source = KeysSource {
        keys,
        splits: 2,
        per_epoch: 25_000,
        dir: dir.clone(),
        opened_at_end: Arc::new(Mutex::new(Vec::new())),
    };
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let recording = Recording::new(false);
    let wrote = blobs_job(
        &dir,
        2,
        source.clone(),
        value_bytes as usize,
        &counters,
        recording.handle(),
    );
    let log = recording.take();
    let written: u64 = log.epochs.values().map(|e| e.bytes).sum();
    let m = manifest::read(&dir).expect("the state job left a manifest");
    let epoch = m
        .complete
        .last()
        .map(|e| e.epoch)
        .expect("a complete epoch");
    let disk = dir_size(&dir);
    assert_eq!(epoch, source.last_epoch(), "the last epoch is complete");
    println!(
        "   written in {:.1} s: {} epochs, {:.0} MiB through the store, \
         {:.0} MiB on disk; newest complete epoch {epoch}",
        wrote.as_secs_f64(),
        log.epochs.len(),
        mib(written),
        mib(disk)
    );
    if let Some(h) = &log.flush_micros {
        println!("   its flush writes: {} ms", quantiles(h, 1e3));
    }

    // The plan alone: read the manifest, verify the newest epoch.
    let started = Instant::now();
    let planned = plan(&dir, Arc::new(weir_rocks::Rocks), 3, false, 2).expect("a plan");
    let plan_time = started.elapsed();
    assert_eq!(planned.restore.as_ref().map(|r| r.epoch), Some(epoch));
    drop(planned);
    println!(
        "   plan (manifest, verify epoch {epoch}'s checksums): {:.3} s",
        plan_time.as_secs_f64()
    );
    // What the plan spends it on: each read-only open of a store replays the
    // store's WAL; the plan opens each worker's store once.
    let opens: Vec<String> = (0..2)
        .map(|w| {
            let started = Instant::now();
            let store = weir_rocks::Rocks.open_read_only(&store_path(&dir, 0, w));
            let took = started.elapsed();
            drop(store);
            format!("worker {w} {:.3} s", took.as_secs_f64())
        })
        .collect();
    println!(
        "      of which opening stores read-only ({}; the plan opens each once)",
        opens.join(", ")
    );

    for workers in [2usize, 1] {
        let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let opened = Arc::new(Mutex::new(Vec::new()));
        let source = KeysSource {
            opened_at_end: Arc::clone(&opened),
            ..source.clone()
        };
        let started = Instant::now();
        let recording = Recording::new(false);
        let run = blobs_job(
            &dir,
            workers,
            source,
            value_bytes as usize,
            &counters,
            recording.handle(),
        );
        let at = opened.lock().expect("lock").clone();
        assert_eq!(at.len(), 2, "both splits reopened at their end");
        let loaded = at
            .iter()
            .map(|t| t.duration_since(started))
            .max()
            .unwrap_or_default();
        let r = Restored {
            loaded,
            run,
            keys: counters.0.load(Ordering::Relaxed),
            bytes: counters.1.load(Ordering::Relaxed),
        };
        assert_eq!(r.keys, keys, "every key restored");
        assert_eq!(r.bytes, keys * value_bytes, "all state restored");
        let how = if workers == 2 {
            "2 workers, each its own store"
        } else {
            "1 worker, rescaled from 2 stores"
        };
        println!(
            "   restore on {how}: state loaded {:.2} s after the start ({:.0} MiB/s; goal < 10 s); \
             whole run {:.2} s",
            r.loaded.as_secs_f64(),
            mib(r.bytes) / r.loaded.as_secs_f64(),
            r.run.as_secs_f64()
        );
        let log = recording.take();
        if let Some(h) = log.flush_micros.as_ref().filter(|h| !h.is_empty()) {
            println!(
                "      then it wrote the restored state into a new generation: {:.2} s",
                h.mean() * h.len() as f64 / 1e6
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn dir_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn main() {
    // Records per throughput run; unset: sized to CK_SECONDS without checkpoints.
    let events = std::env::var("CK_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok());
    let seconds = env("CK_SECONDS", 4).max(1) as f64;
    let keys: Vec<u64> = std::env::var("CK_KEYS")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|k| k.trim().replace('_', "").parse().ok())
        .collect();
    let grow_keys = env("CK_GROW_KEYS", 20_000_000);
    let grow_rate = env("CK_GROW_RATE", 100_000).max(1);
    let grow_seconds = env("CK_GROW_SECONDS", 15).max(1);
    let runs = env("CK_RUNS", 3).max(1) as usize;
    let workers = env("CK_WORKERS", 2).max(1) as usize;
    let restore_mb = env("CK_RESTORE_MB", 1024);
    let value_bytes = env("CK_VALUE_BYTES", 1000).max(1);
    let scratch: PathBuf = std::env::var_os("CK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("weir-bench-checkpoints-{}", std::process::id()))
        });
    let _ = std::fs::create_dir_all(&scratch);
    println!(
        "checkpoints: RocksDB backend, scratch directory {}",
        scratch.display()
    );
    throughput(events, seconds, &keys, workers, runs, &scratch);
    epoch_writes(grow_keys, grow_rate, grow_seconds, workers, &scratch);
    if restore_mb > 0 {
        restore(restore_mb, value_bytes, &scratch);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
