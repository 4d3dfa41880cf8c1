//! Typed per-key state cells: [`ValueState`], [`ListState`], [`MapState`],
//! each with an optional event-time TTL.
//!
//! A process function's per-key state is a plain struct of these cells (and
//! any other serializable fields); the operator keeps one per key, hands it
//! to every callback for that key, and checkpoints it with the key.
//!
//! # Time to live
//!
//! A cell made with `with_ttl(ttl)` forgets what was written into it `ttl`
//! of **event time** after the write: a value set (a list element pushed, a
//! map entry inserted) while the watermark stood at `w` reads as absent once
//! the watermark reaches `w + ttl`, and is then removed from memory and from
//! later checkpoints. List elements and map entries expire one by one, each
//! from its own write. Only writes refresh an entry (`set`, `push`,
//! `insert`, `get_mut`, `get_or_insert_with`); reads do not.
//!
//! The clock is the watermark the callback runs at: in `on_record` the
//! watermark the record was stamped with, in `on_timer` the timer's firing
//! watermark ([`Context::watermark`](super::Context::watermark)). Both depend
//! only on the input, so expiry is deterministic: the same on any number of
//! workers and across restores. Outside a callback (a unit test that builds a
//! state by hand) the clock stands still: writes are stamped 0 and nothing
//! expires.
//!
//! A cell's TTL is set where the key's state is made: in the state's
//! `Default`, or in [`ProcessFunction::new_state`](super::ProcessFunction::new_state)
//! (to take it from the job's configuration). It is stored with the cell, so
//! a restored cell keeps the TTL it was checkpointed with.

use std::borrow::Borrow;
use std::cell::Cell;
use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// The event-time clock of the callback running on this thread, if any.
    static NOW: Cell<Option<u64>> = const { Cell::new(None) };
    /// While the operator compacts a key's state: entries expired at this
    /// time are left out of its encoding.
    static COMPACT: Cell<Option<u64>> = const { Cell::new(None) };
    /// The earliest expiry written (or kept, when compacting) since the
    /// clock was set, if any (an expiry at `u64::MAX`, the end of time, is
    /// one too).
    static NEXT_EXPIRY: Cell<Option<u64>> = const { Cell::new(None) };
    /// Whether compacting left any entry out.
    static DROPPED: Cell<bool> = const { Cell::new(false) };
}

/// Restores the thread's clock when a callback ends (also on a panic).
struct ClockGuard {
    now: Option<u64>,
    compact: Option<u64>,
    next: Option<u64>,
}

impl ClockGuard {
    fn set(now: u64, compact: Option<u64>) -> Self {
        ClockGuard {
            now: NOW.with(|c| c.replace(Some(now))),
            compact: COMPACT.with(|c| c.replace(compact)),
            next: NEXT_EXPIRY.with(|c| c.replace(None)),
        }
    }

    /// The earliest expiry noted while the clock was set.
    fn next_expiry(&self) -> Option<u64> {
        NEXT_EXPIRY.with(Cell::get)
    }
}

impl Drop for ClockGuard {
    fn drop(&mut self) {
        NOW.with(|c| c.set(self.now));
        COMPACT.with(|c| c.set(self.compact));
        NEXT_EXPIRY.with(|c| c.set(self.next));
    }
}

/// Runs `f` (a callback) with the state clock at `now`; returns its result
/// and the earliest expiry it wrote, if any.
pub(crate) fn at<R>(now: u64, f: impl FnOnce() -> R) -> (R, Option<u64>) {
    let guard = ClockGuard::set(now, None);
    let result = f();
    let next = guard.next_expiry();
    (result, next)
}

/// Runs `f` (an encoding) with expired entries at `now` left out; returns
/// its result, the earliest expiry among the entries kept, and whether any
/// entry was left out.
fn compacting<R>(now: u64, f: impl FnOnce() -> R) -> (R, Option<u64>, bool) {
    let guard = ClockGuard::set(now, Some(now));
    DROPPED.with(|c| c.set(false));
    let result = f();
    let next = guard.next_expiry();
    (result, next, DROPPED.with(|c| c.replace(false)))
}

fn clock() -> Option<u64> {
    NOW.with(Cell::get)
}

/// The time a write made now is stamped with.
fn write_time() -> u64 {
    clock().unwrap_or(0)
}

/// Whether an entry written at `written` is still live at `now`.
fn live(now: Option<u64>, ttl: Option<u64>, written: u64) -> bool {
    match (ttl, now) {
        (Some(ttl), Some(now)) => written.saturating_add(ttl) > now,
        _ => true,
    }
}

/// Tells the operator when an entry written at `written` expires.
fn note_expiry(ttl: Option<u64>, written: u64) {
    if let Some(ttl) = ttl {
        if clock().is_some() {
            let at = written.saturating_add(ttl);
            NEXT_EXPIRY.with(|c| c.set(Some(c.get().map_or(at, |next| next.min(at)))));
        }
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    weir::watermark::millis(ttl).max(1)
}

// ---------------------------------------------------------------------------
// The encoding shared by the three cells: `(ttl, entries)`, where entries
// are `(written, item)` pairs with a TTL and bare items without one.
// ---------------------------------------------------------------------------

/// Entries to encode, leaving out expired ones while compacting.
struct Entries<I> {
    ttl: Option<u64>,
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

fn encode_cell<S, T, I>(serializer: S, ttl: Option<u64>, items: I) -> Result<S::Ok, S::Error>
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
struct Decoded<T> {
    ttl: Option<u64>,
    items: Vec<(u64, T)>,
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

fn decode_cell<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Decoded<T>, D::Error> {
    deserializer.deserialize_tuple(2, DecodedVisitor(PhantomData))
}

// ---------------------------------------------------------------------------
// ValueState
// ---------------------------------------------------------------------------

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
    value: Option<(u64, T)>,
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
    /// was last written (see the [module docs](self)).
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

// ---------------------------------------------------------------------------
// ListState
// ---------------------------------------------------------------------------

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
    items: Vec<(u64, T)>,
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
    /// after they were pushed (see the [module docs](self)).
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

// ---------------------------------------------------------------------------
// MapState
// ---------------------------------------------------------------------------

/// A map per key, iterated in key order (so iteration is deterministic).
///
/// ```
/// use weir_operators::process::MapState;
///
/// let mut last_seen = MapState::new();
/// last_seen.insert("FR", 1_000u64);
/// last_seen.insert("DE", 2_000);
/// assert_eq!(last_seen.insert("FR", 3_000), Some(1_000));
/// assert_eq!(last_seen.keys().copied().collect::<Vec<_>>(), vec!["DE", "FR"]);
/// ```
#[derive(Clone, Debug)]
pub struct MapState<K, V> {
    ttl: Option<u64>,
    entries: BTreeMap<K, (u64, V)>,
}

impl<K, V> Default for MapState<K, V> {
    fn default() -> Self {
        MapState {
            ttl: None,
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> MapState<K, V> {
    /// An empty map whose entries live until removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map whose entries are each forgotten `ttl` of event time
    /// after they were last written (see the [module docs](self)).
    pub fn with_ttl(ttl: Duration) -> Self {
        MapState {
            ttl: Some(ttl_ms(ttl)),
            entries: BTreeMap::new(),
        }
    }

    /// The map's time to live, if it has one.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl.map(Duration::from_millis)
    }

    fn is_live(&self, written: u64) -> bool {
        live(clock(), self.ttl, written)
    }

    /// Inserts or replaces an entry; returns the live value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let now = write_time();
        note_expiry(self.ttl, now);
        let old = self.entries.insert(key, (now, value))?;
        self.is_live(old.0).then_some(old.1)
    }

    /// The live value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (written, value) = self.entries.get(key)?;
        self.is_live(*written).then_some(value)
    }

    /// The live value of `key` to change in place; counts as a write.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (now, ttl) = (clock(), self.ttl);
        let written = self.entries.get(key)?.0;
        if !live(now, ttl, written) {
            self.entries.remove(key);
            return None;
        }
        let stamp = write_time();
        note_expiry(ttl, stamp);
        self.entries.get_mut(key).map(|(written, v)| {
            *written = stamp;
            v
        })
    }

    /// The value of `key`, inserting `f()` first if absent or expired;
    /// counts as a write.
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> &mut V {
        let (now, ttl) = (clock(), self.ttl);
        let stamp = write_time();
        note_expiry(ttl, stamp);
        match self.entries.entry(key) {
            btree_map::Entry::Occupied(entry) => {
                let slot = entry.into_mut();
                if !live(now, ttl, slot.0) {
                    // Expired: start over, as if absent.
                    slot.1 = f();
                }
                slot.0 = stamp;
                &mut slot.1
            }
            btree_map::Entry::Vacant(entry) => &mut entry.insert((stamp, f())).1,
        }
    }

    /// Whether `key` has a live entry.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Removes `key`; returns its live value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (written, value) = self.entries.remove(key)?;
        self.is_live(written).then_some(value)
    }

    /// The live entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (now, ttl) = (clock(), self.ttl);
        self.entries
            .iter()
            .filter(move |(_, (written, _))| live(now, ttl, *written))
            .map(|(k, (_, v))| (k, v))
    }

    /// The keys of live entries, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The values of live entries, in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// How many live entries there are.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Keeps the live entries for which `keep` is true (and drops expired
    /// ones); does not refresh their TTL.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let (now, ttl) = (clock(), self.ttl);
        self.entries
            .retain(|k, (written, v)| live(now, ttl, *written) && keep(k, v));
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl<K: Serialize, V: Serialize> Serialize for MapState<K, V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        encode_cell(
            serializer,
            self.ttl,
            self.entries
                .iter()
                .map(|(k, (written, v))| (*written, (k, v))),
        )
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for MapState<K, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let decoded: Decoded<(K, V)> = decode_cell(deserializer)?;
        Ok(MapState {
            ttl: decoded.ttl,
            entries: decoded
                .items
                .into_iter()
                .map(|(written, (k, v))| (k, (written, v)))
                .collect(),
        })
    }
}

// ---------------------------------------------------------------------------
// What the operator does with a key's whole state
// ---------------------------------------------------------------------------

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .allow_trailing_bytes()
}

/// The encoding the operator compares states with to tell a fresh (empty)
/// state.
pub(crate) fn encode_fresh<S: Serialize>(fresh: &S) -> Vec<u8> {
    use bincode::Options;
    options()
        .serialize(fresh)
        .expect("weir invariant: a process function's fresh state serializes")
}

/// Whether `state` encodes exactly as the default state (`default`). Stops
/// encoding as soon as it is longer, so a big state costs little.
pub(crate) fn is_default<S: Serialize>(state: &S, default: &[u8]) -> bool {
    use bincode::Options;
    match options().with_limit(default.len() as u64).serialize(state) {
        Ok(bytes) => bytes == default,
        Err(_) => false,
    }
}

/// `state` with every entry expired at `now` removed (by encoding it
/// without them and decoding), or `None` if nothing had expired; and the
/// earliest expiry left in it.
pub(crate) fn compact<S: Serialize + DeserializeOwned>(
    state: &S,
    now: u64,
) -> (Option<S>, Option<u64>) {
    let (bytes, next, dropped) = compacting(now, || bincode::serialize(state));
    if !dropped {
        return (None, next);
    }
    let bytes = bytes.expect("weir invariant: a process function's state serializes");
    let state = bincode::deserialize(&bytes)
        .expect("weir invariant: a process function's state decodes from its own encoding");
    (Some(state), next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Serialize, Deserialize)]
    struct S {
        value: ValueState<u32>,
        list: ListState<String>,
        map: MapState<u8, i64>,
    }

    fn with_ttl() -> S {
        S {
            value: ValueState::with_ttl(Duration::from_millis(100)),
            list: ListState::with_ttl(Duration::from_millis(100)),
            map: MapState::with_ttl(Duration::from_millis(100)),
        }
    }

    #[test]
    fn cells_round_trip_with_and_without_ttl() {
        for mut s in [S::default(), with_ttl()] {
            at(50, || {
                s.value.set(7);
                s.list.push("a".into());
                s.map.insert(1, -1);
            });
            let back: S =
                bincode::deserialize(&bincode::serialize(&s).expect("encodes")).expect("decodes");
            at(60, || {
                assert_eq!(back.value.get(), Some(&7));
                assert_eq!(back.list.iter().collect::<Vec<_>>(), vec!["a"]);
                assert_eq!(back.map.get(&1), Some(&-1));
            });
            assert_eq!(back.value.ttl(), s.value.ttl());
        }
    }

    #[test]
    fn entries_expire_ttl_after_their_write() {
        let mut s = with_ttl();
        let ((), next) = at(1_000, || {
            s.value.set(1);
            s.list.push("old".into());
            s.map.insert(1, 10);
        });
        assert_eq!(next, Some(1_100));
        let ((), next) = at(1_050, || {
            s.list.push("new".into());
            s.map.insert(2, 20);
        });
        assert_eq!(next, Some(1_150));
        at(1_099, || {
            assert_eq!(s.value.get(), Some(&1));
            assert_eq!(s.list.len(), 2);
        });
        at(1_100, || {
            assert_eq!(s.value.get(), None);
            assert!(!s.value.is_set());
            assert_eq!(s.list.iter().collect::<Vec<_>>(), vec!["new"]);
            assert_eq!(s.map.keys().copied().collect::<Vec<_>>(), vec![2]);
            assert_eq!(s.map.get(&1), None);
        });
        // Compacting drops what expired, keeps the rest and its expiry.
        assert!(compact(&s, 1_099).0.is_none(), "nothing expired yet");
        let (compacted, next) = compact(&s, 1_100);
        let compacted = compacted.expect("entries expired");
        assert_eq!(next, Some(1_150));
        assert_eq!(compacted.list.items.len(), 1);
        assert_eq!(compacted.map.entries.len(), 1);
        assert!(compacted.value.value.is_none());
        let (empty, next) = compact(&compacted, 1_150);
        let empty = empty.expect("entries expired");
        assert_eq!(next, None);
        assert!(is_default(
            &empty,
            &bincode::serialize(&with_ttl()).expect("encodes")
        ));
    }

    #[test]
    fn writes_refresh_reads_do_not() {
        let mut s = with_ttl();
        at(0, || s.map.insert(1, 1));
        at(90, || {
            let _ = s.map.get(&1);
            let _ = s.value.get();
        });
        at(99, || {
            if let Some(v) = s.map.get_mut(&1) {
                *v += 1;
            }
        });
        at(150, || assert_eq!(s.map.get(&1), Some(&2)));
        at(198, || assert_eq!(s.map.get(&1), Some(&2)));
        at(199, || assert_eq!(s.map.get(&1), None));
        // An expired value is replaced, not updated, by get_or_insert_with.
        at(300, || *s.map.get_or_insert_with(1, || 40) += 2);
        at(301, || assert_eq!(s.map.get(&1), Some(&42)));
    }

    #[test]
    fn ttls_near_the_end_of_time_saturate() {
        const MAX: u64 = u64::MAX;
        // (written, ttl, now, live?): an entry lives while written + ttl >
        // now, with the sum saturating at MAX (it then lives until the end
        // of time, when the watermark reaches MAX).
        let cases = [
            (0, 1, 0, true),
            (0, 1, 1, false),
            (MAX - 10, 5, MAX - 6, true),
            (MAX - 10, 5, MAX - 5, false),
            (MAX - 10, 10, MAX - 1, true),
            (MAX - 10, 10, MAX, false),
            (MAX - 10, 100, MAX - 1, true),
            (MAX - 10, 100, MAX, false),
            (MAX, 1, MAX, false),
            (1 << 63, MAX, MAX - 1, true),
            (1 << 63, MAX, MAX, false),
        ];
        for (written, ttl, now, expected) in cases {
            assert_eq!(
                live(Some(now), Some(ttl), written),
                expected,
                "written {written} ttl {ttl} now {now}"
            );
        }
        assert_eq!(
            ttl_ms(Duration::MAX),
            MAX,
            "a TTL too long for u64 ms saturates"
        );
        assert_eq!(ttl_ms(Duration::ZERO), 1);
        // A write near the end of time expires at MAX, not at a wrapped time.
        let mut s = with_ttl();
        let ((), next) = at(MAX - 10, || s.value.set(1));
        assert_eq!(next, Some(MAX));
        at(MAX - 1, || assert_eq!(s.value.get(), Some(&1)));
        at(MAX, || assert_eq!(s.value.get(), None));
        let (compacted, next) = compact(&s, MAX);
        assert!(compacted.is_some_and(|c| c.value.value.is_none()));
        assert_eq!(next, None);
    }

    #[test]
    fn a_default_state_is_recognised_cheaply() {
        let default = encode_fresh(&S::default());
        let mut s = S::default();
        assert!(is_default(&s, &default));
        s.list.push("x".repeat(10_000));
        assert!(!is_default(&s, &default));
        s.list.clear();
        assert!(is_default(&s, &default));
    }
}
