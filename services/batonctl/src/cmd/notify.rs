//! `batonctl notify`: the deliveries notify parked after their last
//! attempt, listed, and sent again (notify delivers them; see
//! `baton_notify::parked`).

use anyhow::Context;
use serde_json::json;

use crate::output::{self, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: NotifyCommand,

    /// NATS user and TLS (as the services take them; see deploy/nats/auth.conf).
    #[command(flatten)]
    nats: baton_log::NatsSecurity,
}

#[derive(Debug, clap::Subcommand)]
enum NotifyCommand {
    /// List parked deliveries, oldest first: route, channel, signal, why.
    Parked,
    /// Send parked deliveries again (all, or one route's or channel's).
    Retry {
        /// Only this route's.
        #[arg(long)]
        route: Option<String>,
        /// Only this channel's.
        #[arg(long)]
        channel: Option<String>,
    },
}

pub async fn run(nats_url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let client = baton_log::connect_once(nats_url, "batonctl-notify", &args.nats)
        .await
        .with_context(|| format!("cannot reach nats at {nats_url}"))?;
    let js = async_nats::jetstream::new(client);
    match args.command {
        NotifyCommand::Parked => {
            let parked = baton_notify::parked::list(&js).await?;
            if parked.is_empty() && !out.json {
                output::line("no parked deliveries");
            }
            for p in parked {
                out.print(
                    || {
                        format!(
                            "{:>6}  {}/{}  {}  delivery {}  {}",
                            p.sequence, p.route, p.channel, p.signal_subject, p.delivery, p.reason
                        )
                    },
                    || {
                        json!({
                            "sequence": p.sequence, "route": p.route, "channel": p.channel,
                            "signal_subject": p.signal_subject, "delivery": p.delivery, "reason": p.reason,
                        })
                    },
                );
            }
        }
        NotifyCommand::Retry { route, channel } => {
            let moved =
                baton_notify::parked::redrive(&js, route.as_deref(), channel.as_deref()).await?;
            out.print(
                || format!("{moved} parked deliveries sent to notify again"),
                || json!({"redriven": moved}),
            );
        }
    }
    Ok(())
}
