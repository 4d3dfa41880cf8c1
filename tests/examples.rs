//! End-to-end tests of the example jobs, run as real processes.
//!
//! `cargo test` builds the examples next to the test binaries; these tests run
//! them on the generator or on files, on 1, 2 and 4 workers and on two
//! processes over loopback, and compare their output with each other and with
//! an independent recomputation.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use weir_connectors::{Generation, Generator, GeneratorConfig, Reading};

mod support;
use support::{
    args, example, sorted_lines, temp_dir, two_process_hostfile, wait_within, Run, RUN_LIMIT,
};

/// Runs `job` quietly (no status lines) to its end.
fn run(job: &str, args: &[String]) -> Output {
    let mut args = args.to_vec();
    args.push("--quiet".into());
    support::run(job, &args)
}

/// Generator flags shared by a test's runs: small enough for debug builds,
/// with disorder, late and malformed records.
fn generator_flags(events: u64, keys: u64) -> Vec<String> {
    args(&[
        "--events",
        &events.to_string(),
        "--keys",
        &keys.to_string(),
        "--late-fraction",
        "0.01",
        "--malformed-fraction",
        "0.01",
        "--disorder",
        "500ms",
        "--bound",
        "1s",
    ])
}

/// The generator of `generator_flags(events, keys)` (its default disorder
/// is their 500 ms), for recomputing or writing its records here.
fn generator_config(events: u64, keys: u64) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        keys,
        late_fraction: 0.01,
        malformed_fraction: 0.01,
        ..GeneratorConfig::default()
    }
}

/// Where run `tag` in `dir` writes: (output, dead letters).
fn output_paths(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{tag}.jsonl")),
        dir.join(format!("{tag}.dead.jsonl")),
    )
}

fn run_job(job: &str, dir: &Path, tag: &str, flags: &[String], cluster: &[String]) -> Run {
    let (out, dead) = output_paths(dir, tag);
    let mut args = flags.to_vec();
    args.extend(cluster.iter().cloned());
    args.extend([
        "--checkpoint-dir".into(),
        dir.join(format!("{tag}.checkpoints")).display().to_string(),
        "--output".into(),
        out.display().to_string(),
        "--dead-letters".into(),
        dead.display().to_string(),
    ]);
    run(job, &args);
    Run::read(&out, &dead)
}

/// Runs `job` as two processes of one worker each; process 0 writes the output.
fn run_two_processes(job: &str, dir: &Path, flags: &[String]) -> Run {
    let hostfile = two_process_hostfile(dir);
    let (out, dead) = output_paths(dir, "cluster");
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut args = flags.to_vec();
            args.extend([
                "-n".into(),
                "2".into(),
                "-p".into(),
                p.to_string(),
                "--hostfile".into(),
                hostfile.display().to_string(),
                "--checkpoint-dir".into(),
                dir.join("cluster.checkpoints").display().to_string(),
                "--output".into(),
                out.display().to_string(),
                "--dead-letters".into(),
                dead.display().to_string(),
                "--quiet".into(),
            ]);
            Command::new(example(job))
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a process")
        })
        .collect();
    for child in children {
        let result = wait_within(child, RUN_LIMIT);
        assert!(
            result.status.success(),
            "{job} process failed: {}",
            String::from_utf8_lossy(&result.stderr)
        );
    }
    Run::read(&out, &dead)
}

/// Whether a dead letter's JSON is a record late for a window: late, with
/// the window it missed.
fn late_for_a_window(dead_letter: &str) -> bool {
    let d: serde_json::Value = serde_json::from_str(dead_letter).expect("dead letter json");
    let origin = &d["origin"]["operator"];
    origin["kind"] == "late" && origin["details"]["window_start"].is_u64()
}

fn assert_same_on_any_cluster(job: &str, events: u64, keys: u64) {
    let dir = temp_dir(job);
    let flags = generator_flags(events, keys);
    let one = run_job(job, &dir, "w1", &flags, &["-w".into(), "1".into()]);
    assert!(!one.output.is_empty(), "{job} produced no output");
    assert!(
        one.dead.iter().any(|d| late_for_a_window(d)),
        "{job}: expected late records among the dead letters"
    );
    assert!(
        one.dead.iter().any(|d| d.contains("\"split\":{")),
        "{job}: expected malformed records among the dead letters"
    );
    for workers in [2, 4] {
        let run = run_job(
            job,
            &dir,
            &format!("w{workers}"),
            &flags,
            &["-w".into(), workers.to_string()],
        );
        assert_eq!(
            one.output, run.output,
            "{job}: output differs with {workers} workers"
        );
        assert_eq!(
            one.dead, run.dead,
            "{job}: dead letters differ with {workers} workers"
        );
    }
    let cluster = run_two_processes(job, &dir, &flags);
    assert_eq!(
        one.output, cluster.output,
        "{job}: output differs on 2 processes"
    );
    assert_eq!(
        one.dead, cluster.dead,
        "{job}: dead letters differ on 2 processes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fraud_gives_the_same_output_on_1_2_4_workers_and_2_processes() {
    assert_same_on_any_cluster("fraud", 60_000, 300);
}

#[test]
fn metrics_gives_the_same_output_on_1_2_4_workers_and_2_processes() {
    assert_same_on_any_cluster("metrics", 60_000, 10);
}

#[test]
fn iot_gives_the_same_output_on_1_2_4_workers_and_2_processes() {
    assert_same_on_any_cluster("iot", 60_000, 100);
}

#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
struct Row {
    kind: String,
    device: u64,
    start_ms: u64,
    end_ms: u64,
    count: u64,
    min: f64,
    max: f64,
    avg: f64,
}

/// The iot job's rows, recomputed here from the generator's records with
/// weir's documented semantics: per split, a record is stamped with the
/// split's watermark before it (max event time - bound, rounded down to
/// 100 ms); it is late for a window iff its stamp has reached the window's end.
fn iot_oracle(config: &GeneratorConfig, bound: u64, gap: u64) -> (Vec<Row>, usize) {
    let generator = Generator::<Reading>::new(config.clone()).expect("valid config");
    let splits = config.splits as u64;
    let mut watermark = vec![0u64; splits as usize];
    // (stamp, reading) of every valid record.
    let mut stamped = Vec::new();
    for (i, g) in generator.records().enumerate() {
        let split = i as u64 % splits;
        let w = &mut watermark[split as usize];
        if let Generation::Record(r) = g {
            stamped.push((*w, r.clone()));
            let candidate = r.ts_ms.saturating_sub(bound);
            *w = (*w).max(candidate - candidate % 100);
        }
    }
    let mut rows = Vec::new();
    let mut late = 0;
    // Minutes.
    let mut minutes: BTreeMap<(u64, u64), Vec<f64>> = BTreeMap::new();
    for (stamp, r) in &stamped {
        let start = r.ts_ms - r.ts_ms % 60_000;
        if *stamp >= start + 60_000 {
            late += 1;
        } else {
            minutes.entry((r.device, start)).or_default().push(r.value);
        }
        if r.value < -20.0 || r.value > 100.0 {
            rows.push(Row {
                kind: "alert".into(),
                device: r.device,
                start_ms: r.ts_ms,
                end_ms: r.ts_ms,
                count: 1,
                min: r.value,
                max: r.value,
                avg: r.value,
            });
        }
    }
    let summarize = |kind: &str, device: u64, start: u64, end: u64, values: &[f64]| Row {
        kind: kind.into(),
        device,
        start_ms: start,
        end_ms: end,
        count: values.len() as u64,
        min: values.iter().cloned().fold(f64::INFINITY, f64::min),
        max: values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        avg: values.iter().sum::<f64>() / values.len() as f64,
    };
    for ((device, start), values) in &minutes {
        rows.push(summarize("minute", *device, *start, start + 60_000, values));
    }
    // Sessions: per device, in stamp order; sessions that ended at or before
    // a stamp are closed before records of that stamp apply.
    let mut by_device: HashMap<u64, Vec<(u64, u64, f64)>> = HashMap::new();
    for (stamp, r) in &stamped {
        by_device
            .entry(r.device)
            .or_default()
            .push((*stamp, r.ts_ms, r.value));
    }
    for (device, mut records) in by_device {
        records.sort_by_key(|(stamp, _, _)| *stamp);
        let mut open: Vec<(u64, u64, Vec<f64>)> = Vec::new();
        for (stamp, ts, value) in records {
            let (closed, still): (Vec<_>, Vec<_>) = open.into_iter().partition(|s| s.1 <= stamp);
            for (start, end, values) in closed {
                rows.push(summarize("session", device, start, end, &values));
            }
            open = still;
            if stamp >= ts + gap {
                late += 1;
                continue;
            }
            let (mut start, mut end, mut values) = (ts, ts + gap, vec![value]);
            let (overlapping, rest): (Vec<_>, Vec<_>) =
                open.into_iter().partition(|s| s.0 < end && start < s.1);
            for (s, e, v) in overlapping {
                start = start.min(s);
                end = end.max(e);
                values.extend(v);
            }
            open = rest;
            open.push((start, end, values));
        }
        for (start, end, values) in open {
            rows.push(summarize("session", device, start, end, &values));
        }
    }
    (rows, late)
}

fn key(r: &Row) -> (String, u64, u64, u64) {
    (r.kind.clone(), r.device, r.start_ms, r.end_ms)
}

#[test]
fn iot_output_matches_an_independent_computation() {
    let dir = temp_dir("iot-oracle");
    let events = 80_000u64;
    let config = generator_config(events, 50);
    let mut flags = generator_flags(events, 50);
    flags.extend([
        "--session-gap".into(),
        "30s".into(),
        "-w".into(),
        "2".into(),
    ]);
    let run = run_job("iot", &dir, "oracle", &flags, &[]);
    let mut got: Vec<Row> = run
        .output
        .iter()
        .map(|l| serde_json::from_str(l).expect("a row"))
        .collect();
    let (mut expected, late) = iot_oracle(&config, 1_000, 30_000);
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert!(
        expected.iter().any(|r| r.kind == "session"),
        "oracle has sessions"
    );
    assert!(
        expected.iter().any(|r| r.kind == "alert"),
        "oracle has alerts"
    );
    assert!(late > 0, "the input has late records");
    assert_eq!(
        got.iter().map(key).collect::<Vec<_>>(),
        expected.iter().map(key).collect::<Vec<_>>(),
        "the job's windows, sessions and alerts differ from the recomputation"
    );
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            (g.count, g.min, g.max),
            (e.count, e.min, e.max),
            "{g:?} vs {e:?}"
        );
        assert!(
            (g.avg - e.avg).abs() <= 1e-9 * e.avg.abs().max(1.0),
            "{g:?} vs {e:?}"
        );
    }
    let late_letters = run.dead.iter().filter(|d| late_for_a_window(d)).count();
    assert_eq!(late_letters, late, "one dead letter per missed window");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn file_input_sends_bad_lines_to_dead_letters_with_file_and_line() {
    let dir = temp_dir("iot-file");
    let input = dir.join("readings.csv");
    std::fs::write(
        &input,
        "device,ts_ms,value\n\
         1,1000,20.5\n\
         1,2000,not-a-number\n\
         2,1500\n\
         1,61000,21.5\n\
         ,,\n\
         2,3000,250.0\n",
    )
    .expect("write input");
    let flags: Vec<String> = vec!["--input".into(), input.display().to_string()];
    let run = run_job("iot", &dir, "file", &flags, &[]);
    let rows: Vec<Row> = run
        .output
        .iter()
        .map(|l| serde_json::from_str(l).expect("row"))
        .collect();
    let minutes: Vec<(u64, u64, u64)> = rows
        .iter()
        .filter(|r| r.kind == "minute")
        .map(|r| (r.device, r.start_ms, r.count))
        .collect();
    assert_eq!(minutes, vec![(1, 0, 1), (1, 60_000, 1), (2, 0, 1)]);
    assert_eq!(rows.iter().filter(|r| r.kind == "alert").count(), 1);
    let dead: Vec<serde_json::Value> = run
        .dead
        .iter()
        .map(|l| serde_json::from_str(l).expect("dead letter json"))
        .collect();
    let (malformed, late): (Vec<_>, Vec<_>) =
        dead.iter().partition(|d| d["origin"].get("file").is_some());
    let mut lines: Vec<u64> = malformed
        .iter()
        .map(|d| d["origin"]["file"]["line"].as_u64().expect("a line number"))
        .collect();
    lines.sort();
    assert_eq!(lines, vec![3, 4, 6], "dead letters: {dead:?}");
    // The reading at 3 000 ms comes after one at 61 000 ms: with the default
    // 2 s bound the watermark is 59 000, past its 30 s session.
    assert_eq!(late.len(), 1, "dead letters: {dead:?}");
    assert_eq!(late[0]["origin"]["operator"]["kind"], "late");
    assert_eq!(late[0]["origin"]["operator"]["name"], "device_sessions");
    assert_eq!(late[0]["origin"]["operator"]["watermark"], 59_000);
    for d in &malformed {
        assert_eq!(
            d["origin"]["file"]["path"].as_str(),
            Some(input.display().to_string().as_str())
        );
        assert!(!d["reason"].as_str().unwrap_or_default().is_empty());
    }
    assert!(dead
        .iter()
        .any(|d| d["reason"].as_str().unwrap_or_default().contains("value")));
    let _ = std::fs::remove_dir_all(&dir);
}

fn run_failing(job: &str, args: &[&str]) -> (i32, String) {
    let child = Command::new(example(job))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let output = wait_within(child, RUN_LIMIT);
    assert!(!output.status.success(), "{job} {args:?} should fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "{job} {args:?} panicked: {stderr}"
    );
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_flags_and_missing_files_fail_at_start_with_one_line() {
    for (args, needle) in [
        (
            &["--input", "/nonexistent/readings.csv"][..],
            "/nonexistent/readings.csv",
        ),
        (&["-w", "0"][..], "--workers"),
        (&["--events", "0"][..], "--events"),
        (&["--skew", "2"][..], "skew"),
        (
            &["--output", "/nonexistent-dir/out.jsonl"][..],
            "does not exist",
        ),
        (&["-n", "2", "-p", "5"][..], "--process"),
        (
            &["--checkpoint-dir", "/dev/null/checkpoints"][..],
            "--checkpoint-dir",
        ),
        (
            &["--file-chunk", "1"][..],
            "--file-chunk must be at least 1K",
        ),
    ] {
        let (_, stderr) = run_failing("iot", args);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one line expected, got: {stderr}");
        assert!(
            lines[0].contains(needle),
            "{args:?}: `{needle}` not in: {stderr}"
        );
    }
    // clap's own errors name the flag on their first line.
    for (args, flag) in [
        (&["--format", "xml"][..], "--format"),
        (&["--file-chunk", "lots"][..], "--file-chunk"),
        (&["--file-chunk", "99999999999G"][..], "--file-chunk"),
    ] {
        let (code, stderr) = run_failing("fraud", args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            stderr.lines().next().unwrap_or_default().contains(flag),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn ctrl_c_ends_the_input_flushes_windows_and_prints_the_summary() {
    let dir = temp_dir("ctrl-c");
    let out = dir.join("out.jsonl");
    let child = Command::new(example("iot"))
        .args([
            "--rate",
            "20000",
            "--keys",
            "20",
            "--status-interval",
            "200ms",
            "--output",
            &out.display().to_string(),
            "--dead-letters",
            &dir.join("dead.jsonl").display().to_string(),
            "--checkpoint-dir",
            &dir.join("checkpoints").display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start iot");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("send SIGINT");
    assert!(status.success());
    let result = wait_within(child, RUN_LIMIT);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        result.status.success(),
        "iot did not exit cleanly on Ctrl-C: {stderr}"
    );
    assert!(stderr.contains("events/s"), "no status line: {stderr}");
    assert!(stderr.contains("weir: done:"), "no summary: {stderr}");
    // 1.5 s at 20 000 records/s, 1 ms apart, is about 30 s of event time:
    // every session (30 s gap) was still open at Ctrl-C, so session rows
    // prove that open windows were flushed.
    let rows = sorted_lines(&out);
    assert!(
        rows.iter().any(|r| r.contains("\"minute\"")),
        "no minute rows"
    );
    assert!(
        rows.iter().any(|r| r.contains("\"session\"")),
        "open sessions were not flushed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CSV file of generated readings (late and malformed ones included) with
/// a line of binary garbage every 1 000 lines.
fn readings_csv(path: &Path, events: u64) {
    let generator = Generator::<Reading>::new(generator_config(events, 40)).expect("valid config");
    let mut bytes = b"device,ts_ms,value\n".to_vec();
    for i in 0..events {
        match generator.generate(i) {
            Generation::Record(r) => bytes
                .extend_from_slice(format!("{},{},{}\n", r.device, r.ts_ms, r.value).as_bytes()),
            Generation::Malformed(line, _) => {
                bytes.extend_from_slice(format!("{line}\n").as_bytes())
            }
        }
        if i % 1_000 == 500 {
            bytes.extend_from_slice(&[0xff, b',', 0x00, 0xc3, 0x28, b',', 0x80, b'\n']);
        }
    }
    std::fs::write(path, bytes).expect("write input");
}

#[test]
fn a_file_read_as_8_splits_gives_the_same_output_on_1_2_4_workers_and_keeps_exact_bytes() {
    let dir = temp_dir("iot-ranges");
    let input = dir.join("readings.csv");
    readings_csv(&input, 30_000);
    let file = std::fs::read(&input).expect("read input");
    let flags = args(&[
        "--input",
        &input.display().to_string(),
        "--file-chunk",
        "8K",
    ]);
    let runs: Vec<Run> = ["1", "2", "4"]
        .iter()
        .map(|w| {
            run_job(
                "iot",
                &dir,
                &format!("w{w}"),
                &flags,
                &["-w".into(), w.to_string()],
            )
        })
        .collect();
    assert!(
        file.len() > 40 * 8 * 1024,
        "the file spans many 8 KiB chunks"
    );
    assert!(runs[0].output.len() > 80, "{} rows", runs[0].output.len());
    for (run, workers) in runs.iter().zip([1, 2, 4]).skip(1) {
        assert_eq!(run.output, runs[0].output, "{workers} workers: output");
        assert_eq!(run.dead, runs[0].dead, "{workers} workers: dead letters");
    }
    // Every malformed line's dead letter holds the file's exact bytes at its offset.
    let mut from_file = 0;
    let mut binary = 0;
    for line in &runs[0].dead {
        let d: serde_json::Value = serde_json::from_str(line).expect("dead letter json");
        let Some(origin) = d["origin"].get("file") else {
            continue;
        };
        from_file += 1;
        let offset = origin["offset"].as_u64().expect("offset") as usize;
        let len = d["raw_len"].as_u64().expect("raw_len") as usize;
        let raw = d["raw"].as_str().expect("raw");
        let kept: Vec<u8> = match d["raw_encoding"].as_str() {
            Some("utf8") => raw.as_bytes().to_vec(),
            Some("base64") => {
                binary += 1;
                base64_decode(raw)
            }
            other => panic!("raw_encoding {other:?}"),
        };
        assert_eq!(kept, &file[offset..offset + len], "{line}");
        assert_eq!(file[offset + len], b'\n', "{line}: the whole line");
        let number = origin["line"].as_u64().expect("line") as usize;
        let newlines_before = file[..offset].iter().filter(|&&b| b == b'\n').count();
        assert_eq!(number, newlines_before + 1, "{line}: its line number");
    }
    assert_eq!(binary, 30, "one binary line per 1 000 records");
    assert!(from_file > 300, "{from_file} malformed lines");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Standard padded base64 (as dead letters write binary bytes).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// Runs a job like `run_job`, failing (not hanging) if it does not end in 60 s.
fn run_job_within(job: &str, dir: &Path, tag: &str, flags: &[String]) -> Run {
    let (out, dead) = output_paths(dir, tag);
    let child = Command::new(example(job))
        .args(flags)
        .args(["--no-checkpoints", "--quiet", "--output"])
        .arg(&out)
        .arg("--dead-letters")
        .arg(&dead)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let status = wait_within(child, std::time::Duration::from_secs(60)).status;
    assert!(status.success(), "{job} {tag} failed: {status}");
    Run::read(&out, &dead)
}

/// Far-future timestamps, ascending (so none is late for the one before:
/// each moves the watermark to the far future, the documented effect). The
/// first two fit a minute window; the others' windows would end past
/// u64::MAX (18 446 744 073 709 500 000 is the start of the last minute,
/// and the first value that broke the fraud job).
const EXTREME_TIMES: [u64; 5] = [
    1 << 63,
    u64::MAX - 60_000,
    18_446_744_073_709_500_000,
    u64::MAX - 1,
    u64::MAX,
];

#[test]
fn poison_timestamps_end_the_job_and_leave_ordinary_results_alone() {
    let dir = temp_dir("poison-times");
    for (job, header, row) in [
        (
            "iot",
            "device,ts_ms,value",
            (|i: u64, ts: u64| format!("{},{ts},{}.5", i % 3, i % 40)) as fn(u64, u64) -> String,
        ),
        (
            "fraud",
            "card,merchant,amount_cents,country,ts_ms",
            |i: u64, ts: u64| {
                let country = ["US", "DE", "AT", "FR"][(i % 4) as usize];
                format!("{},7,{},{country},{ts}", i % 2, 100 + i)
            },
        ),
    ] {
        let ordinary: Vec<String> = (0..400).map(|i| row(i, 1_000_000 + i * 997)).collect();
        let extreme: Vec<String> = EXTREME_TIMES
            .iter()
            .enumerate()
            .map(|(i, &ts)| row(i as u64, ts))
            .collect();
        let write = |name: &str, rows: &[&[String]]| {
            let path = dir.join(format!("{job}-{name}.csv"));
            let mut text = format!("{header}\n");
            for line in rows.iter().flat_map(|r| r.iter()) {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&path, text).expect("write input");
            vec!["--input".to_string(), path.display().to_string()]
        };
        let plain = run_job_within(
            job,
            &dir,
            &format!("{job}-plain"),
            &write("plain", &[&ordinary]),
        );
        let poisoned = write("poisoned", &[&ordinary, &extreme]);
        for workers in ["1", "2"] {
            let mut flags = poisoned.clone();
            flags.extend(["-w".to_string(), workers.to_string()]);
            let run = run_job_within(job, &dir, &format!("{job}-poisoned-w{workers}"), &flags);
            // Ordinary results are the same; whatever else is output lies at
            // the extreme times.
            let near_zero = |line: &&String| {
                let v: serde_json::Value = serde_json::from_str(line).expect("json row");
                let start = v["start_ms"].as_u64().or(v["window_start_ms"].as_u64());
                start.expect("a start") < 1 << 62
            };
            let ordinary_out: Vec<String> = run.output.iter().filter(near_zero).cloned().collect();
            assert_eq!(ordinary_out, plain.output, "{job} -w {workers}");
            // Each extreme record whose window cannot exist is a dead letter
            // naming the limit; none is lost to a panic or a hang.
            let limit_letters: Vec<&String> =
                run.dead.iter().filter(|d| d.contains("u64::MAX")).collect();
            for &ts in &EXTREME_TIMES[2..] {
                assert!(
                    limit_letters.iter().any(|d| d.contains(&ts.to_string())),
                    "{job} -w {workers}: no dead letter for {ts}: {:?}",
                    run.dead
                );
            }
            if job == "iot" {
                // 2^63 and MAX - 60 000 fit a minute window: each has its row.
                for &ts in &EXTREME_TIMES[..2] {
                    let start = ts - ts % 60_000;
                    assert!(
                        run.output.iter().any(|l| l.contains("\"minute\"")
                            && l.contains(&format!("\"start_ms\":{start}"))),
                        "iot -w {workers}: no minute row for {ts}"
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_directory_of_many_files_reads_within_a_small_open_file_limit() {
    // 120 files of 3 chunks each are 360 file splits read in turn: a
    // reader that held its file open would need 360 handles.
    let dir = temp_dir("many-files");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).expect("input dir");
    let mut expected = 0u64;
    for f in 0..120u64 {
        let mut text = String::from("device,ts_ms,value\n");
        for i in 0..120u64 {
            text.push_str(&format!("{},{},{}.25\n", f % 7, 1_000 + i * 100, i % 9));
            expected += 1;
        }
        std::fs::write(input.join(format!("part-{f:03}.csv")), text).expect("write");
    }
    let out = dir.join("out.jsonl");
    let command = format!(
        "ulimit -n 64 && exec '{}' --input '{}' --file-chunk 1K --no-checkpoints --quiet --output '{}' --dead-letters '{}'",
        example("iot").display(),
        input.display(),
        out.display(),
        dir.join("dead.jsonl").display()
    );
    let status = Command::new("sh")
        .args(["-c", &command])
        .status()
        .expect("run sh");
    assert!(
        status.success(),
        "iot failed under `ulimit -n 64`: {status}"
    );
    let counted: u64 = sorted_lines(&out)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("row"))
        .filter(|r| r["kind"] == "minute")
        .map(|r| r["count"].as_u64().expect("count"))
        .sum();
    assert_eq!(counted, expected, "every reading in a minute window");
    let _ = std::fs::remove_dir_all(&dir);
}
