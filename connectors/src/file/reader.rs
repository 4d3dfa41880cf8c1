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

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use weir::{DeadLetter, Raw, ReadItem, ReadStatus};

use super::describe_io;
use crate::csv_de;
use crate::format::{CsvParser, Format, Parsed, MAX_RECORD_BYTES};

/// Bytes read from the file at a time (the buffer grows for longer records).
const CHUNK: usize = 64 << 10;

/// A file's bytes from some offset on, read in chunks into one buffer.
///
/// The file is opened for each chunk and closed again, so a job reading
/// thousands of files (each as several splits, all read in turn) holds no
/// file handles between reads; an open costs far less than the 64 KiB it
/// reads.
struct Buffer {
    path: PathBuf,
    data: Vec<u8>,
    /// The first byte not yet consumed.
    pos: usize,
    /// The end of the bytes read.
    filled: usize,
    /// The file offset of `data[0]`.
    base: u64,
    eof: bool,
}

impl Buffer {
    fn at(path: &Path, offset: u64) -> Buffer {
        Buffer {
            path: path.to_path_buf(),
            data: vec![0; CHUNK],
            pos: 0,
            filled: 0,
            base: offset,
            eof: false,
        }
    }

    /// Moves to `offset`, forgetting what was read.
    fn seek(&mut self, offset: u64) {
        self.pos = 0;
        self.filled = 0;
        self.base = offset;
        self.eof = false;
    }

    /// Reads more bytes, dropping those before `keep` (an index into the
    /// data); returns by how much indices moved down. At the end of the
    /// file, sets `eof` instead.
    fn fill(&mut self, keep: usize) -> std::io::Result<usize> {
        if keep > 0 {
            self.data.copy_within(keep..self.filled, 0);
            self.filled -= keep;
            self.pos -= keep;
            self.base += keep as u64;
        }
        if self.filled == self.data.len() {
            let len = self.data.len();
            self.data.resize(len * 2, 0);
        }
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.base + self.filled as u64))?;
        loop {
            match file.read(&mut self.data[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(keep);
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(keep);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

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

/// A record too long to decode, while it is being skipped.
struct Big {
    offset: u64,
    newlines_before: u64,
    /// Its bytes so far.
    len: u64,
}

/// One record's place in the file.
struct Found {
    /// File offset of its first byte (after any blank lines before it).
    offset: u64,
    /// Its line, counted from the split's first line (1-based).
    line: u64,
    /// Buffer indices of its bytes (without blank lines and line end).
    start: usize,
    end: usize,
    /// Its length in bytes when it was too long to keep (`start..end` is
    /// then empty; the reader's `oversized` holds its first bytes).
    too_long: Option<u64>,
    /// Whether it is a plain CSV line, split at `plain_ends` (its commas),
    /// rather than parsed into the CSV parser's fields.
    plain: bool,
}

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
    /// its first record), `Err` if it was unusable.
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
    ) -> Result<FileReader<T>, String> {
        let io = |what: &str, e: std::io::Error| {
            format!("{}: {what}{}", path.display(), describe_io(&e))
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
                return Err(format!(
                    "{}: a stored position names range {range} of a split that has {}",
                    reader.display,
                    reader.ranges.len()
                ))
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
    fn start_range(&mut self, index: usize, offset: Option<u64>, line: u64) -> Result<(), String> {
        let io =
            |what: &str, e: std::io::Error| format!("{}: {what}{}", self.display, describe_io(&e));
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
    ) -> Result<ReadStatus, String> {
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

    /// The next CSV record if it is a plain line (no quotes, no carriage
    /// return but the one ending it) wholly in the buffer: its fields are
    /// then just the slices between commas, found with `memchr`, and the
    /// parser is not needed. Anything else is left to [`Self::next_csv`].
    fn next_plain_csv(&mut self) -> Option<Found> {
        // The header (and a byte-order mark before it) goes through the parser.
        self.headers.as_ref()?;
        let start = self.buffer.pos;
        let data = &self.buffer.data[start..self.buffer.filled];
        let newline = memchr::memchr(b'\n', data)?;
        let mut body = &data[..newline];
        if let Some(rest) = body.strip_suffix(b"\r") {
            body = rest;
        }
        if body.is_empty()
            || body.len() > MAX_RECORD_BYTES
            || memchr::memchr2(b'"', b'\r', body).is_some()
        {
            return None;
        }
        self.plain_ends.clear();
        self.plain_ends
            .extend(memchr::memchr_iter(b',', body).chain(std::iter::once(body.len())));
        let end = start + body.len();
        self.buffer.pos = start + newline + 1;
        let line = self.line;
        self.line += 1;
        Some(Found {
            offset: self.buffer.base + start as u64,
            line,
            start,
            end,
            too_long: None,
            plain: true,
        })
    }

    /// The next CSV record, or `None` at the end of the file.
    fn next_csv(&mut self) -> Result<Option<Found>, String> {
        if let Some(found) = self.next_plain_csv() {
            return Ok(Some(found));
        }
        self.csv.clear();
        self.oversized.clear();
        // The parser counts the lines it reads; it takes over the count.
        let line_before = self.line;
        self.csv.set_line(line_before);
        let mut start = self.buffer.pos;
        let mut fed = start;
        let mut big: Option<Big> = None;
        loop {
            if fed == self.buffer.filled && !self.buffer.eof {
                // An empty feed means the end of the data: read first.
                self.buffer.pos = start;
                let shift = self.fill(start)?;
                start -= shift;
                fed -= shift;
                continue;
            }
            let (parsed, n) = self.csv.feed(&self.buffer.data[fed..self.buffer.filled]);
            fed += n;
            match parsed {
                Parsed::Record => break,
                Parsed::End => {
                    self.buffer.pos = fed;
                    self.line = self.csv.line();
                    return Ok(None);
                }
                Parsed::NeedInput => {
                    if let Some(big) = &mut big {
                        big.len += (fed - start) as u64;
                        start = fed;
                    } else if fed - start > MAX_RECORD_BYTES {
                        // Too long to decode: keep its first bytes for the
                        // dead letter and stop buffering it.
                        let bytes = &self.buffer.data[start..fed];
                        let blank = leading_blank(bytes);
                        let kept = &bytes[blank..(blank + Raw::CAP).min(bytes.len())];
                        self.oversized.extend_from_slice(kept);
                        self.csv.discard();
                        big = Some(Big {
                            offset: self.buffer.base + (start + blank) as u64,
                            newlines_before: newlines(&bytes[..blank]),
                            len: (bytes.len() - blank) as u64,
                        });
                        start = fed;
                    }
                }
            }
        }
        self.buffer.pos = fed;
        self.line = self.csv.line();
        let blank = match big {
            None => leading_blank(&self.buffer.data[start..fed]),
            Some(_) => 0,
        };
        let mut end = fed;
        while end > start + blank && matches!(self.buffer.data[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        if let Some(big) = big {
            return Ok(Some(Found {
                offset: big.offset,
                line: line_before + big.newlines_before,
                start: end,
                end,
                too_long: Some(big.len + (end - start) as u64),
                plain: false,
            }));
        }
        let offset = self.buffer.base + (start + blank) as u64;
        if end - (start + blank) > MAX_RECORD_BYTES {
            let first = start + blank;
            self.oversized
                .extend_from_slice(&self.buffer.data[first..first + Raw::CAP]);
            return Ok(Some(Found {
                offset,
                line: line_before + newlines(&self.buffer.data[start..first]),
                start: end,
                end,
                too_long: Some((end - first) as u64),
                plain: false,
            }));
        }
        if offset < self.end && self.buffer.base + fed as u64 > self.end {
            // This record straddles the range's end: the next split starts
            // after the first line feed at or after `end - 1`, which must be
            // this record's own line end.
            let from = (self.end - 1).saturating_sub(self.buffer.base) as usize;
            if self.buffer.data[from.max(start + blank)..end].contains(&b'\n') {
                return Err(format!(
                    "{}: a quoted CSV field holds a line break at byte {} where the \
                     file is split for parallel reading; read it whole with --file-splits 1",
                    self.display, self.end
                ));
            }
        }
        Ok(Some(Found {
            offset,
            line: line_before + newlines(&self.buffer.data[start..start + blank]),
            start: start + blank,
            end,
            too_long: None,
            plain: false,
        }))
    }

    /// The next JSON line, or `None` at the end of the file.
    fn next_line(&mut self) -> Result<Option<Found>, String> {
        self.oversized.clear();
        let mut big: Option<Big> = None;
        let mut scan = self.buffer.pos;
        loop {
            let start = self.buffer.pos;
            let found = memchr::memchr(b'\n', &self.buffer.data[scan..self.buffer.filled]);
            let (end, next) = match found {
                Some(i) => (scan + i, scan + i + 1),
                None if self.buffer.eof => (self.buffer.filled, self.buffer.filled),
                None => {
                    let filled = self.buffer.filled;
                    if let Some(big) = &mut big {
                        big.len += (filled - start) as u64;
                        self.buffer.pos = filled;
                    } else if filled - start > MAX_RECORD_BYTES {
                        let kept = &self.buffer.data[start..start + Raw::CAP];
                        self.oversized.extend_from_slice(kept);
                        big = Some(Big {
                            offset: self.buffer.base + start as u64,
                            newlines_before: 0,
                            len: (filled - start) as u64,
                        });
                        self.buffer.pos = filled;
                    }
                    let shift = self.fill(self.buffer.pos)?;
                    scan = filled - shift;
                    continue;
                }
            };
            if start == next && big.is_none() {
                return Ok(None);
            }
            self.buffer.pos = next;
            let line = self.line;
            self.line += 1;
            let mut trimmed = end;
            if trimmed > start && self.buffer.data[trimmed - 1] == b'\r' {
                trimmed -= 1;
            }
            if big.is_none() && trimmed - start > MAX_RECORD_BYTES {
                let kept = &self.buffer.data[start..start + Raw::CAP];
                self.oversized.extend_from_slice(kept);
                big = Some(Big {
                    offset: self.buffer.base + start as u64,
                    newlines_before: 0,
                    len: 0,
                });
            }
            return Ok(Some(match big {
                None => Found {
                    offset: self.buffer.base + start as u64,
                    line,
                    start,
                    end: trimmed,
                    too_long: None,
                    plain: false,
                },
                Some(big) => Found {
                    offset: big.offset,
                    line,
                    start: trimmed,
                    end: trimmed,
                    too_long: Some(big.len + (trimmed - start) as u64),
                    plain: false,
                },
            }));
        }
    }

    fn fill(&mut self, keep: usize) -> Result<usize, String> {
        self.buffer
            .fill(keep)
            .map_err(|e| format!("{}: read failed: {}", self.display, describe_io(&e)))
    }

    /// Decodes a found record: the record, a dead letter, or nothing (a
    /// blank line, or the header).
    fn decode(&mut self, found: &Found) -> Result<Option<ReadItem<T>>, String> {
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
                        Err(reason) => reason,
                    }
                }
                Some(Err(reason)) => reason.clone(),
            },
        };
        let raw = Raw::bytes(&self.buffer.data[found.start..found.end]);
        self.dead(found, reason, raw).map(Some)
    }

    fn dead(&mut self, found: &Found, reason: String, raw: Raw) -> Result<ReadItem<T>, String> {
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
                        format!("{}: counting lines: {}", self.display, describe_io(&e))
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

/// The line feeds in `bytes`.
fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The count of line-end bytes (`\r`, `\n`) at the start of `bytes`.
fn leading_blank(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count()
}

/// The offset just after the first line feed at `from` or after and before
/// `before`, if there is one.
fn line_start_within(path: &Path, from: u64, before: u64) -> std::io::Result<Option<u64>> {
    let mut buffer = Buffer::at(path, from);
    loop {
        let limit = (before.saturating_sub(buffer.base) as usize).min(buffer.filled);
        if let Some(i) = memchr::memchr(b'\n', &buffer.data[buffer.pos..limit]) {
            return Ok(Some(buffer.base + (buffer.pos + i + 1) as u64));
        }
        if buffer.eof || buffer.base + buffer.filled as u64 >= before {
            return Ok(None);
        }
        buffer.pos = buffer.filled;
        let keep = buffer.pos;
        buffer.fill(keep)?;
    }
}

/// The line feeds in the file's bytes `from..to`.
fn count_lines(path: &Path, from: u64, to: u64) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut file = file.take(to.saturating_sub(from));
    let mut chunk = vec![0; CHUNK];
    let mut lines = 0;
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(lines),
            Ok(n) => lines += newlines(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The header of a CSV file: its first record, names trimmed.
fn read_header(path: &Path) -> std::io::Result<Result<Vec<Box<str>>, String>> {
    let mut buffer = Buffer::at(path, 0);
    let mut parser = CsvParser::new();
    loop {
        if buffer.pos == buffer.filled && !buffer.eof {
            let keep = buffer.pos;
            buffer.fill(keep)?;
            continue;
        }
        let (parsed, n) = parser.feed(&buffer.data[buffer.pos..buffer.filled]);
        buffer.pos += n;
        match parsed {
            Parsed::Record => return Ok(Ok(parser.names())),
            Parsed::End => return Ok(Err("the file has no header".into())),
            Parsed::NeedInput => {
                if buffer.base + buffer.pos as u64 > MAX_RECORD_BYTES as u64 {
                    return Ok(Err(format!(
                        "the file's header (line 1) exceeds the {MAX_RECORD_BYTES}-byte limit"
                    )));
                }
            }
        }
    }
}
