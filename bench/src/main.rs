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
mod limits;
mod load;
mod pairs;
mod projection;
mod record;
mod scale;
mod services;
mod stats;
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

use crate::{
    pairs::Pair,
    stats::{rate, Machine, Report},
};

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
    /// also the size of the bare-tonic and batch runs and of the sled run).
    #[arg(long, env = "BATON_BENCH_EVENTS", default_value_t = 20_000)]
    events: usize,

    /// Messages published in each raw JetStream run.
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
fn realistic_payload() -> bytes::Bytes {
    let mut rng = traffic::Rng::new(1);
    // A lab request (the commonest kind), with its test attribute.
    loop {
        let (_, e) = traffic::recorded_request(
            &mut rng,
            "bench-0000042",
            traffic::now_millis(),
            traffic::now_millis(),
        );
        if e.kind == "lab" {
            return bytes::Bytes::from(e.encode_to_vec());
        }
    }
}

async fn channels(
    addr: std::net::SocketAddr,
    n: usize,
) -> anyhow::Result<Vec<tonic::transport::Channel>> {
    let mut out = Vec::new();
    for _ in 0..n.max(1) {
        out.push(services::channel(addr).await?);
    }
    Ok(out)
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let catalog_dir = tempfile::tempdir()?;
    let catalog = bench_catalog(&catalog_path(&args.catalog)?, catalog_dir.path())?;
    let mut report = Report {
        date: baton_domain::Timestamp::from_millis(traffic::now_millis()).rfc3339(),
        command: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
        machine: Machine::here(nats_version()),
        settings: serde_json::to_value(&args)?,
        rows: Vec::new(),
    };
    let run_started = Instant::now();
    let payload = realistic_payload();
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

    // ---- (1), (1b), (2)..(5) on a nats-server with default syncing ----
    let nats = NatsServer::start();
    let figures = main_server(&args, &mut report, &nats, &catalog, payload.clone(), "").await?;
    drop(nats);

    // ---- the same limits and ingest with sync_interval: always ----
    if !args.skip_sync_always {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("sync-always.conf");
        std::fs::write(&conf, "jetstream {\n  sync_interval: always\n}\n")?;
        let conf = conf.display().to_string();
        let nats = NatsServer::start_with(&["-c", &conf]);
        let always = sync_always(&args, &mut report, &nats, &catalog, payload).await?;
        drop(nats);
        report.ratio(
            "1s",
            "raw publish with ids, sync always / default",
            always.raw_ids,
            figures.raw_ids,
            "cost of an fsync per write",
        );
        report.ratio(
            "2s",
            "end-to-end unary, sync always / default",
            always.e2e,
            figures.e2e,
            "",
        );
    }

    // ---- (6) scale ----
    if !args.skip_scale {
        scale::run(
            &mut report,
            &catalog,
            &args.scale,
            args.breach_clocks,
            Duration::from_millis(args.breach_lead_ms),
            Duration::from_millis(args.breach_spread_ms),
            args.window,
        )
        .await?;
    }

    report.add(
        "",
        stats::WHOLE_RUN,
        run_started.elapsed().as_secs_f64(),
        "s",
        "",
    );
    println!("{}", report.table());
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("baton-bench: wrote {}", args.json.display());
    let unannounced: f64 = report
        .rows
        .iter()
        .filter(|r| r.name.starts_with("breaches never seen"))
        .map(|r| r.value)
        .sum();
    if unannounced > 0.0 {
        // Not a speed: a breach Baton never announced is a wrong answer,
        // and a run with one is not recorded.
        anyhow::bail!("{unannounced} breach clocks ran out and were never announced");
    }
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

/// Figures later sections compare with.
#[derive(Debug, Default)]
struct Figures {
    raw_ids: f64,
    e2e: f64,
}

async fn main_server(
    args: &Args,
    report: &mut Report,
    nats: &NatsServer,
    catalog: &Path,
    payload: bytes::Bytes,
    _tag: &str,
) -> anyhow::Result<Figures> {
    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client.clone());

    // (1) raw JetStream publish.
    let raw = limits::raw_publish(
        &js,
        "bench.raw",
        payload.clone(),
        args.raw_events,
        args.window,
        limits::Headers::None,
    )
    .await?;
    report.add(
        "1",
        "raw JetStream publish, no ids",
        raw,
        "msg/s",
        &format!("{} acks in flight, file storage", args.window),
    );
    let raw_ids = limits::raw_publish(
        &js,
        "bench.rawid",
        payload.clone(),
        args.raw_events,
        args.window,
        limits::Headers::Id,
    )
    .await?;
    report.add(
        "1",
        "raw JetStream publish, with message ids",
        raw_ids,
        "msg/s",
        "the limit for batch ingest",
    );
    let conditional = limits::raw_publish(
        &js,
        "bench.rawc",
        payload.clone(),
        args.raw_events,
        args.window,
        limits::Headers::Conditional,
    )
    .await?;
    report.add(
        "1",
        "raw JetStream publish, ids + ingest's condition on the hand-off's subjects",
        conditional,
        "msg/s",
        "Nats-Expected-Last-Subject-Sequence(-Subject) on <prefix>.<id>.>, the traffic's routes",
    );
    let id_last = limits::raw_publish(
        &js,
        "bench.rawl",
        payload.clone(),
        args.raw_events,
        args.window,
        limits::Headers::IdLast,
    )
    .await?;
    report.add(
        "1",
        "raw JetStream publish, ids + the condition with the id last (Baton's old subjects)",
        id_last,
        "msg/s",
        "<prefix>.<kind>.<supplier>.<customer>.<id>, condition on <prefix>.*.*.*.<id>",
    );
    let lookups =
        limits::raw_history_lookups(&js, "bench.rawc", args.raw_events / 10, args.clients).await?;
    report.add(
        "1",
        "raw JetStream history lookup of a new hand-off",
        lookups,
        "lookups/s",
        "direct get, first message on <prefix>.<id>.>, as ingest does for an uncached hand-off",
    );

    // (1) raw sled.
    let sled_dir = tempfile::tempdir()?;
    let (n, bytes) = (args.events, payload.len());
    let path = sled_dir.path().join("raw");
    let sled_rate =
        tokio::task::spawn_blocking(move || limits::raw_sled(&path, n, 500, bytes)).await??;
    report.add(
        "1",
        "raw sled apply",
        sled_rate,
        "events/s",
        "the projector's keys and value sizes, 500 events a batch",
    );
    drop(sled_dir);

    // (1b) a bare tonic handler that only publishes.
    let stop = CancellationToken::new();
    let (bare_addr, bare_task) = limits::serve_bare(js.clone(), stop.clone()).await?;
    let bare_channels = channels(bare_addr, args.connections).await?;
    let clock = cpu::CpuClock::start(nats.pid());
    let bare = load::unary(
        &bare_channels,
        load::workload("bare", args.events, 11),
        args.clients,
        None,
    )
    .await?;
    let bare_cpu = clock.and_then(|c| c.per_event(bare.events));
    report.add(
        "1b",
        "bare tonic publish handler, unary",
        bare.rate(),
        "req/s",
        &format!("{} in flight", args.clients),
    );
    report.add(
        "1b",
        "bare tonic handler p50",
        bare.latency.quantile_ms(0.5),
        "ms",
        "",
    );
    report.add(
        "1b",
        "bare tonic handler p99",
        bare.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    report_cpu_of(report, "1b", "bare tonic handler", bare_cpu);

    // (2) end to end, with (4) queries alongside.
    let dir = tempfile::tempdir()?;
    let ingest = services::start_ingest(&nats.url(), catalog).await?;
    let ingest_channels = channels(ingest.addr, args.connections).await?;
    // Ingest alone first, as (1b) ran: no projector and no queries sharing
    // the machine's cores, so the ratio shows ingest's own cost.
    let clock = cpu::CpuClock::start(nats.pid());
    let solo = load::unary(
        &ingest_channels,
        load::workload("solo", args.events, 10),
        args.clients,
        None,
    )
    .await?;
    let solo_cpu = clock.and_then(|c| c.per_event(solo.events));
    report.add(
        "2",
        "unary Append, ingest alone (no projector running)",
        solo.rate(),
        "events/s",
        &format!("{} clients", args.clients),
    );
    report_errors(report, "unary Append alone errors", &solo);
    report.add(
        "2",
        "unary Append, ingest alone p99",
        solo.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    report.ratio(
        "2",
        "unary Append alone / bare tonic handler (1b)",
        solo.rate(),
        bare.rate(),
        "ingest's own share of the gap",
    );
    report_cpu_of(report, "2", "unary Append, ingest alone", solo_cpu);
    let clock = cpu::CpuClock::start(nats.pid());
    let solo_batch = load::batches(
        &ingest_channels,
        load::workload("solob", args.events, 9),
        args.clients,
        args.batch_handoffs,
    )
    .await?;
    let solo_batch_cpu = clock.and_then(|c| c.per_event(solo_batch.events));
    report.add(
        "2",
        "AppendBatch, ingest alone (no projector running)",
        solo_batch.rate(),
        "events/s",
        &format!("{} hand-offs a batch", args.batch_handoffs),
    );
    report_errors(report, "AppendBatch alone errors", &solo_batch);
    report.ratio(
        "2",
        "AppendBatch alone / raw publish with ids (1)",
        solo_batch.rate(),
        raw_ids,
        "ingest's own share of the gap",
    );
    report_cpu_of(report, "2", "AppendBatch, ingest alone", solo_batch_cpu);
    let projector = services::start_projector(
        &nats.url(),
        catalog,
        &dir.path().join("views"),
        "baton-projector",
    )
    .await?;
    // The stream already holds the ingest-alone runs' events. Catching up
    // on them is a rebuild, measured in (3); the end-to-end runs measure a
    // projector that is live, so they start once it has.
    let backlog = services::last_sequence(&js, baton_log::subject::EVENTS_STREAM).await?;
    services::wait_acked(&js, "baton-projector", backlog).await?;
    // (1b) and the end-to-end run are measured in pairs, one right after
    // the other, and the pair with the median ratio is reported: the
    // machine's speed drifts by tens of percent within minutes, and a
    // ratio of two figures taken a minute apart measured the drift.
    let mut unary_pairs = Vec::new();
    let mut q = load::QueryLatency::default();
    for round in 0..args.pairs.max(1) {
        let clock = cpu::CpuClock::start(nats.pid());
        let bare_now = load::unary(
            &bare_channels,
            load::workload(&format!("bare{round}"), args.events, 11),
            args.clients,
            None,
        )
        .await?;
        let bare_cpu = clock.and_then(|c| c.per_event(bare_now.events));
        let stop_queries = CancellationToken::new();
        let queries = tokio::spawn(load::queries(
            services::channel(projector.addr).await?,
            Duration::from_millis(args.query_interval_ms),
            usize::MAX,
            stop_queries.clone(),
        ));
        let started = Instant::now();
        let clock = cpu::CpuClock::start(nats.pid());
        let e2e = load::unary(
            &ingest_channels,
            load::workload(&format!("uni{round}"), args.events, 12),
            args.clients,
            None,
        )
        .await?;
        services::wait_acked(&js, "baton-projector", e2e.last_sequence).await?;
        let until_applied = rate(e2e.events, started.elapsed());
        let e2e_cpu = clock.and_then(|c| c.per_event(e2e.events));
        stop_queries.cancel();
        q.merge(queries.await?);
        // Every pair's errors, not only the reported one's.
        report_errors(report, "bare tonic handler errors", &bare_now);
        report_errors(report, &format!("unary Append errors, pair {round}"), &e2e);
        unary_pairs.push(Pair {
            limit: bare_now.rate(),
            ours: e2e,
            until_applied,
            cpu: bare_cpu.zip(e2e_cpu),
        });
    }
    stop.cancel();
    let _ = bare_task.await;
    let (unary_ratios, median) = Pair::median(&mut unary_pairs).context("no unary pairs ran")?;
    let Pair {
        limit: bare_paired,
        ours: e2e,
        until_applied: e2e_rate,
        cpu: unary_cpu,
    } = median;
    report.add(
        "2",
        "unary Append, acknowledged by ingest",
        e2e.rate(),
        "events/s",
        &format!("{} clients", args.clients),
    );
    report.add(
        "2",
        "unary Append, until the projector applied the last",
        e2e_rate,
        "events/s",
        "",
    );
    report.add(
        "2",
        "unary Append p50",
        e2e.latency.quantile_ms(0.5),
        "ms",
        "",
    );
    report.add(
        "2",
        "unary Append p99",
        e2e.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    report.add(
        "2",
        "unary Append p99.9",
        e2e.latency.quantile_ms(0.999),
        "ms",
        "",
    );
    report.add(
        "1b",
        "bare tonic handler, run just before the median pair's end-to-end run",
        bare_paired,
        "req/s",
        "",
    );
    report.ratio(
        "2",
        "unary Append until applied / bare tonic handler (1b)",
        e2e_rate,
        bare_paired,
        &format!(
            "target >= 80%; median of {} pairs: {unary_ratios}",
            args.pairs.max(1)
        ),
    );
    report_cpu(
        report,
        unary_cpu,
        ("1b", "bare tonic handler (median pair)"),
        ("2", "unary Append until applied (median pair)"),
    );
    report.ratio(
        "2",
        "end to end / raw publish with ids (1)",
        e2e_rate,
        raw_ids,
        "",
    );
    report.add(
        "4",
        "GetCompliance (month) while ingesting p50",
        q.compliance.quantile_ms(0.5),
        "ms",
        &format!("{} calls", q.compliance.len()),
    );
    report.add(
        "4",
        "GetCompliance (month) while ingesting p99",
        q.compliance.quantile_ms(0.99),
        "ms",
        "",
    );
    report.add(
        "4",
        "ListBreaches while ingesting p50",
        q.breaches.quantile_ms(0.5),
        "ms",
        "first page of 100",
    );
    report.add(
        "4",
        "ListBreaches while ingesting p99",
        q.breaches.quantile_ms(0.99),
        "ms",
        "",
    );

    // (2) paced: at half the bare handler's rate (the target's load), and
    // at half of what ingest itself sustained (a load it can carry). The
    // pace halves the load; the clients stay as many as at full load, so
    // that a late answer delays its own client only. With half as many
    // sequential clients, 32 clients at 3 ms an answer carry at most
    // 32 / 3 ms = 10.7k/s (Little's law): below half of (1b) on a fast
    // day, and the latency measured would be the bench's own queue.
    for (what, seed, offered) in [
        ("half of (1b)", 13, bare_paired / 2.0),
        ("half of ingest's own rate", 16, e2e.rate() / 2.0),
    ] {
        let paced = load::unary(
            &ingest_channels,
            load::workload(&format!("half{seed}"), args.events, seed),
            args.clients,
            Some(offered),
        )
        .await?;
        report.add(
            "2",
            &format!("unary Append paced at {what}"),
            paced.rate(),
            "events/s",
            &format!("offered {offered:.0}/s, {} clients", args.clients),
        );
        report.add(
            "2",
            &format!("unary Append at {what} p50"),
            paced.latency.quantile_ms(0.5),
            "ms",
            "from the scheduled send",
        );
        report.add(
            "2",
            &format!("unary Append at {what} p99"),
            paced.latency.quantile_ms(0.99),
            "ms",
            "target < 10 ms at half of (1b)",
        );
        report_errors(report, "paced Append errors", &paced);
    }

    // (2) batches.
    // (2) batches, paired with raw publish with ids (1) like the unary runs.
    let mut batch_pairs = Vec::new();
    for round in 0..args.pairs.max(1) {
        // A stream of its own each round: the same message ids again
        // would be acked as duplicates without being stored.
        let clock = cpu::CpuClock::start(nats.pid());
        let raw_now = limits::raw_publish(
            &js,
            &format!("bench.pair{round}"),
            payload.clone(),
            args.raw_events,
            args.window,
            limits::Headers::Id,
        )
        .await?;
        let raw_cpu = clock.and_then(|c| c.per_event(args.raw_events));
        let started = Instant::now();
        let clock = cpu::CpuClock::start(nats.pid());
        let batch = load::batches(
            &ingest_channels,
            load::workload(&format!("bat{round}"), args.events, 14),
            args.clients,
            args.batch_handoffs,
        )
        .await?;
        services::wait_acked(&js, "baton-projector", batch.last_sequence).await?;
        let until_applied = rate(batch.events, started.elapsed());
        let batch_cpu = clock.and_then(|c| c.per_event(batch.events));
        report_errors(report, &format!("AppendBatch errors, pair {round}"), &batch);
        batch_pairs.push(Pair {
            limit: raw_now,
            ours: batch,
            until_applied,
            cpu: raw_cpu.zip(batch_cpu),
        });
    }
    let (batch_ratios, median) = Pair::median(&mut batch_pairs).context("no batch pairs ran")?;
    let Pair {
        limit: raw_ids_paired,
        ours: batch,
        until_applied: batch_e2e,
        cpu: batch_cpu,
    } = median;
    report.add(
        "2",
        "AppendBatch, acknowledged by ingest",
        batch.rate(),
        "events/s",
        &format!("{} hand-offs a batch", args.batch_handoffs),
    );
    report.add(
        "2",
        "AppendBatch, until the projector applied the last",
        batch_e2e,
        "events/s",
        "",
    );
    report.add(
        "2",
        "AppendBatch p99 per batch",
        batch.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    report.add(
        "1",
        "raw publish with ids, run just before the median pair's AppendBatch run",
        raw_ids_paired,
        "msg/s",
        "",
    );
    report.ratio(
        "2",
        "AppendBatch until applied / raw publish with ids (1)",
        batch_e2e,
        raw_ids_paired,
        &format!(
            "target >= 50%; median of {} pairs: {batch_ratios}",
            args.pairs.max(1)
        ),
    );
    report_cpu(
        report,
        batch_cpu,
        ("1", "raw publish with ids (median pair)"),
        ("2", "AppendBatch until applied (median pair)"),
    );

    // (5) breach detection delay on the live projector.
    if args.breach_clocks > 0 {
        let (delays, missing) = load::breach_delay(
            &client,
            &js,
            "main",
            args.breach_clocks,
            Duration::from_millis(args.breach_lead_ms),
            Duration::from_millis(args.breach_spread_ms),
        )
        .await?;
        report.add(
            "5",
            "breach delay p50",
            delays.quantile_ms(0.5),
            "ms",
            &format!("deadline to a NATS subscriber, {} clocks", delays.len()),
        );
        report.add(
            "5",
            "breach delay p99",
            delays.quantile_ms(0.99),
            "ms",
            "target < 1 s",
        );
        if missing > 0 {
            report.add("5", "breaches never seen", missing as f64, "breaches", "");
        }
    }

    // (1c) and (3): the raw consumer, then a rebuild, over the same stream.
    ingest.stop().await?;
    projector.stop().await?;
    let events = services::last_sequence(&js, baton_log::subject::EVENTS_STREAM).await?;
    // The projector's consumer names both of the stream's subjects as filters.
    let filters = [
        baton_log::subject::ALL_EVENTS,
        baton_log::subject::ALL_DISRUPTIONS,
    ];
    // It is slow: the first 10,000 events of the stream give its rate.
    let filtered = limits::raw_consume(
        &js,
        baton_log::subject::EVENTS_STREAM,
        events.min(10_000),
        500,
        &filters,
    )
    .await?;
    // The machine is shared and a single run of either swings by tens of
    // percent: take turns, --rebuild-runs times each, and compare medians.
    let (mut consumes, mut rebuilds) = (Vec::new(), Vec::new());
    for run in 0..args.rebuild_runs.max(1) {
        consumes.push(
            limits::raw_consume(&js, baton_log::subject::EVENTS_STREAM, events, 500, &[]).await?,
        );
        let rebuild_dir = tempfile::tempdir()?;
        let started = Instant::now();
        let rebuilt = services::start_projector(
            &nats.url(),
            catalog,
            &rebuild_dir.path().join("views"),
            &format!("bench-rebuild-{run}"),
        )
        .await?;
        rebuilds.push(rate(events as usize, started.elapsed()));
        rebuilt.stop().await?;
    }
    let (consume, consume_runs) = crate::stats::median(&mut consumes);
    let (rebuild, rebuild_runs) = crate::stats::median(&mut rebuilds);
    report.add(
        "1c",
        "raw pull consumer, fetch 500 + ack",
        consume,
        "events/s",
        &format!("{events} events; median of {consume_runs}"),
    );
    report.add(
        "1c",
        "raw pull consumer with the projector's two filter subjects",
        filtered,
        "events/s",
        "same stream, same batches; its first 10,000 events",
    );
    report.add(
        "3",
        "rebuild from an empty data dir",
        rebuild,
        "events/s",
        &format!("start to serving; median of {rebuild_runs}, each after a (1c) run"),
    );
    report.ratio(
        "3",
        "rebuild / raw consumer (1c)",
        rebuild,
        consume,
        "target >= 50%",
    );
    report.ratio(
        "3",
        "rebuild / raw consumer with the projector's filters",
        rebuild,
        filtered,
        "",
    );

    // (3) the same events without NATS: what bounds the rebuild.
    let stored = projection::fetch_all(&js, baton_log::subject::EVENTS_STREAM, events).await?;
    let catalog_json = std::fs::read_to_string(catalog)
        .with_context(|| format!("reading {}", catalog.display()))?;
    let parsed = std::sync::Arc::new(baton_domain::Catalog::from_json(&catalog_json)?);
    let stored = std::sync::Arc::new(stored);
    let mut timings = Vec::new();
    for _ in 0..args.rebuild_runs.max(1) {
        let (stored, parsed) = (stored.clone(), parsed.clone());
        let dir = tempfile::tempdir()?;
        timings.push(
            tokio::task::spawn_blocking(move || {
                projection::project(
                    &stored,
                    &parsed,
                    &dir.path().join("views"),
                    baton_projector::config::DEFAULT_BATCH_SIZE,
                )
            })
            .await??,
        );
    }
    let rates = |of: fn(&projection::Timing) -> f64| timings.iter().map(of).collect::<Vec<_>>();
    let mut sequential = rates(projection::Timing::sequential_rate);
    let mut computing = rates(|t| rate(t.events, t.compute));
    let mut applying = rates(|t| rate(t.events, t.apply));
    let (sequential, runs) = crate::stats::median(&mut sequential);
    let (computing, _) = crate::stats::median(&mut computing);
    let (applying, _) = crate::stats::median(&mut applying);
    report.add(
        "3",
        "projection alone, from memory: compute, then sled apply",
        sequential,
        "events/s",
        &format!(
            "the rebuild's events, {} a batch, no NATS; median of {runs}",
            baton_projector::config::DEFAULT_BATCH_SIZE
        ),
    );
    report.add(
        "3",
        "projection alone: decode, fold and seal",
        computing,
        "events/s",
        "the projector's computing thread",
    );
    report.add(
        "3",
        "projection alone: sled applying the sealed batches",
        applying,
        "events/s",
        "the projector's landing thread",
    );
    report.ratio(
        "3",
        "rebuild / projection alone, the slower of its two threads",
        rebuild,
        computing.min(applying),
        "how near the pipeline comes to its own bound",
    );
    report.ratio(
        "1",
        "raw sled / raw publish with ids",
        sled_rate,
        raw_ids,
        "which limit binds",
    );

    // ---- (7) scale-out: the same stream, split among projectors ----
    for &partitions in args.scale_out.iter().filter(|n| **n > 1) {
        let (sourced, together) = scale_out(&js, &nats.url(), catalog, events, partitions).await?;
        report.add(
            "7",
            &format!("JetStream splitting the stream into {partitions} partitions"),
            sourced,
            "events/s",
            "sourcing with a partition() transform, before the projectors start",
        );
        report.add(
            "7",
            &format!("{partitions} projectors rebuilding their partitions together"),
            together,
            "events/s",
            "start to all serving, same machine",
        );
        report.ratio(
            "7",
            &format!("{partitions} projectors / one projector's rebuild (3)"),
            together,
            rebuild,
            "above 100% when adding instances raises throughput",
        );
    }

    Ok(Figures {
        raw_ids,
        e2e: e2e_rate,
    })
}

/// Splits the events stream into `partitions` (waiting until JetStream has
/// copied all of it) and rebuilds every partition's views at once with one
/// projector each; returns (splitting rate, combined rebuild rate).
async fn scale_out(
    js: &async_nats::jetstream::Context,
    nats_url: &str,
    catalog: &Path,
    events: u64,
    partitions: u32,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut streams = Vec::new();
    for index in 0..partitions {
        let partition = baton_log::Partition::new(partitions, index)?;
        baton_log::partitions::ensure(js, partition, &baton_log::StreamSettings::default()).await?;
        streams.push(partition);
    }
    // Every partition gets its hand-off events and every disruption.
    let disruptions = services::count_subject(
        js,
        baton_log::subject::EVENTS_STREAM,
        baton_log::subject::ALL_DISRUPTIONS,
    )
    .await?;
    let expected = events + disruptions * u64::from(partitions - 1);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut copied = 0;
        for partition in &streams {
            copied += services::last_sequence(js, &partition.stream()).await?;
        }
        let complete = copied >= expected;
        if complete {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "partitions hold {copied} of {expected} events after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sourced = rate(events as usize, started.elapsed());

    let dirs = tempfile::tempdir()?;
    let started = Instant::now();
    let starts = streams.iter().map(|partition| {
        let dir = dirs.path().join(format!("views-{}", partition.index));
        async move {
            services::start_partition_projector(
                nats_url,
                catalog,
                &dir,
                "bench-scale-out",
                partition.count,
                partition.index,
            )
            .await
        }
    });
    let running = futures::future::try_join_all(starts).await?;
    let together = rate(events as usize, started.elapsed());
    for projector in running {
        projector.stop().await?;
    }
    Ok((sourced, together))
}

/// A row for the appends a run saw refused, if any (a run with errors is
/// not a measurement of the happy path).
/// What an event cost in CPU in a limit's run and in Baton's, and their
/// ratio: the most Baton's rate can be of the limit's while both runs keep
/// every core busy.
fn report_cpu(
    report: &mut Report,
    cpu: Option<(cpu::CpuPerEvent, cpu::CpuPerEvent)>,
    limit: (&str, &str),
    ours: (&str, &str),
) {
    let Some((limit_cpu, ours_cpu)) = cpu else {
        return;
    };
    for ((section, name), cost) in [(limit, limit_cpu), (ours, ours_cpu)] {
        report_cpu_of(report, section, name, Some(cost));
    }
    report.ratio(
        ours.0,
        &format!("CPU an event, {} / {}", limit.1, ours.1),
        limit_cpu.total_us(),
        ours_cpu.total_us(),
        "the most the ratio above can reach while both runs keep every core busy",
    );
}

/// One run's CPU an event, split between the bench process and nats-server.
fn report_cpu_of(report: &mut Report, section: &str, name: &str, cost: Option<cpu::CpuPerEvent>) {
    if let Some(cost) = cost {
        report.add(
            section,
            &format!("{name}: CPU an event"),
            cost.total_us(),
            "us",
            &format!(
                "bench process {:.1} + nats-server {:.1}; {:.2} cores busy",
                cost.own_us, cost.nats_us, cost.cores_busy
            ),
        );
    }
}

fn report_errors(report: &mut Report, name: &str, outcome: &load::Outcome) {
    if outcome.errors > 0 {
        report.add(
            "2",
            name,
            outcome.errors as f64,
            "",
            outcome.first_error.as_deref().unwrap_or(""),
        );
    }
}

async fn sync_always(
    args: &Args,
    report: &mut Report,
    nats: &NatsServer,
    catalog: &Path,
    payload: bytes::Bytes,
) -> anyhow::Result<Figures> {
    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let raw = limits::raw_publish(
        &js,
        "bench.raw",
        payload.clone(),
        args.raw_events / 4,
        args.window,
        limits::Headers::None,
    )
    .await?;
    report.add(
        "1s",
        "sync always: raw publish, no ids",
        raw,
        "msg/s",
        "nats-server jetstream { sync_interval: always }",
    );
    let raw_ids = limits::raw_publish(
        &js,
        "bench.rawid",
        payload,
        args.raw_events / 4,
        args.window,
        limits::Headers::Id,
    )
    .await?;
    report.add(
        "1s",
        "sync always: raw publish, with ids",
        raw_ids,
        "msg/s",
        "",
    );

    let dir = tempfile::tempdir()?;
    let ingest = services::start_ingest(&nats.url(), catalog).await?;
    let projector = services::start_projector(
        &nats.url(),
        catalog,
        &dir.path().join("views"),
        "baton-projector",
    )
    .await?;
    let ingest_channels = channels(ingest.addr, args.connections).await?;
    let started = Instant::now();
    let e2e = load::unary(
        &ingest_channels,
        load::workload("syn", args.events / 2, 15),
        args.clients,
        None,
    )
    .await?;
    services::wait_acked(&js, "baton-projector", e2e.last_sequence).await?;
    let e2e_rate = rate(e2e.events, started.elapsed());
    report.add(
        "2s",
        "sync always: unary Append, until applied",
        e2e_rate,
        "events/s",
        &format!("{} clients", args.clients),
    );
    report.add(
        "2s",
        "sync always: unary Append p50",
        e2e.latency.quantile_ms(0.5),
        "ms",
        "",
    );
    report.add(
        "2s",
        "sync always: unary Append p99",
        e2e.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    if e2e.errors > 0 {
        report.add(
            "2s",
            "sync always: errors",
            e2e.errors as f64,
            "",
            e2e.first_error.as_deref().unwrap_or(""),
        );
    }
    ingest.stop().await?;
    projector.stop().await?;
    Ok(Figures {
        raw_ids,
        e2e: e2e_rate,
    })
}
