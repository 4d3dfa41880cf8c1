//! Aggregators: what a window computes over its records.
//!
//! An [`Aggregator`] folds records into an accumulator, merges accumulators
//! (session windows merge), and finishes into a result. Records of a window
//! arrive in no particular order, so an aggregator must not depend on order:
//! that is what keeps window results identical on any number of workers.
//! Tuples of aggregators are aggregators: `(Count, Sum::of(..))`.

use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir::Data;

use crate::exact_sum::ExactSum;

/// Computes one result from the records of a window.
pub trait Aggregator<T>: Clone + 'static {
    /// The running state (checkpointed, so serializable).
    type Acc: Clone + Serialize + DeserializeOwned + 'static;
    /// The result.
    type Out: Data;
    /// The state of an empty window.
    fn init(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, acc: &mut Self::Acc, record: &T);
    /// Merges another window's state into `acc` (when session windows merge).
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);
    /// The result for a window (never called on an empty window).
    fn finish(&self, acc: Self::Acc) -> Self::Out;
}

/// Counts records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<T> Aggregator<T> for Count {
    type Acc = u64;
    type Out = u64;
    fn init(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, _: &T) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
    fn finish(&self, acc: u64) -> u64 {
        acc
    }
}

/// Sums a field.
#[derive(Clone, Copy, Debug)]
pub struct Sum<F>(F);

impl<F> Sum<F> {
    /// Sums `field(record)`.
    pub fn of(field: F) -> Self {
        Sum(field)
    }
}

/// A type [`Sum`] can add up. Integers add exactly (wrapping on overflow is
/// not checked: use a wide type); `f64` and `f32` sums are exact until the
/// final rounding, so the result does not depend on record order.
pub trait Summable: Copy + 'static {
    /// The running sum.
    type Acc: Clone + Default + Serialize + DeserializeOwned + 'static;
    /// Adds a value.
    fn add(acc: &mut Self::Acc, v: Self);
    /// Adds another running sum.
    fn merge(acc: &mut Self::Acc, other: Self::Acc);
    /// The sum.
    fn total(acc: &Self::Acc) -> Self;
}

macro_rules! summable_int {
    ($($t:ty),*) => {$(
        impl Summable for $t {
            type Acc = $t;
            fn add(acc: &mut $t, v: $t) { *acc += v; }
            fn merge(acc: &mut $t, other: $t) { *acc += other; }
            fn total(acc: &$t) -> $t { *acc }
        }
    )*};
}
summable_int!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl Summable for f64 {
    type Acc = ExactSum;
    fn add(acc: &mut ExactSum, v: f64) {
        acc.add(v);
    }
    fn merge(acc: &mut ExactSum, other: ExactSum) {
        acc.merge(&other);
    }
    fn total(acc: &ExactSum) -> f64 {
        acc.value()
    }
}

impl Summable for f32 {
    type Acc = ExactSum;
    fn add(acc: &mut ExactSum, v: f32) {
        acc.add(v as f64);
    }
    fn merge(acc: &mut ExactSum, other: ExactSum) {
        acc.merge(&other);
    }
    fn total(acc: &ExactSum) -> f32 {
        acc.value() as f32
    }
}

impl<T, V, F> Aggregator<T> for Sum<F>
where
    F: Fn(&T) -> V + Clone + 'static,
    V: Summable + Data,
{
    type Acc = V::Acc;
    type Out = V;
    fn init(&self) -> V::Acc {
        V::Acc::default()
    }
    fn add(&self, acc: &mut V::Acc, record: &T) {
        V::add(acc, (self.0)(record));
    }
    fn merge(&self, acc: &mut V::Acc, other: V::Acc) {
        V::merge(acc, other);
    }
    fn finish(&self, acc: V::Acc) -> V {
        V::total(&acc)
    }
}

/// The least value of a field.
#[derive(Clone, Copy, Debug)]
pub struct Min<F>(F);

impl<F> Min<F> {
    /// The minimum of `field(record)`.
    pub fn of(field: F) -> Self {
        Min(field)
    }
}

/// The greatest value of a field.
#[derive(Clone, Copy, Debug)]
pub struct Max<F>(F);

impl<F> Max<F> {
    /// The maximum of `field(record)`.
    pub fn of(field: F) -> Self {
        Max(field)
    }
}

fn keep<V: PartialOrd + Copy>(acc: &mut Option<V>, v: V, better: impl Fn(&V, &V) -> bool) {
    match acc {
        Some(current) if !better(&v, current) => {}
        _ => *acc = Some(v),
    }
}

/// Min and Max differ only in which of two values they keep.
macro_rules! extremum_aggregator {
    ($name:ident, $keep_new:expr) => {
        impl<T, V, F> Aggregator<T> for $name<F>
        where
            F: Fn(&T) -> V + Clone + 'static,
            V: PartialOrd + Copy + Data,
        {
            type Acc = Option<V>;
            type Out = V;
            fn init(&self) -> Option<V> {
                None
            }
            fn add(&self, acc: &mut Option<V>, record: &T) {
                keep(acc, (self.0)(record), $keep_new);
            }
            fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
                if let Some(v) = other {
                    keep(acc, v, $keep_new);
                }
            }
            fn finish(&self, acc: Option<V>) -> V {
                acc.expect("weir invariant: a window holds at least one record")
            }
        }
    };
}

extremum_aggregator!(Min, |new: &V, old: &V| new < old);
extremum_aggregator!(Max, |new: &V, old: &V| new > old);

/// The mean of a field (exact summation: independent of record order).
#[derive(Clone, Copy, Debug)]
pub struct Avg<F>(F);

impl<F> Avg<F> {
    /// The mean of `field(record)`.
    pub fn of(field: F) -> Self {
        Avg(field)
    }
}

impl<T, F> Aggregator<T> for Avg<F>
where
    F: Fn(&T) -> f64 + Clone + 'static,
{
    type Acc = (ExactSum, u64);
    type Out = f64;
    fn init(&self) -> (ExactSum, u64) {
        (ExactSum::default(), 0)
    }
    fn add(&self, acc: &mut (ExactSum, u64), record: &T) {
        acc.0.add((self.0)(record));
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (ExactSum, u64), other: (ExactSum, u64)) {
        acc.0.merge(&other.0);
        acc.1 += other.1;
    }
    fn finish(&self, acc: (ExactSum, u64)) -> f64 {
        acc.0.value() / acc.1.max(1) as f64
    }
}

/// A general fold: an initial state, a step per record, a merge of two
/// states. The fold must give the same result whatever the record order.
#[derive(Clone)]
pub struct Fold<A, S, M> {
    init: A,
    step: S,
    merge: M,
}

impl<A, S, M> Fold<A, S, M> {
    /// Folds records into `init` with `step`; `merge` combines two states.
    pub fn new(init: A, step: S, merge: M) -> Self {
        Fold { init, step, merge }
    }
}

impl<T, A, S, M> Aggregator<T> for Fold<A, S, M>
where
    A: Data,
    S: Fn(&mut A, &T) + Clone + 'static,
    M: Fn(&mut A, A) + Clone + 'static,
{
    type Acc = A;
    type Out = A;
    fn init(&self) -> A {
        self.init.clone()
    }
    fn add(&self, acc: &mut A, record: &T) {
        (self.step)(acc, record)
    }
    fn merge(&self, acc: &mut A, other: A) {
        (self.merge)(acc, other)
    }
    fn finish(&self, acc: A) -> A {
        acc
    }
}

/// Latency percentiles of a window (same unit as the input values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of values.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest value.
    pub max: u64,
}

/// Percentiles (p50/p90/p99/p99.9/max) of a field, from an HDR histogram with
/// three significant digits (values are exact to within 0.1%).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::testing::{run_workers, Script};
/// use weir::Watermarks;
/// use weir_operators::{Percentiles, WindowExt, Windows};
///
/// // (service, latency µs, time ms): latencies 1..=1000 µs in one window.
/// let requests: Vec<(u8, u64, u64)> = (1..=1000).map(|l| (0, l, l)).collect();
/// let script = Script::new().records(&requests);
/// let q = run_workers(2, move |p, capture| {
///     p.source("requests", script.clone())
///         .event_time(|r: &(u8, u64, u64)| r.2, Watermarks::ascending())
///         .key_by("by_service", |r| r.0)
///         .window("latency", Windows::tumbling(Duration::from_secs(10)), Percentiles::of(|r: &(u8, u64, u64)| r.1))
///         .fired
///         .map(|f| f.value)
///         .sink("out", capture.sink());
/// });
/// assert_eq!((q[0].count, q[0].p50, q[0].p99, q[0].max), (1000, 500, 990, 1000));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Percentiles<F>(F);

impl<F> Percentiles<F> {
    /// Percentiles of `field(record)`.
    pub fn of(field: F) -> Self {
        Percentiles(field)
    }
}

/// An HDR histogram that checkpoints as its (value, count) pairs.
#[derive(Clone, Debug)]
pub struct Hist(pub Histogram<u64>);

impl Hist {
    fn new() -> Self {
        // Three significant digits cannot fail to construct.
        Hist(Histogram::new(3).expect("weir invariant: 3 significant digits is valid"))
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(u64, u64)> = self
            .0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        pairs.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let pairs = Vec::<(u64, u64)>::deserialize(d)?;
        let mut h = Hist::new();
        for (value, count) in pairs {
            h.0.record_n(value, count)
                .map_err(serde::de::Error::custom)?;
        }
        Ok(h)
    }
}

impl<T, F> Aggregator<T> for Percentiles<F>
where
    F: Fn(&T) -> u64 + Clone + 'static,
{
    type Acc = Hist;
    type Out = Quantiles;
    fn init(&self) -> Hist {
        Hist::new()
    }
    fn add(&self, acc: &mut Hist, record: &T) {
        // Auto-resizing histograms accept any u64.
        let _ = acc.0.record((self.0)(record));
    }
    fn merge(&self, acc: &mut Hist, other: Hist) {
        let _ = acc.0.add(&other.0);
    }
    fn finish(&self, acc: Hist) -> Quantiles {
        let acc = acc.0;
        Quantiles {
            count: acc.len(),
            p50: acc.value_at_quantile(0.5),
            p90: acc.value_at_quantile(0.9),
            p99: acc.value_at_quantile(0.99),
            p999: acc.value_at_quantile(0.999),
            max: acc.max(),
        }
    }
}

macro_rules! tuple_aggregator {
    ($($name:ident $idx:tt),+) => {
        impl<T, $($name: Aggregator<T>),+> Aggregator<T> for ($($name,)+) {
            type Acc = ($($name::Acc,)+);
            type Out = ($($name::Out,)+);
            fn init(&self) -> Self::Acc {
                ($(self.$idx.init(),)+)
            }
            fn add(&self, acc: &mut Self::Acc, record: &T) {
                $(self.$idx.add(&mut acc.$idx, record);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
                $(self.$idx.merge(&mut acc.$idx, other.$idx);)+
            }
            fn finish(&self, acc: Self::Acc) -> Self::Out {
                ($(self.$idx.finish(acc.$idx),)+)
            }
        }
    };
}

tuple_aggregator!(A 0, B 1);
tuple_aggregator!(A 0, B 1, C 2);
tuple_aggregator!(A 0, B 1, C 2, D 3);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4);
