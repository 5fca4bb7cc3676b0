//! notify killed with SIGKILL in the middle of a delivery, and started
//! again: a real nats-server, the real `baton-notify` binary and a webhook
//! receiver that takes the first request and never answers it. The breach
//! is delivered after the restart under the delivery id it had before the
//! kill: nothing lost, the repeat recognisable, nothing parked.

use std::{
    net::SocketAddr,
    process::{Child, Command},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use baton_domain::Token;
use baton_proto::v1;
use baton_testkit::NatsServer;
use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The delivery ids the receiver saw, in order; it answers none of the
/// first `hold` requests and 200 to the rest.
async fn receiver(hold: usize) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                let id = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-baton-delivery:"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let n = {
                    let mut seen = record.lock().expect("lock");
                    seen.push(id);
                    seen.len()
                };
                if n <= hold {
                    // Holds the connection until notify dies.
                    let _ = stream.read(&mut buf).await;
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, seen)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn spawn_notify(nats: &str, routes: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton-notify"))
        .args(["--nats-url", nats, "--routes"])
        .arg(routes)
        .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--attempts", "3", "--backoff", "1s", "--backoff-max", "1s"])
        .spawn()
        .expect("baton-notify starts")
}

async fn wait_for<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_by_sigkill_arrives_after_the_restart_under_its_id() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: baton_log::subject::SLA_STREAM.to_owned(),
        subjects: vec![baton_log::subject::ALL_SLA.to_owned()],
        ..Default::default()
    })
    .await
    .expect("BATON_SLA");
    let (hook, seen) = receiver(1).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("webhook.key");
    std::fs::write(&secret, "a-webhook-key-of-twenty-bytes").expect("secret");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {"chat": {"webhook": {"url": format!("http://{hook}/hooks/baton"), "secret_file": secret, "timeout": "2s"}}},
        "routes": [{"name": "repairs", "match": {"signals": ["breach"]}, "deliver": ["chat"]}]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");

    let mut notify = spawn_notify(&nats.url(), &routes);
    let stream = js
        .get_stream(baton_log::subject::SLA_STREAM)
        .await
        .expect("stream");
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream.consumer_info("baton-notify").await.is_err() {
        assert!(Instant::now() < deadline, "notify's consumer within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let token = |s: &str| Token::parse(s).expect("token");
    let (policy, supplier, customer, handoff) = (
        token("repair-response"),
        token("engineering"),
        token("ward-5"),
        token("pump-61"),
    );
    let subject = baton_log::subject::ClockSubject {
        policy: &policy,
        supplier: &supplier,
        customer: &customer,
        handoff_id: &handoff,
        cycle: 1,
    }
    .breach();
    let breach = v1::Breach {
        handoff_id: handoff.to_string(),
        policy_id: policy.to_string(),
        supplier: supplier.to_string(),
        customer: customer.to_string(),
        priority: v1::Priority::Stat as i32,
        open: true,
        ..Default::default()
    };
    js.publish(subject, breach.encode_to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("stored");

    wait_for("the first attempt, held", Duration::from_secs(20), || {
        (seen.lock().expect("lock").len() == 1).then_some(())
    })
    .await;
    notify.kill().expect("SIGKILL");
    notify.wait().expect("reaped");

    // Started again, it gets the unacknowledged breach once JetStream's
    // ack wait (30 s at the least) has run out.
    let mut notify = spawn_notify(&nats.url(), &routes);
    let ids = wait_for(
        "the delivery after the restart",
        Duration::from_secs(60),
        || {
            let seen = seen.lock().expect("lock").clone();
            (seen.len() >= 2).then_some(seen)
        },
    )
    .await;
    assert!(!ids[0].is_empty(), "each request names its delivery");
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "the repeat is recognisable by its id: {ids:?}"
    );
    notify.kill().expect("stop");
    let _ = notify.wait();
}
