//! The HTTP side port, served by our own accept loop over hyper: health,
//! metrics and (on the projector) the board, bounded and, in production,
//! over TLS and authenticated.
//!
//! - A connection cap ([`crate::ports::ConnectionCap`]): past
//!   `--http-max-connections` a connection is closed as soon as accepted.
//! - `--http-header-timeout`: the TLS handshake, and each request's head
//!   (hyper's header-read timeout, which also closes a kept-alive connection
//!   left without a next request that long).
//! - `--http-idle-timeout`: nothing read or written for that long closes a
//!   connection (a stalled request body, a client gone silent).
//! - `--http-write-timeout`: a response write the client does not take for
//!   that long (it stopped reading: an `/events` stream nobody reads) closes
//!   the connection, freeing its slot and file descriptor.
//! - `--http-send-buffer`: each connection's kernel send buffer and the
//!   server's write buffer are bounded, so a client that stops reading
//!   holds little and its writes stall soon (the kernel would otherwise
//!   grow a send buffer to megabytes first).
//! - TLS with the gRPC port's certificate (`--tls-cert`), asking for a client
//!   certificate from `--client-ca` but not requiring one, so a screen
//!   without one can log in with its token ([`crate::web_auth`]).
//! - Graceful shutdown: no new connections; requests in flight finish
//!   (within [`SHUTDOWN_GRACE`]).
//!
//! HTTP/1.1 only. Nothing served here may write to Baton's data.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{routing::get, Router};
use baton_domain::access::Registry;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpListener,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    ports::{ConnectionCap, Deadlines, Expired, Guarded, PortCounters},
    security::{SecurityError, TlsArgs},
    web_auth::{Peer, SessionKey, WebAuth},
    Readiness,
};

/// Default of `--http-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default of `--http-send-buffer`: a board page is written in a few round
/// trips, and an `/events` stream nobody reads holds about 64 KiB + 128 KiB.
pub const DEFAULT_SEND_BUFFER: usize = 64 * 1024;
/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Bounds and authentication of the HTTP side port.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Most connections open at once on the HTTP side port; more are closed
    /// as soon as they are accepted (baton_connections_refused_total{port="http"}).
    /// A browser opens up to 6 per screen.
    #[arg(long, env = "BATON_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub http_max_connections: usize,

    /// A request's head must arrive within this (from the connection's
    /// start, or the end of the previous response on a kept-alive
    /// connection), and so must the TLS handshake.
    #[arg(long, env = "BATON_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::duration_flag)]
    pub http_header_timeout: Duration,

    /// A connection on which nothing is read or written for this long is
    /// closed. Keep it above 15s, the board's event-stream keep-alive.
    #[arg(long, env = "BATON_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = crate::duration_flag)]
    pub http_idle_timeout: Duration,

    /// A response the client does not take for this long (it stopped
    /// reading) closes the connection.
    #[arg(long, env = "BATON_HTTP_WRITE_TIMEOUT", default_value = "20s", value_parser = crate::duration_flag)]
    pub http_write_timeout: Duration,

    /// Bytes of response a side-port connection may have waiting, in the
    /// kernel (SO_SNDBUF, which Linux doubles) and again in the server's own
    /// write buffer: what a client that stops reading can hold before
    /// --http-write-timeout starts counting. Without it the kernel grows a
    /// send buffer to megabytes.
    #[arg(long, env = "BATON_HTTP_SEND_BUFFER", default_value_t = DEFAULT_SEND_BUFFER,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8192..=16 * 1024 * 1024))]
    pub http_send_buffer: usize,

    /// How long a screen's session lasts after it logs in with its token.
    #[arg(long, env = "BATON_HTTP_SESSION_LIFETIME", default_value = "12h", value_parser = crate::duration_flag)]
    pub http_session_lifetime: Duration,

    /// File holding the key that signs session cookies (at least 32 bytes:
    /// `head -c 32 /dev/urandom`). Without it a key is generated at start:
    /// screens must log in again after every restart, and a cookie from one
    /// projector is refused by another.
    #[arg(long, env = "BATON_HTTP_SESSION_KEY")]
    pub http_session_key: Option<PathBuf>,

    /// Failed logins allowed per client address per minute; more are
    /// answered 429 without looking at the token.
    #[arg(long, env = "BATON_HTTP_LOGIN_ATTEMPTS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub http_login_attempts: u32,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            http_max_connections: DEFAULT_MAX_CONNECTIONS,
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            http_write_timeout: Duration::from_secs(20),
            http_send_buffer: DEFAULT_SEND_BUFFER,
            http_session_lifetime: Duration::from_secs(12 * 3600),
            http_session_key: None,
            http_login_attempts: 10,
        }
    }
}

/// The side port, ready to serve: listener, bounds, TLS and authentication.
pub struct SidePort {
    listener: TcpListener,
    args: HttpArgs,
    tls: Option<TlsAcceptor>,
    auth: Option<Arc<WebAuth>>,
    counters: PortCounters,
}

impl HttpArgs {
    /// The side port on `listener`: TLS when `tls` has a certificate,
    /// authentication when there is a caller registry.
    pub fn side_port(
        &self,
        listener: TcpListener,
        tls: &TlsArgs,
        registry: Option<Arc<Registry>>,
        counters: PortCounters,
    ) -> Result<SidePort, SecurityError> {
        let acceptor = tls.http_tls()?;
        let auth = match registry {
            Some(registry) => {
                let key = match &self.http_session_key {
                    Some(path) => SessionKey::from_file(path)?,
                    None => {
                        tracing::warn!("no --http-session-key: session cookies are signed with a key generated now, so screens log in again after a restart and a cookie from one projector is refused by another");
                        SessionKey::generate()?
                    }
                };
                tracing::info!(
                    screens_and_scrapers = registry.holders().count(),
                    "HTTP side port: the board for screens and registered callers, /metrics for scrapers"
                );
                Some(Arc::new(WebAuth::new(
                    registry,
                    key,
                    self.http_session_lifetime,
                    self.http_login_attempts,
                    counters.clone(),
                )))
            }
            None => {
                tracing::warn!("the HTTP side port (board, /metrics) is open to anyone who can reach it (dev mode): production sets --tls-cert, --client-ca and --callers");
                None
            }
        };
        Ok(SidePort {
            listener,
            args: self.clone(),
            tls: acceptor,
            auth,
            counters,
        })
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            handshake: None,
            idle: Some(self.http_idle_timeout),
            idle_counts_writes: true,
            write: Some(self.http_write_timeout),
        }
    }
}

impl std::fmt::Debug for SidePort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidePort")
            .field("listener", &self.listener)
            .field("args", &self.args)
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth)
            .finish()
    }
}

impl SidePort {
    /// A plaintext, unauthenticated side port with default bounds (tests,
    /// tools).
    pub fn plain(listener: TcpListener) -> SidePort {
        SidePort {
            listener,
            args: HttpArgs::default(),
            tls: None,
            auth: None,
            counters: PortCounters::detached("http"),
        }
    }
}

/// Serves the HTTP side port: `/healthz` (alive) and `/readyz` (ready to
/// serve), plus any routes the service adds, until `shutdown`; then lets
/// requests in flight finish.
pub async fn serve_http(
    port: SidePort,
    readiness: Readiness,
    extra: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = side_port_router(&port, readiness, extra);
    let SidePort {
        listener,
        args,
        tls,
        counters,
        ..
    } = port;
    let cap = ConnectionCap::new(args.http_max_connections, counters.clone());
    let deadlines = args.deadlines();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(args.http_header_timeout)
        .max_buf_size(args.http_send_buffer)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote, slot) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = crate::ports::accept(&listener, &cap) => accepted,
        };
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(args.http_send_buffer)
        {
            tracing::debug!(error = %e, "side port: cannot bound the send buffer");
        }
        let io = Guarded::new(stream, slot, deadlines);
        let connection = Connection {
            router: router.clone(),
            http1: http1.clone(),
            watcher: graceful.watcher(),
            counters: counters.clone(),
        };
        match &tls {
            None => {
                let peer = Peer {
                    remote,
                    identities: Arc::new(Vec::new()),
                };
                tokio::spawn(connection.serve(io, peer));
            }
            Some(acceptor) => {
                let handshake = acceptor.clone().accept(io);
                let within = args.http_header_timeout;
                tokio::spawn(connection.serve_tls(handshake, within, remote));
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("side port: requests still in flight after {SHUTDOWN_GRACE:?}; closing them");
        }
    }
    Ok(())
}

/// The side port's routes: health and readiness, the service's own
/// (`extra`), and, with authentication on, the login routes, every route
/// behind the guard.
fn side_port_router(port: &SidePort, readiness: Readiness, extra: Router) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let report = readiness.report();
                async move { report }
            }),
        )
        .merge(extra);
    match &port.auth {
        Some(auth) => router.merge(crate::web_auth::routes(auth.clone())).layer(
            axum::middleware::from_fn_with_state(auth.clone(), crate::web_auth::guard),
        ),
        None => router,
    }
}

/// One accepted connection, to be served.
struct Connection {
    router: Router,
    http1: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    counters: PortCounters,
}

impl Connection {
    async fn serve<IO>(self, io: IO, peer: Peer)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(peer.clone());
            let mut router = router.clone();
            async move { tower::Service::call(&mut router, request.map(axum::body::Body::new)).await }
        });
        let connection = self.http1.serve_connection(TokioIo::new(io), service);
        if let Err(e) = self.watcher.watch(connection).await {
            if e.is_timeout() {
                self.counters.expired(Expired::Header);
            } else {
                tracing::debug!(error = %e, "side port: connection ended with an error");
            }
        }
    }

    /// Finishes the TLS handshake within `within` (or counts the expiry),
    /// then serves the connection as the client certificate's identities.
    async fn serve_tls<IO>(
        self,
        handshake: tokio_rustls::Accept<IO>,
        within: std::time::Duration,
        remote: std::net::SocketAddr,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let tls = match tokio::time::timeout(within, handshake).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %remote, "side port: TLS handshake failed");
                return;
            }
            Err(_) => {
                self.counters.expired(Expired::Handshake);
                return;
            }
        };
        let identities = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|leaf| crate::security::certificate_identities(leaf.as_ref()))
            .unwrap_or_default();
        let peer = Peer {
            remote,
            identities: Arc::new(identities),
        };
        self.serve(tls, peer).await;
    }
}
