//! The job of parts 1 and 2: per card, count and spend in a 5 min sliding
//! window every 1 min, over generated transactions, into a sink that only
//! counts, with or without checkpoints.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::config::BackendHandle;
use weir::{Fault, RunArgs, Sink, Watermarks};
use weir_connectors::{Generator, GeneratorConfig, Transaction};
use weir_operators::{Count, Sum, WindowExt, Windows};

use crate::stats::epoch_ms;

/// The fraud-like job's input. `spacing` is event time per record; `rate`
/// caps records per second of wall-clock time.
pub(crate) fn transactions(
    events: u64,
    keys: u64,
    spacing: Duration,
    rate: Option<f64>,
) -> GeneratorConfig {
    GeneratorConfig {
        events: Some(events),
        rate,
        keys,
        skew: 0.0,
        spacing,
        disorder: Duration::from_millis(500),
        late_fraction: 0.0,
        malformed_fraction: 0.0,
        splits: 4,
        ..GeneratorConfig::default()
    }
}

/// Counts what reaches it.
#[derive(Clone)]
pub(crate) struct Counting(Arc<AtomicU64>);

impl<T> Sink<T> for Counting {
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        self.0.fetch_add(records.len() as u64, Ordering::Relaxed);
        records.clear();
        Ok(())
    }
}

pub(crate) struct RunResult {
    pub(crate) elapsed: Duration,
    pub(crate) fired: u64,
}

/// One run of the fraud-like job; with a backend: checkpoints in `dir`.
pub(crate) fn fraud_like(
    input: GeneratorConfig,
    workers: usize,
    checkpoint: Option<(&Path, BackendHandle)>,
) -> RunResult {
    let generator = Generator::<Transaction>::new(input).expect("config");
    let fired = Arc::new(AtomicU64::new(0));
    let sink = Counting(Arc::clone(&fired));
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_millis(epoch_ms());
    if let Some((dir, backend)) = checkpoint {
        let _ = std::fs::remove_dir_all(dir);
        args.checkpoint_dir = Some(dir.to_path_buf());
        args.backend = Some(backend);
    }
    let started = Instant::now();
    let result = weir::run(&args, move |p| {
        p.source("transactions", generator.clone())
            .event_time(
                |t: &Transaction| t.ts_ms,
                Watermarks::bounded(Duration::from_secs(2)),
            )
            .key_by("by_card", |t| t.card)
            .window(
                "card_activity",
                Windows::sliding(Duration::from_secs(300), Duration::from_secs(60)),
                (Count, Sum::of(|t: &Transaction| t.amount_cents)),
            )
            .fired
            .sink("windows", sink.clone());
    });
    let elapsed = started.elapsed();
    if let Err(e) = result {
        panic!("the fraud-like run failed: {e}");
    }
    RunResult {
        elapsed,
        fired: fired.load(Ordering::Relaxed),
    }
}
