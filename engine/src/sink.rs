//! The sink interface and the operator that drives an at-least-once sink.
//!
//! A sink value is built on every worker. Non-parallel sinks (a file, stdout)
//! receive every record on worker 0, which is the only one that opens them;
//! parallel sinks are opened on every worker and get that worker's records.
//!
//! Which methods the engine calls, and when, is the sink protocol: its rules
//! live in one place, [`crate::sink_protocol`] (a pure state machine tested
//! as tables). In short: an at-least-once sink gets its records
//! ([`Sink::write_epoch`], by default [`Sink::write`]) and an epoch-end hook
//! ([`Sink::end_epoch`]) when the input passes an epoch and at its end; an
//! exactly-once sink in a checkpointing job, parallel or not, stages each
//! epoch, prepares it when the input has passed it, commits it when the
//! epoch's checkpoint is complete, and at a restore resolves what earlier
//! runs staged ([`Sink::recover`]).

use std::io::Write;
use std::sync::atomic::Ordering;

use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange as ExchangePact, Pipeline as Local};
use timely::dataflow::operators::generic::{InputHandleCore, Operator, OutputBuilderSession};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

use crate::data::Data;
use crate::dead_letter::DeadLetter;
use crate::error::{Fault, JobError};
use crate::flow::Consumer;
use crate::ids::WorkerIndex;
use crate::metrics::JobShared;
use crate::sink_protocol::{self, Action, Delivery, Event, SinkMachine};
use crate::time::{lowest_open_epoch, watermark_of, Time, TimedStream};
use crate::worker_context::PipelineState;

/// What a restore tells an exactly-once sink: the epoch restored, and
/// which earlier workers' output this worker resolves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The epoch the job resumes after (`None`: a fresh start).
    pub restored: Option<u64>,
    /// This worker's index among the sink's writers (0 for a
    /// non-parallel sink).
    pub worker: usize,
    /// How many workers write the sink in this run (1 unless parallel).
    pub workers: usize,
}

impl Recovery {
    /// What to do with the output an earlier run left for `epoch`, staged
    /// or already `committed` ([`sink_protocol::resolve`]).
    pub fn resolve(&self, epoch: u64, committed: bool) -> sink_protocol::Resolve {
        sink_protocol::resolve(self.restored, epoch, committed)
    }

    /// Whether this worker resolves what an earlier run's worker
    /// `previous` left ([`sink_protocol::resolves`]).
    pub fn resolves(&self, previous: usize) -> bool {
        sink_protocol::resolves(previous, self.worker, self.workers)
    }
}

/// Where records leave the job.
///
/// The least a sink implements is [`Sink::write`]. Errors are [`Fault`]s:
/// a transient one is retried with backoff, a fatal one stops the job
/// (a `String` converts into a fatal one, so `?` works on one).
pub trait Sink<T>: 'static {
    /// Opens the sink on a worker that will write to it (worker 0 only,
    /// unless [`Sink::parallel`]).
    fn open(&mut self, worker: WorkerIndex) -> Result<(), Fault> {
        let _ = worker;
        Ok(())
    }

    /// Writes a batch of records (the simplest sinks implement only this).
    /// A transient fault is retried with the same `records`, so it must
    /// leave them as it found them; a sink that drains them as it writes
    /// reports a fault after that as fatal.
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault>;

    /// Writes records that belong to `epoch`. At-least-once: they may be
    /// visible at once. Exactly-once: staged, not visible before
    /// [`Sink::commit`]. By default, [`Sink::write`]; a transient fault is
    /// retried with the same `records`, as there.
    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), Fault> {
        let _ = epoch;
        self.write(records)
    }

    /// At-least-once: every record of epochs `<= through` has been written
    /// (`u64::MAX`: the input ended); flush what is buffered. It need not
    /// wait until the output is durable if [`Sink::durable`] says when it
    /// is (a producer waiting for a broker's acknowledgements), except at
    /// the end of input: after `end_epoch(u64::MAX)` everything is durable.
    fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        let _ = through;
        Ok(())
    }

    /// At-least-once in a job that checkpoints: whether the output of
    /// epochs `<= through` (an epoch [`Sink::end_epoch`] was called with)
    /// is durable yet. It must answer at once; the engine asks again soon
    /// after and meanwhile goes on writing later epochs, and reports the
    /// epoch to the checkpoint only once this says `true`. By default
    /// `true`: `end_epoch` made it durable.
    fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        let _ = through;
        Ok(true)
    }

    /// Whether every worker writes its own records (`true`), or all records
    /// go to worker 0 (`false`, the default).
    fn parallel(&self) -> bool {
        false
    }

    /// Whether the sink stages output per epoch and commits it when the
    /// epoch's checkpoint is complete (two-phase commit). In a job that
    /// checkpoints, the engine then calls [`Sink::recover`],
    /// [`Sink::write_epoch`], [`Sink::prepare`] and [`Sink::commit`], on
    /// every worker that writes the sink.
    fn exactly_once(&self) -> bool {
        false
    }

    /// Whether the sink can deliver exactly once only through checkpoints
    /// (a transactional producer): a job without them is then refused at
    /// start instead of running at-least-once.
    fn needs_checkpoints(&self) -> bool {
        false
    }

    /// Whether what [`Sink::prepare`] made durable survives a crash, so a
    /// restore can still commit it (a directory of parts: `true`, the
    /// default). A Kafka transaction does not (`false`): such a sink is not
    /// parallel and keeps a [`CommitLog`](crate::CommitLog) in
    /// [`RunArgs::commit_logs`](crate::RunArgs), so that a restore resumes
    /// from exactly what is visible ([`crate::commit_log`]); the engine then
    /// keeps the checkpoint of the epoch it last committed.
    fn staging_survives_crash(&self) -> bool {
        true
    }

    /// Called after `open` when the job checkpoints, before any write:
    /// resolve what earlier runs left, each epoch by
    /// [`Recovery::resolve`], for the earlier workers
    /// [`Recovery::resolves`] names.
    fn recover(&mut self, recovery: &Recovery) -> Result<(), Fault> {
        let _ = recovery;
        Ok(())
    }

    /// Every record of epochs `<= through` has been written (`u64::MAX`:
    /// all of them): make them durable, still not visible.
    fn prepare(&mut self, through: u64) -> Result<(), Fault> {
        let _ = through;
        Ok(())
    }

    /// The checkpoint covering epochs `<= through` is complete (`u64::MAX`:
    /// the run is recorded finished): make what was staged for them
    /// visible.
    fn commit(&mut self, through: u64) -> Result<(), Fault> {
        let _ = through;
        Ok(())
    }
}

/// Builds the operator that drives an at-least-once `sink` on `input` in a
/// job without checkpoints (`held`: an upstream stateful operator holds the
/// input's frontier, so flow control does not watch it).
pub(crate) fn build_at_least_once<D: Data>(
    input: TimedStream<'_, D>,
    state: &PipelineState<'_>,
    held: bool,
    name: &str,
    sink: impl Sink<D>,
) {
    let consumer = (!held).then(|| state.ctx.flow.register());
    let driver = SinkDriver {
        sink,
        name: name.to_string(),
        shared: Arc::clone(&state.ctx.shared),
        failed: false,
        worker: WorkerIndex(input.scope().index()),
        consumer,
        machine: SinkMachine::new(Delivery::AtLeastOnce),
    };
    let operator = format!("Sink({name})");
    let _: StreamVec<'_, Time, ()> = if driver.sink.parallel() {
        input.unary_frontier(Local, &operator, |_, _| driver.logic())
    } else {
        input.unary_frontier(ExchangePact::new(|_: &(u64, D)| 0u64), &operator, |_, _| {
            driver.logic()
        })
    };
}

/// What a sink operator reads: its input and the input's frontier.
type SinkInput<'a, 'b, D, P> = (
    &'a mut InputHandleCore<Time, Vec<(u64, D)>, P>,
    &'b MutableAntichain<Time>,
);

/// Sinks have an output port (timely operators do) that never carries data.
type NoOutput<'a> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<()>>>;

struct SinkDriver<S> {
    sink: S,
    name: String,
    shared: Arc<JobShared>,
    failed: bool,
    worker: WorkerIndex,
    consumer: Option<Consumer>,
    machine: SinkMachine,
}

impl<S> SinkDriver<S> {
    fn check(&mut self, result: Result<(), Fault>) -> bool {
        if let Err(fault) = result {
            self.failed = true;
            self.shared.fail(JobError::Sink {
                sink: self.name.clone(),
                message: fault.message,
            });
        }
        !self.failed
    }

    fn logic<D, P>(mut self) -> impl FnMut(SinkInput<'_, '_, D, P>, &mut NoOutput<'_>)
    where
        S: Sink<D>,
        D: Data,
        P: timely::communication::Pull<timely::dataflow::channels::Message<Time, Vec<(u64, D)>>>,
    {
        let mut opened = false;
        let writes = sink_protocol::writes_on(self.sink.parallel(), self.worker.0);
        let mut records: Vec<D> = Vec::new();
        move |(input, frontier), _output| {
            if let Some(consumer) = &self.consumer {
                consumer.consumed_below(watermark_of(frontier.frontier()));
            }
            if !opened {
                opened = true;
                if writes {
                    let worker = self.worker;
                    let result = self.shared.retrying(&self.name, || self.sink.open(worker));
                    self.check(result);
                }
            }
            input.for_each(|time, data| {
                if self.failed || !writes {
                    data.clear();
                    return;
                }
                let epoch = time.stamp().iter().map(|t| t.epoch).min().unwrap_or(0);
                let n = data.len() as u64;
                records.extend(data.drain(..).map(|(_, d)| d));
                let result = self
                    .shared
                    .retrying(&self.name, || self.sink.write_epoch(epoch, &mut records));
                records.clear();
                if self.check(result) {
                    self.shared.records_out.fetch_add(n, Ordering::Relaxed);
                }
            });
            if self.failed || !writes {
                return;
            }
            let open = lowest_open_epoch(frontier.frontier());
            for action in self.machine.on(Event::Passed { open }) {
                if let Action::EndEpoch(through) = action {
                    let result = self
                        .shared
                        .retrying(&self.name, || self.sink.end_epoch(through));
                    self.check(result);
                }
            }
        }
    }
}

/// Writes dead letters nobody collected to stderr, one JSON object per line.
pub(crate) struct StderrDeadLetters;

impl Sink<DeadLetter> for StderrDeadLetters {
    fn write(&mut self, records: &mut Vec<DeadLetter>) -> Result<(), Fault> {
        let stderr = std::io::stderr();
        let mut lock = stderr.lock();
        for record in records.drain(..) {
            let line = serde_json::to_string(&record).map_err(|e| Fault::fatal(e.to_string()))?;
            writeln!(lock, "dead letter: {line}").map_err(|e| Fault::fatal(e.to_string()))?;
        }
        Ok(())
    }
}

impl<T: 'static> Sink<T> for Box<dyn Sink<T>> {
    fn open(&mut self, worker: WorkerIndex) -> Result<(), Fault> {
        (**self).open(worker)
    }
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        (**self).write(records)
    }
    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), Fault> {
        (**self).write_epoch(epoch, records)
    }
    fn end_epoch(&mut self, through: u64) -> Result<(), Fault> {
        (**self).end_epoch(through)
    }
    fn durable(&mut self, through: u64) -> Result<bool, Fault> {
        (**self).durable(through)
    }
    fn parallel(&self) -> bool {
        (**self).parallel()
    }
    fn exactly_once(&self) -> bool {
        (**self).exactly_once()
    }
    fn needs_checkpoints(&self) -> bool {
        (**self).needs_checkpoints()
    }
    fn staging_survives_crash(&self) -> bool {
        (**self).staging_survives_crash()
    }
    fn recover(&mut self, recovery: &Recovery) -> Result<(), Fault> {
        (**self).recover(recovery)
    }
    fn prepare(&mut self, through: u64) -> Result<(), Fault> {
        (**self).prepare(through)
    }
    fn commit(&mut self, through: u64) -> Result<(), Fault> {
        (**self).commit(through)
    }
}
