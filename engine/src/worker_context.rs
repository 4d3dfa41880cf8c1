//! What one worker's operators share: the run-time context ([`WorkerCtx`])
//! and, while the job is built, the pipeline's bookkeeping
//! ([`PipelineState`]: step names, dead-letter streams, checkpointed steps).
//!
//! It sits below the modules that build operators: `pipeline` creates it,
//! and `stream`, `source_op`, `sink` and the stateful operators read it,
//! so none of them imports `pipeline` back.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use timely::dataflow::StreamVec;

use crate::checkpoint::manifest::{Step, StepKind};
use crate::checkpoint::runtime::{FlushRecord, WorkerCheckpoint};
use crate::dead_letter::DeadLetter;
use crate::error::ConfigError;
use crate::flow::FlowControl;
use crate::metrics::JobShared;
use crate::time::Time;

/// What a worker's operators share at run time.
pub(crate) struct WorkerCtx {
    pub(crate) shared: Arc<JobShared>,
    pub(crate) local_worker: usize,
    pub(crate) epoch_interval: Duration,
    /// How far stateful operators and sinks have consumed: what sources
    /// watch for flow control.
    pub(crate) flow: FlowControl,
    /// Records a source may have in flight before it pauses.
    pub(crate) max_in_flight: usize,
    /// Checkpointing, when the job has a checkpoint directory.
    pub(crate) checkpoint: Option<Rc<WorkerCheckpoint>>,
}

/// State one worker's pipeline shares between its streams while it is built.
pub(crate) struct PipelineState<'s> {
    pub(crate) ctx: Rc<WorkerCtx>,
    dead_letters: RefCell<Vec<StreamVec<'s, Time, (u64, DeadLetter)>>>,
    names: RefCell<BTreeSet<String>>,
    /// Checkpointed steps and the streams of their flush records.
    steps: RefCell<Vec<Step>>,
    flushes: RefCell<Vec<StreamVec<'s, Time, FlushRecord>>>,
}

impl<'s> PipelineState<'s> {
    /// A pipeline with no steps yet.
    pub(crate) fn new(ctx: Rc<WorkerCtx>) -> Self {
        PipelineState {
            ctx,
            dead_letters: RefCell::new(Vec::new()),
            names: RefCell::new(BTreeSet::new()),
            steps: RefCell::new(Vec::new()),
            flushes: RefCell::new(Vec::new()),
        }
    }

    /// Claims a step name; names must be unique within a job (they will key
    /// checkpointed state).
    pub(crate) fn claim_name(&self, kind: &str, name: &str) {
        if name.is_empty() {
            self.ctx
                .shared
                .fail(ConfigError::new(format!("a {kind} needs a non-empty name")).into());
        } else if !self.names.borrow_mut().insert(name.to_string()) {
            self.ctx.shared.fail(
                ConfigError::new(format!(
                    "two steps are named `{name}`: give every source, key_by, window and sink its own name"
                ))
                .into(),
            );
        }
    }

    pub(crate) fn add_dead_letters(&self, stream: StreamVec<'s, Time, (u64, DeadLetter)>) {
        self.dead_letters.borrow_mut().push(stream);
    }

    /// The dead-letter streams added so far, taken out.
    pub(crate) fn take_dead_letters(&self) -> Vec<StreamVec<'s, Time, (u64, DeadLetter)>> {
        self.dead_letters.borrow_mut().drain(..).collect()
    }

    /// Whether dead-letter streams were added since they were last taken.
    pub(crate) fn has_dead_letters(&self) -> bool {
        !self.dead_letters.borrow().is_empty()
    }

    /// Registers a checkpointed step and its flush records.
    pub(crate) fn register_step(
        &self,
        name: &str,
        kind: StepKind,
        version: u32,
        flushes: StreamVec<'s, Time, FlushRecord>,
    ) {
        self.steps.borrow_mut().push(Step {
            name: name.to_string(),
            kind,
            version,
        });
        self.flushes.borrow_mut().push(flushes);
    }

    /// The checkpointed steps registered so far, sorted.
    pub(crate) fn steps(&self) -> Vec<Step> {
        let mut steps = self.steps.borrow().clone();
        steps.sort();
        steps
    }

    /// The flush-record streams of the checkpointed steps, taken out.
    pub(crate) fn take_flushes(&self) -> Vec<StreamVec<'s, Time, FlushRecord>> {
        self.flushes.borrow_mut().drain(..).collect()
    }
}

static CTRL_C: AtomicBool = AtomicBool::new(false);
static CTRL_C_HANDLER: Once = Once::new();

/// Whether Ctrl-C was pressed: sources then end as if their input had ended,
/// so windows flush and the summary prints.
pub(crate) fn ctrl_c_pressed() -> bool {
    CTRL_C.load(Ordering::Relaxed)
}

/// Installs the Ctrl-C handler (once per process): the first press ends
/// the sources, a second kills the process the usual way.
pub(crate) fn install_ctrl_c_handler() {
    CTRL_C_HANDLER.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if CTRL_C.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    });
}
