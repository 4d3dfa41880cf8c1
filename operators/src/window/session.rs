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

use weir::stateful::{Emit, KeyedLogic};
use weir::{Data, FastMap, Key};

use super::assign::Window;
use super::fixed::fire_time;
use super::{decode, encode, Beyond, FastSet, Fired, Late, Limit, Rejected};
use crate::aggregate::Aggregator;

pub(crate) struct Session<Acc> {
    window: Window,
    acc: Acc,
}

pub(crate) struct SessionWindows<K, T, A: Aggregator<T>> {
    pub(crate) gap: u64,
    pub(crate) lateness: u64,
    pub(crate) aggregator: A,
    /// Open sessions per key, sorted by start, non-overlapping.
    pub(crate) sessions: FastMap<K, Vec<Session<A::Acc>>>,
    /// (fire time, key, session start) of every open session.
    pub(crate) fires: BTreeSet<(u64, K, u64)>,
    /// Keys changed since the last checkpoint, when tracking.
    pub(crate) dirty: Option<FastSet<K>>,
    pub(crate) _record: PhantomData<T>,
}

impl<K, T, A> KeyedLogic<K, T> for SessionWindows<K, T, A>
where
    K: Key,
    T: Data,
    A: Aggregator<T>,
{
    type Out = Fired<K, A::Out>;
    type Late = Rejected<K, T>;

    fn ordered(&self) -> bool {
        true
    }

    fn on_record(
        &mut self,
        key: K,
        ts: u64,
        record: T,
        stamp: u64,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        let Some(end) = ts.checked_add(self.gap) else {
            emit.reject(
                stamp,
                ts,
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
                stamp,
                ts,
                Rejected::Late(Late {
                    key,
                    window,
                    record,
                    watermark: stamp,
                }),
            );
            return;
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key.clone());
        }
        let mut acc = self.aggregator.init();
        self.aggregator.add(&mut acc, &record);
        let sessions = self.sessions.entry(key.clone()).or_default();
        // Absorb every open session that overlaps the record's own window.
        let mut i = 0;
        while i < sessions.len() {
            let s = &sessions[i].window;
            if s.start < window.end && window.start < s.end {
                let absorbed = sessions.remove(i);
                self.fires.remove(&(
                    fire_time(&absorbed.window, self.lateness),
                    key.clone(),
                    absorbed.window.start,
                ));
                window.start = window.start.min(absorbed.window.start);
                window.end = window.end.max(absorbed.window.end);
                self.aggregator.merge(&mut acc, absorbed.acc);
            } else {
                i += 1;
            }
        }
        let at = sessions.partition_point(|s| s.window.start < window.start);
        sessions.insert(at, Session { window, acc });
        self.fires
            .insert((fire_time(&window, self.lateness), key, window.start));
    }

    fn on_watermark(&mut self, watermark: u64, emit: &mut Emit<Self::Out, Self::Late>) {
        while let Some((fire, _, _)) = self.fires.first() {
            if *fire > watermark {
                break;
            }
            let Some((fire, key, start)) = self.fires.pop_first() else {
                break;
            };
            let Some(sessions) = self.sessions.get_mut(&key) else {
                continue;
            };
            if let Some(dirty) = &mut self.dirty {
                dirty.insert(key.clone());
            }
            if let Some(i) = sessions.iter().position(|s| s.window.start == start) {
                let session = sessions.remove(i);
                let value = self.aggregator.finish(session.acc);
                emit.output(
                    fire,
                    session.window.end.saturating_sub(1),
                    Fired {
                        key: key.clone(),
                        window: session.window,
                        value,
                    },
                );
            }
            if sessions.is_empty() {
                self.sessions.remove(&key);
            }
        }
    }

    fn next_fire(&self) -> Option<u64> {
        self.fires.first().map(|(fire, _, _)| *fire)
    }

    fn track_changes(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
    }

    fn take_changes(&mut self, out: &mut Vec<(K, Option<Vec<u8>>)>) {
        let Some(dirty) = &mut self.dirty else { return };
        for key in dirty.drain() {
            let encoded = self
                .sessions
                .get(&key)
                .filter(|s| !s.is_empty())
                .map(|sessions| {
                    let state: Vec<(&Window, &A::Acc)> =
                        sessions.iter().map(|s| (&s.window, &s.acc)).collect();
                    encode(&state)
                });
            out.push((key, encoded));
        }
    }

    fn restore(&mut self, key: K, state: &[u8]) -> Result<(), String> {
        let restored: Vec<(Window, A::Acc)> = decode(state)?;
        let sessions = self.sessions.entry(key.clone()).or_default();
        for (window, acc) in restored {
            self.fires
                .insert((fire_time(&window, self.lateness), key.clone(), window.start));
            sessions.push(Session { window, acc });
        }
        sessions.sort_by_key(|s| s.window.start);
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key);
        }
        Ok(())
    }
}
