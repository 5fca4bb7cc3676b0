//! A mergeable duration histogram with a 1% relative error bound.
//!
//! Durations go into logarithmic buckets (the DDSketch layout): bucket `i`
//! holds values in `(γ^(i-1), γ^i]` milliseconds with `γ = 1.0202...`, and a
//! quantile is answered with the bucket's midpoint `2γ^i/(γ+1)`, which is
//! within `α = 1%` of every value in the bucket. Histograms of any windows add
//! up bucket by bucket, so figures over a month never sort a month of samples,
//! and removing a sample (a corrected clock) is exact.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Relative error bound of every quantile.
pub const RELATIVE_ERROR: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// Sparse bucket counts, sorted by bucket index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Samples of exactly zero.
    zeros: u64,
    buckets: Vec<(u16, u64)>,
}

fn bucket_of(millis: u64) -> u16 {
    let index = ((millis as f64).ln() / gamma().ln()).ceil();
    index.clamp(0.0, f64::from(u16::MAX)) as u16
}

fn value_of(bucket: u16) -> f64 {
    2.0 * gamma().powi(i32::from(bucket)) / (gamma() + 1.0)
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.zeros + self.buckets.iter().map(|(_, n)| n).sum::<u64>()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn add(&mut self, duration: Duration) {
        self.adjust(duration, true);
    }

    /// Removes one sample of `duration` (added before); no-op if absent.
    pub fn remove(&mut self, duration: Duration) {
        self.adjust(duration, false);
    }

    fn adjust(&mut self, duration: Duration, add: bool) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            self.zeros = if add {
                self.zeros + 1
            } else {
                self.zeros.saturating_sub(1)
            };
            return;
        }
        let bucket = bucket_of(millis);
        match self.buckets.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) if add => self.buckets[i].1 += 1,
            Ok(i) => {
                self.buckets[i].1 -= 1;
                if self.buckets[i].1 == 0 {
                    self.buckets.remove(i);
                }
            }
            Err(i) if add => self.buckets.insert(i, (bucket, 1)),
            Err(_) => {}
        }
    }

    /// Samples of exactly zero.
    pub fn zeros(&self) -> u64 {
        self.zeros
    }

    /// Non-empty buckets `(index, samples)`, by ascending index.
    pub fn buckets(&self) -> &[(u16, u64)] {
        &self.buckets
    }

    /// The histogram with these zeros and bucket counts (in any order,
    /// repeats added up, empty buckets left out): the inverse of
    /// [`Histogram::zeros`] and [`Histogram::buckets`].
    pub fn from_buckets(zeros: u64, buckets: impl IntoIterator<Item = (u16, u64)>) -> Histogram {
        let mut histogram = Histogram {
            zeros,
            buckets: Vec::new(),
        };
        let mut parts = Histogram::default();
        for (bucket, n) in buckets.into_iter().filter(|(_, n)| *n > 0) {
            parts.buckets = vec![(bucket, n)];
            histogram.merge(&parts);
        }
        histogram
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.zeros += other.zeros;
        for (bucket, n) in &other.buckets {
            match self.buckets.binary_search_by_key(bucket, |(b, _)| *b) {
                Ok(i) => self.buckets[i].1 += n,
                Err(i) => self.buckets.insert(i, (*bucket, *n)),
            }
        }
    }

    /// The `q`-quantile (0..=1), by the nearest-rank definition, within 1%.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        if rank <= self.zeros {
            return Some(Duration::ZERO);
        }
        let mut seen = self.zeros;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(
                    (value_of(*bucket) * 1000.0).round() as u64
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(mut samples in proptest::collection::vec(0u64..10_000_000_000, 1..300)) {
            let mut h = Histogram::default();
            for s in &samples { h.add(Duration::from_millis(*s)); }
            samples.sort_unstable();
            for q in [0.5, 0.9, 0.95, 1.0] {
                let want = exact(&samples, q) as f64;
                let got = h.quantile(q).expect("non-empty").as_secs_f64() * 1000.0;
                prop_assert!((got - want).abs() <= want * RELATIVE_ERROR + 1e-3, "q={} want={} got={}", q, want, got);
            }
        }

        #[test]
        fn merging_equals_adding_everything_and_removal_undoes_adding(
            a in proptest::collection::vec(0u64..100_000_000, 0..100),
            b in proptest::collection::vec(0u64..100_000_000, 0..100),
        ) {
            let mut ha = Histogram::default();
            let mut hb = Histogram::default();
            let mut all = Histogram::default();
            for s in &a { ha.add(Duration::from_millis(*s)); all.add(Duration::from_millis(*s)); }
            for s in &b { hb.add(Duration::from_millis(*s)); all.add(Duration::from_millis(*s)); }
            let mut merged = ha.clone();
            merged.merge(&hb);
            prop_assert_eq!(&merged, &all);
            for s in &b { merged.remove(Duration::from_millis(*s)); }
            prop_assert_eq!(merged, ha);
        }
    }

    #[test]
    fn a_histogram_is_rebuilt_from_its_buckets() {
        let mut h = Histogram::default();
        for ms in [0, 0, 1, 40, 41, 900, 86_400_000] {
            h.add(Duration::from_millis(ms));
        }
        let rebuilt = Histogram::from_buckets(h.zeros(), h.buckets().iter().rev().copied());
        assert_eq!(rebuilt, h);
        assert_eq!(rebuilt.count(), 7);
        let split = Histogram::from_buckets(0, [(3, 1), (3, 2), (9, 0)]);
        assert_eq!(split.buckets(), &[(3, 3)]);
    }

    #[test]
    fn empty_has_no_quantile() {
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
