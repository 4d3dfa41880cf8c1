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
    Bad(DeadLetter),
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
    /// Opens one split for reading.
    fn open(&mut self, split: SplitId) -> Result<Box<dyn SplitReader<Self::Item>>, String>;
}
