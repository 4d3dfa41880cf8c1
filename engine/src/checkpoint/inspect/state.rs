//! What an epoch restores, read back: an operator's keyed state per key
//! group ([`operator_state`]) and each split's position
//! ([`source_positions`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::layout;
use crate::checkpoint::store::{
    folded_through, load_positions_through, load_state, StateStore, StoreError,
};
use crate::checkpoint::verify::WorkerStore;
use crate::error::Fault;
use crate::ids::{KeyGroup, SplitId};
use crate::source::position_word;

/// Why an epoch's state could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// A worker's store did not open (or failed while being read).
    #[error("worker {worker}: {error}")]
    Store {
        /// The worker.
        worker: usize,
        /// What the store said.
        error: StoreError,
    },
    /// A worker's base was folded past the epoch asked for.
    #[error(
        "worker {worker}'s base is folded through epoch {through}: the state of epoch {epoch} is gone"
    )]
    FoldedPast {
        /// The worker.
        worker: usize,
        /// The epoch its base holds.
        through: u64,
        /// The epoch asked for.
        epoch: u64,
    },
}

impl InspectError {
    fn store(worker: usize) -> impl Fn(StoreError) -> InspectError {
        move |error| InspectError::Store { worker, error }
    }
}

/// One key group of an operator at an epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    /// The workers whose stores hold it (one, unless something is wrong).
    pub workers: BTreeSet<usize>,
    /// Keys with state.
    pub keys: u64,
    /// Stored bytes of the keys' state (keys and values).
    pub key_bytes: u64,
    /// Buffered-record entries.
    pub buffered: u64,
    /// Stored bytes of the buffered entries (keys and values).
    pub buffered_bytes: u64,
}

/// A batch of records an operator held buffered at the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferedEntry {
    /// The worker whose store holds it.
    pub worker: usize,
    /// The key group.
    pub group: KeyGroup,
    /// The stamp the records were buffered at: (epoch, event-time ms), if
    /// it decodes.
    pub stamp: Option<(u64, u64)>,
    /// How many records, if it decodes.
    pub records: Option<u64>,
    /// Stored bytes (key and value).
    pub bytes: u64,
}

/// One stored key of an operator at an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredKey {
    /// The worker whose store holds it.
    pub worker: usize,
    /// The key group.
    pub group: KeyGroup,
    /// The encoded key (its tag byte removed).
    pub key: Vec<u8>,
    /// The size of its encoded state.
    pub state_len: usize,
}

/// An operator's keyed state at an epoch, over every store of a generation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorState {
    /// The operator.
    pub name: String,
    /// Its key groups that hold anything.
    pub groups: BTreeMap<u16, GroupState>,
    /// Its buffered-record entries.
    pub buffered: Vec<BufferedEntry>,
    /// Its keys, when asked for.
    pub keys: Vec<StoredKey>,
    /// Stored entries with an unknown tag byte.
    pub untagged: u64,
}

impl OperatorState {
    /// Keys with state, over all groups.
    pub fn total_keys(&self) -> u64 {
        self.groups.values().map(|g| g.keys).sum()
    }

    /// Stored bytes (keys, state and buffered records).
    pub fn total_bytes(&self) -> u64 {
        self.groups
            .values()
            .map(|g| g.key_bytes + g.buffered_bytes)
            .sum()
    }

    /// The fewest and most keys in a group holding keys.
    pub fn keys_per_group(&self) -> Option<(u64, u64)> {
        let counts = self.groups.values().map(|g| g.keys).filter(|k| *k > 0);
        Some((counts.clone().min()?, counts.max()?))
    }

    /// Groups found in more than one worker's store: within a generation
    /// each key group belongs to one worker, so these are a defect.
    pub fn shared_groups(&self) -> Vec<u16> {
        self.groups
            .iter()
            .filter(|(_, g)| g.workers.len() > 1)
            .map(|(g, _)| *g)
            .collect()
    }
}

fn check_not_folded_past(
    store: &dyn StateStore,
    worker: usize,
    epoch: u64,
) -> Result<(), InspectError> {
    match folded_through(store).map_err(InspectError::store(worker))? {
        Some(through) if through > epoch => Err(InspectError::FoldedPast {
            worker,
            through,
            epoch,
        }),
        _ => Ok(()),
    }
}

fn opened(stores: &[WorkerStore]) -> Result<Vec<(usize, &dyn StateStore)>, InspectError> {
    stores
        .iter()
        .map(|s| match &s.store {
            Ok(store) => Ok((s.worker, store.as_ref())),
            Err(e) => Err(InspectError::store(s.worker)(e.clone())),
        })
        .collect()
}

/// The keyed state of `operator` at `epoch` (base plus deltas), over every
/// store. `with_keys` also lists every key.
pub fn operator_state(
    stores: &[WorkerStore],
    operator: &str,
    epoch: u64,
    with_keys: bool,
) -> Result<OperatorState, InspectError> {
    let mut out = OperatorState {
        name: operator.to_string(),
        ..OperatorState::default()
    };
    for (worker, store) in opened(stores)? {
        check_not_folded_past(store, worker, epoch)?;
        let mut visit = |group: KeyGroup, stored: &[u8], state: &[u8]| {
            let bytes = (stored.len() + state.len()) as u64;
            let g = out.groups.entry(group.0).or_default();
            g.workers.insert(worker);
            match stored.split_first() {
                Some((&layout::ENTRY_KEY, key)) => {
                    g.keys += 1;
                    g.key_bytes += bytes;
                    if with_keys {
                        out.keys.push(StoredKey {
                            worker,
                            group,
                            key: key.to_vec(),
                            state_len: state.len(),
                        });
                    }
                }
                Some((&layout::ENTRY_BUFFERED, stamp)) => {
                    g.buffered += 1;
                    g.buffered_bytes += bytes;
                    let word = |b: &[u8], i: usize| position_word(b, i).ok();
                    // bincode: `Time` is two u64s, a Vec starts with its length.
                    let stamp = match (stamp.len(), word(stamp, 0), word(stamp, 1)) {
                        (16, Some(e), Some(t)) => Some((e, t)),
                        _ => None,
                    };
                    out.buffered.push(BufferedEntry {
                        worker,
                        group,
                        stamp,
                        records: word(state, 0),
                        bytes,
                    });
                }
                _ => out.untagged += 1,
            }
        };
        // Keys' groups only, not the operator's own `layout::META_GROUP`.
        load_state(
            store,
            operator,
            KeyGroup(0),
            KeyGroup(crate::ids::KEY_GROUPS - 1),
            epoch,
            &mut visit,
        )
        .map_err(InspectError::store(worker))?;
    }
    Ok(out)
}

pub use crate::checkpoint::layout::SplitPosition;

/// A split's position at an epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSplit {
    /// The source.
    pub source: String,
    /// The split.
    pub split: SplitId,
    /// The worker whose store holds it.
    pub worker: usize,
    /// The stored bytes.
    pub raw: Vec<u8>,
    /// Decoded ([`layout::parse_split_position`]).
    pub position: Result<SplitPosition, Fault>,
}

/// Every split's newest position at or before `epoch` (what a restore
/// seeks to), over every store, by source and split.
pub fn source_positions(
    stores: &[WorkerStore],
    epoch: u64,
) -> Result<Vec<SourceSplit>, InspectError> {
    let mut out = Vec::new();
    for (worker, store) in opened(stores)? {
        check_not_folded_past(store, worker, epoch)?;
        for p in load_positions_through(store, epoch).map_err(InspectError::store(worker))? {
            out.push(SourceSplit {
                position: layout::parse_split_position(&p.position),
                source: p.source,
                split: p.split,
                worker,
                raw: p.position,
            });
        }
    }
    out.sort_by(|a, b| (&a.source, a.split, a.worker).cmp(&(&b.source, b.split, b.worker)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fixtures::{open, sample};
    use crate::checkpoint::store::fold;
    use crate::checkpoint::verify::{verify, Problem};
    use crate::source::position_of;

    #[test]
    fn folded_epochs_are_named_as_such() {
        let (manifest, mut stores) = sample();
        for s in &mut stores {
            fold(s, 1).expect("fold");
        }
        let v = verify(&manifest, &open(&stores));
        assert_eq!(
            v.verdicts[0].problems[0].problem,
            Problem::Folded { through: 1 }
        );
        assert!(v.verdicts[1].problems.is_empty());
        // State before the fold is gone; at or after it, it is all there.
        let opened = open(&stores);
        assert!(operator_state(&opened, "counts", 0, false)
            .expect_err("gone")
            .to_string()
            .contains("folded through epoch 1"));
        let s = operator_state(&opened, "counts", 3, false).expect("state");
        assert_eq!(s.total_keys(), 3);
    }

    #[test]
    fn operator_state_counts_keys_per_group_and_buffered_records() {
        let (_, stores) = sample();
        let opened = open(&stores);
        let at1 = operator_state(&opened, "counts", 1, true).expect("state");
        assert_eq!(at1.total_keys(), 3);
        assert_eq!(
            at1.groups.keys().copied().collect::<Vec<_>>(),
            vec![3, 5, 100]
        );
        assert_eq!(at1.keys_per_group(), Some((1, 1)));
        assert_eq!(at1.keys.len(), 3);
        assert_eq!(at1.keys[0].key, b"a".to_vec());
        let at3 = operator_state(&opened, "counts", 3, false).expect("state");
        // a removed in 3, c added in 2: group 3 holds c only.
        assert_eq!(at3.groups[&3].keys, 1);
        assert_eq!(at3.total_keys(), 3);
        assert_eq!(at3.buffered.len(), 1);
        let b = &at3.buffered[0];
        assert_eq!(
            (b.worker, b.group, b.stamp, b.records),
            (1, KeyGroup(100), Some((3, 7_000)), Some(2))
        );
        assert_eq!(at3.groups[&100].workers, BTreeSet::from([1]));
        assert!(at3.shared_groups().is_empty());
        assert!(at3.keys.is_empty());
    }

    #[test]
    fn positions_decode_per_split() {
        let (_, stores) = sample();
        let splits = source_positions(&open(&stores), 3).expect("positions");
        assert_eq!(splits.len(), 2);
        let p = splits[0].position.as_ref().expect("decodes");
        assert_eq!((splits[0].split, splits[0].worker), (SplitId(0), 0));
        assert_eq!((p.watermark, p.done, p.offset), (30_000, false, 30));
        assert_eq!(p.reader, position_of(&[31, 30]));
        // Epoch 4 exists on worker 0 only; worker 1's split stays at 3.
        let splits = source_positions(&open(&stores), 4).expect("positions");
        let offsets: Vec<u64> = splits
            .iter()
            .map(|s| s.position.as_ref().map(|p| p.offset).unwrap_or(0))
            .collect();
        assert_eq!(offsets, vec![40, 30]);
        assert!(layout::parse_split_position(&[1, 2, 3]).is_err());
    }
}
