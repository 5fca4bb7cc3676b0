//! Why the log could not do what was asked, with NATS's own error kept.
//!
//! async-nats reports a failure as `Error<Kind>`: a kind to match on and,
//! when JetStream answered, its API error with a numeric code
//! ([`ErrorCode`]). Both are kept here, as the source of a [`LogError`], so
//! a caller decides by kind or code ([`LogError::is_unavailable`],
//! [`JetStreamCode::jetstream_code`]) and never by the text of a message.
//! The text is for people.
//!
//! It must never decide for a caller what a failure means beyond the one
//! split callers rely on: worth retrying (NATS away, or slow) or not.

use async_nats::jetstream::{self, context, stream, ErrorCode};

use crate::version;

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// No connection to NATS could be made; retrying is safe.
    #[error("nats unavailable: {0}")]
    Connect(#[source] async_nats::ConnectError),
    /// The log is not usable yet (see [`NotReady`]); retrying is safe.
    #[error("nats unavailable: {0}")]
    NotReady(NotReady),
    /// A request to NATS failed or went unanswered; retrying is safe.
    #[error("nats unavailable: {request}: {source}")]
    Unavailable {
        request: Request,
        #[source]
        source: NatsError,
    },
    /// JetStream answered, refusing what was asked for a reason a retry
    /// does not change.
    #[error("nats refused {request}: {source}")]
    Refused {
        request: Request,
        #[source]
        source: NatsError,
    },
    /// Another writer appended to the hand-off since it was read.
    #[error("the hand-off changed since it was read")]
    Conflict,
    /// A stored message that is not a Baton event.
    #[error("message {sequence} on {subject} is not a valid hand-off event: {reason}")]
    Undecodable {
        sequence: u64,
        subject: String,
        reason: String,
    },
    /// The streams exist with a shape Baton did not give them.
    #[error("stream {stream} is misconfigured: {reason}")]
    Misconfigured { stream: String, reason: String },
    /// The server is older than Baton needs (or says a version it cannot read).
    #[error(transparent)]
    Unsupported(#[from] version::Unsupported),
    /// A NATS URL that is not one.
    #[error("nats url {url:?}: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: std::io::Error,
    },
    /// The list of NATS URLs names no server.
    #[error("no nats url in {0:?}")]
    NoUrl(String),
    /// An event to append without the kind, supplier and customer its
    /// subject is made of.
    #[error("append needs an event with its routing fields filled")]
    Unrouted,
}

/// Why the log refuses to talk to NATS yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// [`crate::EventLog::check_server`] has not passed yet.
    #[error("the nats server's version is not checked yet")]
    ServerUnchecked,
    #[error("not connected to nats")]
    Disconnected,
}

/// What was asked of NATS, named for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateStream(String),
    ReadStream(String),
    UpdateStream(String),
    /// Messages of a stream on a subject filter.
    ReadMessages {
        stream: String,
        filter: String,
    },
    /// A publish on a subject.
    Publish(String),
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::CreateStream(name) => write!(f, "creating stream {name}"),
            Request::ReadStream(name) => write!(f, "reading stream {name}"),
            Request::UpdateStream(name) => write!(f, "updating stream {name}"),
            Request::ReadMessages { stream, filter } => {
                write!(f, "reading {filter} from stream {stream}")
            }
            Request::Publish(subject) => write!(f, "publishing on {subject}"),
        }
    }
}

/// An async-nats error as it came, one variant per kind of request.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error(transparent)]
    GetStream(#[from] context::GetStreamError),
    /// Creating or updating a stream.
    #[error(transparent)]
    CreateStream(#[from] context::CreateStreamError),
    /// A JetStream API request (stream info among them).
    #[error(transparent)]
    Request(#[from] context::RequestError),
    /// Reading a stored message by subject.
    #[error(transparent)]
    RawMessage(#[from] stream::RawMessageError),
    #[error(transparent)]
    Publish(#[from] context::PublishError),
    /// Creating, reading or deleting a consumer.
    #[error(transparent)]
    Consumer(#[from] stream::ConsumerError),
}

/// The JetStream API error code an async-nats error carries, when JetStream
/// answered with one: `Some(ErrorCode::STREAM_NOT_FOUND)` for a stream that
/// does not exist, whatever the message says.
pub trait JetStreamCode {
    fn jetstream_code(&self) -> Option<ErrorCode>;
}

/// The code of the first JetStream API error in `e`'s chain of sources.
fn code_in_sources(e: &(dyn std::error::Error + 'static)) -> Option<ErrorCode> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(api) = e.downcast_ref::<jetstream::Error>() {
            return Some(api.error_code());
        }
        next = e.source();
    }
    None
}

impl JetStreamCode for context::GetStreamError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self.kind() {
            context::GetStreamErrorKind::JetStream(api) => Some(api.error_code()),
            _ => code_in_sources(self),
        }
    }
}

impl JetStreamCode for context::CreateStreamError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self.kind() {
            context::CreateStreamErrorKind::JetStream(api) => Some(api.error_code()),
            _ => code_in_sources(self),
        }
    }
}

impl JetStreamCode for context::RequestError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        code_in_sources(self)
    }
}

impl JetStreamCode for stream::RawMessageError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self.kind() {
            stream::LastRawMessageErrorKind::JetStream(api) => Some(api.error_code()),
            _ => code_in_sources(self),
        }
    }
}

/// A publish JetStream refused carries the API error as its source (async-nats
/// names only some codes as kinds).
impl JetStreamCode for context::PublishError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        code_in_sources(self)
    }
}

impl JetStreamCode for stream::ConsumerError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self.kind() {
            stream::ConsumerErrorKind::JetStream(api) => Some(api.error_code()),
            _ => code_in_sources(self),
        }
    }
}

impl JetStreamCode for context::ConsumerInfoError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self.kind() {
            context::ConsumerInfoErrorKind::JetStream(api) => Some(api.error_code()),
            _ => code_in_sources(self),
        }
    }
}

impl JetStreamCode for NatsError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self {
            NatsError::GetStream(e) => e.jetstream_code(),
            NatsError::CreateStream(e) => e.jetstream_code(),
            NatsError::Request(e) => e.jetstream_code(),
            NatsError::RawMessage(e) => e.jetstream_code(),
            NatsError::Publish(e) => e.jetstream_code(),
            NatsError::Consumer(e) => e.jetstream_code(),
        }
    }
}

impl JetStreamCode for LogError {
    fn jetstream_code(&self) -> Option<ErrorCode> {
        match self {
            LogError::Unavailable { source, .. } | LogError::Refused { source, .. } => {
                source.jetstream_code()
            }
            _ => None,
        }
    }
}

impl LogError {
    /// NATS is away, not ready or did not answer: the same request may
    /// succeed later, and retrying it is safe.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LogError::Connect(_) | LogError::NotReady(_) | LogError::Unavailable { .. }
        )
    }

    /// `request` failed for lack of NATS (`source` came from it).
    pub(crate) fn unavailable(request: Request, source: impl Into<NatsError>) -> LogError {
        LogError::Unavailable {
            request,
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JetStream's answer to a request, as the server sends it.
    fn api_error(json: &str) -> jetstream::Error {
        serde_json::from_str(json).expect("an API error")
    }

    fn stream_not_found() -> jetstream::Error {
        api_error(r#"{"code": 404, "err_code": 10059, "description": "stream not found"}"#)
    }

    #[test]
    fn a_missing_stream_is_told_by_its_code_not_its_text() {
        let missing = context::GetStreamError::new(context::GetStreamErrorKind::JetStream(
            stream_not_found(),
        ));
        assert_eq!(missing.jetstream_code(), Some(ErrorCode::STREAM_NOT_FOUND));
        // The same code under another description is still a missing stream.
        let reworded = context::GetStreamError::new(context::GetStreamErrorKind::JetStream(
            api_error(r#"{"code": 404, "err_code": 10059, "description": "no such thing"}"#),
        ));
        assert_eq!(reworded.jetstream_code(), Some(ErrorCode::STREAM_NOT_FOUND));
        // A message that says "not found" without the code is not.
        let timed_out = context::GetStreamError::with_source(
            context::GetStreamErrorKind::Request,
            std::io::Error::other("stream not found"),
        );
        assert_eq!(timed_out.jetstream_code(), None);
    }

    #[test]
    fn a_missing_consumer_is_told_by_its_code() {
        let missing = stream::ConsumerError::new(stream::ConsumerErrorKind::JetStream(api_error(
            r#"{"code": 404, "err_code": 10014, "description": "consumer not found"}"#,
        )));
        assert_eq!(
            missing.jetstream_code(),
            Some(ErrorCode::CONSUMER_NOT_FOUND)
        );
        let timed_out = stream::ConsumerError::new(stream::ConsumerErrorKind::TimedOut);
        assert_eq!(timed_out.jetstream_code(), None);
    }

    #[test]
    fn the_code_survives_being_wrapped_in_a_log_error() {
        let refused = context::PublishError::with_source(
            context::PublishErrorKind::Other,
            stream_not_found(),
        );
        let error = LogError::Refused {
            request: Request::Publish("baton.handoff.h-1.repair.lab.ward-5".into()),
            source: refused.into(),
        };
        assert_eq!(error.jetstream_code(), Some(ErrorCode::STREAM_NOT_FOUND));
        assert!(!error.is_unavailable());
        let source = std::error::Error::source(&error).expect("the nats error is kept");
        assert!(source.downcast_ref::<NatsError>().is_some());
    }

    #[test]
    fn only_a_missing_or_silent_nats_is_unavailable() {
        assert!(LogError::NotReady(NotReady::Disconnected).is_unavailable());
        let timed_out = context::RequestError::new(context::RequestErrorKind::TimedOut);
        assert!(LogError::unavailable(Request::ReadStream("S".into()), timed_out).is_unavailable());
        assert!(!LogError::Conflict.is_unavailable());
        assert!(!LogError::Unrouted.is_unavailable());
    }
}
