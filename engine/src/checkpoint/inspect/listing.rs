//! Every epoch of a checkpoint directory with its status ([`list`]): the
//! manifest's complete epochs as [`verify`] judged them, and the epochs
//! found only in the stores, told apart (torn, unrecorded, retired) by the
//! completeness rule of [`protocol`](crate::checkpoint::protocol).
//!
//! [`verify`]: crate::checkpoint::verify::verify

use std::collections::{BTreeMap, BTreeSet};

use super::summary::{EpochFootprint, StoreSummary, Volume};
use crate::checkpoint::manifest::{Manifest, Step, StepKind};
use crate::checkpoint::protocol::missing_flushes;
use crate::checkpoint::verify::{FlushProblem, Verification};

/// The status of an epoch found in the manifest or in a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochStatus {
    /// Complete (in the manifest), and every flush verifies.
    Restorable,
    /// Complete, but some flushes do not verify, or its state does not load.
    Unusable {
        /// Flushes that do not verify.
        problems: Vec<FlushProblem>,
        /// (worker, error) of stores that cannot load the epoch's state.
        load_errors: Vec<(usize, String)>,
    },
    /// Not in the manifest, and a worker's store is unreadable: whether
    /// it is torn cannot be told.
    Undetermined,
    /// Not in the manifest, although every worker marked every stateful step
    /// flushed (the job stopped before recording it, or several epochs
    /// completed at once). A restore does not use it.
    Unrecorded,
    /// Not in the manifest, flushed everywhere, and older than every epoch
    /// the manifest keeps: dropped from it (it keeps the newest N); a restore
    /// does not use it, the next fold removes it.
    Retired,
    /// Not in the manifest, and some workers did not flush some steps: torn.
    Torn {
        /// (worker, step) pairs with no marker; no worker: a step that
        /// flushes on one worker (an exactly-once sink) has none anywhere.
        missing: Vec<(Option<usize>, String)>,
    },
}

impl EpochStatus {
    /// A short label.
    pub fn label(&self) -> &'static str {
        match self {
            EpochStatus::Restorable => "complete, restorable",
            EpochStatus::Unusable { .. } => "complete, UNUSABLE",
            EpochStatus::Undetermined => "unknown (store unreadable)",
            EpochStatus::Unrecorded => "flushed, not recorded",
            EpochStatus::Retired => "dropped from manifest",
            EpochStatus::Torn { .. } => "torn",
        }
    }
}

/// One epoch as [`list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochListing {
    /// The epoch.
    pub epoch: u64,
    /// Its status.
    pub status: EpochStatus,
    /// What each worker's store holds for it, by worker.
    pub workers: BTreeMap<usize, EpochFootprint>,
}

impl EpochListing {
    /// What the epoch wrote on all workers together.
    pub fn written(&self) -> Volume {
        self.workers
            .values()
            .fold(Volume::default(), |acc, f| acc.plus(f.written()))
    }
}

/// Every epoch in the manifest or with data in a store, oldest first, with
/// its status. `verification` is [`verify`] of the manifest; `summaries` are
/// [`summarize`] of the generation's stores, by worker (a store that did not
/// open or scan has none; [`marker_summary`] stands in when only the markers
/// matter).
///
/// [`verify`]: crate::checkpoint::verify::verify
/// [`summarize`]: super::summarize
/// [`marker_summary`]: super::marker_summary
pub fn list(
    manifest: &Manifest,
    verification: &Verification,
    summaries: &BTreeMap<usize, StoreSummary>,
) -> Vec<EpochListing> {
    let mut epochs: BTreeSet<u64> = manifest.complete.iter().map(|e| e.epoch).collect();
    for s in summaries.values() {
        epochs.extend(s.epochs.keys().copied());
    }
    // The steps whose flushes make an epoch complete, as the manifest
    // writer decides ([`missing_flushes`]).
    let mut steps = manifest.steps.clone();
    if steps.is_empty() {
        // No epoch recorded yet: the steps are those any worker flushed,
        // each taken to flush on every worker.
        let flushed: BTreeSet<&String> = summaries
            .values()
            .flat_map(|s| s.epochs.values())
            .flat_map(|f| f.markers.keys())
            .collect();
        steps = flushed
            .into_iter()
            .map(|name| Step {
                name: name.clone(),
                kind: StepKind::State,
                version: 0,
            })
            .collect();
    }
    let workers: Vec<usize> = (0..manifest.workers).collect();
    let oldest_kept = manifest.complete.iter().map(|e| e.epoch).min();
    epochs
        .into_iter()
        .map(|epoch| {
            let footprints: BTreeMap<usize, EpochFootprint> = summaries
                .iter()
                .map(|(w, s)| (*w, s.epochs.get(&epoch).cloned().unwrap_or_default()))
                .collect();
            let status = match verification.verdicts.iter().find(|v| v.epoch == epoch) {
                Some(verdict) if verdict.ok() => EpochStatus::Restorable,
                Some(verdict) => EpochStatus::Unusable {
                    problems: verdict.problems.clone(),
                    load_errors: verdict.load_errors.clone(),
                },
                None if workers.iter().any(|w| !summaries.contains_key(w)) => {
                    EpochStatus::Undetermined
                }
                None => {
                    let flushed: Vec<(usize, &str)> = footprints
                        .iter()
                        .flat_map(|(w, f)| f.markers.keys().map(|step| (*w, step.as_str())))
                        .collect();
                    let missing = missing_flushes(&steps, manifest.workers, &flushed);
                    if missing.is_empty() && oldest_kept.is_some_and(|o| epoch < o) {
                        EpochStatus::Retired
                    } else if missing.is_empty() {
                        EpochStatus::Unrecorded
                    } else {
                        EpochStatus::Torn { missing }
                    }
                }
            };
            EpochListing {
                epoch,
                status,
                workers: footprints,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fixtures::{open, sample};
    use crate::checkpoint::inspect::{marker_summary, markers, summarize};
    use crate::checkpoint::verify::verify;

    #[test]
    fn listing_tells_complete_torn_and_unrecorded_apart() {
        let (mut manifest, stores) = sample();
        let opened = open(&stores);
        let summaries: BTreeMap<usize, StoreSummary> = stores
            .iter()
            .enumerate()
            .map(|(w, s)| (w, summarize(s).expect("summarize")))
            .collect();
        let listing = list(&manifest, &verify(&manifest, &opened), &summaries);
        let statuses: Vec<(u64, &EpochStatus)> =
            listing.iter().map(|l| (l.epoch, &l.status)).collect();
        assert_eq!(statuses[0], (1, &EpochStatus::Restorable));
        assert_eq!(statuses[2], (3, &EpochStatus::Restorable));
        assert_eq!(
            statuses[3],
            (
                4,
                &EpochStatus::Torn {
                    missing: vec![(Some(1), "counts".to_string())]
                }
            )
        );
        assert_eq!(listing[0].written().keys, 2 + 1 + 2);
        // Epoch 1 dropped from the manifest (it keeps the newest): retired.
        let mut newer = manifest.clone();
        newer.complete.retain(|e| e.epoch != 1);
        let listing = list(&newer, &verify(&newer, &opened), &summaries);
        assert_eq!(listing[0].status, EpochStatus::Retired);
        // Epoch 2 missing from it between complete ones: every worker
        // flushed it, the job did not record it.
        manifest.complete.retain(|e| e.epoch != 2);
        let listing = list(&manifest, &verify(&manifest, &opened), &summaries);
        assert_eq!(listing[1].status, EpochStatus::Unrecorded);
        // Markers alone tell the same.
        let markers_only: BTreeMap<usize, StoreSummary> = stores
            .iter()
            .enumerate()
            .map(|(w, s)| (w, marker_summary(markers(s).expect("markers"))))
            .collect();
        let again = list(&manifest, &verify(&manifest, &opened), &markers_only);
        let statuses = |l: &[EpochListing]| l.iter().map(|e| e.status.clone()).collect::<Vec<_>>();
        assert_eq!(statuses(&again), statuses(&listing));
    }
}
