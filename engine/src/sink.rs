//! The sink interface and the operator that drives it.
//!
//! A sink value is built on every worker. Non-parallel sinks (a file, stdout)
//! receive every record on worker 0, which is the only one that opens them;
//! parallel sinks are opened on every worker and get that worker's records.
//!
//! Delivery across a crash and restore: a plain sink is at-least-once (what it
//! wrote after the last complete checkpoint is written again). A sink that
//! says [`Sink::exactly_once`] takes part in checkpoints when the job has
//! them: it stages each epoch's records, reports the epoch flushed once its
//! input has passed it (a checkpoint is complete only with that report), and
//! publishes staged output when the checkpoint is complete, so a kill never
//! leaves doubled or torn output (see [`crate::checkpoint::staged`]).

use std::io::Write;
use std::sync::atomic::Ordering;

use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange as ExchangePact, Pipeline as Local};
use timely::dataflow::operators::generic::{InputHandleCore, Operator, OutputBuilderSession};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

use crate::data::Data;
use crate::dead_letter::DeadLetter;
use crate::error::JobError;
use crate::flow::Consumer;
use crate::ids::WorkerIndex;
use crate::metrics::JobShared;
use crate::stream::Stream;
use crate::time::{watermark_of, Time};

/// Where records leave the job.
pub trait Sink<T>: 'static {
    /// Opens the sink on a worker that will write to it (worker 0 only,
    /// unless [`Sink::parallel`]).
    fn open(&mut self, worker: WorkerIndex) -> Result<(), String> {
        let _ = worker;
        Ok(())
    }
    /// Writes a batch of records.
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String>;
    /// Makes written records durable/visible (called when the input frontier
    /// advances and at the end).
    fn flush(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// Whether every worker writes its own records (`true`), or all records
    /// go to worker 0 (`false`, the default).
    fn parallel(&self) -> bool {
        false
    }

    /// Whether the sink stages output per epoch and publishes it when the
    /// epoch's checkpoint is complete. When the job checkpoints, the engine
    /// then calls [`Sink::recover`], [`Sink::write_epoch`], [`Sink::prepare`]
    /// and [`Sink::publish`] instead of `write` and `flush`. Only
    /// non-parallel sinks can be exactly-once.
    fn exactly_once(&self) -> bool {
        false
    }

    /// Called after `open` when the job checkpoints: `restored` is the epoch
    /// the job resumes after (`None`: a fresh start). Publish what was
    /// staged through it; discard what was staged after it.
    fn recover(&mut self, restored: Option<u64>) -> Result<(), String> {
        let _ = restored;
        Ok(())
    }

    /// Writes records that belong to `epoch` (staged, not yet published).
    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), String> {
        let _ = epoch;
        self.write(records)
    }

    /// Every record of epochs `<= through` has been written: make them
    /// durable, still unpublished.
    fn prepare(&mut self, through: u64) -> Result<(), String> {
        let _ = through;
        self.flush()
    }

    /// The checkpoint of `through` is complete: publish what was staged for
    /// epochs `<= through`.
    fn publish(&mut self, through: u64) -> Result<(), String> {
        let _ = through;
        Ok(())
    }

    /// The directory whose staged parts the engine publishes when the run
    /// finishes (after recording it as finished).
    fn staged_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

pub(crate) fn build_sink<D: Data>(stream: Stream<'_, D>, name: &str, sink: impl Sink<D>) {
    if sink.exactly_once() && !sink.parallel() {
        if let Some(checkpoint) = stream.state.ctx.checkpoint.clone() {
            crate::sink_exactly_once::build(stream, name, sink, checkpoint);
            return;
        }
    }
    let consumer = (!stream.held).then(|| stream.state.ctx.flow.register());
    let input = stream.inner;
    let driver = SinkDriver {
        sink,
        name: name.to_string(),
        shared: Arc::clone(&stream.state.ctx.shared),
        failed: false,
        worker: WorkerIndex(input.scope().index()),
        consumer,
    };
    let operator = format!("Sink({name})");
    let input = input.map(|(_, d)| d);
    let _: StreamVec<'_, Time, ()> = if driver.sink.parallel() {
        input.unary_frontier(Local, &operator, |_, _| driver.logic())
    } else {
        input.unary_frontier(ExchangePact::new(|_: &D| 0u64), &operator, |_, _| {
            driver.logic()
        })
    };
}

/// What a sink operator reads: its input and the input's frontier.
type SinkInput<'a, 'b, D, P> = (
    &'a mut InputHandleCore<Time, Vec<D>, P>,
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
}

impl<S> SinkDriver<S> {
    fn check(&mut self, result: Result<(), String>) -> bool {
        if let Err(message) = result {
            self.failed = true;
            self.shared.fail(JobError::Sink {
                sink: self.name.clone(),
                message,
            });
        }
        !self.failed
    }

    fn logic<D, P>(mut self) -> impl FnMut(SinkInput<'_, '_, D, P>, &mut NoOutput<'_>)
    where
        S: Sink<D>,
        D: Data,
        P: timely::communication::Pull<timely::dataflow::channels::Message<Time, Vec<D>>>,
    {
        let mut opened = false;
        move |(input, frontier), _output| {
            if let Some(consumer) = &self.consumer {
                consumer.consumed_below(watermark_of(frontier.frontier()));
            }
            if !opened {
                opened = true;
                if self.sink.parallel() || self.worker.0 == 0 {
                    let result = self.sink.open(self.worker);
                    self.check(result);
                }
            }
            let mut wrote = false;
            input.for_each(|_cap, data| {
                if self.failed {
                    data.clear();
                    return;
                }
                let n = data.len() as u64;
                let result = self.sink.write(data);
                if self.check(result) {
                    wrote = true;
                    self.shared.records_out.fetch_add(n, Ordering::Relaxed);
                }
                data.clear();
            });
            if wrote {
                let result = self.sink.flush();
                self.check(result);
            }
        }
    }
}

/// Writes dead letters nobody collected to stderr, one JSON object per line.
pub(crate) struct StderrDeadLetters;

impl Sink<DeadLetter> for StderrDeadLetters {
    fn write(&mut self, records: &mut Vec<DeadLetter>) -> Result<(), String> {
        let stderr = std::io::stderr();
        let mut lock = stderr.lock();
        for record in records.drain(..) {
            let line = serde_json::to_string(&record).map_err(|e| e.to_string())?;
            writeln!(lock, "dead letter: {line}").map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl<T: 'static> Sink<T> for Box<dyn Sink<T>> {
    fn open(&mut self, worker: WorkerIndex) -> Result<(), String> {
        (**self).open(worker)
    }
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String> {
        (**self).write(records)
    }
    fn flush(&mut self) -> Result<(), String> {
        (**self).flush()
    }
    fn parallel(&self) -> bool {
        (**self).parallel()
    }
    fn exactly_once(&self) -> bool {
        (**self).exactly_once()
    }
    fn recover(&mut self, restored: Option<u64>) -> Result<(), String> {
        (**self).recover(restored)
    }
    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), String> {
        (**self).write_epoch(epoch, records)
    }
    fn prepare(&mut self, through: u64) -> Result<(), String> {
        (**self).prepare(through)
    }
    fn publish(&mut self, through: u64) -> Result<(), String> {
        (**self).publish(through)
    }
    fn staged_dir(&self) -> Option<std::path::PathBuf> {
        (**self).staged_dir()
    }
}
