//! The broker stops and starts again while a job reads and writes through
//! it: the job retries (counted in its summary, shown in its status line),
//! and once the broker is back it resumes with nothing lost. The test runs
//! a broker of its own (`WEIR_KAFKA_PORT`), so stopping it disturbs no
//! other test.
//!
//! It found a defect: each poll took one of the client's queued error
//! events (one per failed connection attempt while the broker was away)
//! and backed off, so after the restart the source often read nothing
//! for minutes. Polls now drain that backlog.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::copy::{batch, copy_job, events_on, Event};
use support::{join_within, kafka_sh, produce_on, spawn_job, Control};
use weir_kafka::{create_topic, KafkaConfig};

/// Not 9092 and not its controller's 9093: the shared broker's.
const PORT: u16 = 9192;
const PARTITIONS: i32 = 3;
const LIMIT: Duration = Duration::from_secs(120);

/// Stops the test's broker however the test ends.
struct OwnBroker;

impl Drop for OwnBroker {
    fn drop(&mut self) {
        kafka_sh("stop", Some(PORT));
    }
}

#[test]
fn a_broker_outage_mid_run_is_retried_and_loses_nothing() {
    kafka_sh("start", Some(PORT));
    let _broker = OwnBroker;
    let config = KafkaConfig::new(format!("127.0.0.1:{PORT}"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let input = format!("weir-test-outage-in-{stamp}");
    let output = format!("weir-test-outage-out-{stamp}");
    create_topic(&config, &input, PARTITIONS).expect("creates the input topic");
    create_topic(&config, &output, 2).expect("creates the output topic");

    let (before_messages, before) = batch(0..PARTITIONS, 0, 200, 1);
    let (after_messages, after) = batch(0..PARTITIONS, 200, 400, 1);
    produce_on(&config, &input, &before_messages);

    let control = Control::default();
    // Epochs of 1 s: the at-least-once sink flushes while the broker is away.
    let args = weir::RunArgs::threads(2);
    let running = spawn_job(args, copy_job(&config, &input, &output, &control, false));
    control.wait_read(before.len() as u64, LIMIT);

    kafka_sh("stop", Some(PORT));
    std::thread::sleep(Duration::from_secs(5));
    assert!(!running.is_finished(), "the job outlives the outage");
    kafka_sh("start", Some(PORT));

    produce_on(&config, &input, &after_messages);
    control.wait_read((before.len() + after.len()) as u64, LIMIT);
    control.stop();
    let summary = join_within(running, LIMIT).expect("the job ends once stopped");

    let got = events_on(&config, &output);
    let distinct: BTreeSet<&Event> = got.iter().collect();
    let expected: BTreeSet<&Event> = before.iter().chain(&after).collect();
    assert_eq!(distinct, expected, "every event written, none invented");
    assert!(
        summary.retries > 0,
        "the outage was retried (and shown in the status line): {summary:?}"
    );
    eprintln!(
        "outage: {} written ({} distinct), {} retries",
        got.len(),
        distinct.len(),
        summary.retries
    );
}
