//! Configuration: every setting a flag with an environment-variable twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Baton gateway: HL7 v2 over MLLP in, hand-off events appended through ingest.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "baton-gateway", version, about, long_about = None)]
pub struct Config {
    /// MLLP listen address for HL7 v2 messages.
    #[arg(long, env = "BATON_GATEWAY_LISTEN", default_value = "127.0.0.1:2575")]
    pub listen: SocketAddr,

    /// HTTP side port: /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "BATON_GATEWAY_HTTP_LISTEN",
        default_value = "127.0.0.1:9453"
    )]
    pub http_listen: SocketAddr,

    /// The ingest service the events are appended to.
    #[arg(
        long,
        env = "BATON_INGEST_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub ingest_url: String,

    /// The projector's query service: what Baton knows of a FHIR Task.
    #[arg(
        long,
        env = "BATON_QUERY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub query_url: String,

    /// CA certificate that signs ingest's and the projector's certificates
    /// (https:// URLs).
    #[arg(long, env = "BATON_GATEWAY_INGEST_CA")]
    pub ingest_ca: Option<PathBuf>,

    /// The gateway's own certificate towards ingest and the projector
    /// (mutual TLS): the caller their registries name.
    #[arg(long, env = "BATON_GATEWAY_INGEST_CERT", requires = "ingest_key")]
    pub ingest_cert: Option<PathBuf>,

    /// The private key of --ingest-cert.
    #[arg(long, env = "BATON_GATEWAY_INGEST_KEY", requires = "ingest_cert")]
    pub ingest_key: Option<PathBuf>,

    /// How HL7 codes become departments, kinds, priorities and events (JSON).
    #[arg(
        long,
        env = "BATON_GATEWAY_MAPPING",
        default_value = "deploy/gateway/hl7-lab.json"
    )]
    pub mapping: PathBuf,

    /// IANA time zone of HL7 times that carry no UTC offset.
    #[arg(long, env = "BATON_GATEWAY_TIME_ZONE", default_value = "UTC", value_parser = time_zone)]
    pub time_zone: jiff::tz::TimeZone,

    /// Secret key of the hash that makes hand-off and event ids from order
    /// numbers and message control ids. Keep it, and keep it the same on
    /// every gateway: a new key gives the same order a new hand-off id.
    #[arg(long, env = "BATON_GATEWAY_ID_SALT", hide_env_values = true)]
    pub id_salt: String,

    /// Largest HL7 message accepted, in bytes; a larger frame is answered
    /// AR and its connection closed.
    #[arg(long, env = "BATON_GATEWAY_MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,

    /// MLLP connections open at once; more are closed as soon as accepted.
    #[arg(long, env = "BATON_GATEWAY_MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,

    /// A connection that sends nothing for this long is closed.
    #[arg(long, env = "BATON_GATEWAY_IDLE_TIMEOUT", default_value = "10m", value_parser = baton_runtime::duration_flag)]
    pub idle_timeout: Duration,

    /// How long one append may take before the message goes unanswered
    /// (and the sender sends it again).
    #[arg(long, env = "BATON_GATEWAY_APPEND_TIMEOUT", default_value = "10s", value_parser = baton_runtime::duration_flag)]
    pub append_timeout: Duration,

    /// The FHIR server whose subscriptions notify the gateway (its base URL,
    /// `https://ehr.example/fhir`). The Tasks of id-only notifications are
    /// fetched from it, and only from it; without it, id-only notifications
    /// are refused (422).
    #[arg(long, env = "BATON_GATEWAY_FHIR_SERVER")]
    pub fhir_server: Option<String>,

    /// CA certificate that signs the FHIR server's certificate (https).
    #[arg(long, env = "BATON_GATEWAY_FHIR_SERVER_CA")]
    pub fhir_server_ca: Option<PathBuf>,

    /// Bearer token sent with each fetch from the FHIR server.
    #[arg(long, env = "BATON_GATEWAY_FHIR_SERVER_TOKEN", hide_env_values = true)]
    pub fhir_server_token: Option<String>,

    /// How long one fetch of a Task from the FHIR server may take.
    #[arg(long, env = "BATON_GATEWAY_FHIR_FETCH_TIMEOUT", default_value = "10s", value_parser = baton_runtime::duration_flag)]
    pub fhir_fetch_timeout: Duration,

    /// TLS and authentication of the HTTP side port.
    #[command(flatten)]
    pub tls: baton_runtime::security::TlsArgs,

    /// Bounds and authentication of the HTTP side port (/metrics).
    #[command(flatten)]
    pub http: baton_runtime::http::HttpArgs,
}

fn time_zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|e| format!("{name:?}: {e}"))
}
