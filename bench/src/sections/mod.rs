//! The sections measured against one nats-server with default syncing:
//! the limits (1) and (1b), Baton on top of them (2), (4) and (5), HL7
//! through the gateway against (2) in (2h), the
//! raw consumer and the rebuild (1c) and (3), a list over heavy hand-offs
//! (4l), each end-to-end run's CPU an
//! event against its limit pipeline's ((1b) or raw publish, then (1c),
//! then raw sled with the views' minimum), and the scale-out (7). Each
//! section is a function that adds its rows to the report; [`main_server`]
//! runs them in the order the report lists them and hands each the
//! figures it compares with.

mod bare;
mod gateway;
mod ingest;
mod lists;
mod rebuild;
mod rows;

use std::path::Path;

use baton_testkit::NatsServer;

use crate::{cpu, services, stats::Report, traffic::Traffic, Args, Figures};

/// What every section run against the nats-server needs.
pub struct Setup<'a> {
    pub args: &'a Args,
    pub nats: &'a NatsServer,
    pub client: async_nats::Client,
    pub js: async_nats::jetstream::Context,
    /// The catalog the services run on.
    pub catalog: &'a Path,
    /// The traffic of that catalog.
    pub traffic: &'a Traffic,
    /// What every raw publish sends: a realistic recorded event.
    pub payload: bytes::Bytes,
}

/// Runs every section against `nats` in order; returns the figures the
/// runs against a nats-server that syncs every write compare with.
pub async fn main_server(
    args: &Args,
    report: &mut Report,
    nats: &NatsServer,
    catalog: &Path,
    traffic: &Traffic,
    payload: bytes::Bytes,
) -> anyhow::Result<Figures> {
    let client = async_nats::connect(nats.url()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let setup = Setup {
        args,
        nats,
        client,
        js,
        catalog,
        traffic,
        payload,
    };

    let raw_ids = bare::raw_publish(&setup, report).await?;
    let (sled_rate, sled_cpu) = bare::raw_sled_minimum(&setup, report).await?;
    let bare_handler = bare::BareHandler::start(&setup).await?;
    let bare_alone = bare_handler.run_alone(&setup, report).await?;

    // The live projector's views are kept until every section has run,
    // so that deleting them does not share the disk with a measurement.
    let views = tempfile::tempdir()?;
    let ingest = services::start_ingest(&nats.url(), catalog).await?;
    let ingest_channels = services::channels(ingest.addr, args.connections).await?;
    let unary_alone = ingest::unary_alone(&setup, report, &ingest_channels, bare_alone).await?;
    gateway::hl7_orders(&setup, report, ingest.addr, unary_alone).await?;
    ingest::batch_alone(&setup, report, &ingest_channels, raw_ids).await?;
    let projector = ingest::start_live_projector(&setup, views.path()).await?;
    let unary = ingest::unary_pairs(
        &setup,
        report,
        &bare_handler,
        &ingest_channels,
        projector.addr,
    )
    .await?;
    bare_handler.stop().await;
    let unary = ingest::report_unary_pairs(&setup, report, unary, raw_ids)?;
    ingest::paced(&setup, report, &ingest_channels, &unary).await?;
    let batch = ingest::batch_pairs(&setup, report, &ingest_channels).await?;
    ingest::breach_delay(&setup, report).await?;
    ingest.stop().await?;
    projector.stop().await?;

    let events = services::last_sequence(&setup.js, baton_log::subject::EVENTS_STREAM).await?;
    let consumed = rebuild::consume_and_rebuild(&setup, report, events).await?;
    rebuild::projection_alone(&setup, report, events, consumed.rebuild).await?;
    report.ratio(
        "1",
        "raw sled minimum / raw publish with ids",
        sled_rate,
        raw_ids,
        "which limit binds",
    );
    let limits = Limits {
        sled: sled_cpu,
        consumer: consumed.consumer_cpu,
    };
    report_limit_pipelines(report, &limits, &unary, &batch);
    rebuild::scale_out(&setup, report, events, consumed.rebuild).await?;
    lists::heavy_open_clocks(&setup, report).await?;
    drop(views);

    Ok(Figures {
        raw_ids,
        e2e: unary.until_applied,
        batch_e2e: batch.until_applied,
    })
}

/// What the limits every pipeline shares cost in CPU an event.
struct Limits {
    /// Raw sled with the views' minimum (1).
    sled: Option<cpu::CpuPerEvent>,
    /// The raw pull consumer (1c), its median run.
    consumer: Option<cpu::CpuPerEvent>,
}

/// (1) and (2) Each end-to-end run's CPU an event against its limit
/// pipeline's: the publishing limit its pair ran ((1b) for unary, raw
/// publish with ids for AppendBatch), then (1c), then raw sled with the
/// views' minimum.
fn report_limit_pipelines(
    report: &mut Report,
    limits: &Limits,
    unary: &ingest::Unary,
    batch: &ingest::Batch,
) {
    let tail = [("(1c)", limits.consumer), ("raw sled minimum", limits.sled)];
    let unary_pipeline = rows::LimitPipeline {
        name: "limit pipeline",
        parts: [("(1b) median pair", unary.cpu.map(|c| c.0))]
            .into_iter()
            .chain(tail)
            .collect(),
        ours: unary.cpu.map(|c| c.1),
        ratio: "unary Append until applied CPU / limit pipeline CPU",
        target: "target <= 1.2",
    };
    rows::report_limit_pipeline(report, &unary_pipeline);
    let batch_pipeline = rows::LimitPipeline {
        name: "AppendBatch limit",
        parts: [("raw publish with ids median pair", batch.cpu.map(|c| c.0))]
            .into_iter()
            .chain(tail)
            .collect(),
        ours: batch.cpu.map(|c| c.1),
        ratio: "AppendBatch until applied CPU / its limit",
        target: "target <= 1.3",
    };
    rows::report_limit_pipeline(report, &batch_pipeline);
}
