//! SLA announcements: a breach is published exactly once.
//!
//! The announcement goes to `BATON_SLA` on a subject unique to the clock
//! (policy, pair, hand-off) with `Nats-Expected-Last-Subject-Sequence: 0`:
//! JetStream refuses a second message on that subject, so a projector that
//! crashed before recording that it announced, a rebuild, or a second
//! projector replica can all try again and only the first one lands.

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;

use crate::{error::Request, LogError};

/// What became of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Published now, at this stream sequence.
    Now(u64),
    /// It had been published before.
    Already,
    /// The subject already holds a message (at this stream sequence) that is
    /// not this announcement: someone else published there.
    Squatted(u64),
}

/// Publishes `payload` on `subject` unless something was published there before.
pub async fn announce_once(
    js: &jetstream::Context,
    subject: String,
    payload: Bytes,
) -> Result<Announced, LogError> {
    announce_once_with(js, subject, payload, async_nats::HeaderMap::new()).await
}

/// [`announce_once`], and if the subject already holds a message, whether
/// it is this announcement: `same` is asked of the stored payload, and a
/// message it does not recognise is [`Announced::Squatted`]. `headers`
/// go with the message (its trace context, if any).
pub async fn announce_once_checked(
    js: &jetstream::Context,
    subject: String,
    payload: Bytes,
    headers: async_nats::HeaderMap,
    same: impl FnOnce(&[u8]) -> bool,
) -> Result<Announced, LogError> {
    match announce_once_with(js, subject.clone(), payload, headers).await? {
        Announced::Already => {}
        done => return Ok(done),
    }
    let read = || Request::ReadMessages {
        stream: crate::subject::SLA_STREAM.into(),
        filter: subject.clone(),
    };
    let stream = js
        .get_stream_no_info(crate::subject::SLA_STREAM)
        .await
        .map_err(|e| LogError::unavailable(read(), e))?;
    let stored = stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .map_err(|e| LogError::unavailable(read(), e))?;
    if same(&stored.payload) {
        Ok(Announced::Already)
    } else {
        Ok(Announced::Squatted(stored.sequence))
    }
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
    let request = Request::Publish(subject.clone());
    let ack = js
        .send_publish(subject, publish)
        .await
        .map_err(|e| LogError::unavailable(request.clone(), e))?
        .await;
    match ack {
        Ok(ack) if ack.duplicate => Ok(Announced::Already),
        Ok(ack) => Ok(Announced::Now(ack.sequence)),
        Err(e) if crate::events::is_wrong_last_sequence(&e) => Ok(Announced::Already),
        Err(e) => Err(LogError::unavailable(request, e)),
    }
}
