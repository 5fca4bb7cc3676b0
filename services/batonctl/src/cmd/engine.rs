//! `batonctl rate`, `disruption`, `disruptions`, `matrix` and `clocks`:
//! the promise engine's facts and views beyond single hand-offs.

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
    #[arg(long, default_value = "now")]
    at: String,
    #[arg(long, default_value = "batonctl")]
    actor: String,
}

pub async fn rate(url: &str, args: RateArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::ingest(url).await?;
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
    let r = client
        .append(v1::AppendRequest {
            event: Some(event),
            expected_version: None,
            backfill: false,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    out.print(
        || format!("{} rated {} (version {})", args.handoff, args.score, r.version),
        || json!({"handoff_id": args.handoff, "score": args.score, "version": r.version, "duplicate": r.duplicate}),
    );
    Ok(())
}

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
    #[arg(long, default_value = "now")]
    at: String,
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

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Hand-offs requested at or after: RFC 3339, 'now-7d', ...
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    to: Option<String>,
}

pub async fn matrix(url: &str, args: MatrixArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let m = client
        .get_matrix(v1::GetMatrixRequest {
            from: time::parse_optional(&args.from)?,
            to: time::parse_optional(&args.to)?,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    if !out.json {
        println!(
            "{:<16} {:<16} {:>8} {:>7} {:>6} {:>6} {:>8} {:>9} {:>12} {:>7}",
            "supplier",
            "customer",
            "handoffs",
            "kept",
            "late",
            "open",
            "rejected",
            "disrupted",
            "late entries",
            "rating"
        );
    }
    for c in &m.cells {
        out.print(
            || {
                let rating = if c.ratings > 0 {
                    format!("{:.1} ({})", c.rating, c.ratings)
                } else {
                    "-".into()
                };
                format!(
                    "{:<16} {:<16} {:>8} {:>6.1}% {:>6} {:>6} {:>8} {:>9} {:>12} {:>7}",
                    c.supplier,
                    c.customer,
                    c.handoffs,
                    c.compliance * 100.0,
                    c.breached,
                    c.open,
                    c.rejected,
                    c.disrupted,
                    c.late_entry_corrections,
                    rating
                )
            },
            || {
                json!({
                    "supplier": c.supplier, "customer": c.customer, "handoffs": c.handoffs,
                    "met": c.met, "breached": c.breached, "open": c.open, "compliance": c.compliance,
                    "rejected": c.rejected, "disrupted": c.disrupted, "ratings": c.ratings, "rating": c.rating,
                    "late_entry_corrections": c.late_entry_corrections,
                })
            },
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ClocksArgs {
    #[arg(long)]
    supplier: Option<String>,
    #[arg(long)]
    customer: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

pub async fn clocks(url: &str, args: ClocksArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let r = client
        .list_open_clocks(v1::ListOpenClocksRequest {
            supplier: args.supplier.unwrap_or_default(),
            customer: args.customer.unwrap_or_default(),
            kind: args.kind.unwrap_or_default(),
            limit: args.limit,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    let now = time::now_millis();
    for c in &r.clocks {
        let left = c
            .deadline
            .as_ref()
            .map(|d| d.seconds * 1000 + i64::from(d.nanos / 1_000_000) - now)
            .unwrap_or(0);
        out.print(
            || {
                format!(
                    "{:>8} left  {} {} -> {} {} ({}){}",
                    time::format_millis_span(left),
                    c.policy_id,
                    c.supplier,
                    c.customer,
                    c.handoff_id,
                    crate::output::priority(c.priority),
                    if c.warned { "  WARNED" } else { "" }
                )
            },
            || {
                json!({
                    "handoff_id": c.handoff_id, "policy_id": c.policy_id, "supplier": c.supplier,
                    "customer": c.customer, "kind": c.kind, "priority": crate::output::priority(c.priority),
                    "deadline": time::format(&c.deadline), "warned": c.warned, "cycle": c.cycle,
                })
            },
        );
    }
    if r.clocks.is_empty() && !out.json {
        println!("no running clocks");
    }
    Ok(())
}
