//! FHIR Task through the gateway, end to end: real nats-server, ingest,
//! projector and gateway over HTTP. A Task's life through PUTs (accepted,
//! an owner change, in progress, on hold and back, completed), an
//! impossible transition refused with an OperationOutcome and nothing
//! appended, the Task read back as Baton knows it, and subscription
//! notifications whose event numbers skip one: counted and reported.

use std::{net::SocketAddr, path::PathBuf};

use baton_e2e::{eventually, http, start_gateway, Baton, TEST_CATALOG};
use baton_proto::v1::{self, EventType, HandoffStatus};
use serde_json::{json, Value};

fn mapping() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway/hl7-lab.json")
}

/// `method path` with a FHIR JSON body; the status and the body as JSON.
async fn call(web: SocketAddr, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(web).await.expect("connect");
    let answer = http::exchange(
        stream,
        method,
        path,
        &["Content-Type: application/fhir+json"],
        &body.to_string(),
    )
    .await
    .expect("an answer");
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json)
}

fn task(status: &str, minutes: i64, owner: &str) -> Value {
    let at =
        |m: i64| (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(60 - m)).to_string();
    json!({
        "resourceType": "Task",
        "identifier": [{"system": "urn:oe:orders", "value": "ORD-77"}],
        "status": status,
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": "urn:lab", "code": "TROP"}]},
        "for": {"reference": "Patient/ZZFHIRPATIENT"},
        "requester": {"identifier": {"value": "WARD5"}},
        "owner": {"identifier": {"value": owner}},
        "authoredOn": at(0),
        "lastModified": at(minutes)
    })
}

/// The hand-off once the projector shows it at `version`.
async fn at_version(baton: &Baton, id: &str, version: u64) -> v1::Handoff {
    let query = baton.query().await;
    eventually(&format!("{id} at version {version}"), || {
        let mut query = query.clone();
        let id = id.to_owned();
        async move {
            let h = query
                .get_handoff(v1::GetHandoffRequest { handoff_id: id })
                .await
                .ok()?
                .into_inner()
                .handoff?;
            (h.version == version).then_some(h)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_s_life_through_puts_becomes_its_hand_off_s_events() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest, projector, &mapping()).await;
    let web = gateway.http.expect("side port");

    let (status, created) = call(web, "POST", "/fhir/Task", &task("requested", 0, "LAB")).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("fhir-"), "{id}");
    at_version(&baton, &id, 1).await;
    let path = format!("/fhir/Task/{id}");

    // accepted; then the owner changes and work starts in one PUT.
    let steps = [
        (task("accepted", 5, "LAB"), 2),
        (task("in-progress", 10, "CARD"), 4),
        (task("on-hold", 15, "CARD"), 5),
        (task("in-progress", 20, "CARD"), 6),
        (task("completed", 25, "CARD"), 7),
    ];
    for (body, version) in &steps {
        let (status, answer) = call(web, "PUT", &path, body).await;
        assert_eq!(status, 200, "{body}: {answer}");
        at_version(&baton, &id, *version).await;
    }
    let done = at_version(&baton, &id, 7).await;
    let types: Vec<EventType> = done
        .events
        .iter()
        .map(|e| EventType::try_from(e.r#type).expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            EventType::Requested,
            EventType::Acknowledged,
            EventType::Reassigned,
            EventType::Started,
            EventType::OnHold,
            EventType::Resumed,
            EventType::Completed
        ]
    );
    assert_eq!(done.supplier, "cardiology");
    assert_eq!(done.status, HandoffStatus::Completed as i32);
    assert!(
        !format!("{done:?}").contains("ZZFHIRPATIENT"),
        "Task.for is never read"
    );

    // The same PUT again changes nothing; an impossible one is refused.
    let (status, _) = call(web, "PUT", &path, &steps[4].0).await;
    assert_eq!(status, 200);
    let (status, outcome) = call(web, "PUT", &path, &task("in-progress", 30, "CARD")).await;
    assert_eq!(status, 409, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["expression"][0], "Task.status");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .is_some_and(|d| d.contains("COMPLETED")),
        "{outcome}"
    );
    let (status, wrong) = call(
        web,
        "PUT",
        "/fhir/Task/fhir-0000",
        &task("completed", 25, "LAB"),
    )
    .await;
    assert_eq!(status, 400, "{wrong}");

    // GET answers the Task as Baton knows it: still 7 events.
    let read = http::get(web, &path).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let read: Value = serde_json::from_str(&read.body).expect("json");
    assert_eq!(read["status"], "completed");
    assert_eq!(read["meta"]["versionId"], "7");
    assert_eq!(read["owner"]["identifier"]["value"], "cardiology");
    assert_eq!(http::get(web, "/fhir/Task/fhir-unknown").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_that_skips_an_event_number_is_reported() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest, projector, &mapping()).await;
    let web = gateway.http.expect("side port");
    let notification = |number: u64, order: &str| {
        let mut t = task("requested", 0, "LAB");
        t["identifier"][0]["value"] = json!(order);
        json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
            {"resource": {"resourceType": "SubscriptionStatus", "type": "event-notification",
              "subscription": {"reference": "Subscription/lab-orders"},
              "eventsSinceSubscriptionStart": number.to_string(),
              "notificationEvent": [{"eventNumber": number.to_string(), "focus": {"reference": format!("Task/{order}")}}]}},
            {"fullUrl": format!("Task/{order}"), "resource": t}
        ]})
    };
    let (status, answer) = call(web, "POST", "/fhir/notification", &notification(1, "N-1")).await;
    assert_eq!(status, 200, "{answer}");
    let ready = http::get(web, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    // Event 2 never arrives.
    let (status, answer) = call(web, "POST", "/fhir/notification", &notification(3, "N-3")).await;
    assert_eq!(status, 200, "{answer}");
    let ready = http::get(web, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("skipped events 2..2"), "{}", ready.body);
    assert_eq!(
        http::metric(web, "baton_gateway_fhir_gaps_total").await,
        Some(1.0)
    );
    // Both Tasks that did arrive are hand-offs.
    let query = baton.query().await;
    let handoffs = eventually("two hand-offs from notifications", || {
        let mut query = query.clone();
        async move {
            let h = query
                .list_handoffs(v1::ListHandoffsRequest {
                    customer: "ward-5".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .handoffs;
            (h.len() == 2).then_some(h)
        }
    })
    .await;
    assert_eq!(handoffs.len(), 2);
    // An id-only notification is refused: the Task would be lost silently.
    let id_only = json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "subscription": {"reference": "Subscription/lab-orders"},
          "notificationEvent": [{"eventNumber": "4", "focus": {"reference": "Task/N-4"}}]}}]});
    let (status, outcome) = call(web, "POST", "/fhir/notification", &id_only).await;
    assert_eq!(status, 422, "{outcome}");
}
