//! Crash tests on real processes: the iot and fraud example jobs checkpoint to
//! RocksDB and writes exactly-once parts; it is killed with `kill -9` at
//! random moments and restarted (on 1 or 2 workers, at random) until it
//! finishes. Its published output must then equal an uninterrupted run's:
//! nothing lost, nothing doubled — and at no moment in between may the
//! published output hold a record twice or one the job never produces.
//!
//! `WEIR_KILL_ROUNDS=200 cargo test --test kill_restore kill_minus_nine` (or
//! `scripts/kill-test.sh`) kills more often; `WEIR_KILL_SEED` replays a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir::backend::manifest;
use weir::rng::SplitMix64;
use weir_connectors::staged;

mod support;
use support::{
    args, example, output_within, temp_dir, two_process_hostfile, wait_within, RUN_LIMIT,
};

/// The generator and window flags every run of a test shares.
fn job_flags(job: &str, events: u64, keys: u64) -> Vec<String> {
    let mut flags = args(&[
        "--events",
        &events.to_string(),
        "--keys",
        &keys.to_string(),
        "--late-fraction",
        "0.01",
        "--malformed-fraction",
        "0.01",
        "--quiet",
    ]);
    if job == "iot" {
        flags.extend(["--session-gap".into(), "5s".into()]);
    }
    flags
}

/// A multiset of lines.
type Lines = BTreeMap<String, usize>;

fn count_lines(text: &str, into: &mut Lines) {
    for line in text.lines() {
        *into.entry(line.to_string()).or_default() += 1;
    }
}

/// What the job published so far: every published part of a directory.
fn published(dir: &Path) -> Lines {
    let mut lines = Lines::new();
    if dir.is_dir() {
        for part in staged::published(dir).expect("list parts") {
            // A part is renamed into place whole: it can be read whole.
            let text = std::fs::read_to_string(&part).expect("read part");
            count_lines(&text, &mut lines);
        }
    }
    lines
}

fn file_lines(path: &Path) -> Lines {
    let mut lines = Lines::new();
    count_lines(
        &std::fs::read_to_string(path).expect("read reference output"),
        &mut lines,
    );
    lines
}

/// Lines of `got` beyond what `reference` has: doubled or invented output.
fn excess(got: &Lines, reference: &Lines) -> Vec<String> {
    got.iter()
        .filter(|(line, n)| **n > reference.get(*line).copied().unwrap_or(0))
        .map(|(line, n)| format!("{n}x {line}"))
        .take(10)
        .collect()
}

struct Paths {
    job: &'static str,
    checkpoints: PathBuf,
    output: PathBuf,
    dead: PathBuf,
}

fn start(flags: &[String], paths: &Paths, workers: usize, env: Option<(&str, &str)>) -> Command {
    let mut command = Command::new(example(paths.job));
    command
        .args(flags)
        .args(["-w", &workers.to_string(), "--epoch-interval", "50ms"])
        .arg("--checkpoint-dir")
        .arg(&paths.checkpoints)
        .arg("--output")
        .arg(&paths.output)
        .arg("--dead-letters")
        .arg(&paths.dead)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((k, v)) = env {
        command.env(k, v);
    }
    command
}

/// An uninterrupted run without checkpoints: the expected output.
fn reference(job: &str, flags: &[String], dir: &Path) -> (Lines, Lines) {
    let out = dir.join("reference.jsonl");
    let dead = dir.join("reference.dead.jsonl");
    let child = Command::new(example(job))
        .args(flags)
        .args(["-w", "2", "--no-checkpoints"])
        .arg("--output")
        .arg(&out)
        .arg("--dead-letters")
        .arg(&dead)
        .stdin(Stdio::null())
        .spawn()
        .expect("start the reference run");
    let status = wait_within(child, RUN_LIMIT).status;
    assert!(status.success(), "the reference run failed");
    let lines = file_lines(&out);
    assert!(lines.len() > 20, "the reference run produced output");
    (lines, file_lines(&dead))
}

/// One test's job: its flags, the output of an uninterrupted run, and where
/// the runs under test write.
struct Case {
    dir: PathBuf,
    flags: Vec<String>,
    paths: Paths,
    expected: Lines,
    expected_dead: Lines,
}

impl Case {
    fn new(job: &'static str, tag: &str, events: u64, keys: u64) -> Case {
        Case::on(job, temp_dir(tag), job_flags(job, events, keys))
    }

    /// Job `job` with `flags`, its runs in `dir` (which the case removes).
    fn on(job: &'static str, dir: PathBuf, flags: Vec<String>) -> Case {
        let (expected, expected_dead) = reference(job, &flags, &dir);
        let paths = Paths {
            job,
            checkpoints: dir.join("checkpoints"),
            output: dir.join("out"),
            dead: dir.join("dead"),
        };
        Case {
            dir,
            flags,
            paths,
            expected,
            expected_dead,
        }
    }

    /// The flags, with the generator paced at `rate` records/s.
    fn paced(&self, rate: u32) -> Vec<String> {
        let mut flags = self.flags.clone();
        flags.extend(["--rate".into(), rate.to_string()]);
        flags
    }

    /// Runs the job unpaced on `workers` until it ends; it must succeed.
    fn run_to_end(&self, workers: usize) {
        let out = output_within(&mut start(&self.flags, &self.paths, workers, None));
        assert!(
            out.status.success(),
            "the run to the end failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the job with `flags` on `workers` and kills it with SIGKILL
    /// (no handler runs, nothing is flushed) `after` its start: true if it
    /// killed a running job, false if the job had ended on its own (which
    /// must be a success).
    fn run_and_kill(&self, flags: &[String], workers: usize, after: Duration) -> bool {
        let job = self.paths.job;
        let mut child = start(flags, &self.paths, workers, None)
            .spawn()
            .unwrap_or_else(|e| panic!("start {job}: {e}"));
        std::thread::sleep(after);
        match child
            .try_wait()
            .unwrap_or_else(|e| panic!("poll {job}: {e}"))
        {
            Some(status) => {
                assert!(status.success(), "a run failed on its own");
                false
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                true
            }
        }
    }

    /// The published output and dead letters equal the uninterrupted run's.
    fn assert_output(&self, context: &str) {
        let got = published(&self.paths.output);
        let missing = excess(&self.expected, &got);
        assert!(
            missing.is_empty(),
            "{context}: the output lacks: {missing:#?}"
        );
        assert_eq!(got, self.expected, "{context}");
        assert_eq!(
            published(&self.paths.dead),
            self.expected_dead,
            "{context}: dead letters"
        );
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

#[test]
fn kill_minus_nine_at_random_moments_loses_and_doubles_nothing() {
    kill_at_random_moments("iot", 40);
}

/// The fraud job: sliding windows and a keyed process function (list state
/// and event-time timers).
#[test]
fn kill_minus_nine_the_fraud_job_loses_and_doubles_nothing() {
    kill_at_random_moments("fraud", 200);
}

fn kill_at_random_moments(job: &'static str, keys: u64) {
    let rounds = env_u64("WEIR_KILL_ROUNDS").unwrap_or(24);
    let seed = env_u64("WEIR_KILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
    });
    eprintln!("kill test of {job}: {rounds} kills, WEIR_KILL_SEED={seed}");
    let mut rng = SplitMix64::new(seed);
    // Paced at 8 000 records/s so that the job lives through every kill
    // (each run lives at most 0.7 s); the last run goes at full speed.
    let case = Case::new(job, job, 20_000 + rounds * 6_000, keys);
    let (paths, paced) = (&case.paths, case.paced(8_000));
    let mut kills = 0;
    let mut finished = false;
    let deadline = Instant::now() + Duration::from_secs(300);
    while !finished {
        assert!(Instant::now() < deadline, "the job did not finish in 5 min");
        let workers = 1 + rng.below(2) as usize;
        if kills < rounds {
            let after = Duration::from_millis(100 + rng.below(600));
            if case.run_and_kill(&paced, workers, after) {
                kills += 1;
            } else {
                // It finished before the kill: the input was too short.
                finished = true;
            }
        } else {
            case.run_to_end(workers);
            finished = true;
        }
        let newest = manifest::read(&paths.checkpoints)
            .ok()
            .map(|m| (m.generation, m.workers, m.complete.last().map(|e| e.epoch)));
        eprintln!(
            "round {kills}: -w {workers}; checkpoint (generation, workers, newest) {newest:?}"
        );
        let so_far = published(&paths.output);
        let doubled = excess(&so_far, &case.expected);
        assert!(
            doubled.is_empty(),
            "after {kills} kills (seed {seed}) the output holds records twice or records the job never makes: {doubled:#?}"
        );
    }
    assert_eq!(kills, rounds, "every planned kill hit a running job");
    case.assert_output(&format!("after {kills} kills (seed {seed})"));
    let m = manifest::read(&paths.checkpoints).expect("a manifest");
    assert!(m.finished, "the last run recorded itself finished");
}

/// A torn checkpoint: worker 1 dies just before flushing epoch 4, after
/// worker 0 flushed it. Restore must use epoch 3 (the newest complete one),
/// and the final output must equal an uninterrupted run's.
#[test]
fn a_checkpoint_flushed_by_some_workers_only_is_not_restored() {
    let case = Case::new("iot", "torn", 30_000, 40);
    let paths = &case.paths;
    let crashed = output_within(&mut start(
        &case.paced(10_000),
        paths,
        2,
        Some(("WEIR_FAILPOINT", "torn-flush:1:4")),
    ));
    assert!(
        !crashed.status.success(),
        "the failpoint stopped the job: {}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    assert!(
        String::from_utf8_lossy(&crashed.stderr).contains("failpoint"),
        "{}",
        String::from_utf8_lossy(&crashed.stderr)
    );
    let m = manifest::read(&paths.checkpoints).expect("a manifest");
    let newest = m.complete.last().map(|e| e.epoch);
    assert_eq!(newest, Some(3), "epoch 4 is not complete, epoch 3 is");
    // Worker 0 did flush epoch 4: the torn case really happened.
    let store = weir_rocks::RocksStore::open_read_only(weir::backend::store_path(
        &paths.checkpoints,
        m.generation,
        0,
    ))
    .expect("worker 0's store");
    let flushed_by_0 = weir::backend::checksum_of_epoch_step(&store, 4, "device_minutes")
        .expect("read worker 0's store");
    assert!(flushed_by_0.is_some(), "worker 0 flushed epoch 4");
    drop(store);
    // Restore on another worker count, run to the end.
    case.run_to_end(1);
    case.assert_output("restored after a torn checkpoint");
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs at {} failed: this test needs root (CI runs as root)",
            path.display()
        );
        Tmpfs(path)
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "resizing the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Checkpoints on a disk that fills up: the job stops with one clear line
/// naming the full disk, the last complete checkpoint stays intact, and once
/// there is room again the job resumes from it to the right output.
#[test]
fn a_full_disk_stops_the_job_and_its_last_checkpoint_resumes() {
    let mut case = Case::new("iot", "full", 300_000, 400);
    let disk = Tmpfs::mount(case.dir.join("disk"), "1m");
    case.paths.checkpoints = disk.0.join("checkpoints");
    let paths = &case.paths;
    let full = output_within(&mut start(&case.paced(50_000), paths, 2, None));
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert!(
        !full.status.success(),
        "the job stops when the disk is full"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains("checkpoint"),
        "the error names the cause: {stderr}"
    );
    let m = manifest::read(&paths.checkpoints).expect("the manifest is intact");
    let last = m.complete.last().map(|e| e.epoch);
    assert!(
        last.is_some(),
        "a checkpoint completed before the disk filled"
    );
    disk.resize("64m");
    case.run_to_end(1);
    case.assert_output("resumed after the disk filled");
    drop(disk);
}

/// Starts the job as two processes of one worker each.
fn start_cluster(flags: &[String], paths: &Paths, dir: &Path) -> Vec<std::process::Child> {
    let hostfile = two_process_hostfile(dir);
    (0..2)
        .map(|p| {
            start(flags, paths, 1, None)
                .args(["-n", "2", "-p", &p.to_string()])
                .arg("--hostfile")
                .arg(&hostfile)
                .spawn()
                .expect("start a process")
        })
        .collect()
}

/// Two processes checkpointing into one directory, both killed mid-run and
/// restarted: the output equals an uninterrupted run's, and the worker of
/// the process that does not write the manifest folds its store too.
#[test]
fn two_processes_killed_and_restored_lose_nothing_and_both_fold() {
    let case = Case::new("iot", "cluster", 120_000, 40);
    let paths = &case.paths;
    // Paced so the run lasts 15 s (it is killed long before on an idle
    // machine): on a loaded one, a 6 s run ended before 8 epochs completed,
    // or was killed before process 1 folded.
    let mut cluster = start_cluster(&case.paced(8_000), paths, &case.dir);
    // Kill once enough epochs are complete for both processes to have
    // folded (every 4 epochs; startup takes longer on a busy machine),
    // while the job still runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let newest = || {
        manifest::read(&paths.checkpoints)
            .ok()
            .and_then(|m| m.complete.last().map(|e| e.epoch))
    };
    while newest() < Some(16) {
        assert!(Instant::now() < deadline, "no checkpoint completed in 60 s");
        for child in &mut cluster {
            let ended = child.try_wait().expect("poll a process");
            assert!(
                ended.is_none(),
                "a process ended before the kill: {ended:?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    for child in &mut cluster {
        let _ = child.kill();
        let _ = child.wait();
    }
    let m = manifest::read(&paths.checkpoints).expect("a manifest");
    assert!(
        m.complete.len() >= 2,
        "checkpoints completed: {:?}",
        m.complete
    );
    let store = weir_rocks::RocksStore::open_read_only(weir::backend::store_path(
        &paths.checkpoints,
        m.generation,
        1,
    ))
    .expect("worker 1's store");
    let folded = weir::backend::folded_through(&store).expect("read it");
    assert!(folded.is_some(), "process 1's worker folded its store");
    drop(store);
    for child in start_cluster(&case.flags, paths, &case.dir) {
        let out = wait_within(child, RUN_LIMIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    case.assert_output("two processes restored");
}

/// Reading a file: the job is killed while it reads a CSV file as striped
/// splits (64 KiB chunks, so many chunk changes), restarted on 1 or 2
/// workers, and the published output equals an uninterrupted run's: split
/// positions (offset, line and chunk) restore across worker counts.
#[test]
fn kill_minus_nine_while_reading_a_file_loses_and_doubles_nothing() {
    let dir = temp_dir("file-kill");
    let input = dir.join("readings.csv");
    let mut text = String::from("device,ts_ms,value\n");
    let mut rng = SplitMix64::new(11);
    for i in 0..300_000u64 {
        let ts = 1_000_000 + i * 2 - rng.below(400).min(i * 2);
        if i % 997 == 5 {
            text.push_str("not,a,reading\n");
        } else {
            text.push_str(&format!("{},{ts},{}.5\n", rng.below(40), rng.below(90)));
        }
    }
    std::fs::write(&input, text).expect("write input");
    let flags = args(&[
        "--input",
        &input.display().to_string(),
        "--file-chunk",
        "64K",
        "--session-gap",
        "5s",
        "--quiet",
    ]);
    let case = Case::on("iot", dir, flags);
    let paths = &case.paths;
    let mut rng = SplitMix64::new(env_u64("WEIR_KILL_SEED").unwrap_or(5));
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the job did not finish in 2 min");
        let workers = 1 + rng.below(2) as usize;
        if kills == 6 {
            case.run_to_end(workers);
            break;
        }
        let after = Duration::from_millis(150 + rng.below(300));
        if !case.run_and_kill(&case.flags, workers, after) {
            break;
        }
        kills += 1;
        let doubled = excess(&published(&paths.output), &case.expected);
        assert!(doubled.is_empty(), "after {kills} kills: {doubled:#?}");
    }
    assert!(kills >= 3, "only {kills} kills hit a running job");
    let m = manifest::read(&paths.checkpoints).expect("a manifest");
    assert!(
        m.complete.len() > 1,
        "checkpoints completed: {:?}",
        m.complete
    );
    case.assert_output(&format!("after {kills} kills"));
}
