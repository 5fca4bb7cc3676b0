//! Wiring: NATS, the streams, the gRPC server with health and reflection,
//! and the HTTP side port (health, metrics), both bounded
//! ([`baton_runtime::ports`]).

use std::{sync::Arc, time::Duration};

use baton_domain::event::Limits;
use baton_log::{EventLog, LogError, StreamSettings};
use baton_proto::v1::ingest_server::IngestServer;
use baton_runtime::{CatalogLoadError, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{config::Config, grpc::IngestService, ingestor::Ingestor};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("catalog {0}")]
    Catalog(#[from] CatalogLoadError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("grpc reflection: {0}")]
    Reflection(String),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Security(#[from] baton_runtime::security::SecurityError),
    #[error("http side port: {0}")]
    Http(#[from] std::io::Error),
    #[error("{0}")]
    Config(String),
}

/// Runs the ingest service on the given listeners until `shutdown` fires,
/// then stops taking requests and finishes the ones in flight.
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    config.grpc.check().map_err(StartError::Config)?;
    let catalog = Arc::new(baton_runtime::load_catalog(&config.catalog)?);
    tracing::info!(catalog = %config.catalog.display(), version = catalog.version(), promises = catalog.promises.len(), "catalog loaded");

    let tls = config.tls.server_tls()?.map(|tls| config.grpc.tls(tls));
    let registry = config.tls.registry(|d| catalog.has_department(d))?;
    if tls.is_none() {
        tracing::warn!("gRPC is plaintext and callers anonymous (dev mode): production sets --tls-cert, --tls-key, --client-ca and --callers");
    }
    baton_runtime::ports::check_open_files(
        config.grpc.grpc_max_connections,
        config.http.http_max_connections,
    );

    let client = baton_log::connect_secured(&config.nats_url, "baton-ingest", &config.nats).await?;
    let log = EventLog::new(client.clone(), config.publish_timeout);
    let limits = Limits {
        max_future_skew: config.max_future_skew,
        ..Limits::default()
    };
    let ingestor = Arc::new(Ingestor::new(
        log.clone(),
        catalog,
        limits,
        config.cache_capacity,
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<IngestServer<IngestService>>()
        .await;
    let readiness = Readiness::default();

    let settings = StreamSettings {
        replicas: config.stream_replicas,
        ..StreamSettings::default()
    };
    let watch = tokio::spawn(watch_readiness(
        log.clone(),
        settings,
        health,
        readiness.clone(),
        shutdown.clone(),
    ));

    let reflection =
        baton_runtime::grpc::reflection().map_err(|e| StartError::Reflection(e.to_string()))?;

    let metrics = Arc::new(crate::metrics::Metrics::new());
    let ports = metrics.ports.clone();
    let side_port = config.http.side_port(
        http_listener,
        &config.tls,
        registry.clone(),
        ports.port("http"),
    )?;
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(baton_runtime::serve_http(
        side_port,
        readiness,
        crate::metrics::router(metrics.clone(), client.clone()),
        async move { http_shutdown.cancelled().await },
    ));

    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "ingest serving");
    let grpc_shutdown = shutdown.clone();
    let mut builder = config.grpc.builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let service =
        IngestService::with_max_in_flight(ingestor, config.max_in_flight).with_metrics(metrics);
    builder
        .layer(baton_runtime::grpc::DecodeErrorStatusLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(IngestServer::with_interceptor(
            service,
            baton_runtime::security::interceptor(registry),
        ))
        .serve_with_incoming_shutdown(
            baton_runtime::grpc::incoming(grpc_listener, &config.grpc, ports.port("grpc")),
            async move { grpc_shutdown.cancelled().await },
        )
        .await?;

    shutdown.cancel();
    let _ = watch.await;
    if let Ok(result) = http.await {
        result?;
    }
    // Appends are acknowledged before we answer, so nothing is buffered;
    // flushing only delivers anything the client still holds.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    tracing::info!("ingest stopped");
    Ok(())
}

/// Creates the streams once NATS is reachable, then keeps the health status
/// in line with the NATS connection.
async fn watch_readiness(
    log: EventLog,
    settings: StreamSettings,
    health: tonic_health::server::HealthReporter,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let ensured = baton_runtime::retry_until("creating the streams", &shutdown, || {
        baton_log::streams::ensure(log.jetstream(), &settings)
    })
    .await;
    if ensured.is_none() {
        return;
    }
    let client = log.client().clone();
    baton_log::watch_connection(client, shutdown.cancelled(), |connected, first| {
        let health = health.clone();
        let readiness = readiness.clone();
        async move {
            if connected {
                health.set_serving::<IngestServer<IngestService>>().await;
                tracing::info!("nats connected, ingest ready");
            } else {
                health
                    .set_not_serving::<IngestServer<IngestService>>()
                    .await;
                if !first {
                    tracing::warn!("nats disconnected, appends answer UNAVAILABLE");
                }
            }
            readiness.set(connected);
        }
    })
    .await;
}
