//! The outbox of breaches, corrections and warnings, drained onto NATS.
//!
//! A breach is written to the outbox in the same sled batch that records it;
//! this task publishes each one with [`baton_log::signals::announce_once`]
//! and then removes it. A crash between the two publishes it again, which
//! JetStream refuses as already announced: exactly once, replay or not.
//! A correction (a late event showed an announced breach was a kept
//! promise after all) goes the same way on `baton.sla.corrected.…`, a
//! warning on `baton.sla.warning.…`, and a breach of a promise with an
//! escalation target also on `baton.sla.escalated.<target>.…`.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use baton_log::{
    signals::{announce_once, Announced},
    subject::ClockSubject,
};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use baton_views::Signal;

use crate::{
    query::{breach_to_proto, warning_to_proto},
    Shared,
};

pub async fn run(shared: Arc<Shared>, js: jetstream::Context, shutdown: CancellationToken) {
    // Not while rebuilding: a breach the rest of the stream corrects would
    // be announced, then corrected, though the live run never paged for it.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = shared.wait_current() => {}
    }
    while !shutdown.is_cancelled() {
        let pending = match shared.views.outbox(256) {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                Vec::new()
            }
        };
        if pending.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = shared.outbox_ready.notified() => continue,
            }
        }
        'entries: for (key, signal, record) in pending {
            let clock = ClockSubject {
                policy: &record.policy_id,
                supplier: &record.supplier,
                customer: &record.customer,
                handoff_id: &record.handoff_id,
                cycle: record.cycle,
            };
            let mut announcements: Vec<(&'static str, String, bytes::Bytes)> = Vec::new();
            let label = crate::metrics::Metrics::signal_label(signal);
            match signal {
                Signal::Breach | Signal::Correction => {
                    let mut message = breach_to_proto(&record, baton_runtime::now());
                    message.corrected = signal == Signal::Correction;
                    let payload: bytes::Bytes = message.encode_to_vec().into();
                    if signal == Signal::Breach {
                        announcements.push((label, clock.breach(), payload.clone()));
                        if let Some(target) = &record.escalate_to {
                            announcements.push(("escalation", clock.escalation(target), payload));
                        }
                    } else {
                        announcements.push((label, clock.correction(), payload));
                    }
                }
                Signal::Warning => {
                    let payload = warning_to_proto(&record).encode_to_vec().into();
                    announcements.push((label, clock.warning(), payload));
                }
            }
            for (label, subject, payload) in announcements {
                match announce(&js, subject, payload, &shutdown).await {
                    None => break 'entries,
                    Some(true) => shared.metrics.announced(
                        label,
                        record.policy_id.as_str(),
                        record.supplier.as_str(),
                        record.customer.as_str(),
                    ),
                    Some(false) => {}
                }
            }
            {
                let _exclusive = shared.exclusive().await;
                match shared.views.announced(&key, signal, &record) {
                    Ok(true) => {
                        tracing::info!(handoff = %record.handoff_id, "corrected while it was announced: correction queued")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %e, handoff = %record.handoff_id, ?signal, "cannot clear the outbox entry")
                    }
                }
            }
        }
    }
}

/// Publishes one announcement once: `Some(true)` if published now,
/// `Some(false)` if it was before, `None` if NATS could not take it (after
/// a pause, so the caller retries the outbox from the top).
async fn announce(
    js: &jetstream::Context,
    subject: String,
    payload: bytes::Bytes,
    shutdown: &CancellationToken,
) -> Option<bool> {
    match announce_once(js, subject.clone(), payload).await {
        Ok(Announced::Now(sequence)) => {
            tracing::info!(%subject, sequence, "announced");
            Some(true)
        }
        Ok(Announced::Already) => {
            tracing::debug!(%subject, "was announced before");
            Some(false)
        }
        Err(e) => {
            tracing::warn!(error = %e, %subject, "cannot announce yet, retrying");
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            None
        }
    }
}
