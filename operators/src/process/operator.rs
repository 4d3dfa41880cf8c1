//! The process-function operator: a [`KeyedOperator`] that runs a
//! [`ProcessFunction`] per key on the keyed-state primitive.
//!
//! The operator asks for stamp-ordered application (`ordered()`), so the
//! primitive hands it the records of one stamp only once every record with
//! that stamp has arrived, after `on_watermark(stamp)`. It collects them and
//! applies them at the next `on_watermark` past the stamp, sorted by (key,
//! event time, encoded record): the order in which they crossed the workers
//! never shows. Then it fires the event-time timers due, the processing-time
//! timers due, and drops state whose TTL ran out.
//!
//! Per key the primitive keeps and checkpoints the state (absent when it
//! equals a fresh one) with when it next expires, and the key's timers with
//! their due points.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use weir::stateful::{Emit, KeyedOperator, KeyedState, Keys};
use weir::watermark::unix_millis;
use weir::EventTime;
use weir::{Data, DeadLetter, FastSet, Key};

use super::context::{system_time, Context, Emitted};
use super::state;
use super::ProcessFunction;

/// One key's state and when it next has something to expire: what the
/// primitive keeps and checkpoints per key (absent when the state equals a
/// fresh one; the key's timers are kept beside it).
#[derive(Serialize, Deserialize)]
pub(crate) struct Keyed<S> {
    state: S,
    expires: Option<u64>,
}

/// The primitive's keys and timers for a process function's state.
type ProcessKeys<K, S> = Keys<K, KeyedState<K, Keyed<S>>>;

/// Where results and refused records go.
type Emitter<F, K, D> = Emit<
    Emitted<<F as ProcessFunction<K, D>>::Out, <F as ProcessFunction<K, D>>::Side>,
    DeadLetter,
>;

/// Which callback to run.
enum Call<D> {
    Record(D),
    Timer(u64),
    Processing(SystemTime),
}

/// Whether `state` is back at a fresh one: by the function's word if it
/// gives one, else by comparing its encoding with a fresh one's (`fresh`).
fn is_fresh<K, D, F: ProcessFunction<K, D>>(function: &F, state: &F::State, fresh: &[u8]) -> bool {
    function
        .is_fresh(state)
        .unwrap_or_else(|| state::is_default(state, fresh))
}

pub(crate) struct ProcessOperator<K, D, F: ProcessFunction<K, D>> {
    function: F,
    /// The step's name, for dead letters.
    name: String,
    /// (expiry, key) of every key with TTL state.
    pub(crate) expiries: BTreeSet<(u64, K)>,
    /// Records of the stamp being collected: (key, event time, record).
    batch: Vec<(K, u64, D)>,
    batch_stamp: u64,
    /// The latest finite watermark reached.
    watermark: u64,
    /// The encoding of a fresh state.
    default: Vec<u8>,
    _record: PhantomData<D>,
}

impl<K: Key, D: Data, F: ProcessFunction<K, D>> ProcessOperator<K, D, F> {
    pub(crate) fn new(name: &str, function: F) -> Self {
        let default = state::encode_fresh(&function.new_state());
        ProcessOperator {
            function,
            name: name.to_string(),
            expiries: BTreeSet::new(),
            batch: Vec::new(),
            batch_stamp: 0,
            watermark: 0,
            default,
            _record: PhantomData,
        }
    }

    /// Runs one callback for `key` at watermark `now`, with event time `ts`.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        keys: &mut ProcessKeys<K, F::State>,
        key: K,
        now: u64,
        ts: u64,
        late: bool,
        call: Call<D>,
        emit: &mut Emitter<F, K, D>,
    ) {
        let function = &mut self.function;
        let keyed = keys.state.get_or_insert_with(key.clone(), || Keyed {
            state: function.new_state(),
            expires: None,
        });
        let mut ctx = Context {
            key: &key,
            operator: &self.name,
            timestamp: ts,
            watermark: now,
            late,
            event: &mut keys.event,
            processing: &mut keys.processing,
            emit,
        };
        let state = &mut keyed.state;
        let ((), expiry) = state::at(now, || match call {
            Call::Record(record) => function.on_record(&mut ctx, state, record),
            Call::Timer(time) => function.on_timer(&mut ctx, state, time),
            Call::Processing(at) => function.on_processing_timer(&mut ctx, state, at),
        });
        if let Some(at) = expiry {
            if keyed.expires.is_none_or(|e| at < e) {
                if let Some(old) = keyed.expires.replace(at) {
                    self.expiries.remove(&(old, key.clone()));
                }
                self.expiries.insert((at, key.clone()));
            }
        }
        if is_fresh(&self.function, &keyed.state, &self.default) {
            // Back to fresh: the same as no state at all.
            if let Some(at) = keyed.expires {
                self.expiries.remove(&(at, key.clone()));
            }
            keys.state.remove(&key);
        }
    }

    /// Applies the collected records of one stamp, in a deterministic order.
    fn apply_batch(&mut self, keys: &mut ProcessKeys<K, F::State>, emit: &mut Emitter<F, K, D>) {
        let stamp = self.batch_stamp;
        let mut batch = std::mem::take(&mut self.batch);
        // Unstable is enough: ties are ordered by encoding below, and records
        // that encode the same are the same.
        batch.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        for run in batch.chunk_by_mut(|a, b| a.0 == b.0 && a.1 == b.1) {
            if run.len() > 1 {
                // Records of one key at one event time: by their encoding,
                // the one order every run agrees on.
                run.sort_by_cached_key(|r| bincode::serialize(&r.2).unwrap_or_default());
            }
        }
        for (key, ts, record) in batch {
            self.call(keys, key, stamp, ts, ts < stamp, Call::Record(record), emit);
        }
        if stamp != u64::MAX {
            self.watermark = self.watermark.max(stamp);
        }
    }

    /// Fires what is due at watermark `w`, then drops expired state.
    ///
    /// At the end of time (`w == u64::MAX`) every timer is due, including
    /// those the firing ones register. A key's timer for `u64::MAX` fires
    /// there once: registered again by a callback at the end of time (a
    /// function that sets `time.saturating_add(step)` from each timer), it
    /// is dropped, since no later time exists to fire it at. Otherwise such
    /// a function would never end.
    fn fire(&mut self, keys: &mut ProcessKeys<K, F::State>, w: u64, emit: &mut Emitter<F, K, D>) {
        // An empty set does not allocate.
        let mut last_timer_fired: FastSet<K> = FastSet::default();
        loop {
            let mut fired = false;
            while let Some((due, key, time)) = keys.event.pop_due(w) {
                if due != u64::MAX {
                    self.watermark = self.watermark.max(due);
                } else if time == u64::MAX && !last_timer_fired.insert(key.clone()) {
                    // Past the end of time: it already fired.
                    continue;
                }
                self.call(keys, key, due, time, false, Call::Timer(time), emit);
                fired = true;
            }
            // The input's end fires every processing-time timer.
            let (wall, clock) = if w == u64::MAX {
                (u64::MAX, self.watermark)
            } else {
                (unix_millis(SystemTime::now()), w.max(self.watermark))
            };
            if let Some((ms, key, _)) = keys.processing.pop_due(wall) {
                // One at a time: event timers it registers come first.
                let at = Call::Processing(system_time(ms));
                self.call(keys, key, clock, clock, false, at, emit);
                fired = true;
            }
            if !fired {
                break;
            }
        }
        if w != u64::MAX {
            self.watermark = self.watermark.max(w);
        }
        self.expire(keys, w);
    }

    /// Drops state entries whose TTL ran out at `w` from memory (reads
    /// already saw them as absent), so checkpoints shrink.
    fn expire(&mut self, keys: &mut ProcessKeys<K, F::State>, w: u64) {
        while let Some((at, _)) = self.expiries.first() {
            if *at > w {
                break;
            }
            let Some((_, key)) = self.expiries.pop_first() else {
                break;
            };
            // When it next expires is not worth a write: a restore that
            // indexes it too early finds nothing to compact then.
            let Some(keyed) = keys.state.get_mut_untracked(&key) else {
                continue;
            };
            let (compacted, next) = state::compact(&keyed.state, w);
            keyed.expires = next;
            if let Some(next) = next {
                self.expiries.insert((next, key.clone()));
            }
            let Some(compacted) = compacted else {
                // Rewritten since: nothing expired yet.
                continue;
            };
            let fresh = is_fresh(&self.function, &compacted, &self.default);
            if fresh {
                if let Some(next) = next {
                    self.expiries.remove(&(next, key.clone()));
                }
                keys.state.remove(&key);
            } else if let Some(keyed) = keys.state.get_mut(&key) {
                keyed.state = compacted;
            }
        }
    }
}

impl<K, D, F> KeyedOperator<K, D> for ProcessOperator<K, D, F>
where
    K: Key,
    D: Data,
    F: ProcessFunction<K, D>,
{
    type Table = KeyedState<K, Keyed<F::State>>;
    type Out = Emitted<F::Out, F::Side>;
    /// Late records the function refused ([`Context::dead_letter_late`]).
    type Late = DeadLetter;

    fn ordered(&self) -> bool {
        true
    }

    fn state_version(&self) -> u32 {
        // 2: the primitive's value per key (a byte saying which parts
        // follow, the state with its expiry, the timers); 1: the operator's.
        2
    }

    fn on_record(
        &mut self,
        keys: &mut ProcessKeys<K, F::State>,
        key: K,
        EventTime(event_time): EventTime,
        record: D,
        EventTime(stamp): EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        if !self.batch.is_empty() && stamp != self.batch_stamp {
            // Not expected (the primitive announces each stamp with
            // on_watermark), but never mix two stamps in one batch.
            self.apply_batch(keys, emit);
        }
        self.batch_stamp = stamp;
        self.batch.push((key, event_time, record));
    }

    fn on_watermark(
        &mut self,
        keys: &mut ProcessKeys<K, F::State>,
        EventTime(watermark): EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        // The end of time passes every stamp, u64::MAX included.
        if !self.batch.is_empty() && (self.batch_stamp < watermark || watermark == u64::MAX) {
            self.apply_batch(keys, emit);
        }
        self.fire(keys, watermark, emit);
    }

    fn next_fire(&self, keys: &ProcessKeys<K, F::State>) -> Option<EventTime> {
        let batch = (!self.batch.is_empty()).then_some(self.batch_stamp);
        // A pending processing-time timer emits at the watermark it fires
        // at: hold the current one. (The primitive adds event timers.)
        let processing = (!keys.processing.is_empty()).then_some(self.watermark);
        batch.into_iter().chain(processing).min().map(EventTime)
    }

    fn on_restore(
        &mut self,
        key: &K,
        keyed: &mut Keyed<F::State>,
        _watermark: EventTime,
    ) -> Result<bool, String> {
        if let Some(at) = keyed.expires {
            self.expiries.insert((at, key.clone()));
        }
        Ok(true)
    }

    fn before_checkpoint(&self, _: &ProcessKeys<K, F::State>) {
        assert!(
            self.batch.is_empty(),
            "weir invariant broken: records of stamp {} are pending at a checkpoint",
            self.batch_stamp
        );
    }
}

#[cfg(test)]
mod tests;
