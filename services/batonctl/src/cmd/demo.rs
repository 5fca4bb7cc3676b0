//! `batonctl demo`: a small, living workload for a first look at Baton.
//!
//! Every few seconds a ward asks engineering for a repair or the lab for a
//! test. Most are acknowledged in time, some late, some never; breaches are
//! printed the moment the projector announces them. Made for the demo
//! catalog (`deploy/demo-catalog.json`), whose targets are seconds, not
//! minutes. Hand-off ids are random tokens: no patient is ever named.

use std::time::Duration;

use baton_proto::v1::{self, EventType, Priority};

use crate::{output, time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Stop after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Seconds between new requests.
    #[arg(long, default_value_t = 3)]
    every: u64,
    /// Seed for the workload's choices.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

const CUSTOMERS: [&str; 4] = ["ward-5", "ward-6", "ed", "icu"];

/// xorshift64*: repeatable choices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn event(handoff: &str, t: EventType) -> v1::HandoffEvent {
    v1::HandoffEvent {
        event_id: format!("{handoff}-{}", output::event_type(t as i32)),
        handoff_id: handoff.to_owned(),
        r#type: t as i32,
        occurred_at: Some(time::from_millis(time::now_millis())),
        actor: "demo".into(),
        ..Default::default()
    }
}

pub async fn run(ingest_url: &str, query_url: &str, args: Args) -> anyhow::Result<()> {
    let ingest = super::ingest(ingest_url).await?;
    let mut query = super::query(query_url).await?;
    let mut breaches = query
        .watch_breaches(v1::WatchBreachesRequest::default())
        .await
        .map_err(super::status)?
        .into_inner();
    tokio::spawn(async move {
        while let Ok(Some(response)) = breaches.message().await {
            if let Some(b) = response.breach {
                println!("{}", output::breach_line(&b));
            }
        }
    });

    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let run_id = time::now_millis() % 100_000;
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.every.max(1)));
    for n in 0.. {
        ticker.tick().await;
        if args.seconds > 0 && started.elapsed() > Duration::from_secs(args.seconds) {
            break;
        }
        let (kind, supplier) = if rng.below(3) < 2 {
            ("repair", "engineering")
        } else {
            ("lab", "lab")
        };
        let customer = CUSTOMERS[rng.below(CUSTOMERS.len() as u64) as usize];
        let priority = if rng.below(2) == 0 {
            Priority::Stat
        } else {
            Priority::Urgent
        };
        // `h` keeps the run's digits and the count apart: together they
        // could reach the 8 digits the patient-data screen refuses.
        let handoff = format!("demo-{run_id}-h{n}");
        let request = v1::HandoffEvent {
            kind: kind.into(),
            supplier: supplier.into(),
            customer: customer.into(),
            priority: priority as i32,
            ..event(&handoff, EventType::Requested)
        };
        let mut client = ingest.clone();
        match client
            .append(v1::AppendRequest {
                event: Some(request),
                expected_version: None,
                backfill: false,
            })
            .await
        {
            Ok(_) => println!(
                "requested  {handoff:<18} {kind:<7} {supplier} -> {customer} ({})",
                output::priority(priority as i32)
            ),
            Err(e) => {
                eprintln!("append failed: {}", super::status(e));
                continue;
            }
        }
        // Most answered in time, some late, some never (those breach).
        let (answer, after) = match rng.below(10) {
            0..=5 => (
                if kind == "repair" {
                    EventType::Acknowledged
                } else {
                    EventType::Completed
                },
                2 + rng.below(8),
            ),
            6..=7 => (
                if kind == "repair" {
                    EventType::Acknowledged
                } else {
                    EventType::Completed
                },
                35 + rng.below(15),
            ),
            _ => continue,
        };
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(after)).await;
            let request = v1::AppendRequest {
                event: Some(event(&handoff, answer)),
                expected_version: None,
                backfill: false,
            };
            match client.append(request).await {
                Ok(_) => println!(
                    "{:<10} {handoff:<18} after {after}s",
                    output::event_type(answer as i32)
                ),
                Err(e) => eprintln!("append failed: {}", super::status(e)),
            }
        });
    }
    Ok(())
}
