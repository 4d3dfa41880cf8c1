//! The copy job several Kafka tests run: numbered events read through the
//! [`Controlled`] Kafka source and written unchanged by the at-least-once
//! sink, so what a run read can be told from the output topic alone.

use serde::{Deserialize, Serialize};
use weir::Watermarks;
use weir_kafka::{KafkaConfig, KafkaSink, KafkaSource};

use super::{consume_all_on, Control, Controlled, Outgoing};

/// Message `seq` of partition `partition` (on a fresh topic written without
/// transactions, `seq` is its offset too).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Event {
    pub partition: i32,
    pub seq: i64,
    pub ts_ms: u64,
}

/// Messages `from..to` of each of `partitions`, event time
/// `1000 + seq * ts_step` ms, keyed by `seq`; and the events, sorted.
pub fn batch(
    partitions: std::ops::Range<i32>,
    from: i64,
    to: i64,
    ts_step: u64,
) -> (Vec<Outgoing>, Vec<Event>) {
    let mut messages = Vec::new();
    let mut events = Vec::new();
    for seq in from..to {
        for partition in partitions.clone() {
            let e = Event {
                partition,
                seq,
                ts_ms: 1_000 + seq as u64 * ts_step,
            };
            messages.push((
                partition,
                seq.to_string().into_bytes(),
                serde_json::to_vec(&e).expect("json"),
            ));
            events.push(e);
        }
    }
    events.sort();
    (messages, events)
}

/// The job: `input`'s events copied to `output`, read through `control`.
pub fn copy_job(
    config: &KafkaConfig,
    input: &str,
    output: &str,
    control: &Control,
    stop_at_end: bool,
) -> impl Fn(&mut weir::Pipeline<'_>) + Send + Sync + 'static {
    let (config, input, output, control) = (
        config.clone(),
        input.to_string(),
        output.to_string(),
        control.clone(),
    );
    move |p| {
        let source = KafkaSource::<Event>::new(config.clone(), &input)
            .expect("the topic exists")
            .stop_at_end(stop_at_end);
        p.source(
            "events",
            Controlled {
                inner: source,
                control: control.clone(),
            },
        )
        .event_time(|e: &Event| e.ts_ms, Watermarks::ascending())
        .sink("copy", KafkaSink::new(config.clone(), &output));
    }
}

/// Every event in `topic` on the cluster of `config`, sorted.
pub fn events_on(config: &KafkaConfig, topic: &str) -> Vec<Event> {
    let mut events: Vec<Event> = consume_all_on(config, topic)
        .iter()
        .map(|m| serde_json::from_slice(&m.value).expect("JSON values"))
        .collect();
    events.sort();
    events
}
