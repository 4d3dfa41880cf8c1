//! Exact, order-independent summation of floats.
//!
//! Float addition is not associative, so a naive sum of a window's values
//! depends on the order records arrived in — and that order depends on the
//! worker count. [`ExactSum`] keeps the sum as a list of non-overlapping
//! partials (Shewchuk's algorithm, as in Python's `math.fsum`): the sum is
//! exact until [`ExactSum::value`] rounds it once, so every order gives the
//! same bits.

/// An exact running sum of `f64` values.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExactSum {
    partials: Vec<f64>,
    /// Non-finite inputs are summed naively (inf + -inf = NaN, as usual).
    special: f64,
}

impl ExactSum {
    /// Adds `x`.
    pub fn add(&mut self, mut x: f64) {
        if !x.is_finite() {
            self.special += x;
            return;
        }
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// Adds another exact sum.
    pub fn merge(&mut self, other: &ExactSum) {
        for p in &other.partials {
            self.add(*p);
        }
        self.special += other.special;
    }

    /// The sum, correctly rounded.
    pub fn value(&self) -> f64 {
        if self.special != 0.0 || self.special.is_nan() {
            return self.special + self.partials.iter().sum::<f64>();
        }
        // Round the partials from the top, as fsum does.
        let mut n = self.partials.len();
        if n == 0 {
            return 0.0;
        }
        n -= 1;
        let mut hi = self.partials[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = self.partials[n];
            hi = x + y;
            let yr = hi - x;
            lo = y - yr;
            if lo != 0.0 {
                break;
            }
        }
        // Correct for half-way cases.
        if n > 0
            && ((lo < 0.0 && self.partials[n - 1] < 0.0)
                || (lo > 0.0 && self.partials[n - 1] > 0.0))
        {
            let y = lo * 2.0;
            let x = hi + y;
            let yr = x - hi;
            if y == yr {
                hi = x;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::rng::SplitMix64;

    #[test]
    fn order_does_not_change_the_sum() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..200 {
            let values: Vec<f64> = (0..50)
                .map(|_| (rng.unit() - 0.5) * 10f64.powi(rng.below(12) as i32 - 4))
                .collect();
            let mut forward = ExactSum::default();
            values.iter().for_each(|v| forward.add(*v));
            let mut backward = ExactSum::default();
            values.iter().rev().for_each(|v| backward.add(*v));
            // Split in two and merge, as session windows do.
            let (a, b) = values.split_at(17);
            let mut left = ExactSum::default();
            a.iter().for_each(|v| left.add(*v));
            let mut right = ExactSum::default();
            b.iter().for_each(|v| right.add(*v));
            right.merge(&left);
            assert_eq!(forward.value().to_bits(), backward.value().to_bits());
            assert_eq!(forward.value().to_bits(), right.value().to_bits());
        }
    }

    #[test]
    fn sums_that_naive_addition_gets_wrong() {
        let mut s = ExactSum::default();
        for v in [1e100, 1.0, -1e100] {
            s.add(v);
        }
        assert_eq!(s.value(), 1.0);
        let mut s = ExactSum::default();
        for _ in 0..10 {
            s.add(0.1);
        }
        assert_eq!(s.value(), 1.0);
        assert_eq!(ExactSum::default().value(), 0.0);
    }
}
