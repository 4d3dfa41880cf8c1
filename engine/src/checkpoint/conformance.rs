//! The behaviour every [`StateStore`] must have, as a check that backends run
//! in their own tests (`weir-rocks` runs it on RocksDB). Panics on the first
//! difference, naming it.

use std::collections::BTreeMap;

use super::layout;
use super::store::{
    checksum_of_epoch_step, discard_after, fold, load_positions, load_state, write_epoch, Batch,
    Position, StateChange, StateStore, StoreError,
};
use crate::ids::{KeyGroup, SplitId};
use crate::rng::SplitMix64;

type Expected = BTreeMap<(u16, Vec<u8>), Vec<u8>>;

fn load(store: &dyn StateStore, first: u16, last: u16, epoch: u64) -> Expected {
    let mut out = Expected::new();
    load_state(
        store,
        "op",
        KeyGroup(first),
        KeyGroup(last),
        epoch,
        &mut |g, k, v| {
            out.insert((g.0, k.to_vec()), v.to_vec());
        },
    )
    .expect("load_state");
    out
}

/// Runs the conformance checks on stores made by `make` (each call a new,
/// empty store).
pub fn check_store(make: &mut dyn FnMut() -> Box<dyn StateStore>) {
    let mut store = make();
    let mut rng = SplitMix64::new(99);
    // The expected state after each epoch, computed independently.
    let mut truth = Expected::new();
    let mut after: Vec<Expected> = vec![Expected::new()];
    for epoch in 1..=6u64 {
        let mut changes = Vec::new();
        for _ in 0..40 {
            let group = rng.below(8) as u16;
            let key = vec![b'k', rng.below(10) as u8];
            let value = (!rng.chance(0.2)).then(|| vec![epoch as u8, rng.below(255) as u8]);
            match &value {
                Some(v) => truth.insert((group, key.clone()), v.clone()),
                None => truth.remove(&(group, key.clone())),
            };
            changes.push(StateChange {
                operator: "op".into(),
                group: KeyGroup(group),
                key,
                value,
            });
        }
        // A last write per key wins within an epoch: keep only those.
        let mut last: BTreeMap<(u16, Vec<u8>), StateChange> = BTreeMap::new();
        for c in changes {
            last.insert((c.group.0, c.key.clone()), c);
        }
        let changes: Vec<StateChange> = last.into_values().collect();
        // Another operator's state must not leak into "op".
        let other = StateChange {
            operator: "op2".into(),
            group: KeyGroup(3),
            key: b"k\x01".to_vec(),
            value: Some(b"other".to_vec()),
        };
        let positions = vec![Position {
            source: "src".into(),
            split: SplitId(epoch as u32 % 2),
            position: epoch.to_le_bytes().to_vec(),
        }];
        let sum = write_epoch(store.as_mut(), epoch, "op", &changes, &[]).expect("write_epoch");
        write_epoch(store.as_mut(), epoch, "op2", &[other], &[]).expect("write_epoch");
        let sum_src =
            write_epoch(store.as_mut(), epoch, "src", &[], &positions).expect("write_epoch");
        for (step, sum) in [("op", sum), ("src", sum_src)] {
            assert_eq!(
                checksum_of_epoch_step(store.as_ref(), epoch, step).expect("checksum"),
                Some((sum, sum)),
                "epoch {epoch}: the marker of {step} records the checksum of what it wrote"
            );
        }
        after.push(truth.clone());
    }
    for epoch in 0..=6u64 {
        assert_eq!(
            load(store.as_ref(), 0, 7, epoch),
            after[epoch as usize],
            "state as of epoch {epoch}"
        );
    }
    // Folding several epochs whose deltas rewrite the same keys keeps
    // each key's newest state.
    let mut folded = make();
    for epoch in 1..=6u64 {
        let (start, end) = layout::delta_epoch_range(epoch);
        let mut batch = Batch::default();
        store
            .scan(&start, &end, &mut |k, v| batch.put(k, v))
            .expect("scan");
        folded.write(&batch).expect("copy");
    }
    fold(folded.as_mut(), 4).expect("fold");
    for epoch in 4..=6u64 {
        assert_eq!(
            load(folded.as_ref(), 0, 7, epoch),
            after[epoch as usize],
            "state as of epoch {epoch} after folding 1..=4"
        );
    }
    // A key-group range sees only its groups.
    let part: Expected = after[6]
        .iter()
        .filter(|((g, _), _)| (2..=4).contains(g))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(load(store.as_ref(), 2, 4, 6), part, "key groups 2..=4");
    assert_eq!(
        load_positions(store.as_ref(), 5).expect("positions"),
        vec![Position {
            source: "src".into(),
            split: SplitId(1),
            position: 5u64.to_le_bytes().to_vec()
        }]
    );
    // A flipped byte is caught by the checksum.
    let mut victim = None;
    let (start, end) = layout::delta_epoch_range(4);
    store
        .scan(&start, &end, &mut |k, v| {
            if victim.is_none() {
                victim = Some((k.to_vec(), v.to_vec()));
            }
        })
        .expect("scan");
    let (k, mut v) = victim.expect("epoch 4 has deltas");
    v[0] ^= 0x40;
    let mut batch = Batch::default();
    batch.put(k.clone(), v);
    store.write(&batch).expect("corrupt");
    let (recorded, found) = checksum_of_epoch_step(store.as_ref(), 4, "op")
        .expect("checksum")
        .expect("marker");
    assert_ne!(recorded, found, "a flipped byte must change the checksum");
    // Fold through 3: epochs 3.. still load the same; the base holds 3.
    let mut store = make();
    let mut truth = Expected::new();
    for epoch in 1..=5u64 {
        let key = vec![epoch as u8 % 3];
        let value = (epoch != 4).then(|| vec![epoch as u8]);
        match &value {
            Some(v) => truth.insert((1, key.clone()), v.clone()),
            None => truth.remove(&(1, key.clone())),
        };
        let change = StateChange {
            operator: "op".into(),
            group: KeyGroup(1),
            key,
            value,
        };
        write_epoch(store.as_mut(), epoch, "op", &[change], &[]).expect("write");
    }
    let before: Vec<Expected> = (3..=5).map(|e| load(store.as_ref(), 0, 7, e)).collect();
    fold(store.as_mut(), 3).expect("fold");
    let folded: Vec<Expected> = (3..=5).map(|e| load(store.as_ref(), 0, 7, e)).collect();
    assert_eq!(before, folded, "folding keeps every later epoch's state");
    assert_eq!(folded[2], truth);
    assert_eq!(
        checksum_of_epoch_step(store.as_ref(), 2, "op").expect("checksum"),
        None,
        "folded markers are gone"
    );
    assert!(checksum_of_epoch_step(store.as_ref(), 4, "op")
        .expect("checksum")
        .is_some());
    // Discarding a torn tail: epoch 5 disappears, 4 stays.
    discard_after(store.as_mut(), 4).expect("discard");
    assert_eq!(
        load(store.as_ref(), 0, 7, 5),
        before[1],
        "after discard, epoch 5 reads as 4"
    );
    assert_eq!(
        checksum_of_epoch_step(store.as_ref(), 5, "op").expect("checksum"),
        None
    );
    assert!(load_positions(store.as_ref(), 5)
        .expect("positions")
        .is_empty());
    check_chunked_flush(make());
}

/// A flush larger than one write goes in chunks: whole, it loads and
/// verifies; torn before its marker, it is invisible and discarded.
fn check_chunked_flush(mut store: Box<dyn StateStore>) {
    let value = vec![7u8; 1000];
    let changes: Vec<StateChange> = (0..10_000u32)
        .map(|i| StateChange {
            operator: "op".into(),
            group: KeyGroup((i % 8) as u16),
            key: i.to_be_bytes().to_vec(),
            value: Some(value.clone()),
        })
        .collect();
    let sum = write_epoch(store.as_mut(), 1, "op", &changes, &[]).expect("write");
    assert_eq!(
        checksum_of_epoch_step(store.as_ref(), 1, "op").expect("checksum"),
        Some((sum, sum)),
        "a chunked flush verifies"
    );
    assert_eq!(load(store.as_ref(), 0, 7, 1).len(), 10_000);
    // Epoch 2 dies before its last, synced write (the marker's).
    struct Torn<'a>(&'a mut dyn StateStore);
    impl StateStore for Torn<'_> {
        fn write(&mut self, _: &Batch) -> Result<(), StoreError> {
            Err(StoreError("killed".into()))
        }
        fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
            self.0.write_unsynced(batch)
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]),
        ) -> Result<(), StoreError> {
            self.0.scan(start, end, visit)
        }
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key)
        }
    }
    let changed: Vec<StateChange> = changes
        .iter()
        .map(|c| StateChange {
            value: Some(vec![8u8; 1000]),
            ..c.clone()
        })
        .collect();
    assert!(write_epoch(&mut Torn(store.as_mut()), 2, "op", &changed, &[]).is_err());
    let (start, end) = layout::delta_epoch_range(2);
    let mut torn = 0;
    store
        .scan(&start, &end, &mut |_, _| torn += 1)
        .expect("scan");
    assert!(torn > 0, "the first chunks of the torn flush were written");
    assert_eq!(
        checksum_of_epoch_step(store.as_ref(), 2, "op").expect("checksum"),
        None,
        "a torn flush has no marker"
    );
    assert_eq!(
        load(store.as_ref(), 0, 7, 1).len(),
        10_000,
        "epoch 1 intact"
    );
    discard_after(store.as_mut(), 1).expect("discard");
    let mut left = 0;
    store
        .scan(&start, &end, &mut |_, _| left += 1)
        .expect("scan");
    assert_eq!(left, 0, "discarding removes the torn chunks");
}

#[cfg(test)]
mod tests {
    use super::super::store::MemoryStore;
    use super::*;

    #[test]
    fn the_memory_store_conforms() {
        check_store(&mut || Box::new(MemoryStore::default()));
    }
}
