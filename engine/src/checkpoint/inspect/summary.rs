//! What a store holds, by kind and epoch, from one scan ([`summarize`]) or
//! from its flush markers alone ([`markers`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::checkpoint::layout;
use crate::checkpoint::store::{StateStore, StoreError};

/// A number of stored keys and their size (key + value bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Volume {
    /// Keys.
    pub keys: u64,
    /// Key and value bytes.
    pub bytes: u64,
}

impl Volume {
    fn add(&mut self, key: &[u8], value: &[u8]) {
        self.keys += 1;
        self.bytes += (key.len() + value.len()) as u64;
    }

    /// The sum of two volumes.
    pub fn plus(self, other: Volume) -> Volume {
        Volume {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
        }
    }
}

/// What one store holds for one epoch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochFootprint {
    /// State deltas.
    pub deltas: Volume,
    /// Source positions.
    pub positions: Volume,
    /// Flush markers, by step, with the checksum each recorded.
    pub markers: BTreeMap<String, u64>,
}

impl EpochFootprint {
    /// What the epoch's flushes wrote: deltas and positions (markers aside).
    pub fn written(&self) -> Volume {
        self.deltas.plus(self.positions)
    }
}

/// Everything one store holds, by kind, from one scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreSummary {
    /// Per-epoch deltas, positions and markers.
    pub epochs: BTreeMap<u64, EpochFootprint>,
    /// Base state (folded deltas).
    pub base: Volume,
    /// Folded source positions.
    pub base_positions: Volume,
    /// The epoch the base holds, if a fold happened.
    pub folded_through: Option<u64>,
    /// Operators with state (base or delta) in the store.
    pub operators: BTreeSet<String>,
    /// Sources with positions in the store.
    pub sources: BTreeSet<String>,
    /// Keys the checkpoint layout does not make.
    pub unknown: Volume,
}

/// Scans a whole store once and sorts what it holds by kind and epoch.
pub fn summarize(store: &dyn StateStore) -> Result<StoreSummary, StoreError> {
    let mut s = StoreSummary::default();
    let mut bad_folded = false;
    store.scan(&[], &layout::range_end(Vec::new()), &mut |k, v| {
        let tag = k.first().copied().unwrap_or(0);
        match (tag, layout::epoch_of(k)) {
            (layout::BASE, _) => match layout::parse_state_key(k) {
                Some((op, _, _)) => {
                    if !s.operators.contains(op) {
                        s.operators.insert(op.to_string());
                    }
                    s.base.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::DELTA, Some(epoch)) => match layout::parse_state_key(k) {
                Some((op, _, _)) => {
                    if !s.operators.contains(op) {
                        s.operators.insert(op.to_string());
                    }
                    s.epochs.entry(epoch).or_default().deltas.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::POSITION, Some(epoch)) => match layout::parse_position_key(k) {
                Some((_, source, _)) => {
                    if !s.sources.contains(source) {
                        s.sources.insert(source.to_string());
                    }
                    s.epochs.entry(epoch).or_default().positions.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            (layout::MARKER, Some(epoch)) => match marker_step(k) {
                Some(step) => {
                    let recorded = v
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map_or(0, u64::from_le_bytes);
                    s.epochs
                        .entry(epoch)
                        .or_default()
                        .markers
                        .insert(step.to_string(), recorded);
                }
                None => s.unknown.add(k, v),
            },
            (layout::BASE_POSITION, _) => match layout::parse_base_position_key(k) {
                Some((source, _)) => {
                    if !s.sources.contains(source) {
                        s.sources.insert(source.to_string());
                    }
                    s.base_positions.add(k, v);
                }
                None => s.unknown.add(k, v),
            },
            _ if k == layout::FOLDED => match v.get(..8).and_then(|b| b.try_into().ok()) {
                Some(b) => s.folded_through = Some(u64::from_le_bytes(b)),
                None => bad_folded = true,
            },
            _ => s.unknown.add(k, v),
        }
    })?;
    if bad_folded {
        return Err(StoreError(
            "the folded-through record is shorter than 8 bytes".into(),
        ));
    }
    Ok(s)
}

fn marker_step(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(9..)?).ok()
}

/// Every flush marker in a store: epoch → step → recorded checksum. Reads
/// only the markers (cheap on a large store).
pub fn markers(store: &dyn StateStore) -> Result<BTreeMap<u64, BTreeMap<String, u64>>, StoreError> {
    let mut out: BTreeMap<u64, BTreeMap<String, u64>> = BTreeMap::new();
    let start = vec![layout::MARKER];
    store.scan(&start, &layout::range_end(start.clone()), &mut |k, v| {
        if let (Some(epoch), Some(step)) = (layout::epoch_of(k), marker_step(k)) {
            let recorded = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes);
            out.entry(epoch)
                .or_default()
                .insert(step.to_string(), recorded);
        }
    })?;
    Ok(out)
}

/// A summary holding only a store's markers (from [`markers`]).
pub fn marker_summary(markers: BTreeMap<u64, BTreeMap<String, u64>>) -> StoreSummary {
    StoreSummary {
        epochs: markers
            .into_iter()
            .map(|(epoch, markers)| {
                (
                    epoch,
                    EpochFootprint {
                        markers,
                        ..EpochFootprint::default()
                    },
                )
            })
            .collect(),
        ..StoreSummary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fixtures::sample;

    #[test]
    fn summaries_count_each_epochs_writes() {
        let (_, stores) = sample();
        let s = summarize(&stores[0]).expect("summarize");
        assert_eq!(
            s.epochs.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        let e1 = &s.epochs[&1];
        assert_eq!(e1.deltas.keys, 2);
        assert_eq!(e1.positions.keys, 1);
        assert_eq!(
            e1.markers.keys().cloned().collect::<Vec<_>>(),
            vec!["counts".to_string(), "records".to_string()]
        );
        // d + epoch + "counts\0" + group + tag + key, and the delta's tag + value.
        let delta_key = 1 + 8 + 7 + 2 + 1 + 1;
        assert_eq!(e1.deltas.bytes, 2 * (delta_key + 2));
        assert_eq!(s.base, Volume::default());
        assert_eq!(s.folded_through, None);
        assert!(s.operators.contains("counts") && s.sources.contains("records"));
        assert_eq!(s.unknown, Volume::default());
        assert_eq!(markers(&stores[0]).expect("markers").len(), 4);
    }
}
