//! Reading one split of a file: its byte ranges in order, decoded record by
//! record from one buffer, with one CSV parser for the whole split.
//!
//! A split owns the records whose first byte lies in one of its ranges
//! `[start, end)`. A record starts at the file's first byte or after a line
//! feed, so a range that starts inside the file is read from just after the
//! first line feed at or after `start - 1`, and its last record is read to
//! the end even past `end`. Every record thus belongs to exactly one range,
//! whatever the worker count. A CSV record whose quoted field holds a line
//! feed at `end - 1` or later would be cut in two by that rule; the split
//! that owns it notices (it reads the whole record) and fails the job with a
//! message naming `--file-splits 1`, rather than let the next range's split
//! decode half a record.
//!
//! Lines are counted as records are read; a range that starts inside the
//! file counts the lines before it only when it first needs a line number
//! (for a dead letter), from where the split last counted, so ordinary
//! reading never scans the file twice.
//!
//! Its parts: [`buffer`] holds the file's bytes, [`records`] finds the
//! next record in them, [`scan`] reads the file outside the buffer (line
//! starts, line counts, the header); the byte ranges themselves are
//! [`Ranges`].

mod buffer;
mod records;
mod scan;

use std::fs::File;
use std::marker::PhantomData;
use std::path::Path;

use serde::de::DeserializeOwned;
use weir::{DeadLetter, Fault, Raw, ReadItem, ReadStatus};

use super::describe_io;
use super::ranges::Ranges;
use crate::csv_de;
use crate::format::{CsvParser, Format, MAX_RECORD_BYTES};
use buffer::Buffer;
use records::Found;
use scan::{count_lines, line_start_within, read_header};

/// Reads one split's records of type `T`.
pub(super) struct FileReader<T> {
    buffer: Buffer,
    display: String,
    format: Format,
    /// The byte ranges this split owns, in file order.
    ranges: Ranges,
    /// The range being read.
    range: usize,
    /// End of the range being read (exclusive).
    end: u64,
    /// Where reading of the current range began (after the line it skipped).
    first: u64,
    /// Lines of the file before `first`, once counted.
    lines_before: Option<u64>,
    /// The last place lines were counted to: (offset, line feeds before it).
    counted: (u64, u64),
    csv: CsvParser,
    /// The header: `None` until read (the file's first split reads it as
    /// its first record), `Err` if it was unusable (the reason every record
    /// of the file then goes to dead letters with: data, not a fault).
    headers: Option<Result<Vec<Box<str>>, String>>,
    /// The first bytes of a record too long to keep.
    oversized: Vec<u8>,
    /// Where each field of a plain CSV line ends (at its comma).
    plain_ends: Vec<usize>,
    /// The line the next record starts on (relative to the range's first;
    /// the CSV parser takes the count over while it parses a record).
    line: u64,
    done: bool,
    _record: PhantomData<T>,
}

impl<T: DeserializeOwned> FileReader<T> {
    /// Opens a split of `path` owning `ranges` (non-empty, in file order);
    /// `resume` is a position [`FileReader::position`] returned.
    pub(super) fn open(
        path: &Path,
        format: Format,
        ranges: Ranges,
        resume: Option<(u64, u64, usize)>,
    ) -> Result<FileReader<T>, Fault> {
        let io = |what: &str, e: std::io::Error| {
            Fault::fatal(format!("{}: {what}{}", path.display(), describe_io(&e)))
        };
        // Fail at open, not at the first read, if the file is not there.
        File::open(path).map_err(|e| io("", e))?;
        let mut reader = FileReader {
            buffer: Buffer::at(path, 0),
            display: path.display().to_string(),
            format,
            ranges,
            range: 0,
            end: 0,
            first: 0,
            lines_before: None,
            counted: (0, 0),
            csv: CsvParser::new(),
            headers: None,
            oversized: Vec::new(),
            plain_ends: Vec::new(),
            line: 1,
            done: false,
            _record: PhantomData,
        };
        let (range, offset, line) = match resume {
            Some((offset, line, range)) if range < reader.ranges.len() => {
                (range, Some(offset), line)
            }
            Some((_, _, range)) => {
                return Err(Fault::fatal(format!(
                    "{}: a stored position names range {range} of a split that has {}",
                    reader.display,
                    reader.ranges.len()
                )))
            }
            None => (0, None, 1),
        };
        reader.start_range(range, offset, line)?;
        if format == Format::Csv && reader.buffer.base > 0 {
            let header = read_header(path).map_err(|e| io("reading the header: ", e))?;
            reader.headers = Some(header);
        }
        Ok(reader)
    }

    /// Moves to range `index`, at `offset` (a resume) or at its first line,
    /// with `line` the relative line there. A range in which no line starts
    /// owns no record and is passed over (without reading on to a line start
    /// beyond it: a file without line feeds must not be scanned once per range).
    fn start_range(&mut self, index: usize, offset: Option<u64>, line: u64) -> Result<(), Fault> {
        let io = |what: &str, e: std::io::Error| {
            Fault::fatal(format!("{}: {what}{}", self.display, describe_io(&e)))
        };
        let mut index = index;
        let first = loop {
            let (start, end) = self.ranges.get(index);
            if start == 0 {
                break 0;
            }
            let found = line_start_within(&self.buffer.path, start - 1, end - 1)
                .map_err(|e| io("finding a line start: ", e))?;
            match found {
                Some(first) => break first,
                None if index + 1 < self.ranges.len() => index += 1,
                None => {
                    self.range = index;
                    self.done = true;
                    return Ok(());
                }
            }
        };
        let at = offset.unwrap_or(first);
        self.buffer.seek(at);
        self.range = index;
        self.end = self.ranges.get(index).1;
        self.first = first;
        self.lines_before = None;
        self.csv.reset();
        self.line = line;
        Ok(())
    }

    /// Where reading continues: the next record's offset, its line
    /// (relative to the range's first), and the range.
    pub(super) fn position(&self) -> (u64, u64, usize) {
        (
            self.buffer.base + self.buffer.pos as u64,
            self.line,
            self.range,
        )
    }

    pub(super) fn read(
        &mut self,
        max: usize,
        out: &mut Vec<ReadItem<T>>,
    ) -> Result<ReadStatus, Fault> {
        let mut produced = 0;
        while produced < max {
            if self.done {
                return Ok(ReadStatus::Done);
            }
            let found = match self.format {
                Format::Csv => self.next_csv()?,
                Format::Jsonl => self.next_line()?,
            };
            let Some(found) = found else {
                self.done = true;
                return Ok(ReadStatus::Done);
            };
            if found.offset >= self.end {
                // The next range's first record, which another split owns
                // unless the ranges are adjacent (then they are one).
                if self.range + 1 == self.ranges.len() {
                    self.done = true;
                    return Ok(ReadStatus::Done);
                }
                self.start_range(self.range + 1, None, 1)?;
                continue;
            }
            if let Some(item) = self.decode(&found)? {
                out.push(item);
                produced += 1;
            }
        }
        Ok(ReadStatus::Ready)
    }

    fn fill(&mut self, keep: usize) -> Result<usize, Fault> {
        self.buffer.fill(keep).map_err(|e| {
            Fault::fatal(format!(
                "{}: read failed: {}",
                self.display,
                describe_io(&e)
            ))
        })
    }

    /// Decodes a found record: the record, a dead letter, or nothing (a
    /// blank line, or the header).
    fn decode(&mut self, found: &Found) -> Result<Option<ReadItem<T>>, Fault> {
        if let Some(len) = found.too_long {
            let reason = format!("record of {len} bytes exceeds the {MAX_RECORD_BYTES}-byte limit");
            let raw = Raw::cut(&self.oversized, len);
            return self.dead(found, reason, raw).map(Some);
        }
        let bytes = &self.buffer.data[found.start..found.end];
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let reason = match self.format {
            Format::Jsonl => match serde_json::from_slice::<T>(bytes) {
                Ok(record) => return Ok(Some(ReadItem::Record(record))),
                Err(e) => format!("malformed JSON: {e}"),
            },
            Format::Csv => match &self.headers {
                None => {
                    self.headers = Some(Ok(self.csv.names()));
                    return Ok(None);
                }
                Some(Ok(headers)) => {
                    let decoded = if found.plain {
                        csv_de::decode(headers, bytes, &self.plain_ends, 1)
                    } else {
                        csv_de::decode(headers, self.csv.fields(), self.csv.ends(), 0)
                    };
                    match decoded {
                        Ok(r) => return Ok(Some(ReadItem::Record(r))),
                        Err(reason) => reason.to_string(),
                    }
                }
                Some(Err(reason)) => reason.clone(),
            },
        };
        let raw = Raw::bytes(&self.buffer.data[found.start..found.end]);
        self.dead(found, reason, raw).map(Some)
    }

    fn dead(&mut self, found: &Found, reason: String, raw: Raw) -> Result<ReadItem<T>, Fault> {
        if self.format == Format::Csv && self.headers.is_none() {
            // An unusable first record leaves the file without a header.
            self.headers = Some(Err(format!(
                "the file's header (line 1) is unusable: {reason}"
            )));
        }
        let lines_before = match self.lines_before {
            Some(n) => n,
            None if self.first == 0 => 0,
            None => {
                // Count on from where this split last counted, if it can.
                let (from, before) = if self.counted.0 <= self.first {
                    self.counted
                } else {
                    (0, 0)
                };
                let n = before
                    + count_lines(&self.buffer.path, from, self.first).map_err(|e| {
                        Fault::fatal(format!(
                            "{}: counting lines: {}",
                            self.display,
                            describe_io(&e)
                        ))
                    })?;
                self.counted = (self.first, n);
                *self.lines_before.insert(n)
            }
        };
        Ok(ReadItem::Bad(Box::new(DeadLetter {
            source: String::new(),
            origin: super::origin(&self.display, lines_before + found.line, found.offset),
            reason,
            raw,
        })))
    }
}
