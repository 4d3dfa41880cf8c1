//! The named fields of an [`Origin`](super::Origin): a connector's
//! coordinates or an operator's details, each an integer, a text or bytes.
//!
//! How they read as JSON, and how a connector or an operator picks its own,
//! is in the [`origin`](super::origin) module.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::base64;

/// Named values in the order they were added, each name once: a
/// connector's coordinates or an operator's details.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fields(Vec<(String, FieldValue)>);

impl Fields {
    /// No fields.
    pub fn new() -> Fields {
        Fields::default()
    }

    /// These fields and `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Fields {
        self.insert(name, value);
        self
    }

    /// Sets `name` to `value`: in its place if it is already here (the
    /// value replaced), else after the others.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<FieldValue>) {
        let (name, value) = (name.into(), value.into());
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// How many fields there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<FieldValue>> FromIterator<(N, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Fields {
        let mut fields = Fields::new();
        for (name, value) in iter {
            fields.insert(name, value);
        }
        fields
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Fields, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of named fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::new();
                while let Some((name, value)) = map.next_entry::<String, FieldValue>()? {
                    fields.insert(name, value);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// The value of a field: an integer, a text or bytes (see the
/// [origin module docs](super::origin) for its JSON).
///
/// An integer is one value whatever type it was made from: `3u32`, `3u64`
/// and `3i64` are equal, as they are once written as JSON.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldValue(Repr);

/// A [`FieldValue`]; a non-negative integer is always `Unsigned`, so each
/// value has one representation.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
enum Repr {
    Unsigned(u64),
    Negative(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl FieldValue {
    /// Bytes, kept exactly (a Kafka message's key).
    pub fn bytes(bytes: &[u8]) -> FieldValue {
        FieldValue(Repr::Bytes(bytes.to_vec()))
    }

    /// The integer, if it is one in `u64`'s range.
    pub fn as_u64(&self) -> Option<u64> {
        match self.0 {
            Repr::Unsigned(n) => Some(n),
            _ => None,
        }
    }

    /// The integer, if it is one in `i64`'s range.
    pub fn as_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Unsigned(n) => i64::try_from(n).ok(),
            Repr::Negative(n) => Some(n),
            _ => None,
        }
    }

    /// The text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes, if they are bytes (not a text).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::Bytes(bytes) => Some(bytes),
            _ => None,
        }
    }
}

impl From<u64> for FieldValue {
    fn from(n: u64) -> FieldValue {
        FieldValue(Repr::Unsigned(n))
    }
}

impl From<i64> for FieldValue {
    fn from(n: i64) -> FieldValue {
        match u64::try_from(n) {
            Ok(n) => FieldValue(Repr::Unsigned(n)),
            Err(_) => FieldValue(Repr::Negative(n)),
        }
    }
}

macro_rules! from_integer {
    ($wide:ty: $($t:ty),*) => {$(
        impl From<$t> for FieldValue {
            fn from(n: $t) -> FieldValue {
                FieldValue::from(<$wide>::from(n))
            }
        }
    )*};
}
from_integer!(u64: u8, u16, u32);
from_integer!(i64: i8, i16, i32);

impl From<usize> for FieldValue {
    fn from(n: usize) -> FieldValue {
        // usize is at most 64 bits on every target weir builds for.
        FieldValue::from(n as u64)
    }
}

impl From<&str> for FieldValue {
    fn from(text: &str) -> FieldValue {
        FieldValue(Repr::Text(text.to_string()))
    }
}

impl From<String> for FieldValue {
    fn from(text: String) -> FieldValue {
        FieldValue(Repr::Text(text))
    }
}

impl From<&String> for FieldValue {
    fn from(text: &String) -> FieldValue {
        FieldValue::from(text.as_str())
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Unsigned(n) => write!(f, "{n}"),
            Repr::Negative(n) => write!(f, "{n}"),
            Repr::Text(text) => write!(f, "{text}"),
            Repr::Bytes(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => write!(f, "{text:?}"),
                Err(_) => write!(f, "base64:{}", base64::encode(bytes)),
            },
        }
    }
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Text(text) => write!(f, "{text:?}"),
            Repr::Bytes(_) => write!(f, "bytes {self}"),
            _ => write!(f, "{self}"),
        }
    }
}

/// The key of bytes that are valid UTF-8, in JSON.
const UTF8: &str = "utf8";
/// The key of other bytes, in JSON.
const BASE64: &str = "base64";

/// In JSON (a human-readable format) a number, a string, or bytes as a map
/// of one entry; in the engine's own wire format, a tagged form.
impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return self.0.serialize(serializer);
        }
        match &self.0 {
            Repr::Unsigned(n) => serializer.serialize_u64(*n),
            Repr::Negative(n) => serializer.serialize_i64(*n),
            Repr::Text(text) => serializer.serialize_str(text),
            Repr::Bytes(bytes) => {
                let mut map = serializer.serialize_map(Some(1))?;
                match std::str::from_utf8(bytes) {
                    Ok(text) => map.serialize_entry(UTF8, text)?,
                    Err(_) => map.serialize_entry(BASE64, &base64::encode(bytes))?,
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FieldValue, D::Error> {
        if !deserializer.is_human_readable() {
            return Repr::deserialize(deserializer).map(FieldValue);
        }
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, a string, or {\"utf8\": …} or {\"base64\": …} bytes")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<FieldValue, E> {
                Ok(FieldValue::from(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<FieldValue, E> {
                Ok(FieldValue::from(n))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::from(text))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<FieldValue, E> {
                Ok(FieldValue::from(text))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                let (key, text): (String, String) = map
                    .next_entry()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let bytes = match key.as_str() {
                    UTF8 => text.into_bytes(),
                    BASE64 => base64::decode(&text).map_err(de::Error::custom)?,
                    other => return Err(de::Error::unknown_field(other, &[UTF8, BASE64])),
                };
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(FieldValue(Repr::Bytes(bytes)))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_equal_whatever_type_made_them_and_names_are_unique() {
        assert_eq!(FieldValue::from(3u8), FieldValue::from(3i64));
        assert_eq!(FieldValue::from(-3i32).as_u64(), None);
        assert_eq!(FieldValue::from(u64::MAX).as_i64(), None);
        let fields = Fields::new().with("a", 1u64).with("b", "x").with("a", 2u64);
        assert_eq!(fields.len(), 2);
        let names: Vec<&str> = fields.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(fields.get("a").and_then(FieldValue::as_u64), Some(2));
        let collected: Fields = [("a", 2u64)].into_iter().collect();
        assert_eq!(collected.get("a"), fields.get("a"));
    }

    #[test]
    fn every_value_reads_back_as_it_was_written() {
        let fields = Fields::new()
            .with("n", 7u64)
            .with("neg", -7i64)
            .with("text", "7")
            .with("utf8", FieldValue::bytes(b"7"))
            .with("binary", FieldValue::bytes(&[0xc3, 0x28]));
        let json = serde_json::to_string(&fields).expect("json");
        assert_eq!(
            json,
            r#"{"n":7,"neg":-7,"text":"7","utf8":{"utf8":"7"},"binary":{"base64":"wyg="}}"#
        );
        assert_eq!(serde_json::from_str::<Fields>(&json).expect("back"), fields);
        let wire = bincode::serialize(&fields).expect("bincode");
        assert_eq!(bincode::deserialize::<Fields>(&wire).expect("back"), fields);
        for bad in [
            r#"{"x":1.5}"#,
            r#"{"x":{"hex":"00"}}"#,
            r#"{"x":{"base64":"!!"}}"#,
            r#"{"x":null}"#,
        ] {
            assert!(serde_json::from_str::<Fields>(bad).is_err(), "{bad}");
        }
    }
}
