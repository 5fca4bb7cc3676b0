//! Neither side can erase, frame or forge a breach, end to end: a priority
//! change cannot un-break a promise, late entries are bounded by the
//! promise's `max_entry_lag`, an event cannot predate its request, and time
//! comes from the log (JetStream's own timestamps), never from what a
//! message says; a forged announcement never reaches a screen or a watcher
//! and one standing in Baton's way raises the alarm.

use std::time::Duration;

use baton_e2e::{
    append, count_messages, eventually,
    http::{self, EventStream},
    later, now_millis, projected, requested, timestamp, Baton,
};
use baton_proto::v1::{self, query_client::QueryClient, EventType, Priority};
use futures::StreamExt;
use prost::Message as _;
use tonic::{transport::Channel, Code};

const MIN: i64 = 60_000;

/// Targets a test can wait for (2 s) beside ones that cannot break within
/// it, and late-entry bounds of 1 s (repairs), 1 h (transport) and the
/// default 5 minutes (consults).
const CATALOG: &str = r#"{
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "porters", "name": "Patient transport"},
    {"id": "cardiology", "name": "Cardiology"},
    {"id": "ward-5", "name": "Ward 5"}
  ],
  "kinds": ["repair", "transport", "consult"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "urgent": "15m", "stat": "2s"},
     "escalate_to": "duty-coordinator", "max_entry_lag": "1s"},
    {"id": "transport-pickup", "kind": "transport", "start": "requested", "stop": ["started"],
     "targets": {"routine": "30m", "stat": "2s"}, "max_entry_lag": "1h"},
    {"id": "consult-response", "kind": "consult", "start": "requested", "stop": ["started"],
     "targets": {"routine": "8h", "stat": "30m"}, "escalate_to": "duty-coordinator"}
  ]
}"#;

/// Waits until the wall clock reads `millis` (a deadline must have passed).
async fn until(millis: i64) {
    let wait = (millis - now_millis()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

fn repair(id: &str, priority: Priority, at: i64) -> v1::HandoffEvent {
    requested(id, "repair", "engineering", "ward-5", priority, at)
}

fn sla<'a>(handoff: &'a v1::Handoff, policy: &str) -> &'a v1::SlaStatus {
    handoff
        .slas
        .iter()
        .rev()
        .find(|s| s.policy_id == policy)
        .unwrap_or_else(|| panic!("{policy} covers {}", handoff.handoff_id))
}

fn millis(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("a timestamp");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

async fn breaches_of(query: &mut QueryClient<Channel>, handoff: &str) -> Vec<v1::Breach> {
    query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("list breaches")
        .into_inner()
        .breaches
        .into_iter()
        .filter(|b| b.handoff_id == handoff)
        .collect()
}

/// Waits until the breach of `handoff`'s repair response is announced.
async fn announced(baton: &Baton, handoff: &str) {
    let nats = baton.nats_client().await;
    let subject = format!("baton.sla.breached.repair-response.engineering.ward-5.{handoff}");
    eventually(&format!("{handoff}'s breach announced"), || {
        let (nats, subject) = (nats.clone(), subject.clone());
        async move { (count_messages(&nats, "BATON_SLA", &subject).await == 1).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_priority_change_never_un_breaks_a_promise() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let now = now_millis();

    // A STAT repair breaks its 2 s promise and is announced.
    ingest
        .append(append(repair("stat-1", Priority::Stat, now)))
        .await
        .expect("request");
    announced(&baton, "stat-1").await;

    // Lowered to routine after the deadline: the breach stands.
    let mut lower = later("stat-1", EventType::Reprioritized, now_millis());
    lower.priority = Priority::Routine as i32;
    ingest.append(append(lower)).await.expect("lowered");
    let handoff = projected(&mut query, "stat-1", 2).await;
    assert_eq!(
        sla(&handoff, "repair-response").state(),
        v1::SlaState::Breached,
        "lowering the priority after the deadline must not un-break the promise"
    );
    assert_eq!(breaches_of(&mut query, "stat-1").await.len(), 1);

    // Lowered while its deadline is still ahead: re-targeted (30 min).
    let at = now_millis();
    ingest
        .append(append(repair("stat-2", Priority::Stat, at)))
        .await
        .expect("request");
    let mut lower = later("stat-2", EventType::Reprioritized, at + 500);
    lower.priority = Priority::Routine as i32;
    ingest.append(append(lower)).await.expect("lowered in time");
    let handoff = projected(&mut query, "stat-2", 2).await;
    let clock = sla(&handoff, "repair-response");
    assert_eq!(clock.state(), v1::SlaState::Running);
    assert_eq!(millis(&clock.deadline), at + 30 * MIN);

    // Raised: re-targeted from the request, so a routine repair raised to
    // STAT three seconds on broke its 2 s promise already.
    let at = now_millis();
    ingest
        .append(append(repair("routine-1", Priority::Routine, at)))
        .await
        .expect("request");
    until(at + 3_000).await;
    let mut raise = later("routine-1", EventType::Reprioritized, now_millis());
    raise.priority = Priority::Stat as i32;
    ingest.append(append(raise)).await.expect("raised");
    let handoff = projected(&mut query, "routine-1", 2).await;
    let clock = sla(&handoff, "repair-response");
    assert_eq!(clock.state(), v1::SlaState::Breached);
    assert_eq!(millis(&clock.deadline), at + 2_000);
}

#[tokio::test]
async fn an_acknowledgement_entered_beyond_the_bound_does_not_erase_a_breach() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    // A STAT repair (2 s; late entries count at most 1 s back) breaks and
    // is announced.
    let requested_at = now_millis();
    ingest
        .append(append(repair("late-ack", Priority::Stat, requested_at)))
        .await
        .expect("request");
    announced(&baton, "late-ack").await;

    // Four seconds on, the supplier acknowledges, dating it one second
    // after the request: inside the deadline, but entered 3 s late.
    until(requested_at + 4_000).await;
    ingest
        .append(append(later(
            "late-ack",
            EventType::Acknowledged,
            requested_at + 1_000,
        )))
        .await
        .expect("acknowledged");
    let handoff = projected(&mut query, "late-ack", 2).await;
    let clock = sla(&handoff, "repair-response");
    assert_eq!(
        clock.state(),
        v1::SlaState::Breached,
        "an acknowledgement entered beyond the bound must not prove the promise kept"
    );
    assert!(
        millis(&clock.stopped_at) >= requested_at + 3_000,
        "read one second before its entry"
    );
    assert_eq!(breaches_of(&mut query, "late-ack").await.len(), 1);
    assert!(handoff.corrections.is_empty());
    let lag = handoff.events[1]
        .entry_lag
        .as_ref()
        .expect("entry lag shown");
    assert!(lag.seconds >= 3, "{lag:?}");
}

#[tokio::test]
async fn a_late_entry_within_the_bound_is_a_flagged_and_counted_correction() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let mut corrections = nats
        .subscribe("baton.sla.corrected.>")
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    // A STAT transport (2 s; late entries count up to an hour back) breaks
    // and is announced.
    let requested_at = now_millis();
    ingest
        .append(append(requested(
            "pickup-1",
            "transport",
            "porters",
            "ward-5",
            Priority::Stat,
            requested_at,
        )))
        .await
        .expect("request");
    let subject = "baton.sla.breached.transport-pickup.porters.ward-5.pickup-1".to_owned();
    eventually("the transport's breach announced", || {
        let (nats, subject) = (nats.clone(), subject.clone());
        async move { (count_messages(&nats, "BATON_SLA", &subject).await == 1).then_some(()) }
    })
    .await;
    // The porters then enter their pick-up, dated inside the 2 s.
    ingest
        .append(append(later(
            "pickup-1",
            EventType::Started,
            requested_at + 1_000,
        )))
        .await
        .expect("started");
    let handoff = projected(&mut query, "pickup-1", 2).await;
    assert_eq!(sla(&handoff, "transport-pickup").state(), v1::SlaState::Met);
    // The correction names its cause, on NATS and on the hand-off.
    let message = tokio::time::timeout(Duration::from_secs(20), corrections.next())
        .await
        .expect("a correction within 20 s")
        .expect("the subscription is open");
    let breach = v1::Breach::decode(message.payload).expect("a breach");
    let cause = breach.cause.expect("the correction's cause");
    assert_eq!(
        (cause.r#type(), cause.by_supplier, cause.event_id.as_str()),
        (
            EventType::Started,
            true,
            handoff.events[1].event_id.as_str()
        )
    );
    assert!(cause.entry_lag.expect("lag").seconds >= 1);
    assert_eq!(handoff.corrections.len(), 1);
    let recorded = &handoff.corrections[0];
    assert_eq!(
        (recorded.policy_id.as_str(), recorded.cycle),
        ("transport-pickup", 1)
    );
    assert!(recorded.cause.as_ref().is_some_and(|c| c.by_supplier));
    // Counted for the pair, in the matrix and on /metrics.
    let matrix = query
        .get_matrix(v1::GetMatrixRequest::default())
        .await
        .expect("matrix")
        .into_inner();
    let cell = matrix
        .cells
        .iter()
        .find(|c| c.supplier == "porters")
        .expect("the porters' cell");
    assert_eq!(cell.late_entry_corrections, 1);
    let side = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("side port");
    let metrics = http::get(side, "/metrics").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("baton_pair_late_entry_corrections{")
                && l.contains("supplier=\"porters\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_dated_long_before_its_entry_does_not_break_at_once() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    // A STAT consult (30 minutes) recorded now but dated 59 minutes ago.
    let entered = now_millis();
    ingest
        .append(append(requested(
            "consult-1",
            "consult",
            "cardiology",
            "ward-5",
            Priority::Stat,
            entered - 59 * MIN,
        )))
        .await
        .expect("request");
    let handoff = projected(&mut query, "consult-1", 1).await;
    let clock = sla(&handoff, "consult-response");
    assert_eq!(
        clock.state(),
        v1::SlaState::Running,
        "a request dated 59 minutes back must not page at once"
    );
    // Read as entered five minutes (the default bound) before it was recorded.
    let deadline = millis(&clock.deadline);
    assert!(
        (entered + 25 * MIN - 2_000..=entered + 25 * MIN + 60_000).contains(&deadline),
        "deadline {} ms after entry",
        deadline - entered
    );
    assert!(breaches_of(&mut query, "consult-1").await.is_empty());
}

#[tokio::test]
async fn an_event_dated_before_its_request_is_refused() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let now = now_millis();
    ingest
        .append(append(repair("early-ack", Priority::Routine, now)))
        .await
        .expect("request");
    let status = ingest
        .append(append(later(
            "early-ack",
            EventType::Acknowledged,
            now - 24 * 60 * MIN,
        )))
        .await
        .expect_err("an acknowledgement a day before the request");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("occurred_at"), "{message}");
    let day = |millis: i64| {
        jiff::Timestamp::from_millisecond(millis)
            .expect("in range")
            .strftime("%Y-%m-%dT%H:%M")
            .to_string()
    };
    assert!(
        message.contains(&day(now)) && message.contains(&day(now - 24 * 60 * MIN)),
        "names both times: {message}"
    );
}

/// A hand-off event as ingest would record it, with `recorded_at` of our choosing.
fn forged_request(handoff: &str, at: i64, recorded_at: i64) -> Vec<u8> {
    let mut event = repair(handoff, Priority::Routine, at);
    event.version = 1;
    event.recorded_at = Some(timestamp(recorded_at));
    event.encode_to_vec()
}

#[tokio::test]
async fn a_message_claiming_a_future_recorded_at_does_not_move_time() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let now = now_millis();
    ingest
        .append(append(repair("honest-1", Priority::Routine, now)))
        .await
        .expect("request");
    projected(&mut query, "honest-1", 1).await;

    // Straight onto the stream (dev mode has no NATS permissions), claiming
    // to have been recorded 50 minutes from now.
    let nats = baton.nats_client().await;
    let js = async_nats::jetstream::new(nats.clone());
    js.publish(
        "baton.handoff.forged-1.repair.engineering.ward-5",
        forged_request("forged-1", now, now + 50 * MIN).into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");

    eventually("the forged event parked on the dead letter", || {
        let nats = nats.clone();
        async move {
            (count_messages(&nats, "BATON_DEADLETTER", "baton.deadletter.>").await == 1)
                .then_some(())
        }
    })
    .await;
    let honest = projected(&mut query, "honest-1", 1).await;
    assert_eq!(
        sla(&honest, "repair-response").state(),
        v1::SlaState::Running,
        "the forged time must not break a promise 30 minutes from its deadline"
    );
    let forged = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "forged-1".into(),
        })
        .await;
    assert_eq!(forged.map_err(|s| s.code()).err(), Some(Code::NotFound));
    assert_eq!(
        count_messages(&nats, "BATON_SLA", "baton.sla.>").await,
        0,
        "nothing announced"
    );
}

fn forged_breach(handoff: &str, deadline: i64) -> Vec<u8> {
    v1::Breach {
        handoff_id: handoff.into(),
        policy_id: "repair-response".into(),
        supplier: "engineering".into(),
        customer: "ward-5".into(),
        kind: "repair".into(),
        priority: Priority::Stat as i32,
        cycle: 1,
        open: true,
        deadline: Some(timestamp(deadline)),
        breached_at: Some(timestamp(deadline)),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn a_forged_breach_never_reaches_a_watcher_or_the_board() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let mut watch = query
        .watch_breaches(v1::WatchBreachesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let board = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("board");
    let mut events = EventStream::open(board, "/events").await;
    events
        .next_named("hello", Duration::from_secs(5))
        .await
        .expect("the board's stream says hello");

    // A breach nobody broke, published on the subject scheme.
    let nats = baton.nats_client().await;
    nats.publish(
        "baton.sla.breached.repair-response.engineering.ward-5.forged-2",
        forged_breach("forged-2", now_millis()).into(),
    )
    .await
    .expect("publish");
    nats.flush().await.expect("flush");

    // Then a real one.
    ingest
        .append(append(repair("real-1", Priority::Stat, now_millis())))
        .await
        .expect("request");
    let first = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("a breach within 20 s")
        .expect("the watch is open")
        .expect("a breach")
        .breach
        .expect("the breach in the response");
    assert_eq!(first.handoff_id, "real-1", "the forged breach was relayed");
    let shown = events
        .next_named("breach", Duration::from_secs(20))
        .await
        .expect("a breach on the board");
    assert!(
        shown.data.contains("\"real-1\""),
        "the board showed {}",
        shown.data
    );
}

#[tokio::test]
async fn a_forged_message_in_a_breach_s_place_raises_the_alarm() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let mut watch = query
        .watch_breaches(v1::WatchBreachesRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let side = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("side port");

    // Someone publishes, ahead of time, a breach on the very subject the
    // real one will need, with another deadline.
    let now = now_millis();
    let js = async_nats::jetstream::new(baton.nats_client().await);
    js.publish(
        "baton.sla.breached.repair-response.engineering.ward-5.squatted-1",
        forged_breach("squatted-1", now - 60 * MIN).into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored in BATON_SLA");

    ingest
        .append(append(repair("squatted-1", Priority::Stat, now)))
        .await
        .expect("request");
    // The real breach still reaches the watcher...
    let first = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("a breach within 20 s")
        .expect("the watch is open")
        .expect("a breach")
        .breach
        .expect("the breach in the response");
    assert_eq!(first.handoff_id, "squatted-1");
    assert_ne!(millis(&first.deadline), now - 60 * MIN, "the real deadline");
    // ...and the projector says loudly that the subject holds something else.
    let metrics = eventually("the forged-signal alarm on /metrics", || async move {
        let answer = http::get(side, "/metrics").await;
        answer
            .body
            .lines()
            .any(|l| l.starts_with("baton_sla_forged_signals_total") && l.ends_with(" 1"))
            .then_some(answer.body)
    })
    .await;
    assert!(metrics.contains("baton_sla_forged_signals_total"));
    let ready = http::get(side, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("squatted-1"),
        "readiness names the subject: {}",
        ready.body
    );
}
