//! Compaction and discarding: folding deltas into the base ([`fold`]), and
//! dropping a torn tail ([`discard_after`]).

use std::collections::BTreeMap;

use super::{Batch, StateStore, StoreError};
use crate::checkpoint::layout;

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
            match layout::parse_delta_value(v) {
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
