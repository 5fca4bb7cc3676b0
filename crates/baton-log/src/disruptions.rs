//! Appending disruption events and reading one disruption's history.
//!
//! A disruption's events live on their own subject,
//! `baton.disruption.<supplier>.<disruption_id>`, in the events stream, so
//! the projector reads them in one order with the hand-offs they affect.
//! Appends are conditional on the subject's last sequence, as hand-off
//! appends are: two writers racing on one disruption cannot both win.

use async_nats::jetstream::message::PublishMessage;
use baton_domain::{disruption::RecordedDisruption, Token};
use bytes::Bytes;
use prost::Message as _;

use crate::{subject, Appended, EventLog, LogError};

pub fn encode(record: &RecordedDisruption) -> Bytes {
    Bytes::from(baton_proto::convert::recorded_disruption_to_proto(record).encode_to_vec())
}

pub fn decode(
    sequence: u64,
    subject: &str,
    payload: &[u8],
) -> Result<RecordedDisruption, LogError> {
    crate::events::decode_as(
        sequence,
        subject,
        payload,
        baton_proto::convert::recorded_disruption_from_proto,
    )
}

impl EventLog {
    /// Appends a disruption event if its subject's last message is still at
    /// `last_sequence` (0: none yet).
    pub async fn append_disruption(
        &self,
        record: &RecordedDisruption,
        last_sequence: u64,
    ) -> Result<Appended, LogError> {
        self.ensure_connected()?;
        let event = &record.event;
        let subject = subject::disruption(&event.supplier, &event.disruption_id);
        let phase = match event.phase {
            baton_domain::disruption::Phase::Started => "started",
            baton_domain::disruption::Phase::Ended => "ended",
        };
        let publish = PublishMessage::build()
            .payload(encode(record))
            .message_id(format!("{subject}:{phase}"))
            .expected_last_subject_sequence(last_sequence);
        self.publish(subject, publish).await
    }

    /// Every event of one disruption, in stream order: (sequence, event).
    pub async fn disruption_history(
        &self,
        supplier: &Token,
        disruption_id: &Token,
    ) -> Result<Vec<(u64, RecordedDisruption)>, LogError> {
        let filter = subject::disruption(supplier, disruption_id);
        let messages = self.messages_on(&filter, 1, usize::MAX).await?;
        messages
            .into_iter()
            .map(|(sequence, subject, payload)| {
                decode(sequence, &subject, &payload).map(|e| (sequence, e))
            })
            .collect()
    }
}
