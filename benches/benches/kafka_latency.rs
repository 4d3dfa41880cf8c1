//! Latency through Kafka, topic → job → topic on the local broker
//! (`scripts/kafka.sh start`, which this bench runs): what a weir job adds
//! over a plain rdkafka consume → produce pipe, measured in the same run at
//! the same rates.
//!
//! Method (open loop, no coordinated omission):
//! - An injector thread sends message `i` to the input topic at its *due
//!   time* `t0 + i / rate`: it sleeps until then, or sends at once when it
//!   is behind; it never skips and never waits for the pipe. Each value is
//!   JSON `{"seq","due_us","payload"}` (64 bytes of payload), `due_us`
//!   being the due time in µs since an `Instant` all threads share; message
//!   `i` goes to partition `i % 4`. The injector's producer: idempotent,
//!   `acks=all`, `linger.ms=1`.
//! - A receiver thread reads all partitions of the output topic from the
//!   beginning (`read_committed`, see [`consume`]) and takes the latency of
//!   each message as its receipt time minus its due time, so a pipe that
//!   stalls is charged for every message it holds up, and so is a late
//!   injector (its lateness is printed: `inject p99`). Latencies go into an
//!   HdrHistogram (µs, 3 significant digits). Messages due in the first
//!   `--warmup` seconds (default 2) are counted but their latencies are
//!   left out: clients connect and fetch sessions start then.
//! - Every message is counted: the distinct `seq`s received must equal the
//!   messages sent (nothing lost), or the bench fails; duplicates are
//!   reported.
//! - Each pipe and rate gets fresh topics of 4 partitions
//!   (`bench-lat-<pipe>-<rate>-<run>-in|out`), deleted afterwards. The pipes
//!   run one after the other at each rate, in the same process.
//!
//! The pipes:
//! - **direct** (a floor, no pipe): the receiver reads the input topic.
//! - **plain**: one thread that consumes the input topic the fastest plain
//!   way ([`consume`]: weir's consumer settings, `read_committed`,
//!   `fetch.wait.max.ms=10`, the 16 MiB prefetch cap, per-partition queues
//!   polled round-robin, parked until a queue fills) and, for each message,
//!   `BaseProducer::send`s the same value bytes, no key, to the output
//!   topic, with weir's `KafkaSink` producer settings
//!   (`connectors/kafka/src/sink.rs`, `Producing::new`):
//!   `enable.idempotence=true`, `acks=all`, `linger.ms=5`,
//!   `queue.buffering.max.kbytes=65536`. It never flushes while running.
//! - **weir -w N eE**: `weir::run` on N worker threads, no checkpoints,
//!   epoch interval E (default 1 s, weir's default; at each epoch end the
//!   at-least-once sink sends its producer's lingering batches at once,
//!   without waiting for acknowledgements): `KafkaSource` → event time
//!   (`due_us`, ascending) → `map` (identity) → `KafkaSink`, JSON decoded
//!   and encoded again.
//!
//! How the weir job stops: the engine stops a job only when its sources end
//! or on Ctrl-C, and its Ctrl-C flag is process-wide and never cleared, so
//! it cannot stop more than one job per process. Instead the job's source
//! is the `KafkaSource` wrapped in [`UntilStopped`], whose split readers say
//! `Done` once the bench raises a flag, after the receiver has every
//! message; the job then ends as at the end of a bounded input.
//!
//! The machine's load average is printed with each rate: on a shared
//! 2-core machine another build or test run shows up in every tail.
//!
//! Run: `cargo bench -p weir-benches --bench kafka_latency`. Optional:
//! `-- --rates 10000,50000,100000` (messages/s, the default),
//! `--seconds 10` (sending time per pipe and rate, warm-up included),
//! `--warmup 2`, `--workers 1` (weir worker counts, e.g. `1,2`),
//! `--epoch-intervals 1s` (weir epoch intervals, e.g. `1s,1h`: `1h` means
//! no epoch ends, so no sink flush, during the run), `--runs 1` (runs of
//! each pipe per rate, interleaved; with more than one, each run's row is
//! printed and then all runs' histograms merged, and the p99 differences
//! are taken on the merged ones), `--json PATH` (one JSON object per pipe
//! and rate, all runs merged, for `scripts/bench.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use weir::config::{parse_duration, ShowDuration};
use weir::source::SplitStart;
use weir::{Fault, ReadItem, ReadStatus, RunArgs, Source, SplitId, SplitReader, Watermarks};
use weir_benches::{arg, arg_str, start_kafka};
use weir_kafka::{create_topic, KafkaConfig, KafkaSink, KafkaSource};

const BOOTSTRAP: &str = "127.0.0.1:9092";
const PARTITIONS: i32 = 4;
/// Bytes of payload per message, besides `seq` and `due_us`.
const PAYLOAD: usize = 64;
/// Messages read from one partition queue per turn (weir's source reads up
/// to 4096 per split per activation).
const BATCH: usize = 4096;
/// How long a pipe may take to deliver the last message after it was due.
const DRAIN: Duration = Duration::from_secs(30);

/// One message, as every pipe carries it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Msg {
    seq: u64,
    /// When the injector was due to send it: µs since the shared epoch.
    due_us: u64,
    payload: String,
}

/// What the receiver reads of a message (the payload is skipped, not
/// copied).
#[derive(Deserialize)]
struct Stamp {
    seq: u64,
    due_us: u64,
}

/// µs from `epoch` to now.
/// Queues `record`, serving deliveries while librdkafka's queue is full.
fn send(producer: &BaseProducer, mut record: BaseRecord<'_, (), [u8]>, who: &str) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(1));
                record = back;
            }
            Err((e, _)) => panic!("{who}: {e}"),
        }
    }
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// A histogram of µs from 1 µs to 10 min.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The weir worker counts or rates of a comma-separated flag.
fn list(name: &str, default: &str) -> Vec<u64> {
    arg_str(name)
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: `{v}` is not a number"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Injector and receiver, shared by all pipes.

/// What the injector did.
#[derive(Clone)]
struct Sent {
    messages: u64,
    /// Messages per second from the first due time to the last send.
    rate: f64,
    /// How late each send was against its due time (µs).
    late: Histogram<u64>,
}

/// Sends `messages` to `topic` at `rate` per second from `t0` (µs since
/// `epoch`), open loop.
fn inject(topic: &str, rate: u64, messages: u64, epoch: Instant, t0: u64) -> Sent {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("queue.buffering.max.kbytes", "65536")
        .create()
        .expect("an injector producer");
    let payload = "x".repeat(PAYLOAD);
    let mut late = histogram();
    let mut value = Vec::with_capacity(PAYLOAD + 64);
    for seq in 0..messages {
        let due_us = t0 + seq * 1_000_000 / rate;
        let now = micros_since(epoch);
        if due_us > now {
            thread::sleep(Duration::from_micros(due_us - now));
        }
        let msg = Msg {
            seq,
            due_us,
            payload: payload.clone(),
        };
        value.clear();
        serde_json::to_writer(&mut value, &msg).expect("JSON");
        let record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic)
            .partition((seq % PARTITIONS as u64) as i32)
            .payload(&value[..]);
        send(&producer, record, "injector");
        let _ = late.record(micros_since(epoch).saturating_sub(due_us).max(1));
        if seq % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    let elapsed_us = micros_since(epoch) - t0;
    producer
        .flush(Duration::from_secs(30))
        .expect("the injector flushed");
    Sent {
        messages,
        rate: messages as f64 / (elapsed_us as f64 / 1e6),
        late,
    }
}

/// What the receiver saw.
#[derive(Clone)]
struct Received {
    distinct: u64,
    duplicates: u64,
    /// Latencies (µs) of the messages due after the warm-up.
    latency: Histogram<u64>,
}

/// Reads `topic` until all `messages` arrived or `deadline` (µs since
/// `epoch`) passed, recording the latency of those due at or after
/// `measure_from`.
fn receive(
    topic: &str,
    messages: u64,
    epoch: Instant,
    measure_from: u64,
    deadline: u64,
) -> Received {
    let consumer = consumer("bench-lat-receiver");
    let mut seen = vec![false; messages as usize];
    let mut received = Received {
        distinct: 0,
        duplicates: 0,
        latency: histogram(),
    };
    consume(&consumer, topic, |message| {
        let Some(message) = message else {
            return micros_since(epoch) < deadline;
        };
        let now = micros_since(epoch);
        let msg: Stamp =
            serde_json::from_slice(message.payload().unwrap_or_default()).expect("a JSON Msg");
        match seen.get_mut(msg.seq as usize) {
            Some(slot) if !*slot => {
                *slot = true;
                received.distinct += 1;
            }
            Some(_) => received.duplicates += 1,
            None => panic!("receiver: seq {} was never sent", msg.seq),
        }
        if msg.due_us >= measure_from {
            let _ = received
                .latency
                .record(now.saturating_sub(msg.due_us).max(1));
        }
        received.distinct < messages
    });
    received
}

/// A consumer with weir's source settings (`connectors/kafka/src/source.rs`).
fn consumer(group: &str) -> Arc<BaseConsumer> {
    let consumer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .set("queued.max.messages.kbytes", "16384")
        .set("enable.partition.eof", "false")
        .create()
        .expect("a consumer");
    Arc::new(consumer)
}

/// The plain way to read every partition of `topic` from the beginning,
/// fast and without waiting: each partition's own queue
/// (`split_partition_queue`, as weir's source reads) polled round-robin
/// with a zero timeout, up to [`BATCH`] messages per turn; when a whole
/// round found nothing the thread parks until librdkafka says a queue is no
/// longer empty (`set_nonempty_callback`), or for at most 100 ms.
///
/// `on` sees every message (`Some`), and `None` after each round that found
/// nothing; it returns whether to go on.
fn consume(
    consumer: &Arc<BaseConsumer>,
    topic: &str,
    mut on: impl FnMut(Option<&BorrowedMessage<'_>>) -> bool,
) {
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let me = thread::current();
    let queues: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let mut queue = consumer
                .split_partition_queue(topic, p)
                .expect("a partition queue");
            let me = me.clone();
            queue.set_nonempty_callback(move || me.unpark());
            queue
        })
        .collect();
    loop {
        // Serves the consumer's events; its messages all go to the queues.
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            panic!("consumer of {topic}: {e}");
        }
        let mut found = false;
        for queue in &queues {
            for _ in 0..BATCH {
                let Some(message) = queue.poll(Duration::ZERO) else {
                    break;
                };
                found = true;
                if !on(Some(&message.expect("a message"))) {
                    return;
                }
            }
        }
        if !found {
            if !on(None) {
                return;
            }
            thread::park_timeout(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------
// The pipes.

/// Which pipe carries the messages from the input topic to the output topic.
#[derive(Copy, Clone)]
enum Pipe {
    /// No pipe: the receiver reads the input topic (the floor: injector,
    /// broker and receiver only).
    Direct,
    Plain,
    Weir {
        workers: usize,
        /// The job's epoch interval (its sink sends lingering batches at
        /// each epoch end).
        epoch: Duration,
    },
}

impl Pipe {
    fn name(self) -> String {
        match self {
            Pipe::Direct => "direct (no pipe)".to_string(),
            Pipe::Plain => "plain".to_string(),
            Pipe::Weir { workers, epoch } => {
                format!("weir -w {workers} e{}", ShowDuration(epoch))
            }
        }
    }

    fn slug(self) -> String {
        match self {
            Pipe::Direct => "direct".to_string(),
            Pipe::Plain => "plain".to_string(),
            Pipe::Weir { workers, epoch } => format!("weir{workers}e{}", epoch.as_millis()),
        }
    }

    /// Starts the pipe; it runs until `stop` is raised.
    fn start(self, input: &str, output: &str, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
        let (input, output) = (input.to_string(), output.to_string());
        match self {
            Pipe::Direct => thread::spawn(|| {}),
            Pipe::Plain => thread::spawn(move || plain(&input, &output, &stop)),
            Pipe::Weir { workers, epoch } => {
                thread::spawn(move || weir_job(&input, &output, workers, epoch, stop))
            }
        }
    }
}

/// The plain pipe: one thread consumes `input` and produces each value to
/// `output`, with weir's consumer and producer settings.
fn plain(input: &str, output: &str, stop: &AtomicBool) {
    let consumer = consumer("bench-lat-plain");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", BOOTSTRAP)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "65536")
        .create()
        .expect("a plain producer");
    let mut since_poll = 0u32;
    consume(&consumer, input, |message| {
        let Some(message) = message else {
            // Nothing to read: serve delivery reports.
            producer.poll(Duration::ZERO);
            return !stop.load(Ordering::Relaxed);
        };
        let record: BaseRecord<'_, (), [u8]> =
            BaseRecord::to(output).payload(message.payload().unwrap_or_default());
        send(&producer, record, "plain pipe");
        // Serve delivery reports now and then, as weir's sink does per batch.
        since_poll += 1;
        if since_poll == 1024 {
            since_poll = 0;
            producer.poll(Duration::ZERO);
        }
        true
    });
    producer
        .flush(Duration::from_secs(30))
        .expect("the plain pipe flushed");
}

/// The weir pipe: a job on `workers` threads with `epoch` as its epoch
/// interval, until `stop`.
fn weir_job(input: &str, output: &str, workers: usize, epoch: Duration, stop: Arc<AtomicBool>) {
    let config = KafkaConfig::new(BOOTSTRAP);
    let source = UntilStopped {
        inner: KafkaSource::<Msg>::new(config.clone(), input).expect("the input topic"),
        stop,
    };
    let sink = KafkaSink::<Msg>::new(config, output);
    let args = RunArgs {
        epoch_interval: epoch,
        ..RunArgs::threads(workers)
    };
    let result = weir::run(&args, move |p| {
        p.source("in", source.clone())
            .event_time(|m: &Msg| m.due_us / 1000, Watermarks::ascending())
            .map(|m: Msg| m)
            .sink("out", sink.clone());
    });
    if let Err(e) = result {
        panic!("the weir job failed: {e}");
    }
}

/// A source whose splits end once `stop` is raised: how the bench ends a
/// job reading a live topic (see the module docs).
#[derive(Clone)]
struct UntilStopped<S> {
    inner: S,
    stop: Arc<AtomicBool>,
}

impl<S: Source> Source for UntilStopped<S> {
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
        Ok(readers
            .into_iter()
            .map(|inner| {
                Box::new(StoppableReader {
                    inner,
                    stop: Arc::clone(&self.stop),
                }) as Box<dyn SplitReader<S::Item>>
            })
            .collect())
    }

    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
        self.inner.checkpoint_complete(epoch)
    }

    fn reader_epochs(&self) -> bool {
        self.inner.reader_epochs()
    }
}

struct StoppableReader<T> {
    inner: Box<dyn SplitReader<T>>,
    stop: Arc<AtomicBool>,
}

impl<T> SplitReader<T> for StoppableReader<T> {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(ReadStatus::Done);
        }
        self.inner.poll(max, out)
    }

    fn position(&self) -> Vec<u8> {
        self.inner.position()
    }

    fn wake_when_ready(&mut self, waker: weir::Waker) {
        self.inner.wake_when_ready(waker)
    }
}

// ---------------------------------------------------------------------------
// One measurement, and the report.

/// One pipe's run (or runs) at one rate.
#[derive(Clone)]
struct Outcome {
    pipe: String,
    sent: Sent,
    received: Received,
}

impl Outcome {
    /// Adds another run of the same pipe at the same rate: counts and
    /// histograms add up, the achieved rate is the mean over runs.
    fn merge(&mut self, other: &Outcome, runs_before: u64) {
        let n = runs_before as f64;
        self.sent.rate = (self.sent.rate * n + other.sent.rate) / (n + 1.0);
        self.sent.messages += other.sent.messages;
        self.received.distinct += other.received.distinct;
        self.received.duplicates += other.received.duplicates;
        self.sent
            .late
            .add(&other.sent.late)
            .expect("histograms of the same bounds");
        self.received
            .latency
            .add(&other.received.latency)
            .expect("histograms of the same bounds");
    }
}

/// Runs `pipe` at `rate` for `seconds` on fresh topics.
fn measure(pipe: Pipe, rate: u64, seconds: u64, warmup: u64, run: &str) -> Outcome {
    let config = KafkaConfig::new(BOOTSTRAP);
    let input = format!("bench-lat-{}-{rate}-{run}-in", pipe.slug());
    let output = format!("bench-lat-{}-{rate}-{run}-out", pipe.slug());
    for topic in [&input, &output] {
        create_topic(&config, topic, PARTITIONS).expect("a fresh topic");
    }
    let messages = rate * seconds;
    let epoch = Instant::now();
    // The receiver and the pipe connect while the injector waits 1 s.
    let t0 = 1_000_000;
    let measure_from = t0 + warmup * 1_000_000;
    let deadline = t0 + seconds * 1_000_000 + DRAIN.as_micros() as u64;
    let receiver = {
        let read = match pipe {
            Pipe::Direct => input.clone(),
            _ => output.clone(),
        };
        thread::spawn(move || receive(&read, messages, epoch, measure_from, deadline))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let running = pipe.start(&input, &output, Arc::clone(&stop));
    let sent = inject(&input, rate, messages, epoch, t0);
    let received = receiver.join().expect("the receiver");
    stop.store(true, Ordering::Relaxed);
    running.join().expect("the pipe");
    delete_topics(&[&input, &output]);
    Outcome {
        pipe: pipe.name(),
        sent,
        received,
    }
}

/// Deletes the bench's topics from the shared broker (best effort).
fn delete_topics(topics: &[&str]) {
    if let Err(e) = weir_kafka::delete_topics(&KafkaConfig::new(BOOTSTRAP), topics) {
        eprintln!("kafka_latency: {e}");
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The 1, 5 and 15 minute load averages, if the system says.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

fn print_header(rate: u64, seconds: u64, warmup: u64) {
    println!();
    println!(
        "rate {rate} msg/s, {seconds} s per pipe, first {warmup} s excluded (warm-up); latency in ms from due time to receipt; load average {} (this bench's own threads included)",
        load()
    );
    println!(
        "{:<20} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>13} {:>5} {:>11}",
        "pipe",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "n",
        "received",
        "dups",
        "inject p99"
    );
}

fn print_row(o: &Outcome) {
    let h = &o.received.latency;
    println!(
        "{:<18} {:>10.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8}  {:>13} {:>5} {:>11.2}",
        o.pipe,
        o.sent.rate,
        ms(h, 0.5),
        ms(h, 0.9),
        ms(h, 0.99),
        ms(h, 0.999),
        h.max() as f64 / 1000.0,
        h.len(),
        format!("{}/{}", o.received.distinct, o.sent.messages),
        o.received.duplicates,
        ms(&o.sent.late, 0.99),
    );
}

fn main() {
    let rates = list("--rates", "10000,50000,100000");
    let workers = list("--workers", "1");
    let epochs: Vec<Duration> = arg_str("--epoch-intervals")
        .unwrap_or_else(|| "1s".to_string())
        .split(',')
        .map(|e| parse_duration(e).unwrap_or_else(|e| panic!("--epoch-intervals: {e}")))
        .collect();
    let seconds = arg("--seconds", 10);
    let warmup = arg("--warmup", 2);
    let runs = arg("--runs", 1).max(1);
    assert!(seconds > warmup, "--seconds must be more than --warmup");
    start_kafka();
    let id = format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        std::process::id()
    );
    let mut pipes = vec![Pipe::Direct, Pipe::Plain];
    for &workers in &workers {
        for &epoch in &epochs {
            pipes.push(Pipe::Weir {
                workers: workers as usize,
                epoch,
            });
        }
    }
    println!(
        "kafka_latency: topic → pipe → topic on {BOOTSTRAP}, {PARTITIONS} partitions, {PAYLOAD}-byte payloads, open loop; rates {rates:?}, {runs} run(s) of each pipe per rate"
    );
    let mut lost = Vec::new();
    let mut figures = Vec::new();
    for &rate in &rates {
        print_header(rate, seconds, warmup);
        // Each pipe's runs at this rate, merged.
        let mut all: Vec<Option<Outcome>> = pipes.iter().map(|_| None).collect();
        for run in 0..runs {
            for (&pipe, merged) in pipes.iter().zip(all.iter_mut()) {
                let mut o = measure(pipe, rate, seconds, warmup, &format!("{id}-{run}"));
                if o.received.distinct != o.sent.messages {
                    lost.push(format!(
                        "{} at {rate}/s: received {} of {}",
                        o.pipe, o.received.distinct, o.sent.messages
                    ));
                }
                match merged {
                    Some(m) => m.merge(&o, run),
                    None => *merged = Some(o.clone()),
                }
                if runs > 1 {
                    o.pipe = format!("{} #{}", o.pipe, run + 1);
                }
                print_row(&o);
            }
        }
        if runs > 1 {
            println!("all {runs} runs together:");
            for o in all.iter().flatten() {
                print_row(o);
            }
        }
        for o in all.iter().flatten() {
            let h = &o.received.latency;
            figures.push(serde_json::json!({
                "pipe": o.pipe,
                "offered": rate,
                "achieved": o.sent.rate,
                "timed": h.len(),
                "p50_ms": ms(h, 0.5),
                "p90_ms": ms(h, 0.9),
                "p99_ms": ms(h, 0.99),
                "p999_ms": ms(h, 0.999),
                "max_ms": h.max() as f64 / 1000.0,
                "inject_p99_ms": ms(&o.sent.late, 0.99),
                "runs": runs,
                "load": load(),
            }));
        }
        let plain = all
            .iter()
            .flatten()
            .find(|o| o.pipe == Pipe::Plain.name())
            .map(|o| ms(&o.received.latency, 0.99));
        for o in all.iter().flatten().filter(|o| o.pipe.starts_with("weir")) {
            if let Some(base) = plain {
                println!(
                    "  {} - plain at p99: {:+.2} ms (goal <= 1 ms)",
                    o.pipe,
                    ms(&o.received.latency, 0.99) - base
                );
            }
        }
    }
    if let Some(path) = arg_str("--json") {
        weir_benches::write_json_lines(std::path::Path::new(&path), &figures);
    }
    assert!(lost.is_empty(), "messages lost: {}", lost.join("; "));
}
