//! What the views keep of a hand-off's request and events: what its clocks,
//! figures and lists read, and nothing of its story.
//!
//! A view is read and rewritten whole on every change of its hand-off and
//! decoded for every row a list shows, so what it keeps decides what the
//! write path and the lists cost. The log of record holds every event
//! whole; a hand-off's timeline is read from there. What is dropped here
//! must never be something a clock, a figure or a list needs: the clocks
//! read an event's type, times, priority and supplier, its version and
//! whether it was history; an acknowledgement's figure names its actor;
//! promises match on the request attributes the catalog's promises name,
//! and the lists show the first few the catalog lists.

use baton_domain::{
    event::{EventType, RecordedEvent},
    lifecycle::{Handoff, LifecycleError},
    Catalog, Token,
};

use crate::HandoffView;

/// How many of the request's attributes the lists show with a hand-off.
pub const SHOWN_ATTRIBUTES: usize = 3;

/// The event as the clocks read it: ids, attributes, rating, sender, kind
/// and customer dropped (the hand-off holds its kind and customer), the
/// actor kept only where a figure names it.
pub fn clock_record(mut record: RecordedEvent) -> RecordedEvent {
    let event = &mut record.event;
    event.event_id = String::new();
    event.attributes.clear();
    event.rating = None;
    event.kind = None;
    event.customer = None;
    if event.event_type != EventType::EscalationAcknowledged {
        event.actor = String::new();
    }
    record.envelope.sent_by = String::new();
    record
}

/// Keeps of the hand-off's request attributes those a promise of `catalog`
/// matches on and the first [`SHOWN_ATTRIBUTES`] the catalog lists.
pub fn trim_attributes(catalog: &Catalog, handoff: &mut Handoff) {
    let listed = |key: &String| catalog.attributes.as_ref().is_none_or(|a| a.contains(key));
    let shown: Vec<String> = handoff
        .attributes
        .keys()
        .filter(|k| listed(k))
        .take(SHOWN_ATTRIBUTES)
        .cloned()
        .collect();
    handoff.attributes.retain(|key, _| {
        shown.contains(key) || catalog.promises.iter().any(|p| p.matches.contains_key(key))
    });
}

/// The view a retired hand-off would have from its events as the log holds
/// them (in stream order): its lifecycle and what its clocks read, without
/// what only the views knew (corrections, disruptions, figures' shares).
pub fn retired_view(
    catalog: &Catalog,
    id: &Token,
    events: &[RecordedEvent],
) -> Result<HandoffView, LifecycleError> {
    let Some(first) = events.first() else {
        return Err(LifecycleError::UnknownHandoff(id.clone()));
    };
    let mut handoff = Handoff::open(&first.event)?;
    for record in &events[1..] {
        handoff.apply(&record.event)?;
        if let Some(supplier) = &record.event.supplier {
            handoff.supplier = supplier.clone();
        }
    }
    trim_attributes(catalog, &mut handoff);
    let mut view = HandoffView::new(handoff);
    view.events = events.iter().cloned().map(clock_record).collect();
    Ok(view)
}

/// The request attributes a list shows with the hand-off: (key, value).
pub fn shown_attributes<'h>(
    catalog: &'h Catalog,
    handoff: &'h Handoff,
) -> impl Iterator<Item = (&'h String, &'h String)> {
    handoff
        .attributes
        .iter()
        .filter(|(key, _)| catalog.attributes.as_ref().is_none_or(|a| a.contains(*key)))
        .take(SHOWN_ATTRIBUTES)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use baton_domain::{
        event::{Event, Priority, Rating},
        Envelope, Timestamp, Token,
    };
    use proptest::prelude::*;

    use super::*;
    use crate::{projection::clocks_of, Acknowledgement};

    const MIN: i64 = 60_000;

    fn t(s: &str) -> Token {
        Token::parse(s).expect("token")
    }

    fn catalog() -> Catalog {
        Catalog::from_json(
            r#"{"departments": [{"id": "engineering", "name": "E"}, {"id": "estates", "name": "S"}, {"id": "ward-5", "name": "W5"}],
                "kinds": ["repair"],
                "attributes": ["asset", "bed", "floor", "note", "test"],
                "max_entry_lag": "10m",
                "promises": [
                  {"id": "response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                   "reset": ["reassigned"], "warn_at": 0.5, "targets": {"routine": "30m", "urgent": "15m", "stat": "5m"},
                   "escalate_to": "ward-5"},
                  {"id": "fix", "kind": "repair", "start": "acknowledged", "stop": ["completed"],
                   "pause": ["on_hold"], "resume": ["resumed"], "targets": {"routine": "4h", "stat": "1h"}},
                  {"id": "tested", "kind": "repair", "start": "requested", "stop": ["completed"],
                   "match": {"test": "x"}, "targets": {"routine": "2h", "urgent": "1h", "stat": "30m"}}]}"#,
        )
        .expect("catalog")
    }

    const LATER: [EventType; 8] = [
        EventType::Acknowledged,
        EventType::Reprioritized,
        EventType::Reassigned,
        EventType::OnHold,
        EventType::Resumed,
        EventType::Completed,
        EventType::EscalationAcknowledged,
        EventType::Rated,
    ];

    fn recorded(
        event_type: EventType,
        at: i64,
        lag: i64,
        version: u64,
        backfill: bool,
    ) -> RecordedEvent {
        let supplier = match event_type {
            EventType::Requested => Some(t("engineering")),
            EventType::Reassigned => Some(t("estates")),
            _ => None,
        };
        let priority = match (event_type, version % 3) {
            (EventType::Requested | EventType::Reprioritized, 0) => Some(Priority::Stat),
            (EventType::Requested | EventType::Reprioritized, 1) => Some(Priority::Urgent),
            (EventType::Requested | EventType::Reprioritized, _) => Some(Priority::Routine),
            _ => None,
        };
        RecordedEvent {
            event: Event {
                event_id: format!("e-{version}"),
                handoff_id: t("h-1"),
                event_type,
                occurred_at: Timestamp(at),
                kind: Some(t("repair")),
                supplier,
                customer: Some(t("ward-5")),
                priority,
                actor: format!("person-{}", version % 4),
                attributes: BTreeMap::from([
                    ("asset".to_owned(), "pump-7".to_owned()),
                    ("note".to_owned(), "x".repeat(400)),
                    ("test".to_owned(), "x".to_owned()),
                ]),
                rating: (event_type == EventType::Rated).then(|| Rating {
                    score: 4,
                    comment: "fine".into(),
                }),
            },
            envelope: Envelope {
                version,
                recorded_at: Timestamp(at + lag),
                sent_by: "desk".into(),
                backfill,
            },
        }
    }

    proptest! {
        /// The clocks and the acknowledgement a figure names read the same
        /// from the kept events as from the events as recorded, at any time.
        #[test]
        fn what_is_kept_reads_as_what_was_recorded(
            later in proptest::collection::vec((0usize..LATER.len(), 0i64..90, 0i64..30), 0..10),
            backfill in any::<bool>(),
            now in 0i64..600,
        ) {
            let catalog = catalog();
            let mut events = vec![recorded(EventType::Requested, 0, 0, 1, backfill)];
            let mut at = 0;
            for (i, (kind, gap, lag)) in later.iter().enumerate() {
                at += gap * MIN / 4;
                events.push(recorded(LATER[*kind], at, lag * MIN / 2, i as u64 + 2, backfill));
            }
            let mut handoff = Handoff::open(&events[0].event).expect("open");
            let kept: Vec<RecordedEvent> = events.iter().cloned().map(clock_record).collect();
            let full_clocks = clocks_of(&catalog, &handoff, &events, Timestamp(now * MIN));
            trim_attributes(&catalog, &mut handoff);
            prop_assert_eq!(&full_clocks, &clocks_of(&catalog, &handoff, &kept, Timestamp(now * MIN)));
            prop_assert!(
                full_clocks.iter().any(|c| c.policy_id.as_str() == "tested"),
                "the matched promise still covers it: {:?}", full_clocks
            );
            for c in &full_clocks {
                if let Some(deadline) = c.deadline {
                    prop_assert_eq!(
                        Acknowledgement::among(&events, deadline),
                        Acknowledgement::among(&kept, deadline)
                    );
                }
            }
        }
    }

    #[test]
    fn a_kept_event_holds_nothing_of_the_story() {
        let ack = clock_record(recorded(EventType::Acknowledged, MIN, 0, 2, false));
        assert_eq!(ack.event.event_id, "");
        assert!(ack.event.attributes.is_empty());
        assert_eq!(ack.event.actor, "");
        assert_eq!(ack.envelope.sent_by, "");
        assert_eq!(
            (ack.event.kind.as_ref(), ack.event.customer.as_ref()),
            (None, None)
        );
        let rated = clock_record(recorded(EventType::Rated, MIN, 0, 3, false));
        assert_eq!(rated.event.rating, None);
        let escalation = clock_record(recorded(
            EventType::EscalationAcknowledged,
            MIN,
            0,
            4,
            false,
        ));
        assert_eq!(
            escalation.event.actor, "person-0",
            "an acknowledgement names its actor"
        );
    }

    #[test]
    fn a_hand_off_keeps_the_attributes_promises_match_and_lists_show() {
        let catalog = catalog();
        let mut request = recorded(EventType::Requested, 0, 0, 1, false).event;
        request.attributes = ["asset", "bed", "floor", "note", "test", "unlisted"]
            .into_iter()
            .map(|k| (k.to_owned(), "x".to_owned()))
            .collect();
        let mut handoff = Handoff::open(&request).expect("open");
        trim_attributes(&catalog, &mut handoff);
        let kept: Vec<&str> = handoff.attributes.keys().map(String::as_str).collect();
        assert_eq!(kept, ["asset", "bed", "floor", "test"]);
        let shown: Vec<&str> = shown_attributes(&catalog, &handoff)
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(shown, ["asset", "bed", "floor"]);
    }
}
