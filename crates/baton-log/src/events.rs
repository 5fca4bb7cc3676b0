//! Appending hand-off events and reading one hand-off's history.
//!
//! An append is conditional: it names the stream sequence of the hand-off's
//! last event (0 for a new hand-off), checked by JetStream against every
//! subject of the hand-off (`Nats-Expected-Last-Subject-Sequence` with
//! `Nats-Expected-Last-Subject-Sequence-Subject`), so two writers racing on
//! one hand-off can never both win, and the loser learns it. The message id
//! `<handoff_id>:<event_id>` lets JetStream drop a resend within its
//! de-duplication window even before that check.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use baton_domain::{event::RecordedEvent, Token};
use bytes::Bytes;
use prost::Message as _;

use crate::{
    error::{NotReady, Request},
    subject, LogError,
};

const EXPECTED_SUBJECT_HEADER: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// A recorded event with its place in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub sequence: u64,
    pub record: RecordedEvent,
}

/// What JetStream said to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    /// JetStream had this message id already (a resend within its window).
    pub duplicate: bool,
}

/// The `BATON_HANDOFFS` stream.
#[derive(Debug, Clone)]
pub struct EventLog {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Set once [`EventLog::check_server`] found the server new enough:
    /// until then nothing is read or appended.
    server_checked: Arc<AtomicBool>,
}

/// Encodes a recorded event as its stream payload.
pub fn encode(record: &RecordedEvent) -> Bytes {
    Bytes::from(baton_proto::convert::record_to_proto(record).encode_to_vec())
}

/// Decodes a stream message's payload as wire type `W` and converts it to
/// the domain, or says which message could not be.
pub(crate) fn decode_as<W: prost::Message + Default, T>(
    sequence: u64,
    subject: &str,
    payload: &[u8],
    convert: impl FnOnce(W) -> Result<T, baton_domain::ValidationError>,
) -> Result<T, LogError> {
    let undecodable = |reason: String| LogError::Undecodable {
        sequence,
        subject: subject.to_owned(),
        reason,
    };
    let wire = W::decode(payload).map_err(|e| undecodable(e.to_string()))?;
    convert(wire).map_err(|e| undecodable(e.to_string()))
}

/// Decodes a stream payload into a recorded event.
pub fn decode(sequence: u64, subject: &str, payload: &[u8]) -> Result<RecordedEvent, LogError> {
    let record = decode_as(
        sequence,
        subject,
        payload,
        baton_proto::convert::record_from_proto,
    )?;
    let undecodable = |reason: String| LogError::Undecodable {
        sequence,
        subject: subject.to_owned(),
        reason,
    };
    let event = &record.event;
    if event.kind.is_none()
        || event.supplier.is_none()
        || event.customer.is_none()
        || record.envelope.version == 0
    {
        return Err(undecodable(
            "recorded events carry kind, supplier, customer and version".into(),
        ));
    }
    Ok(record)
}

impl EventLog {
    /// `timeout` bounds every JetStream request, an append's ack included.
    /// Nothing is read or appended before [`EventLog::check_server`] passed.
    pub fn new(client: async_nats::Client, timeout: Duration) -> EventLog {
        let mut js = jetstream::new(client.clone());
        js.set_timeout(timeout);
        EventLog {
            client,
            js,
            server_checked: Arc::default(),
        }
    }

    /// Waits for the first connection and checks the server's version
    /// ([`crate::version::supported`]); opens the log if it is one Baton
    /// runs against.
    pub async fn check_server(&self) -> Result<crate::version::Version, LogError> {
        let version = crate::version::supported(&self.client).await?;
        self.server_checked.store(true, Ordering::Release);
        Ok(version)
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub(crate) fn ensure_connected(&self) -> Result<(), LogError> {
        if !self.server_checked.load(Ordering::Acquire) {
            return Err(LogError::NotReady(NotReady::ServerUnchecked));
        }
        if crate::is_connected(&self.client) {
            Ok(())
        } else {
            Err(LogError::NotReady(NotReady::Disconnected))
        }
    }

    /// Appends `record` (with routing fields filled in) if the hand-off's
    /// last event is still at `last_sequence` (0: no event yet).
    pub async fn append(
        &self,
        record: &RecordedEvent,
        last_sequence: u64,
    ) -> Result<Appended, LogError> {
        self.ensure_connected()?;
        let event = &record.event;
        let (Some(kind), Some(supplier), Some(customer)) =
            (&event.kind, &event.supplier, &event.customer)
        else {
            return Err(LogError::Unrouted);
        };
        let subject = subject::event(kind, supplier, customer, &event.handoff_id);
        // The append's trace context (ingest's span), for the projector to
        // continue; no header when there is none.
        let publish = match crate::trace::current_headers() {
            Some(headers) => PublishMessage::build().headers(headers),
            None => PublishMessage::build(),
        };
        let publish = publish
            .payload(encode(record))
            .message_id(format!("{}:{}", event.handoff_id, event.event_id))
            .expected_last_subject_sequence(last_sequence)
            .header(
                EXPECTED_SUBJECT_HEADER,
                subject::handoff_events(&event.handoff_id).as_str(),
            );
        self.publish(subject, publish).await
    }

    /// Publishes `publish` on `subject` and waits for JetStream's ack: a
    /// refused condition is [`LogError::Conflict`].
    pub(crate) async fn publish(
        &self,
        subject: String,
        publish: PublishMessage,
    ) -> Result<Appended, LogError> {
        let failed = |e| publish_error(&subject, e);
        let ack = self
            .js
            .send_publish(subject.clone(), publish)
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        Ok(Appended {
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        })
    }

    /// Where the events stream ends now (its last sequence).
    pub async fn last_sequence(&self) -> Result<u64, LogError> {
        self.ensure_connected()?;
        let stream = self
            .js
            .get_stream(subject::EVENTS_STREAM)
            .await
            .map_err(|e| {
                LogError::unavailable(Request::ReadStream(subject::EVENTS_STREAM.into()), e)
            })?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// Every event of one hand-off, in stream order; empty if it has none.
    pub async fn history(&self, handoff_id: &Token) -> Result<Vec<LoggedEvent>, LogError> {
        self.first_events(handoff_id, 1, usize::MAX).await
    }

    /// The first `count` events of one hand-off (fewer if it has fewer), in
    /// stream order, none of which is before stream sequence `from`.
    /// Knowing where to start and how many to read saves searching the
    /// stream before its first event and after its last.
    pub async fn first_events(
        &self,
        handoff_id: &Token,
        from: u64,
        count: usize,
    ) -> Result<Vec<LoggedEvent>, LogError> {
        let messages = self
            .messages_on(&subject::handoff_events(handoff_id), from, count)
            .await?;
        messages
            .into_iter()
            .map(|(sequence, subject, payload)| {
                decode(sequence, &subject, &payload).map(|record| LoggedEvent { sequence, record })
            })
            .collect()
    }

    /// The first `count` messages of the events stream on `filter` from
    /// sequence `from` on, in stream order: (sequence, subject, payload).
    pub(crate) async fn messages_on(
        &self,
        filter: &str,
        from: u64,
        count: usize,
    ) -> Result<Vec<(u64, String, Bytes)>, LogError> {
        self.ensure_connected()?;
        let request = || Request::ReadMessages {
            stream: subject::EVENTS_STREAM.into(),
            filter: filter.into(),
        };
        let stream = self
            .js
            .get_stream_no_info(subject::EVENTS_STREAM)
            .await
            .map_err(|e| LogError::unavailable(request(), e))?;
        let mut messages = Vec::new();
        let mut next = from.max(1);
        while messages.len() < count {
            match stream.get_first_raw_message_by_subject(filter, next).await {
                Ok(message) => {
                    next = message.sequence + 1;
                    messages.push((message.sequence, message.subject.to_string(), message.payload));
                }
                Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => {
                    return Ok(messages)
                }
                Err(e) => return Err(LogError::unavailable(request(), e)),
            }
        }
        Ok(messages)
    }
}

/// Whether JetStream refused a publish because its condition on the last
/// sequence failed. A clustered stream's leader may answer with the constant
/// form of the error (code 10164), which async-nats leaves as `Other`: both
/// are told by their JetStream error code, never by the text.
pub(crate) fn is_wrong_last_sequence(e: &async_nats::jetstream::context::PublishError) -> bool {
    use async_nats::jetstream::{Error as JetStreamError, ErrorCode};
    if e.kind() == PublishErrorKind::WrongLastSequence {
        return true;
    }
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<JetStreamError>())
        .is_some_and(|js| js.error_code() == ErrorCode::STREAM_WRONG_LAST_SEQUENCE_CONSTANT)
}

/// What a failed publish on `subject` means for the append: a lost race
/// ([`LogError::Conflict`]), NATS away or slow (retry), or a refusal.
pub(crate) fn publish_error(
    subject: &str,
    e: async_nats::jetstream::context::PublishError,
) -> LogError {
    if is_wrong_last_sequence(&e) {
        return LogError::Conflict;
    }
    let request = Request::Publish(subject.to_owned());
    match e.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::StreamNotFound => LogError::unavailable(request, e),
        _ => LogError::Refused {
            request,
            source: e.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};

    use super::*;

    /// A publish refused by JetStream with this API error.
    fn refused(json: &str) -> PublishError {
        let error: async_nats::jetstream::Error = serde_json::from_str(json).expect("an API error");
        PublishError::with_source(PublishErrorKind::Other, error)
    }

    #[test]
    fn both_forms_of_a_failed_condition_are_a_conflict() {
        // A single server answers 10071; a clustered stream's leader 10164.
        let single = PublishError::new(PublishErrorKind::WrongLastSequence);
        assert!(matches!(publish_error("s", single), LogError::Conflict));
        let clustered =
            refused(r#"{"code": 400, "err_code": 10164, "description": "wrong last sequence"}"#);
        assert!(is_wrong_last_sequence(&clustered));
        assert!(matches!(publish_error("s", clustered), LogError::Conflict));
        let other = refused(r#"{"code": 503, "err_code": 10008, "description": "no leader"}"#);
        assert!(!is_wrong_last_sequence(&other));
        let other = publish_error("s", other);
        assert!(matches!(other, LogError::Refused { .. }), "{other}");
        // Refused, with JetStream's answer kept: its code, not its text.
        assert_eq!(
            crate::JetStreamCode::jetstream_code(&other),
            Some(async_nats::jetstream::ErrorCode(10008))
        );
    }
}
