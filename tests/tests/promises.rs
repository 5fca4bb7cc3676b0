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
    let compliance = compliance(&mut query, "consult-routine").await;
    assert_eq!((compliance.met, compliance.breached), (1, 0));
}

#[tokio::test]
async fn escalating_to_stat_retargets_the_running_clock_from_its_start() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let requested_at = now_millis() - 60_000;
    ingest
        .append(append(requested(
            "pump-9",
            "repair",
            "engineering",
            "ward-6",
            Priority::Routine,
            requested_at,
        )))
        .await
        .expect("requested");
    let routine = projected(&mut query, "pump-9", 1).await;
    let sla = routine
        .slas
        .iter()
        .find(|s| s.policy_id == "repair-response")
        .expect("clock");
    assert_eq!(
        (sla.state(), sla.target.as_ref().map(|d| d.seconds)),
        (SlaState::Running, Some(30 * 60))
    );

    let mut escalate = later("pump-9", EventType::Reprioritized, requested_at + 30_000);
    escalate.priority = Priority::Stat as i32;
    ingest
        .append(append(escalate.clone()))
        .await
        .expect("reprioritized");
    let stat = projected(&mut query, "pump-9", 2).await;
    assert_eq!(stat.priority(), Priority::Stat);
    let sla = stat
        .slas
        .iter()
        .find(|s| s.policy_id == "repair-response")
        .expect("clock");
    // The STAT target (2 s) counts from the request, so it broke long ago.
    assert_eq!(sla.target.as_ref().map(|d| d.seconds), Some(2));
    assert_eq!(sla.state(), SlaState::Breached);
    assert_eq!(sla.deadline, Some(timestamp(requested_at + 2_000)));

    escalate.event_id = "pump-9-again".into();
    let status = ingest
        .append(append(escalate))
        .await
        .expect_err("already stat");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let mut no_priority = later("pump-9", EventType::Reprioritized, requested_at + 40_000);
    no_priority.priority = 0;
    let status = ingest
        .append(append(no_priority))
        .await
        .expect_err("no priority");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("priority"), "{status:?}");
}

#[tokio::test]
async fn a_late_event_that_shows_the_promise_was_kept_corrects_the_breach() {
    use futures::StreamExt;
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let mut breaches = nats
        .subscribe("baton.sla.breached.>")
        .await
        .expect("subscribe");
    let mut corrections = nats
        .subscribe("baton.sla.corrected.>")
        .await
        .expect("subscribe");

    let requested_at = now_millis();
    ingest
        .append(append(requested(
            "mri-4",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            requested_at,
        )))
        .await
        .expect("requested");
    // Nobody tells Baton in time: the 2 s promise is announced broken.
    let breach = tokio::time::timeout(PATIENCE, breaches.next())
        .await
        .expect("breach")
        .expect("message");
    assert!(breach.subject.as_str().ends_with(".mri-4"));

    // The repair desk's system catches up: it was acknowledged after 1 s.
    ingest
        .append(append(later(
            "mri-4",
            EventType::Acknowledged,
            requested_at + 1_000,
        )))
        .await
        .expect("late acknowledgement");
    let correction = tokio::time::timeout(PATIENCE, corrections.next())
        .await
        .expect("correction")
        .expect("message");
    assert_eq!(
        correction.subject.as_str(),
        "baton.sla.corrected.repair-response.engineering.ward-5.mri-4"
    );
    let payload =
        <v1::Breach as prost::Message>::decode(correction.payload).expect("breach payload");
    assert!(payload.corrected);
    assert_eq!(payload.stopped_at, Some(timestamp(requested_at + 1_000)));

    let handoff = projected(&mut query, "mri-4", 2).await;
    let sla = handoff
        .slas
        .iter()
        .find(|s| s.policy_id == "repair-response")
        .expect("clock");
    assert_eq!(sla.state(), SlaState::Met);
    let listed = query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.breaches.is_empty(), "{listed:?}");
    let compliance = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (compliance.met, compliance.breached),
        (1, 0),
        "figures follow the corrected truth"
    );
    assert_eq!(
        count_messages(&nats, "BATON_SLA", "baton.sla.corrected.>").await,
        1
    );
}

#[tokio::test]
async fn importing_history_fills_the_figures_and_pages_nobody() {
    use futures::StreamExt;
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let mut breaches = nats
        .subscribe("baton.sla.breached.>")
        .await
        .expect("subscribe");

    // Last week's repair calls, one never acknowledged: a breach long ago.
    let week_ago = now_millis() - 7 * 24 * 3_600_000;
    ingest
        .append(append(requested(
            "old-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            week_ago,
        )))
        .await
        .expect("backfill");
    ingest
        .append(append(requested(
            "old-2",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            week_ago,
        )))
        .await
        .expect("backfill");
    ingest
        .append(append(later(
            "old-2",
            EventType::Acknowledged,
            week_ago + 60_000,
        )))
        .await
        .expect("backfill");
    projected(&mut query, "old-2", 2).await;
    let compliance = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (compliance.met, compliance.breached),
        (1, 1),
        "history is in the figures"
    );
    let listed = query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.breaches.len(), 1);

    // A live breach after the import: the first (and only) announcement.
    ingest
        .append(append(requested(
            "live-1",
            "repair",
            "engineering",
            "ward-6",
            Priority::Stat,
            now_millis(),
        )))
        .await
        .expect("live");
    let first = tokio::time::timeout(PATIENCE, breaches.next())
        .await
        .expect("live breach")
        .expect("message");
    assert!(
        first.subject.as_str().ends_with(".live-1"),
        "{}",
        first.subject
    );
    assert_eq!(count_messages(&nats, "BATON_SLA", "baton.sla.>").await, 1);
}
