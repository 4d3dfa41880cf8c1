//! [`MapState`]: a map per key, in key order.

use std::borrow::Borrow;
use std::collections::{btree_map, BTreeMap};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::encoding::{decode_cell, encode_cell, Decoded};
use super::{clock, live, note_expiry, ttl_ms, write_time};

/// A map per key, iterated in key order (so iteration is deterministic).
///
/// ```
/// use weir_operators::process::MapState;
///
/// let mut last_seen = MapState::new();
/// last_seen.insert("FR", 1_000u64);
/// last_seen.insert("DE", 2_000);
/// assert_eq!(last_seen.insert("FR", 3_000), Some(1_000));
/// assert_eq!(last_seen.keys().copied().collect::<Vec<_>>(), vec!["DE", "FR"]);
/// ```
#[derive(Clone, Debug)]
pub struct MapState<K, V> {
    ttl: Option<u64>,
    pub(super) entries: BTreeMap<K, (u64, V)>,
}

impl<K, V> Default for MapState<K, V> {
    fn default() -> Self {
        MapState {
            ttl: None,
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> MapState<K, V> {
    /// An empty map whose entries live until removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map whose entries are each forgotten `ttl` of event time
    /// after they were last written (see the [process module docs](crate::process)).
    pub fn with_ttl(ttl: Duration) -> Self {
        MapState {
            ttl: Some(ttl_ms(ttl)),
            entries: BTreeMap::new(),
        }
    }

    /// The map's time to live, if it has one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl.map(Duration::from_millis)
    }

    fn is_live(&self, written: u64) -> bool {
        live(clock(), self.ttl, written)
    }

    /// Inserts or replaces an entry; returns the live value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let now = write_time();
        note_expiry(self.ttl, now);
        let old = self.entries.insert(key, (now, value))?;
        self.is_live(old.0).then_some(old.1)
    }

    /// The live value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (written, value) = self.entries.get(key)?;
        self.is_live(*written).then_some(value)
    }

    /// The live value of `key` to change in place; counts as a write.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (now, ttl) = (clock(), self.ttl);
        let written = self.entries.get(key)?.0;
        if !live(now, ttl, written) {
            self.entries.remove(key);
            return None;
        }
        let stamp = write_time();
        note_expiry(ttl, stamp);
        self.entries.get_mut(key).map(|(written, v)| {
            *written = stamp;
            v
        })
    }

    /// The value of `key`, inserting `f()` first if absent or expired;
    /// counts as a write.
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> &mut V {
        let (now, ttl) = (clock(), self.ttl);
        let stamp = write_time();
        note_expiry(ttl, stamp);
        match self.entries.entry(key) {
            btree_map::Entry::Occupied(entry) => {
                let slot = entry.into_mut();
                if !live(now, ttl, slot.0) {
                    // Expired: start over, as if absent.
                    slot.1 = f();
                }
                slot.0 = stamp;
                &mut slot.1
            }
            btree_map::Entry::Vacant(entry) => &mut entry.insert((stamp, f())).1,
        }
    }

    /// Whether `key` has a live entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Removes `key`; returns its live value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (written, value) = self.entries.remove(key)?;
        self.is_live(written).then_some(value)
    }

    /// The live entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (now, ttl) = (clock(), self.ttl);
        self.entries
            .iter()
            .filter(move |(_, (written, _))| live(now, ttl, *written))
            .map(|(k, (_, v))| (k, v))
    }

    /// The keys of live entries, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values of live entries, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// How many live entries there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Keeps the live entries for which `keep` is true (and drops expired
    /// ones); does not refresh their TTL.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let (now, ttl) = (clock(), self.ttl);
        self.entries
            .retain(|k, (written, v)| live(now, ttl, *written) && keep(k, v));
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<K: Serialize, V: Serialize> Serialize for MapState<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode_cell(
            serializer,
            self.ttl,
            self.entries
                .iter()
                .map(|(k, (written, v))| (*written, (k, v))),
        )
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for MapState<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded: Decoded<(K, V)> = decode_cell(deserializer)?;
        Ok(MapState {
            ttl: decoded.ttl,
            entries: decoded
                .items
                .into_iter()
                .map(|(written, (k, v))| (k, (written, v)))
                .collect(),
        })
    }
}
