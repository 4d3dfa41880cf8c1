//! Benches live in `benches/`; see each file for what it isolates. This
//! library holds what several of them share: the iot window computation's
//! output row and its hand-written accumulator, timing and the ratio lines,
//! flags, and starting the local Kafka broker.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use weir::testing::Capture;
use weir::{Data, RunArgs, Source, Watermarks};
use weir_operators::{Avg, Count, ExactSum, Max, Min, WindowExt, Windows};

/// One iot minute window: device, start, count, and min, max, avg as bits
/// (so rows compare exactly).
pub type Row = (u64, u64, u64, u64, u64, u64);

/// The iot window length.
pub const WINDOW_MS: u64 = 60_000;

/// The hand-written side of the iot window computation: per device and
/// 60 s tumbling window, count/min/max/avg in a plain hash map.
#[derive(Default)]
pub struct MinuteWindows {
    windows: HashMap<(u64, u64), (u64, f64, f64, ExactSum)>,
}

impl MinuteWindows {
    /// Adds one reading.
    pub fn add(&mut self, device: u64, ts_ms: u64, value: f64) {
        let start = ts_ms - ts_ms % WINDOW_MS;
        let w = self
            .windows
            .entry((device, start))
            .or_insert_with(|| (0, f64::INFINITY, f64::NEG_INFINITY, ExactSum::default()));
        w.0 += 1;
        w.1 = w.1.min(value);
        w.2 = w.2.max(value);
        w.3.add(value);
    }

    /// The windows' rows, sorted.
    pub fn rows(self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .windows
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
}

/// How the engine side reads a reading's fields.
#[derive(Copy, Clone)]
pub struct Fields<R> {
    /// The device.
    pub device: fn(&R) -> u64,
    /// The event time (ms).
    pub ts_ms: fn(&R) -> u64,
    /// The value.
    pub value: fn(&R) -> f64,
}

/// The engine side of the iot window computation: `source` → event time
/// (2 s bound, `quantum_ms` quantum) → `key_by` device → 60 s tumbling
/// count/min/max/avg, on `workers` threads; the windows' rows, sorted.
pub fn engine_minute_rows<S>(
    source: S,
    fields: Fields<S::Item>,
    workers: usize,
    quantum_ms: u64,
) -> Vec<Row>
where
    S: Source + Clone + Send + Sync,
    S::Item: Data,
{
    let capture = Capture::<Row>::new();
    let sink = capture.clone();
    let args = RunArgs::threads(workers);
    let result = weir::run(&args, move |p| {
        let Fields {
            device,
            ts_ms,
            value,
        } = fields;
        p.source("readings", source.clone())
            .event_time(
                ts_ms,
                Watermarks::bounded(Duration::from_secs(2))
                    .quantum(Duration::from_millis(quantum_ms)),
            )
            .key_by("by_device", device)
            .window(
                "device_minutes",
                Windows::tumbling(Duration::from_millis(WINDOW_MS)),
                (Count, Min::of(value), Max::of(value), Avg::of(value)),
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

/// Run times of one measured side, in microseconds.
pub struct Measured {
    /// What ran.
    pub name: String,
    /// One value per run.
    pub micros: Histogram<u64>,
}

impl Measured {
    /// The median run time in microseconds.
    pub fn median(&self) -> f64 {
        self.micros.value_at_quantile(0.5) as f64
    }
}

/// Runs `f` `runs` times, checks each output equals `expected`, and prints
/// the median, min and max time and the median throughput.
pub fn measure<R: PartialEq>(
    name: &str,
    runs: usize,
    events: u64,
    expected: &R,
    f: impl Fn() -> R,
) -> Measured {
    let mut micros = Histogram::<u64>::new(3).expect("valid histogram");
    for _ in 0..runs {
        let started = Instant::now();
        let output = f();
        let elapsed = started.elapsed();
        assert!(
            output == *expected,
            "{name}: output differs from the baseline's"
        );
        let _ = micros.record(elapsed.as_micros() as u64);
    }
    let m = Measured {
        name: name.to_string(),
        micros,
    };
    println!(
        "{:<28} median {:>7.3} s  min {:>7.3} s  max {:>7.3} s  {:>12.0} events/s",
        m.name,
        m.median() / 1e6,
        m.micros.min() as f64 / 1e6,
        m.micros.max() as f64 / 1e6,
        events as f64 / (m.median() / 1e6)
    );
    m
}

/// Prints `what` as the throughput ratio of `fast` over `slow` (a ratio of
/// medians in the same run), with its goal.
pub fn ratio(what: &str, fast: &Measured, slow: &Measured, goal: &str) -> f64 {
    let r = slow.median() / fast.median();
    println!("ratio {what}: {r:.2} ({goal})");
    r
}

/// The value of `--name N` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    arg_str(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value of `--name VALUE` on the command line.
pub fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Starts the local Kafka broker (`scripts/kafka.sh start`; a broker
/// already running is left as it is). Panics if it does not come up: the
/// Kafka benches need it.
pub fn start_kafka() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh");
    let ok = Command::new("bash")
        .arg(script)
        .arg("start")
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the Kafka broker did not start (scripts/kafka.sh start)"
    );
}
