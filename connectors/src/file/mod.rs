//! Files in and out: CSV and JSON lines, one file or a directory of them.
//!
//! A [`FileSource`] reads a file, or a directory's regular files in name
//! order (hidden files skipped). Each file is read as
//! [`FileSource::splits_per_file`] splits (default 8) so that workers share
//! even one file: the file is cut into 1 MiB chunks, and split `k` of `n`
//! owns chunks `k`, `k + n`, `k + 2n`, ... (each starting at a line break,
//! see the `reader` module), which it reads in order. The splits depend only
//! on the file sizes, never on the worker count, so output is the same on
//! any worker count. Each split has its own watermark, as every split does;
//! striping keeps them close together on a file sorted by time (each split
//! moves through the whole file at the pace of the others), so neither
//! watermarks nor the records that order-sensitive steps hold wait on a
//! range far behind. One split per file (`splits_per_file(1)`) reads it
//! whole, in order: needed for CSV whose quoted fields hold line breaks.
//! Each split is decoded from one buffer with one CSV parser.
//!
//! Malformed lines, unparsable or missing timestamps and oversized records
//! become dead letters naming the file, line and byte offset, with the
//! record's exact bytes: their origin is the connector `file`'s coordinates
//! `path`, `line` (1-based) and `offset` (of the line's first byte).
//!
//! A [`FileSink`] writes records to one file from worker 0 (at-least-once
//! across a restore); [`crate::PartsSink`] writes a directory of per-epoch
//! parts, exactly once.

mod ranges;
mod reader;
mod sink;

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use weir::source::{position_of, position_word, SplitStart};
use weir::{
    ConfigError, Fault, Fields, Origin, ReadItem, ReadStatus, Source, SplitId, SplitReader,
};

use crate::format::Format;
use ranges::Ranges;
use reader::FileReader;
pub(crate) use sink::Writer;
pub use sink::{FileSink, StdoutSink};

/// The origin of a dead letter from line `line` (1-based) of the file shown
/// as `path`, starting at byte `offset` of it: in JSON,
/// `{"file": {"path": "in.csv", "line": 7, "offset": 312}}`.
pub(crate) fn origin(path: &str, line: u64, offset: u64) -> Origin {
    Origin::source(
        "file",
        Fields::new()
            .with("path", path)
            .with("line", line)
            .with("offset", offset),
    )
}

/// Reads records of type `T` from a file or a directory of files.
#[derive(Clone, Debug)]
pub struct FileSource<T> {
    files: Vec<(PathBuf, u64)>,
    format: Format,
    /// Split `s` reads every `splits_per_file`-th chunk of file
    /// `s / splits_per_file`, from chunk `s % splits_per_file`.
    splits_per_file: u32,
    chunk_bytes: u64,
    _record: PhantomData<T>,
}

impl<T> FileSource<T> {
    /// The splits each file is read as, unless set otherwise.
    pub const DEFAULT_SPLITS_PER_FILE: u32 = 8;

    /// The size of the chunks the splits of a file take turns at.
    pub const CHUNK_BYTES: u64 = 1 << 20;

    /// Lists the input: `path` is a file, or a directory whose files are read.
    /// Fails before the job starts (with a message naming the path) if it
    /// does not exist or holds no files.
    pub fn open(path: impl AsRef<Path>, format: Format) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let input = |p: &Path, e: std::io::Error| {
            ConfigError::new(format!("input {}: {}", p.display(), describe_io(&e)))
        };
        let meta = std::fs::metadata(path).map_err(|e| input(path, e))?;
        let paths = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| input(path, e))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ConfigError::new(format!(
                    "input {}: the directory has no files",
                    path.display()
                )));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        let files = paths
            .into_iter()
            .map(|p| {
                let len = std::fs::metadata(&p).map_err(|e| input(&p, e))?.len();
                Ok((p, len))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        let source = FileSource {
            files,
            format,
            splits_per_file: Self::DEFAULT_SPLITS_PER_FILE,
            chunk_bytes: Self::CHUNK_BYTES,
            _record: PhantomData,
        };
        Ok(source)
    }

    /// Reads each file as `n` splits taking turns at its chunks (1: each
    /// file whole, in order; 0 is taken as 1). See the module doc.
    pub fn splits_per_file(mut self, n: u32) -> Self {
        self.splits_per_file = n.max(1);
        self
    }

    /// Sets the size of the chunks the splits take turns at (default
    /// [`FileSource::CHUNK_BYTES`]; 0 is taken as 1). Every chunk start costs
    /// a read of up to 64 KiB to find its first line, so chunks much smaller
    /// than 1 MiB read more than they use; tests use tiny ones to cross
    /// many boundaries.
    pub fn chunk_bytes(mut self, bytes: u64) -> Self {
        self.chunk_bytes = bytes.max(1);
        self
    }

    /// The file a split reads and the byte ranges it owns.
    fn stripe(&self, split: SplitId) -> Option<(&Path, Ranges)> {
        let n = self.splits_per_file as usize;
        let (path, len) = self.files.get(split.0 as usize / n)?;
        let ranges = Ranges {
            len: *len,
            chunk: self.chunk_bytes,
            first: (split.0 as usize % n) as u64,
            step: n as u64,
        };
        Some((path, ranges))
    }

    /// The files, in split order.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}

pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

impl<T: DeserializeOwned + 'static> Source for FileSource<T> {
    type Item = T;

    fn splits(&self) -> u32 {
        (self.files.len() as u32).saturating_mul(self.splits_per_file)
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
        weir::source::open_each(splits, |split, at| self.open_split(split, at))
    }
}

impl<T: DeserializeOwned + 'static> FileSource<T> {
    /// Opens one split at its start, or at a position its reader returned.
    pub fn open_split(
        &self,
        split: SplitId,
        position: Option<&[u8]>,
    ) -> Result<Box<dyn SplitReader<T>>, Fault> {
        let resume = match position {
            None => None,
            Some(position) => {
                let offset = position_word(position, 0)?;
                let line = position_word(position, 1)?;
                // Positions from before splits had several ranges have two words.
                let range = position_word(position, 2).unwrap_or(0) as usize;
                Some((offset, line, range))
            }
        };
        let (path, ranges) = self
            .stripe(split)
            .ok_or_else(|| Fault::fatal(format!("no file split {split}")))?;
        if ranges.len() == 0 {
            // A file shorter than this split's first chunk.
            return Ok(Box::new(Empty));
        }
        let reader = FileReader::open(path, self.format, ranges, resume)?;
        Ok(Box::new(reader))
    }
}

/// A split with nothing to read.
struct Empty;

impl<T> SplitReader<T> for Empty {
    fn position(&self) -> Vec<u8> {
        position_of(&[0, 1, 0])
    }

    fn poll(&mut self, _max: usize, _out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        Ok(ReadStatus::Done)
    }
}

impl<T: DeserializeOwned> SplitReader<T> for FileReader<T> {
    fn position(&self) -> Vec<u8> {
        let (offset, line, range) = FileReader::position(self);
        position_of(&[offset, line, range as u64])
    }

    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        FileReader::read(self, max, out)
    }
}

#[cfg(test)]
mod tests;
