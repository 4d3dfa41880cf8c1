//! Epochs end together on every source, behind the first clock to tick.
//!
//! Two workers, one split each, an epoch interval of an hour. Worker 0's
//! reader ends epoch 0 itself and reads on into epoch 1; worker 1's split
//! stays quiet and only goes on once the source has heard that checkpoint 0
//! is complete. Worker 1's own clock never ends epoch 0, so the checkpoint
//! completes only if worker 1's source follows the epoch that its keyed
//! operator saw arrive from worker 0. Without that, worker 1 waits out its
//! deadline and the output carries a marker saying so.
//!
//! Output goes through the exactly-once test sink and is compared with
//! counts computed here from the same records.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::source::SplitStart;
use weir::testing::StagedFiles;
use weir::{Fault, KeyGroup, ReadItem, ReadStatus, Source, SplitReader, Watermarks};
use weir_operators::{Count, WindowExt, Windows};

mod support;

type Rec = (u64, u64); // key, event time (ms)

/// What worker 1's split emits if checkpoint 0 never completes in time.
const TIMED_OUT: u64 = u64::MAX;
const DEADLINE: Duration = Duration::from_secs(20);
const PER_EPOCH: u64 = 400;
const WINDOW_MS: u64 = 1_000;

/// Keys that live on worker `worker` of 2.
fn keys_on(worker: usize) -> Vec<u64> {
    (0u64..)
        .filter(|k| KeyGroup::of(k).worker(2).0 == worker)
        .take(4)
        .collect()
}

/// Split 0: records, an epoch end, more records. Split 1: nothing until
/// checkpoint 0 is heard of, then its records.
fn split_records(split: u32) -> Vec<Rec> {
    // Split 0 writes to keys on both workers, so worker 1's keyed operator
    // sees records of epoch 1 while its own source is still in epoch 0.
    let keys: Vec<u64> = match split {
        0 => keys_on(0).into_iter().chain(keys_on(1)).collect(),
        _ => keys_on(1),
    };
    (0..2 * PER_EPOCH)
        .map(|i| (keys[i as usize % keys.len()], 1_000 + i * 7))
        .collect()
}

#[derive(Clone)]
struct Follow {
    heard_first: Arc<AtomicBool>,
}

impl Source for Follow {
    type Item = Rec;
    fn splits(&self) -> u32 {
        2
    }
    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Rec>>>, Fault> {
        // The test runs once, from the start: positions are not needed.
        Ok(splits
            .iter()
            .map(|s| {
                Box::new(Reader {
                    split: s.split.0,
                    records: split_records(s.split.0),
                    next: 0,
                    started: Instant::now(),
                    heard_first: Arc::clone(&self.heard_first),
                }) as Box<dyn SplitReader<Rec>>
            })
            .collect())
    }
    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
        if epoch == 0 {
            self.heard_first.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

struct Reader {
    split: u32,
    records: Vec<Rec>,
    next: usize,
    started: Instant,
    heard_first: Arc<AtomicBool>,
}

impl SplitReader<Rec> for Reader {
    fn position(&self) -> Vec<u8> {
        (self.next as u64).to_le_bytes().to_vec()
    }
    fn poll(&mut self, _max: usize, out: &mut Vec<ReadItem<Rec>>) -> Result<ReadStatus, Fault> {
        if self.split == 0 {
            // One epoch's records, the epoch end, the rest.
            if self.next == 0 {
                out.extend(
                    self.records[..PER_EPOCH as usize]
                        .iter()
                        .map(|r| ReadItem::Record(*r)),
                );
                out.push(ReadItem::EndEpoch);
                self.next = PER_EPOCH as usize;
                return Ok(ReadStatus::Ready);
            }
            out.extend(
                self.records[self.next..]
                    .iter()
                    .map(|r| ReadItem::Record(*r)),
            );
            self.next = self.records.len();
            return Ok(ReadStatus::Done);
        }
        let heard = self.heard_first.load(Ordering::SeqCst);
        if !heard && self.started.elapsed() < DEADLINE {
            return Ok(ReadStatus::Idle);
        }
        if !heard {
            out.push(ReadItem::Record((TIMED_OUT, 1_000)));
        }
        out.extend(self.records.iter().map(|r| ReadItem::Record(*r)));
        self.next = self.records.len();
        Ok(ReadStatus::Done)
    }
}

fn run(checkpoints: &Path, out: &Path, heard_first: &Arc<AtomicBool>) {
    let mut args = support::checkpointed(2, checkpoints);
    args.quiet = true;
    let sink = StagedFiles::<String>::new(out);
    let source = Follow {
        heard_first: Arc::clone(heard_first),
    };
    weir::run(&args, move |p| {
        p.source("follow", source.clone())
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .key_by("by_key", |r| r.0)
            .window(
                "counts",
                Windows::tumbling(Duration::from_millis(WINDOW_MS)),
                Count,
            )
            .fired
            .map(|f| format!("{} {} {}", f.key, f.window.start, f.value))
            .sink("out", sink.clone());
    })
    .expect("the job runs");
}

#[test]
fn a_quiet_source_ends_its_epoch_with_the_first_clock() {
    let base = std::env::temp_dir().join(format!("weir-epoch-follow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (checkpoints, out) = (base.join("checkpoints"), base.join("out"));
    let heard_first = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    run(&checkpoints, &out, &heard_first);

    assert!(
        heard_first.load(Ordering::SeqCst),
        "checkpoint 0 completed while worker 1's split was still open"
    );
    assert!(
        started.elapsed() < DEADLINE,
        "worker 1 waited out its deadline: its source did not follow epoch 1"
    );
    // Counts per key and window, computed from the same records.
    let mut counts: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (key, ts) in split_records(0).into_iter().chain(split_records(1)) {
        *counts.entry((key, ts / WINDOW_MS * WINDOW_MS)).or_default() += 1;
    }
    let mut expected: Vec<String> = counts
        .iter()
        .map(|((key, start), n)| format!("\"{key} {start} {n}\""))
        .collect();
    expected.sort();
    let committed = StagedFiles::<String>::committed(&out).expect("read the output");
    assert!(
        !committed
            .iter()
            .any(|l| l.starts_with(&format!("\"{TIMED_OUT} "))),
        "worker 1 timed out waiting for checkpoint 0"
    );
    assert_eq!(committed, expected);
    let _ = std::fs::remove_dir_all(&base);
}
