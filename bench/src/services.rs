//! The services in this process (their `run` functions on loopback
//! listeners bound to port 0), as the end-to-end harness starts them, and
//! the projector as a child process when its memory is to be measured.

use std::{future::Future, net::SocketAddr, path::Path, time::Duration};

use anyhow::{bail, Context as _};
use async_nats::jetstream::{self, consumer::pull};
use baton_log::subject;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// How long anything the bench waits for may take before the run fails.
pub const PATIENCE: Duration = Duration::from_secs(600);

/// A service running in this process.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the service (as SIGTERM would) and waits until it has.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        match tokio::time::timeout(Duration::from_secs(60), self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => bail!("service task failed: {e}"),
            Err(_) => bail!("service did not stop within a minute"),
        }
    }
}

async fn listener() -> anyhow::Result<TcpListener> {
    Ok(TcpListener::bind("127.0.0.1:0").await?)
}

fn spawn<F, Fut>(addr: SocketAddr, body: F) -> Running
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = CancellationToken::new();
    let task = tokio::spawn(body(stop.clone()));
    Running { addr, stop, task }
}

/// The gateway on the shipped lab mapping, appending to the ingest at `ingest`.
pub async fn start_gateway(ingest: SocketAddr) -> anyhow::Result<Running> {
    let mllp = listener().await?;
    let http = listener().await?;
    let addr = mllp.local_addr()?;
    let config = baton_gateway::Config {
        listen: addr,
        http_listen: http.local_addr()?,
        ingest_url: format!("http://{ingest}"),
        query_url: "http://127.0.0.1:9".to_owned(),
        ingest_ca: None,
        ingest_cert: None,
        ingest_key: None,
        mapping: Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway/hl7-lab.json"),
        time_zone: jiff::tz::TimeZone::UTC,
        id_salt: "bench".to_owned(),
        max_message_bytes: 64 * 1024,
        max_connections: 1_024,
        idle_timeout: Duration::from_secs(600),
        append_timeout: Duration::from_secs(10),
        fhir_server: None,
        fhir_server_ca: None,
        fhir_server_token: None,
        fhir_fetch_timeout: Duration::from_secs(10),
        tls: Default::default(),
        http: Default::default(),
    };
    Ok(spawn(addr, move |stop| async move {
        baton_gateway::run(config, mllp, http, stop)
            .await
            .map_err(|e| anyhow::anyhow!("gateway failed: {e}"))
    }))
}

pub async fn start_ingest(nats_url: &str, catalog: &Path) -> anyhow::Result<Running> {
    let grpc = listener().await?;
    let http = listener().await?;
    let addr = grpc.local_addr()?;
    let config = baton_ingest::Config {
        nats_url: nats_url.to_owned(),
        listen: addr,
        http_listen: http.local_addr()?,
        catalog: catalog.to_owned(),
        stream_replicas: 1,
        publish_timeout: Duration::from_secs(10),
        max_future_skew: Duration::from_secs(300),
        cache_capacity: 100_000,
        cache_mb: 256,
        max_in_flight: 4_096,
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
        failpoints: Vec::new(),
    };
    let running = spawn(addr, move |stop| async move {
        baton_ingest::run(config, grpc, http, stop)
            .await
            .map_err(|e| anyhow::anyhow!("ingest failed: {e}"))
    });
    wait_serving(addr, "baton.v1.Ingest").await?;
    Ok(running)
}

pub fn projector_config(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    consumer: &str,
    listen: SocketAddr,
    http_listen: SocketAddr,
) -> baton_projector::Config {
    baton_projector::Config {
        nats_url: nats_url.to_owned(),
        listen,
        http_listen,
        data_dir: data_dir.to_owned(),
        catalog: catalog.to_owned(),
        consumer: consumer.to_owned(),
        batch_size: baton_projector::config::DEFAULT_BATCH_SIZE,
        linger_ms: baton_projector::config::DEFAULT_LINGER_MS,
        partitions: 1,
        partition: 0,
        query_partitions: Vec::new(),
        query_tls: Default::default(),
        views_cache_mb: 64,
        announce_horizon: Duration::from_secs(3600),
        views_retention: Duration::ZERO,
        max_recorded_skew: Duration::from_secs(60),
        stall_after: Duration::from_secs(60),
        failpoints: Vec::new(),
        stream_replicas: 1,
        board: Default::default(),
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
    }
}

/// Starts the projector in this process; returns once it serves queries
/// (its views are current: a rebuild has finished).
pub async fn start_projector(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    consumer: &str,
) -> anyhow::Result<Running> {
    start_partition_projector(nats_url, catalog, data_dir, consumer, 1, 0).await
}

/// Starts projector `partition` of `partitions` in this process; returns
/// once it serves queries (its share of the views is complete).
pub async fn start_partition_projector(
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    consumer: &str,
    partitions: u32,
    partition: u32,
) -> anyhow::Result<Running> {
    let grpc = listener().await?;
    let http = listener().await?;
    let addr = grpc.local_addr()?;
    let config = baton_projector::Config {
        partitions,
        partition,
        ..projector_config(
            nats_url,
            catalog,
            data_dir,
            consumer,
            addr,
            http.local_addr()?,
        )
    };
    let running = spawn(addr, move |stop| async move {
        baton_projector::run(config, grpc, http, stop)
            .await
            .map_err(|e| anyhow::anyhow!("projector failed: {e}"))
    });
    wait_serving(addr, "baton.v1.Query").await?;
    Ok(running)
}

/// Waits until the service's gRPC health check says SERVING, polling every 5 ms.
pub async fn wait_serving(addr: SocketAddr, service: &str) -> anyhow::Result<()> {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    // One channel and the health Watch stream: no polling while a rebuild
    // is being timed (a new channel every few ms took CPU from it).
    let waiting = async {
        loop {
            let Ok(channel) = try_channel(addr).await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let request = HealthCheckRequest {
                service: service.into(),
            };
            let Ok(statuses) = HealthClient::new(channel).watch(request).await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let mut statuses = statuses.into_inner();
            while let Ok(Some(status)) = statuses.message().await {
                if status.status() == ServingStatus::Serving {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .map_err(|_| anyhow::anyhow!("{service} at {addr} not serving after {PATIENCE:?}"))
}

async fn try_channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?)
}

pub async fn channel(addr: SocketAddr) -> anyhow::Result<Channel> {
    try_channel(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))
}

/// `n` HTTP/2 connections to `addr` (at least one), for clients to share.
pub async fn channels(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        out.push(channel(addr).await?);
    }
    Ok(out)
}

/// Waits until the durable consumer `name` on the events stream has acked
/// stream sequence `last` (the projector acks after its sled commit).
pub async fn wait_acked(js: &jetstream::Context, name: &str, last: u64) -> anyhow::Result<()> {
    let stream = js.get_stream(subject::EVENTS_STREAM).await?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(mut consumer) = stream.get_consumer::<pull::Config>(name).await {
            if let Ok(info) = consumer.info().await {
                if info.ack_floor.stream_sequence >= last {
                    return Ok(());
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("consumer {name} did not reach sequence {last} within {PATIENCE:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Last sequence of a stream (0 if empty).
pub async fn last_sequence(js: &jetstream::Context, stream: &str) -> anyhow::Result<u64> {
    let mut stream = js.get_stream(stream).await?;
    Ok(stream.info().await?.state.last_sequence)
}

/// Messages of `stream` on subjects matching `filter`.
pub async fn count_subject(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> anyhow::Result<u64> {
    let stream = js.get_stream(stream).await?;
    let mut consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            filter_subject: filter.into(),
            ..Default::default()
        })
        .await?;
    Ok(consumer.info().await?.num_pending)
}
