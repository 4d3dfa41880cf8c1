//! A job reads a topic, transforms it and writes another topic, on the real
//! broker: the output equals an independent computation on 1, 2 and 4
//! workers, malformed messages become dead letters with their exact bytes
//! and coordinates (also on a dead-letter topic, with the reason and origin
//! in headers), and a bounded run reads each partition to its end.

mod support;

use serde::{Deserialize, Serialize};
use support::{broker, consume_all, produce, topic, Outgoing};
use weir::testing::run_workers;
use weir::{DeadLetter, FieldValue, Watermarks};
use weir_kafka::{KafkaDeadLetterSink, KafkaSink, KafkaSource, StartAt};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Payment {
    card: u32,
    amount: i64,
    ts_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
struct Doubled {
    card: u32,
    amount: i64,
}

const PARTITIONS: i32 = 4;

/// The input: payment `i` on partition `i % 4`, with three malformed
/// messages at known places. Returns the messages and the payments.
fn input() -> (Vec<Outgoing>, Vec<Payment>) {
    let mut messages = Vec::new();
    let mut payments = Vec::new();
    for i in 0..2_000u64 {
        let p = Payment {
            card: (i * 7 % 13) as u32,
            amount: (i as i64 % 101) - 50,
            ts_ms: 1_000 + i * 10,
        };
        let value = serde_json::to_vec(&p).expect("json");
        messages.push(((i % 4) as i32, p.card.to_string().into_bytes(), value));
        payments.push(p);
        if i == 10 || i == 1_001 || i == 1_999 {
            messages.push((
                (i % 4) as i32,
                b"bad".to_vec(),
                format!("{{\"card\": {i}, oops").into_bytes(),
            ));
        }
    }
    (messages, payments)
}

/// (partition, offset, bytes) of the malformed messages, from the input.
fn malformed(messages: &[Outgoing]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut offsets = [0i64; PARTITIONS as usize];
    let mut out = Vec::new();
    for (partition, _, value) in messages {
        let offset = offsets[*partition as usize];
        offsets[*partition as usize] += 1;
        if value.ends_with(b"oops") {
            out.push((i64::from(*partition), offset, value.clone()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_job_reads_a_topic_and_writes_another_with_equal_results_on_1_2_and_4_workers() {
    let config = broker();
    let input_topic = topic(&config, "round-trip-in", PARTITIONS);
    let (messages, payments) = input();
    produce(&input_topic, &messages);
    let mut expected: Vec<Doubled> = payments
        .iter()
        .filter(|p| p.amount != 0)
        .map(|p| Doubled {
            card: p.card,
            amount: p.amount * 2,
        })
        .collect();
    expected.sort();
    let expected_dead = malformed(&messages);

    for workers in [1, 2, 4] {
        let output_topic = topic(&config, &format!("round-trip-out-w{workers}"), 3);
        let (cfg, input, output) = (config.clone(), input_topic.clone(), output_topic.clone());
        let dead: Vec<DeadLetter> = run_workers(workers, move |p, capture| {
            let source = KafkaSource::<Payment>::new(cfg.clone(), &input)
                .expect("the topic exists")
                .start_at(StartAt::Earliest)
                .stop_at_end(true);
            p.source("payments", source)
                .event_time(
                    |r: &Payment| r.ts_ms,
                    Watermarks::bounded(std::time::Duration::from_secs(1)),
                )
                .filter(|r| r.amount != 0)
                .map(|r| Doubled {
                    card: r.card,
                    amount: r.amount * 2,
                })
                .sink(
                    "doubled",
                    KafkaSink::new(cfg.clone(), &output)
                        .key(|d: &Doubled| d.card.to_string().into_bytes()),
                );
            p.dead_letters().sink("dead", capture.sink());
        });

        let consumed = consume_all(&output_topic);
        let mut got: Vec<Doubled> = consumed
            .iter()
            .map(|m| serde_json::from_slice(&m.value).expect("JSON values"))
            .collect();
        got.sort();
        assert_eq!(got, expected, "{workers} workers: the output topic");
        for m in &consumed {
            let d: Doubled = serde_json::from_slice(&m.value).expect("json");
            assert_eq!(m.key, d.card.to_string().into_bytes(), "keyed by card");
        }

        let mut coordinates: Vec<(i64, i64, Vec<u8>)> = dead
            .iter()
            .map(|d| {
                assert_eq!(d.source, "payments");
                assert!(d.reason.starts_with("invalid JSON"), "{}", d.reason);
                let at = |name| d.origin.coordinate("kafka", name).cloned();
                assert_eq!(
                    at("topic").as_ref().and_then(FieldValue::as_str),
                    Some(input_topic.as_str())
                );
                assert_eq!(
                    at("key").as_ref().and_then(FieldValue::as_bytes),
                    Some(&b"bad"[..])
                );
                assert!(at("timestamp")
                    .as_ref()
                    .and_then(FieldValue::as_i64)
                    .is_some_and(|t| t > 0));
                (
                    at("partition")
                        .as_ref()
                        .and_then(FieldValue::as_i64)
                        .expect("partition"),
                    at("offset")
                        .as_ref()
                        .and_then(FieldValue::as_i64)
                        .expect("offset"),
                    d.raw.as_bytes().to_vec(),
                )
            })
            .collect();
        coordinates.sort();
        assert_eq!(
            coordinates, expected_dead,
            "{workers} workers: dead letters"
        );
    }
}

#[test]
fn dead_letters_go_to_a_topic_with_exact_bytes_and_the_reason_in_headers() {
    let config = broker();
    let input_topic = topic(&config, "dlq-in", 2);
    let dead_topic = topic(&config, "dlq-dead", 1);
    let messages = vec![
        (
            0,
            b"k".to_vec(),
            br#"{"card":1,"amount":5,"ts_ms":10}"#.to_vec(),
        ),
        (1, b"k".to_vec(), vec![0xff, 0xfe, b'{']),
        (0, b"k".to_vec(), b"not json".to_vec()),
    ];
    produce(&input_topic, &messages);
    let (cfg, input, dead) = (config.clone(), input_topic.clone(), dead_topic.clone());
    let out: Vec<Payment> = run_workers(2, move |p, capture| {
        let source = KafkaSource::<Payment>::new(cfg.clone(), &input)
            .expect("exists")
            .stop_at_end(true);
        p.source("payments", source)
            .event_time(|r: &Payment| r.ts_ms, Watermarks::ascending())
            .sink("out", capture.sink());
        p.dead_letters()
            .sink("dead", KafkaDeadLetterSink::new(cfg.clone(), &dead));
    });
    assert_eq!(
        out,
        vec![Payment {
            card: 1,
            amount: 5,
            ts_ms: 10
        }]
    );
    let letters = consume_all(&dead_topic);
    let mut values: Vec<Vec<u8>> = letters.iter().map(|m| m.value.clone()).collect();
    values.sort();
    assert_eq!(values, vec![b"not json".to_vec(), vec![0xff, 0xfe, b'{']]);
    for m in &letters {
        assert!(
            m.headers["weir.reason"].starts_with("invalid JSON"),
            "{:?}",
            m.headers
        );
        assert_eq!(m.headers["weir.source"], "payments");
        let origin: serde_json::Value =
            serde_json::from_str(&m.headers["weir.origin"]).expect("origin JSON");
        assert_eq!(origin["kafka"]["topic"], input_topic.as_str());
        let partition = origin["kafka"]["partition"].as_i64().expect("partition");
        let offset = origin["kafka"]["offset"].as_i64().expect("offset");
        assert_eq!(
            (partition, offset),
            if m.value == b"not json" {
                (0, 1)
            } else {
                (1, 0)
            },
            "coordinates of {:?}",
            m.value
        );
    }
}

#[test]
fn a_missing_topic_is_one_clear_error() {
    let config = broker();
    let e = KafkaSource::<Payment>::new(config, "weir-test-no-such-topic")
        .err()
        .expect("refused");
    assert!(!e.is_transient());
    assert!(e.to_string().contains("does not exist"), "{e}");
}
