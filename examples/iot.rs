//! IoT sensor monitoring.
//!
//! Input: `device,ts_ms,value` (CSV with that header, or JSON lines); by
//! default the embedded generator (each device goes quiet one minute in five;
//! one reading in a thousand is a faulty spike). Three kinds of output rows,
//! all `kind,device,start_ms,end_ms,count,min,max,avg`:
//! - `minute`: per device and 60 s tumbling window, count/min/max/avg;
//! - `session`: per device, a session of activity (readings closer than
//!   `--session-gap`), with count/min/max/avg over the session;
//! - `alert`: a reading outside `[--min-value, --max-value]`
//!   (start = end = its time, count 1).
//!
//! Readings whose value is not a finite number (`NaN`, `inf`, `1e999`) go to
//! the dead letters, so every statistic is a number.
//!
//! Run: `cargo run --release --example iot -- --events 2000000`

mod common;

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::config::parse_duration;
use weir::Watermarks;
use weir_connectors::Reading;
use weir_operators::{Avg, Count, Max, Min, WindowExt, Windows};

/// Per-device minute statistics, sessions of activity, and out-of-range alerts.
#[derive(Parser, Debug)]
#[command(name = "iot", version)]
struct Args {
    /// Tumbling window length.
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    window: Duration,

    /// A device's session ends after this long without readings.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    session_gap: Duration,

    /// Readings below this raise an alert.
    #[arg(long, default_value_t = -20.0, allow_negative_numbers = true, value_name = "V")]
    min_value: f64,

    /// Readings above this raise an alert.
    #[arg(
        long,
        default_value_t = 100.0,
        allow_negative_numbers = true,
        value_name = "V"
    )]
    max_value: f64,

    #[command(flatten)]
    job: common::JobArgs,
}

/// One output row.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
struct Row {
    /// `minute`, `session` or `alert`.
    kind: String,
    device: u64,
    start_ms: u64,
    end_ms: u64,
    count: u64,
    min: f64,
    max: f64,
    avg: f64,
}

fn main() -> std::process::ExitCode {
    common::exit(job(Args::parse()))
}

fn job(args: Args) -> anyhow::Result<()> {
    if args.window.is_zero() || args.session_gap.is_zero() {
        anyhow::bail!("--window and --session-gap must be more than 0");
    }
    if args.min_value > args.max_value {
        anyhow::bail!("--min-value must not exceed --max-value");
    }
    let mut args = args;
    let input = args.job.input::<Reading>("iot", 1_000)?;
    args.job.prepare("iot")?;
    let output = args.job.clone();
    let bound = args.job.bound;
    let event_time = args.job.event_time();
    let (window, gap) = (args.window, args.session_gap);
    let (lo, hi) = (args.min_value, args.max_value);

    common::finish(weir::run(&args.job.run, move |p| {
        let readings = common::timed(
            p.source("readings", input.clone()),
            event_time,
            Watermarks::bounded(bound),
        );
        let alerts = readings
            .clone()
            .filter(move |r| r.value < lo || r.value > hi)
            .map(|r| Row {
                kind: "alert".into(),
                device: r.device,
                start_ms: r.ts_ms,
                end_ms: r.ts_ms,
                count: 1,
                min: r.value,
                max: r.value,
                avg: r.value,
            });
        let stats = (
            Count,
            Min::of(|r: &Reading| r.value),
            Max::of(|r: &Reading| r.value),
            Avg::of(|r: &Reading| r.value),
        );
        let by_device = readings.key_by("by_device", |r| r.device);
        let minutes = by_device
            .clone()
            .window("device_minutes", Windows::tumbling(window), stats);
        let sessions = by_device.window("device_sessions", Windows::session(gap), stats);
        let row = |kind: &'static str| {
            move |f: weir_operators::Fired<u64, (u64, f64, f64, f64)>| Row {
                kind: kind.into(),
                device: f.key,
                start_ms: f.window.start,
                end_ms: f.window.end,
                count: f.value.0,
                min: f.value.1,
                max: f.value.2,
                avg: f.value.3,
            }
        };
        minutes
            .fired
            .map(row("minute"))
            .union(sessions.fired.map(row("session")))
            .union(alerts)
            .sink(
                "rows",
                output.output(|r: &Row| r.device.to_string().into_bytes()),
            );
        minutes
            .late
            .dead_letter(|late| late.into_dead_letter("device_minutes"));
        sessions
            .late
            .dead_letter(|late| late.into_dead_letter("device_sessions"));
        p.dead_letters()
            .sink("dead_letters", output.dead_letter_sink("iot"));
    }))
}
