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

mod encoding;
mod list;
mod map;
mod value;

use std::cell::Cell;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use list::ListState;
pub use map::MapState;
pub use value::ValueState;

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

// What the operator does with a key's whole state.

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
mod tests;
