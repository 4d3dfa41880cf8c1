//! Decoding a CSV record into a serde type straight from the parser's field
//! bytes: no copy into a `csv::ByteRecord`, integers parsed from the bytes,
//! columns matched to fields by the header's names.
//!
//! A struct is decoded as a map from the header's names to the fields (so
//! columns may come in any order, and columns the type does not name are
//! skipped); a tuple or sequence takes the fields in column order. An error
//! names the column (`field `ts_ms`: invalid digit found in string`).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// Why a CSV record could not be decoded, naming the column where there is
/// one (`field `ts_ms`: invalid digit found in string`): bad data, the
/// reason its dead letter carries, not a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

/// Decodes the fields `fields[ends[i-1] + gap..ends[i]]` against `headers`
/// (`gap` 0: fields back to back, as the CSV parser writes them; 1: a line
/// split at its commas, `ends` being the commas and the line's end).
pub(crate) fn decode<T: DeserializeOwned, H: AsRef<str>>(
    headers: &[H],
    fields: &[u8],
    ends: &[usize],
    gap: usize,
) -> Result<T, Error> {
    if ends.len() != headers.len() {
        return Err(Error(format!(
            "expected {} fields ({}), found {}",
            headers.len(),
            headers
                .iter()
                .map(AsRef::as_ref)
                .collect::<Vec<_>>()
                .join(","),
            ends.len()
        )));
    }
    let mut record = Record {
        headers,
        fields,
        ends,
        gap,
        next: 0,
        start: 0,
    };
    T::deserialize(&mut record)
}

struct Record<'a, H> {
    headers: &'a [H],
    fields: &'a [u8],
    ends: &'a [usize],
    /// Bytes between one field's end and the next one's start.
    gap: usize,
    /// The next column to hand out.
    next: usize,
    /// Where its bytes start.
    start: usize,
}

impl<'a, H: AsRef<str>> Record<'a, H> {
    /// Decodes the next column with `seed`; its errors name the column.
    fn next_field<'de, S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        let Some(&end) = self.ends.get(self.next) else {
            return Ok(None);
        };
        let field = &self.fields[self.start..end];
        let name = self.headers[self.next].as_ref();
        self.start = end + self.gap;
        self.next += 1;
        seed.deserialize(Field(field))
            .map(Some)
            .map_err(|Error(message)| {
                if message.starts_with("field `") {
                    Error(message)
                } else {
                    Error(format!("field `{name}`: {message}"))
                }
            })
    }
}

impl<'de, H: AsRef<str>> de::Deserializer<'de> for &mut Record<'_, H> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(self)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_seq(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct enum identifier
        ignored_any
    }
}

impl<'de, H: AsRef<str>> de::MapAccess<'de> for Record<'_, H> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.headers.get(self.next) {
            None => Ok(None),
            Some(name) => seed
                .deserialize(name.as_ref().into_deserializer())
                .map(Some),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.next_field(seed)?
            .ok_or_else(|| Error("a value without a column".into()))
    }
}

impl<'de, H: AsRef<str>> de::SeqAccess<'de> for Record<'_, H> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.next_field(seed)
    }
}

/// One field's bytes.
struct Field<'a>(&'a [u8]);

impl<'a> Field<'a> {
    fn text(&self) -> Result<&'a str, Error> {
        std::str::from_utf8(self.0).map_err(|e| Error(format!("invalid UTF-8: {e}")))
    }

    /// The text without surrounding spaces, for numbers and booleans.
    fn trimmed(&self) -> Result<&'a str, Error> {
        self.text().map(str::trim)
    }

    fn parse<N: std::str::FromStr>(&self) -> Result<N, Error>
    where
        N::Err: fmt::Display,
    {
        self.trimmed()?
            .parse()
            .map_err(|e: N::Err| Error(e.to_string()))
    }
}

/// An unsigned integer from ASCII digits, without a detour through `str`;
/// anything else is left to `str::parse` (for its error).
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

macro_rules! parse_number {
    ($($method:ident => $visit:ident($ty:ty)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>()?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Field<'_> {
    type Error = Error;

    /// Self-describing input: a number if it reads as one, else text.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let text = self.trimmed()?;
        if let Ok(n) = text.parse::<u64>() {
            visitor.visit_u64(n)
        } else if let Ok(n) = text.parse::<i64>() {
            visitor.visit_i64(n)
        } else if let Ok(x) = text.parse::<f64>() {
            visitor.visit_f64(x)
        } else {
            visitor.visit_str(self.text()?)
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match digits(self.0) {
            Some(n) => visitor.visit_u64(n),
            None => visitor.visit_u64(self.parse::<u64>()?),
        }
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match digits(self.0).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => visitor.visit_u32(n),
            None => visitor.visit_u32(self.parse::<u32>()?),
        }
    }

    parse_number! {
        deserialize_i8 => visit_i8(i8),
        deserialize_i16 => visit_i16(i16),
        deserialize_i32 => visit_i32(i32),
        deserialize_i64 => visit_i64(i64),
        deserialize_i128 => visit_i128(i128),
        deserialize_u8 => visit_u8(u8),
        deserialize_u16 => visit_u16(u16),
        deserialize_u128 => visit_u128(u128),
        deserialize_f32 => visit_f32(f32),
        deserialize_f64 => visit_f64(f64),
        deserialize_bool => visit_bool(bool),
        deserialize_char => visit_char(char),
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bytes(self.0)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bytes(self.0)
    }

    /// An empty field is `None`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        if self.0.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A unit variant by name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.trimmed()?.into_deserializer())
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.text()?)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! { seq tuple tuple_struct map struct }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn fields(values: &[&str]) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    fn headers(names: &[&str]) -> Vec<Box<str>> {
        names.iter().map(|n| Box::from(*n)).collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        id: u64,
        small: u32,
        delta: i64,
        value: f64,
        name: String,
        note: Option<String>,
        flag: bool,
    }

    #[test]
    fn structs_decode_by_column_name_in_any_order_skipping_unknown_columns() {
        let h = headers(&[
            "flag", "extra", "value", "name", "id", "note", "delta", "small",
        ]);
        let (b, e) = fields(&[
            "true",
            "?",
            "-2.5",
            "a,b",
            "18446744073709551615",
            "",
            "-7",
            "42",
        ]);
        let row: Row = decode(&h, &b, &e, 0).expect("decodes");
        assert_eq!(
            row,
            Row {
                id: u64::MAX,
                small: 42,
                delta: -7,
                value: -2.5,
                name: "a,b".into(),
                note: None,
                flag: true
            }
        );
        let (b, e) = fields(&["true", "?", "1", "x", " 5 ", "n", "0", "1"]);
        let row: Row = decode(&h, &b, &e, 0).expect("decodes, spaces around numbers");
        assert_eq!((row.id, row.note.as_deref()), (5, Some("n")));
    }

    #[test]
    fn errors_name_the_column() {
        let h = headers(&[
            "flag", "extra", "value", "name", "id", "note", "delta", "small",
        ]);
        for (at, bad, expected) in [
            (4, "18446744073709551616", "field `id`: number too large"),
            (4, "soon", "field `id`: invalid digit found in string"),
            (7, "4294967296", "field `small`: number too large"),
            (2, "x", "field `value`: invalid float literal"),
            (
                0,
                "yes",
                "field `flag`: provided string was not `true` or `false`",
            ),
        ] {
            let mut values = vec!["true", "?", "1", "x", "5", "", "0", "1"];
            values[at] = bad;
            let (b, e) = fields(&values);
            let err = decode::<Row, _>(&h, &b, &e, 0).expect_err(bad).to_string();
            assert!(err.starts_with(expected), "{bad}: {err}");
        }
        let (b, e) = fields(&["1", "2"]);
        let err = decode::<Row, _>(&h, &b, &e, 0)
            .expect_err("short")
            .to_string();
        assert!(err.starts_with("expected 8 fields"), "{err}");
        let h = headers(&["id", "value"]);
        let err = decode::<Row, _>(&h, &b, &e, 0)
            .expect_err("missing columns")
            .to_string();
        assert!(err.starts_with("missing field"), "{err}");
        let (b, e) = (vec![0xff, b'1'], vec![1, 2]);
        let err = decode::<(String, u64), _>(&h, &b, &e, 0)
            .expect_err("binary")
            .to_string();
        assert!(err.starts_with("field `id`: invalid UTF-8"), "{err}");
    }

    #[test]
    fn tuples_take_columns_in_order() {
        let h = headers(&["a", "b", "c"]);
        let (b, e) = fields(&["1", "x", "2.5"]);
        let t: (u64, String, f64) = decode(&h, &b, &e, 0).expect("decodes");
        assert_eq!(t, (1, "x".into(), 2.5));
        // A line split at its commas.
        let line = b"1,x,2.5";
        let t: (u64, String, f64) = decode(&h, line, &[1, 3, 7], 1).expect("decodes");
        assert_eq!(t, (1, "x".into(), 2.5));
    }
}
