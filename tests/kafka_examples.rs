//! The example jobs on Kafka, on the real broker (`scripts/kafka.sh`
//! starts it; these tests fail, not skip, without it): `weir-kafka produce`
//! writes a job's generated records to a topic, the job reads it with
//! `--kafka … --stop-at-end` and writes its results to another topic, and
//! what `weir-kafka tail` reads there equals what the same job writes to a
//! file from the same generated records, on 1, 2 and 4 workers; dead
//! letters reach their topic. Bad Kafka flags fail at start in one line.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use support::{args, example, run, sorted_lines, temp_dir};

const KAFKA: &str = "127.0.0.1:9092";

/// The `weir-kafka` tool, built by `cargo test --workspace` beside the
/// test binaries.
fn tool() -> PathBuf {
    let examples = example("iot");
    let path = examples
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>")
        .join("weir-kafka");
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace`",
        path.display()
    );
    path
}

fn broker() {
    static START: Once = Once::new();
    START.call_once(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh");
        let ok = Command::new("bash")
            .arg(script)
            .arg("start")
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the Kafka broker did not start (scripts/kafka.sh start): these tests need it"
        );
    });
}

/// Runs `weir-kafka` and returns its stdout.
fn kafka_tool(a: &[&str]) -> String {
    let out = Command::new(tool())
        .args(["--kafka", KAFKA])
        .args(a)
        .stdin(Stdio::null())
        .output()
        .expect("runs weir-kafka");
    assert!(
        out.status.success(),
        "weir-kafka {a:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("weir-test-{name}-{}-{nanos}", std::process::id())
}

/// A job's results from a file run and from Kafka runs are the same lines.
fn same_on_kafka(job: &str, events: &str, keys: &str, workers: &[usize]) {
    broker();
    let input = unique(&format!("{job}-in"));
    kafka_tool(&["topics", &format!("{input}:4")]);
    // The producer writes generator split s to partition s (4 of each).
    kafka_tool(&[
        "produce",
        "--job",
        job,
        "--topic",
        &input,
        "--events",
        events,
        "--keys",
        keys,
        "--malformed-fraction",
        "0.001",
    ]);
    let dir = temp_dir(&format!("kafka-{job}"));
    let file = dir.join("out.jsonl");
    run(
        job,
        &args(&[
            "--events",
            events,
            "--keys",
            keys,
            "--late-fraction",
            "0",
            "--malformed-fraction",
            "0.001",
            "--no-checkpoints",
            "--quiet",
            "--output",
            file.to_str().expect("utf-8"),
            "--dead-letters",
            dir.join("dead.jsonl").to_str().expect("utf-8"),
        ]),
    );
    let expected = sorted_lines(&file);
    assert!(expected.len() > 10, "{job}: the file run has results");
    let dead_expected = sorted_lines(&dir.join("dead.jsonl")).len();
    for &w in workers {
        let output = unique(&format!("{job}-out-w{w}"));
        let dead = unique(&format!("{job}-dead-w{w}"));
        kafka_tool(&["topics", &format!("{output}:3"), &format!("{dead}:1")]);
        run(
            job,
            &args(&[
                "--kafka",
                KAFKA,
                "--input-topic",
                &input,
                "--output-topic",
                &output,
                "--dead-letter-topic",
                &dead,
                "--stop-at-end",
                "--no-checkpoints",
                "--quiet",
                "-w",
                &w.to_string(),
            ]),
        );
        let mut got: Vec<String> = kafka_tool(&["tail", "--topic", &output])
            .lines()
            .map(str::to_string)
            .collect();
        got.sort();
        assert_eq!(got, expected, "{job} on Kafka, {w} workers: results");
        let letters = kafka_tool(&["tail", "--topic", &dead, "--headers"]);
        assert_eq!(
            letters.lines().count(),
            dead_expected,
            "{job}, {w} workers: dead letters"
        );
        assert!(
            letters
                .lines()
                .all(|l| l.contains("weir.origin={\"kafka\"")),
            "{letters}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn iot_on_kafka_equals_iot_on_a_file() {
    same_on_kafka("iot", "60000", "50", &[1, 2, 4]);
}

#[test]
fn metrics_on_kafka_equals_metrics_on_a_file() {
    same_on_kafka("metrics", "60000", "8", &[1, 2]);
}

#[test]
fn fraud_on_kafka_equals_fraud_on_a_file() {
    same_on_kafka("fraud", "60000", "300", &[1, 2]);
}

#[test]
fn bad_kafka_flags_fail_at_start_in_one_line() {
    broker();
    for (flags, says) in [
        (
            vec![
                "--kafka",
                KAFKA,
                "--input-topic",
                "weir-test-no-such-topic",
                "--no-checkpoints",
            ],
            "does not exist",
        ),
        (
            vec!["--kafka", KAFKA, "--delivery", "exactly-once"],
            "not built yet",
        ),
        (
            vec!["--kafka", KAFKA, "--input", "x.csv"],
            "leave out --input",
        ),
        (
            vec!["--kafka", KAFKA, "--kafka-config", "nonsense"],
            "KEY=VALUE",
        ),
        (vec!["--input-topic", "t"], "--kafka"),
    ] {
        let out = Command::new(example("iot"))
            .args(&flags)
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must fail");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
}
