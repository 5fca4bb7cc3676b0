//! Patient data, end to end: every format the issue found accepted (in the
//! actor, the ids, attribute keys and values, free text, and a
//! disruption's actor and id) goes through gRPC Append or AppendDisruption
//! to the real ingest. Each is INVALID_ARGUMENT naming the field, the answer
//! does not repeat the value, and nothing of it reaches the stream; clean
//! values (an actor `desk-7`, ids made of a UUID or a digest, `LOINC
//! 2345-7`, `pump-7`) are stored.

use baton_e2e::{
    append, contains, count_messages, later, now_millis, requested, stream_payloads, timestamp,
    Baton,
};
use baton_proto::v1::{self, EventType, Priority};
use tonic::Code;

/// Full-width digits: `123456789` once NFKC has read them.
const FULL_WIDTH: &str = "\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}";

enum Send {
    Append(v1::HandoffEvent),
    Disruption(v1::DisruptionEvent),
}

struct Case {
    what: &'static str,
    send: Send,
    /// The field the refusal must start with.
    field: &'static str,
    /// What must not come back in the answer.
    value: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_data_in_any_typed_field_is_refused_and_never_stored() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - 60_000;
    let request = |n: u32| {
        let mut e = requested(
            &format!("pd-{n}"),
            "lab",
            "lab",
            "ward-5",
            Priority::Stat,
            t0,
        );
        e.actor = "desk-7".into();
        e
    };
    let with = |n: u32, f: &dyn Fn(&mut v1::HandoffEvent)| {
        let mut e = request(n);
        f(&mut e);
        Send::Append(e)
    };
    let note = |n: u32, value: &'static str| {
        with(n, &move |e| {
            e.attributes.insert("note".into(), value.into());
        })
    };
    let disruption = |f: &dyn Fn(&mut v1::DisruptionEvent)| {
        let mut d = v1::DisruptionEvent {
            disruption_id: "pd-down".into(),
            phase: v1::DisruptionPhase::Started as i32,
            supplier: "lab".into(),
            occurred_at: Some(timestamp(t0)),
            reason: "analyzer down".into(),
            actor: "desk-7".into(),
            ..Default::default()
        };
        f(&mut d);
        Send::Disruption(d)
    };

    // A clean hand-off, completed, so that a rating comment can be tried.
    let uuid = "550e8400-e29b-41d4-a716-446655440000";
    let mut clean = requested(uuid, "lab", "lab", "ward-5", Priority::Stat, t0);
    clean.actor = "desk-7".into();
    clean.attributes = [
        ("asset".to_owned(), "pump-7".to_owned()),
        ("test".to_owned(), "LOINC 2345-7".to_owned()),
    ]
    .into();
    ingest
        .append(append(clean))
        .await
        .expect("clean, with a UUID");
    ingest
        .append(append(later(uuid, EventType::Completed, t0 + 1_000)))
        .await
        .expect("completed");
    let rated = |comment: &'static str| {
        let mut e = later(uuid, EventType::Rated, t0 + 2_000);
        e.rating = Some(v1::Rating {
            score: 2,
            comment: comment.into(),
        });
        e
    };

    let cases = vec![
        Case {
            what: "a date of birth as the actor",
            send: with(1, &|e| e.actor = "DOB 1970-01-01".into()),
            field: "actor",
            value: "1970-01-01",
        },
        Case {
            what: "a BSN as the actor",
            send: with(2, &|e| e.actor = "123456789".into()),
            field: "actor",
            value: "123456789",
        },
        Case {
            what: "a name as the actor",
            send: with(3, &|e| e.actor = "Mr. John Smith".into()),
            field: "actor",
            value: "Smith",
        },
        Case {
            what: "an e-mail address as the actor",
            send: with(4, &|e| e.actor = "john.smith@example.org".into()),
            field: "actor",
            value: "john.smith",
        },
        Case {
            what: "a labelled BSN as the event id",
            send: with(5, &|e| e.event_id = "bsn-123456789".into()),
            field: "event_id",
            value: "123456789",
        },
        Case {
            what: "a BSN glued to its label as the hand-off id",
            send: with(6, &|e| {
                e.handoff_id = "bsn123456789".into();
                e.event_id = "pd-6-requested".into();
            }),
            field: "handoff_id",
            value: "123456789",
        },
        Case {
            what: "a BSN glued to its label as an attribute key",
            send: with(7, &|e| {
                e.attributes.insert("bsn123456789".into(), "x".into());
            }),
            field: "attributes",
            value: "bsn123456789",
        },
        Case {
            what: "1 jan 1970",
            send: note(8, "1 jan 1970"),
            field: "attributes[note]",
            value: "1970",
        },
        Case {
            what: "January 1, 1970",
            send: note(9, "January 1, 1970"),
            field: "attributes[note]",
            value: "1970",
        },
        Case {
            what: "mr. smith",
            send: note(10, "mr. smith"),
            field: "attributes[note]",
            value: "smith",
        },
        Case {
            what: "patient John Smith",
            send: note(11, "patient John Smith"),
            field: "attributes[note]",
            value: "Smith",
        },
        Case {
            what: "full-width digits",
            send: note(12, FULL_WIDTH),
            field: "attributes[note]",
            value: FULL_WIDTH,
        },
        Case {
            what: "an e-mail address written out",
            send: note(13, "john.smith at example dot org"),
            field: "attributes[note]",
            value: "john.smith",
        },
        Case {
            what: "a name in the rating comment",
            send: Send::Append(rated("mr. smith waited too long")),
            field: "rating.comment",
            value: "smith",
        },
        Case {
            what: "a name as the disruption's actor",
            send: disruption(&|d| d.actor = "Mr. John Smith".into()),
            field: "actor",
            value: "Smith",
        },
        Case {
            what: "a labelled BSN as the disruption id",
            send: disruption(&|d| d.disruption_id = "bsn-123456789".into()),
            field: "disruption_id",
            value: "123456789",
        },
        Case {
            what: "a date of birth in the disruption's scope",
            send: disruption(&|d| {
                d.scope = [("test".to_owned(), "1 januari 1970".to_owned())].into();
            }),
            field: "scope[test]",
            value: "1970",
        },
        Case {
            what: "a name in the disruption's reason",
            send: disruption(&|d| d.reason = "patient John Smith's sample lost".into()),
            field: "reason",
            value: "Smith",
        },
    ];
    let refused = cases.len();
    let mut values = Vec::new();
    for case in cases {
        let answer = match case.send {
            Send::Append(event) => ingest.append(append(event)).await.map(|_| ()),
            Send::Disruption(event) => ingest
                .append_disruption(v1::AppendDisruptionRequest {
                    disruption: Some(event),
                })
                .await
                .map(|_| ()),
        };
        let status = answer.expect_err(case.what);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{}: {status:?}",
            case.what
        );
        assert!(
            status.message().starts_with(&format!("{}: ", case.field)),
            "{}: {status:?}",
            case.what
        );
        assert!(
            status.message().contains("patient-identifying data"),
            "{}: {status:?}",
            case.what
        );
        for echoed in [case.value, "123456789"] {
            assert!(
                !status.message().contains(echoed),
                "{}: the answer repeats {echoed:?}: {status:?}",
                case.what
            );
        }
        values.push(case.value);
    }

    // Clean values pass: ids of a digest, the actor desk-7, a clean rating
    // and a clean disruption.
    let digest = "sha-a94a8fe5ccb19ba61c4c0873d391e987982fbbd3";
    let mut clean = requested(
        digest,
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        t0,
    );
    clean.actor = "desk-7".into();
    clean.attributes = [("asset".to_owned(), "pump-7".to_owned())].into();
    ingest
        .append(append(clean))
        .await
        .expect("clean, with a digest");
    ingest
        .append(append(rated("quick, thanks")))
        .await
        .expect("a clean rating");
    let Send::Disruption(down) = disruption(&|d| {
        d.scope = [("test".to_owned(), "LOINC 2345-7".to_owned())].into();
    }) else {
        unreachable!("a disruption");
    };
    ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(down),
        })
        .await
        .expect("a clean disruption");

    // Only the clean events reached the stream, and no refused value did.
    let nats = baton.nats_client().await;
    let stored = count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await;
    let disruptions = count_messages(&nats, "BATON_HANDOFFS", "baton.disruption.>").await;
    assert_eq!(
        (stored, disruptions),
        (4, 1),
        "two requests, a completion and a rating; one disruption"
    );
    for payload in stream_payloads(&baton.nats_client().await).await {
        for value in values.iter().chain(["123456789", "Smith", "smith"].iter()) {
            assert!(!contains(&payload, value), "{value:?} reached the stream");
        }
    }
    println!(
        "patient-data cases refused: {refused}; clean events stored: {stored} and {disruptions} disruption"
    );
}
