//! Benches live in `benches/`; see each file for what it isolates. This
//! library holds what several of them share: the iot window computation's
//! output row and its hand-written accumulator, timing and the ratio lines,
//! flags, and starting the local Kafka broker.

pub mod nexmark;

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
    /// One run that took `took` (a side that did not finish is recorded at
    /// its deadline).
    pub fn once(name: &str, took: Duration) -> Measured {
        let mut micros = Histogram::<u64>::new(3).expect("valid histogram");
        let _ = micros.record(took.as_micros() as u64);
        Measured {
            name: name.to_string(),
            micros,
        }
    }

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
    measure_timed(name, runs, events, expected, || {
        let started = Instant::now();
        let output = f();
        (output, started.elapsed())
    })
}

/// [`measure`] for a side that times itself: `f` returns its output and
/// how long the measured part took.
pub fn measure_timed<R: PartialEq>(
    name: &str,
    runs: usize,
    events: u64,
    expected: &R,
    mut f: impl FnMut() -> (R, Duration),
) -> Measured {
    let mut micros = Histogram::<u64>::new(3).expect("valid histogram");
    for _ in 0..runs {
        let (output, elapsed) = f();
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

/// One throughput figure, as the benches write it with `--json PATH` for
/// `scripts/bench.sh`'s report (one JSON object per line).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ThroughputRow {
    /// The bench (`nexmark`, `iot_windows`).
    pub bench: String,
    /// What it computed (`q5`, `iot`).
    pub case: String,
    /// Who computed it (`baseline`, `weir -w 1`, …).
    pub side: String,
    /// Worker threads per process.
    pub workers: usize,
    /// Processes.
    pub processes: usize,
    /// Whether 1 s checkpoints were on.
    pub checkpoints: bool,
    /// Events per run.
    pub events: u64,
    /// Median run time (s).
    pub median_s: f64,
    /// Fastest run (s).
    pub min_s: f64,
    /// Slowest run (s).
    pub max_s: f64,
    /// Events per second at the median.
    pub events_per_s: f64,
    /// Throughput over the baseline's, same run.
    pub vs_baseline: f64,
    /// Throughput over weir on 1 worker without checkpoints, same run.
    pub vs_one_worker: f64,
    /// The side did not finish within its deadline (the times are the
    /// deadline's).
    #[serde(default)]
    pub timed_out: bool,
}

impl ThroughputRow {
    /// The row of `m` (named `<case> <side>` or `<side>`), measured over `events`, against the baseline `base`
    /// and weir on one worker `one` (`None`: `m` is that one).
    #[allow(clippy::too_many_arguments)]
    pub fn of(
        bench: &str,
        case: &str,
        m: &Measured,
        setup: (usize, usize, bool),
        events: u64,
        base: &Measured,
        one: Option<&Measured>,
    ) -> ThroughputRow {
        let (workers, processes, checkpoints) = setup;
        ThroughputRow {
            bench: bench.to_string(),
            case: case.to_string(),
            side: m
                .name
                .strip_prefix(&format!("{case} "))
                .unwrap_or(&m.name)
                .to_string(),
            workers,
            processes,
            checkpoints,
            events,
            median_s: m.median() / 1e6,
            min_s: m.micros.min() as f64 / 1e6,
            max_s: m.micros.max() as f64 / 1e6,
            events_per_s: events as f64 / (m.median() / 1e6),
            vs_baseline: base.median() / m.median(),
            vs_one_worker: one.map_or(1.0, |o| o.median() / m.median()),
            timed_out: false,
        }
    }
}

/// Writes `rows` to `path`, one JSON object per line.
pub fn write_json_lines<T: serde::Serialize>(path: &Path, rows: &[T]) {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| serde_json::to_string(r).expect("a row serializes"))
        .collect();
    std::fs::write(path, lines.join("\n") + "\n")
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}
