//! How the primitive reads and writes an operator's per-key state for
//! checkpoints, whatever the layout the operator keeps it in
//! ([`StateTable`]): one value per key ([`KeyedState`]) or one per key and
//! namespace ([`SpacedState`](super::SpacedState), for windows).

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keyed_state::KeyedState;
use crate::data::Key;

/// Receives the value a checkpoint stores for a key: `Some(stored)`, or
/// `None` when the key has no state (any it had is removed).
pub trait StoredVisitor<K> {
    /// One key's stored value, borrowed in whatever form serializes as the
    /// table's [`StateTable::Stored`].
    fn visit<S: Serialize + ?Sized>(&mut self, key: &K, stored: Option<&S>);
}

/// An operator's per-key state as checkpoints see it: which keys changed
/// since the last checkpoint and what each stores now, and how a stored value
/// is put back.
pub trait StateTable<K>: Default + 'static {
    /// What a checkpoint stores per key; the value a visitor is given
    /// serializes the same way.
    type Stored: Serialize + DeserializeOwned + 'static;

    /// Starts (or stops) recording which keys change; turning it on starts
    /// from nothing changed.
    fn track_changes(&mut self, on: bool);

    /// Visits every key changed since the last call with what it stores now,
    /// and forgets what removed keys left behind.
    fn take_changes(&mut self, out: &mut impl StoredVisitor<K>);

    /// Visits `key` with what it stores now.
    fn visit_stored(&self, key: &K, out: &mut impl StoredVisitor<K>);

    /// Installs `key`'s state from a checkpoint (counted as changed while
    /// tracking).
    fn restore(&mut self, key: K, stored: Self::Stored);
}

impl<K: Key, S: Serialize + DeserializeOwned + 'static> StateTable<K> for KeyedState<K, S> {
    type Stored = S;

    fn track_changes(&mut self, on: bool) {
        KeyedState::track_changes(self, on);
    }

    fn take_changes(&mut self, out: &mut impl StoredVisitor<K>) {
        KeyedState::take_changes(self, |key, state| out.visit(key, state));
    }

    fn visit_stored(&self, key: &K, out: &mut impl StoredVisitor<K>) {
        out.visit(key, self.get(key));
    }

    fn restore(&mut self, key: K, stored: S) {
        KeyedState::restore(self, key, stored);
    }
}
