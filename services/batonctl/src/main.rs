//! `batonctl`: Baton from the command line. Append events, read hand-offs,
//! breaches and compliance, watch breaches live, tail the NATS topics, and
//! run a small demo workload.
//!
//! A thin client: every rule lives in the services; this only converts
//! flags and JSON to the gRPC API and back.

mod cmd;
mod output;
mod time;

use clap::{Parser, Subcommand};

/// Baton: hand-offs between hospital departments, and the promises they keep.
#[derive(Debug, Parser)]
#[command(name = "batonctl", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    /// The ingest service (gRPC).
    #[arg(
        long,
        global = true,
        env = "BATON_INGEST_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    ingest_url: String,

    /// The projector's query service (gRPC).
    #[arg(
        long,
        global = true,
        env = "BATON_QUERY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    query_url: String,

    /// NATS, for tailing topics.
    #[arg(
        long,
        global = true,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,

    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true)]
    json: bool,

    /// CA certificate (PEM) that signed the services' certificates: talk to
    /// them over TLS (give https:// URLs).
    #[arg(long, global = true, env = "BATON_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,

    /// This caller's client certificate (PEM), for services that require one.
    #[arg(
        long,
        global = true,
        env = "BATON_TLS_CLIENT_CERT",
        requires_all = ["tls_client_key", "tls_ca"]
    )]
    tls_client_cert: Option<std::path::PathBuf>,

    /// Private key (PEM) of --tls-client-cert.
    #[arg(
        long,
        global = true,
        env = "BATON_TLS_CLIENT_KEY",
        requires = "tls_client_cert"
    )]
    tls_client_key: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  batonctl append --handoff pump-7 --type requested --kind repair --supplier engineering --customer ward-5 --priority urgent
  batonctl append --handoff pump-7 --type acknowledged
  echo '{\"handoff_id\":\"pump-7\",\"type\":\"completed\"}' | batonctl append --from-json -
  batonctl get pump-7
  batonctl breaches --open
  batonctl compliance repair-response --supplier engineering
  batonctl watch
  batonctl tail 'baton.sla.>'";

#[derive(Debug, Subcommand)]
enum Command {
    /// Append one event (from flags), or events from JSON lines.
    Append(cmd::append::Args),
    /// Show a hand-off: status, clocks and every event.
    Get(cmd::get::Args),
    /// List hand-offs.
    List(cmd::get::ListArgs),
    /// List breaches.
    Breaches(cmd::breaches::Args),
    /// Show a promise's compliance and percentiles.
    Compliance(cmd::compliance::Args),
    /// Print breaches as they happen.
    Watch(cmd::breaches::WatchArgs),
    /// Print messages on NATS subjects as JSON lines.
    Tail(cmd::tail::Args),
    /// Run a small demo workload: repair and lab requests, some answered in time.
    Demo(cmd::demo::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(ca) = &cli.tls_ca {
        cmd::use_tls(
            ca,
            cli.tls_client_cert
                .as_deref()
                .zip(cli.tls_client_key.as_deref()),
        )?;
    }
    let out = output::Output { json: cli.json };
    match cli.command {
        Command::Append(args) => cmd::append::run(&cli.ingest_url, args, out).await,
        Command::Get(args) => cmd::get::run(&cli.query_url, args, out).await,
        Command::List(args) => cmd::get::list(&cli.query_url, args, out).await,
        Command::Breaches(args) => cmd::breaches::run(&cli.query_url, args, out).await,
        Command::Compliance(args) => cmd::compliance::run(&cli.query_url, args, out).await,
        Command::Watch(args) => cmd::breaches::watch(&cli.query_url, args, out).await,
        Command::Tail(args) => cmd::tail::run(&cli.nats_url, args).await,
        Command::Demo(args) => cmd::demo::run(&cli.ingest_url, &cli.query_url, args).await,
    }
}
