//! Tumbling and sliding windows: state per pane, windows fired in start order.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use weir::stateful::{Emit, KeyedLogic};
use weir::{Data, FastMap, Key};

use super::assign::{sliding_windows, Window};
use super::{decode, encode, Beyond, FastSet, Fired, Late, Limit, Rejected};
use crate::aggregate::Aggregator;

/// When `window` fires: at `end + lateness`, or at the end of time
/// (`u64::MAX`, when the input ends) if that is later.
pub(crate) fn fire_time(window: &Window, lateness: u64) -> u64 {
    window.end.saturating_add(lateness)
}

/// One key's accumulator in one pane.
pub(crate) struct Slot<Acc> {
    acc: Acc,
    /// A record changed it since the last `take_changes`.
    changed: bool,
}

/// Every key's accumulator in one pane.
pub(crate) type PaneState<K, Acc> = FastMap<K, Slot<Acc>>;

/// The greatest common divisor: the pane length of windows of `size`
/// starting every `slide`.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Tumbling and sliding windows, kept as *panes*: a record is added to the
/// one pane of length `gcd(size, slide)` that holds its time, not to each of
/// the `size / slide` windows that do, and a window is merged from its panes
/// when it fires (tumbling windows are one pane each). Aggregators give the
/// same result whatever the order of records and merges, so this is exact.
///
/// A record late for some of its windows (the watermark it was stamped with
/// had passed their fire time) but not for the later ones counts only in
/// those: a pane's records are grouped by the first window that counts
/// them, `from` (for an on-time record, the first window holding the pane).
/// Windows fire in start order; every window starting before `next_start`
/// has fired (or held nothing). A checkpoint stores each key's groups as
/// `(pane start, from, accumulator)`.
pub(crate) struct FixedWindows<K, T, A: Aggregator<T>> {
    pub(crate) size: u64,
    pub(crate) slide: u64,
    pub(crate) lateness: u64,
    pub(crate) aggregator: A,
    /// The pane length.
    pane: u64,
    /// Pane groups by (from, pane start), each with every key's
    /// accumulator: the window starting at `from` is the first that counts
    /// them, so the groups a window counts are exactly those with `from`
    /// at or before its start (the earlier panes are dropped by then).
    panes: BTreeMap<(u64, u64), PaneState<K, A::Acc>>,
    /// Windows starting before this have fired.
    next_start: u64,
    scratch: Vec<Window>,
    /// When tracking: keys changed since the last checkpoint other than by
    /// a record (those are flagged in their [`Slot`]s, which costs a record
    /// nothing, where a look-up here per record cost about as much as the
    /// aggregation). A dropped pane does not make its key dirty unless it
    /// was the key's last: a restore drops panes whose windows all fired by
    /// the checkpoint's watermark instead.
    dirty: Option<FastSet<K>>,
    /// The watermark of the checkpoint store being restored (see
    /// `restore_watermark`).
    restoring_watermark: u64,
    /// Restored keys and the watermark their windows had fired through when
    /// checkpointed: a window firing at or before it is not emitted again.
    /// Emptied once no window left can fire that early.
    restored: FastMap<K, u64>,
    /// The highest watermark in `restored`.
    restored_until: u64,
    _record: PhantomData<T>,
}

impl<K: Key, T, A: Aggregator<T>> FixedWindows<K, T, A> {
    /// Windows of `size` ms starting every `slide` ms (both at least 1),
    /// firing `lateness` ms after their end.
    pub(crate) fn new(size: u64, slide: u64, lateness: u64, aggregator: A) -> Self {
        let (size, slide) = (size.max(1), slide.max(1));
        FixedWindows {
            size,
            slide,
            lateness,
            aggregator,
            pane: gcd(size, slide),
            panes: BTreeMap::new(),
            next_start: 0,
            scratch: Vec::new(),
            dirty: None,
            restoring_watermark: 0,
            restored: FastMap::default(),
            restored_until: 0,
            _record: PhantomData,
        }
    }

    /// The next window to fire: (fire time, window), if any pane is left
    /// and the window can be represented.
    fn next_window(&self) -> Option<(u64, Window)> {
        let (&(from, _), _) = self.panes.first_key_value()?;
        let start = from.max(self.next_start);
        let end = start.checked_add(self.size)?;
        let window = Window { start, end };
        Some((fire_time(&window, self.lateness), window))
    }

    /// Whether `key` has state in any pane.
    fn has_panes(&self, key: &K) -> bool {
        self.panes.values().any(|accs| accs.contains_key(key))
    }

    /// Drops the panes no window starting at or after `next_start` holds
    /// (those before it).
    fn drop_panes_before(&mut self, next_start: u64) {
        let gone: Vec<(u64, u64)> = self
            .panes
            .range(..(next_start, 0))
            .map(|(at, _)| *at)
            .filter(|(_, pane)| *pane < next_start)
            .collect();
        for at in gone {
            let Some(accs) = self.panes.remove(&at) else {
                continue;
            };
            if self.dirty.is_some() {
                for key in accs.into_keys() {
                    // A key with panes left keeps its stored state: the
                    // dropped pane in it is dropped on restore.
                    if !self.has_panes(&key) {
                        if let Some(dirty) = &mut self.dirty {
                            dirty.insert(key);
                        }
                    }
                }
            }
        }
    }

    /// When the last window holding the pane starting at `pane` fires.
    fn pane_done_at(&self, pane: u64) -> u64 {
        let last_start = pane - pane % self.slide;
        last_start
            .saturating_add(self.size)
            .saturating_add(self.lateness)
    }
}

impl<K, T, A> KeyedLogic<K, T> for FixedWindows<K, T, A>
where
    K: Key,
    T: Data,
    A: Aggregator<T>,
{
    type Out = Fired<K, A::Out>;
    type Late = Rejected<K, T>;

    fn on_record(
        &mut self,
        key: K,
        ts: u64,
        record: T,
        stamp: u64,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.scratch.clear();
        let beyond = sliding_windows(ts, self.size, self.slide, &mut self.scratch);
        if let Some(start) = beyond {
            emit.reject(
                stamp,
                ts,
                Rejected::Beyond(Beyond {
                    record: record.clone(),
                    event_time: ts,
                    limit: Limit::Fixed {
                        start,
                        size: self.size,
                        counted_in: self.scratch.len(),
                    },
                }),
            );
        }
        // Windows come in start order, so the late ones come first.
        let mut from = None;
        for window in self.scratch.drain(..) {
            let fire = fire_time(&window, self.lateness);
            if stamp >= fire {
                emit.late(
                    stamp,
                    ts,
                    Rejected::Late(Late {
                        key: key.clone(),
                        window,
                        record: record.clone(),
                        watermark: stamp,
                    }),
                );
            } else if from.is_none() {
                from = Some(window.start);
            }
        }
        let Some(from) = from else {
            return;
        };
        // The windows from `from` on count it.
        let pane = ts - ts % self.pane;
        let accs = self.panes.entry((from, pane)).or_default();
        match accs.entry(key) {
            Entry::Occupied(mut slot) => {
                let slot = slot.get_mut();
                self.aggregator.add(&mut slot.acc, &record);
                slot.changed = true;
            }
            Entry::Vacant(vacant) => {
                let mut acc = self.aggregator.init();
                self.aggregator.add(&mut acc, &record);
                vacant.insert(Slot { acc, changed: true });
            }
        }
    }

    fn on_watermark(&mut self, watermark: u64, emit: &mut Emit<Self::Out, Self::Late>) {
        while let Some((fire, window)) = self.next_window() {
            if fire > watermark {
                break;
            }
            let mut results: FastMap<K, A::Acc> = FastMap::default();
            for (_, accs) in self.panes.range(..=(window.start, u64::MAX)) {
                for (key, slot) in accs {
                    match results.get_mut(key) {
                        Some(acc) => self.aggregator.merge(acc, slot.acc.clone()),
                        None => {
                            results.insert(key.clone(), slot.acc.clone());
                        }
                    }
                }
            }
            for (key, acc) in results {
                if self.restored.get(&key).is_some_and(|w| fire <= *w) {
                    // Emitted before the checkpoint this key was restored from.
                    continue;
                }
                let value = self.aggregator.finish(acc);
                emit.output(
                    fire,
                    window.end.saturating_sub(1),
                    Fired { key, window, value },
                );
            }
            // Every window starting before the next one has fired; at the
            // end of time no next one exists.
            let next = window.start.saturating_add(self.slide);
            self.next_start = next;
            self.drop_panes_before(next);
        }
        if self.next_window().is_none() && !self.panes.is_empty() {
            // What is left has no window that can be represented (it would
            // end past u64::MAX).
            let rest = std::mem::take(&mut self.panes);
            if let Some(dirty) = &mut self.dirty {
                for accs in rest.into_values() {
                    dirty.extend(accs.into_keys());
                }
            }
        }
        if !self.restored.is_empty() && self.next_fire().is_none_or(|f| f > self.restored_until) {
            self.restored = FastMap::default();
        }
    }

    fn next_fire(&self) -> Option<u64> {
        self.next_window().map(|(fire, _)| fire)
    }

    fn state_version(&self) -> u32 {
        // 2: panes (1 stored every window of a key).
        2
    }

    fn track_changes(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
        for accs in self.panes.values_mut() {
            for slot in accs.values_mut() {
                slot.changed = false;
            }
        }
    }

    fn take_changes(&mut self, out: &mut Vec<(K, Option<Vec<u8>>)>) {
        let Some(dirty) = &mut self.dirty else { return };
        for accs in self.panes.values_mut() {
            for (key, slot) in accs.iter_mut().filter(|(_, slot)| slot.changed) {
                slot.changed = false;
                if !dirty.contains(key) {
                    dirty.insert(key.clone());
                }
            }
        }
        for key in dirty.drain() {
            let state: Vec<(u64, u64, &A::Acc)> = self
                .panes
                .iter()
                .filter_map(|((from, pane), accs)| {
                    accs.get(&key).map(|slot| (*pane, *from, &slot.acc))
                })
                .collect();
            let encoded = (!state.is_empty()).then(|| encode(&state));
            out.push((key, encoded));
        }
    }

    fn restore_watermark(&mut self, watermark: u64) {
        self.restoring_watermark = watermark;
    }

    fn restore(&mut self, key: K, state: &[u8]) -> Result<(), String> {
        let panes: Vec<(u64, u64, A::Acc)> = decode(state)?;
        for (pane, from, acc) in panes {
            if pane % self.pane != 0 || from % self.slide != 0 || from > pane {
                return Err(format!(
                    "stored pane at {pane} ms (counted from the window at {from} ms) does not fit windows of {} ms every {} ms: the windows changed",
                    self.size, self.slide
                ));
            }
            if self.pane_done_at(pane) <= self.restoring_watermark {
                // Every window holding it fired before the checkpoint.
                continue;
            }
            self.panes.entry((from, pane)).or_default().insert(
                key.clone(),
                Slot {
                    acc,
                    changed: false,
                },
            );
        }
        if self.restoring_watermark > 0 {
            self.restored.insert(key.clone(), self.restoring_watermark);
            self.restored_until = self.restored_until.max(self.restoring_watermark);
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key);
        }
        Ok(())
    }
}
