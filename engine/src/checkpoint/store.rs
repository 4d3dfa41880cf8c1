//! The storage a checkpoint needs, as a small trait, and the checkpoint
//! operations written once on top of it.
//!
//! [`StateStore`] is the I/O edge: atomic batches, range scans, point reads.
//! [`MemoryStore`] implements it for tests; `weir-rocks` implements it on
//! RocksDB. The functions below (`write_epoch`, `load_state`, `fold`,
//! `checksum_of_epoch`, …) are the same on every backend.

use std::collections::BTreeMap;
use std::fmt;

use super::layout;
use crate::ids::{KeyGroup, SplitId};

/// A storage failure, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// One change in a [`Batch`], borrowing its bytes from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Sets a key.
    Put(&'a [u8], &'a [u8]),
    /// Removes a key.
    Delete(&'a [u8]),
    /// Removes every key in `[start, end)`.
    DeleteRange(&'a [u8], &'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
    DeleteRange,
}

/// Changes applied atomically: all or none.
///
/// All keys and values live in one buffer (an epoch's flush holds a million
/// of them: one allocation each would cost more than writing them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Kind, start of the key, start of the second part, end.
    ops: Vec<(Kind, usize, usize, usize)>,
}

impl Batch {
    /// An empty batch with room for `bytes` of keys and values and `ops` changes.
    pub fn with_capacity(bytes: usize, ops: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
        }
    }
    fn push(&mut self, kind: Kind, first: &[u8], second: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(first);
        let mid = self.bytes.len();
        self.bytes.extend_from_slice(second);
        self.ops.push((kind, start, mid, self.bytes.len()));
    }
    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(Kind::Put, key.as_ref(), value.as_ref());
    }
    /// Adds a put whose key and value are written in place by `key` and
    /// `value` (each appends to the buffer it is given); returns them.
    pub fn put_with(
        &mut self,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>),
    ) -> (&[u8], &[u8]) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        let mid = self.bytes.len();
        value(&mut self.bytes);
        self.ops.push((Kind::Put, start, mid, self.bytes.len()));
        (&self.bytes[start..mid], &self.bytes[mid..])
    }
    /// Adds a delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(Kind::Delete, key.as_ref(), &[]);
    }
    /// Adds a range delete.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.push(Kind::DeleteRange, start.as_ref(), end.as_ref());
    }
    /// The changes, in order.
    pub fn ops(&self) -> impl Iterator<Item = Op<'_>> + '_ {
        self.ops.iter().map(|&(kind, start, mid, end)| {
            let (first, second) = (&self.bytes[start..mid], &self.bytes[mid..end]);
            match kind {
                Kind::Put => Op::Put(first, second),
                Kind::Delete => Op::Delete(first),
                Kind::DeleteRange => Op::DeleteRange(first, second),
            }
        })
    }
    /// Puts the changes in key order. Only for batches whose order does not
    /// matter: each key given once, no range deletes.
    pub fn sort_by_key(&mut self) {
        debug_assert!(self.ops.iter().all(|op| op.0 != Kind::DeleteRange));
        let bytes = &self.bytes;
        self.ops
            .sort_unstable_by(|a, b| bytes[a.1..a.2].cmp(&bytes[b.1..b.2]));
    }

    /// Whether no key is given twice (after [`Batch::sort_by_key`]).
    fn keys_unique(&self) -> bool {
        let bytes = &self.bytes;
        self.ops
            .windows(2)
            .all(|w| bytes[w[0].1..w[0].2] != bytes[w[1].1..w[1].2])
    }

    /// Adds a change.
    pub fn push_op(&mut self, op: Op<'_>) {
        match op {
            Op::Put(k, v) => self.push(Kind::Put, k, v),
            Op::Delete(k) => self.push(Kind::Delete, k, &[]),
            Op::DeleteRange(s, e) => self.push(Kind::DeleteRange, s, e),
        }
    }

    /// Removes every change, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ops.clear();
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// The bytes of all keys and values.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }
}

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

/// Checksums the (key, value) pairs of one step's flush of an epoch, in any
/// order: the wrapping sum of a hash of each pair, with their count and the
/// epoch. Order-free, so neither a flush nor a verify sorts a million keys.
/// Any change inside one pair changes that pair's hash (every step of
/// [`hash_pair`] is a bijection), so a flipped byte always changes the sum.
#[derive(Clone, Copy)]
struct Checksum {
    epoch: u64,
    sum: u64,
    count: u64,
}

const MIX: u64 = 0x51_7c_c1_b7_27_22_0a_95;

fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

fn step(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(MIX)
}

/// A hash of one (key, value) pair, eight bytes at a time, each part
/// length-prefixed so that (ab, c) and (a, bc) differ.
fn hash_pair(key: &[u8], value: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for part in [key, value] {
        h = step(h, part.len() as u64);
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            h = step(h, u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = step(h, u64::from_le_bytes(w));
        }
    }
    fmix(h)
}

impl Checksum {
    fn new(epoch: u64) -> Self {
        Checksum {
            epoch,
            sum: 0,
            count: 0,
        }
    }
    fn pair(&mut self, k: &[u8], v: &[u8]) {
        self.sum = self.sum.wrapping_add(hash_pair(k, v));
        self.count += 1;
    }
    fn value(&self) -> u64 {
        fmix(
            self.sum
                .wrapping_add(fmix(self.epoch))
                .wrapping_add(self.count.wrapping_mul(MIX)),
        )
    }
}

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
            |out| encode_delta(out, value),
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
        // In key order: RocksDB inserts a sorted batch into its memtable
        // about twice as fast as a shuffled one (the logic's changes come
        // from a hash set).
        self.batch.sort_by_key();
        debug_assert!(
            self.batch.keys_unique(),
            "weir invariant: a flush of `{}` gives a key twice",
            self.step
        );
        // The changes in chunks, the last one with the marker, synced.
        // A crash in between leaves deltas without a marker: a torn
        // flush, which no restore reads and the next run discards.
        let checksum = self.checksum.value();
        let mut chunk = Batch::with_capacity(
            self.batch.size_in_bytes().min(CHUNK_BYTES) + 256,
            self.batch.len().min(1 << 16) + 1,
        );
        for op in self.batch.ops() {
            chunk.push_op(op);
            if chunk.size_in_bytes() >= CHUNK_BYTES {
                store.write_unsynced(&chunk)?;
                chunk.clear();
            }
        }
        chunk.put(
            layout::marker_key(self.epoch, self.step),
            checksum.to_le_bytes(),
        );
        store.write(&chunk)?;
        Ok(checksum)
    }
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

/// A delta value: a tag byte (1 = present, 0 = removed) then the state.
fn encode_delta(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
}

fn decode_delta(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((1, rest)) => Some(rest),
        _ => None,
    }
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

/// The epoch the base holds, if any fold happened.
pub fn folded_through(store: &dyn StateStore) -> Result<Option<u64>, StoreError> {
    Ok(store
        .get(layout::FOLDED)?
        .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
        .map(u64::from_le_bytes))
}

/// Folds every delta of epochs `<= through` into the base and deletes them
/// (and their positions and markers), atomically. Each key's base is
/// written once, from its newest delta, however many epochs are folded.
pub fn fold(store: &mut dyn StateStore, through: u64) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    let start = vec![layout::DELTA];
    let mut end = vec![layout::DELTA];
    end.extend_from_slice(&through.to_be_bytes());
    let end = layout::range_end(end);
    let from = folded_through(store)?.map_or(0, |f| f + 1);
    // Newest epoch first; an older delta of a key already folded is stale.
    let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let several = from < through;
    for epoch in (from..=through).rev() {
        let (first, last) = layout::delta_epoch_range(epoch);
        store.scan(&first, &last, &mut |k, v| {
            let Some((op, group, key)) = layout::parse_state_key(k) else {
                return;
            };
            if several && !seen.insert(k[9..].to_vec()) {
                return;
            }
            match decode_delta(v) {
                Some(state) => {
                    batch.put_with(
                        |out| layout::push_base_key(out, op, group, key),
                        |out| out.extend_from_slice(state),
                    );
                }
                None => batch.delete(layout::base_key(op, group, key)),
            }
        })?;
    }
    batch.delete_range(start, end);
    // Keep each split's newest position through `through`: a split that
    // ended early has no later one.
    let mut newest: BTreeMap<Vec<u8>, (u64, Vec<u8>)> = BTreeMap::new();
    let mut pos_end = vec![layout::POSITION];
    pos_end.extend_from_slice(&through.to_be_bytes());
    let base_start = vec![layout::BASE_POSITION];
    store.scan(
        &base_start,
        &layout::range_end(base_start.clone()),
        &mut |k, v| {
            if v.len() >= 8 {
                let epoch = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
                newest.insert(k.to_vec(), (epoch, v[8..].to_vec()));
            }
        },
    )?;
    store.scan(
        &[layout::POSITION],
        &layout::range_end(pos_end),
        &mut |k, v| {
            if let Some((epoch, source, split)) = layout::parse_position_key(k) {
                let key = layout::base_position_key(source, split);
                if newest.get(&key).is_none_or(|(e, _)| *e <= epoch) {
                    newest.insert(key, (epoch, v.to_vec()));
                }
            }
        },
    )?;
    for (k, (epoch, position)) in newest {
        let mut value = epoch.to_le_bytes().to_vec();
        value.extend(position);
        batch.put(k, value);
    }
    for tag in [layout::POSITION, layout::MARKER] {
        let mut end = vec![tag];
        end.extend_from_slice(&through.to_be_bytes());
        batch.delete_range(vec![tag], layout::range_end(end));
    }
    batch.put(layout::FOLDED, through.to_le_bytes());
    store.write(&batch)
}

/// Deletes everything written for epochs after `epoch` (a torn or abandoned
/// tail), so a restored job can write those epochs again.
pub fn discard_after(store: &mut dyn StateStore, epoch: u64) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    for tag in [layout::DELTA, layout::POSITION, layout::MARKER] {
        let mut start = vec![tag];
        start.extend_from_slice(&(epoch.saturating_add(1)).to_be_bytes());
        batch.delete_range(start, vec![tag + 1]);
    }
    store.write(&batch)
}

/// Receives (key group, key, state) from [`load_state`].
pub type StateVisitor<'a> = dyn FnMut(KeyGroup, &[u8], &[u8]) + 'a;

/// The state of `operator` for key groups `[first, last]` as of `epoch`:
/// base, then each delta up to `epoch` in order. Calls `visit(group, key,
/// state)` once per live key: first the base keys no delta changed, in key
/// order, then the keys the deltas left live, in key order. Only the deltas
/// are held in memory (a few epochs of changes), never the whole state.
pub fn load_state(
    store: &dyn StateStore,
    operator: &str,
    first: KeyGroup,
    last: KeyGroup,
    epoch: u64,
    visit: &mut StateVisitor<'_>,
) -> Result<(), StoreError> {
    // Keyed by the group's bytes then the key's, so that a base key can be
    // looked up without building a tuple.
    let mut deltas: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    let group_key = |group: KeyGroup, key: &[u8], out: &mut Vec<u8>| {
        out.clear();
        out.extend_from_slice(&group.0.to_be_bytes());
        out.extend_from_slice(key);
    };
    let mut probe = Vec::new();
    let from = folded_through(store)?.map_or(0, |f| f + 1);
    for e in from..=epoch {
        let (start, end) = layout::delta_range(e, operator, first, last);
        store.scan(&start, &end, &mut |k, v| {
            if let Some((_, group, key)) = layout::parse_state_key(k) {
                group_key(group, key, &mut probe);
                deltas.insert(probe.clone(), decode_delta(v).map(<[u8]>::to_vec));
            }
        })?;
    }
    let (start, end) = layout::base_range(operator, first, last);
    store.scan(&start, &end, &mut |k, v| {
        if let Some((_, group, key)) = layout::parse_state_key(k) {
            group_key(group, key, &mut probe);
            if !deltas.contains_key(probe.as_slice()) {
                visit(group, key, v);
            }
        }
    })?;
    for (group_and_key, value) in &deltas {
        if let (Some(v), Some((group, key))) = (value, group_and_key.split_at_checked(2)) {
            visit(KeyGroup(u16::from_be_bytes([group[0], group[1]])), key, v);
        }
    }
    Ok(())
}

/// Each split's newest position recorded at or before `epoch` (a split that
/// ended stops recording), folded ones included.
pub fn load_positions_through(
    store: &dyn StateStore,
    epoch: u64,
) -> Result<Vec<Position>, StoreError> {
    let mut newest: BTreeMap<(String, SplitId), (u64, Vec<u8>)> = BTreeMap::new();
    let base_start = vec![layout::BASE_POSITION];
    store.scan(
        &base_start,
        &layout::range_end(base_start.clone()),
        &mut |k, v| {
            if let (Some((source, split)), true) =
                (layout::parse_base_position_key(k), v.len() >= 8)
            {
                let e = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
                if e <= epoch {
                    newest.insert((source.to_string(), split), (e, v[8..].to_vec()));
                }
            }
        },
    )?;
    let mut end = vec![layout::POSITION];
    end.extend_from_slice(&epoch.to_be_bytes());
    store.scan(&[layout::POSITION], &layout::range_end(end), &mut |k, v| {
        if let Some((e, source, split)) = layout::parse_position_key(k) {
            let slot = newest
                .entry((source.to_string(), split))
                .or_insert((e, Vec::new()));
            if slot.0 <= e {
                *slot = (e, v.to_vec());
            }
        }
    })?;
    Ok(newest
        .into_iter()
        .map(|((source, split), (_, position))| Position {
            source,
            split,
            position,
        })
        .collect())
}

/// The positions recorded for `epoch`: (source, split, position).
pub fn load_positions(store: &dyn StateStore, epoch: u64) -> Result<Vec<Position>, StoreError> {
    let (start, end) = layout::position_epoch_range(epoch);
    let mut out = Vec::new();
    store.scan(&start, &end, &mut |k, v| {
        if let Some((_, source, split)) = layout::parse_position_key(k) {
            out.push(Position {
                source: source.to_string(),
                split,
                position: v.to_vec(),
            });
        }
    })?;
    Ok(out)
}
