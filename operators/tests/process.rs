//! Process functions checked against naive recomputations.
//!
//! Every oracle here is written from the documented semantics, not from the
//! operator's code:
//!
//! * a split stamps each record with its watermark *before* observing it;
//!   the watermark is `max event time seen - bound`, rounded down to the
//!   quantum, never decreasing, raised by explicit watermark steps;
//! * a record is late iff its event time is below its stamp;
//! * an event-time timer for `t` fires once the watermark has passed `t`:
//!   after every on-time record with event time `<= t`, at watermark `t + 1`;
//!   one timer per (key, time);
//! * a TTL entry written at watermark `w` reads as absent from watermark
//!   `w + ttl` on.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use support::{stamp_all, to_script, Step};
use weir::rng::SplitMix64;
use weir::testing::{run_workers, run_workers_timed, Script};
use weir::Watermarks;
use weir_operators::process::{
    Context, ListState, MapState, ProcessExt, ProcessFunction, ValueState,
};

const BOUND_MS: u64 = 2_000;
const QUANTUM_MS: u64 = 100;

fn watermarks() -> Watermarks {
    Watermarks::bounded(Duration::from_millis(BOUND_MS)).quantum(Duration::from_millis(QUANTUM_MS))
}

/// Splits of records with event times that mostly rise, often out of order
/// (within the bound), sometimes far behind (late), with explicit
/// watermarks and epoch ends.
fn generate<R>(
    seed: u64,
    splits: usize,
    per_split: usize,
    step_ms: u64,
    mut record: impl FnMut(&mut SplitMix64, u64) -> R,
) -> Vec<Vec<Step<R>>> {
    let mut rng = SplitMix64::new(seed);
    (0..splits)
        .map(|_| {
            let mut steps = Vec::new();
            let mut base = rng.below(1_000);
            for _ in 0..per_split {
                base += rng.below(step_ms);
                let ts = if rng.chance(0.3) {
                    base.saturating_sub(rng.below(BOUND_MS))
                } else if rng.chance(0.03) {
                    base.saturating_sub(BOUND_MS + rng.below(60_000))
                } else {
                    base
                };
                // Coarse event times: many records share one.
                let ts = ts / 50 * 50;
                steps.push(Step::Record(record(&mut rng, ts)));
                if rng.chance(0.02) {
                    steps.push(Step::Watermark(base.saturating_sub(rng.below(BOUND_MS))));
                }
                if rng.chance(0.03) {
                    steps.push(Step::EndEpoch);
                }
            }
            steps
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Three countries in ten minutes
// ---------------------------------------------------------------------------

const TEN_MINUTES: u64 = 10 * 60 * 1_000;

/// (card, country, event time ms, id)
type Txn = (u32, String, u64, u64);
/// (card, time, countries)
type Alert = (u32, u64, Vec<String>);

#[derive(Default, Serialize, Deserialize)]
struct Recent {
    txns: ListState<(u64, String)>,
}

struct ThreeCountries;

impl ProcessFunction<u32, Txn> for ThreeCountries {
    type State = Recent;
    type Out = Alert;
    type Side = Txn;

    fn on_record(&mut self, ctx: &mut Context<'_, u32, Alert, Txn>, state: &mut Recent, txn: Txn) {
        if ctx.is_late() {
            ctx.side(txn);
            return;
        }
        state.txns.push((txn.2, txn.1));
        ctx.register_event_timer(txn.2);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, Alert, Txn>, state: &mut Recent, time: u64) {
        state.txns.retain(|(ts, _)| ts + TEN_MINUTES > time);
        let countries: BTreeSet<&String> = state
            .txns
            .iter()
            .filter(|(ts, _)| *ts <= time)
            .map(|(_, c)| c)
            .collect();
        if countries.len() >= 3 {
            let card = *ctx.key();
            let countries = countries.into_iter().cloned().collect();
            ctx.output((card, time, countries));
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Checked {
    Alert(Alert),
    Late(Txn),
}

fn three_countries_oracle(splits: &[Vec<Step<Txn>>]) -> Vec<Checked> {
    let mut on_time: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (stamp, txn) in stamp_all(splits, |t: &Txn| t.2, BOUND_MS, QUANTUM_MS) {
        if txn.2 < stamp {
            out.push(Checked::Late(txn));
        } else {
            on_time.entry(txn.0).or_default().push((txn.2, txn.1));
        }
    }
    for (card, txns) in &on_time {
        let times: BTreeSet<u64> = txns.iter().map(|(ts, _)| *ts).collect();
        for t in times {
            let countries: BTreeSet<&String> = txns
                .iter()
                .filter(|(ts, _)| *ts <= t && t - *ts < TEN_MINUTES)
                .map(|(_, c)| c)
                .collect();
            if countries.len() >= 3 {
                out.push(Checked::Alert((
                    *card,
                    t,
                    countries.into_iter().cloned().collect(),
                )));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn three_countries_in_ten_minutes_matches_a_naive_recomputation() {
    const COUNTRIES: [&str; 6] = ["DE", "ES", "FR", "IT", "NL", "PL"];
    for seed in [1, 2] {
        let mut id = 0;
        let splits = generate(seed, 3, 400, 40_000, |rng, ts| {
            id += 1;
            let card = rng.below(12) as u32;
            // Cards mostly stay home; a few travel a lot.
            let country = if card < 3 || rng.chance(0.15) {
                COUNTRIES[rng.below(6) as usize]
            } else {
                COUNTRIES[card as usize % 6]
            };
            (card, country.to_string(), ts, id)
        });
        let expected = three_countries_oracle(&splits);
        let alerts = expected
            .iter()
            .filter(|c| matches!(c, Checked::Alert(_)))
            .count();
        let late = expected.len() - alerts;
        assert!(
            alerts > 20 && late > 5,
            "a meaningful input: {alerts} alerts, {late} late"
        );
        let script = to_script(&splits);
        for workers in [1, 2, 4] {
            let script = script.clone();
            let got = run_workers(workers, move |p, capture| {
                let checked = p
                    .source("txns", script.clone())
                    .event_time(|t: &Txn| t.2, watermarks())
                    .key_by("by_card", |t| t.0)
                    .process("three_countries", ThreeCountries);
                checked
                    .main
                    .map(Checked::Alert)
                    .union(checked.side.map(Checked::Late))
                    .sink("out", capture.sink());
            });
            assert_eq!(got, expected, "seed {seed}, {workers} workers");
        }
    }
}

// ---------------------------------------------------------------------------
// Timers: exactly once, in order, when the watermark passes them
// ---------------------------------------------------------------------------

/// Secondary timers live far above every event time, so they never
/// coincide with primary ones.
const FAR: u64 = 1 << 40;

/// (key, event time)
type Rec = (u32, u64);
/// (key, sequence number of the firing for its key, timer time, watermark)
type Firing = (u32, u64, u64, u64);

#[derive(Default, Serialize, Deserialize)]
struct Fired {
    count: ValueState<u64>,
}

/// Per on-time record: a timer at its time, and one at `FAR + time` that is
/// deleted again when `time % 3 == 0`. A timer at `t < FAR` with
/// `t % 4 == 0` registers a follow-up at `t + 1`.
struct EveryTimer;

impl ProcessFunction<u32, Rec> for EveryTimer {
    type State = Fired;
    type Out = Firing;
    type Side = ();

    fn on_record(&mut self, ctx: &mut Context<'_, u32, Firing, ()>, _: &mut Fired, r: Rec) {
        if ctx.is_late() {
            return;
        }
        ctx.register_event_timer(r.1);
        ctx.register_event_timer(FAR + r.1);
        assert!(ctx.has_event_timer(FAR + r.1));
        if r.1.is_multiple_of(3) {
            assert!(ctx.delete_event_timer(FAR + r.1), "the timer was just set");
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, Firing, ()>, state: &mut Fired, time: u64) {
        let seq = state.count.get().copied().unwrap_or(0);
        state.count.set(seq + 1);
        ctx.output((*ctx.key(), seq, time, ctx.watermark()));
        if time < FAR && time.is_multiple_of(4) {
            ctx.register_event_timer(time + 1);
        }
    }
}

fn expected_timers(splits: &[Vec<Step<Rec>>]) -> BTreeSet<(u32, u64)> {
    let mut timers = BTreeSet::new();
    for (stamp, (key, ts)) in stamp_all(splits, |r: &Rec| r.1, BOUND_MS, QUANTUM_MS) {
        if ts < stamp {
            continue;
        }
        timers.insert((key, ts));
        if !ts.is_multiple_of(3) {
            timers.insert((key, FAR + ts));
        }
        if ts.is_multiple_of(4) {
            timers.insert((key, ts + 1));
        }
    }
    timers
}

#[test]
fn event_timers_fire_once_in_order_when_the_watermark_passes_them() {
    let splits = generate(7, 3, 500, 300, |rng, ts| (rng.below(5) as u32, ts));
    let expected = expected_timers(&splits);
    let script = to_script(&splits);
    for workers in [1, 2, 4] {
        let script = script.clone();
        let firings: Vec<Firing> = run_workers(workers, move |p, capture| {
            p.source("records", script.clone())
                .event_time(|r: &Rec| r.1, watermarks())
                .key_by("by_key", |r| r.0)
                .process("timers", EveryTimer)
                .main
                .sink("out", capture.sink());
        });
        let fired: Vec<(u32, u64)> = firings.iter().map(|f| (f.0, f.2)).collect();
        let unique: BTreeSet<(u32, u64)> = fired.iter().copied().collect();
        assert_eq!(
            unique.len(),
            fired.len(),
            "{workers} workers: a timer fired twice"
        );
        assert_eq!(unique, expected, "{workers} workers: the timers that fired");
        let mut per_key: BTreeMap<u32, Vec<&Firing>> = BTreeMap::new();
        for f in &firings {
            per_key.entry(f.0).or_default().push(f);
            assert_eq!(
                f.3,
                f.2 + 1,
                "fires when the watermark passes its time: {f:?}"
            );
        }
        for (key, mut list) in per_key {
            list.sort_by_key(|f| f.1);
            for (i, pair) in list.windows(2).enumerate() {
                assert_eq!(
                    pair[0].1, i as u64,
                    "key {key}: firings are numbered in order"
                );
                assert!(
                    pair[0].2 < pair[1].2,
                    "key {key}: {:?} then {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// TTL
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Op {
    Set(String),
    Push(String),
    Insert(u8),
    Touch(u8),
    Read,
}

/// (key, event time, op)
type TtlRec = (u32, u64, Op);
/// (key, watermark, value, list, map keys) as a read saw them.
type Seen = (u32, u64, Option<String>, Vec<String>, Vec<u8>);

const TTL: Duration = Duration::from_millis(500);

#[derive(Serialize, Deserialize)]
struct Expiring {
    value: ValueState<String>,
    list: ListState<String>,
    map: MapState<u8, u64>,
}

impl Default for Expiring {
    fn default() -> Self {
        Expiring {
            value: ValueState::with_ttl(TTL),
            list: ListState::with_ttl(TTL),
            map: MapState::with_ttl(TTL),
        }
    }
}

struct TtlProbe;

impl ProcessFunction<u32, TtlRec> for TtlProbe {
    type State = Expiring;
    type Out = Seen;
    type Side = ();

    fn on_record(&mut self, ctx: &mut Context<'_, u32, Seen, ()>, state: &mut Expiring, r: TtlRec) {
        let now = ctx.watermark();
        match r.2 {
            Op::Set(v) => state.value.set(v),
            Op::Push(v) => state.list.push(v),
            Op::Insert(k) => {
                state.map.insert(k, now);
            }
            Op::Touch(k) => {
                if let Some(v) = state.map.get_mut(&k) {
                    *v = now;
                }
            }
            Op::Read => {
                let seen = (
                    r.0,
                    now,
                    state.value.get().cloned(),
                    state.list.iter().cloned().collect(),
                    state.map.keys().copied().collect(),
                );
                ctx.output(seen);
            }
        }
    }
}

#[test]
fn ttl_state_reads_as_absent_once_the_watermark_passes_its_expiry() {
    // Each group is stamped with the watermark set just before it.
    let s = |v: &str| v.to_string();
    let groups: Vec<(u64, Vec<TtlRec>)> = vec![
        (
            1_000,
            vec![
                (1, 1_000, Op::Set(s("a"))),
                (1, 1_000, Op::Push(s("x"))),
                (1, 1_000, Op::Insert(1)),
                (2, 1_000, Op::Set(s("b"))),
            ],
        ),
        (1_200, vec![(1, 1_200, Op::Insert(2))]),
        (1_300, vec![(1, 1_300, Op::Push(s("y")))]),
        (1_400, vec![(1, 1_400, Op::Touch(1)), (1, 1_401, Op::Read)]),
        (1_499, vec![(2, 1_499, Op::Read)]),
        (
            1_500,
            vec![(1, 1_500, Op::Read), (2, 1_500, Op::Set(s("c")))],
        ),
        (1_700, vec![(1, 1_700, Op::Read)]),
        (1_800, vec![(1, 1_800, Op::Read)]),
        (1_900, vec![(1, 1_900, Op::Read)]),
        (1_999, vec![(2, 1_999, Op::Read)]),
        (2_000, vec![(2, 2_000, Op::Read), (3, 2_000, Op::Read)]),
    ];
    let mut script = Script::new();
    for (watermark, records) in &groups {
        script = script.watermark(*watermark).records(records);
    }
    let v = |x: &str| Some(x.to_string());
    let l = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut expected: Vec<Seen> = vec![
        // Written at 1000: value a, list x, map 1 (touched at 1400); map 2 at 1200, list y at 1300.
        (1, 1_400, v("a"), l(&["x", "y"]), vec![1, 2]),
        (2, 1_499, v("b"), l(&[]), vec![]),
        (1, 1_500, None, l(&["y"]), vec![1, 2]),
        (1, 1_700, None, l(&["y"]), vec![1]),
        (1, 1_800, None, l(&[]), vec![1]),
        (1, 1_900, None, l(&[]), vec![]),
        (2, 1_999, v("c"), l(&[]), vec![]),
        (2, 2_000, None, l(&[]), vec![]),
        (3, 2_000, None, l(&[]), vec![]),
    ];
    expected.sort();
    for workers in [1, 2] {
        let script = script.clone();
        let seen = run_workers(workers, move |p, capture| {
            p.source("ops", script.clone())
                .event_time(
                    |r: &TtlRec| r.1,
                    Watermarks::ascending().quantum(Duration::from_millis(1)),
                )
                .key_by("by_key", |r| r.0)
                .process("ttl", TtlProbe)
                .main
                .sink("out", capture.sink());
        });
        assert_eq!(seen, expected, "{workers} workers");
    }
}

// ---------------------------------------------------------------------------
// Side outputs
// ---------------------------------------------------------------------------

/// (key, value, event time)
type Val = (u32, u64, u64);

/// Even values to the main output, odd ones to the side output; values
/// divisible by 5 set a timer that reports on the side output.
struct Splitter;

impl ProcessFunction<u32, Val> for Splitter {
    type State = ();
    type Out = (u32, u64);
    type Side = String;

    fn on_record(&mut self, ctx: &mut Context<'_, u32, (u32, u64), String>, _: &mut (), r: Val) {
        if r.1.is_multiple_of(2) {
            ctx.output((r.0, r.1));
        } else {
            ctx.side(format!("odd {} {}", r.0, r.1));
        }
        if r.1.is_multiple_of(5) {
            ctx.register_event_timer(r.2);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, (u32, u64), String>, _: &mut (), time: u64) {
        let key = *ctx.key();
        ctx.side(format!("timer {key} {time}"));
    }
}

#[test]
fn side_outputs_carry_what_was_sent() {
    let mut rng = SplitMix64::new(11);
    let records: Vec<Val> = (0..300u64)
        .map(|i| (rng.below(4) as u32, rng.below(1_000), i * 10))
        .collect();
    let mut main: Vec<(u32, u64)> = records
        .iter()
        .filter(|r| r.1.is_multiple_of(2))
        .map(|r| (r.0, r.1))
        .collect();
    main.sort();
    let mut side: Vec<String> = records
        .iter()
        .filter(|r| r.1 % 2 == 1)
        .map(|r| format!("odd {} {}", r.0, r.1))
        .collect();
    let timers: BTreeSet<(u32, u64)> = records
        .iter()
        .filter(|r| r.1.is_multiple_of(5))
        .map(|r| (r.0, r.2))
        .collect();
    side.extend(timers.iter().map(|(k, t)| format!("timer {k} {t}")));
    side.sort();
    assert!(!main.is_empty() && side.len() > timers.len() && !timers.is_empty());
    let script = Script::new().records(&records);
    for workers in [1, 2] {
        // One run; each output tagged with the stream it came out of.
        let got: Vec<(bool, String)> = run_workers(workers, {
            let script = script.clone();
            move |p, capture| {
                let out = p
                    .source("values", script.clone())
                    .event_time(|r: &Val| r.2, Watermarks::ascending())
                    .key_by("by_key", |r| r.0)
                    .process("split", Splitter);
                out.main
                    .map(|(k, v)| (true, format!("{k} {v}")))
                    .union(out.side.map(|s| (false, s)))
                    .sink("out", capture.sink());
            }
        });
        let mut got_main: Vec<(u32, u64)> = got
            .iter()
            .filter(|(main, _)| *main)
            .map(|(_, kv)| {
                let (k, v) = kv.split_once(' ').expect("key value");
                (k.parse().expect("key"), v.parse().expect("value"))
            })
            .collect();
        got_main.sort();
        let got_side: Vec<String> = got
            .into_iter()
            .filter(|(main, _)| !*main)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(got_main, main, "{workers} workers: main output");
        assert_eq!(got_side, side, "{workers} workers: side output");
    }
}

// ---------------------------------------------------------------------------
// Processing-time timers (not deterministic: only what the wall clock
// guarantees is checked)
// ---------------------------------------------------------------------------

struct Wall;

impl ProcessFunction<u32, Rec> for Wall {
    type State = ();
    type Out = String;
    type Side = ();

    fn on_record(&mut self, ctx: &mut Context<'_, u32, String, ()>, _: &mut (), r: Rec) {
        let after = if r.0 == 1 {
            Duration::from_millis(20)
        } else {
            Duration::from_secs(3_600)
        };
        let at = ctx.register_processing_timer_after(after);
        if r.0 == 3 {
            assert!(ctx.delete_processing_timer(at));
        }
        ctx.output(format!("record {}", r.0));
    }

    fn on_processing_timer(
        &mut self,
        ctx: &mut Context<'_, u32, String, ()>,
        _: &mut (),
        at: std::time::SystemTime,
    ) {
        assert!(at <= ctx.processing_time() || *ctx.key() == 2);
        ctx.output(format!("wall {}", ctx.key()));
    }
}

#[test]
fn processing_timers_fire_by_the_wall_clock_and_at_the_end_of_input() {
    // Key 1's timer is due 20 ms after its record, during a second in which
    // the input is silent; key 2's is due in an hour, so it fires when the
    // input ends; key 3's is deleted.
    let script = Script::new()
        .record((1u32, 0u64))
        .watermark(100)
        .idle(Duration::from_secs(1))
        .records(&[(2, 5_000), (3, 5_000)]);
    let out: Vec<String> = run_workers_timed(2, move |p, capture| {
        p.source("records", script.clone())
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .key_by("by_key", |r| r.0)
            .process("wall", Wall)
            .main
            .sink("out", capture.sink());
    })
    .into_iter()
    .map(|(_, s)| s)
    .collect();
    let at = |s: &str| out.iter().position(|o| o == s);
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["record 1", "record 2", "record 3", "wall 1", "wall 2"],
        "arrival order: {out:?}"
    );
    assert!(
        at("record 1") < at("wall 1") && at("wall 1") < at("record 2"),
        "key 1's timer fired during the silence: {out:?}"
    );
}
