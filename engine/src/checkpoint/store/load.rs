//! Reading a checkpoint back for a restore: keyed state as of an epoch
//! ([`load_state`]) and split positions ([`load_positions_through`]).

use std::collections::BTreeMap;

use super::fold::folded_through;
use super::{Position, StateStore, StoreError};
use crate::checkpoint::layout;
use crate::ids::{KeyGroup, SplitId};

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
                deltas.insert(
                    probe.clone(),
                    layout::parse_delta_value(v).map(<[u8]>::to_vec),
                );
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
