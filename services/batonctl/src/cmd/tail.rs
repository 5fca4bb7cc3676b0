//! `batonctl tail`: NATS messages as JSON lines.

use anyhow::Context;
use baton_client::Signal;
use futures::StreamExt;
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
        let payload = json_payload(subject, &message.payload);
        let line = match payload {
            Some(p) => json!({"subject": subject, "payload": p}),
            None => json!({"subject": subject, "bytes": message.payload.len()}),
        };
        output::line(&line.to_string());
    }
    Ok(())
}

/// The message as JSON, for every topic of Baton's; `None` for bytes that
/// are not what their subject says (or not Baton's subjects at all).
fn json_payload(subject: &str, payload: &[u8]) -> Option<serde_json::Value> {
    match baton_client::decode(subject, payload).ok()? {
        Signal::Event(e) => Some(output::event_json(&e)),
        Signal::Breach(b) | Signal::Correction(b) | Signal::Acknowledgement(b) => {
            Some(output::breach_json(&b))
        }
        Signal::Escalation { target, breach } => {
            let mut json = output::breach_json(&breach);
            json["escalated_to"] = json!(target);
            Some(json)
        }
        Signal::Warning(w) => Some(output::warning_json(&w)),
        Signal::Disruption(d) => Some(output::disruption_json(&d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::v1;
    use prost::Message as _;

    #[test]
    fn every_topic_is_shown_as_json() {
        let warning = v1::SlaWarning {
            handoff_id: "h1".into(),
            policy_id: "repair-response".into(),
            ..Default::default()
        };
        let shown = json_payload(
            "baton.sla.warning.repair-response.eng.w5.h1",
            &warning.encode_to_vec(),
        )
        .expect("a warning");
        assert_eq!(shown["policy_id"], "repair-response");

        let breach = v1::Breach {
            handoff_id: "h1".into(),
            ..Default::default()
        };
        let shown = json_payload(
            "baton.sla.escalated.duty.repair-response.eng.w5.h1",
            &breach.encode_to_vec(),
        )
        .expect("an escalation");
        assert_eq!(
            (shown["handoff_id"].as_str(), shown["escalated_to"].as_str()),
            (Some("h1"), Some("duty"))
        );

        let disruption = v1::DisruptionEvent {
            disruption_id: "d1".into(),
            supplier: "lab".into(),
            ..Default::default()
        };
        let shown = json_payload("baton.disruption.lab.d1", &disruption.encode_to_vec())
            .expect("a disruption");
        assert_eq!(shown["disruption_id"], "d1");

        assert_eq!(
            json_payload("baton.sla.warning.p.s.c.h1", &[0xff, 0xff]),
            None
        );
        assert_eq!(json_payload("elsewhere.x", &[]), None);
    }
}
