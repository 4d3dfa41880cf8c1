//! Kafka sinks: records to a topic, and dead letters to a topic.
//!
//! - [`KafkaSink`] writes each record as one message: the value JSON (or
//!   CSV, [`ValueFormat`]), the key chosen by the job ([`KafkaSink::key`];
//!   none by default, which spreads messages over partitions). Every worker
//!   writes its own records (a parallel sink). Delivery is **at least
//!   once**: when the input passes an epoch ([`Sink::end_epoch`]) its
//!   lingering batches are sent at once, without waiting for the broker,
//!   and in a job that checkpoints the epoch counts toward a checkpoint
//!   only once the broker has acknowledged all its messages
//!   ([`Sink::durable`]), so a checkpoint never covers output the broker
//!   has not acknowledged, and the worker never stalls at an epoch end; at
//!   the end of input the sink waits for every acknowledgement. A restore
//!   may write the messages since the last checkpoint again. Or **exactly once**
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

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
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

/// Remembers the first message the broker refused, and how many messages
/// of each flush generation are still unacknowledged.
#[derive(Default)]
pub(crate) struct Deliveries {
    refused: Mutex<Option<String>>,
    /// Per generation: messages counted in at its mark minus reports
    /// received (a report may come before its generation is marked, so a
    /// count can be negative meanwhile). Zero counts are removed.
    unacked: Mutex<BTreeMap<usize, i64>>,
}

impl Deliveries {
    fn settle(&self, generation: usize, by: i64) {
        if let Ok(mut unacked) = self.unacked.lock() {
            let count = unacked.entry(generation).or_insert(0);
            *count += by;
            if *count == 0 {
                unacked.remove(&generation);
            }
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The message's flush generation ([`Producing::mark`]).
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, generation: usize) {
        if let Err((e, _)) = result {
            if let Ok(mut refused) = self.refused.lock() {
                refused.get_or_insert_with(|| e.to_string());
            }
        }
        self.settle(generation, -1);
    }
}

/// One worker's producer, with the checks every sink here needs.
///
/// Messages are sent in *flush generations*: [`Producing::mark`] closes the
/// current one (an epoch end) and [`Producing::acknowledged`] tells, without
/// waiting, whether every message of a closed generation has its delivery
/// report, so an epoch end need not stall the worker until the broker has
/// answered.
pub(crate) struct Producing {
    producer: BaseProducer<Deliveries>,
    /// The generation messages sent now belong to.
    generation: AtomicUsize,
    /// Messages sent in it so far (counted in at its mark).
    sent: AtomicI64,
    /// Epochs ended and not yet known durable, with their generations.
    ended: VecDeque<(u64, usize)>,
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
        Ok(Producing {
            producer,
            generation: AtomicUsize::new(0),
            sent: AtomicI64::new(0),
            ended: VecDeque::new(),
        })
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
        let generation = self.generation.load(Ordering::Relaxed);
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, generation).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
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

    /// Closes the current flush generation and returns it: the messages
    /// sent so far are its (or an earlier one's). Asks librdkafka to send
    /// lingering batches now, without waiting.
    pub(crate) fn mark(&self) -> usize {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let sent = self.sent.swap(0, Ordering::Relaxed);
        self.producer.context().settle(generation, sent);
        let _ = self.producer.flush(Duration::ZERO);
        generation
    }

    /// Whether every message of generations `<= generation` has its
    /// delivery report (serving the reports that are in, without waiting);
    /// a refused message is a fatal fault.
    pub(crate) fn acknowledged(&self, generation: usize) -> Result<bool, Fault> {
        self.check()?;
        let unacked = self.producer.context().unacked.lock();
        Ok(unacked.is_ok_and(|u| u.range(..=generation).next().is_none()))
    }

    /// [`Sink::end_epoch`] for a producer: epochs `<= through` are sent;
    /// close their generation without waiting for the broker. At the end
    /// of input (`u64::MAX`), wait until everything is acknowledged.
    pub(crate) fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        if through == u64::MAX {
            self.flush()?;
            self.ended.clear();
            return Ok(());
        }
        self.check()?;
        let generation = self.mark();
        self.ended.push_back((through, generation));
        Ok(())
    }

    /// [`Sink::durable`] for a producer: whether the broker has
    /// acknowledged every message of epochs `<= through`.
    pub(crate) fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        let newest = self
            .ended
            .iter()
            .take_while(|(epoch, _)| *epoch <= through)
            .last()
            .map(|(_, generation)| *generation);
        let Some(generation) = newest else {
            return self.check().map(|()| true);
        };
        if !self.acknowledged(generation)? {
            return Ok(false);
        }
        self.ended.retain(|(epoch, _)| *epoch > through);
        Ok(true)
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

    fn producer(&mut self) -> Result<&mut Producing, Fault> {
        if self.producer.is_none() {
            self.producer = Some(Producing::new(&self.config)?);
        }
        self.producer
            .as_mut()
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

    fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        self.producer()?.end_epoch(through)
    }

    fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        match self.producer.as_mut() {
            Some(producer) => producer.durable(through),
            None => Ok(true),
        }
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

    fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        match self.producer.as_mut() {
            Some(producer) => producer.end_epoch(through),
            None => Ok(()),
        }
    }

    fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        match self.producer.as_mut() {
            Some(producer) => producer.durable(through),
            None => Ok(true),
        }
    }
}
