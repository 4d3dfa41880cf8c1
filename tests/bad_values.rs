//! Values that make no sense, end to end: the example jobs run as processes
//! on CSV and JSON-lines files where ordinary rows are mixed with non-finite
//! measurements (`NaN`, `inf`, `-inf`, `1e999`), countries that are not
//! two uppercase letters (`USA`, `U|S`, `u`, empty) and impossible statuses,
//! amounts and latencies. The ordinary rows' output must equal a run on them
//! alone, and every bad row must be a dead letter with its line and a reason
//! naming the field. Plus: the summary shows the job's final watermark.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod support;
use support::{args, run, sorted_lines, temp_dir};

/// Runs `job` on `input` without checkpoints: (sorted output lines, dead letters).
fn run_on(job: &str, dir: &Path, input: &Path, workers: u32) -> (Vec<String>, Vec<Value>) {
    let stem = input
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name")
        .to_string();
    let out = dir.join(format!("{stem}.w{workers}.out.jsonl"));
    let dead = dir.join(format!("{stem}.w{workers}.dead.jsonl"));
    let args = args(&[
        "--input",
        &input.display().to_string(),
        "--no-checkpoints",
        "--quiet",
        "-w",
        &workers.to_string(),
        "--output",
        &out.display().to_string(),
        "--dead-letters",
        &dead.display().to_string(),
    ]);
    run(job, &args);
    let dead = sorted_lines(&dead)
        .iter()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect();
    (sorted_lines(&out), dead)
}

/// A file's rows: `Ok` for ordinary rows, `Err(field)` for a row that must
/// be dead-lettered with a reason naming `field`.
type Rows<'a> = &'a [Result<&'a str, (&'a str, &'a str)>];

/// Writes `rows` (with `header` first, if any) to `name`, and the ordinary
/// rows alone to `clean-name`; returns both paths and, per bad row, its line
/// number (1-based, counting the header) and the field its reason must name.
fn write_files(
    dir: &Path,
    name: &str,
    header: Option<&str>,
    rows: Rows<'_>,
) -> (PathBuf, PathBuf, Vec<(u64, String)>) {
    let (mut mixed, mut clean) = (String::new(), String::new());
    if let Some(h) = header {
        mixed.push_str(h);
        mixed.push('\n');
        clean.push_str(h);
        clean.push('\n');
    }
    let first = if header.is_some() { 2 } else { 1 };
    let mut bad = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match row {
            Ok(line) => {
                mixed.push_str(line);
                clean.push_str(line);
                clean.push('\n');
            }
            Err((field, line)) => {
                mixed.push_str(line);
                bad.push((first + i as u64, field.to_string()));
            }
        }
        mixed.push('\n');
    }
    let (m, c) = (dir.join(name), dir.join(format!("clean-{name}")));
    std::fs::write(&m, mixed).expect("write input");
    std::fs::write(&c, clean).expect("write input");
    (m, c, bad)
}

/// Runs `job` on the mixed and the clean file (on 1 and 2 workers) and
/// checks the promises of this file.
fn check(job: &str, dir: &Path, name: &str, header: Option<&str>, rows: Rows<'_>) -> Vec<String> {
    let (mixed, clean, bad) = write_files(dir, name, header, rows);
    let (clean_out, clean_dead) = run_on(job, dir, &clean, 1);
    assert!(
        clean_dead.is_empty(),
        "{job} {name}: the ordinary rows alone give dead letters: {clean_dead:?}"
    );
    assert!(!clean_out.is_empty(), "{job} {name}: no output to compare");
    for workers in [1, 2] {
        let (out, dead) = run_on(job, dir, &mixed, workers);
        assert_eq!(
            out, clean_out,
            "{job} {name} -w {workers}: bad rows changed the ordinary rows' output"
        );
        let mut got: Vec<(u64, String)> = dead
            .iter()
            .map(|d| {
                let file = &d["origin"]["file"];
                assert_eq!(
                    file["path"].as_str(),
                    Some(mixed.display().to_string().as_str()),
                    "{d}"
                );
                let line = file["line"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no line: {d}"));
                let reason = d["reason"].as_str().unwrap_or_default().to_string();
                (line, reason)
            })
            .collect();
        got.sort();
        assert_eq!(
            got.len(),
            bad.len(),
            "{job} {name} -w {workers}: dead letters {got:#?}, expected lines {bad:?}"
        );
        for ((line, reason), (want_line, field)) in got.iter().zip(&bad) {
            assert_eq!(line, want_line, "{job} {name}: {got:#?}");
            assert!(
                reason.contains(&format!("field `{field}`")),
                "{job} {name} line {line}: reason does not name `{field}`: {reason}"
            );
        }
    }
    clean_out
}

/// Runs `check` on `csv` (in `stem.csv`, under `header`) and on the same
/// ordinary rows as `json` (in `stem.jsonl`), in a fresh directory for
/// `job`; both give the same output, which it returns.
fn check_formats(
    job: &str,
    stem: &str,
    header: &str,
    csv: Rows<'_>,
    json: Rows<'_>,
) -> Vec<String> {
    let dir = temp_dir(job);
    let out = check(job, &dir, &format!("{stem}.csv"), Some(header), csv);
    let json_out = check(job, &dir, &format!("{stem}.jsonl"), None, json);
    assert_eq!(json_out, out, "CSV and JSON lines of the same rows differ");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn iot_dead_letters_non_finite_readings() {
    let csv: Rows<'_> = &[
        Ok("1,1000,20.5"),
        Err(("value", "1,2000,NaN")),
        Ok("2,1500,-3.25"),
        Err(("value", "1,2500,inf")),
        Err(("value", "2,2600,-inf")),
        Ok("1,3000,22"),
        Err(("value", "1,3500,1e999")),
        Err(("value", "2,3600,-1e999")),
        Err(("value", "2,3700,nan")),
        Err(("value", "2,3800,")),
        Ok("2,4000,150.0"),
        Ok("1,61000,21.5"),
        Err(("value", "1,61500,infinity")),
    ];
    let json: Rows<'_> = &[
        Ok(r#"{"device":1,"ts_ms":1000,"value":20.5}"#),
        Err(("value", r#"{"device":1,"ts_ms":2000,"value":NaN}"#)),
        Ok(r#"{"device":2,"ts_ms":1500,"value":-3.25}"#),
        Err(("value", r#"{"device":1,"ts_ms":2500,"value":Infinity}"#)),
        Err(("value", r#"{"device":2,"ts_ms":2600,"value":-Infinity}"#)),
        Ok(r#"{"device":1,"ts_ms":3000,"value":22}"#),
        Err(("value", r#"{"device":1,"ts_ms":3500,"value":1e999}"#)),
        Err(("value", r#"{"device":2,"ts_ms":3600,"value":"NaN"}"#)),
        Err(("value", r#"{"device":2,"ts_ms":3700,"value":"inf"}"#)),
        Err(("value", r#"{"device":2,"ts_ms":3800,"value":null}"#)),
        Ok(r#"{"device":2,"ts_ms":4000,"value":150.0}"#),
        Ok(r#"{"device":1,"ts_ms":61000,"value":21.5}"#),
    ];
    let out = check_formats("iot", "readings", "device,ts_ms,value", csv, json);
    // The windows hold finite numbers only: no null min/max/avg.
    assert!(out.iter().all(|l| !l.contains("null")), "{out:?}");
    assert!(out.iter().any(|l| l.contains("\"minute\"")), "{out:?}");
    // What the ordinary rows must give, worked out by hand from them with
    // the defaults: a 2 s bound (the rows are in time order, so none is
    // late), 60 s tumbling windows, and an alert above --max-value 100.
    let ordinary: Vec<&str> = csv.iter().filter_map(|r| r.ok()).collect();
    assert_eq!(
        ordinary,
        [
            "1,1000,20.5",
            "2,1500,-3.25",
            "1,3000,22",
            "2,4000,150.0",
            "1,61000,21.5"
        ],
        "the rows the expectation below was worked out from"
    );
    // Device 1: 1 000 and 3 000 ms in minute 0, 61 000 ms in minute 1;
    // device 2: 1 500 and 4 000 ms in minute 0; 150.0 is the one alert.
    let rows: Vec<Value> = out
        .iter()
        .map(|l| serde_json::from_str(l).expect("a row is JSON"))
        .collect();
    let field = |r: &Value, name: &str| {
        r[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no `{name}`: {r}"))
    };
    let mut minutes: Vec<(u64, u64, u64)> = rows
        .iter()
        .filter(|r| r["kind"] == "minute")
        .map(|r| (field(r, "device"), field(r, "start_ms"), field(r, "count")))
        .collect();
    minutes.sort();
    assert_eq!(
        minutes,
        [(1, 0, 2), (1, 60_000, 1), (2, 0, 2)],
        "minute windows: {out:?}"
    );
    let alerts = rows.iter().filter(|r| r["kind"] == "alert").count();
    assert_eq!(alerts, 1, "alerts: {out:?}");
}

#[test]
fn fraud_dead_letters_countries_that_are_not_two_uppercase_letters() {
    // Card 1 pays in the US, GB and DE within minutes: window alerts
    // (country-change) and the many-countries rule; card 2 stays home.
    let csv: Rows<'_> = &[
        Ok("1,10,1500,US,1000"),
        Err(("country", "1,11,1500,USA,2000")),
        Ok("1,12,2500,GB,3000"),
        Err(("country", "1,13,1500,\"U|S\",4000")),
        Err(("country", "2,14,1500,u,5000")),
        Ok("2,15,900,FR,6000"),
        Err(("country", "2,16,900,,7000")),
        Err(("country", "2,17,900,us,7500")),
        Err(("country", "2,18,900,U,7600")),
        Ok("1,19,700,DE,8000"),
        Err(("amount_cents", "2,20,18446744073709551615,FR,9000")),
        Ok("2,21,800,FR,10000"),
    ];
    let json: Rows<'_> = &[
        Ok(r#"{"card":1,"merchant":10,"amount_cents":1500,"country":"US","ts_ms":1000}"#),
        Err((
            "country",
            r#"{"card":1,"merchant":11,"amount_cents":1500,"country":"USA","ts_ms":2000}"#,
        )),
        Ok(r#"{"card":1,"merchant":12,"amount_cents":2500,"country":"GB","ts_ms":3000}"#),
        Err((
            "country",
            r#"{"card":1,"merchant":13,"amount_cents":1500,"country":"U|S","ts_ms":4000}"#,
        )),
        Err((
            "country",
            r#"{"card":2,"merchant":14,"amount_cents":1500,"country":"u","ts_ms":5000}"#,
        )),
        Ok(r#"{"card":2,"merchant":15,"amount_cents":900,"country":"FR","ts_ms":6000}"#),
        Err((
            "country",
            r#"{"card":2,"merchant":16,"amount_cents":900,"country":"","ts_ms":7000}"#,
        )),
        Err((
            "country",
            r#"{"card":2,"merchant":17,"amount_cents":900,"country":null,"ts_ms":7500}"#,
        )),
        Ok(r#"{"card":1,"merchant":19,"amount_cents":700,"country":"DE","ts_ms":8000}"#),
        Ok(r#"{"card":2,"merchant":21,"amount_cents":800,"country":"FR","ts_ms":10000}"#),
    ];
    let out = check_formats(
        "fraud",
        "transactions",
        "card,merchant,amount_cents,country,ts_ms",
        csv,
        json,
    );
    assert!(out.iter().any(|l| l.contains("many-countries")), "{out:?}");
    assert!(out.iter().any(|l| l.contains("\"DE|GB|US\"")), "{out:?}");
    // No country but two-letter codes ever reaches the `|`-joined column.
    for line in &out {
        let alert: Value = serde_json::from_str(line).expect("an alert");
        for code in alert["countries"].as_str().expect("countries").split('|') {
            assert!(
                code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{line}"
            );
        }
    }
}

#[test]
fn metrics_dead_letters_impossible_latencies_and_statuses() {
    let csv: Rows<'_> = &[
        Ok("svc-1,/,200,1500,1000"),
        Err(("latency_us", "svc-1,/,200,NaN,2000")),
        Ok("svc-1,/login,503,2500,3000"),
        Err(("latency_us", "svc-1,/,200,inf,4000")),
        Err(("latency_us", "svc-2,/,200,-inf,4500")),
        Err(("latency_us", "svc-2,/,200,1e999,4600")),
        Err(("latency_us", "svc-2,/,200,18446744073709551615,4700")),
        Ok("svc-2,/cart,404,700,5000"),
        Err(("status", "svc-2,/,0,700,6000")),
        Err(("status", "svc-2,/,9999,700,6500")),
        Ok("svc-1,/,200,800,12000"),
    ];
    let json: Rows<'_> = &[
        Ok(r#"{"service":"svc-1","endpoint":"/","status":200,"latency_us":1500,"ts_ms":1000}"#),
        Err((
            "latency_us",
            r#"{"service":"svc-1","endpoint":"/","status":200,"latency_us":NaN,"ts_ms":2000}"#,
        )),
        Ok(
            r#"{"service":"svc-1","endpoint":"/login","status":503,"latency_us":2500,"ts_ms":3000}"#,
        ),
        Err((
            "latency_us",
            r#"{"service":"svc-1","endpoint":"/","status":200,"latency_us":1e999,"ts_ms":4000}"#,
        )),
        Err((
            "latency_us",
            r#"{"service":"svc-2","endpoint":"/","status":200,"latency_us":"inf","ts_ms":4500}"#,
        )),
        Ok(r#"{"service":"svc-2","endpoint":"/cart","status":404,"latency_us":700,"ts_ms":5000}"#),
        Err((
            "status",
            r#"{"service":"svc-2","endpoint":"/","status":0,"latency_us":700,"ts_ms":6000}"#,
        )),
        Ok(r#"{"service":"svc-1","endpoint":"/","status":200,"latency_us":800,"ts_ms":12000}"#),
    ];
    let out = check_formats(
        "metrics",
        "requests",
        "service,endpoint,status,latency_us,ts_ms",
        csv,
        json,
    );
    assert!(out.iter().any(|l| l.contains("\"errors\":1")), "{out:?}");
}

/// The `watermark N ms` of the `weir: done:` line.
fn summary_watermark(stderr: &str) -> Option<u64> {
    let done = stderr.lines().find(|l| l.starts_with("weir: done:"))?;
    let rest = &done[done.find("watermark ")? + "watermark ".len()..];
    rest.split(' ').next()?.parse().ok()
}

#[test]
fn the_summary_shows_the_final_watermark() {
    let dir = temp_dir("summary");
    let input = dir.join("readings.csv");
    // The last event time is 61 000 ms; the default bound is 2 s.
    std::fs::write(
        &input,
        "device,ts_ms,value\n1,1000,20.5\n2,30000,21\n1,61000,21.5\n1,60000,1\n",
    )
    .expect("write input");
    for (workers, checkpoints) in [(1, false), (2, false), (1, true), (4, true)] {
        let mut args: Vec<String> = vec![
            "--input".into(),
            input.display().to_string(),
            "-w".into(),
            workers.to_string(),
            "--output".into(),
            dir.join(format!("out-{workers}-{checkpoints}"))
                .display()
                .to_string(),
            "--dead-letters".into(),
            dir.join(format!("dead-{workers}-{checkpoints}"))
                .display()
                .to_string(),
        ];
        if checkpoints {
            args.extend([
                "--checkpoint-dir".into(),
                dir.join(format!("ck-{workers}")).display().to_string(),
            ]);
        } else {
            args.push("--no-checkpoints".into());
        }
        let output = run("iot", &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            summary_watermark(&stderr),
            Some(59_000),
            "-w {workers}, checkpoints {checkpoints}: {stderr}"
        );
    }
    // On the generator: 3 000 records 1 ms apart from its start, bound 1 s,
    // so every split's last record is near start + 3 000 ms and the final
    // watermark, rounded down to the 100 ms quantum, start + 1 900 (it used
    // to print the watermark of an earlier step).
    let output = run(
        "iot",
        &[
            "--events".into(),
            "3000".into(),
            "--no-checkpoints".into(),
            "--disorder".into(),
            "0ms".into(),
            "--late-fraction".into(),
            "0".into(),
            "--bound".into(),
            "1s".into(),
            "--output".into(),
            dir.join("gen-out").display().to_string(),
            "--dead-letters".into(),
            dir.join("gen-dead").display().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let w = summary_watermark(&stderr).unwrap_or_else(|| panic!("no watermark: {stderr}"));
    let start = weir_connectors::GeneratorConfig::default().start_ms;
    assert_eq!(w, start + 1_900, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
