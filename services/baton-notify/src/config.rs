//! Configuration: every setting a flag with an environment-variable twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Baton notify: breaches, warnings, escalations and corrections delivered
/// to webhooks by routes, retried, parked when undeliverable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "baton-notify", version, about, long_about = None)]
pub struct Config {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// HTTP side port: /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "BATON_NOTIFY_HTTP_LISTEN",
        default_value = "127.0.0.1:9454"
    )]
    pub http_listen: SocketAddr,

    /// Which signals go to which channels (JSON).
    #[arg(
        long,
        env = "BATON_NOTIFY_ROUTES",
        default_value = "deploy/notify/routes.json"
    )]
    pub routes: PathBuf,

    /// How often the routes file is looked at: a change is read as a
    /// SIGHUP would (the files the routes name, keys and CAs, are read
    /// again only then).
    #[arg(long, env = "BATON_NOTIFY_ROUTES_CHECK", default_value = "5s", value_parser = baton_runtime::duration_flag)]
    pub routes_check: Duration,

    /// The board's address, for the link to the hand-off in each notice.
    #[arg(long, env = "BATON_BOARD_URL", default_value = "http://127.0.0.1:9452")]
    pub board_url: String,

    /// Attempts per delivery, the first included; then it is parked.
    #[arg(long, env = "BATON_NOTIFY_ATTEMPTS", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub attempts: u32,

    /// The wait after a first failed attempt, doubled after each (with jitter).
    #[arg(long, env = "BATON_NOTIFY_BACKOFF", default_value = "1s", value_parser = baton_runtime::duration_flag)]
    pub backoff: Duration,

    /// The longest wait between attempts.
    #[arg(long, env = "BATON_NOTIFY_BACKOFF_MAX", default_value = "1m", value_parser = baton_runtime::duration_flag)]
    pub backoff_max: Duration,

    /// Key file (at least 32 bytes) that signs the links in escalation
    /// notices that acknowledge them; without it, notices carry no link.
    #[arg(long, env = "BATON_NOTIFY_ACK_KEY", requires = "ack_url")]
    pub ack_key: Option<PathBuf>,

    /// Where people reach this side port, for the links
    /// (`https://notify.hospital.internal:9454`).
    #[arg(long, env = "BATON_NOTIFY_ACK_URL")]
    pub ack_url: Option<String>,

    /// How long a link acknowledges.
    #[arg(long, env = "BATON_NOTIFY_ACK_LINK_LIFETIME", default_value = "24h", value_parser = baton_runtime::duration_flag)]
    pub ack_link_lifetime: Duration,

    /// Ingest, where an acknowledgement by link is appended.
    #[arg(
        long,
        env = "BATON_INGEST_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub ingest_url: String,

    /// CA certificate that signs ingest's certificate (an https:// URL).
    #[arg(long, env = "BATON_NOTIFY_INGEST_CA")]
    pub ingest_ca: Option<PathBuf>,

    /// Notify's own certificate towards ingest (mutual TLS): an operator
    /// caller in ingest's registry, since it acknowledges escalations.
    #[arg(long, env = "BATON_NOTIFY_INGEST_CERT", requires = "ingest_key")]
    pub ingest_cert: Option<PathBuf>,

    /// The private key of --ingest-cert.
    #[arg(long, env = "BATON_NOTIFY_INGEST_KEY", requires = "ingest_cert")]
    pub ingest_key: Option<PathBuf>,

    /// TLS and authentication of the HTTP side port.
    #[command(flatten)]
    pub tls: baton_runtime::security::TlsArgs,

    /// Bounds and authentication of the HTTP side port (/metrics).
    #[command(flatten)]
    pub http: baton_runtime::http::HttpArgs,

    /// NATS user and TLS.
    #[command(flatten)]
    pub nats: baton_log::NatsSecurity,

    /// Where traces go (OpenTelemetry over OTLP/gRPC); off when unset.
    #[command(flatten)]
    pub otlp: baton_runtime::otel::OtlpArgs,
}
