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
        if state::is_default(&keyed.state, &self.default) {
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
            if state::is_default(&keyed.get().state, &self.default) {
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
mod tests {
    //! The operator driven directly, as the primitive drives it in stamp
    //! order: what it checkpoints, and that a restore from any cut behaves
    //! like the original.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use weir::rng::SplitMix64;

    use super::*;
    use crate::process::{ListState, MapState, ValueState};

    /// (key, value, event time)
    type Rec = (u32, u64, u64);

    #[derive(Serialize, Deserialize)]
    struct St {
        total: ValueState<u64>,
        recent: ListState<(u64, u64)>,
        buckets: MapState<u64, u64>,
        last: ValueState<u64>,
    }

    impl Default for St {
        fn default() -> Self {
            St {
                total: ValueState::with_ttl(Duration::from_millis(1_000)),
                recent: ListState::with_ttl(Duration::from_millis(700)),
                buckets: MapState::with_ttl(Duration::from_millis(1_500)),
                last: ValueState::with_ttl(Duration::from_millis(400)),
            }
        }
    }

    struct Mixed;

    impl ProcessFunction<u32, Rec> for Mixed {
        type State = St;
        type Out = String;
        type Side = String;

        fn on_record(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut St, r: Rec) {
            if ctx.is_late() {
                ctx.side(format!("late {r:?}"));
                return;
            }
            *s.total.get_or_insert_with(|| 0) += r.1;
            s.recent.push((r.2, r.1));
            *s.buckets.get_or_insert_with(r.2 / 500, || 0) += 1;
            s.last.set(r.1);
            ctx.register_event_timer(r.2 + 50);
            if r.1.is_multiple_of(10) {
                ctx.output(format!("rec {} {} total={:?}", r.0, r.2, s.total.get()));
            }
        }

        fn on_timer(&mut self, ctx: &mut Context<'_, u32, String, String>, s: &mut St, t: u64) {
            let recent: u64 = s.recent.iter().map(|(_, v)| v).sum();
            let buckets: Vec<(u64, u64)> = s.buckets.iter().map(|(k, v)| (*k, *v)).collect();
            ctx.output(format!(
                "timer {} {t} total={:?} recent={recent} buckets={buckets:?} last={:?}",
                ctx.key(),
                s.total.get(),
                s.last.get()
            ));
            if t.is_multiple_of(7) {
                ctx.register_event_timer(t + 333);
            }
        }
    }

    /// Stamp-ordered input: (stamp, key, event time, value).
    fn input() -> Vec<(u64, u32, u64, u64)> {
        let mut rng = SplitMix64::new(3);
        let mut out: Vec<(u64, u32, u64, u64)> = (0..1_500u64)
            .map(|i| {
                let base = i * 7;
                let stamp = base.saturating_sub(300) / 100 * 100;
                let ts = if rng.chance(0.05) {
                    stamp.saturating_sub(1 + rng.below(500))
                } else {
                    stamp + rng.below(400)
                };
                // Key 6 goes quiet early: its state must expire, not linger.
                let key = match rng.below(7) as u32 {
                    6 if i > 300 => 5,
                    k => k,
                };
                (stamp, key, ts, rng.below(100))
            })
            .collect();
        out.sort_by_key(|r| r.0);
        out
    }

    type Op = ProcessOperator<u32, Rec, Mixed>;

    /// Runs the input through the operator as the primitive would: each
    /// stamp announced with on_watermark, its records, then the next. At
    /// stamp index `cut`, moves the state into a fresh operator through
    /// take_changes and restore. Returns sorted outputs and what the last
    /// changes said of key 6.
    fn run(cut: Option<usize>) -> (Vec<String>, Option<Option<Vec<u8>>>) {
        let mut op: Op = ProcessOperator::new("mixed", Mixed);
        op.track_changes(true);
        let mut store: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        let mut key6 = None;
        let mut emit = Emit::new();
        let mut checkpoint = |op: &mut Op, store: &mut BTreeMap<u32, Vec<u8>>| {
            let mut changes = Vec::new();
            op.take_changes(&mut changes);
            for (k, v) in changes {
                if k == 6 {
                    key6 = Some(v.clone());
                }
                match v {
                    Some(v) => store.insert(k, v),
                    None => store.remove(&k),
                };
            }
        };
        let records = input();
        let mut stamps: Vec<u64> = records.iter().map(|r| r.0).collect();
        stamps.dedup();
        for (i, stamp) in stamps.iter().enumerate() {
            if i.is_multiple_of(13) || Some(i) == cut {
                // As the primitive does: an activation ends with the
                // watermark past every stamp applied, then the flush.
                op.on_watermark(*stamp, &mut emit);
                checkpoint(&mut op, &mut store);
            }
            if Some(i) == cut {
                op = ProcessOperator::new("mixed", Mixed);
                op.track_changes(true);
                for (k, v) in &store {
                    op.restore(*k, v).expect("restores");
                }
            }
            op.on_watermark(*stamp, &mut emit);
            for r in records.iter().filter(|r| r.0 == *stamp) {
                op.on_record(r.1, r.2, (r.1, r.3, r.2), r.0, &mut emit);
            }
        }
        op.on_watermark(20_000, &mut emit);
        checkpoint(&mut op, &mut store);
        op.on_watermark(u64::MAX, &mut emit);
        let mut out: Vec<String> = emit
            .drain_outputs()
            .map(|(at, t, e)| match e {
                Emitted::Main(s) => format!("main {at} {t} {s}"),
                Emitted::Side(s) => format!("side {at} {t} {s}"),
            })
            .collect();
        out.sort();
        (out, key6)
    }

    #[test]
    fn state_and_timers_survive_a_restore_at_any_cut() {
        let (straight, key6) = run(None);
        assert!(straight.iter().any(|s| s.starts_with("side")));
        assert!(straight.iter().any(|s| s.contains("timer")));
        assert_eq!(
            key6,
            Some(None),
            "a key whose state expired and whose timers fired is gone from the checkpoint"
        );
        for cut in [1, 40, 77, 150] {
            let restored = run(Some(cut)).0;
            let missing: Vec<&String> = straight
                .iter()
                .filter(|s| !restored.contains(s))
                .take(5)
                .collect();
            let extra: Vec<&String> = restored
                .iter()
                .filter(|s| !straight.contains(s))
                .take(5)
                .collect();
            assert!(
                restored == straight,
                "cut at stamp {cut}: missing {missing:#?}, extra {extra:#?}"
            );
        }
    }

    /// Each record (key, event time) sets a timer at its time; each timer
    /// outputs its time and sets one `step` later (saturating), up to
    /// `chain` times per key.
    struct Chain {
        step: u64,
        chain: u32,
    }

    #[derive(Default, Serialize, Deserialize)]
    struct Fired {
        count: ValueState<u32>,
    }

    impl ProcessFunction<u32, u64> for Chain {
        type State = Fired;
        type Out = (u32, u64, u64);
        type Side = ();

        fn on_record(
            &mut self,
            ctx: &mut Context<'_, u32, (u32, u64, u64), ()>,
            _: &mut Fired,
            ts: u64,
        ) {
            ctx.register_event_timer(ts);
        }

        fn on_timer(
            &mut self,
            ctx: &mut Context<'_, u32, (u32, u64, u64), ()>,
            s: &mut Fired,
            time: u64,
        ) {
            let n = s.count.get().copied().unwrap_or(0);
            s.count.set(n + 1);
            ctx.output((*ctx.key(), time, ctx.watermark()));
            if n + 1 < self.chain {
                ctx.register_event_timer(time.saturating_add(self.step));
            }
        }
    }

    /// Runs (key, event time) records at stamp 0, then the watermarks;
    /// returns (key, timer time, firing watermark) in firing order.
    fn chain(
        step: u64,
        chain: u32,
        records: &[(u32, u64)],
        watermarks: &[u64],
    ) -> Vec<(u32, u64, u64)> {
        let mut op: ProcessOperator<u32, u64, Chain> =
            ProcessOperator::new("chain", Chain { step, chain });
        let mut emit = Emit::new();
        op.on_watermark(0, &mut emit);
        for (k, ts) in records {
            op.on_record(*k, *ts, *ts, 0, &mut emit);
        }
        for w in watermarks {
            op.on_watermark(*w, &mut emit);
        }
        assert!(op.event.is_empty(), "every timer fired");
        emit.drain_outputs()
            .map(|(_, _, out)| match out {
                Emitted::Main(o) => o,
                Emitted::Side(()) => unreachable!("no side output"),
            })
            .collect()
    }

    #[test]
    fn timers_at_the_end_of_time_fire_once() {
        const MAX: u64 = u64::MAX;
        // A timer fires when the watermark passes its time; MAX - 1 and MAX
        // are passed only by the end of time, where they fire in time order.
        assert_eq!(
            chain(
                0,
                1,
                &[(1, MAX), (1, MAX - 1), (2, 1 << 63), (1, 0)],
                &[1 << 63, (1 << 63) + 1, MAX - 1, MAX]
            ),
            vec![
                (1, 0, 1),
                (2, 1 << 63, (1 << 63) + 1),
                (1, MAX - 1, MAX),
                (1, MAX, MAX)
            ]
        );
        // A saturating chain reaches MAX and stops there (it would
        // otherwise re-register MAX forever); one of step 0 likewise.
        assert_eq!(
            chain(4, 1_000, &[(3, MAX - 9)], &[MAX]),
            vec![
                (3, MAX - 9, MAX - 8),
                (3, MAX - 5, MAX - 4),
                (3, MAX - 1, MAX),
                (3, MAX, MAX)
            ]
        );
        assert_eq!(chain(0, 1_000, &[(3, MAX)], &[MAX]), vec![(3, MAX, MAX)]);
        // Below the end of time a chain goes on as documented.
        assert_eq!(
            chain(10, 3, &[(4, 5)], &[100]),
            vec![(4, 5, 6), (4, 15, 16), (4, 25, 26)]
        );
    }

    #[derive(Serialize, Deserialize)]
    struct Expiring {
        value: ValueState<u64>,
    }

    impl Default for Expiring {
        fn default() -> Self {
            Expiring {
                value: ValueState::with_ttl(Duration::from_millis(500)),
            }
        }
    }

    struct Remember;

    impl ProcessFunction<u32, u64> for Remember {
        type State = Expiring;
        type Out = ();
        type Side = ();

        fn on_record(&mut self, _: &mut Context<'_, u32, (), ()>, s: &mut Expiring, v: u64) {
            s.value.set(v);
        }
    }

    #[test]
    fn expired_state_leaves_the_checkpoint() {
        let mut op: ProcessOperator<u32, u64, Remember> =
            ProcessOperator::new("remember", Remember);
        op.track_changes(true);
        let mut emit = Emit::new();
        let mut changes = Vec::new();
        op.on_watermark(1_000, &mut emit);
        op.on_record(1, 1_000, 7, 1_000, &mut emit);
        op.on_record(2, 1_000, 8, 1_000, &mut emit);
        op.on_watermark(1_001, &mut emit);
        op.take_changes(&mut changes);
        changes.sort();
        assert_eq!(changes.len(), 2);
        assert!(
            changes.iter().all(|(_, v)| v.is_some()),
            "both keys hold a value"
        );
        // Key 2 is written again at 1200: it expires at 1700, key 1 at 1500.
        op.on_watermark(1_200, &mut emit);
        op.on_record(2, 1_200, 9, 1_200, &mut emit);
        op.on_watermark(1_499, &mut emit);
        changes.clear();
        op.take_changes(&mut changes);
        assert_eq!(changes.iter().map(|(k, _)| *k).collect::<Vec<_>>(), vec![2]);
        op.on_watermark(1_500, &mut emit);
        changes.clear();
        op.take_changes(&mut changes);
        assert_eq!(
            changes,
            vec![(1, None)],
            "key 1 expired and is deleted from the store"
        );
        assert_eq!(op.keys.len(), 1, "and from memory");
        op.on_watermark(1_700, &mut emit);
        changes.clear();
        op.take_changes(&mut changes);
        assert_eq!(changes, vec![(2, None)]);
        assert!(op.keys.is_empty() && op.expiries.is_empty());
    }
}
