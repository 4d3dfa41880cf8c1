//! Pure checkpoint decisions: callers gather facts, these functions decide.
//!
//! Nothing here does I/O, so every rule is tested as a table of cases.

use std::fmt;

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

/// The complete epochs the manifest keeps listing: the newest `keep`.
pub fn retained(complete: &[CompleteEpoch], keep: usize) -> Vec<CompleteEpoch> {
    let mut epochs = complete.to_vec();
    epochs.sort_by_key(|c| c.epoch);
    let drop = epochs.len().saturating_sub(keep.max(1));
    epochs.split_off(drop)
}

/// Whether an epoch is complete: every worker flushed it.
pub fn is_complete(flushed: &[bool]) -> bool {
    !flushed.is_empty() && flushed.iter().all(|f| *f)
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
        let kept: Vec<u64> = retained(&complete(&[4, 1, 3, 2]), 2)
            .iter()
            .map(|c| c.epoch)
            .collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(retained(&complete(&[1]), 5).len(), 1);
    }

    #[test]
    fn completeness_needs_every_worker() {
        assert!(is_complete(&[true, true]));
        assert!(!is_complete(&[true, false]));
        assert!(!is_complete(&[]));
    }
}
