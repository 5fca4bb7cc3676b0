//! Configuration: every setting a flag with an environment-variable twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Baton ingest: appends hand-off events to NATS JetStream.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "baton-ingest", version, about, long_about = None)]
pub struct Config {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// gRPC listen address for the Ingest service.
    #[arg(long, env = "BATON_INGEST_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// HTTP side port: /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "BATON_INGEST_HTTP_LISTEN",
        default_value = "127.0.0.1:9451"
    )]
    pub http_listen: SocketAddr,

    /// The catalog of departments, kinds and promises (JSON).
    #[arg(long, env = "BATON_CATALOG", default_value = "deploy/catalog.json")]
    pub catalog: PathBuf,

    /// JetStream replicas for the streams, if this service creates them (3 on a cluster).
    #[arg(long, env = "BATON_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// How long to wait for JetStream to acknowledge an append before answering UNAVAILABLE.
    #[arg(long, env = "BATON_PUBLISH_TIMEOUT", default_value = "5s", value_parser = baton_runtime::duration_flag)]
    pub publish_timeout: Duration,

    /// How far in the future occurred_at may be (clock skew between systems).
    #[arg(long, env = "BATON_MAX_FUTURE_SKEW", default_value = "5m", value_parser = baton_runtime::duration_flag)]
    pub max_future_skew: Duration,

    /// Hand-offs whose state is kept in memory between appends.
    #[arg(long, env = "BATON_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: usize,

    /// Most memory those hand-offs may take, in MiB (each weighed by its
    /// event ids and request attributes); the least recently used go first.
    #[arg(long, env = "BATON_CACHE_MB", default_value_t = 256)]
    pub cache_mb: usize,

    /// Requests handled at once (an AppendBatch counts as one); a burst
    /// beyond is answered RESOURCE_EXHAUSTED instead of queueing without bound.
    #[arg(long, env = "BATON_MAX_IN_FLIGHT", default_value_t = crate::grpc::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,

    /// gRPC TLS and caller authentication (off by default: dev mode).
    #[command(flatten)]
    pub tls: baton_runtime::security::TlsArgs,

    /// Bounds on the gRPC port: connections, streams, stalls.
    #[command(flatten)]
    pub grpc: baton_runtime::grpc::GrpcArgs,

    /// Bounds and authentication of the HTTP side port (/metrics).
    #[command(flatten)]
    pub http: baton_runtime::http::HttpArgs,

    /// NATS user and TLS.
    #[command(flatten)]
    pub nats: baton_log::NatsSecurity,

    /// Where traces go (OpenTelemetry over OTLP/gRPC); off when unset.
    #[command(flatten)]
    pub otlp: baton_runtime::otel::OtlpArgs,

    /// Test-only failure injection (`name=action[@n]`, see
    /// `baton_runtime::failpoint`); refused by release builds.
    #[arg(
        long = "failpoint",
        env = "BATON_FAILPOINTS",
        value_delimiter = ',',
        hide = true
    )]
    pub failpoints: Vec<String>,
}
