//! A limit measured right before Baton's run of the same size, so that
//! their ratio is not also a measure of how the machine's speed drifted in
//! between; several such pairs, and the one with the median ratio.

use crate::{cpu::CpuPerEvent, load::Outcome};

/// A limit's rate and Baton's run measured right after it.
pub struct Pair {
    pub limit: f64,
    pub ours: Outcome,
    /// Baton's events/s until the projector applied the last.
    pub until_applied: f64,
    /// What an event cost in CPU in the limit's run and in Baton's (until
    /// applied), where `/proc` could be read.
    pub cpu: Option<(CpuPerEvent, CpuPerEvent)>,
}

impl Pair {
    /// Baton's rate until the projector applied the last event (what the
    /// issue calls end to end, not merely acknowledged by ingest) over the
    /// limit's.
    pub fn ratio(&self) -> f64 {
        if self.limit > 0.0 {
            self.until_applied / self.limit
        } else {
            0.0
        }
    }

    /// The pair with the median ratio (the upper one of an even count),
    /// and every pair's ratio in percent, in the order they ran; `None`
    /// if there are no pairs.
    pub fn median(pairs: &mut Vec<Pair>) -> Option<(String, Pair)> {
        if pairs.is_empty() {
            return None;
        }
        let ratios = pairs
            .iter()
            .map(|p| format!("{:.1}", 100.0 * p.ratio()))
            .collect::<Vec<_>>()
            .join(", ");
        pairs.sort_by(|a, b| a.ratio().total_cmp(&b.ratio()));
        let middle = pairs.len() / 2;
        Some((ratios, pairs.swap_remove(middle)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn pair(limit: f64, events: usize) -> Pair {
        Pair {
            limit,
            ours: Outcome {
                events,
                elapsed: Duration::from_secs(1),
                ..Outcome::default()
            },
            until_applied: events as f64,
            cpu: None,
        }
    }

    #[test]
    fn the_ratio_counts_until_the_projector_applied_the_last_event() {
        // Ingest acknowledged 100 events/s, the projector applied them at 80.
        let lagging = Pair {
            until_applied: 80.0,
            ..pair(200.0, 100)
        };
        assert_eq!(lagging.ratio(), 0.4);
    }

    #[test]
    fn the_median_pair_is_the_middle_ratio_and_all_are_listed_in_run_order() {
        // Ratios 80%, 50%, 60%: the median is the third pair run.
        let mut pairs = vec![pair(100.0, 80), pair(200.0, 100), pair(100.0, 60)];
        let (listed, median) = Pair::median(&mut pairs).expect("three pairs");
        assert_eq!(listed, "80.0, 50.0, 60.0");
        assert_eq!(median.limit, 100.0);
        assert_eq!(median.ours.events, 60);
    }

    #[test]
    fn no_pairs_have_no_median() {
        assert!(Pair::median(&mut Vec::new()).is_none());
    }

    #[test]
    fn a_limit_that_measured_nothing_gives_a_zero_ratio_not_infinity() {
        assert_eq!(pair(0.0, 10).ratio(), 0.0);
    }
}
