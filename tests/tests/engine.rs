//! The promise engine through the real services: warnings, escalations,
//! cycles, ratings, disruptions, the matrix, catalog changes and replay.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority, SlaState};
use futures::StreamExt;
use prost::Message as _;
use tonic::Code;

const MIN: i64 = 60_000;

/// Its tests enter events dated hours back as live callers, so
/// late entries count by their own time for ten years here.
const ENGINE_CATALOG: &str = r#"{
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "lab", "name": "Laboratory"},
    {"id": "cardiology", "name": "Cardiology"},
    {"id": "dentistry", "name": "Dentistry"},
    {"id": "ward-5", "name": "Ward 5"}
  ],
  "kinds": ["repair", "lab", "consult"],
  "max_entry_lag": "3650d",
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "stat": "2s"}, "warn_at": 0.5, "escalate_to": "duty-coordinator"},
    {"id": "lab-turnaround", "kind": "lab", "start": "requested", "stop": ["completed"],
     "targets": {"routine": "4h", "stat": "1h"}},
    {"id": "lab-troponin", "kind": "lab", "match": {"test": "troponin"}, "start": "requested",
     "stop": ["completed"], "targets": {"routine": "1h", "stat": "1h"}},
    {"id": "consult-response", "kind": "consult", "start": "requested", "stop": ["started"],
     "reset": ["reassigned"], "targets": {"routine": "1h"}}
  ]
}"#;

async fn engine() -> Baton {
    Baton::start_with_catalog(ENGINE_CATALOG).await
}

fn sla<'a>(handoff: &'a v1::Handoff, policy: &str) -> Vec<&'a v1::SlaStatus> {
    handoff
        .slas
        .iter()
        .filter(|s| s.policy_id == policy)
        .collect()
}

/// The next message on `subscriber` within PATIENCE.
async fn next(subscriber: &mut async_nats::Subscriber) -> async_nats::Message {
    tokio::time::timeout(PATIENCE, subscriber.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

#[tokio::test]
async fn a_running_clock_warns_then_breaches_and_escalates_live() {
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let mut signals = nats.subscribe("baton.sla.>").await.expect("subscribe");
    nats.flush().await.expect("flush");
    let mut warnings = query
        .watch_warnings(v1::WatchWarningsRequest::default())
        .await
        .expect("watch warnings")
        .into_inner();

    let start = now_millis();
    ingest
        .append(append(requested(
            "pump-7",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            start,
        )))
        .await
        .expect("requested");

    // Half of the 2 s target: the warning, then the breach, then its escalation.
    let warning = next(&mut signals).await;
    assert_eq!(
        warning.subject.as_str(),
        "baton.sla.warning.repair-response.engineering.ward-5.pump-7"
    );
    let payload = v1::SlaWarning::decode(warning.payload).expect("warning payload");
    assert_eq!(payload.warned_at, Some(timestamp(start + 1_000)));
    assert_eq!(payload.deadline, Some(timestamp(start + 2_000)));
    let watched = tokio::time::timeout(PATIENCE, warnings.next())
        .await
        .expect("a warning in time")
        .expect("stream open")
        .expect("a warning")
        .warning
        .expect("the warning in the response");
    assert_eq!(watched.handoff_id, "pump-7");

    let mut rest = vec![
        next(&mut signals).await.subject.to_string(),
        next(&mut signals).await.subject.to_string(),
    ];
    rest.sort();
    assert_eq!(
        rest,
        [
            "baton.sla.breached.repair-response.engineering.ward-5.pump-7",
            "baton.sla.escalated.duty-coordinator.repair-response.engineering.ward-5.pump-7",
        ]
    );
    let handoff = projected(&mut query, "pump-7", 1).await;
    let clock = sla(&handoff, "repair-response")[0];
    assert_eq!((clock.state(), clock.warned), (SlaState::Breached, true));
    let breaches = query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("breaches")
        .into_inner()
        .breaches;
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0].escalate_to, "duty-coordinator");
    assert!(breaches[0].overrun.is_some());
    let figures = compliance(&mut query, "repair-response").await;
    assert_eq!((figures.breached, figures.warned), (1, 1));
}

#[tokio::test]
async fn a_reassigned_consult_keeps_a_cycle_per_specialist() {
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 50 * MIN;
    ingest
        .append(append(requested(
            "consult-9",
            "consult",
            "cardiology",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    let mut reassigned = later("consult-9", EventType::Reassigned, t0 + 10 * MIN);
    reassigned.supplier = "dentistry".into();
    ingest.append(append(reassigned)).await.expect("reassigned");
    ingest
        .append(append(later(
            "consult-9",
            EventType::Started,
            t0 + 25 * MIN,
        )))
        .await
        .expect("started");
    let handoff = projected(&mut query, "consult-9", 3).await;
    let cycles: Vec<_> = sla(&handoff, "consult-response")
        .into_iter()
        .map(|s| {
            (
                s.cycle,
                s.supplier.clone(),
                s.state(),
                s.elapsed.as_ref().map(|d| d.seconds / 60),
            )
        })
        .collect();
    assert_eq!(
        cycles,
        vec![
            (1, "cardiology".into(), SlaState::Reset, Some(10)),
            (2, "dentistry".into(), SlaState::Met, Some(15)),
        ]
    );
    let by = |supplier: &str| v1::GetComplianceRequest {
        policy_id: "consult-response".into(),
        supplier: Some(supplier.into()),
        ..Default::default()
    };
    let figures_of = |response: tonic::Response<v1::GetComplianceResponse>| {
        response.into_inner().compliance.expect("figures")
    };
    let cardiology = figures_of(query.get_compliance(by("cardiology")).await.expect("c"));
    let dentistry = figures_of(query.get_compliance(by("dentistry")).await.expect("c"));
    assert_eq!((cardiology.reset, cardiology.met), (1, 0));
    assert_eq!(dentistry.met, 1);
}

#[tokio::test]
async fn a_promise_matches_on_request_attributes() {
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 10 * MIN;
    let mut troponin = requested("lab-1", "lab", "lab", "ward-5", Priority::Routine, t0);
    troponin.attributes.insert("test".into(), "troponin".into());
    ingest.append(append(troponin)).await.expect("troponin");
    ingest
        .append(append(requested(
            "lab-2",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("other test");
    let covered = projected(&mut query, "lab-1", 1).await;
    let plain = projected(&mut query, "lab-2", 1).await;
    let policies = |h: &v1::Handoff| {
        let mut p: Vec<String> = h.slas.iter().map(|s| s.policy_id.clone()).collect();
        p.sort();
        p
    };
    assert_eq!(policies(&covered), ["lab-troponin", "lab-turnaround"]);
    assert_eq!(policies(&plain), ["lab-turnaround"]);
}

#[tokio::test]
async fn ratings_are_once_after_completion_and_reach_the_matrix() {
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 30 * MIN;
    ingest
        .append(append(requested(
            "lab-5",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    let rating = |score: u32, at: i64| {
        let mut rated = later("lab-5", EventType::Rated, at);
        rated.event_id = format!("rating-{score}-{}", baton_e2e::id_time(at));
        rated.rating = Some(v1::Rating {
            score,
            comment: "results were clear".into(),
        });
        append(rated)
    };
    let early = ingest.append(rating(4, t0 + MIN)).await.expect_err("open");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    ingest
        .append(append(later("lab-5", EventType::Completed, t0 + 20 * MIN)))
        .await
        .expect("completed");
    let bad = ingest
        .append(rating(6, t0 + 21 * MIN))
        .await
        .expect_err("6");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("rating.score"), "{bad:?}");
    ingest
        .append(rating(4, t0 + 22 * MIN))
        .await
        .expect("rated");
    let twice = ingest
        .append(rating(5, t0 + 23 * MIN))
        .await
        .expect_err("twice");
    assert_eq!(twice.code(), Code::FailedPrecondition, "{twice:?}");

    // Another hand-off the lab rejects: counted apart, for the pair.
    ingest
        .append(append(requested(
            "lab-6",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    ingest
        .append(append(later("lab-6", EventType::Rejected, t0 + MIN)))
        .await
        .expect("rejected");

    let rated = projected(&mut query, "lab-5", 3).await;
    assert_eq!(rated.rating, 4);
    projected(&mut query, "lab-6", 2).await;
    let matrix = query
        .get_matrix(v1::GetMatrixRequest::default())
        .await
        .expect("matrix")
        .into_inner();
    let cell = matrix
        .cells
        .iter()
        .find(|c| (c.supplier.as_str(), c.customer.as_str()) == ("lab", "ward-5"))
        .expect("the lab x ward-5 cell");
    assert_eq!(
        (
            cell.handoffs,
            cell.rejected,
            cell.ratings,
            cell.rating,
            cell.met
        ),
        (2, 1, 1, 4.0, 1)
    );
    let lab = compliance(&mut query, "lab-turnaround").await;
    assert_eq!((lab.cancelled, lab.rejected), (1, 1));
}

fn disruption(
    id: &str,
    phase: v1::DisruptionPhase,
    supplier: &str,
    at: i64,
) -> v1::AppendDisruptionRequest {
    v1::AppendDisruptionRequest {
        disruption: Some(v1::DisruptionEvent {
            disruption_id: id.into(),
            phase: phase as i32,
            supplier: supplier.into(),
            kind: "lab".into(),
            occurred_at: Some(timestamp(at)),
            reason: "chemistry analyzer down".into(),
            actor: "lab-desk".into(),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn disruptions_flag_what_was_requested_into_them_even_when_announced_late() {
    use v1::DisruptionPhase::{Ended, Started};
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let now = now_millis();

    // A STAT lab request at now-3h broke its 1 h promise at now-2h ...
    ingest
        .append(append(requested(
            "lab-stat",
            "lab",
            "lab",
            "ward-5",
            Priority::Stat,
            now - 180 * MIN,
        )))
        .await
        .expect("requested");
    // ... and only now does the lab say its analyzer was down from now-4h.
    let opened = ingest
        .append_disruption(disruption("analyzer-2", Started, "lab", now - 240 * MIN))
        .await
        .expect("disruption started")
        .into_inner();
    assert!(!opened.duplicate);
    let again = ingest
        .append_disruption(disruption("analyzer-2", Started, "lab", now - 240 * MIN))
        .await
        .expect("a resend")
        .into_inner();
    assert_eq!(
        (again.duplicate, again.stream_sequence),
        (true, opened.stream_sequence)
    );
    // Requested while it lasts: flagged too.
    ingest
        .append(append(requested(
            "lab-during",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            now - MIN,
        )))
        .await
        .expect("requested");

    let late = projected(&mut query, "lab-stat", 1).await;
    let during = projected(&mut query, "lab-during", 1).await;
    let listed = eventually("the disruption counted", || {
        let mut query = query.clone();
        async move {
            let list = query
                .list_disruptions(v1::ListDisruptionsRequest {
                    active_only: true,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .disruptions;
            list.into_iter().find(|d| d.affected == 2)
        }
    })
    .await;
    assert_eq!(listed.failed_before_announcement, 1, "{listed:?}");
    assert!(listed.active);
    let flagged = projected(&mut query, "lab-stat", 1).await;
    assert_eq!(flagged.disruptions, ["analyzer-2"], "{late:?}");
    assert_eq!(during.disruptions, ["analyzer-2"]);
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.disruption.lab.analyzer-2").await,
        1
    );

    // Ending it: once; a different end is refused, an unknown one too.
    ingest
        .append_disruption(disruption("analyzer-2", Ended, "lab", now))
        .await
        .expect("ended");
    let other_end = ingest
        .append_disruption(disruption("analyzer-2", Ended, "lab", now + 1))
        .await
        .expect_err("ended twice");
    assert_eq!(other_end.code(), Code::AlreadyExists, "{other_end:?}");
    let unknown = ingest
        .append_disruption(disruption("never", Ended, "lab", now))
        .await
        .expect_err("never started");
    assert_eq!(unknown.code(), Code::FailedPrecondition, "{unknown:?}");
    let ghost = ingest
        .append_disruption(disruption("x", Started, "ghost-ward", now))
        .await
        .expect_err("unknown supplier");
    assert_eq!(ghost.code(), Code::InvalidArgument, "{ghost:?}");
    assert!(ghost.message().contains("supplier"), "{ghost:?}");

    eventually("the disruption over", || {
        let mut query = query.clone();
        async move {
            let list = query
                .list_disruptions(v1::ListDisruptionsRequest {
                    active_only: true,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner();
            list.disruptions.is_empty().then_some(())
        }
    })
    .await;
    let matrix = query
        .get_matrix(v1::GetMatrixRequest::default())
        .await
        .expect("matrix")
        .into_inner();
    assert_eq!(matrix.cells[0].disrupted, 2);
}

/// Every figure a query can show, for hand-offs whose clocks have all
/// stopped (so nothing depends on when it is asked).
async fn figures(
    query: &mut v1::query_client::QueryClient<tonic::transport::Channel>,
    ids: &[&str],
) -> String {
    let mut out = Vec::new();
    for id in ids {
        let h = query
            .get_handoff(v1::GetHandoffRequest {
                handoff_id: (*id).into(),
            })
            .await
            .expect("handoff")
            .into_inner();
        out.push(format!("{h:?}"));
    }
    let all = query
        .get_compliance(v1::GetComplianceRequest {
            bucket: v1::Bucket::Day as i32,
            time_zone: "Europe/Amsterdam".into(),
            ..Default::default()
        })
        .await
        .expect("compliance")
        .into_inner();
    out.push(format!("{all:?}"));
    let matrix = query
        .get_matrix(v1::GetMatrixRequest::default())
        .await
        .expect("matrix");
    out.push(format!("{:?}", matrix.into_inner()));
    let mut breaches = query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("breaches")
        .into_inner()
        .breaches;
    breaches.iter_mut().for_each(|b| b.overrun = None);
    out.push(format!("{breaches:?}"));
    let disruptions = query
        .list_disruptions(v1::ListDisruptionsRequest::default())
        .await
        .expect("disruptions");
    out.push(format!("{:?}", disruptions.into_inner()));
    out.join("\n")
}

#[tokio::test]
async fn a_replay_from_empty_reproduces_every_figure_and_a_new_catalog_recalculates_history() {
    use v1::DisruptionPhase::{Ended, Started};
    let baton = engine().await;
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - 600 * MIN;
    let mut ids = Vec::new();
    // Repairs acknowledged after 5..40 min; some lab work, one rejected; a
    // consult passed on; a disruption over part of it.
    for i in 0..8 {
        let id = format!("r{i}");
        let at = t0 + i * 20 * MIN;
        ingest
            .append(append(requested(
                &id,
                "repair",
                "engineering",
                "ward-5",
                Priority::Routine,
                at,
            )))
            .await
            .expect("requested");
        ingest
            .append(append(later(
                &id,
                EventType::Acknowledged,
                at + (5 + 5 * i) * MIN,
            )))
            .await
            .expect("acknowledged");
        ids.push(id);
    }
    ingest
        .append_disruption(disruption("analyzer-3", Started, "lab", t0))
        .await
        .expect("started");
    for i in 0..4 {
        let id = format!("l{i}");
        let at = t0 + i * 50 * MIN;
        ingest
            .append(append(requested(
                &id,
                "lab",
                "lab",
                "ward-5",
                Priority::Stat,
                at,
            )))
            .await
            .expect("requested");
        let end = if i == 3 {
            EventType::Rejected
        } else {
            EventType::Completed
        };
        ingest
            .append(append(later(&id, end, at + (30 + 20 * i) * MIN)))
            .await
            .expect("closed");
        ids.push(id);
    }
    ingest
        .append_disruption(disruption("analyzer-3", Ended, "lab", t0 + 90 * MIN))
        .await
        .expect("ended");
    ingest
        .append(append(requested(
            "c1",
            "consult",
            "cardiology",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    let mut passed_on = later("c1", EventType::Reassigned, t0 + 70 * MIN);
    passed_on.supplier = "dentistry".into();
    ingest.append(append(passed_on)).await.expect("reassigned");
    ingest
        .append(append(later("c1", EventType::Started, t0 + 80 * MIN)))
        .await
        .expect("started");
    ids.push("c1".into());
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();

    let mut query = baton.query().await;
    projected(&mut query, "c1", 3).await;
    let live = figures(&mut query, &ids).await;
    let live_compliance = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (live_compliance.met, live_compliance.breached),
        (6, 2),
        "acknowledged after 5, 10, ... 40 min against 30 min (on target is kept)"
    );

    // A projector from an empty data dir (in place of the live one, whose
    // durable consumer it takes over): the same figures.
    let mut baton = baton;
    baton.projector.take().expect("projector").stop().await;
    let empty = baton.dir.path().join("replay");
    let replay = start_projector(&baton.nats.url(), &baton.catalog_path(), &empty).await;
    let mut replayed = v1::query_client::QueryClient::new(channel(replay.addr).await);
    assert_eq!(figures(&mut replayed, &ids).await, live);
    let status = replayed
        .get_status(v1::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert!(status.current);
    assert_eq!(status.position, status.stream_last_sequence);
    assert_eq!(
        status.applied_since_start, status.position,
        "rebuilt from the first event"
    );
    replay.stop().await;

    // The hospital tightens repair response to 10 minutes: the same
    // history, recalculated by replaying the log under the new catalog.
    let tighter = ENGINE_CATALOG.replace(
        r#""routine": "30m", "stat": "2s""#,
        r#""routine": "10m", "stat": "2s""#,
    );
    let new_catalog = baton.dir.path().join("catalog-v2.json");
    std::fs::write(&new_catalog, &tighter).expect("write catalog");
    let recalculated = start_projector(&baton.nats.url(), &new_catalog, &baton.data_dir()).await;
    let mut query = v1::query_client::QueryClient::new(channel(recalculated.addr).await);
    let tight = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (tight.met, tight.breached),
        (2, 6),
        "only 5 and 10 minutes keep 10 minutes (on target is kept)"
    );
    let r0 = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "r0".into(),
        })
        .await
        .expect("r0")
        .into_inner()
        .handoff
        .expect("the hand-off");
    let version = baton_domain::Catalog::from_json(&tighter)
        .expect("catalog")
        .version()
        .to_owned();
    assert_eq!(r0.catalog_version, version);
    recalculated.stop().await;
}
