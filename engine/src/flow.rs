//! Flow control: how far downstream has consumed what sources emitted.
//!
//! Every stateful operator and every sink whose input is not held back by
//! upstream state registers a [`Consumer`] and, each time it runs, records the
//! watermark of its input frontier. Timely's frontiers are global, so that
//! watermark says which stamps every worker's instance has consumed. A source
//! takes the minimum over the consumers of its worker and pauses while too
//! many of its records are stamped below it's reach (see `source_op`).
//!
//! Stateful operators also note the newest epoch they have seen a record
//! of ([`EpochSeen`]): a source behind it ends its own epoch at once (see
//! `source_op`), so one worker's clock does not leave the others' records
//! of the next epoch waiting in those operators for an epoch interval.
//!
//! Reading the frontier inside the consumers, rather than attaching timely
//! probes, costs nothing per record: a probe is one more consumer of the
//! stream and would receive a copy of every batch.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// One consumer's progress: the watermark of its input frontier.
#[derive(Clone)]
pub(crate) struct Consumer(Rc<Cell<u64>>);

impl Consumer {
    pub(crate) fn consumed_below(&self, watermark: u64) {
        self.0.set(watermark);
    }
}

/// The newest epoch any record arriving at one worker's stateful
/// operators carried.
#[derive(Clone, Default)]
pub(crate) struct EpochSeen(Rc<Cell<u64>>);

impl EpochSeen {
    pub(crate) fn saw(&self, epoch: u64) {
        if epoch > self.0.get() {
            self.0.set(epoch);
        }
    }
}

/// The consumers of one worker's dataflow.
#[derive(Default)]
pub(crate) struct FlowControl {
    consumers: RefCell<Vec<Consumer>>,
    epoch_seen: EpochSeen,
}

impl FlowControl {
    /// Registers a consumer that has consumed nothing yet.
    pub(crate) fn register(&self) -> Consumer {
        let consumer = Consumer(Rc::new(Cell::new(0)));
        self.consumers.borrow_mut().push(consumer.clone());
        consumer
    }

    /// The handle stateful operators note arriving epochs with.
    pub(crate) fn epoch_seen(&self) -> EpochSeen {
        self.epoch_seen.clone()
    }

    /// The newest epoch a record arriving at this worker's stateful
    /// operators carried (0 before any).
    pub(crate) fn newest_epoch(&self) -> u64 {
        self.epoch_seen.0.get()
    }

    /// Every stamp below this has been consumed everywhere (`u64::MAX` when
    /// nothing is registered: nothing to wait for).
    pub(crate) fn consumed_below(&self) -> u64 {
        self.consumers
            .borrow()
            .iter()
            .map(|c| c.0.get())
            .min()
            .unwrap_or(u64::MAX)
    }
}
