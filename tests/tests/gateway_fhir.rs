//! FHIR Task through the gateway, end to end: real nats-server, ingest,
//! projector and gateway over HTTP. A Task's life through PUTs (accepted,
//! an owner change, in progress, on hold and back, completed), an
//! impossible transition refused with an OperationOutcome and nothing
//! appended, the Task read back as Baton knows it, and subscription
//! notifications whose event numbers skip one: counted and reported; id-only
//! notifications whose Tasks are fetched from a FHIR server the test runs
//! (and from no other).

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use baton_e2e::{eventually, http, start_gateway, start_gateway_configured, Baton, TEST_CATALOG};
use baton_proto::v1::{self, EventType, HandoffStatus};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// Ward 5's hand-offs once the projector shows `count` of them.
async fn ward5(baton: &Baton, count: usize) -> Vec<v1::Handoff> {
    let query = baton.query().await;
    eventually(&format!("{count} hand-offs of ward 5"), || {
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
            (h.len() == count).then_some(h)
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
    let handoffs = ward5(&baton, 2).await;
    assert_eq!(handoffs.len(), 2);
    // An id-only notification, and no --fhir-server to fetch its Task from:
    // refused, so the sender knows the Task was not taken.
    let id_only = json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "subscription": {"reference": "Subscription/lab-orders"},
          "notificationEvent": [{"eventNumber": "4", "focus": {"reference": "Task/N-4"}}]}}]});
    let (status, outcome) = call(web, "POST", "/fhir/notification", &id_only).await;
    assert_eq!(status, 422, "{outcome}");
}

/// A FHIR server holding Tasks by id: `GET /fhir/Task/{id}` with the bearer
/// token answers the Task (404 if it has none, 401 without the token).
/// Counts the fetches it answered.
struct FhirServer {
    addr: SocketAddr,
    tasks: Arc<Mutex<HashMap<String, Value>>>,
    fetches: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl FhirServer {
    async fn start(token: &'static str) -> FhirServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound");
        let tasks: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (held, counted) = (tasks.clone(), fetches.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (tasks, fetches) = (held.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_lowercase();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let (status, body) =
                        if !head.contains(&format!("authorization: bearer {token}")) {
                            ("401 Unauthorized", String::new())
                        } else {
                            let id = path.strip_prefix("/fhir/task/").unwrap_or("");
                            let found = tasks.lock().expect("tasks").get(id).cloned();
                            match found {
                                Some(task) => {
                                    fetches.fetch_add(1, Ordering::SeqCst);
                                    ("200 OK", task.to_string())
                                }
                                None => ("404 Not Found", String::new()),
                            }
                        };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/fhir+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        FhirServer {
            addr,
            tasks,
            fetches,
            accept,
        }
    }

    fn hold(&self, id: &str, task: Value) {
        self.tasks
            .lock()
            .expect("tasks")
            .insert(id.to_lowercase(), task);
    }
}

/// An R5 id-only notification of event `number` about `focus`.
fn id_only(number: u64, focus: &str) -> Value {
    json!({"resourceType": "Bundle", "type": "subscription-notification", "entry": [
        {"resource": {"resourceType": "SubscriptionStatus", "type": "event-notification",
          "subscription": {"reference": "Subscription/lab-orders"},
          "notificationEvent": [{"eventNumber": number.to_string(), "focus": {"reference": focus}}]}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_only_notification_s_tasks_are_fetched_from_the_configured_server_only() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let ehr = FhirServer::start("ehr-secret").await;
    let base = format!("http://{}/fhir", ehr.addr);
    let gateway = start_gateway_configured(ingest, projector, &mapping(), |c| {
        c.fhir_server = Some(base.clone());
        c.fhir_server_token = Some("ehr-secret".to_owned());
    })
    .await;
    let web = gateway.http.expect("side port");

    ehr.hold("T-7", task("requested", 0, "LAB"));
    let (status, answer) = call(web, "POST", "/fhir/notification", &id_only(1, "Task/T-7")).await;
    assert_eq!(status, 200, "{answer}");
    let handoff = ward5(&baton, 1).await.remove(0);

    // The Task moves on at the server; the notification says only its id.
    ehr.hold("T-7", task("completed", 30, "LAB"));
    let absolute = format!("{base}/Task/T-7");
    let (status, answer) = call(web, "POST", "/fhir/notification", &id_only(2, &absolute)).await;
    assert_eq!(status, 200, "{answer}");
    let done = at_version(&baton, &handoff.handoff_id, 2).await;
    assert_eq!(done.status, HandoffStatus::Completed as i32);
    assert_eq!(ehr.fetches.load(Ordering::SeqCst), 2);

    // A focus on another server is refused and never fetched; a Task the
    // server does not have is refused naming it.
    for (number, focus) in [
        (3, "http://attacker.example/fhir/Task/T-7".to_owned()),
        (4, "Task/T-404".to_owned()),
    ] {
        let (status, outcome) =
            call(web, "POST", "/fhir/notification", &id_only(number, &focus)).await;
        assert_eq!(status, 422, "{outcome}");
        assert!(outcome.to_string().contains(&focus), "{outcome}");
    }
    assert_eq!(
        ehr.fetches.load(Ordering::SeqCst),
        2,
        "nothing more fetched"
    );

    // The server away: not taken, to be sent again, and counted.
    ehr.accept.abort();
    let _ = ehr.accept.await;
    let (status, outcome) = call(web, "POST", "/fhir/notification", &id_only(5, "Task/T-7")).await;
    assert_eq!(status, 503, "{outcome}");
    assert_eq!(
        http::metric(web, "baton_gateway_fhir_fetch_failures_total").await,
        Some(1.0)
    );
    let ready = http::get(web, "/readyz").await;
    assert_eq!(
        ready.status, 200,
        "no event number was skipped: {}",
        ready.body
    );
}
