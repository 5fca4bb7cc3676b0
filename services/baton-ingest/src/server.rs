//! Wiring: NATS, the streams, and the gRPC server with health and reflection.

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
}

/// Runs the ingest service on the given listeners until `shutdown` fires,
/// then stops taking requests and finishes the ones in flight. Fails if the
/// NATS server, once reached, is older than Baton needs
/// ([`baton_log::version`]): nothing is read or appended before that check.
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    let catalog = Arc::new(baton_runtime::load_catalog(&config.catalog)?);
    tracing::info!(catalog = %config.catalog.display(), version = catalog.version(), promises = catalog.promises.len(), "catalog loaded");

    let tls = config.tls.server_tls()?;
    let registry = config.tls.registry(|d| catalog.has_department(d))?;
    if tls.is_none() {
        tracing::warn!("gRPC is plaintext and callers anonymous (dev mode): production sets --tls-cert, --tls-key, --client-ca and --callers");
    }

    let client = baton_log::connect_secured(&config.nats_url, "baton-ingest", &config.nats).await?;
    let log = EventLog::new(client.clone(), config.publish_timeout);
    let limits = Limits {
        max_future_skew: config.max_future_skew,
        ..Limits::default()
    };
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let ingestor = Arc::new(
        Ingestor::new(log.clone(), catalog, limits, config.cache_capacity)
            .counting_conflicts(metrics.conflicts()),
    );

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

    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(baton_runtime::serve_http(
        http_listener,
        readiness,
        crate::metrics::router(metrics.clone(), client.clone()),
        async move { http_shutdown.cancelled().await },
    ));

    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "ingest serving");
    let grpc_shutdown = shutdown.clone();
    let mut builder = tonic::transport::Server::builder();
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
        .serve_with_incoming_shutdown(baton_runtime::grpc::incoming(grpc_listener), async move {
            grpc_shutdown.cancelled().await
        })
        .await?;

    shutdown.cancel();
    let watched = watch.await;
    if let Ok(result) = http.await {
        result?;
    }
    if let Ok(Err(refused)) = watched {
        return Err(refused.into());
    }
    // Appends are acknowledged before we answer, so nothing is buffered;
    // flushing only delivers anything the client still holds.
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    tracing::info!("ingest stopped");
    Ok(())
}

/// Checks the server's version once NATS is reachable (stopping the
/// service if it is too old), creates the streams, then keeps the health
/// status in line with the NATS connection.
async fn watch_readiness(
    log: EventLog,
    settings: StreamSettings,
    health: tonic_health::server::HealthReporter,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), LogError> {
    let checked = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        checked = log.check_server() => checked,
    };
    match checked {
        Ok(version) => tracing::info!(%version, "nats-server version supported"),
        Err(refused) => {
            tracing::error!(error = %refused, "refusing to run against this nats-server");
            shutdown.cancel();
            return Err(refused);
        }
    }
    let ensured = baton_runtime::retry_until("creating the streams", &shutdown, || {
        baton_log::streams::ensure(log.jetstream(), &settings)
    })
    .await;
    if ensured.is_none() {
        return Ok(());
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
    Ok(())
}
