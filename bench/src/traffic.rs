//! Realistic hand-off traffic: the kinds, supplier and customer pairs and
//! priorities of `deploy/catalog.json`, each hand-off a short lifecycle
//! (requested, acknowledged, started, on hold and resumed now and then,
//! completed, sometimes cancelled or rejected). Deterministic: a seed gives
//! the same traffic every run. No patient data: ids are counters.

use baton_proto::v1::{self, EventType, Priority};

pub use baton_rng::Rng;

/// A kind of work, who supplies it and who asks for it.
struct Flow {
    kind: &'static str,
    suppliers: &'static [&'static str],
    customers: &'static [&'static str],
    /// Relative frequency.
    weight: usize,
    priorities: &'static [Priority],
    /// Has a STARTED step between acknowledgement and completion.
    started: bool,
}

const FLOWS: &[Flow] = &[
    Flow {
        kind: "lab",
        suppliers: &["lab"],
        customers: &["ed", "icu", "ward-5", "ward-6", "cardiology", "surgery"],
        weight: 35,
        priorities: &[
            Priority::Routine,
            Priority::Routine,
            Priority::Urgent,
            Priority::Stat,
        ],
        started: false,
    },
    Flow {
        kind: "imaging",
        suppliers: &["imaging"],
        customers: &["ed", "ward-5", "ward-6", "surgery", "icu"],
        weight: 12,
        priorities: &[Priority::Routine, Priority::Urgent, Priority::Stat],
        started: true,
    },
    Flow {
        kind: "pharmacy",
        suppliers: &["pharmacy"],
        customers: &["ward-5", "ward-6", "icu", "or", "ed"],
        weight: 15,
        priorities: &[Priority::Routine, Priority::Routine, Priority::Urgent],
        started: false,
    },
    Flow {
        kind: "transport",
        suppliers: &["porters"],
        customers: &["ward-5", "ward-6", "imaging", "or", "ed"],
        weight: 15,
        priorities: &[Priority::Routine, Priority::Urgent],
        started: true,
    },
    Flow {
        kind: "repair",
        suppliers: &["engineering"],
        customers: &["ward-5", "ward-6", "icu", "or", "imaging", "lab"],
        weight: 8,
        priorities: &[Priority::Routine, Priority::Urgent, Priority::Stat],
        started: true,
    },
    Flow {
        kind: "blood",
        suppliers: &["blood-bank"],
        customers: &["or", "icu", "ed"],
        weight: 5,
        priorities: &[Priority::Routine, Priority::Urgent, Priority::Stat],
        started: false,
    },
    Flow {
        kind: "consult",
        suppliers: &["cardiology", "surgery", "anaesthesia", "dentistry"],
        customers: &["ed", "ward-5", "ward-6", "icu"],
        weight: 8,
        priorities: &[Priority::Routine, Priority::Urgent, Priority::Stat],
        started: true,
    },
    Flow {
        kind: "sepsis-antibiotics",
        suppliers: &["pharmacy"],
        customers: &["ed", "icu"],
        weight: 2,
        priorities: &[Priority::Stat],
        started: false,
    },
];

/// Every (kind, supplier, customer) the traffic routes hand-offs along:
/// the subject prefixes a stream of it holds.
pub fn routes() -> Vec<[&'static str; 3]> {
    let mut routes = Vec::new();
    for flow in FLOWS {
        for supplier in flow.suppliers {
            for customer in flow.customers {
                routes.push([flow.kind, *supplier, *customer]);
            }
        }
    }
    routes
}

const LAB_TESTS: &[&str] = &["troponin", "cbc", "crp", "lactate", "electrolytes"];

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

/// The events of one hand-off, as a clinical system would send them:
/// routing fields on REQUESTED only. `base` is REQUESTED's `occurred_at`;
/// later events follow at realistic steps of seconds to minutes, all within
/// `span_ms` so none lies in the future when sent.
pub fn handoff(rng: &mut Rng, id: &str, base: i64, span_ms: i64) -> Vec<v1::HandoffEvent> {
    let total: usize = FLOWS.iter().map(|f| f.weight).sum();
    let mut roll = rng.below(total);
    let flow = FLOWS
        .iter()
        .find(|f| {
            if roll < f.weight {
                true
            } else {
                roll -= f.weight;
                false
            }
        })
        .unwrap_or(&FLOWS[0]);
    let mut attributes = std::collections::HashMap::new();
    if flow.kind == "lab" {
        attributes.insert("test".to_owned(), (*rng.pick(LAB_TESTS)).to_owned());
    }
    if flow.kind == "repair" {
        attributes.insert("asset".to_owned(), format!("asset-{}", rng.below(5000)));
    }
    let mut steps = vec![EventType::Requested, EventType::Acknowledged];
    if flow.started {
        steps.push(EventType::Started);
    }
    if rng.percent(8) {
        steps.push(EventType::OnHold);
        steps.push(EventType::Resumed);
    }
    steps.push(if rng.percent(4) {
        EventType::Cancelled
    } else if rng.percent(3) {
        EventType::Rejected
    } else {
        EventType::Completed
    });
    let step = span_ms / steps.len() as i64;
    steps
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let at = base + n as i64 * step + rng.below(step.max(1) as usize / 2) as i64;
            let mut e = v1::HandoffEvent {
                event_id: format!("e{n}"),
                handoff_id: id.to_owned(),
                r#type: *t as i32,
                occurred_at: Some(timestamp(at)),
                actor: format!("{}-system", flow.kind),
                ..Default::default()
            };
            if n == 0 {
                e.kind = flow.kind.to_owned();
                e.supplier = (*rng.pick(flow.suppliers)).to_owned();
                e.customer = (*rng.pick(flow.customers)).to_owned();
                e.priority = *rng.pick(flow.priorities) as i32;
                e.attributes = attributes.clone();
            }
            e
        })
        .collect()
}

/// A REQUESTED event as ingest records it (version, recorded_at and routing
/// fields set): what the stream holds, for publishing straight to JetStream.
pub fn recorded_request(
    rng: &mut Rng,
    id: &str,
    occurred_at: i64,
    recorded_at: i64,
) -> (String, v1::HandoffEvent) {
    let mut events = handoff(rng, id, occurred_at, 60_000);
    let mut e = events.swap_remove(0);
    e.version = 1;
    e.recorded_at = Some(timestamp(recorded_at));
    let subject = format!(
        "baton.handoff.{}.{}.{}.{}",
        e.handoff_id, e.kind, e.supplier, e.customer
    );
    (subject, e)
}

/// A counter for an id: zero-padded so ids sort in counting order (as the
/// bench's sled views see them), with an `x` after the millions so that
/// no 7 digits stand in a row (8 read as a patient number to ingest's
/// screen): `00x000042`, `12x345678`.
pub fn serial(n: usize) -> String {
    format!("{:02}x{:06}", n / 1_000_000, n % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut rng = Rng::new(7);
        for i in 0..200 {
            let events = handoff(&mut rng, &format!("h{i}"), 1_000_000, 120_000);
            assert_eq!(events[0].r#type, EventType::Requested as i32);
            assert!(!events[0].kind.is_empty() && !events[0].supplier.is_empty());
            let last = events.last().map(|e| e.r#type);
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
}
