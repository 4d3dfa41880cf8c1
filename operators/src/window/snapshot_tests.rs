//! A window operator's state survives encode → restore: a logic rebuilt
//! from the changes of an epoch boundary behaves exactly like the
//! original for the rest of the input.

use std::collections::BTreeMap;

use weir::rng::SplitMix64;
use weir::stateful::{Emit, KeyedLogic, Managed};
use weir::EventTime;

use super::fixed::FixedWindows;
use super::session::SessionWindows;
use crate::aggregate::{Count, Percentiles, Sum};

type Rec = (u32, u64, u64); // key, value, event time

fn input() -> Vec<(u32, u64, u64, u64)> {
    // (key, value, event time, stamp): ascending stamps, some late.
    let mut rng = SplitMix64::new(5);
    let mut stamp = 0;
    (0..2_000u64)
        .map(|i| {
            let ts = i * 10 + rng.below(200);
            if i % 50 == 0 {
                stamp = ts.saturating_sub(100);
            }
            let ts = if rng.chance(0.05) {
                ts.saturating_sub(3_000)
            } else {
                ts
            };
            // Key 5 goes quiet early: its windows fire and it never
            // changes again, so stale state would show after a restore.
            let key = match rng.below(6) as u32 {
                5 if i > 600 => 4,
                k => k,
            };
            (key, rng.below(1_000), ts, stamp)
        })
        .collect()
}

/// Runs records through `logic`, firing at each new stamp; at record
/// `cut`, moves the state into `fresh` through take_changes/restore.
fn run<L>(mut logic: L, fresh: impl Fn() -> L, cut: Option<usize>) -> Vec<String>
where
    L: KeyedLogic<u32, Rec>,
    L::Out: std::fmt::Debug,
    L::Late: std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut emit = Emit::new();
    logic.track_changes(true);
    let mut shadow: BTreeMap<u32, Option<Vec<u8>>> = BTreeMap::new();
    // The highest watermark fired so far, as the primitive records it.
    let mut fired = 0;
    for (i, (key, value, ts, stamp)) in input().into_iter().enumerate() {
        if Some(i) == cut {
            let mut changes = weir::stateful::Changes::new();
            logic.take_changes(&mut changes);
            for (k, v) in changes.to_vec() {
                shadow.insert(k, v);
            }
            logic = fresh();
            logic.track_changes(true);
            logic.restore_watermark(EventTime(fired));
            for (k, v) in &shadow {
                if let Some(v) = v {
                    logic.restore(*k, v).expect("restores");
                }
            }
        } else if i % 97 == 0 {
            // Changes are taken at every "epoch"; the shadow is the store.
            let mut changes = weir::stateful::Changes::new();
            logic.take_changes(&mut changes);
            for (k, v) in changes.to_vec() {
                shadow.insert(k, v);
            }
        }
        logic.on_watermark(EventTime(stamp), &mut emit);
        fired = fired.max(stamp);
        logic.on_record(
            key,
            EventTime(ts),
            (key, value, ts),
            EventTime(stamp),
            &mut emit,
        );
    }
    logic.on_watermark(EventTime(u64::MAX), &mut emit);
    for (EventTime(at), EventTime(t), v) in emit.drain_outputs() {
        out.push(format!("out {at} {t} {v:?}"));
    }
    for (EventTime(at), EventTime(t), v) in emit.drain_late() {
        out.push(format!("late {at} {t} {v:?}"));
    }
    out.sort();
    out
}

type Field = fn(&Rec) -> u64;
type FixedLogic =
    Managed<u32, Rec, FixedWindows<u32, Rec, (Count, Sum<Field>, Percentiles<Field>)>>;
type SessionLogic = Managed<u32, Rec, SessionWindows<u32, Rec, (Count, Sum<Field>)>>;

fn fixed() -> FixedLogic {
    fn value(r: &Rec) -> u64 {
        r.1
    }
    Managed::new(FixedWindows::new(
        1_000,
        500,
        200,
        (
            Count,
            Sum::of(value as fn(&Rec) -> u64),
            Percentiles::of(value as fn(&Rec) -> u64),
        ),
    ))
}

fn sessions() -> SessionLogic {
    fn value(r: &Rec) -> u64 {
        r.1
    }
    Managed::new(SessionWindows::new(
        300,
        0,
        (Count, Sum::of(value as fn(&Rec) -> u64)),
    ))
}

#[test]
fn fixed_window_state_survives_a_restore() {
    let straight = run(fixed(), fixed, None);
    assert!(
        straight.iter().any(|l| l.starts_with("late")),
        "the input has late records"
    );
    // 720: key 5 has fired one window and holds one more.
    for cut in [1, 500, 720, 1_234, 1_999] {
        assert_eq!(run(fixed(), fixed, Some(cut)), straight, "cut at {cut}");
    }
}

#[test]
fn session_state_survives_a_restore() {
    let straight = run(sessions(), sessions, None);
    for cut in [1, 700, 1_500] {
        assert_eq!(
            run(sessions(), sessions, Some(cut)),
            straight,
            "cut at {cut}"
        );
    }
}
