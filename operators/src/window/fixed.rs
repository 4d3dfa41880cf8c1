//! Tumbling and sliding windows: state per window end, fired in end order.

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

/// One key's accumulator in one window.
pub(crate) struct Slot<Acc> {
    acc: Acc,
    /// A record changed it since the last `take_changes`.
    changed: bool,
}

/// Every key's accumulator in one window.
pub(crate) type WindowState<K, Acc> = FastMap<K, Slot<Acc>>;

/// Open windows by (fire time, start), each with every key's state.
pub(crate) type Pending<K, Acc> = BTreeMap<(u64, u64), (Window, WindowState<K, Acc>)>;

pub(crate) struct FixedWindows<K, T, A: Aggregator<T>> {
    pub(crate) size: u64,
    pub(crate) slide: u64,
    pub(crate) lateness: u64,
    pub(crate) aggregator: A,
    /// Open windows by (fire time, start): the fire time is `end +
    /// lateness`, saturated at `u64::MAX`, so windows near the end of time
    /// may share one; the start tells them apart. All keys' state for it.
    pub(crate) pending: Pending<K, A::Acc>,
    pub(crate) scratch: Vec<Window>,
    /// When tracking: keys changed since the last checkpoint other than by
    /// a record (those are flagged in their [`Slot`]s, which costs a record
    /// nothing, where a look-up here per record cost about as much as the
    /// aggregation). A fired window does not make its key dirty unless it
    /// was the key's last: a restore drops fired windows by the
    /// checkpoint's watermark instead.
    pub(crate) dirty: Option<FastSet<K>>,
    /// Windows firing at or before this were fired before the checkpoint
    /// being restored (see `restore_watermark`).
    pub(crate) restored_watermark: u64,
    pub(crate) _record: PhantomData<T>,
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
                continue;
            }
            let (_, accs) = self
                .pending
                .entry((fire, window.start))
                .or_insert_with(|| (window, FastMap::default()));
            match accs.entry(key.clone()) {
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
    }

    fn on_watermark(&mut self, watermark: u64, emit: &mut Emit<Self::Out, Self::Late>) {
        while let Some(entry) = self.pending.first_entry() {
            let (fire, _) = *entry.key();
            if fire > watermark {
                break;
            }
            let (window, accs) = entry.remove();
            for (key, Slot { acc, .. }) in accs {
                if let Some(dirty) = &mut self.dirty {
                    // A key with windows left keeps its stored state: the
                    // fired window in it is dropped on restore.
                    if !self
                        .pending
                        .values()
                        .any(|(_, accs)| accs.contains_key(&key))
                    {
                        dirty.insert(key.clone());
                    }
                }
                let value = self.aggregator.finish(acc);
                emit.output(
                    fire,
                    window.end.saturating_sub(1),
                    Fired { key, window, value },
                );
            }
        }
    }

    fn next_fire(&self) -> Option<u64> {
        self.pending.keys().next().map(|(fire, _)| *fire)
    }

    fn track_changes(&mut self, on: bool) {
        self.dirty = on.then(FastSet::default);
        for (_, accs) in self.pending.values_mut() {
            for slot in accs.values_mut() {
                slot.changed = false;
            }
        }
    }

    fn take_changes(&mut self, out: &mut Vec<(K, Option<Vec<u8>>)>) {
        let Some(dirty) = &mut self.dirty else { return };
        for (_, accs) in self.pending.values_mut() {
            for (key, slot) in accs.iter_mut().filter(|(_, slot)| slot.changed) {
                slot.changed = false;
                if !dirty.contains(key) {
                    dirty.insert(key.clone());
                }
            }
        }
        for key in dirty.drain() {
            let state: Vec<(&Window, &A::Acc)> = self
                .pending
                .values()
                .filter_map(|(window, accs)| accs.get(&key).map(|slot| (window, &slot.acc)))
                .collect();
            let encoded = (!state.is_empty()).then(|| encode(&state));
            out.push((key, encoded));
        }
    }

    fn restore_watermark(&mut self, watermark: u64) {
        self.restored_watermark = watermark;
    }

    fn restore(&mut self, key: K, state: &[u8]) -> Result<(), String> {
        let windows: Vec<(Window, A::Acc)> = decode(state)?;
        for (window, acc) in windows {
            let fire = fire_time(&window, self.lateness);
            if fire <= self.restored_watermark {
                // Fired before the checkpoint.
                continue;
            }
            let (_, accs) = self
                .pending
                .entry((fire, window.start))
                .or_insert_with(|| (window, FastMap::default()));
            accs.insert(
                key.clone(),
                Slot {
                    acc,
                    changed: false,
                },
            );
        }
        if let Some(dirty) = &mut self.dirty {
            dirty.insert(key);
        }
        Ok(())
    }
}
