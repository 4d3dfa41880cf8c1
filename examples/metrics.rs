//! Service metrics from request logs.
//!
//! Input: `service,endpoint,status,latency_us,ts_ms` (CSV with that header, or
//! JSON lines); by default the embedded generator (service `svc-0` has a bad
//! minute every seven). Per service and 10 s tumbling window: request count,
//! error rate (status >= 500) and latency p50/p99/p99.9 from an HDR histogram.
//! Output, one line per service and window:
//! `service,window_start_ms,window_end_ms,requests,errors,error_rate,p50_us,p99_us,p999_us,max_us,alert`
//! where `alert` names the thresholds crossed (`p99`, `error-rate`), or is empty.
//! Requests with a status outside 100-599 or a latency that is not a whole
//! number of microseconds up to a day go to the dead letters.
//!
//! Run: `cargo run --release --example metrics -- --events 2000000`

mod common;

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::config::parse_duration;
use weir::Watermarks;
use weir_connectors::Request;
use weir_operators::{Count, Percentiles, Sum, WindowExt, Windows};

/// Per-service request count, error rate and latency percentiles per window, with alerts.
#[derive(Parser, Debug)]
#[command(name = "metrics", version)]
struct Args {
    /// Window length.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    window: Duration,

    /// Alert when a window's p99 latency reaches this (µs).
    #[arg(long, default_value_t = 100_000, value_name = "US")]
    max_p99_us: u64,

    /// Alert when a window's error rate (status >= 500) reaches this fraction.
    #[arg(long, default_value_t = 0.05, value_name = "F")]
    max_error_rate: f64,

    #[command(flatten)]
    job: common::JobArgs,
}

/// One service's statistics for one window.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
struct ServiceWindow {
    service: String,
    window_start_ms: u64,
    window_end_ms: u64,
    requests: u64,
    errors: u64,
    error_rate: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    max_us: u64,
    /// Thresholds crossed: `p99`, `error-rate`, `|`-separated; empty if none.
    alert: String,
}

fn main() -> std::process::ExitCode {
    common::exit(job(Args::parse()))
}

fn job(args: Args) -> anyhow::Result<()> {
    if args.window.is_zero() {
        anyhow::bail!("--window must be more than 0");
    }
    if !(0.0..=1.0).contains(&args.max_error_rate) {
        anyhow::bail!("--max-error-rate must be in [0, 1]");
    }
    let mut args = args;
    let input = args.job.input::<Request>("metrics", 20)?;
    args.job.prepare("metrics")?;
    let output = args.job.clone();
    let bound = args.job.bound;
    let event_time = args.job.event_time();
    let window = args.window;
    let (max_p99, max_error_rate) = (args.max_p99_us, args.max_error_rate);

    common::finish(weir::run(&args.job.run, move |p| {
        let stats = common::timed(
            p.source("requests", input.clone()),
            event_time,
            Watermarks::bounded(bound),
        )
        .key_by("by_service", |r| r.service.clone())
        .window(
            "service_latency",
            Windows::tumbling(window),
            (
                Count,
                Sum::of(|r: &Request| u64::from(r.status >= 500)),
                Percentiles::of(|r: &Request| r.latency_us),
            ),
        );
        stats
            .fired
            .map(move |f| {
                let (requests, errors, latency) = f.value;
                let error_rate = errors as f64 / requests as f64;
                let mut alert = Vec::new();
                if latency.p99 >= max_p99 {
                    alert.push("p99");
                }
                if error_rate >= max_error_rate {
                    alert.push("error-rate");
                }
                ServiceWindow {
                    service: f.key,
                    window_start_ms: f.window.start,
                    window_end_ms: f.window.end,
                    requests,
                    errors,
                    error_rate,
                    p50_us: latency.p50,
                    p99_us: latency.p99,
                    p999_us: latency.p999,
                    max_us: latency.max,
                    alert: alert.join("|"),
                }
            })
            .sink(
                "service_windows",
                output.output(|w: &ServiceWindow| w.service.clone().into_bytes()),
            );
        stats
            .late
            .dead_letter(|late| late.into_dead_letter("service_latency"));
        p.dead_letters()
            .sink("dead_letters", output.dead_letter_sink("metrics"));
    }))
}
