//! The report's Markdown: how the run was made, the throughput and latency
//! tables, the plots, and each of the goals with the figure that
//! decides it.

use std::fmt::Write;
use std::path::Path;

use serde_json::Value;

use crate::figures::{flag, num, text, Figures};

/// The whole report. `images`: (title, path) of the latency plots;
/// `ratios`: the throughput-ratio chart, if drawn.
pub fn report(
    f: &Figures,
    images: &[(String, std::path::PathBuf)],
    ratios: Option<&Path>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# weir bench report\n");
    header(&mut md, &f.meta);
    let _ = writeln!(
        md,
        "How to read this report, and how each figure is measured: \
         [benches/README.md](../../benches/README.md) in the weir repository. \
         Every ratio is of two medians taken in this same run on this machine; \
         absolute rates depend on the machine and its load, ratios much less.\n"
    );
    if !f.missing.is_empty() {
        let _ = writeln!(md, "Not measured in this run: {}.\n", f.missing.join(", "));
    }
    goals(&mut md, f);
    throughput(&mut md, &f.throughput, ratios);
    latency(&mut md, &f.latency, images);
    kafka(&mut md, &f.kafka);
    md
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn header(md: &mut String, meta: &Value) {
    if meta.is_null() {
        return;
    }
    let field = |k: &str| {
        meta.get(k).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    };
    let _ = writeln!(md, "| | |\n|---|---|");
    for (label, key) in [
        ("command", "command"),
        ("mode", "mode"),
        ("started", "started"),
        ("took", "took"),
        ("commit", "commit"),
        ("machine", "machine"),
        ("CPU", "cpu"),
        ("load before", "load_before"),
        ("rustc", "rustc"),
    ] {
        if let Some(v) = field(key) {
            let _ = writeln!(md, "| {label} | {v} |");
        }
    }
    md.push('\n');
}

fn rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} K", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn find<'a>(rows: &'a [Value], case: &str, side: &str) -> Option<&'a Value> {
    rows.iter()
        .find(|r| text(r, "case") == case && text(r, "side") == side)
}

fn throughput(md: &mut String, rows: &[Value], chart: Option<&Path>) {
    let _ = writeln!(md, "## Throughput\n");
    if rows.is_empty() {
        let _ = writeln!(md, "Not measured.\n");
        return;
    }
    let _ = writeln!(
        md,
        "Events per second at the median of the runs (each run's output checked \
         equal to the baseline's); `×` columns are ratios of medians: weir on 1 \
         worker over the hand-written single-thread baseline, the others over \
         weir on 1 worker.\n"
    );
    let _ = writeln!(
        md,
        "| case | events | baseline | weir -w 1 | × baseline | weir -w 2 | × w1 | 1 s checkpoints | × w1 | 2 processes | × w1 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut cases: Vec<&str> = Vec::new();
    for r in rows {
        if !cases.contains(&text(r, "case")) {
            cases.push(text(r, "case"));
        }
    }
    for case in cases {
        let cell = |side: &str, ratio: &str| match find(rows, case, side) {
            Some(r) => (
                rate(num(r, "events_per_s")),
                format!("{:.2}", num(r, ratio)),
            ),
            None => ("–".to_string(), "–".to_string()),
        };
        let events = rows
            .iter()
            .find(|r| text(r, "case") == case)
            .map_or(0.0, |r| num(r, "events"));
        let (base, _) = cell("baseline", "vs_baseline");
        let (w1, w1x) = cell("weir -w 1", "vs_baseline");
        let (w2, w2x) = cell("weir -w 2", "vs_one_worker");
        let (ck, ckx) = cell("weir -w 1 ck 1s", "vs_one_worker");
        let (p2, p2x) = cell("weir 2 processes", "vs_one_worker");
        let _ = writeln!(
            md,
            "| {case} | {} | {base} | {w1} | {w1x} | {w2} | {w2x} | {ck} | {ckx} | {p2} | {p2x} |",
            rate(events)
        );
    }
    md.push('\n');
    if let Some(chart) = chart {
        let _ = writeln!(md, "![throughput ratios]({})\n", file_name(chart));
    }
}

fn latency(md: &mut String, rows: &[Value], images: &[(String, std::path::PathBuf)]) {
    let _ = writeln!(md, "## Latency, open loop, in process\n");
    if rows.is_empty() {
        let _ = writeln!(md, "Not measured.\n");
        return;
    }
    let _ = writeln!(
        md,
        "Offered load per worker (events are due at fixed times; latency counts from \
         the due time, so stalls show). `stage`: due time → sink; `window`: the moment \
         the watermark could pass the window's end → the result at the sink. \
         Milliseconds. *broken*: p99 over 50 ms or under 95 % of the offered rate \
         achieved; a sweep stops at its first broken rate.\n"
    );
    let _ = writeln!(
        md,
        "| pipe | offered / worker | side | achieved / s | p50 | p90 | p99 | p99.9 | max | broken |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            text(r, "pipe"),
            rate(num(r, "offered_per_worker")),
            text(r, "side"),
            rate(num(r, "achieved")),
            num(r, "p50_ms"),
            num(r, "p90_ms"),
            num(r, "p99_ms"),
            num(r, "p999_ms"),
            num(r, "max_ms"),
            if flag(r, "broken") { "yes" } else { "" }
        );
    }
    md.push('\n');
    for (title, path) in images {
        let _ = writeln!(md, "![{title}]({})\n", file_name(path));
    }
}

fn kafka(md: &mut String, rows: &[Value]) {
    let _ = writeln!(md, "## Kafka end to end\n");
    if rows.is_empty() {
        let _ = writeln!(md, "Not measured.\n");
        return;
    }
    let _ = writeln!(
        md,
        "Topic → pipe → topic on the local Apache Kafka broker, open loop; latency from \
         each message's due time to its receipt by a `read_committed` consumer, ms. \
         `direct`: the consumer reads the input topic (the floor); `plain`: a \
         hand-written rdkafka consume → produce loop; `weir`: the engine with the Kafka \
         source and sink. `inject p99`: how late the injector itself was.\n"
    );
    let _ = writeln!(
        md,
        "| pipe | offered / s | achieved / s | p50 | p90 | p99 | p99.9 | max | inject p99 | load |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            text(r, "pipe"),
            rate(num(r, "offered")),
            rate(num(r, "achieved")),
            num(r, "p50_ms"),
            num(r, "p90_ms"),
            num(r, "p99_ms"),
            num(r, "p999_ms"),
            num(r, "max_ms"),
            num(r, "inject_p99_ms"),
            text(r, "load"),
        );
    }
    md.push('\n');
}

/// One goal's line: what it asks, what was measured, met or not.
fn goal(md: &mut String, what: &str, measured: Option<(String, bool)>) {
    let (figure, verdict) = match measured {
        Some((figure, true)) => (figure, "met"),
        Some((figure, false)) => (figure, "**missed**"),
        None => ("not measured".to_string(), "–"),
    };
    let _ = writeln!(md, "| {what} | {figure} | {verdict} |");
}

fn goals(md: &mut String, f: &Figures) {
    let _ = writeln!(md, "## Goals\n\n| goal | measured | |\n|---|---|---|");
    let t = &f.throughput;
    for case in ["q0", "q1", "q2", "q7", "iot"] {
        let m = find(t, case, "weir -w 1").map(|r| {
            let x = num(r, "vs_baseline");
            (format!("{x:.2} ×"), x >= 0.8)
        });
        goal(md, &format!("{case}: weir on 1 worker ≥ 0.8 × baseline"), m);
    }
    for case in ["iot", "q5", "q7"] {
        let m = find(t, case, "weir -w 2").map(|r| {
            let x = num(r, "vs_one_worker");
            (format!("{x:.2} ×"), x >= 1.7)
        });
        goal(md, &format!("{case}: 2 workers ≥ 1.7 × 1 worker"), m);
    }
    let ck: Vec<f64> = t
        .iter()
        .filter(|r| text(r, "side") == "weir -w 1 ck 1s")
        .map(|r| num(r, "vs_one_worker"))
        .collect();
    let worst = ck.iter().copied().fold(f64::INFINITY, f64::min);
    goal(
        md,
        "1 s checkpoints cost < 10 % throughput (worst Nexmark query)",
        (!ck.is_empty()).then(|| (format!("{:.0} % cost", (1.0 - worst) * 100.0), worst > 0.9)),
    );
    let at_500k = |pipe: &str, ck: bool| -> Vec<&Value> {
        f.latency
            .iter()
            .filter(|r| {
                text(r, "pipe") == pipe
                    && text(r, "side") != "baseline"
                    && flag(r, "checkpoints") == ck
                    && (num(r, "offered_per_worker") - 500_000.0).abs() < 1.0
            })
            .collect()
    };
    let worst_of =
        |rows: &[&Value], field: &str| rows.iter().map(|r| num(r, field)).fold(f64::NAN, f64::max);
    let check = |rows: Vec<&Value>, field: &str, limit: f64| {
        (!rows.is_empty()).then(|| {
            let v = worst_of(&rows, field);
            (
                format!("{v:.2} ms (worst of {} runs)", rows.len()),
                v < limit,
            )
        })
    };
    goal(
        md,
        "stage at 500 K/s per worker: p99 < 5 ms",
        check(at_500k("stage", false), "p99_ms", 5.0),
    );
    goal(
        md,
        "stage at 500 K/s per worker: p99.9 < 20 ms",
        check(at_500k("stage", false), "p999_ms", 20.0),
    );
    goal(
        md,
        "window at 500 K/s per worker: p99 < 5 ms after the watermark",
        check(at_500k("window", false), "p99_ms", 5.0),
    );
    let mut with_ck = at_500k("stage", true);
    with_ck.extend(at_500k("window", true));
    goal(
        md,
        "1 s checkpoints at 500 K/s per worker: p99.9 < 50 ms",
        check(with_ck, "p999_ms", 50.0),
    );
    let kafka: Vec<&Value> = f
        .kafka
        .iter()
        .filter(|r| {
            text(r, "pipe").starts_with("weir") && (num(r, "offered") - 100_000.0).abs() < 1.0
        })
        .collect();
    goal(
        md,
        "Kafka end to end at 100 K msg/s: p99 < 10 ms",
        check(kafka, "p99_ms", 10.0),
    );
    md.push('\n');
}
