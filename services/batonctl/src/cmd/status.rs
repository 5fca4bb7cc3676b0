//! `batonctl status`: how far the projector's views are, with a progress
//! bar while they are being rebuilt. Exits 1, saying why, while they are
//! not current.

use std::{io::Write, time::Duration};

use baton_proto::v1;
use serde_json::json;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Follow a rebuild until the views are current, drawing its progress.
    #[arg(long)]
    wait: bool,
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::query(url).await?;
    loop {
        let s = client
            .get_status(v1::GetStatusRequest {})
            .await
            .map_err(super::status)?
            .into_inner();
        let done = s.current || !args.wait;
        if out.json || done {
            if args.wait && !out.json {
                eprintln!();
            }
            out.print(
                || {
                    format!(
                        "views {} at stream sequence {} of {} (catalog {}; {} events applied since start)",
                        if s.current { "current" } else { "not current" },
                        s.position,
                        s.stream_last_sequence,
                        s.catalog_version,
                        s.applied_since_start
                    )
                },
                || {
                    json!({"current": s.current, "position": s.position,
                           "stream_last_sequence": s.stream_last_sequence,
                           "catalog_version": s.catalog_version,
                           "applied_since_start": s.applied_since_start,
                           "not_current_reason": s.not_current_reason})
                },
            );
            // A script asking whether Baton can be trusted gets its answer in
            // the exit code, and a person the reason.
            if !s.current {
                anyhow::bail!("{}", s.not_current_reason);
            }
        } else {
            eprint!("\r{}", progress_bar(s.position, s.stream_last_sequence, 40));
            std::io::stderr().flush().ok();
        }
        if done {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `[#####-----]  52%  5200/10000`
pub fn progress_bar(done: u64, total: u64, width: usize) -> String {
    let share = if total == 0 {
        1.0
    } else {
        (done as f64 / total as f64).min(1.0)
    };
    let filled = (share * width as f64).round() as usize;
    format!(
        "[{}{}] {:>3.0}%  {done}/{total}",
        "#".repeat(filled),
        "-".repeat(width - filled),
        share * 100.0
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(super::progress_bar(5, 10, 4), "[##--]  50%  5/10");
        assert_eq!(super::progress_bar(0, 0, 2), "[##] 100%  0/0");
        assert_eq!(super::progress_bar(12, 10, 2), "[##] 100%  12/10");
    }
}
