//! `batonctl get` and `batonctl list`

use baton_proto::v1;

use crate::{
    output::{self, Output},
    time,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hand-off id.
    handoff: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only hand-offs to this supplier department.
    #[arg(long)]
    supplier: Option<String>,
    /// Only hand-offs from this customer department.
    #[arg(long)]
    customer: Option<String>,
    /// Only this service kind.
    #[arg(long)]
    kind: Option<String>,
    /// requested, acknowledged, in_progress, on_hold, completed, rejected, cancelled.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let h = client
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: args.handoff,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    let h = super::required(h.handoff, "GetHandoff")?;
    out.print(|| text(&h), || output::handoff_json(&h));
    Ok(())
}

fn text(h: &v1::Handoff) -> String {
    let mut s = format!(
        "{}  {} {} -> {}  {}  {}  (version {})\n",
        h.handoff_id,
        h.kind,
        h.supplier,
        h.customer,
        output::priority(h.priority),
        output::status(h.status),
        h.version
    );
    s.push_str("promises:\n");
    for sla in &h.slas {
        s.push_str(&format!(
            "  {:<22} {:<9} elapsed {:<8} of {:<8} deadline {}\n",
            sla.policy_id,
            output::sla_state(sla.state),
            time::format_duration(&sla.elapsed),
            time::format_duration(&sla.target),
            time::format(&sla.deadline)
        ));
    }
    s.push_str("timeline:\n");
    for e in &h.events {
        let history = if e.backfill { ", history" } else { "" };
        s.push_str(&format!(
            "  {}  {:<13} by {:<16} entered {} later{history}\n",
            time::format(&e.occurred_at),
            output::event_type(e.r#type),
            e.actor,
            time::format_duration(&e.entry_lag),
        ));
    }
    if !h.corrections.is_empty() {
        s.push_str("corrections (breaches withdrawn by a late event):\n");
        for c in &h.corrections {
            let cause = c.cause.as_ref().map(output::cause_text).unwrap_or_default();
            s.push_str(&format!(
                "  {} cycle {}: deadline {} withdrawn at {}: {}\n",
                c.policy_id,
                c.cycle,
                time::format(&c.deadline),
                time::format(&c.corrected_at),
                cause
            ));
        }
    }
    s.trim_end().to_owned()
}

pub async fn list(url: &str, args: ListArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let status = match &args.status {
        Some(s) => {
            v1::HandoffStatus::from_str_name(&format!("HANDOFF_STATUS_{}", s.to_uppercase()))
                .ok_or_else(|| anyhow::anyhow!("{s:?} is not a status"))? as i32
        }
        None => 0,
    };
    let r = client
        .list_handoffs(v1::ListHandoffsRequest {
            supplier: args.supplier.unwrap_or_default(),
            customer: args.customer.unwrap_or_default(),
            kind: args.kind.unwrap_or_default(),
            status,
            page_size: args.limit,
            page_token: String::new(),
        })
        .await
        .map_err(super::status)?
        .into_inner();
    for h in &r.handoffs {
        out.print(
            || {
                format!(
                    "{:<24} {:<10} {:<14} -> {:<14} {:<8} {}",
                    h.handoff_id,
                    h.kind,
                    h.supplier,
                    h.customer,
                    output::priority(h.priority),
                    output::status(h.status)
                )
            },
            || output::handoff_json(h),
        );
    }
    if !r.next_page_token.is_empty() && !out.json {
        println!("(more: raise --limit)");
    }
    Ok(())
}
