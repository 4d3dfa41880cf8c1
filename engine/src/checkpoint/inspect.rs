//! Read-only inspection of a checkpoint directory: what the `weir-checkpoint`
//! tool (in `weir-rocks`) prints, computed here on any [`StateStore`] so that
//! it is the same on every backend and testable on [`MemoryStore`].
//!
//! Nothing here writes: stores are opened with [`Backend::open_read_only`],
//! the manifest is only read. Three views:
//!
//! * [`list`]: every epoch found, from the manifest and from the flush
//!   markers in the stores, with its status (restorable, unusable, torn…)
//!   and what it wrote on each worker ([`summarize`] scans a store once).
//! * [`operator_state`] and [`source_positions`]: one epoch's keyed state
//!   per key group, and each split's decoded position.
//! * [`verify`]: every complete epoch's flushes checked against the manifest
//!   and the markers, and the epoch a restore would use — decided by
//!   [`choose_restore`], as a job's start does.
//!
//! [`MemoryStore`]: super::store::MemoryStore

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::layout;
use super::manifest::{Entry, Flush, Manifest, Step, StepKind};
use super::protocol::{choose_restore, missing_flushes, CompleteEpoch, RestoreDecision, Unusable};
use super::runtime::{store_path, Backend};
use super::store::{
    checksum_of_epoch_step, folded_through, load_positions_through, load_state, StateStore,
    StoreError,
};
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
    /// The same fact as the engine's restore reports it.
    pub fn unusable(&self) -> Unusable {
        match &self.problem {
            Problem::DataMismatch { found, .. } => Unusable::ChecksumMismatch {
                worker: self.worker,
                expected: 0,
                found: *found,
            },
            Problem::MarkerMismatch { marker, manifest } => Unusable::ChecksumMismatch {
                worker: self.worker,
                expected: *manifest,
                found: *marker,
            },
            Problem::Unreadable(_) | Problem::NoMarker | Problem::Folded { .. } => {
                Unusable::MissingMarker {
                    worker: self.worker,
                }
            }
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
    /// Its flushes that do not verify: what a job's restore checks.
    pub problems: Vec<FlushProblem>,
    /// Workers whose stores cannot read everything a restore of the epoch
    /// loads (the base, and every delta and position up to the epoch),
    /// although its flushes verify: a job would pick it and then fail.
    pub load_errors: Vec<(usize, String)>,
}

impl Verdict {
    /// Whether the epoch restores: its flushes verify and its state loads.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.load_errors.is_empty()
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
    /// Which epoch a job's restore would pick, if the run had not finished:
    /// the newest whose flushes verify, as `runtime::plan` decides (it does
    /// not read the state until it loads it; see
    /// [`Verification::restore_load_errors`]).
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

    /// What loading the epoch a restore would use fails on, if it does.
    pub fn restore_load_errors(&self) -> &[(usize, String)] {
        match &self.restore {
            RestoreDecision::Restore { epoch, .. } => self
                .verdicts
                .iter()
                .find(|v| v.epoch == *epoch)
                .map_or(&[][..], |v| &v.load_errors[..]),
            _ => &[],
        }
    }
}

/// Checks every complete epoch of the manifest and decides, as a job's
/// start does, which one a restore would use.
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
    // An older epoch loads a part of what a newer one does (same base,
    // fewer deltas), so once one loads, every older one does.
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
    // As `runtime::plan` decides: no folded-through bound, newest first.
    let restore = choose_restore(&complete, None, |candidate| {
        match verdicts
            .iter()
            .find(|v| v.epoch == candidate.epoch)
            .and_then(|v| v.problems.first())
        {
            Some(problem) => Err(problem.unusable()),
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

/// A split's position as the source operator encodes it: its watermark,
/// whether it ended, its record offset, then the reader's own bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitPosition {
    /// The split's watermark (ms).
    pub watermark: u64,
    /// Whether the split had ended.
    pub done: bool,
    /// Records (good or bad) read: the offset of the next one.
    pub offset: u64,
    /// The reader's own position.
    pub reader: Vec<u8>,
}

/// Decodes a stored split position.
pub fn decode_position(bytes: &[u8]) -> Result<SplitPosition, String> {
    Ok(SplitPosition {
        watermark: position_word(bytes, 0)?,
        done: position_word(bytes, 1)? != 0,
        offset: position_word(bytes, 2)?,
        reader: bytes.get(24..).unwrap_or_default().to_vec(),
    })
}

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
    /// Decoded.
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
                position: decode_position(&p.position),
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
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::checkpoint::store::{fold, write_epoch, MemoryStore, Position, StateChange};
    use crate::source::position_of;

    /// A backend of in-memory stores, by path; read-only opens get a copy.
    #[derive(Default)]
    struct Memory(Mutex<HashMap<PathBuf, MemoryStore>>);

    impl Backend for Memory {
        fn open(&self, _: &Path) -> Result<Box<dyn StateStore>, StoreError> {
            Err(StoreError("inspection never opens for writing".into()))
        }
        fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
            let stores = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
            match stores.get(path) {
                Some(s) => Ok(Box::new(s.clone())),
                None => Err(StoreError(format!("no store at {}", path.display()))),
            }
        }
    }

    fn change(group: u16, key: &[u8], value: Option<&[u8]>) -> StateChange {
        StateChange {
            operator: "counts".into(),
            group: KeyGroup(group),
            key: [&[layout::ENTRY_KEY], key].concat(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    fn position(split: u32, offset: u64) -> Position {
        let mut bytes = position_of(&[1_000 * offset, 0, offset]);
        bytes.extend(position_of(&[offset + 1, offset]));
        Position {
            source: "records".into(),
            split: SplitId(split),
            position: bytes,
        }
    }

    /// Two workers, epochs 1..=3 complete, epoch 4 flushed by worker 0 only.
    /// Worker 0 owns groups 3 and 5, worker 1 group 100.
    fn sample() -> (Manifest, Vec<MemoryStore>) {
        let mut stores = vec![MemoryStore::default(), MemoryStore::default()];
        let mut complete = Vec::new();
        for epoch in 1..=4u64 {
            let mut flushes = Vec::new();
            for (w, store) in stores.iter_mut().enumerate() {
                if epoch == 4 && w == 1 {
                    continue;
                }
                let changes: Vec<StateChange> = match (w, epoch) {
                    (0, 1) => vec![change(3, b"a", Some(b"1")), change(5, b"b", Some(b"1"))],
                    (0, 2) => vec![change(3, b"c", Some(b"22"))],
                    (0, 3) => vec![change(3, b"a", None)],
                    (1, 1) => vec![change(100, b"z", Some(b"9"))],
                    _ => Vec::new(),
                };
                let mut buffered = Vec::new();
                if w == 1 && epoch == 3 {
                    // A batch of 2 records buffered at stamp (3, 7000).
                    let mut key = vec![layout::ENTRY_BUFFERED];
                    key.extend(position_of(&[3, 7_000]));
                    let mut value = position_of(&[2]);
                    value.extend([0u8; 20]);
                    buffered.push(StateChange {
                        operator: "counts".into(),
                        group: KeyGroup(100),
                        key,
                        value: Some(value),
                    });
                }
                let all: Vec<StateChange> = changes.into_iter().chain(buffered).collect();
                let sum = write_epoch(store, epoch, "counts", &all, &[]).expect("write");
                flushes.push(Flush {
                    worker: w,
                    step: "counts".into(),
                    checksum: sum,
                });
                let sum = write_epoch(
                    store,
                    epoch,
                    "records",
                    &[],
                    &[position(w as u32, epoch * 10)],
                )
                .expect("write");
                flushes.push(Flush {
                    worker: w,
                    step: "records".into(),
                    checksum: sum,
                });
            }
            if epoch < 4 {
                flushes.sort();
                complete.push(Entry { epoch, flushes });
            }
        }
        // Built from JSON, as the manifest file is: fields added later
        // take their defaults.
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "format": 1,
            "workers": 2,
            "generation": 0,
            "steps": [
                {"name": "counts", "kind": "state", "version": 1},
                {"name": "records", "kind": "source", "version": 1},
            ],
            "complete": complete,
        }))
        .expect("a manifest");
        (manifest, stores)
    }

    fn open(stores: &[MemoryStore]) -> Vec<WorkerStore> {
        stores
            .iter()
            .enumerate()
            .map(|(worker, s)| WorkerStore {
                worker,
                path: PathBuf::from(format!("worker-{worker}")),
                store: Ok(Box::new(s.clone()) as Box<dyn StateStore>),
            })
            .collect()
    }

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
        let mut batch = crate::checkpoint::store::Batch::default();
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

    /// A store whose reads fail when they reach one key (a corrupt block).
    struct Failing {
        inner: MemoryStore,
        bad: Vec<u8>,
    }

    impl StateStore for Failing {
        fn write(&mut self, batch: &crate::checkpoint::store::Batch) -> Result<(), StoreError> {
            self.inner.write(batch)
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]),
        ) -> Result<(), StoreError> {
            if start <= self.bad.as_slice() && self.bad.as_slice() < end {
                return Err(StoreError("Corruption: block checksum mismatch".into()));
            }
            self.inner.scan(start, end, visit)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
    }

    #[test]
    fn an_unreadable_old_delta_fails_loading_though_checksums_verify() {
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
        // A job would pick epoch 3 (checksums) and fail loading it.
        assert!(matches!(
            v.restore,
            RestoreDecision::Restore { epoch: 3, .. }
        ));
        assert_eq!(v.restore_load_errors().len(), 1);
        assert!(!v.newest_verifies());
        // Unharmed, every epoch loads.
        for epoch in 1..=4 {
            check_loadable(&stores[0], epoch).expect("loads");
        }
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
        assert!(decode_position(&[1, 2, 3]).is_err());
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
