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
    ErrorCode,
};
use baton_log::{JetStreamCode, LogError, StreamSettings};
use baton_views::ApplyOutcome;
use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};

use super::{
    nats,
    receive::{self, Decoded, Received},
    Batching, ConsumeError, Step,
};
use crate::{Shared, TaskError};

/// Consumes until `shutdown`, restarting from the views' position after a
/// NATS failure (NATS gone, consumer deleted, ...). A storage failure is
/// not retried: it ends the task, and so the process, with the error. So
/// does a NATS server, once reached, older than Baton needs: nothing is
/// consumed from it.
pub async fn run(
    shared: Arc<Shared>,
    js: jetstream::Context,
    consumer_name: String,
    batching: Batching,
    settings: StreamSettings,
    shutdown: CancellationToken,
) -> Result<(), TaskError> {
    let client = js.client();
    let checked = tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        checked = baton_log::version::supported(&client) => checked,
    };
    let version = checked?;
    tracing::info!(%version, "nats-server version supported");
    let ensured = baton_runtime::retry_until("creating the streams", &shutdown, || {
        baton_log::partitions::ensure(&js, shared.partition, &settings)
    })
    .await;
    if ensured.is_none() {
        return Ok(());
    }
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match consume(&shared, &js, &consumer_name, batching, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(ConsumeError::Views(e)) => {
                shared.storage_error(&e);
                return Err(e.into());
            }
            Err(ConsumeError::Task(e)) => return Err(e.into()),
            Err(ConsumeError::Injected(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "consumer stopped, restarting from the views' position")
            }
        }
        shared
            .caught_up
            .store(false, std::sync::atomic::Ordering::Release);
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Ok(())
}

/// Whether deleting the consumer failed only because there was none (a
/// first start, or an operator deleted it): told by JetStream's code.
fn no_consumer_to_delete(e: &jetstream::stream::ConsumerError) -> bool {
    e.jetstream_code() == Some(ErrorCode::CONSUMER_NOT_FOUND)
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
    let stream = js
        .get_stream(&stream_name)
        .await
        .map_err(nats(Step::ReadStream))?;
    not_ahead(shared, &stream_name, position, &stream).await?;
    let mut consumer = consumer_after(&stream, consumer_name, position, batch_size).await?;
    let pending = consumer
        .info()
        .await
        .map_err(nats(Step::ReadConsumer))?
        .num_pending;
    tracing::info!(stream = %stream_name, partition = %shared.partition, after = position, pending, "consuming the event stream");
    set_caught_up(shared, pending == 0 && fully_sourced(shared, js).await?);
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch_size)
        .heartbeat(Duration::from_secs(5))
        .messages()
        .await
        .map_err(nats(Step::Subscribe))?;
    // Received and decoded on a task of their own while the batch before is
    // computed and the one before that applied (see `receiver`).
    let (batches_tx, batches) = mpsc::channel(1);
    let receiver = AbortOnDropHandle::new(tokio::spawn(receive::run(
        shared.clone(),
        js.clone(),
        stream_name.clone(),
        messages,
        batching,
        batches_tx,
    )));

    let applied = apply_batches(shared, js, &mut consumer, batches, shutdown).await;
    // The receiver holds the views (and so sled's lock on its directory):
    // gone before this returns, so a restart or a stopped projector's
    // caller finds them free. (Dropped on an early return, it is aborted.)
    receiver.abort();
    let _ = receiver.await;
    applied
}

/// Fails, having marked the views in doubt, if they hold more than the
/// stream does (it lost what it had acknowledged, or was replaced):
/// resuming after their position would skip every event until the stream
/// passed it. Marked, they are discarded and rebuilt at the next start;
/// until then the projector stops, loudly.
async fn not_ahead(
    shared: &Arc<Shared>,
    stream_name: &str,
    position: u64,
    stream: &jetstream::stream::Stream,
) -> Result<(), ConsumeError> {
    let last = stream.cached_info().state.last_sequence;
    if position <= last {
        return Ok(());
    }
    let error = baton_views::ViewsError::AheadOfStream { position, last };
    tracing::error!(%error, stream = %stream_name, "views ahead of the stream");
    let reason = error.to_string();
    shared
        .read(move |views| views.mark_in_doubt(&reason))
        .await?;
    Err(ConsumeError::Views(error))
}

/// The durable consumer, created afresh to start exactly after `position`
/// (what the views hold), whatever it held before.
async fn consumer_after(
    stream: &jetstream::stream::Stream,
    consumer_name: &str,
    position: u64,
    batch_size: usize,
) -> Result<jetstream::consumer::Consumer<pull::Config>, ConsumeError> {
    match stream.delete_consumer(consumer_name).await {
        Ok(_) => {}
        Err(e) if no_consumer_to_delete(&e) => {}
        Err(e) => return Err(nats(Step::DeleteConsumer)(e)),
    }
    stream
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
            // Room for the batch being received, the one waiting for the
            // projection, the one being computed, the one sled is
            // applying, and one more.
            max_ack_pending: (6 * batch_size).max(20_000) as i64,
            ..Default::default()
        })
        .await
        .map_err(nats(Step::CreateConsumer))
}

/// Applies the received batches until `shutdown`, acknowledging each once
/// it has landed.
async fn apply_batches(
    shared: &Arc<Shared>,
    js: &jetstream::Context,
    consumer: &mut jetstream::consumer::Consumer<pull::Config>,
    mut batches: mpsc::Receiver<Result<Received, ConsumeError>>,
    shutdown: &CancellationToken,
) -> Result<(), ConsumeError> {
    // A partition stream still being filled by JetStream: look again until
    // it is complete, even if no further message arrives.
    let mut sourcing = tokio::time::interval(Duration::from_millis(500));
    // The batch sled is applying while the next one is received and
    // computed; its events are acknowledged once it has landed.
    let mut landing: Option<InFlight> = None;
    loop {
        let received = tokio::select! {
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
                // applied (a batch in hand is acknowledged once applied).
                let info = consumer.info().await.map_err(nats(Step::ReadConsumer))?;
                let drained = info.num_pending == 0 && info.num_ack_pending == 0;
                set_caught_up(shared, drained && fully_sourced(shared, js).await?);
                continue;
            }
            received = batches.recv() => match received {
                Some(received) => received?,
                None => return Err(ConsumeError::ReceiverStopped),
            },
        };
        shared.failpoints.hit("consumer").await?;
        // Blocks this worker thread outright (tests of a frozen runtime).
        shared.failpoints.hit_blocking("freeze-worker")?;
        let staged = stage(shared, received).await?;
        // The batch before was in the tree before this one was staged.
        if let Some(batch) = landing.take() {
            batch.landed(shared, js).await?;
        }
        landing = Some(staged);
    }
}

/// Folds a received batch into the views and stages it; it lands on.
async fn stage(shared: &Arc<Shared>, received: Received) -> Result<InFlight, ConsumeError> {
    let Received {
        decoded,
        last,
        last_pending,
        unstaged,
        traced,
    } = received;
    let count = decoded.len() as u64;
    let traces = shared.traces.clone();
    let task = shared
        .project(move |projection| fold(projection, decoded, &traces, traced))
        .await;
    // Staged, or failed and never to be: later writes read it as applied.
    drop(unstaged);
    let task = task?;
    Ok(InFlight {
        task,
        last,
        last_pending,
        count,
    })
}

/// Applies each decoded message in turn (skipping what is not a Baton
/// event, or does not fit its history); returns the disruptions applied,
/// relayed to the board once the batch has landed. A hand-off event whose
/// message carried a trace context (`traced`) is applied in a span of its
/// own, continuing that trace (see [`crate::traces`]).
fn fold(
    projection: &mut baton_views::Projection<'_>,
    decoded: Vec<(u64, baton_domain::Timestamp, Result<Decoded, LogError>)>,
    traces: &crate::traces::Traces,
    traced: Vec<(u64, baton_runtime::otel::opentelemetry::Context)>,
) -> Result<Vec<baton_proto::v1::DisruptionEvent>, baton_views::ViewsError> {
    let parents: Vec<_> = traced.iter().map(|(_, cx)| cx.clone()).collect();
    let batch = crate::traces::batch_span(&parents, decoded.len());
    let mut traced = traced.into_iter().peekable();
    let mut disruptions = Vec::new();
    for (sequence, at, event) in decoded {
        let parent = traced
            .next_if(|(traced_at, _)| *traced_at == sequence)
            .map(|(_, cx)| cx);
        let applied = match event {
            Ok(Decoded::Handoff(event)) => match parent {
                Some(parent) => {
                    let handoff_id = event.event.handoff_id.to_string();
                    crate::traces::applying(
                        traces,
                        &parent,
                        batch.as_ref(),
                        &handoff_id,
                        sequence,
                        || projection.apply(sequence, at, event),
                    )?
                }
                None => projection.apply(sequence, at, event)?,
            },
            Ok(Decoded::Disruption(event)) => {
                let relayed = baton_proto::convert::recorded_disruption_to_proto(&event);
                let applied = projection.apply_disruption(sequence, at, event)?;
                if applied == ApplyOutcome::Applied {
                    disruptions.push(relayed);
                }
                applied
            }
            Err(e) => {
                tracing::warn!(sequence, error = %e, "not a baton event, skipped");
                projection.skip(sequence);
                continue;
            }
        };
        match applied {
            ApplyOutcome::Refused(reason) => {
                tracing::warn!(sequence, %reason, "event does not fit its history, skipped")
            }
            ApplyOutcome::Retired => tracing::info!(
                sequence,
                "event of a hand-off whose view was retired: in the log and its timeline, moving no figure"
            ),
            ApplyOutcome::Applied | ApplyOutcome::AlreadyApplied => {}
        }
    }
    Ok(disruptions)
}

/// A batch of the stream being applied to sled.
struct InFlight {
    /// Yields the disruptions the batch applied.
    task: crate::Landing<Vec<baton_proto::v1::DisruptionEvent>>,
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
        result: Result<
            Result<Vec<baton_proto::v1::DisruptionEvent>, baton_views::ViewsError>,
            tokio::task::JoinError,
        >,
        shared: &Shared,
        js: &jetstream::Context,
    ) -> Result<(), ConsumeError> {
        let disruptions = result.map_err(crate::task_gone(crate::LANDING))??;
        // In the views, not yet acknowledged: a crash here re-delivers
        // events the views then skip.
        shared.failpoints.hit("after-commit-before-ack").await?;
        if shared.is_current() {
            for disruption in disruptions {
                shared
                    .relay
                    .send(crate::relay::Relayed::Disruption(disruption));
            }
        }
        shared
            .applied
            .fetch_add(self.count, std::sync::atomic::Ordering::Relaxed);
        self.last.ack().await.map_err(nats(Step::Acknowledge))?;
        let caught_up =
            self.last_pending == 0 && (shared.is_current() || fully_sourced(shared, js).await?);
        set_caught_up(shared, caught_up);
        Ok(())
    }
}

/// Whether JetStream has copied everything recorded into this projector's
/// stream (always, for the whole stream). Until then the views are not
/// complete, however far the consumer has got.
async fn fully_sourced(shared: &Shared, js: &jetstream::Context) -> Result<bool, ConsumeError> {
    let lag = baton_log::partitions::sourcing_lag(js, shared.partition).await?;
    if lag != Some(0) {
        tracing::debug!(?lag, "partition stream still being filled by JetStream");
    }
    Ok(lag == Some(0))
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

#[cfg(test)]
mod tests {
    use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind};

    use super::no_consumer_to_delete;

    /// JetStream's answer to a consumer request.
    fn refused(json: &str) -> ConsumerError {
        let api: async_nats::jetstream::Error = serde_json::from_str(json).expect("an API error");
        ConsumerError::new(ConsumerErrorKind::JetStream(api))
    }

    #[test]
    fn only_a_missing_consumer_is_nothing_to_delete() {
        assert!(no_consumer_to_delete(&refused(
            r#"{"code": 404, "err_code": 10014, "description": "consumer not found"}"#
        )));
        // A missing stream is not: creating the consumer would fail too.
        assert!(!no_consumer_to_delete(&refused(
            r#"{"code": 404, "err_code": 10059, "description": "stream not found"}"#
        )));
        // Nor is a failure that merely says so.
        let said = ConsumerError::with_source(
            ConsumerErrorKind::Request,
            std::io::Error::other("consumer not found"),
        );
        assert!(!no_consumer_to_delete(&said));
    }
}
