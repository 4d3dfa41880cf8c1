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
use std::collections::{BTreeMap, BinaryHeap};

use weir::{FastMap, Key};

/// The timers of every key of one operator instance.
///
/// Registering and firing cost `O(log n)` in the number of timers, with no
/// allocation per timer: the firing order is a binary heap, and a deleted
/// timer stays in it until it reaches the top, where it is skipped (its
/// key's own map no longer has it at that due point). The top of the heap
/// is always a live timer.
pub(crate) struct Timers<K> {
    /// Every timer as (due, key, time), and deleted ones below the top.
    queue: BinaryHeap<Reverse<(u64, K, u64)>>,
    /// Per key: time → due. A key whose timers all fired keeps its (empty)
    /// map until `empty` says enough of them wait to be swept, so a key that
    /// sets a timer at every record does not allocate one map per record.
    by_key: FastMap<K, BTreeMap<u64, u64>>,
    /// How many maps of `by_key` are empty.
    empty: usize,
}

impl<K: Key> Timers<K> {
    pub(crate) fn new() -> Self {
        Timers {
            queue: BinaryHeap::new(),
            by_key: FastMap::default(),
            empty: 0,
        }
    }

    /// Registers `(key, time)` to fire at `due`; false if it was already
    /// registered (it keeps its due point).
    pub(crate) fn register(&mut self, key: &K, time: u64, due: u64) -> bool {
        let times = match self.by_key.get_mut(key) {
            Some(times) => times,
            None => self.by_key.entry(key.clone()).or_default(),
        };
        if times.contains_key(&time) {
            return false;
        }
        if times.is_empty() {
            self.empty = self.empty.saturating_sub(1);
        }
        times.insert(time, due);
        self.queue.push(Reverse((due, key.clone(), time)));
        true
    }

    /// Deletes `(key, time)`; false if there was no such timer.
    pub(crate) fn delete(&mut self, key: &K, time: u64) -> bool {
        let Some(times) = self.by_key.get_mut(key) else {
            return false;
        };
        if times.remove(&time).is_none() {
            return false;
        }
        if times.is_empty() {
            self.emptied();
        }
        self.skip_deleted();
        true
    }

    /// Whether `(key, time)` is registered.
    pub(crate) fn contains(&self, key: &K, time: u64) -> bool {
        self.by_key.get(key).is_some_and(|t| t.contains_key(&time))
    }

    /// The earliest due point.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.queue.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Removes and returns the first timer due at or before `upto`:
    /// (due, key, time).
    pub(crate) fn pop_due(&mut self, upto: u64) -> Option<(u64, K, u64)> {
        if self.next_due()? > upto {
            return None;
        }
        let Reverse((due, key, time)) = self.queue.pop()?;
        if let Some(times) = self.by_key.get_mut(&key) {
            times.remove(&time);
            if times.is_empty() {
                self.emptied();
            }
        }
        self.skip_deleted();
        Some((due, key, time))
    }

    /// Whether no timer is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The timers of `key`, as (time, due), in time order.
    pub(crate) fn of(&self, key: &K) -> Vec<(u64, u64)> {
        self.by_key
            .get(key)
            .map(|times| times.iter().map(|(t, d)| (*t, *d)).collect())
            .unwrap_or_default()
    }

    /// Pops deleted timers off the top, so that the top is a live one.
    fn skip_deleted(&mut self) {
        while let Some(Reverse((due, key, time))) = self.queue.peek() {
            let live = self
                .by_key
                .get(key)
                .and_then(|times| times.get(time))
                .is_some_and(|d| d == due);
            if live {
                break;
            }
            self.queue.pop();
        }
    }

    /// A key's map became empty: sweep the empty ones once they are half.
    fn emptied(&mut self) {
        self.empty += 1;
        if self.empty > 1024 && self.empty * 2 > self.by_key.len() {
            self.by_key.retain(|_, times| !times.is_empty());
            self.empty = 0;
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
