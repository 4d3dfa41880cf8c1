//! The example jobs on Kafka, on the real broker (`scripts/kafka.sh`
//! starts it; these tests fail, not skip, without it): `weir-kafka produce`
//! writes a job's generated records to a topic, the job reads it with
//! `--kafka … --stop-at-end` and writes its results to another topic, and
//! what `weir-kafka tail` reads there equals what the same job writes to a
//! file from the same generated records, on 1, 2 and 4 workers; dead
//! letters reach their topic. Bad Kafka flags fail at start in one line.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{
    args, example, output_within, run, sorted_lines, temp_dir, two_process_hostfile, wait_within,
};

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
    let child = Command::new(tool())
        .args(["--kafka", KAFKA])
        .args(a)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs weir-kafka");
    let out = wait_within(child, Duration::from_secs(180));
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

/// Writes `job`'s generated records (`events`, `keys`, a few malformed) to
/// a new 4-partition topic, generator split s to partition s, and returns
/// the topic.
fn produced(job: &str, events: &str, keys: &str) -> String {
    broker();
    let input = unique(&format!("{job}-in"));
    kafka_tool(&["topics", &format!("{input}:4")]);
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
    input
}

/// The results, sorted, and the number of dead letters of `job` run on a
/// file from the same generated records as [`produced`] wrote.
fn file_results(job: &str, events: &str, keys: &str, dir: &Path) -> (Vec<String>, usize) {
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
    (expected, sorted_lines(&dir.join("dead.jsonl")).len())
}

/// What a `read_committed` consumer sees in `topic`, sorted.
fn committed_lines(topic: &str) -> Vec<String> {
    let mut got: Vec<String> = kafka_tool(&["tail", "--topic", topic])
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    got
}

/// New output (3 partitions) and dead-letter (1) topics for the run `tag`.
fn output_topics(tag: &str) -> (String, String) {
    let output = unique(&format!("{tag}-out"));
    let dead = unique(&format!("{tag}-dead"));
    kafka_tool(&["topics", &format!("{output}:3"), &format!("{dead}:1")]);
    (output, dead)
}

/// Flags that checkpoint to `dir` every 200 ms (exactly-once output by
/// default).
fn checkpoint_flags(dir: &Path) -> Vec<String> {
    args(&[
        "--checkpoint-dir",
        dir.to_str().expect("utf-8"),
        "--epoch-interval",
        "200ms",
    ])
}

/// The flags of a bounded Kafka run of a job from `input` to `output`.
fn kafka_flags(input: &str, output: &str, dead: &str) -> Vec<String> {
    args(&[
        "--kafka",
        KAFKA,
        "--input-topic",
        input,
        "--output-topic",
        output,
        "--dead-letter-topic",
        dead,
        "--stop-at-end",
    ])
}

/// A job's results from a file run and from Kafka runs are the same lines:
/// without checkpoints (at least once), or with them (exactly once, the
/// default), on each of `workers`.
fn same_on_kafka(job: &str, events: &str, keys: &str, workers: &[usize], checkpoints: bool) {
    let input = produced(job, events, keys);
    let dir = temp_dir(&format!("kafka-{job}-{checkpoints}"));
    let (expected, dead_expected) = file_results(job, events, keys, &dir);
    for &w in workers {
        let (output, dead) = output_topics(&format!("{job}-w{w}"));
        let mut flags = kafka_flags(&input, &output, &dead);
        flags.extend(args(&["--quiet", "-w", &w.to_string()]));
        if checkpoints {
            flags.extend(checkpoint_flags(&dir.join(format!("ck-w{w}"))));
        } else {
            flags.push("--no-checkpoints".into());
        }
        run(job, &flags);
        let got = committed_lines(&output);
        assert_eq!(
            got, expected,
            "{job} on Kafka, {w} workers, checkpoints {checkpoints}: results"
        );
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
    same_on_kafka("iot", "60000", "50", &[1, 2, 4], false);
}

#[test]
fn iot_on_kafka_exactly_once_equals_iot_on_a_file() {
    same_on_kafka("iot", "60000", "50", &[1, 2], true);
}

#[test]
fn metrics_on_kafka_equals_metrics_on_a_file() {
    same_on_kafka("metrics", "60000", "8", &[1, 2], false);
}

#[test]
fn fraud_on_kafka_equals_fraud_on_a_file() {
    same_on_kafka("fraud", "60000", "300", &[1, 2], false);
    same_on_kafka("fraud", "60000", "300", &[2], true);
}

/// Runs `job` with `flags` as two processes of one worker each.
fn run_two_processes(job: &str, flags: &[String], dir: &Path) {
    let hostfile = two_process_hostfile(dir);
    let children: Vec<_> = (0..2)
        .map(|p| {
            let mut all = flags.to_vec();
            all.extend(args(&["-n", "2", "-p", &p.to_string(), "--hostfile"]));
            all.push(hostfile.display().to_string());
            spawn(job, &all, None)
        })
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let out = wait_within(child, Duration::from_secs(180));
        assert!(
            out.status.success(),
            "{job} process {p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Two processes of one worker each read the topic's partitions between
/// them: the results equal the file run's, at least once without
/// checkpoints and exactly once with them (one checkpoint directory).
#[test]
fn iot_on_kafka_on_two_processes_equals_iot_on_a_file() {
    let (events, keys) = ("60000", "50");
    let input = produced("iot", events, keys);
    let dir = temp_dir("kafka-two-processes");
    let (expected, dead_expected) = file_results("iot", events, keys, &dir);
    for checkpoints in [false, true] {
        let (output, dead) = output_topics(&format!("iot-n2-{checkpoints}"));
        let mut flags = kafka_flags(&input, &output, &dead);
        flags.push("--quiet".into());
        if checkpoints {
            flags.extend(checkpoint_flags(&dir.join("ck")));
        } else {
            flags.push("--no-checkpoints".into());
        }
        run_two_processes("iot", &flags, &dir);
        assert_eq!(
            committed_lines(&output),
            expected,
            "iot on Kafka, 2 processes, checkpoints {checkpoints}: results"
        );
        let letters = kafka_tool(&["tail", "--topic", &dead]);
        assert_eq!(
            letters.lines().count(),
            dead_expected,
            "2 processes, checkpoints {checkpoints}: dead letters"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
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
            vec![
                "--kafka",
                KAFKA,
                "--delivery",
                "exactly-once",
                "--no-checkpoints",
            ],
            "needs checkpoints",
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
        let out = output_within(Command::new(example("iot")).args(&flags));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must fail");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flags:?}: {stderr}");
    }
}

/// Starts `job` with `flags` (and `env`), stderr captured.
fn spawn(job: &str, flags: &[String], env: Option<(&str, &str)>) -> std::process::Child {
    let mut command = Command::new(example(job));
    command
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((key, value)) = env {
        command.env(key, value);
    }
    command.spawn().expect("starts the job")
}

#[test]
fn a_commit_lost_after_its_checkpoint_completed_is_produced_again_exactly_once() {
    let (events, keys) = ("300000", "50");
    let input = produced("iot", events, keys);
    let dir = temp_dir("kafka-lost-commit");
    let (expected, _) = file_results("iot", events, keys, &dir);
    let (output, dead) = output_topics("iot-lost-commit");
    let mut flags = kafka_flags(&input, &output, &dead);
    flags.extend(checkpoint_flags(&dir.join("ck")));
    flags.extend(args(&["--status-interval", "0s"]));
    // The sink dies once the checkpoint of epoch 2 (or a later one) is
    // complete, before the transaction holding its results commits: that
    // transaction is lost.
    let crashed = spawn("iot", &flags, Some(("WEIR_FAILPOINT", "lost-commit:2")));
    let out = wait_within(crashed, Duration::from_secs(120));
    let (status, stderr) = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!status.success(), "the failpoint stops the job: {stderr}");
    assert!(stderr.contains("failpoint"), "{stderr}");
    let before = committed_lines(&output);
    assert!(
        before.len() < expected.len(),
        "the crash came before the end"
    );
    // The restart resumes from the checkpoint before the lost commit.
    let resumed = spawn("iot", &flags, None);
    let out = wait_within(resumed, Duration::from_secs(120));
    let (status, stderr) = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("committed only through epoch") && stderr.contains("resuming there"),
        "{stderr}"
    );
    assert_eq!(
        committed_lines(&output),
        expected,
        "every result exactly once"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Kills a bounded Kafka run of the iot job with `kill -9` at random
/// moments on 1 and 2 workers, then lets it finish: with exactly-once
/// delivery every result is there once; with at-least-once none is missing.
fn kill_on_kafka(delivery: &str) {
    let (events, keys) = ("600000", "50");
    let input = produced("iot", events, keys);
    let dir = temp_dir(&format!("kafka-kill-{delivery}"));
    let (expected, _) = file_results("iot", events, keys, &dir);
    let (output, dead) = output_topics(&format!("iot-kill-{delivery}"));
    let mut flags = kafka_flags(&input, &output, &dead);
    flags.extend(checkpoint_flags(&dir.join("ck")));
    flags.extend(args(&["--quiet", "--delivery", delivery]));
    let seed = std::env::var("WEIR_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let mut rng = weir::rng::SplitMix64::new(seed);
    let rounds = std::env::var("WEIR_KAFKA_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    eprintln!("kill test on Kafka ({delivery}): {rounds} kills, WEIR_KILL_SEED={seed}");
    let mut kills = 0;
    for round in 0..rounds {
        let mut f = flags.clone();
        f.extend(args(&["-w", &(1 + round % 2).to_string()]));
        let mut child = spawn("iot", &f, None);
        let after = Duration::from_millis(500 + rng.next_u64() % 1_500);
        let started = Instant::now();
        while started.elapsed() < after && child.try_wait().expect("waits").is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().expect("waits").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        let _ = child.wait();
    }
    assert!(
        kills >= rounds / 2,
        "the job lived through most kills ({kills} of {rounds})"
    );
    let last = spawn("iot", &flags, None);
    let out = wait_within(last, Duration::from_secs(300));
    let (status, stderr) = (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(status.success(), "{stderr}");
    let got = committed_lines(&output);
    if delivery == "exactly-once" {
        assert_eq!(got, expected, "seed {seed}: every result exactly once");
    } else {
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(
            distinct, expected,
            "seed {seed}: every result, nothing else"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kill_minus_nine_with_exactly_once_output_loses_and_doubles_nothing() {
    kill_on_kafka("exactly-once");
}

#[test]
fn kill_minus_nine_with_at_least_once_output_loses_nothing() {
    kill_on_kafka("at-least-once");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `--event-time kafka-timestamp`: a job's event time is each message's
/// Kafka timestamp, not the value's `ts_ms`.
#[test]
fn event_time_can_come_from_the_kafka_timestamp() {
    broker();
    let dir = temp_dir("kafka-timestamps");
    let from_timestamps = |job: &str, input: &str, w: usize| {
        let (output, dead) = output_topics(&format!("{job}-ts-w{w}"));
        let mut flags = kafka_flags(input, &output, &dead);
        flags.extend(args(&[
            "--event-time",
            "kafka-timestamp",
            "--quiet",
            "--no-checkpoints",
            "-w",
            &w.to_string(),
        ]));
        run(job, &flags);
        committed_lines(&output)
    };
    // Messages stamped with their records' event times: the same results
    // as the file run, windows, alerts and the fraud job's timers alike.
    for (job, keys, workers) in [("iot", "50", &[1, 2][..]), ("fraud", "300", &[2][..])] {
        let stamped = unique(&format!("{job}-stamped"));
        kafka_tool(&[
            "topics",
            &format!("{stamped}:4"),
            "--config",
            "retention.ms=-1",
        ]);
        kafka_tool(&[
            "produce",
            "--job",
            job,
            "--topic",
            &stamped,
            "--events",
            "60000",
            "--keys",
            keys,
            "--malformed-fraction",
            "0.001",
            "--timestamps",
            "event-time",
        ]);
        let job_dir = dir.join(job);
        std::fs::create_dir_all(&job_dir).expect("a test dir");
        let (expected, _) = file_results(job, "60000", keys, &job_dir);
        for &w in workers {
            assert_eq!(
                from_timestamps(job, &stamped, w),
                expected,
                "{job}, {w} workers, event time from Kafka timestamps equal to the records'"
            );
        }
    }
    // Messages stamped when they were written: every result lies in the
    // minutes of this test, none in the records' own 2023.
    let before = now_ms();
    let input = produced("iot", "60000", "50");
    let after = now_ms();
    let got = from_timestamps("iot", &input, 1);
    assert!(!got.is_empty(), "the run on write times has results");
    for line in &got {
        let row: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
        let start = row["start_ms"].as_u64().expect("start_ms");
        assert!(
            start + 60_000 >= before && start <= after,
            "{line}: outside the write times {before}..{after}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
