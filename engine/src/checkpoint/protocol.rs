//! Pure checkpoint decisions: callers gather facts, these functions decide.
//!
//! This is the one place the checkpoint protocol's rules live; nothing here
//! does I/O, so every rule is tested as a table of cases:
//!
//! * which flushes make an epoch complete ([`StepKind`], [`epoch_complete`],
//!   [`missing_flushes`]): the manifest writer records an epoch by it, and
//!   `weir-checkpoint list` tells torn epochs by it;
//! * which complete epochs the manifest keeps listing ([`retained`]) and how
//!   far deltas may be folded so that they stay restorable
//!   ([`fold_through`]);
//! * which epoch a job restores ([`choose_restore`]), given a verification
//!   of each candidate — one verification, [`super::verify::verify`], that a
//!   job's start and `weir-checkpoint verify` both call.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::manifest::{Entry, Step};

/// What kind of checkpointed step flushed, which decides how it counts
/// toward an epoch's completeness. Stored as `"sink"`, `"parallel-sink"`, `"source"` or
/// `"state"` in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// An exactly-once sink: flushes on the one worker that writes it.
    Sink,
    /// A parallel exactly-once sink: flushes on every worker (stored as
    /// `"parallel-sink"`).
    #[serde(rename = "parallel-sink")]
    ParallelSink,
    /// A source: flushes its splits' positions on every worker that owns
    /// splits, and stops once they end, so it does not count.
    Source,
    /// A stateful operator: flushes on every worker.
    State,
}

impl StepKind {
    /// The name stored in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Sink => "sink",
            StepKind::ParallelSink => "parallel-sink",
            StepKind::Source => "source",
            StepKind::State => "state",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the manifest records about one complete epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteEpoch {
    /// The epoch.
    pub epoch: u64,
    /// Each worker's checksum of what it wrote for the epoch, by worker index.
    pub checksums: Vec<u64>,
}

/// Why an epoch that the manifest calls complete cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// A worker's flush marker for the epoch is missing.
    MissingMarker {
        /// The worker.
        worker: usize,
    },
    /// A worker's data does not match the checksum in the manifest.
    ChecksumMismatch {
        /// The worker.
        worker: usize,
        /// The manifest's checksum.
        expected: u64,
        /// The checksum of what is stored.
        found: u64,
    },
    /// A worker's store cannot be opened or read.
    Unreadable {
        /// The worker.
        worker: usize,
        /// What the store said.
        error: String,
    },
    /// A worker's flushes verify, but reading what a restore of the epoch
    /// loads (the base, older deltas, positions) fails.
    Unloadable {
        /// The worker.
        worker: usize,
        /// What the store said.
        error: String,
    },
    /// The epoch is older than what the stored base has been folded to.
    Compacted {
        /// The epoch the base holds.
        folded_through: u64,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::MissingMarker { worker } => write!(f, "worker {worker}'s flush marker is missing"),
            Unusable::ChecksumMismatch { worker, expected, found } => write!(
                f,
                "worker {worker}'s data has checksum {found:#018x}, the manifest says {expected:#018x}"
            ),
            Unusable::Unreadable { worker, error } => {
                write!(f, "worker {worker}'s store cannot be read: {error}")
            }
            Unusable::Unloadable { worker, error } => {
                write!(f, "worker {worker}'s flushes verify, but loading the epoch's state fails: {error}")
            }
            Unusable::Compacted { folded_through } => {
                write!(f, "older than the base, which holds epoch {folded_through}")
            }
        }
    }
}

/// Where a job starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreDecision {
    /// No complete checkpoint: start from nothing.
    Fresh,
    /// Restore this epoch; the newer ones listed could not be used.
    Restore {
        /// The epoch to restore.
        epoch: u64,
        /// Newer complete epochs that failed verification, and why.
        skipped: Vec<(u64, Unusable)>,
    },
    /// Complete epochs exist but none verifies: refuse to start.
    NothingUsable {
        /// Every complete epoch, and why it failed.
        skipped: Vec<(u64, Unusable)>,
    },
}

/// Picks the newest complete epoch that verifies. `verify` checks one epoch's
/// stored data (markers, checksums); epochs below `folded_through` are not
/// restorable because the base has moved past them.
pub fn choose_restore(
    complete: &[CompleteEpoch],
    folded_through: Option<u64>,
    mut verify: impl FnMut(&CompleteEpoch) -> Result<(), Unusable>,
) -> RestoreDecision {
    if complete.is_empty() {
        return RestoreDecision::Fresh;
    }
    let mut newest_first: Vec<&CompleteEpoch> = complete.iter().collect();
    newest_first.sort_by_key(|c| std::cmp::Reverse(c.epoch));
    let mut skipped = Vec::new();
    for candidate in newest_first {
        if let Some(folded) = folded_through {
            if candidate.epoch < folded {
                skipped.push((
                    candidate.epoch,
                    Unusable::Compacted {
                        folded_through: folded,
                    },
                ));
                continue;
            }
        }
        match verify(candidate) {
            Ok(()) => {
                return RestoreDecision::Restore {
                    epoch: candidate.epoch,
                    skipped,
                }
            }
            Err(why) => skipped.push((candidate.epoch, why)),
        }
    }
    RestoreDecision::NothingUsable { skipped }
}

/// The epoch through which deltas may be folded into the base so that the
/// newest `keep` complete epochs all stay restorable: the oldest of them.
/// `None` when there is nothing (new) to fold.
pub fn fold_through(complete: &[u64], keep: usize, folded_through: Option<u64>) -> Option<u64> {
    let keep = keep.max(1);
    let mut epochs = complete.to_vec();
    epochs.sort_unstable();
    epochs.dedup();
    if epochs.len() < keep {
        return None;
    }
    let target = epochs[epochs.len() - keep];
    match folded_through {
        Some(done) if done >= target => None,
        _ => Some(target),
    }
}

/// Something that belongs to one epoch: what [`retained`] sorts and drops.
pub trait OfEpoch {
    /// The epoch.
    fn epoch(&self) -> u64;
}

impl OfEpoch for CompleteEpoch {
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl OfEpoch for Entry {
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The complete epochs the manifest keeps listing, oldest first: the
/// newest `keep` (at least one), and every epoch at or after `from` (the
/// epoch through which a sink whose staging a crash loses has made output
/// visible: a restore must find its checkpoint, [`crate::commit_log`]).
pub fn retained<E: OfEpoch + Clone>(complete: &[E], keep: usize, from: Option<u64>) -> Vec<E> {
    let mut epochs = complete.to_vec();
    epochs.sort_by_key(OfEpoch::epoch);
    let newest = epochs.len().saturating_sub(keep.max(1));
    let drop = match from {
        Some(from) => newest.min(epochs.partition_point(|e| e.epoch() < from)),
        None => newest,
    };
    epochs.split_off(drop)
}

/// Whether an epoch is complete: every flush it needs arrived.
pub fn is_complete(flushed: &[bool]) -> bool {
    !flushed.is_empty() && flushed.iter().all(|f| *f)
}

/// A flush an epoch needs to be complete: `step` on `worker`, or, with no
/// worker, on any one worker (an exactly-once sink runs on one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Needed<'a> {
    /// The worker, or `None`: any.
    pub worker: Option<usize>,
    /// The step.
    pub step: &'a str,
}

/// The flushes an epoch needs: every stateful step and every parallel
/// exactly-once sink on every worker, every other exactly-once sink once. Sources do not count (they stop flushing once
/// their splits end).
pub fn needed_flushes(steps: &[Step], workers: usize) -> Vec<Needed<'_>> {
    let mut needed = Vec::new();
    for step in steps {
        match step.kind {
            StepKind::State | StepKind::ParallelSink => {
                needed.extend((0..workers).map(|w| Needed {
                    worker: Some(w),
                    step: &step.name,
                }))
            }
            StepKind::Sink => needed.push(Needed {
                worker: None,
                step: &step.name,
            }),
            StepKind::Source => {}
        }
    }
    needed
}

fn arrived(needed: &Needed<'_>, flushed: &BTreeSet<(usize, &str)>) -> bool {
    match needed.worker {
        Some(w) => flushed.contains(&(w, needed.step)),
        None => flushed.iter().any(|(_, s)| *s == needed.step),
    }
}

/// Whether an epoch is complete, given the job's checkpointed steps and the
/// (worker, step) flushes that arrived for it: something flushed it at all
/// (a job whose only checkpointed steps are sources needs that), and every
/// flush of [`needed_flushes`] is among them ([`is_complete`]).
pub fn epoch_complete(steps: &[Step], workers: usize, flushed: &[(usize, &str)]) -> bool {
    let arrived_set: BTreeSet<(usize, &str)> = flushed.iter().copied().collect();
    let checks: Vec<bool> = std::iter::once(!flushed.is_empty())
        .chain(
            needed_flushes(steps, workers)
                .iter()
                .map(|n| arrived(n, &arrived_set)),
        )
        .collect();
    is_complete(&checks)
}

/// The flushes of [`needed_flushes`] that did not arrive: (worker, step),
/// no worker for a step needed on any one worker.
pub fn missing_flushes(
    steps: &[Step],
    workers: usize,
    flushed: &[(usize, &str)],
) -> Vec<(Option<usize>, String)> {
    let arrived_set: BTreeSet<(usize, &str)> = flushed.iter().copied().collect();
    needed_flushes(steps, workers)
        .into_iter()
        .filter(|n| !arrived(n, &arrived_set))
        .map(|n| (n.worker, n.step.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(epochs: &[u64]) -> Vec<CompleteEpoch> {
        epochs
            .iter()
            .map(|e| CompleteEpoch {
                epoch: *e,
                checksums: vec![*e * 10, *e * 10 + 1],
            })
            .collect()
    }

    #[test]
    fn restore_decisions() {
        struct Case {
            name: &'static str,
            complete: &'static [u64],
            folded: Option<u64>,
            corrupt: &'static [u64],
            expect: Result<u64, usize>, // Ok(epoch) or Err(number skipped, nothing usable)
        }
        let cases = [
            Case {
                name: "no checkpoint",
                complete: &[],
                folded: None,
                corrupt: &[],
                expect: Err(0),
            },
            Case {
                name: "newest",
                complete: &[3, 4, 5],
                folded: None,
                corrupt: &[],
                expect: Ok(5),
            },
            Case {
                name: "order of the manifest does not matter",
                complete: &[5, 3, 4],
                folded: None,
                corrupt: &[],
                expect: Ok(5),
            },
            Case {
                name: "newest corrupt falls back",
                complete: &[3, 4, 5],
                folded: None,
                corrupt: &[5],
                expect: Ok(4),
            },
            Case {
                name: "two corrupt",
                complete: &[3, 4, 5],
                folded: None,
                corrupt: &[4, 5],
                expect: Ok(3),
            },
            Case {
                name: "all corrupt",
                complete: &[3, 4, 5],
                folded: None,
                corrupt: &[3, 4, 5],
                expect: Err(3),
            },
            Case {
                name: "compacted past older ones",
                complete: &[3, 4, 5],
                folded: Some(4),
                corrupt: &[5],
                expect: Ok(4),
            },
            Case {
                name: "compacted and newest corrupt",
                complete: &[3, 4, 5],
                folded: Some(5),
                corrupt: &[5],
                expect: Err(3),
            },
        ];
        for case in cases {
            let got = choose_restore(&complete(case.complete), case.folded, |c| {
                if case.corrupt.contains(&c.epoch) {
                    Err(Unusable::ChecksumMismatch {
                        worker: 1,
                        expected: c.checksums[1],
                        found: 0,
                    })
                } else {
                    Ok(())
                }
            });
            match (case.expect, got) {
                (Ok(e), RestoreDecision::Restore { epoch, skipped }) => {
                    assert_eq!(epoch, e, "{}", case.name);
                    assert!(
                        skipped.iter().all(|(s, _)| *s > e),
                        "{}: only newer ones skipped",
                        case.name
                    );
                }
                (Err(0), RestoreDecision::Fresh) => {}
                (Err(n), RestoreDecision::NothingUsable { skipped }) => {
                    assert_eq!(skipped.len(), n, "{}", case.name)
                }
                (expect, got) => panic!("{}: expected {expect:?}, got {got:?}", case.name),
            }
        }
    }

    /// (complete epochs, keep, already folded, expected fold target)
    type FoldCase = (&'static [u64], usize, Option<u64>, Option<u64>);

    #[test]
    fn fold_keeps_the_newest_n_restorable() {
        let cases: &[FoldCase] = &[
            (&[], 3, None, None),
            (&[1, 2], 3, None, None),
            (&[1, 2, 3], 3, None, Some(1)),
            (&[1, 2, 3, 4, 5], 3, None, Some(3)),
            (&[1, 2, 3, 4, 5], 3, Some(3), None),
            (&[1, 2, 3, 4, 5], 3, Some(2), Some(3)),
            (&[5, 1, 4, 2, 3], 1, None, Some(5)),
            (&[7], 0, None, Some(7)), // keep 0 means keep 1
        ];
        for (complete, keep, folded, expected) in cases {
            assert_eq!(
                fold_through(complete, *keep, *folded),
                *expected,
                "{complete:?} keep {keep} folded {folded:?}"
            );
            // Every epoch kept stays at or above the fold target.
            if let Some(target) = expected {
                let mut sorted = complete.to_vec();
                sorted.sort_unstable();
                let kept = &sorted[sorted.len() - (*keep).max(1)..];
                assert!(kept.iter().all(|e| e >= target));
            }
        }
    }

    #[test]
    fn retained_keeps_the_newest() {
        let kept: Vec<u64> = retained(&complete(&[4, 1, 3, 2]), 2, None)
            .iter()
            .map(|c| c.epoch)
            .collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(retained(&complete(&[1]), 5, None).len(), 1);
    }

    #[test]
    fn retained_also_keeps_everything_from_the_epoch_a_commit_log_shows() {
        let kept = |keep, from| -> Vec<u64> {
            retained(&complete(&[6, 2, 3, 4, 5]), keep, from)
                .iter()
                .map(|c| c.epoch)
                .collect()
        };
        // Commits lag: epoch 3 is the newest visible, so 3 stays.
        assert_eq!(kept(2, Some(3)), vec![3, 4, 5, 6]);
        // Visible through an epoch the newest `keep` hold anyway.
        assert_eq!(kept(2, Some(6)), vec![5, 6]);
        // An epoch the manifest never listed keeps everything after it.
        assert_eq!(kept(1, Some(1)), vec![2, 3, 4, 5, 6]);
        assert_eq!(kept(1, None), vec![6]);
    }

    fn step(name: &str, kind: StepKind) -> Step {
        Step {
            name: name.into(),
            kind,
            version: 1,
        }
    }

    #[test]
    fn an_epoch_is_complete_when_each_step_flushed_where_it_runs() {
        let steps = [
            step("read", StepKind::Source),
            step("windows", StepKind::State),
            step("out", StepKind::Sink),
        ];
        type Case = (&'static str, &'static [(usize, &'static str)], bool);
        let cases: &[Case] = &[
            ("nothing flushed", &[], false),
            (
                "every worker's state and the sink",
                &[(0, "windows"), (1, "windows"), (1, "out")],
                true,
            ),
            (
                "sources do not count",
                &[(0, "read"), (0, "windows"), (1, "windows"), (0, "out")],
                true,
            ),
            (
                "worker 1's state missing",
                &[(0, "windows"), (0, "out")],
                false,
            ),
            ("the sink missing", &[(0, "windows"), (1, "windows")], false),
            (
                "a duplicate does not stand in for a worker",
                &[(0, "windows"), (0, "windows"), (0, "out")],
                false,
            ),
            (
                "an unknown step does not count",
                &[(0, "windows"), (2, "windows"), (0, "out")],
                false,
            ),
        ];
        for (name, flushed, expect) in cases {
            assert_eq!(epoch_complete(&steps, 2, flushed), *expect, "{name}");
            let missing = missing_flushes(&steps, 2, flushed);
            assert_eq!(
                !flushed.is_empty() && missing.is_empty(),
                *expect,
                "{name}: {missing:?}"
            );
        }
        assert_eq!(
            missing_flushes(&steps, 2, &[(1, "windows")]),
            vec![(Some(0), "windows".to_string()), (None, "out".to_string())]
        );
        // A job that checkpoints only source positions: any flush completes.
        let sources = [step("read", StepKind::Source)];
        assert!(epoch_complete(&sources, 2, &[(1, "read")]));
        assert!(!epoch_complete(&sources, 2, &[]));
    }

    #[test]
    fn step_kinds_are_stored_as_their_names() {
        for kind in [
            StepKind::Sink,
            StepKind::ParallelSink,
            StepKind::Source,
            StepKind::State,
        ] {
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<StepKind>(&json).ok(), Some(kind));
        }
        assert!(serde_json::from_str::<StepKind>("\"window\"").is_err());
    }

    #[test]
    fn a_parallel_sink_must_flush_on_every_worker() {
        let steps = [
            step("read", StepKind::Source),
            step("out", StepKind::ParallelSink),
        ];
        type Case = (&'static str, &'static [(usize, &'static str)], bool);
        let cases: &[Case] = &[
            ("every worker", &[(0, "out"), (1, "out"), (2, "out")], true),
            ("worker 2 missing", &[(0, "out"), (1, "out")], false),
            (
                "one worker twice",
                &[(0, "out"), (0, "out"), (1, "out")],
                false,
            ),
        ];
        for (name, flushed, expect) in cases {
            assert_eq!(epoch_complete(&steps, 3, flushed), *expect, "{name}");
        }
        assert_eq!(
            missing_flushes(&steps, 3, &[(0, "out"), (2, "out")]),
            vec![(Some(1), "out".to_string())]
        );
    }

    #[test]
    fn completeness_needs_every_worker() {
        assert!(is_complete(&[true, true]));
        assert!(!is_complete(&[true, false]));
        assert!(!is_complete(&[]));
    }
}
