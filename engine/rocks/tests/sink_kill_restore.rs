//! Two-phase commit of a parallel exactly-once sink on real processes: a
//! job writing through [`StagedFiles`] (every worker stages its own epochs)
//! checkpoints to RocksDB, is killed with `kill -9` mid-run — or aborts
//! itself in the gap between a complete checkpoint and its commit — and is
//! restored on another worker count. Its committed output must then equal
//! an uninterrupted run's: nothing lost, nothing doubled.
//!
//! The job runs in a child process: this test binary started again with
//! `WEIR_SINK_CHILD` set, which runs [`child_job`] and exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir::backend::manifest;
use weir::testing::{Script, StagedFiles};
use weir::Watermarks;

mod support;

const SPLITS: u64 = 4;
const RECORDS: u64 = 150;

/// Four splits of `RECORDS` records, each record followed by a short pause
/// (so a run lasts a few seconds and can be killed in the middle) and an
/// epoch end every 15 records.
fn script() -> Script<(u64, u64)> {
    let mut script = Script::new();
    for split in 0..SPLITS {
        if split > 0 {
            script = script.split();
        }
        for i in 0..RECORDS {
            script = script.record((split, i)).idle(Duration::from_millis(8));
            if i % 15 == 14 {
                script = script.end_epoch();
            }
        }
    }
    script
}

/// What every run must commit, once each.
fn expected() -> Vec<String> {
    let mut all: Vec<String> = (0..SPLITS)
        .flat_map(|s| (0..RECORDS).map(move |i| format!("\"{s}-{i}\"")))
        .collect();
    all.sort();
    all
}

fn run_job(workers: usize, checkpoints: &Path, out: &Path) -> Result<(), String> {
    let mut args = support::checkpointed(workers, checkpoints);
    args.quiet = true;
    let sink = StagedFiles::<String>::new(out);
    weir::run(&args, move |p| {
        p.source("records", script())
            .event_time(|r: &(u64, u64)| r.1, Watermarks::ascending())
            .map(|(s, i)| format!("{s}-{i}"))
            .sink("out", sink.clone());
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// The job, when this binary runs as the child of a test.
#[test]
fn child_job() {
    let Ok(spec) = std::env::var("WEIR_SINK_CHILD") else {
        return;
    };
    let mut parts = spec.split(',');
    let workers: usize = parts.next().and_then(|w| w.parse().ok()).expect("workers");
    let checkpoints = PathBuf::from(parts.next().expect("checkpoint dir"));
    let out = PathBuf::from(parts.next().expect("output dir"));
    if let Err(e) = run_job(workers, &checkpoints, &out) {
        eprintln!("child job failed: {e}");
        std::process::exit(1);
    }
    std::process::exit(0);
}

fn spawn(
    workers: usize,
    checkpoints: &Path,
    out: &Path,
    crash: Option<&str>,
) -> std::process::Child {
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = Command::new(exe);
    command
        .args(["--exact", "child_job", "--nocapture", "--test-threads=1"])
        .env(
            "WEIR_SINK_CHILD",
            format!("{workers},{},{}", checkpoints.display(), out.display()),
        )
        .env_remove("WEIR_TEST_SINK_CRASH")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(crash) = crash {
        command.env("WEIR_TEST_SINK_CRASH", crash);
    }
    command.spawn().expect("start the child job")
}

fn temp(tag: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("weir-sink-kill-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("temp dir");
    (base.join("checkpoints"), base.join("out"))
}

fn complete_epochs(checkpoints: &Path) -> Vec<u64> {
    manifest::read(checkpoints)
        .map(|m| m.complete.iter().map(|e| e.epoch).collect())
        .unwrap_or_default()
}

/// Runs the job to its end on `workers` and checks what it committed.
fn finish_and_check(workers: usize, checkpoints: &Path, out: &Path) {
    let status = spawn(workers, checkpoints, out, None)
        .wait()
        .expect("wait for the restored job");
    assert!(status.success(), "the restored job failed: {status}");
    let staged = StagedFiles::<String>::files(out, "staged").expect("list staged");
    assert!(staged.is_empty(), "left staged: {staged:?}");
    let committed = StagedFiles::<String>::committed(out).expect("read committed");
    let expected = expected();
    let doubled = committed.windows(2).filter(|w| w[0] == w[1]).count();
    assert_eq!(doubled, 0, "records committed twice");
    assert_eq!(committed.len(), expected.len(), "records lost");
    assert_eq!(committed, expected);
}

#[test]
fn an_uninterrupted_parallel_run_commits_every_worker_s_epochs_once() {
    let (checkpoints, out) = temp("straight");
    run_job(3, &checkpoints, &out).expect("the job runs");
    assert_eq!(
        StagedFiles::<String>::committed(&out).expect("read"),
        expected()
    );
    // Every worker committed epochs of its own: the sink was driven in
    // parallel by two-phase commit, not through one worker.
    let files = StagedFiles::<String>::files(&out, "committed").expect("list");
    let workers: std::collections::BTreeSet<usize> = files.iter().map(|f| f.1).collect();
    assert_eq!(workers.len(), 3, "{files:?}");
    assert!(files.iter().map(|f| f.0).max() > Some(3), "{files:?}");
    assert!(StagedFiles::<String>::files(&out, "staged")
        .expect("list")
        .is_empty());
}

#[test]
fn killed_on_three_workers_and_restored_on_two_commits_everything_once() {
    let (checkpoints, out) = temp("kill");
    let mut child = spawn(3, &checkpoints, &out, None);
    let started = Instant::now();
    // Watch while it runs: nothing is visible before its checkpoint is
    // complete (committed files are listed before the manifest is read, so
    // a file committed in time has its epoch in the manifest read after).
    loop {
        let files = StagedFiles::<String>::files(&out, "committed").expect("list");
        let complete = complete_epochs(&checkpoints);
        let newest = complete.last().copied();
        if let Some(early) = files.iter().find(|(e, _, _)| Some(*e) > newest) {
            let _ = child.kill();
            panic!("committed before its checkpoint ({newest:?}): {early:?}");
        }
        if complete.len() >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no checkpoints in time"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the job ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    // Nothing is visible before its checkpoint is complete.
    let newest = complete_epochs(&checkpoints).last().copied();
    let files = StagedFiles::<String>::files(&out, "committed").expect("list");
    assert!(
        files.iter().all(|(e, _, _)| Some(*e) <= newest),
        "committed past checkpoint {newest:?}: {files:?}"
    );
    let committed = StagedFiles::<String>::committed(&out).expect("read");
    assert!(
        committed.len() < expected().len(),
        "killed after the end: the test proves nothing"
    );
    finish_and_check(2, &checkpoints, &out);
}

#[test]
fn a_crash_between_a_complete_checkpoint_and_its_commit_is_committed_at_restore() {
    let (checkpoints, out) = temp("gap");
    let status = spawn(2, &checkpoints, &out, Some("commit:2"))
        .wait()
        .expect("wait for the crashing job");
    assert!(!status.success(), "the failpoint did not fire");
    // The gap: worker 0 staged and prepared an epoch the manifest records
    // complete, and never committed it.
    let complete = complete_epochs(&checkpoints);
    let newest = complete.last().copied().expect("a complete checkpoint");
    let staged = StagedFiles::<String>::files(&out, "staged").expect("list");
    assert!(
        staged.iter().any(|(e, w, _)| *w == 0 && *e <= newest),
        "nothing in the gap: staged {staged:?}, complete {complete:?}"
    );
    finish_and_check(4, &checkpoints, &out);
}
