//! The recording backend: a `Backend` over `weir_rocks::Rocks` whose stores
//! time every `write()` into HDR histograms and count its keys and bytes by
//! epoch (read from the flush's marker), optionally tracking the live state;
//! and [`WriteStats`], the per-epoch summary of one or more recorded runs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use weir::backend::{layout, Backend, Batch, Op, StateStore, StoreError};
use weir::config::BackendHandle;

use crate::stats::{histogram, quantiles};

/// What one epoch's flushes wrote, over every step and worker.
#[derive(Default, Clone)]
pub(crate) struct EpochWrites {
    pub(crate) flushes: u64,
    /// Delta and position keys, and their key + value bytes.
    pub(crate) keys: u64,
    pub(crate) bytes: u64,
    /// State deltas among them (changed keys).
    pub(crate) delta_keys: u64,
    /// Time spent in `write()` by all of the epoch's flushes.
    pub(crate) write_micros: u64,
    /// From the first of the epoch's writes to the end of the last.
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    /// The state after the epoch: live keys and their stored bytes.
    pub(crate) live_keys: u64,
    pub(crate) live_bytes: u64,
}

#[derive(Default)]
pub(crate) struct Recorded {
    /// Microseconds per flush `write()`.
    pub(crate) flush_micros: Option<Histogram<u64>>,
    /// Microseconds per fold `write()` (deltas into the base).
    pub(crate) fold_micros: Option<Histogram<u64>>,
    pub(crate) epochs: BTreeMap<u64, EpochWrites>,
    /// Live state keys (without their epoch) and the size of their value.
    pub(crate) live: HashMap<Vec<u8>, u64>,
    pub(crate) live_bytes: u64,
    /// Track the live state (costs a hash insert per written key).
    pub(crate) track_live: bool,
}

/// A `Backend` over `weir_rocks::Rocks` whose stores time and count writes.
#[derive(Clone)]
pub(crate) struct Recording {
    inner: Arc<weir_rocks::Rocks>,
    log: Arc<Mutex<Recorded>>,
}

impl Recording {
    pub(crate) fn new(track_live: bool) -> Self {
        Recording {
            inner: Arc::new(weir_rocks::Rocks),
            log: Arc::new(Mutex::new(Recorded {
                flush_micros: Some(histogram()),
                fold_micros: Some(histogram()),
                track_live,
                ..Recorded::default()
            })),
        }
    }

    pub(crate) fn handle(&self) -> BackendHandle {
        BackendHandle(Arc::new(self.clone()))
    }

    pub(crate) fn take(&self) -> Recorded {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }
}

impl Backend for Recording {
    fn open(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(RecordingStore {
            inner: self.inner.open(path)?,
            log: Arc::clone(&self.log),
        }))
    }
    fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        self.inner.open_read_only(path)
    }
}

pub(crate) struct RecordingStore {
    inner: Box<dyn StateStore>,
    log: Arc<Mutex<Recorded>>,
}

impl RecordingStore {
    /// Times and counts one write, then hands it on.
    fn record(&mut self, batch: &Batch, sync: bool) -> Result<(), StoreError> {
        // Read the batch before it goes: its epoch (from the flush marker),
        // what it writes, and whether it is a fold.
        let mut epoch = None;
        let mut fold = false;
        let (mut keys, mut bytes, mut delta_keys) = (0u64, 0u64, 0u64);
        let mut deltas: Vec<(Vec<u8>, Option<u64>)> = Vec::new();
        let track = self.log.lock().map(|l| l.track_live).unwrap_or(false);
        for op in batch.ops() {
            if let Op::Put(k, v) = op {
                match k.first() {
                    Some(&layout::MARKER) => epoch = layout::epoch_of(k),
                    Some(&layout::DELTA) | Some(&layout::POSITION) => {
                        // A flush's first chunks carry no marker.
                        epoch = epoch.or(layout::epoch_of(k));
                        keys += 1;
                        bytes += (k.len() + v.len()) as u64;
                        delta_keys += u64::from(k[0] == layout::DELTA);
                        if track && k[0] == layout::DELTA {
                            let live =
                                (v.first() == Some(&1)).then_some((k.len() + v.len()) as u64);
                            deltas.push((k.get(9..).unwrap_or_default().to_vec(), live));
                        }
                    }
                    _ if k == layout::FOLDED => fold = true,
                    _ => {}
                }
            }
        }
        let started = Instant::now();
        let result = if sync {
            self.inner.write(batch)
        } else {
            self.inner.write_unsynced(batch)
        };
        let done = Instant::now();
        let micros = done.duration_since(started).as_micros() as u64;
        let mut log = self.log.lock().expect("lock");
        if fold {
            if let Some(h) = log.fold_micros.as_mut() {
                let _ = h.record(micros.max(1));
            }
        }
        if let (Some(epoch), false) = (epoch, fold) {
            if let Some(h) = log.flush_micros.as_mut() {
                let _ = h.record(micros.max(1));
            }
            for (key, live) in deltas {
                let old = match live {
                    Some(size) => log.live.insert(key, size),
                    None => log.live.remove(&key),
                };
                log.live_bytes =
                    (log.live_bytes + live.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
            }
            let (live_keys, live_bytes) = (log.live.len() as u64, log.live_bytes);
            let e = log.epochs.entry(epoch).or_default();
            e.flushes += 1;
            e.keys += keys;
            e.bytes += bytes;
            e.delta_keys += delta_keys;
            e.write_micros += micros;
            e.first.get_or_insert(started);
            e.last = Some(done);
            e.live_keys = live_keys;
            e.live_bytes = live_bytes;
        }
        result
    }
}

impl StateStore for RecordingStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.record(batch, true)
    }

    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.record(batch, false)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        self.inner.scan(start, end, visit)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
}

/// Per-epoch write statistics over one or more recorded runs.
#[derive(Default)]
pub(crate) struct WriteStats {
    pub(crate) flush_micros: Option<Histogram<u64>>,
    pub(crate) epoch_micros: Option<Histogram<u64>>,
    pub(crate) epoch_bytes: Option<Histogram<u64>>,
    pub(crate) epoch_keys: Option<Histogram<u64>>,
}

impl WriteStats {
    pub(crate) fn add(&mut self, log: &Recorded) {
        if let Some(f) = &log.flush_micros {
            let _ = self.flush_micros.get_or_insert_with(histogram).add(f);
        }
        // Epochs only sources flushed (the last ones) say nothing.
        for e in log.epochs.values().filter(|e| e.delta_keys > 0) {
            let _ = self
                .epoch_micros
                .get_or_insert_with(histogram)
                .record(e.write_micros.max(1));
            let _ = self
                .epoch_bytes
                .get_or_insert_with(histogram)
                .record(e.bytes.max(1));
            let _ = self
                .epoch_keys
                .get_or_insert_with(histogram)
                .record(e.keys.max(1));
        }
    }

    pub(crate) fn print(&self, indent: &str) {
        let show = |o: &Option<Histogram<u64>>, unit: f64| match o {
            Some(h) => quantiles(h, unit),
            None => "-".into(),
        };
        println!(
            "{indent}one write() of a flush (<= 4 MiB, last synced):    {} ms",
            show(&self.flush_micros, 1e3)
        );
        println!(
            "{indent}one epoch, all its flushes' write() time:          {} ms",
            show(&self.epoch_micros, 1e3)
        );
        println!(
            "{indent}bytes written per epoch:                           {} MiB",
            show(&self.epoch_bytes, 1024.0 * 1024.0)
        );
        println!(
            "{indent}keys written per epoch:                            {} k",
            show(&self.epoch_keys, 1e3)
        );
    }
}
