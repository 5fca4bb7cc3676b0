//! Prints Baton's SLA signals as they happen (breaches, corrections,
//! warnings, escalations), optionally for one supplier.
//!
//! ```text
//! cargo run -p baton-client --example follow -- nats://127.0.0.1:4222 lab
//! ```

use baton_client::{subscribe, Filter, Signal};
use futures::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let filter = match args.next() {
        Some(supplier) => Filter::sla().supplier(&supplier),
        None => Filter::sla(),
    };
    let nats = async_nats::connect(&url).await?;
    let mut signals = subscribe(&nats, &filter).await?;
    eprintln!("following {} on {url}", filter.subject()?);
    while let Some(received) = signals.next().await {
        match received?.signal {
            Signal::Breach(b) => println!(
                "BREACH    {} {} -> {} {} (deadline {:?})",
                b.policy_id, b.supplier, b.customer, b.handoff_id, b.deadline
            ),
            Signal::Correction(b) => {
                println!("CORRECTED {} {} kept after all", b.policy_id, b.handoff_id)
            }
            Signal::Warning(w) => println!(
                "WARNING   {} {} -> {} {}",
                w.policy_id, w.supplier, w.customer, w.handoff_id
            ),
            Signal::Escalation { target, breach } => {
                println!(
                    "ESCALATED to {target}: {} {}",
                    breach.policy_id, breach.handoff_id
                )
            }
            Signal::Acknowledgement(b) => println!(
                "ACKED     {} {} by {}",
                b.policy_id, b.handoff_id, b.acknowledged_by
            ),
            Signal::Event(_) | Signal::Disruption(_) => {}
        }
    }
    Ok(())
}
