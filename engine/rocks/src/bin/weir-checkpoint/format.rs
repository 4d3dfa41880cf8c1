//! What the commands print alike: sizes and bytes for people, and one-line
//! summaries of the manifest, the restore decision and missing flushes.

use std::path::Path;

use weir::backend::manifest::Manifest;
use weir::backend::verify::Verification;
use weir::backend::RestoreDecision;

pub(crate) fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Bytes for people: 812 B, 4.1 KiB, 3.27 MiB, 1.02 GiB.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.2} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub(crate) fn hex_words(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "-".into();
    }
    raw.chunks(8)
        .map(|w| w.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn steps_line(m: &Manifest) -> String {
    if m.steps.is_empty() {
        return "(none recorded yet)".into();
    }
    m.steps
        .iter()
        .map(|s| format!("{} ({} v{})", s.name, s.kind, s.version))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn epochs_line(m: &Manifest) -> String {
    let epochs: Vec<String> = m.complete.iter().map(|e| e.epoch.to_string()).collect();
    match epochs.len() {
        0 => "no complete epoch".into(),
        1 => format!("1 complete epoch ({})", epochs.join(", ")),
        n => format!("{n} complete epochs ({})", epochs.join(", ")),
    }
}

pub(crate) fn restore_line(v: &Verification) -> String {
    let decision = match &v.restore {
        RestoreDecision::Fresh => "none: no complete epoch, a job starts from nothing".to_string(),
        RestoreDecision::Restore { epoch, skipped } if skipped.is_empty() => {
            format!("epoch {epoch} (the newest complete epoch)")
        }
        RestoreDecision::Restore { epoch, skipped } => format!(
            "epoch {epoch} (newer complete epochs do not verify or load: {})",
            skipped
                .iter()
                .map(|(e, _)| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RestoreDecision::NothingUsable { .. } => {
            "none: no complete epoch verifies and loads, a job refuses to start (--fresh starts over)"
                .to_string()
        }
    };
    if v.finished {
        format!("none: the run finished, a job starts over (otherwise: {decision})")
    } else {
        decision
    }
}

pub(crate) fn missing_line(missing: &[(Option<usize>, String)]) -> String {
    let mut parts: Vec<String> = missing
        .iter()
        .take(6)
        .map(|(w, step)| match w {
            Some(w) => format!("worker {w} step {step}"),
            None => format!("step {step} on any worker"),
        })
        .collect();
    if missing.len() > 6 {
        parts.push(format!("{} more", missing.len() - 6));
    }
    format!("no flush marker from {}", parts.join(", "))
}

pub(crate) fn load_error((worker, error): &(usize, String)) -> String {
    format!("worker {worker}: its flushes verify, but loading the epoch's state fails: {error}")
}
