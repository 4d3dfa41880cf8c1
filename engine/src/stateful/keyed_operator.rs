//! What most stateful operators implement: [`KeyedOperator`], whose keys'
//! state and timers the primitive keeps, tracks, checkpoints and restores
//! ([`Keys`]). [`Managed`] runs one as a [`KeyedLogic`].
//!
//! A checkpoint writes, per key changed since the one before, its state and
//! (in an entry of their own) its timers; a restore installs both, dropping
//! the event-time timers its checkpoint's watermark had already fired, and
//! hands each key's state to [`KeyedOperator::on_restore`] to drop what that
//! watermark had already fired of it and to rebuild the operator's indexes.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keyed_state::Keys;
use super::logic::{Changes, Emit, KeyedLogic};
use super::state_table::{StateTable, StoredVisitor};
use crate::data::{Data, Key};
use crate::ids::FastSet;
use crate::time::EventTime;
use crate::watermark::unix_millis;

/// A keyed stateful operator whose per-key state and timers the primitive
/// keeps: it implements only what happens to them on a record and when the
/// watermark moves, plus any index across keys it needs (windows by the
/// time they fire).
pub trait KeyedOperator<K: Key, D: Data>: 'static {
    /// Where its keys' state lives: a [`KeyedState`](super::KeyedState) of
    /// one value per key, or a [`SpacedState`](super::SpacedState) of values
    /// per key and namespace.
    type Table: StateTable<K>;
    /// Results.
    type Out: Data;
    /// Late (or otherwise refused) records.
    type Late: Data;

    /// Whether records must be applied in stamp order (see [`KeyedLogic`]).
    fn ordered(&self) -> bool {
        false
    }

    /// The version of the state encoding; a checkpoint written with another
    /// version is refused at restore.
    fn state_version(&self) -> u32 {
        1
    }

    /// Applies one record with its event time and its stamp.
    fn on_record(
        &mut self,
        keys: &mut Keys<K, Self::Table>,
        key: K,
        event_time: EventTime,
        record: D,
        stamp: EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    );

    /// The watermark reached `watermark`: emit what is due at or before it,
    /// firing the timers due (from `keys.event` and `keys.processing`).
    fn on_watermark(
        &mut self,
        keys: &mut Keys<K, Self::Table>,
        watermark: EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    );

    /// The earliest event time at which the operator will emit other than
    /// from an event-time timer (the primitive adds those), if any.
    fn next_fire(&self, keys: &Keys<K, Self::Table>) -> Option<EventTime>;

    /// A key's state restored from a checkpoint whose watermark was
    /// `watermark`: drop from it what had fired by then (changes made with
    /// `get_mut_untracked`) and index it. Returns whether the key keeps any
    /// state. Default: keep it as it is.
    fn on_restore(
        &mut self,
        key: &K,
        state: &mut <Self::Table as StateTable<K>>::Stored,
        watermark: EventTime,
    ) -> Result<bool, String> {
        let _ = (key, state, watermark);
        Ok(true)
    }

    /// Called before a checkpoint writes the changes (to check invariants).
    fn before_checkpoint(&self, keys: &Keys<K, Self::Table>) {
        let _ = keys;
    }
}

/// A [`KeyedOperator`] with the keys' state and timers the primitive keeps
/// for it: the [`KeyedLogic`] the primitive runs.
pub struct Managed<K: Key, D: Data, O: KeyedOperator<K, D>> {
    /// The operator.
    pub operator: O,
    /// Its keys' state and timers.
    pub keys: Keys<K, O::Table>,
    /// The watermark of the checkpoint store being restored.
    restoring_watermark: EventTime,
    _record: PhantomData<D>,
}

impl<K: Key, D: Data, O: KeyedOperator<K, D>> Managed<K, D, O> {
    /// `operator`, with no state yet.
    pub fn new(operator: O) -> Self {
        Managed {
            operator,
            keys: Keys::default(),
            restoring_watermark: EventTime(0),
            _record: PhantomData,
        }
    }
}

/// The stored timers of one key: (time, due) of its event-time timers, then
/// of its processing-time ones.
type StoredTimers = (Vec<(u64, u64)>, Vec<(u64, u64)>);

/// The first byte of a stored key's value: which parts follow, and how
/// their integers are encoded.
const HAS_STATE: u8 = 1;
const HAS_TIMERS: u8 = 2;
/// Integers as variable-length words (bincode's varint: a count of 3 takes
/// one byte, a timestamp in ms six), not eight bytes each. Values written
/// without it (fixed-width words) still read back.
const VARINT: u8 = 4;

/// The encoding of the values weir writes.
fn varint() -> impl bincode::Options {
    bincode::DefaultOptions::new()
}

/// One key's stored value, appended to `out`: a byte saying which parts
/// follow, its state if it has one, then its timers if it has any. A key
/// without timers costs one byte more than its state.
fn encode_value<S: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    state: Option<&S>,
    timers: Option<&StoredTimers>,
) {
    let flags = VARINT
        | if state.is_some() { HAS_STATE } else { 0 }
        | if timers.is_some() { HAS_TIMERS } else { 0 };
    out.push(flags);
    // Plain data into memory cannot fail.
    if let Some(state) = state {
        varint()
            .serialize_into(&mut *out, state)
            .expect("weir invariant: operator state serializes");
    }
    if let Some(timers) = timers {
        varint()
            .serialize_into(&mut *out, timers)
            .expect("weir invariant: timers serialize");
    }
}

/// Decodes one part of a stored value, fixed-width or varint.
fn part<T: DeserializeOwned>(rest: &mut &[u8], varints: bool, what: &str) -> Result<T, String> {
    let decoded = if varints {
        varint().deserialize_from(rest)
    } else {
        bincode::deserialize_from(rest)
    };
    decoded.map_err(|e| format!("undecodable {what}: {e}"))
}

/// A stored key's state and timers (what [`encode_value`] wrote).
fn decode_key<S: DeserializeOwned>(bytes: &[u8]) -> Result<(Option<S>, StoredTimers), String> {
    let Some((&flags, mut rest)) = bytes.split_first() else {
        return Err("an empty stored key".to_string());
    };
    if flags & !(HAS_STATE | HAS_TIMERS | VARINT) != 0 {
        return Err(format!("a stored key with unknown parts ({flags:#x})"));
    }
    let varints = flags & VARINT != 0;
    let state = if flags & HAS_STATE != 0 {
        Some(part(&mut rest, varints, "operator state")?)
    } else {
        None
    };
    let timers = if flags & HAS_TIMERS != 0 {
        part(&mut rest, varints, "timers")?
    } else {
        StoredTimers::default()
    };
    if !rest.is_empty() {
        return Err(format!("{} bytes after a stored key's parts", rest.len()));
    }
    Ok((state, timers))
}

/// Writes each visited key's value, with `timers` (the same for every key
/// visited: the visitor is made per key when keys have timers).
struct Put<'a, K> {
    out: &'a mut Changes<K>,
    timers: Option<&'a StoredTimers>,
}

impl<K: Key> StoredVisitor<K> for Put<'_, K> {
    fn visit<S: Serialize + ?Sized>(&mut self, key: &K, stored: Option<&S>) {
        if stored.is_none() && self.timers.is_none() {
            self.out.remove(key.clone());
        } else {
            let timers = self.timers;
            self.out
                .put(key.clone(), |buf| encode_value(buf, stored, timers));
        }
    }
}

/// Lists the visited keys.
struct Listed<K>(FastSet<K>);

impl<K: Key> StoredVisitor<K> for Listed<K> {
    fn visit<S: Serialize + ?Sized>(&mut self, key: &K, _: Option<&S>) {
        self.0.insert(key.clone());
    }
}

impl<K: Key, D: Data, O: KeyedOperator<K, D>> KeyedLogic<K, D> for Managed<K, D, O> {
    type Out = O::Out;
    type Late = O::Late;

    fn ordered(&self) -> bool {
        self.operator.ordered()
    }

    fn on_record(
        &mut self,
        key: K,
        event_time: EventTime,
        record: D,
        stamp: EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.operator
            .on_record(&mut self.keys, key, event_time, record, stamp, emit);
    }

    fn on_watermark(&mut self, watermark: EventTime, emit: &mut Emit<Self::Out, Self::Late>) {
        self.operator.on_watermark(&mut self.keys, watermark, emit);
    }

    fn next_fire(&self) -> Option<EventTime> {
        let own = self.operator.next_fire(&self.keys);
        let timer = self.keys.event.next_due().map(EventTime);
        own.into_iter().chain(timer).min()
    }

    fn wake_after(&self) -> Option<Duration> {
        let due = self.keys.processing.next_due()?;
        Some(Duration::from_millis(
            due.saturating_sub(unix_millis(SystemTime::now())),
        ))
    }

    fn state_version(&self) -> u32 {
        self.operator.state_version()
    }

    fn track_changes(&mut self, on: bool) {
        self.keys.track_changes(on);
    }

    fn take_changes(&mut self, out: &mut Changes<K>) {
        self.operator.before_checkpoint(&self.keys);
        let keys = &mut self.keys;
        let timed = {
            let mut timed = keys.event.take_changed();
            timed.extend(keys.processing.take_changed());
            timed
        };
        if keys.event.is_empty() && keys.processing.is_empty() && timed.is_empty() {
            // No timers at all (windows): each value is its state alone.
            keys.state.take_changes(&mut Put { out, timers: None });
            return;
        }
        // A value carries the key's timers too, changed or not: gather the
        // timers of every key written, in one pass over all timers. A key
        // removed from the state is gone from it by now, so each key's
        // value is read back after the pass.
        let mut written = Listed(timed);
        keys.state.take_changes(&mut written);
        let written = written.0;
        let mut event = keys.event.of_keys(|k| written.contains(k));
        let mut processing = keys.processing.of_keys(|k| written.contains(k));
        for key in written {
            let timers: StoredTimers = (
                event.remove(&key).unwrap_or_default(),
                processing.remove(&key).unwrap_or_default(),
            );
            let has_timers = !timers.0.is_empty() || !timers.1.is_empty();
            let timers = has_timers.then_some(&timers);
            keys.state.visit_stored(&key, &mut Put { out, timers });
        }
    }

    fn restore_watermark(&mut self, watermark: EventTime) {
        self.restoring_watermark = watermark;
    }

    fn restore(&mut self, key: K, stored: &[u8]) -> Result<(), String> {
        let (state, (event, processing)) =
            decode_key::<<O::Table as StateTable<K>>::Stored>(stored)?;
        if let Some(mut state) = state {
            if self
                .operator
                .on_restore(&key, &mut state, self.restoring_watermark)?
            {
                self.keys.state.restore(key.clone(), state);
            }
        }
        for (time, due) in event {
            // Fired before the checkpoint was taken.
            if due > self.restoring_watermark.ms() {
                self.keys.event.register(&key, time, due);
            }
        }
        for (time, due) in processing {
            self.keys.processing.register(&key, time, due);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stateful::KeyedState;

    /// Counts records per key; each record sets an event-time timer at its
    /// time + 10 and a processing-time timer far in the future; a timer
    /// emits the key's count.
    struct Counter;

    impl KeyedOperator<u32, u64> for Counter {
        type Table = KeyedState<u32, u64>;
        type Out = (u32, u64, u64);
        type Late = ();

        fn on_record(
            &mut self,
            keys: &mut Keys<u32, KeyedState<u32, u64>>,
            key: u32,
            EventTime(ts): EventTime,
            _: u64,
            _: EventTime,
            _: &mut Emit<(u32, u64, u64), ()>,
        ) {
            *keys.state.get_or_insert_with(key, || 0) += 1;
            keys.event.register(&key, ts + 10, ts + 11);
            keys.processing.register(&key, u64::MAX - 1, u64::MAX - 1);
        }

        fn on_watermark(
            &mut self,
            keys: &mut Keys<u32, KeyedState<u32, u64>>,
            watermark: EventTime,
            emit: &mut Emit<(u32, u64, u64), ()>,
        ) {
            while let Some((due, key, time)) = keys.event.pop_due(watermark.ms()) {
                let count = keys.state.get(&key).copied().unwrap_or(0);
                emit.output(EventTime(due), EventTime(time), (key, time, count));
            }
        }

        fn next_fire(&self, _: &Keys<u32, KeyedState<u32, u64>>) -> Option<EventTime> {
            None
        }
    }

    type Stored = Vec<(u32, Vec<u8>)>;

    /// Takes the changes into `store`, as a checkpoint store keeps them.
    fn checkpoint(op: &mut Managed<u32, u64, Counter>, store: &mut Stored) {
        let mut changes = Changes::new();
        op.take_changes(&mut changes);
        for (key, value) in changes.to_vec() {
            store.retain(|(k, _)| *k != key);
            if let Some(value) = value {
                store.push((key, value));
            }
        }
    }

    #[test]
    fn state_and_timers_are_checkpointed_and_fired_timers_not_restored() {
        let mut op = Managed::new(Counter);
        let mut emit = Emit::new();
        op.track_changes(true);
        op.on_record(1, EventTime(100), 0, EventTime(0), &mut emit);
        op.on_record(1, EventTime(200), 0, EventTime(0), &mut emit);
        op.on_record(2, EventTime(150), 0, EventTime(0), &mut emit);
        assert_eq!(
            op.next_fire(),
            Some(EventTime(111)),
            "the first timer holds"
        );
        assert!(op.wake_after().is_some(), "a processing-time timer wakes");
        let mut store = Stored::new();
        checkpoint(&mut op, &mut store);
        assert_eq!(store.len(), 2, "two keys, each with its state and timers");
        // Key 1's first timer fires; a restore from the checkpoint before
        // that, at the watermark it fired at, must not fire it again.
        op.on_watermark(EventTime(111), &mut emit);
        let mut later = store.clone();
        checkpoint(&mut op, &mut later);
        assert_ne!(later, store, "the fired timer is written too");

        let mut restored = Managed::new(Counter);
        restored.track_changes(true);
        restored.restore_watermark(EventTime(111));
        for (key, value) in &store {
            restored.restore(*key, value).expect("restores");
        }
        assert_eq!(restored.keys.state.get(&1), Some(&2));
        assert_eq!(
            restored.keys.event.of(&1),
            vec![(210, 211)],
            "110 had fired"
        );
        assert_eq!(restored.keys.event.of(&2), vec![(160, 161)]);
        assert_eq!(restored.keys.processing.len(), 2);
        let mut after = Emit::new();
        restored.on_watermark(EventTime(1_000), &mut after);
        let fired: Vec<_> = after.drain_outputs().map(|(_, _, o)| o).collect();
        assert_eq!(fired, vec![(2, 160, 1), (1, 210, 2)]);
    }

    #[test]
    fn undecodable_state_is_an_error_not_a_panic() {
        let mut op = Managed::new(Counter);
        assert!(op.restore(1, &[]).is_err());
        assert!(op.restore(1, &[1, 2]).is_err(), "state cut short");
        assert!(op.restore(1, &[9]).is_err(), "unknown parts");
        let mut fine = Vec::new();
        super::encode_value(&mut fine, Some(&5u64), None);
        fine.push(0);
        assert!(op.restore(1, &fine).is_err(), "bytes left over");
    }

    #[test]
    fn a_value_without_timers_is_its_state_after_one_byte() {
        let mut op = Managed::new(Counter);
        op.track_changes(true);
        op.keys.state.get_or_insert_with(3, || 7);
        let mut changes = Changes::new();
        op.take_changes(&mut changes);
        assert_eq!(
            changes.to_vec(),
            vec![(3, Some(vec![HAS_STATE | VARINT, 7]))],
            "the flags, then 7 in one byte"
        );
        // A value written with fixed-width integers reads back too.
        let fixed = [
            &[HAS_STATE][..],
            &bincode::serialize(&9u64).expect("encodes"),
        ]
        .concat();
        let mut restored = Managed::new(Counter);
        restored.restore(4, &fixed).expect("restores");
        assert_eq!(restored.keys.state.get(&4), Some(&9));
    }
}
