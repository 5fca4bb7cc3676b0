//! Bounded under abuse, with real sockets against the real services:
//! thousands of connections that never finish their headers (on the HTTP
//! side port and on gRPC), and `/events` clients that never read while
//! breaches flow.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use baton_e2e::{
    append, eventually, http, now_millis, requested,
    secure::{start_ingest_configured, start_projector_configured},
    wait_serving, TEST_CATALOG,
};
use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient, Priority};
use baton_testkit::NatsServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

/// The value of the series `name{labels}` in a scrape (0 if absent).
fn series(scrape: &str, name_and_labels: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What became of one flood connection, as its client saw it.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Closed by the server after this long, having sent this many bytes
    /// (an HTTP/2 server sends its SETTINGS first; an HTTP/1 one nothing).
    Closed(Duration, usize),
    /// Still open when the test stopped looking.
    Open,
}

/// Opens `count` connections to `addr`, `parallel` at a time, each sending
/// `stub` and then nothing; each is watched until the server closes it
/// (or `patience` passes).
async fn flood(
    addr: SocketAddr,
    count: usize,
    stub: &'static [u8],
    patience: Duration,
) -> Vec<tokio::task::JoinHandle<Fate>> {
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut watchers = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = gate.clone().acquire_owned().await.expect("gate");
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        watchers.push(tokio::spawn(async move {
            let mut stream = match TcpStream::connect(addr).await {
                Ok(stream) => stream,
                Err(_) => {
                    let _ = opened_tx.send(());
                    return Fate::Closed(Duration::ZERO, 0);
                }
            };
            let started = Instant::now();
            let _ = stream.write_all(stub).await;
            let _ = opened_tx.send(());
            drop(permit);
            let mut buf = [0u8; 512];
            let mut got = 0;
            let until = tokio::time::Instant::now() + patience;
            loop {
                match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Fate::Closed(started.elapsed(), got),
                    Ok(Ok(n)) => got += n,
                    Err(_) => return Fate::Open,
                }
            }
        }));
        let _ = opened_rx.await;
    }
    watchers
}

struct Fates {
    closed_at_once: usize,
    closed_by_deadline: Vec<Duration>,
    answered: usize,
    open: usize,
}

async fn fates(watchers: Vec<tokio::task::JoinHandle<Fate>>, deadline: Duration) -> Fates {
    let mut fates = Fates {
        closed_at_once: 0,
        closed_by_deadline: Vec::new(),
        answered: 0,
        open: 0,
    };
    for watcher in watchers {
        match watcher.await.expect("watcher") {
            Fate::Closed(after, got) => {
                if got > 0 {
                    fates.answered += 1;
                }
                if after < deadline / 2 {
                    fates.closed_at_once += 1;
                } else {
                    fates.closed_by_deadline.push(after);
                }
            }
            Fate::Open => fates.open += 1,
        }
    }
    fates.closed_by_deadline.sort();
    fates
}

async fn health(channel: tonic::transport::Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .get_ref()
        .status()
}

const FLOOD: usize = 3_000;
const CAP: usize = 1_000;
const DEADLINE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_take_neither_port() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.grpc.grpc_max_connections = CAP;
            c.grpc.grpc_handshake_timeout = DEADLINE;
            c.http.http_max_connections = CAP;
            c.http.http_header_timeout = DEADLINE;
        })
        .await;
    wait_serving(projector.addr, "baton.v1.Query").await;
    let web = projector.http.expect("side port");

    // A load balancer's health channel and a kept-alive HTTP connection,
    // both open before the flood.
    let kept = baton_e2e::channel(projector.addr).await;
    let mut kept_http = TcpStream::connect(web).await.expect("connect");

    // What is open before the flood (the kept connections, this scrape's
    // own) leaves the rest of each cap to the flood.
    let before = http::get(web, "/metrics").await.body;
    let room = |port: &str, scrape_itself: f64| {
        CAP - (series(
            &before,
            &format!("baton_connections_open{{port=\"{port}\"}}"),
        ) - scrape_itself) as usize
    };
    let (http_room, grpc_room) = (room("http", 1.0), room("grpc", 0.0));
    println!("before the flood: room for {http_room} on http, {grpc_room} on grpc (caps {CAP})");

    // Half a request head on HTTP, half the HTTP/2 preface on gRPC, then silence.
    let started = Instant::now();
    let on_http = flood(
        web,
        FLOOD,
        b"GET / HTTP/1.1\r\nHost: baton\r\n",
        3 * DEADLINE,
    )
    .await;
    let on_grpc = flood(projector.addr, FLOOD, b"PRI * HTTP/2.0\r\n", 3 * DEADLINE).await;
    let flooded_in = started.elapsed();
    assert!(
        flooded_in < DEADLINE,
        "the flood took {flooded_in:?}, longer than the deadline it is measured against"
    );

    // While the caps are full: the kept channel still answers SERVING and
    // queries, the kept HTTP connection still answers /readyz.
    assert_eq!(
        health(kept.clone(), "baton.v1.Query").await,
        ServingStatus::Serving
    );
    QueryClient::new(kept.clone())
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect("a query over the kept channel");
    kept_http
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: baton\r\n\r\n")
        .await
        .expect("send");
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), kept_http.read(&mut answer))
        .await
        .expect("/readyz answers during the flood")
        .expect("read");
    let head = String::from_utf8_lossy(&answer[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Closed by us now: left idle, its next request head would run into the
    // header deadline too, and be counted with the flood's below.
    drop(kept_http);

    let http_fates = fates(on_http, DEADLINE).await;
    let grpc_fates = fates(on_grpc, DEADLINE).await;
    let idle_closed_in = started.elapsed();
    for (port, f, room) in [
        ("http", &http_fates, http_room),
        ("grpc", &grpc_fates, grpc_room),
    ] {
        let slowest = f.closed_by_deadline.last().copied().unwrap_or_default();
        let fastest = f.closed_by_deadline.first().copied().unwrap_or_default();
        println!(
            "{port}: {FLOOD} stalled connections: {} closed at once (cap full), {} held then closed by the deadline after {:.2}s to {:.2}s, {} sent anything by the server, {} still open",
            f.closed_at_once,
            f.closed_by_deadline.len(),
            fastest.as_secs_f64(),
            slowest.as_secs_f64(),
            f.answered,
            f.open
        );
        assert_eq!(f.open, 0, "{port}: every stalled connection is closed");
        if port == "http" {
            assert_eq!(f.answered, 0, "{port}: half a request gets no answer");
        }
        assert_eq!(
            f.closed_by_deadline.len(),
            room,
            "{port}: the cap's worth are held until the deadline"
        );
        assert_eq!(
            f.closed_at_once,
            FLOOD - room,
            "{port}: the rest are refused"
        );
        assert!(
            fastest >= DEADLINE - Duration::from_millis(500)
                && slowest <= DEADLINE + Duration::from_secs(3),
            "{port}: closed by the {DEADLINE:?} deadline, not before or long after ({fastest:?} to {slowest:?})"
        );
    }
    println!("flood opened in {flooded_in:?}; every stalled connection closed {idle_closed_in:?} after the flood began");

    // Afterwards: new connections are served again.
    let fresh = baton_e2e::channel(projector.addr).await;
    assert_eq!(
        health(fresh.clone(), "baton.v1.Query").await,
        ServingStatus::Serving
    );
    QueryClient::new(fresh)
        .get_compliance(v1::GetComplianceRequest {
            policy_id: "repair-response".into(),
            ..Default::default()
        })
        .await
        .expect("a normal query");
    assert_eq!(http::get(web, "/readyz").await.status, 200);
    let board = http::get(web, "/").await;
    assert_eq!(board.status, 200, "{}", board.body);
    assert!(board.body.contains("duty board"));

    // The services' own count agrees.
    let scrape = http::get(web, "/metrics").await.body;
    for (port, room) in [("http", http_room), ("grpc", grpc_room)] {
        let refused = series(
            &scrape,
            &format!("baton_connections_refused_total{{port=\"{port}\"}}"),
        );
        let reason = if port == "http" {
            "header"
        } else {
            "handshake"
        };
        let expired = series(
            &scrape,
            &format!("baton_connections_expired_total{{port=\"{port}\",reason=\"{reason}\"}}"),
        );
        println!("{port}: the service counted {refused} refused, {expired} closed by the {reason} deadline");
        assert_eq!(refused, (FLOOD - room) as f64, "{port} refused");
        assert_eq!(expired, room as f64, "{port} expired");
    }
    assert!(projector.stop().await);
}

/// An `/events` client that never reads: a small receive buffer, the
/// request sent, and nothing read after.
async fn deaf_events_client(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: baton\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .expect("send");
    stream
}

/// Reads what is left and waits for the end of the connection: `true` if
/// the server had closed it.
async fn closed_by_server(mut stream: TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const BREACHES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_nobody_reads_are_dropped_and_never_hold_up_nats() {
    let monitor = baton_testkit::free_port();
    let nats = NatsServer::start_with(&["-m", &monitor.to_string()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let ingest = start_ingest_configured(&nats.url(), &catalog, |_| {}).await;
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.http.http_write_timeout = WRITE_TIMEOUT;
        })
        .await;
    wait_serving(ingest.addr, "baton.v1.Ingest").await;
    wait_serving(projector.addr, "baton.v1.Query").await;
    let web = projector.http.expect("side port");

    let mut reader = http::EventStream::open(web, "/events").await;
    reader
        .next_named("hello", Duration::from_secs(10))
        .await
        .expect("hello");
    let mut deaf = Vec::new();
    for _ in 0..10 {
        deaf.push(deaf_events_client(web).await);
    }
    // Each has its stream (the `hello` waits in its buffer).
    eventually("ten more event streams open", || async move {
        let scrape = http::get(web, "/metrics").await.body;
        (series(&scrape, "baton_connections_open{port=\"http\"}") >= 12.0).then_some(())
    })
    .await;

    // The reader counts the breaches it gets, in its own task.
    let started = Instant::now();
    let reading = tokio::spawn(async move {
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < BREACHES {
            match reader.next_named("breach", Duration::from_secs(30)).await {
                Some(event) => {
                    let data: serde_json::Value = serde_json::from_str(&event.data).expect("JSON");
                    seen.insert(data["handoff_id"].as_str().unwrap_or_default().to_owned());
                }
                None => break,
            }
        }
        (seen.len(), started.elapsed())
    });
    // NATS and the service's view of it, sampled all along.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = tokio::spawn({
        let done = done.clone();
        async move {
            let mut samples = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) && samples.len() < 300 {
                let scrape = http::get(web, "/metrics").await.body;
                samples.push(series(&scrape, "baton_nats_connected"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        }
    });

    // STAT repairs requested a minute ago: each breaches its 2 s at once.
    let mut ingest_client = IngestClient::new(baton_e2e::channel(ingest.addr).await);
    let at = now_millis() - 60_000;
    for chunk in (0..BREACHES).collect::<Vec<_>>().chunks(500) {
        let requests = chunk
            .iter()
            .map(|i| {
                append(requested(
                    &format!("slow-{i}"),
                    "repair",
                    "engineering",
                    "ward-5",
                    Priority::Stat,
                    at,
                ))
            })
            .collect();
        ingest_client
            .append_batch(v1::AppendBatchRequest { requests })
            .await
            .expect("appended");
    }

    // The ten deaf streams are closed by the write deadline, each counted.
    let dropped_after = {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let scrape = http::get(web, "/metrics").await.body;
            let expired = series(
                &scrape,
                "baton_connections_expired_total{port=\"http\",reason=\"write\"}",
            );
            if expired >= 10.0 {
                break started.elapsed();
            }
            if Instant::now() > until {
                let state: Vec<&str> = scrape
                    .lines()
                    .filter(|l| {
                        l.starts_with("baton_connections") || l.starts_with("baton_sla_announced")
                    })
                    .collect();
                panic!("the deaf streams were not all dropped within 30 s: {state:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (received, announced_in) = reading.await.expect("reader");
    let mut closed = 0;
    for stream in deaf {
        if closed_by_server(stream).await {
            closed += 1;
        }
    }
    println!(
        "{BREACHES} breaches: the reading client had all {received} {announced_in:?} after the first append; the 10 deaf streams were all closed by the {WRITE_TIMEOUT:?} write deadline {dropped_after:?} after it"
    );
    assert_eq!(closed, 10, "every deaf stream is closed");
    assert_eq!(received, BREACHES, "the reading client got every breach");
    let scrape = http::get(web, "/metrics").await.body;
    assert_eq!(
        series(
            &scrape,
            "baton_connections_expired_total{port=\"http\",reason=\"write\"}"
        ),
        10.0,
        "only the deaf streams were dropped"
    );

    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampling.await.expect("sampler");
    println!(
        "baton_nats_connected sampled {} times: all 1",
        samples.len()
    );
    assert!(
        samples.iter().all(|v| *v == 1.0),
        "baton_nats_connected stayed 1: {samples:?}"
    );
    let varz = http::get(SocketAddr::from(([127, 0, 0, 1], monitor)), "/varz").await;
    let varz: serde_json::Value = serde_json::from_str(&varz.body).expect("varz JSON");
    assert_eq!(
        varz["slow_consumers"], 0,
        "nats-server saw no slow consumer"
    );

    ingest.stop().await;
    assert!(projector.stop().await);
}
