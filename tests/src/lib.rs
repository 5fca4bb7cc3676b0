//! End-to-end test harness: a real `nats-server`, the real ingest and
//! projector services on loopback ports, and real gRPC clients.
//!
//! The services run in this process (their `run` functions on listeners
//! bound to port 0), so a test can stop and start them; tests that must kill
//! a process outright spawn the built binaries instead. Nothing here is
//! shipped.
//!
//! [`load`] drives sustained load through faults and audits the stream after;
//! [`power`] cuts the power under nats-server and the projector (a lossy
//! FUSE filesystem) and counts what the clients were told against the stream;
//! [`browser`] drives a headless Chromium over WebDriver; [`secure`] runs the
//! services with TLS and caller authentication.

pub mod browser;
pub mod http;
pub mod load;
pub mod power;
pub mod secure;
pub mod webhook;

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;

use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient};
use baton_testkit::NatsServer;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// How long a test waits for something that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A catalog with short targets, so promises break within a test. Its tests
/// enter events dated up to a year back as live callers, so late entries
/// count by their own time for ten years here; the late-entry bound is tested
/// with a catalog of its own (`tests/integrity.rs`).
pub const TEST_CATALOG: &str = r#"{
  "max_entry_lag": "3650d",
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "lab", "name": "Laboratory"},
    {"id": "ward-5", "name": "Ward 5"},
    {"id": "ward-6", "name": "Ward 6"},
    {"id": "ed", "name": "Emergency department"},
    {"id": "cardiology", "name": "Cardiology"},
    {"id": "dentistry", "name": "Dentistry"}
  ],
  "kinds": ["repair", "lab", "consult"],
  "calendars": [
    {"id": "weekdays", "time_zone": "UTC",
     "week": {"mon": ["08:00-17:00"], "tue": ["08:00-17:00"], "wed": ["08:00-17:00"], "thu": ["08:00-17:00"], "fri": ["08:00-17:00"]}}
  ],
  "promises": [
    {"id": "consult-routine", "kind": "consult", "start": "requested", "stop": ["started"],
     "targets": {"routine": "8h"}, "calendar": "weekdays"},
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "urgent": "15m", "stat": "2s"}},
    {"id": "lab-turnaround", "kind": "lab", "start": "requested", "stop": ["completed"],
     "pause": ["on_hold"], "resume": ["resumed"],
     "targets": {"routine": "4h", "stat": "1h"}}
  ]
}"#;

/// A service running in this process.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    /// The HTTP side port (health, /metrics, and the projector's board), when known.
    pub http: Option<SocketAddr>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    /// A service whose task the test spawned itself; `stop` ends it.
    pub fn new(addr: SocketAddr, stop: CancellationToken, task: JoinHandle<()>) -> Running {
        Running {
            addr,
            http: None,
            stop,
            task,
        }
    }

    /// Asks the service to stop (as SIGTERM would) and waits until it has;
    /// false if it had not stopped within [`PATIENCE`].
    pub async fn stop(self) -> bool {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.task).await.is_ok()
    }
}

/// Starts `baton-ingest` in this process.
pub async fn start_ingest(nats_url: &str, catalog: &Path) -> Running {
    start_ingest_with(nats_url, catalog, 1).await
}

/// Starts `baton-ingest` in this process, creating the streams with
/// `stream_replicas` replicas (3 on a cluster).
pub async fn start_ingest_with(nats_url: &str, catalog: &Path, stream_replicas: usize) -> Running {
    let grpc = listener().await;
    let http = listener().await;
    let addr = grpc.local_addr().expect("bound");
    let config = baton_ingest::Config {
        nats_url: nats_url.to_owned(),
        listen: addr,
        http_listen: http.local_addr().expect("bound"),
        catalog: catalog.to_owned(),
        stream_replicas,
        publish_timeout: Duration::from_secs(2),
        max_future_skew: Duration::from_secs(300),
        cache_capacity: 10_000,
        cache_mb: 256,
        max_in_flight: baton_ingest::grpc::DEFAULT_MAX_IN_FLIGHT,
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
        failpoints: Vec::new(),
    };
    let http_addr = config.http_listen;
    let mut running = spawn(addr, move |stop| async move {
        if let Err(e) = baton_ingest::run(config, grpc, http, stop).await {
            panic!("ingest failed: {e}");
        }
    });
    running.http = Some(http_addr);
    wait_serving(addr, "baton.v1.Ingest").await;
    running
}

/// Starts `baton-gateway` in this process, appending to the ingest at
/// `ingest` and reading FHIR Tasks back from the projector at `query`, with
/// the mapping at `mapping`; HL7 times without an offset are read in UTC.
pub async fn start_gateway(ingest: SocketAddr, query: SocketAddr, mapping: &Path) -> Running {
    start_gateway_with(ingest, query, mapping, Default::default()).await
}

/// [`start_gateway`] with `tls` on its MLLP and HTTP ports.
pub async fn start_gateway_with(
    ingest: SocketAddr,
    query: SocketAddr,
    mapping: &Path,
    tls: baton_runtime::security::TlsArgs,
) -> Running {
    start_gateway_configured(ingest, query, mapping, |c| c.tls = tls).await
}

/// [`start_gateway`], its configuration changed by `change` first.
pub async fn start_gateway_configured(
    ingest: SocketAddr,
    query: SocketAddr,
    mapping: &Path,
    change: impl FnOnce(&mut baton_gateway::Config),
) -> Running {
    let mllp = listener().await;
    let http = listener().await;
    let addr = mllp.local_addr().expect("bound");
    let mut config = baton_gateway::Config {
        listen: addr,
        http_listen: http.local_addr().expect("bound"),
        ingest_url: format!("http://{ingest}"),
        query_url: format!("http://{query}"),
        ingest_ca: None,
        ingest_cert: None,
        ingest_key: None,
        mapping: mapping.to_owned(),
        time_zone: jiff::tz::TimeZone::UTC,
        id_salt: "test-salt".to_owned(),
        max_message_bytes: 64 * 1024,
        max_connections: 16,
        idle_timeout: Duration::from_secs(60),
        append_timeout: Duration::from_secs(5),
        fhir_server: None,
        fhir_server_ca: None,
        fhir_server_token: None,
        fhir_fetch_timeout: Duration::from_secs(5),
        tls: Default::default(),
        http: Default::default(),
    };
    change(&mut config);
    let http_addr = config.http_listen;
    let mut running = spawn(addr, move |stop| async move {
        if let Err(e) = baton_gateway::run(config, mllp, http, stop).await {
            panic!("gateway failed: {e}");
        }
    });
    running.http = Some(http_addr);
    running
}

/// Starts `baton-notify` in this process on the routes at `routes`, with
/// `attempts` per delivery and waits from `backoff` (doubling, at most 1 s).
pub async fn start_notify(
    nats_url: &str,
    routes: &Path,
    attempts: u32,
    backoff: Duration,
) -> Running {
    start_notify_configured(nats_url, routes, attempts, backoff, |_| {}).await
}

/// [`start_notify`], with its configuration changed by `configure` first.
pub async fn start_notify_configured(
    nats_url: &str,
    routes: &Path,
    attempts: u32,
    backoff: Duration,
    configure: impl FnOnce(&mut baton_notify::Config),
) -> Running {
    let http = listener().await;
    let addr = http.local_addr().expect("bound");
    let mut config = baton_notify::Config {
        nats_url: nats_url.to_owned(),
        http_listen: addr,
        routes: routes.to_owned(),
        routes_check: Duration::from_secs(5),
        board_url: "http://board.test".to_owned(),
        attempts,
        backoff,
        backoff_max: Duration::from_secs(1),
        ack_key: None,
        ack_url: None,
        ack_link_lifetime: Duration::from_secs(3_600),
        ingest_url: "http://127.0.0.1:50051".to_owned(),
        ingest_ca: None,
        ingest_cert: None,
        ingest_key: None,
        tls: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
    };
    configure(&mut config);
    let mut running = spawn(addr, move |stop| async move {
        if let Err(e) = baton_notify::run(config, http, stop).await {
            panic!("notify failed: {e}");
        }
    });
    running.http = Some(addr);
    running
}

/// Starts `baton-projector` in this process.
pub async fn start_projector(nats_url: &str, catalog: &Path, data_dir: &Path) -> Running {
    start_projector_with(nats_url, catalog, data_dir, 1).await
}

/// Starts `baton-projector` in this process, creating the streams (if it
/// gets there first) with `stream_replicas` replicas.
pub async fn start_projector_with(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    stream_replicas: usize,
) -> Running {
    let setup = ProjectorSetup {
        stream_replicas,
        ..ProjectorSetup::default()
    };
    start_projector_setup(nats_url, catalog, data_dir, &setup, listener().await).await
}

/// What a test projector runs with beyond the defaults.
#[derive(Debug, Clone)]
pub struct ProjectorSetup {
    pub stream_replicas: usize,
    /// `--partitions` and `--partition`.
    pub partitions: u32,
    pub partition: u32,
    /// `--query-partitions`.
    pub query_partitions: Vec<String>,
    /// `--views-retention` (zero: keep every view).
    pub views_retention: Duration,
}

impl Default for ProjectorSetup {
    fn default() -> Self {
        ProjectorSetup {
            stream_replicas: 1,
            partitions: 1,
            partition: 0,
            query_partitions: Vec::new(),
            views_retention: Duration::ZERO,
        }
    }
}

/// A loopback port to serve on, bound now (so its URL can be handed out
/// before the service starts).
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// Starts `baton-projector` in this process as `setup` says, serving gRPC on `grpc`.
pub async fn start_projector_setup(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    setup: &ProjectorSetup,
    grpc: TcpListener,
) -> Running {
    let running = spawn_projector(nats_url, catalog, data_dir, setup, grpc).await;
    wait_serving(running.addr, "baton.v1.Query").await;
    running
}

/// Starts `baton-projector` in this process without waiting for it to
/// serve (it may never: NATS down, say).
pub async fn spawn_projector(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    setup: &ProjectorSetup,
    grpc: TcpListener,
) -> Running {
    let http = listener().await;
    let addr = grpc.local_addr().expect("bound");
    let config = baton_projector::Config {
        nats_url: nats_url.to_owned(),
        listen: addr,
        http_listen: http.local_addr().expect("bound"),
        data_dir: data_dir.to_owned(),
        catalog: catalog.to_owned(),
        consumer: "baton-projector".into(),
        batch_size: 500,
        linger_ms: baton_projector::config::DEFAULT_LINGER_MS,
        partitions: setup.partitions,
        partition: setup.partition,
        query_partitions: setup.query_partitions.clone(),
        query_tls: Default::default(),
        views_cache_mb: 64,
        announce_horizon: Duration::from_secs(3600),
        views_retention: setup.views_retention,
        max_recorded_skew: Duration::from_secs(60),
        stall_after: Duration::from_secs(60),
        failpoints: Vec::new(),
        stream_replicas: setup.stream_replicas,
        board: Default::default(),
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
    };
    let http_addr = config.http_listen;
    let mut running = spawn(addr, move |stop| async move {
        if let Err(e) = baton_projector::run(config, grpc, http, stop).await {
            panic!("projector failed: {e}");
        }
    });
    running.http = Some(http_addr);
    running
}

/// Waits until the service's standard gRPC health check says SERVING, as a
/// load balancer would before sending it traffic.
pub async fn wait_serving(addr: SocketAddr, service: &str) {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let health = HealthClient::new(channel(addr).await);
    eventually(&format!("{service} serving"), || {
        let mut health = health.clone();
        async move {
            let r = health
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .ok()?;
            (r.get_ref().status() == ServingStatus::Serving).then_some(())
        }
    })
    .await
}

fn spawn<F, Fut>(addr: SocketAddr, body: F) -> Running
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = CancellationToken::new();
    let task = tokio::spawn(body(stop.clone()));
    Running::new(addr, stop, task)
}

/// NATS, ingest and projector, with a catalog and data dir of their own.
#[derive(Debug)]
pub struct Baton {
    pub nats: NatsServer,
    pub ingest: Option<Running>,
    pub projector: Option<Running>,
    pub dir: tempfile::TempDir,
}

impl Baton {
    pub async fn start() -> Baton {
        Baton::start_with_catalog(TEST_CATALOG).await
    }

    pub async fn start_with_catalog(catalog: &str) -> Baton {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("catalog.json"), catalog).expect("write catalog");
        let mut baton = Baton {
            nats,
            ingest: None,
            projector: None,
            dir,
        };
        baton.ingest = Some(start_ingest(&baton.nats.url(), &baton.catalog_path()).await);
        baton.projector = Some(baton.spawn_projector().await);
        baton
    }

    pub fn catalog_path(&self) -> PathBuf {
        self.dir.path().join("catalog.json")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("views")
    }

    pub async fn spawn_projector(&self) -> Running {
        start_projector(&self.nats.url(), &self.catalog_path(), &self.data_dir()).await
    }

    pub async fn ingest(&self) -> IngestClient<Channel> {
        IngestClient::new(channel(self.ingest.as_ref().expect("ingest running").addr).await)
    }

    pub async fn query(&self) -> QueryClient<Channel> {
        QueryClient::new(channel(self.projector.as_ref().expect("projector running").addr).await)
    }

    /// `http://<addr>` of the projector's HTTP side port (the board).
    pub fn board_url(&self) -> String {
        let projector = self.projector.as_ref().expect("projector running");
        format!("http://{}", projector.http.expect("projector http address"))
    }

    pub async fn nats_client(&self) -> async_nats::Client {
        async_nats::connect(self.nats.url())
            .await
            .expect("connect to nats")
    }
}

/// A gRPC channel (the listener is bound, so this does not race).
pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the service")
}

/// Waits until `check` returns `Some`, trying every 20 ms, failing the test
/// after [`PATIENCE`]. For conditions the system reaches by itself (the
/// projector catching up), not for timing.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("gave up waiting for {what} after {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn timestamp(millis: i64) -> prost_types::Timestamp {
    baton_proto::convert::timestamp_to_proto(baton_domain::Timestamp(millis))
}

/// A REQUESTED event.
pub fn requested(
    handoff: &str,
    kind: &str,
    supplier: &str,
    customer: &str,
    priority: v1::Priority,
    at: i64,
) -> v1::HandoffEvent {
    v1::HandoffEvent {
        event_id: format!("{handoff}-requested"),
        handoff_id: handoff.into(),
        r#type: v1::EventType::Requested as i32,
        occurred_at: Some(timestamp(at)),
        kind: kind.into(),
        supplier: supplier.into(),
        customer: customer.into(),
        priority: priority as i32,
        actor: "test-system".into(),
        ..Default::default()
    }
}

/// `at` (milliseconds) as it goes into an event id: a time in
/// milliseconds has 13 digits in a row, which the patient-data screen
/// refuses, so a letter splits it (`1x767225x600123`).
pub fn id_time(at: i64) -> String {
    let written = baton_domain::privacy::id_number(at.unsigned_abs());
    if at < 0 {
        format!("m{written}")
    } else {
        written
    }
}

/// A later event, with only what a later event needs.
pub fn later(handoff: &str, event_type: v1::EventType, at: i64) -> v1::HandoffEvent {
    v1::HandoffEvent {
        event_id: format!(
            "{handoff}-{}-{}",
            event_type.as_str_name().to_lowercase(),
            id_time(at)
        ),
        handoff_id: handoff.into(),
        r#type: event_type as i32,
        occurred_at: Some(timestamp(at)),
        actor: "test-system".into(),
        ..Default::default()
    }
}

pub fn append(event: v1::HandoffEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill: false,
    }
}

/// Waits until the projector shows the hand-off at `version`.
pub async fn projected(
    query: &mut QueryClient<Channel>,
    handoff: &str,
    version: u64,
) -> v1::Handoff {
    eventually(
        &format!("{handoff} at version {version} in the views"),
        || {
            let mut query = query.clone();
            async move {
                let request = v1::GetHandoffRequest {
                    handoff_id: handoff.into(),
                };
                match query.get_handoff(request).await {
                    Ok(r) => r.into_inner().handoff.filter(|h| h.version >= version),
                    _ => None,
                }
            }
        },
    )
    .await
}

/// A promise's compliance over all time.
pub async fn compliance(query: &mut QueryClient<Channel>, policy: &str) -> v1::Compliance {
    query
        .get_compliance(v1::GetComplianceRequest {
            policy_id: policy.into(),
            ..Default::default()
        })
        .await
        .expect("compliance")
        .into_inner()
        .compliance
        .expect("GetCompliance answers with figures")
}

/// A NATS client given every server of a cluster (`urls` comma-separated,
/// as `--nats-url` takes them), failing over between them.
pub async fn connect_cluster(urls: &str) -> async_nats::Client {
    let servers = urls
        .split(',')
        .map(|u| u.parse().expect("a NATS URL"))
        .collect::<Vec<async_nats::ServerAddr>>();
    async_nats::connect(servers)
        .await
        .expect("connect to the cluster")
}

/// Messages in a stream on subjects matching `filter`.
pub async fn count_messages(nats: &async_nats::Client, stream: &str, filter: &str) -> u64 {
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js.get_stream(stream).await.expect("stream");
    let info = stream.info().await.expect("stream info");
    if info.state.messages == 0 {
        return 0;
    }
    let consumer: async_nats::jetstream::consumer::Consumer<
        async_nats::jetstream::consumer::pull::OrderedConfig,
    > = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.into(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer");
    let mut consumer = consumer;
    consumer.info().await.expect("consumer info").num_pending
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness's ids pass ingest's patient-data screen at any time a
    /// test may use, from the epoch to the year 2286.
    #[test]
    fn made_ids_pass_the_patient_data_screen() {
        let mut times = vec![-86_400_000i64, -1, 0];
        let mut at = 1i64;
        while at < 9_999_999_999_999 {
            times.push(at);
            at = at * 3 / 2 + 7_919;
        }
        for at in times {
            for t in [v1::EventType::Acknowledged, v1::EventType::OnHold] {
                let e = later("sec-1", t, at);
                assert_eq!(
                    baton_domain::privacy::screen(&e.event_id),
                    None,
                    "{}",
                    e.event_id
                );
            }
        }
        let r = requested("pii-ok", "lab", "lab", "ward-5", v1::Priority::Stat, 0);
        assert_eq!(baton_domain::privacy::screen(&r.event_id), None);
        assert_eq!(id_time(1_767_225_600_123), "1x767225x600123");
    }
}

/// Everything the process logs from now on, at debug level, without colour:
/// for tests that search the logs for what must never be in them. Installs
/// the process's one tracing subscriber, so a test binary calls it once.
pub fn capture_logs() -> CapturedLogs {
    let captured = CapturedLogs::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    captured
}

/// What [`capture_logs`] has captured.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The log text so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every payload in the events stream `BATON_HANDOFFS`, raw.
pub async fn stream_payloads(nats: &async_nats::Client) -> Vec<Vec<u8>> {
    let js = async_nats::jetstream::new(nats.clone());
    let stream = js.get_stream("BATON_HANDOFFS").await.expect("stream");
    let mut consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: ">".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let pending = consumer.info().await.expect("info").num_pending;
    let mut messages = consumer.messages().await.expect("messages");
    let mut payloads = Vec::new();
    while (payloads.len() as u64) < pending {
        let message = messages.next().await.expect("a message").expect("ok");
        payloads.push(message.payload.to_vec());
    }
    payloads
}

/// Whether `needle` stands anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}
