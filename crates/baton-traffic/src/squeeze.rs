//! A lifecycle squeezed into a short span, for a workload that needs every
//! event of a hand-off within a window (the bench sends hand-offs requested
//! minutes ago, and no event may lie in the future).

use baton_domain::EventType;

use crate::{lifecycle::rating, Lifecycle, Rng};

/// One event of a lifecycle at its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed<'l> {
    pub event_type: EventType,
    /// Milliseconds after the request.
    pub offset_ms: i64,
    /// The new supplier, on REASSIGNED.
    pub supplier: Option<&'l str>,
    /// The score, on RATED.
    pub score: Option<u8>,
}

impl Lifecycle {
    /// Its events spread evenly over `span_ms` from the request (offset 0),
    /// each up to half a step late, in order and all before `span_ms`;
    /// work done in time, rated 3-5.
    pub fn squeeze(&self, rng: &mut Rng, span_ms: i64) -> Vec<Timed<'_>> {
        let step = span_ms.max(0) / self.events.len().max(1) as i64;
        self.events
            .iter()
            .enumerate()
            .map(|(n, event_type)| {
                let jitter = if n == 0 {
                    0
                } else {
                    rng.below(step.max(1) as usize / 2) as i64
                };
                Timed {
                    event_type: *event_type,
                    offset_ms: n as i64 * step + jitter,
                    supplier: match event_type {
                        EventType::Reassigned => self.reassigned_to.as_deref(),
                        _ => None,
                    },
                    score: (*event_type == EventType::Rated).then(|| rating(rng, false)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    // Ours, not proptest's `Rng` trait.
    use crate::Rng;
    use crate::{testing, Fates, Hospital};

    proptest! {
        #[test]
        fn squeezed_events_keep_their_order_within_the_span(
            seed in any::<u64>(),
            span_ms in 0i64..600_000,
        ) {
            let hospital = Hospital::of(&testing::shipped()).expect("a hospital");
            let mut rng = Rng::new(seed);
            for _ in 0..20 {
                let request = hospital.pick_request(&mut rng);
                let plan = Lifecycle::plan(&mut rng, &hospital, &request, &Fates::HOSPITAL_DAY);
                let timed = plan.squeeze(&mut rng, span_ms);
                prop_assert_eq!(
                    timed.iter().map(|t| t.event_type).collect::<Vec<_>>(),
                    plan.events.clone()
                );
                prop_assert_eq!(timed[0].offset_ms, 0);
                prop_assert!(timed.windows(2).all(|w| w[0].offset_ms <= w[1].offset_ms));
                prop_assert!(timed.iter().all(|t| t.offset_ms <= span_ms.max(0)));
                for t in &timed {
                    prop_assert_eq!(t.score.is_some(), t.event_type == EventType::Rated);
                    prop_assert!(t.score.is_none_or(|s| (3..=5).contains(&s)));
                    prop_assert_eq!(t.supplier.is_some(), t.event_type == EventType::Reassigned);
                }
            }
        }
    }
}
