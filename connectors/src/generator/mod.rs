//! A deterministic, seeded generator of realistic records.
//!
//! Record `i` of a generator is a pure function of `(seed, i)`: its key, its
//! fields, its event time, and whether it is malformed or late. Split `s` of
//! `n` produces records `s, s + n, s + 2n, …`. So the same flags give the same
//! records on any number of workers, in any run.
//!
//! Event time advances by `spacing` per record (from `start_ms`), minus a
//! random disorder of up to `disorder`; a `late_fraction` of records is
//! pushed back by `late_by` (more than the watermark bound, so they are late).
//! A `malformed_fraction` of records is emitted as a broken CSV line that goes
//! through the real CSV decoder and so becomes a dead letter.

mod records;

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use weir::rng::SplitMix64;
use weir::source::{position_of, position_word, SplitStart};
use weir::{
    ConfigError, DeadLetter, Fault, Origin, ReadItem, ReadStatus, Source, SplitId, SplitReader,
};

use crate::format::decode_csv_line;
pub use records::{Bid, Generated, Reading, Request, Transaction};

/// Settings of a [`Generator`].
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of all randomness.
    pub seed: u64,
    /// Total records (all splits); `None` runs until stopped.
    pub events: Option<u64>,
    /// Records per second of wall-clock time (all splits); `None` is as fast
    /// as the job takes them.
    pub rate: Option<f64>,
    /// Number of distinct keys (cards, services, devices, auctions).
    pub keys: u64,
    /// Key skew in `[0, 1)`: 0 is uniform; higher puts more records on low keys.
    pub skew: f64,
    /// Event time between consecutive records.
    pub spacing: Duration,
    /// Event time of record 0 (ms).
    pub start_ms: u64,
    /// Maximum random disorder subtracted from a record's event time.
    pub disorder: Duration,
    /// Fraction of records pushed back by `late_by`.
    pub late_fraction: f64,
    /// How far late records are pushed back.
    pub late_by: Duration,
    /// Fraction of records emitted as malformed CSV.
    pub malformed_fraction: f64,
    /// Number of splits.
    pub splits: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 42,
            events: Some(1_000_000),
            rate: None,
            keys: 1_000,
            skew: 0.0,
            spacing: Duration::from_micros(1_000),
            start_ms: 1_700_000_000_000,
            disorder: Duration::from_millis(500),
            late_fraction: 0.0,
            late_by: Duration::from_secs(60),
            malformed_fraction: 0.0,
            splits: 4,
        }
    }
}

impl GeneratorConfig {
    /// Checks the settings; the error names the field to fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.keys == 0 {
            return Err(ConfigError::new("the generator needs at least 1 key"));
        }
        if !(0.0..1.0).contains(&self.skew) {
            return Err(ConfigError::new(format!(
                "key skew must be in [0, 1), not {}",
                self.skew
            )));
        }
        for (name, v) in [
            ("late fraction", self.late_fraction),
            ("malformed fraction", self.malformed_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::new(format!(
                    "{name} must be in [0, 1], not {v}"
                )));
            }
        }
        if self.splits == 0 {
            return Err(ConfigError::new("the generator needs at least 1 split"));
        }
        if let Some(rate) = self.rate {
            if !(rate > 0.0 && rate.is_finite()) {
                return Err(ConfigError::new(format!(
                    "rate must be a positive number, not {rate}"
                )));
            }
        }
        Ok(())
    }

    /// The event time of record `index`, before disorder.
    pub fn nominal_time(&self, index: u64) -> u64 {
        self.start_ms + (index as u128 * self.spacing.as_micros() / 1000) as u64
    }
}

/// Picks keys with the configured skew.
#[derive(Clone, Debug)]
pub struct Keys {
    count: u64,
    exponent: f64,
}

impl Keys {
    fn new(count: u64, skew: f64) -> Self {
        Keys {
            count,
            exponent: 1.0 / (1.0 - skew),
        }
    }

    /// The number of keys.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// A key in `0..count`.
    pub fn pick(&self, rng: &mut SplitMix64) -> u64 {
        if self.exponent == 1.0 {
            return rng.below(self.count);
        }
        ((self.count as f64 * rng.unit().powf(self.exponent)) as u64).min(self.count - 1)
    }
}

/// What record `index` is: generated deterministically from the seed.
pub enum Generation<T> {
    /// A valid record.
    Record(T),
    /// A malformed CSV line and why it fails to decode.
    Malformed(String, String),
}

/// A seeded generator of records of type `T`.
#[derive(Clone, Debug)]
pub struct Generator<T> {
    config: GeneratorConfig,
    _record: PhantomData<T>,
}

impl<T: Generated> Generator<T> {
    /// A generator with these settings (checked by [`GeneratorConfig::validate`]).
    pub fn new(config: GeneratorConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Generator {
            config,
            _record: PhantomData,
        })
    }

    /// The settings.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Record `index`, exactly as the source produces it: for tests and
    /// baselines that recompute a job's output independently.
    pub fn generate(&self, index: u64) -> Generation<T> {
        generate(
            &self.config,
            &Keys::new(self.config.keys, self.config.skew),
            index,
        )
    }

    /// All records, in index order (for bounded generators).
    pub fn records(&self) -> impl Iterator<Item = Generation<T>> + '_ {
        let keys = Keys::new(self.config.keys, self.config.skew);
        (0..self.config.events.unwrap_or(0)).map(move |i| generate(&self.config, &keys, i))
    }
}

fn generate<T: Generated>(config: &GeneratorConfig, keys: &Keys, index: u64) -> Generation<T> {
    let mut rng = SplitMix64::for_item(config.seed, index);
    let mut ts = config.nominal_time(index);
    let disorder = config.disorder.as_millis() as u64;
    if disorder > 0 {
        ts = ts.saturating_sub(rng.below(disorder + 1));
    }
    if rng.chance(config.late_fraction) {
        ts = ts.saturating_sub(config.late_by.as_millis() as u64);
    }
    if rng.chance(config.malformed_fraction) {
        let line = T::malformed(index, &mut rng);
        let headers: Vec<&str> = T::HEADER.split(',').collect();
        let reason = match decode_csv_line::<T>(&headers, &line) {
            Err(reason) => reason.to_string(),
            Ok(_) => "generated as malformed".to_string(),
        };
        return Generation::Malformed(line, reason);
    }
    Generation::Record(T::generate(index, ts, keys, &mut rng))
}

impl<T: Generated> Source for Generator<T> {
    type Item = T;

    fn splits(&self) -> u32 {
        self.config.splits
    }

    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<T>>>, Fault> {
        weir::source::open_each(splits, |split, at| self.open_split(split, at))
    }
}

impl<T: Generated> Generator<T> {
    /// Opens one split at its start, or at a position its reader returned.
    pub fn open_split(
        &self,
        split: SplitId,
        position: Option<&[u8]>,
    ) -> Result<Box<dyn SplitReader<T>>, Fault> {
        let produced = match position {
            None => 0,
            Some(position) => position_word(position, 0)?,
        };
        Ok(Box::new(GeneratorSplit {
            config: self.config.clone(),
            keys: Keys::new(self.config.keys, self.config.skew),
            split: split.0 as u64,
            produced,
            resumed_at: produced,
            started: Instant::now(),
            _record: PhantomData::<T>,
        }))
    }
}

struct GeneratorSplit<T> {
    config: GeneratorConfig,
    keys: Keys,
    split: u64,
    /// Records this split has produced.
    produced: u64,
    /// `produced` when this reader was opened (the rate counts from here).
    resumed_at: u64,
    started: Instant,
    _record: PhantomData<T>,
}

impl<T: Generated> SplitReader<T> for GeneratorSplit<T> {
    fn position(&self) -> Vec<u8> {
        position_of(&[self.produced])
    }

    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, Fault> {
        let splits = self.config.splits as u64;
        let read = self.produced - self.resumed_at;
        let budget = paced_budget(
            self.config.rate,
            self.config.splits,
            self.started,
            read,
            max,
        );
        for _ in 0..budget {
            let index = self.split + self.produced * splits;
            if self.config.events.is_some_and(|n| index >= n) {
                return Ok(ReadStatus::Done);
            }
            out.push(match generate(&self.config, &self.keys, index) {
                Generation::Record(r) => ReadItem::Record(r),
                Generation::Malformed(raw, reason) => ReadItem::Bad(Box::new(DeadLetter {
                    source: String::new(),
                    origin: Origin::split(self.split as u32, self.produced),
                    reason,
                    raw: raw.into(),
                })),
            });
            self.produced += 1;
        }
        let index = self.split + self.produced * splits;
        let ended = self.config.events.is_some_and(|n| index >= n);
        Ok(poll_status(ended, budget, max))
    }
}

/// How many records a split of a generated stream may produce in one poll
/// of at most `max`: all of them unpaced; paced at `rate` records/s over
/// `splits` splits, those due since `started` that it has not `read` yet.
pub fn paced_budget(
    rate: Option<f64>,
    splits: u32,
    started: Instant,
    read: u64,
    max: usize,
) -> u64 {
    let max = max as u64;
    match rate {
        None => max,
        Some(rate) => {
            let per_split = rate / f64::from(splits);
            let due = (started.elapsed().as_secs_f64() * per_split) as u64;
            max.min(due.saturating_sub(read))
        }
    }
}

/// A generated split's status after a poll that produced `budget` of at
/// most `max` records: done at its end, ready if pacing did not hold it
/// back, idle until more records are due.
pub fn poll_status(ended: bool, budget: u64, max: usize) -> ReadStatus {
    if ended {
        ReadStatus::Done
    } else if budget == max as u64 {
        ReadStatus::Ready
    } else {
        ReadStatus::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GeneratorConfig {
        GeneratorConfig {
            events: Some(10_000),
            malformed_fraction: 0.01,
            late_fraction: 0.01,
            ..GeneratorConfig::default()
        }
    }

    fn read_all(g: &mut Generator<Transaction>) -> Vec<ReadItem<Transaction>> {
        let mut all = Vec::new();
        for s in 0..g.splits() {
            let mut reader = g.open_split(SplitId(s), None).expect("opens");
            loop {
                let status = reader.poll(777, &mut all).expect("reads");
                if status == ReadStatus::Done {
                    break;
                }
            }
        }
        all
    }

    #[test]
    fn splits_partition_the_records_exactly() {
        let mut g = Generator::<Transaction>::new(config()).expect("valid");
        let items = read_all(&mut g);
        assert_eq!(items.len(), 10_000);
        // The union of the splits equals the index-order enumeration.
        let mut from_splits: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
        let mut direct: Vec<String> = g
            .records()
            .map(|r| match r {
                Generation::Record(t) => format!("{:?}", ReadItem::Record(t)),
                Generation::Malformed(raw, _) => raw,
            })
            .collect();
        from_splits.retain(|s| s.starts_with("Record"));
        direct.retain(|s| s.starts_with("Record"));
        from_splits.sort();
        direct.sort();
        assert_eq!(from_splits, direct);
    }

    #[test]
    fn malformed_records_fail_the_real_decoder() {
        let mut g = Generator::<Transaction>::new(config()).expect("valid");
        let bad: Vec<DeadLetter> = read_all(&mut g)
            .into_iter()
            .filter_map(|i| match i {
                ReadItem::Bad(d) => Some(*d),
                _ => None,
            })
            .collect();
        // ~1% of 10 000, with slack.
        assert!((50..200).contains(&bad.len()), "{} malformed", bad.len());
        assert!(bad.iter().all(|d| d.reason != "generated as malformed"));
        assert!(bad.iter().any(|d| d.reason.contains("expected 5 fields")));
    }

    #[test]
    fn same_seed_same_records_different_seed_different() {
        let a = Generator::<Reading>::new(config()).expect("valid");
        let mut other = config();
        other.seed = 43;
        let b = Generator::<Reading>::new(other).expect("valid");
        let show = |g: &Generator<Reading>| -> Vec<String> {
            (0..100)
                .map(|i| match g.generate(i) {
                    Generation::Record(r) => format!("{r:?}"),
                    Generation::Malformed(raw, _) => raw,
                })
                .collect()
        };
        assert_eq!(show(&a), show(&a));
        assert_ne!(show(&a), show(&b));
    }

    #[test]
    fn skew_concentrates_keys() {
        let mut rng = SplitMix64::new(1);
        let uniform = Keys::new(100, 0.0);
        let skewed = Keys::new(100, 0.8);
        let low = |k: &Keys, rng: &mut SplitMix64| (0..10_000).filter(|_| k.pick(rng) < 10).count();
        let u = low(&uniform, &mut rng);
        let s = low(&skewed, &mut rng);
        assert!((800..1_200).contains(&u), "uniform: {u}");
        assert!(s > 3 * u, "skewed {s} vs uniform {u}");
    }

    #[test]
    fn a_split_resumes_from_its_position() {
        let g = Generator::<Transaction>::new(config()).expect("valid");
        let mut straight = Vec::new();
        let mut reader = g.open_split(SplitId(1), None).expect("opens");
        while reader.poll(100, &mut straight).expect("reads") != ReadStatus::Done {}
        let mut resumed = Vec::new();
        let mut first = g.open_split(SplitId(1), None).expect("opens");
        first.poll(333, &mut resumed).expect("reads");
        let position = first.position();
        let mut second = g.open_split(SplitId(1), Some(&position)).expect("reopens");
        while second.poll(100, &mut resumed).expect("reads") != ReadStatus::Done {}
        assert_eq!(format!("{resumed:?}"), format!("{straight:?}"));
        assert!(
            g.open_split(SplitId(0), Some(&[1, 2])).is_err(),
            "a short position is refused"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = config();
        c.skew = 1.5;
        assert!(Generator::<Bid>::new(c)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("skew"));
        let mut c = config();
        c.keys = 0;
        assert!(Generator::<Bid>::new(c).is_err());
    }
}
