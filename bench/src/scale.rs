//! Scale: a projector in a child process (so its memory is its own) over
//! views holding many hand-offs with open clocks: RSS per open clock, sled
//! bytes per event (and as a multiple of the event payload), apply rate,
//! query latency and breach delay as the views grow.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use baton_proto::v1::{self, query_client::QueryClient, Priority};
use baton_testkit::{free_port, NatsServer};
use tokio_util::sync::CancellationToken;

use crate::{
    load,
    services::{self, channel, wait_acked},
    stats::{rate, Report},
    traffic::{self, now_millis, Rng, Traffic},
};

/// The projector as a child process, killed when dropped.
#[derive(Debug)]
pub struct ChildProjector {
    child: Child,
    pub addr: std::net::SocketAddr,
}

impl ChildProjector {
    pub fn spawn(
        nats_url: &str,
        catalog: &Path,
        data_dir: &Path,
        consumer: &str,
    ) -> anyhow::Result<ChildProjector> {
        let port = free_port();
        let http = free_port();
        let exe = std::env::current_exe().context("the bench's own executable")?;
        let child = Command::new(exe)
            .arg("child-projector")
            .arg("--nats-url")
            .arg(nats_url)
            .arg("--catalog")
            .arg(catalog)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--consumer")
            .arg(consumer)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{http}"))
            .stdin(Stdio::null())
            .spawn()
            .context("starting the child projector")?;
        Ok(ChildProjector {
            child,
            addr: ([127, 0, 0, 1], port).into(),
        })
    }

    /// Resident memory in bytes (VmRSS).
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for ChildProjector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rss_of(status: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(status).with_context(|| format!("reading {status}"))?;
    let kb = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {status}"))?;
    Ok(kb * 1024)
}

/// Bytes the files under `dir` occupy on disk.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

/// How often [`settled_rss`] looks.
const SETTLE_POLL: Duration = Duration::from_secs(5);
/// The longest [`settled_rss`] waits.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

/// The projector's resident memory once what the growth left behind is
/// gone: sled's deferred frees and the pages the allocator keeps for
/// `baton_alloc::KEEP_FREED_MS`. Looks first once that has passed, then
/// every [`SETTLE_POLL`], a query before each look as a wall screen would
/// ask, until it falls by under 1% or [`SETTLE_LIMIT`] has passed; returns
/// it and the time waited.
async fn settled_rss(
    projector: &ChildProjector,
    query: &mut QueryClient<tonic::transport::Channel>,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let kept = Duration::from_millis(baton_alloc::KEEP_FREED_MS.unsigned_abs());
    tokio::time::sleep(kept).await;
    compliance_open(query).await?;
    let mut last = projector.rss()?;
    while started.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(SETTLE_POLL).await;
        compliance_open(query).await?;
        let now = projector.rss()?;
        let settled = now as f64 > last as f64 * 0.99;
        last = now;
        if settled {
            break;
        }
    }
    Ok((last, started.elapsed()))
}

/// Breach clocks set to run out at each size, for the breach delay there.
#[derive(Debug)]
pub struct BreachClocks {
    pub count: usize,
    pub lead: Duration,
    pub spread: Duration,
    /// Breaches run out at once for notify's delivery rate.
    pub notify_burst: usize,
}

/// Grows the views to each size in `sizes` (hand-offs, each one REQUESTED
/// event, clocks open and due well after the run) and measures at each;
/// sled's bytes an event are also given as a multiple of `event_payload`,
/// the run's realistic event's encoded size in bytes.
pub async fn run(
    report: &mut Report,
    catalog: &Path,
    traffic: &Traffic,
    sizes: &[usize],
    breaches: &BreachClocks,
    window: usize,
    event_payload: usize,
) -> anyhow::Result<()> {
    let nats = NatsServer::start();
    let mut views = Views::start(report, &nats.url(), catalog, traffic, event_payload).await?;
    // (8) Notify delivers every breach the section sets off to a webhook.
    let notify = crate::notify::Notify::start(&nats.url(), &views.js).await?;
    let mut rng = Rng::new(6);
    let mut have = 0usize;
    let mut last_seq = 0;
    // The last scale's settled RSS and open clocks, for the memory each
    // further clock adds.
    let mut before: Option<(u64, u64, String)> = None;
    for &size in sizes {
        if size <= have {
            continue;
        }
        let label = format!("{size} hand-offs");
        last_seq = views
            .grow(report, &mut rng, have..size, last_seq, window, &label)
            .await?;
        have = size;
        let open = views
            .report_memory_and_disk(report, &label, last_seq)
            .await?;
        let settled = views.report_settled_memory(report, &label, open).await?;
        if let Some((rss, clocks, from)) = &before {
            report.add(
                "6",
                &format!("projector memory per open clock from {from} to {label}, settled"),
                settled.saturating_sub(*rss) as f64 / open.saturating_sub(*clocks).max(1) as f64,
                "bytes",
                "what each further clock adds: without the fixed cost of filling sled's page cache (--views-cache-mb)",
            );
        }
        before = Some((settled, open, label.clone()));
        views.report_idle_queries(report, &label, size).await?;
        if breaches.count > 0 {
            last_seq = views
                .report_breach_delay(report, breaches, size, &label)
                .await?;
            notify
                .report_delay(report, &format!("s{size}"), breaches.count, &label)
                .await;
        }
    }
    if breaches.notify_burst > 0 {
        notify
            .report_burst(report, &views.js, breaches.notify_burst)
            .await?;
        last_seq = services::last_sequence(&views.js, baton_log::subject::EVENTS_STREAM).await?;
        wait_acked(&views.js, "baton-projector", last_seq).await?;
    }
    drop(notify);
    if have > 0 {
        restart(
            report,
            &mut views.query,
            views.projector,
            &nats.url(),
            catalog,
            &views.data_dir,
            have,
        )
        .await?;
    }
    drop(nats);
    Ok(())
}

/// The views the scale section grows: the projector in a child process
/// over them, and the connections that feed and query it.
struct Views {
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    /// Holds the data dir; the directory goes when this does.
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    projector: ChildProjector,
    query: QueryClient<tonic::transport::Channel>,
    /// The projector's RSS over empty views: what the per-clock figures subtract.
    baseline: u64,
    /// What the views are grown with.
    traffic: Traffic,
    /// The run's realistic event's encoded size, bytes: what sled's bytes
    /// an event are compared with.
    event_payload: usize,
}

impl Views {
    /// Starts the projector over empty views on a fresh events stream and
    /// reports its RSS.
    async fn start(
        report: &mut Report,
        nats_url: &str,
        catalog: &Path,
        traffic: &Traffic,
        event_payload: usize,
    ) -> anyhow::Result<Views> {
        let client = async_nats::connect(nats_url).await?;
        let js = async_nats::jetstream::new(client.clone());
        baton_log::streams::ensure(&js, &baton_log::StreamSettings::default()).await?;
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("views");
        let projector = ChildProjector::spawn(nats_url, catalog, &data_dir, "baton-projector")?;
        services::wait_serving(projector.addr, "baton.v1.Query").await?;
        let query = QueryClient::new(channel(projector.addr).await?);
        let baseline = projector.rss()?;
        report.add(
            "6",
            "projector RSS, empty views",
            baseline as f64 / 1_048_576.0,
            "MiB",
            "child process, VmRSS",
        );
        Ok(Views {
            client,
            js,
            _dir: dir,
            data_dir,
            projector,
            query,
            baseline,
            traffic: traffic.clone(),
            event_payload,
        })
    }

    /// Publishes the hand-offs numbered `added` straight to JetStream and
    /// waits until the projector applied them; returns the stream's last
    /// sequence.
    async fn grow(
        &self,
        report: &mut Report,
        rng: &mut Rng,
        added: std::ops::Range<usize>,
        last_seq: u64,
        window: usize,
        label: &str,
    ) -> anyhow::Result<u64> {
        let now = now_millis();
        let count = added.len();
        let events = added.map(|i| {
            let (subject, mut e) = self.traffic.recorded_request(
                rng,
                &format!("scale-{}", traffic::serial(i)),
                now - 60_000 + (i % 60_000) as i64,
                now,
            );
            // Routine and urgent targets are 15 min or more in the shipped
            // catalog (a porter's urgent pickup, a surgeon to theatre), longer
            // than the section runs: no clock runs out while it does.
            if e.priority == Priority::Stat as i32 {
                e.priority = Priority::Urgent as i32;
            }
            (subject, e)
        });
        let started = Instant::now();
        let last_seq = last_seq.max(load::publish_recorded(&self.js, events, window).await?);
        let published = started.elapsed();
        wait_applied(&self.js, last_seq).await?;
        let applied = started.elapsed();
        report.add(
            "6",
            &format!("publish {label} straight to JetStream"),
            rate(count, published),
            "events/s",
            "",
        );
        report.add(
            "6",
            &format!("projector apply rate, growing to {label}"),
            rate(count, applied),
            "events/s",
            "publish and apply overlap; bounded by the projector",
        );
        Ok(last_seq)
    }

    /// Open clocks, the projector's memory per open clock as the last
    /// event is applied, and sled's disk per event; returns the open clocks.
    async fn report_memory_and_disk(
        &mut self,
        report: &mut Report,
        label: &str,
        last_seq: u64,
    ) -> anyhow::Result<u64> {
        let open = compliance_open(&mut self.query).await?;
        let rss = self.projector.rss()?;
        report.add(
            "6",
            &format!("open clocks at {label}"),
            open as f64,
            "clocks",
            "GetCompliance.open over all promises",
        );
        report.add(
            "6",
            &format!("projector RSS at {label}"),
            rss as f64 / 1_048_576.0,
            "MiB",
            "",
        );
        report.add(
            "6",
            &format!("projector memory per open clock at {label}"),
            rss.saturating_sub(self.baseline) as f64 / open.max(1) as f64,
            "bytes",
            "(RSS - empty RSS) / open clocks, as the last event is applied",
        );
        // sled writes its log every 500 ms: let it settle before measuring the disk.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let disk = disk_bytes(&self.data_dir);
        report.add(
            "6",
            &format!("sled disk at {label}"),
            disk as f64 / 1_048_576.0,
            "MiB",
            "du of the data dir",
        );
        let per_event = disk as f64 / last_seq.max(1) as f64;
        report.add(
            "6",
            &format!("sled disk per event at {label}"),
            per_event,
            "bytes",
            "",
        );
        let stream_bytes = jetstream_bytes_an_event(&self.js).await?;
        report.add(
            "6",
            &crate::growth::jetstream_bytes_row(label),
            stream_bytes,
            "bytes",
            "stream info bytes / messages of the events stream: the REQUESTED events the section published, with subjects and headers",
        );
        report.times(
            "6",
            &format!("sled bytes an event / event payload at {label}"),
            per_event,
            self.event_payload as f64,
            "target <= 3 at 10^6",
        );
        Ok(open)
    }

    /// The projector's memory per `open` clock once the growth's garbage is
    /// gone; returns the settled RSS.
    async fn report_settled_memory(
        &mut self,
        report: &mut Report,
        label: &str,
        open: u64,
    ) -> anyhow::Result<u64> {
        let (settled, waited) = settled_rss(&self.projector, &mut self.query).await?;
        report.add(
            "6",
            &format!("projector RSS at {label}, settled"),
            settled as f64 / 1_048_576.0,
            "MiB",
            &format!(
                "{} s later, queried every {} s",
                waited.as_secs(),
                SETTLE_POLL.as_secs()
            ),
        );
        report.add(
            "6",
            &format!("projector memory per open clock at {label}, settled"),
            settled.saturating_sub(self.baseline) as f64 / open.max(1) as f64,
            "bytes",
            "target < 1 KiB; what the open clocks hold once the growth's garbage is gone",
        );
        Ok(settled)
    }

    /// Query latency on the idle projector, 200 calls of each query.
    async fn report_idle_queries(
        &self,
        report: &mut Report,
        label: &str,
        size: usize,
    ) -> anyhow::Result<()> {
        let latency = load::queries(
            channel(self.projector.addr).await?,
            Duration::ZERO,
            200,
            CancellationToken::new(),
        )
        .await;
        report.add(
            "6",
            &format!("GetCompliance (month) p50 at {label}"),
            latency.compliance.quantile_ms(0.5),
            "ms",
            "idle projector, 200 calls",
        );
        report.add(
            "6",
            &format!("GetCompliance (month) p99 at {label}"),
            latency.compliance.quantile_ms(0.99),
            "ms",
            "target < 5 ms at 10^6",
        );
        report.add(
            "6",
            &format!("ListBreaches p50 at {label}"),
            latency.breaches.quantile_ms(0.5),
            "ms",
            "first page of 100",
        );
        report.add(
            "6",
            &format!("ListBreaches p99 at {label}"),
            latency.breaches.quantile_ms(0.99),
            "ms",
            "",
        );
        let handoffs = self.get_handoff_latency(size).await?;
        report.add(
            "6",
            &format!("GetHandoff p50 at {label}"),
            handoffs.quantile_ms(0.5),
            "ms",
            "200 hand-offs spread over the views; its timeline read from the log",
        );
        report.add(
            "6",
            &format!("GetHandoff p99 at {label}"),
            handoffs.quantile_ms(0.99),
            "ms",
            "target < 5 ms",
        );
        Ok(())
    }

    /// GetHandoff of 200 of the `size` hand-offs grown so far, spread
    /// over them: the view from sled, the events from JetStream.
    async fn get_handoff_latency(&self, size: usize) -> anyhow::Result<crate::stats::Samples> {
        const CALLS: usize = 200;
        let mut query = self.query.clone();
        let mut latency = crate::stats::Samples::with_capacity(CALLS);
        for call in 0..CALLS {
            let id = format!("scale-{}", traffic::serial(call * size / CALLS));
            let sent = std::time::Instant::now();
            let answer = query
                .get_handoff(v1::GetHandoffRequest { handoff_id: id })
                .await?
                .into_inner();
            latency.push(sent.elapsed());
            let events = answer.handoff.map_or(0, |h| h.events.len());
            anyhow::ensure!(
                events == 1,
                "GetHandoff gave {events} events, not the 1 published"
            );
        }
        Ok(latency)
    }

    /// (5/6) Breach delay with the views at `size`; returns the stream's
    /// last sequence, which the breach clocks' events moved on.
    async fn report_breach_delay(
        &self,
        report: &mut Report,
        breaches: &BreachClocks,
        size: usize,
        label: &str,
    ) -> anyhow::Result<u64> {
        let (delays, missing) = load::breach_delay(
            &self.client,
            &self.js,
            &format!("s{size}"),
            breaches.count,
            breaches.lead,
            breaches.spread,
        )
        .await?;
        report.add(
            "5/6",
            &format!("breach delay p50 with {label} open"),
            delays.quantile_ms(0.5),
            "ms",
            &format!("{} breaches", delays.len()),
        );
        report.add(
            "5/6",
            &format!("breach delay p99 with {label} open"),
            delays.quantile_ms(0.99),
            "ms",
            "target < 1 s at 10^5 clocks",
        );
        if missing > 0 {
            report.add(
                "5/6",
                &format!("breaches never seen with {label} open"),
                missing as f64,
                "breaches",
                "",
            );
        }
        services::last_sequence(&self.js, baton_log::subject::EVENTS_STREAM).await
    }
}

/// Kills the projector (SIGKILL, as a crash would) and starts it again on
/// the same data dir: how long the views are unavailable, and whether they
/// come back with every clock. Opening reads every stored value once (a
/// damaged store is found at start) and the timer's index off the views.
async fn restart(
    report: &mut Report,
    query: &mut QueryClient<tonic::transport::Channel>,
    projector: ChildProjector,
    nats_url: &str,
    catalog: &Path,
    data_dir: &Path,
    handoffs: usize,
) -> anyhow::Result<()> {
    let open_before = compliance_open(query).await?;
    drop(projector);
    let started = Instant::now();
    let projector = ChildProjector::spawn(nats_url, catalog, data_dir, "baton-projector")?;
    services::wait_serving(projector.addr, "baton.v1.Query").await?;
    let back = started.elapsed();
    let open_after = compliance_open(&mut QueryClient::new(channel(projector.addr).await?)).await?;
    report.add(
        "6",
        &format!("projector restart after a kill at {handoffs} hand-offs, until serving"),
        back.as_secs_f64(),
        "s",
        "same data dir: sled recovers, every stored value is read once",
    );
    report.add(
        "6",
        &format!("open clocks after the restart at {handoffs} hand-offs"),
        open_after as f64,
        "clocks",
        &if open_after == open_before {
            "as before the kill".to_owned()
        } else {
            format!("{open_before} before the kill")
        },
    );
    Ok(())
}

/// Waits until the projector has acked stream sequence `last`, for as
/// long as it keeps moving: growing by millions of hand-offs (10^7) can
/// take longer than [`services::PATIENCE`] in all, so only a projector
/// whose ack floor stood still that long fails the run.
async fn wait_applied(js: &async_nats::jetstream::Context, last: u64) -> anyhow::Result<()> {
    let stream = js.get_stream(baton_log::subject::EVENTS_STREAM).await?;
    let mut floor = 0;
    let mut moved = Instant::now();
    loop {
        if let Ok(mut consumer) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("baton-projector")
            .await
        {
            if let Ok(info) = consumer.info().await {
                let now = info.ack_floor.stream_sequence;
                if now >= last {
                    return Ok(());
                }
                if now > floor {
                    floor = now;
                    moved = Instant::now();
                }
            }
        }
        if moved.elapsed() > services::PATIENCE {
            anyhow::bail!(
                "the projector acked nothing past sequence {floor} (of {last}) in {:?}",
                services::PATIENCE
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The events stream's bytes a message (its stream info's `state.bytes /
/// state.messages`): what the log stores an event in.
async fn jetstream_bytes_an_event(js: &async_nats::jetstream::Context) -> anyhow::Result<f64> {
    let mut stream = js
        .get_stream(baton_log::subject::EVENTS_STREAM)
        .await
        .context("the events stream")?;
    let info = stream.info().await.context("the events stream's info")?;
    Ok(info.state.bytes as f64 / info.state.messages.max(1) as f64)
}

async fn compliance_open(
    query: &mut QueryClient<tonic::transport::Channel>,
) -> anyhow::Result<u64> {
    let c = query
        .get_compliance(v1::GetComplianceRequest::default())
        .await
        .context("GetCompliance")?
        .into_inner()
        .compliance
        .context("GetCompliance answered without figures")?;
    Ok(c.open)
}
