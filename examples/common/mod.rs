//! Flags and plumbing shared by the example jobs: where records come from
//! (the generator, files or a Kafka topic), where results and dead letters
//! go.

pub mod kafka;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use weir::config::parse_duration;
use weir::source::CloneSource;
use weir::{DeadLetter, RunArgs, Sink, Source, SourceBuilder, Stream, Watermarks};
use weir_connectors::{
    FileSink, FileSource, Format, Generated, Generator, GeneratorConfig, PartsSink, StdoutSink,
};
use weir_kafka::{KafkaDeadLetterSink, KafkaSource};

/// Input, output and generator flags, plus weir's run flags.
#[derive(Args, Clone, Debug)]
pub struct JobArgs {
    /// Read records from this file or directory instead of the generator.
    #[arg(long, value_name = "PATH")]
    pub input: Option<PathBuf>,

    /// Read each --input file as N splits, so that workers share it: split
    /// k of N reads chunks k, k+N, k+2N, ... of --file-chunk bytes (each
    /// starting at a line break). The splits depend on the file sizes only,
    /// so output is the same on any worker count. 1 reads each file whole,
    /// in order (needed for CSV whose quoted fields hold line breaks).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub file_splits: u32,

    /// The chunk size of --file-splits (at least 1K): bytes, or with K, M or
    /// G (powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub file_chunk: u64,

    /// Format of --input: csv (with a header row) or jsonl. Default: from the extension, else csv.
    #[arg(long, value_name = "csv|jsonl")]
    pub format: Option<Format>,

    /// Write results here instead of stdout: a file, or, when the job
    /// checkpoints (the default), a directory of per-epoch parts published
    /// exactly once (read them in name order: `cat PATH/part-*`).
    #[arg(long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Format of results: jsonl or csv. Default: from --output's extension, else jsonl.
    #[arg(long, value_name = "csv|jsonl")]
    pub output_format: Option<Format>,

    /// Where dead letters (malformed, nonsensical, late and out-of-range
    /// records) go, as JSON lines:
    /// when the job checkpoints, a directory of parts like --output (default
    /// <job>-dead-letters), else a file (default <job>-dead-letters.jsonl).
    #[arg(long, value_name = "PATH")]
    pub dead_letters: Option<PathBuf>,

    /// Generator: stop after N records (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub events: Option<u64>,

    /// Generator: records per second of wall-clock time (default: as fast as the job goes).
    #[arg(long, value_name = "N")]
    pub rate: Option<f64>,

    /// Generator: number of distinct keys.
    #[arg(long, value_name = "N")]
    pub keys: Option<u64>,

    /// Generator: key skew in [0, 1); 0 is uniform.
    #[arg(long, value_name = "F")]
    pub skew: Option<f64>,

    /// Generator: seed.
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,

    /// Generator: number of splits (fixed whatever the worker count).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub splits: u32,

    /// Generator: event time between consecutive records.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "1ms")]
    pub spacing: Duration,

    /// Generator: maximum out-of-orderness of event times.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "500ms")]
    pub disorder: Duration,

    /// Generator: fraction of records that arrive a minute late.
    #[arg(long, value_name = "F", default_value_t = 0.001)]
    pub late_fraction: f64,

    /// Generator: fraction of malformed records.
    #[arg(long, value_name = "F", default_value_t = 0.001)]
    pub malformed_fraction: f64,

    /// Watermark: how far behind the latest event time records may still arrive on time.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "2s")]
    pub bound: Duration,

    #[command(flatten)]
    pub kafka: kafka::KafkaArgs,

    /// The Kafka cluster and topics, once [`JobArgs::input`] resolved them.
    #[arg(skip)]
    pub kafka_job: Option<kafka::Kafka>,

    #[command(flatten)]
    pub run: RunArgs,
}

impl JobArgs {
    /// The input, checked before the job starts (a missing file or topic
    /// fails here).
    pub fn input<T: Generated + Send + Sync>(
        &mut self,
        job: &str,
        default_keys: u64,
    ) -> anyhow::Result<Input<T>> {
        if let Some(kafka) = self.kafka.resolve(job, !self.run.no_checkpoints)? {
            if self.input.is_some() || self.output.is_some() || self.dead_letters.is_some() {
                bail!("--kafka reads and writes topics: leave out --input, --output and --dead-letters");
            }
            let source = KafkaSource::<T>::new(kafka.config.clone(), &kafka.input_topic)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .start_at(kafka.start_at)
                .stop_at_end(kafka.stop_at_end)
                .timestamps(kafka.event_time == kafka::EventTime::KafkaTimestamp)
                .format(kafka.format)?;
            self.kafka_job = Some(kafka);
            return Ok(Box::new(source));
        }
        if self.file_chunk < 1024 {
            bail!(
                "--file-chunk must be at least 1K (got {} bytes); below 1M reading only gets slower",
                self.file_chunk
            );
        }
        if let Some(path) = &self.input {
            let format = self
                .format
                .or_else(|| Format::from_path(path))
                .unwrap_or(Format::Csv);
            let source = FileSource::open(path, format)?
                .splits_per_file(self.file_splits)
                .chunk_bytes(self.file_chunk);
            return Ok(Box::new(source));
        }
        let config = GeneratorConfig {
            seed: self.seed,
            events: self.events,
            rate: self.rate,
            keys: self.keys.unwrap_or(default_keys),
            skew: self.skew.unwrap_or(0.0),
            spacing: self.spacing,
            disorder: self.disorder,
            late_fraction: self.late_fraction,
            malformed_fraction: self.malformed_fraction,
            splits: self.splits,
            ..GeneratorConfig::default()
        };
        let generator = Generator::new(config).map_err(|e| anyhow::anyhow!("generator: {e}"))?;
        Ok(Box::new(generator))
    }

    /// Where the job's event time comes from (`--event-time`).
    pub fn event_time(&self) -> kafka::EventTime {
        self.kafka_job
            .as_ref()
            .map(|k| k.event_time)
            .unwrap_or_default()
    }

    /// Checks output paths and sets up checkpoints before the job starts
    /// (call it after [`JobArgs::input`], which checks the input):
    /// unless `--no-checkpoints`, the job checkpoints to
    /// `--checkpoint-dir` (default `weir-checkpoints/<job>`) with RocksDB.
    pub fn prepare(&mut self, job: &str) -> anyhow::Result<()> {
        self.check_outputs()?;
        self.run.timely_config()?;
        if !self.run.no_checkpoints {
            if self.run.checkpoint_dir.is_none() {
                self.run.checkpoint_dir = Some(PathBuf::from("weir-checkpoints").join(job));
            }
            self.run.backend = Some(weir_rocks::backend());
            if let Some(kafka) = &self.kafka_job {
                let log = kafka
                    .sink::<()>(|_| Vec::new())
                    .commit_log(&kafka.output_topic);
                if let Some(log) = log {
                    self.run
                        .commit_logs
                        .push(weir::commit_log::CommitLogHandle(std::sync::Arc::new(log)));
                    self.run.start_notes.push(format!(
                        "results go to topic {} exactly once: each checkpoint's results become visible to read_committed consumers when it is complete",
                        kafka.output_topic
                    ));
                } else {
                    self.run.start_notes.push(format!(
                        "results go to topic {} at-least-once: after a restore, results since the last checkpoint are written again",
                        kafka.output_topic
                    ));
                }
            } else if self.output.is_none() {
                self.run.start_notes.push(
                    "results go to stdout, at-least-once: after a restore, output since the last checkpoint repeats (use --output DIR for exactly-once)".into(),
                );
            }
        }
        Ok(())
    }

    fn checkpoints(&self) -> bool {
        !self.run.no_checkpoints && self.run.backend.is_some()
    }

    fn check_outputs(&self) -> anyhow::Result<()> {
        for path in self.output.iter().chain(self.dead_letters.iter()) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    bail!(
                        "cannot write {}: directory {} does not exist",
                        path.display(),
                        dir.display()
                    );
                }
            }
        }
        if self.events == Some(0) {
            bail!("--events must be at least 1 (leave it out to run until Ctrl-C)");
        }
        Ok(())
    }

    /// Where results go: stdout, a file, (when the job checkpoints) a
    /// directory of exactly-once parts, or the Kafka output topic, each
    /// message keyed by `key`.
    pub fn output<T: serde::Serialize + 'static>(
        &self,
        key: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static,
    ) -> Box<dyn Sink<T>> {
        if let Some(kafka) = &self.kafka_job {
            return Box::new(kafka.sink(key));
        }
        let format = self
            .output_format
            .or_else(|| self.output.as_deref().and_then(Format::from_path))
            .unwrap_or(Format::Jsonl);
        match &self.output {
            Some(path) if self.checkpoints() => Box::new(PartsSink::new(path, format)),
            Some(path) => Box::new(FileSink::create(path, format)),
            None => Box::new(StdoutSink::new(format)),
        }
    }

    /// Where dead letters go: a file, or (when the job checkpoints) a
    /// directory of exactly-once parts.
    pub fn dead_letter_sink(&self, job: &str) -> Box<dyn Sink<DeadLetter>> {
        if let Some(kafka) = &self.kafka_job {
            return Box::new(KafkaDeadLetterSink::new(
                kafka.config.clone(),
                &kafka.dead_letter_topic,
            ));
        }
        // The defaults differ, so that runs with and without checkpoints do
        // not trip over each other's directory or file.
        let path = self.dead_letters.clone().unwrap_or_else(|| {
            PathBuf::from(if self.checkpoints() {
                format!("{job}-dead-letters")
            } else {
                format!("{job}-dead-letters.jsonl")
            })
        });
        if self.checkpoints() {
            Box::new(PartsSink::new(path, Format::Jsonl))
        } else {
            Box::new(FileSink::create(path, Format::Jsonl))
        }
    }
}

/// The source's records with their event time: the record's `ts_ms`, or
/// (`--event-time kafka-timestamp`) the Kafka message's timestamp, written
/// into `ts_ms` too, so that what a job computes from the field (a process
/// function's timers, an alert's time) agrees with the engine's event time.
pub fn timed<'s, S>(
    source: SourceBuilder<'s, S>,
    from: kafka::EventTime,
    watermarks: Watermarks,
) -> Stream<'s, S::Item>
where
    S: Source,
    S::Item: Generated,
{
    match from {
        kafka::EventTime::Field => source.event_time(|r: &S::Item| r.ts_ms(), watermarks),
        kafka::EventTime::KafkaTimestamp => source.source_time(watermarks).with_event_time().map(
            |(ts_ms, mut record): (u64, S::Item)| {
                record.set_ts_ms(ts_ms);
                record
            },
        ),
    }
}

/// Records from the generator or from files: any source, boxed (a boxed
/// source is a source, and this one clones to every worker).
pub type Input<T> = Box<dyn CloneSource<Item = T>>;

/// Turns a job's result into the process's exit: 0, or one line on stderr
/// saying what went wrong and exit code 1 (no backtrace: bad input is not a bug).
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A job's result as an `anyhow` result.
pub fn finish(result: Result<weir::Summary, weir::JobError>) -> anyhow::Result<()> {
    result.map(|_| ()).map_err(anyhow::Error::new)
}

/// Parses a size: bytes, or a number with K, M or G (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("`{text}`: use bytes, or a number with K, M or G")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}`: use bytes, or a number with K, M or G"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}
