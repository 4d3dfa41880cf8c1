//! The one verification of checkpoints: whether a complete epoch can be
//! restored, and which one a job restores.
//!
//! [`verify`] is called by a job's start
//! ([`runtime::plan`](super::runtime::plan), which restores the epoch it
//! decides, or refuses to start) and by `weir-checkpoint verify`, `list`
//! and `inspect`, which report what it found (the listing of
//! [`super::inspect`] takes its result), so the tool and a job never
//! disagree. An epoch restores when every one of its flushes
//! verifies — the store's data matches its flush marker, and the marker the
//! manifest ([`check_flush`]) — and everything its restore loads can be read
//! ([`check_loadable`]: the base and older deltas, which no flush's checksum
//! covers). The choice among the epochs that restore is
//! the checkpoint protocol's (`choose_restore`), which yields a
//! [`RestoreDecision`](super::protocol::RestoreDecision).
//!
//! Nothing here writes: stores are opened with
//! [`Backend::open_read_only`].

use std::fmt;
use std::path::{Path, PathBuf};

use super::layout;
use super::manifest::{Entry, Flush, Manifest};
use super::protocol::{choose_restore, CompleteEpoch, RestoreDecision, Unusable};
use super::runtime::{store_path, Backend};
use super::store::{checksum_of_epoch_step, folded_through, StateStore, StoreError};

/// One worker's store of a generation, opened read-only (or why not).
pub struct WorkerStore {
    /// The worker.
    pub worker: usize,
    /// The store's directory.
    pub path: PathBuf,
    /// The opened store.
    pub store: Result<Box<dyn StateStore>, StoreError>,
}

/// Opens the stores of workers `0..workers` of `generation` read-only. A
/// store that is missing or does not open is kept with its error.
pub fn open_generation(
    dir: &Path,
    generation: u64,
    workers: usize,
    backend: &dyn Backend,
) -> Vec<WorkerStore> {
    (0..workers)
        .map(|worker| {
            let path = store_path(dir, generation, worker);
            let store = if path.is_dir() {
                backend.open_read_only(&path)
            } else {
                Err(StoreError(format!("{} does not exist", path.display())))
            };
            WorkerStore {
                worker,
                path,
                store,
            }
        })
        .collect()
}

/// Why one flush of a complete epoch does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The worker's store could not be opened or read.
    Unreadable(String),
    /// The store has no flush marker for the step and epoch.
    NoMarker,
    /// No marker because the store's base was folded through this epoch or
    /// later: the epoch's own deltas and marker are gone.
    Folded {
        /// The epoch the base holds.
        through: u64,
    },
    /// What is stored has another checksum than its marker recorded.
    DataMismatch {
        /// The checksum of what is stored.
        found: u64,
        /// The checksum the marker recorded.
        recorded: u64,
    },
    /// The marker's checksum is not the manifest's.
    MarkerMismatch {
        /// The checksum the marker recorded (and the data has).
        marker: u64,
        /// The checksum the manifest recorded.
        manifest: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable(why) => write!(f, "store unreadable: {why}"),
            Problem::NoMarker => write!(f, "no flush marker in the store"),
            Problem::Folded { through } => write!(
                f,
                "no flush marker: the base was folded through epoch {through}"
            ),
            Problem::DataMismatch { found, recorded } => {
                write!(f, "checksum {found:#018x} recorded {recorded:#018x}")
            }
            Problem::MarkerMismatch { marker, manifest } => write!(
                f,
                "checksum {marker:#018x} (data and marker), manifest recorded {manifest:#018x}"
            ),
        }
    }
}

/// A flush that does not verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlushProblem {
    /// The worker.
    pub worker: usize,
    /// The step.
    pub step: String,
    /// What is wrong.
    pub problem: Problem,
}

impl fmt::Display for FlushProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} step {}: {}",
            self.worker, self.step, self.problem
        )
    }
}

impl FlushProblem {
    /// The same fact as a job's restore reports it (in
    /// [`RestoreDecision`]'s skipped epochs).
    pub fn unusable(&self) -> Unusable {
        let worker = self.worker;
        match &self.problem {
            Problem::DataMismatch { found, recorded } => Unusable::ChecksumMismatch {
                worker,
                expected: *recorded,
                found: *found,
            },
            Problem::MarkerMismatch { marker, manifest } => Unusable::ChecksumMismatch {
                worker,
                expected: *manifest,
                found: *marker,
            },
            Problem::Unreadable(error) => Unusable::Unreadable {
                worker,
                error: error.clone(),
            },
            Problem::NoMarker => Unusable::MissingMarker { worker },
            Problem::Folded { through } => Unusable::Compacted {
                folded_through: *through,
            },
        }
    }
}

/// Checks one flush of a complete epoch: the store's data must match its
/// marker, and the marker the manifest — the conditions a restore checks.
pub fn check_flush(store: &dyn StateStore, epoch: u64, flush: &Flush) -> Result<(), Problem> {
    match checksum_of_epoch_step(store, epoch, &flush.step) {
        Err(e) => Err(Problem::Unreadable(e.0)),
        Ok(None) => match folded_through(store) {
            Ok(Some(through)) if through >= epoch => Err(Problem::Folded { through }),
            Ok(_) => Err(Problem::NoMarker),
            Err(e) => Err(Problem::Unreadable(e.0)),
        },
        Ok(Some((recorded, found))) if found != recorded => {
            Err(Problem::DataMismatch { found, recorded })
        }
        Ok(Some((recorded, _))) if recorded != flush.checksum => Err(Problem::MarkerMismatch {
            marker: recorded,
            manifest: flush.checksum,
        }),
        Ok(Some(_)) => Ok(()),
    }
}

/// Every flush of `entry` that does not verify against `stores` (indexed
/// by worker; a flush of a worker with no store is unreadable).
pub fn check_entry(stores: &[WorkerStore], entry: &Entry) -> Vec<FlushProblem> {
    let mut problems = Vec::new();
    for flush in &entry.flushes {
        let problem = match stores.iter().find(|s| s.worker == flush.worker) {
            None => Some(Problem::Unreadable(format!(
                "the manifest names worker {}, the generation has no such store",
                flush.worker
            ))),
            Some(WorkerStore { store: Err(e), .. }) => Some(Problem::Unreadable(e.0.clone())),
            Some(WorkerStore {
                store: Ok(store), ..
            }) => check_flush(store.as_ref(), entry.epoch, flush).err(),
        };
        if let Some(problem) = problem {
            problems.push(FlushProblem {
                worker: flush.worker,
                step: flush.step.clone(),
                problem,
            });
        }
    }
    problems
}

/// One complete epoch's verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The epoch.
    pub epoch: u64,
    /// Its flushes that do not verify.
    pub problems: Vec<FlushProblem>,
    /// Workers whose stores cannot read everything a restore of the epoch
    /// loads (the base, and every delta and position up to the epoch),
    /// although its flushes verify. Checked only where it decides the
    /// restore (see [`verify`]).
    pub load_errors: Vec<(usize, String)>,
}

impl Verdict {
    /// Whether the epoch restores: its flushes verify and its state loads.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.load_errors.is_empty()
    }

    /// Why a restore may not use the epoch (the first problem found), or
    /// `None` when it may.
    pub fn unusable(&self) -> Option<Unusable> {
        match (self.problems.first(), self.load_errors.first()) {
            (Some(problem), _) => Some(problem.unusable()),
            (None, Some((worker, error))) => Some(Unusable::Unloadable {
                worker: *worker,
                error: error.clone(),
            }),
            (None, None) => None,
        }
    }
}

/// Reads everything a restore of `epoch` loads from a store, keeping
/// nothing: the base, the deltas since the fold through `epoch`, and the
/// positions through `epoch`. Fails where a read fails (a RocksDB block
/// that does not match its checksum, a missing file).
pub fn check_loadable(store: &dyn StateStore, epoch: u64) -> Result<(), StoreError> {
    let mut nothing = |_: &[u8], _: &[u8]| {};
    let from = folded_through(store)?.map_or(0, |f| f.saturating_add(1));
    let through = |tag: u8, epoch: u64| {
        let mut end = vec![tag];
        end.extend_from_slice(&epoch.to_be_bytes());
        layout::range_end(end)
    };
    for tag in [layout::BASE, layout::BASE_POSITION] {
        store.scan(&[tag], &[tag + 1], &mut nothing)?;
    }
    if from <= epoch {
        let mut start = vec![layout::DELTA];
        start.extend_from_slice(&from.to_be_bytes());
        store.scan(&start, &through(layout::DELTA, epoch), &mut nothing)?;
    }
    store.scan(
        &[layout::POSITION],
        &through(layout::POSITION, epoch),
        &mut nothing,
    )
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Every complete epoch of the manifest, oldest first.
    pub verdicts: Vec<Verdict>,
    /// Which epoch a job's restore picks, if the run had not finished: the
    /// newest whose flushes verify and whose state loads. A job's start
    /// ([`runtime::plan`](super::runtime::plan)) takes this very decision.
    pub restore: RestoreDecision,
    /// The manifest records that the run finished: a job started on the
    /// directory starts over instead of restoring.
    pub finished: bool,
}

impl Verification {
    /// Whether the newest complete epoch verifies and its state loads
    /// (false if there is none).
    pub fn newest_verifies(&self) -> bool {
        self.verdicts.last().is_some_and(Verdict::ok)
    }
}

/// Checks every complete epoch of the manifest against the generation's
/// `stores` and decides which one a restore uses: the one verification of
/// checkpoints, which a job's start and `weir-checkpoint verify` both call.
///
/// Each epoch's flushes are checked ([`check_entry`]); then, newest first,
/// whether the state of an epoch whose flushes verify loads
/// ([`check_loadable`]), until one does. An older epoch loads a part of what
/// a newer one does (the same base, fewer deltas), so once one loads every
/// older one does, and the stores are read in full at most once when all is
/// well. The protocol's `choose_restore` then picks the newest epoch with neither
/// problems nor load errors.
pub fn verify(manifest: &Manifest, stores: &[WorkerStore]) -> Verification {
    let mut entries: Vec<&Entry> = manifest.complete.iter().collect();
    entries.sort_by_key(|e| e.epoch);
    let mut verdicts: Vec<Verdict> = entries
        .iter()
        .map(|entry| Verdict {
            epoch: entry.epoch,
            problems: check_entry(stores, entry),
            load_errors: Vec::new(),
        })
        .collect();
    // Whether the state loads: the newest epoch whose flushes verify first.
    for verdict in verdicts.iter_mut().rev() {
        if !verdict.problems.is_empty() {
            continue;
        }
        for s in stores {
            if let Ok(store) = &s.store {
                if let Err(e) = check_loadable(store.as_ref(), verdict.epoch) {
                    verdict.load_errors.push((s.worker, e.0));
                }
            }
        }
        if verdict.load_errors.is_empty() {
            break;
        }
    }
    let complete: Vec<CompleteEpoch> = entries
        .iter()
        .map(|e| CompleteEpoch {
            epoch: e.epoch,
            checksums: e.flushes.iter().map(|f| f.checksum).collect(),
        })
        .collect();
    // No folded-through bound: an epoch folded past has no marker, which
    // its verdict says.
    let restore = choose_restore(&complete, None, |candidate| {
        match verdicts
            .iter()
            .find(|v| v.epoch == candidate.epoch)
            .and_then(Verdict::unusable)
        {
            Some(why) => Err(why),
            None => Ok(()),
        }
    });
    Verification {
        verdicts,
        restore,
        finished: finished(manifest),
    }
}

/// Whether the manifest records that the run finished. Read by name, so
/// manifests written before the field existed read as not finished.
pub fn finished(manifest: &Manifest) -> bool {
    serde_json::to_value(manifest)
        .ok()
        .and_then(|v| v.get("finished").and_then(serde_json::Value::as_bool))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fixtures::{open, sample, Failing};
    use crate::checkpoint::store::{Batch, StateStore};
    use crate::ids::KeyGroup;

    #[test]
    fn verify_finds_each_kind_of_problem_and_picks_the_restore_epoch() {
        let (mut manifest, mut stores) = sample();
        let v = verify(&manifest, &open(&stores));
        assert!(v.newest_verifies());
        assert!(v.verdicts.iter().all(|v| v.problems.is_empty()));
        assert!(matches!(
            v.restore,
            RestoreDecision::Restore { epoch: 3, .. }
        ));

        // The manifest disagrees with worker 1's marker of epoch 3.
        manifest.complete[2].flushes[2].checksum ^= 1;
        let v = verify(&manifest, &open(&stores));
        assert!(!v.newest_verifies());
        assert!(matches!(
            v.verdicts[2].problems[0].problem,
            Problem::MarkerMismatch { .. }
        ));
        assert!(matches!(
            v.restore,
            RestoreDecision::Restore { epoch: 2, .. }
        ));
        manifest.complete[2].flushes[2].checksum ^= 1;

        // Worker 0's data of epoch 2 changed behind its marker.
        let key = [&[layout::ENTRY_KEY][..], b"c"].concat();
        let mut batch = Batch::default();
        batch.put(
            layout::delta_key(2, "counts", KeyGroup(3), &key),
            vec![1, 9, 9],
        );
        stores[0].write(&batch).expect("write");
        let v = verify(&manifest, &open(&stores));
        assert_eq!(v.verdicts[1].problems.len(), 1);
        let p = &v.verdicts[1].problems[0];
        assert_eq!((p.worker, p.step.as_str()), (0, "counts"));
        assert!(matches!(p.problem, Problem::DataMismatch { .. }), "{p}");
        assert!(p
            .to_string()
            .starts_with("worker 0 step counts: checksum 0x"));
        assert!(matches!(
            v.restore,
            RestoreDecision::Restore { epoch: 3, .. }
        ));

        // Worker 1's store is gone: nothing verifies.
        let mut opened = open(&stores);
        opened[1].store = Err(StoreError("gone".into()));
        let v = verify(&manifest, &opened);
        assert!(v.verdicts.iter().all(|v| v
            .problems
            .iter()
            .any(|p| p.worker == 1 && matches!(p.problem, Problem::Unreadable(_)))));
        assert!(matches!(v.restore, RestoreDecision::NothingUsable { .. }));
    }

    #[test]
    fn an_unreadable_old_delta_makes_epochs_unusable_though_checksums_verify() {
        let (manifest, stores) = sample();
        let bad = layout::delta_key(1, "counts", KeyGroup(3), &[layout::ENTRY_KEY, b'a']);
        let mut opened = open(&stores);
        opened[0].store = Ok(Box::new(Failing {
            inner: stores[0].clone(),
            bad,
        }));
        let v = verify(&manifest, &opened);
        // Epoch 1's own check reads the bad key; 2 and 3 only when loading.
        assert!(matches!(
            v.verdicts[0].problems[0].problem,
            Problem::Unreadable(_)
        ));
        for verdict in &v.verdicts[1..] {
            assert!(verdict.problems.is_empty(), "{verdict:?}");
            assert_eq!(verdict.load_errors.len(), 1, "{verdict:?}");
            assert_eq!(verdict.load_errors[0].0, 0);
        }
        // Epochs 2 and 3 verify by their checksums but do not load, epoch 1
        // does not verify: a job refuses to start, saying why.
        let RestoreDecision::NothingUsable { skipped } = &v.restore else {
            panic!("nothing restores: {:?}", v.restore);
        };
        assert_eq!(
            skipped.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert!(matches!(
            skipped[0].1,
            Unusable::Unloadable { worker: 0, .. }
        ));
        assert!(skipped[0].1.to_string().contains("Corruption"));
        assert!(!v.newest_verifies());
        // Unharmed, every epoch loads.
        for epoch in 1..=4 {
            check_loadable(&stores[0], epoch).expect("loads");
        }
    }

    #[test]
    fn an_epoch_whose_state_does_not_load_is_skipped_for_an_older_one() {
        let (manifest, stores) = sample();
        // A position of a source outside the manifest, at epoch 3: no flush
        // of epoch 3 covers it, a restore of epoch 3 reads it, one of
        // epoch 2 does not.
        let bad = layout::position_key(3, "elsewhere", crate::ids::SplitId(0));
        let mut damaged = stores[1].clone();
        let mut batch = Batch::default();
        batch.put(&bad, b"x");
        damaged.write(&batch).expect("write");
        let mut opened = open(&stores);
        opened[1].store = Ok(Box::new(Failing {
            inner: damaged,
            bad,
        }));
        let v = verify(&manifest, &opened);
        assert!(v.verdicts[2].problems.is_empty());
        assert_eq!(v.verdicts[2].load_errors.len(), 1);
        assert!(v.verdicts[1].ok());
        let RestoreDecision::Restore { epoch: 2, skipped } = &v.restore else {
            panic!("falls back to epoch 2: {:?}", v.restore);
        };
        assert!(matches!(
            skipped.as_slice(),
            [(3, Unusable::Unloadable { worker: 1, .. })]
        ));
    }
}
