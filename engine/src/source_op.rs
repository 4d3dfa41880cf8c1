//! The source operator: splits in, stamped records and dead letters out.
//!
//! Per activation the operator, on each worker:
//! 1. closes an epoch if the epoch interval has passed (wall clock);
//! 2. pauses if too many of its records are still unconsumed downstream
//!    (flow control: stateful operators and sinks report how far they
//!    have consumed, see `flow`);
//! 3. reads a batch from each split it owns, stamps each record with its
//!    split's watermark at read time, and emits it at `Time { epoch, stamp }`;
//! 4. holds its capability at the least watermark over its live splits, so
//!    timely's frontier is the job's watermark. Idle splits stop holding;
//!    finished splits drop out; when all are finished the capability goes.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Scope;

use timely::container::CapacityContainerBuilder;

use crate::checkpoint::layout;
use crate::checkpoint::manifest::StepKind;
use crate::checkpoint::runtime::{FlushRecord, WorkerCheckpoint};
use crate::checkpoint::store::{load_positions_through, write_epoch, Position};
use crate::data::Data;
use crate::dead_letter::{DeadLetter, Origin, Raw};
use crate::error::retry_delay;
use crate::error::JobError;
use crate::ids::SplitId;
use crate::source::{ReadItem, ReadStatus, Source, SplitReader, SplitStart, Waker};
use crate::time::{Time, TimedOutput, TimedStream};
use crate::watermark::{SplitWatermark, Watermarks};
use crate::worker_context::{ctrl_c_pressed, WorkerCtx};

/// Records read per split per activation.
const BATCH: usize = 4096;

/// An event time as an extractor may return it.
pub trait IntoEventTime {
    /// The event time in ms, or `None` if the record has none.
    fn into_event_time(self) -> Option<u64>;
}

impl IntoEventTime for u64 {
    fn into_event_time(self) -> Option<u64> {
        Some(self)
    }
}

impl IntoEventTime for Option<u64> {
    fn into_event_time(self) -> Option<u64> {
        self
    }
}

struct SplitState<T> {
    id: SplitId,
    reader: Option<Box<dyn SplitReader<T>>>,
    watermark: SplitWatermark,
    /// Records (good or bad) read so far: the offset of the next one.
    offset: u64,
    done: bool,
    /// When the split last produced a record (or was opened).
    last_data: Instant,
    /// Whether the idle timeout has released this split.
    idle: bool,
    /// After a transient fault: how many in a row, and when to try again.
    retry: Option<(u32, Instant)>,
}

pub(crate) fn build_source<'s, S>(
    scope: Scope<'s, Time>,
    state: &Rc<WorkerCtx>,
    name: &str,
    mut source: S,
    extract: impl Fn(&S::Item, Option<u64>) -> Option<u64> + 'static,
    strategy: Watermarks,
    register: Option<RegisterFlushes<'s>>,
) -> (TimedStream<'s, S::Item>, TimedStream<'s, DeadLetter>)
where
    S: Source,
    S::Item: Data,
{
    let mut builder = OperatorBuilder::new(format!("Source({name})"), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(Rc::clone(&info.address));
    let wake = Arc::new(scope.worker().sync_activator_for(info.address.to_vec()));
    let (records_out, records) = builder.new_output::<Vec<(u64, S::Item)>>();
    let (dead_out, dead) = builder.new_output::<Vec<(u64, DeadLetter)>>();
    let mut records_out: TimedOutput<S::Item> = OutputBuilder::from(records_out);
    let mut dead_out: TimedOutput<DeadLetter> = OutputBuilder::from(dead_out);
    let (flush_out, flush_stream) = builder.new_output::<Vec<FlushRecord>>();
    let mut flush_out: FlushOutput = OutputBuilder::from(flush_out);
    if let Some(register) = register {
        register(flush_stream);
    }

    let state = Rc::clone(state);
    let name = name.to_string();
    let worker = scope.index();
    let peers = scope.peers();
    let follows_epochs = !source.reader_epochs();

    builder.build(move |capabilities| {
        let mut caps: Vec<Capability<Time>> = capabilities;
        let mut time = Time::new(0, 0);
        let mut splits: Vec<SplitState<S::Item>> = Vec::new();
        let mut opened = false;
        let mut next_epoch = Instant::now() + state.epoch_interval;
        // Records emitted per stamp, not yet consumed downstream.
        let mut in_flight: BTreeMap<u64, usize> = BTreeMap::new();
        let mut buffer: Vec<ReadItem<S::Item>> = Vec::with_capacity(BATCH);
        // Records of one stamp, handed to timely as one container.
        let mut run: Vec<(u64, S::Item)> = Vec::with_capacity(BATCH);
        let mut dead_letters: Vec<(Time, (u64, DeadLetter))> = Vec::new();
        // When every live split went idle, and the watermark then.
        let mut all_idle_since: Option<(Instant, u64)> = None;
        // The newest complete checkpoint the source has been told of.
        let mut heard: Option<u64> = None;

        move |_frontiers| {
            if caps.is_empty() {
                return;
            }
            let now = Instant::now();
            if !opened {
                opened = true;
                if let Some(checkpoint) = &state.checkpoint {
                    checkpoint.listen(activator.clone());
                    heard = checkpoint.last_complete();
                }
                let restored = restored_positions(state.checkpoint.as_deref(), &name);
                let owned: Vec<SplitId> = source
                    .split_ids()
                    .into_iter()
                    .filter(|s| s.0 as usize % peers == worker)
                    .collect();
                let mut positions: Vec<Option<Vec<u8>>> = Vec::with_capacity(owned.len());
                for id in owned {
                    let mut split_state = SplitState {
                        id,
                        reader: None,
                        watermark: SplitWatermark::default(),
                        offset: 0,
                        done: false,
                        last_data: now,
                        idle: false,
                        retry: None,
                    };
                    let position = match restored.as_ref().map(|(_, p)| p.get(&id)) {
                        None => None,
                        Some(Some(saved)) => match layout::parse_split_position(saved) {
                            Ok(saved) => {
                                split_state.watermark.raise_to(saved.watermark);
                                // Not `saved.done`: whether a split has
                                // ended is its reader's to say again. A
                                // bounded Kafka split takes its end anew
                                // when it opens, so a restored run reads what
                                // was written since; a file or generator
                                // split at its end says so at its first poll.
                                split_state.offset = saved.offset;
                                Some(saved.reader)
                            }
                            Err(message) => {
                                state.shared.fail(JobError::Source {
                                    source_name: name.clone(),
                                    message: format!("{id}: {message}"),
                                });
                                continue;
                            }
                        },
                        // A split the checkpoint does not know (added since):
                        // from the source's start.
                        Some(None) => {
                            eprintln!(
                                "weir: source `{name}`: {id} is not in the checkpoint; reading it from the start"
                            );
                            None
                        }
                    };
                    positions.push(position);
                    splits.push(split_state);
                }
                let starts: Vec<SplitStart<'_>> = splits
                    .iter()
                    .zip(&positions)
                    .map(|(s, p)| SplitStart {
                        split: s.id,
                        position: p.as_deref(),
                    })
                    .collect();
                let opened = if starts.is_empty() {
                    Ok(Vec::new())
                } else {
                    state
                        .shared
                        .retrying(&name, || source.open_splits(&starts))
                };
                match opened {
                    Ok(readers) if readers.len() == splits.len() => {
                        for (split, mut reader) in splits.iter_mut().zip(readers) {
                            let wake = wake.clone();
                            reader.wake_when_ready(Waker::new(move || {
                                // An error means the worker is gone: nothing to wake.
                                let _ = wake.activate();
                            }));
                            split.reader = Some(reader);
                        }
                    }
                    Ok(readers) => {
                        state.shared.fail(JobError::Source {
                            source_name: name.clone(),
                            message: format!(
                                "opened {} readers for {} splits",
                                readers.len(),
                                splits.len()
                            ),
                        });
                        splits.clear();
                    }
                    Err(fault) => {
                        state.shared.fail(JobError::Source {
                            source_name: name.clone(),
                            message: fault.message,
                        });
                        splits.clear();
                    }
                }
                if let Some((epoch, _)) = restored {
                    // A new store generation holds the restored positions too.
                    if state
                        .checkpoint
                        .as_ref()
                        .is_some_and(|ck| ck.plan.rescaled())
                    {
                        close_epoch(&state, &name, epoch, &splits, &caps[2], &mut flush_out);
                    }
                    time.epoch = epoch + 1;
                    for cap in caps.iter_mut() {
                        cap.downgrade(&time);
                    }
                }
            }
            // A checkpoint completed since the last activation.
            if let Some(checkpoint) = &state.checkpoint {
                let complete = checkpoint.last_complete();
                if complete > heard {
                    heard = complete;
                    if let Some(epoch) = complete {
                        if let Err(fault) = source.checkpoint_complete(epoch) {
                            if fault.is_transient() {
                                state.shared.note_retry(&name, &fault.message);
                            } else {
                                state.shared.fail(JobError::Source {
                                    source_name: name.clone(),
                                    message: fault.message,
                                });
                            }
                        }
                    }
                }
            }
            if state.shared.stop_requested() || ctrl_c_pressed() {
                record_final_watermark(&state, &splits, time.event);
                caps.clear();
                return;
            }

            // 1. Epochs advance on this source's wall clock, or as soon as a
            // record of a later epoch reached this worker's keyed operators:
            // another source's clock ticked first (on another worker or
            // process), and that operator holds such records until every
            // source has ended the epoch before. Following it, and counting
            // the interval from then, keeps all sources' epochs ending
            // together behind whichever clock ticks first.
            let behind = follows_epochs && state.flow.newest_epoch() > time.epoch;
            if now >= next_epoch || behind {
                close_epoch(&state, &name, time.epoch, &splits, &caps[2], &mut flush_out);
                time.epoch += 1;
                next_epoch = now + state.epoch_interval;
            }

            // 2. Flow control: retire what downstream has consumed.
            let consumed_below = state.flow.consumed_below();
            in_flight = in_flight.split_off(&consumed_below);
            // Records at the current stamp cannot be consumed before this
            // source moves on, so only older ones may pause it.
            let retirable: usize = in_flight.range(..time.event).map(|(_, n)| n).sum();
            let paused = retirable > state.max_in_flight;

            // 3. Read.
            let mut any_ready = false;
            if !paused {
                for index in 0..splits.len() {
                    let mut end_epoch = false;
                    let split = &mut splits[index];
                    if split.done {
                        continue;
                    }
                    let Some(reader) = split.reader.as_mut() else {
                        continue;
                    };
                    if split.retry.is_some_and(|(_, at)| now < at) {
                        continue;
                    }
                    buffer.clear();
                    let status = match reader.poll(BATCH, &mut buffer) {
                        Ok(status) => {
                            if split.retry.take().is_some() {
                                state.shared.clear_fault();
                            }
                            status
                        }
                        Err(fault) if fault.is_transient() => {
                            // Try this split again later; the others go on.
                            buffer.clear();
                            let attempt = split.retry.map_or(1, |(a, _)| a + 1);
                            split.retry = Some((attempt, now + retry_delay(attempt)));
                            let what = format!("{}", split.id);
                            state
                                .shared
                                .note_retry(&format!("{name} {what}"), &fault.message);
                            continue;
                        }
                        Err(fault) => {
                            state.shared.fail(JobError::Source {
                                source_name: name.clone(),
                                message: format!("{}: {}", split.id, fault.message),
                            });
                            caps.clear();
                            return;
                        }
                    };
                    if !buffer.is_empty() {
                        split.last_data = now;
                        if split.idle {
                            // Back from idleness: never stamp below what the
                            // source already promised.
                            split.idle = false;
                            split.watermark.raise_to(time.event);
                        }
                    }
                    state
                        .shared
                        .events_in
                        .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                    let mut run_stamp = split.watermark.current();
                    for item in buffer.drain(..) {
                        let stamp = split.watermark.current();
                        let offset = split.offset;
                        if matches!(
                            item,
                            ReadItem::Record(_) | ReadItem::Timed(..) | ReadItem::Bad(_)
                        ) {
                            split.offset += 1;
                        }
                        let (record, known) = match item {
                            ReadItem::Record(record) => (record, None),
                            ReadItem::Timed(record, at) => (record, Some(at)),
                            ReadItem::Bad(mut dead) => {
                                dead.source.clone_from(&name);
                                dead_letters.push((Time::new(time.epoch, stamp), (stamp, *dead)));
                                continue;
                            }
                            ReadItem::Watermark(w) => {
                                split.watermark.raise_to(w);
                                continue;
                            }
                            // Readers return right after an epoch end, so the
                            // positions recorded below are exactly at it.
                            ReadItem::EndEpoch => {
                                end_epoch = true;
                                continue;
                            }
                        };
                        match extract(&record, known) {
                            Some(event) => {
                                split.watermark.observe(&strategy, event);
                                if stamp != run_stamp {
                                    let at = Time::new(time.epoch, run_stamp);
                                    emit_run(&mut records_out, &caps[0], at, &mut run, &mut in_flight);
                                    run_stamp = stamp;
                                }
                                run.push((event, record));
                            }
                            None => {
                                let raw = Raw::json(&record);
                                dead_letters.push((
                                    Time::new(time.epoch, stamp),
                                    (
                                        stamp,
                                        DeadLetter {
                                            source: name.clone(),
                                            origin: Origin::split(split.id.0, offset),
                                            reason: "the record has no event timestamp".into(),
                                            raw,
                                        },
                                    ),
                                ))
                            }
                        }
                    }
                    // The last run (stamps only rise within a split).
                    let at = Time::new(time.epoch, run_stamp);
                    emit_run(&mut records_out, &caps[0], at, &mut run, &mut in_flight);
                    if !dead_letters.is_empty() {
                        state
                            .shared
                            .dead_letters
                            .fetch_add(dead_letters.len() as u64, Ordering::Relaxed);
                        let mut out = dead_out.activate();
                        for (at, dead) in dead_letters.drain(..) {
                            let cap = caps[1].delayed(&at);
                            out.session(&cap).give(dead);
                        }
                    }
                    match status {
                        ReadStatus::Ready => any_ready = true,
                        ReadStatus::Idle => {}
                        ReadStatus::Done => split.done = true,
                    }
                    if end_epoch {
                        close_epoch(&state, &name, time.epoch, &splits, &caps[2], &mut flush_out);
                        time.epoch += 1;
                        next_epoch = now + state.epoch_interval;
                    }
                }
            }

            // 4. Hold the least watermark over live splits. A paused split
            // is waiting for downstream, not idle: its quiet time starts
            // again when the pause ends.
            if let Some(idle_timeout) = strategy.idle() {
                for split in splits.iter_mut().filter(|s| !s.done && !s.idle) {
                    if paused {
                        split.last_data = now;
                    } else if now.duration_since(split.last_data) >= idle_timeout {
                        split.idle = true;
                    }
                }
            }
            let live = splits.iter().filter(|s| !s.done);
            if live.clone().next().is_none() {
                // Every split has ended: record the final positions (later
                // epochs find them as the newest), then release the frontier.
                if !splits.is_empty() {
                    close_epoch(&state, &name, time.epoch, &splits, &caps[2], &mut flush_out);
                }
                state
                    .shared
                    .publish_watermark(state.local_worker, time.event);
                record_final_watermark(&state, &splits, time.event);
                caps.clear();
                return;
            }
            let holding = live
                .clone()
                .filter(|s| !s.idle)
                .map(|s| s.watermark.current())
                .min();
            let event = match holding {
                Some(w) => {
                    all_idle_since = None;
                    w
                }
                None => {
                    // Every live split is idle: follow the other workers of
                    // this process, or else let processing time move it.
                    let (since, base) = *all_idle_since.get_or_insert((now, time.event));
                    // Saturating: a watermark already near the end of
                    // time stops at LAST_LIVE_WATERMARK (u64::MAX - 1)
                    // instead of wrapping to 0.
                    let idle_for = crate::watermark::millis(now.duration_since(since));
                    let by_clock = base
                        .saturating_add(idle_for)
                        .min(crate::watermark::LAST_LIVE_WATERMARK);
                    state
                        .shared
                        .highest_other_watermark(state.local_worker)
                        .unwrap_or(0)
                        .max(by_clock)
                }
            };
            // Compare with what the capabilities hold, not with `time`: a
            // closed epoch already moved `time` on, and a watermark that
            // stands still must not keep the old epoch open.
            time = Time::new(time.epoch, event.max(time.event));
            if caps.first().is_some_and(|c| *c.time() != time) {
                for cap in caps.iter_mut() {
                    cap.downgrade(&time);
                }
            }
            state
                .shared
                .publish_watermark(state.local_worker, time.event);

            // 5. When to run again.
            // Paused: downstream is catching up, possibly on another worker,
            // so look again soon. Idle: the splits have nothing; poll gently.
            let until_epoch = next_epoch.saturating_duration_since(now);
            if paused {
                activator.activate_after(until_epoch.min(Duration::from_micros(200)));
            } else if any_ready {
                activator.activate();
            } else {
                activator.activate_after(until_epoch.min(Duration::from_millis(5)));
            }
        }
    });
    (records, dead)
}

/// Sends `run`, records all stamped `at`, as one container (no copy per
/// record), counts them in flight, and leaves `run` empty with room for a
/// batch.
fn emit_run<D: Data>(
    out: &mut TimedOutput<D>,
    cap: &Capability<Time>,
    at: Time,
    run: &mut Vec<(u64, D)>,
    in_flight: &mut BTreeMap<u64, usize>,
) {
    if run.is_empty() {
        return;
    }
    *in_flight.entry(at.event).or_insert(0) += run.len();
    let cap = cap.delayed(&at);
    out.activate().session(&cap).give_container(run);
    run.clear();
    if run.capacity() < BATCH {
        run.reserve(BATCH);
    }
}

/// Records this source's final watermark for the summary, as its input
/// ends (or the job stops): what its capability held, raised to the least
/// watermark over its splits that moved at all. The records read in the
/// last step moved the splits on, but the capability is released (to the
/// end of time) without following them, so `held` alone lags — on a run
/// read in one step it is still 0. Splits that read nothing and saw no
/// watermark do not count (an empty file says nothing about event time);
/// a source with no such split records nothing.
fn record_final_watermark<T>(state: &WorkerCtx, splits: &[SplitState<T>], held: u64) {
    let reached = splits
        .iter()
        .filter(|s| s.offset > 0 || s.watermark.current() > 0)
        .map(|s| s.watermark.current())
        .min();
    if let Some(w) = reached {
        state.shared.record_final_watermark(w.max(held));
    }
}

type FlushOutput = OutputBuilder<Time, CapacityContainerBuilder<Vec<FlushRecord>>>;

/// Hands a source's flush records to the pipeline (when checkpointing).
pub(crate) type RegisterFlushes<'s> =
    Box<dyn FnOnce(timely::dataflow::StreamVec<'s, Time, FlushRecord>) + 's>;

/// A split's checkpointed position ([`layout::SplitPosition`]).
fn encode_position<T>(split: &SplitState<T>) -> Vec<u8> {
    let reader = split.reader.as_ref().map(|r| r.position());
    layout::split_position(
        split.watermark.current(),
        split.done,
        split.offset,
        reader.as_deref().unwrap_or_default(),
    )
}

/// Writes the positions of this worker's splits for `epoch` and sends the
/// flush record (when the job checkpoints).
fn close_epoch<T>(
    state: &WorkerCtx,
    name: &str,
    epoch: u64,
    splits: &[SplitState<T>],
    cap: &Capability<Time>,
    out: &mut FlushOutput,
) {
    let Some(checkpoint) = state.checkpoint.as_deref() else {
        return;
    };
    let shared = &state.shared;
    let positions: Vec<Position> = splits
        .iter()
        .map(|s| Position {
            source: name.to_string(),
            split: s.id,
            position: encode_position(s),
        })
        .collect();
    let written = {
        let mut store = checkpoint.store.borrow_mut();
        write_epoch(store.as_mut(), epoch, name, &[], &positions)
    };
    let written = written.and_then(|checksum| checkpoint.maybe_fold().map(|()| checksum));
    match written {
        Ok(checksum) => {
            let at = cap.delayed(&Time::new(epoch, cap.time().event));
            out.activate().session(&at).give(FlushRecord {
                epoch,
                worker: checkpoint.worker,
                step: name.to_string(),
                kind: StepKind::Source,
                checksum,
            });
        }
        Err(e) => shared.fail(JobError::Checkpoint(format!("source `{name}`: {e}"))),
    }
}

/// The positions of `source`'s splits at the restored epoch, if restoring.
fn restored_positions(
    checkpoint: Option<&WorkerCheckpoint>,
    source: &str,
) -> Option<(u64, BTreeMap<SplitId, Vec<u8>>)> {
    let checkpoint = checkpoint?;
    let epoch = checkpoint.plan.restore.as_ref()?.epoch;
    let mut positions = BTreeMap::new();
    checkpoint.for_each_restore_store(|store| {
        if let Ok(found) = load_positions_through(store, epoch) {
            for p in found.into_iter().filter(|p| p.source == source) {
                positions.insert(p.split, p.position);
            }
        }
    });
    Some((epoch, positions))
}
