//! The operator that drives every sink of a checkpointing job: two-phase
//! commit for an exactly-once sink, ended and reported epochs for an
//! at-least-once one, on every worker that writes the sink (worker 0, or
//! every worker of a parallel sink).
//!
//! It is a step of the checkpoint like a stateful operator, and does what
//! [`SinkMachine`] decides — the rules are in [`crate::sink_protocol`]. It
//! stages records with [`Sink::write_epoch`]; when its input has passed an
//! epoch it prepares it (at-least-once: ends it) and reports it (a marker
//! in the worker's store and a flush record to the manifest writer); when
//! the manifest writer announces a complete checkpoint or the finished run
//! (broadcast to every worker, which activates this operator: it never
//! polls), it commits.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline as Local};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use crate::checkpoint::manifest::StepKind;
use crate::checkpoint::runtime::{FlushRecord, WorkerCheckpoint};
use crate::checkpoint::store::write_epoch;
use crate::data::Data;
use crate::error::{Fault, JobError};
use crate::flow::Consumer;
use crate::ids::WorkerIndex;
use crate::metrics::JobShared;
use crate::sink::{Recovery, Sink};
use crate::sink_protocol::{self, Action, Delivery, Event, SinkMachine, FINAL_EPOCH};
use crate::time::{lowest_open_epoch, watermark_of, Time, TimedStream};
use crate::worker_context::PipelineState;

pub(crate) fn build<'s, D: Data, S: Sink<D>>(
    input: TimedStream<'s, D>,
    state: &PipelineState<'s>,
    held: bool,
    name: &str,
    sink: S,
    checkpoint: Rc<WorkerCheckpoint>,
    delivery: Delivery,
) {
    let consumer = (!held).then(|| state.ctx.flow.register());
    let parallel = sink.parallel();
    let driver = Driver {
        sink,
        name: name.to_string(),
        shared: Arc::clone(&state.ctx.shared),
        checkpoint,
        consumer,
        parallel,
        delivery,
    };
    let flushes = if parallel {
        driver.build(input, Local)
    } else {
        driver.build(input, Exchange::new(|_: &(u64, D)| 0u64))
    };
    state.register_step(name, step_kind(parallel), 1, flushes);
}

/// How often an at-least-once sink is asked again whether an ended epoch
/// is durable ([`Sink::durable`]).
const DURABLE_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// How the checkpoint counts a sink's flushes: once, or on every worker.
fn step_kind(parallel: bool) -> StepKind {
    if parallel {
        StepKind::ParallelSink
    } else {
        StepKind::Sink
    }
}

struct Driver<S> {
    sink: S,
    name: String,
    shared: Arc<JobShared>,
    checkpoint: Rc<WorkerCheckpoint>,
    consumer: Option<Consumer>,
    parallel: bool,
    delivery: Delivery,
}

impl<S> Driver<S> {
    fn build<'s, D, P>(
        self,
        input: StreamVec<'s, Time, (u64, D)>,
        pact: P,
    ) -> StreamVec<'s, Time, FlushRecord>
    where
        S: Sink<D>,
        D: Data,
        P: ParallelizationContract<Time, Vec<(u64, D)>>,
    {
        let scope = input.scope();
        let worker = scope.index();
        let operator = format!("Sink({})", self.name);
        input.unary_frontier::<CapacityContainerBuilder<Vec<FlushRecord>>, _, _, _>(
            pact,
            &operator,
            move |initial, info| {
                let Driver {
                    mut sink,
                    name,
                    shared,
                    checkpoint,
                    consumer,
                    parallel,
                    delivery,
                } = self;
                let activator = scope.activator_for(Rc::clone(&info.address));
                checkpoint.listen(activator.clone());
                // At-least-once: epochs ended but not yet durable, oldest
                // first; each is reported once the sink says it is.
                let mut awaiting: VecDeque<u64> = VecDeque::new();
                let defers = delivery == Delivery::AtLeastOnceCheckpointed;
                let plan = Arc::clone(&checkpoint.plan);
                let restored = plan.restore.as_ref().map(|r| r.epoch);
                let writes = sink_protocol::writes_on(parallel, worker);
                let kind = step_kind(parallel);
                let mut machine = SinkMachine::new(delivery);
                // A sink whose staging a crash loses resumes from the
                // checkpoint of what it made visible: keep that one.
                let keeps_visible = delivery == Delivery::ExactlyOnce
                    && !sink.staging_survives_crash()
                    && !parallel;
                let mut failed = false;
                // The capability for flush records, at the next epoch to report.
                let mut cap: Option<Capability<Time>> = None;
                let mut started = false;
                if writes {
                    let mut initial = initial;
                    if let Some(epoch) = restored {
                        initial.downgrade(&Time::new(epoch, 0));
                    }
                    cap = Some(initial);
                }
                let recovery = Recovery {
                    restored,
                    worker: if parallel { worker } else { 0 },
                    workers: if parallel { scope.peers() } else { 1 },
                };
                let mut records: Vec<D> = Vec::new();
                move |(input, frontier), output| {
                    let frontier = frontier.frontier();
                    if let Some(consumer) = &consumer {
                        consumer.consumed_below(watermark_of(frontier));
                    }
                    let fail = |fault: Fault, failed: &mut bool| {
                        *failed = true;
                        shared.fail(JobError::Sink {
                            sink: name.clone(),
                            message: fault.message,
                        });
                    };
                    let mut actions = Vec::new();
                    if writes && !started {
                        started = true;
                        if let Err(fault) =
                            shared.retrying(&name, || sink.open(WorkerIndex(worker)))
                        {
                            fail(fault, &mut failed);
                        }
                        if keeps_visible {
                            plan.keep_from(restored);
                        }
                        actions = machine.on(Event::Start {
                            restored,
                            rescaled: plan.rescaled(),
                        });
                    }
                    // Earlier runs' output is resolved before anything is written.
                    let mut run = |actions: Vec<Action>,
                                   cap: &mut Option<Capability<Time>>,
                                   failed: &mut bool,
                                   sink: &mut S| {
                        for action in actions {
                            if *failed {
                                return;
                            }
                            let done = match action {
                                Action::Recover(_) => {
                                    shared.retrying(&name, || sink.recover(&recovery))
                                }
                                Action::Prepare(through) => {
                                    shared.retrying(&name, || sink.prepare(through))
                                }
                                Action::Commit(through) => {
                                    crate::failpoint::before_sink_commit(through);
                                    let done = shared.retrying(&name, || sink.commit(through));
                                    if done.is_ok() && keeps_visible {
                                        plan.keep_from((through < FINAL_EPOCH).then_some(through));
                                    }
                                    done
                                }
                                Action::EndEpoch(through) => {
                                    shared.retrying(&name, || sink.end_epoch(through))
                                }
                                Action::Report(epoch) if defers => {
                                    awaiting.push_back(epoch);
                                    Ok(())
                                }
                                Action::Report(epoch) => {
                                    report(&checkpoint, &name, kind, worker, epoch, cap, output)
                                }
                                // After the reports still awaited, in order.
                                Action::ReportEnd if defers => {
                                    awaiting.push_back(FINAL_EPOCH);
                                    Ok(())
                                }
                                Action::ReportEnd => report(
                                    &checkpoint,
                                    &name,
                                    kind,
                                    worker,
                                    FINAL_EPOCH,
                                    cap,
                                    output,
                                ),
                                Action::Release => {
                                    *cap = None;
                                    Ok(())
                                }
                            };
                            if let Err(fault) = done {
                                fail(fault, failed);
                            }
                        }
                        // Report what has become durable since, in order.
                        while let Some(&epoch) = awaiting.front() {
                            if *failed {
                                return;
                            }
                            // `end_epoch(u64::MAX)` left everything durable.
                            let durable = if epoch == FINAL_EPOCH {
                                Ok(true)
                            } else {
                                sink.durable(epoch)
                            };
                            let done = match durable {
                                Ok(false) => break,
                                Ok(true) => {
                                    awaiting.pop_front();
                                    report(&checkpoint, &name, kind, worker, epoch, cap, output)
                                }
                                Err(fault) => Err(fault),
                            };
                            if let Err(fault) = done {
                                fail(fault, failed);
                            }
                        }
                    };
                    run(actions, &mut cap, &mut failed, &mut sink);
                    input.for_each(|time, data| {
                        if failed || !writes {
                            data.clear();
                            return;
                        }
                        // weir's operators send every batch under one capability.
                        let Some(epoch) = time.stamp().iter().map(|t| t.epoch).min() else {
                            data.clear();
                            return;
                        };
                        let n = data.len() as u64;
                        records.extend(data.drain(..).map(|(_, d)| d));
                        match shared.retrying(&name, || sink.write_epoch(epoch, &mut records)) {
                            Ok(()) => {
                                shared.records_out.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(fault) => fail(fault, &mut failed),
                        }
                        records.clear();
                    });
                    if failed || !writes || shared.stop_requested() {
                        cap = None;
                        return;
                    }
                    // Commits first, then what the frontier allows.
                    let mut actions = Vec::new();
                    if let Some(complete) = checkpoint.last_complete() {
                        actions.extend(machine.on(Event::Complete(complete)));
                    }
                    let open = lowest_open_epoch(frontier);
                    actions.extend(machine.on(Event::Passed { open }));
                    if checkpoint.finished() {
                        actions.extend(machine.on(Event::Finished));
                    }
                    run(actions, &mut cap, &mut failed, &mut sink);
                    if failed {
                        cap = None;
                    } else if !awaiting.is_empty() {
                        // Ask again soon, input or not.
                        activator.activate_after(DURABLE_POLL);
                    }
                }
            },
        )
    }
}

type FlushSession<'a> = timely::dataflow::operators::generic::OutputBuilderSession<
    'a,
    Time,
    CapacityContainerBuilder<Vec<FlushRecord>>,
>;

/// Reports `epoch` flushed by this worker: a marker in its store (not for
/// the end of input, which no restore reads) and a flush record to the
/// manifest writer; the capability moves past it.
fn report(
    checkpoint: &WorkerCheckpoint,
    step: &str,
    kind: StepKind,
    worker: usize,
    epoch: u64,
    cap: &mut Option<Capability<Time>>,
    output: &mut FlushSession<'_>,
) -> Result<(), Fault> {
    let Some(held) = cap.as_mut() else {
        return Ok(());
    };
    let checksum = if epoch == FINAL_EPOCH {
        0
    } else {
        let mut store = checkpoint.store.borrow_mut();
        write_epoch(store.as_mut(), epoch, step, &[], &[])
            .map_err(|e| Fault::fatal(format!("checkpointing: {e}")))?
    };
    let at = Time::new(epoch, 0);
    output.session(&held.delayed(&at)).give(FlushRecord {
        epoch,
        worker,
        step: step.to_string(),
        kind,
        checksum,
    });
    let next = if epoch == FINAL_EPOCH {
        at
    } else {
        Time::new(epoch + 1, 0)
    };
    held.downgrade(&next);
    Ok(())
}
