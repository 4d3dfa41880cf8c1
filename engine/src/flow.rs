//! Flow control: how far downstream has consumed what sources emitted.
//!
//! Every stateful operator and every sink whose input is not held back by
//! upstream state registers a [`Consumer`] and, each time it runs, records the
//! watermark of its input frontier. Timely's frontiers are global, so that
//! watermark says which stamps every worker's instance has consumed. A source
//! takes the minimum over the consumers of its worker and pauses while too
//! many of its records are stamped below it's reach (see `source_op`).
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

/// The consumers of one worker's dataflow.
#[derive(Default)]
pub(crate) struct FlowControl {
    consumers: RefCell<Vec<Consumer>>,
}

impl FlowControl {
    /// Registers a consumer that has consumed nothing yet.
    pub(crate) fn register(&self) -> Consumer {
        let consumer = Consumer(Rc::new(Cell::new(0)));
        self.consumers.borrow_mut().push(consumer.clone());
        consumer
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
