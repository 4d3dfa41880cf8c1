//! Dead letters: records weir could not use, with the reason and their origin.
//!
//! Bad data is data. A record that fails to decode, lacks a timestamp, is too
//! large, or is refused by an operator (late for a window that closed, with an
//! event time the operator cannot represent) is never dropped: it becomes a
//! [`DeadLetter`] on a second stream, which the job sends to a dead-letter sink.
//!
//! A dead letter keeps the record's exact bytes ([`Raw`]), up to
//! [`Raw::CAP`] (1 MiB, the largest record a file source accepts), with the
//! original length, so a poison record can be replayed from its dead letter.
//! As JSON it is flat:
//!
//! ```json
//! {"source": "input", "origin": {"file": {"path": "in.csv", "line": 7, "offset": 312}},
//!  "reason": "field `ts_ms`: invalid digit found in string",
//!  "raw": "7,soon,1.5", "raw_encoding": "utf8", "raw_len": 10}
//! ```
//!
//! `raw_encoding` is `utf8` when the bytes are valid UTF-8 (`raw` is then the
//! text itself) and `base64` otherwise (standard alphabet, padded);
//! `raw_len` is the length of the original record in bytes, larger than the
//! kept bytes only when the record exceeded the cap.
//!
//! `origin` says where the record came from, in fields the engine does not
//! interpret (see [`Origin`], and [`origin`] for how a connector or an
//! operator adds its own): a connector's coordinates under the connector's
//! name, or an operator's name, reason, event time, watermark and details:
//!
//! ```json
//! {"file": {"path": "in.csv", "line": 7, "offset": 312}}
//! {"split": {"split": 0, "offset": 4}}
//! {"operator": {"name": "per_second", "kind": "late", "event_time": null, "watermark": 1200, "details": {"window_start": 0, "window_end": 1000}}}
//! {"operator": {"name": "per_second", "kind": "out_of_range", "event_time": 18446744073709551615, "watermark": null, "details": {}}}
//! ```

mod fields;
pub mod origin;

pub use fields::{FieldValue, Fields};
pub use origin::Origin;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A record that could not be processed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "Wire")]
pub struct DeadLetter {
    /// The name of the source (or operator) that rejected it.
    pub source: String,
    /// Where it came from.
    pub origin: Origin,
    /// Why it was rejected.
    pub reason: String,
    /// The record's exact bytes (up to [`Raw::CAP`]).
    pub raw: Raw,
}

/// The exact bytes of a rejected record, kept up to [`Raw::CAP`], with the
/// length of the original.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Raw {
    kept: Vec<u8>,
    len: u64,
}

impl Raw {
    /// The most bytes a dead letter keeps of a record: 1 MiB, the size of
    /// the largest record a file source decodes, so every record that was
    /// decoded and rejected is kept whole; only oversized records are cut.
    pub const CAP: usize = 1 << 20;

    /// Keeps `bytes` (the first [`Raw::CAP`] of them) and their length.
    pub fn bytes(bytes: &[u8]) -> Raw {
        Raw {
            kept: bytes[..bytes.len().min(Raw::CAP)].to_vec(),
            len: bytes.len() as u64,
        }
    }

    /// Keeps the first bytes of a record of `original_len` bytes (no more
    /// than [`Raw::CAP`] of them), for records too long to hold whole.
    pub fn cut(first: &[u8], original_len: u64) -> Raw {
        let mut raw = Raw::bytes(first);
        raw.len = raw.len.max(original_len);
        raw
    }

    /// Keeps the bytes of `text`.
    pub fn text(text: &str) -> Raw {
        Raw::bytes(text.as_bytes())
    }

    /// A record that has no bytes of its own any more (an operator's, long
    /// after decoding) as its JSON encoding.
    pub fn json<T: Serialize>(record: &T) -> Raw {
        Raw::from(serde_json::to_string(record).unwrap_or_default())
    }

    /// The kept bytes: the whole record unless [`Raw::is_truncated`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.kept
    }

    /// The length of the original record in bytes.
    pub fn original_len(&self) -> u64 {
        self.len
    }

    /// Whether the record was longer than [`Raw::CAP`] and only its start is kept.
    pub fn is_truncated(&self) -> bool {
        (self.kept.len() as u64) < self.len
    }

    /// The kept bytes as text, if they are valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.kept).ok()
    }
}

impl fmt::Debug for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => write!(f, "{text:?}")?,
            None => write!(f, "base64:{}", base64::encode(&self.kept))?,
        }
        if self.is_truncated() {
            write!(f, " (first {} of {} bytes)", self.kept.len(), self.len)?;
        }
        Ok(())
    }
}

impl From<&str> for Raw {
    fn from(text: &str) -> Raw {
        Raw::text(text)
    }
}

impl From<String> for Raw {
    fn from(text: String) -> Raw {
        let len = text.len() as u64;
        let mut kept = text.into_bytes();
        kept.truncate(Raw::CAP);
        Raw { kept, len }
    }
}

impl PartialEq<str> for Raw {
    fn eq(&self, other: &str) -> bool {
        !self.is_truncated() && self.kept == other.as_bytes()
    }
}

impl PartialEq<&str> for Raw {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// How `raw` is written in a dead letter's JSON.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawEncoding {
    Utf8,
    Base64,
}

/// A dead letter as it is read back: the bytes as text or base64.
#[derive(Deserialize)]
struct Wire {
    source: String,
    origin: Origin,
    reason: String,
    raw: String,
    raw_encoding: RawEncoding,
    raw_len: u64,
}

/// A dead letter as it is written, borrowing it (the same fields as [`Wire`]).
#[derive(Serialize)]
struct WireRef<'a> {
    source: &'a str,
    origin: &'a Origin,
    reason: &'a str,
    raw: std::borrow::Cow<'a, str>,
    raw_encoding: RawEncoding,
    raw_len: u64,
}

impl Serialize for DeadLetter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (raw, raw_encoding) = match self.raw.as_str() {
            Some(text) => (text.into(), RawEncoding::Utf8),
            None => (base64::encode(&self.raw.kept).into(), RawEncoding::Base64),
        };
        WireRef {
            source: &self.source,
            origin: &self.origin,
            reason: &self.reason,
            raw,
            raw_encoding,
            raw_len: self.raw.len,
        }
        .serialize(serializer)
    }
}

/// Why a dead letter's JSON does not read back (serde reports it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct WireError(String);

impl TryFrom<Wire> for DeadLetter {
    type Error = WireError;
    fn try_from(w: Wire) -> Result<DeadLetter, WireError> {
        let kept = match w.raw_encoding {
            RawEncoding::Utf8 => w.raw.into_bytes(),
            RawEncoding::Base64 => base64::decode(&w.raw)?,
        };
        if (kept.len() as u64) > w.raw_len {
            return Err(WireError(format!(
                "raw holds {} bytes but raw_len says {}",
                kept.len(),
                w.raw_len
            )));
        }
        Ok(DeadLetter {
            source: w.source,
            origin: w.origin,
            reason: w.reason,
            raw: Raw {
                kept,
                len: w.raw_len,
            },
        })
    }
}

impl fmt::Display for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.source, self.origin, self.reason)
    }
}

/// Standard base64 (RFC 4648, padded), for the bytes of binary dead letters.
mod base64 {
    use super::WireError;

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, WireError> {
        let bytes = text.as_bytes();
        if !bytes.len().is_multiple_of(4) {
            return Err(WireError(format!(
                "base64 of {} characters is not a multiple of 4",
                bytes.len()
            )));
        }
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
        for (i, quad) in bytes.chunks(4).enumerate() {
            let last = i + 1 == bytes.len() / 4;
            let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return Err(WireError("misplaced base64 padding".into()));
            }
            let mut n = 0u32;
            for &c in &quad[..4 - pad] {
                let v = ALPHABET.iter().position(|&a| a == c).ok_or_else(|| {
                    WireError(format!("`{}` is not a base64 character", c as char))
                })?;
                n = (n << 6) | v as u32;
            }
            n <<= 6 * pad as u32;
            let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&decoded[..3 - pad]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(raw: Raw) -> DeadLetter {
        DeadLetter {
            source: "in".into(),
            origin: Origin::source(
                "file",
                Fields::new()
                    .with("path", "a.csv")
                    .with("line", 3u64)
                    .with("offset", 17u64),
            ),
            reason: "bad".into(),
            raw,
        }
    }

    #[test]
    fn base64_round_trips_every_length_and_matches_rfc_4648() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64::encode(plain.as_bytes()), coded);
            assert_eq!(base64::decode(coded).as_deref(), Ok(plain.as_bytes()));
        }
        let all: Vec<u8> = (0..=255).chain((0..=255).rev()).collect();
        for n in 0..all.len() {
            assert_eq!(
                base64::decode(&base64::encode(&all[..n])),
                Ok(all[..n].to_vec())
            );
        }
        assert!(base64::decode("Zm9").is_err());
        assert!(base64::decode("Zm=v").is_err());
        assert!(base64::decode("Zm9v!A==").is_err());
    }

    #[test]
    fn text_is_kept_as_text_and_binary_as_base64_exactly() {
        let json = serde_json::to_value(letter(Raw::text("7,soon,1.5"))).expect("json");
        assert_eq!(json["raw"], "7,soon,1.5");
        assert_eq!(json["raw_encoding"], "utf8");
        assert_eq!(json["raw_len"], 10);

        let binary = [0xff, 0x00, b'a', 0xc3, 0x28, b'\n', 0x80];
        let d = letter(Raw::bytes(&binary));
        let json = serde_json::to_string(&d).expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("parses");
        assert_eq!(value["raw_encoding"], "base64");
        assert_eq!(value["raw_len"], 7);
        let back: DeadLetter = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back.raw.as_bytes(), binary);
        assert_eq!(back, d);
        // The engine's own wire format (bincode, between processes) as well.
        let wire = bincode::serialize(&d).expect("bincode");
        assert_eq!(bincode::deserialize::<DeadLetter>(&wire).expect("back"), d);
    }

    #[test]
    fn out_of_range_is_its_own_origin_not_a_late_one() {
        let d = DeadLetter {
            origin: Origin::Operator {
                name: "per_minute".into(),
                kind: "out_of_range".into(),
                event_time: Some(u64::MAX),
                watermark: None,
                details: Fields::new(),
            },
            ..letter(Raw::text("[1,18446744073709551615]"))
        };
        let json = serde_json::to_value(&d).expect("json");
        assert_eq!(
            json["origin"],
            serde_json::json!({"operator": {
                "name": "per_minute",
                "kind": "out_of_range",
                "event_time": 18_446_744_073_709_551_615u64,
                "watermark": null,
                "details": {},
            }})
        );
        assert_ne!(json["origin"]["operator"]["kind"], "late");
        let back: DeadLetter =
            serde_json::from_str(&serde_json::to_string(&d).expect("json")).expect("back");
        assert_eq!(back, d);
        let wire = bincode::serialize(&d).expect("bincode");
        assert_eq!(bincode::deserialize::<DeadLetter>(&wire).expect("back"), d);
        assert_eq!(
            d.to_string(),
            "in at out_of_range in per_minute (event time 18446744073709551615 ms): bad"
        );
    }

    #[test]
    fn a_file_origin_keeps_its_json_and_reads_back() {
        let d = letter(Raw::text("x"));
        let json = serde_json::to_string(&d).expect("json");
        assert!(
            json.contains(r#""origin":{"file":{"path":"a.csv","line":3,"offset":17}}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<DeadLetter>(&json).expect("back"), d);
        assert_eq!(d.to_string(), "in at file path=a.csv line=3 offset=17: bad");
    }

    #[test]
    fn records_past_the_cap_keep_their_start_and_their_length() {
        let big = vec![b'x'; Raw::CAP + 5];
        let raw = Raw::bytes(&big);
        assert!(raw.is_truncated());
        assert_eq!(raw.as_bytes().len(), Raw::CAP);
        assert_eq!(raw.original_len(), big.len() as u64);
        let json = serde_json::to_string(&letter(raw.clone())).expect("json");
        let back: DeadLetter = serde_json::from_str(&json).expect("back");
        assert_eq!(back.raw, raw);
        assert_eq!(Raw::from("x".repeat(Raw::CAP + 5)), raw);
        // raw longer than raw_len is refused, not believed.
        let lie = json.replace(&format!("\"raw_len\":{}", Raw::CAP + 5), "\"raw_len\":3");
        assert!(serde_json::from_str::<DeadLetter>(&lie).is_err());
    }
}
