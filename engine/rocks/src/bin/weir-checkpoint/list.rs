//! `weir-checkpoint list`: every epoch found, in the manifest and in the
//! stores, with its status and what it wrote on each worker, and the stores
//! with their sizes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use weir::backend::inspect::{self, EpochListing, EpochStatus, StoreSummary};
use weir::backend::verify;
use weir::backend::Backend;

use crate::format::{
    bytes, epochs_line, load_error, missing_line, relative, restore_line, steps_line,
};
use crate::{open, read_manifest, Outcome};

/// `weir-checkpoint list`.
pub(crate) fn run(out: &mut String, dir: &Path, backend: &dyn Backend) -> Outcome {
    let m = read_manifest(dir)?;
    let stores = open(dir, &m, backend);
    let mut code = 0;
    let mut summaries: BTreeMap<usize, StoreSummary> = BTreeMap::new();
    let mut store_errors: BTreeMap<usize, String> = BTreeMap::new();
    for s in &stores {
        let summary = match &s.store {
            Ok(store) => inspect::summarize(store.as_ref()),
            Err(e) => Err(e.clone()),
        };
        match summary {
            Ok(summary) => {
                summaries.insert(s.worker, summary);
            }
            Err(e) => {
                store_errors.insert(s.worker, e.to_string());
                code = 1;
            }
        }
    }
    let verification = verify::verify(&m, &stores);
    let listing = inspect::list(&m, &verification, &summaries);

    let _ = writeln!(out, "checkpoint  {}", dir.display());
    let _ = writeln!(
        out,
        "manifest    format {}, generation {}, {} worker{}, {}{}",
        m.format,
        m.generation,
        m.workers,
        if m.workers == 1 { "" } else { "s" },
        epochs_line(&m),
        if verification.finished {
            ", the run finished"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "steps       {}", steps_line(&m));
    let _ = writeln!(out, "restore     {}", restore_line(&verification));
    let _ = writeln!(out);

    // Stores.
    let _ = writeln!(
        out,
        "{:<20} {:>10} {:>10} {:>11}  BASE FOLDED",
        "STORE", "ON DISK", "BASE KEYS", "BASE BYTES"
    );
    for s in &stores {
        let name = relative(dir, &s.path);
        let size = bytes(inspect::disk_size(&s.path));
        match (summaries.get(&s.worker), store_errors.get(&s.worker)) {
            (Some(sum), _) => {
                let folded = match sum.folded_through {
                    Some(f) => format!("through epoch {f}"),
                    None => "no".into(),
                };
                let _ = writeln!(
                    out,
                    "{:<20} {:>10} {:>10} {:>11}  {}",
                    name,
                    size,
                    sum.base.keys,
                    bytes(sum.base.bytes),
                    folded
                );
                if sum.unknown.keys > 0 {
                    let _ = writeln!(
                        out,
                        "{:<20} {} keys ({}) the checkpoint layout does not make",
                        "",
                        sum.unknown.keys,
                        bytes(sum.unknown.bytes)
                    );
                }
            }
            (None, Some(e)) => {
                let _ = writeln!(out, "{name:<20} {size:>10}  UNREADABLE: {e}");
            }
            (None, None) => {}
        }
    }
    if let Ok(generations) = inspect::generations_on_disk(dir) {
        for (generation, workers) in generations.iter().filter(|(g, _)| **g != m.generation) {
            for w in workers {
                let path = weir::backend::store_path(dir, *generation, *w);
                let _ = writeln!(
                    out,
                    "{:<20} {:>10}  (generation {generation}, not the manifest's: not restored from)",
                    relative(dir, &path),
                    bytes(inspect::disk_size(&path)),
                );
            }
        }
    }
    let _ = writeln!(out);

    // Epochs.
    let workers: Vec<usize> = (0..m.workers).collect();
    let mut header = format!(
        "{:>6}  {:<22} {:>8} {:>11}",
        "EPOCH", "STATUS", "KEYS", "BYTES"
    );
    for w in &workers {
        let _ = write!(header, "  {:>20}", format!("WORKER {w} KEYS/BYTES"));
    }
    let _ = writeln!(out, "{}", header.trim_end());
    if listing.is_empty() {
        let _ = writeln!(out, "{:>6}  (no epoch in the manifest or the stores)", "-");
    }
    for epoch in &listing {
        list_epoch(out, epoch, &workers);
    }
    Ok(code)
}

fn list_epoch(out: &mut String, epoch: &EpochListing, workers: &[usize]) {
    let written = epoch.written();
    let mut line = format!(
        "{:>6}  {:<22} {:>8} {:>11}",
        epoch.epoch,
        epoch.status.label(),
        written.keys,
        bytes(written.bytes)
    );
    for w in workers {
        let cell = match epoch.workers.get(w) {
            Some(f) => {
                let v = f.written();
                format!("{} / {}", v.keys, bytes(v.bytes))
            }
            None => "?".into(),
        };
        let _ = write!(line, "  {cell:>20}");
    }
    let _ = writeln!(out, "{}", line.trim_end());
    let detail = match &epoch.status {
        EpochStatus::Unusable {
            problems,
            load_errors,
        } => problems
            .iter()
            .map(ToString::to_string)
            .chain(load_errors.iter().map(load_error))
            .collect::<Vec<_>>(),
        EpochStatus::Torn { missing } => vec![missing_line(missing)],
        EpochStatus::Restorable
        | EpochStatus::Unrecorded
        | EpochStatus::Retired
        | EpochStatus::Undetermined => Vec::new(),
    };
    for d in detail.iter().take(4) {
        let _ = writeln!(out, "{:>6}  - {d}", "");
    }
    if detail.len() > 4 {
        let _ = writeln!(out, "{:>6}  - and {} more", "", detail.len() - 4);
    }
}
