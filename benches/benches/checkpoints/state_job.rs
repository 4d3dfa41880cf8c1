//! The large-state job of part 3: a source of keys that stops its run
//! once its last epoch is complete (and notes when a restore reopens it at
//! its end), and a keyed logic holding incompressible state per key that
//! counts what it restores.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir::backend::manifest;
use weir::config::BackendHandle;
use weir::rng::SplitMix64;
use weir::source::SplitStart;
use weir::source::{position_of, position_word};
use weir::stateful::{Changes, Emit, KeyedLogic};
use weir::{
    EventTime, Fault, ReadItem, ReadStatus, RunArgs, Source, SplitId, SplitReader, Watermarks,
};

/// Keys `0..keys` over `splits` splits (key `k` on split `k % splits`), an
/// epoch every `per_epoch` records. After the last record it waits until
/// the manifest in `dir` records its last epoch complete, then fails, so
/// the run does not end cleanly (a finished run is not restored). Opened at
/// its end (a restore), it notes when and fails at once.
#[derive(Clone)]
pub(crate) struct KeysSource {
    pub(crate) keys: u64,
    pub(crate) splits: u32,
    pub(crate) per_epoch: u64,
    pub(crate) dir: PathBuf,
    pub(crate) opened_at_end: Arc<Mutex<Vec<Instant>>>,
}

impl KeysSource {
    /// The last epoch a split closes (every split closes as many).
    pub(crate) fn last_epoch(&self) -> u64 {
        let per_split = self.keys / self.splits as u64;
        per_split.div_ceil(self.per_epoch).max(1) - 1
    }
}

pub(crate) struct KeysSplit {
    source: KeysSource,
    split: u64,
    /// Keys this split produced.
    produced: u64,
    /// When the split ran out.
    ended: Option<Instant>,
    /// Opened at its end (a restore): fail at once.
    restored_at_end: bool,
}

impl KeysSplit {
    fn total(&self) -> u64 {
        let (k, n) = (self.source.keys, self.source.splits as u64);
        k / n + u64::from(self.split < k % n)
    }
}

impl Source for KeysSource {
    type Item = u64;

    fn splits(&self) -> u32 {
        self.splits
    }

    /// Epochs end where the readers put them (every `per_epoch` keys).
    fn reader_epochs(&self) -> bool {
        true
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<u64>>>, Fault> {
        weir::source::open_each(splits, |split, at| {
            self.open_split(split, at.unwrap_or(&position_of(&[0])))
        })
    }
}

impl KeysSource {
    fn open_split(
        &mut self,
        split: SplitId,
        position: &[u8],
    ) -> Result<Box<dyn SplitReader<u64>>, Fault> {
        let mut reader = KeysSplit {
            source: self.clone(),
            split: split.0 as u64,
            produced: position_word(position, 0)?,
            ended: None,
            restored_at_end: false,
        };
        if reader.produced >= reader.total() && reader.produced > 0 {
            reader.restored_at_end = true;
            if let Ok(mut at) = self.opened_at_end.lock() {
                at.push(Instant::now());
            }
        }
        Ok(Box::new(reader))
    }
}

impl SplitReader<u64> for KeysSplit {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<u64>>) -> Result<ReadStatus, Fault> {
        let total = self.total();
        if self.restored_at_end {
            return Err("stop (the bench ends its runs this way)".into());
        }
        if self.produced >= total {
            let ended = *self.ended.get_or_insert_with(Instant::now);
            let recorded = manifest::read(&self.source.dir)
                .ok()
                .and_then(|m| m.complete.last().map(|e| e.epoch));
            if recorded < Some(self.source.last_epoch()) {
                if ended.elapsed() > Duration::from_secs(600) {
                    return Err("the last epoch never completed".into());
                }
                return Ok(ReadStatus::Idle);
            }
            return Err("stop (the bench ends its runs this way)".into());
        }
        let per_epoch = self.source.per_epoch;
        let n = (max as u64).min(total - self.produced);
        for _ in 0..n {
            let key = self.produced * self.source.splits as u64 + self.split;
            out.push(ReadItem::Record(key));
            self.produced += 1;
            if self.produced.is_multiple_of(per_epoch) || self.produced == total {
                out.push(ReadItem::EndEpoch);
                return Ok(ReadStatus::Ready);
            }
        }
        Ok(ReadStatus::Ready)
    }

    fn position(&self) -> Vec<u8> {
        position_of(&[self.produced])
    }
}

/// Per key, `value_bytes` of (incompressible) state; counts what restores.
pub(crate) struct Blobs {
    value_bytes: usize,
    state: HashMap<u64, Vec<u8>>,
    changed: HashSet<u64>,
    tracking: bool,
    restored: Arc<(AtomicU64, AtomicU64)>,
}

pub(crate) fn blob(key: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(key);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

impl KeyedLogic<u64, u64> for Blobs {
    type Out = u64;
    type Late = u64;
    fn on_record(
        &mut self,
        key: u64,
        _event_time: EventTime,
        _record: u64,
        _stamp: EventTime,
        _emit: &mut Emit<u64, u64>,
    ) {
        let len = self.value_bytes;
        self.state.entry(key).or_insert_with(|| blob(key, len));
        if self.tracking {
            self.changed.insert(key);
        }
    }
    fn on_watermark(&mut self, _watermark: EventTime, _emit: &mut Emit<u64, u64>) {}
    fn next_fire(&self) -> Option<EventTime> {
        None
    }
    fn track_changes(&mut self, on: bool) {
        self.tracking = on;
    }
    fn take_changes(&mut self, out: &mut Changes<u64>) {
        for key in self.changed.drain() {
            match self.state.get(&key) {
                Some(state) => out.put_bytes(key, state),
                None => out.remove(key),
            }
        }
    }
    fn restore(&mut self, key: u64, state: &[u8]) -> Result<(), String> {
        self.restored.0.fetch_add(1, Ordering::Relaxed);
        self.restored
            .1
            .fetch_add(state.len() as u64, Ordering::Relaxed);
        self.state.insert(key, state.to_vec());
        // A restore into a new generation writes what it restored.
        if self.tracking {
            self.changed.insert(key);
        }
        Ok(())
    }
}

pub(crate) fn blobs_job(
    dir: &Path,
    workers: usize,
    source: KeysSource,
    value_bytes: usize,
    restored: &Arc<(AtomicU64, AtomicU64)>,
    backend: BackendHandle,
) -> Duration {
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3_600);
    args.checkpoint_dir = Some(dir.to_path_buf());
    args.backend = Some(backend);
    let restored = Arc::clone(restored);
    let started = Instant::now();
    let result = weir::run(&args, move |p| {
        let _ = p
            .source("keys", source.clone())
            // Event times rise with the keys. (They must move: a source
            // whose watermark stands still never completes an epoch.)
            .event_time(|k: &u64| *k, Watermarks::ascending())
            .key_by("by_key", |k| *k)
            .stateful(
                "blobs",
                Blobs {
                    value_bytes,
                    state: HashMap::new(),
                    changed: HashSet::new(),
                    tracking: false,
                    restored: Arc::clone(&restored),
                },
            );
    });
    match result {
        Err(e) if e.to_string().contains("stop (the bench") => {}
        other => panic!("the state job should stop at its end: {other:?}"),
    }
    started.elapsed()
}
