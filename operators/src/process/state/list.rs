//! [`ListState`]: a list of values per key.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::encoding::{decode_cell, encode_cell};
use super::{clock, live, note_expiry, ttl_ms, write_time};

/// A list of values per key, in the order they were pushed.
///
/// ```
/// use weir_operators::process::ListState;
///
/// let mut seen = ListState::new();
/// seen.push(3);
/// seen.push(5);
/// seen.retain(|v| *v > 4);
/// assert_eq!(seen.iter().copied().collect::<Vec<_>>(), vec![5]);
/// assert_eq!(seen.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct ListState<T> {
    ttl: Option<u64>,
    pub(super) items: Vec<(u64, T)>,
}

impl<T> Default for ListState<T> {
    fn default() -> Self {
        ListState {
            ttl: None,
            items: Vec::new(),
        }
    }
}

impl<T> ListState<T> {
    /// An empty list whose elements live until removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list whose elements are each forgotten `ttl` of event time
    /// after they were pushed (see the [process module docs](crate::process)).
    pub fn with_ttl(ttl: Duration) -> Self {
        ListState {
            ttl: Some(ttl_ms(ttl)),
            items: Vec::new(),
        }
    }

    /// The list's time to live, if it has one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl.map(Duration::from_millis)
    }

    /// Appends a value.
    pub fn push(&mut self, value: T) {
        let now = write_time();
        note_expiry(self.ttl, now);
        self.items.push((now, value));
    }

    /// The live values, oldest push first.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let (now, ttl) = (clock(), self.ttl);
        self.items
            .iter()
            .filter(move |(written, _)| live(now, ttl, *written))
            .map(|(_, v)| v)
    }

    /// How many live values there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no live values.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Keeps the live values for which `keep` is true (and drops expired
    /// ones); does not refresh their TTL.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let (now, ttl) = (clock(), self.ttl);
        self.items
            .retain(|(written, v)| live(now, ttl, *written) && keep(v));
    }

    /// Removes and returns the live values.
    pub fn take(&mut self) -> Vec<T> {
        let (now, ttl) = (clock(), self.ttl);
        std::mem::take(&mut self.items)
            .into_iter()
            .filter(|(written, _)| live(now, ttl, *written))
            .map(|(_, v)| v)
            .collect()
    }

    /// Removes every value.
    pub fn clear(&mut self) {
        self.items.clear();
    }
}

impl<T: Serialize> Serialize for ListState<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode_cell(
            serializer,
            self.ttl,
            self.items.iter().map(|(written, v)| (*written, v)),
        )
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ListState<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = decode_cell(deserializer)?;
        Ok(ListState {
            ttl: decoded.ttl,
            items: decoded.items,
        })
    }
}
