//! Nexmark events as a weir source: split `s` of `n` produces events
//! `s, s + n, s + 2n, …` of the [`Model`], so the same events reach the
//! engine on any number of workers, and a hand-written baseline reads them
//! by calling [`Model::event`] in a loop.

use std::time::Instant;

use weir::source::{open_each, position_of, position_word, SplitStart};
use weir::{Fault, ReadItem, ReadStatus, Source, SplitReader};
use weir_connectors::generator::{paced_budget, poll_status};

use super::model::{Event, Model};

/// A bounded stream of Nexmark events.
#[derive(Clone, Debug)]
pub struct Nexmark {
    /// What the events are drawn from.
    pub model: Model,
    /// Number of events (all splits).
    pub events: u64,
    /// Number of splits.
    pub splits: u32,
    /// Events per second of wall-clock time (all splits); `None` is as fast
    /// as the job takes them.
    pub pace: Option<f64>,
}

impl Nexmark {
    /// `events` events of `model` in 4 splits, unpaced.
    pub fn new(model: Model, events: u64) -> Self {
        Nexmark {
            model,
            events,
            splits: 4,
            pace: None,
        }
    }

    /// All events, in order (what a baseline reads).
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.events).map(|n| self.model.event(n))
    }
}

impl Source for Nexmark {
    type Item = Event;

    fn splits(&self) -> u32 {
        self.splits
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Event>>>, Fault> {
        open_each(splits, |split, position| {
            let produced = match position {
                None => 0,
                Some(p) => position_word(p, 0)?,
            };
            Ok(Box::new(NexmarkSplit {
                source: self.clone(),
                split: u64::from(split.0),
                produced,
                resumed_at: produced,
                started: Instant::now(),
            }) as Box<dyn SplitReader<Event>>)
        })
    }
}

struct NexmarkSplit {
    source: Nexmark,
    split: u64,
    produced: u64,
    resumed_at: u64,
    started: Instant,
}

impl NexmarkSplit {
    fn next_index(&self) -> u64 {
        self.split + self.produced * u64::from(self.source.splits)
    }
}

impl SplitReader<Event> for NexmarkSplit {
    fn position(&self) -> Vec<u8> {
        position_of(&[self.produced])
    }

    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<Event>>) -> Result<ReadStatus, Fault> {
        let read = self.produced - self.resumed_at;
        let budget = paced_budget(
            self.source.pace,
            self.source.splits,
            self.started,
            read,
            max,
        );
        for _ in 0..budget {
            let n = self.next_index();
            if n >= self.source.events {
                return Ok(ReadStatus::Done);
            }
            out.push(ReadItem::Record(self.source.model.event(n)));
            self.produced += 1;
        }
        let ended = self.next_index() >= self.source.events;
        Ok(poll_status(ended, budget, max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::SplitId;

    #[test]
    fn the_splits_together_produce_every_event_once() {
        let mut source = Nexmark::new(Model::default(), 1_003);
        let starts: Vec<SplitStart<'_>> = (0..source.splits())
            .map(|s| SplitStart {
                split: SplitId(s),
                position: None,
            })
            .collect();
        let mut got = Vec::new();
        for mut reader in source.open_splits(&starts).expect("opens") {
            let mut items = Vec::new();
            while reader.poll(100, &mut items).expect("reads") != ReadStatus::Done {}
            got.extend(items.into_iter().map(|i| match i {
                ReadItem::Record(e) => e,
                _ => panic!("the generator makes only records"),
            }));
        }
        got.sort();
        let mut expected: Vec<Event> = source.iter().collect();
        expected.sort();
        assert_eq!(got, expected);
    }
}
