//! The keyed-state primitive every stateful operator sits on.
//!
//! An operator implements [`KeyedLogic`]: what to do with one record of a key
//! (`on_record`), what to fire when the watermark moves (`on_watermark`), and
//! when it next needs to fire (`next_fire`). The primitive owns the hard parts,
//! once:
//!
//! * **Epochs.** Records of the lowest open epoch of the input frontier are
//!   applied as they arrive; records of later epochs are buffered until the
//!   epochs before them complete, so state at an epoch boundary reflects
//!   exactly the records of epochs `<= e` (what a checkpoint will store).
//! * **Order.** Logic that is sensitive to record order (merging session
//!   windows) asks for `ordered()`: records are then applied in stamp order,
//!   once the frontier has passed their stamp, with `on_watermark(stamp)`
//!   called before each stamp's records.
//! * **Watermarks.** `on_watermark(w)` is called with the input watermark,
//!   held back below any buffered record's stamp, so a window never fires
//!   while a record that belongs to it is still waiting.
//! * **Capabilities.** The operator holds the least times it may still emit
//!   at: `(lowest open epoch, next_fire())` for pending state, and the stamp
//!   of each buffered record. When an epoch completes, held times move to the
//!   new lowest epoch, so pending windows never hold checkpoints back.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ExchangeCore;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::CapabilitySet;
use timely::progress::Antichain;

use crate::checkpoint::keyed::KeyedCheckpointer;
use crate::checkpoint::manifest::StepKind;
use crate::checkpoint::runtime::FlushRecord;
use crate::data::{Data, Key};
use crate::error::JobError;
use crate::stream::{KeyedStream, Stream, TimedOutput};
use crate::time::{lowest_open_epoch, watermark_of, Time};

/// What a stateful operator emits from one call: results at event times, and
/// late records at their stamps.
pub struct Emit<O, L> {
    /// (epoch, emit at, event time, result)
    out: Vec<(u64, u64, u64, O)>,
    /// (epoch, stamp, event time, late record)
    late: Vec<(u64, u64, u64, L)>,
    /// How many of `late` were rejected for another reason than lateness
    /// ([`Emit::reject`]): not counted as late. Each one is also an entry
    /// of `late`, so this is at most `late.len()`.
    rejected: usize,
    /// The epoch what is emitted now belongs to (set by the primitive): the
    /// open epoch, or a late record's own epoch if later. Never an epoch
    /// already checkpointed, or a restore would emit it again.
    epoch: u64,
}

impl<O, L> Emit<O, L> {
    /// An empty emitter (for driving a logic directly, as tests do).
    pub fn new() -> Self {
        Emit {
            out: Vec::new(),
            late: Vec::new(),
            rejected: 0,
            epoch: 0,
        }
    }

    /// Emits a result stamped `at`, which must be at least the operator's
    /// `next_fire()` while the result was pending (a window's end plus
    /// allowed lateness); `event_time` is the event time the result carries
    /// downstream (a window's last ms).
    pub fn output(&mut self, at: u64, event_time: u64, value: O) {
        self.out.push((self.epoch, at, event_time, value));
    }

    /// Emits a late record; `stamp` is the stamp the record carried and
    /// `event_time` its event time.
    pub fn late(&mut self, stamp: u64, event_time: u64, value: L) {
        self.late.push((self.epoch, stamp, event_time, value));
    }

    /// Emits, on the late output, a record the logic refuses for another
    /// reason than lateness: one whose event time it cannot represent (a
    /// window that would end past `u64::MAX`). `stamp` is the stamp the
    /// record carried. The job's late counter does not count it.
    pub fn reject(&mut self, stamp: u64, event_time: u64, value: L) {
        self.late.push((self.epoch, stamp, event_time, value));
        self.rejected += 1;
    }

    /// Takes the results emitted so far: (emit at, event time, result).
    pub fn drain_outputs(&mut self) -> impl Iterator<Item = (u64, u64, O)> + '_ {
        self.out.drain(..).map(|(_, at, t, v)| (at, t, v))
    }

    /// Takes the late records emitted so far: (stamp, event time, record).
    pub fn drain_late(&mut self) -> impl Iterator<Item = (u64, u64, L)> + '_ {
        self.rejected = 0;
        self.late.drain(..).map(|(_, at, t, v)| (at, t, v))
    }
}

impl<O, L> Default for Emit<O, L> {
    fn default() -> Self {
        Self::new()
    }
}

/// The logic of a keyed stateful operator. See the module docs.
pub trait KeyedLogic<K, D>: 'static {
    /// Results.
    type Out: Data;
    /// Late records (with whatever context the operator adds).
    type Late: Data;
    /// Whether records must be applied in stamp order.
    fn ordered(&self) -> bool {
        false
    }
    /// Applies one record with its event time and its stamp (the watermark
    /// of its split when it was read).
    fn on_record(
        &mut self,
        key: K,
        event_time: u64,
        record: D,
        stamp: u64,
        emit: &mut Emit<Self::Out, Self::Late>,
    );
    /// The watermark reached `watermark`: emit what is due at or before it.
    fn on_watermark(&mut self, watermark: u64, emit: &mut Emit<Self::Out, Self::Late>);
    /// The earliest event time at which pending state will emit, if any.
    fn next_fire(&self) -> Option<u64>;

    /// How long (processing time) until the logic needs to run again even if
    /// neither input nor the watermark moves: processing-time timers. The
    /// primitive then activates the operator after that long, which calls
    /// `on_watermark` with the current watermark. Default: never.
    fn wake_after(&self) -> Option<std::time::Duration> {
        None
    }

    /// The version of the state encoding; a checkpoint written with another
    /// version is refused at restore.
    fn state_version(&self) -> u32 {
        1
    }

    /// Starts (or stops) remembering which keys change, for checkpoints.
    fn track_changes(&mut self, on: bool);

    /// Appends every key whose state changed since the last call, with its
    /// encoded state now (`None`: the key has no state left).
    ///
    /// A key whose state only lost parts that `on_watermark` removed (a
    /// fired window) may be left out, if [`KeyedLogic::restore_watermark`]
    /// drops such parts on restore: at a high event rate nearly every key
    /// has a window firing in every epoch, and rewriting them all would
    /// make each checkpoint a full snapshot. A key left with no state should
    /// still be reported (`None`), so the store forgets it.
    fn take_changes(&mut self, out: &mut Vec<(K, Option<Vec<u8>>)>);

    /// Before the keys of one checkpoint store are restored: when that
    /// checkpoint was taken, `on_watermark` had run with watermarks up to
    /// `watermark`, so restored state due at or before it had already been
    /// emitted and must be dropped, not emitted again. Default: nothing
    /// (every logic that reports each such change in `take_changes`).
    fn restore_watermark(&mut self, watermark: u64) {
        let _ = watermark;
    }

    /// Installs one key's state from a checkpoint. A restored key counts as
    /// changed while changes are tracked (a restore into a new store
    /// generation writes every restored key again; one into the same store
    /// restarts tracking afterwards).
    fn restore(&mut self, key: K, state: &[u8]) -> Result<(), String>;
}

type Buffered<D> = BTreeMap<Time, Vec<(u64, D)>>;

impl<'s, K: Key, D: Data> KeyedStream<'s, K, D> {
    /// Runs a keyed stateful operator; returns its results and its late records.
    pub fn stateful<L: KeyedLogic<K, D>>(
        self,
        name: &str,
        mut logic: L,
    ) -> (Stream<'s, L::Out>, Stream<'s, L::Late>) {
        self.state.claim_name("stateful operator", name);
        let state = Rc::clone(&self.state);
        let consumer = (!self.held).then(|| state.ctx.flow.register());
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
        let mut checkpointer = state
            .ctx
            .checkpoint
            .as_ref()
            .map(|w| KeyedCheckpointer::new(Rc::clone(w), name));
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
            let mut buffered: Buffered<D> = BTreeMap::new();
            let mut emit = Emit::new();
            let ordered = logic.ordered();
            // The flush output's capability: at the next epoch to flush.
            let mut flush_cap = initial.pop().filter(|_| checkpointer.is_some());
            let mut restore_flush = None;
            // The highest watermark `on_watermark` has run with.
            let mut fired_through = 0;
            // After a restore, nothing is emitted at or before the restored epoch.
            let mut epoch_floor = 0;
            if let Some(checkpointer) = &mut checkpointer {
                logic.track_changes(true);
                match checkpointer.restore(&mut logic, &mut buffered) {
                    Ok(Some(epoch)) => {
                        // Restored state emits after the restored epoch:
                        // hold the initial capabilities there until the
                        // first downgrade.
                        let after = Time::new(epoch + 1, 0);
                        epoch_floor = epoch + 1;
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
                        if checkpointer.flushed_through.is_none() {
                            // A new generation: write the restored state as
                            // the restored epoch first.
                            restore_flush = Some(epoch);
                        }
                    }
                    Ok(None) => {}
                    Err(message) => shared.fail(JobError::Checkpoint(message)),
                }
            }
            drop(initial);

            move |frontiers| {
                let frontier = frontiers[0].frontier();
                let open_epoch = lowest_open_epoch(frontier);
                let watermark = watermark_of(frontier);
                if let Some(consumer) = &consumer {
                    consumer.consumed_below(watermark);
                }

                // Results of this activation belong to the open epoch.
                let fire_epoch = if open_epoch == u64::MAX {
                    u64::MAX
                } else {
                    open_epoch.max(epoch_floor)
                };

                // Checkpoint epochs that completed, before this activation's
                // input (which belongs to the open epoch or later).
                if let Some(checkpointer) = &mut checkpointer {
                    let due = restore_flush.take().or_else(|| {
                        let last = open_epoch.checked_sub(1).filter(|_| open_epoch != u64::MAX)?;
                        (checkpointer.flushed_through < Some(last)).then_some(last)
                    });
                    if let Some(epoch) = due {
                        if !ordered {
                            // Records of finished epochs apply before the cut.
                            let done: Vec<Time> = buffered.keys().filter(|t| t.epoch <= epoch).copied().collect();
                            for time in done {
                                if let Some(records) = buffered.remove(&time) {
                                    // Before the cut: what they emit belongs to their epoch.
                                    emit.epoch = time.epoch;
                                    for (event_time, record) in records {
                                        logic.on_record(key(&record), event_time, record, time.event, &mut emit);
                                    }
                                }
                            }
                        }
                        let flushed = checkpointer
                            .flush(epoch, fired_through, &mut logic, &buffered, &*key)
                            .and_then(|checksum| {
                                checkpointer.worker.maybe_fold().map_err(|e| e.to_string())?;
                                Ok(checksum)
                            });
                        match flushed {
                            Ok(checksum) => {
                                if let Some(cap) = &mut flush_cap {
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
                            }
                            Err(message) => shared.fail(JobError::Checkpoint(message)),
                        }
                    }
                    if open_epoch == u64::MAX {
                        flush_cap = None;
                    }
                }

                input.for_each(|cap, data| {
                    let Some(time) = cap.stamp().iter().next().copied() else {
                        // A message sent under no capability makes no claims.
                        return;
                    };
                    for t in cap.stamp().iter() {
                        hold_out.insert(cap.delayed(t, 0));
                        hold_late.insert(cap.delayed(t, 1));
                    }
                    if ordered || time.epoch > open_epoch {
                        buffered.entry(time).or_default().append(data);
                    } else {
                        emit.epoch = time.epoch.max(fire_epoch);
                        for (event_time, record) in data.drain(..) {
                            logic.on_record(key(&record), event_time, record, time.event, &mut emit);
                        }
                    }
                });

                // Records of later epochs hold the watermark below their stamps.
                let waiting_epochs = buffered
                    .iter()
                    .filter(|(t, _)| t.epoch > open_epoch)
                    .map(|(t, _)| t.event)
                    .min()
                    .unwrap_or(u64::MAX);
                let effective = watermark.min(waiting_epochs);
                // The end of input passes every stamp, u64::MAX included:
                // weir's sources never stamp it, but a window's output fired
                // at u64::MAX (saturated lateness, or a window ending at
                // u64::MAX) carries that stamp to a downstream step (a
                // process step, or a window of windows). Nothing stays
                // buffered once the input has ended.
                let ended = frontier.is_empty();
                let mut ready: Vec<Time> = buffered
                    .keys()
                    .filter(|t| t.epoch <= open_epoch && (!ordered || t.event < effective || ended))
                    .copied()
                    .collect();
                ready.sort_by_key(|t| (t.event, t.epoch));
                for time in ready {
                    if ordered {
                        emit.epoch = fire_epoch;
                        logic.on_watermark(time.event, &mut emit);
                        fired_through = fired_through.max(time.event);
                    }
                    if let Some(records) = buffered.remove(&time) {
                        emit.epoch = time.epoch.max(fire_epoch);
                        for (event_time, record) in records {
                            logic.on_record(key(&record), event_time, record, time.event, &mut emit);
                        }
                    }
                }
                let still_waiting = buffered.keys().map(|t| t.event).min().unwrap_or(u64::MAX);
                let fire_to = effective.min(still_waiting);
                emit.epoch = fire_epoch;
                logic.on_watermark(fire_to, &mut emit);
                fired_through = fired_through.max(fire_to);

                // Emit results in the epoch they belong to.
                if !emit.out.is_empty() {
                    emit.out.sort_by_key(|(epoch, at, _, _)| (*epoch, *at));
                    let mut handle = out.activate();
                    let mut results = emit.out.drain(..).peekable();
                    while let Some((epoch, at, event_time, first)) = results.next() {
                        let cap = delayed_to(&hold_out, epoch, at, &operator);
                        let mut session = handle.session(&cap);
                        session.give((event_time, first));
                        while let Some((_, _, t, value)) =
                            results.next_if(|(e, a, _, _)| *e == epoch && *a == at)
                        {
                            session.give((t, value));
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
                        handle.session(&cap).give((event_time, value));
                    }
                }

                // Hold only what may still be emitted.
                let mut waiting = Antichain::new();
                for time in buffered.keys() {
                    waiting.insert(*time);
                }
                let mut pending = waiting.clone();
                if let Some(fire) = logic.next_fire() {
                    let epoch = if open_epoch == u64::MAX {
                        hold_out.iter().map(|c| c.time().epoch).max().unwrap_or(0)
                    } else {
                        open_epoch.max(epoch_floor)
                    };
                    pending.insert(Time::new(epoch, fire));
                }
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

/// A capability at `(epoch, event)`, or, if none is held that early (the
/// input has ended and the open epoch is unknown), at the latest held epoch
/// that allows `event`.
fn delayed_to(
    held: &CapabilitySet<Time>,
    epoch: u64,
    event: u64,
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
