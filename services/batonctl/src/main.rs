//! `batonctl`: Baton from the command line. Append events, read hand-offs,
//! breaches and compliance, watch breaches live, tail the NATS topics, and
//! run a small demo workload.
//!
//! A thin client: every rule lives in the services; this only converts
//! flags and JSON to the gRPC API and back.

mod cmd;
mod eventlog;
mod mapping;
mod output;
mod sim;
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
    /// Play a generated hospital day from the catalog, compressed by --speed.
    Simulate(cmd::simulate::Args),
    /// Backfill an event log (XES or CSV) as hand-offs, by a mapping file.
    Import(cmd::import::Args),
    /// Check a catalog file; exits non-zero with the line and field of the first error.
    ValidateCatalog {
        /// The catalog (JSON).
        file: std::path::PathBuf,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
        Command::Simulate(args) => cmd::simulate::run(&cli.ingest_url, &cli.query_url, args).await,
        Command::Import(args) => cmd::import::run(&cli.ingest_url, args).await,
        Command::ValidateCatalog { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let catalog = baton_domain::Catalog::from_json(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            println!(
                "{}: valid, {} departments, {} kinds, {} promises, version {}",
                file.display(),
                catalog.departments.len(),
                catalog.kinds.len(),
                catalog.promises.len(),
                catalog.version()
            );
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "batonctl", &mut script);
            use std::io::Write;
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}
