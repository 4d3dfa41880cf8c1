//! Checkpointing a keyed stateful operator: what the keyed-state primitive
//! calls when an epoch completes and when a job restores.
//!
//! A flush of epoch `e` writes to the worker's store (see `EpochWriter`):
//! every key whose state changed since the previous flush (from the logic),
//! the records still buffered for epochs `<= e` (order-sensitive operators
//! keep records until the watermark passes them; those records are state
//! too), and the highest watermark the logic fired through. The layout's
//! `ENTRY_*` tag starts each stored key: a key's state, buffered records of
//! one stamp, or (in `META_GROUP`, which no key has) the watermark.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use timely::scheduling::SyncActivator;

use super::background::FlushThread;
use super::layout::{ENTRY_BUFFERED, ENTRY_KEY, ENTRY_WATERMARK, META_GROUP};
use super::runtime::WorkerCheckpoint;
use super::store::{load_state, Batch, EpochWriter};
use crate::data::{Data, Key};
use crate::ids::KeyGroup;
use crate::stateful::{Changes, KeyedLogic};
use crate::time::Time;

fn encode<S: serde::Serialize>(value: &S) -> Vec<u8> {
    bincode::serialize(value).expect("weir invariant: checkpoint data serializes")
}

fn decode<S: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<S, String> {
    bincode::deserialize(bytes).map_err(|e| format!("undecodable {what} in the checkpoint: {e}"))
}

/// Records with their event times.
type TimedRecords<D> = Vec<(u64, D)>;

fn tagged(tag: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend(body);
    out
}

/// A stateful operator instance's checkpoint bookkeeping.
pub(crate) struct KeyedCheckpointer<K> {
    pub(crate) worker: Rc<WorkerCheckpoint>,
    pub(crate) step: String,
    /// The last epoch flushed (or restored).
    pub(crate) flushed_through: Option<u64>,
    /// Buffered-record entries written by the previous flush (group, key).
    pending_written: BTreeSet<(u16, Vec<u8>)>,
    /// The next flush is that of the restored epoch into a new generation:
    /// it writes every buffered record, all of which were restored (and
    /// re-stamped into the epoch after it).
    restoring: bool,
    /// The lowest watermark the restored stores recorded (0 without a
    /// restore): everything due before it was dropped or emitted.
    watermark_floor: u64,
    /// The flush's batch, kept between flushes for its memory.
    batch: Batch,
    /// The flush's changes, kept between flushes for their memory.
    changes: Changes<K>,
    /// Wakes the operator when a write on the writer thread returns; taken
    /// when the thread starts (at the first flush, if the store has a
    /// background writer).
    wake: Option<SyncActivator>,
    /// The thread writing this operator's flushes, if it has one.
    background: Option<FlushThread>,
}

/// What became of a flush.
pub(crate) enum Flushed {
    /// Written and durable: its checksum.
    Written(u64),
    /// Handed to the writer thread: [`KeyedCheckpointer::written`] reports it.
    Writing,
}

impl<K: Key> KeyedCheckpointer<K> {
    /// `wake`: activates the operator from another thread (for writes on a
    /// writer thread); `None` writes every flush on the worker.
    pub(crate) fn new(
        worker: Rc<WorkerCheckpoint>,
        step: &str,
        wake: Option<SyncActivator>,
    ) -> Self {
        KeyedCheckpointer {
            worker,
            step: step.to_string(),
            flushed_through: None,
            pending_written: BTreeSet::new(),
            restoring: false,
            watermark_floor: 0,
            batch: Batch::default(),
            changes: Changes::new(),
            // A torn-flush failpoint waits on the worker for the epoch
            // before to complete, which a pending write would hold up.
            wake: wake.filter(|_| !crate::failpoint::tears_flushes()),
            background: None,
        }
    }

    /// The flushes the writer thread wrote since the last call, in epoch
    /// order: (epoch, checksum). With `wait`, blocks until all are written.
    pub(crate) fn written(&mut self, wait: bool) -> Result<Vec<(u64, u64)>, String> {
        match &mut self.background {
            Some(thread) => thread
                .written(wait, &mut self.batch)
                .map_err(|e| format!("writing `{}`: {e}", self.step)),
            None => Ok(Vec::new()),
        }
    }

    /// Loads this worker's key groups of the restored epoch into `logic` and
    /// `buffered`. Returns the restored epoch, if any.
    pub(crate) fn restore<D: Data, L: KeyedLogic<K, D>>(
        &mut self,
        logic: &mut L,
        buffered: &mut BTreeMap<Time, Vec<(u64, D)>>,
    ) -> Result<Option<u64>, String> {
        let Some(from) = self.worker.plan.restore.clone() else {
            return Ok(None);
        };
        let Some((first, last)) =
            super::runtime::owned_groups(self.worker.worker, self.worker.workers)
        else {
            return Ok(Some(from.epoch));
        };
        let mut failure = None;
        let pending_written = &mut self.pending_written;
        let mut floor: Option<u64> = None;
        self.worker.for_each_restore_store(|store| {
            let mut watermark = 0;
            let mut read_watermark = |_: KeyGroup, stored: &[u8], value: &[u8]| {
                if stored == [ENTRY_WATERMARK] && value.len() == 8 {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(value);
                    watermark = u64::from_le_bytes(w);
                }
            };
            if let Err(e) = load_state(
                store,
                &self.step,
                META_GROUP,
                META_GROUP,
                from.epoch,
                &mut read_watermark,
            ) {
                failure = Some(e.to_string());
                return;
            }
            floor = Some(floor.map_or(watermark, |f| f.min(watermark)));
            logic.restore_watermark(crate::time::EventTime(watermark));
            let mut visit = |group: KeyGroup, stored: &[u8], state: &[u8]| {
                if failure.is_some() {
                    return;
                }
                let result = match stored.split_first() {
                    Some((&ENTRY_KEY, key)) => {
                        decode::<K>(key, "key").and_then(|k| logic.restore(k, state))
                    }
                    Some((&ENTRY_BUFFERED, time)) => {
                        // The next flush re-stamps these records: it must
                        // delete this entry, or a later restore would apply
                        // them a second time.
                        pending_written.insert((group.0, stored.to_vec()));
                        decode::<Time>(time, "buffered time").and_then(|t| {
                            let records: Vec<(u64, D)> = decode(state, "buffered records")?;
                            // Same stamp, but in the epoch after the restored one.
                            let at = Time::new(from.epoch + 1, t.event);
                            buffered.entry(at).or_default().extend(records);
                            Ok(())
                        })
                    }
                    _ => Err("a stored key without its tag".to_string()),
                };
                if let Err(e) = result {
                    failure = Some(e);
                }
            };
            if let Err(e) = load_state(store, &self.step, first, last, from.epoch, &mut visit) {
                failure = Some(e.to_string());
            }
        });
        if let Some(e) = failure {
            return Err(format!("restoring `{}`: {e}", self.step));
        }
        self.watermark_floor = floor.unwrap_or(0);
        // Same workers: the store already holds the restored epoch.
        // A new generation: the first flush writes every restored key (the
        // logic counts them as changed) and every buffered record.
        if self.worker.plan.rescaled() {
            self.restoring = true;
        } else {
            self.flushed_through = Some(from.epoch);
            logic.track_changes(true);
        }
        Ok(Some(from.epoch))
    }

    /// Writes the changes of epochs up to `epoch` and the records buffered
    /// for them. Returns the checksum for the flush record.
    /// `fired_through`: the highest watermark the logic ran `on_watermark`
    /// with so far.
    pub(crate) fn flush<D: Data, L: KeyedLogic<K, D>>(
        &mut self,
        epoch: u64,
        fired_through: u64,
        logic: &mut L,
        buffered: &BTreeMap<Time, Vec<(u64, D)>>,
        key_of: &dyn Fn(&D) -> K,
    ) -> Result<Flushed, String> {
        crate::failpoint::before_state_flush(self.worker.worker, epoch, &self.worker.plan);
        let mut changed = std::mem::take(&mut self.changes);
        changed.clear();
        logic.take_changes(&mut changed);
        // Buffered records of finished epochs, by (key group, time).
        let mut pending: BTreeMap<(u16, Vec<u8>), TimedRecords<D>> = BTreeMap::new();
        let restoring = std::mem::take(&mut self.restoring);
        for (time, records) in buffered
            .iter()
            .filter(|(t, _)| restoring || t.epoch <= epoch)
        {
            for (event_time, record) in records {
                let group = KeyGroup::of(&key_of(record)).0;
                pending
                    .entry((group, tagged(ENTRY_BUFFERED, encode(time))))
                    .or_default()
                    .push((*event_time, record.clone()));
            }
        }
        let now: BTreeSet<(u16, Vec<u8>)> = pending.keys().cloned().collect();
        let mut writer = EpochWriter::new(epoch, &self.step, &mut self.batch);
        let watermark = fired_through.max(self.watermark_floor);
        writer.state(
            META_GROUP,
            &[ENTRY_WATERMARK],
            Some(&watermark.to_le_bytes()),
        );
        let mut key_bytes = Vec::new();
        for (key, value) in changed.iter() {
            key_bytes.clear();
            key_bytes.push(ENTRY_KEY);
            bincode::serialize_into(&mut key_bytes, key)
                .expect("weir invariant: checkpoint data serializes");
            writer.state(KeyGroup::of(key), &key_bytes, value);
        }
        for (group, key) in self.pending_written.difference(&now) {
            writer.state(KeyGroup(*group), key, None);
        }
        for ((group, key), records) in pending {
            writer.state(KeyGroup(group), &key, Some(&encode(&records)));
        }
        self.pending_written = now;
        self.changes = changed;
        self.flushed_through = Some(epoch);
        if self.background.is_none() {
            if let Some(wake) = self.wake.take() {
                if let Some(bg) = self.worker.store.borrow().background_writer() {
                    let thread = FlushThread::start(&self.step, bg, wake)
                        .map_err(|e| format!("starting the checkpoint writer thread: {e}"))?;
                    self.background = Some(thread);
                }
            }
        }
        let Some(thread) = &mut self.background else {
            let mut store = self.worker.store.borrow_mut();
            let checksum = writer.write(store.as_mut()).map_err(|e| e.to_string())?;
            return Ok(Flushed::Written(checksum));
        };
        let (_, checksum) = writer.seal();
        let batch = std::mem::take(&mut self.batch);
        thread.send(batch, epoch, checksum)?;
        Ok(Flushed::Writing)
    }
}
