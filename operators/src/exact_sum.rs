//! Exact, order-independent summation of floats.
//!
//! Float addition is not associative, so a naive sum of a window's values
//! depends on the order records arrived in — and that order depends on the
//! worker count. [`ExactSum`] keeps the sum as a list of non-overlapping
//! partials (Shewchuk's algorithm, as in Python's `math.fsum`): the sum is
//! exact until [`ExactSum::value`] rounds it once, so every order gives the
//! same bits.
//!
//! Values outside the finite range follow IEEE 754 addition, decided on the
//! whole multiset rather than step by step, so the result is the same in any
//! order and after any merges:
//!
//! - any `NaN`, or both `+inf` and `-inf`: the sum is `NaN` (always the one
//!   canonical `f64::NAN`, never the payload of whichever NaN came first);
//! - otherwise any `+inf` (or `-inf`): the sum is `+inf` (or `-inf`), whatever
//!   the finite values are;
//! - otherwise the exact sum of the finite values, rounded once to nearest
//!   (ties to even). An exact sum beyond `f64::MAX` (say `MAX + MAX`) rounds
//!   to `±inf`, as IEEE rounding does; `MAX + MAX - MAX` is `MAX` in every
//!   order, since no intermediate step rounds.
//!
//! Intermediate overflow cannot happen: values of magnitude `2^969` or more
//! are kept apart, scaled down by `2^512` (exactly: a power of two), and the
//! rare sum that holds any is rounded from a wide fixed-point integer.
//! Exactness holds for fewer than `2^54` values per sum.

/// Values of at least this magnitude are summed scaled down by [`SCALE`].
const HUGE: f64 = f64::from_bits((1023 + 969) << 52);
/// `2^-512`: multiplying a huge value by it is exact.
const SCALE_DOWN: f64 = f64::from_bits((1023 - 512) << 52);
/// The exponent of that scaling.
const SCALE: i32 = 512;

/// An exact running sum of `f64` values.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExactSum {
    /// Non-overlapping partials of the finite values below [`HUGE`].
    partials: Vec<f64>,
    /// Non-overlapping partials of the values from [`HUGE`] up, times `2^-512`.
    huge: Vec<f64>,
    /// The non-finite inputs: `0.0` (none), `+inf`, `-inf` or `f64::NAN`.
    special: f64,
}

/// Adds `x` to non-overlapping partials (Shewchuk).
fn add_partial(partials: &mut Vec<f64>, mut x: f64) {
    let mut i = 0;
    for j in 0..partials.len() {
        let mut y = partials[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            partials[i] = lo;
            i += 1;
        }
        x = hi;
    }
    partials.truncate(i);
    partials.push(x);
}

/// Combines two non-finite classes (`0.0` for none) by IEEE addition, with
/// one canonical NaN.
fn combine_special(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_nan() {
        f64::NAN
    } else {
        s
    }
}

impl ExactSum {
    /// Adds `x`.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.special = combine_special(self.special, x);
        } else if x.abs() >= HUGE {
            add_partial(&mut self.huge, x * SCALE_DOWN);
        } else {
            add_partial(&mut self.partials, x);
        }
    }

    /// Adds another exact sum.
    pub fn merge(&mut self, other: &ExactSum) {
        for p in &other.partials {
            add_partial(&mut self.partials, *p);
        }
        for p in &other.huge {
            add_partial(&mut self.huge, *p);
        }
        self.special = combine_special(self.special, other.special);
    }

    /// The sum, correctly rounded (see the module doc for non-finite input).
    pub fn value(&self) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special;
        }
        if self.huge.is_empty() {
            fsum_round(&self.partials)
        } else {
            self.wide().round(0)
        }
    }

    /// The mean of `n` values summing to this: [`ExactSum::value`] divided by
    /// `n` — unless only the rounding of the sum overflowed, in which case
    /// the exact sum is scaled down before dividing, so the mean of
    /// `[f64::MAX, f64::MAX]` is `f64::MAX`, not `inf`.
    pub fn mean(&self, n: u64) -> f64 {
        let n = n.max(1) as f64;
        let sum = self.value();
        if sum.is_finite() || self.special != 0.0 || self.special.is_nan() {
            return sum / n;
        }
        self.wide().round(64) / n * f64::from_bits((1023 + 64) << 52)
    }

    /// The exact sum of the finite values as a wide fixed-point integer.
    fn wide(&self) -> Wide {
        let mut w = Wide::default();
        for p in &self.partials {
            w.add(*p, 0);
        }
        for p in &self.huge {
            w.add(*p, SCALE);
        }
        w
    }
}

/// Rounds non-overlapping partials from the top, as fsum does.
fn fsum_round(partials: &[f64]) -> f64 {
    let mut n = partials.len();
    if n == 0 {
        return 0.0;
    }
    n -= 1;
    let mut hi = partials[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = partials[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    // Correct for half-way cases.
    if n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        let yr = x - hi;
        if y == yr {
            hi = x;
        }
    }
    hi
}

/// Limbs of [`Wide`]: 2 304 bits, from `2^-1074` (the least subnormal) up
/// past `2^1024 · 2^512 · 2^54` (huge partials, with room for their count).
const LIMBS: usize = 36;

/// An exact sum of finite floats as a signed fixed-point integer in units
/// of `2^-1074`, kept as two magnitudes (positive and negative parts).
#[derive(Default)]
struct Wide {
    pos: Mag,
    neg: Mag,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Mag([u64; LIMBS]);

impl Default for Mag {
    fn default() -> Self {
        Mag([0; LIMBS])
    }
}

impl Mag {
    /// Adds `mantissa · 2^bit`.
    fn add(&mut self, mantissa: u64, bit: u32) {
        let mut i = (bit / 64) as usize;
        let mut carry = u128::from(mantissa) << (bit % 64);
        while carry != 0 && i < LIMBS {
            let s = u128::from(self.0[i]) + (carry & u128::from(u64::MAX));
            self.0[i] = s as u64;
            carry = (carry >> 64) + (s >> 64);
            i += 1;
        }
    }

    /// `self - other`, for `self >= other`.
    fn minus(&self, other: &Mag) -> Mag {
        let mut out = Mag::default();
        let mut borrow = 0u64;
        for i in 0..LIMBS {
            let (d, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d, b2) = d.overflowing_sub(borrow);
            out.0[i] = d;
            borrow = u64::from(b1 || b2);
        }
        out
    }

    fn cmp(&self, other: &Mag) -> std::cmp::Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }

    /// The index of the highest set bit.
    fn top_bit(&self) -> Option<u32> {
        (0..LIMBS)
            .rev()
            .find(|&i| self.0[i] != 0)
            .map(|i| i as u32 * 64 + 63 - self.0[i].leading_zeros())
    }

    fn bit(&self, bit: u32) -> bool {
        self.0[(bit / 64) as usize] >> (bit % 64) & 1 == 1
    }

    /// Whether any bit below `bit` is set.
    fn any_below(&self, bit: u32) -> bool {
        let limb = (bit / 64) as usize;
        self.0[..limb].iter().any(|l| *l != 0) || self.0[limb] & ((1u64 << (bit % 64)) - 1) != 0
    }

    /// The bits from `bit` up, which the caller knows fit in 64.
    fn bits_from(&self, bit: u32) -> u64 {
        let limb = (bit / 64) as usize;
        let shift = bit % 64;
        let lo = self.0[limb] >> shift;
        let hi = match (shift, self.0.get(limb + 1)) {
            (0, _) | (_, None) => 0,
            (s, Some(next)) => next << (64 - s),
        };
        lo | hi
    }
}

impl Wide {
    /// Adds the finite `x · 2^scale`.
    fn add(&mut self, x: f64, scale: i32) {
        if x == 0.0 {
            return;
        }
        let bits = x.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32;
        let fraction = bits & ((1u64 << 52) - 1);
        let (mantissa, exp) = if exponent == 0 {
            (fraction, -1074)
        } else {
            (fraction | 1 << 52, exponent - 1075)
        };
        // `exp >= -1074` and `scale >= 0`, so the bit is never negative.
        let bit = (exp + 1074 + scale) as u32;
        if x < 0.0 {
            self.neg.add(mantissa, bit);
        } else {
            self.pos.add(mantissa, bit);
        }
    }

    /// The sum times `2^-down`, rounded to nearest, ties to even.
    fn round(&self, down: i32) -> f64 {
        let (mag, negative) = match self.pos.cmp(&self.neg) {
            std::cmp::Ordering::Less => (self.neg.minus(&self.pos), true),
            _ => (self.pos.minus(&self.neg), false),
        };
        let Some(top) = mag.top_bit() else {
            return 0.0;
        };
        // The value is mag · 2^e; its result's last bit is worth 2^ulp.
        let e = -1074 - down;
        let ulp = (top as i32 + e - 52).max(-1074);
        let drop = ulp - e;
        let (mut q, mut ulp) = if drop <= 0 {
            (mag.bits_from(0), e)
        } else {
            let drop = drop as u32;
            let mut q = mag.bits_from(drop);
            let half = mag.bit(drop - 1);
            if half && (q & 1 == 1 || mag.any_below(drop - 1)) {
                q += 1;
            }
            (q, ulp)
        };
        if q == 1 << 53 {
            q >>= 1;
            ulp += 1;
        }
        let magnitude = if ulp + 63 - q.leading_zeros() as i32 > 1023 {
            f64::INFINITY
        } else {
            // Exact: q < 2^53 and the product is representable.
            q as f64 * pow2(ulp)
        };
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }
}

/// `2^e` for `-1074 <= e <= 1023`.
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::rng::SplitMix64;

    fn sum_of(values: &[f64]) -> ExactSum {
        let mut s = ExactSum::default();
        values.iter().for_each(|v| s.add(*v));
        s
    }

    /// The sum of `values` in several orders and merge trees: all must give
    /// the same bits, which are returned.
    fn in_every_order(values: &[f64]) -> f64 {
        let forward = sum_of(values).value();
        let rev: Vec<f64> = values.iter().rev().copied().collect();
        let mut results = vec![sum_of(&rev).value()];
        let mut rng = SplitMix64::new(values.len() as u64);
        for _ in 0..20 {
            let mut shuffled = values.to_vec();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i as u64 + 1) as usize);
            }
            results.push(sum_of(&shuffled).value());
            // Split in up to three parts and merge them, as windows on
            // several workers (or merging sessions) do.
            let a = rng.below(shuffled.len() as u64 + 1) as usize;
            let b = a + rng.below((shuffled.len() - a) as u64 + 1) as usize;
            let mut left = sum_of(&shuffled[..a]);
            let mid = sum_of(&shuffled[a..b]);
            let mut right = sum_of(&shuffled[b..]);
            right.merge(&mid);
            left.merge(&right);
            results.push(left.value());
        }
        for r in results {
            assert_eq!(
                r.to_bits(),
                forward.to_bits(),
                "{values:?}: {r} vs {forward}"
            );
        }
        forward
    }

    #[test]
    fn order_does_not_change_the_sum() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..200 {
            let values: Vec<f64> = (0..50)
                .map(|_| (rng.unit() - 0.5) * 10f64.powi(rng.below(12) as i32 - 4))
                .collect();
            in_every_order(&values);
        }
    }

    #[test]
    fn sums_that_naive_addition_gets_wrong() {
        assert_eq!(in_every_order(&[1e100, 1.0, -1e100]), 1.0);
        assert_eq!(in_every_order(&[0.1; 10]), 1.0);
        assert_eq!(ExactSum::default().value(), 0.0);
    }

    #[test]
    fn non_finite_values_follow_ieee_in_any_order() {
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        let finite = [1.5, -2.25, 1e300, -1e-300, f64::MAX];
        let cases: &[(&[f64], f64)] = &[
            (&[inf], inf),
            (&[-inf], -inf),
            (&[inf, inf], inf),
            (&[inf, -inf], nan),
            (&[nan], nan),
            (&[nan, inf], nan),
            (&[-nan, 1.0], nan),
            (&[inf, -inf, inf], nan),
        ];
        for (specials, expected) in cases {
            let mut values = finite.to_vec();
            values.extend_from_slice(specials);
            let got = in_every_order(&values);
            // One canonical NaN: the bits never depend on which NaN came first.
            assert_eq!(got.to_bits(), expected.to_bits(), "{values:?}");
        }
        // A negative NaN's sign does not leak into the result.
        assert_eq!(sum_of(&[-nan]).value().to_bits(), f64::NAN.to_bits());
    }

    #[test]
    fn sums_beyond_the_float_range_round_once() {
        let max = f64::MAX;
        assert_eq!(in_every_order(&[max, max, -max]), max);
        assert_eq!(in_every_order(&[max, max]), f64::INFINITY);
        assert_eq!(in_every_order(&[-max, -max, 1.0]), f64::NEG_INFINITY);
        assert_eq!(in_every_order(&[max, max, -max, -max, 3.0]), 3.0);
        assert_eq!(
            in_every_order(&[1e308, 1e308, 1e308, -1e308, -1e308]),
            1e308
        );
        // MAX plus half its ulp is a tie, which rounds to even: to 2^1024, inf.
        let half_ulp = 2f64.powi(970);
        assert_eq!(in_every_order(&[max, half_ulp]), f64::INFINITY);
        // Just under the tie rounds back to MAX.
        assert_eq!(in_every_order(&[max, half_ulp, -1.0]), max);
        // Huge and tiny together: the tiny part survives cancellation.
        assert_eq!(in_every_order(&[max, 1e-300, -max]), 1e-300);
        assert_eq!(in_every_order(&[1e300, 5e-324, -1e300]), 5e-324);
    }

    #[test]
    fn the_wide_rounding_agrees_with_fsum() {
        let mut rng = SplitMix64::new(11);
        for _ in 0..2000 {
            let values: Vec<f64> = (0..1 + rng.below(20))
                .map(|_| {
                    let mantissa = rng.unit() - 0.5;
                    mantissa * 2f64.powi(rng.below(2000) as i32 - 1000)
                })
                .filter(|v| v.abs() < HUGE)
                .collect();
            let s = sum_of(&values);
            assert_eq!(
                s.wide().round(0).to_bits(),
                s.value().to_bits(),
                "{values:?}"
            );
        }
    }

    #[test]
    fn huge_values_round_as_their_scaled_down_copies() {
        // Scaling by a power of two commutes with exact rounding (away from
        // the subnormal and overflow ranges): the huge path must agree with
        // the partials path on the same values times 2^-980.
        let up = 2f64.powi(980);
        let mut rng = SplitMix64::new(5);
        for _ in 0..500 {
            let small: Vec<f64> = (0..1 + rng.below(30))
                .map(|_| (rng.unit() - 0.5) * 2f64.powi(rng.below(40) as i32 - 20))
                .collect();
            let huge: Vec<f64> = small.iter().map(|v| v * up).collect();
            let expected = sum_of(&small).value() * up;
            if expected.is_finite() {
                assert_eq!(
                    in_every_order(&huge).to_bits(),
                    expected.to_bits(),
                    "{small:?}"
                );
            }
        }
    }

    #[test]
    fn means_do_not_overflow_with_their_sums() {
        let mut s = sum_of(&[f64::MAX, f64::MAX]);
        assert_eq!(s.value(), f64::INFINITY);
        assert_eq!(s.mean(2), f64::MAX);
        s.add(f64::INFINITY);
        assert_eq!(s.mean(3), f64::INFINITY);
        assert_eq!(sum_of(&[1.0, 2.0]).mean(2), 1.5);
        assert!(sum_of(&[f64::NAN]).mean(1).is_nan());
    }
}
