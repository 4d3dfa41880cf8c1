//! Per-key timers: one set for event time, one for processing time.
//!
//! A timer is a `(key, time)` pair, registered at most once: registering it
//! again changes nothing, deleting it removes it. Each timer has a *due*
//! point, the watermark (or wall clock) at which it fires: for event time
//! `max(time + 1, watermark at registration)` — a timer fires once the
//! watermark has passed its time, or right away if it already had. Timers
//! fire in `(due, key, time)` order, so per key in timestamp order, and in
//! key order among keys due together.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::data::Key;
use crate::ids::{FastMap, FastSet};

/// The timers of every key of one operator instance.
///
/// Registering and firing cost `O(log n)` in the number of timers, with no
/// allocation per timer: the firing order is a binary heap, and a deleted
/// timer stays in it until it reaches the top, where it is skipped (`live`
/// no longer has it at that due point). The top of the heap is always a
/// live timer.
pub struct Timers<K> {
    /// Every timer as (due, key, time), and deleted ones below the top.
    queue: BinaryHeap<Reverse<(u64, K, u64)>>,
    /// Every live timer: (key, time) → due.
    live: FastMap<(K, u64), u64>,
    /// When tracking changes for checkpoints: the keys whose timers were
    /// registered, deleted or fired since the last [`Timers::take_changed`].
    changed: Option<FastSet<K>>,
}

impl<K: Key> Default for Timers<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Key> Timers<K> {
    /// No timers.
    pub fn new() -> Self {
        Timers {
            queue: BinaryHeap::new(),
            live: FastMap::default(),
            changed: None,
        }
    }

    /// Registers `(key, time)` to fire at `due`; false if it was already
    /// registered (it keeps its due point).
    pub fn register(&mut self, key: &K, time: u64, due: u64) -> bool {
        match self.live.entry((key.clone(), time)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(due);
                self.queue.push(Reverse((due, key.clone(), time)));
                if let Some(changed) = &mut self.changed {
                    changed.insert(key.clone());
                }
                true
            }
        }
    }

    /// Deletes `(key, time)`; false if there was no such timer.
    pub fn delete(&mut self, key: &K, time: u64) -> bool {
        if self.live.remove(&(key.clone(), time)).is_none() {
            return false;
        }
        if let Some(changed) = &mut self.changed {
            changed.insert(key.clone());
        }
        self.skip_deleted();
        true
    }

    /// Whether `(key, time)` is registered.
    pub fn contains(&self, key: &K, time: u64) -> bool {
        self.live.contains_key(&(key.clone(), time))
    }

    /// The earliest due point.
    pub fn next_due(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Removes and returns the first timer due at or before `upto`:
    /// (due, key, time).
    pub fn pop_due(&mut self, upto: u64) -> Option<(u64, K, u64)> {
        if self.next_due()? > upto {
            return None;
        }
        let Reverse((due, key, time)) = self.queue.pop()?;
        if let Some(changed) = &mut self.changed {
            changed.insert(key.clone());
        }
        let key_time = (key, time);
        self.live.remove(&key_time);
        self.skip_deleted();
        Some((due, key_time.0, time))
    }

    /// Starts (or stops) recording which keys' timers change.
    pub fn track_changes(&mut self, on: bool) {
        self.changed = on.then(FastSet::default);
    }

    /// The keys whose timers changed since the last call, each once, in no
    /// particular order; empty when not tracking.
    pub fn take_changed(&mut self) -> FastSet<K> {
        match &mut self.changed {
            Some(changed) => std::mem::take(changed),
            None => FastSet::default(),
        }
    }

    /// How many timers are registered.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The timers of every key `wanted` picks, as (time, due) in time order
    /// per key: one pass over all timers (for a checkpoint's changed keys).
    pub fn of_keys(&self, wanted: impl Fn(&K) -> bool) -> FastMap<K, Vec<(u64, u64)>> {
        let mut out: FastMap<K, Vec<(u64, u64)>> = FastMap::default();
        for ((key, time), due) in &self.live {
            if wanted(key) {
                out.entry(key.clone()).or_default().push((*time, *due));
            }
        }
        for times in out.values_mut() {
            times.sort_unstable();
        }
        out
    }

    /// The timers of `key`, as (time, due), in time order.
    pub fn of(&self, key: &K) -> Vec<(u64, u64)> {
        self.of_keys(|k| k == key).remove(key).unwrap_or_default()
    }

    /// Pops deleted timers off the top, so that the top is a live one.
    fn skip_deleted(&mut self) {
        while let Some(Reverse((due, key, time))) = self.queue.peek() {
            // A look-up by (key, time) needs the pair owned; most tops are
            // live, so compare through a clone only here.
            let live = self.live.get(&(key.clone(), *time)) == Some(due);
            if live {
                break;
            }
            self.queue.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_are_deduplicated_per_key_and_time() {
        let mut t = Timers::new();
        assert!(t.register(&1u32, 10, 11));
        assert!(
            !t.register(&1, 10, 50),
            "a second registration changes nothing"
        );
        assert!(t.register(&2, 10, 11));
        assert_eq!(t.of(&1), vec![(10, 11)]);
        assert!(t.contains(&1, 10));
        assert!(t.delete(&1, 10));
        assert!(!t.delete(&1, 10));
        assert!(t.of(&1).is_empty());
        assert_eq!(t.pop_due(100), Some((11, 2, 10)));
        assert!(t.is_empty());
    }

    #[test]
    fn timers_fire_by_due_then_key_then_time() {
        let mut t = Timers::new();
        // (key, time, due)
        for (k, time, due) in [(2u32, 5, 6), (1, 30, 31), (1, 5, 6), (3, 1, 20), (1, 2, 20)] {
            t.register(&k, time, due);
        }
        assert_eq!(t.next_due(), Some(6));
        assert_eq!(t.pop_due(5), None, "nothing is due before 6");
        let mut fired = Vec::new();
        while let Some(f) = t.pop_due(25) {
            fired.push(f);
        }
        assert_eq!(fired, vec![(6, 1, 5), (6, 2, 5), (20, 1, 2), (20, 3, 1)]);
        assert_eq!(t.of(&1), vec![(30, 31)]);
        assert_eq!(t.next_due(), Some(31));
    }
}
