//! Checkpointing while a job runs: the plan made before the workers start,
//! and each worker's handle on its store.
//!
//! Directory layout: `DIR/manifest.json` and `DIR/gen-G/worker-W/` (one store
//! per worker). A restore on the same worker count continues in the same
//! generation after discarding epochs newer than the restored one; a restore
//! on another worker count starts generation `G + 1`, and every worker writes
//! the state it restored there as the restored epoch, so each generation is
//! self-contained.

use std::cell::Cell;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::manifest::{self, Entry, Manifest, ManifestError, Step};
use super::protocol::{choose_restore, CompleteEpoch, RestoreDecision, Unusable};
use super::store::{checksum_of_epoch_step, StateStore, StoreError};
use crate::error::ConfigError;
use crate::ids::{KeyGroup, KEY_GROUPS};

/// Opens stores: the I/O edge a backend crate (`weir-rocks`) provides.
pub trait Backend: Send + Sync + 'static {
    /// Opens (creating if needed) a store for writing.
    fn open(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError>;
    /// Opens an existing store for reading only.
    fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError>;
}

/// One step instance's flush of an epoch, sent to the manifest writer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FlushRecord {
    /// The epoch flushed.
    pub epoch: u64,
    /// The worker.
    pub worker: usize,
    /// The step.
    pub step: String,
    /// `state` (counts toward completeness) or `source`.
    pub kind: String,
    /// The checksum of what was written.
    pub checksum: u64,
}

/// Where a run restores from.
#[derive(Clone, Debug)]
pub struct RestoreFrom {
    /// The epoch.
    pub epoch: u64,
    /// The generation holding it.
    pub generation: u64,
    /// How many workers wrote that generation.
    pub workers: usize,
    /// The steps of the job that wrote it.
    pub steps: Vec<Step>,
}

/// What a run does about checkpoints, decided before workers start.
pub struct Plan {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// The backend.
    pub backend: Arc<dyn Backend>,
    /// How many complete epochs to keep restorable.
    pub keep: usize,
    /// The generation this run writes.
    pub generation: u64,
    /// Where to restore from, if anywhere.
    pub restore: Option<RestoreFrom>,
    /// The manifest as this run maintains it (process 0 writes it).
    pub manifest: Mutex<Manifest>,
    /// Epochs skipped at restore because they failed verification.
    pub skipped: Vec<(u64, Unusable)>,
    /// Deltas through this epoch may be folded into the base (0: none yet);
    /// the manifest writer raises it, workers of this process fold.
    pub fold_target: AtomicU64,
}

impl Plan {
    /// Whether this run restores into a new store generation (another worker
    /// count): every step then writes what it restored as the restored epoch.
    pub fn rescaled(&self) -> bool {
        self.restore
            .as_ref()
            .is_some_and(|r| r.generation != self.generation)
    }
}

/// The store path of a worker in a generation.
pub fn store_path(dir: &Path, generation: u64, worker: usize) -> PathBuf {
    dir.join(format!("gen-{generation}"))
        .join(format!("worker-{worker}"))
}

/// The key groups a worker owns, as an inclusive range (empty: `None`).
pub fn owned_groups(worker: usize, workers: usize) -> Option<(KeyGroup, KeyGroup)> {
    let owned: Vec<u16> = (0..KEY_GROUPS)
        .filter(|g| KeyGroup(*g).worker(workers).0 == worker)
        .collect();
    Some((KeyGroup(*owned.first()?), KeyGroup(*owned.last()?)))
}

/// Decides where a run starts. `fresh` ignores (and clears) what is there.
pub fn plan(
    dir: &Path,
    backend: Arc<dyn Backend>,
    keep: usize,
    fresh: bool,
    workers: usize,
) -> Result<Plan, ConfigError> {
    std::fs::create_dir_all(dir).map_err(|e| {
        ConfigError::new(format!(
            "--checkpoint-dir {}: cannot create it: {e}",
            dir.display()
        ))
    })?;
    let empty = |generation| Manifest {
        format: 1,
        workers,
        generation,
        steps: Vec::new(),
        complete: Vec::new(),
    };
    let fresh_plan = |generation: u64, skipped| -> Result<Plan, ConfigError> {
        clear_generation(dir, generation)?;
        Ok(Plan {
            dir: dir.to_path_buf(),
            backend: Arc::clone(&backend),
            keep,
            generation,
            restore: None,
            manifest: Mutex::new(empty(generation)),
            skipped,
            fold_target: AtomicU64::new(0),
        })
    };
    let existing = match manifest::read(dir) {
        Ok(m) => m,
        Err(ManifestError::Missing) => return fresh_plan(0, Vec::new()),
        Err(ManifestError::Corrupt(why)) if fresh => {
            let _ = why;
            return fresh_plan(0, Vec::new());
        }
        Err(ManifestError::Corrupt(why)) => {
            return Err(ConfigError::new(format!(
                "the checkpoint manifest in {} is corrupt ({why}): pass --fresh to start over",
                dir.display()
            )))
        }
    };
    if fresh {
        return fresh_plan(existing.generation + 1, Vec::new());
    }
    let complete: Vec<CompleteEpoch> = existing
        .complete
        .iter()
        .map(|e| CompleteEpoch {
            epoch: e.epoch,
            checksums: e.flushes.iter().map(|f| f.checksum).collect(),
        })
        .collect();
    let decision = choose_restore(&complete, None, |candidate| {
        let entry = existing
            .complete
            .iter()
            .find(|e| e.epoch == candidate.epoch)
            .ok_or(Unusable::MissingMarker { worker: 0 })?;
        verify(dir, backend.as_ref(), existing.generation, entry)
    });
    match decision {
        RestoreDecision::Fresh => fresh_plan(existing.generation + 1, Vec::new()),
        RestoreDecision::NothingUsable { skipped } => Err(ConfigError::new(format!(
            "no checkpoint in {} verifies ({}): pass --fresh to start over",
            dir.display(),
            skipped
                .iter()
                .map(|(e, why)| format!("epoch {e}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        RestoreDecision::Restore { epoch, skipped } => {
            let same = existing.workers == workers;
            let generation = if same {
                existing.generation
            } else {
                existing.generation + 1
            };
            let mut manifest = existing.clone();
            manifest.complete.retain(|e| e.epoch <= epoch);
            if !same {
                manifest.generation = generation;
                manifest.workers = workers;
                manifest.complete.clear();
                clear_generation(dir, generation)?;
            }
            Ok(Plan {
                dir: dir.to_path_buf(),
                backend,
                keep,
                generation,
                restore: Some(RestoreFrom {
                    epoch,
                    generation: existing.generation,
                    workers: existing.workers,
                    steps: existing.steps.clone(),
                }),
                manifest: Mutex::new(manifest),
                skipped,
                fold_target: AtomicU64::new(0),
            })
        }
    }
}

/// Removes what an abandoned run left in a generation this run will write.
fn clear_generation(dir: &Path, generation: u64) -> Result<(), ConfigError> {
    let gen_dir = dir.join(format!("gen-{generation}"));
    if gen_dir.exists() {
        std::fs::remove_dir_all(&gen_dir)
            .map_err(|e| ConfigError::new(format!("cannot clear {}: {e}", gen_dir.display())))?;
    }
    Ok(())
}

/// Checks every flush of a complete epoch against what its store holds.
fn verify(
    dir: &Path,
    backend: &dyn Backend,
    generation: u64,
    entry: &Entry,
) -> Result<(), Unusable> {
    for flush in &entry.flushes {
        let path = store_path(dir, generation, flush.worker);
        let store = backend
            .open_read_only(&path)
            .map_err(|_| Unusable::MissingMarker {
                worker: flush.worker,
            })?;
        match checksum_of_epoch_step(store.as_ref(), entry.epoch, &flush.step) {
            Ok(Some((recorded, found)))
                if recorded == flush.checksum && found == flush.checksum => {}
            Ok(Some((_, found))) => {
                return Err(Unusable::ChecksumMismatch {
                    worker: flush.worker,
                    expected: flush.checksum,
                    found,
                })
            }
            Ok(None) | Err(_) => {
                return Err(Unusable::MissingMarker {
                    worker: flush.worker,
                })
            }
        }
    }
    Ok(())
}

/// A worker's view of checkpointing.
pub struct WorkerCheckpoint {
    /// The run's plan.
    pub plan: Arc<Plan>,
    /// This worker's index.
    pub worker: usize,
    /// All workers.
    pub workers: usize,
    /// This worker's store (for writing).
    pub store: RefCell<Box<dyn StateStore>>,
    /// Stores to restore from (this worker's own when the worker count is
    /// unchanged; every old worker's otherwise).
    pub restore_stores: Vec<Box<dyn StateStore>>,
    /// The epoch this worker's store has been folded through.
    folded: Cell<u64>,
}

impl WorkerCheckpoint {
    /// Opens this worker's store (and the stores to restore from).
    pub fn open(plan: Arc<Plan>, worker: usize, workers: usize) -> Result<Self, StoreError> {
        let path = store_path(&plan.dir, plan.generation, worker);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError(format!("creating {}: {e}", parent.display())))?;
        }
        let mut store = plan.backend.open(&path)?;
        let mut restore_stores = Vec::new();
        if let Some(from) = &plan.restore {
            if from.generation == plan.generation {
                // Same workers: drop the torn tail, read our own store.
                super::store::discard_after(store.as_mut(), from.epoch)?;
            } else {
                for old in 0..from.workers {
                    let old_path = store_path(&plan.dir, from.generation, old);
                    restore_stores.push(plan.backend.open_read_only(&old_path)?);
                }
            }
        }
        Ok(WorkerCheckpoint {
            plan,
            worker,
            workers,
            store: RefCell::new(store),
            restore_stores,
            folded: Cell::new(0),
        })
    }

    /// Folds this worker's deltas into its base as far as the manifest allows.
    pub fn maybe_fold(&self) -> Result<(), StoreError> {
        let target = self.plan.fold_target.load(Ordering::SeqCst);
        if target > self.folded.get() {
            super::store::fold(self.store.borrow_mut().as_mut(), target)?;
            self.folded.set(target);
        }
        Ok(())
    }

    /// Calls `visit` with every store that holds state to restore.
    pub fn for_each_restore_store(&self, mut visit: impl FnMut(&dyn StateStore)) {
        if self.plan.restore.is_none() {
            return;
        }
        if self.restore_stores.is_empty() {
            visit(self.store.borrow().as_ref());
        } else {
            for s in &self.restore_stores {
                visit(s.as_ref());
            }
        }
    }
}
