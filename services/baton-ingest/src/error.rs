//! Ingest errors, and their one mapping to gRPC status codes.

use baton_domain::{
    access::Denied, disruption::DisruptionError, event::ValidationError, lifecycle::LifecycleError,
};
use baton_log::LogError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A field is malformed, missing, out of bounds or unknown to the catalog.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The lifecycle does not allow this event now.
    #[error("{0}")]
    Lifecycle(#[from] LifecycleError),
    #[error("expected_version {expected} does not match the hand-off's version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    #[error("event_id {event_id} was already used for a different event on this hand-off (version {version})")]
    EventIdReused { event_id: String, version: u64 },
    #[error("hand-off {0} is changing too fast to append to; retry")]
    Contention(String),
    /// A disruption event that does not fit the disruption's history.
    #[error("{0}")]
    Disruption(#[from] DisruptionError),
    #[error("{0}")]
    Log(#[from] LogError),
    /// The hand-off's events in the stream do not make a hand-off (the log
    /// holds what ingest would have refused).
    #[error("hand-off {handoff_id} in the stream does not replay: {source}")]
    Unreplayable {
        handoff_id: baton_domain::Token,
        #[source]
        source: LifecycleError,
    },
    /// The authenticated caller may not append this event.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// Too many appends in flight: shed, the client retries later.
    #[error("ingest is at capacity ({0} requests in flight); retry with backoff")]
    AtCapacity(usize),
}

impl From<IngestError> for Status {
    fn from(error: IngestError) -> Status {
        let message = error.to_string();
        match error {
            IngestError::Invalid(_) => Status::invalid_argument(message),
            IngestError::Lifecycle(
                LifecycleError::Mismatch { .. } | LifecycleError::BeforeRequest { .. },
            ) => Status::invalid_argument(message),
            IngestError::Lifecycle(_) => Status::failed_precondition(message),
            IngestError::VersionMismatch { .. } | IngestError::Contention(_) => {
                Status::aborted(message)
            }
            IngestError::EventIdReused { .. } => Status::already_exists(message),
            IngestError::Disruption(
                DisruptionError::AlreadyStarted(_) | DisruptionError::AlreadyEnded(_),
            ) => Status::already_exists(message),
            IngestError::Disruption(DisruptionError::NotStarted(_)) => {
                Status::failed_precondition(message)
            }
            IngestError::Disruption(_) => Status::invalid_argument(message),
            IngestError::Log(e) if e.is_unavailable() => Status::unavailable(format!(
                "{message}; retrying with the same event_id is safe"
            )),
            IngestError::Log(LogError::Conflict) => Status::aborted(message),
            IngestError::Log(_) | IngestError::Unreplayable { .. } => Status::internal(message),
            IngestError::Denied(_) => Status::permission_denied(message),
            IngestError::AtCapacity(_) => Status::resource_exhausted(message),
        }
    }
}
