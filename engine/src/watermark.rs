//! Watermark strategies and the per-split watermark they drive.
//!
//! A split's watermark is `max event time seen - bound`, rounded down to a
//! multiple of the quantum, and never goes back. The source stamps each record
//! with its split's watermark *before* the record is seen. A source holds the
//! minimum watermark over its live splits; timely combines that minimum over
//! workers. A split that has been silent for the idle timeout (processing time)
//! stops holding the source back until it produces again.

use std::time::Duration;

use crate::config::ShowDuration;

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
            bound_ms: bound.as_millis() as u64,
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
        self.quantum_ms = (quantum.as_millis() as u64).max(1);
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

    /// The watermark implied by a maximum event time.
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

/// The watermark of one split.
#[derive(Clone, Debug, Default)]
pub struct SplitWatermark {
    watermark: u64,
}

impl SplitWatermark {
    /// The current watermark: the stamp for the next record read.
    pub fn current(&self) -> u64 {
        self.watermark
    }

    /// Accounts for a record with event time `event`.
    pub fn observe(&mut self, strategy: &Watermarks, event: u64) {
        let w = strategy.watermark_for(event);
        if w > self.watermark {
            self.watermark = w;
        }
    }

    /// Raises the watermark to at least `floor` (after idleness let the
    /// source's watermark move past this split).
    pub fn raise_to(&mut self, floor: u64) {
        self.watermark = self.watermark.max(floor);
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
}
