//! The source interface: what a connector implements to feed a pipeline.
//!
//! A source is a set of *splits* (generator lanes, files, later Kafka
//! partitions). The number of splits is fixed by the source, not by the
//! worker count: split `s` is read by worker `s % workers`, and each split's
//! watermark depends only on its own records. That is what makes a job's output
//! the same on 1, 2 or 4 workers.

use crate::dead_letter::DeadLetter;
use crate::ids::SplitId;

/// What one call to [`SplitReader::read`] found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReadStatus {
    /// Records may be waiting: call again soon.
    Ready,
    /// Nothing is available now (a rate limit, an empty topic): call again later.
    Idle,
    /// The split is exhausted and will never produce again.
    Done,
}

/// One item read from a split.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadItem<T> {
    /// A decoded record.
    Record(T),
    /// A record that failed to decode; the engine fills in `DeadLetter::source`.
    /// (Boxed: dead letters are rare and large, and readers fill batches of
    /// thousands of items, so the item stays the size of the record.)
    Bad(Box<DeadLetter>),
    /// The split promises no more records with event time below this (an
    /// explicit watermark; raises the split's watermark, never lowers it).
    Watermark(u64),
    /// Close the current epoch now (in addition to the wall-clock interval).
    EndEpoch,
}

/// Reads the records of one split, in order.
pub trait SplitReader<T> {
    /// Appends up to `max` records to `out` and says whether more may follow.
    /// An `Err` is a fault (an unreadable file), not bad data: the job stops
    /// with the message.
    fn read(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, String>;

    /// Where reading would continue: the position after the last item
    /// returned. A checkpoint stores it; [`Source::open_at`] resumes from it.
    fn position(&self) -> Vec<u8>;
}

/// A connector that produces records of type `Item`.
///
/// A `Source` value is built on every worker (the job's build closure runs on
/// each); [`Source::open`] is called only for the splits that worker owns.
pub trait Source: 'static {
    /// The record type.
    type Item: 'static;
    /// How many splits this source has; the same on every worker.
    fn splits(&self) -> u32;
    /// Opens one split for reading from its start.
    fn open(&mut self, split: SplitId) -> Result<Box<dyn SplitReader<Self::Item>>, String>;

    /// Opens one split at a position its reader returned earlier (restore).
    fn open_at(
        &mut self,
        split: SplitId,
        position: &[u8],
    ) -> Result<Box<dyn SplitReader<Self::Item>>, String>;
}

/// Reads a little-endian `u64` at `index` (in 8-byte words) of a position.
pub fn position_word(position: &[u8], index: usize) -> Result<u64, String> {
    position
        .get(index * 8..index * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| format!("a stored position of {} bytes is too short", position.len()))
}

/// Encodes `u64` words as a position.
pub fn position_of(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}
