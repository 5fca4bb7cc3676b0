//! Deadlines that pass with no event.
//!
//! The timer sleeps until the earliest running deadline in the views'
//! ordered index (or until the index changes), then settles every deadline
//! the wall clock has passed. It only does so once the consumer has caught up
//! with the stream: a breach is declared only after every event recorded
//! before it has been applied, so a replay never pages for a clock whose
//! stop event it simply had not read yet.

use std::{sync::Arc, time::Duration};

use baton_domain::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::Shared;

/// Sleep when there is no deadline at all (the index wakes us earlier).
const IDLE: Duration = Duration::from_secs(3600);

pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let next = match shared.views.next_deadline() {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the deadline index");
                None
            }
        };
        let now = baton_runtime::now();
        let due = next.filter(|deadline| *deadline < now);
        if due.is_none() || !shared.is_caught_up() {
            // A breach happens when more than the target has run: wake 1 ms
            // after the deadline.
            let wait = match next {
                Some(deadline) if shared.is_caught_up() => until(deadline, now),
                _ => IDLE,
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.deadlines_changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let now = baton_runtime::now();
        match shared
            .write(move |projection| projection.advance(now))
            .await
        {
            Ok(settled) => tracing::debug!(settled, "deadlines passed"),
            Err(e) => {
                tracing::error!(error = %e, "cannot settle passed deadlines");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

fn until(deadline: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis((deadline.0 - now.0 + 1).max(0) as u64)
}
