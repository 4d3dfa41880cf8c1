//! `weir-checkpoint verify`: every complete epoch checked by
//! [`weir::backend::verify::verify`] — the check a job's restore makes —
//! one line each, and the epoch a restore uses.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use weir::backend::inspect::{self, EpochStatus};
use weir::backend::verify::{self, Problem};
use weir::backend::Backend;

use crate::format::{epochs_line, missing_line, restore_line};
use crate::{open, read_manifest, Outcome};

/// `weir-checkpoint verify`.
pub(crate) fn run(out: &mut String, dir: &Path, backend: &dyn Backend) -> Outcome {
    let m = read_manifest(dir)?;
    let stores = open(dir, &m, backend);
    let verification = verify::verify(&m, &stores);
    // Epochs flushed but not complete, from the markers alone.
    let mut marker_summaries = BTreeMap::new();
    for s in &stores {
        if let Ok(store) = &s.store {
            if let Ok(markers) = inspect::markers(store.as_ref()) {
                marker_summaries.insert(s.worker, inspect::marker_summary(markers));
            }
        }
    }
    let listing = inspect::list(&m, &verification, &marker_summaries);
    let _ = writeln!(
        out,
        "checkpoint  {} (generation {}, {} worker{}, {})",
        dir.display(),
        m.generation,
        m.workers,
        if m.workers == 1 { "" } else { "s" },
        epochs_line(&m)
    );
    let mut stores_failed = Vec::new();
    for s in &stores {
        if let Err(e) = &s.store {
            let _ = writeln!(out, "worker {}: store unreadable: {e}", s.worker);
            stores_failed.push(s.worker);
        }
    }
    // A store error repeats for every epoch: say it once.
    let mut said: BTreeMap<String, u64> = BTreeMap::new();
    let mut once = |epoch: u64, (what, error): (String, Option<String>)| match error {
        None => what,
        Some(error) => match said.get(&error) {
            Some(first) => format!("{what}: the same error as epoch {first}"),
            None => {
                said.insert(error.clone(), epoch);
                format!("{what}: {error}")
            }
        },
    };
    for epoch in &listing {
        let line = match &epoch.status {
            EpochStatus::Restorable => "ok".to_string(),
            EpochStatus::Unusable {
                problems,
                load_errors,
            } => {
                let all: Vec<(String, Option<String>)> = problems
                    .iter()
                    .map(|p| match &p.problem {
                        Problem::Unreadable(_) if stores_failed.contains(&p.worker) => (
                            format!("worker {} step {}: store unreadable (above)", p.worker, p.step),
                            None,
                        ),
                        Problem::Unreadable(error) => (
                            format!("worker {} step {}: store unreadable", p.worker, p.step),
                            Some(error.clone()),
                        ),
                        _ => (p.to_string(), None),
                    })
                    .chain(load_errors.iter().map(|(w, error)| {
                        (
                            format!("worker {w}: its flushes verify, but loading the epoch's state fails"),
                            Some(error.clone()),
                        )
                    }))
                    .collect();
                let more = all.len().saturating_sub(1);
                let mut line = all
                    .into_iter()
                    .next()
                    .map(|first| once(epoch.epoch, first))
                    .unwrap_or_default();
                if more > 0 {
                    let _ = write!(line, " (and {more} more)");
                }
                line
            }
            EpochStatus::Undetermined => {
                "not complete; a worker's store is unreadable, so whether it is torn is unknown"
                    .to_string()
            }
            EpochStatus::Torn { missing } => format!(
                "torn, not complete ({}): a restore discards it",
                missing_line(missing)
            ),
            EpochStatus::Unrecorded => {
                "flushed on every worker but not recorded complete: a restore does not use it"
                    .to_string()
            }
            EpochStatus::Retired => {
                "older than the epochs the manifest keeps (--keep-checkpoints): a restore does not use it"
                    .to_string()
            }
        };
        let _ = writeln!(out, "epoch {}: {line}", epoch.epoch);
    }
    let _ = writeln!(out, "restore would use {}", restore_line(&verification));
    if verification.newest_verifies() {
        Ok(0)
    } else {
        match m.complete.iter().map(|e| e.epoch).max() {
            Some(newest) => {
                let _ = writeln!(out, "the newest complete epoch, {newest}, does not verify");
            }
            None => {
                let _ = writeln!(out, "no complete epoch to verify");
            }
        }
        Ok(1)
    }
}
