//! The `weir-checkpoint` tool on real checkpoints: a window job on RocksDB
//! crashes after several complete epochs; the tool's `list`, `inspect` and
//! `verify` must describe what the script implies, and corrupting the
//! stores (a flipped byte, a truncated file in the WAL or in an SST) or the
//! manifest must be reported — by the tool and by a job's restore plan,
//! which falls back to an older epoch or refuses with a clear error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use weir::backend::manifest::{self, Manifest};
use weir::backend::{plan, store_path};
use weir::rng::SplitMix64;
use weir::testing::Script;
use weir::{KeyGroup, RunArgs, Watermarks};
use weir_operators::{Count, WindowExt, Windows};

mod support;

type Rec = (u32, u64, u64); // key, value, event time

const SPLITS: usize = 2;
const WORKERS: usize = 2;
/// Records per split per epoch.
const PER_EPOCH: usize = 40;
/// Steps per split per epoch: the records, the epoch end, a pause.
const STEPS_PER_EPOCH: usize = PER_EPOCH + 2;
/// Epochs each split closes before the crash.
const EPOCHS_BEFORE_CRASH: usize = 6;
const KEEP: usize = 5;

/// Split `s`'s `i`-th record: keys spread wider as the input goes on, so
/// every epoch adds keys; event times ascend within the first hour.
fn record(split: usize, i: usize, rng: &mut SplitMix64) -> Rec {
    let key = split as u32 * 1_000 + rng.below(20 + i as u64 / 4) as u32;
    (key, rng.below(100), i as u64 * 20)
}

/// One split per worker; an epoch ends every `PER_EPOCH` records, followed
/// by a short pause so that each epoch completes before the next.
fn script(epochs: usize) -> Script<Rec> {
    let mut script = Script::new();
    for split in 0..SPLITS {
        if split > 0 {
            script = script.split();
        }
        let mut rng = SplitMix64::new(split as u64 + 7);
        for i in 0..epochs * PER_EPOCH {
            script = script.record(record(split, i, &mut rng));
            if i % PER_EPOCH == PER_EPOCH - 1 {
                script = script.end_epoch().idle(Duration::from_millis(50));
            }
        }
    }
    script
}

/// The keys with state after `epoch`: those of the records of epochs
/// `<= epoch` (split `s`'s epoch `e` holds its records
/// `[e * PER_EPOCH, (e + 1) * PER_EPOCH)`), computed from the script's
/// generator alone.
fn keys_through(epoch: u64) -> BTreeSet<u32> {
    let mut keys = BTreeSet::new();
    for split in 0..SPLITS {
        let mut rng = SplitMix64::new(split as u64 + 7);
        for i in 0..(epoch as usize + 1) * PER_EPOCH {
            keys.insert(record(split, i, &mut rng).0);
        }
    }
    keys
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-ck-tool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn job(s: Script<Rec>) -> impl Fn(&mut weir::Pipeline<'_>) + Send + Sync + 'static {
    move |p: &mut weir::Pipeline<'_>| {
        let keyed = p
            .source("records", s.clone())
            .event_time(|r: &Rec| r.2, Watermarks::ascending())
            .key_by("by_key", |r| r.0);
        // Nothing fires before the crash: every key seen keeps one window.
        let _ = keyed.clone().window(
            "counts",
            Windows::tumbling(Duration::from_secs(3_600)),
            Count,
        );
        // Order-sensitive: keeps records buffered until the watermark passes.
        let _ = keyed.window(
            "sessions",
            Windows::session(Duration::from_secs(600)),
            Count,
        );
    }
}

fn args(dir: &Path) -> RunArgs {
    let mut args = support::checkpointed(WORKERS, dir);
    args.keep_checkpoints = KEEP;
    args
}

/// Runs the job into `dir` until it crashes; returns the manifest.
fn crashed_checkpoint(dir: &Path) -> Manifest {
    let crashed = script(EPOCHS_BEFORE_CRASH + 2)
        .crash_after(EPOCHS_BEFORE_CRASH * STEPS_PER_EPOCH + PER_EPOCH / 10);
    assert!(
        weir::run(&args(dir), job(crashed)).is_err(),
        "the run crashes"
    );
    let m = manifest::read(dir).expect("a manifest");
    assert!(
        m.complete.len() >= 3,
        "several complete epochs: {:?}",
        m.complete.iter().map(|e| e.epoch).collect::<Vec<_>>()
    );
    m
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn tool(args: &[&str], dir: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_weir-checkpoint"))
        .args(args)
        .arg(dir)
        .output()
        .expect("the tool runs");
    let o = Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked"),
        "the tool panicked on {args:?}: {}",
        o.stderr
    );
    o
}

fn newest(m: &Manifest) -> u64 {
    m.complete.last().map(|e| e.epoch).expect("an epoch")
}

/// Where a job started now would restore from (`Err`: it refuses).
fn planned(dir: &Path) -> Result<Option<u64>, String> {
    plan(dir, Arc::new(weir_rocks::Rocks), KEEP, false, WORKERS)
        .map(|p| p.restore.map(|r| r.epoch))
        .map_err(|e| e.to_string())
}

/// The `restore would use epoch N` of `verify`'s output.
fn tool_restore(verify: &str) -> Option<u64> {
    verify
        .lines()
        .find_map(|l| l.strip_prefix("restore would use epoch "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The rows of the first table headed `header` after the line starting
/// with `after`, split on whitespace: indented lines that start with a
/// number.
fn table<'a>(text: &'a str, after: &str, header: &str) -> Vec<Vec<&'a str>> {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(after));
    let _ = lines.by_ref().find(|l| l.trim_start().starts_with(header));
    lines
        .take_while(|l| {
            l.starts_with("  ")
                && l.split_whitespace()
                    .next()
                    .is_some_and(|w| w.parse::<u64>().is_ok())
        })
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn list_inspect_and_verify_describe_a_crashed_job() {
    let dir = temp("sample");
    let m = crashed_checkpoint(&dir);
    let e = newest(&m);

    // list: every complete epoch, the newest restorable, the stores.
    let list = tool(&["list"], &dir);
    println!("{}", list.stdout);
    assert_eq!(list.code, 0, "{}{}", list.stdout, list.stderr);
    assert!(list.stdout.contains(&format!(
        "generation 0, {WORKERS} workers, {} complete epochs",
        m.complete.len()
    )));
    // Fixed windows store panes in the primitive's value: state version 3.
    for step in [
        "records (source v1)",
        "counts (state v4)",
        "sessions (state v2)",
    ] {
        assert!(list.stdout.contains(step), "{step}");
    }
    assert!(
        list.stdout.contains(&format!(
            "restore     epoch {e} (the newest complete epoch)"
        )),
        "{}",
        list.stdout
    );
    for w in 0..WORKERS {
        assert!(list.stdout.contains(&format!("gen-0/worker-{w}")));
    }
    let epochs: BTreeMap<u64, String> = list
        .stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let epoch = words.next()?.parse::<u64>().ok()?;
            Some((epoch, l.to_string()))
        })
        .collect();
    for entry in &m.complete {
        let line = epochs
            .get(&entry.epoch)
            .unwrap_or_else(|| panic!("epoch {} listed", entry.epoch));
        assert!(line.contains("complete, "), "{line}");
    }
    assert!(
        epochs[&e].contains("complete, restorable"),
        "{}",
        epochs[&e]
    );

    // inspect: the operator's keys per key group are the script's.
    let inspect = tool(&["inspect", "--all"], &dir);
    println!("{}", inspect.stdout);
    assert_eq!(inspect.code, 0, "{}{}", inspect.stdout, inspect.stderr);
    assert!(inspect
        .stdout
        .contains(&format!("epoch       {e}: complete, restorable")));
    let keys = keys_through(e);
    let mut expected: BTreeMap<u16, (usize, u64)> = BTreeMap::new();
    for k in &keys {
        let g = KeyGroup::of(k);
        expected.entry(g.0).or_insert((g.worker(WORKERS).0, 0)).1 += 1;
    }
    let summary = format!("{} keys in {} key groups", keys.len(), expected.len());
    let counts_section: String = inspect
        .stdout
        .split("operator sessions")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        counts_section.contains(&summary),
        "expected `{summary}` in\n{counts_section}"
    );
    let rows = table(&inspect.stdout, "operator counts", "GROUP");
    let found: BTreeMap<u16, (usize, u64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].parse().expect("group"),
                (r[1].parse().expect("worker"), r[2].parse().expect("keys")),
            )
        })
        .collect();
    assert_eq!(found, expected, "key groups: (worker, keys)");
    assert!(inspect.stdout.contains("operator sessions (state v2)"));

    // inspect: each split's position is where the script says epoch e ends.
    let splits = table(&inspect.stdout, "source records", "SPLIT");
    assert_eq!(splits.len(), SPLITS, "{splits:?}");
    let e_usize = e as usize;
    for (s, row) in splits.iter().enumerate() {
        let offset = (e_usize + 1) * PER_EPOCH;
        // The script reader's position: its next step, its record offset.
        let next = (e_usize + 1) * STEPS_PER_EPOCH - 1;
        let hex = |n: usize| {
            (n as u64)
                .to_le_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        assert_eq!(row[0], s.to_string());
        assert_eq!(row[1], (s % WORKERS).to_string(), "split {s}'s worker");
        assert_eq!(row[3], "no", "split {s} not done");
        assert_eq!(row[4], offset.to_string(), "split {s}'s offset");
        assert_eq!(row[5..], [hex(next), hex(offset)], "split {s}'s reader");
    }

    // An older epoch, if its state is still there, has fewer keys.
    let oldest_restorable = m
        .complete
        .iter()
        .map(|x| x.epoch)
        .find(|x| epochs[x].contains("restorable"))
        .expect("a restorable epoch");
    if oldest_restorable < e {
        let older = tool(
            &["inspect", "--epoch", &oldest_restorable.to_string()],
            &dir,
        );
        assert_eq!(older.code, 0, "{}", older.stderr);
        let keys = keys_through(oldest_restorable);
        assert!(
            older.stdout.contains(&format!("{} keys in ", keys.len())),
            "{}",
            older.stdout
        );
    }

    // verify: ok, and the same choice as a job's restore.
    let verify = tool(&["verify"], &dir);
    println!("{}", verify.stdout);
    assert_eq!(verify.code, 0, "{}{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains(&format!("epoch {e}: ok")));
    assert_eq!(tool_restore(&verify.stdout), Some(e));
    assert_eq!(planned(&dir), Ok(Some(e)));
    // --checkpoint-dir works as the positional does.
    let flag = Command::new(env!("CARGO_BIN_EXE_weir-checkpoint"))
        .args(["verify", "--checkpoint-dir"])
        .arg(&dir)
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&flag.stdout), verify.stdout);
    // WEIR_KEEP_CHECKPOINT=1 keeps the sample to look at.
    if std::env::var_os("WEIR_KEEP_CHECKPOINT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Every file under a worker's store, with its bytes.
fn store_files(dir: &Path, worker: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(store_path(dir, 0, worker)).expect("a store") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            out.push((path.clone(), std::fs::read(&path).expect("read")));
        }
    }
    out.sort();
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Where the newest complete epoch is on disk: a file under a worker's
/// store and the offset in it of a flush marker's value (the flush's
/// checksum, which the manifest also records), in a file whose name ends
/// with `suffix` (`.log`: the WAL, `.sst`: a table).
fn locate_newest(dir: &Path, m: &Manifest, suffix: &str) -> (PathBuf, usize) {
    let entry = m.complete.last().expect("an epoch");
    for flush in &entry.flushes {
        let needle = flush.checksum.to_le_bytes();
        let hits: Vec<(PathBuf, usize)> = store_files(dir, flush.worker)
            .into_iter()
            .flat_map(|(path, bytes)| {
                find(&bytes, &needle)
                    .into_iter()
                    .map(move |at| (path.clone(), at))
            })
            .collect();
        if let [(path, at)] = hits.as_slice() {
            if path.to_string_lossy().ends_with(suffix) {
                return (path.clone(), *at);
            }
        }
    }
    let files: Vec<String> = (0..WORKERS)
        .flat_map(|w| store_files(dir, w))
        .map(|(p, b)| format!("{} ({} bytes)", p.display(), b.len()))
        .collect();
    panic!(
        "no {suffix} file holds a marker of epoch {}: {files:#?}",
        entry.epoch
    );
}

/// Moves a store's data from its WAL into an SST (RocksDB flushes the
/// memtable), so that the next corruption hits a table.
fn flush_to_sst(dir: &Path) {
    for w in 0..WORKERS {
        let db = rocksdb::DB::open_default(store_path(dir, 0, w)).expect("open");
        db.flush().expect("flush");
    }
}

/// After damage to the newest epoch's store data: `verify` says so and
/// exits 1, the tool and a job's plan agree on an older epoch (or both
/// refuse), and the job restarts from it (or refuses) without a panic.
fn assert_newest_unusable(dir: &Path, m: &Manifest, what: &str) {
    let e = newest(m);
    let verify = tool(&["verify"], dir);
    println!("{what}:\n{}{}", verify.stdout, verify.stderr);
    assert_eq!(verify.code, 1, "{what}: verify exits 1\n{}", verify.stdout);
    let line = verify
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("epoch {e}: ")))
        .unwrap_or_else(|| panic!("{what}: a line for epoch {e}\n{}", verify.stdout));
    assert!(!line.ends_with(": ok"), "{what}: {line}");
    assert!(verify
        .stdout
        .contains(&format!("the newest complete epoch, {e}, does not verify")));
    let list = tool(&["list"], dir);
    assert!(list.code <= 1, "{what}: list runs: {}", list.stderr);
    let listed = list
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&e.to_string()))
        .unwrap_or_else(|| panic!("{what}: epoch {e} listed\n{}", list.stdout));
    assert!(
        listed.contains("UNUSABLE"),
        "{what}: list marks epoch {e}: {listed}"
    );
    let planned = planned(dir);
    println!("{what}: a job's plan: {planned:?}");
    match (&planned, tool_restore(&verify.stdout)) {
        (Ok(Some(restored)), Some(tool)) => {
            assert!(*restored < e, "{what}: restores {restored}, not {e}");
            assert_eq!(*restored, tool, "{what}: the tool and the plan agree");
        }
        (Err(why), None) => {
            assert!(
                why.contains("no checkpoint") && why.contains("--fresh") && !why.contains('\n'),
                "{what}: a clear one-line refusal: {why}"
            );
            assert!(
                verify.stdout.contains("refuses to start"),
                "{}",
                verify.stdout
            );
        }
        (planned, tool) => panic!("{what}: plan {planned:?}, tool {tool:?}"),
    }
    // A job started on it restores the older epoch and runs to the end, or
    // refuses cleanly.
    let result = weir::run(&args(dir), job(script(EPOCHS_BEFORE_CRASH + 2)));
    match (planned, result) {
        (Ok(_), Ok(_)) => {}
        (Err(_), Err(e)) => {
            let message = e.to_string();
            assert!(message.contains("--fresh"), "{what}: {message}");
        }
        (planned, result) => panic!("{what}: planned {planned:?}, the job: {result:?}"),
    }
}

#[test]
fn a_flipped_byte_in_the_wal_makes_the_newest_epoch_unusable() {
    let dir = temp("flip-wal");
    let m = crashed_checkpoint(&dir);
    // A small store after a crash is WAL-only.
    let (path, at) = locate_newest(&dir, &m, ".log");
    flip(&path, at);
    assert_newest_unusable(&dir, &m, "a flipped byte in the WAL");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_flipped_byte_in_an_sst_makes_the_newest_epoch_unusable() {
    let dir = temp("flip-sst");
    let m = crashed_checkpoint(&dir);
    flush_to_sst(&dir);
    let (path, at) = locate_newest(&dir, &m, ".sst");
    flip(&path, at);
    assert_newest_unusable(&dir, &m, "a flipped byte in an SST");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Damage to state that the newest epoch's checksums do not cover (an old
/// delta, which a restore still loads): `verify` reads what a restore loads
/// and calls the epochs that load it unusable, and a job's start makes the
/// same check, so it refuses them — here every one, each loading the
/// damaged block — cleanly, with the error and no panic, instead of picking
/// the newest by its checksums and failing to load it.
#[test]
fn a_flipped_byte_in_old_state_is_found_and_the_restore_fails_cleanly() {
    let dir = temp("flip-old");
    let m = crashed_checkpoint(&dir);
    let e = newest(&m);
    flush_to_sst(&dir);
    // An SST starts with its data blocks, in key order: the first holds
    // the smallest keys, epoch 0's deltas (blocks are compressed, so the
    // keys cannot be searched for); the newest epoch's data is further on.
    let path = store_files(&dir, 0)
        .into_iter()
        .map(|(p, _)| p)
        .find(|p| p.to_string_lossy().ends_with(".sst"))
        .expect("an SST");
    let at = 20;
    flip(&path, at);

    let verify = tool(&["verify"], &dir);
    println!("{}", verify.stdout);
    assert_eq!(verify.code, 1, "{}", verify.stdout);
    let line = verify
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("epoch {e}: ")))
        .expect("a line for the newest epoch");
    assert!(
        line.contains("loading the epoch's state fails") && verify.stdout.contains("Corruption"),
        "{line}"
    );
    // The tool and a job's plan agree: an epoch the tool calls unloadable is
    // not restored.
    let planned = planned(&dir);
    println!("a job's plan: {planned:?}");
    assert_ne!(
        planned.as_ref().ok().copied().flatten(),
        Some(e),
        "{planned:?}"
    );
    assert_eq!(
        planned.as_ref().ok().copied().flatten(),
        tool_restore(&verify.stdout)
    );
    let failed = weir::run(&args(&dir), job(script(EPOCHS_BEFORE_CRASH + 2)))
        .expect_err("no epoch's state loads");
    let message = failed.to_string();
    println!("the job: {message}");
    assert!(
        message.contains("Corruption")
            && message.contains("--fresh")
            && !message.contains("panicked"),
        "{message}"
    );
    assert!(
        verify.stdout.contains("refuses to start"),
        "{}",
        verify.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flips a bit of byte `at` of `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at] ^= 0x40;
    std::fs::write(path, &bytes).expect("write");
}

/// Cuts `path` at byte `at`.
fn truncate(path: &Path, at: usize) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(at as u64))
        .expect("truncate");
}

#[test]
fn a_truncated_wal_makes_the_newest_epoch_unusable() {
    let dir = temp("truncate-wal");
    let m = crashed_checkpoint(&dir);
    let (path, at) = locate_newest(&dir, &m, ".log");
    truncate(&path, at);
    assert_newest_unusable(&dir, &m, "a truncated WAL");
    // The tail was cut, the rest is intact: an older epoch restores.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_sst_makes_the_newest_epoch_unusable() {
    let dir = temp("truncate-sst");
    let m = crashed_checkpoint(&dir);
    flush_to_sst(&dir);
    let (path, at) = locate_newest(&dir, &m, ".sst");
    truncate(&path, at);
    assert_newest_unusable(&dir, &m, "a truncated SST");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_manifest_is_reported_as_corrupt() {
    let dir = temp("manifest");
    let _ = crashed_checkpoint(&dir);
    let path = manifest::path(&dir);
    let text = std::fs::read(&path).expect("read");
    std::fs::write(&path, &text[..text.len() / 2]).expect("truncate");
    for command in ["verify", "list", "inspect"] {
        let out = tool(&[command], &dir);
        assert_eq!(out.code, 2, "{command}: {}{}", out.stdout, out.stderr);
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{command}: one line: {}", out.stderr);
        assert!(
            lines[0].contains("manifest") && lines[0].contains("is corrupt"),
            "{command}: {}",
            lines[0]
        );
    }
    let refused = planned(&dir).expect_err("a job refuses");
    assert!(refused.contains("corrupt") && refused.contains("--fresh"));
    // A missing manifest, a missing directory: exit 2 with one line too.
    std::fs::remove_file(&path).expect("remove");
    let out = tool(&["verify"], &dir);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no manifest"), "{}", out.stderr);
    let out = tool(&["list"], &dir.join("nowhere"));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_and_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_weir-checkpoint"))
        .arg("--help")
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for command in ["list", "inspect", "verify"] {
        assert!(help.contains(command), "{help}");
    }
    // No directory: a usage error (exit 2), no panic.
    let out = Command::new(env!("CARGO_BIN_EXE_weir-checkpoint"))
        .arg("verify")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
