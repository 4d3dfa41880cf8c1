//! weir's timestamp: one timely time with two coordinates.
//!
//! `Time { epoch, event }` is ordered by the *product* order: `a <= b` iff
//! `a.epoch <= b.epoch` and `a.event <= b.event`. Timely's progress tracking
//! over this order does the work that barrier alignment (epochs) and watermark
//! min-combining (event time) do in other engines:
//!
//! * `event` is an event-time watermark in milliseconds. A source stamps every
//!   record with its split's watermark at read time; the record's own event
//!   time travels inside the record. The watermark of a stream is the least
//!   `event` over its frontier (`watermark_of`).
//! * `epoch` is a checkpoint epoch, advanced by each source on its own wall
//!   clock. Epoch `e` is complete at an operator when no element of its input
//!   frontier has `epoch <= e` (`lowest_open_epoch`).
//!
//! A record is *late* for a window ending at `end` iff its stamp's `event >=
//! end`: the source's watermark had already passed the window when the record
//! was read. Lateness is therefore a property of the input order, not of
//! thread timing.

use std::fmt;

use differential_dataflow::lattice::Lattice;
use serde::{Deserialize, Serialize};
use timely::order::PartialOrder;
use timely::progress::frontier::AntichainRef;
use timely::progress::timestamp::{PathSummary, Refines, Timestamp};

/// A record with its event time (ms), as streams carry it internally.
pub type Timed<D> = (u64, D);

/// The timely stream under a weir [`Stream`](crate::Stream).
pub type TimedStream<'s, D> = timely::dataflow::StreamVec<'s, Time, Timed<D>>;

/// An operator output of timed records.
pub(crate) type TimedOutput<D> = timely::dataflow::operators::generic::OutputBuilder<
    Time,
    timely::container::CapacityContainerBuilder<Vec<Timed<D>>>,
>;

/// A checkpoint epoch: the interval between two checkpoints a result or a
/// record belongs to (`u64::MAX`: the input has ended).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

/// A point of event time, in milliseconds: a record's own time, a watermark,
/// or a record's *stamp* (the watermark of its split when it was read). The
/// three are the same axis and compare with one another (a record is late
/// when its stamp has passed its window's fire time); [`EventTime::END`] is
/// the end of time, which the watermark reaches when the input ends.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct EventTime(pub u64);

impl EventTime {
    /// The end of time (`u64::MAX` ms).
    pub const END: EventTime = EventTime(u64::MAX);

    /// Its milliseconds.
    pub const fn ms(self) -> u64 {
        self.0
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ms", self.0)
    }
}

/// A point in weir's two-dimensional time: a checkpoint epoch and an event-time
/// watermark in milliseconds, ordered by the product order.
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Time {
    /// The checkpoint epoch.
    pub epoch: u64,
    /// The event-time watermark, in milliseconds.
    pub event: u64,
}

impl Time {
    /// A time at `epoch` and event-time watermark `event`.
    pub const fn new(epoch: u64, event: u64) -> Self {
        Time { epoch, event }
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(epoch {}, event {} ms)", self.epoch, self.event)
    }
}

impl PartialOrder for Time {
    #[inline]
    fn less_equal(&self, other: &Self) -> bool {
        self.epoch <= other.epoch && self.event <= other.event
    }
}

impl Timestamp for Time {
    type Summary = TimeSummary;
    fn minimum() -> Self {
        Time::new(0, 0)
    }
}

impl Refines<()> for Time {
    fn to_inner(_: ()) -> Self {
        Time::minimum()
    }
    fn to_outer(self) {}
    fn summarize(_: TimeSummary) {}
}

impl Lattice for Time {
    #[inline]
    fn join(&self, other: &Self) -> Self {
        Time::new(self.epoch.max(other.epoch), self.event.max(other.event))
    }
    #[inline]
    fn meet(&self, other: &Self) -> Self {
        Time::new(self.epoch.min(other.epoch), self.event.min(other.event))
    }
}

/// How far a path through the dataflow advances a [`Time`]: a coordinate-wise
/// increment. weir's operators never advance time along an edge, so every
/// summary in practice is the zero summary; loops (if any) would use others.
/// (Public because timely's `Timestamp` names it; hidden from the docs.)
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[doc(hidden)]
pub struct TimeSummary {
    /// Epochs added along the path.
    pub epoch: u64,
    /// Milliseconds of event time added along the path.
    pub event: u64,
}

impl PartialOrder for TimeSummary {
    #[inline]
    fn less_equal(&self, other: &Self) -> bool {
        self.epoch <= other.epoch && self.event <= other.event
    }
}

impl PathSummary<Time> for TimeSummary {
    #[inline]
    fn results_in(&self, src: &Time) -> Option<Time> {
        Some(Time::new(
            src.epoch.checked_add(self.epoch)?,
            src.event.checked_add(self.event)?,
        ))
    }
    #[inline]
    fn followed_by(&self, other: &Self) -> Option<Self> {
        Some(TimeSummary {
            epoch: self.epoch.checked_add(other.epoch)?,
            event: self.event.checked_add(other.event)?,
        })
    }
}

/// The event-time watermark of a frontier: the least `event` over its
/// elements, or `u64::MAX` for the empty frontier (the input has ended).
pub(crate) fn watermark_of(frontier: AntichainRef<'_, Time>) -> u64 {
    frontier.iter().map(|t| t.event).min().unwrap_or(u64::MAX)
}

/// The lowest epoch still open in a frontier: every epoch below it is
/// complete. `u64::MAX` for the empty frontier.
pub(crate) fn lowest_open_epoch(frontier: AntichainRef<'_, Time>) -> u64 {
    frontier.iter().map(|t| t.epoch).min().unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random_time(rng: &mut SplitMix64) -> Time {
        // Small ranges so that equal coordinates are common.
        Time::new(rng.below(4), rng.below(4))
    }

    fn random_summary(rng: &mut SplitMix64) -> TimeSummary {
        TimeSummary {
            epoch: rng.below(3),
            event: rng.below(3),
        }
    }

    #[test]
    fn product_order_is_a_partial_order() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..5_000 {
            let (a, b, c) = (
                random_time(&mut rng),
                random_time(&mut rng),
                random_time(&mut rng),
            );
            assert!(a.less_equal(&a), "reflexive: {a}");
            if a.less_equal(&b) && b.less_equal(&a) {
                assert_eq!(a, b, "antisymmetric");
            }
            if a.less_equal(&b) && b.less_equal(&c) {
                assert!(a.less_equal(&c), "transitive: {a} {b} {c}");
            }
            // The product order agrees with the coordinates, independently computed.
            assert_eq!(a.less_equal(&b), a.epoch <= b.epoch && a.event <= b.event);
            // The total `Ord` used for sorting extends the partial order.
            if a.less_equal(&b) {
                assert!(a <= b, "Ord must extend the partial order: {a} {b}");
            }
        }
        // Incomparable elements exist: the order is not total.
        assert!(!Time::new(0, 1).less_equal(&Time::new(1, 0)));
        assert!(!Time::new(1, 0).less_equal(&Time::new(0, 1)));
    }

    #[test]
    fn join_and_meet_satisfy_the_lattice_laws() {
        let mut rng = SplitMix64::new(11);
        for _ in 0..5_000 {
            let (a, b, c) = (
                random_time(&mut rng),
                random_time(&mut rng),
                random_time(&mut rng),
            );
            let j = a.join(&b);
            let m = a.meet(&b);
            // Upper and lower bounds.
            assert!(a.less_equal(&j) && b.less_equal(&j));
            assert!(m.less_equal(&a) && m.less_equal(&b));
            // Least upper bound / greatest lower bound.
            if a.less_equal(&c) && b.less_equal(&c) {
                assert!(j.less_equal(&c), "join is least: {a} {b} {c}");
            }
            if c.less_equal(&a) && c.less_equal(&b) {
                assert!(c.less_equal(&m), "meet is greatest: {a} {b} {c}");
            }
            // Commutative, associative, idempotent, absorptive.
            assert_eq!(j, b.join(&a));
            assert_eq!(m, b.meet(&a));
            assert_eq!(a.join(&b.join(&c)), a.join(&b).join(&c));
            assert_eq!(a.meet(&b.meet(&c)), a.meet(&b).meet(&c));
            assert_eq!(a.join(&a), a);
            assert_eq!(a.meet(&a), a);
            assert_eq!(a.join(&a.meet(&b)), a);
            assert_eq!(a.meet(&a.join(&b)), a);
        }
    }

    #[test]
    fn summaries_advance_monotonically_and_compose() {
        let mut rng = SplitMix64::new(13);
        for _ in 0..5_000 {
            let (t, s1, s2) = (
                random_time(&mut rng),
                random_summary(&mut rng),
                random_summary(&mut rng),
            );
            let once = s1.results_in(&t).expect("small values do not overflow");
            assert!(t.less_equal(&once), "a summary never goes back in time");
            let composed = s1.followed_by(&s2).expect("no overflow");
            assert_eq!(composed.results_in(&t), s2.results_in(&once));
            // Order-preserving: t1 <= t2 implies s(t1) <= s(t2).
            let t2 = random_time(&mut rng);
            if t.less_equal(&t2) {
                assert!(s1
                    .results_in(&t)
                    .expect("no overflow")
                    .less_equal(&s1.results_in(&t2).expect("no overflow")));
            }
        }
        assert_eq!(
            TimeSummary { epoch: 1, event: 0 }.results_in(&Time::new(u64::MAX, 0)),
            None,
            "overflow yields no time"
        );
        assert_eq!(
            TimeSummary::default().results_in(&Time::new(3, 4)),
            Some(Time::new(3, 4))
        );
    }

    #[test]
    fn frontier_watermark_and_open_epoch() {
        use timely::progress::Antichain;
        let mut f = Antichain::new();
        assert_eq!(watermark_of(f.borrow()), u64::MAX);
        assert_eq!(lowest_open_epoch(f.borrow()), u64::MAX);
        f.insert(Time::new(3, 100));
        f.insert(Time::new(5, 40));
        assert_eq!(watermark_of(f.borrow()), 40);
        assert_eq!(lowest_open_epoch(f.borrow()), 3);
    }
}
