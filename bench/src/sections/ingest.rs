//! Baton on top of the limits, (2), (4) and (5): ingest alone, then ingest
//! and a live projector end to end, each paired with the limit it is
//! compared with, queries while ingesting, paced load, and breach delay.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{
    bare::BareHandler,
    rows::{report_cpu, report_cpu_of, report_errors},
    Setup,
};
use crate::{
    cpu, limits, load,
    pairs::Pair,
    services::{self, Running},
    stats::{rate, Report},
};

/// (2) Unary Append with ingest alone, as (1b) ran: no projector and no
/// queries sharing the machine's cores, so the ratio shows ingest's own
/// cost. Returns its rate.
pub async fn unary_alone(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest_channels: &[Channel],
    bare_alone: f64,
) -> anyhow::Result<f64> {
    let args = setup.args;
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let solo = load::unary(
        ingest_channels,
        load::workload(setup.traffic, "solo", args.events, 10),
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
        bare_alone,
        "ingest's own share of the gap",
    );
    report_cpu_of(report, "2", "unary Append, ingest alone", solo_cpu);
    Ok(solo.rate())
}

/// (2) AppendBatch with ingest alone, against raw publish with ids (1).
pub async fn batch_alone(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest_channels: &[Channel],
    raw_ids: f64,
) -> anyhow::Result<()> {
    let args = setup.args;
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let solo_batch = load::batches(
        ingest_channels,
        load::workload(setup.traffic, "solob", args.events, 9),
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
    Ok(())
}

/// Starts the projector with its views under `dir` and waits until it has
/// caught up. The stream already holds the ingest-alone runs' events.
/// Catching up on them is a rebuild, measured in (3); the end-to-end runs
/// measure a projector that is live, so they start once it has.
pub async fn start_live_projector(setup: &Setup<'_>, dir: &Path) -> anyhow::Result<Running> {
    let projector = services::start_projector(
        &setup.nats.url(),
        setup.catalog,
        &dir.join("views"),
        "baton-projector",
    )
    .await?;
    let backlog = services::last_sequence(&setup.js, baton_log::subject::EVENTS_STREAM).await?;
    services::wait_acked(&setup.js, "baton-projector", backlog).await?;
    Ok(projector)
}

/// The unary pairs as they ran, and the queries' latency over all of them.
pub struct UnaryPairs {
    pairs: Vec<Pair>,
    queries: load::QueryLatency,
}

/// (2) with (4): (1b) and the end-to-end run are measured in pairs, one
/// right after the other, and the pair with the median ratio is reported:
/// the machine's speed drifts by tens of percent within minutes, and a
/// ratio of two figures taken a minute apart measured the drift.
pub async fn unary_pairs(
    setup: &Setup<'_>,
    report: &mut Report,
    bare: &BareHandler,
    ingest_channels: &[Channel],
    projector: SocketAddr,
) -> anyhow::Result<UnaryPairs> {
    let mut pairs = Vec::new();
    let mut queries = load::QueryLatency::default();
    for round in 0..setup.args.pairs.max(1) {
        let (pair, latency) =
            unary_pair(setup, report, bare, ingest_channels, projector, round).await?;
        pairs.push(pair);
        queries.merge(latency);
    }
    Ok(UnaryPairs { pairs, queries })
}

/// One pair: the bare handler's run, then Baton's end to end with queries
/// alongside (4); the queries' latency during Baton's run.
async fn unary_pair(
    setup: &Setup<'_>,
    report: &mut Report,
    bare: &BareHandler,
    ingest_channels: &[Channel],
    projector: SocketAddr,
    round: usize,
) -> anyhow::Result<(Pair, load::QueryLatency)> {
    let args = setup.args;
    let (bare_now, bare_cpu) = bare.run(setup, &format!("bare{round}")).await?;
    let stop_queries = CancellationToken::new();
    let queries = tokio::spawn(load::queries(
        services::channel(projector).await?,
        Duration::from_millis(args.query_interval_ms),
        usize::MAX,
        stop_queries.clone(),
    ));
    let started = Instant::now();
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let e2e = load::unary(
        ingest_channels,
        load::workload(setup.traffic, &format!("uni{round}"), args.events, 12),
        args.clients,
        None,
    )
    .await?;
    services::wait_acked(&setup.js, "baton-projector", e2e.last_sequence).await?;
    let until_applied = rate(e2e.events, started.elapsed());
    let e2e_cpu = clock.and_then(|c| c.per_event(e2e.events));
    stop_queries.cancel();
    let latency = queries.await?;
    // Every pair's errors, not only the reported one's.
    report_errors(report, "bare tonic handler errors", &bare_now);
    report_errors(report, &format!("unary Append errors, pair {round}"), &e2e);
    let pair = Pair {
        limit: bare_now.rate(),
        ours: e2e,
        until_applied,
        cpu: bare_cpu.zip(e2e_cpu),
    };
    Ok((pair, latency))
}

/// What the median unary pair measured, for the sections after it.
pub struct Unary {
    /// The bare handler's req/s in the median pair.
    pub bare: f64,
    /// Baton's events/s as acknowledged by ingest.
    pub acknowledged: f64,
    /// Baton's events/s until the projector applied the last.
    pub until_applied: f64,
    /// CPU an event of the bare handler and of Baton's run (until
    /// applied), in the median pair.
    pub cpu: Option<(cpu::CpuPerEvent, cpu::CpuPerEvent)>,
}

/// (2) and (4): the median unary pair's rows and the queries' latency.
pub fn report_unary_pairs(
    setup: &Setup<'_>,
    report: &mut Report,
    unary: UnaryPairs,
    raw_ids: f64,
) -> anyhow::Result<Unary> {
    let UnaryPairs { mut pairs, queries } = unary;
    let (ratios, median) = Pair::median(&mut pairs).context("no unary pairs ran")?;
    let figures = report_unary_median(setup, report, median, &ratios, raw_ids);
    report_queries_while_ingesting(report, &queries);
    Ok(figures)
}

fn report_unary_median(
    setup: &Setup<'_>,
    report: &mut Report,
    median: Pair,
    ratios: &str,
    raw_ids: f64,
) -> Unary {
    let args = setup.args;
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
    report_unary_latency(report, &e2e);
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
        &format!("median of {} pairs: {ratios}", args.pairs.max(1)),
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
    Unary {
        bare: bare_paired,
        acknowledged: e2e.rate(),
        until_applied: e2e_rate,
        cpu: unary_cpu,
    }
}

fn report_unary_latency(report: &mut Report, e2e: &load::Outcome) {
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
}

/// (4) The queries a wall screen makes, while the unary pairs ingested.
fn report_queries_while_ingesting(report: &mut Report, q: &load::QueryLatency) {
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
}

/// (2) paced: at half the bare handler's rate (the target's load), and
/// at half of what ingest itself sustained (a load it can carry). The
/// pace halves the load; the clients stay as many as at full load, so
/// that a late answer delays its own client only. With half as many
/// sequential clients, 32 clients at 3 ms an answer carry at most
/// 32 / 3 ms = 10.7k/s (Little's law): below half of (1b) on a fast
/// day, and the latency measured would be the bench's own queue.
pub async fn paced(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest_channels: &[Channel],
    unary: &Unary,
) -> anyhow::Result<()> {
    let args = setup.args;
    for (what, seed, offered) in [
        ("half of (1b)", 13, unary.bare / 2.0),
        ("half of ingest's own rate", 16, unary.acknowledged / 2.0),
    ] {
        let paced = load::unary(
            ingest_channels,
            load::workload(setup.traffic, &format!("half{seed}"), args.events, seed),
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
    Ok(())
}

/// What the median AppendBatch pair measured, for the sections after it.
pub struct Batch {
    /// Baton's events/s until the projector applied the last.
    pub until_applied: f64,
    /// CPU an event of raw publish with ids and of Baton's run (until
    /// applied), in the median pair.
    pub cpu: Option<(cpu::CpuPerEvent, cpu::CpuPerEvent)>,
}

/// (2) AppendBatch end to end, paired with raw publish with ids (1) like
/// the unary runs; the pair with the median ratio is reported.
pub async fn batch_pairs(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest_channels: &[Channel],
) -> anyhow::Result<Batch> {
    let mut pairs = Vec::new();
    for round in 0..setup.args.pairs.max(1) {
        pairs.push(batch_pair(setup, report, ingest_channels, round).await?);
    }
    let (ratios, median) = Pair::median(&mut pairs).context("no batch pairs ran")?;
    let batch = Batch {
        until_applied: median.until_applied,
        cpu: median.cpu,
    };
    report_batch_median(setup, report, median, &ratios);
    Ok(batch)
}

/// One pair: raw publish with ids, then Baton's AppendBatch end to end.
async fn batch_pair(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest_channels: &[Channel],
    round: usize,
) -> anyhow::Result<Pair> {
    let args = setup.args;
    // A stream of its own each round: the same message ids again
    // would be acked as duplicates without being stored.
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let raw_now = limits::raw_publish(
        &setup.js,
        &format!("bench.pair{round}"),
        setup.payload.clone(),
        args.raw_events,
        args.window,
        limits::Headers::Id,
        setup.traffic,
    )
    .await?;
    let raw_cpu = clock.and_then(|c| c.per_event(args.raw_events));
    let started = Instant::now();
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let batch = load::batches(
        ingest_channels,
        load::workload(setup.traffic, &format!("bat{round}"), args.events, 14),
        args.clients,
        args.batch_handoffs,
    )
    .await?;
    services::wait_acked(&setup.js, "baton-projector", batch.last_sequence).await?;
    let until_applied = rate(batch.events, started.elapsed());
    let batch_cpu = clock.and_then(|c| c.per_event(batch.events));
    report_errors(report, &format!("AppendBatch errors, pair {round}"), &batch);
    Ok(Pair {
        limit: raw_now,
        ours: batch,
        until_applied,
        cpu: raw_cpu.zip(batch_cpu),
    })
}

fn report_batch_median(setup: &Setup<'_>, report: &mut Report, median: Pair, ratios: &str) {
    let args = setup.args;
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
        &format!("median of {} pairs: {ratios}", args.pairs.max(1)),
    );
    report_cpu(
        report,
        batch_cpu,
        ("1", "raw publish with ids (median pair)"),
        ("2", "AppendBatch until applied (median pair)"),
    );
}

/// (5) Breach detection delay on the live projector, unless
/// --breach-clocks is 0.
pub async fn breach_delay(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let args = setup.args;
    if args.breach_clocks == 0 {
        return Ok(());
    }
    let (delays, missing) = load::breach_delay(
        &setup.client,
        &setup.js,
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
    Ok(())
}
