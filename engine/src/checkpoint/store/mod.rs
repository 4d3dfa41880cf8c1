//! The storage a checkpoint needs, as a small trait, and the checkpoint
//! operations written once on top of it.
//!
//! [`StateStore`] is the I/O edge: atomic batches ([`Batch`]), range scans,
//! point reads. [`MemoryStore`] implements it for tests; `weir-rocks`
//! implements it on RocksDB. The operations on it are the same on every
//! backend, one module each: `flush` writes an epoch's flush with its
//! marker ([`write_epoch`], [`EpochWriter`]) and recomputes its checksum
//! ([`checksum_of_epoch_step`]); `fold` compacts deltas into the base
//! ([`fold`]) and discards a torn tail ([`discard_after`]); `load` reads
//! state and positions back ([`load_state`], [`load_positions_through`]).
//! Every key they touch is built by [`layout`](super::layout).

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{KeyGroup, SplitId};

mod batch;
mod checksum;
mod flush;
mod fold;
mod load;

pub use batch::{Batch, Op};
pub use flush::{checksum_of_epoch_step, write_epoch, write_sealed, EpochWriter};
pub use fold::{discard_after, fold, folded_through};
pub use load::{load_positions, load_positions_through, load_state};

/// A storage failure, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// A worker's checkpoint storage.
pub trait StateStore {
    /// Applies a batch atomically and durably (synced before returning).
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError>;
    /// Applies a batch atomically, without waiting for it to reach disk: it
    /// is durable once a later [`StateStore::write`] returns (that write
    /// syncs everything written before it). A flush writes its chunks this
    /// way and syncs with its marker, so a marker on disk means all of its
    /// flush is. Defaults to [`StateStore::write`].
    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.write(batch)
    }
    /// Calls `visit` for every key in `[start, end)`, in key order.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError>;
    /// Reads one key.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// A handle that writes batches to this store from another thread, if
    /// the store can take writes from two threads at once: a stateful
    /// operator's flush is then written while its worker goes on with the
    /// next epoch (the epoch is reported flushed once the write is durable).
    /// Default: none, and flushes are written on the worker.
    fn background_writer(&self) -> Option<Box<dyn BackgroundWriter>> {
        None
    }
}

/// Writes batches to a store from a thread of its own (see
/// [`StateStore::background_writer`]).
pub trait BackgroundWriter: Send {
    /// As [`StateStore::write`]: atomically and durably.
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError>;
    /// As [`StateStore::write_unsynced`].
    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.write(batch)
    }
}

/// An in-memory [`StateStore`], for tests.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StateStore for MemoryStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        for op in batch.ops() {
            match op {
                Op::Put(k, v) => {
                    self.map.insert(k.to_vec(), v.to_vec());
                }
                Op::Delete(k) => {
                    self.map.remove(k);
                }
                Op::DeleteRange(s, e) => {
                    let doomed: Vec<Vec<u8>> = self
                        .map
                        .range(s.to_vec()..e.to_vec())
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in doomed {
                        self.map.remove(&k);
                    }
                }
            }
        }
        Ok(())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        for (k, v) in self.map.range(start.to_vec()..end.to_vec()) {
            visit(k, v);
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.get(key).cloned())
    }
}

/// A change to one key's state in an epoch: the new encoding, or `None` when
/// the key's state was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The operator (step name).
    pub operator: String,
    /// The key's group.
    pub group: KeyGroup,
    /// The encoded key.
    pub key: Vec<u8>,
    /// The encoded state, or `None` for removed.
    pub value: Option<Vec<u8>>,
}

/// A split's position at the end of an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The source (step name).
    pub source: String,
    /// The split.
    pub split: SplitId,
    /// The encoded position.
    pub position: Vec<u8>,
}
