//! The real broker for the Kafka tests: started by `scripts/kafka.sh` (the
//! one script tests, examples, benches and CI use), never mocked. A test
//! fails, not skips, when it cannot start.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir_kafka::{create_topic, KafkaConfig};

/// The broker's address (`WEIR_KAFKA_PORT` as `scripts/kafka.sh` reads it).
pub fn bootstrap() -> String {
    let port = std::env::var("WEIR_KAFKA_PORT").unwrap_or_else(|_| "9092".into());
    format!("127.0.0.1:{port}")
}

/// Starts the broker once per test binary (a no-op when it runs).
pub fn broker() -> KafkaConfig {
    static START: Once = Once::new();
    START.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
        let status = Command::new("bash")
            .arg(&script)
            .arg("start")
            .status()
            .expect("runs scripts/kafka.sh");
        assert!(
            status.success(),
            "the Kafka broker did not start (scripts/kafka.sh start): these tests need it"
        );
    });
    KafkaConfig::new(bootstrap())
}

/// A topic of its own for one test, with `partitions` partitions.
pub fn topic(config: &KafkaConfig, name: &str, partitions: i32) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let topic = format!("weir-test-{name}-{}-{nanos}", std::process::id());
    create_topic(config, &topic, partitions).expect("creates the topic");
    topic
}

/// A message to write: (partition, key, value).
pub type Outgoing = (i32, Vec<u8>, Vec<u8>);

/// Writes messages, in order, and waits for them.
pub fn produce(topic: &str, messages: &[Outgoing]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .create()
        .expect("a producer");
    for (partition, key, value) in messages {
        let mut record = BaseRecord::to(topic)
            .partition(*partition)
            .key(key.as_slice())
            .payload(value.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(10));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flushes");
}

/// One consumed message: partition, offset, key, value, headers.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

/// Every committed message of `topic`, read up to its end now
/// (`read_committed`), in partition and offset order.
pub fn consume_all(topic: &str) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", "weir-test-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    let mut ends = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, Duration::from_secs(10))
            .expect("offsets");
        if high > low {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Offset(low))
                .expect("tpl");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The consumer's position, not the last message: with transactions the
    // last offsets are commit markers, which no message carries.
    let behind = |next: &BTreeMap<i32, i64>| {
        let position = consumer.position().unwrap_or_default();
        ends.iter().any(|(p, end)| {
            let at = match position.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(n)) => n,
                _ => 0,
            };
            at.max(next.get(p).copied().unwrap_or(0)) < *end
        })
    };
    while behind(&next) {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.expect("a message");
        let mut headers = BTreeMap::new();
        if let Some(h) = message.headers() {
            for Header { key, value } in h.iter() {
                headers.insert(
                    key.to_string(),
                    String::from_utf8_lossy(value.unwrap_or_default()).into_owned(),
                );
            }
        }
        next.insert(message.partition(), message.offset() + 1);
        out.push(Consumed {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out.sort();
    out
}
