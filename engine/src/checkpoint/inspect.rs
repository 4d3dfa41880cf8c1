//! Read-only inspection of a checkpoint directory: what the `weir-checkpoint`
//! tool (in `weir-rocks`) prints, computed here on any [`StateStore`] so that
//! it is the same on every backend and testable on [`MemoryStore`].
//!
//! Nothing here writes: stores are opened with [`Backend::open_read_only`],
//! the manifest is only read. Two views:
//!
//! * [`list`]: every epoch found, from the manifest and from the flush
//!   markers in the stores, with its status (restorable, unusable, torn…)
//!   and what it wrote on each worker ([`summarize`] scans a store once).
//! * [`operator_state`] and [`source_positions`]: one epoch's keyed state
//!   per key group, and each split's decoded position.
//!
//! Whether epochs verify, and which one a restore uses, is not decided
//! here: [`verify`](super::verify::verify) is the one verification, which a
//! job's start calls too; the views above report what it found.
//!
//! [`MemoryStore`]: super::store::MemoryStore
//! [`Backend::open_read_only`]: super::runtime::Backend::open_read_only

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::layout;
use super::manifest::{Manifest, Step, StepKind};
use super::protocol::missing_flushes;
use super::store::{folded_through, load_positions_through, load_state, StateStore, StoreError};
use super::verify::{FlushProblem, Verification, WorkerStore};
use crate::ids::{KeyGroup, SplitId};
use crate::source::position_word;

/// A number of stored keys and their size (key + value bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// Keys.
    pub keys: u64,
    /// Key and value bytes.
    pub bytes: u64,
}

impl Volume {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    /// The sum of two volumes.
    pub fn plus(self, other: Volume) -> Volume {
        Volume {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// What one store holds for one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochFootprint {
    /// State deltas.
    pub deltas: Volume,
    /// Source positions.
    pub positions: Volume,
    /// Flush markers, by step, with the checksum each recorded.
    pub markers: BTreeMap<String, u64>,
}

impl EpochFootprint {
    /// What the epoch's flushes wrote: deltas and positions (markers aside).
    pub fn written(&self) -> Volume {
        self.deltas.plus(self.positions)
    }
}

/// Everything one store holds, by kind, from one scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSummary {
    /// Per-epoch deltas, positions and markers.
    pub epochs: BTreeMap<u64, EpochFootprint>,
    /// Base state (folded deltas).
    pub base: Volume,
    /// Folded source positions.
    pub base_positions: Volume,
    /// The epoch the base holds, if a fold happened.
    pub folded_through: Option<u64>,
    /// Operators with state (base or delta) in the store.
    pub operators: BTreeSet<String>,
    /// Sources with positions in the store.
    pub sources: BTreeSet<String>,
    /// Keys the checkpoint layout does not make.
    pub unknown: Volume,
}

/// Scans a whole store once and sorts what it holds by kind and epoch.
pub fn summarize(store: &dyn StateStore) -> Result<StoreSummary, StoreError> {
    let mut s = StoreSummary::default();
    let mut bad_folded = false;
    store.scan(&[], &layout::range_end(Vec::new()), &mut |k, v| {
        let tag = k.first().copied().unwrap_or(0);
        match (tag, layout::epoch_of(k)) {
            (layout::BASE, _) => match layout::parse_state_key(k) {
                Some((op, _, _)) => {
                    if !s.operators.contains(op) {
                        s.operators.insert(op.to_string());
                    }
                    s.base.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::DELTA, Some(epoch)) => match layout::parse_state_key(k) {
                Some((op, _, _)) => {
                    if !s.operators.contains(op) {
                        s.operators.insert(op.to_string());
                    }
                    s.epochs.entry(epoch).or_default().deltas.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::POSITION, Some(epoch)) => match layout::parse_position_key(k) {
                Some((_, source, _)) => {
                    if !s.sources.contains(source) {
                        s.sources.insert(source.to_string());
                    }
                    s.epochs.entry(epoch).or_default().positions.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::MARKER, Some(epoch)) => match marker_step(k) {
                Some(step) => {
                    let recorded = v
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_le_bytes);
                    s.epochs
                        .entry(epoch)
                        .or_default()
                        .markers
                        .insert(step.to_string(), recorded);
                }
                None => s.unknown.add(k, v),
            },
            (layout::BASE_POSITION, _) => match layout::parse_base_position_key(k) {
                Some((source, _)) => {
                    if !s.sources.contains(source) {
                        s.sources.insert(source.to_string());
                    }
                    s.base_positions.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            _ if k == layout::FOLDED => match v.get(..8).and_then(|b| b.try_into().ok()) {
                Some(b) => s.folded_through = Some(u64::from_le_bytes(b)),
                None => bad_folded = true,
            },
            _ => s.unknown.add(k, v),
        }
    })?;
    if bad_folded {
        return Err(StoreError(
            "the folded-through record is shorter than 8 bytes".into(),
        ));
    }
    Ok(s)
}

fn marker_step(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(9..)?).ok()
}

/// Every flush marker in a store: epoch → step → recorded checksum. Reads
/// only the markers (cheap on a large store).
pub fn markers(store: &dyn StateStore) -> Result<BTreeMap<u64, BTreeMap<String, u64>>, StoreError> {
    let mut out: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    let start = vec![layout::MARKER];
    store.scan(&start, &layout::range_end(start.clone()), &mut |k, v| {
        if let (Some(epoch), Some(step)) = (layout::epoch_of(k), marker_step(k)) {
            let recorded = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            out.entry(epoch)
                .or_default()
                .insert(step.to_string(), recorded);
        }
    })?;
    Ok(out)
}

/// A summary holding only a store's markers (from [`markers`]).
pub fn marker_summary(markers: BTreeMap<u64, BTreeMap<String, u64>>) -> StoreSummary {
    StoreSummary {
        epochs: markers
            .into_iter()
            .map(|(epoch, markers)| {
                (
                    epoch,
                    EpochFootprint {
                        markers,
                        ..EpochFootprint::default()
                    },
                )
            })
            .collect(),
        ..StoreSummary::default()
    }
}

/// The store generations on disk in `dir`: generation → its worker indexes,
/// from the `gen-G/worker-W` directories.
pub fn generations_on_disk(dir: &Path) -> std::io::Result<BTreeMap<u64, Vec<usize>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let mut workers = Vec::new();
        for w in std::fs::read_dir(entry.path())? {
            let w = w?;
            if let Some(worker) = w
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("worker-"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                if w.path().is_dir() {
                    workers.push(worker);
                }
            }
        }
        workers.sort_unstable();
        out.insert(generation, workers);
    }
    Ok(out)
}

/// The bytes of every file under `path` (0 if it does not exist).
pub fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

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

/// One key group of an operator at an epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The workers whose stores hold it (one, unless something is wrong).
    pub workers: BTreeSet<usize>,
    /// Keys with state.
    pub keys: u64,
    /// Stored bytes of the keys' state (keys and values).
    pub key_bytes: u64,
    /// Buffered-record entries.
    pub buffered: u64,
    /// Stored bytes of the buffered entries (keys and values).
    pub buffered_bytes: u64,
}

/// A batch of records an operator held buffered at the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferedEntry {
    /// The worker whose store holds it.
    pub worker: usize,
    /// The key group.
    pub group: KeyGroup,
    /// The stamp the records were buffered at: (epoch, event-time ms), if
    /// it decodes.
    pub stamp: Option<(u64, u64)>,
    /// How many records, if it decodes.
    pub records: Option<u64>,
    /// Stored bytes (key and value).
    pub bytes: u64,
}

/// One stored key of an operator at an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// The worker whose store holds it.
    pub worker: usize,
    /// The key group.
    pub group: KeyGroup,
    /// The encoded key (its tag byte removed).
    pub key: Vec<u8>,
    /// The size of its encoded state.
    pub state_len: usize,
}

/// An operator's keyed state at an epoch, over every store of a generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorState {
    /// The operator.
    pub name: String,
    /// Its key groups that hold anything.
    pub groups: BTreeMap<u16, GroupState>,
    /// Its buffered-record entries.
    pub buffered: Vec<BufferedEntry>,
    /// Its keys, when asked for.
    pub keys: Vec<StoredKey>,
    /// Stored entries with an unknown tag byte.
    pub untagged: u64,
}

impl OperatorState {
    /// Keys with state, over all groups.
    pub fn total_keys(&self) -> u64 {
        self.groups.values().map(|g| g.keys).sum()
    }

    /// Stored bytes (keys, state and buffered records).
    pub fn total_bytes(&self) -> u64 {
        self.groups
            .values()
            .map(|g| g.key_bytes + g.buffered_bytes)
            .sum()
    }

    /// The fewest and most keys in a group holding keys.
    pub fn keys_per_group(&self) -> Option<(u64, u64)> {
        let counts = self.groups.values().map(|g| g.keys).filter(|k| *k > 0);
        Some((counts.clone().min()?, counts.max()?))
    }

    /// Groups found in more than one worker's store: within a generation
    /// each key group belongs to one worker, so these are a defect.
    pub fn shared_groups(&self) -> Vec<u16> {
        self.groups
            .iter()
            .filter(|(_, g)| g.workers.len() > 1)
            .map(|(g, _)| *g)
            .collect()
    }
}

fn check_not_folded_past(store: &dyn StateStore, worker: usize, epoch: u64) -> Result<(), String> {
    match folded_through(store) {
        Ok(Some(through)) if through > epoch => Err(format!(
            "worker {worker}'s base is folded through epoch {through}: the state of epoch {epoch} is gone"
        )),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("worker {worker}: {e}")),
    }
}

fn opened(stores: &[WorkerStore]) -> Result<Vec<(usize, &dyn StateStore)>, String> {
    stores
        .iter()
        .map(|s| match &s.store {
            Ok(store) => Ok((s.worker, store.as_ref())),
            Err(e) => Err(format!("worker {}: {e}", s.worker)),
        })
        .collect()
}

/// The keyed state of `operator` at `epoch` (base plus deltas), over every
/// store. `with_keys` also lists every key.
pub fn operator_state(
    stores: &[WorkerStore],
    operator: &str,
    epoch: u64,
    with_keys: bool,
) -> Result<OperatorState, String> {
    let mut out = OperatorState {
        name: operator.to_string(),
        ..OperatorState::default()
    };
    for (worker, store) in opened(stores)? {
        check_not_folded_past(store, worker, epoch)?;
        let mut visit = |group: KeyGroup, stored: &[u8], state: &[u8]| {
            let bytes = (stored.len() + state.len()) as u64;
            let g = out.groups.entry(group.0).or_default();
            g.workers.insert(worker);
            match stored.split_first() {
                Some((&layout::ENTRY_KEY, key)) => {
                    g.keys += 1;
                    g.key_bytes += bytes;
                    if with_keys {
                        out.keys.push(StoredKey {
                            worker,
                            group,
                            key: key.to_vec(),
                            state_len: state.len(),
                        });
                    }
                }
                Some((&layout::ENTRY_BUFFERED, stamp)) => {
                    g.buffered += 1;
                    g.buffered_bytes += bytes;
                    let word = |b: &[u8], i: usize| position_word(b, i).ok();
                    // bincode: `Time` is two u64s, a Vec starts with its length.
                    let stamp = match (stamp.len(), word(stamp, 0), word(stamp, 1)) {
                        (16, Some(e), Some(t)) => Some((e, t)),
                        _ => None,
                    };
                    out.buffered.push(BufferedEntry {
                        worker,
                        group,
                        stamp,
                        records: word(state, 0),
                        bytes,
                    });
                }
                _ => out.untagged += 1,
            }
        };
        // Keys' groups only, not the operator's own `layout::META_GROUP`.
        load_state(
            store,
            operator,
            KeyGroup(0),
            KeyGroup(crate::ids::KEY_GROUPS - 1),
            epoch,
            &mut visit,
        )
        .map_err(|e| format!("worker {worker}: {e}"))?;
    }
    Ok(out)
}

pub use super::layout::SplitPosition;

/// A split's position at an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSplit {
    /// The source.
    pub source: String,
    /// The split.
    pub split: SplitId,
    /// The worker whose store holds it.
    pub worker: usize,
    /// The stored bytes.
    pub raw: Vec<u8>,
    /// Decoded ([`layout::parse_split_position`]).
    pub position: Result<SplitPosition, String>,
}

/// Every split's newest position at or before `epoch` (what a restore
/// seeks to), over every store, by source and split.
pub fn source_positions(stores: &[WorkerStore], epoch: u64) -> Result<Vec<SourceSplit>, String> {
    let mut out = Vec::new();
    for (worker, store) in opened(stores)? {
        check_not_folded_past(store, worker, epoch)?;
        for p in
            load_positions_through(store, epoch).map_err(|e| format!("worker {worker}: {e}"))?
        {
            out.push(SourceSplit {
                position: layout::parse_split_position(&p.position),
                source: p.source,
                split: p.split,
                worker,
                raw: p.position,
            });
        }
    }
    out.sort_by(|a, b| (&a.source, a.split, a.worker).cmp(&(&b.source, b.split, b.worker)));
    Ok(out)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::checkpoint::fixtures::{open, sample, Memory};
    use crate::checkpoint::runtime::store_path;
    use crate::checkpoint::store::fold;
    use crate::checkpoint::verify::{open_generation, verify, Problem};
    use crate::source::position_of;

    #[test]
    fn summaries_count_each_epochs_writes() {
        let (_, stores) = sample();
        let s = summarize(&stores[0]).expect("summarize");
        assert_eq!(
            s.epochs.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let e1 = &s.epochs[&1];
        assert_eq!(e1.deltas.keys, 2);
        assert_eq!(e1.positions.keys, 1);
        assert_eq!(
            e1.markers.keys().cloned().collect::<Vec<_>>(),
            vec!["counts".to_string(), "records".to_string()]
        );
        // d + epoch + "counts\0" + group + tag + key, and the delta's tag + value.
        let delta_key = 1 + 8 + 7 + 2 + 1 + 1;
        assert_eq!(e1.deltas.bytes, 2 * (delta_key + 2));
        assert_eq!(s.base, Volume::default());
        assert_eq!(s.folded_through, None);
        assert!(s.operators.contains("counts") && s.sources.contains("records"));
        assert_eq!(s.unknown, Volume::default());
        assert_eq!(markers(&stores[0]).expect("markers").len(), 4);
    }

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

    #[test]
    fn folded_epochs_are_named_as_such() {
        let (manifest, mut stores) = sample();
        for s in &mut stores {
            fold(s, 1).expect("fold");
        }
        let v = verify(&manifest, &open(&stores));
        assert_eq!(
            v.verdicts[0].problems[0].problem,
            Problem::Folded { through: 1 }
        );
        assert!(v.verdicts[1].problems.is_empty());
        // State before the fold is gone; at or after it, it is all there.
        let opened = open(&stores);
        assert!(operator_state(&opened, "counts", 0, false)
            .expect_err("gone")
            .contains("folded through epoch 1"));
        let s = operator_state(&opened, "counts", 3, false).expect("state");
        assert_eq!(s.total_keys(), 3);
    }

    #[test]
    fn operator_state_counts_keys_per_group_and_buffered_records() {
        let (_, stores) = sample();
        let opened = open(&stores);
        let at1 = operator_state(&opened, "counts", 1, true).expect("state");
        assert_eq!(at1.total_keys(), 3);
        assert_eq!(
            at1.groups.keys().copied().collect::<Vec<_>>(),
            vec![3, 5, 100]
        );
        assert_eq!(at1.keys_per_group(), Some((1, 1)));
        assert_eq!(at1.keys.len(), 3);
        assert_eq!(at1.keys[0].key, b"a".to_vec());
        let at3 = operator_state(&opened, "counts", 3, false).expect("state");
        // a removed in 3, c added in 2: group 3 holds c only.
        assert_eq!(at3.groups[&3].keys, 1);
        assert_eq!(at3.total_keys(), 3);
        assert_eq!(at3.buffered.len(), 1);
        let b = &at3.buffered[0];
        assert_eq!(
            (b.worker, b.group, b.stamp, b.records),
            (1, KeyGroup(100), Some((3, 7_000)), Some(2))
        );
        assert_eq!(at3.groups[&100].workers, BTreeSet::from([1]));
        assert!(at3.shared_groups().is_empty());
        assert!(at3.keys.is_empty());
    }

    #[test]
    fn positions_decode_per_split() {
        let (_, stores) = sample();
        let splits = source_positions(&open(&stores), 3).expect("positions");
        assert_eq!(splits.len(), 2);
        let p = splits[0].position.as_ref().expect("decodes");
        assert_eq!((splits[0].split, splits[0].worker), (SplitId(0), 0));
        assert_eq!((p.watermark, p.done, p.offset), (30_000, false, 30));
        assert_eq!(p.reader, position_of(&[31, 30]));
        // Epoch 4 exists on worker 0 only; worker 1's split stays at 3.
        let splits = source_positions(&open(&stores), 4).expect("positions");
        let offsets: Vec<u64> = splits
            .iter()
            .map(|s| s.position.as_ref().map(|p| p.offset).unwrap_or(0))
            .collect();
        assert_eq!(offsets, vec![40, 30]);
        assert!(layout::parse_split_position(&[1, 2, 3]).is_err());
    }

    #[test]
    fn generations_open_through_the_backend() {
        let (manifest, stores) = sample();
        let dir = std::env::temp_dir().join(format!("weir-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let backend = Memory::default();
        for (w, s) in stores.iter().enumerate() {
            let path = store_path(&dir, 0, w);
            std::fs::create_dir_all(&path).expect("dir");
            std::fs::write(path.join("data"), b"12345").expect("file");
            backend.0.lock().expect("lock").insert(path, s.clone());
        }
        let opened = open_generation(&dir, 0, 3, &backend);
        assert!(opened[0].store.is_ok() && opened[1].store.is_ok());
        let missing = opened[2].store.as_ref().err().map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("does not exist")));
        assert!(verify(&manifest, &opened[..2]).newest_verifies());
        assert_eq!(
            generations_on_disk(&dir).expect("read"),
            BTreeMap::from([(0, vec![0, 1])])
        );
        assert_eq!(disk_size(&store_path(&dir, 0, 0)), 5);
        assert_eq!(disk_size(&dir), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
