//! The event backbone end to end: gRPC ingest → JetStream → projector →
//! sled views → gRPC queries, against a real nats-server.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority, SlaState};
use futures::StreamExt;
use tonic::Code;

const MIN: i64 = 60_000;

#[tokio::test]
async fn an_acknowledged_repair_is_met_and_shows_in_every_view() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 20 * MIN;

    let first = ingest
        .append(append(requested(
            "pump-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested")
        .into_inner();
    assert_eq!((first.version, first.duplicate), (1, false));
    assert!(first.stream_sequence >= 1);
    let second = ingest
        .append(append(later(
            "pump-1",
            EventType::Acknowledged,
            t0 + 12 * MIN,
        )))
        .await
        .expect("acknowledged")
        .into_inner();
    assert_eq!(second.version, 2);
    assert!(second.stream_sequence > first.stream_sequence);

    let handoff = projected(&mut query, "pump-1", 2).await;
    assert_eq!(handoff.status(), v1::HandoffStatus::Acknowledged);
    assert_eq!(
        (
            handoff.kind.as_str(),
            handoff.supplier.as_str(),
            handoff.customer.as_str()
        ),
        ("repair", "engineering", "ward-5")
    );
    let types: Vec<_> = handoff.events.iter().map(|e| e.r#type()).collect();
    assert_eq!(types, [EventType::Requested, EventType::Acknowledged]);
    // Ingest filled in the routing fields of the later event.
    assert_eq!(handoff.events[1].supplier, "engineering");
    assert_eq!(handoff.events[1].version, 2);
    assert!(handoff.events[1].recorded_at.is_some());
    assert_eq!(handoff.slas.len(), 1);
    let sla = &handoff.slas[0];
    assert_eq!(
        (sla.policy_id.as_str(), sla.state()),
        ("repair-response", SlaState::Met)
    );
    assert_eq!(sla.elapsed.as_ref().map(|d| d.seconds), Some(12 * 60));

    let listed = query
        .list_handoffs(v1::ListHandoffsRequest {
            supplier: "engineering".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.handoffs.len(), 1);
    let none = query
        .list_handoffs(v1::ListHandoffsRequest {
            customer: "ward-6".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert!(none.handoffs.is_empty());

    let compliance = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (
            compliance.total,
            compliance.met,
            compliance.breached,
            compliance.open
        ),
        (1, 1, 0, 0)
    );
    assert_eq!(compliance.compliance, 1.0);
    let p50 = compliance.p50.expect("p50");
    assert!(
        (p50.seconds - 720).abs() <= 8,
        "p50 {p50:?} within 1% of 12 minutes"
    );
    let max = compliance.max.expect("max");
    assert!(
        (max.seconds - 720).abs() <= 8,
        "max {max:?} within 1% of 12 minutes"
    );
}

#[tokio::test]
async fn a_resend_is_answered_from_the_handoffs_own_history() {
    let mut baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - MIN;
    let request = append(requested(
        "lab-7",
        "lab",
        "lab",
        "ward-5",
        Priority::Stat,
        t0,
    ));
    let original = ingest
        .append(request.clone())
        .await
        .expect("first")
        .into_inner();
    let resent = ingest
        .append(request.clone())
        .await
        .expect("resend")
        .into_inner();
    assert!(resent.duplicate);
    assert_eq!(
        (resent.version, resent.stream_sequence),
        (original.version, original.stream_sequence)
    );

    // A fresh ingest replica, with nothing cached: the stream still knows.
    baton.ingest.take().expect("running").stop().await;
    baton.ingest = Some(start_ingest(&baton.nats.url(), &baton.catalog_path()).await);
    let mut ingest = baton.ingest().await;
    let again = ingest
        .append(request.clone())
        .await
        .expect("resend to a new replica")
        .into_inner();
    assert!(again.duplicate);
    assert_eq!(
        (again.version, again.stream_sequence),
        (original.version, original.stream_sequence)
    );

    // The same event_id for a different event is a client bug, said clearly.
    let mut reused = request.clone();
    if let Some(event) = reused.event.as_mut() {
        event.occurred_at = Some(timestamp(t0 + 1));
    }
    let status = ingest.append(reused).await.expect_err("reused id");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    let nats = baton.nats_client().await;
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        1
    );
}

#[tokio::test]
async fn every_earlier_event_is_a_resend_to_the_replica_that_appended_it() {
    // Answered from ingest's cache: each append must carry the hand-off's
    // earlier event ids along, not only its latest.
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - 10 * MIN;
    let id = "pump-resend";
    let events = [
        requested(id, "repair", "engineering", "ward-5", Priority::Urgent, t0),
        later(id, EventType::Acknowledged, t0 + MIN),
        later(id, EventType::Started, t0 + 2 * MIN),
        later(id, EventType::Completed, t0 + 3 * MIN),
    ];
    let mut originals = Vec::new();
    for event in &events {
        let answer = ingest
            .append(append(event.clone()))
            .await
            .expect("appended")
            .into_inner();
        assert!(!answer.duplicate);
        originals.push((answer.version, answer.stream_sequence));
    }
    assert_eq!(
        originals.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    // Oldest first and again newest first: each is the one recorded.
    for (event, original) in events
        .iter()
        .zip(&originals)
        .chain(events.iter().zip(&originals).rev())
    {
        let resent = ingest
            .append(append(event.clone()))
            .await
            .expect("a resend")
            .into_inner();
        assert!(resent.duplicate, "{} resent", event.event_id);
        assert_eq!((resent.version, resent.stream_sequence), *original);
    }
    let nats = baton.nats_client().await;
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        4
    );
}

#[tokio::test]
async fn racing_replicas_never_both_win() {
    let baton = Baton::start().await;
    let other_replica = start_ingest(&baton.nats.url(), &baton.catalog_path()).await;
    let mut a = baton.ingest().await;
    let mut b =
        baton_proto::v1::ingest_client::IngestClient::new(channel(other_replica.addr).await);
    let t0 = now_millis() - MIN;

    for round in 0..20 {
        let id = format!("race-{round}");
        a.append(append(requested(
            &id,
            "repair",
            "engineering",
            "ward-5",
            Priority::Urgent,
            t0,
        )))
        .await
        .expect("requested");
        let mut ack = later(&id, EventType::Acknowledged, t0 + 1000);
        ack.event_id = format!("{id}-ack-a");
        let mut cancel = later(&id, EventType::Cancelled, t0 + 1000);
        cancel.event_id = format!("{id}-cancel-b");
        let (ra, rb) = tokio::join!(
            a.append(v1::AppendRequest {
                event: Some(ack),
                expected_version: Some(1),
                backfill: false,
            }),
            b.append(v1::AppendRequest {
                event: Some(cancel),
                expected_version: Some(1),
                backfill: false,
            }),
        );
        let winners = [ra.is_ok(), rb.is_ok()].iter().filter(|ok| **ok).count();
        assert_eq!(winners, 1, "round {round}: {ra:?} / {rb:?}");
        let loser = ra.err().or(rb.err()).expect("one loser");
        assert_eq!(loser.code(), Code::Aborted, "{loser:?}");
    }

    // Without expected_version, both land, one after the other.
    let t1 = now_millis() - MIN;
    a.append(append(requested(
        "both",
        "lab",
        "lab",
        "ward-6",
        Priority::Routine,
        t1,
    )))
    .await
    .expect("requested");
    // Two events the lifecycle accepts in either order.
    let mut escalate = later("both", EventType::Reprioritized, t1 + 1);
    escalate.event_id = "both-escalate".into();
    escalate.priority = Priority::Stat as i32;
    let mut acknowledge = later("both", EventType::Acknowledged, t1 + 1);
    acknowledge.event_id = "both-acknowledge".into();
    let (ra, rb) = tokio::join!(a.append(append(acknowledge)), b.append(append(escalate)));
    let mut versions = vec![
        ra.expect("acknowledged").into_inner().version,
        rb.expect("reprioritized").into_inner().version,
    ];
    versions.sort();
    assert_eq!(versions, [2, 3]);
    other_replica.stop().await;
}

/// The versions of a hand-off's events in the stream, in stream order.
async fn stream_versions(nats: &async_nats::Client, handoff: &str) -> Vec<(u64, v1::EventType)> {
    use prost::Message as _;
    let js = async_nats::jetstream::new(nats.clone());
    let stream = js.get_stream("BATON_HANDOFFS").await.expect("stream");
    let mut consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: format!("baton.handoff.{handoff}.>"),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let pending = consumer.info().await.expect("info").num_pending;
    let mut messages = consumer.messages().await.expect("messages");
    let mut versions = Vec::new();
    for _ in 0..pending {
        let message = messages.next().await.expect("a message").expect("ok");
        let event = v1::HandoffEvent::decode(message.payload.as_ref()).expect("decodes");
        versions.push((event.version, event.r#type()));
    }
    versions
}

/// A replica whose cache is stale appends without `expected_version`:
/// JetStream refuses the append (its condition names the hand-off's last
/// sequence as that replica saw it), and the replica reads the hand-off
/// again and judges the event on what is there. Deterministic: each step
/// waits for the one before, through replica A, then B, then A.
#[tokio::test]
async fn a_stale_replica_is_refused_by_jetstream_and_judges_again() {
    let baton = Baton::start().await;
    let replica_b = start_ingest(&baton.nats.url(), &baton.catalog_path()).await;
    let mut a = baton.ingest().await;
    let mut b = v1::ingest_client::IngestClient::new(channel(replica_b.addr).await);
    let nats = baton.nats_client().await;
    let t0 = now_millis() - MIN;
    let side_a = baton
        .ingest
        .as_ref()
        .and_then(|r| r.http)
        .expect("A's side port");
    let side_b = replica_b.http.expect("B's side port");
    let conflicts = |side| async move {
        baton_e2e::http::metric(side, "baton_ingest_conflicts_total")
            .await
            .expect("baton_ingest_conflicts_total served")
    };

    // 1. A appends the request (version 1) and caches the hand-off.
    // 2. B appends ACKNOWLEDGED (version 2): A's cache is now stale.
    // 3. A appends STARTED, which its stale copy would number 2: JetStream
    //    refuses, A re-reads and appends it as version 3.
    a.append(append(requested(
        "stale-1",
        "repair",
        "engineering",
        "ward-5",
        Priority::Urgent,
        t0,
    )))
    .await
    .expect("requested through A");
    let acked = b
        .append(append(later("stale-1", EventType::Acknowledged, t0 + 1000)))
        .await
        .expect("acknowledged through B")
        .into_inner();
    assert_eq!(acked.version, 2);
    let started = a
        .append(append(later("stale-1", EventType::Started, t0 + 2000)))
        .await
        .expect("started through A, judged again")
        .into_inner();
    assert_eq!(
        stream_versions(&nats, "stale-1").await,
        [
            (1, EventType::Requested),
            (2, EventType::Acknowledged),
            (3, EventType::Started),
        ],
        "each version once, in order"
    );
    assert_eq!(started.version, 3);
    assert_eq!(conflicts(side_a).await, 1.0, "A was refused once");

    // The same, where the fresh read makes the lifecycle refuse: B
    // completes the hand-off A still holds as REQUESTED; A's ACKNOWLEDGED
    // is refused by JetStream, then by the lifecycle (nothing after
    // COMPLETED), and never stored.
    a.append(append(requested(
        "stale-2",
        "repair",
        "engineering",
        "ward-5",
        Priority::Urgent,
        t0,
    )))
    .await
    .expect("requested through A");
    b.append(append(later("stale-2", EventType::Completed, t0 + 1000)))
        .await
        .expect("completed through B");
    let status = a
        .append(append(later("stale-2", EventType::Acknowledged, t0 + 2000)))
        .await
        .expect_err("acknowledging a completed hand-off");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        stream_versions(&nats, "stale-2").await,
        [(1, EventType::Requested), (2, EventType::Completed)]
    );
    assert_eq!(conflicts(side_a).await, 2.0, "A was refused twice");

    // The condition spans every subject of the hand-off: B reassigns it to
    // the lab, so its events move to another subject, on which A's stale
    // ACKNOWLEDGED (for engineering) would find nothing newer than its
    // copy. JetStream still refuses it; A re-reads and appends it as the
    // lab's, version 3.
    a.append(append(requested(
        "stale-3",
        "repair",
        "engineering",
        "ward-5",
        Priority::Urgent,
        t0,
    )))
    .await
    .expect("requested through A");
    let mut reassigned = later("stale-3", EventType::Reassigned, t0 + 1000);
    reassigned.supplier = "lab".into();
    b.append(append(reassigned))
        .await
        .expect("reassigned through B");
    let acknowledged = a
        .append(append(later("stale-3", EventType::Acknowledged, t0 + 2000)))
        .await
        .expect("acknowledged through A, judged again")
        .into_inner();
    assert_eq!(
        stream_versions(&nats, "stale-3").await,
        [
            (1, EventType::Requested),
            (2, EventType::Reassigned),
            (3, EventType::Acknowledged),
        ]
    );
    assert_eq!(acknowledged.version, 3);
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.stale-3.*.lab.>").await,
        2,
        "the acknowledgement is the lab's"
    );
    assert_eq!(conflicts(side_a).await, 3.0, "A was refused three times");
    assert_eq!(conflicts(side_b).await, 0.0, "B was never stale");
    println!(
        "stale replica: 3 appends refused by JetStream and judged again (2 accepted as version 3, 1 refused by the lifecycle); versions 1..n each once"
    );
    replica_b.stop().await;
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_nothing_reaches_the_stream() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - MIN;
    let good = || {
        requested(
            "h-ok",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            t0,
        )
    };

    let mut cases: Vec<(&str, v1::AppendRequest, Code, &str)> = Vec::new();
    cases.push((
        "no event",
        v1::AppendRequest::default(),
        Code::InvalidArgument,
        "event",
    ));
    for (label, mutate, field) in [
        (
            "empty event_id",
            (|e: &mut v1::HandoffEvent| e.event_id.clear()) as fn(&mut v1::HandoffEvent),
            "event_id",
        ),
        ("wildcard supplier", |e| e.supplier = "*".into(), "supplier"),
        (
            "tail wildcard customer",
            |e| e.customer = ">".into(),
            "customer",
        ),
        (
            "dotted supplier",
            |e| e.supplier = "eng.ineering".into(),
            "supplier",
        ),
        (
            "dotted handoff id",
            |e| e.handoff_id = "a.b".into(),
            "handoff_id",
        ),
        ("unknown kind", |e| e.kind = "catering".into(), "kind"),
        (
            "unknown department",
            |e| e.customer = "ward-99".into(),
            "customer",
        ),
        ("no priority", |e| e.priority = 0, "priority"),
        ("unknown priority", |e| e.priority = 42, "priority"),
        ("unknown event type", |e| e.r#type = 77, "type"),
        ("no occurred_at", |e| e.occurred_at = None, "occurred_at"),
        (
            "an hour in the future",
            |e| e.occurred_at = Some(timestamp(now_millis() + 60 * MIN)),
            "occurred_at",
        ),
        (
            "before 1970",
            |e| e.occurred_at = Some(timestamp(-1)),
            "occurred_at",
        ),
        (
            "too many attributes",
            |e| {
                e.attributes = (0..100)
                    .map(|i| (format!("k{i}"), "v".to_string()))
                    .collect()
            },
            "attributes",
        ),
        (
            "oversized attribute",
            |e| e.attributes = [("asset".to_string(), "x".repeat(10_000))].into(),
            "attributes[asset]",
        ),
    ] {
        let mut event = good();
        mutate(&mut event);
        cases.push((label, append(event), Code::InvalidArgument, field));
    }
    cases.push((
        "acknowledged for an unknown hand-off",
        append(later("never-requested", EventType::Acknowledged, t0)),
        Code::FailedPrecondition,
        "does not exist",
    ));

    for (label, request, code, names) in cases {
        let status = ingest.append(request).await.expect_err(label);
        assert_eq!(status.code(), code, "{label}: {status:?}");
        assert!(
            status.message().contains(names),
            "{label}: {:?} should name {names}",
            status.message()
        );
    }
    let nats = baton.nats_client().await;
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        0,
        "nothing reached the stream"
    );

    // Lifecycle after the hand-off closes, and a stale expected_version.
    ingest.append(append(good())).await.expect("requested");
    ingest
        .append(append(later("h-ok", EventType::Completed, t0 + 1)))
        .await
        .expect("completed");
    for t in [
        EventType::Acknowledged,
        EventType::Started,
        EventType::Cancelled,
        EventType::Completed,
    ] {
        let status = ingest
            .append(append(later("h-ok", t, t0 + 2)))
            .await
            .expect_err("closed");
        assert_eq!(status.code(), Code::FailedPrecondition, "{t:?}: {status:?}");
    }
    let status = ingest.append(append(good())).await;
    assert!(
        status.is_ok_and(|r| r.get_ref().duplicate),
        "the original request resent is still a duplicate"
    );
    let mut second_request = good();
    second_request.event_id = "another-request".into();
    let status = ingest
        .append(append(second_request))
        .await
        .expect_err("requested twice");
    assert_eq!(status.code(), Code::FailedPrecondition);

    ingest
        .append(append(requested(
            "h-v",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    let status = ingest
        .append(v1::AppendRequest {
            event: Some(later("h-v", EventType::Acknowledged, t0 + 1)),
            expected_version: Some(5),
            backfill: false,
        })
        .await
        .expect_err("stale version");
    assert_eq!(status.code(), Code::Aborted);
    assert!(
        status.message().contains("expected_version 5"),
        "{status:?}"
    );
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        3
    );

    // Queries.
    let status = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "bad.id".into(),
        })
        .await
        .expect_err("bad id");
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = query
        .get_compliance(v1::GetComplianceRequest {
            policy_id: "no-such-promise".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown policy");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn ingest_answers_unavailable_without_nats_and_a_retry_loses_nothing() {
    let mut baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - MIN;
    ingest
        .append(append(requested(
            "lift-2",
            "repair",
            "engineering",
            "ed",
            Priority::Urgent,
            t0,
        )))
        .await
        .expect("requested");

    baton.nats.kill();
    let ack = append(later("lift-2", EventType::Acknowledged, t0 + 1000));
    let status = eventually("ingest to notice nats is gone", || {
        let (mut ingest, ack) = (ingest.clone(), ack.clone());
        async move { ingest.append(ack).await.err() }
    })
    .await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("retrying"), "{status:?}");

    baton.nats.restart();
    let accepted = eventually("ingest to append once nats is back", || {
        let (mut ingest, ack) = (ingest.clone(), ack.clone());
        async move { ingest.append(ack).await.ok() }
    })
    .await
    .into_inner();
    assert_eq!(accepted.version, 2);
    let again = ingest
        .append(ack.clone())
        .await
        .expect("resend")
        .into_inner();
    assert!(again.duplicate);
    let handoff = projected(&mut query, "lift-2", 2).await;
    assert_eq!(
        handoff.events.len(),
        2,
        "the projector reconnected and caught up by itself"
    );
    let nats = baton.nats_client().await;
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        2
    );

    // The projector's timer works again too: a clock started after the
    // outage breaches live (a consumer restart must leave no batch counted
    // as waiting to be applied, or no deadline would ever be settled).
    let mut breaches = nats
        .subscribe("baton.sla.breached.>")
        .await
        .expect("subscribe");
    let requested_at = now_millis();
    ingest
        .append(append(requested(
            "vent-9",
            "repair",
            "engineering",
            "ed",
            Priority::Stat,
            requested_at,
        )))
        .await
        .expect("requested");
    let message = tokio::time::timeout(PATIENCE, breaches.next())
        .await
        .expect("a breach after the outage")
        .expect("message");
    assert_eq!(
        message.subject.as_str(),
        "baton.sla.breached.repair-response.engineering.ed.vent-9"
    );
    let _ = baton.ingest.take();
}

#[tokio::test]
async fn an_unacknowledged_stat_repair_breaches_live_exactly_once() {
    let mut baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let mut subscriber = nats
        .subscribe("baton.sla.breached.>")
        .await
        .expect("subscribe");
    let mut watch = query
        .watch_breaches(v1::WatchBreachesRequest {
            supplier: "engineering".into(),
            ..Default::default()
        })
        .await
        .expect("watch")
        .into_inner();

    let requested_at = now_millis();
    ingest
        .append(append(requested(
            "vent-3",
            "repair",
            "engineering",
            "ed",
            Priority::Stat,
            requested_at,
        )))
        .await
        .expect("requested");
    let deadline = requested_at + 2_000;

    let watched = tokio::time::timeout(PATIENCE, watch.next())
        .await
        .expect("a breach within patience")
        .expect("stream open")
        .expect("breach")
        .breach
        .expect("the breach in the response");
    let seen_at = now_millis();
    assert_eq!(
        (watched.handoff_id.as_str(), watched.policy_id.as_str()),
        ("vent-3", "repair-response")
    );
    assert_eq!(watched.deadline, Some(timestamp(deadline)));
    assert_eq!(watched.breached_at, Some(timestamp(deadline)));
    assert!(watched.open);
    assert!(
        seen_at > deadline,
        "announced only after the deadline passed"
    );
    eprintln!("breach seen {} ms after its deadline", seen_at - deadline);

    let message = tokio::time::timeout(PATIENCE, subscriber.next())
        .await
        .expect("on nats")
        .expect("message");
    assert_eq!(
        message.subject.as_str(),
        "baton.sla.breached.repair-response.engineering.ed.vent-3"
    );

    let listed = query
        .list_breaches(v1::ListBreachesRequest {
            open_only: true,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.breaches.len(), 1);
    let compliance = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (compliance.breached, compliance.open, compliance.compliance),
        (1, 0, 0.0)
    );

    // A rebuild from an empty data dir finds the same breach and does not announce it again.
    baton.projector.take().expect("running").stop().await;
    std::fs::remove_dir_all(baton.data_dir()).expect("delete the views");
    baton.projector = Some(baton.spawn_projector().await);
    let mut query = baton.query().await;
    let rebuilt = projected(&mut query, "vent-3", 1).await;
    assert_eq!(rebuilt.slas[0].state(), SlaState::Breached);
    let relisted = eventually("the rebuilt breach list", || {
        let mut query = query.clone();
        async move {
            let list = query
                .list_breaches(v1::ListBreachesRequest::default())
                .await
                .ok()?
                .into_inner();
            (!list.breaches.is_empty()).then_some(list)
        }
    })
    .await;
    assert_eq!(relisted.breaches.len(), 1);
    // The acknowledgement arrives late: the breach closes, it is not announced anew.
    ingest
        .append(append(later(
            "vent-3",
            EventType::Acknowledged,
            now_millis(),
        )))
        .await
        .expect("ack");
    let closed = projected(&mut query, "vent-3", 2).await;
    assert_eq!(closed.slas[0].state(), SlaState::Breached);
    assert_eq!(
        count_messages(&nats, "BATON_SLA", "baton.sla.breached.>").await,
        1,
        "announced exactly once"
    );
}

#[tokio::test]
async fn generic_clients_find_health_and_reflection() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let baton = Baton::start().await;
    for (addr, service) in [
        (
            baton.ingest.as_ref().expect("ingest").addr,
            "baton.v1.Ingest",
        ),
        (
            baton.projector.as_ref().expect("projector").addr,
            "baton.v1.Query",
        ),
    ] {
        wait_serving(addr, service).await;

        let mut reflection = ServerReflectionClient::new(channel(addr).await);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = reflection
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .expect("reflection")
            .into_inner();
        let response = responses.next().await.expect("a response").expect("ok");
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection response {response:?}");
        };
        let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&service), "{names:?}");
        assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    }
}

#[tokio::test]
async fn a_batch_keeps_each_handoffs_order_and_answers_each_event_in_place() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - 60_000;
    // Interleaved hand-offs: each one's events must land in its own order,
    // and the answers must line up with the requests.
    let mut requests = Vec::new();
    for i in 0..20 {
        requests.push(append(requested(
            &format!("b{i}"),
            "repair",
            "engineering",
            "ward-5",
            v1::Priority::Routine,
            t0,
        )));
    }
    for i in 0..20 {
        requests.push(append(later(
            &format!("b{i}"),
            v1::EventType::Acknowledged,
            t0 + 1_000,
        )));
    }
    // Acknowledged twice: refused, in its place.
    let mut twice = later("b3", v1::EventType::Acknowledged, t0 + 2_000);
    twice.event_id = "b3-again".into();
    requests.push(append(twice));
    for i in 0..20 {
        requests.push(append(later(
            &format!("b{i}"),
            v1::EventType::Completed,
            t0 + 3_000,
        )));
    }
    let results = ingest
        .append_batch(v1::AppendBatchRequest { requests })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(results.len(), 61);
    let version = |r: &v1::AppendResult| match &r.outcome {
        Some(v1::append_result::Outcome::Ok(ok)) => Ok(ok.version),
        Some(v1::append_result::Outcome::Error(e)) => Err(e.code),
        None => panic!("no outcome"),
    };
    for i in 0..20 {
        assert_eq!(version(&results[i]), Ok(1), "requested b{i}");
        assert_eq!(version(&results[20 + i]), Ok(2), "acknowledged b{i}");
        assert_eq!(version(&results[41 + i]), Ok(3), "completed b{i}");
    }
    assert_eq!(
        version(&results[40]),
        Err(tonic::Code::FailedPrecondition as i32)
    );
}
