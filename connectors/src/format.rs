//! Record formats for files and stdout: CSV (with a header row) and JSON lines.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;

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
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            other => Err(format!("unknown format `{other}`: use csv or jsonl")),
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

/// The largest record (in bytes) a reader accepts; larger ones become dead letters.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Decodes one CSV data line against a header.
pub fn decode_csv_line<T: DeserializeOwned>(
    headers: &csv::StringRecord,
    line: &str,
) -> Result<T, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => decode_csv_record(headers, &record),
        Ok(false) => Err("empty line".into()),
        Err(e) => Err(format!("malformed CSV: {e}")),
    }
}

/// Decodes a parsed CSV record against a header, with a reason on failure.
pub fn decode_csv_record<T: DeserializeOwned>(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
) -> Result<T, String> {
    if record.len() != headers.len() {
        return Err(format!(
            "expected {} fields ({}), found {}",
            headers.len(),
            headers.iter().collect::<Vec<_>>().join(","),
            record.len()
        ));
    }
    record
        .deserialize(Some(headers))
        .map_err(|e| match e.kind() {
            csv::ErrorKind::Deserialize { err, .. } => {
                let field = err
                    .field()
                    .and_then(|i| headers.get(i as usize))
                    .map(|name| format!("field `{name}`: "))
                    .unwrap_or_default();
                format!("{field}{}", err.kind())
            }
            other => format!("{other:?}"),
        })
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
        let headers = csv::StringRecord::from(vec!["ts_ms", "device", "value"]);
        let r: Reading = decode_csv_line(&headers, "1000,7,21.5").expect("valid");
        assert_eq!(
            r,
            Reading {
                device: 7,
                ts_ms: 1000,
                value: 21.5
            }
        );
        let e = decode_csv_line::<Reading>(&headers, "1000,7").expect_err("short");
        assert!(e.contains("expected 3 fields"), "{e}");
        let e = decode_csv_line::<Reading>(&headers, "soon,7,1.0").expect_err("bad ts");
        assert!(e.contains("ts_ms") || e.contains("invalid digit"), "{e}");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
        assert_eq!("jsonl".parse::<Format>(), Ok(Format::Jsonl));
        assert!("xml".parse::<Format>().is_err());
    }
}
