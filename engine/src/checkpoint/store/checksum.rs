//! The checksum of one step's flush of an epoch, which its flush marker
//! records and verification recomputes.

/// Checksums the (key, value) pairs of one step's flush of an epoch, in any
/// order: the wrapping sum of a hash of each pair, with their count and the
/// epoch. Order-free, so neither a flush nor a verify sorts a million keys.
/// Any change inside one pair changes that pair's hash (every step of
/// [`hash_pair`] is a bijection), so a flipped byte always changes the sum.
#[derive(Clone, Copy)]
pub(super) struct Checksum {
    epoch: u64,
    sum: u64,
    count: u64,
}

const MIX: u64 = 0x51_7c_c1_b7_27_22_0a_95;

fn fmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    z = (z ^ (z >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    z ^ (z >> 33)
}

fn step(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(MIX)
}

/// A hash of one (key, value) pair, eight bytes at a time, each part
/// length-prefixed so that (ab, c) and (a, bc) differ.
fn hash_pair(key: &[u8], value: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for part in [key, value] {
        h = step(h, part.len() as u64);
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            h = step(h, u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = step(h, u64::from_le_bytes(w));
        }
    }
    fmix(h)
}

impl Checksum {
    pub(super) fn new(epoch: u64) -> Self {
        Checksum {
            epoch,
            sum: 0,
            count: 0,
        }
    }
    pub(super) fn pair(&mut self, k: &[u8], v: &[u8]) {
        self.sum = self.sum.wrapping_add(hash_pair(k, v));
        self.count += 1;
    }
    pub(super) fn value(&self) -> u64 {
        fmix(
            self.sum
                .wrapping_add(fmix(self.epoch))
                .wrapping_add(self.count.wrapping_mul(MIX)),
        )
    }
}
