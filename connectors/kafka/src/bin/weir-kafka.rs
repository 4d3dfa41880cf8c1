//! `weir-kafka`: feed and watch topics without other tools.
//!
//! - `weir-kafka produce --job iot --events N [--rate R] [--topic T]`
//!   writes the job's generated records (JSON values, or CSV) to a topic;
//!   with `--file PATH` it writes a file's lines instead, one message each.
//!   `--timestamps event-time` stamps each generated message with its
//!   record's event time (for jobs run with `--event-time kafka-timestamp`).
//! - `weir-kafka tail --topic T [--follow] [--headers]` prints a topic's
//!   committed messages (`read_committed`), one value per line.
//! - `weir-kafka topics NAME[:PARTITIONS]… [--config KEY=VALUE]…` creates
//!   topics.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use weir::source::SplitStart;
use weir::{Fault, ReadItem, ReadStatus, Source, SplitId};
use weir_connectors::{Generated, Generator, GeneratorConfig, Reading, Request, Transaction};
use weir_kafka::{create_topic_with, KafkaConfig, ValueFormat};

#[derive(Parser)]
#[command(
    name = "weir-kafka",
    about = "Feed and watch Kafka topics for weir's example jobs"
)]
struct Cli {
    /// Bootstrap servers.
    #[arg(
        long,
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT",
        global = true
    )]
    kafka: String,
    /// A librdkafka property, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE", global = true)]
    kafka_config: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

/// What a produced message's Kafka timestamp is.
#[derive(Copy, Clone, PartialEq, Eq, ValueEnum)]
enum Stamp {
    /// The time it is written (the producer's default, create time).
    Now,
    /// Its record's event time.
    EventTime,
}

#[derive(Subcommand)]
enum Command {
    /// Writes generated records (or a file's lines) to a topic.
    Produce {
        /// Whose records: fraud, metrics or iot (default topic weir-<job>-input).
        #[arg(long, value_name = "JOB")]
        job: Option<String>,
        /// Write this file's lines instead of generated records.
        #[arg(long, value_name = "PATH", conflicts_with = "job")]
        file: Option<PathBuf>,
        /// The topic (default weir-<job>-input).
        #[arg(long, value_name = "TOPIC")]
        topic: Option<String>,
        /// How many records.
        #[arg(long, value_name = "N", default_value_t = 100_000)]
        events: u64,
        /// Records per second (default: as fast as the broker takes them).
        #[arg(long, value_name = "N")]
        rate: Option<f64>,
        /// Distinct keys (default: the job's).
        #[arg(long, value_name = "N")]
        keys: Option<u64>,
        /// Fraction of malformed records (to see dead letters).
        #[arg(long, value_name = "F", default_value_t = 0.0)]
        malformed_fraction: f64,
        /// Value encoding: json or csv.
        #[arg(long, value_name = "json|csv", default_value = "json")]
        value_format: ValueFormat,
        /// Seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// The messages' Kafka timestamps: now (when each is written) or
        /// event-time (its record's ts_ms, for generated records). Generated
        /// event times start in 2023: create the topic with
        /// `--config retention.ms=-1`, or the broker's time-based retention
        /// deletes them.
        #[arg(long, value_enum, value_name = "now|event-time", default_value = "now")]
        timestamps: Stamp,
    },
    /// Prints a topic's committed messages, one value per line.
    Tail {
        #[arg(long, value_name = "TOPIC")]
        topic: String,
        /// Keep waiting for new messages (default: stop at the end).
        #[arg(long)]
        follow: bool,
        /// Print each message's partition, offset, key and headers too.
        #[arg(long)]
        headers: bool,
    },
    /// Creates topics: NAME or NAME:PARTITIONS (default 4).
    Topics {
        #[arg(required = true, value_name = "NAME[:PARTITIONS]")]
        names: Vec<String>,
        /// A topic setting for the new topics, KEY=VALUE (repeatable), such
        /// as retention.ms=-1.
        #[arg(long, value_name = "KEY=VALUE")]
        config: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let mut config = KafkaConfig::new(&cli.kafka);
    for pair in &cli.kafka_config {
        config.set_pair(pair).map_err(|e| e.to_string())?;
    }
    match cli.command {
        Command::Produce {
            job,
            file,
            topic,
            events,
            rate,
            keys,
            malformed_fraction,
            value_format,
            seed,
            timestamps,
        } => {
            let producer = producer(&config)?;
            if let Some(path) = file {
                let topic = topic.ok_or("--file needs --topic")?;
                if timestamps == Stamp::EventTime {
                    return Err(
                        "--timestamps event-time is for generated records (--job), not --file"
                            .into(),
                    );
                }
                return produce_file(&producer, &topic, &path);
            }
            let job = job.ok_or("say --job fraud|metrics|iot, or --file PATH --topic T")?;
            let topic = topic.unwrap_or_else(|| format!("weir-{job}-input"));
            let generator = GeneratorConfig {
                seed,
                events: Some(events),
                rate,
                malformed_fraction,
                late_fraction: 0.0,
                ..GeneratorConfig::default()
            };
            let sent = match job.as_str() {
                "fraud" => produce_generated::<Transaction>(
                    &producer,
                    &topic,
                    generator,
                    keys.unwrap_or(100_000),
                    value_format,
                    timestamps,
                ),
                "metrics" => produce_generated::<Request>(
                    &producer,
                    &topic,
                    generator,
                    keys.unwrap_or(20),
                    value_format,
                    timestamps,
                ),
                "iot" => produce_generated::<Reading>(
                    &producer,
                    &topic,
                    generator,
                    keys.unwrap_or(1_000),
                    value_format,
                    timestamps,
                ),
                other => return Err(format!("--job {other}: use fraud, metrics or iot")),
            }?;
            eprintln!("weir-kafka: wrote {sent} messages to {topic}");
            Ok(())
        }
        Command::Tail {
            topic,
            follow,
            headers,
        } => tail(&config, &topic, follow, headers),
        Command::Topics {
            names,
            config: settings,
        } => {
            let settings = settings
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .filter(|(k, _)| !k.trim().is_empty())
                        .map(|(k, v)| (k.trim(), v.trim()))
                        .ok_or_else(|| format!("--config `{pair}`: write KEY=VALUE"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for name in names {
                let (topic, partitions) = match name.split_once(':') {
                    Some((t, p)) => (
                        t.to_string(),
                        p.parse::<i32>()
                            .map_err(|_| format!("`{name}`: partitions must be a number"))?,
                    ),
                    None => (name.clone(), 4),
                };
                create_topic_with(&config, &topic, partitions, &settings)
                    .map_err(|e| e.to_string())?;
                eprintln!("weir-kafka: topic {topic} ({partitions} partitions)");
            }
            Ok(())
        }
    }
}

fn producer(config: &KafkaConfig) -> Result<BaseProducer, String> {
    config
        .client(&[("linger.ms", "5"), ("enable.idempotence", "true")])
        .create()
        .map_err(|e| format!("kafka: creating a producer: {e}"))
}

/// Queues one message, waiting while the queue is full.
fn send(
    producer: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    value: &[u8],
    timestamp: Option<i64>,
) -> Result<(), String> {
    let mut record: BaseRecord<'_, (), [u8]> = BaseRecord::to(topic).payload(value);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(ms) = timestamp {
        record = record.timestamp(ms);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, back))
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
            {
                producer.poll(Duration::from_millis(5));
                record = back;
            }
            Err((e, _)) => return Err(format!("kafka: writing to {topic}: {e}")),
        }
    }
}

fn flush(producer: &BaseProducer) -> Result<(), String> {
    producer
        .flush(Duration::from_secs(60))
        .map_err(|e| format!("kafka: flushing: {e}"))
}

/// Writes generated records: split `s` of the generator to partition
/// `s % partitions`, so each partition's event times advance like a split's.
fn produce_generated<T: Generated + serde::Serialize>(
    producer: &BaseProducer,
    topic: &str,
    mut generator: GeneratorConfig,
    keys: u64,
    format: ValueFormat,
    stamp: Stamp,
) -> Result<u64, String> {
    generator.keys = keys;
    let partitions = producer_partitions(producer, topic)?;
    let mut source = Generator::<T>::new(generator).map_err(|e| format!("generator: {e}"))?;
    let starts: Vec<SplitStart<'_>> = source
        .split_ids()
        .into_iter()
        .map(|split: SplitId| SplitStart {
            split,
            position: None,
        })
        .collect();
    let mut readers = source
        .open_splits(&starts)
        .map_err(|e: Fault| e.to_string())?;
    let mut done = vec![false; readers.len()];
    let (mut sent, mut items, mut value) = (0u64, Vec::new(), Vec::new());
    while done.iter().any(|d| !d) {
        for (s, reader) in readers.iter_mut().enumerate() {
            if done[s] {
                continue;
            }
            items.clear();
            let status = reader.poll(1_000, &mut items).map_err(|e| e.to_string())?;
            let partition = Some(s as i32 % partitions);
            for item in items.drain(..) {
                match item {
                    ReadItem::Record(record) | ReadItem::Timed(record, _) => {
                        value.clear();
                        match format {
                            ValueFormat::Json => serde_json::to_writer(&mut value, &record)
                                .map_err(|e| e.to_string())?,
                            ValueFormat::Csv => {
                                let mut w = csv::WriterBuilder::new()
                                    .has_headers(false)
                                    .from_writer(&mut value);
                                w.serialize(&record).map_err(|e| e.to_string())?;
                                w.flush().map_err(|e| e.to_string())?;
                                drop(w);
                                while value.last() == Some(&b'\n') {
                                    value.pop();
                                }
                            }
                        }
                        let timestamp = match stamp {
                            Stamp::Now => None,
                            // A time past i64::MAX ms is no Kafka timestamp.
                            Stamp::EventTime => {
                                Some(i64::try_from(record.ts_ms()).map_err(|_| {
                                    format!(
                                        "event time {} is past Kafka's timestamps",
                                        record.ts_ms()
                                    )
                                })?)
                            }
                        };
                        send(producer, topic, partition, &value, timestamp)?;
                        sent += 1;
                    }
                    ReadItem::Bad(letter) => {
                        send(producer, topic, partition, letter.raw.as_bytes(), None)?;
                        sent += 1;
                    }
                    ReadItem::Watermark(_) | ReadItem::EndEpoch => {}
                }
            }
            producer.poll(Duration::ZERO);
            match status {
                ReadStatus::Done => done[s] = true,
                ReadStatus::Idle => std::thread::sleep(Duration::from_millis(1)),
                ReadStatus::Ready => {}
            }
        }
    }
    flush(producer)?;
    Ok(sent)
}

fn producer_partitions(producer: &BaseProducer, topic: &str) -> Result<i32, String> {
    let metadata = producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("kafka: metadata of {topic}: {e}"))?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .unwrap_or(0);
    if count == 0 {
        return Err(format!(
            "topic {topic} does not exist: create it (weir-kafka topics {topic}:4, or scripts/kafka.sh topics)"
        ));
    }
    Ok(count)
}

/// Writes a file's lines, one message each, round-robin over partitions.
fn produce_file(producer: &BaseProducer, topic: &str, path: &PathBuf) -> Result<(), String> {
    let partitions = producer_partitions(producer, topic)?;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sent = 0u64;
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.is_empty() {
            continue;
        }
        send(
            producer,
            topic,
            Some((sent % partitions as u64) as i32),
            &line,
            None,
        )?;
        sent += 1;
        if sent.is_multiple_of(1_000) {
            producer.poll(Duration::ZERO);
        }
    }
    flush(producer)?;
    eprintln!(
        "weir-kafka: wrote {sent} lines of {} to {topic}",
        path.display()
    );
    Ok(())
}

fn tail(config: &KafkaConfig, topic: &str, follow: bool, headers: bool) -> Result<(), String> {
    let consumer: BaseConsumer = config
        .client(&[
            ("group.id", "weir-kafka-tail"),
            ("enable.auto.commit", "false"),
            ("isolation.level", "read_committed"),
        ])
        .create()
        .map_err(|e| format!("kafka: creating a consumer: {e}"))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("kafka: metadata of {topic}: {e}"))?;
    let Some(found) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        return Err(format!("topic {topic} does not exist"));
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in found.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| format!("kafka: offsets: {e}"))?;
        tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
            .map_err(|e| e.to_string())?;
        ends.push((p.id(), high));
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut quiet_since = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                if headers {
                    let mut hs = Vec::new();
                    if let Some(h) = m.headers() {
                        for header in h.iter() {
                            hs.push(format!(
                                "{}={}",
                                header.key,
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                            ));
                        }
                    }
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default());
                    let _ = write!(
                        out,
                        "{}/{} key={key} {} ",
                        m.partition(),
                        m.offset(),
                        hs.join(" ")
                    );
                }
                let _ = out.write_all(m.payload().unwrap_or_default());
                let _ = out.write_all(b"\n");
            }
            Some(Err(e)) => return Err(format!("kafka: reading {topic}: {e}")),
            None => {
                if follow {
                    continue;
                }
                let position = consumer.position().map_err(|e| e.to_string())?;
                let at_end = ends.iter().all(|(p, end)| {
                    match position.find_partition(topic, *p).map(|e| e.offset()) {
                        Some(Offset::Offset(n)) => n >= *end,
                        _ => *end == 0,
                    }
                });
                // Transaction markers leave positions short of the end: stop
                // after a quiet second as well.
                if at_end || quiet_since.elapsed() > Duration::from_secs(2) {
                    return Ok(());
                }
            }
        }
    }
}
