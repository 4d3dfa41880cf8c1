//! A bounded run (`stop_at_end`) over a topic written in transactions, as
//! an exactly-once sink writes one: each commit leaves a marker that takes
//! an offset but is never read, so the end offset is past the last record.
//! The run must still end, with every committed record read once and no
//! aborted one.

mod support;

use std::time::Duration;

use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use support::copy::{batch, copy_job, events_on, Event};
use support::{join_within, spawn_job, topic, Control};

const PARTITIONS: i32 = 2;
const LIMIT: Duration = Duration::from_secs(60);

/// Sends `messages` in one transaction, committed or aborted.
fn in_transaction(
    producer: &BaseProducer,
    topic: &str,
    messages: &[support::Outgoing],
    commit: bool,
) {
    producer.begin_transaction().expect("begins");
    for message in messages {
        support::send(producer, topic, message, None);
    }
    producer.flush(LIMIT).expect("flushes");
    if commit {
        producer.commit_transaction(LIMIT).expect("commits");
    } else {
        producer.abort_transaction(LIMIT).expect("aborts");
    }
}

#[test]
fn a_bounded_run_over_a_transactional_topic_ends_after_its_last_commit() {
    let config = support::broker();
    let input = topic(&config, "txn-in", PARTITIONS);
    let output = topic(&config, "txn-out", 2);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("transactional.id", format!("weir-test-{input}"))
        .create()
        .expect("a producer");
    producer.init_transactions(LIMIT).expect("initializes");
    let (first_messages, first) = batch(0..PARTITIONS, 0, 30, 1);
    let (aborted_messages, _) = batch(0..PARTITIONS, 30, 40, 1);
    let (last_messages, last) = batch(0..PARTITIONS, 40, 60, 1);
    in_transaction(&producer, &input, &first_messages, true);
    in_transaction(&producer, &input, &aborted_messages, false);
    // The topic ends with a commit marker.
    in_transaction(&producer, &input, &last_messages, true);

    let control = Control::default();
    let run = spawn_job(
        weir::RunArgs::threads(2),
        copy_job(&config, &input, &output, &control, true),
    );
    join_within(run, LIMIT).expect("the bounded run ends");

    let got = events_on(&config, &output);
    let mut expected: Vec<Event> = first.into_iter().chain(last).collect();
    expected.sort();
    assert_eq!(got, expected, "every committed record once, no aborted one");
}
