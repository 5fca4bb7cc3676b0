//! Wiring: views, NATS, the consumer, timer and announcer tasks, the gRPC
//! server with health and reflection, and the HTTP side port (board,
//! metrics), both bounded ([`baton_runtime::ports`]).

use std::{sync::Arc, time::Duration};

use baton_log::{LogError, StreamSettings};
use baton_proto::v1::query_server::QueryServer;
use baton_runtime::CatalogLoadError;
use baton_views::{Opened, Views, ViewsError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    announcer, config::Config, consumer, query::QueryService, route::QueryRouter, timer, Shared,
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("catalog {0}")]
    Catalog(#[from] CatalogLoadError),
    #[error("views in {dir}: {source}")]
    Views { dir: String, source: ViewsError },
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
    #[error(transparent)]
    Fanout(#[from] crate::fanout::FanoutError),
}

/// Runs the projector until `shutdown` fires, then finishes the batch in
/// hand, flushes the views and returns.
pub async fn run(
    config: Config,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    config.grpc.check().map_err(StartError::Config)?;
    let partition = baton_log::Partition::new(config.partitions, config.partition)
        .map_err(|e| StartError::Config(format!("--partition: {e}")))?;
    let fanout = if config.query_partitions.is_empty() {
        None
    } else if config.tls.tls_cert.is_some() && config.query_tls.query_partitions_ca.is_none() {
        // Partitions configured alike serve TLS too: plain gRPC would fail
        // at every query, so say so at start.
        return Err(StartError::Config(
            "--query-partitions with --tls-cert: give --query-partitions-ca (and --query-partitions-cert/--query-partitions-key when the partitions require client certificates)".into(),
        ));
    } else {
        Some(crate::fanout::Fanout::new(
            &config.query_partitions,
            Duration::from_secs(10),
            &config.query_tls,
        )?)
    };
    let catalog = Arc::new(baton_runtime::load_catalog(&config.catalog)?);
    let views_error = |source| StartError::Views {
        dir: config.data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        views_error(ViewsError::Reset {
            path: config.data_dir.display().to_string(),
            source: e,
        })
    })?;
    let (views, opened) = {
        let dir = config.data_dir.clone();
        let version = catalog.version().to_owned();
        let cache_bytes = config.views_cache_mb.saturating_mul(1024 * 1024);
        tokio::task::spawn_blocking(move || Views::open_with_cache(&dir, &version, cache_bytes))
            .await
            .map_err(|e| {
                views_error(ViewsError::Corrupt {
                    key: "(open)".into(),
                    reason: e.to_string(),
                })
            })?
            .map_err(views_error)?
    };
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

    // Any registered caller may query (operators too); appending is ingest's.
    let tls = config.tls.server_tls()?.map(|tls| config.grpc.tls(tls));
    let registry = config.tls.registry(|d| catalog.has_department(d))?;
    if tls.is_none() {
        tracing::warn!("gRPC is plaintext and callers anonymous (dev mode): production sets --tls-cert, --tls-key, --client-ca and --callers");
    }
    baton_runtime::ports::check_open_files(
        config.grpc.grpc_max_connections,
        config.http.http_max_connections,
    );
    let client =
        baton_log::connect_secured(&config.nats_url, "baton-projector", &config.nats).await?;
    let mut js = async_nats::jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(10));
    let shared = Arc::new(
        Shared::new(views, catalog, config.announce_horizon, partition)
            .with_max_recorded_skew(config.max_recorded_skew),
    );

    let settings = StreamSettings {
        replicas: config.stream_replicas,
        ..StreamSettings::default()
    };
    let tasks = vec![
        tokio::spawn(consumer::run(
            shared.clone(),
            js.clone(),
            config.consumer.clone(),
            crate::receiver::Batching {
                size: config.batch_size.max(1),
                linger: std::time::Duration::from_millis(config.linger_ms),
            },
            settings,
            shutdown.clone(),
        )),
        tokio::spawn(timer::run(shared.clone(), shutdown.clone())),
        tokio::spawn(announcer::run(shared.clone(), js.clone(), shutdown.clone())),
    ];

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_not_serving::<QueryServer<QueryRouter>>().await;
    let readiness = shared.readiness.clone();
    let watch = {
        let (client, health, readiness, shutdown) = (
            client.clone(),
            health.clone(),
            readiness.clone(),
            shutdown.clone(),
        );
        let shared = shared.clone();
        tokio::spawn(async move {
            // Serving once the views are current (a rebuild finished)...
            let current = {
                let (shared, client, health, readiness) = (
                    shared.clone(),
                    client.clone(),
                    health.clone(),
                    readiness.clone(),
                );
                async move {
                    shared.wait_current().await;
                    tracing::info!("views current: serving queries");
                    if baton_log::is_connected(&client) {
                        health.set_serving::<QueryServer<QueryRouter>>().await;
                        readiness.set(true);
                    }
                }
            };
            let current = tokio::spawn(current);
            // ...and while connected to NATS.
            baton_log::watch_connection(client, shutdown.cancelled(), |connected, first| {
                let (health, readiness, shared) =
                    (health.clone(), readiness.clone(), shared.clone());
                async move {
                    let connected_and_current = connected && shared.is_current();
                    if connected_and_current {
                        health.set_serving::<QueryServer<QueryRouter>>().await;
                    } else {
                        health.set_not_serving::<QueryServer<QueryRouter>>().await;
                    }
                    if !connected && !first {
                        tracing::warn!(
                            "nats disconnected: views are served as of the last event applied"
                        );
                    }
                    readiness.set(connected_and_current);
                }
            })
            .await;
            current.abort();
        })
    };

    let reflection =
        baton_runtime::grpc::reflection().map_err(|e| StartError::Reflection(e.to_string()))?;

    let ports = shared.metrics.ports.clone();
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
        )),
        async move { http_shutdown.cancelled().await },
    ));

    tracing::info!(addr = ?grpc_listener.local_addr().ok(), "projector serving queries");
    let grpc_shutdown = shutdown.clone();
    let mut builder = config.grpc.builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let served = builder
        .layer(baton_runtime::grpc::DecodeErrorStatusLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(QueryServer::with_interceptor(
            QueryRouter::new(
                QueryService::new(shared.clone(), client.clone(), shutdown.clone()),
                fanout,
            ),
            baton_runtime::security::interceptor(registry),
        ))
        .serve_with_incoming_shutdown(
            baton_runtime::grpc::incoming(grpc_listener, &config.grpc, ports.port("grpc")),
            async move { grpc_shutdown.cancelled().await },
        )
        .await;

    shutdown.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let _ = watch.await;
    if let Err(e) = shared.views.flush() {
        tracing::error!(error = %e, "flushing the views failed; they will be rebuilt if damaged");
    }
    if let Ok(result) = http.await {
        result?;
    }
    served?;
    tracing::info!(
        applied = shared.applied(),
        dead_lettered = shared.dead_lettered(),
        "projector stopped"
    );
    Ok(())
}
