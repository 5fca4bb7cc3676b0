//! `batonctl`: Baton from the command line. Append and import events, read
//! hand-offs, breaches, compliance and the matrix, watch breaches and
//! warnings live, open and close disruptions, rate hand-offs, follow a
//! rebuild, tail the NATS topics, validate a catalog, and play a simulated
//! hospital day.
//!
//! A thin client: it must never hold a rule of its own. Every rule lives in
//! the services; this only converts flags, files and JSON to the gRPC API
//! and back.

mod cmd;
mod eventlog;
mod mapping;
mod output;
mod sim;
mod time;

use clap::{Parser, Subcommand};

/// The heading of the options every command takes, apart from its own.
const GLOBAL: &str = "Global options";

/// Baton: hand-offs between hospital departments, and the promises they keep.
#[derive(Debug, Parser)]
#[command(name = "batonctl", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    /// The ingest service (gRPC).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "BATON_INGEST_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    ingest_url: String,

    /// The projector's query service (gRPC).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "BATON_QUERY_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    query_url: String,

    /// NATS, for tailing topics.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,

    /// Print JSON (one object per line) instead of text.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,

    /// CA certificate (PEM) that signed the services' certificates: talk to
    /// them over TLS (give https:// URLs).
    #[arg(long, global = true, help_heading = GLOBAL, env = "BATON_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,

    /// This caller's client certificate (PEM), for services that require one.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "BATON_TLS_CLIENT_CERT",
        requires_all = ["tls_client_key", "tls_ca"]
    )]
    tls_client_cert: Option<std::path::PathBuf>,

    /// Private key (PEM) of --tls-client-cert.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
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
  batonctl watch --warnings
  batonctl clocks --supplier lab
  batonctl matrix --from now-7d
  batonctl rate pump-7 4 --comment 'quick and clear'
  batonctl disruption start analyzer-2 --supplier lab --kind lab --reason 'chemistry analyzer down'
  batonctl compliance --supplier lab --by day --time-zone Europe/Amsterdam
  batonctl report --department lab --month 2026-11 --format html > lab-2026-11.html
  batonctl report --month 2026-11 --format csv
  batonctl hl7 send --gateway 127.0.0.1:2575 lab-orders.hl7
  batonctl notify parked
  batonctl notify retry --channel duty-pager
  batonctl validate-catalog deploy/catalog.json
  batonctl status --wait
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
    /// A department's report card for a month, as supplier and as customer (text, CSV or HTML).
    Report(cmd::report::Args),
    /// Print breaches (or, with --warnings, warnings) as they happen.
    Watch(cmd::breaches::WatchArgs),
    /// Running clocks, the one closest to its deadline first.
    Clocks(cmd::clocks::ClocksArgs),
    /// The internal-customer matrix: suppliers x customers.
    Matrix(cmd::matrix::MatrixArgs),
    /// Rate a completed hand-off, once (as its customer).
    Rate(cmd::rate::RateArgs),
    /// Acknowledge a hand-off's escalated breaches (as the duty coordinator).
    Ack(cmd::ack::AckArgs),
    /// Start or end a service disruption of a supplier.
    Disruption(cmd::disruption::DisruptionArgs),
    /// List disruptions and what they affected.
    Disruptions(cmd::disruption::DisruptionsArgs),
    /// How far the projector's views are; --wait follows a rebuild with a progress bar.
    Status(cmd::status::Args),
    /// Check a catalog file: exits non-zero with the line and field of the first mistake.
    ValidateCatalog(cmd::catalog::Args),
    /// Print messages on NATS subjects as JSON lines.
    Tail(cmd::tail::Args),
    /// Run a small demo workload: repair and lab requests, some answered in time.
    Demo(cmd::demo::Args),
    /// Play a generated hospital day from the catalog, compressed by --speed.
    Simulate(cmd::simulate::Args),
    /// Backfill an event log (XES or CSV) as hand-offs, by a mapping file.
    Import(cmd::import::Args),
    /// Send HL7 v2 messages from a file to the gateway over MLLP.
    Hl7(cmd::hl7::Args),
    /// Notices notify could not deliver: list them, send them again.
    Notify(cmd::notify::Args),
    /// Tokens for wall screens and scrapers, and their hashes for the caller registry.
    Token(cmd::token::Args),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// Runs the command. A failure is one line on standard error, its causes
/// joined, with exit code 1 (clap's usage errors exit with 2): a mistyped
/// department is the user's to fix, so no backtrace, whatever
/// `RUST_BACKTRACE` says.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
        Command::Report(args) => cmd::report::run(&cli.query_url, args).await,
        Command::Watch(args) => cmd::breaches::watch(&cli.query_url, args, out).await,
        Command::Clocks(args) => cmd::clocks::clocks(&cli.query_url, args, out).await,
        Command::Matrix(args) => cmd::matrix::matrix(&cli.query_url, args, out).await,
        Command::Rate(args) => cmd::rate::rate(&cli.ingest_url, args, out).await,
        Command::Ack(args) => cmd::ack::ack(&cli.ingest_url, args, out).await,
        Command::Disruption(args) => cmd::disruption::disruption(&cli.ingest_url, args, out).await,
        Command::Disruptions(args) => cmd::disruption::disruptions(&cli.query_url, args, out).await,
        Command::Status(args) => cmd::status::run(&cli.query_url, args, out).await,
        Command::ValidateCatalog(args) => cmd::catalog::validate(args, out),
        Command::Tail(args) => cmd::tail::run(&cli.nats_url, args).await,
        Command::Demo(args) => cmd::demo::run(&cli.ingest_url, &cli.query_url, args).await,
        Command::Simulate(args) => cmd::simulate::run(&cli.ingest_url, &cli.query_url, args).await,
        Command::Import(args) => cmd::import::run(&cli.ingest_url, args).await,
        Command::Hl7(args) => cmd::hl7::run(args).await,
        Command::Notify(args) => cmd::notify::run(&cli.nats_url, args, out).await,
        Command::Token(args) => cmd::token::run(args),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every option and argument of every command, nested ones included,
    /// says what it is, and the global ones stand apart under their heading.
    #[test]
    fn every_option_of_every_command_says_what_it_is() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
                if arg.is_global_set() && arg.get_help_heading() != Some(GLOBAL) {
                    missing.push(format!("{path} {id}: not under {GLOBAL:?}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut cli = Cli::command();
        cli.build();
        check(&cli, "batonctl", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
