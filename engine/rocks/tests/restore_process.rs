//! Restore equivalence for process functions on RocksDB: run a job with
//! checkpoints on a prefix of its input (the crash), keep the output of
//! epochs that completed, restore on the same or another worker count over
//! the whole input, and compare with a straight run. The function uses
//! value, list and map state (two with a TTL) and event-time timers, some
//! set by timers; every timer firing is an output line, so a timer that
//! fired twice or never across the restore shows as a difference.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::core::Inspect;
use weir::backend::manifest;
use weir::rng::SplitMix64;
use weir::testing::Script;
use weir::{RunArgs, Watermarks};
use weir_operators::process::{
    Context, ListState, MapState, ProcessExt, ProcessFunction, ValueState,
};

type Rec = (u32, u64, u64); // key, value, event time
type Out = (u64, String); // epoch, result

/// Per key: total of values (no TTL), recent (event time, value) pairs
/// (TTL 700 ms), counts per 500 ms bucket (TTL 1.5 s), last value (TTL
/// 400 ms).
type State = (
    ValueState<u64>,
    ListState<(u64, u64)>,
    MapState<u64, u64>,
    ValueState<u64>,
);

/// A key with records only early in the input.
const QUIET: u32 = 99;

struct Tracker;

impl ProcessFunction<u32, Rec> for Tracker {
    type State = State;
    type Out = String;
    type Side = String;

    fn new_state(&self) -> State {
        (
            ValueState::new(),
            ListState::with_ttl(Duration::from_millis(700)),
            MapState::with_ttl(Duration::from_millis(1_500)),
            ValueState::with_ttl(Duration::from_millis(400)),
        )
    }

    fn on_record(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut State, r: Rec) {
        if ctx.is_late() {
            ctx.side(format!("late {r:?} at {}", ctx.watermark()));
            return;
        }
        let (total, recent, buckets, last) = s;
        *total.get_or_insert_with(|| 0) += r.1;
        recent.push((r.2, r.1));
        *buckets.get_or_insert_with(r.2 / 500, || 0) += 1;
        last.set(r.1);
        ctx.register_event_timer(r.2 + 50);
        if r.0 == QUIET {
            ctx.register_event_timer(r.2 + 1_000_000);
        }
        if r.1.is_multiple_of(10) {
            ctx.output(format!(
                "record {} {} total={:?} at {}",
                r.0,
                r.2,
                total.get(),
                ctx.watermark()
            ));
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut State, t: u64) {
        let (total, recent, buckets, last) = s;
        let recent: u64 = recent.iter().map(|(_, v)| v).sum();
        let buckets: Vec<(u64, u64)> = buckets.iter().map(|(k, v)| (*k, *v)).collect();
        ctx.output(format!(
            "timer {} {t} total={:?} recent={recent} buckets={buckets:?} last={:?} at {}",
            ctx.key(),
            total.get(),
            last.get(),
            ctx.watermark()
        ));
        if t.is_multiple_of(7) {
            ctx.register_event_timer(t + 333);
        }
    }
}

/// The input: three splits of records with an epoch end every 40. With
/// `crash_after: Some(n)`, every split stops after `n` steps: it goes quiet
/// for a while (so every worker reaches the same point and the epochs
/// closed before it are checkpointed), then fails.
fn script(crash_after: Option<usize>) -> Script<Rec> {
    let mut script = Script::new();
    for split in 0..3 {
        if split > 0 {
            script = script.split();
        }
        let mut rng = SplitMix64::new(split as u64 + 1);
        let mut steps = 0;
        for i in 0..600 {
            if Some(steps) == crash_after {
                break;
            }
            let ts = i as u64 * 20 + rng.below(300);
            let ts = if rng.chance(0.03) {
                ts.saturating_sub(5_000)
            } else {
                ts
            };
            script = script.record((rng.below(12) as u32, rng.below(100), ts));
            steps += 1;
            if split == 0 && (i == 10 || i == 20) && Some(steps) != crash_after {
                // A key that goes quiet early, with a timer due only when
                // the input ends: its state must survive every restore.
                script = script.record((QUIET, 5, ts));
                steps += 1;
            }
            if i % 40 == 39 && Some(steps) != crash_after {
                script = script.end_epoch();
                steps += 1;
            }
        }
        if crash_after.is_some() {
            script = script
                .idle(Duration::from_millis(500))
                .fail("simulated crash");
        }
    }
    script
}

fn temp(tag: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("weir-restore-process-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the job; returns its outputs with the epoch each was emitted in, and
/// whether it ended cleanly.
fn run(workers: usize, script: Script<Rec>, dir: Option<&PathBuf>) -> (Vec<Out>, bool) {
    let out: Arc<Mutex<Vec<Out>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3600);
    if let Some(dir) = dir {
        args.checkpoint_dir = Some(dir.clone());
        args.backend = Some(weir_rocks::backend());
    }
    let result = weir::run(&args, move |p| {
        let processed = p
            .source("records", script.clone())
            .event_time(
                |r: &Rec| r.2,
                Watermarks::bounded(Duration::from_millis(500)),
            )
            .key_by("by_key", |r| r.0)
            .process("tracker", Tracker);
        let all = processed
            .main
            .union(processed.side.map(|s| format!("side {s}")));
        let sink = Arc::clone(&sink);
        all.into_timely().inspect_core(move |event| {
            if let Ok((stamp, batch)) = event {
                let epoch = stamp.iter().map(|t| t.epoch).min().unwrap_or(0);
                let mut all = sink.lock().expect("lock");
                all.extend(batch.iter().map(|(_, s)| (epoch, s.clone())));
            }
        });
    });
    let mut all = out.lock().expect("lock").clone();
    all.sort();
    (all, result.is_ok())
}

fn results(outs: &[Out]) -> Vec<String> {
    let mut r: Vec<String> = outs.iter().map(|(_, s)| s.clone()).collect();
    r.sort();
    r
}

/// The newest complete checkpoint (none if the crash came first).
fn newest_complete(dir: &std::path::Path) -> Option<u64> {
    manifest::read(dir).ok()?.complete.last().map(|e| e.epoch)
}

/// The (key, time) of every timer firing, checking none fired twice.
fn firings(lines: &[String], what: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in lines.iter().filter(|l| l.starts_with("timer ")) {
        let id: String = line.split(' ').take(3).collect::<Vec<_>>().join(" ");
        assert!(seen.insert(id.clone()), "{what}: `{id}` fired twice");
    }
    seen
}

fn compare(straight: &[String], combined: &[String], what: &str) {
    let straight_firings = firings(straight, "the straight run");
    let combined_firings = firings(combined, what);
    let missing: Vec<&String> = straight_firings
        .difference(&combined_firings)
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: timers that never fired: {missing:?}"
    );
    let missing: Vec<&String> = straight
        .iter()
        .filter(|s| !combined.contains(s))
        .take(10)
        .collect();
    let extra: Vec<&String> = combined
        .iter()
        .filter(|s| !straight.contains(s))
        .take(10)
        .collect();
    assert!(
        combined == straight,
        "{what}: output differs from a straight run ({} vs {} lines); missing {missing:#?}, extra {extra:#?}",
        combined.len(),
        straight.len()
    );
}

fn straight_run() -> Vec<String> {
    let (straight, ok) = run(2, script(None), None);
    assert!(ok, "the straight run succeeds");
    let straight = results(&straight);
    for kind in ["side late", "timer", "record"] {
        assert!(
            straight.iter().any(|s| s.starts_with(kind)),
            "the output has `{kind}` lines"
        );
    }
    assert!(
        straight.iter().any(|s| s.contains("last=None")),
        "some TTL state expired before a timer read it"
    );
    assert!(
        straight
            .iter()
            .any(|s| s.starts_with(&format!("timer {QUIET} ")) && s.contains("total=Some(10)")),
        "the quiet key's last timer reads its state"
    );
    straight
}

/// Crashes a run on `counts[0]` workers after `crash_after[0]` steps per
/// split, restores it on `counts[1]` workers (crashing again after
/// `crash_after[1]` steps, if given), and so on; the last run reads the
/// whole input. Output of epochs a crash lost is dropped.
fn crash_and_restore(counts: &[usize], crash_after: &[usize]) {
    assert_eq!(counts.len(), crash_after.len() + 1);
    let straight = straight_run();
    let tag: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
    let dir = temp(&tag.join("-"));
    let mut combined: Vec<String> = Vec::new();
    let mut restored_from: Option<u64> = None;
    for (i, &workers) in counts.iter().enumerate() {
        let input = script(crash_after.get(i).copied());
        let last = i + 1 == counts.len();
        let (out, ok) = run(workers, input, Some(&dir));
        assert_eq!(
            ok, last,
            "run {i} on {workers} workers crashes unless it is the last"
        );
        if let Some(c) = restored_from {
            assert!(
                out.iter().all(|(e, _)| *e > c),
                "a restored job emits only after the checkpoint it restored ({c})"
            );
        }
        let checkpoint = newest_complete(&dir);
        if !last {
            assert!(
                checkpoint > restored_from,
                "run {i} completed a checkpoint before it crashed ({checkpoint:?})"
            );
        }
        let kept: Vec<Out> = if last {
            out
        } else {
            // Output of epochs after the checkpoint is lost with the crash.
            out.into_iter()
                .filter(|(e, _)| checkpoint.is_some_and(|c| *e <= c))
                .collect()
        };
        combined.extend(results(&kept));
        restored_from = checkpoint;
    }
    combined.sort();
    compare(
        &straight,
        &combined,
        &format!("workers {counts:?}, crashes after {crash_after:?} steps"),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn process_restores_on_one_worker() {
    crash_and_restore(&[1, 1], &[250]);
}

#[test]
fn process_restores_from_one_worker_on_two() {
    crash_and_restore(&[1, 2], &[250]);
}

#[test]
fn process_restores_from_two_workers_on_four() {
    crash_and_restore(&[2, 4], &[250]);
}

#[test]
fn process_restores_from_four_workers_on_one() {
    crash_and_restore(&[4, 1], &[250]);
}

/// A restore into a new store generation must write what it restored: a
/// second crash there restores it again.
#[test]
fn process_restores_twice_on_changing_worker_counts() {
    crash_and_restore(&[1, 2, 4], &[200, 450]);
}
