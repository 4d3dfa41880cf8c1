//! Kafka sinks: records to a topic, and dead letters to a topic.
//!
//! - [`KafkaSink`] writes each record as one message: the value JSON (or
//!   CSV, [`ValueFormat`]), the key chosen by the job ([`KafkaSink::key`];
//!   none by default, which spreads messages over partitions). Every worker
//!   writes its own records (a parallel sink). Delivery is **at least
//!   once**: each epoch's messages are flushed to the broker when the input
//!   passes the epoch ([`Sink::end_epoch`]), so a checkpoint never covers
//!   output the broker has not acknowledged; a restore may write the
//!   messages since the last checkpoint again. (Exactly-once through Kafka
//!   transactions is not built yet.)
//! - [`KafkaDeadLetterSink`] writes each dead letter in the spirit of Kafka
//!   Connect's dead-letter queue: the record's exact bytes as the value, and
//!   the reason, the source and the origin (JSON) as headers
//!   `weir.reason`, `weir.source` and `weir.origin`.
//!
//! A message the broker finally refuses (after librdkafka's own retries,
//! `message.timeout.ms`) stops the job with the broker's reason: at least
//! once means nothing may be dropped.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;
use weir::{DeadLetter, Fault, Sink, WorkerIndex};

use crate::config::KafkaConfig;
use crate::fault::fault;
use crate::value::{encode, ValueFormat};

/// How long an epoch's flush may wait for the broker before the engine
/// retries it (transient).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Remembers the first message the broker refused.
#[derive(Default)]
pub(crate) struct Deliveries {
    refused: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut refused) = self.refused.lock() {
                refused.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// One worker's producer, with the checks every sink here needs.
pub(crate) struct Producing {
    producer: BaseProducer<Deliveries>,
}

impl Producing {
    pub(crate) fn new(config: &KafkaConfig) -> Result<Self, Fault> {
        let producer = config
            .client(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("queue.buffering.max.kbytes", "65536"),
            ])
            .create_with_context(Deliveries::default())
            .map_err(|e| fault("creating a producer", &e))?;
        Ok(Producing { producer })
    }

    /// Queues one message, waiting while librdkafka's queue is full.
    pub(crate) fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), Fault> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((e, back)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    // Let deliveries drain the queue, then try again.
                    self.producer.poll(Duration::from_millis(10));
                    record = back;
                }
                Err((e, _)) => return Err(fault(&format!("writing to topic `{topic}`"), &e)),
            }
        }
    }

    /// Serves delivery reports; a refused message is a fatal fault.
    pub(crate) fn check(&self) -> Result<(), Fault> {
        self.producer.poll(Duration::ZERO);
        let refused = self
            .producer
            .context()
            .refused
            .lock()
            .ok()
            .and_then(|r| r.clone());
        match refused {
            Some(reason) => Err(Fault::fatal(format!(
                "kafka: the broker refused a message: {reason}"
            ))),
            None => Ok(()),
        }
    }

    /// Waits until the broker has acknowledged every queued message.
    pub(crate) fn flush(&self) -> Result<(), Fault> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| fault("flushing to the broker", &e))?;
        self.check()
    }
}

/// Chooses a record's message key.
type KeyOf<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// Writes records to a topic, at least once. See the [module docs](self).
pub struct KafkaSink<T> {
    config: KafkaConfig,
    topic: String,
    format: ValueFormat,
    key: Option<KeyOf<T>>,
    producer: Option<Producing>,
    value: Vec<u8>,
}

impl<T> Clone for KafkaSink<T> {
    /// A copy not yet opened.
    fn clone(&self) -> Self {
        KafkaSink {
            config: self.config.clone(),
            topic: self.topic.clone(),
            format: self.format,
            key: self.key.clone(),
            producer: None,
            value: Vec::new(),
        }
    }
}

impl<T: Serialize + 'static> KafkaSink<T> {
    /// Writes to `topic` on the cluster of `config`, JSON values, no keys.
    pub fn new(config: KafkaConfig, topic: &str) -> Self {
        KafkaSink {
            config,
            topic: topic.to_string(),
            format: ValueFormat::Json,
            key: None,
            producer: None,
            value: Vec::new(),
        }
    }

    /// The encoding of message values.
    pub fn format(mut self, format: ValueFormat) -> Self {
        self.format = format;
        self
    }

    /// Keys each message by `key(record)` (so a key's messages share a
    /// partition, in order).
    pub fn key(mut self, key: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    fn producer(&mut self) -> Result<&Producing, Fault> {
        if self.producer.is_none() {
            self.producer = Some(Producing::new(&self.config)?);
        }
        self.producer
            .as_ref()
            .ok_or_else(|| Fault::fatal("kafka: no producer"))
    }
}

impl<T: Serialize + 'static> Sink<T> for KafkaSink<T> {
    fn open(&mut self, _: WorkerIndex) -> Result<(), Fault> {
        self.producer().map(|_| ())
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        let mut value = std::mem::take(&mut self.value);
        let (topic, format, key) = (self.topic.clone(), self.format, self.key.clone());
        let producer = self.producer()?;
        producer.check()?;
        for record in records.iter() {
            encode(format, record, &mut value).map_err(|e| {
                Fault::fatal(format!("kafka: encoding a record for `{topic}`: {e}"))
            })?;
            let key = key.as_ref().map(|k| k(record));
            producer.send(&topic, key.as_deref(), &value, None)?;
        }
        records.clear();
        self.value = value;
        Ok(())
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        self.producer()?.flush()
    }

    fn parallel(&self) -> bool {
        true
    }
}

/// Writes dead letters to a topic: the exact bytes as the value, why and
/// where in headers. See the [module docs](self).
pub struct KafkaDeadLetterSink {
    config: KafkaConfig,
    topic: String,
    producer: Option<Producing>,
}

impl Clone for KafkaDeadLetterSink {
    fn clone(&self) -> Self {
        KafkaDeadLetterSink::new(self.config.clone(), &self.topic)
    }
}

impl KafkaDeadLetterSink {
    /// Writes to `topic` on the cluster of `config`.
    pub fn new(config: KafkaConfig, topic: &str) -> Self {
        KafkaDeadLetterSink {
            config,
            topic: topic.to_string(),
            producer: None,
        }
    }
}

impl Sink<DeadLetter> for KafkaDeadLetterSink {
    fn open(&mut self, _: WorkerIndex) -> Result<(), Fault> {
        self.producer = Some(Producing::new(&self.config)?);
        Ok(())
    }

    fn write(&mut self, letters: &mut Vec<DeadLetter>) -> Result<(), Fault> {
        if self.producer.is_none() {
            self.producer = Some(Producing::new(&self.config)?);
        }
        let Some(producer) = &self.producer else {
            return Err(Fault::fatal("kafka: no producer"));
        };
        producer.check()?;
        for letter in letters.iter() {
            let origin = serde_json::to_string(&letter.origin).unwrap_or_default();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "weir.reason",
                    value: Some(letter.reason.as_str()),
                })
                .insert(Header {
                    key: "weir.source",
                    value: Some(letter.source.as_str()),
                })
                .insert(Header {
                    key: "weir.origin",
                    value: Some(origin.as_str()),
                });
            producer.send(&self.topic, None, letter.raw.as_bytes(), Some(headers))?;
        }
        letters.clear();
        Ok(())
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        match &self.producer {
            Some(producer) => producer.flush(),
            None => Ok(()),
        }
    }
}
