//! Tumbling and sliding windows: state per pane, windows fired in start order.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use weir::stateful::{Emit, KeyedOperator, Keys};
use weir::{Data, FastMap, FastSet, Key};

use super::assign::{sliding_windows, Window};
use super::{Beyond, Fired, Late, Limit, Rejected};
use crate::aggregate::Aggregator;

/// When `window` fires: at `end + lateness`, or at the end of time
/// (`u64::MAX`, when the input ends) if that is later.
pub(crate) fn fire_time(window: &Window, lateness: u64) -> u64 {
    window.end.saturating_add(lateness)
}

/// One key's state: its pane groups as (pane start, from, accumulator), the
/// layout a checkpoint stores.
pub(crate) type KeyPanes<Acc> = Vec<(u64, u64, Acc)>;

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
/// has fired (or held nothing).
///
/// Each key's pane groups are its state in the primitive ([`KeyPanes`]);
/// the operator keeps only the index across keys of which keys have a group
/// (`groups`). Dropping a pane whose windows all fired (as its last window
/// fires) is not written by a checkpoint unless it was the key's last
/// (`get_mut_untracked`): a restore
/// drops the panes its checkpoint's watermark had fired instead, so a
/// checkpoint writes only the keys that got records.
pub(crate) struct FixedWindows<K, T, A: Aggregator<T>> {
    size: u64,
    slide: u64,
    lateness: u64,
    aggregator: A,
    /// The pane length.
    pane: u64,
    /// The keys with state in each pane group, by (from, pane start): the
    /// window starting at `from` is the first that counts the group, so the
    /// groups a window counts are exactly those with `from` at or before its
    /// start (the earlier panes are dropped by then).
    groups: BTreeMap<(u64, u64), Vec<K>>,
    /// Windows starting before this have fired.
    next_start: u64,
    scratch: Vec<Window>,
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
            groups: BTreeMap::new(),
            next_start: 0,
            scratch: Vec::new(),
            restored: FastMap::default(),
            restored_until: 0,
            _record: PhantomData,
        }
    }

    /// The next window to fire: (fire time, window), if any pane is left
    /// and the window can be represented.
    fn next_window(&self) -> Option<(u64, Window)> {
        let (&(from, _), _) = self.groups.first_key_value()?;
        let start = from.max(self.next_start);
        let end = start.checked_add(self.size)?;
        let window = Window { start, end };
        Some((fire_time(&window, self.lateness), window))
    }

    /// Drops from the index the pane groups no window starting at or after
    /// `next_start` holds (those before it). Their keys dropped them from
    /// their state when the window before fired, which held all of them.
    fn drop_groups_before(&mut self, next_start: u64) {
        let gone: Vec<(u64, u64)> = self
            .groups
            .range(..(next_start, 0))
            .map(|(at, _)| *at)
            .filter(|(_, pane)| *pane < next_start)
            .collect();
        for at in gone {
            self.groups.remove(&at);
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

impl<K, T, A> KeyedOperator<K, T> for FixedWindows<K, T, A>
where
    K: Key,
    T: Data,
    A: Aggregator<T>,
{
    type State = KeyPanes<A::Acc>;
    type Out = Fired<K, A::Out>;
    type Late = Rejected<K, T>;

    fn state_version(&self) -> u32 {
        // 3: the primitive's value per key (a byte saying which parts
        // follow, then the panes); 2: panes alone; 1: every window of a key.
        3
    }

    fn on_record(
        &mut self,
        keys: &mut Keys<K, Self::State>,
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
        let panes = keys.state.get_or_insert_with(key.clone(), Vec::new);
        // A key's latest pane is the likeliest.
        match panes
            .iter_mut()
            .rev()
            .find(|(p, f, _)| (*p, *f) == (pane, from))
        {
            Some((_, _, acc)) => self.aggregator.add(acc, &record),
            None => {
                let mut acc = self.aggregator.init();
                self.aggregator.add(&mut acc, &record);
                panes.push((pane, from, acc));
                self.groups.entry((from, pane)).or_default().push(key);
            }
        }
    }

    fn on_watermark(
        &mut self,
        keys: &mut Keys<K, Self::State>,
        watermark: u64,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        let mut fired: FastSet<K> = FastSet::default();
        while let Some((fire, window)) = self.next_window() {
            if fire > watermark {
                break;
            }
            // Each key once (it may be in several groups).
            for (_, group) in self.groups.range(..=(window.start, u64::MAX)) {
                fired.extend(group.iter().cloned());
            }
            // Every window starting before the next one has fired after
            // this one; at the end of time no next one exists.
            let next = window.start.saturating_add(self.slide);
            for key in fired.drain() {
                // Emitted before the checkpoint this key was restored from?
                let emitted = self.restored.get(&key).is_some_and(|w| fire <= *w);
                let Some(panes) = keys.state.get_mut_untracked(&key) else {
                    continue;
                };
                if !emitted {
                    let mut result: Option<A::Acc> = None;
                    let counted = panes.iter().filter(|(pane, from, _)| {
                        *from <= window.start && (window.start..window.end).contains(pane)
                    });
                    for (_, _, acc) in counted {
                        match &mut result {
                            Some(result) => self.aggregator.merge(result, acc.clone()),
                            None => result = Some(acc.clone()),
                        }
                    }
                    if let Some(acc) = result {
                        let value = self.aggregator.finish(acc);
                        Fired::emit(emit, fire, key.clone(), window, value);
                    }
                }
                // The panes no later window holds go now, while the key is
                // at hand (every key of such a pane is in this window).
                panes.retain(|(pane, _, _)| *pane >= next);
                if panes.is_empty() {
                    // Its last pane: the checkpoint forgets the key.
                    keys.state.remove(&key);
                }
            }
            self.next_start = next;
            self.drop_groups_before(next);
        }
        if self.next_window().is_none() && !self.groups.is_empty() {
            // What is left has no window that can be represented (it would
            // end past u64::MAX).
            for key in std::mem::take(&mut self.groups).into_values().flatten() {
                keys.state.remove(&key);
            }
        }
        if !self.restored.is_empty()
            && self
                .next_window()
                .is_none_or(|(f, _)| f > self.restored_until)
        {
            self.restored = FastMap::default();
        }
    }

    fn next_fire(&self, _: &Keys<K, Self::State>) -> Option<u64> {
        self.next_window().map(|(fire, _)| fire)
    }

    fn on_restore(
        &mut self,
        key: &K,
        panes: &mut Self::State,
        watermark: u64,
    ) -> Result<bool, String> {
        for &(pane, from, _) in panes.iter() {
            if pane % self.pane != 0 || from % self.slide != 0 || from > pane {
                return Err(format!(
                    "stored pane at {pane} ms (counted from the window at {from} ms) does not fit windows of {} ms every {} ms: the windows changed",
                    self.size, self.slide
                ));
            }
        }
        // Every window holding such a pane fired before the checkpoint.
        panes.retain(|(pane, _, _)| self.pane_done_at(*pane) > watermark);
        for &(pane, from, _) in panes.iter() {
            self.groups
                .entry((from, pane))
                .or_default()
                .push(key.clone());
        }
        if watermark > 0 {
            self.restored.insert(key.clone(), watermark);
            self.restored_until = self.restored_until.max(watermark);
        }
        Ok(!panes.is_empty())
    }
}
