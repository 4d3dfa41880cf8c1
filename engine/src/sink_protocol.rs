//! The sink protocol: the one place its rules live.
//!
//! Every sink is driven by the same per-worker state machine,
//! `SinkMachine`: the sink operator feeds it what happened (`Event`) and
//! does what it says (`Action`), calling the [`Sink`] methods of the same
//! names. Nothing here does I/O, so every rule is a row of a table test.
//!
//! **Which workers write** (`writes_on`): a parallel sink is opened on
//! every worker and gets that worker's records; any other sink is opened on
//! worker 0, which receives every record.
//!
//! **Delivery** (`delivery`): a sink that says [`Sink::exactly_once`] in a
//! job that checkpoints takes part in checkpoints (two-phase commit, below),
//! parallel or not. In a job without checkpoints there is no restore, so
//! every run's output stands alone: such a sink is driven at-least-once, and
//! one that can only be exactly-once through checkpoints
//! ([`Sink::needs_checkpoints`], a transactional topic) is refused at start
//! with a one-line error. Nothing falls back silently.
//!
//! **At-least-once**: records go to [`Sink::write_epoch`] as they arrive;
//! when the input has passed an epoch, [`Sink::end_epoch`] is called once
//! with the newest epoch passed (make what was written durable or visible),
//! and once more with `u64::MAX` when the input ends. A restore writes again
//! what followed the restored checkpoint. In a job that checkpoints
//! ([`Delivery::AtLeastOnceCheckpointed`]) the worker then reports the epoch
//! flushed, like step 2 below, once [`Sink::durable`] says its output is
//! durable (asked again every millisecond meanwhile, while later epochs are
//! written; reports keep epoch order), so a checkpoint is complete only once every
//! writing worker's output through it is durable: a crash right after a
//! checkpoint cannot lose output the restore will not produce again. At the
//! end of input it reports the end and, like an exactly-once sink, waits for
//! the run to be recorded finished.
//!
//! **Exactly-once (two-phase commit)**, on every worker that writes:
//!
//! 1. *Stage*: records of epoch `e` go to [`Sink::write_epoch`], not yet
//!    visible.
//! 2. *Prepare*: once the input has passed `e`, [`Sink::prepare`] makes
//!    everything staged through `e` durable (still invisible), and the
//!    worker reports `e` flushed. A checkpoint of `e` is complete only with
//!    the report of every worker that writes the sink (on every worker of a
//!    parallel sink, [`StepKind::ParallelSink`](crate::checkpoint::protocol::StepKind)).
//! 3. *Commit*: when the worker learns that the checkpoint of `c` is
//!    complete (the manifest writer broadcasts it to every worker of every
//!    process; the engine's worker checkpoint keeps the newest it heard),
//!    [`Sink::commit`] makes epochs `<= min(c, prepared)` visible. The
//!    worker reacts to the announcement; it does not poll.
//! 4. *End of input*: everything is prepared and the worker reports the end
//!    (`FINAL_EPOCH`). When every writing worker has, the manifest writer
//!    records the run finished and announces it; each worker then commits
//!    everything (`commit(u64::MAX)`) and lets the job end. A kill before
//!    the record restores the last checkpoint and produces the rest again; a
//!    kill after it starts a finished job afresh.
//! 5. *Restore* from epoch `r` (`None`: a fresh start): before writing, the
//!    sink resolves what earlier runs left ([`Sink::recover`]), each
//!    epoch by [`resolve`]: staged output of an epoch `<= r` belongs to a
//!    complete checkpoint whose commit a crash may have cut short — commit
//!    it (or, if the sink lost it, as a Kafka transaction can be lost, it
//!    must be produced again: [`Resolve::Commit`]'s note); staged output of
//!    an epoch `> r` is produced again by this run — abort it; committed
//!    output of an epoch `> r` (a restore older than the newest checkpoint,
//!    or a fresh start) is withdrawn where the sink can. On another worker
//!    count, the output an earlier run's worker `p` left is resolved by this
//!    run's worker `p % workers` ([`resolves`]), so every earlier worker's
//!    staging has exactly one owner.
//!
//! **Keeping what a restore needs**: a sink whose staging a crash loses
//! (a Kafka transaction, [`Sink::staging_survives_crash`] is `false`) is
//! restored from the checkpoint of exactly the epoch it made visible
//! ([`crate::commit_log`]), however far commits lag behind checkpoints. So
//! the manifest keeps that checkpoint and every later one, besides the
//! newest `keep` ([`crate::checkpoint::protocol::retained`]): the driver
//! tells the plan the restored epoch at start and each epoch it commits.
//! (An earlier rule, report an epoch only once everything reported before
//! was committed, could wait forever: a stateful step that saw several
//! epochs pass at once flushes only the newest, so the epoch the sink
//! reported might never complete.)
//!
//! A restored worker starts with everything through `r` prepared and
//! committed; in a new store generation (another worker count) it reports
//! `r` flushed again, so the generation is self-contained.

use crate::error::ConfigError;

#[cfg(doc)]
use crate::sink::Sink;

/// The epoch at which sinks report the end of their input, and the manifest
/// writer announces the run finished. No job lives to reach it.
pub(crate) const FINAL_EPOCH: u64 = u64::MAX - 1;

/// How a sink is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Write, and end each epoch; a restore writes again what followed the
    /// restored checkpoint.
    AtLeastOnce,
    /// At-least-once in a job that checkpoints: each ended epoch is also
    /// reported flushed, so no checkpoint completes before its output is
    /// durable.
    AtLeastOnceCheckpointed,
    /// Stage, prepare, commit when the checkpoint is complete.
    ExactlyOnce,
}

/// How the sink `name` is driven, or why it cannot run. `lost_in_parallel`:
/// the sink is parallel and its staging does not survive a crash, which
/// the engine cannot restore (one commit log, written by one worker).
pub(crate) fn delivery(
    name: &str,
    exactly_once: bool,
    needs_checkpoints: bool,
    checkpointing: bool,
    lost_in_parallel: bool,
) -> Result<Delivery, ConfigError> {
    match (exactly_once, checkpointing) {
        (true, true) if lost_in_parallel => Err(ConfigError::new(format!(
            "sink `{name}` is parallel and its staged output dies with a crash: weir restores such a sink only when one worker writes it (make it not parallel)"
        ))),
        (true, true) => Ok(Delivery::ExactlyOnce),
        (true, false) if needs_checkpoints => Err(ConfigError::new(format!(
            "sink `{name}` is exactly-once only through checkpoints: pass --checkpoint-dir DIR, or make the sink at-least-once"
        ))),
        (false, true) => Ok(Delivery::AtLeastOnceCheckpointed),
        (_, false) => Ok(Delivery::AtLeastOnce),
    }
}

/// Whether worker `worker` opens and writes a sink.
pub(crate) fn writes_on(parallel: bool, worker: usize) -> bool {
    parallel || worker == 0
}

/// Whether this run's `worker` (of `workers` that write the sink) resolves
/// the output an earlier run's worker `previous` left.
pub fn resolves(previous: usize, worker: usize, workers: usize) -> bool {
    workers > 0 && previous % workers == worker
}

/// What a restore does with an epoch's output that an earlier run left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Committed, and covered by the restored checkpoint: leave it.
    Keep,
    /// Staged and covered by the restored checkpoint: commit it now (the
    /// crash came between the checkpoint and the commit). A sink that finds
    /// the staged output gone must not skip it: the job has to produce it
    /// again from the checkpoint before it, so it fails the restore with a
    /// message naming `--restore <epoch - 1>`.
    Commit,
    /// Staged after the restored checkpoint: this run produces it again.
    Abort,
    /// Committed after the restored checkpoint (a restore older than the
    /// newest, or a fresh start): withdraw it where the sink can, or it
    /// appears twice.
    Withdraw,
}

/// What a restore from `restored` (`None`: a fresh start) does with the
/// output of `epoch`, staged or already committed.
pub fn resolve(restored: Option<u64>, epoch: u64, committed: bool) -> Resolve {
    let covered = restored.is_some_and(|r| epoch <= r);
    match (covered, committed) {
        (true, true) => Resolve::Keep,
        (true, false) => Resolve::Commit,
        (false, false) => Resolve::Abort,
        (false, true) => Resolve::Withdraw,
    }
}

/// What happened to a sink worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The sink was opened; the job restores `restored` (`None`: fresh),
    /// in a new store generation when `rescaled`.
    Start {
        /// The restored epoch.
        restored: Option<u64>,
        /// Whether the store generation is new (another worker count).
        rescaled: bool,
    },
    /// The input frontier moved: `open` is the lowest epoch still open
    /// (`u64::MAX`: the input ended).
    Passed {
        /// The lowest open epoch.
        open: u64,
    },
    /// The checkpoint of this epoch is complete.
    Complete(u64),
    /// The run is recorded finished.
    Finished,
}

/// What the sink operator does, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// [`Sink::recover`]: resolve earlier runs' output by [`resolve`].
    Recover(Option<u64>),
    /// [`Sink::end_epoch`] (at-least-once): epochs `<= through` are written.
    EndEpoch(u64),
    /// [`Sink::prepare`]: make epochs `<= through` durable, uncommitted.
    Prepare(u64),
    /// Report the epoch flushed (a marker in the store, a flush record to
    /// the manifest writer).
    Report(u64),
    /// Report the end of the input ([`FINAL_EPOCH`]) and wait for the run
    /// to be recorded finished.
    ReportEnd,
    /// [`Sink::commit`]: make epochs `<= through` visible.
    Commit(u64),
    /// Nothing more to do: drop capabilities.
    Release,
}

/// One sink worker's protocol state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SinkMachine {
    delivery: Delivery,
    /// Newest epoch prepared (exactly-once) or ended (at-least-once).
    prepared: Option<u64>,
    /// Newest epoch committed.
    committed: Option<u64>,
    /// Newest epoch known complete.
    complete: Option<u64>,
    ended: bool,
    released: bool,
}

impl SinkMachine {
    /// A worker that has done nothing yet.
    pub fn new(delivery: Delivery) -> Self {
        SinkMachine {
            delivery,
            prepared: None,
            committed: None,
            complete: None,
            ended: false,
            released: false,
        }
    }

    /// Whether the worker has released its capabilities (nothing more to do).
    #[cfg(test)]
    pub fn released(&self) -> bool {
        self.released
    }

    /// Whether the worker has prepared output that waits for a checkpoint
    /// (or, after the end of its input, for the run to be recorded finished).
    #[cfg(test)]
    pub fn waiting(&self) -> bool {
        !self.released && (self.ended || self.prepared > self.committed)
    }

    /// What to do about `event`.
    pub fn on(&mut self, event: Event) -> Vec<Action> {
        if self.released {
            return Vec::new();
        }
        let exactly = self.delivery == Delivery::ExactlyOnce;
        let reports = self.delivery != Delivery::AtLeastOnce;
        match event {
            Event::Start { restored, rescaled } => {
                if !reports {
                    return Vec::new();
                }
                let mut actions = if exactly {
                    vec![Action::Recover(restored)]
                } else {
                    Vec::new()
                };
                if let Some(r) = restored {
                    self.prepared = Some(r);
                    self.committed = Some(r);
                    self.complete = Some(r);
                    if rescaled {
                        actions.push(Action::Report(r));
                    }
                }
                actions
            }
            Event::Passed { open: u64::MAX } => {
                if self.ended {
                    return Vec::new();
                }
                self.ended = true;
                if exactly {
                    vec![Action::Prepare(u64::MAX), Action::ReportEnd]
                } else if reports {
                    vec![Action::EndEpoch(u64::MAX), Action::ReportEnd]
                } else {
                    self.released = true;
                    vec![Action::EndEpoch(u64::MAX), Action::Release]
                }
            }
            Event::Passed { open } => {
                let Some(last) = open.checked_sub(1) else {
                    return Vec::new();
                };
                if self.ended || self.prepared >= Some(last) {
                    return Vec::new();
                }
                self.prepared = Some(last);
                if exactly {
                    let mut actions = vec![Action::Prepare(last), Action::Report(last)];
                    // A completion heard before this worker prepared (never
                    // in a job, where the checkpoint waits for the report).
                    let through = self.complete.min(self.prepared);
                    if through > self.committed {
                        self.committed = through;
                        actions.extend(through.map(Action::Commit));
                    }
                    actions
                } else if reports {
                    vec![Action::EndEpoch(last), Action::Report(last)]
                } else {
                    vec![Action::EndEpoch(last)]
                }
            }
            Event::Complete(epoch) => {
                if !exactly {
                    return Vec::new();
                }
                self.complete = self.complete.max(Some(epoch));
                let through = self.complete.min(self.prepared);
                if through > self.committed {
                    self.committed = through;
                    through.map(Action::Commit).into_iter().collect()
                } else {
                    Vec::new()
                }
            }
            Event::Finished => {
                if !reports || !self.ended {
                    return Vec::new();
                }
                self.released = true;
                if !exactly {
                    return vec![Action::Release];
                }
                self.committed = Some(u64::MAX);
                vec![Action::Commit(u64::MAX), Action::Release]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use Delivery::*;
    use Event::*;

    #[test]
    fn delivery_never_falls_back_silently() {
        let rows = [
            // exactly_once, needs_checkpoints, checkpointing, expected
            (false, false, false, Some(AtLeastOnce)),
            (false, false, true, Some(AtLeastOnceCheckpointed)),
            (true, false, true, Some(ExactlyOnce)),
            (true, true, true, Some(ExactlyOnce)),
            (true, false, false, Some(AtLeastOnce)),
            (true, true, false, None),
        ];
        for (eo, needs, ck, expected) in rows {
            let got = delivery("out", eo, needs, ck, false);
            assert_eq!(got.as_ref().ok().copied(), expected, "{eo} {needs} {ck}");
            if let Err(e) = got {
                let text = e.to_string();
                assert!(text.contains("sink `out`") && text.contains("--checkpoint-dir"));
                assert!(!text.contains('\n'));
            }
        }
        let refused = delivery("out", true, true, true, true).expect_err("refused");
        assert!(refused.to_string().contains("not parallel"), "{refused}");
        assert_eq!(delivery("out", true, true, false, true).ok(), None);
        assert_eq!(
            delivery("out", false, false, true, true).ok(),
            Some(AtLeastOnceCheckpointed)
        );
    }

    #[test]
    fn restore_resolves_each_epoch_by_the_restored_checkpoint() {
        let rows = [
            // restored, epoch, committed, expected
            (Some(5), 3, false, Resolve::Commit),
            (Some(5), 5, false, Resolve::Commit),
            (Some(5), 6, false, Resolve::Abort),
            (Some(5), 5, true, Resolve::Keep),
            (Some(5), 6, true, Resolve::Withdraw),
            (None, 0, false, Resolve::Abort),
            (None, 0, true, Resolve::Withdraw),
        ];
        for (restored, epoch, committed, expected) in rows {
            assert_eq!(
                resolve(restored, epoch, committed),
                expected,
                "{restored:?} {epoch} {committed}"
            );
        }
    }

    #[test]
    fn every_earlier_worker_has_exactly_one_resolver() {
        for previous_workers in 1..9 {
            for workers in 1..9 {
                for previous in 0..previous_workers {
                    let owners = (0..workers)
                        .filter(|w| resolves(previous, *w, workers))
                        .count();
                    assert_eq!(owners, 1, "{previous} of {previous_workers} on {workers}");
                }
            }
        }
        assert!(!resolves(0, 0, 0));
        assert!(writes_on(true, 3) && writes_on(false, 0) && !writes_on(false, 1));
    }

    /// Runs `events` through a fresh machine and returns every action.
    fn run(delivery: Delivery, events: &[Event]) -> Vec<Vec<Action>> {
        let mut m = SinkMachine::new(delivery);
        events.iter().map(|e| m.on(*e)).collect()
    }

    #[test]
    fn exactly_once_stages_prepares_commits_and_finishes() {
        let fresh = Start {
            restored: None,
            rescaled: false,
        };
        type Row = (&'static str, Vec<Event>, Vec<Vec<Action>>);
        let rows: Vec<Row> = vec![
            (
                "prepare each passed epoch once, commit what is complete",
                vec![
                    fresh,
                    Passed { open: 0 },
                    Passed { open: 1 },
                    Passed { open: 1 },
                    Passed { open: 3 },
                    Complete(0),
                    Complete(2),
                ],
                vec![
                    vec![Recover(None)],
                    vec![],
                    vec![Prepare(0), Report(0)],
                    vec![],
                    vec![Prepare(2), Report(2)],
                    vec![Commit(0)],
                    vec![Commit(2)],
                ],
            ),
            (
                "a completion never commits past what this worker prepared",
                vec![fresh, Passed { open: 2 }, Complete(4), Passed { open: 5 }],
                vec![
                    vec![Recover(None)],
                    vec![Prepare(1), Report(1)],
                    vec![Commit(1)],
                    vec![Prepare(4), Report(4), Commit(4)],
                ],
            ),
            (
                "an old or repeated completion does nothing",
                vec![
                    fresh,
                    Passed { open: 3 },
                    Complete(2),
                    Complete(1),
                    Complete(2),
                ],
                vec![
                    vec![Recover(None)],
                    vec![Prepare(2), Report(2)],
                    vec![Commit(2)],
                    vec![],
                    vec![],
                ],
            ),
            (
                "the end prepares everything, commits only once finished",
                vec![
                    fresh,
                    Passed { open: 2 },
                    Passed { open: u64::MAX },
                    Complete(1),
                    Passed { open: u64::MAX },
                    Finished,
                    Finished,
                    Complete(7),
                ],
                vec![
                    vec![Recover(None)],
                    vec![Prepare(1), Report(1)],
                    vec![Prepare(u64::MAX), ReportEnd],
                    vec![Commit(1)],
                    vec![],
                    vec![Commit(u64::MAX), Release],
                    vec![],
                    vec![],
                ],
            ),
            (
                "finished before the end is not this worker's end",
                vec![fresh, Finished],
                vec![vec![Recover(None)], vec![]],
            ),
            (
                "a restore resolves, then counts the restored epoch done",
                vec![
                    Start {
                        restored: Some(4),
                        rescaled: false,
                    },
                    Passed { open: 5 },
                    Complete(4),
                    Passed { open: 6 },
                    Complete(5),
                ],
                vec![
                    vec![Recover(Some(4))],
                    vec![],
                    vec![],
                    vec![Prepare(5), Report(5)],
                    vec![Commit(5)],
                ],
            ),
            (
                "a restore on another worker count reports the restored epoch again",
                vec![Start {
                    restored: Some(4),
                    rescaled: true,
                }],
                vec![vec![Recover(Some(4)), Report(4)]],
            ),
        ];
        for (what, events, expected) in rows {
            assert_eq!(run(ExactlyOnce, &events), expected, "{what}");
        }
    }

    #[test]
    fn at_least_once_ends_epochs_and_ends_with_the_input() {
        let events = [
            Start {
                restored: Some(3),
                rescaled: true,
            },
            Passed { open: 1 },
            Passed { open: 4 },
            Complete(3),
            Passed { open: u64::MAX },
            Finished,
        ];
        assert_eq!(
            run(AtLeastOnce, &events),
            vec![
                vec![],
                vec![EndEpoch(0)],
                vec![EndEpoch(3)],
                vec![],
                vec![EndEpoch(u64::MAX), Release],
                vec![],
            ]
        );
    }

    #[test]
    fn at_least_once_in_a_checkpointed_job_reports_each_epoch_after_ending_it() {
        let events = [
            Start {
                restored: Some(3),
                rescaled: true,
            },
            Passed { open: 3 },
            Passed { open: 6 },
            Complete(5),
            Passed { open: u64::MAX },
            Passed { open: u64::MAX },
            Finished,
            Finished,
        ];
        assert_eq!(
            run(AtLeastOnceCheckpointed, &events),
            vec![
                // A new store generation gets the restored epoch again.
                vec![Report(3)],
                // Epochs the restored checkpoint covers are not ended again.
                vec![],
                // Durable first, then reported: the checkpoint waits for it.
                vec![EndEpoch(5), Report(5)],
                // Nothing to commit.
                vec![],
                vec![EndEpoch(u64::MAX), ReportEnd],
                vec![],
                vec![Release],
                vec![],
            ]
        );
        let fresh = [
            Start {
                restored: None,
                rescaled: false,
            },
            Passed { open: 1 },
        ];
        assert_eq!(
            run(AtLeastOnceCheckpointed, &fresh),
            vec![vec![], vec![EndEpoch(0), Report(0)]]
        );
    }

    #[test]
    fn waiting_means_prepared_and_not_committed() {
        let mut m = SinkMachine::new(ExactlyOnce);
        m.on(Start {
            restored: None,
            rescaled: false,
        });
        assert!(!m.waiting());
        m.on(Passed { open: 2 });
        assert!(m.waiting());
        m.on(Complete(1));
        assert!(!m.waiting());
        m.on(Passed { open: u64::MAX });
        assert!(m.waiting() && !m.released());
        m.on(Finished);
        assert!(!m.waiting() && m.released());
    }
}
