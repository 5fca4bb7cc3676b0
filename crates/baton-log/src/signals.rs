//! SLA announcements: a breach is published exactly once.
//!
//! The announcement goes to `BATON_SLA` on a subject unique to the clock
//! (policy, pair, hand-off) with `Nats-Expected-Last-Subject-Sequence: 0`:
//! JetStream refuses a second message on that subject, so a projector that
//! crashed before recording that it announced, a rebuild, or a second
//! projector replica can all try again and only the first one lands.

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;

use crate::LogError;

/// What became of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Published now, at this stream sequence.
    Now(u64),
    /// It had been published before.
    Already,
}

/// Publishes `payload` on `subject` unless something was published there before.
pub async fn announce_once(
    js: &jetstream::Context,
    subject: String,
    payload: Bytes,
) -> Result<Announced, LogError> {
    announce_once_with(js, subject, payload, async_nats::HeaderMap::new()).await
}

/// [`announce_once`] with headers.
pub async fn announce_once_with(
    js: &jetstream::Context,
    subject: String,
    payload: Bytes,
    headers: async_nats::HeaderMap,
) -> Result<Announced, LogError> {
    let publish = PublishMessage::build()
        .headers(headers)
        .payload(payload)
        .message_id(subject.clone())
        .expected_last_subject_sequence(0);
    let ack = js
        .send_publish(subject, publish)
        .await
        .map_err(|e| LogError::Unavailable(e.to_string()))?
        .await;
    match ack {
        Ok(ack) if ack.duplicate => Ok(Announced::Already),
        Ok(ack) => Ok(Announced::Now(ack.sequence)),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(Announced::Already),
        Err(e) => Err(LogError::Unavailable(e.to_string())),
    }
}
