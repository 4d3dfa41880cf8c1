//! Open-loop latency of in-process pipelines, against a hand-written
//! single-thread loop doing the same computation on the same events in the
//! same run.
//!
//! Method (no coordinated omission):
//! - Event `i` is *due* at `start + i / rate` (µs on one monotonic clock
//!   all threads share). The source ([`Paced`]) hands out every event whose
//!   due time has passed, never skips one and never waits for the
//!   pipeline; an idle split is woken at the next due time by a timer
//!   thread ([`Paced`]'s reader), not at the engine's next 5 ms look. The
//!   event's event time is its due time in ms, so watermarks follow the
//!   wall clock (per split ascending, 100 ms quantum).
//! - **stage**: source → `map` (a multiply-add on the value) → `filter`
//!   (keeps 3 in 4) → sink. Latency: the time the sink receives the record
//!   minus the event's due time.
//! - **window**: source → `key_by` (1 000 keys) → 1 s tumbling window, count
//!   and sum per key → sink. Latency: the time the sink receives a window's
//!   result minus the moment the watermark could first pass the window's
//!   end, which is the due time of the first event at or after the end (the
//!   end itself, in µs). Windows the end of input flushes are not timed.
//! - Latencies of events (or windows) due in the first `--warmup` seconds
//!   are left out (threads start, maps grow); they are still checked.
//! - The sink is parallel (each worker records its own), so the engine
//!   pays no gather to one worker that the baseline does not.
//! - Checkpoints (`ck 1s`): RocksDB in a scratch directory, 1 s epochs, the
//!   sink at-least-once inside the checkpoint, as the examples run.
//! - **baseline**: one thread, a plain loop: wait for the next due time
//!   (sleep, then spin the last 50 µs), take every event due, do the same
//!   map/filter or the same hash-map windows (a window fires when the first
//!   event at or after its end is taken), and time each result the same
//!   way.
//! - Outputs are checked: the stage's count and sum of values, and the
//!   window results, sorted, must equal the baseline's.
//! - Achieved rate: events over the time from the first due time to the
//!   last receipt. A pipeline that cannot keep up shows it there and in a
//!   tail that grows with the run.
//!
//! Run: `cargo bench -p weir-benches --bench latency`. Optional:
//! `-- --rates 100000,500000` (events/s per worker; default), `--seconds 8`
//! (per run, warm-up included), `--warmup 2`, `--workers 1,2`,
//! `--pipes stage,window`, `--checkpoints off,1s`, `--json PATH` (one JSON
//! object per row, for `scripts/bench.sh`), `--sweep` (rates ascending: once
//! a side is *broken* at a rate — p99 above 50 ms, or under 95 % of the
//! offered rate achieved — it is not run at higher rates).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use weir::source::SplitStart;
use weir::{Fault, ReadItem, ReadStatus, RunArgs, Sink, Source, SplitReader, Watermarks};
use weir_benches::{arg_str, write_json_lines};
use weir_operators::{Count, Sum, WindowExt, Windows};

/// The clock every due time and receipt is read on.
fn now_us() -> u64 {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// One event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    seq: u64,
    due_us: u64,
    key: u32,
    value: u32,
}

/// The events of one run: `events` of them, event `i` due at
/// `start_us + i * 1e6 / rate`.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    start_us: u64,
    rate: f64,
    events: u64,
    keys: u32,
}

impl Schedule {
    fn due_us(&self, i: u64) -> u64 {
        self.start_us + (i as f64 * 1e6 / self.rate) as u64
    }

    fn event(&self, i: u64) -> Event {
        // A cheap, fixed scramble: keys and values look random, and both
        // sides compute the same ones.
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        Event {
            seq: i,
            due_us: self.due_us(i),
            key: (h % u64::from(self.keys)) as u32,
            value: (h >> 40) as u32 & 0xFFFF,
        }
    }

    fn warm_until_us(&self, warmup: Duration) -> u64 {
        self.start_us + warmup.as_micros() as u64
    }
}

/// The stage's per-event work, the same on both sides.
fn stage(e: Event) -> Option<Event> {
    let value = e.value.wrapping_mul(3).wrapping_add(7);
    (e.seq % 4 != 3).then_some(Event { value, ..e })
}

const WINDOW_MS: u64 = 1_000;

/// A window's result: key, start ms, count, sum.
type WindowRow = (u32, u64, u64, u64);

/// The paced source: split `s` of `n` has events `s, s + n, s + 2n, …`.
#[derive(Clone)]
struct Paced {
    schedule: Schedule,
    splits: u32,
}

impl Source for Paced {
    type Item = Event;

    fn splits(&self) -> u32 {
        self.splits
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Event>>>, Fault> {
        Ok(splits
            .iter()
            .map(|s| {
                Box::new(PacedReader {
                    schedule: self.schedule,
                    next: u64::from(s.split.0),
                    step: u64::from(self.splits),
                    timer: None,
                }) as Box<dyn SplitReader<Event>>
            })
            .collect())
    }
}

/// Wakes an idle reader at its next due time.
struct Timer {
    /// The due time to wake at (µs), `u64::MAX` when none is asked for.
    wake_at: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: thread::Thread,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

struct PacedReader {
    schedule: Schedule,
    next: u64,
    step: u64,
    timer: Option<Timer>,
}

impl SplitReader<Event> for PacedReader {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<Event>>) -> Result<ReadStatus, Fault> {
        let now = now_us();
        let mut taken = 0;
        while self.next < self.schedule.events && taken < max {
            if self.schedule.due_us(self.next) > now {
                break;
            }
            out.push(ReadItem::Record(self.schedule.event(self.next)));
            self.next += self.step;
            taken += 1;
        }
        if self.next >= self.schedule.events {
            return Ok(ReadStatus::Done);
        }
        if taken == max {
            return Ok(ReadStatus::Ready);
        }
        if let Some(timer) = &self.timer {
            timer
                .wake_at
                .store(self.schedule.due_us(self.next), Ordering::SeqCst);
            timer.thread.unpark();
        }
        Ok(ReadStatus::Idle)
    }

    fn position(&self) -> Vec<u8> {
        self.next.to_le_bytes().to_vec()
    }

    fn wake_when_ready(&mut self, waker: weir::Waker) {
        let wake_at = Arc::new(AtomicU64::new(u64::MAX));
        let stop = Arc::new(AtomicBool::new(false));
        let (at, stopped) = (Arc::clone(&wake_at), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let due = at.load(Ordering::SeqCst);
                if due == u64::MAX {
                    thread::park();
                    continue;
                }
                let now = now_us();
                if due > now {
                    thread::park_timeout(Duration::from_micros(due - now));
                    continue;
                }
                // Asked for once: the reader asks again when it idles.
                let _ = at.compare_exchange(due, u64::MAX, Ordering::SeqCst, Ordering::SeqCst);
                waker.wake();
            }
        });
        self.timer = Some(Timer {
            wake_at,
            stop,
            thread: handle.thread().clone(),
        });
    }
}

/// Latencies (µs) of what was timed, and what was received.
struct Timing {
    latencies: Histogram<u64>,
    received: u64,
    last_receipt_us: u64,
}

impl Timing {
    fn new() -> Self {
        Timing {
            latencies: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            received: 0,
            last_receipt_us: 0,
        }
    }

    fn record(&mut self, now: u64, since_us: u64, timed: bool) {
        self.received += 1;
        self.last_receipt_us = self.last_receipt_us.max(now);
        if timed {
            let _ = self.latencies.record(now.saturating_sub(since_us).max(1));
        }
    }
}

/// A parallel sink that times each record and keeps what the check needs.
struct TimingSink<T, C> {
    shared: Arc<Mutex<(Timing, C)>>,
    /// The moment each record's latency counts from, and whether to time it.
    since: fn(&T, &Schedule, Duration) -> (u64, bool),
    keep: fn(&mut C, T),
    schedule: Schedule,
    warmup: Duration,
}

impl<T: 'static, C: 'static> Sink<T> for TimingSink<T, C> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        let now = now_us();
        let mut shared = self
            .shared
            .lock()
            .map_err(|_| Fault::fatal("a sink panicked"))?;
        let (timing, kept) = &mut *shared;
        for record in records.drain(..) {
            let (since, timed) = (self.since)(&record, &self.schedule, self.warmup);
            timing.record(now, since, timed);
            (self.keep)(kept, record);
        }
        Ok(())
    }

    fn parallel(&self) -> bool {
        true
    }
}

/// The stage's check: count and sum of values.
type StageCheck = (u64, u64);

fn count(check: &mut StageCheck, e: &Event) {
    check.0 += 1;
    check.1 += u64::from(e.value);
}

/// The hand-written windows: count and sum per key and window start.
#[derive(Default)]
struct OpenWindows(HashMap<(u32, u64), (u64, u64)>);

impl OpenWindows {
    fn add(&mut self, e: &Event) {
        let ts = e.due_us / 1_000;
        let w = self.0.entry((e.key, ts - ts % WINDOW_MS)).or_insert((0, 0));
        w.0 += 1;
        w.1 += u64::from(e.value);
    }

    /// Fires every open window into `rows`, calling `fired` on each.
    fn fire_all(&mut self, rows: &mut Vec<WindowRow>, mut fired: impl FnMut(&WindowRow)) {
        for ((key, start), (n, sum)) in self.0.drain() {
            let row = (key, start, n, sum);
            fired(&row);
            rows.push(row);
        }
    }
}

fn stage_since(e: &Event, s: &Schedule, warmup: Duration) -> (u64, bool) {
    (e.due_us, e.due_us >= s.warm_until_us(warmup))
}

/// A window is timed from its end, unless the end of input fired it.
fn window_since(row: &WindowRow, s: &Schedule, warmup: Duration) -> (u64, bool) {
    let end_us = (row.1 + WINDOW_MS) * 1_000;
    let last_due = s.due_us(s.events - 1);
    (
        end_us,
        end_us >= s.warm_until_us(warmup) && end_us <= last_due,
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pipe {
    Stage,
    Window,
}

impl Pipe {
    fn name(self) -> &'static str {
        match self {
            Pipe::Stage => "stage",
            Pipe::Window => "window",
        }
    }
}

/// What one run measured.
struct Outcome {
    timing: Timing,
    stage: StageCheck,
    windows: Vec<WindowRow>,
}

fn engine(pipe: Pipe, schedule: Schedule, workers: usize, checkpoint: Option<&PathBuf>) -> Outcome {
    let warmup = warmup();
    let stage_shared = Arc::new(Mutex::new((Timing::new(), (0u64, 0u64))));
    let window_shared = Arc::new(Mutex::new((Timing::new(), Vec::<WindowRow>::new())));
    let mut args = RunArgs::threads(workers);
    if let Some(dir) = checkpoint {
        args.checkpoint_dir = Some(dir.clone());
        args.backend = Some(weir_rocks::backend());
        args.epoch_interval = Duration::from_secs(1);
        args.fresh = true;
    }
    let (stage_sink, window_sink) = (Arc::clone(&stage_shared), Arc::clone(&window_shared));
    // Every split of every worker: two per worker, so each worker combines
    // watermarks as a real job does.
    let source = Paced {
        schedule,
        splits: 2 * workers as u32,
    };
    let result = weir::run(&args, move |p| {
        let events = p.source("events", source.clone()).event_time(
            |e: &Event| e.due_us / 1_000,
            Watermarks::ascending().quantum(Duration::from_millis(100)),
        );
        match pipe {
            Pipe::Stage => events.flat_map(stage).sink(
                "timed",
                TimingSink {
                    shared: Arc::clone(&stage_sink),
                    since: stage_since,
                    keep: |c: &mut StageCheck, e: Event| count(c, &e),
                    schedule,
                    warmup,
                },
            ),
            Pipe::Window => events
                .key_by("by_key", |e| e.key)
                .window(
                    "per_second",
                    Windows::tumbling(Duration::from_millis(WINDOW_MS)),
                    (Count, Sum::of(|e: &Event| u64::from(e.value))),
                )
                .fired
                .map(|f| (f.key, f.window.start, f.value.0, f.value.1))
                .sink(
                    "timed",
                    TimingSink {
                        shared: Arc::clone(&window_sink),
                        since: window_since,
                        keep: |c: &mut Vec<WindowRow>, row| c.push(row),
                        schedule,
                        warmup,
                    },
                ),
        }
    });
    if let Err(e) = result {
        panic!("the engine run failed: {e}");
    }
    let (timing, stage) = take(stage_shared);
    let (window_timing, mut windows) = take(window_shared);
    windows.sort_unstable();
    Outcome {
        timing: match pipe {
            Pipe::Stage => timing,
            Pipe::Window => window_timing,
        },
        stage,
        windows,
    }
}

fn take<C: Default>(shared: Arc<Mutex<(Timing, C)>>) -> (Timing, C) {
    let mut guard = shared.lock().expect("no sink panicked");
    let kept = std::mem::take(&mut guard.1);
    let timing = std::mem::replace(&mut guard.0, Timing::new());
    (timing, kept)
}

/// Waits until `due_us`: sleeps, then spins the last 50 µs.
fn wait_until(due_us: u64) {
    loop {
        let now = now_us();
        if now >= due_us {
            return;
        }
        if due_us - now > 100 {
            thread::sleep(Duration::from_micros(due_us - now - 50));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn baseline(pipe: Pipe, schedule: Schedule) -> Outcome {
    let warmup = warmup();
    let mut timing = Timing::new();
    let mut check: StageCheck = (0, 0);
    let mut open = OpenWindows::default();
    let mut rows = Vec::new();
    let mut window_end = u64::MAX;
    let mut i = 0;
    while i < schedule.events {
        wait_until(schedule.due_us(i));
        let now = now_us();
        while i < schedule.events && schedule.due_us(i) <= now {
            let e = schedule.event(i);
            i += 1;
            match pipe {
                Pipe::Stage => {
                    if let Some(e) = stage(e) {
                        let (since, timed) = stage_since(&e, &schedule, warmup);
                        timing.record(now_us(), since, timed);
                        count(&mut check, &e);
                    }
                }
                Pipe::Window => {
                    let ts = e.due_us / 1_000;
                    let start = ts - ts % WINDOW_MS;
                    if window_end == u64::MAX {
                        window_end = start + WINDOW_MS;
                    }
                    if ts >= window_end {
                        let at = now_us();
                        open.fire_all(&mut rows, |row| {
                            let (since, timed) = window_since(row, &schedule, warmup);
                            timing.record(at, since, timed);
                        });
                        window_end = start + WINDOW_MS;
                    }
                    open.add(&e);
                }
            }
        }
    }
    let at = now_us();
    open.fire_all(&mut rows, |row| {
        let (since, timed) = window_since(row, &schedule, warmup);
        timing.record(at, since, timed);
    });
    rows.sort_unstable();
    Outcome {
        timing,
        stage: check,
        windows: rows,
    }
}

fn warmup() -> Duration {
    Duration::from_secs_f64(
        arg_str("--warmup")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2.0),
    )
}

fn list(name: &str, default: &str) -> Vec<String> {
    arg_str(name)
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One printed (and JSON) row.
#[derive(Serialize)]
struct Row {
    pipe: &'static str,
    side: String,
    workers: usize,
    checkpoints: bool,
    offered_per_worker: f64,
    achieved: f64,
    timed: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// p99 above [`BROKEN_P99_MS`] or under 95 % of the offered rate.
    broken: bool,
}

/// The p99 (ms) past which a side counts as broken at a rate.
const BROKEN_P99_MS: f64 = 50.0;

fn row(
    pipe: Pipe,
    side: &str,
    workers: usize,
    ck: bool,
    rate: f64,
    s: &Schedule,
    t: &Timing,
) -> Row {
    let q = |x: f64| t.latencies.value_at_quantile(x) as f64 / 1_000.0;
    let span = t.last_receipt_us.saturating_sub(s.start_us).max(1) as f64 / 1e6;
    let achieved = s.events as f64 / span;
    Row {
        broken: q(0.99) > BROKEN_P99_MS || achieved < 0.95 * s.rate,
        pipe: pipe.name(),
        side: side.to_string(),
        workers,
        checkpoints: ck,
        offered_per_worker: rate,
        achieved,
        timed: t.latencies.len(),
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: t.latencies.max() as f64 / 1_000.0,
    }
}

fn print(r: &Row) {
    println!(
        "{:<7} {:<14} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9}",
        r.pipe, r.side, r.achieved, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms, r.timed
    );
}

fn main() {
    let mut rates: Vec<f64> = list("--rates", "100000,500000")
        .iter()
        .map(|r| {
            r.parse()
                .expect("--rates: events/s per worker, comma-separated")
        })
        .collect();
    let seconds: f64 = arg_str("--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(8.0);
    let workers: Vec<usize> = list("--workers", "1,2")
        .iter()
        .map(|w| w.parse().expect("--workers: counts, comma-separated"))
        .collect();
    let pipes: Vec<Pipe> = list("--pipes", "stage,window")
        .iter()
        .map(|p| match p.as_str() {
            "stage" => Pipe::Stage,
            "window" => Pipe::Window,
            other => panic!("--pipes: stage or window, not {other}"),
        })
        .collect();
    let checkpoints: Vec<bool> = list("--checkpoints", "off,1s")
        .iter()
        .map(|c| match c.as_str() {
            "off" => false,
            "1s" => true,
            other => panic!("--checkpoints: off or 1s, not {other}"),
        })
        .collect();
    let json = arg_str("--json").map(PathBuf::from);
    let scratch = std::env::temp_dir().join(format!("weir-latency-{}", std::process::id()));
    let mut rows = Vec::new();
    println!(
        "latency: open loop, in process; {seconds} s per run, first {} s excluded (warm-up); latency in ms (stage: due → sink; window: watermark due → sink)",
        warmup().as_secs_f64()
    );
    let sweep = std::env::args().any(|a| a == "--sweep");
    if sweep {
        // Broken at a rate means skipped at every higher one: ascending.
        rates.sort_by(f64::total_cmp);
    }
    // (pipe, side) broken at a lower rate: not run again when sweeping.
    let mut broken: std::collections::HashSet<(&str, String)> = Default::default();
    for &rate in &rates {
        for &pipe in &pipes {
            println!(
                "\n{} at {rate:.0} events/s per worker\n{:<7} {:<14} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
                pipe.name(),
                "pipe",
                "side",
                "achieved/s",
                "p50",
                "p90",
                "p99",
                "p99.9",
                "max",
                "timed"
            );
            // The baseline is one thread: it is offered one worker's load.
            let base_schedule = Schedule {
                start_us: now_us() + 200_000,
                rate,
                events: (rate * seconds) as u64,
                keys: 1_000,
            };
            let skip = |side: &str, broken: &std::collections::HashSet<(&str, String)>| {
                sweep && broken.contains(&(pipe.name(), side.to_string()))
            };
            if skip("baseline", &broken)
                && workers.iter().all(|&w| {
                    checkpoints
                        .iter()
                        .all(|&ck| skip(&side_name(w, ck), &broken))
                })
            {
                continue;
            }
            let base = baseline(pipe, base_schedule);
            assert!(
                same(pipe, &base, &baseline_untimed(pipe, base_schedule)),
                "the timed baseline computes what the untimed one does"
            );
            let r = row(
                pipe,
                "baseline",
                1,
                false,
                rate,
                &base_schedule,
                &base.timing,
            );
            print(&r);
            if r.broken {
                broken.insert((pipe.name(), r.side.clone()));
            }
            rows.push(r);
            for &w in &workers {
                for &ck in &checkpoints {
                    if skip(&side_name(w, ck), &broken) {
                        continue;
                    }
                    let schedule = Schedule {
                        // Leaves the engine time to start its workers.
                        start_us: now_us() + 500_000,
                        rate: rate * w as f64,
                        events: (rate * w as f64 * seconds) as u64,
                        keys: 1_000,
                    };
                    let dir = scratch.join(format!("{}-{rate}-{w}", pipe.name()));
                    let out = engine(pipe, schedule, w, ck.then_some(&dir));
                    let _ = std::fs::remove_dir_all(&dir);
                    // The same events, checked against the baseline's
                    // computation of them.
                    assert!(
                        same(pipe, &out, &baseline_untimed(pipe, schedule)),
                        "{} -w{w}: output differs from the baseline's",
                        pipe.name()
                    );
                    let side = side_name(w, ck);
                    let r = row(pipe, &side, w, ck, rate, &schedule, &out.timing);
                    print(&r);
                    if r.broken {
                        broken.insert((pipe.name(), side));
                    }
                    rows.push(r);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(path) = json {
        write_json_lines(&path, &rows);
    }
}

fn side_name(workers: usize, checkpoints: bool) -> String {
    format!(
        "weir -w{workers}{}",
        if checkpoints { " ck 1s" } else { "" }
    )
}

/// The baseline's results for `schedule`, computed without waiting.
fn baseline_untimed(pipe: Pipe, schedule: Schedule) -> Outcome {
    let mut check: StageCheck = (0, 0);
    let mut open = OpenWindows::default();
    for i in 0..schedule.events {
        let e = schedule.event(i);
        match pipe {
            Pipe::Stage => {
                if let Some(e) = stage(e) {
                    count(&mut check, &e);
                }
            }
            Pipe::Window => open.add(&e),
        }
    }
    let mut windows = Vec::new();
    open.fire_all(&mut windows, |_| {});
    windows.sort_unstable();
    Outcome {
        timing: Timing::new(),
        stage: check,
        windows,
    }
}

/// Whether two runs' results are equal.
fn same(pipe: Pipe, got: &Outcome, expected: &Outcome) -> bool {
    match pipe {
        Pipe::Stage => got.stage == expected.stage,
        Pipe::Window => got.windows == expected.windows,
    }
}
