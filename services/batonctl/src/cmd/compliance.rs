//! `batonctl compliance`

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Promise (policy) id from the catalog; every promise if left out.
    policy: Option<String>,
    /// Only clocks of this supplier department.
    #[arg(long)]
    supplier: Option<String>,
    /// Only clocks of this customer department.
    #[arg(long)]
    customer: Option<String>,
    /// Clocks started at or after: RFC 3339, 'now-7d', ...
    #[arg(long)]
    from: Option<String>,
    /// Clocks started before.
    #[arg(long)]
    to: Option<String>,
    /// Also show the figures per hour or per day.
    #[arg(long, value_parser = ["hour", "day"])]
    by: Option<String>,
    /// IANA time zone whose days `--by day` follows.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let bucket = match args.by.as_deref() {
        Some("hour") => v1::Bucket::Hour,
        Some("day") => v1::Bucket::Day,
        _ => v1::Bucket::Unspecified,
    };
    let c = client
        .get_compliance(v1::GetComplianceRequest {
            policy_id: args.policy.unwrap_or_default(),
            supplier: args.supplier,
            customer: args.customer,
            from: time::parse_optional(&args.from)?,
            to: time::parse_optional(&args.to)?,
            bucket: bucket as i32,
            time_zone: args.time_zone,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    let c = super::required(c.compliance, "GetCompliance")?;
    let name = if c.policy_id.is_empty() {
        "all promises".to_owned()
    } else {
        c.policy_id.clone()
    };
    out.print(
        || {
            let mut text = format!("{name}: {}", line(&c));
            for b in &c.buckets {
                text.push_str(&format!(
                    "\n  {}  {}",
                    time::format(&b.bucket_start),
                    line(b)
                ));
            }
            text
        },
        || {
            let mut value = figures(&c);
            value["buckets"] = c.buckets.iter().map(figures).collect();
            value
        },
    );
    Ok(())
}

fn line(c: &v1::Compliance) -> String {
    format!(
        "{} kept ({} met, {} breached, {} open, {} cancelled of which {} rejected, {} reset, {} warned)  p50 {}  p90 {}  p95 {}  max {}",
        crate::output::share_kept(c.compliance, c.met + c.breached),
        c.met,
        c.breached,
        c.open,
        c.cancelled,
        c.rejected,
        c.reset,
        c.warned,
        time::format_duration(&c.p50),
        time::format_duration(&c.p90),
        time::format_duration(&c.p95),
        time::format_duration(&c.max)
    )
}

fn figures(c: &v1::Compliance) -> serde_json::Value {
    json!({
        "policy_id": c.policy_id, "bucket_start": c.bucket_start.as_ref().map(|_| time::format(&c.bucket_start)),
        "total": c.total, "met": c.met, "breached": c.breached, "open": c.open,
        "cancelled": c.cancelled, "rejected": c.rejected, "reset": c.reset, "warned": c.warned,
        "compliance": c.compliance,
        "p50": time::format_duration(&c.p50), "p90": time::format_duration(&c.p90),
        "p95": time::format_duration(&c.p95), "max": time::format_duration(&c.max),
    })
}
