//! Scans of a file outside a split's buffer (where a range's first line
//! starts, how many lines lie before it, the CSV header), and the line
//! counting of bytes they share with the reader.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::buffer::{Buffer, CHUNK};
use crate::format::{CsvParser, Parsed, MAX_RECORD_BYTES};

/// The line feeds in `bytes`.
pub(super) fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The count of line-end bytes (`\r`, `\n`) at the start of `bytes`.
pub(super) fn leading_blank(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count()
}

/// The offset just after the first line feed at `from` or after and before
/// `before`, if there is one.
pub(super) fn line_start_within(
    path: &Path,
    from: u64,
    before: u64,
) -> std::io::Result<Option<u64>> {
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
pub(super) fn count_lines(path: &Path, from: u64, to: u64) -> std::io::Result<u64> {
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

/// The header of a CSV file: its first record, names trimmed. The outer
/// error is a fault reading the file; the inner one, why the header is
/// unusable (data: the reason the file's records go to dead letters).
pub(super) fn read_header(path: &Path) -> std::io::Result<Result<Vec<Box<str>>, String>> {
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
