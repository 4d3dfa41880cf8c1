//! Keyed event-time windows: tumbling, sliding (hopping) and session.
//!
//! A window operator is an assigner (which windows a record belongs to), an
//! [`Aggregator`] (what to compute) and a firing policy: a window
//! `[start, end)` fires once, when the input watermark reaches
//! `end + allowed lateness`. A record is late for a window iff the watermark
//! it was stamped with at its source had already reached `end + allowed
//! lateness`; late records come out on the `late` stream, once per window they
//! missed, never silently dropped. A bounded input closes every window at its
//! end.
//!
//! # The end of time
//!
//! Event times are `u64` milliseconds and window ends are exclusive, so the
//! latest window that can exist ends at `u64::MAX`. A record none of whose
//! windows can be represented, or only some of them, goes to the job's dead
//! letters ([`Pipeline::dead_letters`](weir::Pipeline::dead_letters)), once,
//! with a reason naming the limit; the window operator routes it there
//! itself, so a job needs no extra step. Precisely:
//!
//! * **tumbling and sliding**: a window `[start, start + size)` with
//!   `start + size > u64::MAX` does not exist. A record belonging to such a
//!   window is dead-lettered, and still counts in those of its windows that
//!   do exist (as a late record counts in the windows it did not miss), so
//!   every window that exists holds all its records;
//! * **sessions**: a record at `ts` whose own window `[ts, ts + gap)` would
//!   end past `u64::MAX` is dead-lettered and joins no session;
//! * **allowed lateness** past the end of time saturates: a window whose
//!   `end + lateness` would pass `u64::MAX` fires when the watermark reaches
//!   `u64::MAX`, that is, when the input ends.
//!
//! Such a dead letter's origin is an [`Origin::Operator`] of kind
//! `out_of_range`, naming the operator and the record's event time (as JSON
//! `{"operator": {"name": …, "kind": "out_of_range", "event_time": …, …}}`),
//! not `late`: the record is refused whatever the
//! watermark, so this refusal is neither on the `late` stream nor in the
//! job's late count (a sliding record late for windows of it that do exist is
//! late for those). Its reason starts with `event time <ts> ms:` and names the
//! window or session that cannot be represented. A record with an extreme
//! event time also moves its split's watermark (see [`weir::watermark`]):
//! records read after it on that split may be late.
//!
//! ```
//! use std::time::Duration;
//! use weir::testing::{run_workers, Script};
//! use weir::Watermarks;
//! use weir_operators::{Count, WindowExt, Windows};
//!
//! // (sensor, event time ms)
//! let script = Script::new().records(&[(1u32, 100u64), (1, 900), (2, 950), (1, 1_100)]);
//! let fired = run_workers(2, move |p, capture| {
//!     let w = p
//!         .source("readings", script.clone())
//!         .event_time(|r: &(u32, u64)| r.1, Watermarks::ascending())
//!         .key_by("by_sensor", |r| r.0)
//!         .window("per_second", Windows::tumbling(Duration::from_secs(1)), Count);
//!     w.fired
//!         .map(|f| (f.key, f.window.start, f.value))
//!         .sink("out", capture.sink());
//! });
//! assert_eq!(fired, vec![(1, 0, 2), (1, 1_000, 1), (2, 0, 1)]);
//! ```

mod assign;
mod fixed;
mod session;

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::watermark::millis;
use weir::{Data, DeadLetter, FastMap, Fields, Key, KeyedStream, Origin, Stream};

pub use assign::{sliding_windows, Window};

use crate::aggregate::Aggregator;

/// The result of one window for one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fired<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// The aggregate.
    pub value: V,
}

/// A record that arrived after a window it belonged to had closed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Late<K, T> {
    /// The key.
    pub key: K,
    /// The window it missed.
    pub window: Window,
    /// The record.
    pub record: T,
    /// The watermark it was stamped with at its source (ms).
    pub watermark: u64,
}

impl<K, T: Serialize> Late<K, T> {
    /// A dead letter for this late record, naming the window operator.
    pub fn into_dead_letter(self, operator: &str) -> DeadLetter {
        DeadLetter {
            source: operator.to_string(),
            raw: weir::Raw::json(&self.record),
            reason: format!(
                "late: the watermark ({} ms) had passed the window's end plus allowed lateness",
                self.watermark
            ),
            origin: Origin::Operator {
                name: operator.to_string(),
                kind: "late".into(),
                event_time: None,
                watermark: Some(self.watermark),
                details: Fields::new()
                    .with("window_start", self.window.start)
                    .with("window_end", self.window.end),
            },
        }
    }
}

/// What a window logic sends on its second output: a record late for a
/// window, or one with a window that cannot be represented (dead-lettered by
/// the operator itself).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Rejected<K, T> {
    Late(Late<K, T>),
    Beyond(Beyond<T>),
}

impl<K, T> Rejected<K, T> {
    fn into_late(self) -> Option<Late<K, T>> {
        match self {
            Rejected::Late(late) => Some(late),
            Rejected::Beyond(_) => None,
        }
    }

    fn into_beyond(self) -> Option<Beyond<T>> {
        match self {
            Rejected::Beyond(beyond) => Some(beyond),
            Rejected::Late(_) => None,
        }
    }
}

/// Which window of a record would end past `u64::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Limit {
    /// A tumbling or sliding window: its start and size, and how many
    /// windows of the record exist (it was counted in those).
    Fixed {
        start: u64,
        size: u64,
        counted_in: usize,
    },
    /// The record's own session window `[ts, ts + gap)`.
    Session { gap: u64 },
}

/// A record one of whose windows cannot be represented.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Beyond<T> {
    pub(crate) record: T,
    pub(crate) event_time: u64,
    pub(crate) limit: Limit,
}

/// `u64::MAX` as the reasons name it.
const END_OF_TIME: &str = "the largest representable time (u64::MAX ms)";

impl<T: Serialize> Beyond<T> {
    /// The reason a dead letter gives for this record.
    pub(crate) fn reason(&self) -> String {
        let ts = self.event_time;
        match self.limit {
            Limit::Fixed {
                start,
                size,
                counted_in: 0,
            } => format!(
                "event time {ts} ms: the {size} ms window containing it (starting at {start} ms) would end past {END_OF_TIME}"
            ),
            Limit::Fixed {
                start,
                size,
                counted_in,
            } => format!(
                "event time {ts} ms: the {size} ms windows containing it from the one starting at {start} ms on would end past {END_OF_TIME}; the record is counted in its {counted_in} earlier window(s) only"
            ),
            Limit::Session { gap } => format!(
                "event time {ts} ms: its session window would end at {ts} + {gap} ms (the gap), past {END_OF_TIME}"
            ),
        }
    }

    /// A dead letter for this record, naming the window operator.
    pub(crate) fn into_dead_letter(self, operator: &str) -> DeadLetter {
        DeadLetter {
            source: operator.to_string(),
            reason: self.reason(),
            raw: weir::Raw::json(&self.record),
            origin: Origin::Operator {
                name: operator.to_string(),
                kind: "out_of_range".into(),
                event_time: Some(self.event_time),
                watermark: None,
                details: Fields::new(),
            },
        }
    }
}

/// A set keyed with weir's fast hasher.
pub(crate) type FastSet<K> =
    std::collections::HashSet<K, std::hash::BuildHasherDefault<weir::ids::FastHasher>>;

/// Encodes window state for a checkpoint.
pub(crate) fn encode<S: Serialize>(state: &S) -> Vec<u8> {
    // Serializing plain data into memory cannot fail.
    bincode::serialize(state).expect("weir invariant: window state serializes")
}

/// Decodes window state from a checkpoint.
pub(crate) fn decode<S: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<S, String> {
    bincode::deserialize(bytes).map_err(|e| format!("undecodable window state: {e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sliding { size: u64, slide: u64 },
    Session { gap: u64 },
}

/// Which windows, and how long after its end a window waits for late records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    kind: Kind,
    lateness: u64,
}

/// A window length: whole milliseconds, at least 1.
fn ms(d: Duration) -> u64 {
    millis(d).max(1)
}

impl Windows {
    /// Consecutive, non-overlapping windows of length `size`.
    pub fn tumbling(size: Duration) -> Self {
        Self::sliding(size, size)
    }

    /// Windows of length `size` starting every `slide` (hopping windows).
    pub fn sliding(size: Duration, slide: Duration) -> Self {
        Windows {
            kind: Kind::Sliding {
                size: ms(size),
                slide: ms(slide),
            },
            lateness: 0,
        }
    }

    /// Per key, records closer than `gap` share a window `[first, last + gap)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::testing::{run_workers, Script};
    /// use weir::Watermarks;
    /// use weir_operators::{Count, WindowExt, Windows};
    ///
    /// // (user, click time ms): two bursts for user 1, one for user 2.
    /// let script = Script::new().records(&[(1u32, 0u64), (2, 5_000), (1, 20_000), (1, 90_000)]);
    /// let sessions = run_workers(1, move |p, capture| {
    ///     p.source("clicks", script.clone())
    ///         .event_time(|c: &(u32, u64)| c.1, Watermarks::ascending())
    ///         .key_by("by_user", |c| c.0)
    ///         .window("visits", Windows::session(Duration::from_secs(30)), Count)
    ///         .fired
    ///         .map(|f| (f.key, f.window.start, f.window.end, f.value))
    ///         .sink("out", capture.sink());
    /// });
    /// assert_eq!(
    ///     sessions,
    ///     vec![(1, 0, 50_000, 2), (1, 90_000, 120_000, 1), (2, 5_000, 35_000, 1)]
    /// );
    /// ```
    pub fn session(gap: Duration) -> Self {
        Windows {
            kind: Kind::Session { gap: ms(gap) },
            lateness: 0,
        }
    }

    /// Waits `lateness` after a window's end before firing it; records stamped
    /// before `end + lateness` still count, later ones are late.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }
}

/// A window operator's outputs.
pub struct Windowed<'s, K, V, T> {
    /// One result per key and window.
    pub fired: Stream<'s, Fired<K, V>>,
    /// Late records, once per window they missed.
    pub late: Stream<'s, Late<K, T>>,
}

/// Windows on keyed streams.
pub trait WindowExt<'s, K, T> {
    /// Aggregates each key's records per window of their event time.
    /// `name` names the step (and, later, its checkpointed state). Results
    /// carry their window's last ms as event time.
    ///
    /// # Examples
    ///
    /// Sliding windows of 10 s every 5 s with 1 s allowed lateness; a record
    /// that arrives after the watermark passed its windows comes out late,
    /// once per window it missed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::testing::{run_workers, Script};
    /// use weir::Watermarks;
    /// use weir_operators::{Sum, WindowExt, Windows};
    ///
    /// // (account, amount, event time ms)
    /// let script = Script::new()
    ///     .records(&[(7u32, 5u64, 1_000u64), (7, 10, 6_000), (7, 1, 16_000)])
    ///     .watermark(20_000)
    ///     .record((7, 100, 2_000)); // far behind the watermark
    /// let (fired, late) = (
    ///     run_workers(2, {
    ///         let script = script.clone();
    ///         move |p, capture| {
    ///             let w = p
    ///                 .source("payments", script.clone())
    ///                 .event_time(|r: &(u32, u64, u64)| r.2, Watermarks::ascending())
    ///                 .key_by("by_account", |r| r.0)
    ///                 .window(
    ///                     "totals",
    ///                     Windows::sliding(Duration::from_secs(10), Duration::from_secs(5))
    ///                         .allowed_lateness(Duration::from_secs(1)),
    ///                     Sum::of(|r: &(u32, u64, u64)| r.1),
    ///                 );
    ///             w.fired.map(|f| (f.window.start, f.value)).sink("out", capture.sink());
    ///         }
    ///     }),
    ///     run_workers(2, move |p, capture| {
    ///         let w = p
    ///             .source("payments", script.clone())
    ///             .event_time(|r: &(u32, u64, u64)| r.2, Watermarks::ascending())
    ///             .key_by("by_account", |r| r.0)
    ///             .window(
    ///                 "totals",
    ///                 Windows::sliding(Duration::from_secs(10), Duration::from_secs(5))
    ///                     .allowed_lateness(Duration::from_secs(1)),
    ///                 Sum::of(|r: &(u32, u64, u64)| r.1),
    ///             );
    ///         w.late.map(|l| (l.window.start, l.record.1)).sink("late", capture.sink());
    ///     }),
    /// );
    /// assert_eq!(fired, vec![(0, 15), (5_000, 10), (10_000, 1), (15_000, 1)]);
    /// assert_eq!(late, vec![(0, 100)]);
    /// ```
    fn window<A: Aggregator<T>>(
        self,
        name: &str,
        windows: Windows,
        aggregator: A,
    ) -> Windowed<'s, K, A::Out, T>;
}

impl<'s, K: Key, T: Data> WindowExt<'s, K, T> for KeyedStream<'s, K, T> {
    fn window<A: Aggregator<T>>(
        self,
        name: &str,
        windows: Windows,
        aggregator: A,
    ) -> Windowed<'s, K, A::Out, T> {
        let (fired, rejected) = match windows.kind {
            Kind::Sliding { size, slide } => self.stateful(
                name,
                fixed::FixedWindows::new(size, slide, windows.lateness, aggregator),
            ),
            Kind::Session { gap } => self.stateful(
                name,
                session::SessionWindows {
                    gap,
                    lateness: windows.lateness,
                    aggregator,
                    sessions: FastMap::default(),
                    fires: BTreeSet::new(),
                    dirty: None,
                    _record: PhantomData,
                },
            ),
        };
        // Records with a window past the end of time go to the pipeline's
        // dead letters; late ones to the caller.
        let operator = name.to_string();
        rejected
            .clone()
            .flat_map(Rejected::into_beyond)
            .dead_letter(move |beyond| beyond.into_dead_letter(&operator));
        let late = rejected.flat_map(Rejected::into_late);
        Windowed { fired, late }
    }
}

#[cfg(test)]
mod snapshot_tests {
    //! A window operator's state survives encode → restore: a logic rebuilt
    //! from the changes of an epoch boundary behaves exactly like the
    //! original for the rest of the input.

    use std::collections::{BTreeMap, BTreeSet};
    use std::marker::PhantomData;

    use weir::rng::SplitMix64;
    use weir::stateful::{Emit, KeyedLogic};

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
                let mut changes = Vec::new();
                logic.take_changes(&mut changes);
                for (k, v) in changes {
                    shadow.insert(k, v);
                }
                logic = fresh();
                logic.track_changes(true);
                logic.restore_watermark(fired);
                for (k, v) in &shadow {
                    if let Some(v) = v {
                        logic.restore(*k, v).expect("restores");
                    }
                }
            } else if i % 97 == 0 {
                // Changes are taken at every "epoch"; the shadow is the store.
                let mut changes = Vec::new();
                logic.take_changes(&mut changes);
                for (k, v) in changes {
                    shadow.insert(k, v);
                }
            }
            logic.on_watermark(stamp, &mut emit);
            fired = fired.max(stamp);
            logic.on_record(key, ts, (key, value, ts), stamp, &mut emit);
        }
        logic.on_watermark(u64::MAX, &mut emit);
        for (at, t, v) in emit.drain_outputs() {
            out.push(format!("out {at} {t} {v:?}"));
        }
        for (at, t, v) in emit.drain_late() {
            out.push(format!("late {at} {t} {v:?}"));
        }
        out.sort();
        out
    }

    type Field = fn(&Rec) -> u64;
    type FixedLogic = FixedWindows<u32, Rec, (Count, Sum<Field>, Percentiles<Field>)>;
    type SessionLogic = SessionWindows<u32, Rec, (Count, Sum<Field>)>;

    fn fixed() -> FixedLogic {
        fn value(r: &Rec) -> u64 {
            r.1
        }
        FixedWindows::new(
            1_000,
            500,
            200,
            (
                Count,
                Sum::of(value as fn(&Rec) -> u64),
                Percentiles::of(value as fn(&Rec) -> u64),
            ),
        )
    }

    fn sessions() -> SessionLogic {
        fn value(r: &Rec) -> u64 {
            r.1
        }
        SessionWindows {
            gap: 300,
            lateness: 0,
            aggregator: (Count, Sum::of(value as fn(&Rec) -> u64)),
            sessions: weir::FastMap::default(),
            fires: BTreeSet::new(),
            dirty: None,
            _record: PhantomData,
        }
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
}

#[cfg(test)]
mod end_of_time_tests {
    //! Window logics driven directly at the edges of time: what fires, what
    //! is rejected, and with which reason.

    use std::collections::BTreeSet;
    use std::marker::PhantomData;

    use weir::stateful::{Emit, KeyedLogic};
    use weir::{DeadLetter, Fields, Origin};

    use super::fixed::FixedWindows;
    use super::session::SessionWindows;
    use super::{Fired, Limit, Rejected, Window};
    use crate::aggregate::Count;

    const MAX: u64 = u64::MAX;
    /// `MAX - MAX % 60_000`: the start of the 60 s window that would end
    /// past MAX.
    const LAST_MINUTE: u64 = 18_446_744_073_709_500_000;

    fn fixed(size: u64, slide: u64, lateness: u64) -> FixedWindows<u32, u64, Count> {
        FixedWindows::new(size, slide, lateness, Count)
    }

    fn session(gap: u64, lateness: u64) -> SessionWindows<u32, u64, Count> {
        SessionWindows {
            gap,
            lateness,
            aggregator: Count,
            sessions: weir::FastMap::default(),
            fires: BTreeSet::new(),
            dirty: None,
            _record: PhantomData,
        }
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
            logic.on_watermark(stamp, &mut emit);
            logic.on_record(1, ts, ts, stamp, &mut emit);
        }
        logic.on_watermark(MAX, &mut emit);
        assert_eq!(
            logic.next_fire(),
            None,
            "everything fired at the end of time"
        );
        let mut outcome = Outcome::default();
        for (at, t, f) in emit.drain_outputs() {
            outcome.fired.push((at, t, f.window, f.value));
        }
        for (_, _, r) in emit.drain_late() {
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
}
