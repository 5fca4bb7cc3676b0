//! Wiring: the routes and their channels, NATS, the delivery loop and the
//! HTTP side port (health, metrics), under one supervisor.

use std::sync::Arc;

use baton_runtime::{
    serve::HttpPort,
    supervise::{Supervisor, TaskFailed},
    Health,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    deliver::Deliverer,
    metrics::Metrics,
    retry::Backoff,
    table::{InForce, Table, TableError},
};

/// Why notify could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Routes(#[from] TableError),
    #[error("listening for SIGHUP: {0}")]
    Signal(std::io::Error),
    #[error(transparent)]
    Log(#[from] baton_log::LogError),
    #[error(transparent)]
    Security(#[from] baton_runtime::security::SecurityError),
    #[error(transparent)]
    Ack(#[from] crate::ack::AckSetupError),
    /// A long-running task failed.
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// The acknowledgement links, when `--ack-key` is set.
fn acks(config: &Config) -> Result<Option<Arc<crate::ack::Acks>>, StartError> {
    let Some(key) = &config.ack_key else {
        return Ok(None);
    };
    let signer = crate::ack::Signer::from_file(key)?;
    let base_url = config
        .ack_url
        .clone()
        .ok_or(crate::ack::AckSetupError::NoUrl)?;
    let tls = match &config.ingest_ca {
        Some(ca) => Some(
            baton_client::grpc::Tls::from_files(
                ca,
                config
                    .ingest_cert
                    .as_deref()
                    .zip(config.ingest_key.as_deref()),
            )
            .map_err(crate::ack::AckSetupError::from)?,
        ),
        None => None,
    };
    let ingest = baton_client::grpc::ingest_lazy(&config.ingest_url, tls.as_ref())
        .map_err(crate::ack::AckSetupError::from)?;
    Ok(Some(Arc::new(crate::ack::Acks {
        signer,
        base_url,
        lifetime: config.ack_link_lifetime,
        ingest,
    })))
}

/// What health notify reports.
pub const NOTIFY_SERVICE: &str = "baton.notify.Deliver";

/// What the delivery loops share.
fn deliverer(
    config: &Config,
    client: &async_nats::Client,
    table: &InForce,
    metrics: &Arc<Metrics>,
) -> Deliverer {
    Deliverer {
        js: async_nats::jetstream::new(client.clone()),
        table: table.clone(),
        backoff: Backoff {
            attempts: config.attempts,
            base: config.backoff,
            max: config.backoff_max,
        },
        board: config.board_url.clone(),
        metrics: metrics.clone(),
        groups: Default::default(),
        acks: None,
        attempt_slots: Arc::new(tokio::sync::Semaphore::new(
            crate::deliver::MAX_ATTEMPTS_AT_ONCE,
        )),
    }
}

/// Runs notify until `shutdown`; a delivery in flight is abandoned at
/// shutdown and, unacknowledged, delivered again after the restart.
pub async fn run(
    config: Config,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let table = Table::load(&config.routes)?;
    tracing::info!(
        routes = table.routes.routes.len(),
        channels = table.channels.len(),
        "routes loaded"
    );
    // Registered before anything can send it: SIGHUP's default ends the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(StartError::Signal)?;
    let client = baton_log::connect_secured(&config.nats_url, "baton-notify", &config.nats).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.zero(&table.routes);
    let table = InForce::new(table);
    let (reporter, _health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter, NOTIFY_SERVICE);
    health.set(true).await;
    let mut tasks = Supervisor::new(
        shutdown.clone(),
        health.clone(),
        Arc::new(metrics.task_failures.clone()),
    );
    let registry = config.tls.registry(|_| true)?;
    let http_port = HttpPort {
        listener: http_listener,
        args: &config.http,
        tls: &config.tls,
        registry,
        counters: metrics.ports.port("http"),
    };
    let acks = acks(&config)?;
    let routes = match &acks {
        Some(acks) => {
            crate::metrics::router(metrics.clone()).merge(crate::ack::router(acks.clone()))
        }
        None => crate::metrics::router(metrics.clone()),
    };
    baton_runtime::serve::spawn_side_port(
        &mut tasks,
        http_port,
        health.readiness(),
        routes,
        &shutdown,
    )?;
    let mut deliverer = deliverer(&config, &client, &table, &metrics);
    deliverer.acks = acks;
    tasks.spawn(
        "reload",
        crate::table::reload_on_change(
            config.routes.clone(),
            table,
            metrics.clone(),
            hangups,
            config.routes_check,
            shutdown.clone(),
        ),
    );
    tasks.spawn("redrive", deliverer.clone().redrive(shutdown.clone()));
    tasks.spawn(
        "deliver-disruptions",
        deliverer
            .clone()
            .run(crate::deliver::DISRUPTIONS, shutdown.clone()),
    );
    tasks.spawn(
        "deliver",
        deliverer.run(crate::deliver::SLA, shutdown.clone()),
    );
    tasks.wait().await?;
    tracing::info!("notify stopped");
    Ok(())
}
