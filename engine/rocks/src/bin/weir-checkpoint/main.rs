//! `weir-checkpoint`: look into a weir checkpoint directory without
//! changing it: which epochs it holds, what state an epoch restores, and
//! whether the checkpoints verify. Stores are opened read-only with the
//! RocksDB backend; the logic is `weir::backend::inspect`, and whether
//! epochs verify is `weir::backend::verify`, the check a job's restore
//! makes.
//!
//! One module per command — `list`, `inspect`, `verify` — and `format` for
//! what they print alike (sizes, hex, the manifest's and the restore's
//! one-line summaries).

mod format;
mod inspect;
mod list;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use weir::backend::manifest::{self, Manifest, ManifestError};
use weir::backend::verify::WorkerStore;
use weir::backend::Backend;

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
pub(crate) struct Failure(pub(crate) u8, pub(crate) String);

pub(crate) type Outcome = Result<u8, Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let backend = weir_rocks::Rocks;
    let mut out = String::new();
    let result = match &cli.command {
        Command::List(dir) => list::run(&mut out, &dir.path(), &backend),
        Command::Inspect {
            dir,
            epoch,
            all,
            keys,
        } => inspect::run(&mut out, &dir.path(), &backend, *epoch, *all, *keys),
        Command::Verify(dir) => verify::run(&mut out, &dir.path(), &backend),
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
pub(crate) fn read_manifest(dir: &Path) -> Result<Manifest, Failure> {
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

pub(crate) fn open(dir: &Path, m: &Manifest, backend: &dyn Backend) -> Vec<WorkerStore> {
    weir::backend::verify::open_generation(dir, m.generation, m.workers, backend)
}
