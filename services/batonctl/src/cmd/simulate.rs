//! `batonctl simulate`: plays a generated hospital day ([`crate::sim`])
//! through the ingest service, in real time compressed by `--speed`, and
//! prints breaches as the projector announces them.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::Context;
use baton_proto::{
    convert::{event_type_to_proto, priority_to_proto},
    v1::{self, ingest_client::IngestClient},
};
use tokio::time::Instant;
use tonic::transport::Channel;

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
    let catalog = read_catalog(&args.catalog)?;
    anyhow::ensure!(args.speed > 0.0, "--speed must be above 0");
    let ingest = super::ingest(ingest_url).await?;
    print_breaches(query_url).await;
    let run = run_name(&args)?;
    let mut player = Player::new(ingest, &args);
    for day in 0u64.. {
        let hours = player.hours_left(args.speed);
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
        player.play_day(plan).await;
        if player.is_over() {
            break;
        }
    }
    let stats = &player.stats;
    eprintln!(
        "simulation over: {} requested, {} events sent, {} refused",
        stats.requested, stats.sent, stats.refused
    );
    Ok(())
}

fn read_catalog(path: &Path) -> anyhow::Result<baton_domain::Catalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the catalog {}", path.display()))?;
    baton_domain::Catalog::from_json(&text).with_context(|| format!("catalog {}", path.display()))
}

/// Prints breaches as the projector announces them, when it can be
/// reached: the simulation plays on without it.
async fn print_breaches(query_url: &str) {
    let Ok(mut query) = super::query(query_url).await else {
        return;
    };
    if let Ok(stream) = query
        .watch_breaches(v1::WatchBreachesRequest::default())
        .await
    {
        super::print_breaches(stream.into_inner());
    }
}

/// The run's name for the ids (`--run`, else from the clock).
fn run_name(args: &Args) -> anyhow::Result<String> {
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
    Ok(run)
}

/// Plays the generated days through ingest in real time, and counts what
/// it sent.
struct Player {
    ingest: IngestClient<Channel>,
    verbose: bool,
    /// When play started.
    started: Instant,
    /// When play ends; none: one day after another until Ctrl-C.
    deadline: Option<Instant>,
    /// The real time a simulated day takes.
    day_real: Duration,
    stats: Stats,
}

impl Player {
    fn new(ingest: IngestClient<Channel>, args: &Args) -> Player {
        let started = Instant::now();
        Player {
            ingest,
            verbose: args.verbose,
            started,
            deadline: (!args.duration.is_zero()).then(|| started + args.duration),
            day_real: Duration::from_secs_f64(24.0 * 3600.0 / args.speed),
            stats: Stats::default(),
        }
    }

    /// Simulated hours of arrivals the next day has: a whole day, or what
    /// is left of play.
    fn hours_left(&self, speed: f64) -> f64 {
        match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (left.as_secs_f64() * speed / 3600.0).min(24.0)
            }
            None => 24.0,
        }
    }

    fn is_over(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Sends each planned event at its time, within the day's slot of real
    /// time, then waits out the slot.
    async fn play_day(&mut self, plan: Vec<Planned>) {
        let day_start = Instant::now();
        let wall_start = time::now_millis();
        let day_end = day_start + self.day_real;
        for planned in plan {
            let at = day_start + Duration::from_millis(planned.at_ms.max(0) as u64);
            // Work planned past the end of play (or of the day's slot) is dropped.
            if self.deadline.is_some_and(|d| at > d) || (self.deadline.is_none() && at > day_end) {
                continue;
            }
            tokio::time::sleep_until(at).await;
            let occurred_at = Some(time::from_millis(wall_start + planned.at_ms));
            self.send(to_proto(&planned.what, occurred_at)).await;
            self.stats.maybe_report(self.started);
        }
        // The rest of the day's slot passes quietly (work still planned
        // was dropped); then the next day, unless play is over.
        let slot_end = self.deadline.map_or(day_end, |d| d.min(day_end));
        tokio::time::sleep_until(slot_end).await;
    }

    /// Appends one event, says so (a disruption always, a hand-off event
    /// when verbose) and counts it.
    async fn send(&mut self, outgoing: Outgoing) {
        let answer = match outgoing {
            Outgoing::Handoff(event) => {
                if event.r#type == v1::EventType::Requested as i32 {
                    self.stats.requested += 1;
                }
                if self.verbose {
                    println!(
                        "{:<12} {:<20} {} {} -> {}",
                        output::event_type(event.r#type),
                        event.handoff_id,
                        event.kind,
                        event.supplier,
                        event.customer
                    );
                }
                let request = v1::AppendRequest {
                    event: Some(event),
                    expected_version: None,
                    backfill: false,
                };
                self.ingest.append(request).await.map(|_| ())
            }
            Outgoing::Disruption(disruption) => {
                let started = disruption.phase == v1::DisruptionPhase::Started as i32;
                println!(
                    "disruption {} {} ({}: {})",
                    disruption.disruption_id,
                    if started { "started" } else { "ended" },
                    disruption.supplier,
                    disruption.reason
                );
                let request = v1::AppendDisruptionRequest {
                    disruption: Some(disruption),
                };
                self.ingest.append_disruption(request).await.map(|_| ())
            }
        };
        self.stats.sent += 1;
        if let Err(status) = answer {
            self.stats.refused += 1;
            eprintln!("refused: {}", super::status(status));
        }
    }
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

/// A planned event as ingest takes it.
enum Outgoing {
    Handoff(v1::HandoffEvent),
    Disruption(v1::DisruptionEvent),
}

fn to_proto(what: &What, occurred_at: Option<prost_types::Timestamp>) -> Outgoing {
    match what {
        What::Handoff {
            handoff_id,
            event_type,
            kind,
            supplier,
            customer,
            priority,
            score,
            ..
        } => Outgoing::Handoff(v1::HandoffEvent {
            event_id: super::event_id(handoff_id, event_type_to_proto(*event_type)),
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
        }),
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
            Outgoing::Disruption(v1::DisruptionEvent {
                disruption_id: disruption_id.clone(),
                phase: phase as i32,
                supplier: supplier.clone(),
                kind: kind.clone().unwrap_or_default(),
                occurred_at,
                reason: reason.clone(),
                actor: "simulator".into(),
                ..Default::default()
            })
        }
    }
}
