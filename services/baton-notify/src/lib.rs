//! Baton's notifier: reads breaches, warnings, escalations and corrections
//! from `BATON_SLA` with a durable consumer and delivers each to the
//! channels its routes name (webhooks, signed; e-mail through an SMTP relay
//! over STARTTLS), retrying with backoff and
//! parking what cannot be delivered, so a breach is never lost between
//! Baton and the people who must act on it.
//!
//! Layout:
//! - [`routes`]: the routes file and matching (pure).
//! - [`ack`]: signed links in escalation notices that acknowledge them.
//! - [`notice`]: a signal as routes see it, and its JSON body (pure).
//! - [`retry`]: the backoff (pure).
//! - [`policy`]: a route's grouping and quiet hours (pure).
//! - [`group`]: signals held by a route's policy, and the one message
//!   that delivers them.
//! - [`channel`]: the channel trait, the webhook, and the enum of both.
//! - [`email`]: the e-mail channel: a notice rendered as a message (pure),
//!   sent by [`smtp`], a small SMTP client (STARTTLS required).
//! - [`table`]: the routes and channels in force, reloaded on SIGHUP or
//!   when the file changes.
//! - [`deliver`]: the consumer loops: deliver, retry, park, acknowledge;
//!   and deliver again what was re-driven.
//! - [`parked`]: parked deliveries listed and re-driven (for batonctl).
//! - [`server`]: wiring; [`metrics`]: Prometheus metrics.
//!
//! It must never acknowledge a signal to JetStream before each of its
//! deliveries arrived or was parked, and never page for signals announced
//! before its consumer first started.

/// This service's name: its spans' `baton.service` and tracer scope.
pub const NAME: &str = "baton-notify";

pub mod ack;
pub mod channel;
pub mod config;
pub mod deliver;
pub mod email;
pub mod group;
pub mod metrics;
pub mod notice;
pub mod parked;
pub mod policy;
pub mod retry;
pub mod routes;
pub mod server;
pub mod smtp;
pub mod table;

pub use config::Config;
pub use server::run;

impl baton_runtime::serve::Service for Config {
    const NAME: &'static str = crate::NAME;
    type Error = server::StartError;

    fn listen_address(&self) -> Option<std::net::SocketAddr> {
        None
    }

    fn http_address(&self) -> std::net::SocketAddr {
        self.http_listen
    }

    fn otlp_endpoint(&self) -> Option<&str> {
        self.otlp.otlp_endpoint.as_deref()
    }

    fn run(
        self,
        _listener: Option<tokio::net::TcpListener>,
        http: tokio::net::TcpListener,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        server::run(self, http, shutdown)
    }
}
