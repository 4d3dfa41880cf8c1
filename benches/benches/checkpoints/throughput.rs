//! Part 1, the throughput cost: the fraud-like job with checkpoints every
//! epoch against the same job without, runs alternating, medians compared;
//! both modes must fire the same windows.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::fraud_job::{fraud_like, transactions};
use crate::recording::{Recording, WriteStats};
use crate::stats::{epoch_ms, histogram, mib};

pub(crate) fn throughput(
    events: Option<u64>,
    seconds: f64,
    keys: &[u64],
    workers: usize,
    runs: usize,
    scratch: &Path,
) {
    println!(
        "\n1. throughput: 5 min windows every 1 min (count, spend) per card, -w {workers}, {} ms \
         epochs, {runs} runs per mode, alternating (median); runs sized to ~{seconds} s without \
         checkpoints",
        epoch_ms()
    );
    let dir = scratch.join("throughput");
    let mut summary = Vec::new();
    for &keys in keys {
        // Size the runs: a short run without checkpoints (also a warm-up).
        let events = events.unwrap_or_else(|| {
            let probe = 2_000_000;
            let r = fraud_like(
                transactions(probe, keys, Duration::from_micros(100), None),
                workers,
                None,
            );
            ((probe as f64 / r.elapsed.as_secs_f64() * seconds) as u64).max(probe)
        });
        println!("   {keys} cards, {events} transactions per run:");
        let input = transactions(events, keys, Duration::from_micros(100), None);
        let mut plain = histogram();
        let mut checkpointed = histogram();
        let mut fired = None;
        let mut writes = WriteStats::default();
        for run in 0..runs {
            for with in [false, true] {
                let r = if with {
                    let recording = Recording::new(false);
                    let r = fraud_like(input.clone(), workers, Some((&dir, recording.handle())));
                    writes.add(&recording.take());
                    r
                } else {
                    fraud_like(input.clone(), workers, None)
                };
                assert_eq!(
                    *fired.get_or_insert(r.fired),
                    r.fired,
                    "both modes fire the same windows"
                );
                let micros = r.elapsed.as_micros() as u64;
                let _ = if with { &mut checkpointed } else { &mut plain }.record(micros);
                println!(
                    "     run {}  {:<22} {:>7.3} s  {:>10.0} events/s",
                    run + 1,
                    if with {
                        "checkpoints every epoch"
                    } else {
                        "no checkpoints"
                    },
                    r.elapsed.as_secs_f64(),
                    events as f64 / r.elapsed.as_secs_f64()
                );
            }
        }
        let median = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64 / 1e6;
        let (p, c) = (median(&plain), median(&checkpointed));
        let cost = (1.0 - p / c) * 100.0;
        println!(
            "     median: no checkpoints {:>10.0} events/s, checkpoints {:>10.0} events/s: \
             cost {cost:.1} % (goal < 10 %); {} windows fired per run",
            events as f64 / p,
            events as f64 / c,
            fired.unwrap_or(0)
        );
        writes.print("     ");
        summary.push((keys, events as f64 / p, events as f64 / c, cost, writes));
    }
    println!(
        "   {:>9}  {:>14}  {:>14}  {:>7}  {:>13}  {:>13}",
        "CARDS", "PLAIN EV/S", "CHECKPT EV/S", "COST", "K KEYS/EPOCH", "MIB/EPOCH"
    );
    for (keys, p, c, cost, writes) in &summary {
        let p50 = |h: &Option<Histogram<u64>>| h.as_ref().map_or(0, |h| h.value_at_quantile(0.5));
        println!(
            "   {keys:>9}  {p:>14.0}  {c:>14.0}  {cost:>6.1}%  {:>13.1}  {:>13.2}",
            p50(&writes.epoch_keys) as f64 / 1e3,
            mib(p50(&writes.epoch_bytes))
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
