//! Baton's benchmark: one command that starts its own `nats-server` (file
//! storage, free port, temporary store) and the services in this process,
//! and measures, in the same run on the same machine, what JetStream, tonic
//! and sled do bare (the limits) and what Baton does on top of them, so the
//! figures that matter are ratios, which drift far less than absolute
//! times on a shared machine. It prints one table and writes it as JSON.
//!
//! It is a measuring tool, not a test: it asserts nothing about speed, and
//! it must never be part of a shipped service or talk to anything but the
//! servers it started itself.

mod cpu;
mod docs;
mod growth;
mod limits;
mod load;
mod notify;
mod pairs;
mod projection;
mod record;
mod scale;
mod sections;
mod services;
mod stats;
mod sync_always;
mod traffic;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use baton_testkit::NatsServer;
use clap::Parser;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::stats::{Machine, Report};

/// The same allocator as the service binaries (the services run in this process).
#[global_allocator]
static ALLOCATOR: baton_alloc::Allocator = baton_alloc::Allocator;

/// Baton benchmark: throughput and latency as ratios to bare JetStream, tonic and sled.
#[derive(Debug, Clone, Parser, serde::Serialize)]
#[command(name = "baton-bench", version, about, long_about = None)]
struct Args {
    #[command(subcommand)]
    #[serde(skip)]
    command: Option<Command>,

    /// Events appended end to end through gRPC (unary at --clients in flight;
    /// also the size of the bare-tonic and batch runs).
    #[arg(long, env = "BATON_BENCH_EVENTS", default_value_t = 20_000)]
    events: usize,

    /// Messages published in each raw JetStream run; also the events of
    /// the raw sled run.
    #[arg(long, env = "BATON_BENCH_RAW_EVENTS", default_value_t = 100_000)]
    raw_events: usize,

    /// Concurrent gRPC clients (requests in flight).
    #[arg(long, env = "BATON_BENCH_CLIENTS", default_value_t = 64)]
    clients: usize,

    /// HTTP/2 connections the clients share.
    #[arg(long, env = "BATON_BENCH_CONNECTIONS", default_value_t = 4)]
    connections: usize,

    /// Most JetStream publish acks outstanding at once in the raw runs.
    #[arg(long, env = "BATON_BENCH_WINDOW", default_value_t = 256)]
    window: usize,

    /// Whole hand-offs per AppendBatch request.
    #[arg(long, env = "BATON_BENCH_BATCH_HANDOFFS", default_value_t = 25)]
    batch_handoffs: usize,

    /// Clocks set to run out during the breach-delay runs.
    #[arg(long, env = "BATON_BENCH_BREACH_CLOCKS", default_value_t = 1_000)]
    breach_clocks: usize,

    /// Milliseconds from publishing the breach clocks to the first deadline.
    #[arg(long, env = "BATON_BENCH_BREACH_LEAD_MS", default_value_t = 3_000)]
    breach_lead_ms: u64,

    /// Milliseconds over which the breach clocks' deadlines are spread.
    #[arg(long, env = "BATON_BENCH_BREACH_SPREAD_MS", default_value_t = 5_000)]
    breach_spread_ms: u64,

    /// Milliseconds between query pairs while ingesting.
    #[arg(long, env = "BATON_BENCH_QUERY_INTERVAL_MS", default_value_t = 20)]
    query_interval_ms: u64,

    /// View sizes (hand-offs with open clocks) for the scale section, comma-separated.
    #[arg(
        long,
        env = "BATON_BENCH_SCALE",
        value_delimiter = ',',
        default_value = "10000,100000"
    )]
    scale: Vec<usize>,

    /// Rebuilds from an empty data dir in section (3); the median is reported.
    #[arg(long, env = "BATON_BENCH_REBUILD_RUNS", default_value_t = 3)]
    rebuild_runs: usize,

    /// Pairs of a limit's run and Baton's run right after it, for the
    /// end-to-end ratios (unary against (1b), AppendBatch against raw
    /// publish with ids); the pair with the median ratio is reported.
    #[arg(long, env = "BATON_BENCH_PAIRS", default_value_t = 3)]
    pairs: usize,

    /// Breaches run out at once for notify's delivery rate in the scale
    /// section (8); 0 leaves it out.
    #[arg(long, env = "BATON_BENCH_NOTIFY_BURST", default_value_t = 2_000)]
    notify_burst: usize,

    /// Hand-offs a day of a 1,000-bed hospital, for the growth rows (9):
    /// an assumption, stated in docs/performance.md.
    #[arg(
        long,
        env = "BATON_BENCH_HOSPITAL_HANDOFFS_PER_DAY",
        default_value_t = 20_000
    )]
    hospital_handoffs_per_day: usize,

    /// Leave out the scale section.
    #[arg(long, env = "BATON_BENCH_SKIP_SCALE")]
    skip_scale: bool,

    /// Partition counts for the scale-out section (7): the stream the
    /// rebuild read is split into this many partitions and as many
    /// projectors rebuild it together; empty: no scale-out section.
    #[arg(
        long,
        env = "BATON_BENCH_SCALE_OUT",
        value_delimiter = ',',
        num_args = 0..,
        default_value = "2"
    )]
    scale_out: Vec<u32>,

    /// Leave out the runs against a nats-server with `sync_interval: always`.
    #[arg(long, env = "BATON_BENCH_SKIP_SYNC_ALWAYS")]
    skip_sync_always: bool,

    /// The catalog the services run on.
    #[arg(long, env = "BATON_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,

    /// Where to write the report as JSON.
    #[arg(long, env = "BATON_BENCH_JSON", default_value = "bench-result.json")]
    json: PathBuf,

    /// Also keep the run in this directory (`<date>.json` and `<date>.md`),
    /// for `baton-bench docs` to quote: `bench/runs` for a run worth keeping.
    #[arg(long, env = "BATON_BENCH_RECORD")]
    record: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Subcommand)]
enum Command {
    /// Rewrite the generated blocks of the performance page from the
    /// recorded runs (the last full run verbatim, ranges, targets); with
    /// --check, only fail if the page differs from what the runs give.
    Docs(docs::DocsArgs),
    /// Internal: run the projector in this process (the scale section's child).
    #[command(hide = true)]
    ChildProjector(Box<baton_projector::Config>),
}

fn main() -> anyhow::Result<()> {
    baton_alloc::keep_freed_memory();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.command.clone() {
        Some(Command::ChildProjector(config)) => runtime.block_on(child_projector(*config)),
        Some(Command::Docs(docs)) => docs::run(&docs),
        None => runtime.block_on(bench(args)),
    }
}

async fn child_projector(config: baton_projector::Config) -> anyhow::Result<()> {
    let grpc = tokio::net::TcpListener::bind(config.listen).await?;
    let http = tokio::net::TcpListener::bind(config.http_listen).await?;
    baton_projector::run(config, grpc, http, CancellationToken::new()).await?;
    Ok(())
}

fn catalog_path(given: &Path) -> anyhow::Result<PathBuf> {
    if given.exists() {
        return Ok(given.to_owned());
    }
    // Run from elsewhere than the repository root: the shipped catalog.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(given);
    if shipped.exists() {
        return Ok(shipped);
    }
    anyhow::bail!("catalog {} not found", given.display())
}

/// The catalog the services run on in the bench: `given`, with late
/// entries allowed up to an hour. The breach clocks are requests dated a
/// promise's whole target (10 minutes for a STAT repair) before the moment
/// they run out, entered now; under the catalog's default late-entry bound
/// (5 minutes) their clocks would read them as entered 5 minutes ago and
/// run out 5 minutes late, after the bench stopped waiting.
fn bench_catalog(given: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let text =
        std::fs::read_to_string(given).with_context(|| format!("reading {}", given.display()))?;
    let mut catalog: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", given.display()))?;
    let Some(fields) = catalog.as_object_mut() else {
        anyhow::bail!("{} is not a catalog object", given.display());
    };
    fields.insert("max_entry_lag".into(), serde_json::json!("1h"));
    let path = dir.join("bench-catalog.json");
    std::fs::write(&path, serde_json::to_string_pretty(&catalog)?)?;
    Ok(path)
}

fn nats_version() -> String {
    std::process::Command::new(baton_testkit::nats_server_bin())
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// A realistic recorded event's payload: what one stream message carries.
/// A lab request (the commonest kind), with its test attribute, when the
/// catalog has lab work; else its first request.
fn realistic_payload(traffic: &traffic::Traffic) -> bytes::Bytes {
    let mut rng = traffic::Rng::new(1);
    let now = traffic::now_millis();
    let mut requests = (0..1_000).map(|_| {
        traffic
            .recorded_request(&mut rng, "bench-0000042", now, now)
            .1
    });
    let first = requests.next().unwrap_or_default();
    let lab = std::iter::once(first.clone())
        .chain(requests)
        .find(|e| e.kind == "lab");
    bytes::Bytes::from(lab.unwrap_or(first).encode_to_vec())
}

/// The whole run: every section against a nats-server with default
/// syncing, then (unless skipped) against one that syncs every write, then
/// the scale section; prints the table, writes the JSON, and records the
/// run if asked and every breach was announced.
async fn bench(args: Args) -> anyhow::Result<()> {
    let catalog_dir = tempfile::tempdir()?;
    let catalog = bench_catalog(&catalog_path(&args.catalog)?, catalog_dir.path())?;
    let traffic = traffic::Traffic::load(&catalog)?;
    let mut report = new_report(&args)?;
    let run_started = Instant::now();
    let payload = realistic_payload(&traffic);
    let payload_len = payload.len();
    eprintln!(
        "baton-bench: payload {} bytes, catalog {}",
        payload.len(),
        catalog.display()
    );
    report.add(
        "",
        "event payload",
        payload.len() as f64,
        "bytes",
        "a recorded lab REQUESTED, protobuf",
    );

    // ---- (9) a hospital's day, planned from the traffic model (no I/O) ----
    growth::add_hospital_day(&mut report, &traffic, args.hospital_handoffs_per_day);

    // ---- (1), (1b), (2)..(5), (7) on a nats-server with default syncing ----
    let nats = NatsServer::start();
    let figures = sections::main_server(
        &args,
        &mut report,
        &nats,
        &catalog,
        &traffic,
        payload.clone(),
    )
    .await?;
    drop(nats);

    // ---- the same limits and ingest with sync_interval: always ----
    if !args.skip_sync_always {
        sync_always::run(&args, &mut report, &catalog, &traffic, payload, &figures).await?;
    }

    // ---- (6) scale ----
    if !args.skip_scale {
        let breaches = scale::BreachClocks {
            count: args.breach_clocks,
            lead: Duration::from_millis(args.breach_lead_ms),
            spread: Duration::from_millis(args.breach_spread_ms),
            notify_burst: args.notify_burst,
        };
        scale::run(
            &mut report,
            &catalog,
            &traffic,
            &args.scale,
            &breaches,
            args.window,
            payload_len,
        )
        .await?;
    }

    // ---- (9) growth over years, from the rows above ----
    growth::add(&mut report);

    report.add(
        "",
        stats::WHOLE_RUN,
        run_started.elapsed().as_secs_f64(),
        "s",
        "",
    );
    write_report(&args, &report)?;
    refuse_unannounced_breaches(&report)?;
    if let Some(dir) = &args.record {
        let (json, markdown) = record::write(dir, &report)?;
        eprintln!(
            "baton-bench: recorded {} and {}",
            json.display(),
            markdown.display()
        );
    }
    Ok(())
}

/// A report with no rows yet: when, how and on what machine it ran.
fn new_report(args: &Args) -> anyhow::Result<Report> {
    Ok(Report {
        date: baton_domain::Timestamp::from_millis(traffic::now_millis()).rfc3339(),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        machine: Machine::here(nats_version()),
        settings: serde_json::to_value(args)?,
        rows: Vec::new(),
    })
}

/// Prints the table and writes the report as JSON to --json.
fn write_report(args: &Args, report: &Report) -> anyhow::Result<()> {
    println!("{}", report.table());
    std::fs::write(&args.json, serde_json::to_string_pretty(report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("baton-bench: wrote {}", args.json.display());
    Ok(())
}

/// Fails the run if a breach clock ran out unannounced. Not a speed: a
/// breach Baton never announced is a wrong answer, and a run with one is
/// not recorded.
fn refuse_unannounced_breaches(report: &Report) -> anyhow::Result<()> {
    let unannounced: f64 = report
        .rows
        .iter()
        .filter(|r| r.name.starts_with("breaches never seen"))
        .map(|r| r.value)
        .sum();
    if unannounced > 0.0 {
        anyhow::bail!("{unannounced} breach clocks ran out and were never announced");
    }
    Ok(())
}

/// Figures the runs on a nats-server that syncs every write compare with.
#[derive(Debug, Default)]
struct Figures {
    /// Raw JetStream publish with message ids, msg/s.
    raw_ids: f64,
    /// Unary Append until the projector applied the last, events/s.
    e2e: f64,
    /// AppendBatch until the projector applied the last, events/s.
    batch_e2e: f64,
}
