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

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::{Data, DeadLetter, FastMap, Key, KeyedStream, Origin, Stream};

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
            raw: serde_json::to_string(&self.record).unwrap_or_default(),
            reason: format!(
                "late: the watermark ({} ms) had passed the window's end plus allowed lateness",
                self.watermark
            ),
            origin: Origin::Late {
                operator: operator.to_string(),
                window_start: self.window.start,
                window_end: self.window.end,
                watermark: self.watermark,
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

fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
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
        self.lateness = lateness.as_millis() as u64;
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
        let (fired, late) = match windows.kind {
            Kind::Sliding { size, slide } => self.stateful(
                name,
                fixed::FixedWindows {
                    size,
                    slide,
                    lateness: windows.lateness,
                    aggregator,
                    pending: BTreeMap::new(),
                    scratch: Vec::new(),
                    dirty: None,
                    restored_watermark: 0,
                    _record: PhantomData,
                },
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
        FixedWindows {
            size: 1_000,
            slide: 500,
            lateness: 200,
            aggregator: (
                Count,
                Sum::of(value as fn(&Rec) -> u64),
                Percentiles::of(value as fn(&Rec) -> u64),
            ),
            pending: BTreeMap::new(),
            scratch: Vec::new(),
            dirty: None,
            restored_watermark: 0,
            _record: PhantomData,
        }
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
