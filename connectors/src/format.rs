//! Record formats for files and stdout: CSV (with a header row) and JSON lines.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use weir::ConfigError;

pub use crate::csv_de::Error as DecodeError;

/// A text format for records.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values; the first line names the columns, which are
    /// matched to the record's fields by name.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl FromStr for Format {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            other => Err(ConfigError::new(format!(
                "unknown format `{other}`: use csv or jsonl"
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        })
    }
}

impl Format {
    /// Guesses the format from a file extension (`.csv`, `.jsonl`, `.json`).
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "csv" => Some(Format::Csv),
            "jsonl" | "json" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// The largest record (in bytes) a reader accepts: the most a dead letter
/// keeps ([`weir::Raw::CAP`]), so every record that is decoded and rejected
/// is kept whole; larger ones become dead letters holding their first bytes.
pub const MAX_RECORD_BYTES: usize = weir::Raw::CAP;

/// Splits CSV bytes into records and fields, with one parser reused for a
/// whole file (building a parser is costly: it compiles a state machine).
///
/// The dialect is RFC 4180's, as the `csv` crate reads it by default:
/// comma-separated, `"` quotes (doubled inside quotes), `\n`, `\r\n` or `\r`
/// line ends, blank lines skipped, a UTF-8 byte-order mark at the start of
/// a file ignored. It never fails: any bytes parse into some fields, and the
/// record's decoding decides whether they make sense.
pub(crate) struct CsvParser {
    core: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    /// Whether the current record's fields are being thrown away (it is too
    /// large to keep): output is then written over and over into the same space.
    discarding: bool,
}

/// What [`CsvParser::feed`] found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The input ended inside a record (or before one): feed more, or an
    /// empty slice at the end of the data.
    NeedInput,
    /// A record ended; its fields are in the parser until the next feed.
    Record,
    /// The data ended (only after an empty feed).
    End,
}

impl CsvParser {
    pub(crate) fn new() -> CsvParser {
        CsvParser {
            core: csv_core::ReaderBuilder::new().build(),
            fields: vec![0; 1024],
            ends: vec![0; 32],
            nout: 0,
            nend: 0,
            discarding: false,
        }
    }

    /// Parses from `input` (the bytes after those already consumed) and
    /// returns what it found and how many bytes it consumed.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (Parsed, usize) {
        let mut consumed = 0;
        loop {
            let (result, nin, nout, nend) = self.core.read_record(
                &input[consumed..],
                &mut self.fields[self.nout..],
                &mut self.ends[self.nend..],
            );
            consumed += nin;
            self.nout += nout;
            self.nend += nend;
            match result {
                csv_core::ReadRecordResult::InputEmpty => return (Parsed::NeedInput, consumed),
                csv_core::ReadRecordResult::Record => return (Parsed::Record, consumed),
                csv_core::ReadRecordResult::End => return (Parsed::End, consumed),
                csv_core::ReadRecordResult::OutputFull if self.discarding => self.nout = 0,
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.fields.len();
                    self.fields.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull if self.discarding => self.nend = 0,
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
            }
        }
    }

    /// Starts over, as at the start of a file (to read from another offset).
    pub(crate) fn reset(&mut self) {
        self.core.reset();
        self.clear();
    }

    /// Starts a new record: forgets the fields of the last one.
    pub(crate) fn clear(&mut self) {
        self.nout = 0;
        self.nend = 0;
        self.discarding = false;
    }

    /// Stops keeping the current record's fields (it is too large to decode).
    pub(crate) fn discard(&mut self) {
        self.discarding = true;
    }

    /// The newline count plus one: the line the parser is on.
    pub(crate) fn line(&self) -> u64 {
        self.core.line()
    }

    /// Sets the line count (the reader keeps it between the records it parses).
    pub(crate) fn set_line(&mut self, line: u64) {
        self.core.set_line(line);
    }

    /// The last record's field bytes, back to back.
    pub(crate) fn fields(&self) -> &[u8] {
        &self.fields[..self.nout]
    }

    /// Where each of the last record's fields ends in [`CsvParser::fields`].
    pub(crate) fn ends(&self) -> &[usize] {
        &self.ends[..self.nend]
    }

    /// The last record's fields as text (lossy), for a header.
    pub(crate) fn names(&self) -> Vec<Box<str>> {
        let mut start = 0;
        self.ends()
            .iter()
            .map(|&end| {
                let name = String::from_utf8_lossy(self.fields[start..end].trim_ascii());
                start = end;
                name.into()
            })
            .collect()
    }
}

/// Decodes one CSV data line against a header's column names (for one-off
/// lines; a file reader keeps one parser for a whole split instead). The
/// error is the dead letter's reason.
pub fn decode_csv_line<T: DeserializeOwned>(
    headers: &[&str],
    line: &str,
) -> Result<T, DecodeError> {
    let mut parser = CsvParser::new();
    let (mut parsed, n) = parser.feed(line.as_bytes());
    if parsed == Parsed::NeedInput && n == line.len() {
        parsed = parser.feed(&[]).0;
    }
    match parsed {
        Parsed::Record => crate::csv_de::decode(headers, parser.fields(), parser.ends(), 0),
        _ => Err(DecodeError("empty line".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Reading {
        device: u64,
        ts_ms: u64,
        value: f64,
    }

    #[test]
    fn csv_lines_decode_by_column_name() {
        let headers = ["ts_ms", "device", "value"];
        let r: Reading = decode_csv_line(&headers, "1000,7,21.5").expect("valid");
        assert_eq!(
            r,
            Reading {
                device: 7,
                ts_ms: 1000,
                value: 21.5
            }
        );
        let e = decode_csv_line::<Reading>(&headers, "1000,7")
            .expect_err("short")
            .to_string();
        assert!(e.contains("expected 3 fields"), "{e}");
        let e = decode_csv_line::<Reading>(&headers, "soon,7,1.0")
            .expect_err("bad ts")
            .to_string();
        assert!(e.contains("ts_ms") || e.contains("invalid digit"), "{e}");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
    }
}
