//! `weir-checkpoint inspect`: the state an epoch restores — each operator's
//! keys per key group and buffered records, each source split's position.

use std::fmt::Write as _;
use std::path::Path;

use weir::backend::inspect::{self, OperatorState};
use weir::backend::manifest::{self, Manifest, StepKind};
use weir::backend::verify::{self, Verification};
use weir::backend::Backend;

use crate::format::{bytes, hex_words, load_error};
use crate::{open, read_manifest, Failure, Outcome};

fn status_of(m: &Manifest, v: &Verification, epoch: u64) -> String {
    match v.verdicts.iter().find(|x| x.epoch == epoch) {
        Some(x) if x.ok() => "complete, restorable".into(),
        Some(x) => format!(
            "complete, but does not verify: {}",
            x.problems
                .first()
                .map(ToString::to_string)
                .or_else(|| x.load_errors.first().map(load_error))
                .unwrap_or_default()
        ),
        None if m.complete.iter().any(|e| e.epoch > epoch) => {
            "not a complete checkpoint (older than the newest one)".into()
        }
        None => "not a complete checkpoint".into(),
    }
}

/// `weir-checkpoint inspect`.
pub(crate) fn run(
    out: &mut String,
    dir: &Path,
    backend: &dyn Backend,
    epoch: Option<u64>,
    all: bool,
    with_keys: bool,
) -> Outcome {
    let m = read_manifest(dir)?;
    let stores = open(dir, &m, backend);
    let Some(epoch) = epoch.or_else(|| m.complete.iter().map(|e| e.epoch).max()) else {
        return Err(Failure(
            1,
            format!(
                "{} records no complete epoch: pass --epoch E to look at one anyway",
                manifest::path(dir).display()
            ),
        ));
    };
    let verification = verify::verify(&m, &stores);
    let _ = writeln!(out, "checkpoint  {}", dir.display());
    let _ = writeln!(
        out,
        "epoch       {epoch}: {}",
        status_of(&m, &verification, epoch)
    );
    let _ = writeln!(
        out,
        "stores      generation {}, {} worker{}",
        m.generation,
        m.workers,
        if m.workers == 1 { "" } else { "s" }
    );

    // Operators: the manifest's, and any other found in the stores.
    let mut operators: Vec<(String, String)> = m
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::State)
        .map(|s| (s.name.clone(), format!("state v{}", s.version)))
        .collect();
    let mut sources: Vec<(String, String)> = m
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Source)
        .map(|s| (s.name.clone(), format!("source v{}", s.version)))
        .collect();
    for s in &stores {
        if let Ok(store) = &s.store {
            if let Ok(summary) = inspect::summarize(store.as_ref()) {
                for op in summary.operators {
                    if !operators.iter().any(|(n, _)| *n == op) {
                        operators.push((op, "not in the manifest".into()));
                    }
                }
                for src in summary.sources {
                    if !sources.iter().any(|(n, _)| *n == src) {
                        sources.push((src, "not in the manifest".into()));
                    }
                }
            }
        }
    }
    for (name, what) in &operators {
        let _ = writeln!(out);
        let _ = writeln!(out, "operator {name} ({what})");
        let state = inspect::operator_state(&stores, name, epoch, with_keys)
            .map_err(|e| Failure(1, format!("operator {name} at epoch {epoch}: {e}")))?;
        print_operator(out, &state, all, with_keys);
    }
    let positions = inspect::source_positions(&stores, epoch)
        .map_err(|e| Failure(1, format!("source positions at epoch {epoch}: {e}")))?;
    for (name, what) in &sources {
        let _ = writeln!(out);
        let _ = writeln!(out, "source {name} ({what})");
        let splits: Vec<_> = positions.iter().filter(|p| p.source == *name).collect();
        if splits.is_empty() {
            let _ = writeln!(out, "  no position recorded at or before epoch {epoch}");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:>5}  {:>6}  {:>13}  {:>4}  {:>10}  READER POSITION (HEX, 8-BYTE WORDS)",
            "SPLIT", "WORKER", "WATERMARK MS", "DONE", "OFFSET"
        );
        for p in splits {
            match &p.position {
                Ok(pos) => {
                    let _ = writeln!(
                        out,
                        "  {:>5}  {:>6}  {:>13}  {:>4}  {:>10}  {}",
                        p.split.0,
                        p.worker,
                        pos.watermark,
                        if pos.done { "yes" } else { "no" },
                        pos.offset,
                        hex_words(&pos.reader)
                    );
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "  {:>5}  {:>6}  undecodable ({e}): {}",
                        p.split.0,
                        p.worker,
                        hex_words(&p.raw)
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Tables longer than this print only with --all.
const LIST_AT_MOST: usize = 32;

fn print_operator(out: &mut String, state: &OperatorState, all: bool, with_keys: bool) {
    let buffered_records: u64 = state.buffered.iter().filter_map(|b| b.records).sum();
    let buffered_bytes: u64 = state.groups.values().map(|g| g.buffered_bytes).sum();
    let per_group = match state.keys_per_group() {
        Some((lo, hi)) => format!(" ({lo} to {hi} per group)"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "  {} keys in {} key groups{per_group}, {} stored; {} buffered entries ({} records, {})",
        state.total_keys(),
        state.groups.values().filter(|g| g.keys > 0).count(),
        bytes(state.groups.values().map(|g| g.key_bytes).sum()),
        state.buffered.len(),
        buffered_records,
        bytes(buffered_bytes)
    );
    if state.untagged > 0 {
        let _ = writeln!(
            out,
            "  {} stored entries have an unknown tag byte",
            state.untagged
        );
    }
    let shared = state.shared_groups();
    if !shared.is_empty() {
        let _ = writeln!(
            out,
            "  key groups in more than one worker's store (a defect): {shared:?}"
        );
    }
    if state.groups.is_empty() {
        return;
    }
    if all || state.groups.len() <= LIST_AT_MOST {
        let _ = writeln!(
            out,
            "  {:>5}  {:>6}  {:>8}  {:>11}  {:>8}",
            "GROUP", "WORKER", "KEYS", "BYTES", "BUFFERED"
        );
        for (group, g) in &state.groups {
            let workers = g
                .workers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                out,
                "  {:>5}  {:>6}  {:>8}  {:>11}  {:>8}",
                group,
                workers,
                g.keys,
                bytes(g.key_bytes + g.buffered_bytes),
                g.buffered
            );
        }
    } else {
        let _ = writeln!(
            out,
            "  ({} key groups with keys or buffered records: --all lists each)",
            state.groups.len()
        );
    }
    if state.buffered.is_empty() {
        // Nothing more.
    } else if all || state.buffered.len() <= LIST_AT_MOST {
        let _ = writeln!(out, "  buffered records:");
        let _ = writeln!(
            out,
            "  {:>5}  {:>6}  {:>11}  {:>13}  {:>8}  {:>11}",
            "GROUP", "WORKER", "STAMP EPOCH", "STAMP MS", "RECORDS", "BYTES"
        );
        for b in &state.buffered {
            let (epoch, ms) = match b.stamp {
                Some((e, t)) => (e.to_string(), t.to_string()),
                None => ("?".into(), "?".into()),
            };
            let records = b.records.map_or("?".into(), |r| r.to_string());
            let _ = writeln!(
                out,
                "  {:>5}  {:>6}  {:>11}  {:>13}  {:>8}  {:>11}",
                b.group.0,
                b.worker,
                epoch,
                ms,
                records,
                bytes(b.bytes)
            );
        }
    } else {
        let _ = writeln!(
            out,
            "  ({} buffered entries: --all lists each)",
            state.buffered.len()
        );
    }
    if with_keys {
        let _ = writeln!(out, "  keys:");
        let _ = writeln!(
            out,
            "  {:>5}  {:>6}  {:>11}  KEY (HEX)",
            "GROUP", "WORKER", "STATE BYTES"
        );
        for k in &state.keys {
            let key: String = k.key.iter().map(|b| format!("{b:02x}")).collect();
            let _ = writeln!(
                out,
                "  {:>5}  {:>6}  {:>11}  {}",
                k.group.0,
                k.worker,
                k.state_len,
                if key.is_empty() { "-".into() } else { key }
            );
        }
    }
}
