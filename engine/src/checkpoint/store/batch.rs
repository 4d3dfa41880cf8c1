//! [`Batch`]: changes a store applies atomically, in one buffer.

/// One change in a [`Batch`], borrowing its bytes from the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<'a> {
    /// Sets a key.
    Put(&'a [u8], &'a [u8]),
    /// Removes a key.
    Delete(&'a [u8]),
    /// Removes every key in `[start, end)`.
    DeleteRange(&'a [u8], &'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
    DeleteRange,
}

/// Changes applied atomically: all or none.
///
/// All keys and values live in one buffer (an epoch's flush holds a million
/// of them: one allocation each would cost more than writing them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    bytes: Vec<u8>,
    /// Kind, start of the key, start of the second part, end.
    ops: Vec<(Kind, usize, usize, usize)>,
}

impl Batch {
    /// An empty batch with room for `bytes` of keys and values and `ops` changes.
    pub fn with_capacity(bytes: usize, ops: usize) -> Self {
        Batch {
            bytes: Vec::with_capacity(bytes),
            ops: Vec::with_capacity(ops),
        }
    }
    fn push(&mut self, kind: Kind, first: &[u8], second: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(first);
        let mid = self.bytes.len();
        self.bytes.extend_from_slice(second);
        self.ops.push((kind, start, mid, self.bytes.len()));
    }
    /// Adds a put.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(Kind::Put, key.as_ref(), value.as_ref());
    }
    /// Adds a put whose key and value are written in place by `key` and
    /// `value` (each appends to the buffer it is given); returns them.
    pub fn put_with(
        &mut self,
        key: impl FnOnce(&mut Vec<u8>),
        value: impl FnOnce(&mut Vec<u8>),
    ) -> (&[u8], &[u8]) {
        let start = self.bytes.len();
        key(&mut self.bytes);
        let mid = self.bytes.len();
        value(&mut self.bytes);
        self.ops.push((Kind::Put, start, mid, self.bytes.len()));
        (&self.bytes[start..mid], &self.bytes[mid..])
    }
    /// Adds a delete.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(Kind::Delete, key.as_ref(), &[]);
    }
    /// Adds a range delete.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) {
        self.push(Kind::DeleteRange, start.as_ref(), end.as_ref());
    }
    /// The changes, in order.
    pub fn ops(&self) -> impl Iterator<Item = Op<'_>> + '_ {
        self.ops.iter().map(|&(kind, start, mid, end)| {
            let (first, second) = (&self.bytes[start..mid], &self.bytes[mid..end]);
            match kind {
                Kind::Put => Op::Put(first, second),
                Kind::Delete => Op::Delete(first),
                Kind::DeleteRange => Op::DeleteRange(first, second),
            }
        })
    }
    /// Puts the changes in key order. Only for batches whose order does not
    /// matter: each key given once, no range deletes.
    ///
    /// The keys of one flush share a long prefix (tag, epoch, step name), so
    /// this compares past it, by the next eight bytes first: a flush of a
    /// million keys sorted by whole keys spent most of its time comparing
    /// the prefix.
    pub fn sort_by_key(&mut self) {
        debug_assert!(self.ops.iter().all(|op| op.0 != Kind::DeleteRange));
        let bytes = &self.bytes;
        let key = |op: &(Kind, usize, usize, usize)| &bytes[op.1..op.2];
        let Some(first) = self.ops.first().map(key) else {
            return;
        };
        let common = self.ops.iter().fold(first.len(), |common, op| {
            let k = key(op);
            common.min(first.iter().zip(k).take_while(|(a, b)| a == b).count())
        });
        let word = |k: &[u8]| {
            let rest = &k[common..];
            let mut w = [0u8; 8];
            let n = rest.len().min(8);
            w[..n].copy_from_slice(&rest[..n]);
            u64::from_be_bytes(w)
        };
        let mut order: Vec<(u64, (Kind, usize, usize, usize))> =
            self.ops.iter().map(|op| (word(key(op)), *op)).collect();
        // Equal words: the rest of the key decides (a shorter key that is a
        // prefix of the other first, as with whole keys).
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| bytes[a.1 .1 + common..a.1 .2].cmp(&bytes[b.1 .1 + common..b.1 .2]))
        });
        self.ops.clear();
        self.ops.extend(order.into_iter().map(|(_, op)| op));
    }

    /// Whether no key is given twice (after [`Batch::sort_by_key`]).
    pub(super) fn keys_unique(&self) -> bool {
        let bytes = &self.bytes;
        self.ops
            .windows(2)
            .all(|w| bytes[w[0].1..w[0].2] != bytes[w[1].1..w[1].2])
    }

    /// Adds a change.
    pub fn push_op(&mut self, op: Op<'_>) {
        match op {
            Op::Put(k, v) => self.push(Kind::Put, k, v),
            Op::Delete(k) => self.push(Kind::Delete, k, &[]),
            Op::DeleteRange(s, e) => self.push(Kind::DeleteRange, s, e),
        }
    }

    /// Removes every change, keeping the memory.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ops.clear();
    }

    /// The number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Whether the batch holds no change.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
    /// The bytes of all keys and values.
    pub fn size_in_bytes(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn keys(batch: &Batch) -> Vec<Vec<u8>> {
        batch
            .ops()
            .map(|op| match op {
                Op::Put(k, _) | Op::Delete(k) | Op::DeleteRange(k, _) => k.to_vec(),
            })
            .collect()
    }

    #[test]
    fn sorting_past_the_common_prefix_orders_as_whole_keys_do() {
        let mut rng = SplitMix64::new(11);
        for round in 0..50 {
            let prefix: Vec<u8> = (0..rng.below(30)).map(|_| rng.below(3) as u8).collect();
            let mut batch = Batch::default();
            let mut expected = std::collections::BTreeSet::new();
            for _ in 0..(1 + rng.below(200)) {
                // Short and long suffixes over few byte values: many keys
                // share their first eight bytes past the prefix, and some
                // are prefixes of others.
                let len = rng.below(14) as usize;
                let mut key = prefix.clone();
                key.extend((0..len).map(|_| rng.below(3) as u8));
                if expected.insert(key.clone()) {
                    if rng.chance(0.5) {
                        batch.put(&key, b"v");
                    } else {
                        batch.delete(&key);
                    }
                }
            }
            batch.sort_by_key();
            let sorted: Vec<Vec<u8>> = expected.into_iter().collect();
            assert_eq!(keys(&batch), sorted, "round {round}");
            assert!(batch.keys_unique());
        }
    }
}
