//! The iot job's window aggregation read from a Kafka topic on the local
//! broker (`scripts/kafka.sh start`, which this bench runs), as a user runs
//! `iot --kafka … --stop-at-end`.
//!
//! The input is written once by this bench's own producer (not weir's
//! generator): readings `{"device","ts_ms","value"}` from 1 000 devices,
//! 20 000 per second of event time, up to 500 ms out of order, reading `i`
//! on partition `i % 4` of a 4-partition topic. In the same run:
//! - the baseline: a hand-written single-thread rdkafka consumer that reads
//!   the way weir's source does, no slower (`BaseConsumer`, all partitions
//!   assigned, read to their end offsets, weir's consumer settings:
//!   `read_committed`, `fetch.wait.max.ms=10`, the 16 MiB prefetch cap,
//!   no partition EOF events; each partition's own queue polled round-robin
//!   with zero timeout, up to 4096 messages per turn), that decodes each
//!   value with `serde_json` and keeps count/min/max/avg per device and 60 s
//!   window in a hash map;
//! - weir `-w 1` and `-w 2`: `KafkaSource` (bounded at the end offsets) →
//!   event time (2 s bound) → `key_by` → 60 s tumbling window.
//!
//! Every run's windows are checked equal to the baseline's; the figures are
//! throughputs and their ratios. Run: `cargo bench -p weir-benches --bench
//! kafka`. Optional: `-- --events N` (default 2 000 000), `--runs R`
//! (default 3).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir::rng::SplitMix64;
use weir_benches::{
    arg, engine_minute_rows, measure, ratio, start_kafka, Fields, MinuteWindows, Row,
};
use weir_connectors::Reading;
use weir_kafka::{create_topic, KafkaConfig, KafkaSource};

const BOOTSTRAP: &str = "127.0.0.1:9092";
const PARTITIONS: i32 = 4;
/// Messages read from one partition queue per round (weir's source reads
/// up to 4096 per split per activation).
const BATCH: usize = 4096;

/// How many messages `topic` holds (0 if it does not exist).
fn messages_in(topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .create()
        .expect("a client");
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .map(|(low, high)| high - low)
                .unwrap_or(0)
        })
        .sum()
}

/// Writes `events` readings to `topic` (once: a topic that holds them is
/// reused).
fn write_input(topic: &str, events: u64) {
    create_topic(&KafkaConfig::new(BOOTSTRAP), topic, PARTITIONS).expect("topic");
    if messages_in(topic) == events as i64 {
        return;
    }
    assert_eq!(
        messages_in(topic),
        0,
        "{topic} holds a partial input: reset the broker"
    );
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()
        .expect("a producer");
    let mut rng = SplitMix64::new(0x5eed_f11e);
    let start_ms = 1_767_225_600_000u64; // 2026-01-01
    let mut value = String::new();
    for i in 0..events {
        let device = rng.below(1_000);
        let ts_ms = start_ms + i / 20 - rng.below(500).min(i / 20);
        let v = (rng.below(80_000) as f64 - 20_000.0) / 1_000.0;
        value.clear();
        value.push_str(&format!(
            "{{\"device\":{device},\"ts_ms\":{ts_ms},\"value\":{v}}}"
        ));
        let mut record: BaseRecord<'_, (), str> = BaseRecord::to(topic)
            .partition((i % PARTITIONS as u64) as i32)
            .payload(value.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
        if i % 10_000 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flushed");
}

/// The hand-written loop, one thread: read every partition to its end,
/// decode, aggregate. It consumes the way weir's source does (see
/// `connectors/kafka/src/source.rs`) and no slower: the same consumer
/// settings, each partition's own queue (`split_partition_queue`) polled
/// round-robin with a zero timeout, up to a batch per queue per round,
/// the consumer's main queue served once per round for events; when a whole
/// round found nothing it waits up to 1 ms on the main queue instead of
/// spinning.
fn baseline(topic: &str) -> Vec<Row> {
    let consumer: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", BOOTSTRAP)
            .set("group.id", "weir-bench-baseline")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10")
            .set("queued.max.messages.kbytes", "16384")
            .set("enable.partition.eof", "false")
            .create()
            .expect("a consumer"),
    );
    // (partition, end offset) of the partitions that hold messages.
    let mut ends = Vec::new();
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("offsets");
        if high > low {
            ends.push((p, high));
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .expect("assignment");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut queues: Vec<_> = ends
        .into_iter()
        .map(|(p, end)| {
            let queue = consumer
                .split_partition_queue(topic, p)
                .expect("a partition queue");
            (queue, end)
        })
        .collect();
    let mut windows = MinuteWindows::default();
    while !queues.is_empty() {
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            panic!("consumer: {e}");
        }
        let mut any = false;
        queues.retain(|(queue, end)| {
            for _ in 0..BATCH {
                let Some(message) = queue.poll(Duration::ZERO) else {
                    return true;
                };
                let message = message.expect("a message");
                any = true;
                let r: Reading =
                    serde_json::from_slice(message.payload().unwrap_or_default()).expect("JSON");
                windows.add(r.device, r.ts_ms, r.value);
                if message.offset() + 1 >= *end {
                    return false;
                }
            }
            true
        });
        if !any && !queues.is_empty() {
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(1)) {
                panic!("consumer: {e}");
            }
        }
    }
    windows.rows()
}

fn engine(topic: &str, workers: usize) -> Vec<Row> {
    let source = KafkaSource::<Reading>::new(KafkaConfig::new(BOOTSTRAP), topic)
        .expect("the topic")
        .stop_at_end(true);
    let fields = Fields {
        device: |r: &Reading| r.device,
        ts_ms: |r: &Reading| r.ts_ms,
        value: |r: &Reading| r.value,
    };
    engine_minute_rows(source, fields, workers, 100)
}

fn main() {
    let events = arg("--events", 2_000_000);
    let runs = arg("--runs", 3) as usize;
    start_kafka();
    let topic = format!("weir-bench-readings-{events}");
    write_input(&topic, events);
    println!(
        "kafka: topic {topic}, {events} messages on {PARTITIONS} partitions, {runs} runs each"
    );
    let expected = baseline(&topic);
    println!("{} windows", expected.len());
    let base = measure("kafka baseline (1 thread)", runs, events, &expected, || {
        baseline(&topic)
    });
    let one = measure("kafka weir -w 1", runs, events, &expected, || {
        engine(&topic, 1)
    });
    let two = measure("kafka weir -w 2", runs, events, &expected, || {
        engine(&topic, 2)
    });
    ratio(
        "kafka weir -w 1 / baseline throughput",
        &one,
        &base,
        "goal >= 0.8",
    );
    ratio(
        "kafka weir -w 2 / weir -w 1 throughput",
        &two,
        &one,
        "goal >= 1.7",
    );
}
