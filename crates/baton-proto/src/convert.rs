//! Conversions between the `baton.v1` wire types and the domain.
//!
//! Decoding names the protobuf field that could not be mapped, so the edge
//! can answer INVALID_ARGUMENT with that name.

use std::time::Duration;

use baton_domain::{
    clock::{ClockOutcome, SlaState},
    disruption::{DisruptionEvent, Phase, RecordedDisruption},
    event::{Envelope, Event, EventType, Priority, Rating, RecordedEvent, ValidationError},
    id::Token,
    lifecycle::HandoffStatus,
    time::Timestamp,
};

use crate::v1;

pub fn timestamp_to_proto(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.0.div_euclid(1000),
        nanos: (at.0.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Whole milliseconds; sub-millisecond precision is dropped.
pub fn timestamp_from_proto(
    field: &str,
    at: &prost_types::Timestamp,
) -> Result<Timestamp, ValidationError> {
    if !(0..1_000_000_000).contains(&at.nanos) {
        return Err(ValidationError::new(field, "nanos must be in 0..1e9"));
    }
    at.seconds
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(i64::from(at.nanos / 1_000_000)))
        .map(Timestamp)
        .ok_or_else(|| ValidationError::new(field, "is out of range"))
}

pub fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn duration_from_proto(d: &prost_types::Duration) -> Duration {
    Duration::from_secs(d.seconds.max(0) as u64) + Duration::from_nanos(d.nanos.max(0) as u64)
}

pub fn event_type_to_proto(t: EventType) -> v1::EventType {
    match t {
        EventType::Requested => v1::EventType::Requested,
        EventType::Acknowledged => v1::EventType::Acknowledged,
        EventType::Started => v1::EventType::Started,
        EventType::OnHold => v1::EventType::OnHold,
        EventType::Resumed => v1::EventType::Resumed,
        EventType::Completed => v1::EventType::Completed,
        EventType::Rejected => v1::EventType::Rejected,
        EventType::Cancelled => v1::EventType::Cancelled,
        EventType::Reassigned => v1::EventType::Reassigned,
        EventType::Reprioritized => v1::EventType::Reprioritized,
        EventType::Rated => v1::EventType::Rated,
        EventType::Amended => v1::EventType::Amended,
        EventType::EscalationAcknowledged => v1::EventType::EscalationAcknowledged,
    }
}

pub fn event_type_from_proto(value: i32) -> Result<EventType, ValidationError> {
    match v1::EventType::try_from(value) {
        Ok(v1::EventType::Requested) => Ok(EventType::Requested),
        Ok(v1::EventType::Acknowledged) => Ok(EventType::Acknowledged),
        Ok(v1::EventType::Started) => Ok(EventType::Started),
        Ok(v1::EventType::OnHold) => Ok(EventType::OnHold),
        Ok(v1::EventType::Resumed) => Ok(EventType::Resumed),
        Ok(v1::EventType::Completed) => Ok(EventType::Completed),
        Ok(v1::EventType::Rejected) => Ok(EventType::Rejected),
        Ok(v1::EventType::Cancelled) => Ok(EventType::Cancelled),
        Ok(v1::EventType::Reassigned) => Ok(EventType::Reassigned),
        Ok(v1::EventType::Reprioritized) => Ok(EventType::Reprioritized),
        Ok(v1::EventType::Rated) => Ok(EventType::Rated),
        Ok(v1::EventType::Amended) => Ok(EventType::Amended),
        Ok(v1::EventType::EscalationAcknowledged) => Ok(EventType::EscalationAcknowledged),
        Ok(v1::EventType::Unspecified) => Err(ValidationError::new("type", "is required")),
        Err(_) => Err(ValidationError::new(
            "type",
            format!("{value} is not a known EventType"),
        )),
    }
}

pub fn priority_to_proto(p: Priority) -> v1::Priority {
    match p {
        Priority::Routine => v1::Priority::Routine,
        Priority::Urgent => v1::Priority::Urgent,
        Priority::Stat => v1::Priority::Stat,
    }
}

/// `Ok(None)` for PRIORITY_UNSPECIFIED.
/// A wire priority as a word (`stat`, `urgent`, `routine`); the number for
/// one this build does not know.
pub fn priority_word(value: i32) -> String {
    v1::Priority::try_from(value)
        .map(|p| {
            let name = p.as_str_name();
            name.strip_prefix("PRIORITY_")
                .unwrap_or(name)
                .to_lowercase()
        })
        .unwrap_or_else(|_| value.to_string())
}

pub fn priority_from_proto(value: i32) -> Result<Option<Priority>, ValidationError> {
    match v1::Priority::try_from(value) {
        Ok(v1::Priority::Unspecified) => Ok(None),
        Ok(v1::Priority::Routine) => Ok(Some(Priority::Routine)),
        Ok(v1::Priority::Urgent) => Ok(Some(Priority::Urgent)),
        Ok(v1::Priority::Stat) => Ok(Some(Priority::Stat)),
        Err(_) => Err(ValidationError::new(
            "priority",
            format!("{value} is not a known Priority"),
        )),
    }
}

pub fn status_to_proto(s: HandoffStatus) -> v1::HandoffStatus {
    match s {
        HandoffStatus::Requested => v1::HandoffStatus::Requested,
        HandoffStatus::Acknowledged => v1::HandoffStatus::Acknowledged,
        HandoffStatus::InProgress => v1::HandoffStatus::InProgress,
        HandoffStatus::OnHold => v1::HandoffStatus::OnHold,
        HandoffStatus::Completed => v1::HandoffStatus::Completed,
        HandoffStatus::Rejected => v1::HandoffStatus::Rejected,
        HandoffStatus::Cancelled => v1::HandoffStatus::Cancelled,
    }
}

/// `Ok(None)` for HANDOFF_STATUS_UNSPECIFIED (no filter).
pub fn status_from_proto(value: i32) -> Result<Option<HandoffStatus>, ValidationError> {
    let status = match v1::HandoffStatus::try_from(value) {
        Ok(v1::HandoffStatus::Unspecified) => return Ok(None),
        Ok(v1::HandoffStatus::Requested) => HandoffStatus::Requested,
        Ok(v1::HandoffStatus::Acknowledged) => HandoffStatus::Acknowledged,
        Ok(v1::HandoffStatus::InProgress) => HandoffStatus::InProgress,
        Ok(v1::HandoffStatus::OnHold) => HandoffStatus::OnHold,
        Ok(v1::HandoffStatus::Completed) => HandoffStatus::Completed,
        Ok(v1::HandoffStatus::Rejected) => HandoffStatus::Rejected,
        Ok(v1::HandoffStatus::Cancelled) => HandoffStatus::Cancelled,
        Err(_) => {
            return Err(ValidationError::new(
                "status",
                format!("{value} is not a known HandoffStatus"),
            ))
        }
    };
    Ok(Some(status))
}

pub fn sla_state_to_proto(s: SlaState) -> v1::SlaState {
    match s {
        SlaState::Pending => v1::SlaState::Pending,
        SlaState::Running => v1::SlaState::Running,
        SlaState::Paused => v1::SlaState::Paused,
        SlaState::Met => v1::SlaState::Met,
        SlaState::Breached => v1::SlaState::Breached,
        SlaState::Cancelled => v1::SlaState::Cancelled,
        SlaState::Reset => v1::SlaState::Reset,
    }
}

pub fn clock_to_proto(c: &ClockOutcome) -> v1::SlaStatus {
    v1::SlaStatus {
        policy_id: c.policy_id.to_string(),
        state: sla_state_to_proto(c.state) as i32,
        deadline: c.deadline.map(timestamp_to_proto),
        elapsed: Some(duration_to_proto(c.elapsed)),
        target: Some(duration_to_proto(c.target)),
        started_at: c.started_at.map(timestamp_to_proto),
        stopped_at: c.stopped_at.map(timestamp_to_proto),
        cycle: c.cycle,
        supplier: c
            .supplier
            .as_ref()
            .map(Token::to_string)
            .unwrap_or_default(),
        warn_at: c.warn_at.map(timestamp_to_proto),
        warned: c.warned,
    }
}

/// A required token field.
pub fn token(field: &str, value: &str) -> Result<Token, ValidationError> {
    Token::parse(value).map_err(|e| ValidationError::new(field, e))
}

/// An optional token field: empty means absent.
pub fn optional_token(field: &str, value: &str) -> Result<Option<Token>, ValidationError> {
    if value.is_empty() {
        Ok(None)
    } else {
        token(field, value).map(Some)
    }
}

/// Maps a wire event, as a caller sends it, to the domain, naming the first
/// field that does not map. The output-only fields (`version`,
/// `recorded_at`, `sent_by`, `backfill`, `entry_lag`) are ignored: they are
/// ingest's to record.
pub fn event_from_proto(e: v1::HandoffEvent) -> Result<Event, ValidationError> {
    let handoff_id = token("handoff_id", &e.handoff_id)?;
    let event_type = event_type_from_proto(e.r#type)?;
    let occurred_at = match &e.occurred_at {
        Some(at) => timestamp_from_proto("occurred_at", at)?,
        None => return Err(ValidationError::new("occurred_at", "is required")),
    };
    Ok(Event {
        event_id: e.event_id,
        handoff_id,
        event_type,
        occurred_at,
        kind: optional_token("kind", &e.kind)?,
        supplier: optional_token("supplier", &e.supplier)?,
        customer: optional_token("customer", &e.customer)?,
        priority: priority_from_proto(e.priority)?,
        actor: e.actor,
        attributes: e.attributes.into_iter().collect(),
        rating: e.rating.map(|r| Rating {
            score: u8::try_from(r.score).unwrap_or(u8::MAX),
            comment: r.comment,
        }),
    })
}

/// Maps a recorded wire event (a stream payload) to the domain: the event
/// and its envelope, which must say when it was recorded.
pub fn record_from_proto(e: v1::HandoffEvent) -> Result<RecordedEvent, ValidationError> {
    let recorded_at = match &e.recorded_at {
        Some(at) => timestamp_from_proto("recorded_at", at)?,
        None => return Err(ValidationError::new("recorded_at", "is required")),
    };
    let envelope = Envelope {
        version: e.version,
        recorded_at,
        sent_by: e.sent_by.clone(),
        backfill: e.backfill,
    };
    Ok(RecordedEvent {
        event: event_from_proto(e)?,
        envelope,
    })
}

/// Maps an event to the wire as a caller sends it: the output-only fields
/// are left empty.
pub fn event_to_proto(e: &Event) -> v1::HandoffEvent {
    v1::HandoffEvent {
        event_id: e.event_id.clone(),
        handoff_id: e.handoff_id.to_string(),
        r#type: event_type_to_proto(e.event_type) as i32,
        occurred_at: Some(timestamp_to_proto(e.occurred_at)),
        kind: e.kind.as_ref().map(Token::to_string).unwrap_or_default(),
        supplier: e
            .supplier
            .as_ref()
            .map(Token::to_string)
            .unwrap_or_default(),
        customer: e
            .customer
            .as_ref()
            .map(Token::to_string)
            .unwrap_or_default(),
        priority: e.priority.map(priority_to_proto).unwrap_or_default() as i32,
        actor: e.actor.clone(),
        attributes: e
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        version: 0,
        recorded_at: None,
        rating: e.rating.as_ref().map(|r| v1::Rating {
            score: u32::from(r.score),
            comment: r.comment.clone(),
        }),
        sent_by: String::new(),
        backfill: false,
        entry_lag: None,
    }
}

/// Maps a recorded event to the wire (the stream payload, and query
/// answers): the event with its envelope.
pub fn record_to_proto(r: &RecordedEvent) -> v1::HandoffEvent {
    v1::HandoffEvent {
        version: r.envelope.version,
        recorded_at: Some(timestamp_to_proto(r.envelope.recorded_at)),
        sent_by: r.envelope.sent_by.clone(),
        backfill: r.envelope.backfill,
        // Derived, for query answers only; the stream stores the two times.
        entry_lag: None,
        ..event_to_proto(&r.event)
    }
}

/// Maps a wire disruption event to the fact it states, naming the first bad
/// field. `recorded_at` and `sent_by` are output only: ignored here.
pub fn disruption_from_proto(d: v1::DisruptionEvent) -> Result<DisruptionEvent, ValidationError> {
    let phase = match v1::DisruptionPhase::try_from(d.phase) {
        Ok(v1::DisruptionPhase::Started) => Phase::Started,
        Ok(v1::DisruptionPhase::Ended) => Phase::Ended,
        Ok(v1::DisruptionPhase::Unspecified) => {
            return Err(ValidationError::new("phase", "is required"))
        }
        Err(_) => {
            return Err(ValidationError::new(
                "phase",
                format!("{} is not a known DisruptionPhase", d.phase),
            ))
        }
    };
    Ok(DisruptionEvent {
        disruption_id: token("disruption_id", &d.disruption_id)?,
        phase,
        supplier: token("supplier", &d.supplier)?,
        kind: optional_token("kind", &d.kind)?,
        scope: d.scope.into_iter().collect(),
        occurred_at: match &d.occurred_at {
            Some(at) => timestamp_from_proto("occurred_at", at)?,
            None => return Err(ValidationError::new("occurred_at", "is required")),
        },
        reason: d.reason,
        actor: d.actor,
    })
}

/// Maps a disruption event as the log holds it, which carries when ingest
/// recorded it and for whom.
pub fn recorded_disruption_from_proto(
    mut d: v1::DisruptionEvent,
) -> Result<RecordedDisruption, ValidationError> {
    let recorded_at = match d.recorded_at.take() {
        Some(at) => timestamp_from_proto("recorded_at", &at)?,
        None => {
            return Err(ValidationError::new(
                "recorded_at",
                "is required on a recorded event",
            ))
        }
    };
    let sent_by = std::mem::take(&mut d.sent_by);
    Ok(RecordedDisruption {
        event: disruption_from_proto(d)?,
        recorded_at,
        sent_by,
    })
}

/// A recorded disruption event on the wire: the log's payload, and what
/// watchers of disruptions receive.
pub fn recorded_disruption_to_proto(r: &RecordedDisruption) -> v1::DisruptionEvent {
    v1::DisruptionEvent {
        recorded_at: Some(timestamp_to_proto(r.recorded_at)),
        sent_by: r.sent_by.clone(),
        ..disruption_to_proto(&r.event)
    }
}

pub fn disruption_to_proto(d: &DisruptionEvent) -> v1::DisruptionEvent {
    v1::DisruptionEvent {
        disruption_id: d.disruption_id.to_string(),
        phase: match d.phase {
            Phase::Started => v1::DisruptionPhase::Started,
            Phase::Ended => v1::DisruptionPhase::Ended,
        } as i32,
        supplier: d.supplier.to_string(),
        kind: d.kind.as_ref().map(Token::to_string).unwrap_or_default(),
        scope: d
            .scope
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        occurred_at: Some(timestamp_to_proto(d.occurred_at)),
        reason: d.reason.clone(),
        actor: d.actor.clone(),
        recorded_at: None,
        sent_by: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> v1::HandoffEvent {
        v1::HandoffEvent {
            event_id: "e1".into(),
            handoff_id: "h1".into(),
            r#type: v1::EventType::Requested as i32,
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789,
            }),
            kind: "repair".into(),
            supplier: "engineering".into(),
            customer: "ward-5".into(),
            priority: v1::Priority::Stat as i32,
            actor: "desk".into(),
            attributes: [("asset".to_string(), "pump-7".to_string())].into(),
            version: 0,
            recorded_at: None,
            rating: None,
            sent_by: String::new(),
            backfill: false,
            entry_lag: None,
        }
    }

    #[test]
    fn round_trips_at_millisecond_precision() {
        let event = event_from_proto(wire()).expect("valid");
        assert_eq!(event.occurred_at, Timestamp(1_700_000_000_123));
        assert_eq!(event.priority, Some(Priority::Stat));
        let back = event_to_proto(&event);
        assert_eq!(back.occurred_at.map(|t| t.nanos), Some(123_000_000));
        assert_eq!(event_from_proto(back), Ok(event));
    }

    #[test]
    fn what_ingest_records_is_ignored_on_input() {
        let forged = v1::HandoffEvent {
            version: 7,
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            sent_by: "someone-else".into(),
            backfill: true,
            ..wire()
        };
        assert_eq!(event_from_proto(forged), event_from_proto(wire()));
    }

    #[test]
    fn a_record_round_trips_with_its_envelope() {
        let record = RecordedEvent {
            event: event_from_proto(wire()).expect("valid"),
            envelope: Envelope {
                version: 3,
                recorded_at: Timestamp(1_700_000_060_000),
                sent_by: "ward-5-system".into(),
                backfill: true,
            },
        };
        let back = record_to_proto(&record);
        assert_eq!(
            back.occurred_at,
            wire().occurred_at.map(|t| prost_types::Timestamp {
                nanos: 123_000_000,
                ..t
            })
        );
        assert_eq!(record_from_proto(back), Ok(record));
        assert_eq!(
            record_from_proto(wire()).expect_err("not recorded").field,
            "recorded_at"
        );
    }

    #[test]
    fn names_the_field_that_does_not_map() {
        let field = |f: fn(&mut v1::HandoffEvent)| {
            let mut e = wire();
            f(&mut e);
            event_from_proto(e).expect_err("invalid").field
        };
        assert_eq!(field(|e| e.handoff_id = "a.b".into()), "handoff_id");
        assert_eq!(field(|e| e.r#type = 0), "type");
        assert_eq!(field(|e| e.r#type = 99), "type");
        assert_eq!(field(|e| e.occurred_at = None), "occurred_at");
        assert_eq!(field(|e| e.supplier = "*".into()), "supplier");
        assert_eq!(field(|e| e.customer = ">".into()), "customer");
        assert_eq!(field(|e| e.kind = "re pair".into()), "kind");
        assert_eq!(field(|e| e.priority = 7), "priority");
        assert_eq!(
            field(|e| e.occurred_at = Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })),
            "occurred_at"
        );
    }

    #[test]
    fn a_disruption_records_its_envelope_and_ignores_it_on_input() {
        let wire = v1::DisruptionEvent {
            disruption_id: "analyzer-1".into(),
            phase: v1::DisruptionPhase::Started as i32,
            supplier: "lab".into(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            reason: "analyzer down".into(),
            ..Default::default()
        };
        let forged = v1::DisruptionEvent {
            recorded_at: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            sent_by: "someone-else".into(),
            ..wire.clone()
        };
        let fact = disruption_from_proto(wire.clone()).expect("valid");
        assert_eq!(disruption_from_proto(forged), Ok(fact.clone()));
        let record = RecordedDisruption {
            event: fact,
            recorded_at: Timestamp(1_700_000_060_000),
            sent_by: "lab-system".into(),
        };
        assert_eq!(
            recorded_disruption_from_proto(recorded_disruption_to_proto(&record)),
            Ok(record)
        );
        assert_eq!(
            recorded_disruption_from_proto(wire)
                .expect_err("not recorded")
                .field,
            "recorded_at"
        );
    }
}
