//! Where a dead letter came from: a connector's coordinates or an operator's
//! reason, in named fields the engine does not interpret.
//!
//! An [`Origin`] is one of two things, and the engine knows nothing more:
//!
//! * [`Origin::Source`]: a record a connector read, named by the connector
//!   (`file`, `split`, `kafka`, …) and its coordinates in [`Fields`], in the
//!   order the connector gives them. As JSON, the connector's name is the key:
//!
//!   ```json
//!   {"file": {"path": "in.csv", "line": 7, "offset": 312}}
//!   {"split": {"split": 0, "offset": 4}}
//!   {"kafka": {"topic": "payments", "partition": 3, "offset": 1234, "key": {"utf8": "card-17"}, "timestamp": 1700000000000}}
//!   ```
//!
//! * [`Origin::Operator`]: a record an operator refused, with the operator's
//!   name, a kind naming the reason (`late`, `out_of_range`, …), the record's
//!   event time and the watermark it was read at when the operator knows them,
//!   and any details of its own:
//!
//!   ```json
//!   {"operator": {"name": "per_second", "kind": "late", "event_time": null, "watermark": 1200, "details": {"window_start": 0, "window_end": 1000}}}
//!   {"operator": {"name": "per_minute", "kind": "out_of_range", "event_time": 18446744073709551615, "watermark": null, "details": {}}}
//!   ```
//!
//!   Every operator origin has these five keys, so a tool can count the late
//!   records of every operator by `kind` alone.
//!
//! ## Adding a connector's or an operator's own
//!
//! Nothing in the engine changes. A connector picks a name for itself, which
//! is the key of its origins in JSON, and the names and order of its
//! coordinates, which it documents:
//!
//! ```
//! use weir::dead_letter::{FieldValue, Fields, Origin};
//!
//! let origin = Origin::source(
//!     "kafka",
//!     Fields::new()
//!         .with("topic", "payments")
//!         .with("partition", 3u32)
//!         .with("offset", 1234i64)
//!         .with("key", FieldValue::bytes(b"card-17"))
//!         .with("timestamp", 1_700_000_000_000i64),
//! );
//! assert_eq!(
//!     origin.coordinate("kafka", "partition").and_then(FieldValue::as_u64),
//!     Some(3)
//! );
//! ```
//!
//! The record's own bytes (a Kafka message's value) belong in the dead
//! letter's `raw`, not in a coordinate. `operator` is the one name a
//! connector may not take: it is the key of operator origins.
//!
//! An operator builds an [`Origin::Operator`] with a kind of its own (a
//! short `snake_case` word; `late` for a record whose event time the
//! operator had already passed) and any details in [`Fields`].
//!
//! A field's value ([`FieldValue`]) is an integer, a text or bytes; in JSON an
//! integer is a number, a text a string, and bytes `{"utf8": "…"}` when they
//! are valid UTF-8 or `{"base64": "…"}` (standard, padded) otherwise, so
//! every value reads back as it was written.

use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use super::fields::{FieldValue, Fields};

/// Where a dead letter came from: see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A record a connector read, at the connector's coordinates.
    Source {
        /// The connector's name (`file`, `split`, …): the origin's key in
        /// JSON, telling what its coordinates mean. Never `operator`.
        connector: String,
        /// The coordinates, in the connector's order.
        at: Fields,
    },
    /// A record an operator refused.
    Operator {
        /// The operator's name in the job.
        name: String,
        /// The reason, as a short `snake_case` word (`late`, `out_of_range`).
        kind: String,
        /// The record's event time (ms), if the operator knows it.
        event_time: Option<u64>,
        /// The watermark the record was stamped with when read (ms), if the
        /// reason involves it.
        watermark: Option<u64>,
        /// Anything else the operator says about it (a window's bounds).
        details: Fields,
    },
}

/// The JSON key of operator origins, which no connector may take.
const OPERATOR: &str = "operator";

impl Origin {
    /// A record `connector` read at `at`.
    pub fn source(connector: impl Into<String>, at: Fields) -> Origin {
        let connector = connector.into();
        debug_assert_ne!(connector, OPERATOR, "`operator` is not a connector name");
        Origin::Source { connector, at }
    }

    /// The engine's own coordinates of a record: the `offset`-th record
    /// (0-based) of split `split`, for connectors with no coordinates of their
    /// own and for records the engine refuses after reading them. As JSON,
    /// `{"split": {"split": 0, "offset": 4}}`.
    pub fn split(split: u32, offset: u64) -> Origin {
        Origin::source(
            "split",
            Fields::new().with("split", split).with("offset", offset),
        )
    }

    /// The coordinate `name` of a record read by `connector`; `None` for
    /// another connector's or an operator's origin.
    pub fn coordinate(&self, connector: &str, name: &str) -> Option<&FieldValue> {
        match self {
            Origin::Source { connector: c, at } if c == connector => at.get(name),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Source { connector, at } => {
                write!(f, "{connector}")?;
                for (name, value) in at.iter() {
                    write!(f, " {name}={value}")?;
                }
                Ok(())
            }
            Origin::Operator {
                name,
                kind,
                event_time,
                watermark,
                details,
            } => {
                write!(f, "{kind} in {name}")?;
                let mut sep = " (";
                if let Some(t) = event_time {
                    write!(f, "{sep}event time {t} ms")?;
                    sep = ", ";
                }
                if let Some(w) = watermark {
                    write!(f, "{sep}watermark {w} ms")?;
                    sep = ", ";
                }
                for (name, value) in details.iter() {
                    write!(f, "{sep}{name}={value}")?;
                    sep = ", ";
                }
                if sep == ", " {
                    write!(f, ")")?;
                }
                Ok(())
            }
        }
    }
}

/// An operator origin as written under its `operator` key.
#[derive(Serialize)]
struct OperatorRef<'a> {
    name: &'a str,
    kind: &'a str,
    event_time: Option<u64>,
    watermark: Option<u64>,
    details: &'a Fields,
}

/// An operator origin as read back (the same fields as [`OperatorRef`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorWire {
    name: String,
    kind: String,
    event_time: Option<u64>,
    watermark: Option<u64>,
    details: Fields,
}

/// An origin is a map of one entry, in JSON and in the engine's own wire
/// format alike: the connector's name and its coordinates, or `operator`
/// and the operator's fields.
impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Origin::Source { connector, at } => map.serialize_entry(connector, at)?,
            Origin::Operator {
                name,
                kind,
                event_time,
                watermark,
                details,
            } => map.serialize_entry(
                OPERATOR,
                &OperatorRef {
                    name,
                    kind,
                    event_time: *event_time,
                    watermark: *watermark,
                    details,
                },
            )?,
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Origin, D::Error> {
        struct OriginVisitor;
        impl<'de> Visitor<'de> for OriginVisitor {
            type Value = Origin;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an origin: a map of one connector's or `operator`'s fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Origin, A::Error> {
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let origin = if key == OPERATOR {
                    let o: OperatorWire = map.next_value()?;
                    Origin::Operator {
                        name: o.name,
                        kind: o.kind,
                        event_time: o.event_time,
                        watermark: o.watermark,
                        details: o.details,
                    }
                } else {
                    Origin::Source {
                        connector: key,
                        at: map.next_value()?,
                    }
                };
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(origin)
            }
        }
        deserializer.deserialize_map(OriginVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips(origin: &Origin) -> serde_json::Value {
        let json = serde_json::to_string(origin).expect("json");
        let back: Origin = serde_json::from_str(&json).expect("json back");
        assert_eq!(&back, origin, "{json}");
        let wire = bincode::serialize(origin).expect("bincode");
        let back: Origin = bincode::deserialize(&wire).expect("bincode back");
        assert_eq!(&back, origin);
        serde_json::from_str(&json).expect("parses")
    }

    #[test]
    fn a_connectors_coordinates_are_its_named_fields_in_order() {
        let kafka = Origin::source(
            "kafka",
            Fields::new()
                .with("topic", "payments")
                .with("partition", 3u32)
                .with("offset", 1234i64)
                .with("key", FieldValue::bytes(b"card-17"))
                .with("timestamp", -5i64)
                .with("header", FieldValue::bytes(&[0xff, 0x00])),
        );
        let json = round_trips(&kafka);
        assert_eq!(
            serde_json::to_string(&kafka).expect("json"),
            r#"{"kafka":{"topic":"payments","partition":3,"offset":1234,"key":{"utf8":"card-17"},"timestamp":-5,"header":{"base64":"/wA="}}}"#
        );
        assert_eq!(json["kafka"]["partition"], 3);
        assert_eq!(
            kafka
                .coordinate("kafka", "key")
                .and_then(FieldValue::as_bytes),
            Some(&b"card-17"[..])
        );
        assert_eq!(
            kafka
                .coordinate("kafka", "timestamp")
                .and_then(FieldValue::as_i64),
            Some(-5)
        );
        assert_eq!(kafka.coordinate("file", "offset"), None);
        assert_eq!(
            kafka.to_string(),
            "kafka topic=payments partition=3 offset=1234 key=\"card-17\" timestamp=-5 header=base64:/wA="
        );
    }

    #[test]
    fn the_engines_split_coordinates_keep_their_json() {
        let split = Origin::split(1, 4);
        round_trips(&split);
        assert_eq!(
            serde_json::to_string(&split).expect("json"),
            r#"{"split":{"split":1,"offset":4}}"#
        );
        assert_eq!(split.to_string(), "split split=1 offset=4");
    }

    #[test]
    fn an_operators_origin_has_its_five_keys_whatever_it_knows() {
        let late = Origin::Operator {
            name: "per_second".into(),
            kind: "late".into(),
            event_time: None,
            watermark: Some(1_200),
            details: Fields::new()
                .with("window_start", 0u64)
                .with("window_end", 1_000u64),
        };
        round_trips(&late);
        assert_eq!(
            serde_json::to_string(&late).expect("json"),
            r#"{"operator":{"name":"per_second","kind":"late","event_time":null,"watermark":1200,"details":{"window_start":0,"window_end":1000}}}"#
        );
        assert_eq!(
            late.to_string(),
            "late in per_second (watermark 1200 ms, window_start=0, window_end=1000)"
        );
        let bare = Origin::Operator {
            name: "f".into(),
            kind: "refused".into(),
            event_time: None,
            watermark: None,
            details: Fields::new(),
        };
        round_trips(&bare);
        assert_eq!(bare.to_string(), "refused in f");
    }

    #[test]
    fn malformed_origins_are_refused_not_guessed() {
        for bad in [
            r#"{}"#,
            r#"{"file":{"line":1},"split":{"split":0}}"#,
            r#"{"operator":{"name":"w"}}"#,
            r#"{"file":{"line":1.5}}"#,
            r#"{"file":{"key":{"hex":"00"}}}"#,
            r#"{"file":{"key":{"base64":"!!"}}}"#,
        ] {
            assert!(serde_json::from_str::<Origin>(bad).is_err(), "{bad}");
        }
    }
}
