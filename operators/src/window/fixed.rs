//! Tumbling and sliding windows: state per pane, windows fired in start order.

use std::marker::PhantomData;

use weir::stateful::{Emit, KeyedOperator, Keys, SpacedState};
use weir::EventTime;
use weir::{Data, FastMap, Key};

use super::assign::{sliding_windows, Window};
use super::{Beyond, Fired, Late, Limit, Rejected};
use crate::aggregate::Aggregator;

/// When `window` fires: at `end + lateness`, or at the end of time
/// (`u64::MAX`, when the input ends) if that is later.
pub(crate) fn fire_time(window: &Window, lateness: u64) -> u64 {
    window.end.saturating_add(lateness)
}

/// A pane group: (from, pane start), the namespace of its accumulators.
/// Ordered by `from` first, the order windows count groups in.
pub(crate) type Group = (u64, u64);

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
/// The primitive keeps the accumulators per pane group and key, group-major
/// ([`SpacedState`]): the records of one minute touch one group's table, and
/// a window fires by reading its groups' tables in turn. The groups are the
/// operator's index by fire time too. Dropping a group whose windows all
/// fired is not written by a checkpoint, except for keys it leaves with no
/// state: a restore drops the groups its checkpoint's watermark had fired
/// instead, so a checkpoint writes only the keys that got records.
pub(crate) struct FixedWindows<K, T, A: Aggregator<T>> {
    size: u64,
    slide: u64,
    lateness: u64,
    aggregator: A,
    /// The pane length.
    pane: u64,
    /// Windows starting before this have fired.
    next_start: u64,
    /// The windows holding the pane of the last record (they depend on the
    /// pane alone), so that a run of records in one pane, the common case,
    /// skips the assigner's divisions.
    memo: PaneWindows,
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
            next_start: 0,
            memo: PaneWindows::default(),
            restored: FastMap::default(),
            restored_until: 0,
            _record: PhantomData,
        }
    }

    /// The next window to fire: (fire time, window), if any pane is left
    /// and the window can be represented.
    fn next_window(&self, groups: &Panes<K, A::Acc>) -> Option<(u64, Window)> {
        let &(from, _) = groups.first_space()?;
        let start = from.max(self.next_start);
        let end = start.checked_add(self.size)?;
        let window = Window { start, end };
        Some((fire_time(&window, self.lateness), window))
    }

    /// When the last window holding the pane starting at `pane` fires.
    fn pane_done_at(&self, pane: u64) -> u64 {
        let last_start = pane - pane % self.slide;
        last_start
            .saturating_add(self.size)
            .saturating_add(self.lateness)
    }
}

/// The windows that hold one pane: the same for every time in it, since
/// the pane length divides both size and slide.
#[derive(Default)]
struct PaneWindows {
    /// The pane's start, once `assigned`.
    pane: u64,
    /// Whether a pane was assigned yet.
    assigned: bool,
    /// Its windows, in start order.
    windows: Vec<Window>,
    /// The start of its first window that cannot be represented, if any.
    beyond: Option<u64>,
}

impl PaneWindows {
    /// Whether `ts` lies in the pane assigned last (of length `pane`).
    fn holds(&self, ts: u64, pane: u64) -> bool {
        self.assigned && ts >= self.pane && ts - self.pane < pane
    }

    /// Holds the pane of `ts` and its windows, assigning them unless `ts`
    /// lies in the pane held already.
    fn hold(&mut self, ts: u64, pane: u64, size: u64, slide: u64) {
        if self.holds(ts, pane) {
            return;
        }
        self.windows.clear();
        self.beyond = sliding_windows(ts, size, slide, &mut self.windows);
        self.pane = ts - ts % pane;
        self.assigned = true;
    }
}

/// Every key's accumulator in every pane group.
type Panes<K, Acc> = SpacedState<Group, K, Acc>;

impl<K, T, A> KeyedOperator<K, T> for FixedWindows<K, T, A>
where
    K: Key,
    T: Data,
    A: Aggregator<T>,
{
    type Table = Panes<K, A::Acc>;
    type Out = Fired<K, A::Out>;
    type Late = Rejected<K, T>;

    fn state_version(&self) -> u32 {
        // 4: per key, a byte saying which parts follow, then its groups as
        // ((from, pane), accumulator); 3: the same as (pane, from,
        // accumulator); 2: panes alone; 1: every window of a key.
        4
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
        self.memo.hold(ts, self.pane, self.size, self.slide);
        if let Some(start) = self.memo.beyond {
            emit.reject(
                EventTime(stamp),
                EventTime(ts),
                Rejected::Beyond(Beyond {
                    record: record.clone(),
                    event_time: ts,
                    limit: Limit::Fixed {
                        start,
                        size: self.size,
                        counted_in: self.memo.windows.len(),
                    },
                }),
            );
        }
        let pane = self.memo.pane;
        // Windows come in start order, so the late ones come first.
        let mut from = None;
        for &window in &self.memo.windows {
            let fire = fire_time(&window, self.lateness);
            if stamp >= fire {
                emit.late(
                    EventTime(stamp),
                    EventTime(ts),
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
        let aggregator = &self.aggregator;
        let acc = keys
            .state
            .get_or_insert_with((from, pane), key, || aggregator.init());
        aggregator.add(acc, &record);
    }

    fn on_watermark(
        &mut self,
        keys: &mut Keys<K, Self::Table>,
        EventTime(watermark): EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    ) {
        let groups = &mut keys.state;
        while let Some((fire, window)) = self.next_window(groups) {
            if fire > watermark {
                break;
            }
            // The groups counted from this window or before; the earlier
            // panes are gone, so they are this window's.
            let counted = ..=(window.start, u64::MAX);
            let most = groups.range(counted).map(|(_, accs)| accs.len()).max();
            let mut results: FastMap<K, A::Acc> = FastMap::default();
            results.reserve(most.unwrap_or(0));
            for (_, accs) in groups.range(counted) {
                for (key, acc) in accs.iter() {
                    match results.get_mut(key) {
                        Some(result) => self.aggregator.merge(result, acc.clone()),
                        None => {
                            results.insert(key.clone(), acc.clone());
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
                Fired::emit(emit, fire, key, window, value);
            }
            // Every window starting before the next one has fired after
            // this one; at the end of time no next one exists. The panes no
            // later window holds go now.
            let next = window.start.saturating_add(self.slide);
            self.next_start = next;
            let spent: Vec<Group> = groups
                .range(..(next, 0))
                .map(|(group, _)| *group)
                .filter(|(_, pane)| *pane < next)
                .collect();
            for group in spent {
                groups.drop_space(&group);
            }
        }
        if self.next_window(groups).is_none() && !groups.is_empty() {
            // What is left has no window that can be represented (it would
            // end past u64::MAX).
            let rest: Vec<Group> = groups.range(..).map(|(group, _)| *group).collect();
            for group in rest {
                groups.drop_space(&group);
            }
        }
        if !self.restored.is_empty()
            && self
                .next_window(groups)
                .is_none_or(|(f, _)| f > self.restored_until)
        {
            self.restored = FastMap::default();
        }
    }

    fn next_fire(&self, keys: &Keys<K, Self::Table>) -> Option<EventTime> {
        self.next_window(&keys.state)
            .map(|(fire, _)| EventTime(fire))
    }

    fn on_restore(
        &mut self,
        key: &K,
        groups: &mut Vec<(Group, A::Acc)>,
        EventTime(watermark): EventTime,
    ) -> Result<bool, String> {
        for &((from, pane), _) in groups.iter() {
            if pane % self.pane != 0 || from % self.slide != 0 || from > pane {
                return Err(format!(
                    "stored pane at {pane} ms (counted from the window at {from} ms) does not fit windows of {} ms every {} ms: the windows changed",
                    self.size, self.slide
                ));
            }
        }
        // Every window holding such a pane fired before the checkpoint.
        groups.retain(|((_, pane), _)| self.pane_done_at(*pane) > watermark);
        if watermark > 0 && !groups.is_empty() {
            self.restored.insert(key.clone(), watermark);
            self.restored_until = self.restored_until.max(watermark);
        }
        Ok(!groups.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::rng::SplitMix64;

    /// The memo gives every time the windows the assigner gives it, for
    /// times that stay in a pane, move on, jump back, and sit at the end of
    /// time (where windows cannot be represented).
    #[test]
    fn the_pane_memo_gives_the_windows_of_every_time() {
        let mut rng = SplitMix64::new(7);
        for (size, slide) in [(10, 10), (10, 5), (10, 4), (7, 3), (1, 1), (1_000, 1)] {
            let pane = gcd(size, slide);
            let mut memo = PaneWindows::default();
            let mut ts = 0u64;
            for _ in 0..5_000 {
                ts = match rng.below(6) {
                    0 => rng.below(1_000),
                    1 => u64::MAX - rng.below(30),
                    2 => ts.saturating_sub(rng.below(5)),
                    _ => ts.saturating_add(rng.below(4)),
                };
                memo.hold(ts, pane, size, slide);
                let mut direct = Vec::new();
                let beyond = sliding_windows(ts, size, slide, &mut direct);
                assert_eq!(memo.windows, direct, "ts {ts} size {size} slide {slide}");
                assert_eq!(memo.beyond, beyond, "ts {ts} size {size} slide {slide}");
                assert_eq!(memo.pane, ts - ts % pane);
            }
        }
    }
}
