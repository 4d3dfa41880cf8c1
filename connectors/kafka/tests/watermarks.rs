//! Event time on Kafka, on the real broker: each partition has its own
//! watermark and the job's is their minimum, so a partition whose events
//! lag behind the others' loses nothing to lateness (a windowed count on 4
//! partitions equals the same events' count on 1 partition, and an
//! independent count), and a partition that goes silent holds windows open
//! until its idle timeout releases them. Event time can come from the
//! messages' Kafka timestamps instead of a field.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::{
    join_within, produce, produce_at, spawn_job, topic, wait_until, Control, Controlled, Outgoing,
};
use weir::testing::{run_workers, Capture};
use weir::{RunArgs, Watermarks};
use weir_kafka::{KafkaConfig, KafkaSource};
use weir_operators::{Count, WindowExt, Windows};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Reading {
    key: u32,
    ts_ms: u64,
}

/// A window's result: key, window start, count; or a late record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    Window(u32, u64, u64),
    Late(u32, u64),
}

const WINDOW_MS: u64 = 5_000;
const BOUND: Duration = Duration::from_secs(1);

fn message(partition: i32, r: &Reading) -> Outgoing {
    (
        partition,
        r.key.to_string().into_bytes(),
        serde_json::to_vec(r).expect("json"),
    )
}

/// Counts per key and 5 s window, computed directly from the readings.
fn expected_counts<'a>(readings: impl IntoIterator<Item = &'a Reading>) -> Vec<Out> {
    let mut counts: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for r in readings {
        *counts
            .entry((r.key, r.ts_ms / WINDOW_MS * WINDOW_MS))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((key, start), n)| Out::Window(key, start, n))
        .collect()
}

/// The windowed count of `source`'s readings, fired windows and late
/// records both, into `capture`.
fn count_windows<S>(
    p: &mut weir::Pipeline<'_>,
    source: S,
    strategy: Watermarks,
    capture: &Capture<Out>,
) where
    S: weir::Source<Item = Reading>,
{
    let counted = p
        .source("readings", source)
        .event_time(|r: &Reading| r.ts_ms, strategy)
        .key_by("by_key", |r| r.key)
        .window(
            "counts",
            Windows::tumbling(Duration::from_millis(WINDOW_MS)),
            Count,
        );
    counted
        .fired
        .map(|f| Out::Window(f.key, f.window.start, f.value))
        .union(counted.late.map(|l| Out::Late(l.key, l.record.ts_ms)))
        .sink("out", capture.sink());
}

/// The windowed count of `source`'s readings with event time from the
/// source (Kafka timestamps), not from `ts_ms`.
fn count_windows_by_source_time<S>(p: &mut weir::Pipeline<'_>, source: S, capture: &Capture<Out>)
where
    S: weir::Source<Item = Reading>,
{
    p.source("readings", source)
        .source_time(Watermarks::bounded(BOUND))
        .key_by("by_key", |r| r.key)
        .window(
            "counts",
            Windows::tumbling(Duration::from_millis(WINDOW_MS)),
            Count,
        )
        .fired
        .map(|f| Out::Window(f.key, f.window.start, f.value))
        .sink("out", capture.sink());
}

/// A bounded run of the windowed count over `topic`.
fn bounded_counts(config: &KafkaConfig, topic: &str, workers: usize) -> Vec<Out> {
    let (config, topic) = (config.clone(), topic.to_string());
    run_workers(workers, move |p, capture| {
        let source = KafkaSource::<Reading>::new(config.clone(), &topic)
            .expect("the topic exists")
            .stop_at_end(true);
        count_windows(p, source, Watermarks::bounded(BOUND), capture);
    })
}

/// Readings `0..n` of a partition starting at `base` ms, 100 ms apart with
/// up to 490 ms of disorder (within the 1 s bound).
fn readings(base: u64, n: u64, salt: u64) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            key: ((i * 7 + salt) % 4) as u32,
            ts_ms: base + i * 100 + (i * 37 + salt * 11) % 50 * 10,
        })
        .collect()
}

#[test]
fn a_lagging_partition_loses_nothing_to_lateness_and_counts_equal_one_partitions() {
    let config = support::broker();
    // Partitions 0..3 hold 20 s..60 s; partition 3 holds 0 s..30 s, all of
    // it more than the bound behind what the others' first batches reach:
    // one watermark for the whole topic would make most of it late.
    let ahead: Vec<Vec<Reading>> = (0..3).map(|p| readings(20_000, 400, p)).collect();
    let behind = readings(0, 300, 3);
    let four = topic(&config, "wm-lagging-4", 4);
    let mut messages: Vec<Outgoing> = Vec::new();
    for (p, rs) in ahead.iter().enumerate() {
        messages.extend(rs.iter().map(|r| message(p as i32, r)));
    }
    messages.extend(behind.iter().map(|r| message(3, r)));
    produce(&four, &messages);
    // The same readings on one partition, in event-time order.
    let mut all: Vec<Reading> = ahead.iter().flatten().chain(&behind).cloned().collect();
    all.sort_by_key(|r| (r.ts_ms, r.key));
    let one = topic(&config, "wm-lagging-1", 1);
    produce(&one, &all.iter().map(|r| message(0, r)).collect::<Vec<_>>());

    let expected = expected_counts(&all);
    assert!(expected.len() > 40, "many windows: {}", expected.len());
    let single = bounded_counts(&config, &one, 1);
    assert_eq!(single, expected, "one partition: the independent count");
    for workers in [1, 3] {
        let got = bounded_counts(&config, &four, workers);
        let late = got.iter().filter(|o| matches!(o, Out::Late(..))).count();
        assert_eq!(
            late, 0,
            "{workers} workers: no reading of the lagging partition is late"
        );
        assert_eq!(
            got, single,
            "{workers} workers: 4 partitions count as 1 does"
        );
    }
}

#[test]
fn a_silent_partition_holds_windows_open_until_its_idle_timeout() {
    let config = support::broker();
    let input = topic(&config, "wm-idle", 4);
    // Partition 3 has 0 s..5 s and then goes silent; 0..3 have 0 s..30 s
    // when the job starts and keep getting newer readings while it runs.
    let silent = readings(0, 50, 3);
    let live: Vec<Vec<Reading>> = (0..3).map(|p| readings(0, 300, p)).collect();
    let mut messages: Vec<Outgoing> = silent.iter().map(|r| message(3, r)).collect();
    for (p, rs) in live.iter().enumerate() {
        messages.extend(rs.iter().map(|r| message(p as i32, r)));
    }
    produce(&input, &messages);
    // The first two windows, [0 s, 5 s) and [5 s, 10 s): every reading of
    // them is in the input already.
    let expected: Vec<Out> = expected_counts(live.iter().flatten().chain(&silent))
        .into_iter()
        .filter(|o| matches!(o, Out::Window(_, start, _) if *start < 2 * WINDOW_MS))
        .collect();

    const IDLE: Duration = Duration::from_millis(1_500);
    let capture: Capture<Out> = Capture::new();
    let control = Control::default();
    let job = {
        let (config, input, capture, control) = (
            config.clone(),
            input.clone(),
            capture.clone(),
            control.clone(),
        );
        move |p: &mut weir::Pipeline<'_>| {
            let source = KafkaSource::<Reading>::new(config.clone(), &input).expect("exists");
            let source = Controlled {
                inner: source,
                control: control.clone(),
            };
            count_windows(
                p,
                source,
                Watermarks::bounded(BOUND).idle_timeout(IDLE),
                &capture,
            );
        }
    };
    let running = spawn_job(RunArgs::threads(2), job);
    // Keeps partitions 0..3 live: newer readings every 20 ms.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (input, writing) = (input.clone(), Arc::clone(&writing));
        std::thread::spawn(move || {
            let mut ts = 30_000;
            while writing.load(Ordering::SeqCst) {
                let batch: Vec<Outgoing> = (0..3)
                    .map(|p| {
                        message(
                            p,
                            &Reading {
                                key: p as u32,
                                ts_ms: ts,
                            },
                        )
                    })
                    .collect();
                produce(&input, &batch);
                ts += 100;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let fired_first_two = || {
        let got: Vec<Out> = capture
            .records()
            .into_iter()
            .filter(|o| matches!(o, Out::Window(_, start, _) if *start < 2 * WINDOW_MS))
            .collect();
        got.len() >= expected.len()
    };
    let released = Instant::now();
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the idle timeout to release the first windows",
            IDLE * 8,
            fired_first_two,
        )
    }));
    let waited_for = released.elapsed();
    // Stop the job either way (the panic, if any, comes after).
    control.stop();
    writing.store(false, Ordering::SeqCst);
    writer.join().expect("the writer");
    join_within(running, Duration::from_secs(30)).expect("the stopped job ends cleanly");
    if let Err(panic) = waited {
        std::panic::resume_unwind(panic);
    }

    let timed = capture.timed();
    let mut first_two: Vec<Out> = timed
        .iter()
        .map(|(_, o)| o.clone())
        .filter(|o| matches!(o, Out::Window(_, start, _) if *start < 2 * WINDOW_MS))
        .collect();
    first_two.sort();
    assert_eq!(
        first_two, expected,
        "the first two windows, partition 3's readings included"
    );
    assert!(
        timed.iter().all(|(_, o)| !matches!(o, Out::Late(..))),
        "nothing late"
    );
    // The live partitions passed 10 s + the bound at once; only the silent
    // one held the windows, until its idle timeout (counted from when its
    // split opened, after the capture started).
    let first = timed
        .iter()
        .map(|(at, _)| *at)
        .min()
        .expect("something fired");
    assert!(
        first >= IDLE,
        "no window fired before the silent partition's idle timeout ({first:?} < {IDLE:?})"
    );
    assert!(
        waited_for < IDLE * 4,
        "released soon after the idle timeout, not by something else ({waited_for:?})"
    );
}

#[test]
fn event_time_can_come_from_the_kafka_timestamp_instead_of_a_field() {
    let config = support::broker();
    let input = topic(&config, "wm-timestamps", 4);
    let truth: Vec<Vec<Reading>> = (0..4)
        .map(|p| readings(1_700_000_000_000, 200, p))
        .collect();
    // The values' own field says 0 for every reading: only the message
    // timestamps carry the event times.
    let mut messages: Vec<(Outgoing, i64)> = Vec::new();
    for (p, rs) in truth.iter().enumerate() {
        for r in rs {
            let zeroed = Reading {
                key: r.key,
                ts_ms: 0,
            };
            messages.push((message(p as i32, &zeroed), r.ts_ms as i64));
        }
    }
    produce_at(&input, &messages);
    let expected = expected_counts(truth.iter().flatten());
    assert!(
        expected.len() >= 16,
        "windows of every key: {}",
        expected.len()
    );
    for workers in [1, 2] {
        let (config, input) = (config.clone(), input.clone());
        let got = run_workers(workers, move |p, capture| {
            let source = KafkaSource::<Reading>::new(config.clone(), &input)
                .expect("the topic exists")
                .stop_at_end(true)
                .timestamps(true);
            count_windows_by_source_time(p, source, capture);
        });
        assert_eq!(
            got, expected,
            "{workers} workers: counts by Kafka timestamp"
        );
    }
}
