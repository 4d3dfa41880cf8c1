//! Writing one step's flush of an epoch ([`EpochWriter`], [`write_epoch`]):
//! its deltas or positions, then its marker with their checksum; and
//! recomputing that checksum ([`checksum_of_epoch_step`]) to verify it.

use super::checksum::Checksum;
use super::{Batch, Position, StateChange, StateStore, StoreError};
use crate::checkpoint::layout;
use crate::ids::{KeyGroup, SplitId};

/// The most a flush hands the store in one write: a flush of a million
/// keys goes in chunks, so that neither weir nor RocksDB copies it whole
/// into fresh memory every epoch.
const CHUNK_BYTES: usize = 4 << 20;

/// One step's flush of one epoch on one worker, built in place: its state
/// deltas (or source positions), then, on [`EpochWriter::write`], the marker
/// holding their checksum. Each key may be given once per flush.
pub struct EpochWriter<'a> {
    epoch: u64,
    step: &'a str,
    batch: &'a mut Batch,
    checksum: Checksum,
}

impl<'a> EpochWriter<'a> {
    /// A flush of `step` for `epoch`, built in `batch` (emptied first; a
    /// caller that flushes every epoch keeps it to reuse its memory).
    pub fn new(epoch: u64, step: &'a str, batch: &'a mut Batch) -> Self {
        batch.clear();
        EpochWriter {
            epoch,
            step,
            batch,
            checksum: Checksum::new(epoch),
        }
    }

    /// The key's new state (`None`: removed).
    pub fn state(&mut self, group: KeyGroup, key: &[u8], value: Option<&[u8]>) {
        let (epoch, step) = (self.epoch, self.step);
        let (k, v) = self.batch.put_with(
            |out| layout::push_delta_key(out, epoch, step, group, key),
            |out| layout::push_delta_value(out, value),
        );
        self.checksum.pair(k, v);
    }

    /// A split's position at the end of the epoch.
    pub fn position(&mut self, split: SplitId, position: &[u8]) {
        let key = layout::position_key(self.epoch, self.step, split);
        self.checksum.pair(&key, position);
        self.batch.put(key, position);
    }

    /// Writes the batch with its marker; returns the checksum.
    pub fn write(self, store: &mut dyn StateStore) -> Result<u64, StoreError> {
        let (epoch, step) = (self.epoch, self.step);
        let (batch, checksum) = self.seal();
        write_sealed(batch, epoch, step, checksum, &mut |b, synced| {
            if synced {
                store.write(b)
            } else {
                store.write_unsynced(b)
            }
        })?;
        Ok(checksum)
    }

    /// Finishes the flush without writing it: puts the batch in key order
    /// and returns it with the checksum, for [`write_sealed`] (on this
    /// thread or another).
    pub fn seal(self) -> (&'a mut Batch, u64) {
        // In key order: RocksDB inserts a sorted batch into its memtable
        // about twice as fast as a shuffled one (the logic's changes come
        // from a hash set).
        self.batch.sort_by_key();
        debug_assert!(
            self.batch.keys_unique(),
            "weir invariant: a flush of `{}` gives a key twice",
            self.step
        );
        (self.batch, self.checksum.value())
    }
}

/// Writes a sealed flush ([`EpochWriter::seal`]) of `step` for `epoch` with
/// its marker, through `write` (`true`: synced). A flush under 4 MiB is one
/// synced write; a larger one goes in chunks, the last one with the marker,
/// synced. A crash in between leaves deltas without a marker: a torn flush,
/// which no restore reads and the next run discards. Appends the marker to
/// `batch`.
pub fn write_sealed(
    batch: &mut Batch,
    epoch: u64,
    step: &str,
    checksum: u64,
    write: &mut dyn FnMut(&Batch, bool) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let marker = layout::marker_key(epoch, step);
    if batch.size_in_bytes() <= CHUNK_BYTES {
        batch.put(marker, checksum.to_le_bytes());
        return write(batch, true);
    }
    let mut chunk = Batch::with_capacity(
        batch.size_in_bytes().min(CHUNK_BYTES) + 256,
        batch.len().min(1 << 16) + 1,
    );
    for op in batch.ops() {
        chunk.push_op(op);
        if chunk.size_in_bytes() >= CHUNK_BYTES {
            write(&chunk, false)?;
            chunk.clear();
        }
    }
    chunk.put(marker, checksum.to_le_bytes());
    write(&chunk, true)
}

/// Writes one step's flush of `epoch` on one worker (see
/// [`EpochWriter`]). Every change and position must belong to `step`, each
/// key at most once. Returns the checksum (for the manifest).
pub fn write_epoch(
    store: &mut dyn StateStore,
    epoch: u64,
    step: &str,
    changes: &[StateChange],
    positions: &[Position],
) -> Result<u64, StoreError> {
    debug_assert!(changes.iter().all(|c| c.operator == step));
    debug_assert!(positions.iter().all(|p| p.source == step));
    let mut batch = Batch::default();
    let mut writer = EpochWriter::new(epoch, step, &mut batch);
    for c in changes {
        writer.state(c.group, &c.key, c.value.as_deref());
    }
    for p in positions {
        writer.position(p.split, &p.position);
    }
    writer.write(store)
}

/// Recomputes the checksum of what `step` stored for `epoch`, and reads the
/// one its marker recorded: `(recorded, found)`. `Ok(None)`: no marker.
pub fn checksum_of_epoch_step(
    store: &dyn StateStore,
    epoch: u64,
    step: &str,
) -> Result<Option<(u64, u64)>, StoreError> {
    let Some(marker) = store.get(&layout::marker_key(epoch, step))? else {
        return Ok(None);
    };
    let recorded = marker
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0);
    let mut checksum = Checksum::new(epoch);
    let states = layout::delta_range(epoch, step, KeyGroup(0), KeyGroup(u16::MAX));
    for (start, end) in [states, layout::position_range(epoch, step)] {
        store.scan(&start, &end, &mut |k, v| checksum.pair(k, v))?;
    }
    Ok(Some((recorded, checksum.value())))
}
