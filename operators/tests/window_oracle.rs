//! Window results checked against a naive recomputation.
//!
//! Every test generates a random, seeded input (several splits, a few keys,
//! event times that mostly rise but are often out of order, explicit
//! watermarks and epoch boundaries), runs a window job on it, and compares
//! the fired windows and the late records with an oracle written here from
//! the documented semantics, independently of the operators' code:
//!
//! * a split stamps each record with its watermark *before* observing it; the
//!   watermark is `max event time seen on the split - bound`, rounded down to
//!   the quantum, never decreasing, raised by explicit watermark steps;
//! * tumbling/sliding windows are `[k*slide, k*slide + size)`, `k >= 0`; a
//!   record is late for a window iff its stamp `>= end + allowed lateness`;
//! * session windows are built per key in stamp order: before the records
//!   stamped `s` are applied, every open session with `end + lateness <= s`
//!   closes; a record at `t` is late iff `s >= t + gap + lateness`, and
//!   otherwise merges with every open session of its key overlapping
//!   `[t, t + gap)`.
//!
//! The aggregators are recomputed from the list of on-time records of each
//! window (percentiles by exact nearest rank, with HDR's 0.1% precision
//! allowed twice over).

mod support;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use support::{ids_fold, stamp_all, to_script, Id};
use weir::rng::SplitMix64;
use weir::testing::{run_workers, Script};
use weir::{Data, Watermarks};
use weir_operators::{
    Aggregator, Avg, Count, Fired, Fold, Late, Max, Min, Percentiles, Quantiles, Sum, Window,
    WindowExt, Windows,
};

/// A record: (key, event time ms, value, unique id).
type Rec = (u32, u64, u64, u64);

// ---------------------------------------------------------------------------
// Input generation
// ---------------------------------------------------------------------------

type Step = support::Step<Rec>;

#[derive(Clone, Copy, Debug)]
struct Shape {
    splits: usize,
    per_split: usize,
    keys: u32,
    /// Event time advances by `0..step` ms per record.
    step: u64,
    /// Probability of a jump of `0..jump` ms (gaps, for sessions).
    jump_p: f64,
    jump: u64,
    /// Probability that a record is out of order, by `0..disorder` ms.
    disorder_p: f64,
    disorder: u64,
    /// Event times are multiples of this (so records often sit exactly on
    /// window and session boundaries).
    grain: u64,
}

const SHAPE: Shape = Shape {
    splits: 3,
    per_split: 300,
    keys: 4,
    step: 60,
    jump_p: 0.04,
    jump: 1_500,
    disorder_p: 0.25,
    disorder: 2_000,
    grain: 25,
};

/// One key and dense records: windows of more than a thousand records, so
/// that p99 and p99.9 differ from their neighbours and from the max.
const DENSE: Shape = Shape {
    splits: 3,
    per_split: 1_500,
    keys: 1,
    step: 4,
    jump_p: 0.0,
    jump: 1,
    disorder_p: 0.1,
    disorder: 1_500,
    grain: 1,
};

/// Bounded out-of-orderness used by every oracle test.
const BOUND_MS: u64 = 300;
const QUANTUM_MS: u64 = 100;

fn generate(seed: u64, shape: Shape) -> Vec<Vec<Step>> {
    let mut rng = SplitMix64::new(seed);
    let mut splits = Vec::new();
    for split in 0..shape.splits {
        let mut steps = Vec::new();
        let mut base = rng.below(500);
        for i in 0..shape.per_split {
            base += rng.below(shape.step);
            if rng.chance(shape.jump_p) {
                base += rng.below(shape.jump);
            }
            let ts = if rng.chance(shape.disorder_p) {
                base.saturating_sub(rng.below(shape.disorder))
            } else {
                base + rng.below(40)
            };
            let ts = ts / shape.grain * shape.grain;
            // Values spread over six orders of magnitude (for percentiles).
            let bits = rng.below(21);
            let value = 1 + rng.below(1u64 << bits);
            let key = rng.below(u64::from(shape.keys)) as u32;
            let id = split as u64 * 1_000_000 + i as u64;
            steps.push(Step::Record((key, ts, value, id)));
            if rng.chance(0.02) {
                // Not quantized; sometimes above the split's watermark.
                steps.push(Step::Watermark(
                    base.saturating_sub(rng.below(2 * BOUND_MS)),
                ));
            }
            if rng.chance(0.03) {
                steps.push(Step::EndEpoch);
            }
        }
        splits.push(steps);
    }
    splits
}

// ---------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Fixed { size: u64, slide: u64 },
    Session { gap: u64 },
}

impl Kind {
    fn windows(self, lateness: u64) -> Windows {
        let w = match self {
            Kind::Fixed { size, slide } => {
                Windows::sliding(Duration::from_millis(size), Duration::from_millis(slide))
            }
            Kind::Session { gap } => Windows::session(Duration::from_millis(gap)),
        };
        w.allowed_lateness(Duration::from_millis(lateness))
    }
}

const TUMBLING: Kind = Kind::Fixed {
    size: 1_000,
    slide: 1_000,
};
/// Size a multiple of the slide.
const SLIDING_ALIGNED: Kind = Kind::Fixed {
    size: 1_500,
    slide: 500,
};
/// Size not a multiple of the slide.
const SLIDING_UNALIGNED: Kind = Kind::Fixed {
    size: 1_100,
    slide: 400,
};
/// Slide larger than size: some times belong to no window.
const HOPPING_GAPS: Kind = Kind::Fixed {
    size: 300,
    slide: 700,
};
const SESSION: Kind = Kind::Session { gap: 200 };

type LateRow = (u64, Late<u32, Rec>);

/// What the oracle expects, plus counters that show the input was interesting.
#[derive(Debug, Default)]
struct Expected {
    /// (key, window) -> on-time records.
    windows: BTreeMap<(u32, Window), Vec<Rec>>,
    /// (record's event time, late record), sorted.
    late: Vec<LateRow>,
    /// Records late for at least one window.
    late_records: usize,
    /// (record, window) pairs on time only thanks to allowed lateness.
    saved_by_lateness: usize,
    /// Records late for some of their windows and on time for others.
    partly_late: usize,
    /// Session records that bridged two or more open sessions.
    bridges: usize,
    /// Records that opened a session after a session of theirs had fired
    /// and that overlap it (possible with allowed lateness or disorder).
    reopened: usize,
}

fn oracle_fixed(stamped: &[(u64, Rec)], size: u64, slide: u64, lateness: u64) -> Expected {
    let mut e = Expected::default();
    for &(stamp, r) in stamped {
        let (key, ts, _, _) = r;
        let mut late_here = 0;
        let mut on_time_here = 0;
        // Brute force over every window start, independent of the assigner.
        let mut start = 0;
        while start <= ts {
            let window = Window {
                start,
                end: start + size,
            };
            if ts < window.end {
                if stamp >= window.end + lateness {
                    late_here += 1;
                    e.late.push((
                        ts,
                        Late {
                            key,
                            window,
                            record: r,
                            watermark: stamp,
                        },
                    ));
                } else {
                    on_time_here += 1;
                    if stamp >= window.end {
                        e.saved_by_lateness += 1;
                    }
                    e.windows.entry((key, window)).or_default().push(r);
                }
            }
            start += slide;
        }
        if late_here > 0 {
            e.late_records += 1;
            if on_time_here > 0 {
                e.partly_late += 1;
            }
        }
    }
    e.late.sort();
    e
}

struct OpenSession {
    window: Window,
    records: Vec<Rec>,
}

/// `reverse_ties` applies records with equal stamps in the opposite order:
/// the result must not change.
fn oracle_session(stamped: &[(u64, Rec)], gap: u64, lateness: u64, reverse_ties: bool) -> Expected {
    let mut e = Expected::default();
    let mut order: Vec<(u64, Rec)> = stamped.to_vec();
    order.sort_by_key(|(stamp, _)| *stamp); // stable
    let mut open: BTreeMap<u32, Vec<OpenSession>> = BTreeMap::new();
    let mut fired: BTreeMap<u32, Vec<Window>> = BTreeMap::new();
    let close = |open: &mut BTreeMap<u32, Vec<OpenSession>>,
                 fired: &mut BTreeMap<u32, Vec<Window>>,
                 e: &mut Expected,
                 upto: u64| {
        for (key, sessions) in open.iter_mut() {
            let (done, keep): (Vec<_>, Vec<_>) = sessions
                .drain(..)
                .partition(|s| s.window.end + lateness <= upto);
            *sessions = keep;
            for s in done {
                fired.entry(*key).or_default().push(s.window);
                let previous = e.windows.insert((*key, s.window), s.records);
                assert!(previous.is_none(), "oracle: a session fired twice");
            }
        }
    };
    let mut i = 0;
    while i < order.len() {
        let stamp = order[i].0;
        let mut j = i;
        while j < order.len() && order[j].0 == stamp {
            j += 1;
        }
        close(&mut open, &mut fired, &mut e, stamp);
        let mut group: Vec<Rec> = order[i..j].iter().map(|(_, r)| *r).collect();
        if reverse_ties {
            group.reverse();
        }
        for r in group {
            let (key, ts, _, _) = r;
            if stamp >= ts + gap + lateness {
                e.late_records += 1;
                e.late.push((
                    ts,
                    Late {
                        key,
                        window: Window {
                            start: ts,
                            end: ts + gap,
                        },
                        record: r,
                        watermark: stamp,
                    },
                ));
                continue;
            }
            if stamp >= ts + gap {
                e.saved_by_lateness += 1;
            }
            let mut window = Window {
                start: ts,
                end: ts + gap,
            };
            if fired.get(&key).is_some_and(|f| {
                f.iter()
                    .any(|w| w.start < window.end && window.start < w.end)
            }) {
                e.reopened += 1;
            }
            let sessions = open.entry(key).or_default();
            let (overlapping, rest): (Vec<_>, Vec<_>) = sessions
                .drain(..)
                .partition(|s| s.window.start < window.end && window.start < s.window.end);
            *sessions = rest;
            if overlapping.len() >= 2 {
                e.bridges += 1;
            }
            let mut records = vec![r];
            for s in overlapping {
                window.start = window.start.min(s.window.start);
                window.end = window.end.max(s.window.end);
                records.extend(s.records);
            }
            sessions.push(OpenSession { window, records });
        }
        i = j;
    }
    close(&mut open, &mut fired, &mut e, u64::MAX);
    e.late.sort();
    e
}

fn oracle(splits: &[Vec<Step>], kind: Kind, lateness: u64) -> Expected {
    let stamped = stamp_all(splits, |r: &Rec| r.1, BOUND_MS, QUANTUM_MS);
    match kind {
        Kind::Fixed { size, slide } => oracle_fixed(&stamped, size, slide, lateness),
        Kind::Session { gap } => {
            let e = oracle_session(&stamped, gap, lateness, false);
            // Self-check: ties in stamp order do not matter.
            let reversed = oracle_session(&stamped, gap, lateness, true);
            assert_eq!(
                e.windows.keys().collect::<Vec<_>>(),
                reversed.windows.keys().collect::<Vec<_>>(),
                "oracle: sessions depend on the order of equal stamps"
            );
            assert_eq!(e.late, reversed.late, "oracle: late records depend on ties");
            e
        }
    }
}

// ---------------------------------------------------------------------------
// Running weir
// ---------------------------------------------------------------------------

/// A fired window (with the event time it carries) or a late record (with
/// its event time).
type Output<W> = Result<(u64, Fired<u32, W>), LateRow>;

fn strategy() -> Watermarks {
    Watermarks::bounded(Duration::from_millis(BOUND_MS)).quantum(Duration::from_millis(QUANTUM_MS))
}

fn run_window<A, W>(
    workers: usize,
    splits: &[Vec<Step>],
    windows: Windows,
    aggregator: A,
    convert: fn(A::Out) -> W,
) -> Vec<Output<W>>
where
    A: Aggregator<Rec> + Send + Sync,
    W: Data + Ord,
{
    let script = to_script(splits);
    run_workers(workers, move |p, capture| {
        let w = p
            .source("script", script.clone())
            .event_time(|r: &Rec| r.1, strategy())
            .key_by("by_key", |r: &Rec| r.0)
            .window("window", windows, aggregator.clone());
        let fired = w.fired.with_event_time().map(move |(t, f)| {
            Ok((
                t,
                Fired {
                    key: f.key,
                    window: f.window,
                    value: convert(f.value),
                },
            ))
        });
        let late = w.late.with_event_time().map(Err);
        fired.union(late).sink("out", capture.sink());
    })
}

/// Checks one window's value against its on-time records.
type Verify<'a, W> = dyn Fn(&W, &[Rec]) -> Result<(), String> + 'a;

/// Compares weir's output with the oracle; `verify` checks one window's value
/// against its on-time records. Returns the problems found.
fn compare<W: Debug>(
    got: &[Output<W>],
    expected: &Expected,
    verify: &Verify<'_, W>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fired: BTreeMap<(u32, Window), Vec<(u64, &W)>> = BTreeMap::new();
    let mut late: Vec<LateRow> = Vec::new();
    for o in got {
        match o {
            Ok((t, f)) => fired
                .entry((f.key, f.window))
                .or_default()
                .push((*t, &f.value)),
            Err(l) => late.push(l.clone()),
        }
    }
    for ((key, window), results) in &fired {
        let Some(records) = expected.windows.get(&(*key, *window)) else {
            problems.push(format!(
                "unexpected window: key {key} {window} fired {results:?}"
            ));
            continue;
        };
        if results.len() != 1 {
            problems.push(format!(
                "key {key} {window} fired {} times: {results:?}",
                results.len()
            ));
        }
        for (t, value) in results {
            if *t != window.end - 1 {
                problems.push(format!(
                    "key {key} {window}: result carries event time {t}, expected {}",
                    window.end - 1
                ));
            }
            if let Err(why) = verify(value, records) {
                let mut ids: Vec<u64> = records.iter().map(|r| r.3).collect();
                ids.sort_unstable();
                problems.push(format!(
                    "key {key} {window}: {why} ({} on-time records, ids {ids:?})",
                    records.len()
                ));
            }
        }
    }
    for ((key, window), records) in &expected.windows {
        if !fired.contains_key(&(*key, *window)) {
            let mut ids: Vec<u64> = records.iter().map(|r| r.3).collect();
            ids.sort_unstable();
            problems.push(format!(
                "missing window: key {key} {window} with {} records, ids {ids:?}",
                records.len()
            ));
        }
    }
    late.sort();
    if late != expected.late {
        let missing: Vec<_> = expected
            .late
            .iter()
            .filter(|l| late.binary_search(l).is_err())
            .take(10)
            .collect();
        let extra: Vec<_> = late
            .iter()
            .filter(|l| expected.late.binary_search(l).is_err())
            .take(10)
            .collect();
        problems.push(format!(
            "late records differ: weir {} vs oracle {}; missing (first 10) {missing:?}; unexpected (first 10) {extra:?}",
            late.len(),
            expected.late.len()
        ));
    }
    problems
}

fn report(problems: &[String], what: &str) {
    if !problems.is_empty() {
        let shown: Vec<&String> = problems.iter().take(15).collect();
        panic!(
            "{what}: {} problems, first ones:\n{}",
            problems.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Asserts that the input exercised what the test is about.
fn assert_interesting(e: &Expected, kind: Kind, lateness: u64, what: &str) {
    let records = SHAPE.splits * SHAPE.per_split;
    let late_fraction = e.late_records as f64 / records as f64;
    assert!(
        (0.05..=0.2).contains(&late_fraction),
        "{what}: {} of {records} records are late ({:.1}%): tune the generator",
        e.late_records,
        late_fraction * 100.0
    );
    let keys: std::collections::BTreeSet<u32> = e.windows.keys().map(|(k, _)| *k).collect();
    assert!(keys.len() >= 3, "{what}: only keys {keys:?} fired");
    assert!(
        e.windows.len() >= 40,
        "{what}: only {} windows fired",
        e.windows.len()
    );
    let multi = e.windows.values().filter(|r| r.len() >= 2).count();
    assert!(
        multi >= 10,
        "{what}: only {multi} windows hold more than one record"
    );
    if lateness > 0 {
        assert!(
            e.saved_by_lateness > 0,
            "{what}: no record was on time only thanks to allowed lateness"
        );
    }
    match kind {
        Kind::Fixed { size, slide } if size > slide => assert!(
            e.partly_late > 0,
            "{what}: no record was late for some windows and on time for others"
        ),
        Kind::Session { .. } => {
            assert!(e.bridges > 0, "{what}: no record bridged two sessions");
            assert!(
                e.reopened > 0,
                "{what}: no record opened a session overlapping one that had fired"
            );
        }
        Kind::Fixed { .. } => {}
    }
}

/// The configurations each aggregator is checked on: (seed, lateness ms).
const CONFIGS: [(u64, u64); 2] = [(1, 0), (2, 500)];

fn check<A, W>(
    kind: Kind,
    aggregator: A,
    convert: fn(A::Out) -> W,
    verify: impl Fn(&W, &[Rec]) -> Result<(), String>,
) where
    A: Aggregator<Rec> + Send + Sync,
    W: Data + Ord + Debug,
{
    for (seed, lateness) in CONFIGS {
        // Each window kind gets its own inputs.
        let seed = seed * 1_000 + kind_seed(kind);
        let splits = generate(seed, SHAPE);
        let expected = oracle(&splits, kind, lateness);
        let what = format!("{kind:?}, lateness {lateness} ms, seed {seed}");
        assert_interesting(&expected, kind, lateness, &what);
        let got = run_window(
            2,
            &splits,
            kind.windows(lateness),
            aggregator.clone(),
            convert,
        );
        report(&compare(&got, &expected, &verify), &what);
    }
}

fn kind_seed(kind: Kind) -> u64 {
    match kind {
        Kind::Fixed { size, slide } => size * 7 + slide,
        Kind::Session { gap } => gap * 13 + 2_000,
    }
}

// ---------------------------------------------------------------------------
// Naive aggregates
// ---------------------------------------------------------------------------

fn same<V: PartialEq + Debug>(got: &V, expected: V) -> Result<(), String> {
    if *got == expected {
        Ok(())
    } else {
        Err(format!("got {got:?}, expected {expected:?}"))
    }
}

fn naive_count(records: &[Rec]) -> u64 {
    records.len() as u64
}

fn naive_sum(records: &[Rec]) -> u64 {
    records.iter().map(|r| r.2).sum()
}

fn naive_min(records: &[Rec]) -> u64 {
    records.iter().map(|r| r.2).min().unwrap_or(u64::MAX)
}

fn naive_max(records: &[Rec]) -> u64 {
    records.iter().map(|r| r.2).max().unwrap_or(0)
}

fn naive_avg(records: &[Rec]) -> f64 {
    // Sums of integers below 2^53 are exact in f64, whatever the order.
    naive_sum(records) as f64 / records.len() as f64
}

fn naive_ids(records: &[Rec]) -> Vec<u64> {
    let mut ids: Vec<u64> = records.iter().map(|r| r.3).collect();
    ids.sort_unstable();
    ids
}

/// The value at nearest rank `ceil(q * n)` (at least 1) of the sorted values.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn close_enough(got: u64, exact: u64) -> bool {
    got.abs_diff(exact) as f64 <= exact as f64 * 0.002
}

fn verify_quantiles(got: &Quantiles, records: &[Rec]) -> Result<(), String> {
    let mut values: Vec<u64> = records.iter().map(|r| r.2).collect();
    values.sort_unstable();
    let exact = [
        ("count", got.count, values.len() as u64),
        ("p50", got.p50, nearest_rank(&values, 0.5)),
        ("p90", got.p90, nearest_rank(&values, 0.9)),
        ("p99", got.p99, nearest_rank(&values, 0.99)),
        ("p999", got.p999, nearest_rank(&values, 0.999)),
        ("max", got.max, values.last().copied().unwrap_or(0)),
    ];
    for (name, g, e) in exact {
        if !close_enough(g, e) {
            return Err(format!("{name} is {g}, exact {e} (got {got:?})"));
        }
    }
    Ok(())
}

impl Id for Rec {
    fn id(&self) -> u64 {
        self.3
    }
}

type Stats = (u64, u64, u64);

fn mix(id: u64) -> u64 {
    SplitMix64::new(id).next_u64()
}

fn stats_fold() -> Fold<
    Stats,
    impl Fn(&mut Stats, &Rec) + Clone + Send + Sync + 'static,
    impl Fn(&mut Stats, Stats) + Clone + Send + Sync + 'static,
> {
    // (count, wrapping sum of squared values, xor of mixed ids).
    Fold::new(
        (0u64, 0u64, 0u64),
        |acc: &mut Stats, r: &Rec| {
            acc.0 += 1;
            acc.1 = acc.1.wrapping_add(r.2.wrapping_mul(r.2));
            acc.2 ^= mix(r.3);
        },
        |acc: &mut Stats, other: Stats| {
            acc.0 += other.0;
            acc.1 = acc.1.wrapping_add(other.1);
            acc.2 ^= other.2;
        },
    )
}

fn naive_stats(records: &[Rec]) -> Stats {
    let mut s = (0u64, 0u64, 0u64);
    for r in records {
        s.0 += 1;
        s.1 = s.1.wrapping_add(r.2.wrapping_mul(r.2));
        s.2 ^= mix(r.3);
    }
    s
}

fn value(r: &Rec) -> u64 {
    r.2
}

fn value_f64(r: &Rec) -> f64 {
    r.2 as f64
}

/// A float with up to 53 significant bits spread over ~70 binary orders of
/// magnitude, positive or negative: naive float sums of these depend on
/// order. It is `k(r) / 2^20` exactly, so the oracle sums the `k`s in i128.
fn fixed_k(r: &Rec) -> i64 {
    let mut g = SplitMix64::new(r.3 ^ 0x5EED);
    let bits = g.below(53);
    let m = g.below(1u64 << bits) as i64;
    let k = m << g.below(8);
    if g.chance(0.5) {
        -k
    } else {
        k
    }
}

const FIXED_SCALE: f64 = 1_048_576.0; // 2^20

fn value_frac(r: &Rec) -> f64 {
    fixed_k(r) as f64 / FIXED_SCALE
}

/// The exact sum, rounded once (i128 to f64 rounds to nearest, ties to even).
fn naive_frac_sum(records: &[Rec]) -> f64 {
    let exact: i128 = records.iter().map(|r| i128::from(fixed_k(r))).sum();
    exact as f64 / FIXED_SCALE
}

fn id<V>(v: V) -> V {
    v
}

// ---------------------------------------------------------------------------
// One function per aggregator, run on every window kind
// ---------------------------------------------------------------------------

fn count(kind: Kind) {
    check(kind, Count, id, |got, recs| same(got, naive_count(recs)));
}

fn sum(kind: Kind) {
    check(kind, Sum::of(value), id, |got, recs| {
        same(got, naive_sum(recs))
    });
}

fn min(kind: Kind) {
    check(kind, Min::of(value), id, |got, recs| {
        same(got, naive_min(recs))
    });
}

fn max(kind: Kind) {
    check(kind, Max::of(value), id, |got, recs| {
        same(got, naive_max(recs))
    });
}

fn avg(kind: Kind) {
    check(kind, Avg::of(value_f64), f64::to_bits, |got, recs| {
        same(&f64::from_bits(*got), naive_avg(recs))
    });
}

/// Float sums must be exact until one final rounding (so they do not depend
/// on record order, hence not on the worker count).
fn sum_f64(kind: Kind) {
    check(kind, Sum::of(value_frac), f64::to_bits, |got, recs| {
        same(&f64::from_bits(*got), naive_frac_sum(recs))
    });
}

fn avg_f64(kind: Kind) {
    check(kind, Avg::of(value_frac), f64::to_bits, |got, recs| {
        same(
            &f64::from_bits(*got),
            naive_frac_sum(recs) / recs.len() as f64,
        )
    });
}

fn fold(kind: Kind) {
    check(kind, ids_fold(), id, |got, recs| same(got, naive_ids(recs)));
    check(kind, stats_fold(), id, |got, recs| {
        same(got, naive_stats(recs))
    });
}

fn percentiles(kind: Kind) {
    check(kind, Percentiles::of(value), id, verify_quantiles);
}

/// Percentiles over windows of 1000+ records.
fn percentiles_dense(kind: Kind) {
    for (seed, lateness) in CONFIGS {
        let seed = seed * 1_000 + kind_seed(kind) + 77;
        let splits = generate(seed, DENSE);
        let expected = oracle(&splits, kind, lateness);
        let what = format!("dense {kind:?}, lateness {lateness} ms, seed {seed}");
        assert!(!expected.late.is_empty(), "{what}: nothing is late");
        let large = expected
            .windows
            .values()
            .filter(|r| r.len() >= 1_000)
            .count();
        assert!(large >= 1, "{what}: no window holds 1000+ records");
        let got = run_window(
            2,
            &splits,
            kind.windows(lateness),
            Percentiles::of(value),
            id,
        );
        report(&compare(&got, &expected, &verify_quantiles), &what);
    }
}

fn tuple(kind: Kind) {
    check(
        kind,
        (
            Count,
            Sum::of(value),
            Min::of(value),
            Max::of(value),
            ids_fold(),
        ),
        id,
        |got, recs| {
            same(
                got,
                (
                    naive_count(recs),
                    naive_sum(recs),
                    naive_min(recs),
                    naive_max(recs),
                    naive_ids(recs),
                ),
            )
        },
    );
    check(
        kind,
        (Avg::of(value_f64), Percentiles::of(value)),
        |(a, q)| (a.to_bits(), q),
        |got, recs| {
            same(&f64::from_bits(got.0), naive_avg(recs))?;
            verify_quantiles(&got.1, recs)
        },
    );
}

macro_rules! per_kind {
    ($kind:ident: $($name:ident => $agg:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $agg($kind);
            }
        )*
    };
}

per_kind!(TUMBLING:
    tumbling_count => count,
    tumbling_sum => sum,
    tumbling_min => min,
    tumbling_max => max,
    tumbling_avg => avg,
    tumbling_sum_f64 => sum_f64,
    tumbling_avg_f64 => avg_f64,
    tumbling_fold => fold,
    tumbling_percentiles => percentiles,
    tumbling_percentiles_dense => percentiles_dense,
    tumbling_tuple => tuple,
);

per_kind!(SLIDING_ALIGNED:
    sliding_aligned_count => count,
    sliding_aligned_sum => sum,
    sliding_aligned_min => min,
    sliding_aligned_max => max,
    sliding_aligned_avg => avg,
    sliding_aligned_sum_f64 => sum_f64,
    sliding_aligned_avg_f64 => avg_f64,
    sliding_aligned_fold => fold,
    sliding_aligned_percentiles => percentiles,
    sliding_aligned_tuple => tuple,
);

per_kind!(SLIDING_UNALIGNED:
    sliding_unaligned_count => count,
    sliding_unaligned_sum => sum,
    sliding_unaligned_min => min,
    sliding_unaligned_max => max,
    sliding_unaligned_avg => avg,
    sliding_unaligned_sum_f64 => sum_f64,
    sliding_unaligned_avg_f64 => avg_f64,
    sliding_unaligned_fold => fold,
    sliding_unaligned_percentiles => percentiles,
    sliding_unaligned_percentiles_dense => percentiles_dense,
    sliding_unaligned_tuple => tuple,
);

per_kind!(HOPPING_GAPS:
    hopping_with_gaps_count => count,
    hopping_with_gaps_tuple => tuple,
);

per_kind!(SESSION:
    session_count => count,
    session_sum => sum,
    session_min => min,
    session_max => max,
    session_avg => avg,
    session_sum_f64 => sum_f64,
    session_avg_f64 => avg_f64,
    session_fold => fold,
    session_percentiles => percentiles,
    session_percentiles_dense => percentiles_dense,
    session_tuple => tuple,
);

// ---------------------------------------------------------------------------
// Worker equivalence
// ---------------------------------------------------------------------------

fn same_on_1_2_4_workers(kind: Kind, lateness: u64, seed: u64) {
    let splits = generate(seed, SHAPE);
    let expected = oracle(&splits, kind, lateness);
    let what = format!("{kind:?}, lateness {lateness} ms, seed {seed}");
    assert_interesting(&expected, kind, lateness, &what);
    let windows = kind.windows(lateness);
    let aggregator = (
        Count,
        Sum::of(value),
        Percentiles::of(value),
        ids_fold(),
        stats_fold(),
    );
    let one = run_window(1, &splits, windows, aggregator.clone(), id);
    report(
        &compare(&one, &expected, &|got, recs| {
            same(&got.0, naive_count(recs))?;
            same(&got.1, naive_sum(recs))?;
            verify_quantiles(&got.2, recs)?;
            same(&got.3, naive_ids(recs))?;
            same(&got.4, naive_stats(recs))
        }),
        &format!("{what}, 1 worker"),
    );
    for workers in [2, 4] {
        let many = run_window(workers, &splits, windows, aggregator.clone(), id);
        if many != one {
            let extra: Vec<_> = many
                .iter()
                .filter(|o| one.binary_search(o).is_err())
                .take(5)
                .collect();
            let missing: Vec<_> = one
                .iter()
                .filter(|o| many.binary_search(o).is_err())
                .take(5)
                .collect();
            panic!(
                "{what}: {workers} workers differ from 1 ({} vs {} outputs); only with {workers}: {extra:?}; only with 1: {missing:?}",
                many.len(),
                one.len()
            );
        }
    }
}

#[test]
fn tumbling_same_on_1_2_4_workers() {
    same_on_1_2_4_workers(TUMBLING, 0, 101);
}

#[test]
fn sliding_same_on_1_2_4_workers() {
    same_on_1_2_4_workers(SLIDING_UNALIGNED, 500, 102);
}

#[test]
fn session_same_on_1_2_4_workers() {
    same_on_1_2_4_workers(SESSION, 0, 103);
}

#[test]
fn session_with_lateness_same_on_1_2_4_workers() {
    same_on_1_2_4_workers(SESSION, 500, 104);
}

// ---------------------------------------------------------------------------
// Oracle self-checks on hand-computed cases
// ---------------------------------------------------------------------------

#[test]
fn oracle_stamps_match_hand_computation() {
    // bound 300, quantum 100.
    let splits = vec![
        vec![
            Step::Record((0, 1_000, 1, 1)), // stamp 0, then 700
            Step::Record((0, 450, 1, 2)),   // stamp 700
            Step::Watermark(733),           // 733
            Step::Record((0, 1_050, 1, 3)), // stamp 733, max(733, 700)
            Step::Record((0, 2_099, 1, 4)), // stamp 733, then 1700
            Step::EndEpoch,
            Step::Record((0, 10, 1, 5)), // stamp 1700
        ],
        vec![Step::Record((1, 5_000, 1, 6)), Step::Record((1, 10, 1, 7))],
    ];
    let stamps: Vec<(u64, u64)> = stamp_all(&splits, |r: &Rec| r.1, 300, 100)
        .into_iter()
        .map(|(s, r)| (r.3, s))
        .collect();
    assert_eq!(
        stamps,
        vec![
            (1, 0),
            (2, 700),
            (3, 733),
            (4, 733),
            (5, 1_700),
            (6, 0),
            (7, 4_700)
        ]
    );
    // Tumbling 1000: id 2 (t 450, stamp 700) is on time, id 5 (t 10, stamp
    // 1700) is late, id 7 (t 10, stamp 4700) is late.
    let stamped = stamp_all(&splits, |r: &Rec| r.1, 300, 100);
    let e = oracle_fixed(&stamped, 1_000, 1_000, 0);
    let late_ids: Vec<u64> = e.late.iter().map(|(_, l)| l.record.3).collect();
    assert_eq!(late_ids, vec![5, 7]);
    // With 800 ms of lateness id 5 is saved (1700 < 1000 + 800).
    let e = oracle_fixed(&stamped, 1_000, 1_000, 800);
    let late_ids: Vec<u64> = e.late.iter().map(|(_, l)| l.record.3).collect();
    assert_eq!(late_ids, vec![7]);
    assert_eq!(e.saved_by_lateness, 1);
}

#[test]
fn hand_written_sessions_merge_and_close() {
    // One split, bound 500 ms, quantum 1 ms, gap 200 ms.
    // ids 1 (t 0) and 2 (t 350) open [0, 200) and [350, 550) (stamps 0);
    // id 3 (t 160, stamp 0) bridges them into [0, 550). id 4 (t 1600) raises
    // the watermark to 1100, so before id 5 (stamp 1100) is applied [0, 550)
    // fires; id 5 joins id 4 in [1600, 1900). id 6 (t 900, stamp 1200 >=
    // 900 + 200) is late for [900, 1100); id 7 (t 1050, stamp 1200 < 1250)
    // opens [1050, 1250).
    let records: Vec<Rec> = vec![
        (7, 0, 5, 1),
        (7, 350, 6, 2),
        (7, 160, 7, 3),
        (7, 1_600, 8, 4),
        (7, 1_700, 9, 5),
        (7, 900, 9, 6),
        (7, 1_050, 9, 7),
    ];
    let splits = vec![records.iter().map(|r| Step::Record(*r)).collect::<Vec<_>>()];
    let stamped = stamp_all(&splits, |r: &Rec| r.1, 500, 1);
    let e = oracle_session(&stamped, 200, 0, false);
    let fired: Vec<(Window, Vec<u64>)> = e
        .windows
        .iter()
        .map(|((_, w), recs)| (*w, naive_ids(recs)))
        .collect();
    let w = |start, end| Window { start, end };
    assert_eq!(
        fired,
        vec![
            (w(0, 550), vec![1, 2, 3]),
            (w(1_050, 1_250), vec![7]),
            (w(1_600, 1_900), vec![4, 5]),
        ]
    );
    assert_eq!(e.bridges, 1);
    let late: Vec<(Window, u64, u64)> = e
        .late
        .iter()
        .map(|(_, l)| (l.window, l.record.3, l.watermark))
        .collect();
    assert_eq!(late, vec![(w(900, 1_100), 6, 1_200)]);

    // And weir agrees on 1 and 3 workers.
    let script = Script::new().records(&records);
    for workers in [1, 3] {
        let script = script.clone();
        let out = run_workers(workers, move |p, capture| {
            let w = p
                .source("script", script.clone())
                .event_time(
                    |r: &Rec| r.1,
                    Watermarks::bounded(Duration::from_millis(500))
                        .quantum(Duration::from_millis(1)),
                )
                .key_by("by_key", |r: &Rec| r.0)
                .window(
                    "sessions",
                    Windows::session(Duration::from_millis(200)),
                    ids_fold(),
                );
            let fired = w.fired.map(|f| Ok((f.window, f.value)));
            let late = w.late.map(|l| Err((l.window, l.record.3, l.watermark)));
            fired.union(late).sink("out", capture.sink());
        });
        assert_eq!(
            out,
            vec![
                Ok((w(0, 550), vec![1, 2, 3])),
                Ok((w(1_050, 1_250), vec![7])),
                Ok((w(1_600, 1_900), vec![4, 5])),
                Err((w(900, 1_100), 6, 1_200)),
            ],
            "{workers} workers"
        );
    }
}
