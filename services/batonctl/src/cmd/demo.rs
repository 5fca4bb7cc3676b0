//! `batonctl demo`: a small, living workload for a first look at Baton.
//!
//! Every few seconds a ward asks engineering for a repair or the lab for a
//! test. Most are acknowledged in time, some late, some never; breaches are
//! printed the moment the projector announces them. Made for the demo
//! catalog (`deploy/demo-catalog.json`), whose targets are seconds, not
//! minutes. Hand-off ids are random tokens: no patient is ever named.

use std::time::Duration;

use baton_proto::v1::{self, ingest_client::IngestClient, EventType, Priority};
use tonic::transport::Channel;

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
        event_id: super::event_id(handoff, t),
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
    let breaches = query
        .watch_breaches(v1::WatchBreachesRequest::default())
        .await
        .map_err(super::status)?
        .into_inner();
    super::print_breaches(breaches);

    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let run_id = time::now_millis() % 100_000;
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(args.every.max(1)));
    for n in 0.. {
        ticker.tick().await;
        if args.seconds > 0 && started.elapsed() > Duration::from_secs(args.seconds) {
            break;
        }
        // `h` keeps the run's digits and the count apart: together they
        // could reach the 8 digits the patient-data screen refuses.
        let request = Request::draw(&mut rng, format!("demo-{run_id}-h{n}"));
        let mut client = ingest.clone();
        if !request.send(&mut client).await {
            continue;
        }
        if let Some((answer, after)) = draw_answer(&mut rng, request.kind) {
            answer_later(client, request.handoff, answer, after);
        }
    }
    Ok(())
}

/// One ward's request, its choices drawn from the workload's seed.
struct Request {
    handoff: String,
    kind: &'static str,
    supplier: &'static str,
    customer: &'static str,
    priority: Priority,
}

impl Request {
    fn draw(rng: &mut Rng, handoff: String) -> Request {
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
        Request {
            handoff,
            kind,
            supplier,
            customer,
            priority,
        }
    }

    /// Appends the request and prints it; false (and why, on stderr) when
    /// ingest refused it.
    async fn send(&self, client: &mut IngestClient<Channel>) -> bool {
        let Request {
            handoff,
            kind,
            supplier,
            customer,
            priority,
        } = self;
        let event = v1::HandoffEvent {
            kind: (*kind).into(),
            supplier: (*supplier).into(),
            customer: (*customer).into(),
            priority: *priority as i32,
            ..event(handoff, EventType::Requested)
        };
        let appended = client
            .append(v1::AppendRequest {
                event: Some(event),
                expected_version: None,
                backfill: false,
            })
            .await;
        match appended {
            Ok(_) => {
                println!(
                    "requested  {handoff:<18} {kind:<7} {supplier} -> {customer} ({})",
                    output::priority(*priority as i32)
                );
                true
            }
            Err(e) => {
                eprintln!("append failed: {}", super::status(e));
                false
            }
        }
    }
}

/// How the supplier answers a request of `kind`, and after how many
/// seconds: most in time, some late, some never (those breach).
fn draw_answer(rng: &mut Rng, kind: &str) -> Option<(EventType, u64)> {
    let answer = if kind == "repair" {
        EventType::Acknowledged
    } else {
        EventType::Completed
    };
    match rng.below(10) {
        0..=5 => Some((answer, 2 + rng.below(8))),
        6..=7 => Some((answer, 35 + rng.below(15))),
        _ => None,
    }
}

/// Appends `answer` to the hand-off `after` seconds from now, in the
/// background, and prints it.
fn answer_later(mut client: IngestClient<Channel>, handoff: String, answer: EventType, after: u64) {
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
