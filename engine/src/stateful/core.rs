//! The keyed-state primitive's decisions, as a pure state machine: what to
//! apply, buffer, fire and flush in one activation, and which times to keep
//! holding. No timely, no logic, no I/O: the operator in the [parent
//! module](super) feeds it the input frontier and the arriving batches, and
//! carries out the [`Step`]s it returns in order, calling the logic and the
//! checkpointer. The rules live here, once:
//!
//! * **Epochs.** Records of the lowest open epoch of the input frontier (or
//!   an earlier one) are applied as they arrive; records of later epochs are
//!   buffered until the epochs before them complete, so state at an epoch
//!   boundary reflects exactly the records of epochs `<= e`.
//! * **Flushes.** At the first activation after epoch `e` completed, `e` is
//!   flushed, before any input of this activation (which belongs to later
//!   epochs). Unordered logic first applies the buffered records of epochs
//!   `<= e`, in their own epochs. After a restore into a new store
//!   generation, the restored epoch is flushed first.
//! * **Order.** Ordered logic gets every record in stamp order, once the
//!   frontier has passed its stamp, with `on_watermark(stamp)` before each
//!   stamp's records; everything is released when the input ends.
//! * **Watermarks.** `on_watermark` runs with the input watermark, held back
//!   below any buffered record's stamp, so a window never fires while a
//!   record that belongs to it is still waiting.
//! * **Emit epochs.** What an activation emits belongs to the open epoch (or
//!   the record's own, if later), never to one a restore already covers.
//! * **Holds.** Results may still come at `(open epoch, next fire)` and at
//!   each buffered record's time; late records only at buffered times.

use std::collections::BTreeMap;

use crate::time::Time;

/// What one activation sees of the input frontier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Frontier {
    /// The lowest epoch the input may still bring (`u64::MAX`: ended).
    pub(crate) open_epoch: u64,
    /// The input watermark.
    pub(crate) watermark: u64,
    /// Whether the input has ended (an empty frontier).
    pub(crate) ended: bool,
}

/// One thing to do, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<D> {
    /// Apply `records` ((event time, record)) stamped `stamp`; what they
    /// emit belongs to `epoch`.
    Records {
        epoch: u64,
        stamp: u64,
        records: Vec<(u64, D)>,
    },
    /// Run `on_watermark(watermark)`; what it emits belongs to `epoch`.
    Watermark { epoch: u64, watermark: u64 },
    /// Checkpoint `epoch` now.
    Flush { epoch: u64 },
}

/// The primitive's state between activations.
pub(crate) struct KeyedCore<D> {
    ordered: bool,
    buffered: BTreeMap<Time, Vec<(u64, D)>>,
    /// The highest watermark `on_watermark` has run with.
    fired_through: u64,
    /// After a restore, nothing is emitted at or before the restored epoch.
    epoch_floor: u64,
    /// A restored epoch to flush first (a restore into a new generation).
    restore_flush: Option<u64>,
    /// This activation's frontier.
    frontier: Frontier,
}

impl<D> KeyedCore<D> {
    pub(crate) fn new(ordered: bool) -> Self {
        KeyedCore {
            ordered,
            buffered: BTreeMap::new(),
            fired_through: 0,
            epoch_floor: 0,
            restore_flush: None,
            frontier: Frontier {
                open_epoch: 0,
                watermark: 0,
                ended: false,
            },
        }
    }

    /// The job resumes after `epoch`; `new_generation`: the restored state
    /// goes into a new store, so flush it as `epoch` first.
    pub(crate) fn restored(&mut self, epoch: u64, new_generation: bool) {
        self.epoch_floor = epoch + 1;
        if new_generation {
            self.restore_flush = Some(epoch);
        }
    }

    /// The records buffered, by time (a checkpoint stores them).
    pub(crate) fn buffered(&self) -> &BTreeMap<Time, Vec<(u64, D)>> {
        &self.buffered
    }

    /// The buffer, for a restore to fill.
    pub(crate) fn buffered_mut(&mut self) -> &mut BTreeMap<Time, Vec<(u64, D)>> {
        &mut self.buffered
    }

    /// The highest watermark `on_watermark` has run with.
    pub(crate) fn fired_through(&self) -> u64 {
        self.fired_through
    }

    /// The epoch what this activation emits belongs to.
    fn fire_epoch(&self) -> u64 {
        match self.frontier.open_epoch {
            u64::MAX => u64::MAX,
            open => open.max(self.epoch_floor),
        }
    }

    /// Starts an activation. `flushed_through`: when the job checkpoints,
    /// the last epoch flushed (`Some(None)`: none yet); `None` when it does
    /// not. Returns what to do before this activation's input.
    pub(crate) fn begin(
        &mut self,
        frontier: Frontier,
        flushed_through: Option<Option<u64>>,
    ) -> Vec<Step<D>> {
        self.frontier = frontier;
        let mut steps = Vec::new();
        let Some(flushed_through) = flushed_through else {
            return steps;
        };
        let open = frontier.open_epoch;
        let due = self.restore_flush.take().or_else(|| {
            let last = open.checked_sub(1).filter(|_| open != u64::MAX)?;
            (flushed_through < Some(last)).then_some(last)
        });
        if let Some(epoch) = due {
            if !self.ordered {
                // Records of finished epochs apply before the cut, in them.
                let done: Vec<Time> = self
                    .buffered
                    .keys()
                    .filter(|t| t.epoch <= epoch)
                    .copied()
                    .collect();
                for time in done {
                    if let Some(records) = self.buffered.remove(&time) {
                        steps.push(Step::Records {
                            epoch: time.epoch,
                            stamp: time.event,
                            records,
                        });
                    }
                }
            }
            steps.push(Step::Flush { epoch });
        }
        steps
    }

    /// A batch arrived at `time`: the step that applies it now, or `None`
    /// if it waits (a later epoch, or ordered logic).
    pub(crate) fn arrive(&mut self, time: Time, records: Vec<(u64, D)>) -> Option<Step<D>> {
        if self.ordered || time.epoch > self.frontier.open_epoch {
            self.buffered.entry(time).or_default().extend(records);
            return None;
        }
        Some(Step::Records {
            epoch: time.epoch.max(self.fire_epoch()),
            stamp: time.event,
            records,
        })
    }

    /// Ends the activation's input: what is released and fired.
    pub(crate) fn finish(&mut self) -> Vec<Step<D>> {
        let Frontier {
            open_epoch,
            watermark,
            ended,
        } = self.frontier;
        let fire_epoch = self.fire_epoch();
        // Records of later epochs hold the watermark below their stamps.
        let waiting_epochs = self
            .buffered
            .keys()
            .filter(|t| t.epoch > open_epoch)
            .map(|t| t.event)
            .min()
            .unwrap_or(u64::MAX);
        let effective = watermark.min(waiting_epochs);
        // The end of input passes every stamp, u64::MAX included: a
        // window's output fired at u64::MAX carries that stamp downstream.
        let ordered = self.ordered;
        let mut ready: Vec<Time> = self
            .buffered
            .keys()
            .filter(|t| t.epoch <= open_epoch && (!ordered || t.event < effective || ended))
            .copied()
            .collect();
        ready.sort_by_key(|t| (t.event, t.epoch));
        let mut steps = Vec::new();
        for time in ready {
            if ordered {
                steps.push(Step::Watermark {
                    epoch: fire_epoch,
                    watermark: time.event,
                });
                self.fired_through = self.fired_through.max(time.event);
            }
            if let Some(records) = self.buffered.remove(&time) {
                steps.push(Step::Records {
                    epoch: time.epoch.max(fire_epoch),
                    stamp: time.event,
                    records,
                });
            }
        }
        let still_waiting = self
            .buffered
            .keys()
            .map(|t| t.event)
            .min()
            .unwrap_or(u64::MAX);
        let fire_to = effective.min(still_waiting);
        steps.push(Step::Watermark {
            epoch: fire_epoch,
            watermark: fire_to,
        });
        self.fired_through = self.fired_through.max(fire_to);
        steps
    }

    /// The times to hold after the activation: for results (`next_fire`:
    /// the logic's next fire time; `latest_held`: the latest epoch held,
    /// used once the input has ended) and for late records.
    pub(crate) fn holds(&self, next_fire: Option<u64>, latest_held: u64) -> (Vec<Time>, Vec<Time>) {
        let waiting: Vec<Time> = self.buffered.keys().copied().collect();
        let mut pending = waiting.clone();
        if let Some(fire) = next_fire {
            let epoch = match self.frontier.open_epoch {
                u64::MAX => latest_held,
                open => open.max(self.epoch_floor),
            };
            pending.push(Time::new(epoch, fire));
        }
        (pending, waiting)
    }
}

#[cfg(test)]
mod tests {
    //! The decisions as tables: each row is one activation (its frontier,
    //! the batches that arrive, the last flushed epoch) and the steps it
    //! must give.

    use super::*;

    type S = Step<&'static str>;

    fn f(open_epoch: u64, watermark: u64) -> Frontier {
        Frontier {
            open_epoch,
            watermark,
            ended: false,
        }
    }

    const ENDED: Frontier = Frontier {
        open_epoch: u64::MAX,
        watermark: u64::MAX,
        ended: true,
    };

    fn rec(epoch: u64, stamp: u64, names: &[&'static str]) -> S {
        Step::Records {
            epoch,
            stamp,
            records: names.iter().map(|n| (stamp, *n)).collect(),
        }
    }

    fn wm(epoch: u64, watermark: u64) -> S {
        Step::Watermark { epoch, watermark }
    }

    struct Row {
        frontier: Frontier,
        /// Batches: (epoch, stamp, records).
        arrive: &'static [(u64, u64, &'static [&'static str])],
        /// `Some(flushed through)` when checkpointing.
        flushed: Option<Option<u64>>,
        steps: Vec<S>,
    }

    /// Runs the rows in order on one core; `what` names the table.
    fn check(what: &str, core: &mut KeyedCore<&'static str>, rows: Vec<Row>) {
        for (i, row) in rows.into_iter().enumerate() {
            let mut steps = core.begin(row.frontier, row.flushed);
            for (epoch, stamp, names) in row.arrive {
                let batch = names.iter().map(|n| (*stamp, *n)).collect();
                steps.extend(core.arrive(Time::new(*epoch, *stamp), batch));
            }
            steps.extend(core.finish());
            assert_eq!(steps, row.steps, "{what}: row {i}");
        }
    }

    #[test]
    fn unordered_logic_applies_the_open_epoch_and_buffers_later_ones() {
        let mut core = KeyedCore::new(false);
        check(
            "unordered",
            &mut core,
            vec![
                Row {
                    frontier: f(0, 100),
                    arrive: &[(0, 100, &["a"]), (1, 150, &["b"])],
                    flushed: None,
                    // `b` waits for epoch 0 and holds the watermark below 150.
                    steps: vec![rec(0, 100, &["a"]), wm(0, 100)],
                },
                Row {
                    frontier: f(0, 200),
                    arrive: &[],
                    flushed: None,
                    steps: vec![wm(0, 150)],
                },
                Row {
                    frontier: f(1, 200),
                    arrive: &[],
                    flushed: None,
                    steps: vec![rec(1, 150, &["b"]), wm(1, 200)],
                },
            ],
        );
        assert_eq!(core.fired_through(), 200);
    }

    #[test]
    fn a_completed_epoch_is_flushed_before_new_input_after_its_buffered_records() {
        let mut core = KeyedCore::new(false);
        check(
            "flush",
            &mut core,
            vec![
                Row {
                    frontier: f(0, 10),
                    arrive: &[(1, 20, &["later"])],
                    flushed: Some(None),
                    steps: vec![wm(0, 10)],
                },
                // Epochs 0 and 1 completed at once: flush the last, after
                // the buffered records of epoch 1 applied in epoch 1.
                Row {
                    frontier: f(2, 30),
                    arrive: &[(2, 30, &["now"])],
                    flushed: Some(None),
                    steps: vec![
                        rec(1, 20, &["later"]),
                        Step::Flush { epoch: 1 },
                        rec(2, 30, &["now"]),
                        wm(2, 30),
                    ],
                },
                // Already flushed through 1: nothing to flush.
                Row {
                    frontier: f(2, 40),
                    arrive: &[],
                    flushed: Some(Some(1)),
                    steps: vec![wm(2, 40)],
                },
            ],
        );
    }

    #[test]
    fn ordered_logic_gets_stamps_in_order_once_passed_with_a_watermark_before_each() {
        let mut core = KeyedCore::new(true);
        check(
            "ordered",
            &mut core,
            vec![
                Row {
                    frontier: f(0, 50),
                    // Arrival order is not stamp order.
                    arrive: &[
                        (0, 40, &["late-arriving"]),
                        (0, 30, &["x", "y"]),
                        (0, 60, &["z"]),
                    ],
                    flushed: None,
                    steps: vec![
                        wm(0, 30),
                        rec(0, 30, &["x", "y"]),
                        wm(0, 40),
                        rec(0, 40, &["late-arriving"]),
                        // 60 waits for the frontier to pass it.
                        wm(0, 50),
                    ],
                },
                Row {
                    frontier: ENDED,
                    arrive: &[],
                    flushed: None,
                    steps: vec![
                        wm(u64::MAX, 60),
                        rec(u64::MAX, 60, &["z"]),
                        wm(u64::MAX, u64::MAX),
                    ],
                },
            ],
        );
    }

    #[test]
    fn the_end_of_input_releases_a_stamp_of_u64_max() {
        let mut core = KeyedCore::new(true);
        check(
            "end",
            &mut core,
            vec![
                Row {
                    frontier: f(0, 10),
                    arrive: &[(0, u64::MAX, &["fired at the end of time"])],
                    flushed: None,
                    steps: vec![wm(0, 10)],
                },
                Row {
                    frontier: ENDED,
                    arrive: &[],
                    flushed: None,
                    steps: vec![
                        wm(u64::MAX, u64::MAX),
                        rec(u64::MAX, u64::MAX, &["fired at the end of time"]),
                        wm(u64::MAX, u64::MAX),
                    ],
                },
            ],
        );
    }

    #[test]
    fn after_a_restore_nothing_is_emitted_into_the_restored_epoch() {
        let mut core = KeyedCore::new(false);
        core.restored(4, true);
        check(
            "restore",
            &mut core,
            vec![
                // A new generation flushes the restored epoch first; what
                // this activation emits belongs to epoch 5, not 0.
                Row {
                    frontier: f(0, 10),
                    arrive: &[(0, 10, &["replayed"])],
                    flushed: Some(None),
                    steps: vec![
                        Step::Flush { epoch: 4 },
                        rec(5, 10, &["replayed"]),
                        wm(5, 10),
                    ],
                },
            ],
        );
    }

    #[test]
    fn holds_cover_buffered_records_and_the_next_fire() {
        let mut core: KeyedCore<&str> = KeyedCore::new(false);
        let _ = core.begin(f(2, 100), None);
        assert!(core.arrive(Time::new(3, 120), vec![(120, "b")]).is_none());
        let _ = core.finish();
        let (results, late) = core.holds(Some(400), 0);
        assert_eq!(results, vec![Time::new(3, 120), Time::new(2, 400)]);
        assert_eq!(late, vec![Time::new(3, 120)]);
        // Once the input ended, pending state holds the latest epoch held.
        let _ = core.begin(ENDED, None);
        let _ = core.finish();
        let (results, late) = core.holds(Some(u64::MAX), 7);
        assert_eq!(results, vec![Time::new(7, u64::MAX)]);
        assert!(late.is_empty());
    }
}
