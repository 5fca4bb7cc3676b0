//! Promise clocks through the real services.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority, SlaState};

fn millis(rfc3339: &str) -> i64 {
    let t: prost_types::Timestamp = rfc3339.parse().expect("timestamp");
    t.seconds * 1000 + i64::from(t.nanos / 1_000_000)
}

#[tokio::test]
async fn a_routine_consult_runs_on_working_hours_only() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;

    // Cardiology asks dentistry on a Friday at 16:00 (UTC calendar, 08-17 on weekdays).
    let friday_16h = millis("2025-11-21T16:00:00Z");
    ingest
        .append(append(requested(
            "consult-1",
            "consult",
            "dentistry",
            "cardiology",
            Priority::Routine,
            friday_16h,
        )))
        .await
        .expect("requested");
    let open = projected(&mut query, "consult-1", 1).await;
    let sla = open
        .slas
        .iter()
        .find(|s| s.policy_id == "consult-routine")
        .expect("consult clock");
    // One working hour on Friday, seven more from Monday 08:00: due Monday 15:00.
    assert_eq!(
        sla.deadline,
        Some(timestamp(millis("2025-11-24T15:00:00Z")))
    );

    // The dentist arrives on Monday at 10:00: three working hours, met.
    ingest
        .append(append(later(
            "consult-1",
            EventType::Started,
            millis("2025-11-24T10:00:00Z"),
        )))
        .await
        .expect("started");
    let met = projected(&mut query, "consult-1", 2).await;
    let sla = met
        .slas
        .iter()
        .find(|s| s.policy_id == "consult-routine")
        .expect("consult clock");
    assert_eq!(sla.state(), SlaState::Met);
    assert_eq!(sla.elapsed.as_ref().map(|d| d.seconds), Some(3 * 3600));
    let compliance = query
        .get_compliance(v1::GetComplianceRequest {
            policy_id: "consult-routine".into(),
            ..Default::default()
        })
        .await
        .expect("compliance")
        .into_inner();
    assert_eq!((compliance.met, compliance.breached), (1, 0));
}
