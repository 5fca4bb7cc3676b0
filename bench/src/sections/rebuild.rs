//! Reading the stream back, (1c), (3) and (7): the raw pull consumer and
//! its CPU an event, the projector rebuilding its views from an empty data
//! dir, the projection alone without NATS (what bounds the rebuild; and
//! its CPU an event in live-sized batches against the rebuild's), and the
//! same stream split among several projectors.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use super::{rows::report_cpu_of, Setup};
use crate::{
    cpu, limits, projection, services,
    stats::{median, rate, Report},
};

/// What (1c) and (3) measured, for the rows after them.
#[derive(Debug, Clone, Copy)]
pub struct Consumed {
    /// The rebuild's events/s (median run).
    pub rebuild: f64,
    /// The raw consumer's CPU an event, in its median run.
    pub consumer_cpu: Option<cpu::CpuPerEvent>,
}

/// (1c) and (3): the raw consumer, then a rebuild, over the same stream
/// of `events`.
pub async fn consume_and_rebuild(
    setup: &Setup<'_>,
    report: &mut Report,
    events: u64,
) -> anyhow::Result<Consumed> {
    let filtered = filtered_consume(setup, events).await?;
    // The machine is shared and a single run of either swings by tens of
    // percent: take turns, --rebuild-runs times each, and compare medians.
    let (mut consumes, mut rebuilds) = (Vec::new(), Vec::new());
    for run in 0..setup.args.rebuild_runs.max(1) {
        consumes.push(consume_once(setup, events).await?);
        rebuilds.push(rebuild_once(setup, events, run).await?);
    }
    let mut rates: Vec<f64> = consumes.iter().map(|(rate, _)| *rate).collect();
    let (consume, consume_runs) = median(&mut rates);
    let consumer_cpu = consumes
        .iter()
        .find(|(rate, _)| *rate == consume)
        .and_then(|(_, cpu)| *cpu);
    let (rebuild, rebuild_runs) = median(&mut rebuilds);
    report_raw_consumer(report, events, consume, &consume_runs, filtered);
    report_cpu_of(report, "1c", "raw pull consumer (1c)", consumer_cpu);
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
    Ok(Consumed {
        rebuild,
        consumer_cpu,
    })
}

/// (1c) One run of the raw consumer over the whole stream of `events`:
/// its events/s and CPU an event.
async fn consume_once(
    setup: &Setup<'_>,
    events: u64,
) -> anyhow::Result<(f64, Option<cpu::CpuPerEvent>)> {
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let rate = limits::raw_consume(
        &setup.js,
        baton_log::subject::EVENTS_STREAM,
        events,
        500,
        &[],
    )
    .await?;
    Ok((rate, clock.and_then(|c| c.per_event(events as usize))))
}

/// (1c) The raw consumer with the projector's consumer's filters (both of
/// the stream's subjects). It is slow: the first 10,000 events of the
/// stream give its rate.
async fn filtered_consume(setup: &Setup<'_>, events: u64) -> anyhow::Result<f64> {
    let filters = [
        baton_log::subject::ALL_EVENTS,
        baton_log::subject::ALL_DISRUPTIONS,
    ];
    limits::raw_consume(
        &setup.js,
        baton_log::subject::EVENTS_STREAM,
        events.min(10_000),
        500,
        &filters,
    )
    .await
}

/// (3) One rebuild from an empty data dir, start to serving, with a
/// consumer of its own; events/s.
async fn rebuild_once(setup: &Setup<'_>, events: u64, run: usize) -> anyhow::Result<f64> {
    let rebuild_dir = tempfile::tempdir()?;
    let started = Instant::now();
    let rebuilt = services::start_projector(
        &setup.nats.url(),
        setup.catalog,
        &rebuild_dir.path().join("views"),
        &format!("bench-rebuild-{run}"),
    )
    .await?;
    let rebuild = rate(events as usize, started.elapsed());
    rebuilt.stop().await?;
    Ok(rebuild)
}

/// The (1c) rows: the raw consumer's median over its runs, and with filters.
fn report_raw_consumer(
    report: &mut Report,
    events: u64,
    consume: f64,
    consume_runs: &str,
    filtered: f64,
) {
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
}

/// The live projector's batches are small (what its linger gathers);
/// section 3 folds the same events in these as well as in the rebuild's.
const LIVE_BATCH: usize = 100;

/// (3) The same events without NATS: what bounds the rebuild, how near
/// the `rebuild` rate comes to it, and what an event costs in CPU in
/// live-sized batches against the rebuild's.
pub async fn projection_alone(
    setup: &Setup<'_>,
    report: &mut Report,
    events: u64,
    rebuild: f64,
) -> anyhow::Result<()> {
    let rebuild_batch = baton_projector::config::DEFAULT_BATCH_SIZE;
    let runs = time_projection(setup, events, &[rebuild_batch, LIVE_BATCH]).await?;
    let timings: Vec<projection::Timing> = runs[0].iter().map(|(t, _)| *t).collect();
    let rates = |of: fn(&projection::Timing) -> f64| timings.iter().map(of).collect::<Vec<_>>();
    let mut sequential = rates(projection::Timing::sequential_rate);
    let mut computing = rates(|t| rate(t.events, t.compute));
    let mut applying = rates(|t| rate(t.events, t.apply));
    let (sequential, sequential_runs) = median(&mut sequential);
    let (computing, _) = median(&mut computing);
    let (applying, _) = median(&mut applying);
    report.add(
        "3",
        "projection alone, from memory: compute, then sled apply",
        sequential,
        "events/s",
        &format!(
            "the rebuild's events, {rebuild_batch} a batch, no NATS; median of {sequential_runs}"
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
    report_live_against_rebuild(report, &runs, rebuild_batch);
    Ok(())
}

/// (3) The projection's CPU an event (the bench process's; nothing else
/// runs then) in the rebuild's batches and in live-sized ones, each the
/// median over its runs, and their ratio.
fn report_live_against_rebuild(
    report: &mut Report,
    runs: &[Vec<(projection::Timing, Option<cpu::CpuPerEvent>)>],
    rebuild_batch: usize,
) {
    let mut medians = Vec::new();
    for (batch, runs) in [rebuild_batch, LIVE_BATCH].into_iter().zip(runs) {
        let mut costs: Vec<f64> = runs
            .iter()
            .filter_map(|(_, cost)| cost.map(|c| c.own_us))
            .collect();
        if costs.is_empty() {
            return;
        }
        let (cost, listed) = median(&mut costs);
        report.add(
            "3",
            &format!("projection alone, batches of {batch}: CPU an event"),
            cost,
            "us",
            &format!("bench process; median of {listed}"),
        );
        medians.push(cost);
    }
    if let [rebuild_cost, live_cost] = medians[..] {
        report.times(
            "3",
            &format!(
                "projection CPU an event, batches of {LIVE_BATCH} / batches of {rebuild_batch}"
            ),
            live_cost,
            rebuild_cost,
            "target <= 1.3",
        );
    }
}

/// Reads the stream's `events` into memory once and projects them
/// --rebuild-runs times in batches of each of `batches` (taking turns),
/// each into an empty data dir; each run's timing and CPU an event, by
/// batch size in the order given.
async fn time_projection(
    setup: &Setup<'_>,
    events: u64,
    batches: &[usize],
) -> anyhow::Result<Vec<Vec<(projection::Timing, Option<cpu::CpuPerEvent>)>>> {
    let catalog = setup.catalog;
    let stored =
        projection::fetch_all(&setup.js, baton_log::subject::EVENTS_STREAM, events).await?;
    let catalog_json = std::fs::read_to_string(catalog)
        .with_context(|| format!("reading {}", catalog.display()))?;
    let parsed = std::sync::Arc::new(baton_domain::Catalog::from_json(&catalog_json)?);
    let stored = std::sync::Arc::new(stored);
    let mut runs = vec![Vec::new(); batches.len()];
    for _ in 0..setup.args.rebuild_runs.max(1) {
        for (&batch, runs) in batches.iter().zip(runs.iter_mut()) {
            let (stored, parsed) = (stored.clone(), parsed.clone());
            let dir = tempfile::tempdir()?;
            let clock = cpu::CpuClock::start(setup.nats.pid());
            let timing = tokio::task::spawn_blocking(move || {
                projection::project(&stored, &parsed, &dir.path().join("views"), batch)
            })
            .await??;
            runs.push((timing, clock.and_then(|c| c.per_event(timing.events))));
        }
    }
    Ok(runs)
}

/// (7) Scale-out: the same stream of `events`, split among as many
/// projectors as each --scale-out count, against one projector's `rebuild`.
pub async fn scale_out(
    setup: &Setup<'_>,
    report: &mut Report,
    events: u64,
    rebuild: f64,
) -> anyhow::Result<()> {
    for &partitions in setup.args.scale_out.iter().filter(|n| **n > 1) {
        let (sourced, together) = split_and_rebuild(
            &setup.js,
            &setup.nats.url(),
            setup.catalog,
            events,
            partitions,
        )
        .await?;
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
    Ok(())
}

/// Splits the events stream into `partitions` (waiting until JetStream has
/// copied all of it) and rebuilds every partition's views at once with one
/// projector each; returns (splitting rate, combined rebuild rate).
async fn split_and_rebuild(
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
