//! Session windows: per key, records closer than `gap` in event time share a
//! window `[first, last + gap)`; overlapping sessions merge.
//!
//! Merging depends on order, so this logic asks the keyed-state primitive for
//! stamp-ordered application: a record stamped `s` sees every session that
//! closed at or before `s` already fired, whichever worker count runs the job.
//! A record is late iff its stamp has passed its own window `[ts, ts + gap)`
//! (plus allowed lateness).
//!
//! A record whose own window `[ts, ts + gap)` would end past `u64::MAX` is
//! not representable: it goes to the dead letters and joins no session. A
//! session's fire time `end + lateness` saturates at `u64::MAX` (it then
//! fires when the input ends).

use std::collections::BTreeSet;
use std::marker::PhantomData;

use weir::stateful::{Emit, KeyedOperator, KeyedState, Keys};
use weir::EventTime;
use weir::{Data, Key};

use super::assign::Window;
use super::fixed::fire_time;
use super::{Beyond, Fired, Late, Limit, Rejected};
use crate::aggregate::Aggregator;

/// One key's open sessions, sorted by start, non-overlapping: its state in
/// the primitive, as a checkpoint stores it.
pub(crate) type KeySessions<Acc> = Vec<(Window, Acc)>;

pub(crate) struct SessionWindows<K, T, A: Aggregator<T>> {
    gap: u64,
    lateness: u64,
    aggregator: A,
    /// (fire time, key, session start) of every open session: the index
    /// across keys.
    fires: BTreeSet<(u64, K, u64)>,
    _record: PhantomData<T>,
}

impl<K: Key, T, A: Aggregator<T>> SessionWindows<K, T, A> {
    /// Sessions closing `gap` ms after their last record, firing `lateness`
    /// ms after their end.
    pub(crate) fn new(gap: u64, lateness: u64, aggregator: A) -> Self {
        SessionWindows {
            gap,
            lateness,
            aggregator,
            fires: BTreeSet::new(),
            _record: PhantomData,
        }
    }
}

impl<K, T, A> KeyedOperator<K, T> for SessionWindows<K, T, A>
where
    K: Key,
    T: Data,
    A: Aggregator<T>,
{
    type Table = KeyedState<K, KeySessions<A::Acc>>;
    type Out = Fired<K, A::Out>;
    type Late = Rejected<K, T>;

    fn ordered(&self) -> bool {
        true
    }

    fn state_version(&self) -> u32 {
        // 2: the primitive's value per key (a byte saying which parts
        // follow, then the sessions); 1: the sessions alone.
        2
    }

    fn on_record(
        &mut self,
        keys: &mut Keys<K, Self::Table>,
        key: K,
        EventTime(ts): EventTime,
        record: T,
        EventTime(stamp): EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        let Some(end) = ts.checked_add(self.gap) else {
            emit.reject(
                EventTime(stamp),
                EventTime(ts),
                Rejected::Beyond(Beyond {
                    record,
                    event_time: ts,
                    limit: Limit::Session { gap: self.gap },
                }),
            );
            return;
        };
        let mut window = Window { start: ts, end };
        if stamp >= fire_time(&window, self.lateness) {
            emit.late(
                EventTime(stamp),
                EventTime(ts),
                Rejected::Late(Late {
                    key,
                    window,
                    record,
                    watermark: stamp,
                }),
            );
            return;
        }
        let mut acc = self.aggregator.init();
        self.aggregator.add(&mut acc, &record);
        let sessions = keys.state.get_or_insert_with(key.clone(), Vec::new);
        // Absorb every open session that overlaps the record's own window.
        let mut i = 0;
        while i < sessions.len() {
            let s = &sessions[i].0;
            if s.start < window.end && window.start < s.end {
                let (absorbed, absorbed_acc) = sessions.remove(i);
                self.fires.remove(&(
                    fire_time(&absorbed, self.lateness),
                    key.clone(),
                    absorbed.start,
                ));
                window.start = window.start.min(absorbed.start);
                window.end = window.end.max(absorbed.end);
                self.aggregator.merge(&mut acc, absorbed_acc);
            } else {
                i += 1;
            }
        }
        let at = sessions.partition_point(|s| s.0.start < window.start);
        sessions.insert(at, (window, acc));
        self.fires
            .insert((fire_time(&window, self.lateness), key, window.start));
    }

    fn on_watermark(
        &mut self,
        keys: &mut Keys<K, Self::Table>,
        EventTime(watermark): EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        while let Some((fire, _, _)) = self.fires.first() {
            if *fire > watermark {
                break;
            }
            let Some((fire, key, start)) = self.fires.pop_first() else {
                break;
            };
            let Some(sessions) = keys.state.get_mut(&key) else {
                continue;
            };
            if let Some(i) = sessions.iter().position(|s| s.0.start == start) {
                let (window, acc) = sessions.remove(i);
                let value = self.aggregator.finish(acc);
                Fired::emit(emit, fire, key.clone(), window, value);
            }
            if sessions.is_empty() {
                keys.state.remove(&key);
            }
        }
    }

    fn next_fire(&self, _: &Keys<K, Self::Table>) -> Option<EventTime> {
        self.fires.first().map(|(fire, _, _)| EventTime(*fire))
    }

    fn on_restore(
        &mut self,
        key: &K,
        sessions: &mut KeySessions<A::Acc>,
        _watermark: EventTime,
    ) -> Result<bool, String> {
        sessions.sort_by_key(|s| s.0.start);
        for (window, _) in sessions.iter() {
            self.fires
                .insert((fire_time(window, self.lateness), key.clone(), window.start));
        }
        Ok(!sessions.is_empty())
    }
}
