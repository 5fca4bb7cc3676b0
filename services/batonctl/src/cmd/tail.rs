//! `batonctl tail`: NATS messages as JSON lines.

use anyhow::Context;
use baton_proto::v1;
use futures::StreamExt;
use prost::Message as _;
use serde_json::json;

use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Subject filter, e.g. 'baton.handoff.*.repair.>' or 'baton.sla.>'.
    #[arg(default_value = "baton.>")]
    subject: String,

    /// NATS user and TLS (as the services take them; see deploy/nats/auth.conf).
    #[command(flatten)]
    nats: baton_log::NatsSecurity,
}

pub async fn run(nats_url: &str, args: Args) -> anyhow::Result<()> {
    let client = baton_log::connect_once(nats_url, "batonctl-tail", &args.nats)
        .await
        .with_context(|| format!("cannot reach nats at {nats_url}"))?;
    let mut subscription = client.subscribe(args.subject.clone()).await?;
    eprintln!("tailing {} (Ctrl-C to stop)", args.subject);
    while let Some(message) = subscription.next().await {
        let subject = message.subject.as_str();
        let payload = if subject.starts_with("baton.handoff.") {
            v1::HandoffEvent::decode(message.payload.clone())
                .map(|e| output::event_json(&e))
                .ok()
        } else if subject.starts_with("baton.sla.breached.")
            || subject.starts_with("baton.sla.corrected.")
        {
            v1::Breach::decode(message.payload.clone())
                .map(|b| output::breach_json(&b))
                .ok()
        } else {
            None
        };
        let line = match payload {
            Some(p) => json!({"subject": subject, "payload": p}),
            None => json!({"subject": subject, "bytes": message.payload.len()}),
        };
        println!("{line}");
    }
    Ok(())
}
