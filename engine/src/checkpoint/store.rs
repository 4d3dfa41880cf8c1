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

/// One change in a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Sets a key.
    Put(Vec<u8>, Vec<u8>),
    /// Removes a key.
    Delete(Vec<u8>),
    /// Removes every key in `[start, end)`.
    DeleteRange(Vec<u8>, Vec<u8>),
}

/// Changes applied atomically: all or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The changes, in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put(key, value));
    }
    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push(Op::Delete(key));
    }
    /// Adds a range delete.
    pub fn delete_range(&mut self, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(Op::DeleteRange(start, end));
    }
}

/// A worker's checkpoint storage.
pub trait StateStore {
    /// Applies a batch atomically and durably (synced before returning).
    fn write(&mut self, batch: Batch) -> Result<(), StoreError>;
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
    fn write(&mut self, batch: Batch) -> Result<(), StoreError> {
        for op in batch.ops {
            match op {
                Op::Put(k, v) => {
                    self.map.insert(k, v);
                }
                Op::Delete(k) => {
                    self.map.remove(&k);
                }
                Op::DeleteRange(s, e) => {
                    let doomed: Vec<Vec<u8>> =
                        self.map.range(s..e).map(|(k, _)| k.clone()).collect();
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

/// Checksums the (key, value) pairs of one epoch, in key order.
#[derive(Clone, Copy)]
struct Checksum(u64);

impl Checksum {
    fn new(epoch: u64) -> Self {
        let mut c = Checksum(0xcbf2_9ce4_8422_2325);
        c.bytes(&epoch.to_le_bytes());
        c
    }
    fn bytes(&mut self, bytes: &[u8]) {
        // Length-prefixed FNV-1a: (ab, c) and (a, bc) differ.
        for b in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn pair(&mut self, k: &[u8], v: &[u8]) {
        self.bytes(k);
        self.bytes(v);
    }
}

/// Writes one step's flush of `epoch` on one worker as one atomic batch: its
/// state deltas (or source positions), and the marker holding their
/// checksum. Every change and position must belong to `step`. Returns the
/// checksum (for the manifest).
pub fn write_epoch(
    store: &mut dyn StateStore,
    epoch: u64,
    step: &str,
    changes: &[StateChange],
    positions: &[Position],
) -> Result<u64, StoreError> {
    debug_assert!(changes.iter().all(|c| c.operator == step));
    debug_assert!(positions.iter().all(|p| p.source == step));
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = changes
        .iter()
        .map(|c| {
            (
                layout::delta_key(epoch, &c.operator, c.group, &c.key),
                encode_delta(c.value.as_deref()),
            )
        })
        .chain(positions.iter().map(|p| {
            (
                layout::position_key(epoch, &p.source, p.split),
                p.position.clone(),
            )
        }))
        .collect();
    pairs.sort();
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    let mut checksum = Checksum::new(epoch);
    let mut batch = Batch::default();
    for (k, v) in pairs {
        checksum.pair(&k, &v);
        batch.put(k, v);
    }
    batch.put(
        layout::marker_key(epoch, step),
        checksum.0.to_le_bytes().to_vec(),
    );
    store.write(batch)?;
    Ok(checksum.0)
}

/// A delta value: a tag byte (1 = present, 0 = removed) then the state.
fn encode_delta(value: Option<&[u8]>) -> Vec<u8> {
    match value {
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v);
            out
        }
        None => vec![0],
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
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let states = layout::delta_range(epoch, step, KeyGroup(0), KeyGroup(u16::MAX));
    for (start, end) in [states, layout::position_range(epoch, step)] {
        store.scan(&start, &end, &mut |k, v| {
            pairs.push((k.to_vec(), v.to_vec()))
        })?;
    }
    pairs.sort();
    let mut checksum = Checksum::new(epoch);
    for (k, v) in &pairs {
        checksum.pair(k, v);
    }
    Ok(Some((recorded, checksum.0)))
}

/// The epoch the base holds, if any fold happened.
pub fn folded_through(store: &dyn StateStore) -> Result<Option<u64>, StoreError> {
    Ok(store
        .get(layout::FOLDED)?
        .and_then(|b| b.get(..8).and_then(|b| b.try_into().ok()))
        .map(u64::from_le_bytes))
}

/// Folds every delta of epochs `<= through` into the base and deletes them
/// (and their positions and markers), atomically.
pub fn fold(store: &mut dyn StateStore, through: u64) -> Result<(), StoreError> {
    let mut batch = Batch::default();
    let start = vec![layout::DELTA];
    let mut end = vec![layout::DELTA];
    end.extend_from_slice(&through.to_be_bytes());
    let end = layout::range_end(end);
    let mut puts: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    store.scan(&start, &end, &mut |k, v| {
        if let Some((op, group, key)) = layout::parse_state_key(k) {
            puts.push((
                layout::base_key(op, group, key),
                decode_delta(v).map(<[u8]>::to_vec),
            ));
        }
    })?;
    // Later epochs come later in the scan: the last write of a key wins.
    for (k, v) in puts {
        match v {
            Some(v) => batch.put(k, v),
            None => batch.delete(k),
        }
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
    batch.put(layout::FOLDED.to_vec(), through.to_le_bytes().to_vec());
    store.write(batch)
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
    store.write(batch)
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
