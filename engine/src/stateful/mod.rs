//! The keyed-state primitive every stateful operator sits on.
//!
//! An operator implements [`KeyedOperator`] (in `stateful/keyed_operator.rs`):
//! what happens to a key's state on one record (`on_record`), what to fire
//! when the watermark moves (`on_watermark`), and when it next needs to fire
//! (`next_fire`). The primitive keeps every key's state and its event-time
//! and processing-time timers ([`Keys`], in `stateful/keyed_state.rs` and
//! `stateful/timers.rs`), records which keys change, and checkpoints and
//! restores them itself ([`Managed`]; the store layout is
//! `checkpoint/keyed.rs`'s). The state is one value per key
//! ([`KeyedState`]) or, for state read a namespace at a time such as window
//! panes, one per key and namespace, stored namespace-major
//! ([`SpacedState`]); both are [`StateTable`]s, which is all a checkpoint
//! needs of them (`stateful/state_table.rs`). [`KeyedLogic`] (in
//! `stateful/logic.rs`) is the lower level the primitive runs, for an
//! operator that keeps its own state and encodes its own checkpoints.
//!
//! The primitive owns the hard parts, once. Its decisions — apply or buffer by
//! epoch, order by stamp, release and fire, flush completed epochs, hold
//! capabilities — are the pure state machine in `stateful/core.rs`,
//! tested there as tables; this module is the timely operator around it,
//! which carries out the core's steps by calling the logic and the
//! checkpointer, and emits at the times the core says to hold.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ExchangeCore;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::CapabilitySet;
use timely::progress::Antichain;

use crate::checkpoint::keyed::{Flushed, KeyedCheckpointer};
use crate::checkpoint::manifest::StepKind;
use crate::checkpoint::runtime::FlushRecord;
use crate::data::{Data, Key};
use crate::time::{Epoch, EventTime};

mod core;
mod keyed_operator;
mod keyed_state;
mod logic;
mod spaced_state;
mod state_table;
mod timers;

use self::core::{Frontier, KeyedCore, Step};
pub use self::keyed_operator::{KeyedOperator, Managed};
pub use self::keyed_state::{KeyedState, Keys};
pub use self::logic::{Changes, Emit, KeyedLogic};
pub use self::spaced_state::{Space, SpacedState};
pub use self::state_table::{StateTable, StoredVisitor};
pub use self::timers::Timers;
use crate::error::JobError;
use crate::stream::{KeyedStream, Stream, TimedOutput};
use crate::time::{lowest_open_epoch, watermark_of, Time};

impl<'s, K: Key, D: Data> KeyedStream<'s, K, D> {
    /// Runs a [`KeyedOperator`], whose keys' state and timers the primitive
    /// keeps, checkpoints and restores; returns its results and its late
    /// records.
    pub fn keyed<O: KeyedOperator<K, D>>(
        self,
        name: &str,
        operator: O,
    ) -> (Stream<'s, O::Out>, Stream<'s, O::Late>) {
        self.stateful(name, Managed::new(operator))
    }

    /// Runs a keyed stateful operator; returns its results and its late records.
    pub fn stateful<L: KeyedLogic<K, D>>(
        self,
        name: &str,
        mut logic: L,
    ) -> (Stream<'s, L::Out>, Stream<'s, L::Late>) {
        self.state.claim_name("stateful operator", name);
        let state = Rc::clone(&self.state);
        let consumer = (!self.held).then(|| state.ctx.flow.register());
        let epoch_seen = state.ctx.flow.epoch_seen();
        let route = self.router();
        let key = Rc::clone(&self.key);
        let input_stream = self.inner;
        let scope = input_stream.scope();
        let mut builder = OperatorBuilder::new(name.to_string(), scope);
        let mut input = builder.new_input(
            input_stream,
            ExchangeCore::new(move |r: &(u64, D)| route(r)),
        );
        let (out, out_stream) = builder.new_output::<Vec<(u64, L::Out)>>();
        let (late, late_stream) = builder.new_output::<Vec<(u64, L::Late)>>();
        let (flushes, flush_stream) = builder.new_output::<Vec<FlushRecord>>();
        let mut flushes: OutputBuilder<Time, CapacityContainerBuilder<Vec<FlushRecord>>> =
            OutputBuilder::from(flushes);
        let mut checkpointer = state.ctx.checkpoint.as_ref().map(|w| {
            let wake = scope
                .worker()
                .sync_activator_for(builder.operator_info().address.to_vec());
            KeyedCheckpointer::new(Rc::clone(w), name, Some(wake))
        });
        if checkpointer.is_some() {
            state.register_step(name, StepKind::State, logic.state_version(), flush_stream);
        }
        let mut out: TimedOutput<L::Out> = OutputBuilder::from(out);
        let mut late: TimedOutput<L::Late> = OutputBuilder::from(late);
        let shared = std::sync::Arc::clone(&state.ctx.shared);
        let operator = name.to_string();
        // Wakes the operator for processing-time timers (`wake_after`).
        let activator = scope.activator_for(builder.operator_info().address);
        let mut wake_scheduled: Option<std::time::Instant> = None;

        builder.build(move |mut initial| {
            let mut hold_out: CapabilitySet<Time> = CapabilitySet::new();
            let mut hold_late: CapabilitySet<Time> = CapabilitySet::new();
            let mut core: KeyedCore<D> = KeyedCore::new(logic.ordered());
            let mut emit = Emit::new();
            // The flush output's capability: at the next epoch to flush.
            let mut flush_cap = initial.pop().filter(|_| checkpointer.is_some());
            if let Some(checkpointer) = &mut checkpointer {
                logic.track_changes(true);
                match checkpointer.restore(&mut logic, core.buffered_mut()) {
                    Ok(Some(epoch)) => {
                        // Restored state emits after the restored epoch:
                        // hold the initial capabilities there until the
                        // first downgrade.
                        let after = Time::new(epoch + 1, 0);
                        if let Some(mut late_cap) = initial.pop() {
                            late_cap.downgrade(&after);
                            hold_late.insert(late_cap);
                        }
                        if let Some(mut out_cap) = initial.pop() {
                            out_cap.downgrade(&after);
                            hold_out.insert(out_cap);
                        }
                        if let Some(cap) = &mut flush_cap {
                            cap.downgrade(&Time::new(epoch, 0));
                        }
                        // A new generation writes the restored state as the
                        // restored epoch first.
                        core.restored(epoch, checkpointer.flushed_through.is_none());
                    }
                    Ok(None) => {}
                    Err(message) => shared.fail(JobError::Checkpoint(message)),
                }
            }
            drop(initial);

            move |frontiers| {
                let frontier = frontiers[0].frontier();
                let watermark = watermark_of(frontier);
                if let Some(consumer) = &consumer {
                    consumer.consumed_below(watermark);
                }
                let view = Frontier {
                    open_epoch: lowest_open_epoch(frontier),
                    watermark,
                    ended: frontier.is_empty(),
                };

                // Flushes the writer thread has written since: reported in
                // epoch order; at the end of the input, all of them.
                let ending = view.open_epoch == u64::MAX;
                if let Some(checkpointer) = &mut checkpointer {
                    let written = checkpointer.written(false);
                    report_written(written, &mut flush_cap, &mut flushes, checkpointer, &shared);
                }

                let flushed_through = checkpointer.as_ref().map(|c| c.flushed_through);
                // Carries out one step of the core's.
                let mut run = |step: Step<D>, core: &KeyedCore<D>| match step {
                    Step::Records {
                        epoch,
                        stamp,
                        records,
                    } => {
                        emit.epoch = Epoch(epoch);
                        for (event_time, record) in records {
                            let (event_time, stamp) = (EventTime(event_time), EventTime(stamp));
                            logic.on_record(key(&record), event_time, record, stamp, &mut emit);
                        }
                    }
                    Step::Watermark { epoch, watermark } => {
                        emit.epoch = Epoch(epoch);
                        logic.on_watermark(EventTime(watermark), &mut emit);
                    }
                    Step::Flush { epoch } => {
                        let Some(checkpointer) = &mut checkpointer else {
                            return;
                        };
                        let flushed = checkpointer
                            .flush(epoch, core.fired_through(), &mut logic, core.buffered(), &*key)
                            .and_then(|checksum| {
                                checkpointer.worker.maybe_fold().map_err(|e| e.to_string())?;
                                Ok(checksum)
                            });
                        match flushed {
                            Ok(Flushed::Written(checksum)) => report_flush(
                                &mut flush_cap,
                                &mut flushes,
                                checkpointer,
                                epoch,
                                checksum,
                            ),
                            // Reported once written (below, in a later
                            // activation).
                            Ok(Flushed::Writing) => {}
                            Err(message) => shared.fail(JobError::Checkpoint(message)),
                        }
                    }
                };

                // Checkpoint epochs that completed, before this activation's
                // input (which belongs to the open epoch or later).
                for step in core.begin(view, flushed_through) {
                    run(step, &core);
                }

                input.for_each(|cap, data| {
                    let Some(time) = cap.stamp().iter().next().copied() else {
                        // A message sent under no capability makes no claims.
                        return;
                    };
                    epoch_seen.saw(time.epoch);
                    for t in cap.stamp().iter() {
                        hold_out.insert(cap.delayed(t, 0));
                        hold_late.insert(cap.delayed(t, 1));
                    }
                    if let Some(step) = core.arrive(time, std::mem::take(data)) {
                        run(step, &core);
                    }
                });
                for step in core.finish() {
                    run(step, &core);
                }
                if ending {
                    if let Some(checkpointer) = &mut checkpointer {
                        let written = checkpointer.written(true);
                        report_written(written, &mut flush_cap, &mut flushes, checkpointer, &shared);
                    }
                    flush_cap = None;
                }

                // Emit results in the epoch they belong to.
                if !emit.out.is_empty() {
                    emit.out.sort_by_key(|(epoch, at, _, _)| (*epoch, *at));
                    let mut handle = out.activate();
                    let mut results = emit.out.drain(..).peekable();
                    while let Some((epoch, at, event_time, first)) = results.next() {
                        let cap = delayed_to(&hold_out, epoch, at, &operator);
                        let mut session = handle.session(&cap);
                        session.give((event_time.ms(), first));
                        while let Some((_, _, t, value)) =
                            results.next_if(|(e, a, _, _)| *e == epoch && *a == at)
                        {
                            session.give((t.ms(), value));
                        }
                    }
                }
                if !emit.late.is_empty() {
                    // `rejected` counts entries of `late`, so it is at most
                    // `late.len()`; taking it resets it for the next call.
                    let late_count = emit.late.len() - std::mem::take(&mut emit.rejected);
                    shared
                        .late
                        .fetch_add(late_count as u64, Ordering::Relaxed);
                    let mut handle = late.activate();
                    for (epoch, stamp, event_time, value) in emit.late.drain(..) {
                        let cap = delayed_to(&hold_late, epoch, stamp, &operator);
                        handle.session(&cap).give((event_time.ms(), value));
                    }
                }

                // Hold only what may still be emitted.
                let latest_held = hold_out.iter().map(|c| c.time().epoch).max().unwrap_or(0);
                let next_fire = logic.next_fire().map(EventTime::ms);
                let (pending, waiting) = core.holds(next_fire, latest_held);
                let pending: Antichain<Time> = pending.into_iter().collect();
                let waiting: Antichain<Time> = waiting.into_iter().collect();
                if hold_out.try_downgrade(pending.elements()).is_err() {
                    panic!(
                        "weir invariant broken in `{operator}`: pending state needs times {:?} not covered by held capabilities",
                        pending.elements()
                    );
                }
                if hold_late.try_downgrade(waiting.elements()).is_err() {
                    panic!("weir invariant broken in `{operator}`: buffered records lost their capabilities");
                }
                if let Some(delay) = logic.wake_after() {
                    // One scheduled wake at a time, unless an earlier one is needed.
                    // A wake past what an Instant holds is never.
                    let now = std::time::Instant::now();
                    if let Some(at) = now.checked_add(delay) {
                        if wake_scheduled.is_none_or(|w| w <= now || at < w) {
                            activator.activate_after(delay);
                            wake_scheduled = Some(at);
                        }
                    }
                }
            }
        });

        let results = Stream::new(out_stream, Rc::clone(&self.state), true);
        // Late records are not held back by pending state.
        let lates = Stream::new(late_stream, self.state, false);
        (results, lates)
    }
}

/// Reports `checkpointer`'s flush of `epoch` (durable, with `checksum`) to
/// the manifest writer, and moves the flush capability past it.
fn report_flush<K: Key>(
    cap: &mut Option<timely::dataflow::operators::Capability<Time>>,
    flushes: &mut OutputBuilder<Time, CapacityContainerBuilder<Vec<FlushRecord>>>,
    checkpointer: &KeyedCheckpointer<K>,
    epoch: u64,
    checksum: u64,
) {
    let Some(cap) = cap else { return };
    let record = FlushRecord {
        epoch,
        worker: checkpointer.worker.worker,
        step: checkpointer.step.clone(),
        kind: StepKind::State,
        checksum,
    };
    let at = cap.delayed(&Time::new(epoch, 0));
    flushes.activate().session(&at).give(record);
    cap.downgrade(&Time::new(epoch + 1, 0));
}

/// Reports the flushes the writer thread wrote (`written`), or fails the
/// job with why it could not.
fn report_written<K: Key>(
    written: Result<Vec<(u64, u64)>, String>,
    cap: &mut Option<timely::dataflow::operators::Capability<Time>>,
    flushes: &mut OutputBuilder<Time, CapacityContainerBuilder<Vec<FlushRecord>>>,
    checkpointer: &KeyedCheckpointer<K>,
    shared: &crate::metrics::JobShared,
) {
    match written {
        Ok(written) => {
            for (epoch, checksum) in written {
                report_flush(cap, flushes, checkpointer, epoch, checksum);
            }
        }
        Err(message) => shared.fail(JobError::Checkpoint(message)),
    }
}

/// A capability at `(epoch, event)`, or, if none is held that early (the
/// input has ended and the open epoch is unknown), at the latest held epoch
/// that allows `event`.
fn delayed_to(
    held: &CapabilitySet<Time>,
    Epoch(epoch): Epoch,
    EventTime(event): EventTime,
    operator: &str,
) -> timely::dataflow::operators::Capability<Time> {
    if let Some(cap) = held.try_delayed(&Time::new(epoch, event)) {
        return cap;
    }
    let latest = held
        .iter()
        .filter(|c| c.time().event <= event)
        .map(|c| c.time().epoch)
        .max();
    match latest.and_then(|epoch| held.try_delayed(&Time::new(epoch, event))) {
        Some(cap) => cap,
        None => panic!(
            "weir invariant broken in `{operator}`: emitting at event time {event} without a held capability at or before it"
        ),
    }
}
