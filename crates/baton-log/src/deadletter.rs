//! Parking what is not a Baton event.
//!
//! Anyone with publish rights on `baton.handoff.>` can put bytes there that
//! ingest never wrote. The projector cannot fold them, must not stop on
//! them, and must not lose them from sight either: each is copied, payload
//! untouched, to `baton.deadletter.<stream sequence>` in the
//! `BATON_DEADLETTER` stream, with headers naming why and where it came
//! from. The copy is published once (`Nats-Expected-Last-Subject-Sequence:
//! 0` on its own subject), so a rebuild parks nothing twice.

use async_nats::{jetstream, HeaderMap};
use bytes::Bytes;

use crate::{
    signals::{announce_once_with, Announced},
    subject, LogError,
};

/// Header: why the message was parked.
pub const REASON_HEADER: &str = "Baton-Deadletter-Reason";
/// Header: the subject it was published on.
pub const SUBJECT_HEADER: &str = "Baton-Original-Subject";
/// Header: its sequence in the events stream.
pub const SEQUENCE_HEADER: &str = "Baton-Original-Sequence";

/// Parks the message at `sequence` of `stream` (the events stream or a
/// partition of it). `Ok(true)` if it was parked now, `Ok(false)` if it had
/// been before.
pub async fn park(
    js: &jetstream::Context,
    stream: &str,
    sequence: u64,
    original_subject: &str,
    payload: Bytes,
    reason: &str,
) -> Result<bool, LogError> {
    let mut headers = HeaderMap::new();
    headers.insert(REASON_HEADER, header_safe(reason).as_str());
    headers.insert(SUBJECT_HEADER, header_safe(original_subject).as_str());
    headers.insert(SEQUENCE_HEADER, sequence.to_string().as_str());
    let announced =
        announce_once_with(js, subject::deadletter(stream, sequence), payload, headers).await?;
    Ok(matches!(announced, Announced::Now(_)))
}

/// A header value: one line of printable text, at most 512 bytes.
fn header_safe(text: &str) -> String {
    let mut safe: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if safe.len() > 512 {
        let mut end = 512;
        while !safe.is_char_boundary(end) {
            end -= 1;
        }
        safe.truncate(end);
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_safe("a\r\nb"), "a  b");
        assert_eq!(header_safe(&"é".repeat(400)).len(), 512);
    }
}
