//! The limits and ingest again on a nats-server with `sync_interval:
//! always` (an fsync per write), as ratios to the same runs on one with
//! default syncing: what durability on every write costs.

use std::{path::Path, time::Instant};

use baton_testkit::NatsServer;

use crate::{
    limits, load, services,
    stats::{rate, Report},
    traffic::Traffic,
    Args, Figures,
};

/// Starts a nats-server that syncs every write, measures on it, and adds
/// the ratios to `default`, the figures with default syncing.
pub async fn run(
    args: &Args,
    report: &mut Report,
    catalog: &Path,
    traffic: &Traffic,
    payload: bytes::Bytes,
    default: &Figures,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("sync-always.conf");
    std::fs::write(&conf, "jetstream {\n  sync_interval: always\n}\n")?;
    let conf = conf.display().to_string();
    let nats = NatsServer::start_with(&["-c", &conf]);
    let always = measure(args, report, &nats, catalog, traffic, payload).await?;
    drop(nats);
    report.ratio(
        "1s",
        "raw publish with ids, sync always / default",
        always.raw_ids,
        default.raw_ids,
        "cost of an fsync per write",
    );
    report.ratio(
        "2s",
        "end-to-end unary, sync always / default",
        always.e2e,
        default.e2e,
        "target >= 50%",
    );
    report.ratio(
        "2s",
        "end-to-end AppendBatch, sync always / default",
        always.batch_e2e,
        default.batch_e2e,
        "target >= 50%",
    );
    report.ratio(
        "2s",
        "sync always: unary Append until applied / raw publish with ids, sync always",
        always.e2e,
        always.raw_ids,
        "how near Baton comes to the durable limit: nats-server fsyncs every stored message",
    );
    report.ratio(
        "2s",
        "sync always: AppendBatch until applied / raw publish with ids, sync always",
        always.batch_e2e,
        always.raw_ids,
        "",
    );
    Ok(())
}

async fn measure(
    args: &Args,
    report: &mut Report,
    nats: &NatsServer,
    catalog: &Path,
    traffic: &Traffic,
    payload: bytes::Bytes,
) -> anyhow::Result<Figures> {
    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let raw_ids = raw_publish(args, report, &js, payload, traffic).await?;
    let (e2e, batch_e2e) = until_applied(args, report, nats, &js, catalog, traffic).await?;
    Ok(Figures {
        raw_ids,
        e2e,
        batch_e2e,
    })
}

/// (1s) Raw publish, a quarter of --raw-events (every write waits for the
/// disk), without and with message ids; returns the rate with ids.
async fn raw_publish(
    args: &Args,
    report: &mut Report,
    js: &async_nats::jetstream::Context,
    payload: bytes::Bytes,
    traffic: &Traffic,
) -> anyhow::Result<f64> {
    let raw = limits::raw_publish(
        js,
        "bench.raw",
        payload.clone(),
        args.raw_events / 4,
        args.window,
        limits::Headers::None,
        traffic,
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
        js,
        "bench.rawid",
        payload,
        args.raw_events / 4,
        args.window,
        limits::Headers::Id,
        traffic,
    )
    .await?;
    report.add(
        "1s",
        "sync always: raw publish, with ids",
        raw_ids,
        "msg/s",
        "",
    );
    Ok(raw_ids)
}

/// (2s) Unary Append, then AppendBatch (as the default run's batches),
/// end to end, half of --events each, with ingest and a projector on this
/// server; returns the events/s of each until applied.
async fn until_applied(
    args: &Args,
    report: &mut Report,
    nats: &NatsServer,
    js: &async_nats::jetstream::Context,
    catalog: &Path,
    traffic: &Traffic,
) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let ingest = services::start_ingest(&nats.url(), catalog).await?;
    let projector = services::start_projector(
        &nats.url(),
        catalog,
        &dir.path().join("views"),
        "baton-projector",
    )
    .await?;
    let ingest_channels = services::channels(ingest.addr, args.connections).await?;
    let started = Instant::now();
    let e2e = load::unary(
        &ingest_channels,
        load::workload(traffic, "syn", args.events / 2, 15),
        args.clients,
        None,
    )
    .await?;
    services::wait_acked(js, "baton-projector", e2e.last_sequence).await?;
    let e2e_rate = rate(e2e.events, started.elapsed());
    report_unary(args, report, e2e_rate, &e2e);
    let batch_rate = batch_until_applied(args, report, js, &ingest_channels, traffic).await?;
    ingest.stop().await?;
    projector.stop().await?;
    Ok((e2e_rate, batch_rate))
}

/// (2s) AppendBatch end to end, half of --events in batches of
/// --batch-handoffs hand-offs from --clients clients, as the default
/// run's pairs; events/s until the projector applied the last.
async fn batch_until_applied(
    args: &Args,
    report: &mut Report,
    js: &async_nats::jetstream::Context,
    ingest_channels: &[tonic::transport::Channel],
    traffic: &Traffic,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let batch = load::batches(
        ingest_channels,
        load::workload(traffic, "synb", args.events / 2, 17),
        args.clients,
        args.batch_handoffs,
    )
    .await?;
    services::wait_acked(js, "baton-projector", batch.last_sequence).await?;
    let batch_rate = rate(batch.events, started.elapsed());
    report.add(
        "2s",
        "sync always: AppendBatch, until applied",
        batch_rate,
        "events/s",
        &format!("{} hand-offs a batch", args.batch_handoffs),
    );
    report.add(
        "2s",
        "sync always: AppendBatch p99 per batch",
        batch.latency.quantile_ms(0.99),
        "ms",
        "",
    );
    if batch.errors > 0 {
        report.add(
            "2s",
            "sync always: AppendBatch errors",
            batch.errors as f64,
            "",
            batch.first_error.as_deref().unwrap_or(""),
        );
    }
    Ok(batch_rate)
}

fn report_unary(args: &Args, report: &mut Report, e2e_rate: f64, e2e: &load::Outcome) {
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
}
