//! Window assigners: pure arithmetic from an event time to its windows.
//!
//! Event times are `u64` milliseconds and a window's end is exclusive, so the
//! latest window that can exist ends at `u64::MAX` (and holds times up to
//! `u64::MAX - 1`). A window that would end past it cannot be represented:
//! the assigner leaves it out and reports it, and the window operator sends
//! the record to the dead letters (see the [window module](super)). Nothing
//! here wraps, panics or loops for any event time, size or slide.

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
/// increasing order of start. A `size` or `slide` of 0 counts as 1.
///
/// Windows whose end would pass `u64::MAX` cannot be represented and are
/// not appended; the start of the earliest of them is returned (every later
/// window of `ts` ends later still). `None`: every window of `ts` was
/// appended.
pub fn sliding_windows(ts: u64, size: u64, slide: u64, out: &mut Vec<Window>) -> Option<u64> {
    let (size, slide) = (size.max(1), slide.max(1));
    let last_start = ts - ts % slide;
    // The earliest start s with s + size > ts, i.e. s >= ts - (size - 1),
    // rounded up to a multiple of slide. If that multiple is not a u64, it
    // is past `ts` anyway: no window holds `ts`.
    let earliest = ts.saturating_sub(size - 1);
    let first_start = earliest.div_ceil(slide).checked_mul(slide)?;
    let mut start = first_start;
    while start <= last_start {
        let Some(end) = start.checked_add(size) else {
            return Some(start);
        };
        out.push(Window { start, end });
        match start.checked_add(slide) {
            Some(next) => start = next,
            None => break,
        }
    }
    None
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

    const MAX: u64 = u64::MAX;
    const TWO_63: u64 = 1 << 63;
    /// The start of the last 60 s window that fits: `MAX - MAX % 60_000`
    /// (`MAX % 60_000 == 51_615`); the window starting there would end past
    /// `MAX`.
    const LAST_MINUTE: u64 = 18_446_744_073_709_500_000;

    /// Windows and the start of the first unrepresentable one.
    fn assign(ts: u64, size: u64, slide: u64) -> (Vec<(u64, u64)>, Option<u64>) {
        let mut out = Vec::new();
        let beyond = sliding_windows(ts, size, slide, &mut out);
        (out.into_iter().map(|w| (w.start, w.end)).collect(), beyond)
    }

    /// An independent oracle in `u128`: every start `k * slide <= ts` with
    /// `k * slide + size > ts`; windows ending past `u64::MAX` are the
    /// beyond ones.
    fn oracle(ts: u64, size: u64, slide: u64) -> (Vec<(u64, u64)>, Option<u64>) {
        let (ts, size, slide) = (ts as u128, size.max(1) as u128, slide.max(1) as u128);
        let first_k = (ts + 1).saturating_sub(size).div_ceil(slide);
        let mut windows = Vec::new();
        let mut beyond = None;
        let mut k = first_k;
        while k * slide <= ts {
            let (start, end) = (k * slide, k * slide + size);
            if end > MAX as u128 {
                // Later starts end later still.
                beyond = Some(start as u64);
                break;
            }
            windows.push((start as u64, end as u64));
            k += 1;
        }
        (windows, beyond)
    }

    /// (event time, size, slide, expected windows, first beyond start)
    type EdgeCase = (u64, u64, u64, &'static [(u64, u64)], Option<u64>);

    #[test]
    fn edge_values_never_wrap() {
        let cases: &[EdgeCase] = &[
            (0, 1, 1, &[(0, 1)], None),
            (1, 1, 1, &[(1, 2)], None),
            (MAX - 1, 1, 1, &[(MAX - 1, MAX)], None),
            (MAX, 1, 1, &[], Some(MAX)),
            (TWO_63, 1, 1, &[(TWO_63, TWO_63 + 1)], None),
            (
                TWO_63,
                1_000,
                1_000,
                &[(9_223_372_036_854_775_000, 9_223_372_036_854_776_000)],
                None,
            ),
            // 60 s tumbling: MAX and its neighbours are in a window ending
            // past MAX; the window before it is the last one.
            (MAX, 60_000, 60_000, &[], Some(LAST_MINUTE)),
            (MAX - 1, 60_000, 60_000, &[], Some(LAST_MINUTE)),
            (LAST_MINUTE, 60_000, 60_000, &[], Some(LAST_MINUTE)),
            (
                LAST_MINUTE - 1,
                60_000,
                60_000,
                &[(LAST_MINUTE - 60_000, LAST_MINUTE)],
                None,
            ),
            // The fraud job's 5 min / 1 min at the value that looped.
            (
                LAST_MINUTE,
                300_000,
                60_000,
                &[],
                Some(18_446_744_073_709_260_000),
            ),
            // Partly representable: the earliest window fits, four do not.
            (
                LAST_MINUTE - 1,
                300_000,
                60_000,
                &[(18_446_744_073_709_200_000, LAST_MINUTE)],
                Some(18_446_744_073_709_260_000),
            ),
            // A window may end exactly at MAX.
            (MAX - 1, MAX, MAX, &[(0, MAX)], None),
            (MAX, MAX, MAX, &[], Some(MAX)),
            (MAX, MAX, 1, &[], Some(1)),
            (MAX - 1, MAX, 1, &[(0, MAX)], Some(1)),
            // Slide larger than size: MAX may fall in a gap (no window at
            // all, and none beyond), or in the last window, ending at MAX.
            (MAX, 5, 10, &[], None),
            (MAX - 1, 5, 10, &[(MAX - 5, MAX)], None),
            (MAX, 3, MAX, &[], Some(MAX)),
            (2, 3, MAX, &[(0, 3)], None),
            // Zero size or slide counts as 1.
            (MAX, 0, 0, &[], Some(MAX)),
            (7, 0, 0, &[(7, 8)], None),
        ];
        for (ts, size, slide, windows, beyond) in cases {
            let got = assign(*ts, *size, *slide);
            assert_eq!(
                got,
                (windows.to_vec(), *beyond),
                "ts {ts} size {size} slide {slide}"
            );
            assert_eq!(got, oracle(*ts, *size, *slide), "oracle disagrees");
        }
    }

    #[test]
    fn near_every_boundary_the_oracle_agrees() {
        // Sizes and slides that do not divide u64::MAX (nor 2^63), and some
        // that do (1, 3, 5, 15, 17 divide MAX).
        let shapes = [
            (60_000u64, 60_000u64),
            (300_000, 60_000),
            (1_100, 400),
            (300, 700),
            (7, 7),
            (17, 5),
            (1, 1),
            (3, 3),
            (1_000, 1),
        ];
        for (size, slide) in shapes {
            let last_fit = MAX - size; // the largest start whose end fits
            let mut times = vec![0, 1, 2, TWO_63 - 1, TWO_63, TWO_63 + 1, MAX - 1, MAX];
            for anchor in [
                last_fit,
                last_fit - last_fit % slide,
                MAX - MAX % slide,
                TWO_63 - TWO_63 % slide,
                size,
                slide,
            ] {
                for d in 0..3 {
                    times.push(anchor.saturating_sub(d));
                    times.push(anchor.saturating_add(d));
                    times.push(anchor.saturating_add(size).saturating_sub(d));
                }
            }
            for ts in times {
                assert_eq!(
                    assign(ts, size, slide),
                    oracle(ts, size, slide),
                    "ts {ts} size {size} slide {slide}"
                );
            }
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
