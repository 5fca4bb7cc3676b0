//! Realistic hand-off traffic, from the catalog the bench runs on: the
//! lines of work, routes, priorities and lifecycles of [`baton_traffic`]
//! (the generator `batonctl simulate` plays the demo with), each hand-off's
//! events squeezed into a short span and sent as a clinical system would.
//! Every hand-off is answered and closes: one left open would keep a clock
//! running through the bench's later sections. Deterministic: a seed gives
//! the same traffic every run. No patient data: ids are counters.

use std::path::Path;

use anyhow::Context as _;
use baton_domain::Catalog;
use baton_proto::{
    convert::{event_type_to_proto, priority_to_proto},
    v1,
};
use baton_traffic::{Fates, Hospital, Lifecycle};

pub use baton_traffic::{Rng, Route};

/// The traffic a catalog gives.
#[derive(Debug, Clone)]
pub struct Traffic {
    hospital: Hospital,
}

/// A hospital day's fates, with every request answered.
const FATES: Fates = Fates::HOSPITAL_DAY.always_answered();

impl Traffic {
    /// The traffic of the catalog at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Traffic> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let catalog =
            Catalog::from_json(&text).with_context(|| format!("catalog {}", path.display()))?;
        Traffic::of(&catalog).with_context(|| format!("catalog {}", path.display()))
    }

    pub fn of(catalog: &Catalog) -> Result<Traffic, baton_traffic::HospitalError> {
        Ok(Traffic {
            hospital: Hospital::of(catalog)?,
        })
    }

    /// Every (kind, supplier, customer) the traffic routes hand-offs
    /// along: the subject prefixes a stream of it holds.
    pub fn routes(&self) -> Vec<Route<'_>> {
        self.hospital.routes()
    }

    /// The events of one hand-off, as a clinical system would send them:
    /// routing fields on REQUESTED only. `base` is REQUESTED's
    /// `occurred_at`; later events follow at steps of seconds to minutes,
    /// all within `span_ms` so none lies in the future when sent.
    pub fn handoff(
        &self,
        rng: &mut Rng,
        id: &str,
        base: i64,
        span_ms: i64,
    ) -> Vec<v1::HandoffEvent> {
        let request = self.hospital.pick_request(rng);
        let lifecycle = Lifecycle::plan(rng, &self.hospital, &request, &FATES);
        let kind = request.line.kind.as_str();
        let attributes = attributes(rng, kind);
        lifecycle
            .squeeze(rng, span_ms)
            .into_iter()
            .enumerate()
            .map(|(n, step)| {
                let event_type = event_type_to_proto(step.event_type);
                let mut e = v1::HandoffEvent {
                    event_id: format!("e{n}"),
                    handoff_id: id.to_owned(),
                    r#type: event_type as i32,
                    occurred_at: Some(timestamp(base + step.offset_ms)),
                    actor: format!("{kind}-system"),
                    supplier: step.supplier.unwrap_or_default().to_owned(),
                    rating: step.score.map(|score| v1::Rating {
                        score: u32::from(score),
                        comment: String::new(),
                    }),
                    ..Default::default()
                };
                if event_type == v1::EventType::Requested {
                    e.kind = kind.to_owned();
                    e.supplier = request.supplier.to_owned();
                    e.customer = request.customer.to_owned();
                    e.priority = priority_to_proto(request.priority) as i32;
                    e.attributes = attributes.clone();
                }
                e
            })
            .collect()
    }

    /// The events a hospital day of `handoffs` hand-offs brings: each
    /// request's lifecycle planned with [`Fates::HOSPITAL_DAY`], the fates
    /// `batonctl simulate` plans its day with (some never answered), not
    /// the bench's always-answered ones. Hand-off events only: the
    /// simulator's few disruption notices are not counted.
    pub fn day_events(&self, rng: &mut Rng, handoffs: usize) -> usize {
        (0..handoffs)
            .map(|_| {
                let request = self.hospital.pick_request(rng);
                Lifecycle::plan(rng, &self.hospital, &request, &Fates::HOSPITAL_DAY)
                    .events
                    .len()
            })
            .sum()
    }

    /// A REQUESTED event as ingest records it (version, recorded_at and
    /// routing fields set): what the stream holds, for publishing straight
    /// to JetStream.
    pub fn recorded_request(
        &self,
        rng: &mut Rng,
        id: &str,
        occurred_at: i64,
        recorded_at: i64,
    ) -> (String, v1::HandoffEvent) {
        let mut events = self.handoff(rng, id, occurred_at, 60_000);
        let mut e = events.swap_remove(0);
        e.version = 1;
        e.recorded_at = Some(timestamp(recorded_at));
        let subject = format!(
            "baton.handoff.{}.{}.{}.{}",
            e.handoff_id, e.kind, e.supplier, e.customer
        );
        (subject, e)
    }
}

const LAB_TESTS: &[&str] = &["troponin", "cbc", "crp", "lactate", "electrolytes"];

/// What a request of `kind` carries besides its routing: a lab test's
/// code, a repair's asset.
fn attributes(rng: &mut Rng, kind: &str) -> std::collections::HashMap<String, String> {
    let mut attributes = std::collections::HashMap::new();
    if kind == "lab" {
        attributes.insert("test".to_owned(), (*rng.pick(LAB_TESTS)).to_owned());
    }
    if kind == "repair" {
        attributes.insert("asset".to_owned(), format!("asset-{}", rng.below(5000)));
    }
    attributes
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn timestamp(millis: i64) -> prost_types::Timestamp {
    baton_proto::convert::timestamp_to_proto(baton_domain::Timestamp(millis))
}

pub fn millis_of(ts: &prost_types::Timestamp) -> i64 {
    baton_proto::convert::timestamp_from_proto("timestamp", ts).map_or(0, |t| t.0)
}

/// A counter for an id: zero-padded so ids sort in counting order (as the
/// bench's sled views see them), with an `x` after the millions so that
/// no 7 digits stand in a row (8 read as a patient number to ingest's
/// screen): `00x000042`, `12x345678`.
pub fn serial(n: usize) -> String {
    format!("{:02}x{:06}", n / 1_000_000, n % 1_000_000)
}

#[cfg(test)]
pub(crate) mod tests {
    use baton_proto::v1::EventType;

    use super::*;

    /// The traffic of the catalog the bench runs on by default.
    pub fn shipped() -> Traffic {
        let catalog = Catalog::from_json(include_str!("../../deploy/catalog.json"))
            .expect("the shipped catalog");
        Traffic::of(&catalog).expect("traffic")
    }

    #[test]
    fn serials_sort_in_counting_order() {
        assert_eq!(serial(42), "00x000042");
        assert_eq!(serial(12_345_678), "12x345678");
        let ids: Vec<String> = [0, 9, 10, 999_999, 1_000_000, 99_999_999]
            .into_iter()
            .map(serial)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }

    #[test]
    fn every_handoff_opens_with_a_routed_request_and_closes() {
        let traffic = shipped();
        let mut rng = Rng::new(7);
        for i in 0..200 {
            let events = traffic.handoff(&mut rng, &format!("h{i}"), 1_000_000, 120_000);
            assert_eq!(events[0].r#type, EventType::Requested as i32);
            assert!(!events[0].kind.is_empty() && !events[0].supplier.is_empty());
            // The last event but a rating.
            let last = events
                .iter()
                .rev()
                .map(|e| e.r#type)
                .find(|t| *t != EventType::Rated as i32);
            assert!(matches!(
                last.and_then(|t| EventType::try_from(t).ok()),
                Some(EventType::Completed | EventType::Cancelled | EventType::Rejected)
            ));
            let times: Vec<i64> = events
                .iter()
                .filter_map(|e| e.occurred_at.as_ref().map(millis_of))
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]));
            assert!(times.iter().all(|t| *t < 1_000_000 + 120_000));
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_hand_offs_along_the_catalogs_routes() {
        let traffic = shipped();
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..300)
                .map(|i| traffic.handoff(&mut rng, &format!("h{i}"), 1_000_000, 120_000))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let routes: std::collections::BTreeSet<Route<'_>> = traffic.routes().into_iter().collect();
        for events in run(3) {
            let route = Route {
                kind: &events[0].kind,
                supplier: &events[0].supplier,
                customer: &events[0].customer,
            };
            assert!(routes.contains(&route), "{route:?}");
        }
    }
}
