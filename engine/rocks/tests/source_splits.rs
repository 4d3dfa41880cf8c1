//! Sources across a restore: a split the checkpoint does not know (a Kafka
//! partition added since) starts from the source's start instead of
//! failing the restore; split identities need not be `0..n`; a worker's
//! splits are opened together; a source hears each complete checkpoint.
//! Output goes through the parallel exactly-once test sink, so "nothing
//! lost, nothing doubled" is exact.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir::backend::manifest;
use weir::source::SplitStart;
use weir::testing::{Script, StagedFiles};
use weir::{Fault, Source, SplitId, SplitReader, Watermarks};

mod support;

type Rec = (u32, u64);

/// Each `open_splits` call: (split, whether it had a position).
type Opened = Arc<Mutex<Vec<Vec<(u32, bool)>>>>;

/// Splits with identities `ids` (split `id` of the script holds records
/// `(id, i)`), remembering every `open_splits` call and every complete
/// checkpoint it hears of.
#[derive(Clone)]
struct Partitions {
    ids: Vec<u32>,
    /// The script, indexed by split identity.
    script: Script<Rec>,
    opened: Opened,
    heard: Arc<Mutex<Vec<u64>>>,
}

impl Source for Partitions {
    type Item = Rec;
    fn splits(&self) -> u32 {
        self.ids.len() as u32
    }
    fn split_ids(&self) -> Vec<SplitId> {
        self.ids.iter().map(|i| SplitId(*i)).collect()
    }
    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Rec>>>, Fault> {
        if let Ok(mut opened) = self.opened.lock() {
            opened.push(
                splits
                    .iter()
                    .map(|s| (s.split.0, s.position.is_some()))
                    .collect(),
            );
        }
        self.script.open_splits(splits)
    }
    fn reader_epochs(&self) -> bool {
        self.script.reader_epochs()
    }
    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
        if let Ok(mut heard) = self.heard.lock() {
            heard.push(epoch);
        }
        Ok(())
    }
}

const PER_SPLIT: u64 = 60;

/// A script with splits `0..=max_id`, each `PER_SPLIT` records with an epoch
/// end every 10; with `crash`, every split stops after 25 records, goes
/// quiet (so the epochs before are checkpointed) and fails.
fn script(max_id: u32, crash: bool) -> Script<Rec> {
    let mut script = Script::new();
    for id in 0..=max_id {
        if id > 0 {
            script = script.split();
        }
        for i in 0..PER_SPLIT {
            if crash && i == 25 {
                script = script
                    .idle(Duration::from_millis(400))
                    .fail("simulated crash");
                break;
            }
            script = script.record((id, i));
            if i % 10 == 9 {
                script = script.end_epoch();
            }
        }
    }
    script
}

fn run(
    workers: usize,
    source: Partitions,
    checkpoints: &Path,
    out: &Path,
) -> Result<weir::Summary, weir::JobError> {
    let mut args = support::checkpointed(workers, checkpoints);
    args.quiet = true;
    let sink = StagedFiles::<String>::new(out);
    weir::run(&args, move |p| {
        p.source("partitions", source.clone())
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .map(|(id, i)| format!("{id}-{i}"))
            .sink("out", sink.clone());
    })
}

#[test]
fn a_split_added_after_the_checkpoint_is_read_from_the_start() {
    let base = std::env::temp_dir().join(format!("weir-source-splits-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (checkpoints, out) = (base.join("checkpoints"), base.join("out"));
    let heard = Arc::new(Mutex::new(Vec::new()));
    let opened = Arc::new(Mutex::new(Vec::new()));
    // Partitions 1 and 4 (identities, not 0..n), crashing part-way.
    let first = Partitions {
        ids: vec![1, 4],
        script: script(6, true),
        opened: Arc::clone(&opened),
        heard: Arc::clone(&heard),
    };
    assert!(run(2, first, &checkpoints, &out).is_err(), "the crash");
    let complete: Vec<u64> = manifest::read(&checkpoints)
        .expect("a manifest")
        .complete
        .iter()
        .map(|e| e.epoch)
        .collect();
    assert!(!complete.is_empty(), "checkpoints before the crash");
    let heard_before: Vec<u64> = heard.lock().expect("lock").clone();
    assert!(!heard_before.is_empty(), "the source heard of checkpoints");
    assert!(
        heard_before
            .iter()
            .all(|e| complete.contains(e) || *e < complete[0]),
        "it heard only of complete ones: {heard_before:?} vs {complete:?}"
    );
    // Each of the two workers reading the source heard each epoch once;
    // the crash may come between the two hearing the newest one.
    let distinct: BTreeSet<u64> = heard_before.iter().copied().collect();
    let newest = distinct.last().copied();
    assert!(
        distinct.iter().all(|e| {
            let times = heard_before.iter().filter(|h| *h == e).count();
            times == 2 || (times == 1 && Some(*e) == newest)
        }),
        "once per worker: {heard_before:?}"
    );
    // Split 1 on worker 1, split 4 on worker 0: each worker opened its own
    // splits in one call.
    let calls: BTreeSet<Vec<(u32, bool)>> = opened.lock().expect("lock").drain(..).collect();
    assert_eq!(
        calls,
        BTreeSet::from([vec![(1, false)], vec![(4, false)]]),
        "one call per worker"
    );

    // Restored on 3 workers with partition 6 added: 1 and 4 (both worker
    // 1's now, opened together) resume, 6 (unknown to the checkpoint)
    // starts from its beginning.
    let second = Partitions {
        ids: vec![1, 4, 6],
        script: script(6, false),
        opened: Arc::clone(&opened),
        heard: Arc::clone(&heard),
    };
    run(3, second, &checkpoints, &out).expect("the restored job runs");
    let calls: BTreeSet<Vec<(u32, bool)>> = opened.lock().expect("lock").drain(..).collect();
    assert_eq!(
        calls,
        BTreeSet::from([vec![(1, true), (4, true)], vec![(6, false)]]),
        "resumed where known, from the start where not"
    );
    let mut expected: Vec<String> = [1u32, 4, 6]
        .iter()
        .flat_map(|id| (0..PER_SPLIT).map(move |i| format!("\"{id}-{i}\"")))
        .collect();
    expected.sort();
    assert_eq!(
        StagedFiles::<String>::committed(&out).expect("read"),
        expected
    );
    let _ = std::fs::remove_dir_all(&base);
}
