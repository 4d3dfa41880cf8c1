//! Watermark strategies and the per-split watermark they drive.
//!
//! A split's watermark is `max event time seen - bound`, rounded down to a
//! multiple of the quantum, and never goes back. The source stamps each record
//! with its split's watermark *before* the record is seen. A source holds the
//! minimum watermark over its live splits; timely combines that minimum over
//! workers. A split that has been silent for the idle timeout (processing time)
//! stops holding the source back until it produces again.
//!
//! # Far-future event times
//!
//! Every computation here saturates instead of wrapping: the bound is
//! subtracted with a floor at 0, the quantum rounds down (so a watermark
//! never exceeds the event time that raised it, and `u64::MAX` with quantum
//! 1 and bound 0 gives `u64::MAX`), durations too long for a `u64` of
//! milliseconds count as `u64::MAX` ms, and an idle source's watermark,
//! advancing by the wall clock, stops at `LAST_LIVE_WATERMARK`
//! (`u64::MAX - 1`).
//!
//! A live split's watermark stops at `u64::MAX - 1`: `u64::MAX` is the end
//! of time, which only the end of input reaches (the source's frontier
//! empties). So no *source* record is ever stamped `u64::MAX`, every stamp
//! has a watermark after it, and a window ending (or, with allowed
//! lateness, firing) at `u64::MAX` fires exactly when the input ends.
//!
//! A record's event time is taken at its word. One record stamped far in
//! the future (a `ts_ms` of `u64::MAX`, say) moves its split's watermark to
//! `that - bound`, rounded down to the quantum, for good: a watermark never
//! goes back. Records read after it on that split carry that stamp, so they
//! are late for every window ending at or before it and come out on the late
//! streams (typically the dead letters), not in their windows; and once
//! every split's watermark has gone that far, every window ending at or
//! before it fires. Other splits keep their own watermarks until then (the
//! source holds the least of them), so their records are judged as before.
//! This is what a far-future watermark means, not an overflow: nothing
//! wraps, no window fires twice, and at the end of input the watermark goes
//! to the end of time (`u64::MAX`), every window that can be represented
//! fires and the job ends. Records whose own windows cannot be represented
//! (they would end past `u64::MAX`) are the window operator's to reject (see
//! `weir_operators::window`). To keep one bad timestamp from making the
//! rest of a split late, validate event times in the extractor: returning
//! `None` (an `Option<u64>` extractor) sends the record to the dead letters
//! before it moves any watermark.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::ShowDuration;

/// Whole milliseconds of `d`, rounded down, saturating at `u64::MAX`
/// (a `Duration` can hold more milliseconds than a `u64`).
///
/// Every conversion of a configured duration to weir's millisecond times
/// goes through this, so that a huge duration means "forever" rather than
/// wrapping to a short one.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch at `at` (0 before it): the clock of
/// processing-time timers.
pub fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
}

/// How a source derives watermarks from event times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watermarks {
    bound_ms: u64,
    quantum_ms: u64,
    idle: Option<Duration>,
}

impl Watermarks {
    /// Records may arrive up to `bound` later (in event time) than the latest
    /// record seen on their split; anything older is late.
    pub fn bounded(bound: Duration) -> Self {
        Watermarks {
            bound_ms: millis(bound),
            quantum_ms: 100,
            idle: None,
        }
    }

    /// Event times never go back within a split (bound 0).
    pub fn ascending() -> Self {
        Self::bounded(Duration::ZERO)
    }

    /// Rounds stamps down to multiples of `quantum` (default 100 ms). Coarser
    /// stamps mean bigger batches for timely and fewer late records, at the
    /// cost of windows firing up to one quantum later.
    pub fn quantum(mut self, quantum: Duration) -> Self {
        self.quantum_ms = millis(quantum).max(1);
        self
    }

    /// After a split has produced nothing for `timeout` of *processing* time,
    /// it stops holding the watermark back. This is the one watermark feature
    /// that depends on wall-clock timing: records a split produces after being
    /// idle may be judged late differently from run to run.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = Some(timeout);
        self
    }

    /// The out-of-orderness bound in ms.
    pub fn bound_ms(&self) -> u64 {
        self.bound_ms
    }

    /// The quantum in ms.
    pub fn quantum_ms(&self) -> u64 {
        self.quantum_ms
    }

    /// The idle timeout, if any.
    pub fn idle(&self) -> Option<Duration> {
        self.idle
    }

    /// The watermark implied by a maximum event time: `max_event - bound`
    /// (at least 0), rounded down to a multiple of the quantum. Never more
    /// than `max_event`, for any `u64`.
    pub fn watermark_for(&self, max_event: u64) -> u64 {
        let raw = max_event.saturating_sub(self.bound_ms);
        raw - raw % self.quantum_ms
    }
}

impl std::fmt::Display for Watermarks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bounded out-of-orderness {}ms, quantum {}ms",
            self.bound_ms, self.quantum_ms
        )?;
        if let Some(idle) = self.idle {
            write!(f, ", idle timeout {}", ShowDuration(idle))?;
        }
        Ok(())
    }
}

/// The highest watermark a split reaches while its input lasts:
/// `u64::MAX - 1`. `u64::MAX`, the end of time, is the watermark of an
/// ended input (see the [module docs](self)).
pub(crate) const LAST_LIVE_WATERMARK: u64 = u64::MAX - 1;

/// The watermark of one split.
#[derive(Clone, Debug, Default)]
pub(crate) struct SplitWatermark {
    watermark: u64,
    /// Event times below this cannot raise the watermark (0: not known),
    /// so most records cost one comparison instead of a division.
    quiet_below: u64,
}

impl SplitWatermark {
    /// The current watermark: the stamp for the next record read.
    pub fn current(&self) -> u64 {
        self.watermark
    }

    /// Accounts for a record with event time `event`.
    pub fn observe(&mut self, strategy: &Watermarks, event: u64) {
        if event < self.quiet_below {
            return;
        }
        self.raise_to(strategy.watermark_for(event));
        // The next quantum step above the watermark, and the event time
        // that reaches it.
        let w = self.watermark;
        self.quiet_below = (w - w % strategy.quantum_ms)
            .saturating_add(strategy.quantum_ms)
            .saturating_add(strategy.bound_ms);
    }

    /// Raises the watermark to at least `floor` (after idleness let the
    /// source's watermark move past this split), but not to the end of
    /// time: at most [`LAST_LIVE_WATERMARK`].
    pub fn raise_to(&mut self, floor: u64) {
        let raised = self.watermark.max(floor.min(LAST_LIVE_WATERMARK));
        if raised != self.watermark {
            self.watermark = raised;
            self.quiet_below = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_table() {
        // (bound ms, quantum ms, events, expected watermark after each)
        let cases: &[(u64, u64, &[u64], &[u64])] = &[
            (0, 1, &[5, 3, 9], &[5, 5, 9]),
            (10, 1, &[5, 30, 25, 41], &[0, 20, 20, 31]),
            (10, 100, &[105, 250, 199, 1000], &[0, 200, 200, 900]),
            (0, 100, &[99, 100, 350], &[0, 100, 300]),
        ];
        for (bound, quantum, events, expected) in cases {
            let s = Watermarks::bounded(Duration::from_millis(*bound))
                .quantum(Duration::from_millis(*quantum));
            let mut w = SplitWatermark::default();
            let got: Vec<u64> = events
                .iter()
                .map(|e| {
                    w.observe(&s, *e);
                    w.current()
                })
                .collect();
            assert_eq!(&got[..], *expected, "bound {bound} quantum {quantum}");
        }
    }

    /// The shortcut in `observe` (skip events that cannot raise the
    /// watermark) agrees with taking the watermark of every event, also
    /// across raises from outside (explicit watermarks, idleness).
    #[test]
    fn observe_equals_the_max_over_every_event() {
        let mut rng = crate::rng::SplitMix64::new(7);
        for case in 0..200 {
            let bound = rng.below(50);
            let quantum = 1 + rng.below(40);
            let s = Watermarks::bounded(Duration::from_millis(bound))
                .quantum(Duration::from_millis(quantum));
            let mut w = SplitWatermark::default();
            let mut naive = 0u64;
            let mut t = rng.below(100);
            for _ in 0..300 {
                t = (t + rng.below(30)).saturating_sub(rng.below(25));
                if rng.chance(0.05) {
                    let floor = t.saturating_sub(rng.below(20));
                    w.raise_to(floor);
                    naive = naive.max(floor);
                } else {
                    w.observe(&s, t);
                    naive = naive.max(s.watermark_for(t));
                }
                assert_eq!(
                    w.current(),
                    naive,
                    "case {case} (bound {bound}, quantum {quantum})"
                );
            }
        }
    }

    const MAX: u64 = u64::MAX;
    const TWO_63: u64 = 1 << 63;

    #[test]
    fn watermarks_at_the_edges_of_time() {
        // (bound ms, quantum ms, event, expected watermark); MAX % 100 == 15,
        // MAX % 60_000 == 51_615, 2^63 % 100 == 8.
        let cases: &[(u64, u64, u64, u64)] = &[
            (0, 1, 0, 0),
            (0, 1, 1, 1),
            (0, 1, MAX, MAX),
            (0, 1, MAX - 1, MAX - 1),
            (0, 100, MAX, MAX - 15),
            (0, 100, MAX - 15, MAX - 15),
            (0, 100, MAX - 16, MAX - 115),
            (2_000, 100, MAX, MAX - 2_015),
            (0, 60_000, MAX, MAX - 51_615),
            (0, 100, TWO_63, TWO_63 - 8),
            (5, 100, TWO_63 + 5, TWO_63 - 8),
            (10, 1, 9, 0),
            (10, 1, 10, 0),
            (10, 1, 11, 1),
            (MAX, 1, MAX, 0),
            (MAX, 1, MAX - 1, 0),
            (MAX - 1, 1, MAX, 1),
            (0, MAX, MAX, MAX),
            (0, MAX, MAX - 1, 0),
            (1, MAX, MAX, 0),
        ];
        for &(bound, quantum, event, expected) in cases {
            let s = Watermarks::bounded(Duration::from_millis(bound))
                .quantum(Duration::from_millis(quantum));
            let got = s.watermark_for(event);
            assert_eq!(
                got, expected,
                "bound {bound} quantum {quantum} event {event}"
            );
            assert!(got <= event, "a watermark never passes the event time");
            // Independently: in u128, floor((event - bound)^+ / q) * q.
            let raw = (event as u128).saturating_sub(bound as u128);
            assert_eq!(got as u128, raw / quantum as u128 * quantum as u128);
        }
        // A split's watermark never goes back, whatever comes after MAX,
        // and stops below the end of time.
        let s = Watermarks::ascending().quantum(Duration::from_millis(1));
        let mut w = SplitWatermark::default();
        for (event, expected) in [
            (5, 5),
            (MAX - 2, MAX - 2),
            (MAX, MAX - 1),
            (0, MAX - 1),
            (MAX - 1, MAX - 1),
        ] {
            w.observe(&s, event);
            assert_eq!(w.current(), expected);
        }
        let mut w = SplitWatermark::default();
        w.raise_to(MAX);
        assert_eq!(w.current(), LAST_LIVE_WATERMARK);
        // A quantum that divides MAX (5) would reach it: it stops below.
        let five = Watermarks::ascending().quantum(Duration::from_millis(5));
        assert_eq!(five.watermark_for(MAX), MAX);
        let mut w = SplitWatermark::default();
        w.observe(&five, MAX);
        assert_eq!(w.current(), MAX - 1);
    }

    #[test]
    fn durations_too_long_for_u64_millis_saturate() {
        let s = Watermarks::bounded(Duration::MAX)
            .quantum(Duration::MAX)
            .idle_timeout(Duration::MAX);
        assert_eq!(s.bound_ms(), MAX);
        assert_eq!(s.quantum_ms(), MAX);
        assert_eq!(s.watermark_for(MAX), 0);
        // u64::MAX ms exactly is representable; one ms more is not.
        assert_eq!(millis(Duration::from_millis(MAX)), MAX);
        assert_eq!(
            millis(Duration::from_millis(MAX) + Duration::from_millis(1)),
            MAX
        );
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        let zero = Watermarks::ascending().quantum(Duration::ZERO);
        assert_eq!(zero.quantum_ms(), 1, "a zero quantum counts as 1 ms");
    }
}
