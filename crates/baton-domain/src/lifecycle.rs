//! The hand-off lifecycle: which event may follow which.
//!
//! | status \ event | requested | acknowledged | started | on_hold | resumed | completed, rejected, cancelled | reassigned | reprioritized |
//! |---|---|---|---|---|---|---|---|---|
//! | (none)       | REQUESTED | -            | -           | -       | -                 | -         | -         | - |
//! | REQUESTED    | -         | ACKNOWLEDGED | IN_PROGRESS | ON_HOLD | -                 | that end  | REQUESTED | same |
//! | ACKNOWLEDGED | -         | -            | IN_PROGRESS | ON_HOLD | -                 | that end  | REQUESTED | same |
//! | IN_PROGRESS  | -         | -            | -           | ON_HOLD | -                 | that end  | REQUESTED | same |
//! | ON_HOLD      | -         | -            | -           | -       | status before hold | that end | -         | same |
//! | COMPLETED, REJECTED, CANCELLED | - | - | - | - | - | - | - | - |
//!
//! Two events may follow a COMPLETED hand-off, and its status stays
//! COMPLETED: RATED, the customer's rating, once; and AMENDED, the supplier
//! correcting what it delivered (a corrected lab result), as often as that
//! happens. Neither moves a clock: the delivery was when it was.
//!
//! "-" is refused. A reassigned hand-off goes back to REQUESTED: the new
//! supplier must acknowledge it. An on-hold hand-off must resume before it is
//! reassigned, so a hold always ends with the supplier that took it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{
    event::{Event, EventType, Priority},
    id::Token,
    time::Timestamp,
};

/// Most events one hand-off may have. Far beyond any real hand-off; it bounds
/// the work and memory one misbehaving client can cause.
pub const MAX_EVENTS_PER_HANDOFF: u64 = 1_000;

/// Most attribute bytes (keys and values) one hand-off may carry over all
/// its events: a request's test code or asset id takes a few dozen. With
/// the 1,000 events' own fields it keeps a whole hand-off (`GetHandoff`)
/// well under a gRPC client's default 4 MiB message.
pub const MAX_ATTRIBUTE_BYTES_PER_HANDOFF: u64 = 64 * 1024;

/// Attribute bytes an event carries (keys and values).
pub fn attribute_bytes(event: &Event) -> u64 {
    event
        .attributes
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HandoffStatus {
    Requested,
    Acknowledged,
    InProgress,
    OnHold,
    Completed,
    Rejected,
    Cancelled,
}

impl HandoffStatus {
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            HandoffStatus::Completed | HandoffStatus::Rejected | HandoffStatus::Cancelled
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            HandoffStatus::Requested => "requested",
            HandoffStatus::Acknowledged => "acknowledged",
            HandoffStatus::InProgress => "in_progress",
            HandoffStatus::OnHold => "on_hold",
            HandoffStatus::Completed => "completed",
            HandoffStatus::Rejected => "rejected",
            HandoffStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for HandoffStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an event cannot be applied to a hand-off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("hand-off {0} does not exist: its first event must be requested")]
    UnknownHandoff(Token),
    #[error("hand-off {0} already exists")]
    AlreadyRequested(Token),
    #[error("hand-off {handoff} is {status}: no event may follow")]
    Closed {
        handoff: Token,
        status: HandoffStatus,
    },
    #[error("hand-off {handoff} is {status}: {event} is not allowed")]
    NotAllowed {
        handoff: Token,
        status: HandoffStatus,
        event: EventType,
    },
    #[error("{field}: does not match the hand-off's {field} {expected}")]
    Mismatch {
        field: &'static str,
        expected: String,
    },
    #[error("supplier: the hand-off is already with {0}")]
    SameSupplier(Token),
    #[error("priority: the hand-off is already {0}")]
    SamePriority(Priority),
    #[error("hand-off {0} is already rated: a hand-off is rated once")]
    AlreadyRated(Token),
    #[error(
        "occurred_at: {} is before the hand-off was requested at {}; an event cannot precede its request",
        occurred_at.rfc3339(),
        requested_at.rfc3339()
    )]
    BeforeRequest {
        occurred_at: Timestamp,
        requested_at: Timestamp,
    },
    #[error(
        "attributes: hand-off {handoff} would carry {bytes} bytes of attributes; at most {MAX_ATTRIBUTE_BYTES_PER_HANDOFF} are kept per hand-off"
    )]
    TooManyAttributes { handoff: Token, bytes: u64 },
    #[error("hand-off {handoff} has reached {MAX_EVENTS_PER_HANDOFF} events")]
    TooManyEvents { handoff: Token },
}

/// What the lifecycle knows of one hand-off: enough to judge the next event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    pub handoff_id: Token,
    pub kind: Token,
    /// The current supplier: the last REASSIGNED's, else the request's.
    pub supplier: Token,
    pub customer: Token,
    pub priority: Priority,
    pub status: HandoffStatus,
    /// Events so far.
    pub version: u64,
    pub requested_at: Timestamp,
    /// The request's attributes (e.g. a test code), for promise matching.
    pub attributes: std::collections::BTreeMap<String, String>,
    /// The customer's rating, once given.
    pub rating: Option<u8>,
    /// The status to return to on RESUMED.
    held_from: Option<HandoffStatus>,
    /// Attribute bytes its events carried so far.
    attribute_bytes: u64,
}

impl Handoff {
    /// Opens a hand-off from its REQUESTED event.
    pub fn open(event: &Event) -> Result<Handoff, LifecycleError> {
        if event.event_type != EventType::Requested {
            return Err(LifecycleError::UnknownHandoff(event.handoff_id.clone()));
        }
        let missing = |field: &'static str| LifecycleError::Mismatch {
            field,
            expected: "(required on requested)".into(),
        };
        Ok(Handoff {
            handoff_id: event.handoff_id.clone(),
            kind: event.kind.clone().ok_or_else(|| missing("kind"))?,
            supplier: event.supplier.clone().ok_or_else(|| missing("supplier"))?,
            customer: event.customer.clone().ok_or_else(|| missing("customer"))?,
            priority: event.priority.ok_or_else(|| missing("priority"))?,
            status: HandoffStatus::Requested,
            version: 1,
            requested_at: event.occurred_at,
            attributes: event.attributes.clone(),
            rating: None,
            held_from: None,
            attribute_bytes: attribute_bytes(event),
        })
    }

    /// Folds a hand-off's recorded events, oldest first, into its state.
    pub fn replay<'a>(
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Option<Handoff>, LifecycleError> {
        let mut state: Option<Handoff> = None;
        for event in events {
            state = Some(match state {
                None => Handoff::open(event)?,
                Some(mut handoff) => {
                    handoff.apply(event)?;
                    handoff
                }
            });
        }
        Ok(state)
    }

    /// Fills the routing fields a later event may leave out, and refuses
    /// ones that contradict the hand-off. Call before [`Handoff::apply`].
    pub fn complete(&self, event: &mut Event) -> Result<(), LifecycleError> {
        if event.occurred_at < self.requested_at {
            return Err(LifecycleError::BeforeRequest {
                occurred_at: event.occurred_at,
                requested_at: self.requested_at,
            });
        }
        fill_or_match(&mut event.kind, &self.kind, "kind")?;
        fill_or_match(&mut event.customer, &self.customer, "customer")?;
        if event.event_type == EventType::Reprioritized {
            if event.priority == Some(self.priority) {
                return Err(LifecycleError::SamePriority(self.priority));
            }
            fill_or_match(&mut event.supplier, &self.supplier, "supplier")?;
            return Ok(());
        }
        match event.priority {
            None => event.priority = Some(self.priority),
            Some(p) if p == self.priority => {}
            Some(_) => {
                return Err(LifecycleError::Mismatch {
                    field: "priority",
                    expected: self.priority.to_string(),
                })
            }
        }
        if event.event_type == EventType::Reassigned {
            if event.supplier.as_ref() == Some(&self.supplier) {
                return Err(LifecycleError::SameSupplier(self.supplier.clone()));
            }
            if event.supplier.as_ref() == Some(&self.customer) {
                return Err(LifecycleError::Mismatch {
                    field: "supplier",
                    expected: "(any department but the customer)".into(),
                });
            }
        } else {
            fill_or_match(&mut event.supplier, &self.supplier, "supplier")?;
        }
        Ok(())
    }

    /// Applies a later event (not REQUESTED) to the hand-off.
    pub fn apply(&mut self, event: &Event) -> Result<(), LifecycleError> {
        self.check(event.event_type)?;
        if self.version >= MAX_EVENTS_PER_HANDOFF {
            return Err(LifecycleError::TooManyEvents {
                handoff: self.handoff_id.clone(),
            });
        }
        let bytes = self.attribute_bytes + attribute_bytes(event);
        if bytes > MAX_ATTRIBUTE_BYTES_PER_HANDOFF {
            return Err(LifecycleError::TooManyAttributes {
                handoff: self.handoff_id.clone(),
                bytes,
            });
        }
        self.attribute_bytes = bytes;
        self.status = match event.event_type {
            EventType::Acknowledged => HandoffStatus::Acknowledged,
            EventType::Started => HandoffStatus::InProgress,
            EventType::OnHold => {
                self.held_from = Some(self.status);
                HandoffStatus::OnHold
            }
            EventType::Resumed => self.held_from.take().unwrap_or(HandoffStatus::InProgress),
            EventType::Completed => HandoffStatus::Completed,
            EventType::Rejected => HandoffStatus::Rejected,
            EventType::Cancelled => HandoffStatus::Cancelled,
            EventType::Reassigned => {
                if let Some(supplier) = &event.supplier {
                    self.supplier = supplier.clone();
                }
                HandoffStatus::Requested
            }
            EventType::Reprioritized => {
                if let Some(priority) = event.priority {
                    self.priority = priority;
                }
                self.status
            }
            EventType::Rated => {
                self.rating = event.rating.as_ref().map(|r| r.score);
                self.status
            }
            EventType::Amended | EventType::EscalationAcknowledged => self.status,
            EventType::Requested => unreachable_requested(),
        };
        self.version += 1;
        Ok(())
    }

    /// Whether `event_type` may follow now (the table in the module docs).
    pub fn check(&self, event_type: EventType) -> Result<(), LifecycleError> {
        use EventType as E;
        use HandoffStatus as S;
        if event_type == E::Rated && self.status == S::Completed {
            return match self.rating {
                Some(_) => Err(LifecycleError::AlreadyRated(self.handoff_id.clone())),
                None => Ok(()),
            };
        }
        if event_type == E::Amended && self.status == S::Completed {
            return Ok(());
        }
        // A promise broken while the work was under way may be escalated
        // and acknowledged after it closed.
        if event_type == E::EscalationAcknowledged {
            return Ok(());
        }
        if self.status.is_closed() {
            return Err(LifecycleError::Closed {
                handoff: self.handoff_id.clone(),
                status: self.status,
            });
        }
        let allowed = match event_type {
            E::Requested => return Err(LifecycleError::AlreadyRequested(self.handoff_id.clone())),
            E::Acknowledged => self.status == S::Requested,
            E::Started => matches!(self.status, S::Requested | S::Acknowledged),
            E::OnHold => self.status != S::OnHold,
            E::Resumed => self.status == S::OnHold,
            E::Completed | E::Rejected | E::Cancelled => true,
            E::Reassigned => self.status != S::OnHold,
            E::Reprioritized => true,
            E::Rated | E::Amended => false,
            E::EscalationAcknowledged => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(LifecycleError::NotAllowed {
                handoff: self.handoff_id.clone(),
                status: self.status,
                event: event_type,
            })
        }
    }
}

// `check` refuses REQUESTED on an existing hand-off before `apply` matches on it.
fn unreachable_requested() -> HandoffStatus {
    debug_assert!(false, "check() refuses requested on an existing hand-off");
    HandoffStatus::Requested
}

fn fill_or_match(
    field: &mut Option<Token>,
    expected: &Token,
    name: &'static str,
) -> Result<(), LifecycleError> {
    match field {
        None => {
            *field = Some(expected.clone());
            Ok(())
        }
        Some(given) if given == expected => Ok(()),
        Some(_) => Err(LifecycleError::Mismatch {
            field: name,
            expected: expected.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::{later, requested, token};
    use proptest::prelude::*;

    fn opened() -> Handoff {
        Handoff::open(&requested("h1", 0)).expect("open")
    }

    fn run(types: &[EventType]) -> Result<Handoff, LifecycleError> {
        let mut handoff = opened();
        for (i, t) in types.iter().enumerate() {
            let mut event = later("h1", *t, i as i64 + 1);
            if *t == EventType::Reassigned {
                event.supplier = Some(token(&format!("supplier-{i}")));
            }
            handoff.complete(&mut event)?;
            handoff.apply(&event)?;
        }
        Ok(handoff)
    }

    #[test]
    fn the_usual_path() {
        use EventType::*;
        let h = run(&[Acknowledged, Started, OnHold, Resumed, Completed]).expect("path");
        assert_eq!(h.status, HandoffStatus::Completed);
        assert_eq!(h.version, 6);
    }

    #[test]
    fn resume_returns_to_the_status_before_the_hold() {
        use EventType::*;
        assert_eq!(
            run(&[Acknowledged, OnHold, Resumed]).map(|h| h.status),
            Ok(HandoffStatus::Acknowledged)
        );
        assert_eq!(
            run(&[OnHold, Resumed]).map(|h| h.status),
            Ok(HandoffStatus::Requested)
        );
    }

    #[test]
    fn only_requested_opens_a_handoff() {
        let err = Handoff::open(&later("h9", EventType::Acknowledged, 1));
        assert_eq!(err, Err(LifecycleError::UnknownHandoff(token("h9"))));
    }

    #[test]
    fn nothing_but_a_rating_or_an_amendment_follows_a_closed_handoff() {
        use EventType::*;
        for end in [Completed, Rejected, Cancelled] {
            for next in EventType::ALL {
                if (end, next) == (Completed, Rated)
                    || (end, next) == (Completed, Amended)
                    || next == EscalationAcknowledged
                {
                    continue; // a_completed_hand_off_is_rated_once, ..._amended_..., ..._acknowledged_...
                }
                let result = run(&[end, next]);
                assert!(
                    matches!(
                        result,
                        Err(LifecycleError::Closed { .. } | LifecycleError::Mismatch { .. })
                    ),
                    "{end} then {next}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn refused_transitions() {
        use EventType::*;
        assert!(matches!(
            run(&[Requested]),
            Err(LifecycleError::AlreadyRequested(_))
        ));
        for path in [
            &[Resumed][..],
            &[Acknowledged, Acknowledged],
            &[Started, Acknowledged],
            &[Started, Started],
            &[OnHold, OnHold],
            &[OnHold, Reassigned],
        ] {
            assert!(
                matches!(run(path), Err(LifecycleError::NotAllowed { .. })),
                "{path:?}"
            );
        }
    }

    #[test]
    fn reassignment_changes_the_supplier_and_awaits_a_new_acknowledgement() {
        use EventType::*;
        let h = run(&[Acknowledged, Reassigned]).expect("reassign");
        assert_eq!(h.supplier, token("supplier-1"));
        assert_eq!(h.status, HandoffStatus::Requested);
        assert!(run(&[Acknowledged, Reassigned, Acknowledged]).is_ok());
    }

    #[test]
    fn later_events_are_filled_and_checked_against_the_handoff() {
        let h = opened();
        let mut ack = later("h1", EventType::Acknowledged, 5);
        h.complete(&mut ack).expect("fill");
        assert_eq!(ack.kind, Some(token("repair")));
        assert_eq!(ack.supplier, Some(token("engineering")));
        assert_eq!(ack.priority, Some(Priority::Routine));

        let mut wrong = later("h1", EventType::Acknowledged, 5);
        wrong.customer = Some(token("ward-9"));
        assert!(matches!(
            h.complete(&mut wrong),
            Err(LifecycleError::Mismatch {
                field: "customer",
                ..
            })
        ));

        let mut same = later("h1", EventType::Reassigned, 5);
        same.supplier = Some(token("engineering"));
        assert_eq!(
            h.complete(&mut same),
            Err(LifecycleError::SameSupplier(token("engineering")))
        );
    }

    #[test]
    fn an_event_dated_before_the_request_is_refused_naming_both_times() {
        let h = Handoff::open(&requested("h1", 86_400_000)).expect("open");
        let mut early = later("h1", EventType::Acknowledged, 3_600_000);
        let err = h.complete(&mut early).expect_err("before the request");
        assert_eq!(
            err.to_string(),
            "occurred_at: 1970-01-01T01:00:00.000Z is before the hand-off was requested at \
             1970-01-02T00:00:00.000Z; an event cannot precede its request"
        );
        let mut same = later("h1", EventType::Acknowledged, 86_400_000);
        assert_eq!(h.complete(&mut same), Ok(()), "at the request is fine");
    }

    #[test]
    fn reprioritizing_changes_the_priority_and_nothing_else() {
        let mut h = opened();
        let mut up = later("h1", EventType::Reprioritized, 5);
        up.priority = Some(Priority::Stat);
        h.complete(&mut up).expect("fill");
        h.apply(&up).expect("apply");
        assert_eq!(
            (h.priority, h.status, h.version),
            (Priority::Stat, HandoffStatus::Requested, 2)
        );
        let mut same = later("h1", EventType::Reprioritized, 6);
        same.priority = Some(Priority::Stat);
        assert_eq!(
            h.complete(&mut same),
            Err(LifecycleError::SamePriority(Priority::Stat))
        );
        // Later events carry the new priority.
        let mut ack = later("h1", EventType::Acknowledged, 7);
        h.complete(&mut ack).expect("fill");
        assert_eq!(ack.priority, Some(Priority::Stat));
    }

    #[test]
    fn a_completed_hand_off_is_rated_once() {
        use EventType::*;
        let rated = |score| {
            let mut e = later("h1", Rated, 10);
            e.rating = Some(crate::event::Rating {
                score,
                comment: "quick".into(),
            });
            e
        };
        let mut open = run(&[Acknowledged]).expect("valid");
        assert!(matches!(
            open.apply(&rated(4)),
            Err(LifecycleError::NotAllowed { .. })
        ));
        let mut rejected = run(&[Rejected]).expect("valid");
        assert!(matches!(
            rejected.apply(&rated(4)),
            Err(LifecycleError::Closed { .. })
        ));
        let mut done = run(&[Acknowledged, Completed]).expect("valid");
        done.apply(&rated(4)).expect("first rating");
        assert_eq!(
            (done.rating, done.status),
            (Some(4), HandoffStatus::Completed)
        );
        assert_eq!(
            done.apply(&rated(5)),
            Err(LifecycleError::AlreadyRated(token("h1")))
        );
    }

    #[test]
    fn a_completed_result_is_amended_as_often_as_it_is_corrected() {
        use EventType::*;
        let before = run(&[Acknowledged, Amended]);
        assert!(
            matches!(
                before,
                Err(LifecycleError::NotAllowed { event: Amended, .. })
            ),
            "nothing delivered, nothing to correct: {before:?}"
        );
        let h = run(&[Started, Completed, Amended, Amended]).expect("two corrections");
        assert_eq!((h.status, h.version), (HandoffStatus::Completed, 5));
        assert!(run(&[Rejected, Amended]).is_err());
    }

    #[test]
    fn an_escalation_is_acknowledged_in_any_status_and_changes_nothing() {
        use EventType::*;
        for before in [
            &[][..],
            &[Acknowledged],
            &[OnHold],
            &[Started, Completed],
            &[Rejected],
            &[Cancelled],
        ] {
            let mut history = before.to_vec();
            let without = run(&history).expect("the history");
            history.extend([EscalationAcknowledged, EscalationAcknowledged]);
            let with = run(&history).expect("acknowledged twice");
            assert_eq!(
                (with.status, with.priority, &with.supplier, with.version),
                (
                    without.status,
                    without.priority,
                    &without.supplier,
                    without.version + 2
                ),
                "after {before:?}"
            );
        }
    }

    #[test]
    fn attribute_bytes_are_bounded_per_hand_off() {
        let mut h = opened();
        let mut accepted = 0;
        for i in 0..100 {
            let mut e = later("h1", EventType::OnHold, i);
            if i % 2 == 1 {
                e.event_type = EventType::Resumed;
            }
            for k in 0..32 {
                e.attributes.insert(format!("k{k:02}"), "x".repeat(253));
            }
            match h.apply(&e) {
                Ok(()) => accepted += 1,
                Err(LifecycleError::TooManyAttributes { bytes, .. }) => {
                    assert!(bytes > MAX_ATTRIBUTE_BYTES_PER_HANDOFF);
                    break;
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
        // 8 KiB an event: eight fit in 64 KiB, the ninth does not.
        assert_eq!(accepted, 8);
        assert_eq!(h.version, 9, "a refused event changes nothing");
    }

    #[test]
    fn event_count_is_bounded() {
        let mut h = opened();
        let mut accepted = 1;
        for i in 0..2 * MAX_EVENTS_PER_HANDOFF {
            let t = if i % 2 == 0 {
                EventType::OnHold
            } else {
                EventType::Resumed
            };
            match h.apply(&later("h1", t, i as i64)) {
                Ok(()) => accepted += 1,
                Err(LifecycleError::TooManyEvents { .. }) => break,
                Err(other) => panic!("unexpected {other}"),
            }
        }
        assert_eq!(accepted, MAX_EVENTS_PER_HANDOFF);
    }

    fn any_event_type() -> impl Strategy<Value = EventType> {
        proptest::sample::select(EventType::ALL.to_vec())
    }

    proptest! {
        /// Whatever sequence a client throws at it, an accepted history never
        /// has an event after a closing one, a RESUMED without a hold, or a
        /// version that is not its event count.
        #[test]
        fn accepted_histories_keep_the_invariants(types in proptest::collection::vec(any_event_type(), 0..40)) {
            let mut h = opened();
            let mut accepted = vec![EventType::Requested];
            for (i, t) in types.iter().enumerate() {
                let mut e = later("h1", *t, i as i64);
                if *t == EventType::Reassigned {
                    e.supplier = Some(token(&format!("s{i}")));
                }
                if *t == EventType::Rated {
                    e.rating = Some(crate::event::Rating { score: 3, comment: String::new() });
                }
                if h.complete(&mut e).is_ok() && h.apply(&e).is_ok() {
                    accepted.push(*t);
                }
            }
            prop_assert_eq!(h.version as usize, accepted.len());
            // An acknowledgement of an escalation may come at any time and
            // changes nothing else: the rest is checked without it.
            let accepted: Vec<EventType> = accepted
                .into_iter()
                .filter(|t| *t != EventType::EscalationAcknowledged)
                .collect();
            let closed_at = accepted.iter().position(|t| t.is_terminal());
            if let Some(pos) = closed_at {
                // Only a completion is followed, by one rating at most and
                // by amendments.
                let after = &accepted[pos + 1..];
                prop_assert!(after.iter().all(|t| matches!(t, EventType::Rated | EventType::Amended)));
                prop_assert!(after.iter().filter(|t| **t == EventType::Rated).count() <= 1);
                if !after.is_empty() {
                    prop_assert_eq!(accepted[pos], EventType::Completed);
                }
                prop_assert!(h.status.is_closed());
            }
            let after_the_end = |t: &EventType| matches!(t, EventType::Rated | EventType::Amended);
            prop_assert!(closed_at.is_some() || !accepted.iter().any(after_the_end));
            let mut held = false;
            for t in &accepted {
                match t {
                    EventType::OnHold => { prop_assert!(!held); held = true; }
                    EventType::Resumed => { prop_assert!(held); held = false; }
                    _ => {}
                }
            }
            if !h.status.is_closed() {
                prop_assert_eq!(held, h.status == HandoffStatus::OnHold);
            }
        }
    }
}
