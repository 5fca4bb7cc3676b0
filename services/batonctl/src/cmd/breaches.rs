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
    /// At most this many.
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
        let stream = client
            .watch_warnings(v1::WatchWarningsRequest {
                policy_id,
                supplier,
                customer,
            })
            .await
            .map_err(super::status)?
            .into_inner();
        return print_each(
            stream,
            "warnings",
            out,
            |r| r.warning,
            |w| {
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
                    || crate::output::warning_json(w),
                )
            },
        )
        .await;
    }
    let stream = client
        .watch_breaches(v1::WatchBreachesRequest {
            policy_id,
            supplier,
            customer,
        })
        .await
        .map_err(super::status)?
        .into_inner();
    print_each(
        stream,
        "breaches",
        out,
        |r| r.breach,
        |b| out.print(|| output::breach_line(b), || output::breach_json(b)),
    )
    .await
}

/// Prints what each response of `stream` carries until the server ends it.
/// A response that carries nothing (`item` is `None`) holds something newer
/// than this client knows how to show, and is passed over.
async fn print_each<R, T>(
    mut stream: tonic::Streaming<R>,
    what: &str,
    out: Output,
    item: impl Fn(R) -> Option<T>,
    print: impl Fn(&T),
) -> anyhow::Result<()> {
    if !out.json {
        eprintln!("watching for {what} (Ctrl-C to stop)");
    }
    while let Some(response) = stream.message().await.map_err(super::status)? {
        if let Some(item) = item(response) {
            print(&item);
        }
    }
    Ok(())
}
