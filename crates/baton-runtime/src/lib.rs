//! What every Baton service process shares: logging set-up, shutdown on
//! SIGTERM/SIGINT, the HTTP side port ([`http`]: health, metrics, the board;
//! bounded, TLS, authenticated by [`web_auth`]), gRPC plumbing ([`grpc`]:
//! the bounded accept loop, reflection), one way to start and serve a
//! service ([`serve`]), supervised tasks ([`supervise`]), the bounds both
//! ports share ([`ports`]), outgoing TLS trusting one named CA
//! ([`tls_client`], [`http_client`]) and the wall clock.
//!
//! This is the only crate that reads the machine's clock, so the domain never
//! does. It must never hold business rules.

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use axum::http::StatusCode;
use baton_domain::Timestamp;
use tokio_util::sync::CancellationToken;

/// The wall clock, as the domain's [`Timestamp`].
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). With
/// `BATON_LOG_FORMAT=json`, one JSON object per line.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: a log file or journald gets plain text.
    let on_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(on_terminal)
        .with_writer(std::io::stderr);
    if std::env::var("BATON_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A token cancelled on the first SIGTERM or SIGINT. A second signal exits
/// at once, for an operator who does not want to wait.
///
/// The signals are awaited on a thread of their own with its own small
/// runtime, so a second signal exits even when every worker of the
/// service's runtime is blocked (inside a storage call that never returns).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let spawned = std::thread::Builder::new()
        .name("baton-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the signal thread's runtime: SIGTERM will kill at once");
                    return;
                }
            };
            runtime.block_on(async move {
                wait_for_signal().await;
                tracing::info!(
                    "shutdown requested, finishing in-flight work (signal again to force)"
                );
                cancel.cancel();
                wait_for_signal().await;
                tracing::warn!("second signal, exiting now");
                std::process::exit(130);
            });
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the signal thread: SIGTERM will kill at once");
    }
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Whether the service can do its job right now (NATS reachable, views
/// current), and any fault that must hold it not ready until someone looks
/// (each with the reason `/readyz` prints).
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<ReadinessState>);

#[derive(Debug, Default)]
struct ReadinessState {
    ready: AtomicBool,
    faults: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Relaxed);
    }

    /// Ready, and no fault stands.
    pub fn get(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed) && self.faults().is_empty()
    }

    /// Holds the service not ready, for `reason`, until [`Readiness::clear`]
    /// with the same `key` (or a restart).
    pub fn fault(&self, key: impl Into<String>, reason: impl Into<String>) {
        self.lock_faults().insert(key.into(), reason.into());
    }

    pub fn clear(&self, key: &str) {
        self.lock_faults().remove(key);
    }

    /// The reason of the fault standing under `key`, if one does.
    pub fn fault_reason(&self, key: &str) -> Option<String> {
        self.lock_faults().get(key).cloned()
    }

    /// The standing faults' reasons, in key order.
    pub fn faults(&self) -> Vec<String> {
        self.lock_faults().values().cloned().collect()
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, String>> {
        // Each holder inserts or removes one entry: a panic cannot leave it torn.
        self.0
            .faults
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What `/readyz` answers: the status and a body naming every fault.
    pub fn report(&self) -> (StatusCode, String) {
        let faults = self.faults();
        if self.get() {
            return (StatusCode::OK, "ready\n".into());
        }
        let mut body = String::from("not ready\n");
        for fault in faults {
            body.push_str("fault: ");
            body.push_str(&fault);
            body.push('\n');
        }
        (StatusCode::SERVICE_UNAVAILABLE, body)
    }
}

/// What load balancers and operators see of one gRPC service: its gRPC
/// health status and `/readyz`, which always agree. It is SERVING only while
/// the service says it can work ([`Health::set`]) and no fault stands
/// ([`Health::fault`]: a failed task, a stall, a forged signal).
#[derive(Clone)]
pub struct Health {
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
    readiness: Readiness,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("service", &self.service)
            .field("readiness", &self.readiness)
            .finish()
    }
}

impl Health {
    /// Health of the gRPC service named `service` (e.g. `baton.v1.Query`),
    /// NOT_SERVING until [`Health::set`] says otherwise.
    pub fn new(reporter: tonic_health::server::HealthReporter, service: &'static str) -> Health {
        Health {
            reporter,
            service,
            readiness: Readiness::default(),
        }
    }

    /// What `/readyz` reads.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Whether the service can work now (NATS connected, views current).
    pub async fn set(&self, able: bool) {
        self.readiness.set(able);
        self.publish().await;
    }

    /// Holds the service NOT_SERVING for `reason` until cleared.
    pub async fn fault(&self, key: impl Into<String>, reason: impl Into<String>) {
        self.readiness.fault(key, reason);
        self.publish().await;
    }

    pub async fn clear(&self, key: &str) {
        self.readiness.clear(key);
        self.publish().await;
    }

    pub fn ready(&self) -> bool {
        self.readiness.get()
    }

    pub fn faults(&self) -> Vec<String> {
        self.readiness.faults()
    }

    async fn publish(&self) {
        use tonic_health::ServingStatus;
        let status = if self.ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.reporter.set_service_status(self.service, status).await;
    }
}

pub use http::{serve_http, SidePort};

/// Binds a TCP listener, naming the address in the error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Why the catalog file could not be used.
#[derive(Debug)]
pub struct CatalogLoadError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

impl std::fmt::Display for CatalogLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for CatalogLoadError {}

/// Reads and validates the catalog file.
pub fn load_catalog(path: &std::path::Path) -> Result<baton_domain::Catalog, CatalogLoadError> {
    let fail = |reason: String| CatalogLoadError {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    baton_domain::Catalog::from_json(&text).map_err(|e| fail(e.to_string()))
}

/// Repeats `attempt` with a capped exponential back-off until it succeeds
/// or `cancel` fires. Returns `None` if cancelled.
pub async fn retry_until<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    cancel: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        match attempt().await {
            Ok(value) => return Some(value),
            Err(e) => tracing::warn!(error = %e, retry_in = ?delay, "{what} failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

pub mod exposition;
pub mod failpoint;
pub mod grpc;
pub mod http;
pub mod http_client;
pub mod otel;
pub mod ports;
pub mod security;
pub mod serve;
pub mod supervise;
pub mod tls_client;
pub mod web_auth;

/// Parses a duration flag the way the catalog spells durations (`45s`, `5m`, `1h`).
pub fn duration_flag(s: &str) -> Result<std::time::Duration, String> {
    baton_domain::time::parse_duration(s).map_err(|e| e.to_string())
}
