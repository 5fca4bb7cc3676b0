//! Whether an event may be appended to its hand-off, and as what.
//!
//! Ingest reads a hand-off's [`History`] (from its cache or the stream),
//! asks [`decide`] what to do with an event against it, and does what the
//! [`Decision`] says: append the record on condition that the hand-off's
//! last event is still the one the decision saw, or answer a resend from
//! the history. A refusal comes back as a typed [`DecideError`]; what the
//! client hears for it is ingest's business.
//!
//! The checks that need no history run once, before anything is read, in
//! [`CheckedEvent::check`]; [`decide`] runs on every attempt, against the
//! history as it stands then.
//!
//! Nothing here may do I/O or read a clock: the history and the receiver's
//! time (`now`) come in as values, so the same inputs always give the same
//! decision, live, on a retry, or in a test.

use std::collections::HashMap;

use crate::{
    access::{Action, Caller, Denied, Role},
    catalog::Catalog,
    event::{Envelope, Event, EventType, Limits, Priority, RecordedEvent, ValidationError},
    lifecycle::{Handoff, LifecycleError},
    time::Timestamp,
};

/// Why an event is not appended. Each names what the client got wrong (or
/// may not do); none is a failure of the service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// A field is malformed, missing, out of bounds, unknown to the catalog,
    /// or looks like patient data.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The caller may not send this event (or history) for this hand-off.
    #[error("{0}")]
    Denied(#[from] Denied),
    /// The hand-off's lifecycle or bounds do not allow this event now.
    #[error("{0}")]
    Lifecycle(#[from] LifecycleError),
    /// The client said which version it expected the hand-off to be at, and
    /// it is not.
    #[error("expected_version {expected} does not match the hand-off's version {actual}")]
    VersionMismatch { expected: u64, actual: u64 },
    /// The event id is in the hand-off's history for a different event:
    /// not a resend, and not to be stored under an id already taken.
    #[error("event_id {event_id} was already used for a different event on this hand-off (version {version})")]
    IdReused { event_id: String, version: u64 },
}

/// One event of a hand-off's history: what a resend of it is judged by and
/// answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvent {
    /// The hand-off's version once this event was applied.
    pub version: u64,
    /// Where the log stored it.
    pub sequence: u64,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
}

/// A hand-off as the log holds it: its state, where its last event is in
/// the log, and its events by id (to tell a resend from a new event for as
/// long as the log keeps the hand-off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    handoff: Handoff,
    last_sequence: u64,
    events: HashMap<String, StoredEvent>,
}

impl History {
    /// Rebuilds a hand-off's history from its recorded events, oldest first,
    /// each with the sequence the log stored it at. `None` for no events; an
    /// error if the events do not make a hand-off (the log holds something
    /// ingest would never have appended).
    pub fn replay(
        records: impl IntoIterator<Item = (u64, RecordedEvent)>,
    ) -> Result<Option<History>, LifecycleError> {
        let mut history: Option<History> = None;
        for (sequence, record) in records {
            history = Some(match history {
                None => History::extended(
                    Handoff::open(&record.event)?,
                    HashMap::new(),
                    sequence,
                    record,
                ),
                Some(mut history) => {
                    history.handoff.apply(&record.event)?;
                    History::extended(history.handoff, history.events, sequence, record)
                }
            });
        }
        Ok(history)
    }

    /// `handoff` (which already counts `record`) with `record` added to
    /// `events`, stored at `sequence`.
    fn extended(
        handoff: Handoff,
        mut events: HashMap<String, StoredEvent>,
        sequence: u64,
        record: RecordedEvent,
    ) -> History {
        let stored = StoredEvent {
            version: record.envelope.version,
            sequence,
            event_type: record.event.event_type,
            occurred_at: record.event.occurred_at,
        };
        events.insert(record.event.event_id, stored);
        History {
            handoff,
            last_sequence: sequence,
            events,
        }
    }

    /// The hand-off's state after its last event.
    pub fn handoff(&self) -> &Handoff {
        &self.handoff
    }

    /// Where the hand-off's last event is in the log: the next append is
    /// conditional on it.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The stored event with this id, if any.
    pub fn find(&self, event_id: &str) -> Option<&StoredEvent> {
        self.events.get(event_id)
    }

    /// The ids of every event in the history.
    pub fn event_ids(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }
}

/// An event that passed every check that needs no history: its fields and
/// bounds, the catalog, the patient-data screen, and whether its caller may
/// load history. It carries who sent it, and whether it is history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEvent {
    event: Event,
    /// The authenticated caller's id; empty without authentication.
    sent_by: String,
    /// To be loaded as history.
    backfill: bool,
}

impl CheckedEvent {
    /// Checks `event` from `caller` (`None`: ingest runs without
    /// authentication) as of `now`, the receiver's clock (for the
    /// future-skew bound); `backfill` is whether the request asks for it to
    /// be loaded as history. History is an importer's to load, and an
    /// importer's events are always history.
    pub fn check(
        event: Event,
        backfill: bool,
        caller: Option<&Caller>,
        catalog: &Catalog,
        limits: &Limits,
        now: Timestamp,
    ) -> Result<CheckedEvent, DecideError> {
        let backfill = match caller {
            Some(caller) if caller.role == Role::Importer => true,
            Some(caller) if backfill => caller.may_backfill().map(|()| true)?,
            _ => backfill,
        };
        event.validate(limits, now)?;
        check_catalog(&event, catalog)?;
        event.check_patient_data(catalog.attributes.as_ref())?;
        Ok(CheckedEvent {
            event,
            sent_by: caller.map(|c| c.id.clone()).unwrap_or_default(),
            backfill,
        })
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Whether it is to be loaded as history.
    pub fn backfill(&self) -> bool {
        self.backfill
    }

    /// Who sent it: the authenticated caller's id, empty without
    /// authentication.
    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

/// The kind and both departments, where given, must be in the catalog.
fn check_catalog(event: &Event, catalog: &Catalog) -> Result<(), ValidationError> {
    if let Some(kind) = event.kind.as_ref().filter(|k| !catalog.has_kind(k)) {
        return Err(ValidationError::new(
            "kind",
            format!("{kind} is not a kind in the catalog"),
        ));
    }
    for (field, department) in [("supplier", &event.supplier), ("customer", &event.customer)] {
        if let Some(department) = department.as_ref().filter(|d| !catalog.has_department(d)) {
            return Err(ValidationError::new(
                field,
                format!("{department} is not a department in the catalog"),
            ));
        }
    }
    Ok(())
}

/// What to do with an event that is not refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new event: append it (boxed: it carries a whole event and hand-off).
    Append(Box<Append>),
    /// A resend of an event already in the history (same id, same type and
    /// time): nothing to append; the client is answered with where the
    /// first one went.
    AlreadyStored { version: u64, sequence: u64 },
}

/// An event to append, and on what condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    /// The event as it is to be recorded: routing fields the client left
    /// out filled from the hand-off, in the envelope ingest records it in.
    pub record: RecordedEvent,
    /// The hand-off once the record is applied.
    pub handoff: Handoff,
    /// Where the hand-off's last event was in the log when this was
    /// decided (0: it had none). Append only if it still ends there:
    /// otherwise another writer got in first and the event must be judged
    /// again.
    pub after_sequence: u64,
}

impl Append {
    /// The hand-off's history once the record is stored at `sequence`;
    /// `before` is the history this was decided against.
    pub fn into_history(self, before: Option<History>, sequence: u64) -> History {
        let events = before.map(|h| h.events).unwrap_or_default();
        History::extended(self.handoff, events, sequence, self.record)
    }
}

/// Decides what to do with `event` against its hand-off's `history`
/// (`None`: the hand-off has no events) for `caller` (`None`: ingest runs
/// without authentication), as of `now` (the record's `recorded_at`). The
/// record to append is made here, and only here.
/// `expected_version`, when the client gives one, is the version it
/// believes the hand-off is at.
///
/// In order: the caller must be allowed the event on this hand-off; an
/// event id already in the history is a resend (or a reuse); the version
/// must be the expected one; the lifecycle must allow the event.
pub fn decide(
    history: Option<&History>,
    checked: &CheckedEvent,
    caller: Option<&Caller>,
    expected_version: Option<u64>,
    now: Timestamp,
) -> Result<Decision, DecideError> {
    let CheckedEvent {
        event,
        sent_by,
        backfill,
    } = checked;
    if let Some(caller) = caller {
        check_caller(history, event, caller)?;
    }
    if let Some(stored) = history.and_then(|h| h.find(&event.event_id)) {
        return resend(stored, event);
    }
    let version = history.map_or(0, |h| h.handoff.version);
    if let Some(expected) = expected_version.filter(|expected| *expected != version) {
        return Err(DecideError::VersionMismatch {
            expected,
            actual: version,
        });
    }
    // The routing fields the client left out are filled from the hand-off.
    let mut filled = event.clone();
    let handoff = match history {
        None => Handoff::open(&filled)?,
        Some(history) => {
            let mut handoff = history.handoff.clone();
            handoff.complete(&mut filled)?;
            handoff.apply(&filled)?;
            handoff
        }
    };
    let envelope = Envelope {
        version: handoff.version,
        recorded_at: now,
        sent_by: sent_by.clone(),
        backfill: *backfill,
    };
    Ok(Decision::Append(Box::new(Append {
        record: RecordedEvent {
            event: filled,
            envelope,
        },
        handoff,
        after_sequence: history.map_or(0, |h| h.last_sequence),
    })))
}

/// Whether `caller` may send `event`, judged against the hand-off as it
/// stands (its current supplier and priority), or, for a hand-off with no
/// events, against the parties the event names. An event naming no parties
/// for a hand-off with no events is left to the lifecycle to refuse.
fn check_caller(history: Option<&History>, event: &Event, caller: &Caller) -> Result<(), Denied> {
    let (parties, priority) = match history {
        Some(h) => (
            Some((&h.handoff.supplier, &h.handoff.customer)),
            h.handoff.priority,
        ),
        None => (
            event.supplier.as_ref().zip(event.customer.as_ref()),
            event.priority.unwrap_or(Priority::Routine),
        ),
    };
    match parties {
        Some((supplier, customer)) => {
            let action = Action::of(event.event_type, priority, event.priority);
            caller.may(action, supplier, customer)
        }
        None => Ok(()),
    }
}

/// An event whose id is already `stored`: the same event again if its type
/// and time match, else a second event under a taken id.
fn resend(stored: &StoredEvent, event: &Event) -> Result<Decision, DecideError> {
    if stored.event_type == event.event_type && stored.occurred_at == event.occurred_at {
        return Ok(Decision::AlreadyStored {
            version: stored.version,
            sequence: stored.sequence,
        });
    }
    Err(DecideError::IdReused {
        event_id: event.event_id.clone(),
        version: stored.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        event::tests::{later, recorded, requested, token},
        event::Rating,
        lifecycle::MAX_ATTRIBUTE_BYTES_PER_HANDOFF,
        HandoffStatus,
    };
    use proptest::prelude::*;

    /// The receiver's clock in every test: events are dated well before it.
    const NOW: Timestamp = Timestamp(1_000_000_000_000);

    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "lab", "name": "Laboratory"},
    {"id": "porters", "name": "Porters"},
    {"id": "ward-5", "name": "Ward 5"},
    {"id": "ward-6", "name": "Ward 6"}
  ],
  "kinds": ["repair"],
  "promises": [
    {"id": "repair-response", "kind": "repair",
     "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m"}}
  ]
}"#,
        )
        .expect("a valid catalog")
    }

    fn department(id: &str, departments: &[&str]) -> Caller {
        Caller {
            id: id.into(),
            role: Role::Department,
            departments: departments.iter().map(|d| token(d)).collect(),
        }
    }

    fn with_role(id: &str, role: Role) -> Caller {
        Caller {
            id: id.into(),
            role,
            departments: Default::default(),
        }
    }

    fn check(event: Event, caller: Option<&Caller>) -> Result<CheckedEvent, DecideError> {
        check_as(event, false, caller)
    }

    /// `event` checked for `caller`, asked to be loaded as history or not.
    fn check_as(
        event: Event,
        backfill: bool,
        caller: Option<&Caller>,
    ) -> Result<CheckedEvent, DecideError> {
        CheckedEvent::check(event, backfill, caller, &catalog(), &Limits::default(), NOW)
    }

    fn checked(event: Event) -> CheckedEvent {
        check(event, None).expect("passes the checks that need no history")
    }

    /// `event` decided against `history`, with no caller and no expected
    /// version.
    fn decided(history: Option<&History>, event: Event) -> Result<Decision, DecideError> {
        decide(history, &checked(event), None, None, NOW)
    }

    fn as_append(decision: Result<Decision, DecideError>) -> Append {
        match decision {
            Ok(Decision::Append(append)) => *append,
            other => panic!("expected an append, got {other:?}"),
        }
    }

    /// `history` after `event` is decided and stored at `sequence`.
    fn stored(history: Option<History>, event: Event, sequence: u64) -> History {
        as_append(decided(history.as_ref(), event)).into_history(history, sequence)
    }

    /// Hand-off h1, requested by ward-5 of engineering, stored at 10.
    fn opened() -> History {
        stored(None, requested("h1", 0), 10)
    }

    #[test]
    fn a_request_for_a_new_hand_off_is_appended_as_its_first_version() {
        let append = as_append(decided(None, requested("h1", 5)));
        assert_eq!(append.record.envelope.version, 1);
        assert_eq!(append.record.envelope.recorded_at, NOW);
        assert_eq!(append.after_sequence, 0, "on condition it has no event yet");
        assert_eq!(append.handoff.status, HandoffStatus::Requested);
        assert_eq!(append.handoff.version, 1);
    }

    #[test]
    fn a_later_event_is_filled_from_the_hand_off_and_appended_after_its_last_event() {
        let append = as_append(decided(
            Some(&opened()),
            later("h1", EventType::Acknowledged, 5),
        ));
        let (record, envelope) = (&append.record.event, &append.record.envelope);
        assert_eq!(record.kind, Some(token("repair")));
        assert_eq!(record.supplier, Some(token("engineering")));
        assert_eq!(record.customer, Some(token("ward-5")));
        assert_eq!(record.priority, Some(Priority::Routine));
        assert_eq!((envelope.version, envelope.recorded_at), (2, NOW));
        assert_eq!(append.after_sequence, 10);
        assert_eq!(append.handoff.status, HandoffStatus::Acknowledged);
    }

    #[test]
    fn a_late_entry_is_appended_as_dated() {
        // How late an event is entered bounds how far back a promise's
        // clock reads it, but is no reason to refuse it.
        let day_before = Timestamp(NOW.0 - 86_400_000);
        let history = stored(None, requested("h1", day_before.0), 10);
        let mut ack = later("h1", EventType::Acknowledged, day_before.0 + 1);
        ack.event_id = "h1-ack".into();
        let append = as_append(decided(Some(&history), ack));
        assert_eq!(append.record.event.occurred_at, Timestamp(day_before.0 + 1));
        assert_eq!(append.record.envelope.recorded_at, NOW);
    }

    #[test]
    fn a_resend_is_answered_with_where_the_first_one_went() {
        let history = stored(Some(opened()), later("h1", EventType::Acknowledged, 5), 20);
        let history = stored(Some(history), later("h1", EventType::Started, 6), 30);
        assert_eq!(
            decided(Some(&history), requested("h1", 0)),
            Ok(Decision::AlreadyStored {
                version: 1,
                sequence: 10
            })
        );
        assert_eq!(
            decided(Some(&history), later("h1", EventType::Acknowledged, 5)),
            Ok(Decision::AlreadyStored {
                version: 2,
                sequence: 20
            })
        );
    }

    #[test]
    fn a_resend_is_answered_whatever_version_the_client_expected() {
        let event = checked(requested("h1", 0));
        assert_eq!(
            decide(Some(&opened()), &event, None, Some(7), NOW),
            Ok(Decision::AlreadyStored {
                version: 1,
                sequence: 10
            })
        );
    }

    #[test]
    fn an_event_id_taken_by_a_different_event_is_refused_as_reused() {
        let history = opened();
        let mut moved = requested("h1", 0);
        moved.occurred_at = Timestamp(1);
        let mut retyped = later("h1", EventType::Cancelled, 0);
        retyped.event_id = "h1-req".into();
        for event in [moved, retyped] {
            assert_eq!(
                decided(Some(&history), event),
                Err(DecideError::IdReused {
                    event_id: "h1-req".into(),
                    version: 1
                })
            );
        }
    }

    #[test]
    fn an_expected_version_other_than_the_hand_offs_is_a_conflict() {
        let ack = checked(later("h1", EventType::Acknowledged, 5));
        let history = opened();
        assert_eq!(
            decide(Some(&history), &ack, None, Some(2), NOW),
            Err(DecideError::VersionMismatch {
                expected: 2,
                actual: 1
            })
        );
        assert!(matches!(
            decide(Some(&history), &ack, None, Some(1), NOW),
            Ok(Decision::Append(_))
        ));
        let request = checked(requested("h2", 0));
        assert_eq!(
            decide(None, &request, None, Some(3), NOW),
            Err(DecideError::VersionMismatch {
                expected: 3,
                actual: 0
            })
        );
        assert!(matches!(
            decide(None, &request, None, Some(0), NOW),
            Ok(Decision::Append(_))
        ));
    }

    #[test]
    fn a_caller_is_judged_against_the_hand_off_as_it_stands() {
        let lab = department("lab-system", &["lab"]);
        let ack = checked(later("h1", EventType::Acknowledged, 5));
        let denied = decide(Some(&opened()), &ack, Some(&lab), None, NOW);
        assert!(
            matches!(
                &denied,
                Err(DecideError::Denied(Denied::NotItsDepartment { department, .. }))
                    if *department == token("engineering")
            ),
            "{denied:?}"
        );
        // Once reassigned to the lab, the lab is its supplier.
        let mut reassign = later("h1", EventType::Reassigned, 4);
        reassign.supplier = Some(token("lab"));
        let history = stored(Some(opened()), reassign, 20);
        assert!(matches!(
            decide(Some(&history), &ack, Some(&lab), None, NOW),
            Ok(Decision::Append(_))
        ));
    }

    #[test]
    fn a_new_hand_off_is_judged_by_the_parties_its_request_names() {
        let ward_5 = department("ward-5-system", &["ward-5"]);
        let ward_6 = department("ward-6-system", &["ward-6"]);
        let request = checked(requested("h1", 0));
        assert!(matches!(
            decide(None, &request, Some(&ward_5), None, NOW),
            Ok(Decision::Append(_))
        ));
        let denied = decide(None, &request, Some(&ward_6), None, NOW);
        assert!(
            matches!(
                &denied,
                Err(DecideError::Denied(Denied::NotItsDepartment {
                    side: "customer",
                    ..
                }))
            ),
            "{denied:?}"
        );
    }

    #[test]
    fn an_event_for_an_unknown_hand_off_naming_no_parties_is_left_to_the_lifecycle() {
        let ward_6 = department("ward-6-system", &["ward-6"]);
        let ack = checked(later("h9", EventType::Acknowledged, 5));
        assert_eq!(
            decide(None, &ack, Some(&ward_6), None, NOW),
            Err(DecideError::Lifecycle(LifecycleError::UnknownHandoff(
                token("h9")
            )))
        );
    }

    #[test]
    fn an_operator_only_changes_priorities_and_a_supplier_never_lowers_one() {
        let operator = with_role("duty-desk", Role::Operator);
        let engineering = department("engineering-desk", &["engineering"]);
        let history = opened();
        let ack = checked(later("h1", EventType::Acknowledged, 5));
        assert!(matches!(
            decide(Some(&history), &ack, Some(&operator), None, NOW),
            Err(DecideError::Denied(Denied::ReadOnly { .. }))
        ));
        let mut raise = later("h1", EventType::Reprioritized, 5);
        raise.priority = Some(Priority::Stat);
        let raise = checked(raise);
        assert!(matches!(
            decide(Some(&history), &raise, Some(&operator), None, NOW),
            Ok(Decision::Append(_))
        ));
        let history = as_append(decide(
            Some(&history),
            &raise,
            Some(&engineering),
            None,
            NOW,
        ))
        .into_history(Some(history), 20);
        let mut lower = later("h1", EventType::Reprioritized, 6);
        lower.priority = Some(Priority::Routine);
        let lower = checked(lower);
        assert!(matches!(
            decide(Some(&history), &lower, Some(&engineering), None, NOW),
            Err(DecideError::Denied(Denied::LowerOwnPriority { .. }))
        ));
        assert!(matches!(
            decide(Some(&history), &lower, Some(&operator), None, NOW),
            Ok(Decision::Append(_))
        ));
    }

    #[test]
    fn a_caller_not_allowed_the_event_is_refused_before_a_resend_is_answered() {
        // Otherwise anyone could learn which event ids a hand-off holds.
        let lab = department("lab-system", &["lab"]);
        let resend = checked(requested("h1", 0));
        assert!(matches!(
            decide(Some(&opened()), &resend, Some(&lab), None, NOW),
            Err(DecideError::Denied(_))
        ));
    }

    #[test]
    fn history_is_an_importers_to_load_and_every_event_names_its_sender() {
        let ward = department("ward-5-system", &["ward-5"]);
        let importer = with_role("history-import", Role::Importer);
        assert_eq!(
            check_as(requested("h1", 0), true, Some(&ward)),
            Err(DecideError::Denied(Denied::NotAnImporter {
                caller: "ward-5-system".into()
            }))
        );
        let by_ward = check(requested("h1", 0), Some(&ward)).expect("checked");
        assert_eq!(
            (by_ward.sent_by(), by_ward.backfill()),
            ("ward-5-system", false)
        );
        // An importer's events are history whether or not it says so.
        let by_importer = check(requested("h1", 0), Some(&importer)).expect("checked");
        assert_eq!(
            (by_importer.sent_by(), by_importer.backfill()),
            ("history-import", true)
        );
        // Who sent it is never the event's to say: without authentication
        // nobody is named.
        assert_eq!(checked(requested("h1", 0)).sent_by(), "");
        let record = as_append(decide(None, &by_importer, None, None, NOW)).record;
        assert_eq!(
            (record.envelope.sent_by.as_str(), record.envelope.backfill),
            ("history-import", true),
            "the record carries who sent it and whether it is history"
        );
    }

    #[test]
    fn what_needs_no_history_is_refused_naming_the_field() {
        let field = |event: Event| match check(event, None) {
            Err(DecideError::Invalid(e)) => e.field,
            other => panic!("expected a field refused, got {other:?}"),
        };
        assert_eq!(field(requested("h1", NOW.0 + 3_600_000)), "occurred_at");
        let mut e = requested("h1", 0);
        e.kind = Some(token("plumbing"));
        assert_eq!(field(e), "kind");
        let mut e = requested("h1", 0);
        e.supplier = Some(token("kitchen"));
        assert_eq!(field(e), "supplier");
        let mut e = later("h1", EventType::Acknowledged, 0);
        e.customer = Some(token("ward-9"));
        assert_eq!(field(e), "customer");
        let mut e = requested("h1", 0);
        e.actor = "bsn 123456782".into();
        assert_eq!(field(e), "actor");
    }

    #[test]
    fn the_lifecycle_refuses_what_may_not_follow() {
        let closed = stored(Some(opened()), later("h1", EventType::Cancelled, 5), 20);
        assert!(matches!(
            decided(Some(&closed), later("h1", EventType::Acknowledged, 6)),
            Err(DecideError::Lifecycle(LifecycleError::Closed { .. }))
        ));
        assert!(matches!(
            decided(Some(&opened()), later("h1", EventType::Resumed, 6)),
            Err(DecideError::Lifecycle(LifecycleError::NotAllowed { .. }))
        ));
        let mut again = requested("h1", 6);
        again.event_id = "h1-second-request".into();
        assert_eq!(
            decided(Some(&opened()), again),
            Err(DecideError::Lifecycle(LifecycleError::AlreadyRequested(
                token("h1")
            )))
        );
        let mut elsewhere = later("h1", EventType::Acknowledged, 6);
        elsewhere.customer = Some(token("ward-6"));
        assert!(matches!(
            decided(Some(&opened()), elsewhere),
            Err(DecideError::Lifecycle(LifecycleError::Mismatch {
                field: "customer",
                ..
            }))
        ));
    }

    #[test]
    fn an_event_dated_before_its_request_is_refused() {
        let history = stored(None, requested("h1", 1_000), 10);
        assert_eq!(
            decided(Some(&history), later("h1", EventType::Acknowledged, 999)),
            Err(DecideError::Lifecycle(LifecycleError::BeforeRequest {
                occurred_at: Timestamp(999),
                requested_at: Timestamp(1_000)
            }))
        );
    }

    #[test]
    fn attribute_bytes_are_bounded_over_the_whole_hand_off() {
        // 32 attributes of 4 + 256 bytes: about 8 KiB an event.
        let heavy = |event_type, at| {
            let mut e = later("h1", event_type, at);
            for k in 0..32 {
                e.attributes.insert(format!("k{k:03}"), "x".repeat(256));
            }
            e
        };
        let mut history = opened();
        let mut refused = None;
        // Far more events than fit, so a bound that is not applied fails
        // the test instead of hanging it.
        for sequence in 11..40 {
            let event_type = if sequence % 2 == 1 {
                EventType::OnHold
            } else {
                EventType::Resumed
            };
            match decided(Some(&history), heavy(event_type, sequence as i64)) {
                Ok(Decision::Append(append)) => {
                    history = append.into_history(Some(history), sequence);
                }
                other => {
                    refused = Some(other);
                    break;
                }
            }
        }
        assert!(
            matches!(
                refused,
                Some(Err(DecideError::Lifecycle(LifecycleError::TooManyAttributes { bytes, .. })))
                    if bytes > MAX_ATTRIBUTE_BYTES_PER_HANDOFF
            ),
            "{refused:?}"
        );
        assert_eq!(history.handoff().version, 8, "seven heavy events fit");
    }

    #[test]
    fn a_stream_that_does_not_make_a_hand_off_does_not_replay() {
        assert_eq!(History::replay(Vec::new()), Ok(None));
        let ack = recorded(later("h1", EventType::Acknowledged, 5), 1, 5);
        assert_eq!(
            History::replay(vec![(3, ack)]),
            Err(LifecycleError::UnknownHandoff(token("h1")))
        );
    }

    /// One event a client might send for `handoff` at step `i`, of any
    /// type: a choice picks its new supplier or priority where it needs one.
    fn any_event(handoff: &str, i: usize, event_type: EventType, choice: usize) -> Event {
        let mut event = later(handoff, event_type, i as i64 + 1);
        event.event_id = format!("{handoff}-{i}");
        match event_type {
            EventType::Requested => {
                event = requested(handoff, i as i64 + 1);
                event.event_id = format!("{handoff}-{i}");
            }
            EventType::Reassigned => {
                let suppliers = ["engineering", "lab", "porters", "ward-5"];
                event.supplier = Some(token(suppliers[choice % suppliers.len()]));
            }
            EventType::Reprioritized => {
                event.priority = Some(Priority::ALL[choice % Priority::ALL.len()]);
            }
            EventType::Rated => {
                event.rating = Some(Rating {
                    score: 3,
                    comment: String::new(),
                });
            }
            _ => {}
        }
        event
    }

    fn any_step() -> impl Strategy<Value = (EventType, usize)> {
        (proptest::sample::select(EventType::ALL.to_vec()), 0..4usize)
    }

    /// The events of a hand-off: its request, then whatever the steps are.
    fn events(handoff: &str, steps: &[(EventType, usize)]) -> Vec<Event> {
        let first = std::iter::once(requested(handoff, 0));
        let rest = steps
            .iter()
            .enumerate()
            .map(|(i, (t, choice))| any_event(handoff, i, *t, *choice));
        first.chain(rest).collect()
    }

    /// Decides each event against the history so far, storing each append
    /// at the next of `sequences`; returns every decision and the history.
    fn run(
        events: &[Event],
        sequences: &mut impl Iterator<Item = u64>,
    ) -> (Vec<Result<Decision, DecideError>>, Option<History>) {
        let mut history = None;
        let mut decisions = Vec::new();
        for event in events {
            let decision = decided(history.as_ref(), event.clone());
            if let Ok(Decision::Append(append)) = &decision {
                let sequence = sequences.next().expect("a sequence");
                history = Some((**append).clone().into_history(history, sequence));
            }
            decisions.push(decision);
        }
        (decisions, history)
    }

    /// `decisions` with every log sequence in them set to 0.
    fn without_sequences(
        decisions: Vec<Result<Decision, DecideError>>,
    ) -> Vec<Result<Decision, DecideError>> {
        let erase = |decision| match decision {
            Decision::Append(mut append) => {
                append.after_sequence = 0;
                Decision::Append(append)
            }
            Decision::AlreadyStored { version, .. } => Decision::AlreadyStored {
                version,
                sequence: 0,
            },
        };
        decisions.into_iter().map(|d| d.map(erase)).collect()
    }

    proptest! {
        /// Whatever a client sends, an append is decided as the next
        /// version after the history, on condition of its last event, and
        /// recorded now.
        #[test]
        fn a_decided_append_is_the_version_after_the_history(
            steps in proptest::collection::vec(any_step(), 0..30),
        ) {
            let mut history: Option<History> = None;
            for (sequence, event) in (1..).zip(events("h1", &steps)) {
                if let Ok(Decision::Append(append)) = decided(history.as_ref(), event) {
                    let length = history.as_ref().map_or(0, |h| h.handoff().version);
                    prop_assert_eq!(append.record.envelope.version, length + 1);
                    prop_assert_eq!(append.handoff.version, length + 1);
                    prop_assert_eq!(
                        append.after_sequence,
                        history.as_ref().map_or(0, History::last_sequence)
                    );
                    prop_assert_eq!(append.record.envelope.recorded_at, NOW);
                    history = Some(append.into_history(history, sequence));
                }
            }
        }

        /// Sending any stored event again, however many came after it, is
        /// answered with where it was stored, and stores nothing.
        #[test]
        fn an_event_decided_again_against_the_history_holding_it_is_already_stored(
            steps in proptest::collection::vec(any_step(), 0..30),
        ) {
            let events = events("h1", &steps);
            let (decisions, history) = run(&events, &mut (100..).step_by(3));
            let history = history.expect("the request is always appended");
            for (event, decision) in events.into_iter().zip(decisions) {
                let Ok(Decision::Append(first)) = decision else { continue };
                let stored = history.find(&event.event_id).expect("stored");
                prop_assert_eq!(stored.version, first.record.envelope.version);
                prop_assert_eq!(
                    decided(Some(&history), event),
                    Ok(Decision::AlreadyStored { version: stored.version, sequence: stored.sequence })
                );
            }
        }

        /// The history ingest builds append by append (its cache) is the
        /// one it rebuilds from the stream, so a decision does not depend
        /// on which it had.
        #[test]
        fn a_history_built_by_appending_is_the_history_replayed(
            steps in proptest::collection::vec(any_step(), 0..30),
            next in any_step(),
        ) {
            let events = events("h1", &steps);
            let (decisions, built) = run(&events, &mut (1..));
            let records: Vec<(u64, RecordedEvent)> = (1..)
                .zip(decisions.into_iter().filter_map(|d| match d {
                    Ok(Decision::Append(append)) => Some(append.record),
                    _ => None,
                }))
                .collect();
            let replayed = History::replay(records).expect("replays");
            prop_assert_eq!(&replayed, &built);
            let next = any_event("h1", steps.len(), next.0, next.1);
            prop_assert_eq!(
                decided(replayed.as_ref(), next.clone()),
                decided(built.as_ref(), next)
            );
        }

        /// Two hand-offs' events, interleaved in any order, are decided
        /// as each hand-off's alone: what AppendBatch relies on to append
        /// different hand-offs at once.
        #[test]
        fn hand_offs_are_decided_apart_whatever_the_interleaving(
            first in proptest::collection::vec(any_step(), 0..15),
            second in proptest::collection::vec(any_step(), 0..15),
            order in proptest::collection::vec(any::<bool>(), 0..32),
        ) {
            let (a, b) = (events("h1", &first), events("h2", &second));
            let alone = |events: &[Event]| run(events, &mut (1..)).0;
            let (alone_a, alone_b) = (alone(&a), alone(&b));
            // Decide them interleaved, each against its own history.
            let (mut histories, mut taken) = ([None, None], [0, 0]);
            let mut together: [Vec<Result<Decision, DecideError>>; 2] = Default::default();
            let picks = order.into_iter().chain(std::iter::repeat_n(false, a.len()))
                .chain(std::iter::repeat_n(true, b.len()));
            let mut sequence = 0;
            for pick_b in picks {
                let (side, events) = if pick_b { (1, &b) } else { (0, &a) };
                let Some(event) = events.get(taken[side]) else { continue };
                taken[side] += 1;
                let decision = decided(histories[side].as_ref(), event.clone());
                if let Ok(Decision::Append(append)) = &decision {
                    sequence += 1;
                    histories[side] = Some((**append).clone().into_history(histories[side].take(), sequence));
                }
                together[side].push(decision);
            }
            // The sequences differ (the log is shared); nothing else may.
            let [together_a, together_b] = together;
            prop_assert_eq!(without_sequences(together_a), without_sequences(alone_a));
            prop_assert_eq!(without_sequences(together_b), without_sequences(alone_b));
        }
    }
}
