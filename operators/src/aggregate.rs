//! Aggregators: what a window computes over its records.
//!
//! An [`Aggregator`] folds records into an accumulator, merges accumulators
//! (session windows merge), and finishes into a result. Records of a window
//! arrive in no particular order, so an aggregator must not depend on order:
//! that is what keeps window results identical on any number of workers.
//! Tuples of aggregators are aggregators: `(Count, Sum::of(..))`.
//!
//! # Non-finite input: NaN and infinities
//!
//! weir follows IEEE 754: plain float arithmetic for sums and means, and the
//! 2019 revision's `minimum`/`maximum` for [`Min`] and [`Max`] — what Java's
//! `Math.min`/`Math.max` do — and not PostgreSQL's total order, which sorts
//! NaN above every number. Why: a NaN reading says "no meaningful value".
//! Under PostgreSQL's order it makes `max` NaN while `min` silently skips it,
//! so one bad reading poisons one column and hides in the next; under IEEE
//! every float result of the window says NaN, consistently with `Sum` and
//! `Avg` (NaN under either convention). A job that wants such values ignored
//! filters them, or dead-letters them at decoding as the example jobs do,
//! before the window. Per aggregator:
//!
//! | aggregator | NaN | +inf / -inf |
//! |---|---|---|
//! | [`Count`] | counted like any record | counted |
//! | [`Sum`] of `f64`/`f32` | any NaN makes the sum NaN | any +inf makes it +inf, any -inf -inf, both NaN |
//! | [`Min`], [`Max`] | any NaN makes the result NaN | ordinary values: `min` of `[-inf, 3]` is -inf |
//! | [`Avg`] | NaN | as [`Sum`], divided by the count: ±inf, or NaN for both |
//! | [`Percentiles`] | cannot occur: its input is `u64` | cannot occur |
//! | [`Fold`] | whatever its step does | the same |
//! | tuples | each component by its own rule: a NaN makes `Avg` NaN, not `Count` | the same |
//!
//! Finite values are summed exactly and rounded once ([`ExactSum`]): an exact
//! sum past `f64::MAX` rounds to ±inf, as IEEE addition would (while the
//! mean of `[f64::MAX, f64::MAX]` is `f64::MAX`, not inf), and no
//! intermediate step overflows, so `MAX + MAX - MAX` is `MAX` in every order.
//! `Min` and `Max` order `-0.0` below `+0.0`. Integer sums see no non-finite
//! values. Every result is independent of record order and merges, to the
//! bit: a NaN result is always the canonical `f64::NAN` (or `f32::NAN`),
//! whichever NaN arrived. Sinks write what they get: CSV writes `NaN`, `inf`,
//! `-inf`; JSON has no such numbers and serde_json writes `null`.

use std::any::Any;
use std::cmp::Ordering;

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

/// Whether `v` is unordered with itself: a NaN (of any float type, or of a
/// user type whose `PartialOrd` has such values).
#[allow(clippy::eq_op)]
fn is_nan<V: PartialOrd>(v: &V) -> bool {
    v.partial_cmp(v).is_none()
}

/// `v`, with a float NaN replaced by the canonical one, so a result's bits
/// never depend on which NaN arrived first.
fn canonical<V: 'static>(mut v: V) -> V {
    let any = &mut v as &mut dyn Any;
    if let Some(x) = any.downcast_mut::<f64>() {
        if x.is_nan() {
            *x = f64::NAN;
        }
    } else if let Some(x) = any.downcast_mut::<f32>() {
        if x.is_nan() {
            *x = f32::NAN;
        }
    }
    v
}

/// How Min and Max order two values that are not NaN: floats by IEEE 754's
/// total order (which differs from `<` only in putting `-0.0` below `+0.0`),
/// anything else by its `PartialOrd`.
fn order<V: PartialOrd + 'static>(a: &V, b: &V) -> Option<Ordering> {
    let (x, y) = (a as &dyn Any, b as &dyn Any);
    if let (Some(x), Some(y)) = (x.downcast_ref::<f64>(), y.downcast_ref::<f64>()) {
        return Some(x.total_cmp(y));
    }
    if let (Some(x), Some(y)) = (x.downcast_ref::<f32>(), y.downcast_ref::<f32>()) {
        return Some(x.total_cmp(y));
    }
    a.partial_cmp(b)
}

/// Keeps in `acc` the `wanted` end of `acc` and `v`; a NaN, once seen,
/// stays (IEEE 754-2019 `minimum`/`maximum`).
fn keep<V: PartialOrd + Copy + 'static>(acc: &mut Option<V>, v: V, wanted: Ordering) {
    match acc {
        Some(current) if is_nan(current) => {}
        Some(current) if !is_nan(&v) && order(&v, current) != Some(wanted) => {}
        _ => *acc = Some(canonical(v)),
    }
}

/// Min and Max differ only in which of two values they keep.
macro_rules! extremum_aggregator {
    ($name:ident, $wanted:expr) => {
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
                keep(acc, (self.0)(record), $wanted);
            }
            fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
                if let Some(v) = other {
                    keep(acc, v, $wanted);
                }
            }
            fn finish(&self, acc: Option<V>) -> V {
                acc.expect("weir invariant: a window holds at least one record")
            }
        }
    };
}

extremum_aggregator!(Min, Ordering::Less);
extremum_aggregator!(Max, Ordering::Greater);

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
        acc.0.mean(acc.1)
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir::rng::SplitMix64;

    const NAN: f64 = f64::NAN;
    const INF: f64 = f64::INFINITY;

    /// `agg` over `values` in many orders, as one accumulator or as up to
    /// three merged ones (a window's records on several workers, merging
    /// sessions); asserts every way gives the same bits and returns the result.
    fn every_order<A: Aggregator<f64>>(agg: &A, values: &[f64]) -> A::Out {
        let fold = |vs: &[f64]| {
            let mut acc = agg.init();
            vs.iter().for_each(|v| agg.add(&mut acc, v));
            acc
        };
        let first = agg.finish(fold(values));
        let bits = bincode::serialize(&first).expect("results serialize");
        let mut rng = SplitMix64::new(values.len() as u64 + 7);
        for round in 0..40 {
            let mut shuffled = values.to_vec();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let a = rng.below(shuffled.len() as u64 + 1) as usize;
            let b = a + rng.below((shuffled.len() - a) as u64 + 1) as usize;
            let (mut x, y, mut z) = (
                fold(&shuffled[..a]),
                fold(&shuffled[a..b]),
                fold(&shuffled[b..]),
            );
            if round % 2 == 0 {
                agg.merge(&mut x, y);
                agg.merge(&mut x, z);
            } else {
                agg.merge(&mut z, y);
                agg.merge(&mut z, x);
                x = z;
            }
            let got = bincode::serialize(&agg.finish(x)).expect("results serialize");
            assert_eq!(
                got, bits,
                "{values:?}, order {shuffled:?} split at {a}, {b}"
            );
        }
        first
    }

    fn same(got: f64, expected: f64) -> bool {
        got.to_bits() == expected.to_bits()
    }

    /// Finite readings, with every mix of the three non-finite values
    /// spliced in, and what each float aggregator must return on it.
    fn cases() -> Vec<(Vec<f64>, [f64; 4])> {
        let finite = vec![21.5, -3.25, 0.0, -0.0, 1e-300, 7.0];
        // (extra values, sum, min, max, avg over finite + extra)
        let table: &[(&[f64], f64, f64, f64)] = &[
            (&[], 25.25, -3.25, 21.5),
            (&[NAN], NAN, NAN, NAN),
            (&[INF], INF, -3.25, INF),
            (&[-INF], -INF, -INF, 21.5),
            (&[INF, -INF], NAN, -INF, INF),
            (&[NAN, INF], NAN, NAN, NAN),
            (&[NAN, -INF], NAN, NAN, NAN),
            (&[NAN, INF, -INF, -NAN], NAN, NAN, NAN),
            (&[INF, INF], INF, -3.25, INF),
        ];
        table
            .iter()
            .map(|(extra, sum, min, max)| {
                let mut values = finite.clone();
                values.extend_from_slice(extra);
                let avg = sum / values.len() as f64;
                (values, [*sum, *min, *max, avg])
            })
            .collect()
    }

    #[test]
    fn every_aggregator_on_non_finite_input_in_any_order() {
        let id = |v: &f64| *v;
        for (values, [sum, min, max, avg]) in cases() {
            assert_eq!(every_order(&Count, &values), values.len() as u64);
            let got = every_order(&Sum::of(id), &values);
            assert!(same(got, sum), "sum of {values:?}: {got}, expected {sum}");
            let got = every_order(&Min::of(id), &values);
            assert!(same(got, min), "min of {values:?}: {got}, expected {min}");
            let got = every_order(&Max::of(id), &values);
            assert!(same(got, max), "max of {values:?}: {got}, expected {max}");
            let got = every_order(&Avg::of(id), &values);
            assert!(same(got, avg), "avg of {values:?}: {got}, expected {avg}");
            // A tuple applies each rule to its own component.
            let (n, s, lo, hi, mean) = every_order(
                &(Count, Sum::of(id), Min::of(id), Max::of(id), Avg::of(id)),
                &values,
            );
            assert_eq!(n, values.len() as u64);
            assert!(same(s, sum) && same(lo, min) && same(hi, max) && same(mean, avg));
            // f32 sums follow the same rules.
            let got = every_order(&Sum::of(|v: &f64| *v as f32), &values);
            assert_eq!(got.is_nan(), sum.is_nan(), "{values:?}");
            if !sum.is_nan() {
                assert_eq!(got, sum as f32, "{values:?}");
            }
        }
    }

    #[test]
    fn a_window_of_only_non_finite_values() {
        let id = |v: &f64| *v;
        for (values, sum, min, max) in [
            (vec![NAN], NAN, NAN, NAN),
            (vec![-NAN, NAN], NAN, NAN, NAN),
            (vec![INF], INF, INF, INF),
            (vec![-INF, -INF], -INF, -INF, -INF),
            (vec![INF, -INF], NAN, -INF, INF),
        ] {
            assert!(same(every_order(&Sum::of(id), &values), sum), "{values:?}");
            assert!(same(every_order(&Min::of(id), &values), min), "{values:?}");
            assert!(same(every_order(&Max::of(id), &values), max), "{values:?}");
            let avg = every_order(&Avg::of(id), &values);
            assert!(same(avg, sum / values.len() as f64), "{values:?}");
            assert_eq!(every_order(&Count, &values), values.len() as u64);
        }
    }

    #[test]
    fn min_and_max_order_signed_zeros_and_keep_the_canonical_nan() {
        let id = |v: &f64| *v;
        assert!(same(every_order(&Min::of(id), &[0.0, -0.0]), -0.0));
        assert!(same(every_order(&Max::of(id), &[-0.0, 0.0]), 0.0));
        // A NaN with a sign and a payload comes out as the one canonical NaN.
        let odd_nan = f64::from_bits(0xfff8_0000_dead_beef);
        assert!(odd_nan.is_nan());
        for agg_out in [
            every_order(&Min::of(id), &[1.0, odd_nan]),
            every_order(&Max::of(id), &[odd_nan, 1.0, NAN]),
            every_order(&Sum::of(id), &[odd_nan, 1.0]),
            every_order(&Avg::of(id), &[1.0, odd_nan]),
        ] {
            assert!(same(agg_out, NAN), "{:#x}", agg_out.to_bits());
        }
        // f32 too.
        let nan32 = f32::from_bits(0xffc0_0001);
        let min = Min::of(move |v: &f64| if *v > 0.0 { nan32 } else { *v as f32 });
        assert_eq!(
            every_order(&min, &[-1.0, 1.0]).to_bits(),
            f32::NAN.to_bits()
        );
        // Types without NaN keep their plain order.
        let max = Max::of(|v: &f64| *v as i64);
        assert_eq!(every_order(&max, &[3.0, -8.0, 12.0]), 12);
    }

    #[test]
    fn sums_and_means_past_the_float_range() {
        let id = |v: &f64| *v;
        let max = f64::MAX;
        assert_eq!(every_order(&Sum::of(id), &[max, max, -max]), max);
        assert_eq!(every_order(&Sum::of(id), &[max, max, 1.0]), INF);
        assert_eq!(every_order(&Avg::of(id), &[max, max, max]), max);
        assert_eq!(every_order(&Avg::of(id), &[-max, -max]), -max);
        assert_eq!(every_order(&Max::of(id), &[max, INF, -INF]), INF);
    }

    #[test]
    fn percentiles_are_unaffected_by_merge_order() {
        let agg = Percentiles::of(|v: &f64| *v as u64);
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        let q = every_order(&agg, &values);
        assert_eq!((q.count, q.max), (200, 200));
    }
}
