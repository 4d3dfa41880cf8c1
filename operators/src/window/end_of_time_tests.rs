//! Window logics driven directly at the edges of time: what fires, what
//! is rejected, and with which reason.

use weir::stateful::{Emit, KeyedLogic, Managed};
use weir::EventTime;
use weir::{DeadLetter, Fields, Origin};

use super::fixed::FixedWindows;
use super::session::SessionWindows;
use super::{Fired, Limit, Rejected, Window};
use crate::aggregate::Count;

const MAX: u64 = u64::MAX;
/// `MAX - MAX % 60_000`: the start of the 60 s window that would end
/// past MAX.
const LAST_MINUTE: u64 = 18_446_744_073_709_500_000;

fn fixed(size: u64, slide: u64, lateness: u64) -> Managed<u32, u64, FixedWindows<u32, u64, Count>> {
    Managed::new(FixedWindows::new(size, slide, lateness, Count))
}

fn session(gap: u64, lateness: u64) -> Managed<u32, u64, SessionWindows<u32, u64, Count>> {
    Managed::new(SessionWindows::new(gap, lateness, Count))
}

/// What a run gave: fired (emit at, event time, window, count), late
/// (window), rejected (event time, limit).
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    fired: Vec<(u64, u64, Window, u64)>,
    late: Vec<Window>,
    rejected: Vec<(u64, Limit)>,
    /// The rejected records' dead letters (operator `w`).
    dead: Vec<DeadLetter>,
}

impl Outcome {
    /// Every rejected record's dead letter is out of range at its own
    /// event time: not late, whatever its stamp. (The tests check the
    /// reasons' wording themselves.)
    fn assert_out_of_range(&self) {
        assert_eq!(self.dead.len(), self.rejected.len());
        for (d, (ts, _)) in self.dead.iter().zip(&self.rejected) {
            assert_eq!(d.source, "w");
            assert_eq!(
                d.origin,
                Origin::Operator {
                    name: "w".into(),
                    kind: "out_of_range".into(),
                    event_time: Some(*ts),
                    watermark: None,
                    details: Fields::new(),
                }
            );
            assert_eq!(d.raw, ts.to_string().as_str());
            let json = serde_json::to_value(d).expect("a dead letter serializes");
            assert_eq!(json["origin"]["operator"]["event_time"], *ts);
            assert_eq!(json["origin"]["operator"]["kind"], "out_of_range", "{json}");
        }
    }
}

/// Feeds (event time, stamp) records to key 1, then the end of time.
fn run<L>(mut logic: L, records: &[(u64, u64)]) -> Outcome
where
    L: KeyedLogic<u32, u64, Out = Fired<u32, u64>, Late = Rejected<u32, u64>>,
{
    let mut emit = Emit::new();
    for &(ts, stamp) in records {
        logic.on_watermark(EventTime(stamp), &mut emit);
        logic.on_record(1, EventTime(ts), ts, EventTime(stamp), &mut emit);
    }
    logic.on_watermark(EventTime(MAX), &mut emit);
    assert_eq!(
        logic.next_fire(),
        None,
        "everything fired at the end of time"
    );
    let mut outcome = Outcome::default();
    for (EventTime(at), EventTime(t), f) in emit.drain_outputs() {
        outcome.fired.push((at, t, f.window, f.value));
    }
    for (EventTime(_), EventTime(_), r) in emit.drain_late() {
        match r {
            Rejected::Late(l) => outcome.late.push(l.window),
            Rejected::Beyond(b) => {
                outcome.rejected.push((b.event_time, b.limit));
                outcome.dead.push(b.into_dead_letter("w"));
            }
        }
    }
    outcome.fired.sort();
    outcome
}

fn w(start: u64, end: u64) -> Window {
    Window { start, end }
}

#[test]
fn tumbling_rejects_what_would_end_past_max_and_fires_the_rest() {
    let out = run(
        fixed(60_000, 60_000, 0),
        &[
            (0, 0),
            (LAST_MINUTE - 1, 0),
            (MAX, 0),
            (MAX - 1, 0),
            (LAST_MINUTE, 0),
            (1 << 63, 0),
        ],
    );
    let last = w(LAST_MINUTE - 60_000, LAST_MINUTE);
    let mid = w(9_223_372_036_854_720_000, 9_223_372_036_854_780_000);
    assert_eq!(
        out.fired,
        vec![
            (60_000, 59_999, w(0, 60_000), 1),
            (mid.end, mid.end - 1, mid, 1),
            (LAST_MINUTE, LAST_MINUTE - 1, last, 1),
        ]
    );
    assert!(out.late.is_empty());
    let beyond = Limit::Fixed {
        start: LAST_MINUTE,
        size: 60_000,
        counted_in: 0,
    };
    assert_eq!(
        out.rejected,
        vec![(MAX, beyond), (MAX - 1, beyond), (LAST_MINUTE, beyond)]
    );
    assert_eq!(
        out.dead[0].reason,
        "event time 18446744073709551615 ms: the 60000 ms window containing it (starting at 18446744073709500000 ms) would end past the largest representable time (u64::MAX ms)"
    );
    out.assert_out_of_range();
}

#[test]
fn sliding_counts_a_record_in_the_windows_that_exist() {
    // 5 min every 1 min: at LAST_MINUTE - 1 only the earliest of the
    // five windows fits; at LAST_MINUTE none does.
    let out = run(
        fixed(300_000, 60_000, 0),
        &[(LAST_MINUTE - 1, 0), (LAST_MINUTE, 0)],
    );
    let first = w(18_446_744_073_709_200_000, LAST_MINUTE);
    assert_eq!(out.fired, vec![(LAST_MINUTE, LAST_MINUTE - 1, first, 1)]);
    assert_eq!(
        out.rejected,
        vec![
            (
                LAST_MINUTE - 1,
                Limit::Fixed {
                    start: 18_446_744_073_709_260_000,
                    size: 300_000,
                    counted_in: 1
                }
            ),
            (
                LAST_MINUTE,
                Limit::Fixed {
                    start: 18_446_744_073_709_260_000,
                    size: 300_000,
                    counted_in: 0
                }
            ),
        ]
    );
    assert!(out.dead[0]
        .reason
        .ends_with("the record is counted in its 1 earlier window(s) only"));
    assert!(out.late.is_empty());
    out.assert_out_of_range();
}

#[test]
fn out_of_range_records_are_dead_letters_not_late_ones() {
    // Stamped with the highest live watermark, after every window they
    // could have had: their refusal is still not lateness. Only the
    // sliding record's one window that exists is missed, and that is
    // the one late record.
    let stamp = MAX - 1;
    let out = run(
        fixed(60_000, 60_000, 0),
        &[(MAX, stamp), (LAST_MINUTE, stamp)],
    );
    assert!(out.late.is_empty() && out.fired.is_empty());
    assert_eq!(out.dead.len(), 2);
    out.assert_out_of_range();

    let out = run(fixed(300_000, 60_000, 0), &[(LAST_MINUTE - 1, stamp)]);
    assert_eq!(out.late, vec![w(18_446_744_073_709_200_000, LAST_MINUTE)]);
    assert_eq!(out.dead.len(), 1);
    out.assert_out_of_range();

    let out = run(session(100, 0), &[(MAX - 99, stamp), (MAX, stamp)]);
    assert!(out.late.is_empty() && out.fired.is_empty());
    assert_eq!(out.dead.len(), 2);
    out.assert_out_of_range();
    assert_eq!(
        serde_json::to_string(&out.dead[1].origin).expect("json"),
        r#"{"operator":{"name":"w","kind":"out_of_range","event_time":18446744073709551615,"watermark":null,"details":{}}}"#
    );
}

#[test]
fn lateness_past_max_saturates_and_windows_stay_apart() {
    // Both windows' end + lateness passes MAX: both fire at MAX, each
    // with its own count (they share a fire time, not a slot).
    let out = run(
        fixed(60_000, 60_000, MAX - 30_000),
        &[(10, 0), (20, 0), (60_010, 0), (LAST_MINUTE - 1, 0)],
    );
    assert_eq!(
        out.fired,
        vec![
            (MAX, 59_999, w(0, 60_000), 2),
            (MAX, 119_999, w(60_000, 120_000), 1),
            (
                MAX,
                LAST_MINUTE - 1,
                w(LAST_MINUTE - 60_000, LAST_MINUTE),
                1
            ),
        ]
    );
    // A record stamped with the watermark MAX is late even for them.
    let out = run(fixed(60_000, 60_000, MAX), &[(10, MAX)]);
    assert_eq!(out.late, vec![w(0, 60_000)]);
    assert!(out.fired.is_empty());
}

#[test]
fn sessions_near_max() {
    let gap = 100;
    let out = run(
        session(gap, 0),
        &[
            (MAX - 150, 0),
            (MAX - 100, 0),
            (MAX - 99, 0),
            (MAX, 0),
            (5, 0),
        ],
    );
    // [MAX-150, MAX-50) and [MAX-100, MAX) merge, ending exactly at MAX.
    assert_eq!(
        out.fired,
        vec![
            (105, 104, w(5, 105), 1),
            (MAX, MAX - 1, w(MAX - 150, MAX), 2)
        ]
    );
    assert_eq!(
        out.rejected,
        vec![
            (MAX - 99, Limit::Session { gap }),
            (MAX, Limit::Session { gap })
        ]
    );
    assert_eq!(
        out.dead[1].reason,
        "event time 18446744073709551615 ms: its session window would end at 18446744073709551615 + 100 ms (the gap), past the largest representable time (u64::MAX ms)"
    );
    assert!(out.late.is_empty());
    out.assert_out_of_range();
    // Lateness past MAX saturates: the session fires at the end of time.
    let out = run(session(gap, MAX), &[(7, 0), (1 << 63, 0)]);
    assert_eq!(
        out.fired,
        vec![
            (MAX, 106, w(7, 107), 1),
            (MAX, (1 << 63) + 99, w(1 << 63, (1 << 63) + 100), 1),
        ]
    );
}
