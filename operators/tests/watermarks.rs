//! Watermarks as windows see them: per-split stamps, a lagging split holding
//! windows back, the idle timeout releasing them, and bounded inputs flushing
//! every window.
//!
//! The timed tests take a lock so that they do not compete for the (possibly
//! two) cores with each other; their margins are wide, and every time bound
//! they assert is one a slow machine can only make *easier* to meet, except
//! "a window result arrives before 1.0 s", which needs a few scheduler
//! rounds of a near-idle job.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use weir::testing::{run_workers, run_workers_timed, Script};
use weir::Watermarks;
use weir_operators::{Count, Fold, Late, Window, WindowExt, Windows};

/// (key, event time ms, id)
type Rec = (u32, u64, u64);

/// A fired window `(key, window, count)` or a late record.
type Out = Result<(u32, Window, u64), Late<u32, Rec>>;

static TIMED: Mutex<()> = Mutex::new(());

fn timed_lock() -> MutexGuard<'static, ()> {
    match TIMED.lock() {
        Ok(guard) => guard,
        // A failed timed test must not fail the others.
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn w(start: u64, end: u64) -> Window {
    Window { start, end }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Runs `script` through a keyed window counting records; fired windows and
/// late records, with their arrival times.
fn run_counts(
    workers: usize,
    script: Script<Rec>,
    strategy: Watermarks,
    windows: Windows,
) -> Vec<(Duration, Out)> {
    run_workers_timed(workers, move |p, capture| {
        let w = p
            .source("script", script.clone())
            .event_time(|r: &Rec| r.1, strategy.clone())
            .key_by("by_key", |r: &Rec| r.0)
            .window("counts", windows, Count);
        let fired = w.fired.map(|f| Ok((f.key, f.window, f.value)));
        let late = w.late.map(Err);
        fired.union(late).sink("out", capture.sink());
    })
}

fn sorted(out: &[(Duration, Out)]) -> Vec<Out> {
    let mut v: Vec<Out> = out.iter().map(|(_, o)| o.clone()).collect();
    v.sort();
    v
}

fn fired_only(out: &[Out]) -> Vec<(u32, Window, u64)> {
    out.iter()
        .filter_map(|o| o.as_ref().ok().copied())
        .collect()
}

fn late_only(out: &[Out]) -> Vec<Late<u32, Rec>> {
    out.iter()
        .filter_map(|o| o.as_ref().err().cloned())
        .collect()
}

/// (a) Lateness is judged by the stamp of the record's own split: a split
/// that lags keeps its records on time even though another split's
/// watermark is far past their window.
#[test]
fn lateness_is_judged_by_the_records_own_split() {
    // bound 1000 ms, quantum 100 ms; tumbling 1 s.
    let script = Script::new()
        // split 0, fast: stamps 0, 9000, 19000.
        .records(&[(1, 10_000, 1), (1, 20_000, 2), (1, 100, 3)])
        .split()
        // split 1, slow: stamps 0, 500, 500.
        .records(&[(1, 1_500, 4), (1, 100, 5), (1, 900, 6)]);
    let strategy = Watermarks::bounded(ms(1_000));
    for workers in [1, 2] {
        let out = sorted(&run_counts(
            workers,
            script.clone(),
            strategy.clone(),
            Windows::tumbling(ms(1_000)),
        ));
        assert_eq!(
            fired_only(&out),
            vec![
                // ids 5 and 6: on time, stamped 500 by the slow split.
                (1, w(0, 1_000), 2),
                (1, w(1_000, 2_000), 1),
                (1, w(10_000, 11_000), 1),
                (1, w(20_000, 21_000), 1),
            ],
            "{workers} workers"
        );
        // id 3 is late: its own split's watermark (19000) passed [0, 1000).
        assert_eq!(
            late_only(&out),
            vec![Late {
                key: 1,
                window: w(0, 1_000),
                record: (1, 100, 3),
                watermark: 19_000,
            }],
            "{workers} workers"
        );
    }
}

/// Explicit watermark steps raise a split's watermark; the stamp is the
/// watermark *before* the record.
#[test]
fn explicit_watermarks_raise_stamps() {
    let script = Script::new()
        .record((1, 100, 1)) // stamp 0
        .watermark(1_250) // not a multiple of the quantum: kept as is
        .record((1, 1_240, 2)) // stamp 1250 < 1400: on time in [1200, 1400)
        .record((1, 1_100, 3)) // stamp 1250 >= 1200: late for [1000, 1200)
        .watermark(700) // never goes back
        .record((1, 1_300, 4)); // stamp 1250 < 1400: on time
    for workers in [1, 2] {
        let out = sorted(&run_counts(
            workers,
            script.clone(),
            Watermarks::ascending(),
            Windows::tumbling(ms(200)),
        ));
        assert_eq!(
            fired_only(&out),
            vec![(1, w(0, 200), 1), (1, w(1_200, 1_400), 2)],
            "{workers} workers"
        );
        assert_eq!(
            late_only(&out),
            vec![Late {
                key: 1,
                window: w(1_000, 1_200),
                record: (1, 1_100, 3),
                watermark: 1_250,
            }],
            "{workers} workers"
        );
    }
}

/// A fast split: key 1, one record every 100 ms of event time, with a short
/// pause (processing time) after each.
fn fast_split(script: Script<Rec>, records: u64, pause: Duration) -> Script<Rec> {
    let mut script = script;
    for i in 0..records {
        script = script.record((1, i * 100 + 50, i));
        if !pause.is_zero() {
            script = script.idle(pause);
        }
    }
    script
}

/// (b) Without an idle timeout a split that produces nothing holds every
/// window back until it goes on.
#[test]
fn a_split_behind_holds_windows_back() {
    let _guard = timed_lock();
    let script = fast_split(Script::new(), 30, Duration::ZERO)
        .split()
        .record((2, 50, 100))
        .idle(ms(1_500))
        .record((2, 60, 101))
        .record((2, 3_150, 102));
    for workers in [1, 2] {
        let out = run_counts(
            workers,
            script.clone(),
            Watermarks::ascending(),
            Windows::tumbling(ms(200)),
        );
        let first = out
            .iter()
            .filter(|(_, o)| o.is_ok())
            .map(|(at, _)| *at)
            .min()
            .expect("windows fired");
        assert!(
            first >= ms(1_400),
            "{workers} workers: a window fired after {first:?}, while the slow split still held the watermark at 0"
        );
        // Nothing is late (the slow split's watermark stayed at 0), and every
        // window fired once.
        let mut expected: Vec<Out> = (0..15)
            .map(|j| Ok((1, w(j * 200, j * 200 + 200), 2)))
            .collect();
        expected.push(Ok((2, w(0, 200), 2)));
        expected.push(Ok((2, w(3_000, 3_200), 1)));
        expected.sort();
        assert_eq!(sorted(&out), expected, "{workers} workers");
    }
}

/// (c) With an idle timeout the silent split stops holding windows back;
/// what it produces when it comes back with an old timestamp is late.
#[test]
fn the_idle_timeout_releases_windows() {
    let _guard = timed_lock();
    let script = fast_split(Script::new(), 40, ms(40))
        .split()
        .record((2, 50, 100))
        .idle(ms(1_500))
        .record((2, 60, 101));
    let strategy = Watermarks::ascending().idle_timeout(ms(100));
    for workers in [1, 2] {
        let out = run_counts(
            workers,
            script.clone(),
            strategy.clone(),
            Windows::tumbling(ms(200)),
        );
        let first = out
            .iter()
            .filter(|(_, o)| o.is_ok())
            .map(|(at, _)| *at)
            .min()
            .expect("windows fired");
        assert!(
            first < ms(1_000),
            "{workers} workers: the first window fired after {first:?}, though the slow split was idle from ~100 ms on"
        );
        let all = sorted(&out);
        let late = late_only(&all);
        assert!(
            late.iter()
                .any(|l| l.record == (2, 60, 101) && l.window == w(0, 200) && l.watermark >= 200),
            "{workers} workers: the record the idle split sent after resuming, at t=60, should be late for [0, 200); late: {late:?}"
        );
        assert!(
            fired_only(&all).contains(&(2, w(0, 200), 1)),
            "{workers} workers: key 2's first window should hold only the record sent before the pause: {all:?}"
        );
    }
}

/// When every split is idle the watermark may move with processing time, but
/// not faster: after ~1 s of silence a record 30 s ahead in event time is
/// still on time. (The source computes `time.event + elapsed since all idle`
/// on every activation, with `time.event` already advanced by the previous
/// activation, so the watermark grows quadratically: about 100 s per second.)
#[test]
fn all_idle_watermark_moves_no_faster_than_processing_time() {
    let _guard = timed_lock();
    let script = Script::new()
        .record((1, 0, 1))
        .idle(ms(1_000))
        .record((1, 30_000, 2))
        .record((1, 30_100, 3));
    let strategy = Watermarks::ascending().idle_timeout(ms(100));
    for workers in [1, 2] {
        let started = Instant::now();
        let out = run_counts(
            workers,
            script.clone(),
            strategy.clone(),
            Windows::tumbling(ms(1_000)),
        );
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let all = sorted(&out);
        for l in late_only(&all) {
            assert!(
                l.watermark <= elapsed_ms,
                "{workers} workers: a record was stamped with watermark {} ms, but the split's watermark was 0 and only {elapsed_ms} ms of processing time passed: {l:?}",
                l.watermark
            );
        }
        if elapsed_ms < 25_000 {
            assert_eq!(
                all,
                vec![Ok((1, w(0, 1_000), 1)), Ok((1, w(30_000, 31_000), 2))],
                "{workers} workers, run took {elapsed_ms} ms"
            );
        }
    }
}

/// (d) A bounded input closes every window at its end, however far past the
/// last watermark the windows are (and allowed lateness does not keep them
/// open).
#[test]
fn a_bounded_input_flushes_every_window() {
    // bound 1 hour: every stamp is 0.
    let strategy = Watermarks::bounded(Duration::from_secs(3_600));
    let mut records = Vec::new();
    for i in 0..=10u64 {
        records.push((1, i * 10_000, i));
        records.push((2, i * 10_000 + 999, 100 + i));
    }
    // A session for key 3, far in the future: [500_000, 500_900).
    records.push((3, 500_000, 200));
    records.push((3, 500_400, 201));
    let script = Script::new()
        .records(&records[..12])
        .split()
        .records(&records[12..]);

    for workers in [1, 2, 4] {
        let out = sorted(&run_counts(
            workers,
            script.clone(),
            strategy.clone(),
            Windows::tumbling(ms(1_000)).allowed_lateness(Duration::from_secs(60)),
        ));
        let mut expected: Vec<Out> = Vec::new();
        for i in 0..=10u64 {
            let start = i * 10_000;
            // Keys 1 and 2 share each window.
            expected.push(Ok((1, w(start, start + 1_000), 1)));
            expected.push(Ok((2, w(start, start + 1_000), 1)));
        }
        expected.push(Ok((3, w(500_000, 501_000), 2)));
        expected.sort();
        assert_eq!(out, expected, "tumbling, {workers} workers");

        let script = script.clone();
        let strategy = strategy.clone();
        let sessions = run_workers(workers, move |p, capture| {
            let w = p
                .source("script", script.clone())
                .event_time(|r: &Rec| r.1, strategy.clone())
                .key_by("by_key", |r: &Rec| r.0)
                .window(
                    "sessions",
                    Windows::session(ms(500)).allowed_lateness(Duration::from_secs(60)),
                    Fold::new(
                        Vec::new(),
                        |ids: &mut Vec<u64>, r: &Rec| {
                            ids.push(r.2);
                            ids.sort_unstable();
                        },
                        |ids: &mut Vec<u64>, other: Vec<u64>| {
                            ids.extend(other);
                            ids.sort_unstable();
                        },
                    ),
                );
            w.fired
                .map(|f| (f.key, f.window, f.value))
                .sink("out", capture.sink());
            w.late
                .map(|l| (l.key, l.window, vec![l.record.2]))
                .sink("late", capture.sink());
        });
        let mut expected_sessions: BTreeMap<(u32, Window), Vec<u64>> = BTreeMap::new();
        for i in 0..=10u64 {
            expected_sessions.insert((1, w(i * 10_000, i * 10_000 + 500)), vec![i]);
            expected_sessions.insert((2, w(i * 10_000 + 999, i * 10_000 + 1_499)), vec![100 + i]);
        }
        expected_sessions.insert((3, w(500_000, 500_900)), vec![200, 201]);
        let expected_sessions: Vec<(u32, Window, Vec<u64>)> = expected_sessions
            .into_iter()
            .map(|((k, win), ids)| (k, win, ids))
            .collect();
        assert_eq!(sessions, expected_sessions, "sessions, {workers} workers");
    }
}
