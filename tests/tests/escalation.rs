//! Acknowledging an escalation end to end (real nats-server, ingest and
//! projector): a STAT repair breaks its promise and is escalated to the
//! duty coordinator; the coordinator's acknowledgement is an event in the
//! log (who, when), announced once on `baton.sla.acknowledged.…`, and the
//! breach then names who acknowledged it, in the query answers and on the
//! board. A later acknowledgement by someone else changes nothing; one
//! dated before the breach acknowledges nothing. (That only an operator
//! may acknowledge is tests/tests/roles.rs's.)

use std::time::Duration;

use baton_e2e::{append, eventually, http, later, now_millis, requested, Baton};
use baton_proto::v1::{self, Priority};
use futures::StreamExt;
use prost::Message as _;

const CATALOG: &str = r#"{
  "max_entry_lag": "3650d",
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "ward-5", "name": "Ward 5"}
  ],
  "kinds": ["repair"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "stat": "2s"}, "escalate_to": "duty-coordinator"}
  ]
}"#;

fn acknowledged(handoff: &str, by: &str, at: i64) -> v1::AppendRequest {
    let mut event = later(handoff, v1::EventType::EscalationAcknowledged, at);
    event.event_id = format!("{}-{by}", event.event_id);
    event.actor = by.to_owned();
    append(event)
}

async fn breach_of(baton: &Baton, handoff: &str) -> v1::Breach {
    let mut query = baton.query().await;
    eventually(&format!("the breach of {handoff} listed"), || {
        let mut query = query.clone();
        async move {
            let breaches = query
                .list_breaches(v1::ListBreachesRequest::default())
                .await
                .ok()?
                .into_inner()
                .breaches;
            breaches.into_iter().find(|b| b.handoff_id == handoff)
        }
    })
    .await;
    let _ = &mut query;
    query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("list")
        .into_inner()
        .breaches
        .into_iter()
        .find(|b| b.handoff_id == handoff)
        .expect("listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_is_acknowledged_once_by_its_first_acknowledger_and_shown() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let nats = baton.nats_client().await;
    let mut signals = nats
        .subscribe("baton.sla.acknowledged.>")
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let mut ingest = baton.ingest().await;

    // A STAT repair requested 3 s ago broke its 2 s promise at once.
    let t0 = now_millis() - 3_000;
    ingest
        .append(append(requested(
            "pump-71",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            t0,
        )))
        .await
        .expect("requested");
    let breach = breach_of(&baton, "pump-71").await;
    assert_eq!(breach.escalate_to, "duty-coordinator");
    assert_eq!(breach.acknowledged_by, "");

    // The duty coordinator acknowledges; a colleague does too, later.
    let at = now_millis();
    ingest
        .append(acknowledged("pump-71", "duty-desk-1", at))
        .await
        .expect("acknowledged");
    ingest
        .append(acknowledged("pump-71", "duty-desk-2", at + 60_000))
        .await
        .expect("acknowledged again");
    let signal = tokio::time::timeout(Duration::from_secs(20), signals.next())
        .await
        .expect("the acknowledgement announced")
        .expect("a message");
    assert_eq!(
        signal.subject.as_str(),
        "baton.sla.acknowledged.repair-response.engineering.ward-5.pump-71"
    );
    let told = v1::Breach::decode(signal.payload).expect("a breach");
    assert_eq!(told.acknowledged_by, "duty-desk-1");
    assert_eq!(told.acknowledged_at, Some(baton_e2e::timestamp(at)));

    let breach = eventually("the breach names who acknowledged it", || {
        let baton = &baton;
        async move {
            let b = breach_of(baton, "pump-71").await;
            (!b.acknowledged_by.is_empty()).then_some(b)
        }
    })
    .await;
    assert_eq!(breach.acknowledged_by, "duty-desk-1");

    // An acknowledgement before the breach acknowledges nothing.
    let t1 = now_millis();
    ingest
        .append(append(requested(
            "pump-72",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            t1,
        )))
        .await
        .expect("requested");
    ingest
        .append(acknowledged("pump-72", "duty-desk-1", t1 + 500))
        .await
        .expect("acknowledged early");
    let early = breach_of(&baton, "pump-72").await;
    assert_eq!(early.acknowledged_by, "", "acknowledged before it broke");

    // The board's breach list says who acknowledged.
    let web = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("side port");
    let page = http::get(web, "/").await.body;
    assert!(
        page.contains("acknowledged by duty-desk-1"),
        "the board shows the acknowledgement"
    );

    // One announcement only, for pump-71.
    let count = baton_e2e::count_messages(&nats, "BATON_SLA", "baton.sla.acknowledged.>").await;
    assert_eq!(count, 1);
}

/// Notify tells the next level an escalation nobody acknowledged, once,
/// after the route's `renotify` time past the breach; an acknowledged one
/// it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_escalation_goes_to_the_next_level_and_an_acknowledged_one_does_not() {
    use baton_e2e::webhook::{consumer_ready, receiver, Behaviour};
    let baton = Baton::start_with_catalog(CATALOG).await;
    let (duty, duty_got) = receiver(Behaviour::FailFirst(0)).await;
    let (manager, manager_got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("pager.key");
    std::fs::write(&secret, "duty-pager-key-000000000001").expect("secret");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "duty-pager": {"webhook": {"url": format!("http://{duty}/page"), "secret_file": secret}},
            "manager-pager": {"webhook": {"url": format!("http://{manager}/page"), "secret_file": secret}}
        },
        "routes": [
            {"name": "duty", "match": {"signals": ["escalation"], "target": ["duty-coordinator"]},
             "deliver": ["duty-pager"], "renotify": [{"after": "3s", "deliver": ["manager-pager"]}]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let notify =
        baton_e2e::start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;
    let mut ingest = baton.ingest().await;

    // pump-82 breaks first and is acknowledged at once; pump-81 breaks
    // half a second later and nobody acknowledges it.
    let now = now_millis();
    for (handoff, at) in [("pump-82", now - 3_000), ("pump-81", now - 2_500)] {
        ingest
            .append(append(requested(
                handoff,
                "repair",
                "engineering",
                "ward-5",
                Priority::Stat,
                at,
            )))
            .await
            .expect("requested");
        if handoff == "pump-82" {
            breach_of(&baton, "pump-82").await;
            ingest
                .append(acknowledged("pump-82", "duty-desk-1", now_millis()))
                .await
                .expect("acknowledged");
        }
    }
    eventually("both escalations at the duty pager", || async {
        (duty_got.lock().expect("lock").len() == 2).then_some(())
    })
    .await;
    let told = eventually("pump-81 told to the manager", || async {
        manager_got.lock().expect("lock").first().cloned()
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&told.body).expect("JSON");
    assert_eq!(body["handoff"], "pump-81");
    assert_eq!(body["renotify"], 1);
    assert_eq!(body["escalated_to"], "duty-coordinator");
    let first_page = duty_got
        .lock()
        .expect("lock")
        .iter()
        .find(|r| r.body.contains("pump-81"))
        .map(|r| r.header("x-baton-delivery").to_owned())
        .expect("pump-81 paged");
    assert_ne!(
        told.header("x-baton-delivery"),
        first_page,
        "a delivery of its own"
    );
    // Not before its time: 3 s past the breach (2 s target, requested 2.5 s ago).
    let deadline = millis_of(&body["deadline"]);
    assert!(
        now_millis() - deadline >= 3_000,
        "told {} ms after the breach",
        now_millis() - deadline
    );
    // pump-82, acknowledged, was due before pump-81 and never went up.
    let web = notify.http.expect("side port");
    eventually("the re-notification counted once", || async {
        (http::metric(web, "baton_notify_renotified_total{route=\"duty\"}").await == Some(1.0))
            .then_some(())
    })
    .await;
    assert_eq!(manager_got.lock().expect("lock").len(), 1);
}

/// Milliseconds of an RFC 3339 time in a notice.
fn millis_of(value: &serde_json::Value) -> i64 {
    value
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .expect("an RFC 3339 time")
}

/// The escalation notice carries a link, signed by notify, that
/// acknowledges it: opening it changes nothing (a link preview or a mail
/// scanner may open it), pressing its button records the acknowledgement
/// as the link's addressee, and the next level is not told. A link changed
/// in any part is refused, and so is one past its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalation_acknowledged_by_its_link_is_not_told_to_the_next_level() {
    use baton_e2e::webhook::{consumer_ready, receiver, Behaviour};
    let baton = Baton::start_with_catalog(CATALOG).await;
    let (duty, duty_got) = receiver(Behaviour::FailFirst(0)).await;
    let (manager, manager_got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("pager.key");
    std::fs::write(&secret, "duty-pager-key-000000000001").expect("secret");
    let ack_key = dir.path().join("ack.key");
    std::fs::write(&ack_key, "notify-ack-link-key-0123456789abcdef").expect("ack key");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "duty-pager": {"webhook": {"url": format!("http://{duty}/page"), "secret_file": secret}},
            "manager-pager": {"webhook": {"url": format!("http://{manager}/page"), "secret_file": secret}}
        },
        "routes": [
            {"name": "duty", "match": {"signals": ["escalation"], "target": ["duty-coordinator"]},
             "deliver": ["duty-pager"], "renotify": [{"after": "4s", "deliver": ["manager-pager"]}]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    let notify = baton_e2e::start_notify_configured(
        &baton.nats.url(),
        &routes,
        3,
        Duration::from_millis(100),
        |c| {
            c.ack_key = Some(ack_key.clone());
            c.ack_url = Some(format!("http://{}", c.http_listen));
            c.ingest_url = format!("http://{ingest_addr}");
        },
    )
    .await;
    let web = notify.http.expect("side port");
    consumer_ready(&baton).await;
    let mut ingest = baton.ingest().await;
    ingest
        .append(append(requested(
            "pump-91",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            now_millis() - 3_000,
        )))
        .await
        .expect("requested");
    let paged = eventually("the escalation at the duty pager", || async {
        duty_got.lock().expect("lock").first().cloned()
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&paged.body).expect("JSON");
    let link = body["acknowledge"].as_str().expect("a link").to_owned();
    let prefix = format!("http://{web}");
    let path = link.strip_prefix(&prefix).expect("a link to notify");
    assert!(
        path.starts_with("/ack?handoff=pump-91&by=duty.duty-pager&"),
        "{path}"
    );
    let query = path.trim_start_matches("/ack?").to_owned();

    // Opened: a page with a button, and nothing recorded.
    let page = http::get(web, path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    assert_eq!(breach_of(&baton, "pump-91").await.acknowledged_by, "");

    // Tampered with, or out of time: refused, nothing recorded.
    let post = |form: String| async move {
        let stream = tokio::net::TcpStream::connect(web).await.expect("connect");
        http::exchange(
            stream,
            "POST",
            "/ack",
            &["Content-Type: application/x-www-form-urlencoded"],
            &form,
        )
        .await
        .expect("an answer")
    };
    let forged = query.replace("pump-91", "pump-92");
    assert_eq!(post(forged).await.status, 403);
    let expires: String = query
        .split('&')
        .find_map(|p| p.strip_prefix("expires="))
        .expect("expires")
        .to_owned();
    let later = query.replace(&format!("expires={expires}"), "expires=9999999999");
    assert_eq!(post(later).await.status, 403, "a longer life is a forgery");
    assert_eq!(breach_of(&baton, "pump-91").await.acknowledged_by, "");

    // Pressed: recorded as the link's addressee, and the manager is spared.
    let pressed = post(query).await;
    assert_eq!(pressed.status, 200, "{}", pressed.body);
    let acknowledged = eventually("the acknowledgement on the breach", || {
        let baton = &baton;
        async move {
            let b = breach_of(baton, "pump-91").await;
            (!b.acknowledged_by.is_empty()).then_some(b)
        }
    })
    .await;
    assert_eq!(acknowledged.acknowledged_by, "duty.duty-pager");
    // The escalation is acknowledged to JetStream only once its chain is
    // settled: past the level's time, notify looked and found it.
    let js = async_nats::jetstream::new(baton.nats_client().await);
    eventually("notify's escalation settled", || {
        let js = js.clone();
        async move {
            let sla = js.get_stream("BATON_SLA").await.ok()?;
            let info = sla.consumer_info("baton-notify").await.ok()?;
            (info.num_ack_pending == 0
                && info.num_pending == 0
                && info.delivered.stream_sequence >= 2)
                .then_some(())
        }
    })
    .await;
    assert!(
        now_millis() >= millis_of(&body["deadline"]) + 4_000,
        "settled only at the level's time"
    );
    assert_eq!(
        http::metric(web, "baton_notify_renotified_total{route=\"duty\"}").await,
        Some(0.0)
    );
    assert!(manager_got.lock().expect("lock").is_empty());
}
