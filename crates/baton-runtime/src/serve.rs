//! How every Baton service starts and serves: [`main`] (the binary's whole
//! life: flags, logging, both listeners, signals, the service's `run`) and
//! [`serve_grpc`] (the gRPC port: the service's own routes beside health and
//! reflection, decode errors answered as the client's fault, TLS, the
//! bounded accept loop, a bounded wait for open calls at shutdown). Each
//! service says only what is its own; it must never build a tonic server of
//! its own.

use std::{future::Future, net::SocketAddr};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{service::Routes, transport::ServerTlsConfig};

use crate::{
    grpc::{self, DecodeErrorStatusLayer, GrpcArgs},
    http::HttpArgs,
    ports::PortCounters,
    security::{SecurityError, TlsArgs},
};

/// A Baton service as its binary runs it: parsed from flags, bound to its
/// ports (its own, if it has one, and the HTTP side port), run until a
/// signal.
pub trait Service: clap::Parser + Send + 'static {
    /// The binary's name, for its last words.
    const NAME: &'static str;
    /// Why `run` failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The service's own port (`--listen`): gRPC for ingest and the
    /// projector, MLLP for the gateway; `None` for a service that has only
    /// its side port (notify).
    fn listen_address(&self) -> Option<SocketAddr>;
    /// The HTTP side port's address (`--http-listen`).
    fn http_address(&self) -> SocketAddr;
    /// Where spans are exported (`--otlp-endpoint`); `None`: tracing off.
    fn otlp_endpoint(&self) -> Option<&str> {
        None
    }
    /// Serves on the listeners until `shutdown` fires; `listener` is bound
    /// to [`Service::listen_address`] when that is `Some`.
    fn run(
        self,
        listener: Option<TcpListener>,
        http: TcpListener,
        shutdown: CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why a service binary stopped other than at a signal.
#[derive(Debug, thiserror::Error)]
pub enum MainError<E: std::error::Error + 'static> {
    #[error("starting the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Telemetry(#[from] crate::otel::OtelError),
    #[error("{name} failed: {source}")]
    Failed {
        name: &'static str,
        #[source]
        source: E,
    },
}

/// The whole life of a service binary: its flags (`--help` exits here),
/// logging, a multi-threaded runtime, its listeners, SIGTERM/SIGINT, and
/// the service's `run`. `started` runs once logging is set up (the binary's
/// own first log lines).
pub fn main<S: Service>(started: impl FnOnce()) -> Result<(), MainError<S::Error>> {
    let config = S::parse();
    crate::init_tracing();
    started();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(MainError::Runtime)?;
    // Built on the runtime (the exporter's channel lives there); only when
    // --otlp-endpoint is set: otherwise nothing is installed.
    let telemetry = match config.otlp_endpoint() {
        Some(endpoint) => {
            let _entered = runtime.enter();
            let telemetry = crate::otel::Telemetry::install(
                endpoint,
                S::NAME,
                std::time::Duration::from_secs(5),
            )?;
            tracing::info!(endpoint, "exporting traces over OTLP");
            Some(telemetry)
        }
        None => None,
    };
    let result = runtime.block_on(async move {
        let listener = match config.listen_address() {
            Some(address) => Some(bind(address).await?),
            None => None,
        };
        let http = bind(config.http_address()).await?;
        let shutdown = crate::shutdown_on_signals();
        config
            .run(listener, http, shutdown)
            .await
            .map_err(|source| MainError::Failed {
                name: S::NAME,
                source,
            })
    });
    // The runtime still runs the exporter's channel while the last spans go.
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    result
}

/// The exit code of a service binary that ran [`main`]: 0 after a clean
/// stop; after a failure 1, with the failure on standard error as one line
/// (each error's message already names its cause, so no chain is added, and
/// no backtrace whatever `RUST_BACKTRACE` says).
pub fn exit_code<E: std::error::Error + 'static>(
    result: Result<(), MainError<E>>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bind<E: std::error::Error + 'static>(
    address: SocketAddr,
) -> Result<TcpListener, MainError<E>> {
    crate::bind(address)
        .await
        .map_err(|source| MainError::Bind { address, source })
}

/// How a service's ports are secured: gRPC's server TLS (bounded by the
/// handshake deadline) and the caller registry, from the service's flags;
/// says so when both are off (dev mode), and when the open-file limit is
/// below what both connection caps need.
pub fn secure_ports(
    tls: &TlsArgs,
    grpc: &GrpcArgs,
    http: &HttpArgs,
    is_department: impl Fn(&baton_domain::Token) -> bool,
) -> Result<
    (
        Option<ServerTlsConfig>,
        Option<std::sync::Arc<baton_domain::access::Registry>>,
    ),
    SecurityError,
> {
    let server_tls = tls.server_tls()?.map(|server_tls| grpc.tls(server_tls));
    let registry = tls.registry(is_department)?;
    if server_tls.is_none() {
        tracing::warn!("gRPC is plaintext and callers anonymous (dev mode): production sets --tls-cert, --tls-key, --client-ca and --callers");
    }
    crate::ports::check_open_files(grpc.grpc_max_connections, http.http_max_connections);
    Ok((server_tls, registry))
}

/// The HTTP side port of a service: where it listens, its bounds, its TLS
/// and who may use it.
#[derive(Debug)]
pub struct HttpPort<'a> {
    pub listener: TcpListener,
    pub args: &'a HttpArgs,
    pub tls: &'a TlsArgs,
    pub registry: Option<std::sync::Arc<baton_domain::access::Registry>>,
    pub counters: PortCounters,
}

/// Starts the side port under `tasks` as the task `http`: health,
/// readiness and `routes` (the service's own: metrics, the board), until
/// `shutdown`.
pub fn spawn_side_port(
    tasks: &mut crate::supervise::Supervisor,
    port: HttpPort<'_>,
    readiness: crate::Readiness,
    routes: axum::Router,
    shutdown: &CancellationToken,
) -> Result<(), SecurityError> {
    let side_port = port
        .args
        .side_port(port.listener, port.tls, port.registry, port.counters)?;
    let stopping = shutdown.clone();
    tasks.spawn(
        "http",
        crate::serve_http(side_port, readiness, routes, async move {
            stopping.cancelled().await
        }),
    );
    Ok(())
}

/// Why the gRPC port stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// The gRPC port of a service: where it listens, its bounds, its TLS.
#[derive(Debug)]
pub struct GrpcPort<'a> {
    pub listener: TcpListener,
    pub args: &'a GrpcArgs,
    /// Server TLS (already bounded by [`GrpcArgs::tls`]); `None`: plaintext.
    pub tls: Option<ServerTlsConfig>,
    pub counters: PortCounters,
}

/// Serves `routes` (the service's own gRPC services and the health service)
/// with server reflection on `port` until `shutdown` fires, then waits at
/// most [`grpc::SHUTDOWN_GRACE`] for open calls. However the server ends,
/// `shutdown` is cancelled on return, so the service's tasks stop too.
pub async fn serve_grpc(
    port: GrpcPort<'_>,
    routes: Routes,
    shutdown: &CancellationToken,
) -> Result<(), ServeError> {
    let served = serve_routes(port, routes, shutdown).await;
    shutdown.cancel();
    served
}

async fn serve_routes(
    port: GrpcPort<'_>,
    routes: Routes,
    shutdown: &CancellationToken,
) -> Result<(), ServeError> {
    let routes = routes.add_service(grpc::reflection()?);
    let mut builder = port.args.builder();
    if let Some(tls) = port.tls {
        builder = builder.tls_config(tls)?;
    }
    let stopping = shutdown.clone();
    let serving = builder
        .layer(DecodeErrorStatusLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(
            grpc::incoming(port.listener, port.args, port.counters),
            async move { stopping.cancelled().await },
        );
    Ok(grpc::serve_until(serving, shutdown).await?)
}
