//! Per-key state in namespaces, kept namespace-major ([`SpacedState`]): the
//! layout for state that is read a namespace at a time, as a window operator
//! reads its panes when a window fires.
//!
//! Each namespace holds a table of its keys' values. Records of one period
//! of event time then touch one namespace's table, which stays small and
//! hot, and a namespace is read and dropped as a whole, in table order,
//! instead of visiting every key's own list (at 100 k keys that visit cost
//! a cache miss per key, twice per record and fired window). A checkpoint
//! stores, per key, its values in every namespace, in namespace order.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::ops::RangeBounds;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::state_table::{StateTable, StoredVisitor};
use crate::data::Key;
use crate::ids::{FastMap, FastSet};

struct Slot<V> {
    value: V,
    /// Changed since the last checkpoint (and its key listed in `changed`).
    changed: bool,
}

/// Every key's values in every namespace `N` of one operator instance,
/// recording which keys change for checkpoints.
///
/// A change through [`SpacedState::get_or_insert_with`] or
/// [`SpacedState::get_mut`] is written by the next checkpoint. Dropping a
/// namespace ([`SpacedState::drop_space`]) is not, except for keys it leaves
/// with no value at all (written as removed): it is for namespaces a restore
/// drops by itself (the panes of windows its checkpoint's watermark had
/// fired), which would otherwise make every checkpoint a full snapshot.
pub struct SpacedState<N, K, V> {
    spaces: BTreeMap<N, FastMap<K, Slot<V>>>,
    /// Keys with a value changed since the last checkpoint, when tracking:
    /// once per namespace they changed in.
    changed: Option<Vec<K>>,
    /// Keys of the namespaces dropped since the last checkpoint, when
    /// tracking: removed at the checkpoint if nothing is left of them.
    dropped: Vec<K>,
}

impl<N: Ord, K: Key, V> Default for SpacedState<N, K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// One namespace's table.
pub struct Space<'a, K, V>(&'a FastMap<K, Slot<V>>);

impl<'a, K, V> Space<'a, K, V> {
    /// Its keys and their values, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a {
        self.0.iter().map(|(k, slot)| (k, &slot.value))
    }

    /// How many keys have a value in it.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key has a value in it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Ord, K: Key, V> SpacedState<N, K, V> {
    /// No state.
    pub fn new() -> Self {
        SpacedState {
            spaces: BTreeMap::new(),
            changed: None,
            dropped: Vec::new(),
        }
    }

    /// `key`'s value in `space`, created by `fresh` if it has none, to
    /// change.
    pub fn get_or_insert_with(&mut self, space: N, key: K, fresh: impl FnOnce() -> V) -> &mut V {
        let slots = self.spaces.entry(space).or_default();
        let slot = match slots.entry(key) {
            Entry::Occupied(slot) => {
                if !slot.get().changed {
                    if let Some(changed) = &mut self.changed {
                        changed.push(slot.key().clone());
                    }
                }
                slot.into_mut()
            }
            Entry::Vacant(vacant) => {
                if let Some(changed) = &mut self.changed {
                    changed.push(vacant.key().clone());
                }
                vacant.insert(Slot {
                    value: fresh(),
                    changed: false,
                })
            }
        };
        slot.changed = self.changed.is_some();
        &mut slot.value
    }

    /// `key`'s value in `space`, to change.
    pub fn get_mut(&mut self, space: &N, key: &K) -> Option<&mut V> {
        let slot = self.spaces.get_mut(space)?.get_mut(key)?;
        if !slot.changed {
            if let Some(changed) = &mut self.changed {
                slot.changed = true;
                changed.push(key.clone());
            }
        }
        Some(&mut slot.value)
    }

    /// `key`'s value in `space`.
    pub fn get(&self, space: &N, key: &K) -> Option<&V> {
        Some(&self.spaces.get(space)?.get(key)?.value)
    }

    /// The first namespace with values, in namespace order.
    pub fn first_space(&self) -> Option<&N> {
        self.spaces.keys().next()
    }

    /// The namespaces in `range` with their tables, in namespace order.
    pub fn range<R: RangeBounds<N>>(
        &self,
        range: R,
    ) -> impl Iterator<Item = (&N, Space<'_, K, V>)> {
        self.spaces.range(range).map(|(n, slots)| (n, Space(slots)))
    }

    /// Drops `space` and every value in it; a checkpoint writes this only
    /// for keys left with no value (see the type's docs). Whether it had
    /// any.
    pub fn drop_space(&mut self, space: &N) -> bool {
        let Some(slots) = self.spaces.remove(space) else {
            return false;
        };
        if self.changed.is_some() {
            self.dropped.extend(slots.into_keys());
        }
        true
    }

    /// How many namespaces have values.
    pub fn spaces(&self) -> usize {
        self.spaces.len()
    }

    /// Whether no key has a value.
    pub fn is_empty(&self) -> bool {
        self.spaces.is_empty()
    }

    /// Whether `key` has a value in any namespace.
    fn holds(&self, key: &K) -> bool {
        self.spaces.values().any(|slots| slots.contains_key(key))
    }
}

impl<N, K, V> StateTable<K> for SpacedState<N, K, V>
where
    N: Ord + Serialize + DeserializeOwned + 'static,
    K: Key,
    V: Serialize + DeserializeOwned + 'static,
{
    type Stored = Vec<(N, V)>;

    fn track_changes(&mut self, on: bool) {
        self.changed = on.then(Vec::new);
        self.dropped.clear();
        for slots in self.spaces.values_mut() {
            for slot in slots.values_mut() {
                slot.changed = false;
            }
        }
    }

    fn take_changes(&mut self, out: &mut impl StoredVisitor<K>) {
        let Some(changed) = &mut self.changed else {
            return;
        };
        let written: FastSet<K> = changed.drain(..).collect();
        let dropped = std::mem::take(&mut self.dropped);
        let mut gone: FastSet<K> = FastSet::default();
        for key in dropped {
            if !written.contains(&key) && !self.holds(&key) && gone.insert(key.clone()) {
                out.visit::<Self::Stored>(&key, None);
            }
        }
        for key in written {
            let mut values: Vec<(&N, &V)> = Vec::new();
            for (space, slots) in self.spaces.iter_mut() {
                if let Some(slot) = slots.get_mut(&key) {
                    slot.changed = false;
                    values.push((space, &slot.value));
                }
            }
            // A sequence of borrowed pairs encodes as `Self::Stored` does.
            out.visit(&key, (!values.is_empty()).then_some(&values));
        }
    }

    fn visit_stored(&self, key: &K, out: &mut impl StoredVisitor<K>) {
        let values: Vec<(&N, &V)> = self
            .spaces
            .iter()
            .filter_map(|(space, slots)| Some((space, &slots.get(key)?.value)))
            .collect();
        out.visit(key, (!values.is_empty()).then_some(&values));
    }

    fn restore(&mut self, key: K, stored: Vec<(N, V)>) {
        let tracking = self.changed.is_some();
        if tracking && !stored.is_empty() {
            if let Some(changed) = &mut self.changed {
                changed.push(key.clone());
            }
        }
        for (space, value) in stored {
            self.spaces.entry(space).or_default().insert(
                key.clone(),
                Slot {
                    value,
                    changed: tracking,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a checkpoint would write for a key: (key, its values now).
    type Change = (u32, Option<Vec<(u64, u64)>>);

    /// Collects what a checkpoint would write.
    #[derive(Default)]
    struct Written(Vec<Change>);

    impl StoredVisitor<u32> for Written {
        fn visit<S: Serialize + ?Sized>(&mut self, key: &u32, stored: Option<&S>) {
            let decoded = stored.map(|s| {
                bincode::deserialize(&bincode::serialize(s).expect("encodes"))
                    .expect("decodes as the stored type")
            });
            self.0.push((*key, decoded));
        }
    }

    fn changes(state: &mut SpacedState<u64, u32, u64>) -> Vec<Change> {
        let mut out = Written::default();
        state.take_changes(&mut out);
        out.0.sort();
        out.0
    }

    #[test]
    fn a_changed_key_is_written_once_with_its_values_in_every_namespace() {
        let mut s = SpacedState::new();
        s.track_changes(true);
        *s.get_or_insert_with(20, 1, || 0) += 5;
        *s.get_or_insert_with(10, 1, || 0) += 1;
        *s.get_or_insert_with(10, 2, || 7) += 0;
        assert_eq!(
            changes(&mut s),
            vec![(1, Some(vec![(10, 1), (20, 5)])), (2, Some(vec![(10, 7)]))]
        );
        assert_eq!(changes(&mut s), vec![], "nothing changed since");
        *s.get_mut(&20, &1).expect("key 1 in 20") += 1;
        assert_eq!(s.get_mut(&30, &1), None);
        assert_eq!(changes(&mut s), vec![(1, Some(vec![(10, 1), (20, 6)]))]);
    }

    #[test]
    fn a_dropped_namespace_is_written_only_for_keys_it_leaves_empty() {
        let mut s = SpacedState::new();
        s.track_changes(true);
        s.get_or_insert_with(10, 1, || 1);
        s.get_or_insert_with(10, 2, || 2);
        s.get_or_insert_with(20, 2, || 3);
        changes(&mut s);
        assert!(s.drop_space(&10));
        assert!(!s.drop_space(&10));
        assert_eq!(
            changes(&mut s),
            vec![(1, None)],
            "key 2 keeps its stored value: a restore drops namespace 10 itself"
        );
        assert_eq!(changes(&mut s), vec![], "written once");
        // Dropped and changed before a checkpoint: its values now.
        s.get_or_insert_with(30, 2, || 4);
        s.drop_space(&20);
        assert_eq!(changes(&mut s), vec![(2, Some(vec![(30, 4)]))]);
        assert_eq!((s.spaces(), s.get(&30, &2)), (1, Some(&4)));
    }

    #[test]
    fn without_tracking_nothing_is_listed_and_a_restore_counts_as_a_change() {
        let mut s = SpacedState::new();
        s.get_or_insert_with(10, 1, || 1);
        s.drop_space(&10);
        assert!(s.is_empty());
        assert_eq!(changes(&mut s), vec![]);
        s.get_or_insert_with(10, 2, || 2);
        s.track_changes(true);
        assert_eq!(
            changes(&mut s),
            vec![],
            "tracking starts from nothing changed"
        );
        s.restore(3, vec![(10, 30), (40, 31)]);
        assert_eq!(changes(&mut s), vec![(3, Some(vec![(10, 30), (40, 31)]))]);
        let in_10: Vec<(u32, u64)> = s
            .range(10..=10)
            .flat_map(|(_, space)| space.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(in_10, vec![(2, 2), (3, 30)]);
    }
}
