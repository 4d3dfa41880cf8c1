//! The operator driven directly, as the primitive drives it in stamp
//! order: what it checkpoints, and that a restore from any cut behaves
//! like the original.

use std::collections::BTreeMap;
use std::time::Duration;

use weir::rng::SplitMix64;

use weir::stateful::{KeyedLogic, Managed};
use weir::EventTime;

use super::*;
use crate::process::{ListState, MapState, ValueState};

/// (key, value, event time)
type Rec = (u32, u64, u64);

#[derive(Serialize, Deserialize)]
struct St {
    total: ValueState<u64>,
    recent: ListState<(u64, u64)>,
    buckets: MapState<u64, u64>,
    last: ValueState<u64>,
}

impl Default for St {
    fn default() -> Self {
        St {
            total: ValueState::with_ttl(Duration::from_millis(1_000)),
            recent: ListState::with_ttl(Duration::from_millis(700)),
            buckets: MapState::with_ttl(Duration::from_millis(1_500)),
            last: ValueState::with_ttl(Duration::from_millis(400)),
        }
    }
}

struct Mixed;

impl ProcessFunction<u32, Rec> for Mixed {
    type State = St;
    type Out = String;
    type Side = String;

    fn on_record(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut St, r: Rec) {
        if ctx.is_late() {
            ctx.side(format!("late {r:?}"));
            return;
        }
        *s.total.get_or_insert_with(|| 0) += r.1;
        s.recent.push((r.2, r.1));
        *s.buckets.get_or_insert_with(r.2 / 500, || 0) += 1;
        s.last.set(r.1);
        ctx.register_event_timer(r.2 + 50);
        if r.1.is_multiple_of(10) {
            ctx.output(format!("rec {} {} total={:?}", r.0, r.2, s.total.get()));
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut St, t: u64) {
        let recent: u64 = s.recent.iter().map(|(_, v)| v).sum();
        let buckets: Vec<(u64, u64)> = s.buckets.iter().map(|(k, v)| (*k, *v)).collect();
        ctx.output(format!(
            "timer {} {t} total={:?} recent={recent} buckets={buckets:?} last={:?}",
            ctx.key(),
            s.total.get(),
            s.last.get()
        ));
        if t.is_multiple_of(7) {
            ctx.register_event_timer(t + 333);
        }
    }
}

/// Stamp-ordered input: (stamp, key, event time, value).
fn input() -> Vec<(u64, u32, u64, u64)> {
    let mut rng = SplitMix64::new(3);
    let mut out: Vec<(u64, u32, u64, u64)> = (0..1_500u64)
        .map(|i| {
            let base = i * 7;
            let stamp = base.saturating_sub(300) / 100 * 100;
            let ts = if rng.chance(0.05) {
                stamp.saturating_sub(1 + rng.below(500))
            } else {
                stamp + rng.below(400)
            };
            // Key 6 goes quiet early: its state must expire, not linger.
            let key = match rng.below(7) as u32 {
                6 if i > 300 => 5,
                k => k,
            };
            (stamp, key, ts, rng.below(100))
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

type Op = Managed<u32, Rec, ProcessOperator<u32, Rec, Mixed>>;

/// Runs the input through the operator as the primitive would: each
/// stamp announced with on_watermark, its records, then the next. At
/// stamp index `cut`, moves the state into a fresh operator through
/// take_changes and restore. Returns sorted outputs and what the last
/// changes said of key 6.
fn run(cut: Option<usize>) -> (Vec<String>, Option<Option<Vec<u8>>>) {
    let fresh = || -> Op { Managed::new(ProcessOperator::new("mixed", Mixed)) };
    let mut op = fresh();
    op.track_changes(true);
    let mut store: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut key6 = None;
    let mut emit = Emit::new();
    let mut checkpoint = |op: &mut Op, store: &mut BTreeMap<u32, Vec<u8>>| {
        let mut changes = weir::stateful::Changes::new();
        op.take_changes(&mut changes);
        for (k, v) in changes.to_vec() {
            if k == 6 {
                key6 = Some(v.clone());
            }
            match v {
                Some(v) => store.insert(k, v),
                None => store.remove(&k),
            };
        }
    };
    // The watermark the operator fired through, as the primitive records it.
    let mut fired = 0;
    let records = input();
    let mut stamps: Vec<u64> = records.iter().map(|r| r.0).collect();
    stamps.dedup();
    for (i, stamp) in stamps.iter().enumerate() {
        if i.is_multiple_of(13) || Some(i) == cut {
            // As the primitive does: an activation ends with the
            // watermark past every stamp applied, then the flush.
            op.on_watermark(EventTime(*stamp), &mut emit);
            fired = fired.max(*stamp);
            checkpoint(&mut op, &mut store);
        }
        if Some(i) == cut {
            op = fresh();
            op.track_changes(true);
            op.restore_watermark(EventTime(fired));
            for (k, v) in &store {
                op.restore(*k, v).expect("restores");
            }
        }
        op.on_watermark(EventTime(*stamp), &mut emit);
        fired = fired.max(*stamp);
        for r in records.iter().filter(|r| r.0 == *stamp) {
            op.on_record(
                r.1,
                EventTime(r.2),
                (r.1, r.3, r.2),
                EventTime(r.0),
                &mut emit,
            );
        }
    }
    op.on_watermark(EventTime(20_000), &mut emit);
    checkpoint(&mut op, &mut store);
    op.on_watermark(EventTime(u64::MAX), &mut emit);
    let mut out: Vec<String> = emit
        .drain_outputs()
        .map(|(EventTime(at), EventTime(t), e)| match e {
            Emitted::Main(s) => format!("main {at} {t} {s}"),
            Emitted::Side(s) => format!("side {at} {t} {s}"),
        })
        .collect();
    out.sort();
    (out, key6)
}

#[test]
fn state_and_timers_survive_a_restore_at_any_cut() {
    let (straight, key6) = run(None);
    assert!(straight.iter().any(|s| s.starts_with("side")));
    assert!(straight.iter().any(|s| s.contains("timer")));
    assert_eq!(
        key6,
        Some(None),
        "a key whose state expired and whose timers fired is gone from the checkpoint"
    );
    for cut in [1, 40, 77, 150] {
        let restored = run(Some(cut)).0;
        let missing: Vec<&String> = straight
            .iter()
            .filter(|s| !restored.contains(s))
            .take(5)
            .collect();
        let extra: Vec<&String> = restored
            .iter()
            .filter(|s| !straight.contains(s))
            .take(5)
            .collect();
        assert!(
            restored == straight,
            "cut at stamp {cut}: missing {missing:#?}, extra {extra:#?}"
        );
    }
}

/// Each record (key, event time) sets a timer at its time; each timer
/// outputs its time and sets one `step` later (saturating), up to
/// `chain` times per key.
struct Chain {
    step: u64,
    chain: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Fired {
    count: ValueState<u32>,
}

impl ProcessFunction<u32, u64> for Chain {
    type State = Fired;
    type Out = (u32, u64, u64);
    type Side = ();

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u32, (u32, u64, u64), ()>,
        _: &mut Fired,
        ts: u64,
    ) {
        ctx.register_event_timer(ts);
    }

    fn on_timer(
        &mut self,
        ctx: &mut Context<'_, u32, (u32, u64, u64), ()>,
        s: &mut Fired,
        time: u64,
    ) {
        let n = s.count.get().copied().unwrap_or(0);
        s.count.set(n + 1);
        ctx.output((*ctx.key(), time, ctx.watermark()));
        if n + 1 < self.chain {
            ctx.register_event_timer(time.saturating_add(self.step));
        }
    }
}

/// Runs (key, event time) records at stamp 0, then the watermarks;
/// returns (key, timer time, firing watermark) in firing order.
fn chain(
    step: u64,
    chain: u32,
    records: &[(u32, u64)],
    watermarks: &[u64],
) -> Vec<(u32, u64, u64)> {
    let mut op = Managed::new(ProcessOperator::new("chain", Chain { step, chain }));
    let mut emit = Emit::new();
    op.on_watermark(EventTime(0), &mut emit);
    for (k, ts) in records {
        op.on_record(*k, EventTime(*ts), *ts, EventTime(0), &mut emit);
    }
    for w in watermarks {
        op.on_watermark(EventTime(*w), &mut emit);
    }
    assert!(op.keys.event.is_empty(), "every timer fired");
    emit.drain_outputs()
        .map(|(EventTime(_), EventTime(_), out)| match out {
            Emitted::Main(o) => o,
            Emitted::Side(()) => unreachable!("no side output"),
        })
        .collect()
}

#[test]
fn timers_at_the_end_of_time_fire_once() {
    const MAX: u64 = u64::MAX;
    // A timer fires when the watermark passes its time; MAX - 1 and MAX
    // are passed only by the end of time, where they fire in time order.
    assert_eq!(
        chain(
            0,
            1,
            &[(1, MAX), (1, MAX - 1), (2, 1 << 63), (1, 0)],
            &[1 << 63, (1 << 63) + 1, MAX - 1, MAX]
        ),
        vec![
            (1, 0, 1),
            (2, 1 << 63, (1 << 63) + 1),
            (1, MAX - 1, MAX),
            (1, MAX, MAX)
        ]
    );
    // A saturating chain reaches MAX and stops there (it would
    // otherwise re-register MAX forever); one of step 0 likewise.
    assert_eq!(
        chain(4, 1_000, &[(3, MAX - 9)], &[MAX]),
        vec![
            (3, MAX - 9, MAX - 8),
            (3, MAX - 5, MAX - 4),
            (3, MAX - 1, MAX),
            (3, MAX, MAX)
        ]
    );
    assert_eq!(chain(0, 1_000, &[(3, MAX)], &[MAX]), vec![(3, MAX, MAX)]);
    // Below the end of time a chain goes on as documented.
    assert_eq!(
        chain(10, 3, &[(4, 5)], &[100]),
        vec![(4, 5, 6), (4, 15, 16), (4, 25, 26)]
    );
}

#[derive(Serialize, Deserialize)]
struct Expiring {
    value: ValueState<u64>,
}

impl Default for Expiring {
    fn default() -> Self {
        Expiring {
            value: ValueState::with_ttl(Duration::from_millis(500)),
        }
    }
}

struct Remember;

impl ProcessFunction<u32, u64> for Remember {
    type State = Expiring;
    type Out = ();
    type Side = ();

    fn on_record(&mut self, _: &mut Context<'_, u32, (), ()>, s: &mut Expiring, v: u64) {
        s.value.set(v);
    }
}

#[test]
fn expired_state_leaves_the_checkpoint() {
    let mut op = Managed::new(ProcessOperator::new("remember", Remember));
    op.track_changes(true);
    let mut emit = Emit::new();
    let mut changes = Vec::new();
    let take = |op: &mut Managed<u32, u64, ProcessOperator<u32, u64, Remember>>,
                into: &mut Vec<(u32, Option<Vec<u8>>)>| {
        let mut c = weir::stateful::Changes::new();
        op.take_changes(&mut c);
        into.extend(c.to_vec());
    };
    op.on_watermark(EventTime(1_000), &mut emit);
    op.on_record(1, EventTime(1_000), 7, EventTime(1_000), &mut emit);
    op.on_record(2, EventTime(1_000), 8, EventTime(1_000), &mut emit);
    op.on_watermark(EventTime(1_001), &mut emit);
    take(&mut op, &mut changes);
    changes.sort();
    assert_eq!(changes.len(), 2);
    assert!(
        changes.iter().all(|(_, v)| v.is_some()),
        "both keys hold a value"
    );
    // Key 2 is written again at 1200: it expires at 1700, key 1 at 1500.
    op.on_watermark(EventTime(1_200), &mut emit);
    op.on_record(2, EventTime(1_200), 9, EventTime(1_200), &mut emit);
    op.on_watermark(EventTime(1_499), &mut emit);
    changes.clear();
    take(&mut op, &mut changes);
    assert_eq!(changes.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![2]);
    op.on_watermark(EventTime(1_500), &mut emit);
    changes.clear();
    take(&mut op, &mut changes);
    assert_eq!(
        changes,
        vec![(1, None)],
        "key 1 expired and is deleted from the store"
    );
    assert_eq!(op.keys.state.len(), 1, "and from memory");
    op.on_watermark(EventTime(1_700), &mut emit);
    changes.clear();
    take(&mut op, &mut changes);
    assert_eq!(changes, vec![(2, None)]);
    assert!(op.keys.state.is_empty() && op.operator.expiries.is_empty());
}

/// Keeps a running count per key, and says itself when its state is fresh:
/// an even count is "fresh" (a wrong answer on purpose, to show whose answer
/// the operator uses).
struct SaysFresh;

impl ProcessFunction<u32, u64> for SaysFresh {
    type State = Expiring;
    type Out = ();
    type Side = ();

    fn is_fresh(&self, s: &Expiring) -> Option<bool> {
        Some(s.value.get().is_some_and(|n| n % 2 == 0))
    }

    fn on_record(&mut self, _: &mut Context<'_, u32, (), ()>, s: &mut Expiring, _: u64) {
        let n = s.value.get().copied().unwrap_or(0);
        s.value.set(n + 1);
    }
}

#[test]
fn a_function_that_tells_fresh_states_is_believed() {
    let mut op = Managed::new(ProcessOperator::new("fresh", SaysFresh));
    let mut emit = Emit::new();
    op.on_watermark(EventTime(1_000), &mut emit);
    op.on_record(1, EventTime(1_000), 0, EventTime(1_000), &mut emit);
    op.on_watermark(EventTime(1_001), &mut emit);
    assert_eq!(op.keys.state.len(), 1, "a count of 1 is not fresh: kept");
    op.on_record(1, EventTime(1_001), 0, EventTime(1_001), &mut emit);
    op.on_watermark(EventTime(1_002), &mut emit);
    assert!(
        op.keys.state.is_empty(),
        "a count of 2 is fresh by its word: dropped"
    );
}
