//! Where a run starts, decided before the workers do: [`plan`] (and
//! [`plan_for`] for one process of a cluster) reads the manifest, verifies
//! its complete epochs with [`verify`] — the function `weir-checkpoint
//! verify` reports — and restores the epoch that decides, starts fresh, or
//! refuses to start. It also clears what an abandoned run left in the
//! generation this run writes.

use std::path::Path;
use std::sync::Arc;

use super::manifest::{self, Manifest, ManifestError};
use super::protocol::{RestoreDecision, Unusable};
use super::runtime::{Backend, Plan, RestoreFrom};
use super::verify::{open_generation, verify};
use crate::error::ConfigError;

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
        Ok(Plan::new(
            dir.to_path_buf(),
            Arc::clone(&backend),
            keep,
            generation,
            None,
            empty(generation),
            skipped,
        ))
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
            Ok(Plan::new(
                dir.to_path_buf(),
                backend,
                keep,
                generation,
                Some(RestoreFrom {
                    epoch,
                    generation: existing.generation,
                    workers: existing.workers,
                    steps: existing.steps.clone(),
                }),
                manifest,
                skipped,
            ))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::checkpoint::fixtures::{sample, Failing};
    use crate::checkpoint::layout;
    use crate::checkpoint::runtime::store_path;
    use crate::checkpoint::store::{Batch, MemoryStore, StateStore, StoreError};
    use crate::checkpoint::verify::Verification;
    use crate::ids::KeyGroup;
    use crate::ids::SplitId;
    use std::path::PathBuf;

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
