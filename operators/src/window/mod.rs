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

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::watermark::millis;
use weir::{Data, DeadLetter, Fields, Key, KeyedStream, Origin, Stream};

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

impl<K, V> Fired<K, V> {
    /// Emits `key`'s result `value` for `window`, firing at `fire`: it
    /// carries the window's last ms as its event time.
    pub(crate) fn emit<L>(
        emit: &mut weir::stateful::Emit<Self, L>,
        fire: u64,
        key: K,
        window: Window,
        value: V,
    ) {
        emit.output(
            weir::EventTime(fire),
            weir::EventTime(window.end.saturating_sub(1)),
            Fired { key, window, value },
        );
    }
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
            Kind::Sliding { size, slide } => self.keyed(
                name,
                fixed::FixedWindows::new(size, slide, windows.lateness, aggregator),
            ),
            Kind::Session { gap } => self.keyed(
                name,
                session::SessionWindows::new(gap, windows.lateness, aggregator),
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
mod snapshot_tests;

#[cfg(test)]
mod end_of_time_tests;
