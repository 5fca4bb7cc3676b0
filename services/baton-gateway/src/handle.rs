//! One HL7 message, start to answer: read it, translate it, append its
//! events through ingest in order, and say which ACK it gets. An AA is
//! given only when ingest has answered OK for every event (each is then in
//! JetStream); when ingest cannot be reached no ACK is given, so the sender
//! sends the message again.

use std::time::Duration;

use baton_proto::v1;
use baton_runtime::Readiness;
use tonic::Code;

use crate::appender::Appender;
pub(crate) use crate::appender::Failure;

use crate::{
    ack::{self, Problem},
    hl7::Message,
    mapping::Mapping,
    metrics::Metrics,
    translate::{translate, Ids, Told, Translation},
};

/// The readiness fault held while ingest cannot store events.
pub const INGEST_FAULT: &str = "ingest";

/// What a connection needs to answer messages.
#[derive(Debug, Clone)]
pub struct Handler {
    pub appender: Appender,
    pub mapping: std::sync::Arc<Mapping>,
    pub ids: Ids,
    pub zone: jiff::tz::TimeZone,
    pub append_timeout: Duration,
    pub metrics: std::sync::Arc<Metrics>,
    pub readiness: Readiness,
}

impl Handler {
    /// The ACK for `frame`, or `None` when it must go unanswered (ingest
    /// unreachable: the sender will send it again).
    pub async fn answer(&self, frame: &[u8]) -> Option<Vec<u8>> {
        let now = jiff::Timestamp::now().as_millisecond();
        let message = match Message::parse(frame) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.answered("unreadable", "AR");
                self.metrics.refused("MSH");
                let problem = Problem {
                    field: "MSH-1",
                    code: 100,
                    text: &e.to_string(),
                };
                return Some(ack::ack(None, ack::Code::Reject, Some(problem), now));
            }
        };
        let kind = message
            .message_type()
            .map(|(k, t)| format!("{k}^{t}"))
            .unwrap_or_else(|_| "unreadable".to_owned());
        let events = match translate(&message, &self.mapping, &self.ids, &self.zone) {
            Ok(Translation::Events(events)) => events,
            Ok(Translation::Nothing { reason }) => {
                self.metrics.ignored(reason);
                self.metrics.answered(&kind, "AA");
                return Some(ack::ack(Some(&message), ack::Code::Accept, None, now));
            }
            Err(refusal) => {
                let code = if refusal.is_unsupported() {
                    ack::Code::Reject
                } else {
                    ack::Code::Error
                };
                self.metrics.answered(&kind, code.as_str());
                self.metrics.refused(&refusal.field);
                let problem = Problem {
                    field: &refusal.field,
                    code: refusal.code,
                    text: &refusal.reason,
                };
                return Some(ack::ack(Some(&message), code, Some(problem), now));
            }
        };
        match self.append_all(events).await {
            Ok(()) => {
                self.readiness.clear(INGEST_FAULT);
                self.metrics.answered(&kind, "AA");
                Some(ack::ack(Some(&message), ack::Code::Accept, None, now))
            }
            Err(Failure::Refused(status)) => {
                self.metrics.answered(&kind, "AE");
                self.metrics.refused("ingest");
                // Ingest's reason names Baton's field, not an HL7 one.
                let problem = Problem {
                    field: "",
                    code: 207,
                    text: status.message(),
                };
                Some(ack::ack(
                    Some(&message),
                    ack::Code::Error,
                    Some(problem),
                    now,
                ))
            }
            Err(Failure::Unavailable(reason)) => {
                tracing::warn!(%reason, "ingest could not store an event; the message goes unanswered");
                self.readiness.fault(
                    INGEST_FAULT,
                    format!("ingest cannot store events: {reason}"),
                );
                self.metrics.answered(&kind, "none");
                None
            }
        }
    }

    /// Appends a message's events in order, up to the first that is not
    /// stored. An event the hand-off has moved past (a specimen's arrival
    /// told again late) is skipped and counted, not a failure.
    async fn append_all(&self, events: Vec<Told>) -> Result<(), Failure> {
        for told in events {
            match self.append(told.event).await {
                Err(Failure::Refused(status))
                    if told.may_be_past && status.code() == Code::FailedPrecondition =>
                {
                    self.metrics.ignored("already past");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Appends `event` through ingest, telling a refusal from ingest being away.
    pub(crate) async fn append(&self, event: v1::HandoffEvent) -> Result<(), Failure> {
        match tokio::time::timeout(self.append_timeout, self.appender.append(event)).await {
            Err(_) => Err(Failure::Unavailable(format!(
                "no answer within {:?}",
                self.append_timeout
            ))),
            Ok(answer) => answer,
        }
    }
}
