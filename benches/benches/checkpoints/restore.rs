//! Part 3, restore time: the large-state job writes about `CK_RESTORE_MB`
//! through the engine into a 2-worker checkpoint; the plan is timed alone,
//! then restores on 2 workers and on 1 (rescaled) until every worker has
//! its state.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::backend::manifest;
use weir::backend::{plan, store_path, Backend};

use crate::recording::Recording;
use crate::state_job::{blobs_job, KeysSource};
use crate::stats::{dir_size, mib, quantiles};

struct Restored {
    /// From the call to `weir::run` until every worker had its state.
    loaded: Duration,
    /// The whole run (a rescale also writes the state into its new
    /// generation before it stops).
    run: Duration,
    keys: u64,
    bytes: u64,
}

pub(crate) fn restore(mb: u64, value_bytes: u64, scratch: &Path) {
    let keys = (mb * 1024 * 1024 / value_bytes.max(1)).max(1);
    println!(
        "\n3. restore: {keys} keys x {value_bytes} B of state = {:.0} MiB of values, \
         written by a 2-worker job",
        mib(keys * value_bytes)
    );
    let dir = scratch.join("restore");
    let _ = std::fs::remove_dir_all(&dir);
    let source = KeysSource {
        keys,
        splits: 2,
        per_epoch: 25_000,
        dir: dir.clone(),
        opened_at_end: Arc::new(Mutex::new(Vec::new())),
    };
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let recording = Recording::new(false);
    let wrote = blobs_job(
        &dir,
        2,
        source.clone(),
        value_bytes as usize,
        &counters,
        recording.handle(),
    );
    let log = recording.take();
    let written: u64 = log.epochs.values().map(|e| e.bytes).sum();
    let m = manifest::read(&dir).expect("the state job left a manifest");
    let epoch = m
        .complete
        .last()
        .map(|e| e.epoch)
        .expect("a complete epoch");
    let disk = dir_size(&dir);
    assert_eq!(epoch, source.last_epoch(), "the last epoch is complete");
    println!(
        "   written in {:.1} s: {} epochs, {:.0} MiB through the store, \
         {:.0} MiB on disk; newest complete epoch {epoch}",
        wrote.as_secs_f64(),
        log.epochs.len(),
        mib(written),
        mib(disk)
    );
    if let Some(h) = &log.flush_micros {
        println!("   its flush writes: {} ms", quantiles(h, 1e3));
    }

    // The plan alone: read the manifest, verify the newest epoch.
    let started = Instant::now();
    let planned = plan(&dir, Arc::new(weir_rocks::Rocks), 3, false, 2).expect("a plan");
    let plan_time = started.elapsed();
    assert_eq!(planned.restore.as_ref().map(|r| r.epoch), Some(epoch));
    drop(planned);
    println!(
        "   plan (manifest, verify epoch {epoch}'s checksums): {:.3} s",
        plan_time.as_secs_f64()
    );
    // What the plan spends it on: each read-only open of a store replays the
    // store's WAL; the plan opens each worker's store once.
    let opens: Vec<String> = (0..2)
        .map(|w| {
            let started = Instant::now();
            let store = weir_rocks::Rocks.open_read_only(&store_path(&dir, 0, w));
            let took = started.elapsed();
            drop(store);
            format!("worker {w} {:.3} s", took.as_secs_f64())
        })
        .collect();
    println!(
        "      of which opening stores read-only ({}; the plan opens each once)",
        opens.join(", ")
    );

    for workers in [2usize, 1] {
        let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let opened = Arc::new(Mutex::new(Vec::new()));
        let source = KeysSource {
            opened_at_end: Arc::clone(&opened),
            ..source.clone()
        };
        let started = Instant::now();
        let recording = Recording::new(false);
        let run = blobs_job(
            &dir,
            workers,
            source,
            value_bytes as usize,
            &counters,
            recording.handle(),
        );
        let at = opened.lock().expect("lock").clone();
        assert_eq!(at.len(), 2, "both splits reopened at their end");
        let loaded = at
            .iter()
            .map(|t| t.duration_since(started))
            .max()
            .unwrap_or_default();
        let r = Restored {
            loaded,
            run,
            keys: counters.0.load(Ordering::Relaxed),
            bytes: counters.1.load(Ordering::Relaxed),
        };
        assert_eq!(r.keys, keys, "every key restored");
        assert_eq!(r.bytes, keys * value_bytes, "all state restored");
        let how = if workers == 2 {
            "2 workers, each its own store"
        } else {
            "1 worker, rescaled from 2 stores"
        };
        println!(
            "   restore on {how}: state loaded {:.2} s after the start ({:.0} MiB/s; goal < 10 s); \
             whole run {:.2} s",
            r.loaded.as_secs_f64(),
            mib(r.bytes) / r.loaded.as_secs_f64(),
            r.run.as_secs_f64()
        );
        let log = recording.take();
        if let Some(h) = log.flush_micros.as_ref().filter(|h| !h.is_empty()) {
            println!(
                "      then it wrote the restored state into a new generation: {:.2} s",
                h.mean() * h.len() as f64 / 1e6
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
