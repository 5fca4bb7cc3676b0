//! `batonctl disruption` and `disruptions`: a supplier's announced
//! disruption, and the list of them.

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct DisruptionArgs {
    /// start or end.
    #[arg(value_parser = ["start", "end"])]
    phase: String,
    /// The disruption's id, e.g. analyzer-2-down.
    id: String,
    /// The supplier department that cannot serve.
    #[arg(long)]
    supplier: String,
    /// Only this service kind (on start).
    #[arg(long)]
    kind: Option<String>,
    /// Only requests with this attribute, key=value (repeatable; on start).
    #[arg(long = "scope", value_parser = parse_pair)]
    scope: Vec<(String, String)>,
    /// What is wrong, in a few words (required on start).
    #[arg(long, default_value = "")]
    reason: String,
    /// When it started or ended: RFC 3339, 'now' or 'now-10m'.
    #[arg(long, default_value = "now")]
    at: String,
    /// Opaque id of the staff member or system (never a name).
    #[arg(long, default_value = "batonctl")]
    actor: String,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

pub async fn disruption(url: &str, args: DisruptionArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::ingest(url).await?;
    let phase = if args.phase == "start" {
        v1::DisruptionPhase::Started
    } else {
        v1::DisruptionPhase::Ended
    };
    let r = client
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: args.id.clone(),
                phase: phase as i32,
                supplier: args.supplier,
                kind: args.kind.unwrap_or_default(),
                scope: args.scope.into_iter().collect(),
                occurred_at: Some(time::parse(&args.at)?),
                reason: args.reason,
                actor: args.actor,
                ..Default::default()
            }),
        })
        .await
        .map_err(super::status)?
        .into_inner();
    out.print(
        || format!("disruption {} {}ed (stream sequence {})", args.id, args.phase, r.stream_sequence),
        || json!({"disruption_id": args.id, "phase": args.phase, "stream_sequence": r.stream_sequence, "duplicate": r.duplicate}),
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct DisruptionsArgs {
    /// Only this supplier department's disruptions.
    #[arg(long)]
    supplier: Option<String>,
    /// Only those active now.
    #[arg(long)]
    active: bool,
}

pub async fn disruptions(url: &str, args: DisruptionsArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let r = client
        .list_disruptions(v1::ListDisruptionsRequest {
            supplier: args.supplier.unwrap_or_default(),
            active_only: args.active,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    for d in &r.disruptions {
        out.print(
            || {
                format!(
                    "{} {}: {} ({}; from {} to {}, announced {}); {} hand-offs requested into it, {} broke before it was announced",
                    d.supplier,
                    d.disruption_id,
                    d.reason,
                    if d.active { "ACTIVE" } else { "over" },
                    time::format(&d.started_at),
                    time::format(&d.ended_at),
                    time::format(&d.announced_at),
                    d.affected,
                    d.failed_before_announcement
                )
            },
            || {
                json!({
                    "disruption_id": d.disruption_id, "supplier": d.supplier, "kind": d.kind,
                    "scope": d.scope, "reason": d.reason, "active": d.active,
                    "started_at": time::format(&d.started_at), "ended_at": time::format(&d.ended_at),
                    "announced_at": time::format(&d.announced_at), "affected": d.affected,
                    "failed_before_announcement": d.failed_before_announcement,
                })
            },
        );
    }
    if r.disruptions.is_empty() && !out.json {
        println!("no disruptions");
    }
    Ok(())
}
