//! Building and running a job: [`Pipeline`] and [`run`].
//!
//! A job is a closure that builds a [`Pipeline`]; [`run`] calls it once on
//! every worker (threads and processes alike), then steps the workers until
//! every source has ended and every window has fired, and returns the
//! [`Summary`]. The same closure runs unchanged on `-w 4` or `-n 2 -p …`.

use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::Concatenate;
use timely::dataflow::Scope;

use crate::checkpoint::manifest::{Step, StepKind};
use crate::checkpoint::runtime::{Plan, WorkerCheckpoint};
use crate::commit_log::{start_for, Checkpoints, Start};
use crate::config::RunArgs;
use crate::dead_letter::DeadLetter;
use crate::error::{ConfigError, JobError};
use crate::flow::FlowControl;
use crate::metrics::{spawn_status_thread, JobShared, Summary};
use crate::source::Source;
use crate::source_op::{build_source, IntoEventTime};
use crate::stream::Stream;
use crate::time::Time;
use crate::watermark::Watermarks;
use crate::worker_context::{install_ctrl_c_handler, PipelineState, WorkerCtx};

/// A job under construction on one worker.
pub struct Pipeline<'s> {
    scope: Scope<'s, Time>,
    pub(crate) state: Rc<PipelineState<'s>>,
}

impl<'s> Pipeline<'s> {
    /// Starts a stream from a connector. Give it event time with
    /// [`SourceBuilder::event_time`].
    pub fn source<S: Source>(&mut self, name: &str, source: S) -> SourceBuilder<'s, S>
    where
        S::Item: crate::Data,
    {
        self.state.claim_name("source", name);
        SourceBuilder {
            scope: self.scope,
            state: Rc::clone(&self.state),
            name: name.to_string(),
            source,
        }
    }

    /// All dead letters produced so far (malformed records, missing
    /// timestamps, late records sent with [`Stream::dead_letter`]), as one
    /// stream. Dead letters produced by steps added after this call, and any
    /// never collected, go to stderr as JSON lines.
    pub fn dead_letters(&mut self) -> Stream<'s, DeadLetter> {
        let streams = self.state.take_dead_letters();
        let inner = self.scope.concatenate(streams);
        Stream::new(inner, Rc::clone(&self.state), false)
    }

    /// This worker's index among all workers.
    pub fn worker_index(&self) -> usize {
        self.scope.index()
    }

    /// The number of workers across all processes.
    pub fn workers(&self) -> usize {
        self.scope.peers()
    }

    /// The timely scope, for experts who need raw timely operators.
    pub fn scope(&self) -> Scope<'s, Time> {
        self.scope
    }

    fn finish(&mut self) {
        if let Some(checkpoint) = self.state.ctx.checkpoint.clone() {
            let steps = self.state.steps();
            if let Some(from) = &checkpoint.plan.restore {
                let mut stored = from.steps.clone();
                stored.sort();
                if stored != steps {
                    let show = |s: &[Step]| {
                        s.iter()
                            .map(|s| format!("{} ({} v{})", s.name, s.kind, s.version))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    self.state.ctx.shared.fail(
                        ConfigError::new(format!(
                            "the checkpoint in {} was written by a job with steps [{}], this job has [{}]: restore with the same job, or pass --fresh",
                            checkpoint.plan.dir.display(),
                            show(&stored),
                            show(&steps)
                        ))
                        .into(),
                    );
                }
            }
            let flushes = self.state.take_flushes();
            let all = self.scope.concatenate(flushes);
            crate::checkpoint::writer::manifest_writer(
                all,
                checkpoint,
                steps,
                Arc::clone(&self.state.ctx.shared),
            );
        }
        // Attached after the checkpoint's steps are fixed, so it is none of
        // them: each write to stderr is done when it returns.
        if self.state.has_dead_letters() {
            self.dead_letters()
                .sink_unchecked("weir.dead_letters.stderr", crate::sink::StderrDeadLetters);
        }
    }
}

/// A source that still needs its event-time extractor and watermark strategy.
pub struct SourceBuilder<'s, S: Source> {
    scope: Scope<'s, Time>,
    state: Rc<PipelineState<'s>>,
    name: String,
    source: S,
}

impl<'s, S: Source> SourceBuilder<'s, S>
where
    S::Item: crate::Data,
{
    /// Says where each record's event time is (ms; a `u64` or an
    /// `Option<u64>`, where `None` sends the record to dead letters) and how
    /// watermarks follow event time.
    pub fn event_time<E, F>(self, extract: F, watermarks: Watermarks) -> Stream<'s, S::Item>
    where
        E: IntoEventTime,
        F: Fn(&S::Item) -> E + 'static,
    {
        self.timed(move |r, _| extract(r).into_event_time(), watermarks)
    }

    /// Takes each record's event time from the source: the time it read
    /// with the record ([`ReadItem::Timed`](crate::ReadItem::Timed), such as
    /// a Kafka message's timestamp, `KafkaSource::timestamps`). A record
    /// the source gives no time goes to dead letters.
    pub fn source_time(self, watermarks: Watermarks) -> Stream<'s, S::Item> {
        self.timed(|_, known| known, watermarks)
    }

    fn timed(
        self,
        extract: impl Fn(&S::Item, Option<u64>) -> Option<u64> + 'static,
        watermarks: Watermarks,
    ) -> Stream<'s, S::Item> {
        let register = self.state.ctx.checkpoint.is_some().then(|| {
            let state = Rc::clone(&self.state);
            let name = self.name.clone();
            Box::new(move |flushes| state.register_step(&name, StepKind::Source, 1, flushes))
                as crate::source_op::RegisterFlushes<'s>
        });
        let (records, dead) = build_source(
            self.scope,
            &self.state.ctx,
            &self.name,
            self.source,
            extract,
            watermarks,
            register,
        );
        self.state.add_dead_letters(dead);
        Stream::new(records, self.state, false)
    }
}

/// Where a checkpointing run starts (`--fresh`, `--restore`), after the
/// commit logs of sinks whose staging dies with a crash had their say
/// ([`crate::commit_log`]).
fn start_after_commits(args: &RunArgs, dir: &Path) -> Result<(bool, Option<u64>), JobError> {
    let (log, rest) = match args.commit_logs.split_first() {
        None => return Ok((args.fresh, args.restore)),
        Some(split) => split,
    };
    if let Some(other) = rest.first() {
        return Err(ConfigError::new(format!(
            "sinks `{}` and `{}` both commit through transactions that a crash loses: a job can have one such sink (make the other at-least-once)",
            log.0.sink(),
            other.0.sink()
        ))
        .into());
    }
    let log = &log.0;
    log.check(args.epoch_interval)?;
    let committed = log.committed().map_err(|fault| JobError::Sink {
        sink: log.sink().to_string(),
        message: fault.message,
    })?;
    let held = match crate::checkpoint::manifest::read(dir) {
        Ok(manifest) => Checkpoints {
            complete: manifest.complete.iter().map(|e| e.epoch).collect(),
            finished: manifest.finished,
        },
        // A missing manifest starts fresh; a corrupt one is plan_for's to report.
        Err(_) => Checkpoints::default(),
    };
    let start = start_for(log.sink(), &held, args.restore, args.fresh, committed)
        .map_err(ConfigError::new)?;
    if !args.quiet && args.process == 0 && !args.fresh {
        let newest = held.complete.iter().max();
        match start {
            Start::Restore(epoch) if newest.is_some_and(|n| *n > epoch) && !held.finished => {
                eprintln!(
                    "weir: sink `{}` committed only through epoch {epoch}: resuming there, to produce what followed again",
                    log.sink()
                );
            }
            Start::Fresh if !held.complete.is_empty() && !held.finished => eprintln!(
                "weir: sink `{}` committed nothing yet: starting over",
                log.sink()
            ),
            _ => {}
        }
    }
    Ok(match start {
        Start::Fresh => (true, None),
        Start::Restore(epoch) => (false, Some(epoch)),
    })
}

/// Runs a job: builds `job` on every worker and runs it to completion.
///
/// Returns the run's counters, or the first fault (a bad flag, an unreadable
/// file, a failed sink). Faults stop every source; the error names the step.
pub fn run<F>(args: &RunArgs, job: F) -> Result<Summary, JobError>
where
    F: Fn(&mut Pipeline<'_>) + Send + Sync + 'static,
{
    let config = args.timely_config()?;
    let plan: Option<Arc<Plan>> =
        match (
            &args
                .checkpoint_dir
                .as_ref()
                .filter(|_| !args.no_checkpoints),
            &args.backend,
        ) {
            (Some(dir), Some(backend)) => {
                let (fresh, restore) = start_after_commits(args, dir)?;
                Some(Arc::new(crate::checkpoint::runtime::plan_for(
                    dir,
                    Arc::clone(&backend.0),
                    args.keep_checkpoints,
                    fresh,
                    args.total_workers(),
                    args.process * args.workers..(args.process + 1) * args.workers,
                    restore,
                )?))
            }
            (Some(_), None) => return Err(ConfigError::new(
                "--checkpoint-dir needs a state backend: set RunArgs::backend (weir_rocks::Rocks)",
            )
            .into()),
            (None, _) => None,
        };
    if let Some(plan) = &plan {
        if !args.quiet {
            for (epoch, why) in &plan.skipped {
                eprintln!("weir: checkpoint epoch {epoch} is unusable: {why}");
            }
            if let Some(from) = &plan.restore {
                eprintln!(
                    "weir: restoring epoch {} from {}",
                    from.epoch,
                    plan.dir.display()
                );
            }
        }
    }
    if !args.quiet && args.process == 0 {
        for note in &args.start_notes {
            eprintln!("weir: {note}");
        }
    }
    install_ctrl_c_handler();
    let shared = JobShared::new(args.workers);
    let done = Arc::new(AtomicBool::new(false));
    let status = if args.quiet {
        None
    } else {
        spawn_status_thread(Arc::clone(&shared), args.status_interval, Arc::clone(&done))
    };
    let workers_per_process = args.workers;
    let epoch_interval = args.epoch_interval;
    let max_in_flight = args.max_in_flight;
    let job_shared = Arc::clone(&shared);
    let job_plan = plan.clone();
    let guards = timely::execute(config, move |worker| {
        let shared = Arc::clone(&job_shared);
        let checkpoint = match &job_plan {
            Some(plan) => {
                match WorkerCheckpoint::open(Arc::clone(plan), worker.index(), worker.peers()) {
                    Ok(w) => Some(Rc::new(w)),
                    Err(e) => {
                        shared.fail(JobError::Checkpoint(e.to_string()));
                        None
                    }
                }
            }
            None => None,
        };
        worker.dataflow::<Time, _, _>(|scope| {
            let ctx = Rc::new(WorkerCtx {
                shared,
                local_worker: scope.index() % workers_per_process,
                epoch_interval,
                flow: FlowControl::default(),
                max_in_flight,
                checkpoint,
            });
            let state = Rc::new(PipelineState::new(ctx));
            let mut pipeline = Pipeline { scope, state };
            job(&mut pipeline);
            pipeline.finish();
        });
        while worker.step_or_park(Some(Duration::from_millis(100))) {}
    })
    .map_err(JobError::Runtime)?;
    let mut panicked = None;
    for result in guards.join() {
        if let Err(message) = result {
            panicked.get_or_insert(message);
        }
    }
    done.store(true, Ordering::Relaxed);
    if let Some(handle) = status {
        let _ = handle.join();
    }
    if let Some(error) = shared.take_error() {
        return Err(error);
    }
    if let Some(message) = panicked {
        return Err(JobError::Runtime(format!("a worker panicked: {message}")));
    }
    if let Some(plan) = plan.filter(|_| args.process == 0) {
        plan.finish()
            .map_err(|e| JobError::Checkpoint(e.to_string()))?;
    }
    let summary = shared.final_summary();
    if !args.quiet {
        eprintln!("weir: done: {summary}");
    }
    Ok(summary)
}
