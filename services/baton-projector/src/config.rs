//! Configuration: every setting a flag with an environment-variable twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Events a batch while catching up: big enough that a hand-off's events
/// mostly meet in one batch, so sled writes its view once; the fastest of
/// the sizes the bench tried (bench/HISTORY.md, fifth run).
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

/// See [`Config::max_recorded_skew`].
pub const DEFAULT_MAX_RECORDED_SKEW: Duration = Duration::from_secs(60);

/// See [`Config::linger_ms`].
pub const DEFAULT_LINGER_MS: u64 = 10;

/// Baton projector: builds the SLA views from the event stream and serves queries.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "baton-projector", version, about, long_about = None)]
pub struct Config {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,

    /// gRPC listen address for the Query service.
    #[arg(
        long,
        env = "BATON_PROJECTOR_LISTEN",
        default_value = "127.0.0.1:50052"
    )]
    pub listen: SocketAddr,

    /// HTTP side port: /healthz, /readyz and the live board (/).
    #[arg(
        long,
        env = "BATON_PROJECTOR_HTTP_LISTEN",
        default_value = "127.0.0.1:9452"
    )]
    pub http_listen: SocketAddr,

    /// Where the sled views live. Deleting it is safe: the views are rebuilt from the stream.
    #[arg(long, env = "BATON_DATA_DIR", default_value = "data/projector")]
    pub data_dir: PathBuf,

    /// The catalog of departments, kinds and promises (JSON). A different
    /// catalog than the views were built with rebuilds them.
    #[arg(long, env = "BATON_CATALOG", default_value = "deploy/catalog.json")]
    pub catalog: PathBuf,

    /// Name of the durable JetStream consumer.
    #[arg(long, env = "BATON_CONSUMER", default_value = "baton-projector")]
    pub consumer: String,

    /// Projectors sharing the work: each holds the hand-offs of one
    /// partition (a hash of the hand-off id, computed by JetStream) and
    /// every disruption. 1: this projector holds everything.
    #[arg(long, env = "BATON_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=baton_log::partitions::MAX_PARTITIONS as i64))]
    pub partitions: u32,

    /// This projector's partition, 0 to --partitions minus 1.
    #[arg(long, env = "BATON_PARTITION", default_value_t = 0)]
    pub partition: u32,

    /// gRPC URLs of every partition's projector (this one included),
    /// comma-separated: queries are then answered across all of them,
    /// figures merged, by whichever is asked. Empty: this projector's views only.
    #[arg(long, env = "BATON_QUERY_PARTITIONS", value_delimiter = ',', num_args = 0..)]
    pub query_partitions: Vec<String>,

    /// TLS towards the partitions' projectors.
    #[command(flatten)]
    pub query_tls: crate::fanout::FanoutTlsArgs,

    /// Most events fetched and applied in one sled batch (while catching
    /// up, batches fill to it; live, a batch is what has arrived).
    #[arg(
        long,
        env = "BATON_BATCH_SIZE",
        default_value_t = DEFAULT_BATCH_SIZE,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000)
    )]
    pub batch_size: usize,

    /// Live, how long a batch waits for more events before it is applied,
    /// in milliseconds: each batch costs sled a write of the stream position
    /// and of every view and tally it touches, so under load a short wait
    /// saves most of the projector's work. Queries and the board see an
    /// event at most this much later; breaches are not declared while
    /// events wait.
    #[arg(
        long,
        env = "BATON_LINGER_MS",
        default_value_t = DEFAULT_LINGER_MS,
        value_parser = clap::value_parser!(u64).range(0..=1_000)
    )]
    pub linger_ms: u64,

    /// sled's page cache for the views, in MiB (sled's own default, 1 GiB,
    /// would be most of the projector's memory).
    #[arg(long, env = "BATON_VIEWS_CACHE_MB", default_value_t = 64)]
    pub views_cache_mb: u64,

    /// Breaches whose deadline had passed more than this long before they were
    /// recorded (history being imported) are kept in the views and figures but
    /// not announced on NATS, so a backfill pages nobody.
    #[arg(long, env = "BATON_ANNOUNCE_HORIZON", default_value = "1h", value_parser = baton_runtime::duration_flag)]
    pub announce_horizon: Duration,

    /// Views of hand-offs closed longer than this (by their closing event's
    /// time) are retired from sled: their figures, breaches and matrix
    /// cells stay, GetHandoff answers them from the log, the hand-off lists
    /// no longer show them, and a later event of theirs (a rating, an
    /// amendment) moves no figure. 0 keeps every view. Changing it rebuilds
    /// the views, so a rebuild always gives the same figures.
    #[arg(long, env = "BATON_VIEWS_RETENTION", default_value = "0", value_parser = retention_flag)]
    pub views_retention: Duration,

    /// How far the `recorded_at` an event claims may be from the time
    /// JetStream gave its message (ingest sets one just before JetStream sets
    /// the other). An event further apart is parked on the dead letter, not
    /// applied: time comes from the log, never from what a message says.
    #[arg(long, env = "BATON_MAX_RECORDED_SKEW", default_value = "60s", value_parser = baton_runtime::duration_flag)]
    pub max_recorded_skew: Duration,

    /// A part that makes no progress for this long is a stall: the
    /// announcer with an outbox entry unpublished while NATS is connected,
    /// or the timer with a deadline unsettled past due while caught up.
    /// A stall turns health NOT_SERVING until the part moves again.
    #[arg(long, env = "BATON_STALL_AFTER", default_value = "60s", value_parser = baton_runtime::duration_flag)]
    pub stall_after: Duration,

    /// Test-only failure injection (`name=action[@n]`, see
    /// `baton_runtime::failpoint`); refused by release builds.
    #[arg(
        long = "failpoint",
        env = "BATON_FAILPOINTS",
        value_delimiter = ',',
        hide = true
    )]
    pub failpoints: Vec<String>,

    /// JetStream replicas for the streams, if this service creates them.
    #[arg(long, env = "BATON_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,

    /// The live board on the HTTP side port.
    #[command(flatten)]
    pub board: crate::board::BoardConfig,

    /// gRPC TLS and caller authentication (off by default: dev mode).
    #[command(flatten)]
    pub tls: baton_runtime::security::TlsArgs,

    /// Bounds on the gRPC port: connections, streams, stalls.
    #[command(flatten)]
    pub grpc: baton_runtime::grpc::GrpcArgs,

    /// Bounds and authentication of the HTTP side port (the board, /metrics).
    #[command(flatten)]
    pub http: baton_runtime::http::HttpArgs,

    /// NATS user and TLS.
    #[command(flatten)]
    pub nats: baton_log::NatsSecurity,

    /// Where traces go (OpenTelemetry over OTLP/gRPC); off when unset.
    #[command(flatten)]
    pub otlp: baton_runtime::otel::OtlpArgs,
}

/// A retention: `0` (keep every view) or a duration such as `400d`.
fn retention_flag(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    baton_runtime::duration_flag(s)
}

/// What the views were computed under: the catalog's version and, when
/// views are retired, the retention (another retention is another set of
/// views, rebuilt from the stream like another catalog's).
pub fn views_identity(catalog: &baton_domain::Catalog, retention: Duration) -> String {
    if retention.is_zero() {
        catalog.version().to_owned()
    } else {
        format!("{}+retention={}s", catalog.version(), retention.as_secs())
    }
}
