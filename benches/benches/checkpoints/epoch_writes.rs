//! Part 2, what each epoch writes as the state grows: one recorded run over
//! far more cards than an epoch sees, a table of every epoch's writes, and
//! the correlation of bytes written with keys changed and with state size.

use std::path::Path;
use std::time::Duration;

use crate::fraud_job::{fraud_like, transactions};
use crate::recording::{EpochWrites, Recording, WriteStats};
use crate::stats::{epoch_ms, mib, pearson, quantiles};

/// Growing state: far more cards than the job sees per epoch, at a fixed
/// rate, and windows that do not fire during the run (event time moves 2 s
/// per second), so every epoch adds about as many keys as the last.
pub(crate) fn epoch_writes(keys: u64, rate: u64, seconds: u64, workers: usize, scratch: &Path) {
    let events = rate * seconds;
    println!(
        "\n2. what each epoch writes as the state grows: {events} transactions at {rate}/s over \
         {keys} cards (each epoch sees new ones), no window fires; -w {workers}, {} ms epochs; \
         every store write() timed",
        epoch_ms()
    );
    let dir = scratch.join("epochs");
    let recording = Recording::new(true);
    let input = transactions(
        events,
        keys,
        Duration::from_micros(2_000_000 / rate.max(1)),
        Some(rate as f64),
    );
    let r = fraud_like(input, workers, Some((&dir, recording.handle())));
    let log = recording.take();
    println!(
        "   run: {:.3} s, {:.0} events/s",
        r.elapsed.as_secs_f64(),
        events as f64 / r.elapsed.as_secs_f64()
    );
    println!(
        "   {:>5}  {:>7}  {:>10}  {:>9}  {:>10}  {:>9}  {:>8}  {:>9}  {:>8}",
        "EPOCH",
        "FLUSHES",
        "KEYS WRIT.",
        "MIB WRIT.",
        "STATE KEYS",
        "STATE MIB",
        "WRIT/ALL",
        "WRITE MS",
        "SPAN MS"
    );
    println!(
        "   (written: the deltas and positions of the epoch's flushes, all workers; state: live \
         keys after it; write ms: in write(), summed; span: first write to last)"
    );
    for (epoch, e) in &log.epochs {
        let span = match (e.first, e.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() * 1e3,
            _ => 0.0,
        };
        let share = if e.live_keys > 0 {
            format!("{:.0} %", 100.0 * e.keys as f64 / e.live_keys as f64)
        } else {
            "-".into()
        };
        println!(
            "   {:>5}  {:>7}  {:>10}  {:>9.2}  {:>10}  {:>9.2}  {:>8}  {:>9.1}  {:>8.1}",
            epoch,
            e.flushes,
            e.keys,
            mib(e.bytes),
            e.live_keys,
            mib(e.live_bytes),
            share,
            e.write_micros as f64 / 1e3,
            span
        );
    }
    let mut stats = WriteStats::default();
    stats.add(&log);
    stats.print("   ");
    if let Some(h) = log.fold_micros.as_ref().filter(|h| !h.is_empty()) {
        println!(
            "   folding deltas into the base, per write():      {} ms  ({} folds)",
            quantiles(h, 1e3),
            h.len()
        );
    }
    // Bytes per epoch against keys changed and against the state size.
    let full: Vec<&EpochWrites> = log.epochs.values().filter(|e| e.delta_keys > 0).collect();
    if full.len() >= 3 {
        let bytes: Vec<f64> = full.iter().map(|e| e.bytes as f64).collect();
        let changed: Vec<f64> = full.iter().map(|e| e.delta_keys as f64).collect();
        let state: Vec<f64> = full.iter().map(|e| e.live_bytes as f64).collect();
        let per_key: Vec<f64> = full
            .iter()
            .map(|e| e.bytes as f64 / e.delta_keys.max(1) as f64)
            .collect();
        let (lo, hi) = per_key
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        println!(
            "   over {} epochs the state grew from {:.1} to {:.1} MiB; bytes an epoch wrote \
             correlate with the keys it changed (r = {:.3}; {lo:.0} to {hi:.0} bytes per changed \
             key), not with the state's size (r = {:.3})",
            full.len(),
            mib(full[0].live_bytes),
            mib(full[full.len() - 1].live_bytes),
            pearson(&bytes, &changed),
            pearson(&bytes, &state),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
