//! Wiring: views, NATS, the supervised tasks (consumer, timer, announcer,
//! health, watchdog, storage, the HTTP side port with the board and
//! metrics) and the gRPC server with health and reflection, both ports
//! bounded ([`baton_runtime::ports`]).

use std::{sync::Arc, time::Duration};

use baton_domain::Catalog;
use baton_log::{LogError, StreamSettings};
use baton_proto::v1::query_server::QueryServer;
use baton_runtime::{
    failpoint::Failpoints,
    serve::{GrpcPort, HttpPort},
    supervise::{Supervisor, TaskCounter, TaskFailed},
    CatalogLoadError, Health,
};
use baton_views::{Opened, Views, ViewsError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

use crate::{
    announcer, config::Config, query::QueryService, route::QueryRouter, timer, Shared, TaskError,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("catalog {0}")]
    Catalog(#[from] CatalogLoadError),
    #[error("views in {dir}: {source}")]
    Views { dir: String, source: ViewsError },
    /// Opening the views never finished: not a verdict on them.
    #[error("views: {0}")]
    ViewsTask(#[from] crate::TaskGone),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Serve(#[from] baton_runtime::serve::ServeError),
    #[error(transparent)]
    Security(#[from] baton_runtime::security::SecurityError),
    #[error("http side port: {0}")]
    Http(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("--partition: {0}")]
    Partition(#[from] baton_log::partitions::PartitionError),
    #[error(transparent)]
    Fanout(#[from] crate::fanout::FanoutError),
    #[error(transparent)]
    Failpoint(#[from] baton_runtime::failpoint::FailpointError),
    /// A long-running task failed; the views were flushed.
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// Runs the projector until `shutdown` fires, then finishes the batch in
/// hand, flushes the views and returns. A long-running task that fails
/// ends it early, with [`StartError::Task`], after the same flush.
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let failpoints = Failpoints::parse(&config.failpoints)?;
    config.grpc.check().map_err(StartError::Config)?;
    let partition = baton_log::Partition::new(config.partitions, config.partition)?;
    let fanout = fanout(&config)?;
    let catalog = Arc::new(baton_runtime::load_catalog(&config.catalog)?);
    let views = open_views(&config, &catalog).await?;

    // Any registered caller may query (operators too); appending is ingest's.
    let (tls, registry) =
        baton_runtime::serve::secure_ports(&config.tls, &config.grpc, &config.http, |d| {
            catalog.has_department(d)
        })?;
    let (client, js) = connect_nats(&config).await?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter, crate::QUERY_SERVICE);
    health.set(false).await;
    let shared = Arc::new(
        Shared::new(views, catalog, config.announce_horizon, partition)
            .with_max_recorded_skew(config.max_recorded_skew)
            .with_views_retention(config.views_retention)
            .with_health(health.clone())
            .with_failpoints(failpoints),
    );

    let mut tasks = Supervisor::new(
        shutdown.clone(),
        health.clone(),
        Arc::new(TaskMetrics(shared.clone())),
    );
    spawn_workers(&mut tasks, &config, &shared, &js, &client, &shutdown);
    let ports = shared.metrics.ports.clone();
    let side = side_port_routes(&config, &shared, &js, &client, &shutdown);
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

    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "projector serving queries");
    let query = QueryRouter::new(
        QueryService::new(shared.clone(), client.clone(), shutdown.clone()),
        fanout,
    );
    let routes = Routes::new(health_service).add_service(QueryServer::with_interceptor(
        query,
        baton_runtime::security::interceptor(registry),
    ));
    let port = GrpcPort {
        listener: grpc_listener,
        args: &config.grpc,
        tls,
        counters: ports.port("grpc"),
    };
    serve_until_shutdown(port, routes, tasks, &shared, &shutdown).await
}

/// NATS, and JetStream on it with a bound on how long a request may take.
async fn connect_nats(
    config: &Config,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), StartError> {
    let client =
        baton_log::connect_secured(&config.nats_url, "baton-projector", &config.nats).await?;
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(10));
    Ok((client, js))
}

/// Serves queries until `shutdown` fires or a supervised task fails, waits
/// for the tasks to end, and flushes the views whichever came first.
async fn serve_until_shutdown(
    port: GrpcPort<'_>,
    routes: Routes,
    tasks: Supervisor,
    shared: &Arc<Shared>,
    shutdown: &CancellationToken,
) -> Result<(), StartError> {
    let served = baton_runtime::serve::serve_grpc(port, routes, shutdown);
    let (served, supervised) = tokio::join!(served, tasks.wait());
    flush_views(shared).await;
    served?;
    supervised?;
    tracing::info!(
        applied = shared.applied(),
        dead_lettered = shared.dead_lettered(),
        "projector stopped"
    );
    Ok(())
}

/// Starts the projector's long-running work under `tasks`: the consumer
/// (stream to views), the timer (passing deadlines), the announcer (outbox
/// to NATS), health, the watchdog (stalls) and the storage watch.
fn spawn_workers(
    tasks: &mut Supervisor,
    config: &Config,
    shared: &Arc<Shared>,
    js: &async_nats::jetstream::Context,
    client: &async_nats::Client,
    shutdown: &CancellationToken,
) {
    let settings = StreamSettings {
        replicas: config.stream_replicas,
        ..StreamSettings::default()
    };
    let batching = crate::pipeline::Batching {
        size: config.batch_size.max(1),
        linger: Duration::from_millis(config.linger_ms),
    };
    tasks.spawn(
        "consumer",
        crate::pipeline::run(
            shared.clone(),
            js.clone(),
            config.consumer.clone(),
            batching,
            settings,
            shutdown.clone(),
        ),
    );
    tasks.spawn("timer", timer::run(shared.clone(), shutdown.clone()));
    tasks.spawn(
        "announcer",
        announcer::run(shared.clone(), js.clone(), shutdown.clone()),
    );
    tasks.spawn(
        "health",
        report_health(
            shared.clone(),
            client.clone(),
            config.nats_url.clone(),
            shutdown.clone(),
        ),
    );
    tasks.spawn(
        "watchdog",
        crate::watchdog::run(
            shared.clone(),
            js.clone(),
            config.stall_after,
            shutdown.clone(),
        ),
    );
    tasks.spawn("storage", shared.clone().watch_storage(shutdown.clone()));
}

/// What the side port serves beside health: the board and the metrics.
fn side_port_routes(
    config: &Config,
    shared: &Arc<Shared>,
    js: &async_nats::jetstream::Context,
    client: &async_nats::Client,
    shutdown: &CancellationToken,
) -> axum::Router {
    crate::board::router(crate::board::BoardState {
        shared: shared.clone(),
        client: client.clone(),
        shutdown: shutdown.clone(),
        config: config.board.clone(),
    })
    .merge(crate::metrics::router(
        shared.clone(),
        js.clone(),
        client.clone(),
    ))
}

/// Writes the views to disk before the process ends, off the async threads.
async fn flush_views(shared: &Arc<Shared>) {
    let views = shared.clone();
    match tokio::task::spawn_blocking(move || views.views.flush()).await {
        Ok(Ok(_)) => tracing::info!(position = ?shared.views.position().ok(), "views flushed"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "flushing the views failed; they will be rebuilt if damaged")
        }
        Err(e) => tracing::error!(error = %e, "flushing the views failed"),
    }
}

/// The fan-out to the partitions' projectors, when `--query-partitions` names them.
fn fanout(config: &Config) -> Result<Option<crate::fanout::Fanout>, StartError> {
    if config.query_partitions.is_empty() {
        return Ok(None);
    }
    if config.tls.tls_cert.is_some() && config.query_tls.query_partitions_ca.is_none() {
        // Partitions configured alike serve TLS too: plain gRPC would fail
        // at every query, so say so at start.
        return Err(StartError::Config(
            "--query-partitions with --tls-cert: give --query-partitions-ca (and --query-partitions-cert/--query-partitions-key when the partitions require client certificates)".into(),
        ));
    }
    Ok(Some(crate::fanout::Fanout::new(
        &config.query_partitions,
        Duration::from_secs(10),
        &config.query_tls,
    )?))
}

/// Opens (or discards and re-creates) the views in the data dir, off the
/// async threads, and says which it found.
async fn open_views(config: &Config, catalog: &Catalog) -> Result<Views, StartError> {
    let views_error = |source| StartError::Views {
        dir: config.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        views_error(ViewsError::Reset {
            path: config.data_dir.display().to_string(),
            source: Arc::new(e),
        })
    })?;
    let dir = config.data_dir.clone();
    let version = crate::config::views_identity(catalog, config.views_retention);
    let cache_bytes = config.views_cache_mb.saturating_mul(1024 * 1024);
    let (views, opened) =
        tokio::task::spawn_blocking(move || Views::open_with_cache(&dir, &version, cache_bytes))
            .await
            .map_err(crate::task_gone("views open"))?
            .map_err(views_error)?;
    match &opened {
        Opened::Empty => tracing::info!(
            catalog = catalog.version(),
            "views empty: building them from the stream"
        ),
        Opened::Resumed(position) => {
            tracing::info!(catalog = catalog.version(), position, "views resumed")
        }
        Opened::Discarded(reason) => {
            tracing::warn!(%reason, catalog = catalog.version(), "views discarded: rebuilding them from the stream")
        }
    }
    Ok(views)
}

/// Keeps health in line with what the projector can do: SERVING once the
/// views are current (a rebuild finished) and while NATS is connected.
/// While NATS at `nats_url` is not connected, health, `/readyz` and the
/// queries refused meanwhile say why ([`crate::NATS_FAULT`]), and the log says so
/// whenever the reason changes.
async fn report_health(
    shared: Arc<Shared>,
    client: async_nats::Client,
    nats_url: String,
    shutdown: CancellationToken,
) -> Result<(), TaskError> {
    let mut was: Option<(bool, bool)> = None;
    let mut unreachable: Option<String> = None;
    loop {
        shared.failpoints.hit("health").await?;
        let now = (shared.is_current(), baton_log::is_connected(&client));
        let why = match now.1 {
            true => None,
            false => Some(baton_log::why_unreachable(&nats_url).await),
        };
        if why != unreachable {
            match &why {
                Some(reason) => {
                    tracing::warn!(%reason, "nats not connected");
                    shared.health.fault(crate::NATS_FAULT, reason.clone()).await;
                }
                None => {
                    tracing::info!(url = %nats_url, "nats connected");
                    shared.health.clear(crate::NATS_FAULT).await;
                }
            }
            unreachable = why;
        }
        if was != Some(now) {
            let (current, connected) = now;
            match was {
                Some((false, _)) if current => tracing::info!("views current: serving queries"),
                Some((_, true)) if !connected => tracing::warn!(
                    "nats disconnected: views are served as of the last event applied"
                ),
                _ => {}
            }
            shared.health.set(current && connected).await;
            was = Some(now);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = shared.wait_current(), if !now.0 => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

/// The supervisor's task counter: the shared metrics.
struct TaskMetrics(Arc<Shared>);

impl TaskCounter for TaskMetrics {
    fn started(&self, task: &'static str) {
        self.0.metrics.started(task);
    }

    fn failed(&self, task: &'static str) {
        self.0.metrics.failed(task);
    }
}

impl baton_runtime::serve::Service for Config {
    const NAME: &'static str = "baton-projector";
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
