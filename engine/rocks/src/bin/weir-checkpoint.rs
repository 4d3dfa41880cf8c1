//! `weir-checkpoint`: look into a weir checkpoint directory without
//! changing it: which epochs it holds, what state an epoch restores, and
//! whether the checkpoints verify. Stores are opened read-only with the
//! RocksDB backend; the logic is `weir::checkpoint::inspect`, and whether
//! epochs verify is `weir::checkpoint::verify`, the check a job's restore
//! makes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use weir::checkpoint::inspect::{self, EpochListing, EpochStatus, OperatorState, StoreSummary};
use weir::checkpoint::manifest::{self, Manifest, ManifestError, StepKind};
use weir::checkpoint::protocol::RestoreDecision;
use weir::checkpoint::runtime::Backend;
use weir::checkpoint::verify::{self, Problem, Verification, WorkerStore};

/// Inspect and verify a weir checkpoint directory (read-only).
///
/// A job run with `--checkpoint-dir DIR` keeps `DIR/manifest.json` (the
/// complete epochs, with each flush's checksum) and one RocksDB store per
/// worker in `DIR/gen-G/worker-W/`. This tool only reads them (stores are
/// opened read-only), so it is safe to run on the directory of a running
/// job; it then sees a snapshot, and a compaction running meanwhile can make
/// a read fail (run it again).
///
/// Exit status: 0 when all is well; 1 when something the command checks is
/// not (see each command); 2 when the manifest is missing or corrupt or the
/// directory cannot be read (and for bad arguments).
#[derive(Parser, Debug)]
#[command(name = "weir-checkpoint", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every epoch found, in the manifest and in the stores.
    ///
    /// For each epoch: whether it is complete (recorded in the manifest)
    /// and restorable (its checksums verify), or torn (flushed by some
    /// workers or steps only) or flushed but not recorded; and the keys
    /// and bytes (key + value) of the state deltas and source positions it
    /// wrote on each worker. Also the store generation, workers, steps, the
    /// on-disk size of each store, and how far its base was folded. Exit
    /// status 1 when a store cannot be read.
    List(Dir),
    /// Show the state an epoch restores.
    ///
    /// Per operator: the key groups holding state, keys per key group
    /// (a table of at most 32 groups, or any number with --all), stored
    /// bytes, and the records buffered at the epoch. Per source: each
    /// split's position (watermark, done, record offset, and the reader's
    /// own bytes in hex). Exit status 1 when the epoch's state cannot be
    /// read (a store is unreadable, or the base was folded past the epoch).
    Inspect {
        #[command(flatten)]
        dir: Dir,
        /// The epoch (default: the newest complete one).
        #[arg(long, value_name = "E")]
        epoch: Option<u64>,
        /// List every key group and buffered entry, however many (by
        /// default a table longer than 32 rows is left out).
        #[arg(long)]
        all: bool,
        /// List every key (its encoding in hex) with the size of its state.
        #[arg(long)]
        keys: bool,
    },
    /// Verify every complete epoch against the manifest and the markers.
    ///
    /// Recomputes the checksum of what each worker's store holds for each
    /// flush of each complete epoch and compares it with the one its flush
    /// marker recorded and the one the manifest recorded. Then reads
    /// everything a restore of the newest epoch that passes loads (the base
    /// and every older delta, which no checksum covers): an epoch whose
    /// state cannot be read is unusable too. A job's restore makes the same
    /// checks and uses the epoch this names. Prints one line per epoch (and
    /// for epochs flushed but not complete) and the epoch a restore would
    /// use. Exit status 0 when the newest complete epoch verifies and its
    /// state can be read, 1 when not (or when there is no complete epoch).
    Verify(Dir),
}

/// Where the checkpoint is.
#[derive(Args, Debug)]
struct Dir {
    /// The checkpoint directory (what the job was given as --checkpoint-dir).
    #[arg(long = "checkpoint-dir", value_name = "DIR", conflicts_with = "dir")]
    checkpoint_dir: Option<PathBuf>,
    /// The checkpoint directory, as a positional argument.
    #[arg(value_name = "DIR", required_unless_present = "checkpoint_dir")]
    dir: Option<PathBuf>,
}

impl Dir {
    fn path(&self) -> PathBuf {
        self.checkpoint_dir
            .clone()
            .or_else(|| self.dir.clone())
            .unwrap_or_default()
    }
}

/// A failure that ends the command: its exit status and one line.
struct Failure(u8, String);

type Outcome = Result<u8, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let backend = weir_rocks::Rocks;
    let mut out = String::new();
    let result = match &cli.command {
        Command::List(dir) => list(&mut out, &dir.path(), &backend),
        Command::Inspect {
            dir,
            epoch,
            all,
            keys,
        } => inspect_cmd(&mut out, &dir.path(), &backend, *epoch, *all, *keys),
        Command::Verify(dir) => verify_cmd(&mut out, &dir.path(), &backend),
    };
    print!("{out}");
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure(code, message)) => {
            eprintln!("weir-checkpoint: {message}");
            ExitCode::from(code)
        }
    }
}

/// Reads the manifest, or says in one line why not (exit status 2).
fn read_manifest(dir: &Path) -> Result<Manifest, Failure> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(Failure(2, format!("{} is not a directory", dir.display()))),
        Err(e) => return Err(Failure(2, format!("cannot read {}: {e}", dir.display()))),
    }
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(Failure(2, format!("cannot read {}: {e}", dir.display())));
    }
    manifest::read(dir).map_err(|e| match e {
        ManifestError::Missing => Failure(
            2,
            format!(
                "{} has no manifest ({}): not a checkpoint directory, or no epoch completed yet",
                dir.display(),
                manifest::FILE
            ),
        ),
        ManifestError::Corrupt(why) => Failure(
            2,
            format!(
                "the manifest {} is corrupt: {why}",
                manifest::path(dir).display()
            ),
        ),
    })
}

fn open(dir: &Path, m: &Manifest, backend: &dyn Backend) -> Vec<WorkerStore> {
    verify::open_generation(dir, m.generation, m.workers, backend)
}

fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// Bytes for people: 812 B, 4.1 KiB, 3.27 MiB, 1.02 GiB.
fn bytes(n: u64) -> String {
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

fn hex_words(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "-".into();
    }
    raw.chunks(8)
        .map(|w| w.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

fn steps_line(m: &Manifest) -> String {
    if m.steps.is_empty() {
        return "(none recorded yet)".into();
    }
    m.steps
        .iter()
        .map(|s| format!("{} ({} v{})", s.name, s.kind, s.version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn epochs_line(m: &Manifest) -> String {
    let epochs: Vec<String> = m.complete.iter().map(|e| e.epoch.to_string()).collect();
    match epochs.len() {
        0 => "no complete epoch".into(),
        1 => format!("1 complete epoch ({})", epochs.join(", ")),
        n => format!("{n} complete epochs ({})", epochs.join(", ")),
    }
}

fn restore_line(v: &Verification) -> String {
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

fn missing_line(missing: &[(Option<usize>, String)]) -> String {
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

fn list(out: &mut String, dir: &Path, backend: &dyn Backend) -> Outcome {
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
                let path = weir::checkpoint::runtime::store_path(dir, *generation, *w);
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

fn load_error((worker, error): &(usize, String)) -> String {
    format!("worker {worker}: its flushes verify, but loading the epoch's state fails: {error}")
}

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

fn inspect_cmd(
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

fn verify_cmd(out: &mut String, dir: &Path, backend: &dyn Backend) -> Outcome {
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
