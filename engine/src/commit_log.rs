//! Where a job resumes when a sink's staged output dies with a crash.
//!
//! An exactly-once sink whose staging survives a crash (a directory of
//! parts) commits at a restore what a complete checkpoint covered
//! ([`crate::sink_protocol::Resolve::Commit`]). A Kafka transaction does
//! not survive: a new producer with the same `transactional.id` aborts it,
//! and no client can resume it. Such a sink says so
//! ([`Sink::staging_survives_crash`](crate::Sink::staging_survives_crash)
//! is `false`) and keeps a *commit log*: inside every transaction it
//! records the epoch through which the transaction makes output visible,
//! so the log says exactly what is visible. Before a checkpointing job
//! plans its restore, the engine asks the log ([`CommitLog::committed`])
//! and resumes from the checkpoint of exactly that epoch ([`start_for`]):
//!
//! - everything the log shows committed is covered by the restored
//!   checkpoint, so nothing is written twice;
//! - everything after it, including an epoch whose checkpoint completed
//!   but whose commit a crash cut short, is produced again from that
//!   checkpoint — weir's output is a function of its input and the
//!   checkpoint, so it is the same output, and nothing is lost.
//!
//! This needs the checkpoint of the committed epoch to be kept, however
//! far commits lag behind checkpoints: the manifest keeps it and every
//! later complete checkpoint, besides the newest `--keep-checkpoints`
//! ([`crate::sink_protocol`], "Keeping what a restore needs").
//!
//! One such sink per job: two logs could disagree after a crash between
//! their commits, and no single checkpoint would then be right for both.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, Fault};

/// What a sink's commit log shows visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Nothing of this run's lineage (a fresh start resets the log).
    Nothing,
    /// The output of every epoch `<=` this one.
    Through(u64),
    /// Everything: the run finished and its last commit went through.
    All,
}

impl fmt::Display for Committed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Committed::Nothing => f.write_str("nothing"),
            Committed::Through(epoch) => write!(f, "through epoch {epoch}"),
            Committed::All => f.write_str("everything (the run finished)"),
        }
    }
}

/// A sink's commit log, asked before the job plans where it starts.
pub trait CommitLog: Send + Sync + 'static {
    /// The sink's name, for messages.
    fn sink(&self) -> &str;

    /// Checks the sink's settings against the run's: a transaction must
    /// outlive an epoch and its checkpoint (`epoch_interval`). The error is
    /// one line saying what to change.
    fn check(&self, epoch_interval: Duration) -> Result<(), ConfigError>;

    /// What is visible. Fences any producer an earlier run left alive, so
    /// the answer cannot change while the job starts.
    fn committed(&self) -> Result<Committed, Fault>;
}

/// A shared commit log, as [`RunArgs`](crate::RunArgs) carries it.
#[derive(Clone)]
pub struct CommitLogHandle(pub Arc<dyn CommitLog>);

impl fmt::Debug for CommitLogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitLog({})", self.0.sink())
    }
}

/// Where a run starts, given the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// From the checkpoint of this epoch (verified, or the job refuses).
    Restore(u64),
    /// Afresh: nothing of the earlier run is visible, or it finished.
    Fresh,
}

/// What the checkpoint directory holds, as far as [`start_for`] cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checkpoints {
    /// The complete epochs the manifest lists.
    pub complete: Vec<u64>,
    /// Whether the run was recorded finished.
    pub finished: bool,
}

/// Where a run with a commit log starts: the checkpoint of exactly the
/// epoch the log shows committed (see the [module docs](self)). `explicit`
/// is `--restore`'s epoch; `fresh` is `--fresh`. The error is one line.
pub fn start_for(
    sink: &str,
    held: &Checkpoints,
    explicit: Option<u64>,
    fresh: bool,
    committed: Committed,
) -> Result<Start, String> {
    if fresh {
        return Ok(Start::Fresh);
    }
    let newest = held.complete.iter().max().copied();
    let keeps = |epoch: u64| held.complete.contains(&epoch);
    match (explicit, committed) {
        (Some(wanted), Committed::Through(m)) if wanted == m => Ok(Start::Restore(m)),
        (Some(wanted), Committed::Through(m)) if wanted > m => Err(format!(
            "--restore {wanted}: sink `{sink}` made output visible only through epoch {m}; restoring {wanted} would lose epochs {}..={wanted}: use --restore {m}",
            m + 1
        )),
        (Some(wanted), Committed::Through(m)) => Err(format!(
            "--restore {wanted}: sink `{sink}` already made epochs through {m} visible, and cannot withdraw them; restoring {wanted} would write epochs {}..={m} again: use --restore {m}, or --fresh for a new run",
            wanted + 1
        )),
        (Some(wanted), shown) => Err(format!(
            "--restore {wanted}: sink `{sink}` shows {shown} committed, not epoch {wanted}: restore without --restore, or use --fresh for a new run"
        )),
        (None, Committed::Through(m)) if keeps(m) => Ok(Start::Restore(m)),
        (None, Committed::Through(m)) => Err(format!(
            "sink `{sink}` made output visible through epoch {m}, but the checkpoint of epoch {m} is gone (complete: {}); resuming elsewhere would lose or repeat output: use --fresh for a new run",
            list(&held.complete)
        )),
        // Nothing visible: the earlier run's output is all produced again.
        (None, Committed::Nothing) => Ok(Start::Fresh),
        (None, Committed::All) if held.finished || newest.is_none() => Ok(Start::Fresh),
        (None, Committed::All) => Err(format!(
            "sink `{sink}` shows a finished run committed, but the checkpoints in the directory are of an unfinished one (complete: {}): use --fresh for a new run",
            list(&held.complete)
        )),
    }
}

fn list(epochs: &[u64]) -> String {
    if epochs.is_empty() {
        return "none".into();
    }
    let mut sorted = epochs.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Committed::*;

    fn held(complete: &[u64], finished: bool) -> Checkpoints {
        Checkpoints {
            complete: complete.to_vec(),
            finished,
        }
    }

    #[test]
    fn a_run_resumes_from_exactly_what_the_log_shows_committed() {
        type Row = (
            &'static str,
            Checkpoints,
            Option<u64>,
            bool,
            Committed,
            Result<Start, &'static str>,
        );
        let rows: Vec<Row> = vec![
            (
                "committed the newest",
                held(&[3, 4], false),
                None,
                false,
                Through(4),
                Ok(Start::Restore(4)),
            ),
            (
                "crash after checkpoint 4 completed, before its commit",
                held(&[3, 4], false),
                None,
                false,
                Through(3),
                Ok(Start::Restore(3)),
            ),
            (
                "checkpoint 2 is gone",
                held(&[3, 4], false),
                None,
                false,
                Through(2),
                Err("checkpoint of epoch 2 is gone"),
            ),
            (
                "nothing committed yet",
                held(&[0], false),
                None,
                false,
                Nothing,
                Ok(Start::Fresh),
            ),
            (
                "nothing at all",
                held(&[], false),
                None,
                false,
                Nothing,
                Ok(Start::Fresh),
            ),
            (
                "a finished run starts over",
                held(&[7], true),
                None,
                false,
                All,
                Ok(Start::Fresh),
            ),
            (
                "finished, but the last commit was lost",
                held(&[6, 7], true),
                None,
                false,
                Through(7),
                Ok(Start::Restore(7)),
            ),
            (
                "finished and committed, unfinished checkpoints",
                held(&[2], false),
                None,
                false,
                All,
                Err("finished run committed"),
            ),
            (
                "--fresh wins",
                held(&[3, 4], false),
                None,
                true,
                Through(1),
                Ok(Start::Fresh),
            ),
            (
                "--restore the committed epoch",
                held(&[3, 4], false),
                Some(3),
                false,
                Through(3),
                Ok(Start::Restore(3)),
            ),
            (
                "--restore past the committed",
                held(&[3, 4], false),
                Some(4),
                false,
                Through(3),
                Err("would lose epochs 4..=4"),
            ),
            (
                "--restore before the committed",
                held(&[3, 4], false),
                Some(3),
                false,
                Through(4),
                Err("would write epochs 4..=4 again"),
            ),
            (
                "--restore with nothing committed",
                held(&[3, 4], false),
                Some(3),
                false,
                Nothing,
                Err("shows nothing committed"),
            ),
        ];
        for (what, held, explicit, fresh, committed, expected) in rows {
            let got = start_for("out", &held, explicit, fresh, committed);
            match (&got, expected) {
                (Ok(start), Ok(want)) => assert_eq!(*start, want, "{what}"),
                (Err(line), Err(part)) => {
                    assert!(line.contains(part), "{what}: {line}");
                    assert!(
                        line.contains("sink `out`") && !line.contains('\n'),
                        "{what}: {line}"
                    );
                }
                _ => panic!("{what}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}
