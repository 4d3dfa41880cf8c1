//! weir's Kafka connectors, on a real broker through rdkafka (librdkafka
//! built from source, bundled): [`KafkaSource`] reads one topic's partitions
//! as splits, [`KafkaSink`] writes records to a topic, and
//! [`KafkaDeadLetterSink`] writes dead letters to one. [`KafkaConfig`] holds
//! the bootstrap servers and any librdkafka property.
//!
//! Only `BaseConsumer` and `BaseProducer` are used: no async runtime.

mod admin;
mod config;
mod fault;
mod sink;
mod source;
pub mod transactions;
mod value;

pub use admin::{add_partitions, create_topic, create_topic_with, delete_topics};
pub use config::KafkaConfig;
pub use sink::{KafkaDeadLetterSink, KafkaSink};
pub use source::{KafkaSource, StartAt};
pub use transactions::{KafkaCommitLog, DEFAULT_COMMIT_LOG};
pub use value::ValueFormat;
