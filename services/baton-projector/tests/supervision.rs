//! A dead or stuck part makes noise, against the real binary: each
//! long-running task is made to panic or fail through a test-only
//! failpoint, and the projector turns NOT_SERVING at once, logs the cause
//! at error level and exits non-zero after flushing its views (a restart
//! resumes them, no rebuild); a storage error ends it the same way; and a
//! second SIGTERM ends it at once even when both runtime workers are
//! blocked.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use baton_proto::v1::{self, ingest_client::IngestClient, EventType, Priority};
use baton_testkit::{free_port, NatsServer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

const CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W5"}],
  "kinds": ["repair"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "stat": "1s"}}
  ]
}"#;

fn request(id: &str) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(v1::HandoffEvent {
            event_id: format!("{id}-requested"),
            handoff_id: id.into(),
            r#type: EventType::Requested as i32,
            occurred_at: Some(prost_types::Timestamp {
                seconds: now_millis() / 1000,
                nanos: 0,
            }),
            kind: "repair".into(),
            supplier: "engineering".into(),
            customer: "ward-5".into(),
            priority: Priority::Stat as i32,
            ..Default::default()
        }),
        expected_version: None,
        backfill: false,
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// NATS, ingest in this process, a catalog and a place for data dirs.
struct Rig {
    nats: NatsServer,
    dir: tempfile::TempDir,
    ingest: IngestClient<tonic::transport::Channel>,
    _stop: tokio_util::sync::DropGuard,
}

impl Rig {
    async fn start() -> Rig {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("catalog.json"), CATALOG).expect("catalog");
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let http = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = grpc.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let config = baton_ingest::Config {
            nats_url: nats.url(),
            listen: addr,
            http_listen: http.local_addr().expect("addr"),
            catalog: dir.path().join("catalog.json"),
            stream_replicas: 1,
            publish_timeout: Duration::from_secs(5),
            max_future_skew: Duration::from_secs(300),
            cache_capacity: 1_000,
            cache_mb: 16,
            max_in_flight: baton_ingest::grpc::DEFAULT_MAX_IN_FLIGHT,
            tls: Default::default(),
            grpc: Default::default(),
            http: Default::default(),
            nats: Default::default(),
            otlp: Default::default(),
            failpoints: Vec::new(),
        };
        tokio::spawn(baton_ingest::run(config, grpc, http, stop.clone()));
        let ingest = loop {
            if let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
            {
                break IngestClient::new(channel);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Rig {
            nats,
            dir,
            ingest,
            _stop: stop.drop_guard(),
        }
    }

    /// A STAT repair every 300 ms, each breaking its 1 s promise: work for
    /// every task, until the returned guard is dropped.
    fn keep_busy(&self, prefix: &str) -> tokio_util::sync::DropGuard {
        let stop = CancellationToken::new();
        let mut rig_ingest = self.ingest.clone();
        let (prefix, token) = (prefix.to_owned(), stop.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let id = format!("{prefix}-{n}");
                let _ = rig_ingest.append(request(&id)).await;
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
        });
        stop.drop_guard()
    }

    /// A STAT repair whose 1 s promise breaks: work for every task.
    async fn activity(&mut self, id: &str) {
        let mut tries = 0;
        while let Err(e) = self.ingest.append(request(id)).await {
            tries += 1;
            assert!(tries < 100, "ingest never took the event: {e}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn projector(&self, name: &str, port: u16, failpoints: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_baton-projector"))
            .args(["--nats-url", &self.nats.url(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--http-listen", "127.0.0.1:0", "--stall-after", "2s"])
            .arg("--catalog")
            .arg(self.dir.path().join("catalog.json"))
            .arg("--data-dir")
            .arg(self.dir.path().join(name))
            .args(["--consumer", name])
            .env("BATON_FAILPOINTS", failpoints)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start baton-projector")
    }
}

/// Health of `baton.v1.Query` on `port` as it changes, until the server
/// goes; fails the test with the process's log if it ended first.
async fn watch_health(
    port: u16,
    child: &mut Child,
) -> tonic::Streaming<tonic_health::pb::HealthCheckResponse> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut log = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut log);
            }
            panic!("the projector ended before it listened ({status:?}):\n{log}");
        }
        if let Ok(channel) =
            tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect()
                .await
        {
            if let Ok(stream) = HealthClient::new(channel)
                .watch(HealthCheckRequest {
                    service: "baton.v1.Query".into(),
                })
                .await
            {
                return stream.into_inner();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projector never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads statuses until `wanted`; false if the stream ended first.
async fn until_status(
    stream: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    wanted: ServingStatus,
) -> bool {
    let read = async {
        while let Some(Ok(status)) = stream.next().await {
            if status.status() == wanted {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or(false)
}

/// Waits for the process to end (at most 60 s) and returns its status and stderr.
async fn ended(mut child: Child) -> (ExitStatus, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the projector did not exit within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    (status, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_that_dies_makes_noise_and_ends_the_process() {
    let mut cases = 0;
    for task in ["consumer", "timer", "announcer", "health", "watchdog"] {
        for action in ["panic", "error"] {
            // A stream of its own: no history for the next case to replay.
            let rig = Rig::start().await;
            let name = format!("{task}-{action}");
            let port = free_port();
            // Events drive the consumer (a pass a batch), the timer (a pass a
            // deadline to settle) and the announcer (a first pass at start,
            // then one an outbox entry): their first pass with work fails.
            // The health and watchdog loops pass every 500 ms: their tenth
            // does, well after the projector served.
            let from = match task {
                "consumer" | "timer" => 1,
                "announcer" => 2,
                _ => 10,
            };
            let mut child = rig.projector(&name, port, &format!("{task}={action}@{from}"));
            let mut health = watch_health(port, &mut child).await;
            assert!(
                until_status(&mut health, ServingStatus::Serving).await,
                "{name}: never served"
            );
            let busy = rig.keep_busy(&format!("h-{name}"));
            assert!(
                until_status(&mut health, ServingStatus::NotServing).await,
                "{name}: health never turned NOT_SERVING"
            );
            // Our open health watch would hold the stopping server for its grace.
            drop((busy, health));
            let (status, log) = ended(child).await;
            assert!(!status.success(), "{name}: exit {status:?}\n{log}");
            let expected = match action {
                "panic" => format!("panicked: failpoint {task} injected a panic"),
                _ => format!("failpoint {task} injected an error"),
            };
            let failed = log
                .lines()
                .find(|l| l.contains("ERROR") && l.contains("task failed"))
                .unwrap_or_else(|| panic!("{name}: no error line\n{log}"));
            assert!(
                failed.contains(&format!("task=\"{task}\""))
                    || failed.contains(&format!("task={task}")),
                "{name}: {failed}"
            );
            assert!(failed.contains(&expected), "{name}: {failed}");
            let flushed = log
                .find("views flushed")
                .unwrap_or_else(|| panic!("{name}: not flushed\n{log}"));
            assert!(
                log.find("task failed")
                    .is_some_and(|failed| failed < flushed),
                "{name}: flushed after the failure"
            );
            cases += 1;
        }
    }
    eprintln!("supervision: {cases} task failures, each NOT_SERVING, logged and exited non-zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_error_ends_the_process_and_a_restart_resumes_the_views() {
    let rig = Rig::start().await;
    let port = free_port();
    // Writing the second batch fails as an I/O error from sled would.
    let mut child = rig.projector("storage", port, "storage=error@3");
    let mut health = watch_health(port, &mut child).await;
    assert!(until_status(&mut health, ServingStatus::Serving).await);
    let busy = rig.keep_busy("s");
    assert!(until_status(&mut health, ServingStatus::NotServing).await);
    drop((busy, health));
    let (status, log) = ended(child).await;
    assert!(!status.success(), "exit {status:?}\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("failpoint storage injected an error")),
        "{log}"
    );
    // Restarted without the failpoint: the views are resumed, not rebuilt.
    let mut child = rig.projector("storage", port, "");
    let mut health = watch_health(port, &mut child).await;
    assert!(until_status(&mut health, ServingStatus::Serving).await);
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let (status, log) = ended(child).await;
    assert!(status.success(), "a clean stop exits 0: {status:?}\n{log}");
    assert!(log.contains("views resumed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_announcer_or_timer_turns_the_projector_unhealthy() {
    for (part, failpoint) in [("announcer", "announcer=hang@2"), ("timer", "timer=hang@1")] {
        let mut rig = Rig::start().await;
        let port = free_port();
        let mut child = rig.projector(part, port, failpoint);
        let mut health = watch_health(port, &mut child).await;
        assert!(
            until_status(&mut health, ServingStatus::Serving).await,
            "{part}"
        );
        // A STAT breach: the outbox gets an entry the hung announcer never
        // publishes, or a deadline the hung timer never settles.
        rig.activity(&format!("stall-{part}-1")).await;
        rig.activity(&format!("stall-{part}-2")).await;
        assert!(
            until_status(&mut health, ServingStatus::NotServing).await,
            "{part}: a stall must turn health NOT_SERVING"
        );
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .expect("kill");
        let (_, log) = ended(child).await;
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains(&format!("{part} stalled"))),
            "{part}: {log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_the_process_even_when_every_worker_is_blocked() {
    let rig = Rig::start().await;
    let port = free_port();
    // Once events arrive, the consumer and the timer block the worker
    // thread they run on: both of the runtime's workers (one per core;
    // this machine has two) are stuck, as they were inside sled.
    let mut child = rig.projector("frozen", port, "freeze-worker=hang");
    let mut health = watch_health(port, &mut child).await;
    assert!(until_status(&mut health, ServingStatus::Serving).await);
    let _busy = rig.keep_busy("f");
    // Frozen: a health check no longer answers.
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut client = HealthClient::new(channel.clone());
        let check = client.check(HealthCheckRequest {
            service: "baton.v1.Query".into(),
        });
        if tokio::time::timeout(Duration::from_millis(500), check)
            .await
            .is_err()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runtime never froze"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().to_string();
    for _ in 0..2 {
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sent = tokio::time::Instant::now();
    let (status, log) = ended(child).await;
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "the second signal exits at once"
    );
    assert_eq!(status.code(), Some(130), "{log}");
    assert!(log.contains("second signal, exiting now"), "{log}");
}
