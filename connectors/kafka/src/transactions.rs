//! Exactly-once output through Kafka transactions, and the commit log that
//! says what is visible.
//!
//! **One writer, one transaction per commit.** An exactly-once
//! [`KafkaSink`](crate::KafkaSink) is written by one worker (every record
//! goes to worker 0), with one transactional producer whose
//! `transactional.id` the job chooses ([`KafkaSink::exactly_once`]). The
//! records of the oldest uncommitted epoch go into the open transaction as
//! they arrive; records of later epochs wait in memory for their turn.
//! When the checkpoint of epoch `c` is complete, the transaction takes
//! every waiting record of epochs `<= c`, plus one message to the commit
//! log, and commits: a `read_committed` consumer sees the epochs `<= c`
//! whole, at once.
//!
//! **The commit log** is a compacted topic (default `weir-commits`, one
//! partition) holding, under the key `transactional.id`, the newest epoch
//! the id's transactions made visible: `through N`, `all` (the run
//! finished) or `nothing` (a fresh start wrote it first). Because the log
//! message is in the same transaction as the output, the log is never
//! ahead of or behind the output.
//!
//! **Restore.** A Kafka transaction cannot be resumed by a new producer:
//! starting one with the same id fences the old one (a zombie cannot
//! commit any more) and aborts what it left open. So a crash after the
//! checkpoint of `c` completed but before the commit of `c` loses that
//! transaction. The rule (in [`weir::commit_log`]): the job resumes from the
//! checkpoint of exactly the epoch the log shows — here `c - 1` — and
//! produces everything after it again; weir's output is a function of its
//! input and the checkpoint, so this is the lost output, once. The engine
//! asks the log before it plans the restore ([`KafkaCommitLog`], which the
//! job puts in `RunArgs::commit_logs`); the sink checks at its start that
//! the restored epoch is the one the log shows, and stops the job if a
//! program forgot the log. Exactly one worker writes, so the worker count
//! may change between runs.
//!
//! Settings: `transaction.timeout.ms` (librdkafka's default is 60 s) must
//! cover two epochs and a checkpoint; a shorter one is refused at start.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use weir::{CommitLog, Committed, ConfigError, Fault};

use crate::admin::create_topic_with;
use crate::config::KafkaConfig;
use crate::fault::fault;
use crate::sink::Producing;

/// The commit log's topic unless the job names another.
pub const DEFAULT_COMMIT_LOG: &str = "weir-commits";

/// How long a transaction call may take before it is retried.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka's default `transaction.timeout.ms`.
const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;

/// A message waiting for its epoch's turn: key and value.
type Waiting = (Option<Vec<u8>>, Vec<u8>);

/// Who writes exactly once: the transactional id and the log.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) transactional_id: String,
    pub(crate) log_topic: String,
}

/// A commit-log entry as stored.
fn encode_entry(committed: Committed) -> String {
    match committed {
        Committed::Nothing => "nothing".into(),
        Committed::Through(epoch) => format!("through {epoch}"),
        Committed::All => "all".into(),
    }
}

fn decode_entry(text: &str) -> Option<Committed> {
    match text.trim() {
        "nothing" => Some(Committed::Nothing),
        "all" => Some(Committed::All),
        other => other
            .strip_prefix("through ")
            .and_then(|n| n.parse().ok())
            .map(Committed::Through),
    }
}

/// A transaction call's error as a fault: retriable ones are transient;
/// one that needs an abort (or is fatal) stops the job, whose restore
/// then resumes from what the log shows.
fn txn_fault(what: &str, e: &KafkaError) -> Fault {
    if let KafkaError::Transaction(t) = e {
        let message = format!("kafka: {what}: {e}");
        return if t.is_retriable() && !t.txn_requires_abort() && !t.is_fatal() {
            Fault::transient(message)
        } else {
            Fault::fatal(message)
        };
    }
    fault(what, e)
}

/// The transactional producer of an exactly-once sink.
fn transactional_producer(config: &KafkaConfig, id: &Identity) -> Result<Producing, Fault> {
    let producing = Producing::with(config, &[("transactional.id", &id.transactional_id)])?;
    producing
        .producer()
        .init_transactions(CALL_TIMEOUT)
        .map_err(|e| txn_fault("starting transactions (init_transactions)", &e))?;
    Ok(producing)
}

/// Reads what the log shows for `id` (`read_committed`, to its end).
fn read_log(config: &KafkaConfig, id: &Identity) -> Result<Committed, Fault> {
    create_topic_with(config, &id.log_topic, 1, &[("cleanup.policy", "compact")])?;
    let consumer: BaseConsumer = config
        .client(&[
            ("isolation.level", "read_committed"),
            ("enable.partition.eof", "true"),
            ("enable.auto.commit", "false"),
            ("group.id", "weir-commit-log-reader"),
        ])
        .create()
        .map_err(|e| fault("creating a consumer for the commit log", &e))?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&id.log_topic, 0, Offset::Beginning)
        .map_err(|e| fault("reading the commit log", &e))?;
    consumer
        .assign(&assignment)
        .map_err(|e| fault("reading the commit log", &e))?;
    let mut shown = Committed::Nothing;
    let started = std::time::Instant::now();
    loop {
        if started.elapsed() > CALL_TIMEOUT {
            return Err(Fault::transient(format!(
                "kafka: reading the commit log `{}` took longer than {} s",
                id.log_topic,
                CALL_TIMEOUT.as_secs()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(shown),
            Some(Err(e)) => return Err(fault("reading the commit log", &e)),
            Some(Ok(message)) => {
                if message.key() != Some(id.transactional_id.as_bytes()) {
                    continue;
                }
                let text = message
                    .payload()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                shown = decode_entry(&text).ok_or_else(|| {
                    Fault::fatal(format!(
                        "kafka: the commit log `{}` holds `{text}` for `{}` at offset {}: not a weir entry",
                        id.log_topic,
                        id.transactional_id,
                        message.offset()
                    ))
                })?;
            }
        }
    }
}

/// The commit log of one exactly-once sink, for `RunArgs::commit_logs`.
pub struct KafkaCommitLog {
    sink: String,
    config: KafkaConfig,
    id: Identity,
}

impl KafkaCommitLog {
    pub(crate) fn new(sink: &str, config: KafkaConfig, id: Identity) -> Self {
        KafkaCommitLog {
            sink: sink.to_string(),
            config,
            id,
        }
    }
}

impl CommitLog for KafkaCommitLog {
    fn sink(&self) -> &str {
        &self.sink
    }

    fn check(&self, epoch_interval: Duration) -> Result<(), ConfigError> {
        check_timeout(&self.config, epoch_interval)
    }

    fn committed(&self) -> Result<Committed, Fault> {
        // Fence first: a producer an earlier run left alive can no longer
        // commit, and what it left open is aborted, so the log is final.
        drop(transactional_producer(&self.config, &self.id)?);
        read_log(&self.config, &self.id)
    }
}

/// Whether `transaction.timeout.ms` covers two epochs and a checkpoint.
pub(crate) fn check_timeout(
    config: &KafkaConfig,
    epoch_interval: Duration,
) -> Result<(), ConfigError> {
    let timeout_ms = match config.get("transaction.timeout.ms") {
        None => DEFAULT_TRANSACTION_TIMEOUT_MS,
        Some(text) => text.parse().map_err(|_| {
            ConfigError::new(format!(
                "--kafka-config transaction.timeout.ms={text}: give milliseconds"
            ))
        })?,
    };
    let needed = needed_timeout_ms(epoch_interval);
    if timeout_ms < needed {
        return Err(ConfigError::new(format!(
            "kafka: transaction.timeout.ms={timeout_ms} is too short for a {} ms epoch interval (a transaction stays open for up to two epochs and a checkpoint): set --kafka-config transaction.timeout.ms={needed} or more, or a shorter --epoch-interval",
            epoch_interval.as_millis()
        )));
    }
    Ok(())
}

/// Two epochs and ten seconds for the checkpoint.
fn needed_timeout_ms(epoch_interval: Duration) -> u64 {
    let epoch = u64::try_from(epoch_interval.as_millis()).unwrap_or(u64::MAX);
    epoch.saturating_mul(2).saturating_add(10_000)
}

/// One exactly-once sink worker's transactions.
pub(crate) struct Transactions {
    producer: Producing,
    id: Identity,
    config: KafkaConfig,
    /// The oldest epoch not yet committed: its records go straight into
    /// the open transaction.
    current: u64,
    /// Whether a transaction is open.
    open: bool,
    /// Records of later epochs, until their turn.
    later: BTreeMap<u64, Vec<Waiting>>,
    /// The commit in progress: its records and log entry are sent, so a
    /// retried commit only commits.
    sealed: Option<u64>,
}

impl Transactions {
    /// Starts the producer (fencing any earlier one with the same id).
    pub(crate) fn start(config: &KafkaConfig, id: Identity) -> Result<Self, Fault> {
        let producer = transactional_producer(config, &id)?;
        Ok(Transactions {
            producer,
            id,
            config: config.clone(),
            current: 0,
            open: false,
            later: BTreeMap::new(),
            sealed: None,
        })
    }

    /// Checks that the job restores exactly what the log shows, and on a
    /// fresh start resets the log, before anything is written.
    pub(crate) fn recover(&mut self, restored: Option<u64>) -> Result<(), Fault> {
        let shown = read_log(&self.config, &self.id)?;
        match restored {
            None => {
                self.begin()?;
                self.send_entry(Committed::Nothing)?;
                self.commit_open("resetting the commit log")?;
                self.current = 0;
            }
            Some(r) if shown == Committed::Through(r) => self.current = r.saturating_add(1),
            Some(r) => {
                return Err(Fault::fatal(format!(
                    "kafka: the job restored epoch {r}, but the commit log `{}` shows `{}` {shown} committed: restoring elsewhere loses or repeats output; put the sink's commit log (KafkaSink::commit_log) in RunArgs::commit_logs so the job resumes where the log says",
                    self.id.log_topic, self.id.transactional_id
                )))
            }
        }
        Ok(())
    }

    /// Writes one record of `epoch`: into the open transaction if `epoch`
    /// is the oldest uncommitted one, else into memory until its turn.
    pub(crate) fn write(
        &mut self,
        topic: &str,
        epoch: u64,
        key: Option<Vec<u8>>,
        value: &[u8],
    ) -> Result<(), Fault> {
        if epoch <= self.current {
            self.begin()?;
            self.producer.send(topic, key.as_deref(), value, None)
        } else {
            self.later
                .entry(epoch)
                .or_default()
                .push((key, value.to_vec()));
            Ok(())
        }
    }

    /// Fails on a message the broker refused.
    pub(crate) fn check(&self) -> Result<(), Fault> {
        self.producer.check()
    }

    /// Commits every epoch `<= through` (`u64::MAX`: everything) with its
    /// log entry, then opens the next epoch's transaction with what waited.
    pub(crate) fn commit(&mut self, topic: &str, through: u64) -> Result<(), Fault> {
        if self.sealed != Some(through) {
            self.begin()?;
            let due: Vec<u64> = self.later.range(..=through).map(|(e, _)| *e).collect();
            for epoch in due {
                for (key, value) in self.later.remove(&epoch).unwrap_or_default() {
                    self.producer.send(topic, key.as_deref(), &value, None)?;
                }
            }
            let entry = if through == u64::MAX {
                Committed::All
            } else {
                Committed::Through(through)
            };
            self.send_entry(entry)?;
            self.sealed = Some(through);
        }
        self.commit_open("committing a transaction")?;
        self.sealed = None;
        self.current = through.saturating_add(1);
        // The next epoch's records stream into a transaction of their own.
        if let Some(waiting) = self.later.remove(&self.current) {
            self.begin()?;
            for (key, value) in waiting {
                self.producer.send(topic, key.as_deref(), &value, None)?;
            }
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), Fault> {
        if !self.open {
            self.producer
                .producer()
                .begin_transaction()
                .map_err(|e| txn_fault("beginning a transaction", &e))?;
            self.open = true;
        }
        Ok(())
    }

    fn send_entry(&mut self, entry: Committed) -> Result<(), Fault> {
        let text = encode_entry(entry);
        self.producer.send(
            &self.id.log_topic,
            Some(self.id.transactional_id.as_bytes()),
            text.as_bytes(),
            None,
        )
    }

    fn commit_open(&mut self, what: &str) -> Result<(), Fault> {
        // Deliver first with weir's flush: rdkafka's commit_transaction
        // flushes in whole 100 ms slices, and then finds nothing to wait for.
        self.producer.flush()?;
        let producer = self.producer.producer();
        match producer.commit_transaction(CALL_TIMEOUT) {
            Ok(()) => {
                self.open = false;
                self.producer.check()
            }
            Err(e) => {
                let fault = txn_fault(what, &e);
                if !fault.is_transient() {
                    // Nothing of it becomes visible; the restore produces it again.
                    let _ = producer.abort_transaction(CALL_TIMEOUT);
                    self.open = false;
                }
                Err(fault)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_read_back() {
        for entry in [
            Committed::Nothing,
            Committed::All,
            Committed::Through(0),
            Committed::Through(u64::MAX - 2),
        ] {
            assert_eq!(decode_entry(&encode_entry(entry)), Some(entry));
        }
        assert_eq!(decode_entry("through x"), None);
        assert_eq!(decode_entry(""), None);
    }

    #[test]
    fn the_timeout_must_cover_two_epochs_and_a_checkpoint() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        assert!(check_timeout(&config, Duration::from_secs(1)).is_ok());
        let e = check_timeout(&config, Duration::from_secs(30)).expect_err("30 s epochs need more");
        let line = e.to_string();
        assert!(
            line.contains("transaction.timeout.ms=70000") && !line.contains('\n'),
            "{line}"
        );
        config
            .set_pair("transaction.timeout.ms=70000")
            .expect("a pair");
        assert!(check_timeout(&config, Duration::from_secs(30)).is_ok());
        config
            .set_pair("transaction.timeout.ms=soon")
            .expect("a pair");
        assert!(check_timeout(&config, Duration::from_secs(1)).is_err());
    }
}
