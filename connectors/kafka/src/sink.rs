//! Kafka sinks: records to a topic, and dead letters to a topic.
//!
//! - [`KafkaSink`] writes each record as one message: the value JSON (or
//!   CSV, [`ValueFormat`]), the key chosen by the job ([`KafkaSink::key`];
//!   none by default, which spreads messages over partitions). Every worker
//!   writes its own records (a parallel sink). Delivery is **at least
//!   once**: each epoch's messages are flushed to the broker when the input
//!   passes the epoch ([`Sink::end_epoch`]), so a checkpoint never covers
//!   output the broker has not acknowledged; a restore may write the
//!   messages since the last checkpoint again. Or **exactly once**
//!   ([`KafkaSink::exactly_once`]): one transaction per checkpoint, written
//!   by one worker, with a commit log that lets a restore resume from
//!   exactly what is visible ([`crate::transactions`]).
//! - [`KafkaDeadLetterSink`] writes each dead letter in the spirit of Kafka
//!   Connect's dead-letter queue: the record's exact bytes as the value, and
//!   the reason, the source and the origin (JSON) as headers
//!   `weir.reason`, `weir.source` and `weir.origin`.
//!
//! A message the broker finally refuses (after librdkafka's own retries,
//! `message.timeout.ms`) stops the job with the broker's reason: at least
//! once means nothing may be dropped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;
use weir::{DeadLetter, Fault, Recovery, Sink, WorkerIndex};

use crate::config::KafkaConfig;
use crate::fault::fault;
use crate::transactions::{Identity, KafkaCommitLog, Transactions, DEFAULT_COMMIT_LOG};
use crate::value::{encode, ValueFormat};

/// How long an epoch's flush may wait for the broker before the engine
/// retries it (transient).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one wait for delivery reports lasts (rdkafka's `poll` waits
/// the whole of it).
const POLL_SLICE: Duration = Duration::from_millis(1);

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
        Self::with(config, &[])
    }

    /// A producer with `extra` settings on top of weir's defaults (the
    /// user's properties still override both).
    pub(crate) fn with(config: &KafkaConfig, extra: &[(&str, &str)]) -> Result<Self, Fault> {
        let mut defaults = vec![
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("queue.buffering.max.kbytes", "65536"),
        ];
        defaults.extend_from_slice(extra);
        let producer = config
            .client(&defaults)
            .create_with_context(Deliveries::default())
            .map_err(|e| fault("creating a producer", &e))?;
        Ok(Producing { producer })
    }

    /// The librdkafka producer (for transactions).
    pub(crate) fn producer(&self) -> &BaseProducer<Deliveries> {
        &self.producer
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
                    self.producer.poll(POLL_SLICE);
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
    ///
    /// Not `Producer::flush`: rdkafka's `BaseProducer` polls there in
    /// slices that last their whole 100 ms whatever arrives, so each epoch
    /// end stalled the worker for 100 ms or more (the latency bench's p99).
    /// Here: ask librdkafka to send lingering batches now (a flush with no
    /// wait), then serve delivery reports in 1 ms slices until none is
    /// outstanding.
    pub(crate) fn flush(&self) -> Result<(), Fault> {
        let started = Instant::now();
        let _ = self.producer.flush(Duration::ZERO);
        while self.producer.in_flight_count() > 0 {
            if started.elapsed() > FLUSH_TIMEOUT {
                return Err(Fault::transient(format!(
                    "kafka: flushing to the broker: {} messages unacknowledged after {FLUSH_TIMEOUT:?}",
                    self.producer.in_flight_count()
                )));
            }
            self.producer.poll(POLL_SLICE);
        }
        self.check()
    }
}

/// Chooses a record's message key.
type KeyOf<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// Encodes each of `records` into `value` and hands its key and value to
/// `send`.
fn encode_each<T: Serialize>(
    format: ValueFormat,
    topic: &str,
    key: &Option<KeyOf<T>>,
    records: &[T],
    value: &mut Vec<u8>,
    mut send: impl FnMut(Option<Vec<u8>>, &[u8]) -> Result<(), Fault>,
) -> Result<(), Fault> {
    for record in records {
        encode(format, record, value)
            .map_err(|e| Fault::fatal(format!("kafka: encoding a record for `{topic}`: {e}")))?;
        send(key.as_ref().map(|k| k(record)), value)?;
    }
    Ok(())
}

/// Writes records to a topic, at least or exactly once. See the [module docs](self).
pub struct KafkaSink<T> {
    config: KafkaConfig,
    topic: String,
    format: ValueFormat,
    key: Option<KeyOf<T>>,
    producer: Option<Producing>,
    value: Vec<u8>,
    /// Exactly-once: who writes, and (once open) the transactions.
    exactly: Option<Identity>,
    transactions: Option<Transactions>,
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
            exactly: self.exactly.clone(),
            transactions: None,
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
            exactly: None,
            transactions: None,
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

    /// Delivers exactly once through Kafka transactions with this
    /// `transactional.id` (unique to the job and sink, the same in every run
    /// of it), instead of at least once: see [`crate::transactions`]. The
    /// job must checkpoint, and must put [`KafkaSink::commit_log`] in
    /// `RunArgs::commit_logs`.
    pub fn exactly_once(mut self, transactional_id: &str) -> Self {
        self.exactly = Some(Identity {
            transactional_id: transactional_id.to_string(),
            log_topic: DEFAULT_COMMIT_LOG.to_string(),
        });
        self
    }

    /// The commit log's topic (default `weir-commits`) of an exactly-once sink.
    pub fn commit_log_topic(mut self, topic: &str) -> Self {
        if let Some(id) = &mut self.exactly {
            id.log_topic = topic.to_string();
        }
        self
    }

    /// The commit log the engine asks before it plans a restore (for
    /// `RunArgs::commit_logs`; `sink` is the sink's name in the job), or
    /// `None` for an at-least-once sink.
    pub fn commit_log(&self, sink: &str) -> Option<KafkaCommitLog> {
        let id = self.exactly.clone()?;
        Some(KafkaCommitLog::new(sink, self.config.clone(), id))
    }

    fn transactions(&mut self) -> Result<&mut Transactions, Fault> {
        if self.transactions.is_none() {
            let Some(id) = &self.exactly else {
                return Err(Fault::fatal(
                    "kafka: an at-least-once sink has no transactions",
                ));
            };
            self.transactions = Some(Transactions::start(&self.config, id.clone())?);
        }
        self.transactions
            .as_mut()
            .ok_or_else(|| Fault::fatal("kafka: no transactions"))
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
        if self.exactly.is_some() {
            return self.transactions().map(|_| ());
        }
        self.producer().map(|_| ())
    }

    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), Fault> {
        if self.exactly.is_none() {
            return self.write(records);
        }
        self.transactions()?.check()?;
        let Some(transactions) = self.transactions.as_mut() else {
            return Err(Fault::fatal("kafka: no transactions"));
        };
        let topic = &self.topic;
        encode_each(
            self.format,
            topic,
            &self.key,
            records,
            &mut self.value,
            |key, value| {
                // Part of a batch may be in the transaction: a retry would repeat it.
                transactions
                    .write(topic, epoch, key, value)
                    .map_err(|f| Fault::fatal(f.message))
            },
        )?;
        records.clear();
        Ok(())
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        self.producer()?.check()?;
        let Some(producer) = &self.producer else {
            return Err(Fault::fatal("kafka: no producer"));
        };
        let topic = &self.topic;
        encode_each(
            self.format,
            topic,
            &self.key,
            records,
            &mut self.value,
            |key, value| producer.send(topic, key.as_deref(), value, None),
        )?;
        records.clear();
        Ok(())
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        self.producer()?.flush()
    }

    /// At least once, every worker writes; exactly once, worker 0 alone
    /// (one transaction per commit for the whole job).
    fn parallel(&self) -> bool {
        self.exactly.is_none()
    }

    fn exactly_once(&self) -> bool {
        self.exactly.is_some()
    }

    fn needs_checkpoints(&self) -> bool {
        self.exactly.is_some()
    }

    fn staging_survives_crash(&self) -> bool {
        self.exactly.is_none()
    }

    fn recover(&mut self, recovery: &Recovery) -> Result<(), Fault> {
        self.transactions()?.recover(recovery.restored)
    }

    fn prepare(&mut self, _through: u64) -> Result<(), Fault> {
        self.transactions()?.check()
    }

    fn commit(&mut self, through: u64) -> Result<(), Fault> {
        let topic = self.topic.clone();
        self.transactions()?.commit(&topic, through)
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
