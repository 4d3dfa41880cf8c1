//! Field checks for decoding: values a job interprets must make sense, or the
//! record is not decoded at all.
//!
//! Each check is a serde `deserialize_with` helper taking the field's name:
//! a field that does not fit fails to deserialize, so a file source turns its
//! record into a dead letter that carries the file, line, byte offset and raw
//! bytes, with a reason that names the field, in CSV and JSON lines alike
//! (`field `country`: expected an ISO 3166-1 alpha-2 country code …`).
//! Wire one to a field with a small function:
//!
//! ```
//! use serde::{Deserialize, Deserializer};
//! use weir_connectors::fields;
//!
//! #[derive(Debug, Deserialize)]
//! struct Reading {
//!     #[serde(deserialize_with = "value")]
//!     value: f64,
//! }
//!
//! fn value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
//!     fields::finite(d, "value")
//! }
//!
//! let e = serde_json::from_str::<Reading>(r#"{"value": NaN}"#).unwrap_err();
//! assert!(e.to_string().starts_with("field `value`:"), "{e}");
//! let e = serde_json::from_str::<Reading>(r#"{"value": 1e999}"#).unwrap_err();
//! assert!(e.to_string().starts_with("field `value`:"), "{e}");
//! assert_eq!(serde_json::from_str::<Reading>(r#"{"value": -2.5}"#).unwrap().value, -2.5);
//! ```
//!
//! The checks use each type's ordinary deserializer, so records still
//! serialize and restore from checkpoints (bincode) as before.

use std::fmt::Display;
use std::ops::RangeInclusive;

use serde::de::Error;
use serde::{Deserialize, Deserializer};

/// The largest amount [`amount_cents`] accepts: 10^12 cents, ten billion in
/// major units — more than any card payment, and small enough that a
/// window's `u64` sum of them cannot overflow before 18 million payments.
pub const MAX_AMOUNT_CENTS: u64 = 1_000_000_000_000;

/// The largest latency [`latency_us`] accepts: one day, in microseconds.
pub const MAX_LATENCY_US: u64 = 86_400_000_000;

/// The HTTP status codes [`http_status`] accepts (RFC 9110: three digits, 1xx to 5xx).
pub const HTTP_STATUS: RangeInclusive<u16> = 100..=599;

/// An error naming `field`.
fn named<E: Error>(field: &str, what: impl Display) -> E {
    E::custom(format_args!("field `{field}`: {what}"))
}

/// A short, escaped rendering of a bad text value for a reason.
fn shown(s: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = s.chars().take(MAX).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    format!("{out:?}")
}

/// Deserializes `T` with every error naming `field`.
fn plain<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D, field: &str) -> Result<T, D::Error> {
    T::deserialize(d).map_err(|e| named(field, e))
}

/// A finite `f64`: `NaN`, `inf`, `-inf` and numbers beyond `f64`'s range
/// (`1e999`, which CSV reads as `inf` and JSON rejects) are refused. JSON has
/// no literal for them, so `NaN`/`Infinity` there fail as JSON, also naming
/// the field.
pub fn finite<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<f64, D::Error> {
    let x: f64 = plain(d, field)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(named(
            field,
            format_args!(
                "expected a finite number, found {x} (not a number, infinite, or beyond ±1.8e308)"
            ),
        ))
    }
}

/// An ISO 3166-1 alpha-2 country code by shape: exactly two ASCII uppercase
/// letters (`US`, `GB`), held inline (no allocation per record). Whether the
/// code is assigned is not checked. It serializes as its two letters, and
/// deserializes only from two ASCII uppercase letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// The code `code`, if it is two ASCII uppercase letters.
    pub fn new(code: &str) -> Option<CountryCode> {
        match code.as_bytes() {
            &[a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                Some(CountryCode([a, b]))
            }
            _ => None,
        }
    }

    /// A code known to be two ASCII uppercase letters (the generator's).
    pub(crate) const fn known(code: [u8; 2]) -> CountryCode {
        CountryCode(code)
    }

    /// The two letters.
    pub fn bytes(self) -> [u8; 2] {
        self.0
    }

    /// The two letters, as text.
    pub fn as_str(&self) -> &str {
        // Two ASCII letters are UTF-8.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for CountryCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Code;
        impl serde::de::Visitor<'_> for Code {
            type Value = CountryCode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ISO 3166-1 alpha-2 country code (two ASCII uppercase letters)")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<CountryCode, E> {
                CountryCode::new(v).ok_or_else(|| {
                    E::custom(format_args!(
                        "expected an ISO 3166-1 alpha-2 country code (two ASCII uppercase letters), found {}",
                        shown(v)
                    ))
                })
            }
        }
        d.deserialize_str(Code)
    }
}

/// An ISO 3166-1 alpha-2 country code by shape ([`CountryCode`]): `USA`,
/// `us`, `U|S`, `U` and the empty string are refused.
pub fn country_code<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<CountryCode, D::Error> {
    plain(d, field)
}

/// An HTTP status code in [`HTTP_STATUS`].
pub fn http_status<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<u16, D::Error> {
    let status: u16 = plain(d, field)?;
    if HTTP_STATUS.contains(&status) {
        Ok(status)
    } else {
        Err(named(
            field,
            format_args!(
                "expected an HTTP status code ({} to {}), found {status}",
                HTTP_STATUS.start(),
                HTTP_STATUS.end()
            ),
        ))
    }
}

/// An unsigned integer of at most `max`.
pub fn at_most<'de, D: Deserializer<'de>>(d: D, field: &str, max: u64) -> Result<u64, D::Error> {
    let v: u64 = plain(d, field)?;
    if v <= max {
        Ok(v)
    } else {
        Err(named(
            field,
            format_args!("expected at most {max}, found {v}"),
        ))
    }
}

/// An amount in cents of at most [`MAX_AMOUNT_CENTS`].
pub fn amount_cents<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<u64, D::Error> {
    at_most(d, field, MAX_AMOUNT_CENTS)
}

/// A latency in microseconds of at most [`MAX_LATENCY_US`].
pub fn latency_us<'de, D: Deserializer<'de>>(d: D, field: &str) -> Result<u64, D::Error> {
    at_most(d, field, MAX_LATENCY_US)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Generation, Generator, GeneratorConfig, Reading, Request, Transaction};
    use serde::de::DeserializeOwned;

    /// Decodes `line` against `header` by column name, as the file source
    /// does, with the reason it would give.
    fn csv<T: DeserializeOwned>(header: &str, line: &str) -> Result<T, String> {
        let headers: Vec<&str> = header.split(',').collect();
        crate::format::decode_csv_line(&headers, line).map_err(|e| e.to_string())
    }

    fn json<T: DeserializeOwned>(line: &str) -> Result<T, String> {
        serde_json::from_str(line).map_err(|e| e.to_string())
    }

    #[test]
    fn non_finite_readings_are_refused_naming_the_field() {
        let h = "device,ts_ms,value";
        for bad in [
            "NaN", "nan", "inf", "-inf", "infinity", "1e999", "-1e999", "", "x",
        ] {
            let e = csv::<Reading>(h, &format!("1,1000,{bad}")).expect_err(bad);
            assert!(e.starts_with("field `value`: "), "{bad}: {e}");
            assert!(!e.contains("field 2"), "{bad}: {e}");
        }
        for bad in [
            "NaN",
            "Infinity",
            "-Infinity",
            "1e999",
            "\"NaN\"",
            "\"inf\"",
            "null",
        ] {
            let e = json::<Reading>(&format!(r#"{{"device":1,"ts_ms":1000,"value":{bad}}}"#))
                .expect_err(bad);
            assert!(e.starts_with("field `value`: "), "{bad}: {e}");
        }
        for good in ["21.5", "-0", "1e300", "-40", "0"] {
            let r = csv::<Reading>(h, &format!("1,1000,{good}")).expect(good);
            assert_eq!(
                r.value.to_bits(),
                good.parse::<f64>().expect("a float").to_bits()
            );
            let r = json::<Reading>(&format!(r#"{{"device":1,"ts_ms":1000,"value":{good}}}"#))
                .expect(good);
            assert_eq!(r.value, good.parse::<f64>().expect("a float"));
        }
    }

    #[test]
    fn countries_must_be_two_uppercase_letters() {
        let h = "card,merchant,amount_cents,country,ts_ms";
        for bad in [
            "USA",
            "U|S",
            "u",
            "us",
            "",
            "U",
            "U1",
            "ÜS",
            "U S",
            "\"\"\"US\"",
        ] {
            let e = csv::<Transaction>(h, &format!("1,2,300,{bad},1000")).expect_err(bad);
            assert!(
                e.starts_with("field `country`: expected an ISO 3166-1"),
                "{bad}: {e}"
            );
        }
        let e = json::<Transaction>(
            r#"{"card":1,"merchant":2,"amount_cents":300,"country":"U|S","ts_ms":1000}"#,
        )
        .expect_err("U|S");
        assert!(
            e.contains("field `country`") && e.contains("\"U|S\""),
            "{e}"
        );
        let e = json::<Transaction>(
            r#"{"card":1,"merchant":2,"amount_cents":300,"country":7,"ts_ms":1000}"#,
        )
        .expect_err("a number");
        assert!(e.starts_with("field `country`: "), "{e}");
        let t = csv::<Transaction>(h, "1,2,300,GB,1000").expect("GB");
        assert_eq!(t.country, "GB");
        // A long bad value is cut short in the reason.
        let e =
            csv::<Transaction>(h, &format!("1,2,300,{},1000", "A".repeat(500))).expect_err("long");
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn amounts_statuses_and_latencies_must_be_plausible() {
        let h = "card,merchant,amount_cents,country,ts_ms";
        let e = csv::<Transaction>(h, "1,2,18446744073709551615,US,1000").expect_err("huge");
        assert!(
            e.starts_with("field `amount_cents`: expected at most"),
            "{e}"
        );
        let e = csv::<Transaction>(h, "1,2,-5,US,1000").expect_err("negative");
        assert!(e.starts_with("field `amount_cents`: "), "{e}");
        assert!(csv::<Transaction>(h, &format!("1,2,{MAX_AMOUNT_CENTS},US,1000")).is_ok());
        let h = "service,endpoint,status,latency_us,ts_ms";
        for bad in ["0", "99", "600", "70000", "NaN"] {
            let e = csv::<Request>(h, &format!("svc-1,/,{bad},100,1000")).expect_err(bad);
            assert!(e.starts_with("field `status`: "), "{bad}: {e}");
        }
        for bad in ["NaN", "inf", "1e999", "-1", "1.5", "86400000001"] {
            let e = csv::<Request>(h, &format!("svc-1,/,200,{bad},1000")).expect_err(bad);
            assert!(e.starts_with("field `latency_us`: "), "{bad}: {e}");
            let e = json::<Request>(&format!(
                r#"{{"service":"svc-1","endpoint":"/","status":200,"latency_us":{bad},"ts_ms":1000}}"#
            ))
            .expect_err(bad);
            assert!(e.starts_with("field `latency_us`: "), "{bad}: {e}");
        }
        assert!(csv::<Request>(h, "svc-1,/,503,86400000000,1000").is_ok());
    }

    /// Every record the generator makes passes the checks it would face in a
    /// file, so jobs on the generator dead-letter only its deliberate
    /// malformed lines (and the one meant to fail on its timestamp does).
    fn generated_records_pass<T: crate::Generated + DeserializeOwned + PartialEq>() {
        let generator = Generator::<T>::new(GeneratorConfig {
            events: Some(20_000),
            malformed_fraction: 0.01,
            ..GeneratorConfig::default()
        })
        .expect("a valid config");
        let mut malformed = 0;
        for generation in generator.records() {
            match generation {
                Generation::Record(r) => {
                    let line = serde_json::to_string(&r).expect("records serialize");
                    let back: T = json(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert!(back == r, "{line}");
                    let mut w = ::csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(vec![]);
                    w.serialize(&r).expect("records serialize");
                    let bytes = w.into_inner().expect("a vector");
                    let line = String::from_utf8(bytes).expect("UTF-8");
                    let back: T =
                        csv(T::HEADER, line.trim_end()).unwrap_or_else(|e| panic!("{line}: {e}"));
                    assert!(back == r, "{line}");
                }
                Generation::Malformed(line, reason) => {
                    malformed += 1;
                    assert!(!reason.is_empty(), "{line}");
                    if line.contains("not-a-time") {
                        assert!(reason.starts_with("field `ts_ms`: "), "{line}: {reason}");
                    }
                }
            }
        }
        assert!(malformed > 0);
    }

    #[test]
    fn the_generator_makes_valid_records() {
        generated_records_pass::<Reading>();
        generated_records_pass::<Transaction>();
        generated_records_pass::<Request>();
    }
}
