//! Checkpointing while a job runs: the plan made before the workers start,
//! and each worker's handle on its store.
//!
//! Where a run starts is decided by [`plan`]: it verifies the manifest's
//! complete epochs with [`verify`] — the function
//! `weir-checkpoint verify` reports — and restores the epoch that decides,
//! so a job never restores an epoch the tool calls unusable.
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

use super::manifest::{self, Manifest, ManifestError, Step, StepKind};
use super::protocol::{RestoreDecision, Unusable};
use super::store::{StateStore, StoreError};
use super::verify::{open_generation, verify};
use super::writer::Completed;
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
    /// from its broadcast. Exactly-once sinks publish through it.
    completed: AtomicU64,
    /// Output directories of exactly-once sinks, published at the end.
    staged_dirs: Mutex<Vec<PathBuf>>,
}

impl Plan {
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

    /// Registers an exactly-once sink's output directory, published when
    /// the run finishes.
    pub(crate) fn register_staged(&self, dir: PathBuf) {
        let mut dirs = lock(&self.staged_dirs);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }

    /// The clean end of a run: records it as finished in the manifest, then
    /// publishes every staged part (a kill in between leaves parts that the
    /// finished checkpoint covers; see [`super::staged`]). Process 0 only.
    pub fn finish(&self) -> Result<(), String> {
        {
            let mut m = lock(&self.manifest);
            m.finished = true;
            manifest::write(&self.dir, &m).map_err(|e| {
                format!(
                    "recording the finished run in {}: {e}",
                    manifest::path(&self.dir).display()
                )
            })?;
        }
        for dir in lock(&self.staged_dirs).iter() {
            super::staged::publish_through(dir, u64::MAX)?;
        }
        Ok(())
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

/// Decides where a run starts. `fresh` ignores (and clears) what is there.
pub fn plan(
    dir: &Path,
    backend: Arc<dyn Backend>,
    keep: usize,
    fresh: bool,
    workers: usize,
) -> Result<Plan, ConfigError> {
    plan_for(dir, backend, keep, fresh, workers, 0..workers, None)
}

/// [`plan`] for one process of a cluster, which clears only the stores of
/// its own workers (`local`), so processes never delete each other's files;
/// `restore` asks for one complete epoch instead of the newest.
pub fn plan_for(
    dir: &Path,
    backend: Arc<dyn Backend>,
    keep: usize,
    fresh: bool,
    workers: usize,
    local: std::ops::Range<usize>,
    restore: Option<u64>,
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
        finished: false,
    };
    let clear = |generation: u64| clear_generation(dir, generation, workers, local.clone());
    let first_process = local.start == 0;
    let fresh_plan = |generation: u64, skipped| -> Result<Plan, ConfigError> {
        clear(generation)?;
        if first_process {
            // Nothing restores from older generations any more.
            remove_generations_before(dir, generation);
        }
        Ok(Plan {
            dir: dir.to_path_buf(),
            backend: Arc::clone(&backend),
            keep,
            generation,
            restore: None,
            manifest: Mutex::new(empty(generation)),
            skipped,
            fold_target: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            staged_dirs: Mutex::new(Vec::new()),
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
    if let Some(wanted) = restore {
        if !existing.complete.iter().any(|e| e.epoch == wanted) {
            let listed: Vec<String> = existing
                .complete
                .iter()
                .map(|e| e.epoch.to_string())
                .collect();
            return Err(ConfigError::new(format!(
                "--restore {wanted}: {} holds no complete checkpoint {wanted} (complete: {})",
                dir.display(),
                if listed.is_empty() {
                    "none".to_string()
                } else {
                    listed.join(", ")
                }
            )));
        }
    } else if existing.finished {
        // Nothing to resume: run again from the start (exactly-once sinks
        // replace the finished run's output).
        return fresh_plan(existing.generation + 1, Vec::new());
    }
    // The candidates (one, with --restore), verified as `weir-checkpoint
    // verify` does: by the same function.
    let candidates = Manifest {
        complete: existing
            .complete
            .iter()
            .filter(|e| restore.is_none_or(|wanted| e.epoch == wanted))
            .cloned()
            .collect(),
        ..existing.clone()
    };
    let decision = {
        let stores = open_generation(dir, existing.generation, existing.workers, backend.as_ref());
        verify(&candidates, &stores).restore
    };
    match decision {
        RestoreDecision::Fresh => fresh_plan(existing.generation + 1, Vec::new()),
        RestoreDecision::NothingUsable { skipped } => Err(ConfigError::new(format!(
            "no checkpoint in {} verifies ({}): pass --fresh to start over",
            dir.display(),
            describe_skipped(&skipped)
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
            manifest.finished = false;
            if !same {
                manifest.generation = generation;
                manifest.workers = workers;
                manifest.complete.clear();
                clear(generation)?;
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
                completed: AtomicU64::new(0),
                staged_dirs: Mutex::new(Vec::new()),
            })
        }
    }
}

/// Why epochs were skipped, one clause per run of epochs skipped for the
/// same reason (damage to old state makes every newer epoch unloadable with
/// one error).
fn describe_skipped(skipped: &[(u64, Unusable)]) -> String {
    let mut runs: Vec<(Vec<String>, String)> = Vec::new();
    for (epoch, why) in skipped {
        let why = why.to_string();
        match runs.last_mut() {
            Some((epochs, last)) if *last == why => epochs.push(epoch.to_string()),
            _ => runs.push((vec![epoch.to_string()], why)),
        }
    }
    runs.iter()
        .map(|(epochs, why)| {
            let s = if epochs.len() == 1 { "" } else { "s" };
            format!("epoch{s} {}: {why}", epochs.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Removes what an abandoned run left in a generation this run will write:
/// the stores of this process's workers (`local`), and, in the process of
/// worker 0, stores of workers beyond `workers`.
fn clear_generation(
    dir: &Path,
    generation: u64,
    workers: usize,
    local: std::ops::Range<usize>,
) -> Result<(), ConfigError> {
    let gen_dir = dir.join(format!("gen-{generation}"));
    let Ok(entries) = std::fs::read_dir(&gen_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let worker = name
            .to_str()
            .and_then(|n| n.strip_prefix("worker-"))
            .and_then(|w| w.parse::<usize>().ok());
        let ours = worker.is_some_and(|w| local.contains(&w) || (local.start == 0 && w >= workers));
        if ours {
            std::fs::remove_dir_all(entry.path()).map_err(|e| {
                ConfigError::new(format!("cannot clear {}: {e}", entry.path().display()))
            })?;
        }
    }
    Ok(())
}

/// Deletes the store generations older than `generation` (best effort: a
/// leftover only costs disk).
fn remove_generations_before(dir: &Path, generation: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|g| g.parse::<u64>().ok())
            .is_some_and(|g| g < generation);
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
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
        })
    }

    /// Records a fold target announced by the manifest writer.
    pub(crate) fn allow_fold(&self, target: u64) {
        self.announced.set(self.announced.get().max(target));
    }

    /// Records what the manifest writer announced: an epoch recorded
    /// complete, and how far to fold. Returns whether this worker's process
    /// learned of the epoch now (it had not recorded or heard of it).
    pub(crate) fn learn_complete(&self, done: Completed) -> bool {
        self.allow_fold(done.fold_target);
        self.learned
            .set(self.learned.get().max(done.epoch.saturating_add(1)));
        self.plan.mark_complete(done.epoch)
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::checkpoint::fixtures::{sample, Failing};
    use crate::checkpoint::layout;
    use crate::checkpoint::store::{Batch, MemoryStore};
    use crate::checkpoint::verify::Verification;
    use crate::ids::SplitId;

    /// In-memory stores by path; the one at `bad.0` fails to read key `bad.1`.
    struct Damaged {
        stores: HashMap<PathBuf, MemoryStore>,
        bad: (PathBuf, Vec<u8>),
    }

    impl Backend for Damaged {
        fn open(&self, _: &Path) -> Result<Box<dyn StateStore>, StoreError> {
            Err(StoreError("planning opens stores read-only".into()))
        }
        fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
            let store = self
                .stores
                .get(path)
                .cloned()
                .ok_or_else(|| StoreError(format!("no store at {}", path.display())))?;
            if path == self.bad.0 {
                Ok(Box::new(Failing {
                    inner: store,
                    bad: self.bad.1.clone(),
                }))
            } else {
                Ok(Box::new(store))
            }
        }
    }

    /// The sample checkpoint in a directory, worker `worker`'s store
    /// holding `bad` and failing to read it: what a job's plan decides, and
    /// what the tool's verification of the directory says.
    fn plan_damaged(
        tag: &str,
        worker: usize,
        bad: Vec<u8>,
    ) -> (Result<Plan, ConfigError>, Verification) {
        let (manifest, mut stores) = sample();
        let dir = std::env::temp_dir().join(format!("weir-plan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut batch = Batch::default();
        batch.put(&bad, b"x");
        stores[worker].write(&batch).expect("write");
        let mut by_path = HashMap::new();
        for (w, store) in stores.into_iter().enumerate() {
            let path = store_path(&dir, 0, w);
            std::fs::create_dir_all(&path).expect("dir");
            by_path.insert(path, store);
        }
        manifest::write(&dir, &manifest).expect("manifest");
        let backend = Arc::new(Damaged {
            stores: by_path,
            bad: (store_path(&dir, 0, worker), bad),
        });
        let tool =
            super::super::verify::verify(&manifest, &open_generation(&dir, 0, 2, backend.as_ref()));
        let planned = plan(&dir, backend, 3, false, 2);
        let _ = std::fs::remove_dir_all(&dir);
        (planned, tool)
    }

    #[test]
    fn a_restore_falls_back_from_an_epoch_the_tool_calls_unloadable() {
        // A position no flush of epoch 3 covers, which its restore reads.
        let bad = layout::position_key(3, "elsewhere", SplitId(0));
        let (planned, tool) = plan_damaged("fallback", 1, bad);
        let verdict = &tool.verdicts[2];
        assert!(verdict.epoch == 3 && verdict.problems.is_empty() && !verdict.ok());
        let plan = planned.expect("a plan");
        assert_eq!(plan.restore.as_ref().map(|r| r.epoch), Some(2));
        assert!(matches!(
            plan.skipped.as_slice(),
            [(3, Unusable::Unloadable { worker: 1, .. })]
        ));
        assert!(matches!(
            tool.restore,
            RestoreDecision::Restore { epoch: 2, .. }
        ));
    }

    #[test]
    fn a_job_refuses_to_start_when_no_epoch_loads() {
        // Epoch 1's delta, which every restore loads.
        let bad = layout::delta_key(1, "counts", KeyGroup(3), &[layout::ENTRY_KEY, b'a']);
        let (planned, tool) = plan_damaged("refuse", 0, bad);
        assert!(tool.verdicts.iter().all(|v| !v.ok()));
        assert!(matches!(
            tool.restore,
            RestoreDecision::NothingUsable { .. }
        ));
        let why = planned.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            why.contains("no checkpoint") && why.contains("--fresh") && why.contains("Corruption"),
            "{why}"
        );
    }
}
