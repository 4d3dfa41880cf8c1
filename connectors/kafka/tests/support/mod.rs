//! The real broker for the Kafka tests: started by `scripts/kafka.sh` (the
//! one script tests, examples, benches and CI use), never mocked. A test
//! fails, not skips, when it cannot start.

#![allow(dead_code)]

pub mod copy;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir::source::SplitStart;
use weir::{Fault, ReadItem, ReadStatus, Source, SplitId, SplitReader};
use weir_kafka::{create_topic, KafkaConfig};

/// The broker's address (`WEIR_KAFKA_PORT` as `scripts/kafka.sh` reads it).
pub fn bootstrap() -> String {
    let port = std::env::var("WEIR_KAFKA_PORT").unwrap_or_else(|_| "9092".into());
    format!("127.0.0.1:{port}")
}

/// Starts the broker once per test binary (a no-op when it runs).
pub fn broker() -> KafkaConfig {
    static START: Once = Once::new();
    START.call_once(|| kafka_sh("start", None));
    KafkaConfig::new(bootstrap())
}

/// Runs `scripts/kafka.sh <command>` (on `port`, else the default broker's)
/// and asserts that it succeeded.
pub fn kafka_sh(command: &str, port: Option<u16>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kafka.sh");
    let mut run = Command::new("bash");
    run.arg(&script).arg(command);
    if let Some(port) = port {
        run.env("WEIR_KAFKA_PORT", port.to_string());
    }
    let status = run.status().expect("runs scripts/kafka.sh");
    assert!(
        status.success(),
        "scripts/kafka.sh {command} failed{}: these tests need the Kafka broker",
        port.map(|p| format!(" (WEIR_KAFKA_PORT={p})"))
            .unwrap_or_default()
    );
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
    produce_on(&KafkaConfig::new(bootstrap()), topic, messages);
}

/// [`produce`] on the cluster of `config`.
pub fn produce_on(config: &KafkaConfig, topic: &str, messages: &[Outgoing]) {
    let untimed: Vec<(&Outgoing, Option<i64>)> = messages.iter().map(|m| (m, None)).collect();
    produce_with(config, topic, &untimed);
}

/// [`produce`], each message with the Kafka timestamp (ms) given.
pub fn produce_at(topic: &str, messages: &[(Outgoing, i64)]) {
    let timed: Vec<(&Outgoing, Option<i64>)> =
        messages.iter().map(|(m, at)| (m, Some(*at))).collect();
    produce_with(&KafkaConfig::new(bootstrap()), topic, &timed);
}

fn produce_with(config: &KafkaConfig, topic: &str, messages: &[(&Outgoing, Option<i64>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .expect("a producer");
    for (message, at) in messages {
        send(&producer, topic, message, *at);
    }
    producer.flush(Duration::from_secs(30)).expect("flushes");
}

/// Queues `message` on `producer` (with timestamp `at` if given), waiting
/// while its queue is full.
pub fn send(producer: &BaseProducer, topic: &str, message: &Outgoing, at: Option<i64>) {
    let (partition, key, value) = message;
    let mut record = BaseRecord::to(topic)
        .partition(*partition)
        .key(key.as_slice())
        .payload(value.as_slice());
    if let Some(at) = at {
        record = record.timestamp(at);
    }
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
    consume_all_on(&KafkaConfig::new(bootstrap()), topic)
}

/// [`consume_all`] on the cluster of `config`.
pub fn consume_all_on(config: &KafkaConfig, topic: &str) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
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

/// A run on `workers` threads that checkpoints to `dir` on RocksDB, with
/// epochs only where the test closes them ([`Control::checkpoint`]; the
/// timer's hour never passes), as `engine/rocks/tests/support` sets it up.
pub fn checkpointed(workers: usize, dir: &Path) -> weir::RunArgs {
    let mut args = weir::RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3_600);
    args.checkpoint_dir = Some(dir.to_path_buf());
    args.backend = Some(weir_rocks::backend());
    args
}

/// A fresh directory for one test's checkpoints.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-kafka-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Waits until `done()` holds, polling; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Drives a running job's source from the test thread. The engine has no
/// handle to stop an unbounded job (only Ctrl-C, process-wide, or a fault),
/// so [`Controlled`] wraps the real source's readers: they count what they
/// return, close an epoch when asked (a checkpoint at exactly the position
/// reached), and end (`stop`: the job finishes) or fail (`crash`) on
/// demand. The records themselves come from the broker untouched.
#[derive(Clone, Default)]
pub struct Control(Arc<ControlState>);

#[derive(Default)]
pub struct ControlState {
    read: AtomicU64,
    epoch_requests: AtomicU64,
    stop: AtomicBool,
    crash: AtomicBool,
    hold_done: AtomicBool,
    /// The one split [`Control::hold_done_of`] holds (all when unset).
    held_split: Mutex<Option<u32>>,
    complete: Mutex<Vec<u64>>,
}

impl Control {
    /// Records and dead letters the readers have returned (all workers).
    pub fn read(&self) -> u64 {
        self.0.read.load(Ordering::SeqCst)
    }

    /// Waits until the readers have returned `n` items.
    pub fn wait_read(&self, n: u64, limit: Duration) {
        wait_until(&format!("reading {n} messages"), limit, || self.read() >= n);
        assert_eq!(self.read(), n, "read more than the input");
    }

    /// Epochs the source heard were complete (each worker reports each).
    pub fn complete(&self) -> Vec<u64> {
        self.0
            .complete
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Closes an epoch at the position every reader has reached (the first
    /// reader of each worker emits the epoch end) and waits until the
    /// source hears that its checkpoint is complete; returns that epoch.
    pub fn checkpoint(&self, limit: Duration) -> u64 {
        let before = self.complete().into_iter().max();
        self.0.epoch_requests.fetch_add(1, Ordering::SeqCst);
        let mut newest = None;
        wait_until("a checkpoint to complete", limit, || {
            newest = self.complete().into_iter().max();
            newest > before
        });
        newest.expect("a complete checkpoint")
    }

    /// Ends every split: the job finishes as if its input had ended.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }

    /// Keeps splits that reach their end (a bounded run) from telling the
    /// engine so: the job then waits, to be checkpointed and crashed as a
    /// bounded run killed before it finished.
    pub fn hold_done(&self) {
        self.0.hold_done.store(true, Ordering::SeqCst);
    }

    /// [`Control::hold_done`] for `split` only: the others end, and are
    /// recorded done in the checkpoints taken while it is held.
    pub fn hold_done_of(&self, split: u32) {
        if let Ok(mut held) = self.0.held_split.lock() {
            *held = Some(split);
        }
        self.hold_done();
    }

    /// Lets splits held by [`Control::hold_done`] end: the job finishes.
    pub fn release_done(&self) {
        self.0.hold_done.store(false, Ordering::SeqCst);
    }

    /// Makes every split fail fatally: the job stops with an error, as a
    /// crash would, without checkpointing further.
    pub fn crash(&self) {
        self.0.crash.store(true, Ordering::SeqCst);
    }
}

/// A source whose readers a [`Control`] drives. See [`Control`].
#[derive(Clone)]
pub struct Controlled<S> {
    pub inner: S,
    pub control: Control,
}

impl<S: Source> Source for Controlled<S> {
    type Item = S::Item;

    fn splits(&self) -> u32 {
        self.inner.splits()
    }

    fn split_ids(&self) -> Vec<SplitId> {
        self.inner.split_ids()
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<S::Item>>>, Fault> {
        let readers = self.inner.open_splits(splits)?;
        let seen = self.control.0.epoch_requests.load(Ordering::SeqCst);
        Ok(readers
            .into_iter()
            .enumerate()
            .map(|(i, inner)| {
                Box::new(ControlledReader {
                    inner,
                    split: splits[i].split.0,
                    control: self.control.clone(),
                    closes_epochs: i == 0,
                    seen,
                }) as Box<dyn SplitReader<S::Item>>
            })
            .collect())
    }

    /// The control closes the epochs, in step on every worker.
    fn reader_epochs(&self) -> bool {
        true
    }

    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
        if let Ok(mut complete) = self.control.0.complete.lock() {
            complete.push(epoch);
        }
        self.inner.checkpoint_complete(epoch)
    }
}

struct ControlledReader<T> {
    inner: Box<dyn SplitReader<T>>,
    split: u32,
    control: Control,
    /// Whether this reader closes its worker's epochs (one per worker, so
    /// every worker closes each epoch once).
    closes_epochs: bool,
    /// The epoch requests already answered.
    seen: u64,
}

impl<T> SplitReader<T> for ControlledReader<T> {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        let state = &self.control.0;
        if state.crash.load(Ordering::SeqCst) {
            return Err(Fault::fatal("simulated crash"));
        }
        if state.stop.load(Ordering::SeqCst) {
            return Ok(ReadStatus::Done);
        }
        let requested = state.epoch_requests.load(Ordering::SeqCst);
        if self.closes_epochs && requested > self.seen {
            self.seen = requested;
            out.push(ReadItem::EndEpoch);
            return Ok(ReadStatus::Ready);
        }
        let before = out.len();
        let status = self.inner.poll(max, out)?;
        let items = out[before..]
            .iter()
            .filter(|i| {
                matches!(
                    i,
                    ReadItem::Record(_) | ReadItem::Timed(..) | ReadItem::Bad(_)
                )
            })
            .count();
        state.read.fetch_add(items as u64, Ordering::SeqCst);
        let held = state
            .held_split
            .lock()
            .map(|h| h.is_none_or(|s| s == self.split))
            .unwrap_or(true);
        if status == ReadStatus::Done && held && state.hold_done.load(Ordering::SeqCst) {
            return Ok(ReadStatus::Idle);
        }
        Ok(status)
    }

    fn position(&self) -> Vec<u8> {
        self.inner.position()
    }

    fn wake_when_ready(&mut self, waker: weir::Waker) {
        self.inner.wake_when_ready(waker)
    }
}

/// A job running on its own thread.
pub type Running = std::thread::JoinHandle<Result<weir::Summary, weir::JobError>>;

/// Runs `job` with `args` on a thread of its own.
pub fn spawn_job<F>(args: weir::RunArgs, job: F) -> Running
where
    F: Fn(&mut weir::Pipeline<'_>) + Send + Sync + 'static,
{
    std::thread::spawn(move || weir::run(&args, job))
}

/// Waits for a job's end, at most `limit` (a job that hangs fails the test
/// instead of hanging it).
pub fn join_within(job: Running, limit: Duration) -> Result<weir::Summary, weir::JobError> {
    wait_until("the job to end", limit, || job.is_finished());
    job.join().expect("the job thread does not panic")
}

/// (partition, offset) pairs as each partition's runs of consecutive
/// offsets, `first..=last` (a duplicate starts a new run): a short picture
/// of what was read, for assertions.
pub fn runs(pairs: impl IntoIterator<Item = (i32, i64)>) -> BTreeMap<i32, Vec<String>> {
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o) in pairs {
        by_partition.entry(p).or_default().push(o);
    }
    by_partition
        .into_iter()
        .map(|(p, mut offsets)| {
            offsets.sort_unstable();
            let mut out: Vec<(i64, i64)> = Vec::new();
            for o in offsets {
                match out.last_mut() {
                    Some((_, last)) if *last + 1 == o => *last = o,
                    _ => out.push((o, o)),
                }
            }
            (p, out.iter().map(|(a, b)| format!("{a}..={b}")).collect())
        })
        .collect()
}
