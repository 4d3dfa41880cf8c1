//! Window assigners: pure arithmetic from an event time to its windows.

use serde::{Deserialize, Serialize};

/// A half-open event-time interval `[start, end)` in ms.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Window {
    /// First ms in the window.
    pub start: u64,
    /// First ms after the window.
    pub end: u64,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// Appends to `out` the windows of length `size` starting every `slide` ms
/// (windows start at non-negative multiples of `slide`) that contain `ts`.
/// Tumbling windows are the case `slide == size`. Windows come out in
/// increasing order of start.
pub fn sliding_windows(ts: u64, size: u64, slide: u64, out: &mut Vec<Window>) {
    let last_start = ts - ts % slide;
    // The earliest start s with s + size > ts, rounded up to a multiple of slide.
    let earliest = (ts + 1).saturating_sub(size);
    let first_start = earliest.div_ceil(slide) * slide;
    let mut start = first_start;
    while start <= last_start {
        out.push(Window {
            start,
            end: start + size,
        });
        start += slide;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(ts: u64, size: u64, slide: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        sliding_windows(ts, size, slide, &mut out);
        out.into_iter().map(|w| (w.start, w.end)).collect()
    }

    /// (event time, size, slide, expected windows)
    type Case = (u64, u64, u64, &'static [(u64, u64)]);

    #[test]
    fn assigner_table() {
        let cases: &[Case] = &[
            // tumbling
            (0, 10, 10, &[(0, 10)]),
            (9, 10, 10, &[(0, 10)]),
            (10, 10, 10, &[(10, 20)]),
            (12_345, 1_000, 1_000, &[(12_000, 13_000)]),
            // sliding: size 10 every 5
            (0, 10, 5, &[(0, 10)]),
            (4, 10, 5, &[(0, 10)]),
            (5, 10, 5, &[(0, 10), (5, 15)]),
            (12, 10, 5, &[(5, 15), (10, 20)]),
            // sliding: size 300 every 60 (five windows once past the start)
            (
                1_000,
                300,
                60,
                &[
                    (720, 1_020),
                    (780, 1_080),
                    (840, 1_140),
                    (900, 1_200),
                    (960, 1_260),
                ],
            ),
            // slide larger than size: gaps belong to no window
            (7, 5, 10, &[]),
            (3, 5, 10, &[(0, 5)]),
        ];
        for (ts, size, slide, expected) in cases {
            assert_eq!(
                windows(*ts, *size, *slide),
                expected.to_vec(),
                "ts {ts} size {size} slide {slide}"
            );
        }
    }

    #[test]
    fn every_window_contains_the_time_and_none_is_missed() {
        for size in [1u64, 3, 10, 60] {
            for slide in [1u64, 2, 5, 10, 60] {
                for ts in 0..200u64 {
                    let got = windows(ts, size, slide);
                    // Independent brute force over all starts.
                    let expected: Vec<(u64, u64)> = (0..=ts)
                        .filter(|s| s % slide == 0 && s + size > ts)
                        .map(|s| (s, s + size))
                        .collect();
                    assert_eq!(got, expected, "ts {ts} size {size} slide {slide}");
                }
            }
        }
    }
}
