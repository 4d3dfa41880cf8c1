//! Dead letters: records weir could not use, with the reason and their origin.
//!
//! Bad data is data. A record that fails to decode, lacks a timestamp, is too
//! large, or arrives after its window closed is never dropped: it becomes a
//! [`DeadLetter`] on a second stream, which the job sends to a dead-letter sink.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A record that could not be processed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The name of the source (or operator) that rejected it.
    pub source: String,
    /// Where it came from.
    pub origin: Origin,
    /// Why it was rejected.
    pub reason: String,
    /// The raw input, as text (lossy UTF-8 for binary input).
    pub raw: String,
}

/// Where a dead letter came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A line of a file (1-based), with the byte offset of its start.
    File {
        /// The file's path.
        path: String,
        /// The 1-based line number.
        line: u64,
        /// The byte offset of the line's start.
        offset: u64,
    },
    /// A record of a split of a generated or external source.
    Split {
        /// The split.
        split: u32,
        /// The record's offset within the split.
        offset: u64,
    },
    /// A record that arrived after the window it belonged to had closed.
    Late {
        /// The window operator's name.
        operator: String,
        /// The start of the missed window (ms).
        window_start: u64,
        /// The end of the missed window (ms, exclusive).
        window_end: u64,
        /// The watermark the record was stamped with when read (ms).
        watermark: u64,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, .. } => write!(f, "{path}:{line}"),
            Origin::Split { split, offset } => write!(f, "split {split} offset {offset}"),
            Origin::Late {
                operator,
                window_start,
                window_end,
                watermark,
            } => write!(
                f,
                "late for window [{window_start}, {window_end}) of {operator} (watermark {watermark})"
            ),
        }
    }
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.source, self.origin, self.reason)
    }
}
