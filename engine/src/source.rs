//! The source interface: what a connector implements to feed a pipeline.
//!
//! A source is a set of *splits* (generator lanes, files, later Kafka
//! partitions) with stable identities ([`SplitId`]). The splits are fixed by
//! the source, not by the worker count: split `s` is read by worker
//! `s % workers`, and each split's watermark depends only on its own records.
//! That is what makes a job's output the same on 1, 2 or 4 workers.
//!
//! A worker opens the splits it owns together ([`Source::open_splits`]), each
//! at its checkpointed position on a restore; a split the checkpoint does
//! not know (one added since) starts at the source's start position, and the
//! engine says so on stderr. A source hears when a checkpoint is complete
//! ([`Source::checkpoint_complete`]). Faults are [`Fault`]s: transient ones
//! are retried with backoff, fatal ones stop the job.

use std::fmt;
use std::sync::Arc;

use crate::dead_letter::DeadLetter;
use crate::error::Fault;
use crate::ids::SplitId;

/// Wakes a source from any thread: a client's callback calls it when
/// records arrive for an idle split ([`SplitReader::wake_when_ready`]), and
/// the source's operator runs at once instead of at its next look.
#[derive(Clone)]
pub struct Waker(Arc<dyn Fn() + Send + Sync>);

impl Waker {
    /// A waker that calls `wake`.
    pub fn new(wake: impl Fn() + Send + Sync + 'static) -> Self {
        Waker(Arc::new(wake))
    }

    /// Schedules the source to run (cheap; any number of calls).
    pub fn wake(&self) {
        (self.0)()
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Waker")
    }
}

/// What one call to [`SplitReader::poll`] found.
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
    /// A decoded record with the event time (ms) its source knows, such as
    /// a Kafka message's timestamp: used when the job takes event time from
    /// the source ([`SourceBuilder::source_time`](crate::SourceBuilder::source_time));
    /// otherwise the job's extractor decides, as for [`ReadItem::Record`].
    Timed(T, u64),
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
    /// Appends up to `max` records to `out` and says whether more may
    /// follow. An `Err` is a fault (an unreadable file, a broker that is
    /// down), not bad data: a transient one is retried with backoff, shown
    /// in the status line and counted; a fatal one stops the job. It must
    /// not have appended to `out` when it fails.
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault>;

    /// Where reading would continue: the position after the last item
    /// returned. A checkpoint stores it; [`Source::open_splits`] resumes
    /// from it.
    fn position(&self) -> Vec<u8>;

    /// Asks the reader to call `waker` whenever records arrive while it
    /// is idle (a client's "queue no longer empty" callback), once, after
    /// it is opened. Without it (the default) an idle split is polled
    /// again every 5 ms, which is what such a reader's records wait.
    fn wake_when_ready(&mut self, waker: Waker) {
        let _ = waker;
    }
}

/// A split to open, and where: at a position its reader returned earlier
/// (a restore), or at the source's start position (`None`: a fresh start,
/// or a split the checkpoint does not know, such as a partition added since).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitStart<'a> {
    /// The split.
    pub split: SplitId,
    /// Where to resume, if known.
    pub position: Option<&'a [u8]>,
}

/// A connector that produces records of type `Item`.
///
/// A `Source` value is built on every worker (the job's build closure runs on
/// each). Its splits have stable identities ([`Source::split_ids`]): a
/// checkpoint keys positions by them, and split `s` is read by worker
/// `s % workers`, so a split keeps its worker (and its position its store)
/// while splits come and go. [`Source::open_splits`] opens every split a
/// worker owns at once, so they can share one client.
pub trait Source: 'static {
    /// The record type.
    type Item: 'static;

    /// How many splits this source has, numbered `0..splits()` (the simple
    /// form of [`Source::split_ids`]); the same on every worker.
    fn splits(&self) -> u32;

    /// The splits' identities, the same on every worker and stable across
    /// runs (a Kafka partition's number). By default `0..splits()`.
    fn split_ids(&self) -> Vec<SplitId> {
        (0..self.splits()).map(SplitId).collect()
    }

    /// Opens the splits this worker owns, each at its start (one reader per
    /// split, in order). The one method a source implements to read.
    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Self::Item>>>, Fault>;

    /// The checkpoint of `epoch` is complete, on every worker: positions
    /// through it are durable (a Kafka source commits its offsets to the
    /// group here, for lag monitoring). Called on every worker that reads
    /// the source.
    fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
        let _ = epoch;
        Ok(())
    }

    /// Whether this source's readers alone decide where its epochs end
    /// ([`ReadItem::EndEpoch`], as scripted test sources do). By default
    /// (`false`) epochs end on the wall clock, and a source also ends its
    /// epoch as soon as it sees that another source of the job, on any
    /// worker or process, has moved on: so every source's epoch `e` ends at
    /// about the same moment, and no keyed operator holds one worker's
    /// records of epoch `e + 1` for a whole epoch interval while another
    /// worker's clock catches up.
    fn reader_epochs(&self) -> bool {
        false
    }
}

/// Opens each of `splits` on its own with `open(split, position)`: the
/// [`Source::open_splits`] of a source whose splits share nothing.
pub fn open_each<T>(
    splits: &[SplitStart<'_>],
    mut open: impl FnMut(SplitId, Option<&[u8]>) -> Result<Box<dyn SplitReader<T>>, Fault>,
) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
    splits.iter().map(|s| open(s.split, s.position)).collect()
}

/// A boxed source is a source: every method goes to the box's content.
macro_rules! boxed_source {
    ($boxed:ty) => {
        impl<T: 'static> Source for $boxed {
            type Item = T;
            fn splits(&self) -> u32 {
                (**self).splits()
            }
            fn split_ids(&self) -> Vec<SplitId> {
                (**self).split_ids()
            }
            fn open_splits(
                &mut self,
                splits: &[SplitStart<'_>],
            ) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
                (**self).open_splits(splits)
            }
            fn checkpoint_complete(&mut self, epoch: u64) -> Result<(), Fault> {
                (**self).checkpoint_complete(epoch)
            }
            fn reader_epochs(&self) -> bool {
                (**self).reader_epochs()
            }
        }
    };
}

boxed_source!(Box<dyn Source<Item = T>>);

/// A source that can be cloned to every worker behind a box: what a
/// function returns that picks one of several sources at run time (the
/// examples' generator or files). Implemented for every `Clone + Send +
/// Sync` source; `Box<dyn CloneSource<Item = T>>` is a `Source` and `Clone`.
pub trait CloneSource: Source + Send + Sync {
    /// A boxed copy.
    fn clone_box(&self) -> Box<dyn CloneSource<Item = Self::Item>>;
}

impl<S: Source + Clone + Send + Sync> CloneSource for S {
    fn clone_box(&self) -> Box<dyn CloneSource<Item = S::Item>> {
        Box::new(self.clone())
    }
}

impl<T: 'static> Clone for Box<dyn CloneSource<Item = T>> {
    fn clone(&self) -> Self {
        (**self).clone_box()
    }
}

boxed_source!(Box<dyn CloneSource<Item = T>>);

/// Reads a little-endian `u64` at `index` (in 8-byte words) of a position;
/// a position too short for it is a fatal fault.
pub fn position_word(position: &[u8], index: usize) -> Result<u64, Fault> {
    position
        .get(index * 8..index * 8 + 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| {
            Fault::fatal(format!(
                "a stored position of {} bytes is too short",
                position.len()
            ))
        })
}

/// Encodes `u64` words as a position.
pub fn position_of(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}
