//! `batonctl compliance`

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Promise (policy) id from the catalog.
    policy: String,
    #[arg(long)]
    supplier: Option<String>,
    #[arg(long)]
    customer: Option<String>,
    /// Clocks started at or after: RFC 3339, 'now-7d', ...
    #[arg(long)]
    from: Option<String>,
    /// Clocks started before.
    #[arg(long)]
    to: Option<String>,
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let c = client
        .get_compliance(v1::GetComplianceRequest {
            policy_id: args.policy,
            supplier: args.supplier,
            customer: args.customer,
            from: time::parse_optional(&args.from)?,
            to: time::parse_optional(&args.to)?,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    out.print(
        || {
            format!(
                "{}: {:.1}% kept ({} met, {} breached, {} open, {} cancelled; {} in all)\n  p50 {}  p90 {}  p95 {}  max {}",
                c.policy_id,
                c.compliance * 100.0,
                c.met,
                c.breached,
                c.open,
                c.cancelled,
                c.total,
                time::format_duration(&c.p50),
                time::format_duration(&c.p90),
                time::format_duration(&c.p95),
                time::format_duration(&c.max)
            )
        },
        || {
            json!({
                "policy_id": c.policy_id, "total": c.total, "met": c.met, "breached": c.breached,
                "open": c.open, "cancelled": c.cancelled, "compliance": c.compliance,
                "p50": time::format_duration(&c.p50), "p90": time::format_duration(&c.p90), "p95": time::format_duration(&c.p95), "max": time::format_duration(&c.max),
            })
        },
    );
    Ok(())
}
