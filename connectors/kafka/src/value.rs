//! How a message's value becomes a record and a record a value: JSON by
//! default, or one CSV line whose columns are the record's fields in
//! declaration order (Kafka messages carry no header row).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Serialize;
use weir::ConfigError;

/// The encoding of message values.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ValueFormat {
    /// One JSON object per message.
    #[default]
    Json,
    /// One CSV line per message, the record's fields in declaration order.
    Csv,
}

impl FromStr for ValueFormat {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(ValueFormat::Json),
            "csv" => Ok(ValueFormat::Csv),
            other => Err(ConfigError::new(format!(
                "unknown value format `{other}`: use json or csv"
            ))),
        }
    }
}

impl fmt::Display for ValueFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueFormat::Json => "json",
            ValueFormat::Csv => "csv",
        })
    }
}

/// Decodes message values into `T`.
pub(crate) struct Decoder {
    format: ValueFormat,
    /// The record's field names, for CSV.
    columns: &'static [&'static str],
}

impl Decoder {
    /// A decoder of `format` values into `T`; CSV needs `T` to be a struct.
    pub(crate) fn new<T: DeserializeOwned>(format: ValueFormat) -> Result<Self, ConfigError> {
        let columns = match format {
            ValueFormat::Json => &[][..],
            ValueFormat::Csv => field_names::<T>().ok_or_else(|| {
                ConfigError::new(
                    "CSV values need a record type that is a struct with named fields: use JSON values",
                )
            })?,
        };
        Ok(Decoder { format, columns })
    }

    /// The record in `value`, or why it is not one (the dead letter's reason).
    pub(crate) fn decode<T: DeserializeOwned>(&self, value: &[u8]) -> Result<T, String> {
        match self.format {
            ValueFormat::Json => {
                serde_json::from_slice(value).map_err(|e| format!("invalid JSON: {e}"))
            }
            ValueFormat::Csv => {
                let line = std::str::from_utf8(value).map_err(|e| format!("not UTF-8: {e}"))?;
                let line = line.trim_end_matches(['\r', '\n']);
                weir_connectors::format::decode_csv_line(self.columns, line)
                    .map_err(|e| format!("invalid CSV: {e}"))
            }
        }
    }
}

/// Encodes a record as a message value.
pub(crate) fn encode<T: Serialize>(
    format: ValueFormat,
    record: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    match format {
        ValueFormat::Json => serde_json::to_writer(&mut *out, record).map_err(|e| e.to_string()),
        ValueFormat::Csv => {
            let mut writer = csv_writer(out);
            writer.serialize(record).map_err(|e| e.to_string())?;
            writer.flush().map_err(|e| e.to_string())?;
            drop(writer);
            while out.last() == Some(&b'\n') {
                out.pop();
            }
            Ok(())
        }
    }
}

fn csv_writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out)
}

/// The field names of struct `T`, in declaration order: what its
/// `Deserialize` asks a deserializer for.
fn field_names<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    let mut names = FieldNames(None);
    let _ = T::deserialize(&mut names);
    names.0
}

/// A deserializer that only records the fields a struct asks for.
struct FieldNames(Option<&'static [&'static str]>);

impl<'de> de::Deserializer<'de> for &mut FieldNames {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = Some(fields);
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Reading {
        device: u64,
        ts_ms: u64,
        value: f64,
    }

    #[test]
    fn json_and_csv_values_decode_and_bad_ones_say_why() {
        let json = Decoder::new::<Reading>(ValueFormat::Json).expect("json");
        let r: Reading = json
            .decode(br#"{"device":7,"ts_ms":1000,"value":2.5}"#)
            .expect("valid");
        assert_eq!(
            r,
            Reading {
                device: 7,
                ts_ms: 1000,
                value: 2.5
            }
        );
        let e = json.decode::<Reading>(b"{\"device\":").expect_err("cut");
        assert!(e.starts_with("invalid JSON"), "{e}");

        let csv = Decoder::new::<Reading>(ValueFormat::Csv).expect("a struct");
        assert_eq!(csv.columns, ["device", "ts_ms", "value"]);
        let r: Reading = csv.decode(b"7,1000,2.5\n").expect("valid");
        assert_eq!(r.device, 7);
        assert!(csv.decode::<Reading>(b"7,x,2.5").is_err());
        assert!(csv
            .decode::<Reading>(&[0xff, b','])
            .expect_err("bytes")
            .contains("UTF-8"));
        assert!(
            Decoder::new::<u64>(ValueFormat::Csv).is_err(),
            "not a struct"
        );
    }

    #[test]
    fn records_encode_as_json_or_one_csv_line() {
        let r = Reading {
            device: 7,
            ts_ms: 1000,
            value: 2.5,
        };
        let mut out = Vec::new();
        encode(ValueFormat::Json, &r, &mut out).expect("json");
        assert_eq!(out, br#"{"device":7,"ts_ms":1000,"value":2.5}"#);
        encode(ValueFormat::Csv, &r, &mut out).expect("csv");
        assert_eq!(out, b"7,1000,2.5");
        let back: Reading = Decoder::new::<Reading>(ValueFormat::Csv)
            .expect("csv")
            .decode(&out)
            .expect("round trip");
        assert_eq!(back, r);
    }
}
