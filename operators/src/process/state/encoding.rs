//! The encoding shared by the three cells: `(ttl, entries)`, where entries
//! are `(written, item)` pairs with a TTL and bare items without one.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{live, note_expiry, COMPACT, DROPPED};

struct Entries<I> {
    pub(super) ttl: Option<u64>,
    items: I,
}

impl<T: Serialize, I: Iterator<Item = (u64, T)> + Clone> Serialize for Entries<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let compact = COMPACT.with(Cell::get);
        let keep = |written: u64| compact.is_none() || live(compact, self.ttl, written);
        let len = self.items.clone().filter(|(w, _)| keep(*w)).count();
        if compact.is_some() && len < self.items.clone().count() {
            DROPPED.with(|c| c.set(true));
        }
        let mut seq = serializer.serialize_seq(Some(len))?;
        for (written, item) in self.items.clone().filter(|(w, _)| keep(*w)) {
            if self.ttl.is_some() {
                if compact.is_some() {
                    note_expiry(self.ttl, written);
                }
                seq.serialize_element(&(written, item))?;
            } else {
                seq.serialize_element(&item)?;
            }
        }
        seq.end()
    }
}

pub(super) fn encode_cell<S, T, I>(
    serializer: S,
    ttl: Option<u64>,
    items: I,
) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
    I: Iterator<Item = (u64, T)> + Clone,
{
    let mut tuple = serializer.serialize_tuple(2)?;
    tuple.serialize_element(&ttl)?;
    tuple.serialize_element(&Entries { ttl, items })?;
    tuple.end()
}

/// A decoded cell: its TTL and its entries with their write times.
pub(super) struct Decoded<T> {
    pub(super) ttl: Option<u64>,
    pub(super) items: Vec<(u64, T)>,
}

struct DecodedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for DecodedVisitor<T> {
    type Value = Decoded<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a state cell: (ttl, entries)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded<T>, A::Error> {
        let ttl: Option<u64> = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let items = if ttl.is_some() {
            seq.next_element::<Vec<(u64, T)>>()?
        } else {
            seq.next_element::<Vec<T>>()?
                .map(|items| items.into_iter().map(|item| (0, item)).collect())
        };
        let items = items.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Ok(Decoded { ttl, items })
    }
}

pub(super) fn decode_cell<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Decoded<T>, D::Error> {
    deserializer.deserialize_tuple(2, DecodedVisitor(PhantomData))
}
