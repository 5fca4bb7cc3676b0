//! The projector's pipeline, stream to views, in one direction:
//! [`receive`] takes the stream's messages on a task of its own, cuts them
//! into batches and decodes them; [`apply`] computes each batch's view
//! changes, lands them in sled with the stream position, and only then
//! acknowledges. What both ends share (how batches are cut, why consuming
//! stopped, which NATS step failed) lives here, so `apply` uses `receive`
//! and neither uses the other's internals.

use std::time::Duration;

use baton_log::LogError;

use crate::{TaskGone, WorkError};

pub mod apply;
pub mod receive;

pub use apply::run;

/// How the stream is cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most events a batch.
    pub size: usize,
    /// Live, how long a batch waits for more events (see `Config::linger_ms`).
    pub linger: Duration,
}

/// Why consuming stopped. Only [`ConsumeError::Views`],
/// [`ConsumeError::Task`] and [`ConsumeError::Injected`] end the task; the
/// rest are NATS going away or misbehaving, and consuming starts again from
/// the views' position.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error(transparent)]
    Views(#[from] baton_views::ViewsError),
    /// A task working on the views panicked: the task ends, the views are
    /// not in doubt.
    #[error(transparent)]
    Task(#[from] TaskGone),
    /// A request to NATS failed, or a message could not be taken.
    #[error("nats: {step}: {source}")]
    Nats {
        step: Step,
        #[source]
        source: async_nats::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    /// The consumer numbered deliveries that never arrived: acknowledging
    /// what follows would acknowledge them too.
    #[error("nats: deliveries {first} to {last} never arrived")]
    DeliveriesLost { first: u64, last: u64 },
    /// The consumer's message stream ended.
    #[error("nats: the message stream ended")]
    StreamEnded,
    /// The task receiving the messages is gone.
    #[error("nats: the receiver stopped")]
    ReceiverStopped,
    #[error(transparent)]
    Injected(#[from] baton_runtime::failpoint::Injected),
}

impl From<WorkError> for ConsumeError {
    fn from(e: WorkError) -> ConsumeError {
        match e {
            WorkError::Views(e) => ConsumeError::Views(e),
            WorkError::Task(e) => ConsumeError::Task(e),
        }
    }
}

/// What the consumer was doing with NATS when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    ReadStream,
    DeleteConsumer,
    CreateConsumer,
    ReadConsumer,
    Subscribe,
    Receive,
    ReadDelivery,
    Acknowledge,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::ReadStream => "reading the stream",
            Step::DeleteConsumer => "deleting the consumer",
            Step::CreateConsumer => "creating the consumer",
            Step::ReadConsumer => "reading the consumer",
            Step::Subscribe => "subscribing",
            Step::Receive => "receiving",
            Step::ReadDelivery => "reading a delivery",
            Step::Acknowledge => "acknowledging",
        })
    }
}

/// The error of a failed `step`, for `map_err`.
pub(crate) fn nats<E: Into<async_nats::Error>>(step: Step) -> impl FnOnce(E) -> ConsumeError {
    move |e| ConsumeError::Nats {
        step,
        source: e.into(),
    }
}
