//! `batonctl matrix`: compliance for every supplier-customer pair.

use baton_proto::v1;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct MatrixArgs {
    /// Hand-offs requested at or after: RFC 3339, 'now-7d', ...
    #[arg(long)]
    from: Option<String>,
    /// Hand-offs requested before: RFC 3339, 'now' or 'now-10m'.
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
                    "{:<16} {:<16} {:>8} {:>7} {:>6} {:>6} {:>8} {:>9} {:>12} {:>7}",
                    c.supplier,
                    c.customer,
                    c.handoffs,
                    crate::output::share_kept(c.compliance, c.met + c.breached),
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
