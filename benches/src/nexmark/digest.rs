//! An order-independent fingerprint of a query's output, so that the bench
//! checks the engine's output against the baseline's without collecting
//! millions of rows: the row count and the wrapping sum of a mixed hash of
//! each row.

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use weir::ids::FastHasher;
use weir::{Fault, Sink};

/// Count and hash sum of a multiset of rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Digest {
    /// Rows.
    pub rows: u64,
    /// Wrapping sum of each row's mixed hash.
    pub sum: u64,
}

impl Digest {
    /// Adds one row.
    #[inline]
    pub fn add<R: Hash>(&mut self, row: &R) {
        let mut h = FastHasher::default();
        row.hash(&mut h);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(mix(h.finish()));
    }

    /// Adds another digest's rows.
    pub fn merge(&mut self, other: Digest) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// The digest of `rows`.
    pub fn of<'a, R: Hash + 'a>(rows: impl IntoIterator<Item = &'a R>) -> Digest {
        let mut d = Digest::default();
        for r in rows {
            d.add(r);
        }
        d
    }
}

/// SplitMix64's finalizer: spreads every input bit over the word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A parallel sink that digests what every worker writes into one shared
/// [`Digest`].
pub struct DigestSink {
    shared: Arc<Mutex<Digest>>,
}

impl DigestSink {
    /// A sink adding into `shared`.
    pub fn new(shared: Arc<Mutex<Digest>>) -> Self {
        DigestSink { shared }
    }
}

impl<R: Hash + 'static> Sink<R> for DigestSink {
    fn write(&mut self, records: &mut Vec<R>) -> Result<(), Fault> {
        let batch = Digest::of(records.iter());
        records.clear();
        self.shared
            .lock()
            .map_err(|_| Fault::fatal("a digest sink panicked"))?
            .merge(batch);
        Ok(())
    }

    fn parallel(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_but_content_and_multiplicity_do() {
        let a = Digest::of(&[1u64, 2, 3]);
        assert_eq!(a, Digest::of(&[3u64, 1, 2]));
        assert_ne!(a, Digest::of(&[1u64, 2, 4]));
        assert_ne!(a, Digest::of(&[1u64, 2, 3, 3]));
        assert_ne!(Digest::of(&[1u64, 1]), Digest::of(&[2u64, 2]));
    }
}
