//! The projector killed with SIGKILL at arbitrary points while events keep
//! arriving: after a final restart its views equal, byte for byte, a clean
//! rebuild of the same stream from an empty data dir.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use baton_proto::v1::{
    self, ingest_client::IngestClient, query_client::QueryClient, EventType, Priority,
};
use baton_testkit::{free_port, NatsServer};
use baton_views::Views;
use tokio_util::sync::CancellationToken;

const MIN: i64 = 60_000;
const HANDOFFS: usize = 1_500;

const CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "E"}, {"id": "lab", "name": "L"},
                  {"id": "ward-5", "name": "W5"}, {"id": "ward-6", "name": "W6"}],
  "kinds": ["repair", "lab"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"], "targets": {"routine": "30m"}},
    {"id": "repair-fix", "kind": "repair", "start": "requested", "stop": ["completed"],
     "pause": ["on_hold"], "resume": ["resumed"], "targets": {"routine": "24h"}},
    {"id": "lab-turnaround", "kind": "lab", "start": "requested", "stop": ["completed"], "targets": {"routine": "24h"}}
  ]
}"#;

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ts(millis: i64) -> prost_types::Timestamp {
    baton_proto::convert::timestamp_to_proto(baton_domain::Timestamp(millis))
}

/// The events of hand-off `i`: a mix of met, breached, paused and open clocks.
/// Every deadline is either long past when the event is recorded or a day
/// away, so no clock changes state while the test runs.
fn script(i: usize, base: i64) -> Vec<v1::HandoffEvent> {
    let id = format!("h{i}");
    let (kind, supplier) = if i.is_multiple_of(3) {
        ("lab", "lab")
    } else {
        ("repair", "engineering")
    };
    let customer = if i.is_multiple_of(2) {
        "ward-5"
    } else {
        "ward-6"
    };
    let start = base - 4 * 60 * MIN + (i as i64 % 7) * MIN;
    let event = |n: usize, t: EventType, at: i64| v1::HandoffEvent {
        event_id: format!("{id}-{n}"),
        handoff_id: id.clone(),
        r#type: t as i32,
        occurred_at: Some(ts(at)),
        ..Default::default()
    };
    let mut events = vec![v1::HandoffEvent {
        kind: kind.into(),
        supplier: supplier.into(),
        customer: customer.into(),
        priority: Priority::Routine as i32,
        ..event(0, EventType::Requested, start)
    }];
    let ack_after = [5, 20, 45, 90][i % 4] * MIN;
    match i % 5 {
        0 => {}
        1 => events.push(event(1, EventType::Acknowledged, start + ack_after)),
        2 => {
            events.push(event(1, EventType::Acknowledged, start + ack_after));
            events.push(event(2, EventType::OnHold, start + ack_after + MIN));
            events.push(event(3, EventType::Resumed, start + ack_after + 10 * MIN));
            events.push(event(4, EventType::Completed, start + ack_after + 30 * MIN));
        }
        3 => events.push(event(1, EventType::Cancelled, start + 10 * MIN)),
        _ => {
            events.push(event(1, EventType::Started, start + ack_after));
            events.push(event(2, EventType::Completed, start + ack_after + 5 * MIN));
        }
    }
    events
}

fn spawn_projector(nats: &str, catalog: &Path, data_dir: &Path, grpc_port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton-projector"))
        .args(["--nats-url", nats, "--listen"])
        .arg(format!("127.0.0.1:{grpc_port}"))
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--batch-size",
            "50",
            "--catalog",
        ])
        .arg(catalog)
        .arg("--data-dir")
        .arg(data_dir)
        .env(
            "RUST_LOG",
            std::env::var("PROJECTOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .spawn()
        .expect("start baton-projector")
}

fn terminate(mut child: Child) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = child.wait().expect("wait for the projector");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

/// Waits until the projector on `port` shows every hand-off at its final version.
async fn wait_caught_up(port: u16, expected: &[(String, u64)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut query = loop {
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect()
                .await
        {
            break QueryClient::new(channel);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projector never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (id, version) in expected {
        loop {
            let got = query
                .get_handoff(v1::GetHandoffRequest {
                    handoff_id: id.clone(),
                })
                .await
                .ok()
                .and_then(|r| r.into_inner().handoff)
                .map_or(0, |h| h.version);
            if got == *version {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} stuck at version {got}, want {version}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn dump(dir: &Path, catalog_version: &str) -> Vec<baton_views::store::Entry> {
    let (views, _) = Views::open(dir, catalog_version).expect("open the views");
    views.dump().expect("dump")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_after_repeated_sigkill_equal_a_clean_rebuild() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, CATALOG).expect("catalog");
    let catalog_version = baton_domain::Catalog::from_json(CATALOG)
        .expect("valid")
        .version()
        .to_owned();

    // Ingest, in this process.
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ingest_addr = grpc.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let config = baton_ingest::Config {
        nats_url: nats.url(),
        listen: ingest_addr,
        http_listen: http.local_addr().expect("addr"),
        catalog: catalog.clone(),
        stream_replicas: 1,
        publish_timeout: Duration::from_secs(5),
        max_future_skew: Duration::from_secs(300),
        cache_capacity: 100_000,
        cache_mb: 256,
        max_in_flight: baton_ingest::grpc::DEFAULT_MAX_IN_FLIGHT,
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
        failpoints: Vec::new(),
    };
    let ingest_task = tokio::spawn(baton_ingest::run(config, grpc, http, stop.clone()));

    // The producer: batches of events, interleaving hand-offs.
    let base = now_millis();
    let scripts: Vec<Vec<v1::HandoffEvent>> = (0..HANDOFFS).map(|i| script(i, base)).collect();
    let expected: Vec<(String, u64)> = scripts
        .iter()
        .map(|s| (s[0].handoff_id.clone(), s.len() as u64))
        .collect();
    let total: usize = scripts.iter().map(Vec::len).sum();
    let producer = tokio::spawn(async move {
        let mut client = loop {
            if let Ok(channel) =
                tonic::transport::Channel::from_shared(format!("http://{ingest_addr}"))
                    .expect("uri")
                    .connect()
                    .await
            {
                break IngestClient::new(channel);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let started = std::time::Instant::now();
        let longest = scripts.iter().map(Vec::len).max().unwrap_or(0);
        for step in 0..longest {
            for chunk in scripts.chunks(40) {
                let requests: Vec<v1::AppendRequest> = chunk
                    .iter()
                    .filter_map(|s| s.get(step).cloned())
                    .map(|event| v1::AppendRequest {
                        event: Some(event),
                        expected_version: None,
                        backfill: false,
                    })
                    .collect();
                if requests.is_empty() {
                    continue;
                }
                // Retry the whole batch until every event is in: resends are
                // answered as duplicates, so nothing doubles.
                loop {
                    let results = match client
                        .append_batch(v1::AppendBatchRequest {
                            requests: requests.clone(),
                        })
                        .await
                    {
                        Ok(r) => r.into_inner().results,
                        Err(status) => panic!("append batch failed: {status:?}"),
                    };
                    let errors: Vec<v1::AppendError> = results
                        .into_iter()
                        .filter_map(|r| match r.outcome {
                            Some(v1::append_result::Outcome::Error(e)) => Some(e),
                            _ => None,
                        })
                        .collect();
                    if errors.is_empty() {
                        break;
                    }
                    let retryable = errors
                        .iter()
                        .all(|e| e.code == tonic::Code::Unavailable as i32);
                    assert!(retryable, "events refused: {errors:?}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
        eprintln!("producer done in {:?}", started.elapsed());
    });

    // Kill the projector at arbitrary points while the producer runs.
    let crashed = dir.path().join("crashed");
    let mut kills = 0;
    let mut seed: u64 = 0x5eed;
    while !producer.is_finished() || kills < 5 {
        let mut child = spawn_projector(&nats.url(), &catalog, &crashed, free_port());
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let run_for = Duration::from_millis(100 + (seed >> 33) % 400);
        tokio::time::sleep(run_for).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
    }
    producer.await.expect("producer");

    // Final restart of the crashed views, then a clean rebuild beside it.
    let port = free_port();
    let child = spawn_projector(&nats.url(), &catalog, &crashed, port);
    wait_caught_up(port, &expected).await;
    terminate(child);
    let rebuilt = dir.path().join("rebuilt");
    let port = free_port();
    let child = spawn_projector(&nats.url(), &catalog, &rebuilt, port);
    wait_caught_up(port, &expected).await;
    terminate(child);

    let crashed = dump(&crashed, &catalog_version);
    let rebuilt = dump(&rebuilt, &catalog_version);
    eprintln!(
        "{kills} SIGKILLs during {total} events; {} view entries compared",
        rebuilt.len()
    );
    assert!(kills >= 5);
    assert!(
        rebuilt.len() > HANDOFFS,
        "the views hold hand-offs, tallies and breaches"
    );
    assert!(
        crashed == rebuilt,
        "views after crashes differ from a clean rebuild"
    );

    stop.cancel();
    ingest_task.await.expect("ingest task").expect("ingest ran");
}

/// Late-entry bound of a day, so requests dated 40 minutes back count as
/// dated: each breaks its 30 minutes at once, within the announce horizon.
const KILL_CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W5"}],
  "kinds": ["repair"],
  "max_entry_lag": "1d",
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"], "targets": {"routine": "30m"}}
  ]
}"#;

fn spawn_with_failpoint(
    nats: &str,
    catalog: &Path,
    data_dir: &Path,
    consumer: &str,
    failpoint: &str,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_baton-projector"))
        .args(["--nats-url", nats, "--listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--batch-size", "10"])
        .arg("--catalog")
        .arg(catalog)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--consumer", consumer])
        .env("BATON_FAILPOINTS", failpoint)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start baton-projector")
}

/// Every message in BATON_SLA, by subject.
async fn announcements(nats: &async_nats::Client) -> Vec<String> {
    let js = async_nats::jetstream::new(nats.clone());
    let Ok(mut stream) = js.get_stream("BATON_SLA").await else {
        return Vec::new();
    };
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut subjects = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            subjects.push(message.subject.to_string());
        }
    }
    subjects
}

async fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector never reached its failpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_each_commit_and_announce_point_it_loses_and_repeats_nothing() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, KILL_CATALOG).expect("catalog");
    let catalog_version = baton_domain::Catalog::from_json(KILL_CATALOG)
        .expect("valid")
        .version()
        .to_owned();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let ingest_addr = grpc.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let config = baton_ingest::Config {
        nats_url: nats.url(),
        listen: ingest_addr,
        http_listen: http.local_addr().expect("addr"),
        catalog: catalog.clone(),
        stream_replicas: 1,
        publish_timeout: Duration::from_secs(5),
        max_future_skew: Duration::from_secs(300),
        cache_capacity: 10_000,
        cache_mb: 64,
        max_in_flight: baton_ingest::grpc::DEFAULT_MAX_IN_FLIGHT,
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
        failpoints: Vec::new(),
    };
    let ingest_task = tokio::spawn(baton_ingest::run(config, grpc, http, stop.clone()));
    let mut ingest = loop {
        if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{ingest_addr}"))
            .expect("uri")
            .connect()
            .await
        {
            break IngestClient::new(channel);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let client = async_nats::connect(nats.url()).await.expect("nats");

    let crashed = dir.path().join("crashed");
    let mut expected: Vec<(String, u64)> = Vec::new();
    let mut progress = 0usize;
    let mut kills = 0;
    for point in [
        "after-commit-before-ack",
        "outbox-before-publish",
        "published-before-clear",
    ] {
        for round in 0..2 {
            // New work: 30 repairs requested 40 minutes ago, each already broken.
            let at = now_millis() - 40 * MIN;
            let requests: Vec<v1::AppendRequest> = (0..30)
                .map(|n| {
                    let id = format!("k-{point}-{round}-{n}");
                    expected.push((id.clone(), 1));
                    v1::AppendRequest {
                        event: Some(v1::HandoffEvent {
                            event_id: format!("{id}-requested"),
                            handoff_id: id,
                            r#type: EventType::Requested as i32,
                            occurred_at: Some(ts(at)),
                            kind: "repair".into(),
                            supplier: "engineering".into(),
                            customer: "ward-5".into(),
                            priority: Priority::Routine as i32,
                            ..Default::default()
                        }),
                        expected_version: None,
                        backfill: false,
                    }
                })
                .collect();
            // Until ingest has NATS and its streams, appends are UNAVAILABLE.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let results = ingest
                    .append_batch(v1::AppendBatchRequest {
                        requests: requests.clone(),
                    })
                    .await
                    .expect("append")
                    .into_inner()
                    .results;
                let refused: Vec<_> = results
                    .iter()
                    .filter_map(|r| match &r.outcome {
                        Some(v1::append_result::Outcome::Error(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                if refused.is_empty() {
                    break;
                }
                assert!(
                    refused
                        .iter()
                        .all(|e| e.code == tonic::Code::Unavailable as i32)
                        && tokio::time::Instant::now() < deadline,
                    "{refused:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }

            let child = spawn_with_failpoint(
                &nats.url(),
                &catalog,
                &crashed,
                "crashed",
                &format!("{point}=abort@2"),
            );
            let status = wait_exit(child).await;
            assert!(!status.success(), "{point}: it aborted there ({status:?})");
            kills += 1;
            // Between this kill and the next, it gets past the point: every
            // event so far in the views, every breach so far announced.
            let port = free_port();
            let mut child = spawn_projector(&nats.url(), &catalog, &crashed, port);
            wait_caught_up(port, &expected).await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let announced = loop {
                let announced = announcements(&client).await.len();
                if announced >= expected.len() {
                    assert_eq!(
                        announced,
                        expected.len(),
                        "{point}, round {round}: breaches announced more than once"
                    );
                    break announced;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{point}, round {round}: {announced} of {} breaches announced",
                    expected.len()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert!(announced > progress, "{point}, round {round}: no progress");
            progress = announced;
            // And dies again, unflushed.
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            kills += 1;
        }
    }

    // Restarted without failpoints: every breach announced, then a clean
    // rebuild beside it.
    let port = free_port();
    let child = spawn_projector(&nats.url(), &catalog, &crashed, port);
    wait_caught_up(port, &expected).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while announcements(&client).await.len() < expected.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every breach was announced"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(child);
    let rebuilt = dir.path().join("rebuilt");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_baton-projector"))
        .args(["--nats-url", &nats.url(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--consumer",
            "rebuilt",
            "--catalog",
        ])
        .arg(&catalog)
        .arg("--data-dir")
        .arg(&rebuilt)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("start the rebuild");
    wait_caught_up(port, &expected).await;
    terminate(child);

    let subjects = announcements(&client).await;
    let unique: std::collections::BTreeSet<&String> = subjects.iter().collect();
    assert_eq!(unique.len(), subjects.len(), "a breach announced twice");
    assert_eq!(
        subjects.len(),
        expected.len(),
        "every breach announced once"
    );
    let crashed = dump(&crashed, &catalog_version);
    let rebuilt = dump(&rebuilt, &catalog_version);
    assert!(
        crashed == rebuilt,
        "views after the kills differ from a clean rebuild"
    );
    eprintln!(
        "kill points: {kills} kills, 6 of them aborts at 3 points; {} breaches announced once each; {} view entries equal a rebuild",
        subjects.len(),
        rebuilt.len()
    );
    stop.cancel();
    ingest_task.await.expect("ingest task").expect("ingest ran");
}
