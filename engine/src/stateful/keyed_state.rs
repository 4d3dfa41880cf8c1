//! Per-key state with change tracking, and the services a
//! [`KeyedOperator`](super::KeyedOperator) gets from the primitive: its keys'
//! state and their event-time and processing-time timers ([`Keys`]).
//!
//! Change tracking costs a record no look-up of its own: each key's slot
//! carries a `changed` flag, and the first change of a key since the last
//! checkpoint appends the key to a list. A removed key keeps its slot, empty,
//! until the next checkpoint has written its removal.

use std::collections::hash_map::Entry;

use super::state_table::StateTable;
use super::timers::Timers;
use crate::data::Key;
use crate::ids::FastMap;

struct Slot<S> {
    /// `None`: removed since the last checkpoint (kept only while tracking,
    /// so that the removal is written).
    state: Option<S>,
    /// Changed since the last checkpoint (and listed in `changed`).
    changed: bool,
}

/// Every key's state of one operator instance, recording which keys change
/// for checkpoints.
///
/// A change through [`KeyedState::get_mut`], [`KeyedState::get_or_insert_with`]
/// or [`KeyedState::remove`] is written by the next checkpoint. A change
/// through [`KeyedState::get_mut_untracked`] is not: it is for changes a
/// restore re-derives from the checkpoint's watermark (the parts of a key's
/// state that fired windows dropped), which would otherwise make every
/// checkpoint a full snapshot at a high event rate.
pub struct KeyedState<K, S> {
    slots: FastMap<K, Slot<S>>,
    /// Keys changed since the last checkpoint, each once, when tracking.
    changed: Option<Vec<K>>,
}

impl<K: Key, S> Default for KeyedState<K, S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key, S> KeyedState<K, S> {
    /// No state.
    pub fn new() -> Self {
        KeyedState {
            slots: FastMap::default(),
            changed: None,
        }
    }

    /// `key`'s state.
    pub fn get(&self, key: &K) -> Option<&S> {
        self.slots.get(key)?.state.as_ref()
    }

    /// `key`'s state, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut S> {
        let slot = self.slots.get_mut(key)?;
        let state = slot.state.as_mut()?;
        if !slot.changed {
            if let Some(changed) = &mut self.changed {
                slot.changed = true;
                changed.push(key.clone());
            }
        }
        Some(state)
    }

    /// `key`'s state, to change in a way the next checkpoint need not write:
    /// a restore re-derives it (see the type's docs).
    pub fn get_mut_untracked(&mut self, key: &K) -> Option<&mut S> {
        self.slots.get_mut(key)?.state.as_mut()
    }

    /// `key`'s slot, created empty if it has none, marked changed.
    fn slot(&mut self, key: K) -> &mut Slot<S> {
        let slot = match self.slots.entry(key) {
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
                    state: None,
                    changed: false,
                })
            }
        };
        slot.changed = self.changed.is_some();
        slot
    }

    /// `key`'s state, created by `fresh` if it has none, to change.
    pub fn get_or_insert_with(&mut self, key: K, fresh: impl FnOnce() -> S) -> &mut S {
        self.slot(key).state.get_or_insert_with(fresh)
    }

    /// Removes `key`'s state; the next checkpoint writes its removal.
    pub fn remove(&mut self, key: &K) -> Option<S> {
        let Some(changed) = &mut self.changed else {
            return self.slots.remove(key)?.state;
        };
        let slot = self.slots.get_mut(key)?;
        let state = slot.state.take()?;
        if !slot.changed {
            slot.changed = true;
            changed.push(key.clone());
        }
        Some(state)
    }

    /// Installs `key`'s state from a checkpoint (counted as changed while
    /// tracking).
    pub fn restore(&mut self, key: K, state: S) {
        self.slot(key).state = Some(state);
    }

    /// How many keys have state (a pass over every slot).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Every key with state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &S)> {
        self.slots
            .iter()
            .filter_map(|(k, slot)| slot.state.as_ref().map(|s| (k, s)))
    }

    /// Starts (or stops) recording which keys change.
    pub fn track_changes(&mut self, on: bool) {
        self.changed = on.then(Vec::new);
        self.slots.retain(|_, slot| {
            slot.changed = false;
            slot.state.is_some()
        });
    }

    /// Calls `visit` with every key changed since the last call and its state
    /// now (`None`: removed), and forgets removed keys.
    pub fn take_changes(&mut self, mut visit: impl FnMut(&K, Option<&S>)) {
        let Some(changed) = &mut self.changed else {
            return;
        };
        for key in changed.drain(..) {
            let Entry::Occupied(mut slot) = self.slots.entry(key) else {
                continue;
            };
            slot.get_mut().changed = false;
            visit(slot.key(), slot.get().state.as_ref());
            if slot.get().state.is_none() {
                slot.remove();
            }
        }
    }
}

/// What the primitive keeps for a [`KeyedOperator`](super::KeyedOperator):
/// its keys' state and timers, all checkpointed and restored by the
/// primitive.
///
/// Timers fire when the operator pops them ([`Timers::pop_due`]) from its
/// `on_watermark`: event-time timers up to the watermark, processing-time
/// ones up to the wall clock (ms since the Unix epoch); the primitive wakes
/// the operator when the next processing-time timer is due. A restore drops
/// the event-time timers due at or before the watermark its checkpoint had
/// fired through.
pub struct Keys<K, T> {
    /// Each key's state: a [`KeyedState`], or another [`StateTable`] such as
    /// a [`SpacedState`](super::SpacedState).
    pub state: T,
    /// Event-time timers: `(key, time)` due at a watermark.
    pub event: Timers<K>,
    /// Processing-time timers: `(key, time)` due at a wall-clock ms.
    pub processing: Timers<K>,
}

impl<K: Key, T: Default> Default for Keys<K, T> {
    fn default() -> Self {
        Keys {
            state: T::default(),
            event: Timers::new(),
            processing: Timers::new(),
        }
    }
}

impl<K: Key, T: StateTable<K>> Keys<K, T> {
    /// Starts (or stops) recording changes of state and timers.
    pub(crate) fn track_changes(&mut self, on: bool) {
        self.state.track_changes(on);
        self.event.track_changes(on);
        self.processing.track_changes(on);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `take_changes` lists: (key, state now).
    fn changes(state: &mut KeyedState<u32, u64>) -> Vec<(u32, Option<u64>)> {
        let mut out = Vec::new();
        state.take_changes(|k, s| out.push((*k, s.copied())));
        out.sort();
        out
    }

    #[test]
    fn each_changed_key_is_listed_once_with_its_state_now() {
        let mut s = KeyedState::new();
        s.track_changes(true);
        *s.get_or_insert_with(1, || 0) += 5;
        *s.get_or_insert_with(1, || 0) += 5;
        *s.get_or_insert_with(2, || 7) += 0;
        assert_eq!(changes(&mut s), vec![(1, Some(10)), (2, Some(7))]);
        assert_eq!(changes(&mut s), vec![], "nothing changed since");
        *s.get_mut(&2).expect("key 2") += 1;
        assert_eq!(s.get_mut(&3), None);
        assert_eq!(changes(&mut s), vec![(2, Some(8))]);
    }

    #[test]
    fn a_removal_is_listed_then_forgotten() {
        let mut s = KeyedState::new();
        s.track_changes(true);
        s.get_or_insert_with(1, || 1);
        s.get_or_insert_with(2, || 2);
        changes(&mut s);
        assert_eq!(s.remove(&1), Some(1));
        assert_eq!(s.remove(&1), None);
        assert_eq!((s.len(), s.get(&1)), (1, None));
        assert_eq!(changes(&mut s), vec![(1, None)]);
        assert_eq!(changes(&mut s), vec![], "written once");
        // Removed and created again before a checkpoint: its new state.
        s.remove(&2);
        s.get_or_insert_with(2, || 20);
        assert_eq!(changes(&mut s), vec![(2, Some(20))]);
        assert_eq!(
            s.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(),
            vec![(2, 20)]
        );
    }

    #[test]
    fn untracked_changes_are_not_listed() {
        let mut s = KeyedState::new();
        s.track_changes(true);
        s.get_or_insert_with(1, || 1);
        changes(&mut s);
        *s.get_mut_untracked(&1).expect("key 1") = 9;
        assert_eq!(changes(&mut s), vec![]);
        assert_eq!(s.get(&1), Some(&9));
    }

    #[test]
    fn without_tracking_nothing_is_listed_and_removals_are_immediate() {
        let mut s = KeyedState::new();
        s.get_or_insert_with(1, || 1);
        s.remove(&1);
        assert!(s.is_empty());
        assert_eq!(changes(&mut s), vec![]);
        // Turning tracking on starts from nothing changed.
        s.get_or_insert_with(2, || 2);
        s.track_changes(true);
        assert_eq!(changes(&mut s), vec![]);
        s.restore(3, 30);
        assert_eq!(
            changes(&mut s),
            vec![(3, Some(30))],
            "a restored key counts as changed"
        );
    }
}
