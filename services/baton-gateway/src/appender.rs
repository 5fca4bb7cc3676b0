//! Appends through ingest in batches: the events that connections hand in
//! while a batch is on its way go together in the next `AppendBatch`, in
//! which ingest judges each by the same rules as a unary `Append` and
//! answers each on its own. A message's own events still go one at a time,
//! each after the one before was stored, so nothing about a message's
//! answer changes; only many senders' events share a round trip and a
//! request's cost.
//!
//! It must never answer an event before ingest answered it, nor lose one
//! silently: when a batch gets no answer, every event in it is reported
//! unavailable and its sender sends the message again.

use std::{sync::Arc, time::Duration};

use baton_proto::v1::{self, ingest_client::IngestClient};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::{transport::Channel, Code};

use crate::metrics::Metrics;

/// Most events in one `AppendBatch` (ingest takes up to 1,000).
pub const MAX_BATCH: usize = 256;

/// Batches on their way to ingest at once.
const IN_FLIGHT: usize = 4;

/// Events queued for the next batch before callers wait to hand theirs in.
const QUEUE: usize = 4 * MAX_BATCH;

/// Why an event was not stored.
#[derive(Debug)]
pub enum Failure {
    /// Ingest refused it: the message is wrong (AE).
    Refused(tonic::Status),
    /// Ingest could not store it now: the sender must send again (no ACK).
    Unavailable(String),
}

impl Failure {
    /// Ingest's answer `status` to one event: the message's fault, or
    /// ingest's state.
    fn of(status: tonic::Status) -> Failure {
        match status.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::NotFound
            | Code::OutOfRange => Failure::Refused(status),
            code => Failure::Unavailable(format!("{code:?}: {}", status.message())),
        }
    }
}

struct Pending {
    request: v1::AppendRequest,
    reply: oneshot::Sender<Result<(), Failure>>,
}

/// Hands events to the batching task.
#[derive(Debug, Clone)]
pub struct Appender {
    queue: mpsc::Sender<Pending>,
}

impl Appender {
    /// The appender, and the task that sends its batches: run it under the
    /// supervisor; it ends when every `Appender` is dropped. A batch
    /// unanswered after `timeout` is given up: each of its events is
    /// reported unavailable, and its slot is free for the next.
    pub fn new(
        ingest: IngestClient<Channel>,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (
        Appender,
        impl std::future::Future<Output = Result<(), std::convert::Infallible>>,
    ) {
        let (queue, received) = mpsc::channel(QUEUE);
        (
            Appender { queue },
            send_batches(ingest, received, timeout, metrics),
        )
    }

    /// Appends `event`; `Ok` once ingest stored it.
    pub async fn append(&self, event: v1::HandoffEvent) -> Result<(), Failure> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            request: v1::AppendRequest {
                event: Some(event),
                expected_version: None,
                backfill: false,
            },
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(Failure::Unavailable("the gateway is stopping".to_owned()));
        }
        answer.await.unwrap_or_else(|_| {
            Err(Failure::Unavailable(
                "the batch carrying it got no answer".to_owned(),
            ))
        })
    }
}

/// Takes what is queued (at most [`MAX_BATCH`]) as one batch whenever one of
/// [`IN_FLIGHT`] slots is free, until the queue closes.
async fn send_batches(
    ingest: IngestClient<Channel>,
    mut received: mpsc::Receiver<Pending>,
    timeout: Duration,
    metrics: Arc<Metrics>,
) -> Result<(), std::convert::Infallible> {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        if received.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return Ok(());
        }
        let ingest = ingest.clone();
        let taken = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        metrics.batch_sent(taken.len());
        tokio::spawn(async move {
            send(ingest, taken, timeout).await;
            drop(slot);
        });
    }
}

/// One `AppendBatch`; each event's sender gets its own answer.
async fn send(mut ingest: IngestClient<Channel>, batch: Vec<Pending>, timeout: Duration) {
    let (requests, replies): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let sent = requests.len();
    let answered = tokio::time::timeout(
        timeout,
        ingest.append_batch(v1::AppendBatchRequest { requests }),
    )
    .await;
    let Ok(answered) = answered else {
        for reply in replies {
            let _ = reply.send(Err(Failure::Unavailable(format!(
                "no answer within {timeout:?}"
            ))));
        }
        return;
    };
    match answered {
        Ok(answer) => {
            let results = answer.into_inner().results;
            if results.len() != sent {
                for reply in replies {
                    let _ = reply.send(Err(Failure::Unavailable(format!(
                        "ingest answered {} of {sent} events",
                        results.len()
                    ))));
                }
                return;
            }
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(match result.outcome {
                    Some(v1::append_result::Outcome::Ok(_)) => Ok(()),
                    Some(v1::append_result::Outcome::Error(e)) => Err(Failure::of(
                        tonic::Status::new(Code::from(e.code), e.message),
                    )),
                    None => Err(Failure::Unavailable(
                        "ingest gave the event no outcome".to_owned(),
                    )),
                });
            }
        }
        Err(status) => {
            // The batch as a whole: each event answered as a unary append
            // refused so would have been.
            for reply in replies {
                let each = tonic::Status::new(status.code(), status.message());
                let _ = reply.send(Err(Failure::of(each)));
            }
        }
    }
}
