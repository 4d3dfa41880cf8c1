//! The byte ranges of a file that a split owns: the chunk arithmetic of
//! striping a file over its splits.

/// The byte ranges a split owns: every `step`-th chunk of a file of `len`
/// bytes, from chunk `first`, in order (computed, not listed: a tiny chunk
/// size must not cost memory). With `step` 1 the chunks are adjacent and
/// read as one range, the whole file.
#[derive(Copy, Clone, Debug)]
pub(super) struct Ranges {
    pub(super) len: u64,
    pub(super) chunk: u64,
    pub(super) first: u64,
    pub(super) step: u64,
}

impl Ranges {
    /// How many ranges there are.
    pub(super) fn len(&self) -> usize {
        if self.step == 1 {
            return usize::from(self.first == 0 && self.len > 0);
        }
        let chunks = self.len.div_ceil(self.chunk);
        let n = chunks.saturating_sub(self.first).div_ceil(self.step);
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Range `i` (below [`Ranges::len`]).
    pub(super) fn get(&self, i: usize) -> (u64, u64) {
        if self.step == 1 {
            return (0, self.len);
        }
        let c = self.first + i as u64 * self.step;
        let start = c.saturating_mul(self.chunk).min(self.len);
        (start, start.saturating_add(self.chunk).min(self.len))
    }
}
