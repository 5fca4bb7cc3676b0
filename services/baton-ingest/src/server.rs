//! Wiring: NATS, the streams, the gRPC server with health and reflection,
//! and the HTTP side port (health, metrics), both bounded
//! ([`baton_runtime::ports`]).

use std::{sync::Arc, time::Duration};

use baton_domain::event::Limits;
use baton_log::{EventLog, LogError, StreamSettings};
use baton_proto::v1::ingest_server::IngestServer;
use baton_runtime::{
    failpoint::{Failpoints, Injected},
    serve::{GrpcPort, HttpPort},
    supervise::{Supervisor, TaskFailed},
    CatalogLoadError, Health,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{config::Config, grpc::IngestService, ingestor::Ingestor};

/// Why the health task ended.
#[derive(Debug, thiserror::Error)]
enum HealthError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Injected(#[from] Injected),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("catalog {0}")]
    Catalog(#[from] CatalogLoadError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Serve(#[from] baton_runtime::serve::ServeError),
    #[error(transparent)]
    Security(#[from] baton_runtime::security::SecurityError),
    #[error("http side port: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Failpoint(#[from] baton_runtime::failpoint::FailpointError),
    /// A long-running task failed.
    #[error(transparent)]
    Task(#[from] TaskFailed),
    #[error("{0}")]
    Config(String),
}

/// The gRPC service whose health ingest reports.
pub const INGEST_SERVICE: &str = "baton.v1.Ingest";

/// Runs the ingest service on the given listeners until `shutdown` fires,
/// then stops taking requests and finishes the ones in flight. A
/// long-running task that fails ends it early, with [`StartError::Task`]:
/// so does a NATS server, once reached, older than Baton needs
/// ([`baton_log::version`]).
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let failpoints = Failpoints::parse(&config.failpoints)?;
    config.grpc.check().map_err(StartError::Config)?;
    let catalog = Arc::new(baton_runtime::load_catalog(&config.catalog)?);
    tracing::info!(catalog = %config.catalog.display(), version = catalog.version(), promises = catalog.promises.len(), "catalog loaded");

    let (tls, registry) =
        baton_runtime::serve::secure_ports(&config.tls, &config.grpc, &config.http, |d| {
            catalog.has_department(d)
        })?;

    let client = baton_log::connect_secured(&config.nats_url, "baton-ingest", &config.nats).await?;
    let log = EventLog::new(client.clone(), config.publish_timeout);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let ingestor = Arc::new(ingestor(&config, catalog, log.clone(), &metrics));

    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter, INGEST_SERVICE);
    health.set(false).await;
    let mut tasks = Supervisor::new(
        shutdown.clone(),
        health.clone(),
        Arc::new(metrics.task_failures.clone()),
    );
    let replicas = config.stream_replicas;
    tasks.spawn(
        "health",
        report_health(
            log.clone(),
            ingestor.clone(),
            StreamSettings {
                replicas,
                ..StreamSettings::default()
            },
            health.clone(),
            failpoints,
            shutdown.clone(),
        ),
    );
    let ports = metrics.ports.clone();
    let side = crate::metrics::router(metrics.clone(), client.clone());
    let http_port = HttpPort {
        listener: http_listener,
        args: &config.http,
        tls: &config.tls,
        registry: registry.clone(),
        counters: ports.port("http"),
    };
    baton_runtime::serve::spawn_side_port(
        &mut tasks,
        http_port,
        health.readiness(),
        side,
        &shutdown,
    )?;

    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "ingest serving");
    let service =
        IngestService::with_max_in_flight(ingestor, config.max_in_flight).with_metrics(metrics);
    let routes = routes(service, health_service, registry);
    let port = GrpcPort {
        listener: grpc_listener,
        args: &config.grpc,
        tls,
        counters: ports.port("grpc"),
    };
    let served = baton_runtime::serve::serve_grpc(port, routes, &shutdown);
    let (served, supervised) = tokio::join!(served, tasks.wait());
    // Appends are acknowledged before we answer, so nothing is buffered;
    // flushing only delivers anything the client still holds.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    served?;
    supervised?;
    tracing::info!("ingest stopped");
    Ok(())
}

/// The gRPC routes: health, and ingest behind the callers' check.
fn routes(
    service: IngestService,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    registry: Option<Arc<baton_domain::access::Registry>>,
) -> Routes {
    Routes::new(health).add_service(IngestServer::with_interceptor(
        service,
        baton_runtime::security::interceptor(registry),
    ))
}

/// The append rules' I/O side, as the flags size its cache and bound the
/// events' times, counting conflicts in `metrics`.
fn ingestor(
    config: &Config,
    catalog: Arc<baton_domain::Catalog>,
    log: EventLog,
    metrics: &crate::metrics::Metrics,
) -> Ingestor {
    let limits = Limits {
        max_future_skew: config.max_future_skew,
        ..Limits::default()
    };
    Ingestor::new(
        log,
        catalog,
        limits,
        config.cache_capacity,
        config.cache_mb.saturating_mul(1024 * 1024),
    )
    .counting_conflicts(metrics.conflicts())
}

/// Checks the server's version once NATS is reachable (an older one than
/// Baton needs fails the task, and so the service; nothing is read or
/// appended before), creates the streams, then keeps health in line with
/// the NATS connection, and every 2 s checks the events stream has not lost
/// what the cache vouches for ([`Ingestor::check_stream`]).
async fn report_health(
    log: EventLog,
    ingestor: Arc<Ingestor>,
    settings: StreamSettings,
    health: Health,
    failpoints: Failpoints,
    shutdown: CancellationToken,
) -> Result<(), HealthError> {
    let checked = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        checked = log.check_server() => checked,
    };
    let version = checked?;
    tracing::info!(%version, "nats-server version supported");
    let ensured = baton_runtime::retry_until("creating the streams", &shutdown, || {
        baton_log::streams::ensure(log.jetstream(), &settings)
    })
    .await;
    if ensured.is_none() {
        return Ok(());
    }
    let client = log.client().clone();
    let mut was = None;
    let mut tick = 0u64;
    loop {
        tick = tick.wrapping_add(1);
        failpoints.hit("health").await?;
        let connected = baton_log::is_connected(&client);
        if connected && tick % 4 == 1 {
            if let Err(e) = ingestor.check_stream().await {
                tracing::debug!(error = %e, "cannot read where the events stream ends");
            }
        }
        if was != Some(connected) {
            if connected {
                tracing::info!("nats connected, ingest ready");
            } else if was.is_some() {
                tracing::warn!("nats disconnected, appends answer UNAVAILABLE");
            }
            health.set(connected).await;
            was = Some(connected);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

impl baton_runtime::serve::Service for Config {
    const NAME: &'static str = crate::NAME;
    type Error = StartError;

    fn listen_address(&self) -> Option<std::net::SocketAddr> {
        Some(self.listen)
    }

    fn http_address(&self) -> std::net::SocketAddr {
        self.http_listen
    }

    fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp.otlp_endpoint.as_deref()
    }

    fn run(
        self,
        grpc: Option<tokio::net::TcpListener>,
        http: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        // `serve::main` binds `--listen`, which this service always has.
        let grpc = grpc.expect("the gRPC port is bound by serve::main");
        crate::run(self, grpc, http, shutdown)
    }
}
