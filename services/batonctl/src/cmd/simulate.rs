//! `batonctl simulate`: plays a generated hospital day ([`crate::sim`])
//! through the ingest service, in real time compressed by `--speed`, and
//! prints breaches as the projector announces them.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use baton_proto::{
    convert::{event_type_to_proto, priority_to_proto},
    v1,
};

use crate::{
    output,
    sim::{self, Planned, What},
    time,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog the services run on: kinds, departments and targets come from it.
    #[arg(
        long,
        env = "BATON_CATALOG",
        default_value = "deploy/demo-catalog.json"
    )]
    catalog: PathBuf,
    /// Simulated time per real time: 288 plays a day of arrivals in 5 minutes.
    /// Service times are drawn against the catalog's targets and are not compressed.
    #[arg(long, env = "BATON_SIM_SPEED", default_value_t = 288.0)]
    speed: f64,
    /// How long to play (real time), e.g. 90s, 10m or 90 (seconds); 0: one simulated day
    /// after another until Ctrl-C.
    #[arg(long, env = "BATON_SIM_DURATION", default_value = "0", value_parser = parse_duration)]
    duration: Duration,
    /// Hand-offs requested on an average simulated day.
    #[arg(long, env = "BATON_SIM_PER_DAY", default_value_t = 600.0)]
    per_day: f64,
    /// Hour of day (0-23) the simulated day starts at.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(0..24))]
    start_hour: u32,
    /// Seed: the same seed and settings give the same events.
    #[arg(long, env = "BATON_SIM_SEED", default_value_t = 7)]
    seed: u64,
    /// Names the hand-off ids (sim-<run>d<day>-h<n>); default: from the clock, so runs do not
    /// collide.
    #[arg(long)]
    run: Option<String>,
    /// Print every event sent, not only breaches and a summary.
    #[arg(long)]
    verbose: bool,
}

/// `90s`, `10m`, `1h`, or a bare number of seconds (`0`: no end).
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(seconds) = s.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    baton_domain::time::parse_duration(s).map_err(|e| e.to_string())
}

pub async fn run(ingest_url: &str, query_url: &str, args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.catalog)
        .with_context(|| format!("cannot read the catalog {}", args.catalog.display()))?;
    let catalog = baton_domain::Catalog::from_json(&text)
        .with_context(|| format!("catalog {}", args.catalog.display()))?;
    anyhow::ensure!(args.speed > 0.0, "--speed must be above 0");
    let mut ingest = super::ingest(ingest_url).await?;
    if let Ok(mut query) = super::query(query_url).await {
        if let Ok(stream) = query
            .watch_breaches(v1::WatchBreachesRequest::default())
            .await
        {
            let mut breaches = stream.into_inner();
            tokio::spawn(async move {
                while let Ok(Some(response)) = breaches.message().await {
                    if let Some(b) = response.breach {
                        println!("{}", output::breach_line(&b));
                    }
                }
            });
        }
    }

    let run = args
        .run
        .clone()
        .unwrap_or_else(|| format!("{}", time::now_millis() % 10_000_000));
    // Ingest screens ids for patient data: a run that would be refused
    // (`--run bsn`, `--run 12345678`) is refused here, before any is sent.
    for id in [format!("sim-{run}d0-h0"), format!("sim-{run}d0-down-0")] {
        if let Some(finding) = baton_domain::privacy::screen(&id) {
            anyhow::bail!(
                "--run: the ids it makes {}, which ingest refuses as patient data",
                finding.describe()
            );
        }
    }
    let day_real = Duration::from_secs_f64(24.0 * 3600.0 / args.speed);
    let started = tokio::time::Instant::now();
    let deadline = (!args.duration.is_zero()).then(|| started + args.duration);
    let mut stats = Stats::default();
    for day in 0u64.. {
        let hours = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                (left.as_secs_f64() * args.speed / 3600.0).min(24.0)
            }
            None => 24.0,
        };
        if hours <= 0.0 {
            break;
        }
        let settings = sim::Settings {
            seed: args.seed.wrapping_add(day),
            run: format!("{run}d{day}"),
            speed: args.speed,
            per_day: args.per_day,
            hours,
            start_hour: args.start_hour,
        };
        let plan = sim::generate(&catalog, &settings);
        eprintln!(
            "simulating day {day}: {} events, {:.1} h of arrivals in {:?} (speed {}x, seed {})",
            plan.len(),
            hours,
            Duration::from_secs_f64(hours * 3600.0 / args.speed),
            args.speed,
            settings.seed
        );
        let day_start = tokio::time::Instant::now();
        let wall_start = time::now_millis();
        let day_end = day_start + day_real;
        for planned in plan {
            let at = day_start + Duration::from_millis(planned.at_ms.max(0) as u64);
            // Work planned past the end of play (or of the day's slot) is dropped.
            if deadline.is_some_and(|d| at > d) || (deadline.is_none() && at > day_end) {
                continue;
            }
            tokio::time::sleep_until(at).await;
            send(&mut ingest, &planned, wall_start, args.verbose, &mut stats).await;
            stats.maybe_report(started);
        }
        // The rest of the day's slot passes quietly (work still planned
        // was dropped); then the next day, unless play is over.
        let slot_end = deadline.map_or(day_end, |d| d.min(day_end));
        tokio::time::sleep_until(slot_end).await;
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            break;
        }
    }
    eprintln!(
        "simulation over: {} requested, {} events sent, {} refused",
        stats.requested, stats.sent, stats.refused
    );
    Ok(())
}

#[derive(Debug, Default)]
struct Stats {
    requested: u64,
    sent: u64,
    refused: u64,
    last_report: Option<tokio::time::Instant>,
}

impl Stats {
    fn maybe_report(&mut self, started: tokio::time::Instant) {
        let now = tokio::time::Instant::now();
        if self
            .last_report
            .is_some_and(|t| now - t < Duration::from_secs(10))
        {
            return;
        }
        self.last_report = Some(now);
        eprintln!(
            "[{:>4}s] {} requested, {} events sent, {} refused",
            (now - started).as_secs(),
            self.requested,
            self.sent,
            self.refused
        );
    }
}

async fn send(
    ingest: &mut v1::ingest_client::IngestClient<tonic::transport::Channel>,
    planned: &Planned,
    wall_start: i64,
    verbose: bool,
    stats: &mut Stats,
) {
    let occurred_at = Some(time::from_millis(wall_start + planned.at_ms));
    let answer = match &planned.what {
        What::Handoff {
            handoff_id,
            event_type,
            kind,
            supplier,
            customer,
            priority,
            score,
            ..
        } => {
            let event = v1::HandoffEvent {
                event_id: format!(
                    "{handoff_id}-{}",
                    output::event_type(event_type_to_proto(*event_type) as i32)
                ),
                handoff_id: handoff_id.clone(),
                r#type: event_type_to_proto(*event_type) as i32,
                occurred_at,
                kind: kind.clone().unwrap_or_default(),
                supplier: supplier.clone().unwrap_or_default(),
                customer: customer.clone().unwrap_or_default(),
                priority: priority
                    .map(|p| priority_to_proto(p) as i32)
                    .unwrap_or_default(),
                actor: "simulator".into(),
                rating: score.map(|s| v1::Rating {
                    score: u32::from(s),
                    comment: String::new(),
                }),
                ..Default::default()
            };
            if *event_type == baton_domain::EventType::Requested {
                stats.requested += 1;
            }
            if verbose {
                println!(
                    "{:<12} {handoff_id:<20} {} {} -> {}",
                    output::event_type(event.r#type),
                    event.kind,
                    event.supplier,
                    event.customer
                );
            }
            ingest
                .append(v1::AppendRequest {
                    event: Some(event),
                    expected_version: None,
                    backfill: false,
                })
                .await
                .map(|_| ())
        }
        What::Disruption {
            disruption_id,
            started,
            supplier,
            kind,
            reason,
        } => {
            let phase = if *started {
                v1::DisruptionPhase::Started
            } else {
                v1::DisruptionPhase::Ended
            };
            println!(
                "disruption {disruption_id} {} ({supplier}: {reason})",
                if *started { "started" } else { "ended" }
            );
            ingest
                .append_disruption(v1::AppendDisruptionRequest {
                    disruption: Some(v1::DisruptionEvent {
                        disruption_id: disruption_id.clone(),
                        phase: phase as i32,
                        supplier: supplier.clone(),
                        kind: kind.clone().unwrap_or_default(),
                        occurred_at,
                        reason: reason.clone(),
                        actor: "simulator".into(),
                        ..Default::default()
                    }),
                })
                .await
                .map(|_| ())
        }
    };
    stats.sent += 1;
    if let Err(status) = answer {
        stats.refused += 1;
        eprintln!("refused: {}", super::status(status));
    }
}
