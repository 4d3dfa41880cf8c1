//! The Kafka source: one split per partition of one topic.
//!
//! - **Splits.** Partition `p` is split `p`, so it is read by worker
//!   `p % workers` of the whole job: weir assigns partitions itself
//!   (`assign`, never a consumer-group subscription), deterministically, with
//!   no rebalancing. A partition added between two runs is a split the
//!   checkpoint does not know, read from the start position.
//! - **Offsets.** A split's position is the offset of the next message to
//!   read. weir's checkpoint is the source of truth for them: a restore
//!   resumes every partition at its checkpointed offset. After each complete
//!   checkpoint the source commits the offsets it has reached to its group
//!   (`group.id`, default `weir-<topic>`), for lag monitoring only; they may
//!   be ahead of the checkpoint's by what was read since.
//! - **Start positions** ([`StartAt`]): earliest, latest, the first offset at
//!   or after a timestamp (`offsets_for_times`), or the group's committed
//!   offsets (earliest where it has none). Each is resolved to a concrete
//!   offset when the split opens.
//! - **Bounded runs** ([`KafkaSource::stop_at_end`]): each partition is read
//!   up to the offset that was its end when it opened, then the split is
//!   done, as Flink's bounded Kafka source does; the job then finishes and
//!   flushes every window. A restored run takes each partition's end
//!   anew, also for a partition an earlier run had read to its end, so
//!   `--restore` of a finished run's checkpoint reads what was written
//!   since. On a topic written in transactions the end is
//!   reached when the consumer's position passes it (the commit markers
//!   take offsets but are never read).
//! - **Values** are decoded as JSON or CSV ([`ValueFormat`]) into the job's
//!   record type. A message that does not decode becomes a dead letter with
//!   its exact value bytes and its coordinates: `{"kafka": {"topic",
//!   "partition", "offset", "key", "timestamp"}}`; the job keeps running.
//! - **Memory and flow control.** The consumer's prefetch queue is capped
//!   (`queued.max.messages.kbytes`, 16 MiB): a job that lags stops polling,
//!   the queue fills, and librdkafka stops fetching those partitions
//!   instead of buffering.
//! - **Outages.** librdkafka reconnects by itself; an error it reports while
//!   a broker is down is a transient fault, which the engine retries with
//!   backoff and shows in the status line; nothing is lost, since the
//!   position only moves past messages returned. Each poll drains the
//!   client's whole error backlog (one event per failed connection
//!   attempt) and reports it only when the partition had nothing to read,
//!   so a partition is read again as soon as the broker is back.
//! - **Event time** from a field of the value (the job's extractor,
//!   `event_time`), or from the message's Kafka timestamp
//!   ([`KafkaSource::timestamps`] and the job's `source_time`): create time
//!   or log-append time, whichever the topic keeps. A message without one
//!   (or with a negative one) is a dead letter.
//! - **Isolation.** The consumer reads `read_committed`: records of aborted
//!   or open transactions are never read.

use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use weir::dead_letter::{FieldValue, Fields, Origin};
use weir::source::{position_of, position_word, SplitStart};
use weir::{
    ConfigError, DeadLetter, Fault, Raw, ReadItem, ReadStatus, Source, SplitId, SplitReader, Waker,
};

use crate::config::KafkaConfig;
use crate::fault::fault;
use crate::value::{Decoder, ValueFormat};

/// How long a metadata or offsets request to the broker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a partition the checkpoint does not know starts.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// The first message still in the partition.
    #[default]
    Earliest,
    /// After the last message in the partition when it opens.
    Latest,
    /// The first message with a timestamp at or after this (ms since the
    /// Unix epoch), or the end if none is.
    Timestamp(i64),
    /// The group's committed offset, or the earliest where it has none.
    Committed,
}

impl std::str::FromStr for StartAt {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "earliest" => Ok(StartAt::Earliest),
            "latest" => Ok(StartAt::Latest),
            "committed" => Ok(StartAt::Committed),
            other => other.parse::<i64>().map(StartAt::Timestamp).map_err(|_| {
                ConfigError::new(format!(
                    "start position `{other}`: use earliest, latest, committed or a timestamp in ms"
                ))
            }),
        }
    }
}

/// Reads one topic's partitions as splits. See the [module docs](self).
pub struct KafkaSource<T> {
    config: KafkaConfig,
    topic: String,
    group: String,
    partitions: Vec<i32>,
    start: StartAt,
    stop_at_end: bool,
    format: ValueFormat,
    /// Whether records carry their message's timestamp as event time.
    timestamps: bool,
    /// The offsets the open readers have reached, for the group commit.
    reached: Arc<Mutex<BTreeMap<i32, i64>>>,
    /// The consumer this worker's splits share, once open.
    consumer: Option<Arc<BaseConsumer>>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for KafkaSource<T> {
    /// A copy not yet opened (each worker opens its own consumer).
    fn clone(&self) -> Self {
        KafkaSource {
            config: self.config.clone(),
            topic: self.topic.clone(),
            group: self.group.clone(),
            partitions: self.partitions.clone(),
            start: self.start,
            stop_at_end: self.stop_at_end,
            format: self.format,
            timestamps: self.timestamps,
            reached: Arc::new(Mutex::new(BTreeMap::new())),
            consumer: None,
            _record: PhantomData,
        }
    }
}

impl<T: DeserializeOwned + 'static> KafkaSource<T> {
    /// The partitions of `topic` on the cluster of `config`, asked of the
    /// broker now. A topic that does not exist is a configuration error.
    pub fn new(config: KafkaConfig, topic: &str) -> Result<Self, Fault> {
        let partitions = partitions_of(&config, topic)?;
        Decoder::new::<T>(ValueFormat::Json).map_err(|e| Fault::fatal(e.to_string()))?;
        Ok(KafkaSource {
            group: format!("weir-{topic}"),
            config,
            topic: topic.to_string(),
            partitions,
            start: StartAt::Earliest,
            stop_at_end: false,
            format: ValueFormat::Json,
            timestamps: false,
            reached: Arc::new(Mutex::new(BTreeMap::new())),
            consumer: None,
            _record: PhantomData,
        })
    }

    /// Where partitions the checkpoint does not know start.
    pub fn start_at(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// Reads each partition only up to the offset that was its end when it
    /// opened, then ends (a bounded run).
    pub fn stop_at_end(mut self, on: bool) -> Self {
        self.stop_at_end = on;
        self
    }

    /// Gives each record its message's Kafka timestamp (ms) as the event
    /// time it was read with, for a job that takes event time from the
    /// source (`SourceBuilder::source_time`). A message without a timestamp
    /// becomes a dead letter.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// The encoding of message values (JSON by default).
    pub fn format(mut self, format: ValueFormat) -> Result<Self, ConfigError> {
        Decoder::new::<T>(format)?;
        self.format = format;
        Ok(self)
    }

    /// The consumer group offsets are committed to for lag monitoring
    /// (default `weir-<topic>`).
    pub fn group(mut self, group: &str) -> Self {
        self.group = group.to_string();
        self
    }

    /// The topic's partitions, as the broker reported them.
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// This worker's consumer.
    fn consumer(&self) -> Result<BaseConsumer, Fault> {
        self.config
            .client(&[
                ("group.id", &self.group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // An offset retention deleted is an error, not a silent skip.
                ("auto.offset.reset", "error"),
                ("isolation.level", "read_committed"),
                ("fetch.wait.max.ms", "10"),
                ("queued.max.messages.kbytes", "16384"),
                ("enable.partition.eof", "false"),
            ])
            .create()
            .map_err(|e| fault("creating a consumer", &e))
    }

    /// Where `partition` starts when the checkpoint does not say.
    fn start_of(&self, consumer: &BaseConsumer, partition: i32) -> Result<i64, Fault> {
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
            .map_err(|e| fault(&format!("reading the offsets of partition {partition}"), &e))?;
        let asked = match self.start {
            StartAt::Earliest => return Ok(low),
            StartAt::Latest => return Ok(high),
            StartAt::Timestamp(ms) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, partition, Offset::Offset(ms))
                    .map_err(|e| fault("asking for offsets by time", &e))?;
                consumer
                    .offsets_for_times(tpl, REQUEST_TIMEOUT)
                    .map_err(|e| fault("asking for offsets by time", &e))?
            }
            StartAt::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, partition);
                consumer
                    .committed_offsets(tpl, REQUEST_TIMEOUT)
                    .map_err(|e| fault("reading the group's committed offsets", &e))?
            }
        };
        let offset = asked
            .find_partition(&self.topic, partition)
            .map(|e| e.offset());
        Ok(match offset {
            Some(Offset::Offset(n)) => n.clamp(low, high),
            // No message at or after the time: the end.
            Some(Offset::End) => high,
            // Nothing committed: the earliest.
            _ if self.start == StartAt::Committed => low,
            _ => high,
        })
    }
}

/// The partitions of `topic`.
fn partitions_of(config: &KafkaConfig, topic: &str) -> Result<Vec<i32>, Fault> {
    let consumer: BaseConsumer = config
        .client(&[("allow.auto.create.topics", "false")])
        .create()
        .map_err(|e| fault("creating a client", &e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| fault(&format!("reading the metadata of topic `{topic}`"), &e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(missing(topic));
    };
    if found.error().is_some() || found.partitions().is_empty() {
        return Err(missing(topic));
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

fn missing(topic: &str) -> Fault {
    Fault::fatal(format!(
        "kafka: topic `{topic}` does not exist: create it (scripts/kafka.sh topics {topic}:4) or name another"
    ))
}

impl<T: DeserializeOwned + 'static> Source for KafkaSource<T> {
    type Item = T;

    fn splits(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn split_ids(&self) -> Vec<SplitId> {
        self.partitions.iter().map(|p| SplitId(*p as u32)).collect()
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
        let consumer = Arc::new(self.consumer()?);
        let mut assignment = TopicPartitionList::new();
        let mut opened = Vec::with_capacity(splits.len());
        for start in splits {
            let partition = i32::try_from(start.split.0).map_err(|_| {
                Fault::fatal(format!("split {} is no Kafka partition", start.split.0))
            })?;
            let next = match start.position {
                Some(position) => position_word(position, 0)? as i64,
                None => self.start_of(&consumer, partition)?,
            };
            let end = if self.stop_at_end {
                let (_, high) = consumer
                    .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
                    .map_err(|e| fault("reading the end offsets", &e))?;
                Some(high)
            } else {
                None
            };
            assignment
                .add_partition_offset(&self.topic, partition, Offset::Offset(next))
                .map_err(|e| fault("assigning partitions", &e))?;
            opened.push((partition, next, end));
        }
        consumer
            .assign(&assignment)
            .map_err(|e| fault("assigning partitions", &e))?;
        let decoder =
            Arc::new(Decoder::new::<T>(self.format).map_err(|e| Fault::fatal(e.to_string()))?);
        let strays: Strays = Arc::default();
        let mut readers: Vec<Box<dyn SplitReader<T>>> = Vec::with_capacity(opened.len());
        for (partition, next, end) in opened {
            let queue = consumer
                .split_partition_queue(&self.topic, partition)
                .ok_or_else(|| {
                    Fault::fatal(format!("kafka: no queue for partition {partition}"))
                })?;
            readers.push(Box::new(PartitionReader {
                consumer: consumer.clone(),
                queue,
                topic: self.topic.clone(),
                partition,
                next,
                end,
                decoder: decoder.clone(),
                strays: strays.clone(),
                timestamps: self.timestamps,
                reached: self.reached.clone(),
                pending: None,
                _record: PhantomData,
            }));
        }
        self.consumer = Some(consumer);
        Ok(readers)
    }

    fn checkpoint_complete(&mut self, _epoch: u64) -> Result<(), Fault> {
        let Some(consumer) = &self.consumer else {
            return Ok(());
        };
        let reached = self.reached.lock().map(|r| r.clone()).unwrap_or_default();
        if reached.is_empty() {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in reached {
            offsets
                .add_partition_offset(&self.topic, partition, Offset::Offset(next))
                .map_err(|e| fault("committing offsets", &e))?;
        }
        // For lag monitoring only: a failure is not worth stopping for.
        if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            eprintln!("weir: kafka: committing offsets to group for lag monitoring: {e}");
        }
        Ok(())
    }
}

/// Messages that reached the consumer's main queue instead of their
/// partition's, by partition. Fetched between `assign` and the split of
/// the partition queues (librdkafka forwards a partition to its own queue
/// only from the split on), they precede everything in that partition's
/// queue; every poll moves them here before it reads a partition queue, so
/// none is skipped or read out of order.
type Strays = Arc<Mutex<BTreeMap<i32, VecDeque<OwnedMessage>>>>;

/// Reads one partition from the queue the worker's consumer split off for it.
struct PartitionReader<T> {
    consumer: Arc<BaseConsumer>,
    queue:
        rdkafka::consumer::base_consumer::PartitionQueue<rdkafka::consumer::DefaultConsumerContext>,
    topic: String,
    partition: i32,
    /// The offset of the next message to return.
    next: i64,
    /// Where a bounded run ends.
    end: Option<i64>,
    decoder: Arc<Decoder>,
    /// Messages of this worker's partitions that came on the main queue.
    strays: Strays,
    /// Whether records carry their message's timestamp.
    timestamps: bool,
    reached: Arc<Mutex<BTreeMap<i32, i64>>>,
    /// A fault met after records were already returned in the same call.
    pending: Option<Fault>,
    _record: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> PartitionReader<T> {
    /// The record in `message`, or a dead letter with its coordinates.
    fn item(&self, message: &impl Message) -> ReadItem<T> {
        let value = message.payload().unwrap_or_default();
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) | Timestamp::LogAppendTime(ms) => ms,
            Timestamp::NotAvailable => -1,
        };
        let reason = match self.decoder.decode(value) {
            Ok(record) if !self.timestamps => return ReadItem::Record(record),
            Ok(record) => match u64::try_from(timestamp) {
                Ok(ms) => return ReadItem::Timed(record, ms),
                Err(_) => "the message has no timestamp to take event time from".to_string(),
            },
            Err(reason) => reason,
        };
        let mut at = Fields::new()
            .with("topic", self.topic.as_str())
            .with("partition", i64::from(self.partition))
            .with("offset", message.offset());
        at.insert("key", FieldValue::bytes(message.key().unwrap_or_default()));
        at.insert("timestamp", timestamp);
        ReadItem::Bad(Box::new(DeadLetter {
            source: String::new(),
            origin: Origin::source("kafka", at),
            reason,
            raw: Raw::bytes(value),
        }))
    }

    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }

    /// In a bounded run with nothing left to read: whether the consumer's
    /// position has reached the end. Transaction markers (and aborted
    /// records) take offsets but are never returned, so on a topic written
    /// in transactions the last record's offset stays below the end; the
    /// consumer's position moves past them. Only the end is taken from it:
    /// below the end, `next` moves with records returned alone.
    fn skip_markers_at_end(&mut self) {
        let Some(end) = self.end else {
            return;
        };
        if self.next >= end {
            return;
        }
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        let at = positions
            .find_partition(&self.topic, self.partition)
            .map(|p| p.offset());
        if let Some(Offset::Offset(at)) = at {
            if at >= end {
                self.next = end;
            }
        }
    }
}

impl<T: DeserializeOwned> SplitReader<T> for PartitionReader<T> {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        if let Some(pending) = self.pending.take() {
            return Err(pending);
        }
        if self.done() {
            return Ok(ReadStatus::Done);
        }
        // Serves the consumer's events (errors, statistics), and keeps any
        // message that came on its main queue for its partition's reader.
        // The whole queue, every time: an outage leaves one error event per
        // failed connection attempt there, and taking one per poll (then
        // backing off) would leave the partition unread long after the
        // broker is back. Those errors are the client's, not the
        // partition's: they count only if the partition has nothing either.
        let mut client_fault: Option<Fault> = None;
        loop {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => {
                    let f = fault("polling the consumer", &e);
                    if !f.is_transient() {
                        return Err(f);
                    }
                    client_fault = Some(f);
                }
                Some(Ok(message)) => {
                    if let Ok(mut strays) = self.strays.lock() {
                        strays
                            .entry(message.partition())
                            .or_default()
                            .push_back(message.detach());
                    }
                }
            }
        }
        let before = out.len();
        let strays: Vec<OwnedMessage> = match self.strays.lock() {
            Ok(mut strays) => strays
                .get_mut(&self.partition)
                .map(|q| q.drain(..).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        for message in strays {
            if message.offset() >= self.next && !self.done() {
                out.push(self.item(&message));
                self.next = message.offset() + 1;
            }
        }
        while out.len() - before < max && !self.done() {
            match self.queue.poll(Duration::ZERO) {
                None => break,
                Some(Ok(message)) => {
                    if message.offset() < self.next {
                        // Already returned (a re-fetch after a reconnect).
                        continue;
                    }
                    out.push(self.item(&message));
                    self.next = message.offset() + 1;
                }
                Some(Err(e)) => {
                    let f = fault(&format!("reading partition {}", self.partition), &e);
                    if out.len() == before {
                        return Err(f);
                    }
                    self.pending = Some(f);
                    break;
                }
            }
        }
        if out.len() == before && client_fault.is_none() {
            self.skip_markers_at_end();
        }
        if let Ok(mut reached) = self.reached.lock() {
            reached.insert(self.partition, self.next);
        }
        if out.len() == before {
            if let Some(f) = client_fault {
                return Err(f);
            }
        }
        Ok(if self.done() && out.len() == before {
            ReadStatus::Done
        } else if out.len() > before {
            ReadStatus::Ready
        } else {
            ReadStatus::Idle
        })
    }

    fn position(&self) -> Vec<u8> {
        position_of(&[self.next as u64])
    }

    /// librdkafka calls it as the partition's queue stops being empty, so
    /// a record waits for no timer.
    fn wake_when_ready(&mut self, waker: Waker) {
        self.queue.set_nonempty_callback(move || waker.wake());
    }
}
