//! The manifest writer: collects every step's flush records on worker 0 and
//! records an epoch as complete once timely says no flush for it can still
//! arrive and every stateful step on every worker flushed it.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::manifest::{self, Entry, Flush, Step};
use super::protocol::fold_through;
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
    // Every stateful step flushes on every worker; an exactly-once sink on
    // the one worker that writes it.
    let expected = steps.iter().filter(|s| s.kind == "state").count() * checkpoint.workers
        + steps.iter().filter(|s| s.kind == "sink").count();
    let _: StreamVec<'_, Time, ()> = flushes
        .unary_frontier::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
            Exchange::new(|_: &FlushRecord| 0u64),
            "Manifest",
            move |_, _| {
                let mut pending: BTreeMap<u64, Vec<FlushRecord>> = BTreeMap::new();
                move |(input, frontier), _output| {
                    input.for_each(|_, data| {
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
                        return;
                    }
                    let open = lowest_open_epoch(frontier.frontier());
                    while let Some(entry) = pending.first_entry() {
                        if *entry.key() >= open {
                            break;
                        }
                        let (epoch, records) = entry.remove_entry();
                        let state_flushes = records.iter().filter(|r| r.kind != "source").count();
                        if state_flushes != expected || records.is_empty() {
                            // A step skipped this epoch (several epochs completed
                            // at once): it is not restorable. Later ones are.
                            continue;
                        }
                        if let Err(e) = record_complete(&checkpoint, &steps, epoch, records) {
                            shared.fail(JobError::Checkpoint(format!(
                                "writing the manifest in {}: {e}",
                                checkpoint.plan.dir.display()
                            )));
                        }
                    }
                }
            },
        );
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
    m.complete.sort_by_key(|e| e.epoch);
    let drop = m.complete.len().saturating_sub(plan.keep);
    m.complete.drain(..drop);
    manifest::write(&plan.dir, &m)?;
    plan.mark_complete(epoch);
    let epochs: Vec<u64> = m.complete.iter().map(|e| e.epoch).collect();
    if let Some(target) = fold_through(&epochs, plan.keep, None) {
        plan.fold_target.fetch_max(target, Ordering::SeqCst);
    }
    Ok(())
}
