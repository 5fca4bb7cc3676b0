//! Service disruptions: a supplier saying it cannot serve for a while
//! (analyzer down, drug out of stock, lift broken), and later that it can.
//!
//! A disruption has a scope (the supplier, optionally a service kind and
//! request attributes such as a drug code) and a span of event time. A
//! hand-off *requested* inside that span and scope is flagged as requested
//! into the disruption. Like every figure, the flag depends on event time
//! only: a disruption announced late flags the hand-offs it covers just the
//! same, and its `announced_at` shows how late it was.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    event::{Event, Limits, ValidationError},
    id::Token,
    privacy,
    time::Timestamp,
};

/// Longest disruption reason, in bytes.
pub const MAX_REASON_LEN: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    Started,
    Ended,
}

/// One fact about a disruption, as its sender states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisruptionEvent {
    pub disruption_id: Token,
    pub phase: Phase,
    pub supplier: Token,
    /// Only this service kind is disrupted; `None`: every kind.
    pub kind: Option<Token>,
    /// Only requests carrying these attributes (e.g. a drug code).
    pub scope: BTreeMap<String, String>,
    pub occurred_at: Timestamp,
    /// What is wrong, in a few words ("analyzer down"). Never patient data.
    pub reason: String,
    pub actor: String,
}

/// A disruption event as the log of record holds it: the fact, and what
/// ingest recorded about it. Only ingest makes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedDisruption {
    pub event: DisruptionEvent,
    /// When ingest accepted it (the receiver's clock).
    pub recorded_at: Timestamp,
    /// Audit: the authenticated caller that sent it (empty without
    /// authentication).
    pub sent_by: String,
}

/// A disruption as its events so far describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disruption {
    pub disruption_id: Token,
    pub supplier: Token,
    pub kind: Option<Token>,
    pub scope: BTreeMap<String, String>,
    pub reason: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    /// When the start was recorded: later than `started_at` for a
    /// disruption announced after the fact.
    pub announced_at: Option<Timestamp>,
}

/// Why a disruption event cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisruptionError {
    #[error("disruption {0} has not started: its first event must be started")]
    NotStarted(Token),
    #[error("disruption {0} has already started")]
    AlreadyStarted(Token),
    #[error("disruption {0} has already ended")]
    AlreadyEnded(Token),
    #[error("supplier: disruption {id} belongs to {supplier}")]
    WrongSupplier { id: Token, supplier: Token },
    #[error("occurred_at: a disruption cannot end before it started")]
    EndsBeforeStart,
}

impl DisruptionEvent {
    /// Screens everything a person can type into a disruption for patient
    /// data (`disruption_id`, `actor`, scope keys, against `allowed_keys`
    /// when given, and values, and `reason`), naming the field and never
    /// the value.
    pub fn check_patient_data(
        &self,
        allowed_keys: Option<&BTreeSet<String>>,
    ) -> Result<(), ValidationError> {
        privacy::check_text("disruption_id", self.disruption_id.as_str())?;
        privacy::check_text("actor", &self.actor)?;
        privacy::check_attributes("scope", &self.scope, allowed_keys)?;
        privacy::check_text("reason", &self.reason)
    }

    /// Checks everything that can be checked without the disruption's history.
    pub fn validate(&self, limits: &Limits, now: Timestamp) -> Result<(), ValidationError> {
        crate::event::check_occurred_at(self.occurred_at, limits, now)?;
        crate::event::check_free_text("reason", &self.reason, MAX_REASON_LEN)?;
        if self.phase == Phase::Started && self.reason.trim().is_empty() {
            return Err(ValidationError::new(
                "reason",
                "is required when a disruption starts",
            ));
        }
        if self.actor.len() > limits.max_id_len || self.actor.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "actor",
                format!(
                    "must be at most {} bytes, without control characters",
                    limits.max_id_len
                ),
            ));
        }
        // The scope is checked as a request's attributes are.
        let as_event = Event {
            event_id: "scope".into(),
            handoff_id: self.disruption_id.clone(),
            event_type: crate::event::EventType::Requested,
            occurred_at: self.occurred_at,
            kind: None,
            supplier: None,
            customer: None,
            priority: None,
            actor: String::new(),
            attributes: self.scope.clone(),
            rating: None,
        };
        as_event
            .validate_attributes(limits)
            .map_err(|e| ValidationError::new(e.field.replacen("attributes", "scope", 1), e.reason))
    }
}

/// What an event does to a disruption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Applied(Disruption),
    /// The very same event again (a client retry): nothing changes.
    Duplicate,
}

impl Disruption {
    /// Folds `record` into the disruption as it stands (`None`: unknown yet).
    pub fn apply(
        current: Option<&Disruption>,
        record: &RecordedDisruption,
    ) -> Result<Change, DisruptionError> {
        let event = &record.event;
        let id = event.disruption_id.clone();
        match (current, event.phase) {
            (None, Phase::Started) => Ok(Change::Applied(Disruption {
                disruption_id: id,
                supplier: event.supplier.clone(),
                kind: event.kind.clone(),
                scope: event.scope.clone(),
                reason: event.reason.clone(),
                started_at: event.occurred_at,
                ended_at: None,
                announced_at: Some(record.recorded_at),
            })),
            (None, Phase::Ended) => Err(DisruptionError::NotStarted(id)),
            (Some(d), _) if d.supplier != event.supplier => Err(DisruptionError::WrongSupplier {
                id,
                supplier: d.supplier.clone(),
            }),
            (Some(d), Phase::Started) => {
                let same = d.started_at == event.occurred_at
                    && d.kind == event.kind
                    && d.scope == event.scope
                    && d.reason == event.reason;
                if same {
                    Ok(Change::Duplicate)
                } else {
                    Err(DisruptionError::AlreadyStarted(id))
                }
            }
            (Some(d), Phase::Ended) => match d.ended_at {
                Some(at) if at == event.occurred_at => Ok(Change::Duplicate),
                Some(_) => Err(DisruptionError::AlreadyEnded(id)),
                None if event.occurred_at < d.started_at => Err(DisruptionError::EndsBeforeStart),
                None => Ok(Change::Applied(Disruption {
                    ended_at: Some(event.occurred_at),
                    ..d.clone()
                })),
            },
        }
    }

    /// Whether a hand-off requested from `supplier` at `requested_at`, of
    /// `kind`, with `attributes`, was requested into this disruption.
    pub fn covers(
        &self,
        supplier: &Token,
        kind: &Token,
        attributes: &BTreeMap<String, String>,
        requested_at: Timestamp,
    ) -> bool {
        self.supplier == *supplier
            && self.kind.as_ref().is_none_or(|k| k == kind)
            && self.scope.iter().all(|(k, v)| attributes.get(k) == Some(v))
            && self.started_at <= requested_at
            && self.ended_at.is_none_or(|end| requested_at < end)
    }

    /// Active at `now`: started, not yet ended.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.started_at <= now && self.ended_at.is_none_or(|end| now < end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patient_data_check_names_each_field() {
        let clean = DisruptionEvent {
            disruption_id: Token::parse("analyzer-1").expect("token"),
            phase: Phase::Started,
            supplier: Token::parse("lab").expect("token"),
            kind: None,
            scope: BTreeMap::from([("test".to_owned(), "troponin".to_owned())]),
            occurred_at: Timestamp(1_000),
            reason: "analyzer down".into(),
            actor: "lab-desk".into(),
        };
        assert_eq!(clean.check_patient_data(None), Ok(()));
        let id = |s: &str| Token::parse(s).expect("token");
        for (event, field) in [
            (
                DisruptionEvent {
                    disruption_id: id("bsn-123456789"),
                    ..clean.clone()
                },
                "disruption_id",
            ),
            (
                DisruptionEvent {
                    actor: "DOB 1970-01-01".into(),
                    ..clean.clone()
                },
                "actor",
            ),
            (
                DisruptionEvent {
                    scope: BTreeMap::from([("mrn_4711".into(), "x".into())]),
                    ..clean.clone()
                },
                "scope",
            ),
            (
                DisruptionEvent {
                    scope: BTreeMap::from([("test".into(), "mr. smith".into())]),
                    ..clean.clone()
                },
                "scope[test]",
            ),
            (
                DisruptionEvent {
                    reason: "john.smith at example dot org".into(),
                    ..clean.clone()
                },
                "reason",
            ),
        ] {
            assert_eq!(
                event.check_patient_data(None).map_err(|e| e.field),
                Err(field.to_owned())
            );
        }
    }
    use crate::event::tests::token;

    fn started(at: i64) -> DisruptionEvent {
        DisruptionEvent {
            disruption_id: token("analyzer-1"),
            phase: Phase::Started,
            supplier: token("lab"),
            kind: Some(token("lab")),
            scope: BTreeMap::from([("analyzer".to_owned(), "chem-2".to_owned())]),
            occurred_at: Timestamp(at),
            reason: "chemistry analyzer down".into(),
            actor: "lab-desk".into(),
        }
    }

    /// `event` as ingest records it, 5 ms after it happened.
    fn recorded(event: DisruptionEvent) -> RecordedDisruption {
        RecordedDisruption {
            recorded_at: Timestamp(event.occurred_at.0 + 5),
            event,
            sent_by: String::new(),
        }
    }

    fn ended(at: i64) -> DisruptionEvent {
        DisruptionEvent {
            phase: Phase::Ended,
            reason: String::new(),
            ..started(at)
        }
    }

    fn applied(change: Result<Change, DisruptionError>) -> Disruption {
        match change {
            Ok(Change::Applied(d)) => d,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn a_disruption_is_announced_when_ingest_recorded_its_start() {
        let mut late = recorded(started(100));
        late.recorded_at = Timestamp(9_000);
        let open = applied(Disruption::apply(None, &late));
        assert_eq!(
            (open.started_at, open.announced_at),
            (Timestamp(100), Some(Timestamp(9_000)))
        );
        let mut end = recorded(ended(500));
        end.recorded_at = Timestamp(20_000);
        let closed = applied(Disruption::apply(Some(&open), &end));
        assert_eq!(
            closed.announced_at,
            Some(Timestamp(9_000)),
            "the end does not re-announce"
        );
    }

    #[test]
    fn covers_requests_inside_its_span_and_scope() {
        let open = applied(Disruption::apply(None, &recorded(started(100))));
        let scoped = BTreeMap::from([("analyzer".to_owned(), "chem-2".to_owned())]);
        let (lab, kind) = (token("lab"), token("lab"));
        assert!(open.covers(&lab, &kind, &scoped, Timestamp(100)));
        assert!(open.covers(&lab, &kind, &scoped, Timestamp(10_000)));
        assert!(!open.covers(&lab, &kind, &scoped, Timestamp(99)));
        assert!(!open.covers(&lab, &kind, &BTreeMap::new(), Timestamp(200)));
        assert!(!open.covers(&token("pharmacy"), &kind, &scoped, Timestamp(200)));
        let closed = applied(Disruption::apply(Some(&open), &recorded(ended(500))));
        assert!(closed.covers(&lab, &kind, &scoped, Timestamp(499)));
        assert!(!closed.covers(&lab, &kind, &scoped, Timestamp(500)));
        assert!(closed.is_active(Timestamp(499)) && !closed.is_active(Timestamp(500)));
    }

    #[test]
    fn starts_once_ends_once_and_tolerates_retries() {
        let open = applied(Disruption::apply(None, &recorded(started(100))));
        assert_eq!(
            Disruption::apply(Some(&open), &recorded(started(100))),
            Ok(Change::Duplicate)
        );
        assert_eq!(
            Disruption::apply(Some(&open), &recorded(started(101))),
            Err(DisruptionError::AlreadyStarted(token("analyzer-1")))
        );
        assert_eq!(
            Disruption::apply(None, &recorded(ended(200))),
            Err(DisruptionError::NotStarted(token("analyzer-1")))
        );
        assert_eq!(
            Disruption::apply(Some(&open), &recorded(ended(99))),
            Err(DisruptionError::EndsBeforeStart)
        );
        let closed = applied(Disruption::apply(Some(&open), &recorded(ended(200))));
        assert_eq!(
            Disruption::apply(Some(&closed), &recorded(ended(200))),
            Ok(Change::Duplicate)
        );
        assert_eq!(
            Disruption::apply(Some(&closed), &recorded(ended(300))),
            Err(DisruptionError::AlreadyEnded(token("analyzer-1")))
        );
        let mut elsewhere = ended(300);
        elsewhere.supplier = token("pharmacy");
        assert!(matches!(
            Disruption::apply(Some(&open), &recorded(elsewhere)),
            Err(DisruptionError::WrongSupplier { .. })
        ));
    }

    #[test]
    fn names_the_bad_field() {
        let limits = Limits::default();
        let now = Timestamp(1_000);
        let mut e = started(100);
        e.reason = String::new();
        assert_eq!(
            e.validate(&limits, now).map_err(|e| e.field),
            Err("reason".into())
        );
        let mut e = started(100);
        e.scope.insert("a.b".into(), "x".into());
        assert_eq!(
            e.validate(&limits, now).map_err(|e| e.field),
            Err("scope".into())
        );
        let e = started(10_000_000);
        assert_eq!(
            e.validate(&limits, now).map_err(|e| e.field),
            Err("occurred_at".into())
        );
        assert_eq!(started(100).validate(&limits, now), Ok(()));
    }
}
