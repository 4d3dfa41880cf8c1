//! Finding a split's next record in its buffer: a plain CSV line split at
//! its commas, a CSV record through the parser (quotes, line breaks in
//! fields, a record straddling the range's end), or a JSON line; records
//! too long to decode are skipped to their end, their first bytes kept.

use serde::de::DeserializeOwned;
use weir::{Fault, Raw};

use super::scan::{leading_blank, newlines};
use super::FileReader;
use crate::format::{Parsed, MAX_RECORD_BYTES};

/// One record's place in the file.
pub(super) struct Found {
    /// File offset of its first byte (after any blank lines before it).
    pub(super) offset: u64,
    /// Its line, counted from the split's first line (1-based).
    pub(super) line: u64,
    /// Buffer indices of its bytes (without blank lines and line end).
    pub(super) start: usize,
    pub(super) end: usize,
    /// Its length in bytes when it was too long to keep (`start..end` is
    /// then empty; the reader's `oversized` holds its first bytes).
    pub(super) too_long: Option<u64>,
    /// Whether it is a plain CSV line, split at `plain_ends` (its commas),
    /// rather than parsed into the CSV parser's fields.
    pub(super) plain: bool,
}

/// A record too long to decode, while it is being skipped.
struct Big {
    offset: u64,
    newlines_before: u64,
    /// Its bytes so far.
    len: u64,
}

impl<T: DeserializeOwned> FileReader<T> {
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
    pub(super) fn next_csv(&mut self) -> Result<Option<Found>, Fault> {
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
                return Err(Fault::fatal(format!(
                    "{}: a quoted CSV field holds a line break at byte {} where the \
                     file is split for parallel reading; read it whole with --file-splits 1",
                    self.display, self.end
                )));
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
    pub(super) fn next_line(&mut self) -> Result<Option<Found>, Fault> {
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
}
