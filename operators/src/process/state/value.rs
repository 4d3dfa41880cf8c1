//! [`ValueState`]: one value per key.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::encoding::{decode_cell, encode_cell};
use super::{clock, live, note_expiry, ttl_ms, write_time};

/// One value per key (or none).
///
/// ```
/// use weir_operators::process::ValueState;
///
/// let mut last = ValueState::new();
/// assert_eq!(last.get(), None);
/// last.set("FR");
/// assert_eq!(last.get(), Some(&"FR"));
/// assert_eq!(last.take(), Some("FR"));
/// assert!(!last.is_set());
/// ```
#[derive(Clone, Debug)]
pub struct ValueState<T> {
    ttl: Option<u64>,
    pub(super) value: Option<(u64, T)>,
}

impl<T> Default for ValueState<T> {
    fn default() -> Self {
        ValueState {
            ttl: None,
            value: None,
        }
    }
}

impl<T> ValueState<T> {
    /// An empty cell whose values live until replaced or cleared.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cell whose value is forgotten `ttl` of event time after it
    /// was last written (see the [process module docs](crate::process)).
    pub fn with_ttl(ttl: Duration) -> Self {
        ValueState {
            ttl: Some(ttl_ms(ttl)),
            value: None,
        }
    }

    /// The cell's time to live, if it has one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl.map(Duration::from_millis)
    }

    fn live(&self) -> bool {
        self.value
            .as_ref()
            .is_some_and(|(written, _)| live(clock(), self.ttl, *written))
    }

    /// The value, unless unset or expired.
    pub fn get(&self) -> Option<&T> {
        if self.live() {
            self.value.as_ref().map(|(_, v)| v)
        } else {
            None
        }
    }

    /// The value to change in place; counts as a write (refreshes the TTL).
    pub fn get_mut(&mut self) -> Option<&mut T> {
        if !self.live() {
            self.value = None;
            return None;
        }
        let now = write_time();
        note_expiry(self.ttl, now);
        self.value.as_mut().map(|(written, v)| {
            *written = now;
            v
        })
    }

    /// The value, set to `f()` first if unset or expired; counts as a write.
    pub fn get_or_insert_with(&mut self, f: impl FnOnce() -> T) -> &mut T {
        if !self.live() {
            self.value = None;
        }
        let now = write_time();
        note_expiry(self.ttl, now);
        let (written, value) = self.value.get_or_insert_with(|| (now, f()));
        *written = now;
        value
    }

    /// Whether a live value is set.
    pub fn is_set(&self) -> bool {
        self.live()
    }

    /// Sets the value.
    pub fn set(&mut self, value: T) {
        let now = write_time();
        note_expiry(self.ttl, now);
        self.value = Some((now, value));
    }

    /// Removes and returns the value, unless unset or expired.
    pub fn take(&mut self) -> Option<T> {
        let live = self.live();
        self.value.take().filter(|_| live).map(|(_, v)| v)
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.value = None;
    }
}

impl<T: Serialize> Serialize for ValueState<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode_cell(
            serializer,
            self.ttl,
            self.value.iter().map(|(written, v)| (*written, v)),
        )
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ValueState<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded = decode_cell(deserializer)?;
        Ok(ValueState {
            ttl: decoded.ttl,
            value: decoded.items.into_iter().next(),
        })
    }
}
