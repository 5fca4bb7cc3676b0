//! One fact about a hand-off, the checks every event passes before it may
//! reach the log, and the envelope ingest records it in.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use crate::validation::ValidationError;
use crate::{
    id::{check_token, Token},
    privacy,
    time::{Timestamp, MAX_TIMESTAMP, MIN_TIMESTAMP},
};

/// What happened. Names match the catalog's lower-case spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Requested,
    Acknowledged,
    Started,
    OnHold,
    Resumed,
    Completed,
    Rejected,
    Cancelled,
    Reassigned,
    Reprioritized,
    /// The customer's rating of a completed hand-off (once).
    Rated,
    /// The supplier corrected what it delivered (a corrected lab result).
    /// Only after COMPLETED, as often as it happens; the status and the
    /// clocks stay as they were.
    Amended,
    /// An operator (the duty coordinator) acknowledged the escalation of
    /// the hand-off's broken promises: someone is on it. In any status
    /// after REQUESTED, as often as it is sent (the first after a breach
    /// counts for it); the status and the clocks stay as they were.
    EscalationAcknowledged,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::Requested,
        EventType::Acknowledged,
        EventType::Started,
        EventType::OnHold,
        EventType::Resumed,
        EventType::Completed,
        EventType::Rejected,
        EventType::Cancelled,
        EventType::Reassigned,
        EventType::Reprioritized,
        EventType::Rated,
        EventType::Amended,
        EventType::EscalationAcknowledged,
    ];

    /// The catalog's spelling: `requested`, `on_hold`, ...
    pub fn name(self) -> &'static str {
        match self {
            EventType::Requested => "requested",
            EventType::Acknowledged => "acknowledged",
            EventType::Started => "started",
            EventType::OnHold => "on_hold",
            EventType::Resumed => "resumed",
            EventType::Completed => "completed",
            EventType::Rejected => "rejected",
            EventType::Cancelled => "cancelled",
            EventType::Reassigned => "reassigned",
            EventType::Reprioritized => "reprioritized",
            EventType::Rated => "rated",
            EventType::Amended => "amended",
            EventType::EscalationAcknowledged => "escalation_acknowledged",
        }
    }

    pub fn from_name(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Said of a COMPLETED hand-off (a rating, an amendment): moves no clock.
    pub fn follows_the_end(self) -> bool {
        matches!(self, EventType::Rated | EventType::Amended)
    }

    /// Said about the hand-off rather than done in it: a catalog promise
    /// may not start, stop, pause, resume or reset on it.
    pub fn moves_no_clock(self) -> bool {
        self.follows_the_end() || self == EventType::EscalationAcknowledged
    }

    /// Closes the hand-off: nothing may follow.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventType::Completed | EventType::Rejected | EventType::Cancelled
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How fast the customer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Routine,
    Urgent,
    Stat,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::Routine, Priority::Urgent, Priority::Stat];

    pub fn name(self) -> &'static str {
        match self {
            Priority::Routine => "routine",
            Priority::Urgent => "urgent",
            Priority::Stat => "stat",
        }
    }

    pub fn from_name(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One fact about a hand-off, as the caller states it.
///
/// `kind`, `supplier`, `customer` and `priority` are optional on the wire for
/// every event but REQUESTED; ingest fills them in from the hand-off before the
/// event is recorded, so every recorded event carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub handoff_id: Token,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    pub kind: Option<Token>,
    pub supplier: Option<Token>,
    pub customer: Option<Token>,
    pub priority: Option<Priority>,
    pub actor: String,
    pub attributes: BTreeMap<String, String>,
    /// The customer's rating; only on RATED.
    pub rating: Option<Rating>,
}

/// What ingest records about an event it accepts: when, from whom, at which
/// version of the hand-off, and whether it is history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The hand-off's version after this event (1 for REQUESTED).
    pub version: u64,
    /// When ingest accepted it (the receiver's clock).
    pub recorded_at: Timestamp,
    /// Audit: the authenticated caller that sent the event (empty when
    /// ingest runs without authentication).
    pub sent_by: String,
    /// History loaded by an importer. Its clocks read `occurred_at` as it
    /// stands (no late-entry bound), and it pages nobody.
    pub backfill: bool,
}

/// An event as the log of record holds it: the fact, and what ingest
/// recorded about it. The hand-off's history, its clocks and the views are
/// built from these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub event: Event,
    pub envelope: Envelope,
}

impl RecordedEvent {
    /// How long after it happened the event was entered: `recorded_at -
    /// occurred_at` (zero if it was dated ahead).
    pub fn entry_lag(&self) -> Duration {
        self.envelope.recorded_at.since(self.event.occurred_at)
    }

    /// The time a promise's clock reads for this event: `occurred_at`, but
    /// for a live entry never earlier than `max_entry_lag` before it was
    /// recorded. A late entry still counts, only not further back than the
    /// bound; history loaded by an importer (`backfill`) reads as dated.
    pub fn clock_time(&self, max_entry_lag: Duration) -> Timestamp {
        if self.envelope.backfill {
            return self.event.occurred_at;
        }
        let earliest = Timestamp(
            self.envelope
                .recorded_at
                .0
                .saturating_sub(crate::time::duration_millis(max_entry_lag)),
        );
        self.event.occurred_at.max(earliest)
    }
}

/// How the customer rated a completed hand-off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rating {
    /// 1 (poor) to 5 (excellent).
    pub score: u8,
    /// A short remark about the service, never about a patient.
    pub comment: String,
}

/// Longest rating comment, in bytes.
pub const MAX_COMMENT_LEN: usize = 280;

/// Bounds on what one event may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_attributes: usize,
    pub max_attribute_key_len: usize,
    pub max_attribute_value_len: usize,
    pub max_id_len: usize,
    /// How far ahead of the receiving clock `occurred_at` may be (clock skew).
    pub max_future_skew: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_attributes: 32,
            max_attribute_key_len: 64,
            max_attribute_value_len: 256,
            max_id_len: 128,
            max_future_skew: Duration::from_secs(300),
        }
    }
}

/// `occurred_at` of any event: a time a calendar can show, and not further
/// ahead of `now` (the receiver's clock) than the accepted clock skew.
pub(crate) fn check_occurred_at(
    at: Timestamp,
    limits: &Limits,
    now: Timestamp,
) -> Result<(), ValidationError> {
    if at < MIN_TIMESTAMP || at > MAX_TIMESTAMP {
        return Err(ValidationError::new(
            "occurred_at",
            "must lie between 1970-01-01 and 9999-12-31",
        ));
    }
    if at > now.plus(limits.max_future_skew) {
        return Err(ValidationError::new(
            "occurred_at",
            format!(
                "is {}s in the future; at most {}s of clock skew is accepted",
                at.since(now).as_secs(),
                limits.max_future_skew.as_secs()
            ),
        ));
    }
    Ok(())
}

impl Event {
    /// Screens everything a person can type into a hand-off event for
    /// patient data (`actor`, `event_id`, `handoff_id`, attribute keys,
    /// against `allowed_keys` (the catalog's list) when given, and values,
    /// and the rating comment), naming the field and never the value.
    pub fn check_patient_data(
        &self,
        allowed_keys: Option<&BTreeSet<String>>,
    ) -> Result<(), ValidationError> {
        privacy::check_text("actor", &self.actor)?;
        privacy::check_text("event_id", &self.event_id)?;
        privacy::check_text("handoff_id", self.handoff_id.as_str())?;
        privacy::check_attributes("attributes", &self.attributes, allowed_keys)?;
        if let Some(rating) = &self.rating {
            privacy::check_text("rating.comment", &rating.comment)?;
        }
        Ok(())
    }

    /// Checks everything that can be checked without the hand-off's history or
    /// the catalog. `now` is the receiver's clock, for the future-skew bound.
    pub fn validate(&self, limits: &Limits, now: Timestamp) -> Result<(), ValidationError> {
        check_printable_id("event_id", &self.event_id, limits.max_id_len)?;
        if self.actor.len() > limits.max_id_len {
            return Err(ValidationError::new(
                "actor",
                format!("must be at most {} bytes", limits.max_id_len),
            ));
        }
        if self.actor.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "actor",
                "must not contain control characters",
            ));
        }
        check_occurred_at(self.occurred_at, limits, now)?;
        self.validate_attributes(limits)?;
        match self.event_type {
            EventType::Requested => {
                require(&self.kind, "kind")?;
                require(&self.supplier, "supplier")?;
                require(&self.customer, "customer")?;
                require(&self.priority, "priority")?;
                if self.supplier == self.customer {
                    return Err(ValidationError::new(
                        "customer",
                        "must differ from supplier: a hand-off is between two departments",
                    ));
                }
            }
            EventType::Reassigned => {
                require(&self.supplier, "supplier")?;
            }
            EventType::Reprioritized => {
                require(&self.priority, "priority")?;
            }
            EventType::Rated => {
                require(&self.rating, "rating")?;
            }
            _ => {}
        }
        match (&self.rating, self.event_type) {
            (Some(rating), EventType::Rated) => rating.validate()?,
            (Some(_), _) => {
                return Err(ValidationError::new(
                    "rating",
                    "is given only on a rated event",
                ))
            }
            (None, _) => {}
        }
        Ok(())
    }

    pub(crate) fn validate_attributes(&self, limits: &Limits) -> Result<(), ValidationError> {
        if self.attributes.len() > limits.max_attributes {
            return Err(ValidationError::new(
                "attributes",
                format!(
                    "has {} entries; at most {} are accepted",
                    self.attributes.len(),
                    limits.max_attributes
                ),
            ));
        }
        for (key, value) in &self.attributes {
            if key.len() > limits.max_attribute_key_len {
                return Err(ValidationError::new(
                    "attributes",
                    format!("key is longer than {} bytes", limits.max_attribute_key_len),
                ));
            }
            check_token(key).map_err(|e| {
                // The key is a token by now only if check_token passed, so
                // naming it would echo arbitrary client bytes: we don't.
                ValidationError::new("attributes", format!("a key {e}"))
            })?;
            // A key that looks like patient data is not named (the screen
            // refuses it later, also without naming it).
            if value.len() > limits.max_attribute_value_len {
                return Err(ValidationError::new(
                    privacy::keyed_field("attributes", key),
                    format!("is longer than {} bytes", limits.max_attribute_value_len),
                ));
            }
            if value.chars().any(char::is_control) {
                return Err(ValidationError::new(
                    privacy::keyed_field("attributes", key),
                    "must not contain control characters",
                ));
            }
        }
        Ok(())
    }
}

impl Rating {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=5).contains(&self.score) {
            return Err(ValidationError::new(
                "rating.score",
                format!("is {}; a rating is 1 to 5", self.score),
            ));
        }
        check_free_text("rating.comment", &self.comment, MAX_COMMENT_LEN)
    }
}

/// A short free text (a comment, a reason): bounded, one line of printable text.
pub(crate) fn check_free_text(
    field: &str,
    value: &str,
    max_len: usize,
) -> Result<(), ValidationError> {
    if value.len() > max_len {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_len} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn require<T>(value: &Option<T>, field: &str) -> Result<(), ValidationError> {
    match value {
        Some(_) => Ok(()),
        None => Err(ValidationError::new(
            field,
            "is required on this event type",
        )),
    }
}

/// An id that travels in NATS headers: printable ASCII, no spaces.
fn check_printable_id(field: &str, value: &str, max_len: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "is required"));
    }
    if value.len() > max_len {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_len} bytes"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ValidationError::new(
            field,
            "may contain only printable ASCII without spaces",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_patient_data_check_names_each_field_and_never_the_value() {
        let clean = requested("h1", 1_000);
        assert_eq!(clean.check_patient_data(None), Ok(()));
        let rated = |comment: &str| Event {
            event_type: EventType::Rated,
            rating: Some(Rating {
                score: 2,
                comment: comment.into(),
            }),
            ..requested("h1", 1_000)
        };
        let cases: Vec<(Event, &str, &str)> = vec![
            (
                Event {
                    actor: "Mr. John Smith".into(),
                    ..clean.clone()
                },
                "actor",
                "Smith",
            ),
            (
                Event {
                    event_id: "bsn-123456789".into(),
                    ..clean.clone()
                },
                "event_id",
                "123456789",
            ),
            (
                Event {
                    handoff_id: Token::parse("bsn123456789").expect("token"),
                    ..clean.clone()
                },
                "handoff_id",
                "123456789",
            ),
            (
                Event {
                    attributes: BTreeMap::from([("bsn123456789".into(), "x".into())]),
                    ..clean.clone()
                },
                "attributes",
                "123456789",
            ),
            (
                Event {
                    attributes: BTreeMap::from([("note".into(), "1 jan 1970".into())]),
                    ..clean.clone()
                },
                "attributes[note]",
                "1970",
            ),
            (rated("patient John Smith"), "rating.comment", "Smith"),
        ];
        for (event, field, value) in cases {
            let err = event.check_patient_data(None).expect_err(field);
            assert_eq!(err.field, field, "{err}");
            assert!(!err.to_string().contains(value), "{err}");
        }
    }

    pub(crate) fn token(s: &str) -> Token {
        Token::parse(s).expect("test token")
    }

    pub(crate) fn requested(handoff: &str, at: i64) -> Event {
        Event {
            event_id: format!("{handoff}-req"),
            handoff_id: token(handoff),
            event_type: EventType::Requested,
            occurred_at: Timestamp(at),
            kind: Some(token("repair")),
            supplier: Some(token("engineering")),
            customer: Some(token("ward-5")),
            priority: Some(Priority::Routine),
            actor: "desk-1".into(),
            attributes: BTreeMap::new(),
            rating: None,
        }
    }

    /// `event` as ingest records it: at `version`, accepted at
    /// `recorded_at`, live and from no authenticated caller.
    pub(crate) fn recorded(event: Event, version: u64, recorded_at: i64) -> RecordedEvent {
        RecordedEvent {
            event,
            envelope: Envelope {
                version,
                recorded_at: Timestamp(recorded_at),
                sent_by: String::new(),
                backfill: false,
            },
        }
    }

    pub(crate) fn later(handoff: &str, event_type: EventType, at: i64) -> Event {
        Event {
            event_id: format!("{handoff}-{}-{at}", event_type.name()),
            event_type,
            kind: None,
            supplier: None,
            customer: None,
            priority: None,
            ..requested(handoff, at)
        }
    }

    const NOW: Timestamp = Timestamp(1_000_000_000_000);

    fn field_of(event: &Event) -> String {
        event
            .validate(&Limits::default(), NOW)
            .expect_err("should be refused")
            .field
    }

    #[test]
    fn a_complete_request_is_valid() {
        assert_eq!(
            requested("h1", NOW.0).validate(&Limits::default(), NOW),
            Ok(())
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut e = requested("h1", NOW.0);
        e.event_id = String::new();
        assert_eq!(field_of(&e), "event_id");

        let mut e = requested("h1", NOW.0);
        e.event_id = "has space".into();
        assert_eq!(field_of(&e), "event_id");

        let mut e = requested("h1", NOW.0);
        e.kind = None;
        assert_eq!(field_of(&e), "kind");

        let mut e = requested("h1", NOW.0);
        e.priority = None;
        assert_eq!(field_of(&e), "priority");

        let mut e = requested("h1", NOW.0);
        e.customer = e.supplier.clone();
        assert_eq!(field_of(&e), "customer");

        let e = requested("h1", NOW.0 + 301_000);
        assert_eq!(field_of(&e), "occurred_at");

        let e = requested("h1", -1);
        assert_eq!(field_of(&e), "occurred_at");

        let mut e = requested("h1", NOW.0);
        for i in 0..33 {
            e.attributes.insert(format!("k{i}"), "v".into());
        }
        assert_eq!(field_of(&e), "attributes");

        let mut e = requested("h1", NOW.0);
        e.attributes.insert("a.b".into(), "v".into());
        assert_eq!(field_of(&e), "attributes");

        let mut e = requested("h1", NOW.0);
        e.attributes.insert("asset".into(), "x".repeat(257));
        assert_eq!(field_of(&e), "attributes[asset]");

        // A key that looks like patient data is not echoed in the field.
        let mut e = requested("h1", NOW.0);
        e.attributes.insert("bsn123456789".into(), "x".repeat(257));
        assert_eq!(field_of(&e), "attributes");

        let mut e = later("h1", EventType::Reassigned, NOW.0);
        e.supplier = None;
        assert_eq!(field_of(&e), "supplier");

        let e = later("h1", EventType::Rated, NOW.0);
        assert_eq!(field_of(&e), "rating");

        let mut e = later("h1", EventType::Rated, NOW.0);
        e.rating = Some(Rating {
            score: 6,
            comment: String::new(),
        });
        assert_eq!(field_of(&e), "rating.score");

        let mut e = later("h1", EventType::Rated, NOW.0);
        e.rating = Some(Rating {
            score: 4,
            comment: "x".repeat(281),
        });
        assert_eq!(field_of(&e), "rating.comment");

        let mut e = later("h1", EventType::Completed, NOW.0);
        e.rating = Some(Rating {
            score: 4,
            comment: String::new(),
        });
        assert_eq!(field_of(&e), "rating");
    }

    #[test]
    fn later_events_need_no_routing_fields() {
        let e = later("h1", EventType::Acknowledged, NOW.0);
        assert_eq!(e.validate(&Limits::default(), NOW), Ok(()));
    }

    #[test]
    fn a_late_entry_is_read_no_earlier_than_the_bound_before_its_recording() {
        let bound = Duration::from_secs(300);
        let mut e = recorded(requested("h1", 1_000_000), 1, 1_000_000);
        assert_eq!(
            e.clock_time(bound),
            Timestamp(1_000_000),
            "recorded as it happened"
        );
        e.envelope.recorded_at = Timestamp(1_000_000 + 120_000);
        assert_eq!(
            e.clock_time(bound),
            Timestamp(1_000_000),
            "within the bound"
        );
        assert_eq!(e.entry_lag(), Duration::from_secs(120));
        e.envelope.recorded_at = Timestamp(1_000_000 + 3_600_000);
        assert_eq!(
            e.clock_time(bound),
            Timestamp(1_000_000 + 3_300_000),
            "an hour late reads as five minutes before its entry"
        );
        e.envelope.backfill = true;
        assert_eq!(
            e.clock_time(bound),
            Timestamp(1_000_000),
            "history reads as dated"
        );
        e.envelope.backfill = false;
        e.envelope.recorded_at = Timestamp(1_000_000 - 1_000);
        assert_eq!(e.clock_time(bound), Timestamp(1_000_000), "dated ahead");
        assert_eq!(e.entry_lag(), Duration::ZERO);
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
        for p in Priority::ALL {
            assert_eq!(Priority::from_name(p.name()), Some(p));
        }
    }
}
