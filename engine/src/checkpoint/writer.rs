//! The manifest writer: collects every step's flush records on worker 0 and
//! records an epoch as complete once timely says no flush for it can still
//! arrive and the flushes that did arrive make it complete. The rules are
//! [`protocol`](super::protocol)'s: [`epoch_complete`] decides completeness,
//! [`retained`] which epochs the manifest keeps, [`fold_through`] how far
//! workers may fold.
//!
//! Each epoch it records goes out to every worker of every process through
//! the dataflow (a broadcast of [`Completed`]): the epoch, now complete, and
//! how far deltas may be folded. A worker keeps the newest it heard of
//! ([`WorkerCheckpoint::last_complete`]), and its process's [`Plan`] learns
//! it too, so completion is known everywhere, not only in the writer's
//! process.
//!
//! [`Plan`]: super::runtime::Plan

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{CapabilitySet, Inspect};
use timely::dataflow::StreamVec;

use super::manifest::{self, Entry, Flush, Step};
use super::protocol::{epoch_complete, fold_through, retained};
use super::runtime::{FlushRecord, WorkerCheckpoint};
use crate::error::JobError;
use crate::metrics::JobShared;
use crate::sink_protocol::FINAL_EPOCH;
use crate::time::{lowest_open_epoch, Time};

/// What the manifest writer tells every worker once it recorded an epoch
/// complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Completed {
    /// The epoch recorded complete.
    pub(crate) epoch: u64,
    /// Deltas through this epoch may be folded into the base (0: none yet).
    pub(crate) fold_target: u64,
}

pub(crate) fn manifest_writer(
    flushes: StreamVec<'_, Time, FlushRecord>,
    checkpoint: Rc<WorkerCheckpoint>,
    steps: Vec<Step>,
    shared: Arc<JobShared>,
) {
    let hint = Rc::clone(&checkpoint);
    let counters = Arc::clone(&shared);
    let completed: StreamVec<'_, Time, Completed> = flushes
        .unary_frontier::<CapacityContainerBuilder<Vec<Completed>>, _, _, _>(
            Exchange::new(|_: &FlushRecord| 0u64),
            "Manifest",
            move |_, _| {
                let mut pending: BTreeMap<u64, Vec<FlushRecord>> = BTreeMap::new();
                // Capabilities of pending epochs: announcements go out at them.
                let mut held: CapabilitySet<Time> = CapabilitySet::new();
                move |(input, frontier), output| {
                    input.for_each(|cap, data| {
                        for c in cap.retain_stamp(0).iter() {
                            held.insert(c.clone());
                        }
                        for record in data.drain(..) {
                            pending.entry(record.epoch).or_default().push(record);
                        }
                    });
                    if shared.stop_requested() {
                        // A failed or interrupted job: a source that stopped
                        // without recording its positions no longer holds the
                        // frontier back, so later epochs would look complete
                        // without covering its splits. Record nothing more.
                        pending.clear();
                        held = CapabilitySet::new();
                        return;
                    }
                    let open = lowest_open_epoch(frontier.frontier());
                    while let Some(entry) = pending.first_entry() {
                        if *entry.key() >= open.min(FINAL_EPOCH) {
                            break;
                        }
                        let (epoch, records) = entry.remove_entry();
                        let flushed: Vec<(usize, &str)> = records
                            .iter()
                            .map(|r| (r.worker, r.step.as_str()))
                            .collect();
                        if !epoch_complete(&steps, checkpoint.workers, &flushed) {
                            // A step skipped this epoch (several epochs completed
                            // at once): it is not restorable. Later ones are.
                            continue;
                        }
                        let recorded = record_complete(&checkpoint, &steps, epoch, records);
                        if recorded.is_ok() {
                            shared.checkpoints.fetch_add(1, Ordering::Relaxed);
                            shared
                                .last_checkpoint
                                .fetch_max(epoch + 1, Ordering::Relaxed);
                        }
                        if let Err(e) = recorded {
                            shared.fail(JobError::Checkpoint(format!(
                                "writing the manifest in {}: {e}",
                                checkpoint.plan.dir.display()
                            )));
                            held = CapabilitySet::new();
                            return;
                        }
                        // Tell every worker, in every process, that the epoch
                        // is complete and how far it may fold (at any time
                        // held: only the message matters).
                        if let Some(cap) = held.first() {
                            output.session(cap).give(Completed {
                                epoch,
                                fold_target: checkpoint.plan.fold_target.load(Ordering::SeqCst),
                            });
                        }
                    }
                    // Every exactly-once sink reported the end of its input
                    // (they hold the frontier at FINAL_EPOCH until told):
                    // record the run finished, then let them commit it.
                    if open >= FINAL_EPOCH && pending.remove(&FINAL_EPOCH).is_some() {
                        if let Err(e) = checkpoint.plan.finish() {
                            shared.fail(JobError::Checkpoint(e.to_string()));
                            held = CapabilitySet::new();
                            return;
                        }
                        if let Some(cap) = held.first() {
                            output.session(cap).give(Completed {
                                epoch: FINAL_EPOCH,
                                fold_target: checkpoint.plan.fold_target.load(Ordering::SeqCst),
                            });
                        }
                    }
                    // Keep capabilities only where flushes may still arrive
                    // (and some while any may: the next announcement needs one).
                    let mut next = CapabilitySet::new();
                    for time in frontier.frontier().iter() {
                        if let Some(cap) = held.try_delayed(time) {
                            next.insert(cap);
                        }
                    }
                    if next.is_empty() && !frontier.frontier().is_empty() {
                        next = held.clone();
                    }
                    held = next;
                }
            },
        );
    // Every worker learns of it here; a process other than the writer's
    // counts the checkpoint when its first worker does.
    completed.broadcast().inspect(move |done| {
        if hint.learn_complete(*done) {
            counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            counters
                .last_checkpoint
                .fetch_max(done.epoch + 1, Ordering::Relaxed);
        }
    });
}

fn record_complete(
    checkpoint: &WorkerCheckpoint,
    steps: &[Step],
    epoch: u64,
    records: Vec<FlushRecord>,
) -> std::io::Result<()> {
    let plan = &checkpoint.plan;
    let mut m = match plan.manifest.lock() {
        Ok(m) => m,
        Err(poisoned) => poisoned.into_inner(),
    };
    m.steps = steps.to_vec();
    m.workers = checkpoint.workers;
    m.generation = plan.generation;
    let mut flushes: Vec<Flush> = records
        .into_iter()
        .map(|r| Flush {
            worker: r.worker,
            step: r.step,
            checksum: r.checksum,
        })
        .collect();
    flushes.sort();
    m.complete.retain(|e| e.epoch != epoch);
    m.complete.push(Entry { epoch, flushes });
    m.complete = retained(&m.complete, plan.keep, plan.kept_from());
    manifest::write(&plan.dir, &m)?;
    plan.mark_complete(epoch);
    let epochs: Vec<u64> = m.complete.iter().map(|e| e.epoch).collect();
    // Fold only below the oldest kept epoch: its own delta and marker stay,
    // so a restore that falls back to it can still verify it.
    if let Some(target) = fold_through(&epochs, plan.keep.max(epochs.len()), None) {
        plan.fold_target
            .fetch_max(target.saturating_sub(1), Ordering::SeqCst);
    }
    Ok(())
}
