//! The limits, (1) and (1b): what JetStream, sled and a bare tonic handler
//! that only publishes do, with nothing of Baton on top.

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{rows::report_cpu_of, Setup};
use crate::{cpu, limits, load, services, stats::Report};

/// (1) Raw JetStream publish, bare and with each set of headers ingest
/// might send, and the history lookup ingest does for an uncached
/// hand-off; returns the rate with message ids, the limit for batch ingest.
pub async fn raw_publish(setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<f64> {
    let args = setup.args;
    let raw = publish(setup, "bench.raw", limits::Headers::None).await?;
    report.add(
        "1",
        "raw JetStream publish, no ids",
        raw,
        "msg/s",
        &format!("{} acks in flight, file storage", args.window),
    );
    let raw_ids = publish(setup, "bench.rawid", limits::Headers::Id).await?;
    report.add(
        "1",
        "raw JetStream publish, with message ids",
        raw_ids,
        "msg/s",
        "the limit for batch ingest",
    );
    let conditional = publish(setup, "bench.rawc", limits::Headers::Conditional).await?;
    report.add(
        "1",
        "raw JetStream publish, ids + ingest's condition on the hand-off's subjects",
        conditional,
        "msg/s",
        "Nats-Expected-Last-Subject-Sequence(-Subject) on <prefix>.<id>.>, the traffic's routes",
    );
    let id_last = publish(setup, "bench.rawl", limits::Headers::IdLast).await?;
    report.add(
        "1",
        "raw JetStream publish, ids + the condition with the id last (Baton's old subjects)",
        id_last,
        "msg/s",
        "<prefix>.<kind>.<supplier>.<customer>.<id>, condition on <prefix>.*.*.*.<id>",
    );
    let lookups =
        limits::raw_history_lookups(&setup.js, "bench.rawc", args.raw_events / 10, args.clients)
            .await?;
    report.add(
        "1",
        "raw JetStream history lookup of a new hand-off",
        lookups,
        "lookups/s",
        "direct get, first message on <prefix>.<id>.>, as ingest does for an uncached hand-off",
    );
    Ok(raw_ids)
}

/// One raw publish run of --raw-events payloads to `stream`, msg/s.
async fn publish(setup: &Setup<'_>, stream: &str, headers: limits::Headers) -> anyhow::Result<f64> {
    limits::raw_publish(
        &setup.js,
        stream,
        setup.payload.clone(),
        setup.args.raw_events,
        setup.args.window,
        headers,
        setup.traffic,
    )
    .await
}

/// (1) Raw sled with the least the views must write (see
/// [`limits::raw_sled_minimum`]), --raw-events events (enough CPU time
/// for /proc's 10 ms ticks to count it closely) over as many hand-offs as
/// the traffic spreads them on; returns its events/s and CPU an event.
pub async fn raw_sled_minimum(
    setup: &Setup<'_>,
    report: &mut Report,
) -> anyhow::Result<(f64, Option<cpu::CpuPerEvent>)> {
    let sled_dir = tempfile::tempdir()?;
    let n = setup.args.raw_events;
    let handoffs = load::workload(setup.traffic, "sled", n, 8).len().max(1);
    let path = sled_dir.path().join("raw");
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let sled_rate =
        tokio::task::spawn_blocking(move || limits::raw_sled_minimum(&path, n, 500, handoffs))
            .await??;
    let sled_cpu = clock.and_then(|c| c.per_event(n));
    report.add(
        "1",
        "raw sled apply, the views' minimum",
        sled_rate,
        "events/s",
        &format!(
            "a 24-byte state per hand-off and a tally read and rewritten, per event; \
             {:.1} events a hand-off, 500 events a batch",
            n as f64 / handoffs as f64
        ),
    );
    report_cpu_of(report, "1", "raw sled apply, the views' minimum", sled_cpu);
    drop(sled_dir);
    Ok((sled_rate, sled_cpu))
}

/// (1b) A bare tonic handler that only publishes, serving until stopped:
/// the limit the unary end-to-end runs are paired with.
pub struct BareHandler {
    channels: Vec<tonic::transport::Channel>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl BareHandler {
    pub async fn start(setup: &Setup<'_>) -> anyhow::Result<BareHandler> {
        let stop = CancellationToken::new();
        let (addr, task) = limits::serve_bare(setup.js.clone(), stop.clone()).await?;
        let channels = services::channels(addr, setup.args.connections).await?;
        Ok(BareHandler {
            channels,
            stop,
            task,
        })
    }

    /// One unary run of --events appends with ids tagged `tag`, and what
    /// an event cost in CPU.
    pub async fn run(
        &self,
        setup: &Setup<'_>,
        tag: &str,
    ) -> anyhow::Result<(load::Outcome, Option<cpu::CpuPerEvent>)> {
        let args = setup.args;
        let clock = cpu::CpuClock::start(setup.nats.pid());
        let outcome = load::unary(
            &self.channels,
            load::workload(setup.traffic, tag, args.events, 11),
            args.clients,
            None,
        )
        .await?;
        let cost = clock.and_then(|c| c.per_event(outcome.events));
        Ok((outcome, cost))
    }

    /// (1b) The handler's first run, alone on the machine; returns its req/s.
    pub async fn run_alone(&self, setup: &Setup<'_>, report: &mut Report) -> anyhow::Result<f64> {
        let (bare, bare_cpu) = self.run(setup, "bare").await?;
        report.add(
            "1b",
            "bare tonic publish handler, unary",
            bare.rate(),
            "req/s",
            &format!("{} in flight", setup.args.clients),
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
        Ok(bare.rate())
    }

    /// Stops serving and waits until the server has.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
