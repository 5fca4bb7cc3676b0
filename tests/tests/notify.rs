//! Notify end to end: real nats-server, ingest, projector and notify, and
//! webhook receivers that are real HTTP servers on free ports. A receiver
//! that fails the first two deliveries gets the breach on the third, every
//! attempt under the same delivery id, the waits growing, the signature
//! checked by this test's own HMAC; a receiver that never answers has the
//! delivery parked, with the reason, after the last attempt; notify stopped
//! before a breach is delivered delivers it after its restart.

use std::{net::SocketAddr, time::Duration};

use baton_e2e::{
    append, eventually, http, now_millis, requested, start_notify, start_notify_configured,
    webhook::{consumer_ready, disruptions_consumer_ready, receiver, Behaviour},
    Baton, TEST_CATALOG,
};
use baton_proto::v1::Priority;

/// HMAC-SHA-256 by RFC 2104's construction on SHA-256: the test's own,
/// not notify's.
fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use ring::digest::{digest, SHA256};
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = digest(&SHA256, &[pad(0x36), message.to_vec()].concat());
    let outer = digest(&SHA256, &[pad(0x5c), inner.as_ref().to_vec()].concat());
    outer.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// How a receiver checks a request (its own code, not notify's): the
/// signature over the timestamp and body, and a timestamp no older than
/// five minutes at `now` (unix seconds), so a recorded request cannot be
/// replayed later.
fn verify(request: &baton_e2e::webhook::Request, now: i64) -> Result<(), &'static str> {
    let ts = request.header("x-baton-timestamp");
    let expected = hmac_sha256_hex(
        SECRET.as_bytes(),
        format!("{ts}.{}", request.body).as_bytes(),
    );
    if request.header("x-baton-signature") != format!("v1={expected}") {
        return Err("forged");
    }
    let sent: i64 = ts.parse().map_err(|_| "forged")?;
    if now - sent > 300 {
        return Err("too old: a replay");
    }
    Ok(())
}

fn now_secs() -> i64 {
    now_millis() / 1_000
}

const SECRET: &str = "engineering-webhook-key-0001";

fn routes(dir: &std::path::Path, flaky: SocketAddr, hung: SocketAddr) -> std::path::PathBuf {
    let secret = dir.join("webhook.key");
    std::fs::write(&secret, SECRET).expect("secret");
    let routes = dir.join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "chat": {"webhook": {"url": format!("http://{flaky}/hooks/baton"), "secret_file": secret, "timeout": "2s"}},
            "pager": {"webhook": {"url": format!("http://{hung}/page"), "secret_file": secret, "timeout": "300ms"}}
        },
        "routes": [
            {"name": "repairs", "match": {"signals": ["breach"], "supplier": ["engineering"]}, "deliver": ["chat", "pager"]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    routes
}

/// Appends a STAT repair for engineering requested 3 s ago: its 2 s
/// promise is broken at once.
async fn breach(baton: &Baton, handoff: &str) {
    let mut ingest = baton.ingest().await;
    let event = requested(
        handoff,
        "repair",
        "engineering",
        "ward-5",
        Priority::Stat,
        now_millis() - 3_000,
    );
    ingest.append(append(event)).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_delivered_once_as_the_receiver_counts_or_parked() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (flaky, flaky_got) = receiver(Behaviour::FailFirst(2)).await;
    let (hung, hung_got) = receiver(Behaviour::Hang).await;
    let dir = tempfile::tempdir().expect("dir");
    let routes = routes(dir.path(), flaky, hung);
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;

    breach(&baton, "pump-41").await;
    let attempts = eventually("three attempts at the chat receiver", || async {
        let got = flaky_got.lock().expect("lock").clone();
        (got.len() >= 3).then_some(got)
    })
    .await;
    assert_eq!(attempts.len(), 3, "two failures and the delivery");
    let id = attempts[0].header("x-baton-delivery").to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        attempts.iter().all(|a| a.header("x-baton-delivery") == id),
        "one id on every attempt"
    );
    // Waits of 50-100 ms, then 100-200 ms.
    let first = attempts[1].at - attempts[0].at;
    let second = attempts[2].at - attempts[1].at;
    assert!(first >= Duration::from_millis(50), "{first:?}");
    assert!(second >= Duration::from_millis(100), "{second:?}");
    for a in &attempts {
        let ts = a.header("x-baton-timestamp");
        let expected = hmac_sha256_hex(SECRET.as_bytes(), format!("{ts}.{}", a.body).as_bytes());
        assert_eq!(a.header("x-baton-signature"), format!("v1={expected}"));
    }
    // The receiver's side: the delivery checks out when it arrives; the
    // same request replayed ten minutes later is refused as too old; with
    // its body or its timestamp changed it is refused as forged.
    let delivered = &attempts[2];
    let sent_at: i64 = delivered
        .header("x-baton-timestamp")
        .parse()
        .expect("unix seconds");
    let arrived = now_secs();
    assert_eq!(verify(delivered, arrived), Ok(()));
    assert_eq!(verify(delivered, sent_at + 600), Err("too old: a replay"));
    let mut tampered = delivered.clone();
    tampered.body = tampered.body.replace("pump-41", "pump-49");
    assert_eq!(verify(&tampered, arrived), Err("forged"));
    let mut refreshed = delivered.clone();
    for (name, value) in &mut refreshed.headers {
        if name == "x-baton-timestamp" {
            *value = (sent_at + 600).to_string();
        }
    }
    assert_eq!(verify(&refreshed, sent_at + 600), Err("forged"));
    let body: serde_json::Value = serde_json::from_str(&attempts[2].body).expect("json");
    assert_eq!(body["signal"], "breach");
    assert_eq!(body["handoff"], "pump-41");
    assert_eq!(body["priority"], "stat");
    assert_eq!(body["board"], "http://board.test/handoff/pump-41");

    // The pager never answers: three attempts, then parked with the reason.
    let js = async_nats::jetstream::new(baton.nats_client().await);
    let parked = eventually("the pager's delivery parked", || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("BATON_NOTIFY_PARKED").await.ok()?;
            let message = stream
                .get_last_raw_message_by_subject("baton.notify.parked.repairs.pager")
                .await
                .ok()?;
            Some(message)
        }
    })
    .await;
    let reason = parked
        .headers
        .get("Baton-Reason")
        .map(|v| v.to_string())
        .unwrap_or_default();
    assert!(
        reason.contains("3 attempts") && reason.contains("no answer within"),
        "{reason}"
    );
    assert_eq!(hung_got.lock().expect("lock").len(), 3);

    // Counted once the parked copy is stored: read when it is.
    let web = notify.http.expect("side port");
    let lines = [
        r#"baton_notify_deliveries_total{route="repairs",channel="chat",result="delivered"} 1"#,
        r#"baton_notify_deliveries_total{route="repairs",channel="pager",result="parked"} 1"#,
        r#"baton_notify_failed_attempts_total{route="repairs",channel="chat"} 2"#,
    ];
    eventually("the deliveries counted", || async {
        let metrics = http::get(web, "/metrics").await.body;
        lines.iter().all(|l| metrics.contains(l)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_announced_while_notify_is_down_is_delivered_after_its_restart() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (chat, got) = receiver(Behaviour::FailFirst(0)).await;
    let (pager, _) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let routes = routes(dir.path(), chat, pager);
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;
    assert!(notify.stop().await, "notify stops");

    breach(&baton, "pump-42").await;
    // The breach is on the stream while nobody delivers it.
    let js = async_nats::jetstream::new(baton.nats_client().await);
    eventually("the breach announced", || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("BATON_SLA").await.ok()?;
            stream
                .get_last_raw_message_by_subject(
                    "baton.sla.breached.repair-response.engineering.ward-5.pump-42",
                )
                .await
                .ok()
        }
    })
    .await;
    assert!(got.lock().expect("lock").is_empty());

    let _again = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    let delivered = eventually("the breach delivered after the restart", || async {
        let got = got.lock().expect("lock").clone();
        (!got.is_empty()).then_some(got)
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&delivered[0].body).expect("json");
    assert_eq!(body["handoff"], "pump-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_delivery_sent_again_arrives_under_its_first_id() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (chat, _) = receiver(Behaviour::FailFirst(0)).await;
    let (pager, pager_got) = receiver(Behaviour::FailFirst(3)).await;
    let dir = tempfile::tempdir().expect("dir");
    let routes = routes(dir.path(), chat, pager);
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(50)).await;
    consumer_ready(&baton).await;

    breach(&baton, "pump-43").await;
    let js = async_nats::jetstream::new(baton.nats_client().await);
    let parked = eventually("the pager's delivery parked", || {
        let js = js.clone();
        async move {
            let parked = baton_notify::parked::list(&js).await.ok()?;
            (parked.len() == 1).then_some(parked)
        }
    })
    .await;
    let p = &parked[0];
    assert_eq!((p.route.as_str(), p.channel.as_str()), ("repairs", "pager"));
    assert!(p.reason.contains("answered 500"), "{}", p.reason);
    assert!(
        p.signal_subject.ends_with(".pump-43"),
        "{}",
        p.signal_subject
    );
    let first_id = pager_got.lock().expect("lock")[0]
        .header("x-baton-delivery")
        .to_owned();
    assert_eq!(p.delivery, first_id);

    // The pager is back: sent again, it arrives under the same id, and
    // nothing stays parked.
    assert_eq!(
        baton_notify::parked::redrive(&js, None, Some("pager"))
            .await
            .expect("redrive"),
        1
    );
    let got = eventually("the re-driven delivery", || async {
        let got = pager_got.lock().expect("lock").clone();
        (got.len() == 4).then_some(got)
    })
    .await;
    assert_eq!(got[3].header("x-baton-delivery"), first_id);
    assert!(baton_notify::parked::list(&js)
        .await
        .expect("list")
        .is_empty());
    let web = notify.http.expect("side port");
    let delivered =
        r#"baton_notify_deliveries_total{route="repairs",channel="pager",result="delivered"} 1"#;
    eventually("the pager's delivery counted", || async {
        http::get(web, "/metrics")
            .await
            .body
            .contains(delivered)
            .then_some(())
    })
    .await;
}

/// A routes file with one route for engineering's breaches to the webhook
/// at `to`.
fn routes_to(path: &std::path::Path, to: SocketAddr, secret: &std::path::Path) {
    let text = serde_json::json!({
        "channels": {
            "chat": {"webhook": {"url": format!("http://{to}/hooks/baton"), "secret_file": secret, "timeout": "2s"}}
        },
        "routes": [
            {"name": "repairs", "match": {"signals": ["breach"], "supplier": ["engineering"]}, "deliver": ["chat"]}
        ]
    });
    std::fs::write(path, text.to_string()).expect("routes");
}

/// SIGHUP to this process, where notify runs.
fn hang_up() {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_reloaded_on_sighup_and_a_bad_file_leaves_them_working() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (first, first_got) = receiver(Behaviour::FailFirst(0)).await;
    let (second, second_got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, SECRET).expect("secret");
    let routes = dir.path().join("routes.json");
    routes_to(&routes, first, &secret);
    // Only SIGHUP reloads here: the file is not looked at on its own.
    let notify = start_notify_configured(
        &baton.nats.url(),
        &routes,
        3,
        Duration::from_millis(100),
        |c| c.routes_check = Duration::from_secs(3_600),
    )
    .await;
    let web = notify.http.expect("side port");
    consumer_ready(&baton).await;
    let reloads = |result: &'static str| async move {
        let body = http::get(web, "/metrics").await.body;
        let line = format!("baton_notify_route_reloads_total{{result=\"{result}\"}} ");
        body.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };

    breach(&baton, "pump-51").await;
    eventually("the first breach at the first receiver", || async {
        (first_got.lock().expect("lock").len() == 1).then_some(())
    })
    .await;

    routes_to(&routes, second, &secret);
    hang_up();
    eventually("the new routes applied", || async {
        (reloads("applied").await == Some(1.0)).then_some(())
    })
    .await;
    breach(&baton, "pump-52").await;
    eventually("the second breach at the second receiver", || async {
        (second_got.lock().expect("lock").len() == 1).then_some(())
    })
    .await;

    std::fs::write(&routes, "{\"routes\": [").expect("a broken file");
    let logs = baton_e2e::capture_logs();
    hang_up();
    eventually("the broken file refused", || async {
        (reloads("refused").await == Some(1.0)).then_some(())
    })
    .await;
    let text = logs.text();
    assert!(
        text.contains("routes not reloaded") && text.contains("routes.json"),
        "the refusal is logged with its reason: {text}"
    );
    breach(&baton, "pump-53").await;
    eventually("the third breach, by the routes still in force", || async {
        (second_got.lock().expect("lock").len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        first_got.lock().expect("lock").len(),
        1,
        "the old receiver heard nothing after the reload"
    );
    notify.stop().await;
}

/// `baton_notify_route_reloads_total{result}` on notify's side port.
async fn reloads(web: SocketAddr, result: &str) -> Option<f64> {
    let body = http::get(web, "/metrics").await.body;
    let line = format!("baton_notify_route_reloads_total{{result=\"{result}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_reloaded_when_the_file_changes_and_a_bad_change_is_refused_once() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (first, first_got) = receiver(Behaviour::FailFirst(0)).await;
    let (second, second_got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, SECRET).expect("secret");
    let routes = dir.path().join("routes.json");
    routes_to(&routes, first, &secret);
    let notify = start_notify_configured(
        &baton.nats.url(),
        &routes,
        3,
        Duration::from_millis(100),
        |c| c.routes_check = Duration::from_millis(200),
    )
    .await;
    let web = notify.http.expect("side port");
    consumer_ready(&baton).await;

    // The file replaced as configuration tools do: written beside, renamed.
    let beside = dir.path().join("routes.json.new");
    routes_to(&beside, second, &secret);
    std::fs::rename(&beside, &routes).expect("rename");
    eventually("the changed routes applied", || async {
        (reloads(web, "applied").await == Some(1.0)).then_some(())
    })
    .await;
    breach(&baton, "pump-61").await;
    eventually("the breach at the second receiver", || async {
        (second_got.lock().expect("lock").len() == 1).then_some(())
    })
    .await;

    std::fs::write(&routes, "{\"routes\": [").expect("a broken file");
    eventually("the broken change refused", || async {
        (reloads(web, "refused").await == Some(1.0)).then_some(())
    })
    .await;
    // Looked at again and again, the same broken file is refused once.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(reloads(web, "refused").await, Some(1.0));
    breach(&baton, "pump-62").await;
    eventually("the next breach, by the routes still in force", || async {
        (second_got.lock().expect("lock").len() == 2).then_some(())
    })
    .await;
    assert!(first_got.lock().expect("lock").is_empty());
    notify.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supplier_s_disruption_reaches_the_routes_that_take_it() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (lab, lab_got) = receiver(Behaviour::FailFirst(0)).await;
    let (repairs, repairs_got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, SECRET).expect("secret");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "lab-desk": {"webhook": {"url": format!("http://{lab}/hooks/baton"), "secret_file": secret, "timeout": "2s"}},
            "repairs": {"webhook": {"url": format!("http://{repairs}/hooks/baton"), "secret_file": secret, "timeout": "2s"}}
        },
        "routes": [
            {"name": "lab-down", "match": {"signals": ["disruption"], "supplier": ["lab"]}, "deliver": ["lab-desk"]},
            {"name": "repairs", "match": {"signals": ["breach"], "supplier": ["engineering"]}, "deliver": ["repairs"]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    disruptions_consumer_ready(&baton).await;

    let mut ingest = baton.ingest().await;
    for phase in [
        baton_proto::v1::DisruptionPhase::Started,
        baton_proto::v1::DisruptionPhase::Ended,
    ] {
        let disruption = baton_proto::v1::DisruptionEvent {
            disruption_id: "analyzer-2".into(),
            phase: phase as i32,
            supplier: "lab".into(),
            reason: "chemistry analyzer down".into(),
            occurred_at: Some(baton_e2e::timestamp(now_millis() - 1_000)),
            ..Default::default()
        };
        ingest
            .append_disruption(baton_proto::v1::AppendDisruptionRequest {
                disruption: Some(disruption),
            })
            .await
            .expect("a disruption");
    }
    let got = eventually("the start and the end at the lab's desk", || async {
        let got = lab_got.lock().expect("lock").clone();
        (got.len() == 2).then_some(got)
    })
    .await;
    let bodies: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).expect("JSON"))
        .collect();
    let phases: Vec<&str> = bodies.iter().filter_map(|b| b["phase"].as_str()).collect();
    assert_eq!(phases.len(), 2);
    assert!(
        phases.contains(&"started") && phases.contains(&"ended"),
        "{bodies:?}"
    );
    for body in &bodies {
        assert_eq!(body["signal"], "disruption");
        assert_eq!(body["reason"], "chemistry analyzer down");
        assert_eq!(body["supplier"], "lab");
    }
    assert!(
        repairs_got.lock().expect("lock").is_empty(),
        "a breach route hears no disruption"
    );
    notify.stop().await;
}
