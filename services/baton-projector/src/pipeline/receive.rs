//! Stream → decoded batches, on a task of its own.
//!
//! Each message counts at the time the log gives it ([`logged_at`]); one
//! whose claimed `recorded_at` does not fit that time is parked with the
//! reason, like any other message that is not a Baton event.
//!
//! A task of its own keeps receiving, so the pull requests keep flowing
//! while the views are computed (a rebuild never sits idle waiting on one
//! batch before asking for the next). It cuts the messages into batches,
//! checks that no delivery went missing, decodes them and parks what is not
//! a Baton event, while the batch before is computed and the one before
//! that is applied by sled. A bounded channel of one batch holds it back
//! when the projection is slower.
//!
//! It must never acknowledge anything: only a batch in the views is
//! acknowledged, by the consumer.

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use async_nats::jetstream::{self, consumer::pull::MessagesError};
use baton_domain::Timestamp;
use baton_log::{subject, LogError};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{nats, Batching, ConsumeError, Step};
use crate::{Shared, Unstaged};

/// Longest wait for more of a batch while catching up.
const FILL_WAIT: Duration = Duration::from_millis(20);

/// A batch of the stream, received and decoded, not yet in the views.
pub(crate) struct Received {
    /// Each message's stream sequence, the time the log gives it (see
    /// [`logged_at`]) and its event (or why it is none).
    pub decoded: Vec<(u64, Timestamp, Result<Decoded, LogError>)>,
    /// Its last message: acknowledging it acknowledges the batch (AckPolicy::All).
    pub last: jetstream::Message,
    /// Messages the stream held beyond it when it was delivered.
    pub last_pending: u64,
    /// Counts the batch as unstaged until dropped.
    pub unstaged: Unstaged,
    /// The trace context of each message that carried one, by its stream
    /// sequence (empty unless someone traces).
    pub traced: Vec<(u64, baton_runtime::otel::opentelemetry::Context)>,
}

/// A message of the events stream, by its subject.
pub(crate) enum Decoded {
    Handoff(baton_domain::RecordedEvent),
    Disruption(baton_domain::disruption::RecordedDisruption),
}

impl Decoded {
    fn of(sequence: u64, subject: &str, payload: &[u8]) -> Result<Decoded, LogError> {
        if subject.starts_with(subject::DISRUPTION_PREFIX) {
            baton_log::disruptions::decode(sequence, subject, payload).map(Decoded::Disruption)
        } else {
            baton_log::events::decode(sequence, subject, payload).map(Decoded::Handoff)
        }
    }

    fn recorded_at(&self) -> Timestamp {
        match self {
            Decoded::Handoff(r) => r.envelope.recorded_at,
            Decoded::Disruption(d) => d.recorded_at,
        }
    }
}

/// Why a message's time does not fit the time JetStream gave it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Untimely {
    #[error(
        "recorded_at {} is {} s from {} when JetStream stored the message; at most {} s apart is accepted",
        recorded_at.rfc3339(),
        apart_ms / 1000,
        stored_at.rfc3339(),
        skew.as_secs()
    )]
    Skewed {
        recorded_at: Timestamp,
        stored_at: Timestamp,
        /// `recorded_at - stored_at`.
        apart_ms: i64,
        skew: Duration,
    },
}

/// The time a message counts at in the views, or why it does not fit.
///
/// On `BATON_HANDOFFS` it is the time JetStream stored the message, and the
/// `recorded_at` ingest set just before must lie within `skew` of it. A
/// partition stream's copy carries the time JetStream copied it (later, and
/// much later after a re-sourcing), so there the event's `recorded_at`
/// counts, and may not lie more than `skew` after the copy: a message
/// cannot have been recorded after it was copied.
pub(crate) fn logged_at(
    decoded: &Decoded,
    stored_at: Timestamp,
    whole_stream: bool,
    skew: Duration,
) -> Result<Timestamp, Untimely> {
    let recorded_at = decoded.recorded_at();
    let skew_ms = baton_domain::time::duration_millis(skew);
    let apart = recorded_at.0.saturating_sub(stored_at.0);
    let too_far = if whole_stream {
        apart.saturating_abs() > skew_ms
    } else {
        apart > skew_ms
    };
    if too_far {
        return Err(Untimely::Skewed {
            recorded_at,
            stored_at,
            apart_ms: apart,
            skew,
        });
    }
    Ok(if whole_stream { stored_at } else { recorded_at })
}

type Chunks = futures::stream::ReadyChunks<jetstream::consumer::pull::Stream>;

/// Receives batches from `messages` into `batches` until the stream ends,
/// a delivery goes missing or the consumer drops the channel. Each batch
/// taken is counted ([`Shared::batch_received`]) until the consumer has
/// staged it or it is dropped.
pub(crate) async fn run(
    shared: Arc<Shared>,
    js: jetstream::Context,
    stream_name: String,
    messages: jetstream::consumer::pull::Stream,
    batching: Batching,
    batches: mpsc::Sender<Result<Received, ConsumeError>>,
) {
    let mut chunks = messages.ready_chunks(batching.size);
    // Consumer sequence of the last message taken: a new consumer numbers
    // its deliveries from 1, redeliveries included.
    let mut delivered = 0;
    loop {
        let received = match chunks.next().await {
            Some(chunk) => {
                // Events are in hand that the views do not show yet: no
                // deadline is settled until they are staged.
                let unstaged = shared.batch_received();
                let batch = receive(
                    &shared,
                    &js,
                    &stream_name,
                    (chunk, unstaged),
                    &mut chunks,
                    batching,
                    &mut delivered,
                )
                .await;
                match batch {
                    Ok(Some(batch)) => Ok(batch),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                }
            }
            None => Err(ConsumeError::StreamEnded),
        };
        let failed = received.is_err();
        if batches.send(received).await.is_err() || failed {
            return;
        }
    }
}

/// The batch that starts with `chunk`: filled, checked and decoded.
async fn receive(
    shared: &Shared,
    js: &jetstream::Context,
    stream_name: &str,
    (chunk, unstaged): (Vec<Result<jetstream::Message, MessagesError>>, Unstaged),
    chunks: &mut Chunks,
    batching: Batching,
    delivered: &mut u64,
) -> Result<Option<Received>, ConsumeError> {
    let mut messages = Vec::with_capacity(batching.size);
    for message in chunk {
        messages.push(message.map_err(nats(Step::Receive))?);
    }
    // Catching up, take a whole batch: a hand-off's events then mostly meet
    // in one commit, and sled writes its view and index once. Live, wait a
    // moment for more: one commit for several events.
    fill(&mut messages, chunks, batching).await?;
    let mut decoded = Vec::with_capacity(messages.len());
    let mut traced = Vec::new();
    let mut last_pending = 0;
    for message in &messages {
        let info = message.info().map_err(nats(Step::ReadDelivery))?;
        // A delivery lost on the way (the consumer's leader failed over in
        // a cluster) leaves a gap in the consumer sequence, and acking what
        // follows would ack the lost event too (AckPolicy::All), so the
        // views would never see it. Start again from their position.
        if info.consumer_sequence != *delivered + 1 {
            return Err(ConsumeError::DeliveriesLost {
                first: *delivered + 1,
                last: info.consumer_sequence - 1,
            });
        }
        *delivered = info.consumer_sequence;
        last_pending = info.pending;
        let sequence = info.stream_sequence;
        let stored_at = Timestamp((info.published.unix_timestamp_nanos() / 1_000_000) as i64);
        let whole = shared.partition.is_whole();
        let mut at = stored_at;
        let event = Decoded::of(sequence, &message.subject, &message.payload).and_then(|d| {
            at = logged_at(&d, stored_at, whole, shared.max_recorded_skew).map_err(|e| {
                LogError::Undecodable {
                    sequence,
                    subject: message.subject.to_string(),
                    reason: e.to_string(),
                }
            })?;
            Ok(d)
        });
        if let Err(e) = &event {
            park(shared, js, stream_name, sequence, message, e).await?;
        } else if let Some(cx) = baton_log::trace::extract(message.headers.as_ref()) {
            traced.push((sequence, cx));
        }
        decoded.push((sequence, at, event));
    }
    Ok(messages.pop().map(|last| Received {
        decoded,
        last,
        last_pending,
        unstaged,
        traced,
    }))
}

/// Adds what arrives to `messages` until it holds a whole batch: while the
/// last message says more are pending, waiting up to [`FILL_WAIT`] for each
/// chunk; otherwise until the batch's linger has passed.
async fn fill(
    messages: &mut Vec<jetstream::Message>,
    chunks: &mut Chunks,
    batching: Batching,
) -> Result<(), ConsumeError> {
    let lingered = tokio::time::Instant::now() + batching.linger;
    while messages.len() < batching.size {
        let pending = messages
            .last()
            .and_then(|m| m.info().ok())
            .map_or(0, |i| i.pending);
        let wait = if pending > 0 {
            FILL_WAIT
        } else {
            lingered.saturating_duration_since(tokio::time::Instant::now())
        };
        if wait.is_zero() {
            break;
        }
        match tokio::time::timeout(wait, chunks.next()).await {
            Ok(Some(chunk)) => {
                for message in chunk {
                    messages.push(message.map_err(nats(Step::Receive))?);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(())
}

/// Parks a message that is not a Baton event on the dead-letter stream,
/// before it is acknowledged, so it is out of the way but never out of sight.
async fn park(
    shared: &Shared,
    js: &jetstream::Context,
    stream: &str,
    sequence: u64,
    message: &jetstream::Message,
    error: &LogError,
) -> Result<(), ConsumeError> {
    let reason = error.to_string();
    let parked = baton_log::deadletter::park(
        js,
        stream,
        sequence,
        &message.subject,
        message.payload.clone(),
        &reason,
    )
    .await?;
    if parked {
        let count = shared.dead_lettered.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(sequence, subject = %message.subject, %reason, dead_lettered = count, parked_on = %subject::deadletter(stream, sequence), "not a baton event: parked");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disruption(recorded_at: i64) -> baton_domain::disruption::RecordedDisruption {
        baton_domain::disruption::RecordedDisruption {
            event: baton_domain::disruption::DisruptionEvent {
                disruption_id: baton_domain::Token::parse("d-1").expect("token"),
                phase: baton_domain::disruption::Phase::Started,
                supplier: baton_domain::Token::parse("lab").expect("token"),
                kind: None,
                scope: Default::default(),
                occurred_at: Timestamp(0),
                reason: "analyzer down".into(),
                actor: String::new(),
            },
            recorded_at: Timestamp(recorded_at),
            sent_by: String::new(),
        }
    }

    fn decoded(recorded_at: i64) -> Decoded {
        Decoded::Disruption(disruption(recorded_at))
    }

    const SKEW: Duration = Duration::from_secs(60);

    #[test]
    fn the_whole_stream_counts_at_jetstream_s_time_within_the_skew() {
        let stored = Timestamp(10_000_000);
        assert_eq!(
            logged_at(&decoded(9_990_000), stored, true, SKEW),
            Ok(stored)
        );
        let future = logged_at(&decoded(10_000_000 + 50 * 60_000), stored, true, SKEW)
            .expect_err("fifty minutes ahead");
        assert!(
            matches!(future, Untimely::Skewed { apart_ms, .. } if apart_ms == 50 * 60_000),
            "{future}"
        );
        assert!(future.to_string().contains("3000 s from"), "{future}");
        assert!(logged_at(&decoded(10_000_000 - 61_000), stored, true, SKEW).is_err());
    }

    #[test]
    fn a_message_without_recorded_at_is_not_a_baton_event() {
        use prost::Message as _;
        let subject = "baton.disruption.lab.d-1";
        let mut wire = baton_proto::convert::recorded_disruption_to_proto(&disruption(5));
        assert!(Decoded::of(1, subject, &wire.encode_to_vec()).is_ok());
        wire.recorded_at = None;
        let refused = Decoded::of(1, subject, &wire.encode_to_vec()).err();
        assert!(
            refused.is_some_and(|e| e.to_string().contains("recorded_at")),
            "a disruption nobody recorded is parked"
        );
    }

    #[test]
    fn a_partition_counts_at_recorded_at_never_after_its_copy() {
        let copied = Timestamp(10_000_000);
        let long_before = Timestamp(1_000);
        assert_eq!(
            logged_at(&decoded(long_before.0), copied, false, SKEW),
            Ok(long_before),
            "re-sourced long after it was recorded"
        );
        assert!(logged_at(&decoded(10_000_000 + 61_000), copied, false, SKEW).is_err());
    }
}
