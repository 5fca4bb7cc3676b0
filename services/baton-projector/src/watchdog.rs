//! Stalls are failures: a part that stops making progress without dying
//! turns the projector unhealthy, loudly.
//!
//! - The announcer stalls when the outbox's first entry stays unpublished
//!   for longer than `--stall-after` while NATS is connected (a breach
//!   computed but paging nobody).
//! - The timer stalls when a deadline in the index is past due by more than
//!   `--stall-after` while the views are caught up (a breach nobody
//!   declared).
//!
//! Either holds gRPC health and `/readyz` NOT_SERVING with the reason, sets
//! `baton_projector_stalled{part}` to 1 and logs at error level, until the
//! part moves again.
//!
//! It also checks that the views never hold more than the stream does: a
//! stream that ends below the views' position lost events (or was
//! replaced), and the views are in doubt. It marks them, so the next start
//! rebuilds them, and ends the process. That is all it ever writes.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{Shared, TaskError};

/// Watches for stalls until `shutdown`.
pub async fn run(
    shared: Arc<Shared>,
    js: async_nats::jetstream::Context,
    stall_after: Duration,
    shutdown: CancellationToken,
) -> Result<(), TaskError> {
    let client = js.client();
    let every = (stall_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    // The outbox's first key and since when it has been first (while connected).
    let mut head: Option<(Vec<u8>, Instant)> = None;
    let mut announcer = Part::new("announcer");
    let mut timer = Part::new("timer");
    loop {
        shared.failpoints.hit("watchdog").await?;
        let judged = shared.is_current();
        let first = shared.read(|views| views.outbox_head()).await?;
        head = match (first, head) {
            (Some(key), Some((seen, since))) if key == seen => Some((seen, since)),
            (Some(key), _) => Some((key, Instant::now())),
            (None, _) => None,
        };
        if !baton_log::is_connected(&client) {
            // Nothing can be published now: the stall clock starts again.
            head = head.map(|(key, _)| (key, Instant::now()));
        }
        let unpublished = head.as_ref().map(|(_, since)| since.elapsed());
        announcer
            .report(
                &shared,
                judged && unpublished.is_some_and(|d| d > stall_after),
                || {
                    format!(
                        "announcer stalled: an outbox entry has waited {}s to be published while NATS is connected",
                        unpublished.unwrap_or_default().as_secs()
                    )
                },
            )
            .await;

        if baton_log::is_connected(&client) {
            views_not_ahead(&shared, &js).await?;
        }

        let next = shared.read(|views| views.next_deadline()).await?;
        let overdue = next.map(|due| baton_runtime::now().since(due));
        timer
            .report(
                &shared,
                shared.is_caught_up() && overdue.is_some_and(|d| d > stall_after),
                || {
                    format!(
                        "timer stalled: a deadline is {}s past due and unsettled while the views are caught up",
                        overdue.unwrap_or_default().as_secs()
                    )
                },
            )
            .await;

        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Fails (having marked the views in doubt) if the views' position is past
/// the end of the stream. The position is read first: it only grows, and
/// every event it counts was in the stream before.
async fn views_not_ahead(
    shared: &Arc<Shared>,
    js: &async_nats::jetstream::Context,
) -> Result<(), TaskError> {
    let position = shared.read(|views| views.position()).await?;
    let Ok(stream) = js.get_stream(shared.partition.stream()).await else {
        return Ok(()); // NATS busy: the next pass looks again
    };
    let last = stream.cached_info().state.last_sequence;
    if position <= last {
        return Ok(());
    }
    let error = baton_views::ViewsError::AheadOfStream { position, last };
    tracing::error!(%error, "views ahead of the stream");
    let reason = error.to_string();
    shared
        .read(move |views| views.mark_in_doubt(&reason))
        .await?;
    Err(error.into())
}

/// One watched part and whether it is stalled now.
struct Part {
    name: &'static str,
    stalled: bool,
}

impl Part {
    fn new(name: &'static str) -> Part {
        Part {
            name,
            stalled: false,
        }
    }

    async fn report(&mut self, shared: &Shared, stalled: bool, reason: impl FnOnce() -> String) {
        shared.metrics.stalled(self.name, stalled);
        if stalled == self.stalled {
            return;
        }
        self.stalled = stalled;
        let key = format!("stall:{}", self.name);
        if stalled {
            let reason = reason();
            tracing::error!(part = self.name, %reason, "stalled");
            shared.health.fault(key, reason).await;
        } else {
            tracing::info!(part = self.name, "moving again");
            shared.health.clear(&key).await;
        }
    }
}
