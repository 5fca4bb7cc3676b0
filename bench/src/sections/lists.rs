//! (4l) What a list costs against the size of the hand-offs behind its
//! rows: ListOpenClocks over hand-offs whose requests carry large
//! attributes. A list's cost should follow the rows it returns, not what
//! the hand-offs behind them carry.
//!
//! Runs last, on a projector of its own, so its large events reach no
//! other section's stream reads.

use std::time::Instant;

use baton_proto::v1::{self, query_client::QueryClient, Priority};

use super::Setup;
use crate::{
    load, services,
    stats::{Report, Samples},
    traffic::{self, now_millis, timestamp},
};

/// Open hand-offs the lists walk.
const HANDOFFS: usize = 10_000;
/// Attribute bytes each request carries: 30 values of 290 bytes.
const ATTRIBUTES: usize = 30;
const VALUE_BYTES: usize = 290;
/// Calls timed for each list size.
const CALLS: usize = 200;

/// Publishes the heavy requests, waits until a fresh projector applied
/// them, and times ListOpenClocks for 1 and for 50 rows.
pub async fn heavy_open_clocks(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let projector = super::ingest::start_live_projector(setup, dir.path()).await?;
    let now = now_millis();
    let events = (0..HANDOFFS).map(|i| {
        let id = format!("heavy-h{}", traffic::serial(i));
        let event = v1::HandoffEvent {
            event_id: "e0".into(),
            handoff_id: id.clone(),
            r#type: v1::EventType::Requested as i32,
            occurred_at: Some(timestamp(now)),
            kind: "repair".into(),
            supplier: "engineering".into(),
            customer: "icu".into(),
            priority: Priority::Routine as i32,
            actor: "bench-heavy".into(),
            version: 1,
            recorded_at: Some(timestamp(now)),
            attributes: (0..ATTRIBUTES)
                .map(|k| (format!("note-{k:02}"), "x".repeat(VALUE_BYTES)))
                .collect(),
            ..Default::default()
        };
        (format!("baton.handoff.{id}.repair.engineering.icu"), event)
    });
    let last = load::publish_recorded(&setup.js, events, setup.args.window).await?;
    services::wait_acked(&setup.js, "baton-projector", last).await?;
    let mut query = QueryClient::new(services::channel(projector.addr).await?);
    for rows in [1u32, 50] {
        let mut latency = Samples::with_capacity(CALLS);
        for _ in 0..CALLS {
            let started = Instant::now();
            let listed = query
                .list_open_clocks(v1::ListOpenClocksRequest {
                    limit: rows,
                    ..Default::default()
                })
                .await?
                .into_inner();
            latency.push(started.elapsed());
            anyhow::ensure!(listed.clocks.len() == rows as usize, "{rows} rows asked");
        }
        let name = |q: &str| {
            let plural = if rows == 1 { "" } else { "s" };
            format!("ListOpenClocks, {rows} row{plural}, {q}")
        };
        let note = format!(
            "{HANDOFFS} open hand-offs with {} KB of request attributes each, {CALLS} calls",
            ATTRIBUTES * VALUE_BYTES / 1000
        );
        report.add("4l", &name("p50"), latency.quantile_ms(0.50), "ms", &note);
        report.add("4l", &name("p99"), latency.quantile_ms(0.99), "ms", "");
    }
    projector.stop().await?;
    Ok(())
}
