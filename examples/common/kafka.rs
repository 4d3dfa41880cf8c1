//! The example jobs on Kafka: `--kafka HOST:PORT` reads the input topic,
//! writes results and dead letters to topics.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use weir_kafka::{KafkaConfig, KafkaSink, StartAt, ValueFormat};

/// How results reach the output topic.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Delivery {
    /// Each epoch flushed to the broker when the input passes it; after a
    /// restore, results since the last checkpoint are written again.
    AtLeastOnce,
    /// Through Kafka transactions: each checkpoint's results become
    /// visible to `read_committed` consumers at once, when the checkpoint
    /// is complete; a restore neither loses nor repeats any (needs
    /// checkpoints).
    ExactlyOnce,
}

/// Where records' event time comes from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum EventTime {
    /// The record's own time field (`ts_ms`).
    #[default]
    Field,
    /// The Kafka message's timestamp (create time, or log-append time if
    /// the topic keeps that); the value's time field is then ignored.
    KafkaTimestamp,
}

/// Kafka flags.
#[derive(Args, Clone, Debug, Default)]
pub struct KafkaArgs {
    /// Read from and write to Kafka at these bootstrap servers
    /// (HOST:PORT[,HOST:PORT…]) instead of the generator or files.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka: Option<String>,

    /// Kafka: the topic to read (default weir-<job>-input).
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub input_topic: Option<String>,

    /// Kafka: the topic results go to (default weir-<job>-output).
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub output_topic: Option<String>,

    /// Kafka: the topic dead letters go to, their exact bytes as values and
    /// the reason and origin in headers (default weir-<job>-dead-letters).
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub dead_letter_topic: Option<String>,

    /// Kafka: how results reach the output topic (default: exactly-once
    /// when the job checkpoints, at-least-once with --no-checkpoints).
    #[arg(long, value_enum, value_name = "MODE", requires = "kafka")]
    pub delivery: Option<Delivery>,

    /// Kafka: read each partition up to the offset that was its end when
    /// the job started, then finish, flushing every window (a bounded run).
    #[arg(long, requires = "kafka")]
    pub stop_at_end: bool,

    /// Kafka: where partitions the checkpoint does not know start:
    /// earliest, latest, committed (the group's offsets) or a timestamp in ms.
    #[arg(
        long,
        value_name = "POSITION",
        default_value = "earliest",
        requires = "kafka"
    )]
    pub start_at: Option<StartAt>,

    /// Kafka: where event time comes from: field (the value's ts_ms) or
    /// kafka-timestamp (each message's timestamp; a message without one is
    /// a dead letter).
    #[arg(
        long,
        value_enum,
        value_name = "FROM",
        default_value = "field",
        requires = "kafka"
    )]
    pub event_time: Option<EventTime>,

    /// Kafka: the encoding of input and output values: json or csv (the
    /// record's fields in declaration order, no header).
    #[arg(
        long,
        value_name = "json|csv",
        default_value = "json",
        requires = "kafka"
    )]
    pub value_format: Option<ValueFormat>,

    /// Kafka: a librdkafka property, KEY=VALUE (repeatable; TLS and SASL
    /// included; secret values are never printed).
    #[arg(long, value_name = "KEY=VALUE", requires = "kafka")]
    pub kafka_config: Vec<String>,

    /// Kafka: a file of librdkafka properties, KEY=VALUE lines (read before
    /// --kafka-config, which overrides it).
    #[arg(long, value_name = "PATH", requires = "kafka")]
    pub kafka_config_file: Option<PathBuf>,
}

/// The Kafka side of a job: the cluster and its topics.
#[derive(Clone, Debug)]
pub struct Kafka {
    pub config: KafkaConfig,
    pub input_topic: String,
    pub output_topic: String,
    pub dead_letter_topic: String,
    pub stop_at_end: bool,
    pub start_at: StartAt,
    pub format: ValueFormat,
    pub event_time: EventTime,
    /// Exactly-once: the output's `transactional.id`.
    pub transactional_id: Option<String>,
}

impl Kafka {
    /// The output sink, keyed by `key`.
    pub fn sink<T: serde::Serialize + 'static>(
        &self,
        key: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static,
    ) -> KafkaSink<T> {
        let sink = KafkaSink::new(self.config.clone(), &self.output_topic)
            .format(self.format)
            .key(key);
        match &self.transactional_id {
            Some(id) => sink.exactly_once(id),
            None => sink,
        }
    }
}

impl KafkaArgs {
    /// The cluster and topics of `job`, if `--kafka` was given; a bad flag
    /// fails here, before the job starts.
    pub fn resolve(&self, job: &str, checkpoints: bool) -> anyhow::Result<Option<Kafka>> {
        let Some(bootstrap) = &self.kafka else {
            return Ok(None);
        };
        if bootstrap.trim().is_empty() {
            bail!("--kafka needs the bootstrap servers, HOST:PORT");
        }
        let delivery = match (self.delivery, checkpoints) {
            (Some(Delivery::ExactlyOnce), false) => bail!(
                "--delivery exactly-once needs checkpoints: leave out --no-checkpoints, or use --delivery at-least-once"
            ),
            (Some(d), _) => d,
            (None, true) => Delivery::ExactlyOnce,
            (None, false) => Delivery::AtLeastOnce,
        };
        let mut config = KafkaConfig::new(bootstrap.trim());
        if let Some(path) = &self.kafka_config_file {
            config.add_file(path)?;
        }
        for pair in &self.kafka_config {
            config.set_pair(pair)?;
        }
        let topic = |given: &Option<String>, kind: &str| {
            given
                .clone()
                .unwrap_or_else(|| format!("weir-{job}-{kind}"))
        };
        let output_topic = topic(&self.output_topic, "output");
        // The same in every run of this job on this topic, so a restore
        // fences what an earlier run left and finds its commit log entry.
        let transactional_id =
            (delivery == Delivery::ExactlyOnce).then(|| format!("weir-{job}-{output_topic}"));
        Ok(Some(Kafka {
            config,
            input_topic: topic(&self.input_topic, "input"),
            output_topic,
            transactional_id,
            dead_letter_topic: topic(&self.dead_letter_topic, "dead-letters"),
            stop_at_end: self.stop_at_end,
            start_at: self.start_at.unwrap_or_default(),
            format: self.value_format.unwrap_or_default(),
            event_time: self.event_time.unwrap_or_default(),
        }))
    }
}
