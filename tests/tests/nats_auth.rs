//! The shipped NATS users (`deploy/nats/auth.conf`) against a real
//! nats-server: the services work with exactly the permissions they are
//! given, a subscriber can read but not publish, ingest cannot forge SLA
//! signals, and nobody gets in without a password.

use std::time::Duration;

use baton_e2e::{
    append, eventually, now_millis, projected, requested,
    secure::{start_ingest_configured, start_projector_configured},
    wait_serving, TEST_CATALOG,
};
use baton_log::NatsSecurity;
use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient, Priority};
use baton_testkit::NatsServer;
use futures::StreamExt;
use tokio::sync::mpsc;

const PASSWORDS: &str = r#"
BATON_NATS_INGEST_PASSWORD: "ingest-test-secret"
BATON_NATS_PROJECTOR_PASSWORD: "projector-test-secret"
BATON_NATS_SUBSCRIBER_PASSWORD: "subscriber-test-secret"
BATON_NATS_OPERATOR_PASSWORD: "operator-test-secret"
BATON_NATS_NOTIFY_PASSWORD: "notify-test-secret"
"#;

fn user(name: &str) -> NatsSecurity {
    NatsSecurity {
        nats_user: Some(format!("baton-{name}")),
        nats_password: Some(format!("{name}-test-secret")),
        ..Default::default()
    }
}

/// A client logged in as `name`, and the server errors it is told about.
async fn connect_as(
    url: &str,
    name: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(
        format!("baton-{name}"),
        format!("{name}-test-secret"),
    )
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            if let async_nats::Event::ServerError(e) = event {
                let _ = tx.send(e.to_string());
            }
        }
    })
    .connect(url)
    .await
    .expect("connect with a password");
    (client, rx)
}

async fn violation(errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> String {
    let error = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("the server reports the violation")
        .expect("an error");
    assert!(
        error.to_lowercase().contains("permissions violation") && error.contains(subject),
        "{error}"
    );
    error
}

async fn stream_messages(operator: &async_nats::Client, stream: &str) -> u64 {
    let js = async_nats::jetstream::new(operator.clone());
    let mut stream = js.get_stream(stream).await.expect("stream info");
    stream.info().await.expect("stream info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_nats_user_can_do_its_job_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("auth.conf");
    let shipped = include_str!("../../deploy/nats/auth.conf");
    std::fs::write(&conf, format!("{PASSWORDS}\n{shipped}")).expect("write config");
    let nats = NatsServer::start_with(&["-c", conf.to_str().expect("utf-8 path")]);
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let mut tried = 0;

    // Nobody gets in without a user, or with a wrong password.
    assert!(async_nats::connect(nats.url()).await.is_err());
    assert!(async_nats::ConnectOptions::with_user_and_password(
        "baton-ingest".into(),
        "guess".into()
    )
    .connect(nats.url())
    .await
    .is_err());
    tried += 2;

    // The services, each as its own user.
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.nats = user("ingest")).await;
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.nats = user("projector")
        })
        .await;
    wait_serving(ingest.addr, "baton.v1.Ingest").await;
    wait_serving(projector.addr, "baton.v1.Query").await;

    // A subscriber reads events and breaches as they happen.
    let (subscriber, mut subscriber_errors) = connect_as(&nats.url(), "subscriber").await;
    let mut events = subscriber
        .subscribe("baton.handoff.>")
        .await
        .expect("subscribe");
    let mut breaches = subscriber
        .subscribe("baton.sla.breached.>")
        .await
        .expect("subscribe");
    subscriber.flush().await.expect("flush");

    // Ingest appends (and reads history); the projector folds and announces:
    // a STAT repair requested a minute ago has long breached its 2 s promise.
    let mut ingest_client = IngestClient::new(baton_e2e::channel(ingest.addr).await);
    let t0 = now_millis() - 60_000;
    ingest_client
        .append(append(requested(
            "nats-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            t0,
        )))
        .await
        .expect("ingest appends as baton-ingest");
    // (A new hand-off is not cached, so ingest read its history from the
    // stream first: its user may do direct gets.)
    let mut query = QueryClient::new(baton_e2e::channel(projector.addr).await);
    projected(&mut query, "nats-1", 1).await;
    let seen = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the subscriber sees the event")
        .expect("a message");
    assert_eq!(
        seen.subject.as_str(),
        "baton.handoff.nats-1.repair.engineering.ward-5"
    );
    tokio::time::timeout(Duration::from_secs(20), breaches.next())
        .await
        .expect("the subscriber sees the breach the projector announced")
        .expect("a message");

    let (operator, _) = connect_as(&nats.url(), "operator").await;
    let before = stream_messages(&operator, "BATON_HANDOFFS").await;
    assert_eq!(before, 1);
    let sla_before = stream_messages(&operator, "BATON_SLA").await;

    // The subscriber may not publish an event, nor a breach, nor talk to JetStream.
    for subject in [
        "baton.handoff.forged.repair.engineering.ward-5",
        "baton.sla.breached.repair-response.engineering.ward-5.forged",
        "$JS.API.STREAM.DELETE.BATON_HANDOFFS",
    ] {
        subscriber
            .publish(subject, "forged".into())
            .await
            .expect("sent");
        subscriber.flush().await.expect("flush");
        violation(&mut subscriber_errors, subject).await;
        tried += 1;
    }

    // Ingest's user may not forge SLA signals or delete a stream.
    let (as_ingest, mut ingest_errors) = connect_as(&nats.url(), "ingest").await;
    for subject in [
        "baton.sla.breached.repair-response.engineering.ward-5.forged",
        "$JS.API.STREAM.DELETE.BATON_HANDOFFS",
    ] {
        as_ingest
            .publish(subject, "forged".into())
            .await
            .expect("sent");
        as_ingest.flush().await.expect("flush");
        violation(&mut ingest_errors, subject).await;
        tried += 1;
    }
    // The projector's user may not append events.
    let (as_projector, mut projector_errors) = connect_as(&nats.url(), "projector").await;
    let subject = "baton.handoff.forged.repair.engineering.ward-5";
    as_projector
        .publish(subject, "forged".into())
        .await
        .expect("sent");
    as_projector.flush().await.expect("flush");
    violation(&mut projector_errors, subject).await;
    tried += 1;
    // The operator may look, not append.
    // (A refused request goes unanswered: a short timeout says as much.)
    let mut js = async_nats::jetstream::new(operator.clone());
    js.set_timeout(Duration::from_millis(500));
    assert!(js.delete_stream("BATON_HANDOFFS").await.is_err());
    tried += 1;

    // Nothing forged reached a stream.
    assert_eq!(stream_messages(&operator, "BATON_HANDOFFS").await, before);
    assert_eq!(stream_messages(&operator, "BATON_SLA").await, sla_before);
    // And the services still work.
    ingest_client
        .append(append(requested(
            "nats-2",
            "lab",
            "lab",
            "ward-6",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("ingest still appends");
    eventually("the second event in the stream", || {
        let operator = operator.clone();
        async move { (stream_messages(&operator, "BATON_HANDOFFS").await == 2).then_some(()) }
    })
    .await;

    // The board hears the projector's own signals, disruptions included,
    // though its user subscribes to nothing but its inbox.
    let web = projector.http.expect("side port");
    let mut board = baton_e2e::http::EventStream::open(web, "/events").await;
    board
        .next_named("hello", Duration::from_secs(10))
        .await
        .expect("the board's stream opens");
    ingest_client
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: "analyzer-9".into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "lab".into(),
                kind: "lab".into(),
                occurred_at: Some(baton_e2e::timestamp(now_millis())),
                reason: "analyzer down".into(),
                actor: "lab-desk".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("ingest appends a disruption");
    let shown = board
        .next_named("disruption", Duration::from_secs(20))
        .await
        .expect("the disruption reaches the board under the shipped permissions");
    assert!(shown.data.contains("analyzer-9"), "{}", shown.data);

    // A message in a breach's place (someone holding the projector's
    // password): the projector reads back what the subject holds, sees it
    // is not its own, and raises the alarm. Its user may read BATON_SLA's
    // messages for that, and only that stream's.
    let js_as_projector = async_nats::jetstream::new(as_projector.clone());
    let squatted = v1::Breach {
        handoff_id: "nats-3".into(),
        policy_id: "repair-response".into(),
        supplier: "engineering".into(),
        customer: "ward-5".into(),
        ..Default::default()
    };
    js_as_projector
        .publish(
            "baton.sla.breached.repair-response.engineering.ward-5.nats-3",
            prost::Message::encode_to_vec(&squatted).into(),
        )
        .await
        .expect("publish")
        .await
        .expect("stored in BATON_SLA");
    ingest_client
        .append(append(requested(
            "nats-3",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            t0,
        )))
        .await
        .expect("requested");
    eventually("the forged-signal alarm", || async move {
        let scrape = baton_e2e::http::get(web, "/metrics").await.body;
        scrape
            .lines()
            .any(|l| l.starts_with("baton_sla_forged_signals_total") && l.ends_with(" 1"))
            .then_some(())
    })
    .await;
    let ready = baton_e2e::http::get(web, "/readyz").await;
    assert!(ready.body.contains("nats-3"), "{}", ready.body);
    let mut js = async_nats::jetstream::new(as_projector.clone());
    js.set_timeout(Duration::from_millis(500));
    let events = js
        .get_stream("BATON_HANDOFFS")
        .await
        .expect("stream info is allowed");
    assert!(
        events.get_raw_message(1).await.is_ok(),
        "the projector reads a hand-off's timeline from the events stream"
    );
    assert!(
        events.delete_message(1).await.is_err(),
        "the projector may not delete an event"
    );
    tried += 1;
    println!("nats permission cases tried: {tried}");
    ingest.stop().await;
    projector.stop().await;
}

/// Notify as its own user: it delivers a breach, parks what cannot arrive,
/// and `batonctl notify parked` / `retry` (which log in as it) list and
/// re-drive the parked one; it may not publish a signal or an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_delivers_parks_and_redrives_as_its_own_user_and_forges_nothing() {
    use baton_e2e::webhook::{receiver, Behaviour};
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("auth.conf");
    let shipped = include_str!("../../deploy/nats/auth.conf");
    std::fs::write(&conf, format!("{PASSWORDS}\n{shipped}")).expect("write config");
    let nats = NatsServer::start_with(&["-c", conf.to_str().expect("utf-8 path")]);
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.nats = user("ingest")).await;
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.nats = user("projector")
        })
        .await;
    wait_serving(ingest.addr, "baton.v1.Ingest").await;
    wait_serving(projector.addr, "baton.v1.Query").await;

    // One attempt: the receiver's first answer (500) parks the breach.
    let (desk, got) = receiver(Behaviour::FailFirst(1)).await;
    let secret = dir.path().join("desk.key");
    std::fs::write(&secret, "engineering-desk-key-000001").expect("secret");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {"desk": {"webhook": {"url": format!("http://{desk}/hook"), "secret_file": secret}}},
        "routes": [{"name": "repairs", "match": {"signals": ["breach", "disruption"]}, "deliver": ["desk"]}]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let _notify = baton_e2e::start_notify_configured(
        &nats.url(),
        &routes,
        1,
        Duration::from_millis(100),
        |c| c.nats = user("notify"),
    )
    .await;
    let (as_notify, mut notify_errors) = connect_as(&nats.url(), "notify").await;
    let js = async_nats::jetstream::new(as_notify.clone());
    eventually("notify's consumers, created as baton-notify", || {
        let js = js.clone();
        async move {
            let sla = js.get_stream("BATON_SLA").await.ok()?;
            sla.consumer_info("baton-notify").await.ok()?;
            let events = js.get_stream("BATON_HANDOFFS").await.ok()?;
            events
                .consumer_info("baton-notify-disruptions")
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;

    let mut ingest_client = IngestClient::new(baton_e2e::channel(ingest.addr).await);
    ingest_client
        .append(append(requested(
            "notify-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            now_millis() - 60_000,
        )))
        .await
        .expect("append");
    let parked = eventually("the breach parked", || {
        let js = js.clone();
        async move {
            let parked = baton_notify::parked::list(&js)
                .await
                .expect("list as baton-notify");
            (parked.len() == 1).then_some(parked)
        }
    })
    .await;
    assert_eq!(parked[0].route, "repairs");
    let moved = baton_notify::parked::redrive(&js, None, None)
        .await
        .expect("re-drive as baton-notify");
    assert_eq!(moved, 1);
    eventually("the re-driven breach delivered", || {
        let got = got.clone();
        async move { (got.lock().expect("lock").len() == 2).then_some(()) }
    })
    .await;
    let first = got.lock().expect("lock")[0]
        .header("x-baton-delivery")
        .to_owned();
    assert_eq!(
        got.lock().expect("lock")[1].header("x-baton-delivery"),
        first
    );
    assert!(baton_notify::parked::list(&js)
        .await
        .expect("list")
        .is_empty());
    // Its acknowledgements reach JetStream: nothing is left to redeliver.
    eventually("notify's breach acknowledged", || {
        let js = js.clone();
        async move {
            let sla = js.get_stream("BATON_SLA").await.ok()?;
            let info = sla.consumer_info("baton-notify").await.ok()?;
            (info.num_ack_pending == 0 && info.delivered.stream_sequence > 0).then_some(())
        }
    })
    .await;

    // Notify's user may not forge a signal or an event.
    for subject in [
        "baton.sla.breached.repair-response.engineering.ward-5.forged",
        "baton.handoff.forged.repair.engineering.ward-5",
        "baton.disruption.engineering.forged",
    ] {
        as_notify
            .publish(subject, "forged".into())
            .await
            .expect("sent");
        as_notify.flush().await.expect("flush");
        violation(&mut notify_errors, subject).await;
    }
}
