//! An at-least-once sink in a job that checkpoints: no checkpoint of an
//! epoch completes before the sink ended that epoch (made its output
//! durable). Otherwise a crash right after the checkpoint would restore
//! past output that was never flushed, and lose it.
//!
//! The sink writes on every worker, slowly on worker 1, and reads the
//! manifest as it ends each epoch: a complete epoch at or past the one being
//! ended is a violation. Before such sinks took part in checkpoints, the
//! 2-worker test failed every time: worker 0's steps and the manifest writer
//! completed epochs while worker 1's sink was still writing them.
//!
//! The sink also makes each ended epoch durable only 5 ms later, as a
//! producer waiting for a broker's acknowledgements does ([`Sink::durable`]
//! says `false` until then): no checkpoint of the epoch may complete
//! meanwhile, and the worker goes on writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::backend::manifest;
use weir::testing::Script;
use weir::{Fault, Sink, Watermarks, WorkerIndex};
use weir_operators::{Count, WindowExt, Windows};

mod support;

const EPOCHS: u64 = 12;
const PER_EPOCH: u64 = 30;

type Rec = (u32, u64); // key, event time

fn script() -> Script<Rec> {
    let mut script = Script::new();
    for e in 0..EPOCHS {
        for i in 0..PER_EPOCH {
            let ts = (e * PER_EPOCH + i) * 1_000;
            script = script.record(((i % 5) as u32, ts));
        }
        script = script.end_epoch().idle(Duration::from_millis(20));
    }
    script
}

#[derive(Default)]
struct Seen {
    ended: Vec<u64>,
    violations: Vec<String>,
    records: usize,
    /// Times `durable` answered `false`.
    not_yet: usize,
}

/// How long after its end an epoch's output becomes durable.
const DURABLE_AFTER: Duration = Duration::from_millis(5);

/// Writes on every worker, slowly on all but worker 0, and checks the
/// manifest as each epoch ends.
struct Checking {
    dir: PathBuf,
    seen: Arc<Mutex<Seen>>,
    worker: usize,
    /// When each epoch was ended.
    ended_at: BTreeMap<u64, Instant>,
}

impl Sink<String> for Checking {
    fn parallel(&self) -> bool {
        true
    }

    fn open(&mut self, worker: WorkerIndex) -> Result<(), Fault> {
        self.worker = worker.0;
        Ok(())
    }

    fn write(&mut self, records: &mut Vec<String>) -> Result<(), Fault> {
        // A worker behind the others: their checkpoint steps (and the
        // manifest writer) go on while it writes.
        if self.worker > 0 {
            std::thread::sleep(Duration::from_millis(40));
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.records += records.len();
        }
        records.clear();
        Ok(())
    }

    fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        let complete = newest_complete(&self.dir);
        if let Ok(mut seen) = self.seen.lock() {
            if through < u64::MAX - 1 && complete.is_some_and(|c| c >= through) {
                seen.violations.push(format!(
                    "epoch {complete:?} complete before the sink ended {through}"
                ));
            }
            seen.ended.push(through);
        }
        self.ended_at.insert(through, Instant::now());
        Ok(())
    }

    fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        let at = self.ended_at.get(&through).copied();
        if at.is_some_and(|at| at.elapsed() >= DURABLE_AFTER) {
            return Ok(true);
        }
        let complete = newest_complete(&self.dir);
        if let Ok(mut seen) = self.seen.lock() {
            if at.is_none() {
                seen.violations
                    .push(format!("asked about {through}, never ended"));
            }
            if complete.is_some_and(|c| c >= through) {
                seen.violations.push(format!(
                    "epoch {complete:?} complete before the sink's output through {through} was durable"
                ));
            }
            seen.not_yet += 1;
        }
        Ok(false)
    }
}

fn newest_complete(dir: &Path) -> Option<u64> {
    manifest::read(dir)
        .ok()
        .and_then(|m| m.complete.last().map(|e| e.epoch))
}

fn check(workers: usize) {
    let dir = std::env::temp_dir().join(format!(
        "weir-alo-checkpoints-{workers}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink_seen = Arc::clone(&seen);
    let sink_dir = dir.clone();
    let args = support::checkpointed(workers, &dir);
    let summary = weir::run(&args, move |p| {
        p.source("records", script())
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .key_by("by_key", |r| r.0)
            .window("counts", Windows::tumbling(Duration::from_secs(10)), Count)
            .fired
            .map(|w| format!("{w:?}"))
            .sink(
                "checking",
                Checking {
                    dir: sink_dir.clone(),
                    seen: Arc::clone(&sink_seen),
                    worker: 0,
                    ended_at: BTreeMap::new(),
                },
            );
    })
    .expect("the job runs");
    let seen = seen.lock().expect("not poisoned");
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    // One window per key per 10 s: 5 keys, 3 windows in each 30 s epoch.
    assert_eq!(seen.records as u64, EPOCHS * 3 * 5, "{summary:?}");
    assert_eq!(seen.ended.last(), Some(&u64::MAX), "the end is ended too");
    assert!(
        seen.not_yet > 0,
        "the sink was asked before its output was durable"
    );
    let complete = newest_complete(&dir).expect("complete checkpoints");
    assert!(
        complete >= 3,
        "checkpoints completed ({complete}), so the check was exercised"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_checkpoint_completes_before_the_sink_ended_its_epoch_on_1_worker() {
    check(1);
}

#[test]
fn no_checkpoint_completes_before_the_sink_ended_its_epoch_on_2_workers() {
    check(2);
}
