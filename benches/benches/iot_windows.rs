//! The iot job's window aggregation: per device, count/min/max/avg per 60 s
//! tumbling window, over records from the seeded generator.
//!
//! Isolates the engine's per-record cost (source, key exchange, keyed window
//! state, firing) against a hand-written single-thread loop doing the same
//! computation with a hash map on the same input. Both sides generate the
//! records (the generator is the same function), both produce the same
//! output (checked equal), so the ratio is the engine's overhead.
//!
//! Run: `cargo bench -p weir-benches --bench iot_windows` (release build).
//! Optional: `-- --events N` (default 4 000 000), `--runs R` (default 3),
//! `--quantum-ms Q` (the watermark quantum, default 100).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use weir::testing::Capture;
use weir::{RunArgs, Watermarks};
use weir_connectors::{Generation, Generator, GeneratorConfig, Reading};
use weir_operators::{Avg, Count, ExactSum, Max, Min, WindowExt, Windows};

type Row = (u64, u64, u64, u64, u64, u64); // device, start, count, min bits, max bits, avg bits

const WINDOW_MS: u64 = 60_000;

fn config(events: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        keys: 1_000,
        // In-bound disorder only: no late or malformed records, so the plain
        // loop needs no lateness logic to match the engine.
        disorder: Duration::from_millis(500),
        late_fraction: 0.0,
        malformed_fraction: 0.0,
        splits: 4,
        // 20 000 readings per second of event time: a busy fleet. Records
        // 1 ms apart would be a replay at thousands of times real speed,
        // where every 100 ms stamp quantum holds only ~100 records and
        // timely's per-timestamp progress traffic dominates.
        spacing: Duration::from_micros(50),
        ..GeneratorConfig::default()
    }
}

fn baseline(events: u64) -> Vec<Row> {
    let generator = Generator::<Reading>::new(config(events)).expect("valid config");
    let mut windows: HashMap<(u64, u64), (u64, f64, f64, ExactSum)> = HashMap::new();
    for i in 0..events {
        if let Generation::Record(r) = generator.generate(i) {
            let start = r.ts_ms - r.ts_ms % WINDOW_MS;
            let w = windows
                .entry((r.device, start))
                .or_insert_with(|| (0, f64::INFINITY, f64::NEG_INFINITY, ExactSum::default()));
            w.0 += 1;
            w.1 = w.1.min(r.value);
            w.2 = w.2.max(r.value);
            w.3.add(r.value);
        }
    }
    let mut rows: Vec<Row> = windows
        .into_iter()
        .map(|((device, start), (n, min, max, sum))| {
            let avg = sum.value() / n as f64;
            (
                device,
                start,
                n,
                min.to_bits(),
                max.to_bits(),
                avg.to_bits(),
            )
        })
        .collect();
    rows.sort_unstable();
    rows
}

fn engine(events: u64, workers: usize, quantum_ms: u64) -> Vec<Row> {
    let capture = Capture::<Row>::new();
    let sink = capture.clone();
    let generator = Generator::<Reading>::new(config(events)).expect("valid config");
    let args = RunArgs::threads(workers);
    let result = weir::run(&args, move |p| {
        p.source("readings", generator.clone())
            .event_time(
                |r: &Reading| r.ts_ms,
                Watermarks::bounded(Duration::from_secs(2))
                    .quantum(Duration::from_millis(quantum_ms)),
            )
            .key_by("by_device", |r| r.device)
            .window(
                "device_minutes",
                Windows::tumbling(Duration::from_millis(WINDOW_MS)),
                (
                    Count,
                    Min::of(|r: &Reading| r.value),
                    Max::of(|r: &Reading| r.value),
                    Avg::of(|r: &Reading| r.value),
                ),
            )
            .fired
            .map(|f| {
                let (n, min, max, avg) = f.value;
                (
                    f.key,
                    f.window.start,
                    n,
                    min.to_bits(),
                    max.to_bits(),
                    avg.to_bits(),
                )
            })
            .sink("rows", sink.sink());
    });
    if let Err(e) = result {
        panic!("the engine run failed: {e}");
    }
    let mut rows = capture.records();
    rows.sort_unstable();
    rows
}

struct Measured {
    name: String,
    micros: Histogram<u64>,
}

fn measure(
    name: &str,
    runs: usize,
    events: u64,
    expected: &[Row],
    f: impl Fn() -> Vec<Row>,
) -> Measured {
    let mut micros = Histogram::<u64>::new(3).expect("valid histogram");
    for _ in 0..runs {
        let started = Instant::now();
        let rows = f();
        let elapsed = started.elapsed();
        assert!(
            rows == expected,
            "{name}: output differs from the baseline's"
        );
        let _ = micros.record(elapsed.as_micros() as u64);
    }
    let m = Measured {
        name: name.to_string(),
        micros,
    };
    let median = m.micros.value_at_quantile(0.5) as f64 / 1e6;
    println!(
        "{:<22} median {:>7.3} s  min {:>7.3} s  max {:>7.3} s  {:>12.0} events/s",
        m.name,
        median,
        m.micros.min() as f64 / 1e6,
        m.micros.max() as f64 / 1e6,
        events as f64 / median
    );
    m
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = arg("--events", 4_000_000);
    let runs = arg("--runs", 3) as usize;
    let quantum = arg("--quantum-ms", 100);
    println!(
        "iot_windows: {events} events, 1 000 devices, 60 s tumbling windows, {runs} runs each"
    );
    let expected = baseline(events);
    println!("{} windows", expected.len());
    let base = measure("baseline (1 thread)", runs, events, &expected, || {
        baseline(events)
    });
    let one = measure("weir -w 1", runs, events, &expected, || {
        engine(events, 1, quantum)
    });
    let two = measure("weir -w 2", runs, events, &expected, || {
        engine(events, 2, quantum)
    });
    let median = |m: &Measured| m.micros.value_at_quantile(0.5) as f64;
    println!(
        "ratio weir -w 1 / baseline throughput: {:.2} (goal >= 0.5)",
        median(&base) / median(&one)
    );
    println!(
        "ratio weir -w 2 / weir -w 1 throughput: {:.2} (goal >= 1.7)",
        median(&one) / median(&two)
    );
}
