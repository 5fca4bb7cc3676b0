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

use crate::{Shared, TaskError};

/// Sleep when there is no deadline at all (the index wakes us earlier).
const IDLE: Duration = Duration::from_secs(3600);

/// Settles passing deadlines until `shutdown`. A storage failure ends it
/// (and so the process) with the error.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) -> Result<(), TaskError> {
    loop {
        // The index is in memory, but read off sled when it was lost:
        // off the async threads either way.
        let next = shared.read(|views| views.next_deadline()).await?;
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
                _ = shutdown.cancelled() => return Ok(()),
                _ = shared.deadlines_changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            // Blocks this worker thread outright (tests of a frozen runtime).
            shared.failpoints.hit_blocking("freeze-worker")?;
            continue;
        }
        shared.failpoints.hit("timer").await?;
        let now = baton_runtime::now();
        // A storage error is reported by `write`; a panicked task is not
        // one. Either ends the timer.
        let settled = shared
            .write(move |projection| projection.advance(now))
            .await?;
        tracing::debug!(settled, "deadlines passed");
    }
}

fn until(deadline: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis((deadline.0 - now.0 + 1).max(0) as u64)
}
