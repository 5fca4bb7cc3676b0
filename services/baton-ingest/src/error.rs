//! Ingest errors, and their one mapping to gRPC status codes.

use baton_domain::{
    access::Denied, append::DecideError, disruption::DisruptionError, event::ValidationError,
    lifecycle::LifecycleError,
};
use baton_log::LogError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// A request that does not convert to an event, or a disruption event
    /// with a field malformed, missing, out of bounds or unknown to the
    /// catalog. (A hand-off event's own fields are refused as
    /// [`IngestError::Refused`].)
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The append rules ([`baton_domain::append`]) refuse this hand-off
    /// event: its fields, its caller, its id, its expected version or its
    /// lifecycle.
    #[error("{0}")]
    Refused(#[from] DecideError),
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
    /// The authenticated caller may not append this disruption event.
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
            IngestError::Invalid(_) | IngestError::Refused(DecideError::Invalid(_)) => {
                Status::invalid_argument(message)
            }
            IngestError::Refused(DecideError::Lifecycle(
                LifecycleError::Mismatch { .. } | LifecycleError::BeforeRequest { .. },
            )) => Status::invalid_argument(message),
            IngestError::Refused(DecideError::Lifecycle(_)) => Status::failed_precondition(message),
            IngestError::Refused(DecideError::VersionMismatch { .. })
            | IngestError::Contention(_) => Status::aborted(message),
            IngestError::Refused(DecideError::IdReused { .. }) => Status::already_exists(message),
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
            IngestError::Denied(_) | IngestError::Refused(DecideError::Denied(_)) => {
                Status::permission_denied(message)
            }
            IngestError::AtCapacity(_) => Status::resource_exhausted(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use baton_domain::{
        access::Denied, append::DecideError, event::ValidationError, lifecycle::LifecycleError,
        Timestamp, Token,
    };
    use tonic::Code;

    use super::IngestError;

    fn status(refused: DecideError) -> tonic::Status {
        tonic::Status::from(IngestError::Refused(refused))
    }

    #[test]
    fn each_refusal_of_the_append_rules_has_its_code_and_its_own_words() {
        let h1 = Token::parse("h1").expect("token");
        let cases = [
            (
                DecideError::Invalid(ValidationError::new("kind", "plumbing is not a kind")),
                Code::InvalidArgument,
                "kind: plumbing is not a kind",
            ),
            (
                DecideError::Denied(Denied::NotAnImporter {
                    caller: "lab-system".into(),
                }),
                Code::PermissionDenied,
                "caller lab-system may not load history (backfill): only an importer may",
            ),
            (
                DecideError::Lifecycle(LifecycleError::BeforeRequest {
                    occurred_at: Timestamp(0),
                    requested_at: Timestamp(1_000),
                }),
                Code::InvalidArgument,
                "occurred_at: 1970-01-01T00:00:00.000Z is before the hand-off was requested",
            ),
            (
                DecideError::Lifecycle(LifecycleError::Mismatch {
                    field: "customer",
                    expected: "ward-5".into(),
                }),
                Code::InvalidArgument,
                "customer: does not match the hand-off's customer ward-5",
            ),
            (
                DecideError::Lifecycle(LifecycleError::AlreadyRequested(h1.clone())),
                Code::FailedPrecondition,
                "hand-off h1 already exists",
            ),
            (
                DecideError::Lifecycle(LifecycleError::TooManyAttributes {
                    handoff: h1,
                    bytes: 70_000,
                }),
                Code::FailedPrecondition,
                "would carry 70000 bytes of attributes",
            ),
            (
                DecideError::VersionMismatch {
                    expected: 5,
                    actual: 2,
                },
                Code::Aborted,
                "expected_version 5 does not match the hand-off's version 2",
            ),
            (
                DecideError::IdReused {
                    event_id: "e-1".into(),
                    version: 3,
                },
                Code::AlreadyExists,
                "event_id e-1 was already used for a different event on this hand-off (version 3)",
            ),
        ];
        for (refused, code, words) in cases {
            let status = status(refused);
            assert_eq!(status.code(), code, "{status:?}");
            assert!(status.message().contains(words), "{status:?}");
        }
    }
}
