//! `batonctl ack`: the duty coordinator acknowledges a hand-off's escalated
//! breaches: someone is on it. Recorded as an event in Baton's log (who and
//! when); notify stops re-notifying the next level for it, and the board
//! shows who acknowledged.

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct AckArgs {
    /// The hand-off whose escalation is acknowledged.
    handoff: String,
    /// Opaque id of the person or desk acknowledging (never a name).
    #[arg(long, default_value = "duty-coordinator")]
    by: String,
    /// When: RFC 3339, 'now' or 'now-10m'.
    #[arg(long, default_value = "now")]
    at: String,
}

pub async fn ack(url: &str, args: AckArgs, out: Output) -> anyhow::Result<()> {
    let at = time::parse(&args.at)?;
    let event = v1::HandoffEvent {
        // One acknowledgement per person and moment: a repeat of this
        // command is a duplicate, another person's is another event.
        event_id: format!(
            "ack-{}-{}",
            args.by,
            baton_domain::privacy::id_number(at.seconds.unsigned_abs())
        ),
        handoff_id: args.handoff.clone(),
        r#type: v1::EventType::EscalationAcknowledged as i32,
        occurred_at: Some(at),
        actor: args.by.clone(),
        ..Default::default()
    };
    let r = super::append_one(url, event).await?;
    out.print(
        || format!("{}: escalation acknowledged by {} (version {})", args.handoff, args.by, r.version),
        || json!({"handoff_id": args.handoff, "acknowledged_by": args.by, "version": r.version, "duplicate": r.duplicate}),
    );
    Ok(())
}
