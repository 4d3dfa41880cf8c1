//! Restore equivalence: run a job with checkpoints on a prefix of its input
//! (the crash), keep the output of epochs that completed, restore on the same
//! or another worker count over the whole input, and compare with a straight
//! run. Windows (sliding and session) on RocksDB.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use timely::dataflow::operators::core::Inspect;
use weir::backend::manifest;
use weir::rng::SplitMix64;
use weir::testing::Script;
use weir::{RunArgs, Watermarks};
use weir_operators::{Count, Sum, WindowExt, Windows};

mod support;

type Rec = (u32, u64, u64); // key, value, event time
type Out = (u64, String); // epoch, result

fn script(records_per_split: usize, splits: usize) -> Script<Rec> {
    let mut script = Script::new();
    for split in 0..splits {
        if split > 0 {
            script = script.split();
        }
        let mut rng = SplitMix64::new(split as u64 + 1);
        for i in 0..records_per_split {
            let ts = i as u64 * 20 + rng.below(300);
            let ts = if rng.chance(0.03) {
                ts.saturating_sub(5_000)
            } else {
                ts
            };
            script = script.record((rng.below(12) as u32, rng.below(100), ts));
            if split == 0 && i == 5 {
                // A key seen once, early: its hour window stays pending and
                // untouched across every crash and restore.
                script = script.record((99, 7, ts));
            }
            if i % 40 == 39 {
                script = script.end_epoch();
            }
        }
    }
    script
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-restore-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the job; returns its outputs with the epoch each was emitted in, and
/// whether it ended cleanly.
fn run(workers: usize, script: Script<Rec>, dir: Option<&PathBuf>) -> (Vec<Out>, bool) {
    run_restoring(workers, script, dir, None).expect("the job starts")
}

/// [`run`], restoring `restore` (an epoch) if given; `Err` if refused at start.
fn run_restoring(
    workers: usize,
    script: Script<Rec>,
    dir: Option<&PathBuf>,
    restore: Option<u64>,
) -> Result<(Vec<Out>, bool), String> {
    let out: Arc<Mutex<Vec<Out>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3600);
    args.keep_checkpoints = 5;
    args.restore = restore;
    if let Some(dir) = dir {
        args.checkpoint_dir = Some(dir.clone());
        args.backend = Some(weir_rocks::backend());
    }
    let result = weir::run(&args, move |p| {
        let keyed = p
            .source("records", script.clone())
            .event_time(
                |r: &Rec| r.2,
                Watermarks::bounded(Duration::from_millis(500)),
            )
            .key_by("by_key", |r| r.0);
        let sliding = keyed.clone().window(
            "sliding",
            Windows::sliding(Duration::from_secs(2), Duration::from_millis(500))
                .allowed_lateness(Duration::from_millis(300)),
            (Count, Sum::of(|r: &Rec| r.1)),
        );
        let hours =
            keyed
                .clone()
                .window("hours", Windows::tumbling(Duration::from_secs(3600)), Count);
        let sessions = keyed.window(
            "sessions",
            Windows::session(Duration::from_millis(700)),
            Count,
        );
        let fired = sliding
            .fired
            .map(|f| format!("sliding {} {:?} {:?}", f.key, f.window, f.value))
            .union(
                sessions
                    .fired
                    .map(|f| format!("session {} {:?} {:?}", f.key, f.window, f.value)),
            )
            .union(
                hours
                    .fired
                    .map(|f| format!("hour {} {:?} {:?}", f.key, f.window, f.value)),
            )
            .union(
                sliding
                    .late
                    .map(|l| format!("late {} {:?} {:?}", l.key, l.window, l.record)),
            )
            .union(
                sessions
                    .late
                    .map(|l| format!("late-session {} {:?} {:?}", l.key, l.window, l.record)),
            );
        let sink = Arc::clone(&sink);
        fired.into_timely().inspect_core(move |event| {
            if let Ok((stamp, batch)) = event {
                let epoch = stamp.iter().map(|t| t.epoch).min().unwrap_or(0);
                let mut all = sink.lock().expect("lock");
                all.extend(batch.iter().map(|(_, s)| (epoch, s.clone())));
            }
        });
    });
    if let Err(weir::JobError::Config(e)) = &result {
        return Err(e.to_string());
    }
    let mut all = out.lock().expect("lock").clone();
    all.sort();
    Ok((all, result.is_ok()))
}

fn results(outs: &[Out]) -> Vec<String> {
    let mut r: Vec<String> = outs.iter().map(|(_, s)| s.clone()).collect();
    r.sort();
    r
}

/// The newest complete checkpoint after the crash (none if it came first).
fn newest_complete(dir: &std::path::Path) -> Option<u64> {
    manifest::read(dir).ok()?.complete.last().map(|e| e.epoch)
}

fn crash_and_restore(before: usize, after: usize) {
    let full = script(600, 3);
    // The crash: every split fails after 250 steps.
    let crashed = full.crash_after(250);
    let (straight, ok) = run(2, full.clone(), None);
    assert!(ok, "the straight run succeeds");
    let straight = results(&straight);
    assert!(
        straight.iter().any(|s| s.starts_with("late")),
        "the input has late records"
    );
    let dir = temp(&format!("{before}-{after}"));
    let (first, ok) = run(before, crashed, Some(&dir));
    assert!(!ok, "the first run crashes");
    let checkpoint = newest_complete(&dir);
    assert!(
        checkpoint.is_some(),
        "the crashed run checkpointed: the restore restores something"
    );
    // Output of epochs after the checkpoint is lost with the crash.
    let kept: Vec<Out> = first
        .into_iter()
        .filter(|(e, _)| checkpoint.is_some_and(|c| *e <= c))
        .collect();
    let (second, ok) = run(after, full, Some(&dir));
    assert!(ok, "the restored run succeeds");
    if let Some(c) = checkpoint {
        assert!(
            second.iter().all(|(e, _)| *e > c),
            "a restored job emits only after the checkpoint"
        );
    }
    let mut combined = results(&kept);
    combined.extend(results(&second));
    combined.sort();
    let missing: Vec<&String> = straight
        .iter()
        .filter(|s| !combined.contains(s))
        .take(40)
        .collect();
    let mut extra: Vec<&String> = combined
        .iter()
        .filter(|s| !straight.contains(s))
        .take(40)
        .collect();
    extra.extend(
        combined
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| &w[0])
            .take(5),
    );
    assert_eq!(
        combined.len(),
        straight.len(),
        "missing (first 6): {missing:#?}\nextra (first 6): {extra:#?}"
    );
    assert!(
        combined == straight,
        "{before} workers crashed after checkpoint {checkpoint:?}, restored on {after}: output differs from a straight run; missing {missing:#?}, extra {extra:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two crashes: on `a` workers, then (restored) on `b`, then restored on `c`
/// to the end. State restored into a new store generation must carry every
/// key and buffered record, or the second restore loses or doubles them.
fn crash_twice_and_restore(a: usize, b: usize, c: usize) {
    let full = script(600, 3);
    let (straight, ok) = run(2, full.clone(), None);
    assert!(ok, "the straight run succeeds");
    let straight = results(&straight);
    let dir = temp(&format!("twice-{a}-{b}-{c}"));
    let mut combined = Vec::new();
    let mut last = None;
    for (workers, cut) in [(a, 300), (b, 480)] {
        let (out, ok) = run(workers, full.crash_after(cut), Some(&dir));
        assert!(!ok, "the run on {workers} workers crashes");
        let checkpoint = newest_complete(&dir);
        eprintln!(
            "{workers} workers, crash at {cut}: {:?}",
            manifest::read(&dir).map(|m| (
                m.generation,
                m.complete.iter().map(|e| e.epoch).collect::<Vec<_>>()
            ))
        );
        assert!(
            checkpoint >= last,
            "a restored run keeps its checkpoint ({last:?} then {checkpoint:?})"
        );
        let kept: Vec<Out> = out
            .into_iter()
            .filter(|(e, _)| checkpoint.is_some_and(|c| *e <= c) && last.is_none_or(|l| *e > l))
            .collect();
        combined.extend(results(&kept));
        last = checkpoint;
    }
    assert!(last.is_some(), "the crashed runs checkpointed something");
    let (out, ok) = run(c, full, Some(&dir));
    assert!(ok, "the last run succeeds");
    combined.extend(results(&out));
    combined.sort();
    assert_eq!(combined.len(), straight.len(), "{a} -> {b} -> {c} workers");
    assert!(
        combined == straight,
        "{a} -> {b} -> {c} workers: output differs"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_crashes_across_worker_counts() {
    // (A crash on one split stops the job at once: runs whose workers
    // drift apart on 2 cores may complete no checkpoint, so the crashing
    // runs use one or two workers.)
    crash_twice_and_restore(1, 2, 4);
    crash_twice_and_restore(2, 1, 2);
    crash_twice_and_restore(1, 1, 4);
}

/// `--restore EPOCH` resumes from an older complete checkpoint than the
/// newest; an epoch that is not a complete checkpoint is refused, naming
/// the ones there are.
#[test]
fn an_older_checkpoint_restores_on_request() {
    let full = script(600, 3);
    let (straight, _) = run(2, full.clone(), None);
    let straight = results(&straight);
    let dir = temp("older");
    let (first, ok) = run(1, full.crash_after(400), Some(&dir));
    assert!(!ok, "the first run crashes");
    let m = manifest::read(&dir).expect("a manifest");
    let epochs: Vec<u64> = m.complete.iter().map(|e| e.epoch).collect();
    assert!(epochs.len() >= 2, "checkpoints to choose from: {epochs:?}");
    let older = epochs[0];
    let refused = run_restoring(2, full.clone(), Some(&dir), Some(older + 1000))
        .expect_err("an unknown epoch is refused");
    assert!(
        refused.contains("--restore") && refused.contains(&older.to_string()),
        "{refused}"
    );
    let (second, ok) = run_restoring(2, full, Some(&dir), Some(older)).expect("restores");
    assert!(ok, "the restored run succeeds");
    let mut combined: Vec<String> = results(
        &first
            .into_iter()
            .filter(|(e, _)| *e <= older)
            .collect::<Vec<_>>(),
    );
    combined.extend(results(&second));
    combined.sort();
    assert!(combined == straight, "restored from {older} of {epochs:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Epochs complete while the watermark stands still (every record has the
/// same event time): closing an epoch must release the old one by itself.
#[test]
fn epochs_complete_while_the_watermark_stands_still() {
    let dir = temp("still");
    let mut script = Script::new();
    for i in 0..100u32 {
        script = script.record((i % 7, 1, 5_000));
        if i % 10 == 9 {
            script = script.end_epoch();
        }
    }
    let (_, ok) = run(1, script.crash_after(105), Some(&dir));
    assert!(!ok, "the run crashes at the end of its input");
    let m = manifest::read(&dir).expect("a manifest");
    let epochs: Vec<u64> = m.complete.iter().map(|e| e.epoch).collect();
    assert!(
        epochs.last() >= Some(&6),
        "ten epochs closed, the newest complete ones are {epochs:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restore_on_one_worker() {
    crash_and_restore(1, 1);
}

#[test]
fn restore_on_the_same_worker_count() {
    crash_and_restore(2, 2);
}

#[test]
fn restore_from_one_worker_on_two() {
    crash_and_restore(1, 2);
}

#[test]
fn restore_from_two_workers_on_four() {
    crash_and_restore(2, 4);
}

#[test]
fn restore_from_four_workers_on_one() {
    crash_and_restore(4, 1);
}

/// A job whose steps differ from the checkpoint's is refused at start, with
/// a message naming the steps; `--fresh` starts it over.
#[test]
fn a_changed_job_is_refused_and_fresh_starts_over() {
    let dir = temp("changed");
    let mut args = support::checkpointed(1, &dir);
    let job = |window_name: &'static str, crash: usize| {
        move |p: &mut weir::Pipeline<'_>| {
            let _ = p
                .source("records", script(200, 2).crash_after(crash))
                .event_time(|r: &Rec| r.2, Watermarks::ascending())
                .key_by("by_key", |r| r.0)
                .window(
                    window_name,
                    Windows::tumbling(Duration::from_secs(1)),
                    Count,
                );
        }
    };
    // A run that crashed: a finished one would simply start over.
    weir::run(&args, job("counts", 150)).expect_err("the first run crashes");
    assert!(
        newest_complete(&dir).is_some(),
        "the first run checkpointed"
    );
    let refused = weir::run(&args, job("renamed", 400)).expect_err("a changed job is refused");
    let message = refused.to_string();
    assert!(
        message.contains("counts") && message.contains("renamed") && message.contains("--fresh"),
        "the refusal names the steps and the way out: {message}"
    );
    args.fresh = true;
    weir::run(&args, job("renamed", 400)).expect_err("--fresh starts over (and crashes again)");
    let m = manifest::read(&dir).expect("a manifest");
    assert!(m.steps.iter().any(|s| s.name == "renamed"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A corrupt newest checkpoint is detected by its checksum and the previous
/// one is restored instead.
#[test]
fn a_corrupt_checkpoint_falls_back_to_the_previous_one() {
    // With 2 kept, the previous one is the oldest kept: folding must have
    // left it verifiable.
    for keep in [5, 2] {
        corrupt_newest_and_fall_back(keep);
    }
}

fn corrupt_newest_and_fall_back(keep: usize) {
    let dir = temp(&format!("corrupt-{keep}"));
    let mut args = support::checkpointed(1, &dir);
    args.keep_checkpoints = keep;
    let crashed = script(600, 1).crash_after(300);
    let job = move |s: Script<Rec>| {
        move |p: &mut weir::Pipeline<'_>| {
            let _ = p
                .source("records", s.clone())
                .event_time(|r: &Rec| r.2, Watermarks::ascending())
                .key_by("by_key", |r| r.0)
                .window("counts", Windows::tumbling(Duration::from_secs(1)), Count);
        }
    };
    assert!(weir::run(&args, job(crashed)).is_err(), "the run crashes");
    let mut m = manifest::read(&dir).expect("a manifest");
    assert!(m.complete.len() >= 2, "two checkpoints to choose from");
    let newest = m.complete.last().map(|e| e.epoch).expect("an epoch");
    let oldest = m.complete.first().map(|e| e.epoch).expect("an epoch");
    {
        let store = weir_rocks::RocksStore::open_read_only(weir::backend::store_path(
            &dir,
            m.generation,
            0,
        ))
        .expect("the store");
        let folded = weir::backend::folded_through(&store).expect("read it");
        assert!(
            folded < Some(oldest),
            "keep {keep}: folded through {folded:?}, but epoch {oldest} must stay verifiable"
        );
    }
    // Corrupt the newest epoch's recorded checksum, resealing the manifest:
    // the store no longer matches it.
    if let Some(entry) = m.complete.last_mut() {
        for f in &mut entry.flushes {
            f.checksum ^= 1;
        }
    }
    manifest::write(&dir, &m).expect("rewrite");
    let plan =
        weir::backend::plan(&dir, Arc::new(weir_rocks::Rocks), keep, false, 1).expect("a plan");
    let restored = plan
        .restore
        .as_ref()
        .map(|r| r.epoch)
        .expect("restores something");
    let previous = m.complete[m.complete.len() - 2].epoch;
    assert_eq!(
        restored, previous,
        "keep {keep}: restored {restored}, newest (corrupt) {newest}: {:?}",
        plan.skipped
    );
    assert_eq!(plan.skipped.first().map(|(e, _)| *e), Some(newest));
    let _ = std::fs::remove_dir_all(&dir);
}
