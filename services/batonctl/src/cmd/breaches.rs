//! `batonctl breaches` and `batonctl watch`

use baton_proto::v1;

use crate::output::{self, Output};

/// Which breaches: by promise, supplier and customer (all if not given).
#[derive(Debug, clap::Args)]
pub struct Filter {
    /// Promise (policy) id.
    #[arg(long)]
    policy: Option<String>,
    /// Supplier department id.
    #[arg(long)]
    supplier: Option<String>,
    /// Customer department id.
    #[arg(long)]
    customer: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    filter: Filter,
    /// Only breaches still waiting for their stop event.
    #[arg(long)]
    open: bool,
    #[arg(long, default_value_t = 100)]
    limit: u32,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    filter: Filter,
    /// Watch warnings (a clock past its promise's warn_at share) instead of breaches.
    #[arg(long)]
    warnings: bool,
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let r = client
        .list_breaches(v1::ListBreachesRequest {
            policy_id: args.filter.policy.unwrap_or_default(),
            supplier: args.filter.supplier.unwrap_or_default(),
            customer: args.filter.customer.unwrap_or_default(),
            open_only: args.open,
            page_size: args.limit,
            page_token: String::new(),
        })
        .await
        .map_err(super::status)?
        .into_inner();
    for b in &r.breaches {
        out.print(|| output::breach_line(b), || output::breach_json(b));
    }
    if r.breaches.is_empty() && !out.json {
        println!("no breaches");
    }
    Ok(())
}

pub async fn watch(url: &str, args: WatchArgs, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    let policy_id = args.filter.policy.unwrap_or_default();
    let supplier = args.filter.supplier.unwrap_or_default();
    let customer = args.filter.customer.unwrap_or_default();
    if args.warnings {
        let mut stream = client
            .watch_warnings(v1::WatchWarningsRequest {
                policy_id,
                supplier,
                customer,
            })
            .await
            .map_err(super::status)?
            .into_inner();
        if !out.json {
            eprintln!("watching for warnings (Ctrl-C to stop)");
        }
        while let Some(response) = stream.message().await.map_err(super::status)? {
            // A response without a warning carries something newer than
            // this client: nothing to show.
            let Some(w) = response.warning else {
                continue;
            };
            out.print(
                || {
                    format!(
                        "WARNING {} {} -> {} {}: due {}",
                        w.policy_id,
                        w.supplier,
                        w.customer,
                        w.handoff_id,
                        crate::time::format(&w.deadline)
                    )
                },
                || crate::output::warning_json(&w),
            );
        }
        return Ok(());
    }
    let mut stream = client
        .watch_breaches(v1::WatchBreachesRequest {
            policy_id,
            supplier,
            customer,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    if !out.json {
        eprintln!("watching for breaches (Ctrl-C to stop)");
    }
    while let Some(response) = stream.message().await.map_err(super::status)? {
        // As for warnings: nothing this client knows how to show.
        let Some(b) = response.breach else {
            continue;
        };
        out.print(|| output::breach_line(&b), || output::breach_json(&b));
    }
    Ok(())
}
