//! What an operator implements on the keyed-state primitive: the
//! [`KeyedLogic`] trait, and the [`Emit`] buffer its calls emit into. See
//! the [parent module](super) for what the primitive guarantees.

use crate::data::Data;
use crate::time::{Epoch, EventTime};

/// What a stateful operator emits from one call: results at event times, and
/// late records at their stamps.
pub struct Emit<O, L> {
    /// (epoch, emit at, event time, result)
    pub(super) out: Vec<(Epoch, EventTime, EventTime, O)>,
    /// (epoch, stamp, event time, late record)
    pub(super) late: Vec<(Epoch, EventTime, EventTime, L)>,
    /// How many of `late` were rejected for another reason than lateness
    /// ([`Emit::reject`]): not counted as late. Each one is also an entry
    /// of `late`, so this is at most `late.len()`.
    pub(super) rejected: usize,
    /// The epoch what is emitted now belongs to (set by the primitive): the
    /// open epoch, or a late record's own epoch if later. Never an epoch
    /// already checkpointed, or a restore would emit it again.
    pub(super) epoch: Epoch,
}

impl<O, L> Emit<O, L> {
    /// An empty emitter (for driving a logic directly, as tests do).
    pub fn new() -> Self {
        Emit {
            out: Vec::new(),
            late: Vec::new(),
            rejected: 0,
            epoch: Epoch(0),
        }
    }

    /// Emits a result stamped `at`, which must be at least the operator's
    /// `next_fire()` while the result was pending (a window's end plus
    /// allowed lateness); `event_time` is the event time the result carries
    /// downstream (a window's last ms).
    pub fn output(&mut self, at: EventTime, event_time: EventTime, value: O) {
        self.out.push((self.epoch, at, event_time, value));
    }

    /// Emits a late record; `stamp` is the stamp the record carried and
    /// `event_time` its event time.
    pub fn late(&mut self, stamp: EventTime, event_time: EventTime, value: L) {
        self.late.push((self.epoch, stamp, event_time, value));
    }

    /// Emits, on the late output, a record the logic refuses for another
    /// reason than lateness: one whose event time it cannot represent (a
    /// window that would end past `u64::MAX`). `stamp` is the stamp the
    /// record carried. The job's late counter does not count it.
    pub fn reject(&mut self, stamp: EventTime, event_time: EventTime, value: L) {
        self.late.push((self.epoch, stamp, event_time, value));
        self.rejected += 1;
    }

    /// Takes the results emitted so far: (emit at, event time, result).
    pub fn drain_outputs(&mut self) -> impl Iterator<Item = (EventTime, EventTime, O)> + '_ {
        self.out.drain(..).map(|(_, at, t, v)| (at, t, v))
    }

    /// Takes the late records emitted so far: (stamp, event time, record).
    pub fn drain_late(&mut self) -> impl Iterator<Item = (EventTime, EventTime, L)> + '_ {
        self.rejected = 0;
        self.late.drain(..).map(|(_, at, t, v)| (at, t, v))
    }
}

impl<O, L> Default for Emit<O, L> {
    fn default() -> Self {
        Self::new()
    }
}

/// The keys a checkpoint writes, each with its encoded state now or as
/// removed, all encoded into one buffer: a flush of a hundred thousand keys
/// allocates nothing per key.
pub struct Changes<K> {
    /// (key, start and end of its state in `bytes`; `None`: removed)
    entries: Vec<(K, Option<(usize, usize)>)>,
    bytes: Vec<u8>,
}

impl<K> Default for Changes<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Changes<K> {
    /// No changes.
    pub fn new() -> Self {
        Changes {
            entries: Vec::new(),
            bytes: Vec::new(),
        }
    }

    /// `key`'s state now, written by `encode` (which appends to the buffer
    /// it is given).
    pub fn put(&mut self, key: K, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        self.entries.push((key, Some((start, self.bytes.len()))));
    }

    /// `key`'s state now, as bytes.
    pub fn put_bytes(&mut self, key: K, state: &[u8]) {
        self.put(key, |out| out.extend_from_slice(state));
    }

    /// `key` has no state left.
    pub fn remove(&mut self, key: K) {
        self.entries.push((key, None));
    }

    /// How many keys changed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key changed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every change, keeping the memory.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
    }

    /// Every change: the key and its state (`None`: removed).
    pub fn iter(&self) -> impl Iterator<Item = (&K, Option<&[u8]>)> + '_ {
        self.entries
            .iter()
            .map(|(k, at)| (k, at.map(|(start, end)| &self.bytes[start..end])))
    }

    /// Every change with its own copy of the state (for tests).
    pub fn to_vec(&self) -> Vec<(K, Option<Vec<u8>>)>
    where
        K: Clone,
    {
        self.iter()
            .map(|(k, v)| (k.clone(), v.map(<[u8]>::to_vec)))
            .collect()
    }
}

/// The logic of a keyed stateful operator. See the module docs.
pub trait KeyedLogic<K, D>: 'static {
    /// Results.
    type Out: Data;
    /// Late records (with whatever context the operator adds).
    type Late: Data;
    /// Whether records must be applied in stamp order.
    fn ordered(&self) -> bool {
        false
    }
    /// Applies one record with its event time and its stamp (the watermark
    /// of its split when it was read).
    fn on_record(
        &mut self,
        key: K,
        event_time: EventTime,
        record: D,
        stamp: EventTime,
        emit: &mut Emit<Self::Out, Self::Late>,
    );
    /// The watermark reached `watermark`: emit what is due at or before it.
    fn on_watermark(&mut self, watermark: EventTime, emit: &mut Emit<Self::Out, Self::Late>);
    /// The earliest event time at which pending state will emit, if any.
    fn next_fire(&self) -> Option<EventTime>;

    /// How long (processing time) until the logic needs to run again even if
    /// neither input nor the watermark moves: processing-time timers. The
    /// primitive then activates the operator after that long, which calls
    /// `on_watermark` with the current watermark. Default: never.
    fn wake_after(&self) -> Option<std::time::Duration> {
        None
    }

    /// The version of the state encoding; a checkpoint written with another
    /// version is refused at restore.
    fn state_version(&self) -> u32 {
        1
    }

    /// Starts (or stops) remembering which keys change, for checkpoints.
    fn track_changes(&mut self, on: bool);

    /// Adds every key whose state changed since the last call, with its
    /// encoded state now (or as removed: the key has no state left).
    ///
    /// A key whose state only lost parts that `on_watermark` removed (a
    /// fired window) may be left out, if [`KeyedLogic::restore_watermark`]
    /// drops such parts on restore: at a high event rate nearly every key
    /// has a window firing in every epoch, and rewriting them all would
    /// make each checkpoint a full snapshot. A key left with no state should
    /// still be reported (removed), so the store forgets it.
    fn take_changes(&mut self, out: &mut Changes<K>);

    /// Before the keys of one checkpoint store are restored: when that
    /// checkpoint was taken, `on_watermark` had run with watermarks up to
    /// `watermark`, so restored state due at or before it had already been
    /// emitted and must be dropped, not emitted again. Default: nothing
    /// (every logic that reports each such change in `take_changes`).
    fn restore_watermark(&mut self, watermark: EventTime) {
        let _ = watermark;
    }

    /// Installs one key's state from a checkpoint. A restored key counts as
    /// changed while changes are tracked (a restore into a new store
    /// generation writes every restored key again; one into the same store
    /// restarts tracking afterwards).
    fn restore(&mut self, key: K, state: &[u8]) -> Result<(), String>;
}
