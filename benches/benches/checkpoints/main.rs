//! Checkpoints on RocksDB: what they cost a running job, what each epoch
//! writes, and how long a restore of about 1 GB of state takes.
//!
//! Isolates three things, each against its own reference:
//!
//! 1. **Throughput cost.** The fraud-like job (per card, count and spend in a
//!    5 min sliding window every 1 min) with checkpoints every 1 s on
//!    RocksDB, against the same job with the same 1 s epochs and no
//!    checkpoint directory: same records, same output (checked equal), so
//!    the ratio is what checkpointing costs. Goal: under 10 %. Two key
//!    counts: few cards (each epoch rewrites a small state) and many (each
//!    epoch changes a large part of a large state).
//! 2. **What each epoch writes as state grows.** The job at a fixed rate
//!    over far more cards than it sees per epoch, with no window firing, so
//!    the state grows every epoch by about as many keys as the epoch
//!    changes. Measured through a `Backend` that wraps `weir_rocks::Rocks`
//!    and times every store `write()` (a chunk of one step's flush on one
//!    worker, the last one synced with the flush's marker) into an HDR histogram and counts its bytes by
//!    epoch. Only changed keys are written, so bytes per epoch follow the
//!    keys changed, not the total state (the correlation of both is shown).
//! 3. **Restore time.** A job with large per-key state (`CK_RESTORE_MB` of
//!    values) writes it through the engine into a 2-worker checkpoint; then
//!    jobs start on it and the time from the start until every worker has
//!    its key groups loaded (plan, open, range scans, install) is measured,
//!    on 2 workers (each reads its own store) and on 1 (rescaled: it reads
//!    both). Goal: under 10 s. The page cache is warm (just written).
//!
//! Run: `cargo bench -p weir-benches --bench checkpoints` (release build).
//! Sizes come from the environment: `CK_KEYS` (card counts for part 1,
//! default `10000,1000000`), `CK_SECONDS` (part 1 runs are sized to about
//! this long without checkpoints, default 4) or `CK_EVENTS` (records per
//! run), `CK_RUNS` (runs per mode, default 3), `CK_GROW_KEYS`,
//! `CK_GROW_RATE`, `CK_GROW_SECONDS` (part 2: cards, records per second,
//! seconds; default 20 000 000, 100 000, 15), `CK_RESTORE_MB` (default
//! 1024; 0 skips part 3), `CK_VALUE_BYTES` (state per key in part 3,
//! default 1000), `CK_WORKERS` (default 2), `CK_DIR` (scratch directory,
//! default in the system temp dir; removed at the end), `CK_EPOCH_MS` (the
//! epoch and so checkpoint interval of parts 1 and 2, default 1000).
//!
//! The modules, one concern each: [`stats`] (environment knobs, histograms,
//! sizes), [`recording`] (the backend that times and counts every store
//! write), [`fraud_job`] (the job of parts 1 and 2), [`throughput`] (part 1),
//! [`epoch_writes`] (part 2), [`state_job`] (the large-state job of part 3)
//! and [`restore`] (part 3).

mod epoch_writes;
mod fraud_job;
mod recording;
mod restore;
mod state_job;
mod stats;
mod throughput;

use std::path::PathBuf;

use stats::env;

fn main() {
    // Records per throughput run; unset: sized to CK_SECONDS without checkpoints.
    let events = std::env::var("CK_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok());
    let seconds = env("CK_SECONDS", 4).max(1) as f64;
    let keys: Vec<u64> = std::env::var("CK_KEYS")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .filter_map(|k| k.trim().replace('_', "").parse().ok())
        .collect();
    let grow_keys = env("CK_GROW_KEYS", 20_000_000);
    let grow_rate = env("CK_GROW_RATE", 100_000).max(1);
    let grow_seconds = env("CK_GROW_SECONDS", 15).max(1);
    let runs = env("CK_RUNS", 3).max(1) as usize;
    let workers = env("CK_WORKERS", 2).max(1) as usize;
    let restore_mb = env("CK_RESTORE_MB", 1024);
    let value_bytes = env("CK_VALUE_BYTES", 1000).max(1);
    let scratch: PathBuf = std::env::var_os("CK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("weir-bench-checkpoints-{}", std::process::id()))
        });
    let _ = std::fs::create_dir_all(&scratch);
    println!(
        "checkpoints: RocksDB backend, scratch directory {}",
        scratch.display()
    );
    throughput::throughput(events, seconds, &keys, workers, runs, &scratch);
    epoch_writes::epoch_writes(grow_keys, grow_rate, grow_seconds, workers, &scratch);
    if restore_mb > 0 {
        restore::restore(restore_mb, value_bytes, &scratch);
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
