//! Checkpointing while a job runs: the plan made before the workers start,
//! and each worker's handle on its store.
//!
//! Where a run starts is decided by [`plan`] (in `planning`): it verifies
//! the manifest's complete epochs with
//! [`verify`](super::verify::verify) — the function `weir-checkpoint
//! verify` reports — and restores the epoch that decides, so a job never
//! restores an epoch the tool calls unusable.
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
use timely::scheduling::Activator;

use super::manifest::{self, Manifest, Step, StepKind};
use super::protocol::Unusable;
use super::store::{StateStore, StoreError};
use super::writer::Completed;
use crate::ids::{KeyGroup, KEY_GROUPS};
use crate::sink_protocol::FINAL_EPOCH;

pub use super::planning::{plan, plan_for};

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
    /// The step's kind.
    pub kind: StepKind,
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
    /// One more than the newest epoch this process knows complete (0: none
    /// yet): the manifest writer's process records it, the others learn it
    /// from its broadcast.
    completed: AtomicU64,
    /// The epoch through which a sink whose staging a crash loses has made
    /// its output visible (`u64::MAX`: none): the manifest keeps its
    /// checkpoint and every later one ([`Plan::keep_from`]).
    kept_from: AtomicU64,
}

impl Plan {
    /// A plan that has recorded nothing yet.
    pub(super) fn new(
        dir: PathBuf,
        backend: Arc<dyn Backend>,
        keep: usize,
        generation: u64,
        restore: Option<RestoreFrom>,
        manifest: Manifest,
        skipped: Vec<(u64, Unusable)>,
    ) -> Plan {
        Plan {
            dir,
            backend,
            keep,
            generation,
            restore,
            manifest: Mutex::new(manifest),
            skipped,
            fold_target: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            kept_from: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether this run restores into a new store generation (another worker
    /// count): every step then writes what it restored as the restored epoch.
    pub fn rescaled(&self) -> bool {
        self.restore
            .as_ref()
            .is_some_and(|r| r.generation != self.generation)
    }

    /// The newest epoch known complete: recorded by this run, or restored.
    pub fn last_complete(&self) -> Option<u64> {
        match self.completed.load(Ordering::SeqCst) {
            0 => self.restore.as_ref().map(|r| r.epoch),
            n => Some(n - 1),
        }
    }

    /// Records that `epoch` is complete (the manifest says so); whether
    /// this process did not know it yet.
    pub(crate) fn mark_complete(&self, epoch: u64) -> bool {
        let next = epoch.saturating_add(1);
        self.completed.fetch_max(next, Ordering::SeqCst) < next
    }

    /// Keeps the checkpoint of `epoch` and every later one restorable
    /// (`None`: no such need): the epoch through which a sink whose staging
    /// a crash loses has made output visible, where a restore resumes
    /// ([`crate::commit_log`]). The sink on worker 0 sets it; the manifest
    /// writer, on the same worker, reads it ([`Plan::kept_from`]).
    pub(crate) fn keep_from(&self, epoch: Option<u64>) {
        self.kept_from
            .store(epoch.unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    /// The epoch [`Plan::keep_from`] set.
    pub(crate) fn kept_from(&self) -> Option<u64> {
        match self.kept_from.load(Ordering::SeqCst) {
            u64::MAX => None,
            epoch => Some(epoch),
        }
    }

    /// Records the run as finished in the manifest (a job started on the
    /// directory again then starts afresh). The manifest writer does it
    /// when exactly-once sinks report the end of their input, before they
    /// commit it ([`crate::sink_protocol`]); process 0 does it again at the
    /// clean end of every run.
    pub fn finish(&self) -> Result<(), StoreError> {
        let mut m = lock(&self.manifest);
        m.finished = true;
        manifest::write(&self.dir, &m).map_err(|e| {
            StoreError(format!(
                "recording the finished run in {}: {e}",
                manifest::path(&self.dir).display()
            ))
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
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
    /// The fold target the manifest writer announced (it may run in
    /// another process, where `plan.fold_target` does not reach).
    announced: Cell<u64>,
    /// One more than the newest epoch the manifest writer announced
    /// complete to this worker (0: none yet).
    learned: Cell<u64>,
    /// Whether the manifest writer announced the run finished.
    finished: Cell<bool>,
    /// Operators to activate when an announcement arrives (exactly-once
    /// sinks, sources).
    listeners: RefCell<Vec<Activator>>,
}

/// How many epochs of deltas a fold takes at least.
const FOLD_EVERY: u64 = 4;

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
            announced: Cell::new(0),
            learned: Cell::new(0),
            finished: Cell::new(false),
            listeners: RefCell::new(Vec::new()),
        })
    }

    /// Records a fold target announced by the manifest writer.
    pub(crate) fn allow_fold(&self, target: u64) {
        self.announced.set(self.announced.get().max(target));
    }

    /// Records what the manifest writer announced: an epoch recorded
    /// complete (or, at [`FINAL_EPOCH`], the run finished), and how far to
    /// fold; wakes the listeners. Returns whether this worker's process
    /// learned of a complete epoch now (it had not recorded or heard of it).
    pub(crate) fn learn_complete(&self, done: Completed) -> bool {
        self.allow_fold(done.fold_target);
        for listener in self.listeners.borrow().iter() {
            listener.activate();
        }
        if done.epoch == FINAL_EPOCH {
            self.finished.set(true);
            return false;
        }
        self.learned
            .set(self.learned.get().max(done.epoch.saturating_add(1)));
        self.plan.mark_complete(done.epoch)
    }

    /// Activates `listener` whenever the manifest writer announces an epoch
    /// complete or the run finished.
    pub(crate) fn listen(&self, listener: Activator) {
        self.listeners.borrow_mut().push(listener);
    }

    /// Whether the manifest writer announced the run finished (every
    /// exactly-once sink has reported the end of its input).
    pub fn finished(&self) -> bool {
        self.finished.get()
    }

    /// The newest epoch this worker knows complete: announced to it by the
    /// manifest writer (in whichever process that runs), or restored.
    pub fn last_complete(&self) -> Option<u64> {
        match self.learned.get() {
            0 => self.plan.restore.as_ref().map(|r| r.epoch),
            n => Some(n - 1),
        }
    }

    /// Folds this worker's deltas into its base as far as the manifest allows.
    pub fn maybe_fold(&self) -> Result<(), StoreError> {
        let target = self
            .plan
            .fold_target
            .load(Ordering::SeqCst)
            .max(self.announced.get());
        // Every few epochs: a key that changes every epoch is then written
        // into the base once per fold instead of once per epoch.
        if target >= self.folded.get() + FOLD_EVERY {
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
