//! Event times at the edges of `u64`: random streams mixing ordinary records
//! with 0, 1, `u64::MAX`, `u64::MAX - 1`, 2^63 and values next to every
//! window boundary (at the top of time, around 2^63, and near 0), through
//! tumbling, sliding (with and without allowed lateness) and session windows
//! and a process function with event-time timers and a TTL, all in one job,
//! on 1 and 2 workers.
//!
//! Each run must end (a watchdog fails the test otherwise), and:
//!
//! * **the oracle**: what the job emits — fired windows with the ids they
//!   hold, late records, timer firings, the function's side output, and the
//!   dead letters of records whose windows cannot be represented — equals a
//!   recomputation written here from the documented semantics in `u128`
//!   arithmetic, independently of the operators. This includes the effect
//!   of a far-future watermark: a record near `u64::MAX` in the middle of a
//!   split moves its watermark there (stopping at `u64::MAX - 1`), and every
//!   later record of the split is late;
//! * **isolation**: with the extreme records on keys of their own, the low
//!   ones after a split's first record and the high ones at a split's end
//!   (where they move no ordinary record's stamp), the ordinary records'
//!   results are exactly those of a run without the extreme records;
//! * **accounting**: every extreme record is in the output (a window, a late
//!   record, a timer's ids, the side output) or in the dead letters, and the
//!   dead letters are exactly the records the oracle says cannot be
//!   represented, each with a reason naming `u64::MAX`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use support::{ids_fold, stamp_all, to_script, Id};
use weir::rng::SplitMix64;
use weir::testing::Capture;
use weir::{Fields, Origin, RunArgs, Summary, Watermarks};
use weir_operators::process::{Context, ListState, ProcessExt, ProcessFunction};
use weir_operators::{Window, WindowExt, Windows};

const MAX: u64 = u64::MAX;
const TWO_63: u64 = 1 << 63;
/// Ordinary records have event times from here on: no window, session or
/// TTL of theirs reaches the low extreme values.
const ORDINARY_FROM: u64 = 10_000;
/// Extreme records' ids start here; ordinary ones are below.
const EXTREME_ID: u64 = 1 << 40;
/// Extreme records' own keys (isolation) start here.
const EXTREME_KEY: u32 = 100;

/// (key, event time ms, id)
type Rec = (u32, u64, u64);
type Step = support::Step<Rec>;

// ---------------------------------------------------------------------------
// The job: five operators on one keyed stream
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fixed { size: u64, slide: u64 },
    Session { gap: u64 },
}

#[derive(Clone, Copy, Debug)]
struct WindowJob {
    name: &'static str,
    kind: Kind,
    lateness: u64,
}

const WINDOW_JOBS: [WindowJob; 5] = [
    WindowJob {
        name: "tumbling",
        kind: Kind::Fixed {
            size: 1_000,
            slide: 1_000,
        },
        lateness: 0,
    },
    WindowJob {
        name: "sliding",
        kind: Kind::Fixed {
            size: 1_500,
            slide: 500,
        },
        lateness: 0,
    },
    // Neither size nor slide divides u64::MAX or 2^63; allowed lateness.
    WindowJob {
        name: "sliding_late",
        kind: Kind::Fixed {
            size: 1_100,
            slide: 400,
        },
        lateness: 700,
    },
    WindowJob {
        name: "session",
        kind: Kind::Session { gap: 200 },
        lateness: 0,
    },
    WindowJob {
        name: "session_late",
        kind: Kind::Session { gap: 300 },
        lateness: 450,
    },
];

/// The process function's TTL (ms).
const TTL: u64 = 2_000;

impl WindowJob {
    fn windows(&self) -> Windows {
        let w = match self.kind {
            Kind::Fixed { size, slide } => {
                Windows::sliding(Duration::from_millis(size), Duration::from_millis(slide))
            }
            Kind::Session { gap } => Windows::session(Duration::from_millis(gap)),
        };
        w.allowed_lateness(Duration::from_millis(self.lateness))
    }
}

/// Everything the job emits, tagged with the step that emitted it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Out {
    /// (job, key, window, ids)
    Fired(String, u32, Window, Vec<u64>),
    /// (job, id, missed window)
    Late(String, u64, Window),
    /// (job, id): a dead letter of a window step.
    Dead(String, u64),
    /// (key, timer time, firing watermark, ids of live entries with ts <= time)
    Timer(u32, u64, u64, Vec<u64>),
    /// The process function's side output: a late record's id.
    Side(u64),
}

impl Out {
    fn key_and_ids(&self) -> (Option<u32>, Vec<u64>) {
        match self {
            Out::Fired(_, key, _, ids) | Out::Timer(key, _, _, ids) => (Some(*key), ids.clone()),
            Out::Late(_, id, _) | Out::Dead(_, id) | Out::Side(id) => (None, vec![*id]),
        }
    }
}

/// Per key, a list of (event time, id) with a TTL; a timer at each on-time
/// record's time reports the live ids at or before it. Late records go to
/// the side output.
struct Recall;

#[derive(Default, Serialize, Deserialize)]
struct Recent {
    entries: ListState<(u64, u64)>,
}

impl ProcessFunction<u32, Rec> for Recall {
    type State = Recent;
    type Out = Out;
    type Side = u64;

    fn new_state(&self) -> Recent {
        Recent {
            entries: ListState::with_ttl(Duration::from_millis(TTL)),
        }
    }

    fn on_record(&mut self, ctx: &mut Context<'_, u32, Out, u64>, state: &mut Recent, r: Rec) {
        if ctx.is_late() {
            ctx.side(r.2);
            return;
        }
        state.entries.push((r.1, r.2));
        ctx.register_event_timer(r.1);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, Out, u64>, state: &mut Recent, time: u64) {
        let mut ids: Vec<u64> = state
            .entries
            .iter()
            .filter(|(ts, _)| *ts <= time)
            .map(|(_, id)| *id)
            .collect();
        ids.sort_unstable();
        let key = *ctx.key();
        let watermark = ctx.watermark();
        ctx.output(Out::Timer(key, time, watermark, ids));
    }
}

impl Id for Rec {
    fn id(&self) -> u64 {
        self.2
    }
}

#[derive(Clone, Copy, Debug)]
struct Strategy {
    bound: u64,
    quantum: u64,
}

/// Runs the job on `workers` workers; fails if it does not end in time.
fn run(splits: &[Vec<Step>], strategy: Strategy, workers: usize) -> Vec<Out> {
    run_job(splits, strategy, workers, true).0
}

/// Runs the job (with the process function or only the window steps) on
/// `workers` workers: what it emitted, sorted, and its summary; fails if it
/// does not end in time.
fn run_job(
    splits: &[Vec<Step>],
    strategy: Strategy,
    workers: usize,
    with_process: bool,
) -> (Vec<Out>, Summary) {
    let script = to_script(splits);
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        let capture = Capture::new();
        let inner = capture.clone();
        let summary = weir::run(&RunArgs::threads(workers), move |p| {
            let capture = &inner;
            let watermarks = Watermarks::bounded(Duration::from_millis(strategy.bound))
                .quantum(Duration::from_millis(strategy.quantum));
            let keyed = p
                .source("input", script.clone())
                .event_time(|r: &Rec| r.1, watermarks)
                .key_by("by_key", |r: &Rec| r.0);
            for job in WINDOW_JOBS {
                let w = keyed.clone().window(job.name, job.windows(), ids_fold());
                w.fired
                    .map(move |f| Out::Fired(job.name.into(), f.key, f.window, f.value))
                    .sink(&format!("{}.fired", job.name), capture.sink());
                w.late
                    .map(move |l| Out::Late(job.name.into(), l.record.2, l.window))
                    .sink(&format!("{}.late", job.name), capture.sink());
            }
            if with_process {
                let processed = keyed.process("recall", Recall);
                processed.main.sink("timers", capture.sink());
                processed.side.map(Out::Side).sink("side", capture.sink());
            }
            p.dead_letters()
                .map(|d| {
                    // The raw text is the record as JSON (as text either way
                    // `raw` is kept).
                    let json = serde_json::to_value(&d).expect("a dead letter serializes");
                    let raw = json["raw"].as_str().expect("raw is text").to_string();
                    let record: Rec = serde_json::from_str(&raw).expect("raw is the record");
                    assert!(
                        d.reason
                            .starts_with(&format!("event time {} ms: ", record.1))
                            && d.reason.contains("u64::MAX"),
                        "the reason names the event time and the limit: {}",
                        d.reason
                    );
                    // Out of range at the record's own time, not late.
                    assert_eq!(
                        d.origin,
                        Origin::Operator {
                            name: d.source.clone(),
                            kind: "out_of_range".into(),
                            event_time: Some(record.1),
                            watermark: None,
                            details: Fields::new(),
                        }
                    );
                    assert_eq!(json["origin"]["operator"]["event_time"], record.1);
                    assert_eq!(json["origin"]["operator"]["kind"], "out_of_range", "{json}");
                    Out::Dead(d.source.clone(), record.2)
                })
                .sink("dead", capture.sink());
        });
        let summary = summary.unwrap_or_else(|e| panic!("the job failed: {e}"));
        let mut out = capture.records();
        out.sort();
        let _ = done.send((out, summary));
    });
    match wait.recv_timeout(Duration::from_secs(120)) {
        Ok(done) => done,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the job did not end within 120 s on {workers} worker(s)")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            panic!("the job failed on {workers} worker(s) (see its panic above)")
        }
    }
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/// Ordinary records: event times from ORDINARY_FROM, mostly rising, often
/// out of order, on multiples of 25 ms (so on window boundaries), a few
/// explicit watermarks and epoch ends.
fn ordinary(rng: &mut SplitMix64, splits: usize, per_split: usize) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for split in 0..splits {
        let mut steps = Vec::new();
        let mut base = ORDINARY_FROM + rng.below(500);
        for i in 0..per_split {
            base += rng.below(60);
            if rng.chance(0.04) {
                base += rng.below(1_500);
            }
            let ts = if rng.chance(0.25) {
                base.saturating_sub(rng.below(1_500)).max(ORDINARY_FROM)
            } else {
                base + rng.below(40)
            };
            let ts = ts / 25 * 25;
            let key = rng.below(4) as u32;
            steps.push(Step::Record((key, ts, (split * 100_000 + i) as u64)));
            if rng.chance(0.02) {
                steps.push(Step::Watermark(base.saturating_sub(rng.below(600))));
            }
            if rng.chance(0.03) {
                steps.push(Step::EndEpoch);
            }
        }
        out.push(steps);
    }
    out
}

/// 0, 1, MAX, MAX - 1, 2^63 and the values at and next to every window
/// boundary of the job's operators near the top of time, around 2^63 and
/// near 0: for each length n (sizes, slides, gaps, lateness, TTL, bound,
/// quantum), n, MAX - n, MAX - MAX % n and 2^63 - 2^63 % n, each ±1, and
/// the last representable window's end and the start after it.
fn extreme_values() -> Vec<u64> {
    let mut lengths = vec![TTL, 300, 100, 5];
    for job in WINDOW_JOBS {
        lengths.push(job.lateness.max(1));
        match job.kind {
            Kind::Fixed { size, slide } => {
                lengths.extend([size, slide, size + job.lateness]);
                // The last window that fits ends at `last + size`.
                let last = (MAX - size) - (MAX - size) % slide;
                for v in [last, last + size, last + slide] {
                    lengths.push(MAX - v);
                }
            }
            Kind::Session { gap } => lengths.extend([gap, gap + job.lateness]),
        }
    }
    let mut values = BTreeSet::from([0, 1, MAX, MAX - 1, TWO_63]);
    for n in lengths {
        for anchor in [n, MAX - n, MAX - MAX % n, TWO_63 - TWO_63 % n, TWO_63 + n] {
            for v in [anchor.saturating_sub(1), anchor, anchor.saturating_add(1)] {
                values.insert(v);
            }
        }
    }
    values.into_iter().collect()
}

/// Whether `ts` is below every ordinary event time and watermark's reach.
fn is_low(ts: u64) -> bool {
    ts < ORDINARY_FROM - 2 * 1_500
}

/// Mixes extreme records into `splits` on any key (ordinary or their own):
/// low values anywhere, high ones in a split's second half; with a few
/// explicit watermarks at the end of time.
fn mix_anywhere(rng: &mut SplitMix64, splits: &mut [Vec<Step>], values: &[u64], count: usize) {
    for j in 0..count {
        let ts = values[rng.below(values.len() as u64) as usize];
        let key = if rng.chance(0.5) {
            rng.below(4) as u32
        } else {
            EXTREME_KEY + rng.below(3) as u32
        };
        let split = &mut splits[rng.below(splits.len() as u64) as usize];
        // High values in a split's second half, so that the records before
        // them have windows of their own; low ones anywhere.
        let from = if is_low(ts) { 0 } else { split.len() / 2 };
        let at = from + rng.below((split.len() - from) as u64 + 1) as usize;
        split.insert(at, Step::Record((key, ts, EXTREME_ID + j as u64)));
        if rng.chance(0.1) {
            let at = rng.below(split.len() as u64 + 1) as usize;
            split.insert(
                at,
                Step::Watermark(if rng.chance(0.5) { MAX } else { MAX - 1 }),
            );
        }
    }
}

/// Mixes every extreme value in where it moves no ordinary record's stamp:
/// on keys of their own, low values after a split's first step (whose
/// watermark is already above them), high values at a split's end.
fn mix_isolated(rng: &mut SplitMix64, splits: &mut [Vec<Step>], values: &[u64]) {
    for (j, ts) in values.iter().enumerate() {
        let key = EXTREME_KEY + rng.below(3) as u32;
        let record = Step::Record((key, *ts, EXTREME_ID + j as u64));
        let split = &mut splits[rng.below(splits.len() as u64) as usize];
        if is_low(*ts) {
            let at = 1 + rng.below(split.len() as u64) as usize;
            split.insert(at, record);
        } else {
            split.push(record);
        }
    }
}

fn without_extremes(splits: &[Vec<Step>]) -> Vec<Vec<Step>> {
    splits
        .iter()
        .map(|steps| {
            steps
                .iter()
                .filter(|s| !matches!(s, Step::Record(r) if r.2 >= EXTREME_ID))
                .filter(|s| !matches!(s, Step::Watermark(w) if *w >= MAX - 1))
                .cloned()
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The oracle, in u128, from the documented semantics
// ---------------------------------------------------------------------------

const END: u128 = MAX as u128;

/// Each record with its stamp: its split's watermark before it (support's
/// independent computation), which stops at u64::MAX - 1 while the input
/// lasts.
fn stamped(splits: &[Vec<Step>], strategy: Strategy) -> Vec<(u64, Rec)> {
    stamp_all(splits, |r: &Rec| r.1, strategy.bound, strategy.quantum)
        .into_iter()
        .map(|(stamp, r)| (stamp.min(MAX - 1), r))
        .collect()
}

/// When a window ending at `end` fires: end + lateness, or the end of time.
fn fire_at(end: u128, lateness: u64) -> u128 {
    (end + lateness as u128).min(END)
}

fn oracle_fixed(
    job: &WindowJob,
    size: u64,
    slide: u64,
    records: &[(u64, Rec)],
    out: &mut Vec<Out>,
) {
    let name = job.name.to_string();
    let mut windows: BTreeMap<(u32, Window), Vec<u64>> = BTreeMap::new();
    for &(stamp, (key, ts, id)) in records {
        let (ts, size, slide) = (ts as u128, size as u128, slide as u128);
        let mut k = (ts + 1).saturating_sub(size).div_ceil(slide);
        while k * slide <= ts {
            let (start, end) = (k * slide, k * slide + size);
            if end > END {
                // This window and every later one cannot exist.
                out.push(Out::Dead(name.clone(), id));
                break;
            }
            let window = Window {
                start: start as u64,
                end: end as u64,
            };
            if stamp as u128 >= fire_at(end, job.lateness) {
                out.push(Out::Late(name.clone(), id, window));
            } else {
                windows.entry((key, window)).or_default().push(id);
            }
            k += 1;
        }
    }
    for ((key, window), mut ids) in windows {
        ids.sort_unstable();
        out.push(Out::Fired(name.clone(), key, window, ids));
    }
}

/// Per key, the open sessions as (start, end, ids), in u128.
type OpenSessions = BTreeMap<u32, Vec<(u128, u128, Vec<u64>)>>;

fn oracle_session(job: &WindowJob, gap: u64, records: &[(u64, Rec)], out: &mut Vec<Out>) {
    let name = job.name.to_string();
    let mut order = records.to_vec();
    order.sort_by_key(|(stamp, _)| *stamp);
    // Per key: open sessions as (start, end, ids), ends in u128.
    let mut open: OpenSessions = BTreeMap::new();
    let close = |open: &mut OpenSessions, out: &mut Vec<Out>, upto: u128| {
        for (key, sessions) in open.iter_mut() {
            let (done, keep): (Vec<_>, Vec<_>) = sessions
                .drain(..)
                .partition(|(_, end, _)| fire_at(*end, job.lateness) <= upto);
            *sessions = keep;
            for (start, end, mut ids) in done {
                ids.sort_unstable();
                let window = Window {
                    start: start as u64,
                    end: end as u64,
                };
                out.push(Out::Fired(name.clone(), *key, window, ids));
            }
        }
    };
    for (stamp, (key, ts, id)) in order {
        close(&mut open, out, stamp as u128);
        let (start, end) = (ts as u128, ts as u128 + gap as u128);
        if end > END {
            out.push(Out::Dead(name.clone(), id));
            continue;
        }
        if stamp as u128 >= fire_at(end, job.lateness) {
            let window = Window {
                start: ts,
                end: end as u64,
            };
            out.push(Out::Late(name.clone(), id, window));
            continue;
        }
        let sessions = open.entry(key).or_default();
        let (overlapping, rest): (Vec<_>, Vec<_>) = sessions
            .drain(..)
            .partition(|(s, e, _)| *s < end && start < *e);
        *sessions = rest;
        let (mut start, mut end, mut ids) = (start, end, vec![id]);
        for (s, e, more) in overlapping {
            start = start.min(s);
            end = end.max(e);
            ids.extend(more);
        }
        sessions.push((start, end, ids));
    }
    close(&mut open, out, END);
}

/// The process function per key: a timer due at `d` fires after every
/// record stamped before `d` and before any stamped `d` or later; records
/// (stamp `s`) write with clock `s`, timers read with clock `d`; an entry
/// written at `c` is live at `n` iff `min(c + TTL, MAX) > n`.
fn oracle_process(records: &[(u64, Rec)], out: &mut Vec<Out>) {
    let mut by_key: BTreeMap<u32, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for &(stamp, (key, ts, id)) in records {
        by_key.entry(key).or_default().push((stamp, ts, id));
    }
    for (key, mut recs) in by_key {
        recs.sort_by_key(|r| r.0);
        // (due, time) and the registered times.
        let mut timers: BTreeSet<(u128, u64)> = BTreeSet::new();
        let mut registered: BTreeSet<u64> = BTreeSet::new();
        // (written at, event time, id)
        let mut entries: Vec<(u64, u64, u64)> = Vec::new();
        let mut i = 0;
        loop {
            let next = recs.get(i).map(|r| r.0 as u128);
            while let Some(&(due, time)) = timers.first() {
                if next.is_some_and(|s| due > s) {
                    break;
                }
                timers.pop_first();
                registered.remove(&time);
                let mut ids: Vec<u64> = entries
                    .iter()
                    .filter(|(c, ts, _)| (*c as u128 + TTL as u128).min(END) > due && *ts <= time)
                    .map(|(_, _, id)| *id)
                    .collect();
                ids.sort_unstable();
                out.push(Out::Timer(key, time, due as u64, ids));
            }
            let Some(stamp) = next else { break };
            while i < recs.len() && recs[i].0 as u128 == stamp {
                let (stamp, ts, id) = recs[i];
                i += 1;
                if ts < stamp {
                    out.push(Out::Side(id));
                    continue;
                }
                entries.push((stamp, ts, id));
                if registered.insert(ts) {
                    timers.insert(((ts as u128 + 1).min(END), ts));
                }
            }
        }
    }
}

fn oracle(splits: &[Vec<Step>], strategy: Strategy) -> Vec<Out> {
    let records = stamped(splits, strategy);
    let mut out = Vec::new();
    for job in &WINDOW_JOBS {
        match job.kind {
            Kind::Fixed { size, slide } => oracle_fixed(job, size, slide, &records, &mut out),
            Kind::Session { gap } => oracle_session(job, gap, &records, &mut out),
        }
    }
    oracle_process(&records, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

fn extreme_ids(splits: &[Vec<Step>]) -> BTreeSet<u64> {
    splits
        .iter()
        .flatten()
        .filter_map(|s| match s {
            Step::Record(r) if r.2 >= EXTREME_ID => Some(r.2),
            _ => None,
        })
        .collect()
}

fn assert_same(got: &[Out], expected: &[Out], what: &str) {
    if got == expected {
        return;
    }
    let missing: Vec<&Out> = expected
        .iter()
        .filter(|o| !got.contains(o))
        .take(6)
        .collect();
    let extra: Vec<&Out> = got
        .iter()
        .filter(|o| !expected.contains(o))
        .take(6)
        .collect();
    panic!(
        "{what}: {} results, {} expected; missing {missing:#?}, extra {extra:#?}",
        got.len(),
        expected.len()
    );
}

/// Every extreme record is in the output or the dead letters; returns how
/// many dead letters there were.
fn assert_accounted(out: &[Out], splits: &[Vec<Step>]) -> usize {
    let mut seen = BTreeSet::new();
    for o in out {
        seen.extend(o.key_and_ids().1);
    }
    let extremes = extreme_ids(splits);
    let lost: Vec<&u64> = extremes.iter().filter(|id| !seen.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "extreme records neither emitted nor dead-lettered: {lost:?}"
    );
    let dead = out.iter().filter(|o| matches!(o, Out::Dead(..))).count();
    assert!(
        out.iter()
            .all(|o| !matches!(o, Out::Dead(_, id) if *id < EXTREME_ID)),
        "no ordinary record is dead-lettered"
    );
    dead
}

/// The ordinary records' results: outputs on ordinary keys with ordinary
/// ids only (extreme keys and ids dropped).
fn ordinary_only(out: &[Out]) -> Vec<Out> {
    out.iter()
        .filter(|o| {
            let (key, ids) = o.key_and_ids();
            key.is_none_or(|k| k < EXTREME_KEY) && ids.iter().all(|id| *id < EXTREME_ID)
        })
        .cloned()
        .collect()
}

const STRATEGY: Strategy = Strategy {
    bound: 300,
    quantum: 100,
};

#[test]
fn the_oracle_holds_with_extremes_anywhere() {
    let values = extreme_values();
    let mut far_future_late = 0;
    let mut dead = 0;
    for (seed, strategy) in [
        (1u64, STRATEGY),
        (2, STRATEGY),
        (4, STRATEGY),
        (5, STRATEGY),
        // Bound 0 and a quantum that divides u64::MAX: a record at MAX
        // would move the watermark to MAX; it stops at MAX - 1.
        (
            3,
            Strategy {
                bound: 0,
                quantum: 5,
            },
        ),
    ] {
        let mut rng = SplitMix64::new(seed);
        let mut splits = ordinary(&mut rng, 3, 200);
        mix_anywhere(&mut rng, &mut splits, &values, 16);
        let expected = oracle(&splits, strategy);
        // The far-future effect is exercised: ordinary records that only
        // the extreme ones made late.
        let calm = oracle(&without_extremes(&splits), strategy);
        let late_ids = |out: &[Out]| -> BTreeSet<u64> {
            out.iter()
                .filter_map(|o| match o {
                    Out::Late(_, id, _) | Out::Side(id) if *id < EXTREME_ID => Some(*id),
                    _ => None,
                })
                .collect()
        };
        far_future_late += late_ids(&expected).difference(&late_ids(&calm)).count();
        for workers in [1, 2] {
            let got = run(&splits, strategy, workers);
            assert_same(
                &got,
                &expected,
                &format!("seed {seed}, {workers} worker(s)"),
            );
            dead += assert_accounted(&got, &splits);
        }
    }
    assert!(
        far_future_late > 0,
        "some ordinary records were made late by a far-future watermark"
    );
    assert!(
        dead > 0,
        "some records had windows that cannot be represented"
    );
}

#[test]
fn ordinary_results_do_not_see_isolated_extremes() {
    let values = extreme_values();
    let mut rng = SplitMix64::new(7);
    let plain = ordinary(&mut rng, 3, 300);
    let mut mixed = plain.clone();
    mix_isolated(&mut rng, &mut mixed, &values);
    let expected = oracle(&mixed, STRATEGY);
    let expected_dead = expected
        .iter()
        .filter(|o| matches!(o, Out::Dead(..)))
        .count();
    assert!(
        expected_dead > 10,
        "many extreme records cannot be represented"
    );
    for workers in [1, 2] {
        let without = run(&plain, STRATEGY, workers);
        assert_same(&without, &oracle(&plain, STRATEGY), "without extremes");
        let with = run(&mixed, STRATEGY, workers);
        assert_same(
            &with,
            &expected,
            &format!("with extremes, {workers} worker(s)"),
        );
        assert_same(
            &ordinary_only(&with),
            &without,
            &format!("ordinary results, {workers} worker(s)"),
        );
        assert_accounted(&with, &mixed);
    }
}

#[test]
fn out_of_range_records_are_not_counted_as_late() {
    // The window steps alone (the process function's late records would
    // count too): the job's late count is exactly the late records the
    // window steps emitted, and its dead letters exactly the records out of
    // range, none of them counted as late.
    let values = extreme_values();
    let mut rng = SplitMix64::new(11);
    let mut splits = ordinary(&mut rng, 2, 150);
    mix_anywhere(&mut rng, &mut splits, &values, 16);
    // What the window steps alone emit, computed without the engine: the
    // oracle less what only the process step makes.
    let expected: Vec<Out> = oracle(&splits, STRATEGY)
        .into_iter()
        .filter(|o| !matches!(o, Out::Timer(..) | Out::Side(..)))
        .collect();
    let expected_late = expected
        .iter()
        .filter(|o| matches!(o, Out::Late(..)))
        .count();
    for workers in [1, 2] {
        let (out, summary) = run_job(&splits, STRATEGY, workers, false);
        assert_same(
            &out,
            &expected,
            &format!("window steps, {workers} worker(s)"),
        );
        let late: BTreeSet<(&str, u64)> = out
            .iter()
            .filter_map(|o| match o {
                Out::Late(job, id, _) => Some((job.as_str(), *id)),
                _ => None,
            })
            .collect();
        let late_records = out.iter().filter(|o| matches!(o, Out::Late(..))).count();
        let dead: Vec<(&str, u64)> = out
            .iter()
            .filter_map(|o| match o {
                Out::Dead(job, id) => Some((job.as_str(), *id)),
                _ => None,
            })
            .collect();
        assert!(late_records > 0, "some records are late");
        assert!(!dead.is_empty(), "some records are out of range");
        assert_eq!(summary.late, late_records as u64, "{workers} worker(s)");
        assert_eq!(summary.late, expected_late as u64, "{workers} worker(s)");
        assert_eq!(
            summary.dead_letters,
            dead.len() as u64,
            "{workers} worker(s)"
        );
        // A tumbling window or a session that cannot be represented is the
        // record's only one: it is never also late there.
        for (job, id) in &dead {
            if !job.starts_with("sliding") {
                assert!(
                    !late.contains(&(*job, *id)),
                    "{job}: record {id} is both out of range and late"
                );
            }
        }
    }
}
