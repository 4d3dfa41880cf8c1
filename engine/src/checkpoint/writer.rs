//! The manifest writer: collects every step's flush records on worker 0 and
//! records an epoch as complete once timely says no flush for it can still
//! arrive and the flushes that did arrive make it complete. The rules are
//! [`protocol`](super::protocol)'s: [`epoch_complete`] decides completeness,
//! [`retained`] which epochs the manifest keeps, [`fold_through`] how far
//! workers may fold.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
use crate::time::{lowest_open_epoch, Time};

pub(crate) fn manifest_writer(
    flushes: StreamVec<'_, Time, FlushRecord>,
    checkpoint: Rc<WorkerCheckpoint>,
    steps: Vec<Step>,
    shared: Arc<JobShared>,
) {
    let hint = Rc::clone(&checkpoint);
    let targets: StreamVec<'_, Time, u64> = flushes
        .unary_frontier::<CapacityContainerBuilder<Vec<u64>>, _, _, _>(
            Exchange::new(|_: &FlushRecord| 0u64),
            "Manifest",
            move |_, _| {
                let mut pending: BTreeMap<u64, Vec<FlushRecord>> = BTreeMap::new();
                // Capabilities of pending epochs: fold targets go out at them.
                let mut held: CapabilitySet<Time> = CapabilitySet::new();
                let mut announced = 0;
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
                        if *entry.key() >= open {
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
                        // Tell every worker, in every process, how far it
                        // may fold.
                        let target = checkpoint.plan.fold_target.load(Ordering::SeqCst);
                        if target > announced {
                            if let Some(cap) = held.try_delayed(&Time::new(epoch, 0)) {
                                output.session(&cap).give(target);
                                announced = target;
                            }
                        }
                    }
                    // Keep capabilities only where flushes may still arrive.
                    let mut next = CapabilitySet::new();
                    for time in frontier.frontier().iter() {
                        if let Some(cap) = held.try_delayed(time) {
                            next.insert(cap);
                        }
                    }
                    held = next;
                }
            },
        );
    // Workers outside the manifest writer's process learn fold targets here.
    targets
        .broadcast()
        .inspect(move |target| hint.allow_fold(*target));
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
    m.complete = retained(&m.complete, plan.keep);
    manifest::write(&plan.dir, &m)?;
    plan.mark_complete(epoch);
    let epochs: Vec<u64> = m.complete.iter().map(|e| e.epoch).collect();
    // Fold only below the oldest kept epoch: its own delta and marker stay,
    // so a restore that falls back to it can still verify it.
    if let Some(target) = fold_through(&epochs, plan.keep, None) {
        plan.fold_target
            .fetch_max(target.saturating_sub(1), Ordering::SeqCst);
    }
    Ok(())
}
