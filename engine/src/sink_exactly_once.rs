//! The operator that drives an exactly-once sink in a checkpointing job.
//!
//! It runs on worker 0 (every record is exchanged there) and is a step of
//! the checkpoint like a stateful operator:
//!
//! 1. records of epoch `e` go to [`Sink::write_epoch`];
//! 2. when the input frontier has passed `e`, [`Sink::prepare`] makes them
//!    durable, a marker for `e` goes to the worker's store and a flush record
//!    to the manifest writer — the checkpoint of `e` is complete only then;
//! 3. once the manifest records `e` complete, [`Sink::publish`] makes the
//!    output of epochs `<= e` visible. While output waits for that, the
//!    operator looks again every few milliseconds.
//!
//! At the end of the input everything is prepared; the run publishes the
//! rest after recording itself finished ([`crate::checkpoint::runtime::Plan::finish`]).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::checkpoint::manifest::StepKind;
use crate::checkpoint::runtime::{FlushRecord, WorkerCheckpoint};
use crate::checkpoint::store::write_epoch;
use crate::data::Data;
use crate::error::JobError;
use crate::ids::WorkerIndex;
use crate::sink::Sink;
use crate::stream::Stream;
use crate::time::{lowest_open_epoch, watermark_of, Time};

/// How often a sink with prepared, unpublished output looks for the
/// checkpoint that publishes it.
const PUBLISH_POLL: Duration = Duration::from_millis(10);

pub(crate) fn build<D: Data, S: Sink<D>>(
    stream: Stream<'_, D>,
    name: &str,
    mut sink: S,
    checkpoint: Rc<WorkerCheckpoint>,
) {
    let state = Rc::clone(&stream.state);
    let consumer = (!stream.held).then(|| state.ctx.flow.register());
    let shared = Arc::clone(&state.ctx.shared);
    let counters = Arc::clone(&shared);
    // The step's name, for fault reports and for flush records.
    let step = name.to_string();
    let flush_step = name.to_string();
    let input = stream.inner;
    let scope = input.scope();
    let worker = WorkerIndex(scope.index());
    let operator = format!("Sink({name})");
    let flushes: StreamVec<'_, Time, FlushRecord> = input
        .unary_frontier::<CapacityContainerBuilder<Vec<FlushRecord>>, _, _, _>(
            Exchange::new(|_: &(u64, D)| 0u64),
            &operator,
            move |initial, info| {
                let activator = scope.activator_for(Rc::clone(&info.address));
                let plan = Arc::clone(&checkpoint.plan);
                let restored = plan.restore.as_ref().map(|r| r.epoch);
                let writer = worker.0 == 0;
                let mut failed = false;
                let fail = move |message: String, failed: &mut bool| {
                    *failed = true;
                    shared.fail(JobError::Sink {
                        sink: step.clone(),
                        message,
                    });
                };
                // The capability for flush records, at the next epoch to flush.
                let mut cap = None;
                // Epochs prepared and published so far.
                let mut prepared: Option<u64> = None;
                let mut published: Option<u64> = None;
                // A new store generation needs the restored epoch's marker.
                let mut flush_restored = false;
                if writer {
                    let mut initial = initial;
                    if let Some(epoch) = restored {
                        initial.downgrade(&Time::new(epoch, 0));
                        prepared = Some(epoch);
                        published = Some(epoch);
                        flush_restored = plan.rescaled();
                    }
                    let opened = sink.open(worker).and_then(|()| sink.recover(restored));
                    if let Err(message) = opened {
                        fail(message, &mut failed);
                    }
                    if let Some(dir) = sink.staged_dir() {
                        plan.register_staged(dir);
                    }
                    cap = Some(initial);
                }
                move |(input, frontier), output| {
                    let frontier = frontier.frontier();
                    if let Some(consumer) = &consumer {
                        consumer.consumed_below(watermark_of(frontier));
                    }
                    input.for_each(|time, data| {
                        if failed || !writer {
                            data.clear();
                            return;
                        }
                        // weir's operators send every batch under one capability.
                        let Some(epoch) = time.stamp().iter().map(|t| t.epoch).next() else {
                            data.clear();
                            return;
                        };
                        let n = data.len() as u64;
                        let mut records: Vec<D> = data.drain(..).map(|(_, d)| d).collect();
                        match sink.write_epoch(epoch, &mut records) {
                            Ok(()) => {
                                counters.records_out.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(message) => fail(message, &mut failed),
                        }
                    });
                    if failed || !writer {
                        cap = None;
                        return;
                    }
                    let open = lowest_open_epoch(frontier);
                    // Prepare and report every epoch the input has passed.
                    let due = if flush_restored {
                        flush_restored = false;
                        prepared
                    } else {
                        let last = open.checked_sub(1).filter(|_| open != u64::MAX);
                        last.filter(|l| prepared < Some(*l))
                    };
                    if let Some(epoch) = due {
                        let marked = sink.prepare(epoch).and_then(|()| {
                            let mut store = checkpoint.store.borrow_mut();
                            write_epoch(store.as_mut(), epoch, &flush_step, &[], &[])
                                .map_err(|e| format!("checkpointing: {e}"))
                        });
                        match (marked, cap.as_mut()) {
                            (Ok(checksum), Some(cap)) => {
                                prepared = Some(epoch);
                                let record = FlushRecord {
                                    epoch,
                                    worker: worker.0,
                                    step: flush_step.clone(),
                                    kind: StepKind::Sink,
                                    checksum,
                                };
                                output
                                    .session(&cap.delayed(&Time::new(epoch, 0)))
                                    .give(record);
                                cap.downgrade(&Time::new(epoch + 1, 0));
                            }
                            (Ok(_), None) => {}
                            (Err(message), _) => {
                                fail(message, &mut failed);
                                cap = None;
                                return;
                            }
                        }
                    }
                    if open == u64::MAX && cap.is_some() {
                        // The input ended: make everything durable; the run
                        // publishes it once it has recorded itself finished.
                        if let Err(message) = sink.prepare(u64::MAX) {
                            fail(message, &mut failed);
                        }
                        cap = None;
                    }
                    // Publish what complete checkpoints cover.
                    let complete = plan.last_complete();
                    let through = complete.min(prepared);
                    if through > published {
                        if let Some(through) = through {
                            match sink.publish(through) {
                                Ok(()) => published = Some(through),
                                Err(message) => fail(message, &mut failed),
                            }
                        }
                    }
                    if prepared > published && !failed && !counters.stop_requested() {
                        activator.activate_after(PUBLISH_POLL);
                    }
                }
            },
        );
    state.register_step(name, StepKind::Sink, 1, flushes);
}
