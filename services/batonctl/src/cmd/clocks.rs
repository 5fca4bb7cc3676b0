//! `batonctl clocks`: the running clocks, soonest deadline first.

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct ClocksArgs {
    /// Only clocks of this supplier department.
    #[arg(long)]
    supplier: Option<String>,
    /// Only clocks of this customer department.
    #[arg(long)]
    customer: Option<String>,
    /// Only this service kind.
    #[arg(long)]
    kind: Option<String>,
    /// At most this many.
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
            .and_then(|d| baton_proto::convert::timestamp_from_proto("deadline", d).ok())
            .map(|d| d.0 - now)
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
