//! Wiring: the mapping, the ingest client, the MLLP port (bounded: a cap
//! on connections, a largest message, an idle deadline) and the HTTP side
//! port (health, metrics), under one supervisor.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use baton_runtime::{
    ports::ConnectionCap,
    serve::HttpPort,
    supervise::{Supervisor, TaskFailed},
    Health,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

use crate::{
    ack,
    config::Config,
    handle::Handler,
    mapping::{Mapping, MappingError},
    metrics::Metrics,
    mllp::{self, Deframer},
    translate::Ids,
};

/// Why the gateway could not start or stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("ingest: {0}")]
    Ingest(#[from] baton_client::ClientError),
    #[error(transparent)]
    Security(#[from] baton_runtime::security::SecurityError),
    #[error("--id-salt must not be empty: it keys the ids of hand-offs and events")]
    NoSalt,
    #[error(transparent)]
    FhirServer(#[from] crate::fhir_fetch::SourceError),
    #[error("MLLP port: {0}")]
    Io(#[from] std::io::Error),
    /// A long-running task failed.
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// What health the gateway reports (for its `/readyz`).
pub const GATEWAY_SERVICE: &str = "baton.gateway.Mllp";

/// Runs the gateway on the given listeners until `shutdown` fires, then
/// stops taking connections and lets each finish the message it is on.
pub async fn run(
    config: Config,
    listener: TcpListener,
    http_listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    if config.id_salt.is_empty() {
        return Err(StartError::NoSalt);
    }
    let mapping = Arc::new(Mapping::load(&config.mapping)?);
    tracing::info!(mapping = %config.mapping.display(), services = mapping.services.len(), locations = mapping.locations.len(), "mapping loaded");
    let (ingest, query) = clients(&config)?;
    let metrics = Arc::new(Metrics::new());
    let (reporter, _health_service) = tonic_health::server::health_reporter();
    let health = Health::new(reporter, GATEWAY_SERVICE);
    health.set(true).await;
    let mut tasks = Supervisor::new(
        shutdown.clone(),
        health.clone(),
        Arc::new(metrics.task_failures.clone()),
    );
    let (appender, send_batches) =
        crate::appender::Appender::new(ingest, config.append_timeout, metrics.clone());
    tasks.spawn("appender", send_batches);
    let handler = Handler {
        appender,
        mapping,
        ids: Ids::new(&config.id_salt),
        zone: config.time_zone.clone(),
        append_timeout: config.append_timeout,
        metrics: metrics.clone(),
        readiness: health.readiness(),
    };
    let fhir = crate::fhir_api::router(crate::fhir_api::FhirApi {
        handler: handler.clone(),
        query,
        seen: Default::default(),
        source: task_source(&config)?,
    });
    let registry = config.tls.registry(|_| true)?;
    baton_runtime::ports::check_open_files(
        config.max_connections,
        config.http.http_max_connections,
    );
    let http_port = HttpPort {
        listener: http_listener,
        args: &config.http,
        tls: &config.tls,
        registry,
        counters: metrics.ports.port("http"),
    };
    baton_runtime::serve::spawn_side_port(
        &mut tasks,
        http_port,
        health.readiness(),
        crate::metrics::router(metrics.clone()).merge(fhir),
        &shutdown,
    )?;
    let port = MllpPort {
        listener,
        tls: config.tls.http_tls()?,
        handler,
        max_connections: config.max_connections,
        max_message_bytes: config.max_message_bytes,
        idle_timeout: config.idle_timeout,
        counters: metrics.ports.port("grpc"),
    };
    tracing::info!(addr = ?port.listener.local_addr().ok(), "gateway taking HL7 over MLLP");
    tasks.spawn("mllp", serve_mllp(port, shutdown.clone()));
    tasks.wait().await?;
    tracing::info!("gateway stopped");
    Ok(())
}

/// Ingest's and the projector's clients, over (mutual) TLS when the
/// configuration names a CA; both connect on first use.
fn clients(
    config: &Config,
) -> Result<
    (
        baton_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>,
        baton_proto::v1::query_client::QueryClient<tonic::transport::Channel>,
    ),
    StartError,
> {
    let tls = match &config.ingest_ca {
        Some(ca) => Some(baton_client::grpc::Tls::from_files(
            ca,
            config
                .ingest_cert
                .as_deref()
                .zip(config.ingest_key.as_deref()),
        )?),
        None => None,
    };
    Ok((
        baton_client::grpc::ingest_lazy(&config.ingest_url, tls.as_ref())?,
        baton_client::grpc::query_lazy(&config.query_url, tls.as_ref())?,
    ))
}

/// Where id-only notifications' Tasks are fetched from, if anywhere.
fn task_source(config: &Config) -> Result<Option<crate::fhir_fetch::TaskSource>, StartError> {
    let Some(base) = &config.fhir_server else {
        return Ok(None);
    };
    Ok(Some(crate::fhir_fetch::TaskSource::new(
        base,
        config.fhir_server_ca.as_deref(),
        config.fhir_server_token.clone(),
        config.fhir_fetch_timeout,
    )?))
}

/// The MLLP port and what its connections need.
struct MllpPort {
    listener: TcpListener,
    /// With `--tls-cert`: MLLP inside TLS, as the side port's.
    tls: Option<tokio_rustls::TlsAcceptor>,
    handler: Handler,
    max_connections: usize,
    max_message_bytes: usize,
    idle_timeout: Duration,
    counters: baton_runtime::ports::PortCounters,
}

/// Accepts connections under the cap until `shutdown`, then waits for
/// each to finish the message it is answering.
async fn serve_mllp(port: MllpPort, shutdown: CancellationToken) -> Result<(), std::io::Error> {
    let cap = ConnectionCap::new(port.max_connections, port.counters.clone());
    let mut connections = JoinSet::new();
    loop {
        // Refused beyond the cap (counted), accept errors waited out, and
        // TCP_NODELAY: an ACK is one small write the sender waits for.
        let (stream, peer, slot) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = baton_runtime::ports::accept(&port.listener, &cap) => accepted,
        };
        while let Some(ended) = connections.try_join_next() {
            log_panic(ended);
        }
        let connection = Connection {
            handler: port.handler.clone(),
            max_message_bytes: port.max_message_bytes,
            idle_timeout: port.idle_timeout,
        };
        let stop = shutdown.clone();
        let tls = port.tls.clone();
        connections.spawn(async move {
            match tls {
                None => connection.serve(stream, peer, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection.serve(stream, peer, stop).await,
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "MLLP TLS handshake failed")
                        }
                        Err(_) => tracing::warn!(%peer, "MLLP TLS handshake took too long"),
                    }
                }
            }
            drop(slot);
        });
    }
    while let Some(ended) = connections.join_next().await {
        log_panic(ended);
    }
    Ok(())
}

/// A connection's task that panicked is a bug: say so (the other
/// connections and the port go on; its sender got no ACK and sends again).
fn log_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(e) = ended {
        if e.is_panic() {
            tracing::error!(error = %baton_runtime::supervise::panic_text(e), "an MLLP connection's task panicked");
        }
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// One sender's connection: its messages answered in the order they came.
struct Connection {
    handler: Handler,
    max_message_bytes: usize,
    idle_timeout: Duration,
}

impl Connection {
    async fn serve<S>(self, mut stream: S, peer: SocketAddr, shutdown: CancellationToken)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut deframer = Deframer::new(self.max_message_bytes);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            loop {
                let frame = match deframer.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        // Out of step with the sender: say why, and close.
                        tracing::warn!(%peer, error = %e, "MLLP connection closed");
                        self.handler.metrics.answered("unreadable", "AR");
                        let problem = ack::Problem {
                            field: "",
                            code: 100,
                            text: &e.to_string(),
                        };
                        let now = jiff::Timestamp::now().as_millisecond();
                        let nak = ack::ack(None, ack::Code::Reject, Some(problem), now);
                        let _ = stream.write_all(&mllp::frame(&nak)).await;
                        return;
                    }
                };
                match self.handler.answer(&frame).await {
                    Some(answer) => {
                        if stream.write_all(&mllp::frame(&answer)).await.is_err() {
                            return;
                        }
                    }
                    // Unanswered: closing tells the sender to send it again.
                    None => return,
                }
            }
            let read = tokio::select! {
                _ = shutdown.cancelled() => return,
                read = tokio::time::timeout(self.idle_timeout, stream.read(&mut buf)) => read,
            };
            match read {
                Ok(Ok(0)) => {
                    if deframer.is_mid_frame() {
                        tracing::warn!(
                            %peer,
                            "MLLP connection ended mid-message; nothing of it was stored"
                        );
                    }
                    return;
                }
                Ok(Ok(n)) => deframer.push(&buf[..n]),
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::info!(%peer, "MLLP connection idle too long; closed");
                    return;
                }
            }
        }
    }
}
