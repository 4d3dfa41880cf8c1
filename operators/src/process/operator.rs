//! The process-function operator: a [`KeyedLogic`] that runs a
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
//! Per key it checkpoints one value: the state (absent when it equals a
//! fresh one), the key's timers with their due points, and when its state next
//! expires.

use std::collections::hash_map::Entry;
use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use weir::stateful::{Emit, KeyedLogic};
use weir::{Data, DeadLetter, FastMap, Key};

use super::context::{millis_of, system_time, Context, Emitted};
use super::state;
use super::timers::Timers;
use super::ProcessFunction;

type FastSet<K> =
    std::collections::HashSet<K, std::hash::BuildHasherDefault<weir::ids::FastHasher>>;

/// One key's state and when it next has something to expire.
struct Keyed<S> {
    state: S,
    expires: Option<u64>,
}

/// What a key checkpoints (encoding side).
#[derive(Serialize)]
struct StoredRef<'a, S> {
    state: Option<&'a S>,
    expires: Option<u64>,
    /// (time, due)
    event_timers: Vec<(u64, u64)>,
    /// Wall-clock ms since the Unix epoch.
    processing_timers: Vec<u64>,
}

/// What a key checkpoints (decoding side; the same layout).
#[derive(Deserialize)]
struct Stored<S> {
    state: Option<S>,
    expires: Option<u64>,
    event_timers: Vec<(u64, u64)>,
    processing_timers: Vec<u64>,
}

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
    keys: FastMap<K, Keyed<F::State>>,
    event: Timers<K>,
    processing: Timers<K>,
    /// (expiry, key) of every key with TTL state.
    expiries: BTreeSet<(u64, K)>,
    /// Records of the stamp being collected: (key, event time, record).
    batch: Vec<(K, u64, D)>,
    batch_stamp: u64,
    /// The latest finite watermark reached.
    watermark: u64,
    /// The encoding of a fresh state.
    default: Vec<u8>,
    /// Keys changed since the last checkpoint, when tracking.
    dirty: Option<FastSet<K>>,
    _record: PhantomData<D>,
}

impl<K: Key, D: Data, F: ProcessFunction<K, D>> ProcessOperator<K, D, F> {
    pub(crate) fn new(name: &str, function: F) -> Self {
        let default = state::encode_fresh(&function.new_state());
        ProcessOperator {
            function,
            name: name.to_string(),
            keys: FastMap::default(),
            event: Timers::new(),
            processing: Timers::new(),
            expiries: BTreeSet::new(),
            batch: Vec::new(),
            batch_stamp: 0,
            watermark: 0,
            default,
            dirty: None,
            _record: PhantomData,
        }
    }

    /// Runs one callback for `key` at watermark `now`, with event time `ts`.
    fn call(
        &mut self,
        key: K,
        now: u64,
        ts: u64,
        late: bool,
        call: Call<D>,
        emit: &mut Emit<Emitted<F::Out, F::Side>, DeadLetter>,
    ) {
        let keyed = self.keys.entry(key.clone()).or_insert_with(|| Keyed {
            state: self.function.new_state(),
            expires: None,
        });
        let mut ctx = Context {
            key: &key,
            operator: &self.name,
            timestamp: ts,
            watermark: now,
            late,
            event: &mut self.event,
            processing: &mut self.processing,
            emit,
        };
        let function = &mut self.function;
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
            self.keys.remove(&key);
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key);
        }
    }

    /// Forgets `key`'s state if it is back to a fresh one (absent and fresh
    /// are the same thing).
    fn drop_if_default(&mut self, key: &K) {
        if let Entry::Occupied(keyed) = self.keys.entry(key.clone()) {
            if is_fresh(&self.function, &keyed.get().state, &self.default) {
                let keyed = keyed.remove();
                if let Some(at) = keyed.expires {
                    self.expiries.remove(&(at, key.clone()));
                }
            }
        }
    }

    /// Applies the collected records of one stamp, in a deterministic order.
    fn apply_batch(&mut self, emit: &mut Emit<Emitted<F::Out, F::Side>, DeadLetter>) {
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
            self.call(key, stamp, ts, ts < stamp, Call::Record(record), emit);
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
    fn fire(&mut self, w: u64, emit: &mut Emit<Emitted<F::Out, F::Side>, DeadLetter>) {
        // An empty set does not allocate.
        let mut last_timer_fired: FastSet<K> = FastSet::default();
        loop {
            let mut fired = false;
            while let Some((due, key, time)) = self.event.pop_due(w) {
                if due != u64::MAX {
                    self.watermark = self.watermark.max(due);
                } else if time == u64::MAX && !last_timer_fired.insert(key.clone()) {
                    // Past the end of time: it already fired.
                    if let Some(dirty) = &mut self.dirty {
                        dirty.insert(key);
                    }
                    continue;
                }
                self.call(key, due, time, false, Call::Timer(time), emit);
                fired = true;
            }
            // The input's end fires every processing-time timer.
            let (wall, clock) = if w == u64::MAX {
                (u64::MAX, self.watermark)
            } else {
                (millis_of(SystemTime::now()), w.max(self.watermark))
            };
            if let Some((ms, key, _)) = self.processing.pop_due(wall) {
                // One at a time: event timers it registers come first.
                self.call(
                    key,
                    clock,
                    clock,
                    false,
                    Call::Processing(system_time(ms)),
                    emit,
                );
                fired = true;
            }
            if !fired {
                break;
            }
        }
        if w != u64::MAX {
            self.watermark = self.watermark.max(w);
        }
        self.expire(w);
    }

    /// Drops state entries whose TTL ran out at `w` from memory (reads
    /// already saw them as absent), so checkpoints shrink.
    fn expire(&mut self, w: u64) {
        while let Some((at, _)) = self.expiries.first() {
            if *at > w {
                break;
            }
            let Some((_, key)) = self.expiries.pop_first() else {
                break;
            };
            let Some(keyed) = self.keys.get_mut(&key) else {
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
            keyed.state = compacted;
            self.drop_if_default(&key);
            if let Some(dirty) = &mut self.dirty {
                dirty.insert(key);
            }
        }
    }
}

impl<K, D, F> KeyedLogic<K, D> for ProcessOperator<K, D, F>
where
    K: Key,
    D: Data,
    F: ProcessFunction<K, D>,
{
    type Out = Emitted<F::Out, F::Side>;
    /// Late records the function refused ([`Context::dead_letter_late`]).
    type Late = DeadLetter;

    fn ordered(&self) -> bool {
        true
    }

    fn on_record(
        &mut self,
        key: K,
        event_time: u64,
        record: D,
        stamp: u64,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        if !self.batch.is_empty() && stamp != self.batch_stamp {
            // Not expected (the primitive announces each stamp with
            // on_watermark), but never mix two stamps in one batch.
            self.apply_batch(emit);
        }
        self.batch_stamp = stamp;
        self.batch.push((key, event_time, record));
    }

    fn on_watermark(&mut self, watermark: u64, emit: &mut Emit<Self::Out, Self::Late>) {
        // The end of time passes every stamp, u64::MAX included.
        if !self.batch.is_empty() && (self.batch_stamp < watermark || watermark == u64::MAX) {
            self.apply_batch(emit);
        }
        self.fire(watermark, emit);
    }

    fn next_fire(&self) -> Option<u64> {
        let batch = (!self.batch.is_empty()).then_some(self.batch_stamp);
        // A pending processing-time timer emits at the watermark it fires
        // at: hold the current one.
        let processing = (!self.processing.is_empty()).then_some(self.watermark);
        [batch, self.event.next_due(), processing]
            .into_iter()
            .flatten()
            .min()
    }

    fn wake_after(&self) -> Option<Duration> {
        let due = self.processing.next_due()?;
        let now = millis_of(SystemTime::now());
        Some(Duration::from_millis(due.saturating_sub(now)))
    }

    fn track_changes(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
    }

    fn take_changes(&mut self, out: &mut Vec<(K, Option<Vec<u8>>)>) {
        assert!(
            self.batch.is_empty(),
            "weir invariant broken: records of stamp {} are pending at a checkpoint",
            self.batch_stamp
        );
        let Some(dirty) = &mut self.dirty else { return };
        let mut event_of = self.event.of_keys(|k| dirty.contains(k));
        let mut processing_of = self.processing.of_keys(|k| dirty.contains(k));
        for key in dirty.drain() {
            let keyed = self.keys.get(&key);
            let event_timers = event_of.remove(&key).unwrap_or_default();
            let processing_timers: Vec<u64> = processing_of
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            if keyed.is_none() && event_timers.is_empty() && processing_timers.is_empty() {
                out.push((key, None));
                continue;
            }
            let stored = StoredRef {
                state: keyed.map(|k| &k.state),
                expires: keyed.and_then(|k| k.expires),
                event_timers,
                processing_timers,
            };
            let bytes = bincode::serialize(&stored)
                .expect("weir invariant: a process function's state serializes");
            out.push((key, Some(bytes)));
        }
    }

    fn restore(&mut self, key: K, bytes: &[u8]) -> Result<(), String> {
        let stored: Stored<F::State> = bincode::deserialize(bytes)
            .map_err(|e| format!("undecodable process-function state: {e}"))?;
        if let Some(state) = stored.state {
            if let Some(at) = stored.expires {
                self.expiries.insert((at, key.clone()));
            }
            self.keys.insert(
                key.clone(),
                Keyed {
                    state,
                    expires: stored.expires,
                },
            );
        }
        for (time, due) in stored.event_timers {
            self.event.register(&key, time, due);
        }
        for ms in stored.processing_timers {
            self.processing.register(&key, ms, ms);
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
