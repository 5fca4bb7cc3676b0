//! Stream → views.
//!
//! The stream is `BATON_HANDOFFS`, or a partition of it when projectors
//! share the work (see `baton_log::partitions`): the same events, each
//! hand-off's in the same order, numbered by their own stream.
//!
//! The durable consumer is (re)created at every start from the position the
//! views hold, so the views, not the consumer's ack floor, decide where to
//! resume: an empty data dir replays the whole stream, and a crash between
//! the sled commit and the ack re-delivers events the views then skip.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use baton_log::{subject, LogError, StreamSettings};
use baton_views::Applied;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::Shared;

/// How the stream is cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most events a batch.
    pub size: usize,
    /// Live, how long a batch waits for more events (see `Config::linger_ms`).
    pub linger: Duration,
}

/// Consumes until `shutdown`, restarting from the views' position after
/// any failure (NATS gone, consumer deleted, ...).
pub async fn run(
    shared: Arc<Shared>,
    js: jetstream::Context,
    consumer_name: String,
    batching: Batching,
    settings: StreamSettings,
    shutdown: CancellationToken,
) {
    let ensured = baton_runtime::retry_until("creating the streams", &shutdown, || {
        baton_log::partitions::ensure(&js, shared.partition, &settings)
    })
    .await;
    if ensured.is_none() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match consume(&shared, &js, &consumer_name, batching, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "consumer stopped, restarting from the views' position")
            }
        }
        shared
            .caught_up
            .store(false, std::sync::atomic::Ordering::Release);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error(transparent)]
    Views(#[from] baton_views::ViewsError),
    #[error("nats: {0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> ConsumeError {
    ConsumeError::Nats(e.to_string())
}

async fn consume(
    shared: &Arc<Shared>,
    js: &jetstream::Context,
    consumer_name: &str,
    batching: Batching,
    shutdown: &CancellationToken,
) -> Result<(), ConsumeError> {
    let batch_size = batching.size;
    let position = shared.views.position()?;
    let stream_name = shared.partition.stream();
    let stream = js.get_stream(&stream_name).await.map_err(nats)?;
    // Start exactly after what the views hold, whatever the consumer held.
    match stream.delete_consumer(consumer_name).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("not found") => {}
        Err(e) => return Err(nats(e)),
    }
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            durable_name: Some(consumer_name.to_owned()),
            description: Some("baton projector: views in sled".into()),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: position + 1,
            },
            ack_policy: AckPolicy::All,
            // No filter: the stream holds only hand-off and disruption
            // events (streams::ensure refuses any other subject), and
            // nats-server 2.12 delivers a multi-subject filtered consumer
            // some 200 times slower than an unfiltered one (baton-bench).
            // Room for the batch being received, the one being computed
            // and the one sled is applying, and one more.
            max_ack_pending: (4 * batch_size).max(20_000) as i64,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let pending = consumer.info().await.map_err(nats)?.num_pending;
    tracing::info!(stream = %stream_name, partition = %shared.partition, after = position, pending, "consuming the event stream");
    set_caught_up(shared, pending == 0 && fully_sourced(shared, js).await?);
    // A partition stream still being filled by JetStream: look again until
    // it is complete, even if no further message arrives.
    let mut sourcing = tokio::time::interval(Duration::from_millis(500));

    let mut chunks = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(nats)?
        .ready_chunks(batch_size);

    // Consumer sequence of the last message taken: a new consumer numbers
    // its deliveries from 1, redeliveries included.
    let mut delivered = 0;
    // The batch sled is applying while the next one is received and
    // computed; its events are acknowledged once it has landed.
    let mut landing: Option<InFlight> = None;
    loop {
        let chunk = tokio::select! {
            _ = shutdown.cancelled() => {
                if let Some(batch) = landing.take() {
                    batch.landed(shared, js).await?;
                }
                return Ok(());
            }
            // Nothing more arrived meanwhile: finish the batch in flight.
            result = async {
                match landing.as_mut() {
                    Some(batch) => (&mut batch.task).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(batch) = landing.take() {
                    batch.acknowledge(result, shared, js).await?;
                }
                continue;
            }
            _ = sourcing.tick(), if !shared.is_current() && !shared.partition.is_whole() => {
                // Nothing undelivered, and nothing delivered but not yet
                // applied (a chunk in hand is acknowledged once applied).
                let info = consumer.info().await.map_err(nats)?;
                let drained = info.num_pending == 0 && info.num_ack_pending == 0;
                set_caught_up(shared, drained && fully_sourced(shared, js).await?);
                continue;
            }
            chunk = chunks.next() => match chunk {
                Some(chunk) => chunk,
                None => return Err(ConsumeError::Nats("the message stream ended".into())),
            },
        };
        // Events are in hand that the views do not show yet: no deadline
        // is settled until they are staged (see `InFlight::acknowledge`).
        shared
            .caught_up
            .store(false, std::sync::atomic::Ordering::Release);
        let mut messages = Vec::with_capacity(batch_size);
        for message in chunk {
            messages.push(message.map_err(nats)?);
        }
        // Catching up, take a whole batch: a hand-off's events then mostly
        // meet in one commit, and sled writes its view and index once.
        // Live, wait a moment for more: one commit for several events.
        fill_batch(&mut messages, &mut chunks, batching).await?;
        let Some(last) = messages.last() else {
            continue;
        };
        let last_pending = last.info().map(|i| i.pending).unwrap_or(0);

        let mut decoded = Vec::with_capacity(messages.len());
        for message in &messages {
            let info = message.info().map_err(nats)?;
            // A delivery lost on the way (the consumer's leader failed over
            // in a cluster) leaves a gap in the consumer sequence, and acking
            // what follows would ack the lost event too (AckPolicy::All), so
            // the views would never see it. Start again from their position.
            if info.consumer_sequence != delivered + 1 {
                return Err(ConsumeError::Nats(format!(
                    "deliveries {} to {} never arrived",
                    delivered + 1,
                    info.consumer_sequence - 1
                )));
            }
            delivered = info.consumer_sequence;
            let sequence = info.stream_sequence;
            let event = Decoded::of(sequence, &message.subject, &message.payload);
            if let Err(e) = &event {
                park(shared, js, &stream_name, sequence, message, e).await?;
            }
            decoded.push((sequence, event));
        }
        let count = decoded.len() as u64;
        let task = shared
            .project(move |projection| {
                for (sequence, event) in decoded {
                    let applied = match event {
                        Ok(Decoded::Handoff(event)) => projection.apply(sequence, event)?,
                        Ok(Decoded::Disruption(event)) => projection.apply_disruption(sequence, event)?,
                        Err(e) => {
                            tracing::warn!(sequence, error = %e, "not a baton event, skipped");
                            projection.skip(sequence);
                            continue;
                        }
                    };
                    if let Applied::Refused(reason) = applied {
                        tracing::warn!(sequence, %reason, "event does not fit its history, skipped");
                    }
                }
                Ok(())
            })
            .await?;
        // The batch before was in the tree before this one was staged.
        if let Some(batch) = landing.take() {
            batch.landed(shared, js).await?;
        }
        let Some(last) = messages.pop() else {
            continue;
        };
        landing = Some(InFlight {
            task,
            last,
            last_pending,
            count,
        });
    }
}

/// A batch of the stream being applied to sled.
struct InFlight {
    task: crate::Landing<()>,
    /// Its last message: acknowledging it acknowledges the batch (AckPolicy::All).
    last: jetstream::Message,
    /// Messages the stream held beyond it when it was delivered.
    last_pending: u64,
    count: u64,
}

impl InFlight {
    /// Waits until the batch is in the views, then acknowledges it.
    async fn landed(
        mut self,
        shared: &Shared,
        js: &jetstream::Context,
    ) -> Result<(), ConsumeError> {
        let result = (&mut self.task).await;
        self.acknowledge(result, shared, js).await
    }

    /// Acknowledges the batch if it landed (`result`: its task's).
    async fn acknowledge(
        self,
        result: Result<Result<(), baton_views::ViewsError>, tokio::task::JoinError>,
        shared: &Shared,
        js: &jetstream::Context,
    ) -> Result<(), ConsumeError> {
        result.map_err(crate::task_failed)??;
        shared
            .applied
            .fetch_add(self.count, std::sync::atomic::Ordering::Relaxed);
        self.last.ack().await.map_err(nats)?;
        let caught_up =
            self.last_pending == 0 && (shared.is_current() || fully_sourced(shared, js).await?);
        set_caught_up(shared, caught_up);
        Ok(())
    }
}

/// Adds what arrives to `messages` until it holds a whole batch: while the
/// last message says more are pending, waiting up to [`FILL_WAIT`] for each
/// chunk; otherwise until the batch's linger has passed.
async fn fill_batch<S>(
    messages: &mut Vec<jetstream::Message>,
    chunks: &mut S,
    batching: Batching,
) -> Result<(), ConsumeError>
where
    S: futures::Stream<
            Item = Vec<
                Result<jetstream::Message, async_nats::jetstream::consumer::pull::MessagesError>,
            >,
        > + Unpin,
{
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
                    messages.push(message.map_err(nats)?);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Ok(())
}

/// Longest wait for more of a batch while catching up.
const FILL_WAIT: Duration = Duration::from_millis(20);

/// Whether JetStream has copied everything recorded into this projector's
/// stream (always, for the whole stream). Until then the views are not
/// complete, however far the consumer has got.
async fn fully_sourced(shared: &Shared, js: &jetstream::Context) -> Result<bool, ConsumeError> {
    let lag = baton_log::partitions::sourcing_lag(js, shared.partition)
        .await
        .map_err(nats)?;
    if lag != Some(0) {
        tracing::debug!(?lag, "partition stream still being filled by JetStream");
    }
    Ok(lag == Some(0))
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
    .await
    .map_err(nats)?;
    if parked {
        let count = shared
            .dead_lettered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        tracing::warn!(sequence, subject = %message.subject, %reason, dead_lettered = count, parked_on = %subject::deadletter(stream, sequence), "not a baton event: parked");
    }
    Ok(())
}

/// A message of the events stream, by its subject.
enum Decoded {
    Handoff(baton_domain::Event),
    Disruption(baton_domain::disruption::DisruptionEvent),
}

impl Decoded {
    fn of(sequence: u64, subject: &str, payload: &[u8]) -> Result<Decoded, LogError> {
        if subject.starts_with(subject::DISRUPTION_PREFIX) {
            baton_log::disruptions::decode(sequence, subject, payload).map(Decoded::Disruption)
        } else {
            baton_log::events::decode(sequence, subject, payload).map(Decoded::Handoff)
        }
    }
}

fn set_caught_up(shared: &Shared, caught_up: bool) {
    let was = shared
        .caught_up
        .swap(caught_up, std::sync::atomic::Ordering::AcqRel);
    if caught_up {
        shared
            .current
            .send_if_modified(|current| !std::mem::replace(current, true));
    }
    if caught_up && !was {
        tracing::info!("caught up with the stream");
        shared.deadlines_changed.notify_one();
    }
}
