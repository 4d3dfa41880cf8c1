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
//! `--quantum-ms Q` (the watermark quantum, default 100), `--json PATH` (one
//! JSON object per figure, for `scripts/bench.sh`).

use std::time::Duration;

use weir_benches::{
    arg, arg_str, engine_minute_rows, measure, ratio, write_json_lines, Fields, MinuteWindows, Row,
    ThroughputRow,
};
use weir_connectors::{Generation, Generator, GeneratorConfig, Reading};

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
    let mut windows = MinuteWindows::default();
    for i in 0..events {
        if let Generation::Record(r) = generator.generate(i) {
            windows.add(r.device, r.ts_ms, r.value);
        }
    }
    windows.rows()
}

fn engine(events: u64, workers: usize, quantum_ms: u64) -> Vec<Row> {
    let generator = Generator::<Reading>::new(config(events)).expect("valid config");
    let fields = Fields {
        device: |r: &Reading| r.device,
        ts_ms: |r: &Reading| r.ts_ms,
        value: |r: &Reading| r.value,
    };
    engine_minute_rows(generator, fields, workers, quantum_ms)
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
    let base = measure("baseline", runs, events, &expected, || baseline(events));
    let one = measure("weir -w 1", runs, events, &expected, || {
        engine(events, 1, quantum)
    });
    let two = measure("weir -w 2", runs, events, &expected, || {
        engine(events, 2, quantum)
    });
    ratio(
        "weir -w 1 / baseline throughput",
        &one,
        &base,
        "goal >= 0.8",
    );
    ratio(
        "weir -w 2 / weir -w 1 throughput",
        &two,
        &one,
        "goal >= 1.7",
    );
    if let Some(path) = arg_str("--json") {
        let row = |m, workers, one| {
            ThroughputRow::of(
                "iot_windows",
                "iot",
                m,
                (workers, 1, false),
                events,
                &base,
                one,
            )
        };
        let rows = [
            row(&base, 1, None),
            row(&one, 1, None),
            row(&two, 2, Some(&one)),
        ];
        write_json_lines(std::path::Path::new(&path), &rows);
    }
}
