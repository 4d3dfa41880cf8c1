//! What a process function's callbacks see and do besides their key's
//! state: the key, the time, timers, outputs.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use weir::stateful::Emit;
use weir::EventTime;
use weir::{DeadLetter, Fields, Origin, Raw};

use weir::stateful::Timers;
use weir::watermark::unix_millis;

/// A result of the operator: for the main or the side output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Emitted<O, X> {
    Main(O),
    Side(X),
}

/// The wall-clock time of `ms` since the Unix epoch.
pub(crate) fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// The context of one callback of a [`ProcessFunction`](super::ProcessFunction)
/// for one key.
///
/// Results sent with [`output`](Self::output) and [`side`](Self::side)
/// carry the callback's event time ([`timestamp`](Self::timestamp)).
pub struct Context<'a, K, O, X> {
    pub(crate) key: &'a K,
    /// The process step's name, for dead letters.
    pub(crate) operator: &'a str,
    pub(crate) timestamp: u64,
    pub(crate) watermark: u64,
    pub(crate) late: bool,
    pub(crate) event: &'a mut Timers<K>,
    pub(crate) processing: &'a mut Timers<K>,
    pub(crate) emit: &'a mut Emit<Emitted<O, X>, DeadLetter>,
}

impl<K: weir::Key, O, X> Context<'_, K, O, X> {
    /// The key this callback is for.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The callback's event time (ms): the record's in `on_record`, the
    /// timer's in `on_timer`; in `on_processing_timer`, the watermark.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// The event-time watermark the callback runs at (ms): every timer due
    /// at or before it has fired, and every on-time record with an event
    /// time before it has been seen. In `on_record` it is the watermark the
    /// record was stamped with at its source; in `on_timer` the point the
    /// timer fired at (its time + 1, or later if it was registered late).
    /// Deterministic, except in `on_processing_timer`.
    pub fn watermark(&self) -> u64 {
        self.watermark
    }

    /// In `on_record`: whether the record is late, its event time behind
    /// the watermark it was stamped with (timers for its time may already
    /// have fired). Always false in timer callbacks. See the module docs'
    /// *Late records*.
    pub fn is_late(&self) -> bool {
        self.late
    }

    /// Sends `record`, the late record this `on_record` got, to the job's
    /// dead letters, as late (counted in the job's late records), with its
    /// event time and the watermark it was stamped with. The dead letter's
    /// `raw` is the record as JSON. The function should leave its state
    /// alone for it.
    pub fn dead_letter_late<R: Serialize>(&mut self, record: &R) {
        let letter = DeadLetter {
            source: self.operator.to_string(),
            raw: Raw::json(record),
            reason: format!(
                "late: event time {} ms is behind the watermark ({} ms) it was read at, and {} takes no late records",
                self.timestamp, self.watermark, self.operator
            ),
            origin: Origin::Operator {
                name: self.operator.to_string(),
                kind: "late".into(),
                event_time: Some(self.timestamp),
                watermark: Some(self.watermark),
                details: Fields::new(),
            },
        };
        self.emit
            .late(EventTime(self.watermark), EventTime(self.timestamp), letter);
    }

    /// Registers an event-time timer for this key: `on_timer(time)` runs
    /// once the watermark has passed `time` (so after every on-time record
    /// with event time `<= time`), or right after this callback's stamp if
    /// it already has. Registering the same time twice sets one timer.
    ///
    /// Any `u64` is a valid time. No watermark passes `u64::MAX`, so a timer
    /// for it fires at the end of time: when the input ends (or a watermark
    /// reaches `u64::MAX`), after every other record. It fires once there:
    /// registering it again from a callback at the end of time does nothing.
    /// Compute timer times with `saturating_add` (`time + step` overflows
    /// near `u64::MAX`).
    pub fn register_event_timer(&mut self, time: u64) {
        let due = time.saturating_add(1).max(self.watermark);
        self.event.register(self.key, time, due);
    }

    /// Deletes this key's event-time timer for `time`; false if there was
    /// none.
    pub fn delete_event_timer(&mut self, time: u64) -> bool {
        self.event.delete(self.key, time)
    }

    /// Whether this key has an event-time timer for `time`.
    pub fn has_event_timer(&self, time: u64) -> bool {
        self.event.contains(self.key, time)
    }

    /// The wall-clock time now.
    pub fn processing_time(&self) -> SystemTime {
        SystemTime::now()
    }

    /// Registers a processing-time timer for this key at wall-clock time
    /// `at` (millisecond precision): `on_processing_timer` runs once the
    /// clock has passed it, or when the input ends, whichever is first.
    /// Processing time is not deterministic: what such timers do may differ
    /// from run to run.
    pub fn register_processing_timer(&mut self, at: SystemTime) {
        let ms = unix_millis(at);
        self.processing.register(self.key, ms, ms);
    }

    /// Registers a processing-time timer `after` from now; returns its time
    /// (to delete it with).
    pub fn register_processing_timer_after(&mut self, after: Duration) -> SystemTime {
        // Past what a SystemTime holds is as late as a timer can be.
        let ms = SystemTime::now()
            .checked_add(after)
            .map_or(u64::MAX, unix_millis);
        let at = system_time(ms);
        self.register_processing_timer(at);
        at
    }

    /// Deletes this key's processing-time timer at `at`; false if there
    /// was none.
    pub fn delete_processing_timer(&mut self, at: SystemTime) -> bool {
        self.processing.delete(self.key, unix_millis(at))
    }

    /// Sends a result to the main output.
    pub fn output(&mut self, value: O) {
        let (at, event_time) = (EventTime(self.watermark), EventTime(self.timestamp));
        self.emit.output(at, event_time, Emitted::Main(value));
    }

    /// Sends a result to the side output.
    pub fn side(&mut self, value: X) {
        let (at, event_time) = (EventTime(self.watermark), EventTime(self.timestamp));
        self.emit.output(at, event_time, Emitted::Side(value));
    }
}
