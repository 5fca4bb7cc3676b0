//! `batonctl rate`: the customer's rating of a completed hand-off.

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct RateArgs {
    /// The completed hand-off.
    handoff: String,
    /// 1 (poor) to 5 (excellent).
    score: u32,
    /// A short remark about the service (never about a patient).
    #[arg(long, default_value = "")]
    comment: String,
    /// When it was rated: RFC 3339, 'now' or 'now-10m'.
    #[arg(long, default_value = "now")]
    at: String,
    /// Opaque id of the staff member or system rating (never a name).
    #[arg(long, default_value = "batonctl")]
    actor: String,
}

pub async fn rate(url: &str, args: RateArgs, out: Output) -> anyhow::Result<()> {
    let event = v1::HandoffEvent {
        event_id: format!("{}-rated", args.handoff),
        handoff_id: args.handoff.clone(),
        r#type: v1::EventType::Rated as i32,
        occurred_at: Some(time::parse(&args.at)?),
        actor: args.actor,
        rating: Some(v1::Rating {
            score: args.score,
            comment: args.comment,
        }),
        ..Default::default()
    };
    let r = super::append_one(url, event).await?;
    out.print(
        || format!("{} rated {} (version {})", args.handoff, args.score, r.version),
        || json!({"handoff_id": args.handoff, "score": args.score, "version": r.version, "duplicate": r.duplicate}),
    );
    Ok(())
}
