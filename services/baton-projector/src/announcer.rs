//! The outbox of breaches and corrections, drained onto NATS.
//!
//! A breach is written to the outbox in the same sled batch that records it;
//! this task publishes each one with [`baton_log::signals::announce_once`]
//! and then removes it. A crash between the two publishes it again, which
//! JetStream refuses as already announced: exactly once, replay or not.
//! A correction (a late event showed an announced breach was a kept
//! promise after all) goes the same way on `baton.sla.corrected.…`.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use baton_log::signals::{announce_once, Announced};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use baton_views::Signal;

use crate::{query::breach_to_proto, Shared};

pub async fn run(shared: Arc<Shared>, js: jetstream::Context, shutdown: CancellationToken) {
    loop {
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
        for (key, signal, record) in pending {
            let subject_of = match signal {
                Signal::Breach => baton_log::subject::breach,
                Signal::Correction => baton_log::subject::correction,
            };
            let subject = subject_of(
                &record.policy_id,
                &record.supplier,
                &record.customer,
                &record.handoff_id,
            );
            let mut message = breach_to_proto(&record);
            message.corrected = signal == Signal::Correction;
            let payload = message.encode_to_vec().into();
            match announce_once(&js, subject.clone(), payload).await {
                Ok(outcome) => {
                    match outcome {
                        Announced::Now(sequence) => {
                            tracing::info!(%subject, sequence, "announced")
                        }
                        Announced::Already => {
                            tracing::debug!(%subject, "was announced before")
                        }
                    }
                    let _writer = shared.writer.lock().await;
                    match shared.views.announced(&key, signal, &record) {
                        Ok(true) => {
                            tracing::info!(%subject, "corrected while it was announced: correction queued")
                        }
                        Ok(false) => {}
                        Err(e) => tracing::error!(error = %e, "cannot clear the outbox entry"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, %subject, "cannot announce the breach yet, retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    break;
                }
            }
        }
    }
}
