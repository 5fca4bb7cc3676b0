//! Fuzzing the way in, with property tests (part of the normal test run,
//! so CI runs a short pass every time):
//!
//! - arbitrary bytes, and mutations of the corpus in `fuzz/corpus/`, into
//!   what both services do with a payload: protobuf decode, wire -> domain
//!   conversion, validation, and the projector's `events::decode`. Nothing
//!   panics; whatever the projector accepts as a recorded event carries its
//!   routing fields and a version, and re-encodes to itself.
//! - arbitrary sequences of wire events (fields drawn from pools of good
//!   and hostile values) through ingest's rules: validation, catalog,
//!   patient-data screen, lifecycle. Nothing panics, and every accepted
//!   event keeps the invariants: routing fields filled, versions counting
//!   1, 2, 3, ..., nothing after a close but one rating of a completion, and
//!   the recorded bytes decode to the same event and replay to the same
//!   state as ingest kept live.
//!
//! `BATON_FUZZ_CASES` multiplies the number of cases (e.g. 50 for a long
//! run); each test prints how many inputs it executed.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use baton_domain::{
    event::{Limits, Priority},
    lifecycle::Handoff,
    Catalog, Envelope, Event, EventType, RecordedEvent, Timestamp, Token,
};
use baton_proto::{convert, v1};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use prost::Message as _;

const CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "E"}, {"id": "lab", "name": "L"},
                  {"id": "ward-5", "name": "W5"}, {"id": "ward-6", "name": "W6"}],
  "kinds": ["repair", "lab"],
  "attributes": ["asset", "test"],
  "promises": [{"id": "repair-response", "kind": "repair", "start": "requested",
                "stop": ["acknowledged"], "targets": {"routine": "30m", "stat": "10m"}}]
}"#;

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn cases(base: u32) -> u32 {
    let factor = std::env::var("BATON_FUZZ_CASES")
        .ok()
        .and_then(|f| f.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    base.saturating_mul(factor)
}

fn runner(base: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(base),
        failure_persistence: None,
        ..Config::default()
    })
}

/// The corpus: seed payloads kept in `fuzz/corpus/`.
fn corpus() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 4,
        "the corpus in {} is missing",
        dir.display()
    );
    seeds
}

/// Everything the services do with a payload on `subject`; panics only if
/// an invariant breaks.
fn take_payload(subject: &str, payload: &[u8]) {
    if let Ok(wire) = v1::HandoffEvent::decode(payload) {
        if let Ok(event) = convert::event_from_proto(wire) {
            let _ = event.validate(&Limits::default(), NOW);
            let _ = event.check_patient_data(None);
        }
    }
    if let Ok(wire) = v1::DisruptionEvent::decode(payload) {
        if let Ok(event) = convert::disruption_from_proto(wire) {
            let _ = event.validate(&Limits::default(), NOW);
            let _ = event.check_patient_data(None);
        }
    }
    let _ = baton_log::disruptions::decode(1, subject, payload);
    if let Ok(record) = baton_log::events::decode(1, subject, payload) {
        let event = &record.event;
        assert!(event.kind.is_some() && event.supplier.is_some() && event.customer.is_some());
        assert!(record.envelope.version > 0);
        let again = baton_log::events::decode(1, subject, &baton_log::events::encode(&record))
            .expect("a decoded event re-encodes to a decodable one");
        assert_eq!(again, record);
    }
}

#[test]
fn arbitrary_bytes_never_panic_the_decoders() {
    let executed = AtomicU64::new(0);
    runner(4096)
        .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
            executed.fetch_add(1, Ordering::Relaxed);
            take_payload("baton.handoff.h1.repair.engineering.ward-5", &bytes);
            Ok(())
        })
        .expect("no input breaks the decoders");
    println!(
        "fuzz: {} arbitrary payloads decoded",
        executed.load(Ordering::Relaxed)
    );
}

/// One mutation of a seed: flip, overwrite, insert, truncate or splice.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Truncate(usize),
    Splice(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Splice(a, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, other: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match m {
            Mutation::Flip(at, bit) => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b ^= bit;
                }
            }
            Mutation::Set(at, value) => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b = *value;
                }
            }
            Mutation::Insert(at, extra) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, extra.iter().copied());
            }
            Mutation::Truncate(at) => bytes.truncate(at % len),
            Mutation::Splice(at, from) => {
                let at = at % (bytes.len() + 1);
                let from = from % (other.len() + 1);
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}

#[test]
fn mutated_corpus_payloads_never_panic_the_decoders() {
    let seeds = corpus();
    let executed = AtomicU64::new(0);
    let strategy = (
        0..seeds.len(),
        0..seeds.len(),
        proptest::collection::vec(mutation(), 1..6),
    );
    runner(4096)
        .run(&strategy, |(seed, other, mutations)| {
            executed.fetch_add(1, Ordering::Relaxed);
            let bytes = mutate(seeds[seed].clone(), &seeds[other], &mutations);
            take_payload("baton.handoff.h1.lab.lab.ward-5", &bytes);
            take_payload("baton.disruption.lab.d1", &bytes);
            Ok(())
        })
        .expect("no mutation breaks the decoders");
    println!(
        "fuzz: {} mutated corpus payloads decoded ({} seeds)",
        executed.load(Ordering::Relaxed),
        seeds.len()
    );
}

#[test]
fn every_corpus_seed_decodes_as_documented() {
    // The seeds named `recorded-*` are events as ingest records them: the
    // projector must read each.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = std::fs::read(&path).expect("seed");
        let decoded = baton_log::events::decode(1, "baton.handoff.h.x.y.z", &bytes);
        assert_eq!(
            decoded.is_ok(),
            name.starts_with("recorded-"),
            "{name}: {decoded:?}"
        );
        // The seeds named `*-patient-data` carry it in every typed field,
        // and the screen refuses them.
        if name.ends_with("-patient-data.bin") {
            let refused = if name.starts_with("disruption-") {
                let wire = v1::DisruptionEvent::decode(bytes.as_slice()).expect(name);
                let event = convert::disruption_from_proto(wire).expect(name);
                event.check_patient_data(None).is_err()
            } else {
                let wire = v1::HandoffEvent::decode(bytes.as_slice()).expect(name);
                let event = convert::event_from_proto(wire).expect(name);
                event.check_patient_data(None).is_err()
            };
            assert!(refused, "{name} passes the patient-data screen");
        }
    }
}

// --- Event sequences through ingest's rules ---

fn pick<T: Clone + std::fmt::Debug + 'static>(values: &[T]) -> impl Strategy<Value = T> + Clone {
    proptest::sample::select(values.to_vec())
}

/// Patient data as people type it: every format the screen must refuse,
/// in every field a person can fill. No accepted event may carry any.
const PATIENT_DATA: [&str; 24] = [
    "DOB 1970-01-01",
    "123456789",
    "Mr. John Smith",
    "john.smith@example.org",
    "1 jan 1970",
    "January 1, 1970",
    "1 januari 1970",
    "mr. smith",
    "patient John Smith",
    "\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}",
    "john.smith at example dot org",
    "john [at] example [dot] org",
    "12-05-1980",
    "Mevr. De Vries waited",
    "call 0612345678",
    "mevrouw de vries",
    "1234\u{200b}5678",
    "b\u{00ad}sn known",
    // Ids: tokens, so they reach the screen as hand-off and disruption ids.
    "bsn-123456789",
    "bsn123456789",
    "mrn_12345678",
    "dob-1970-01-01",
    "01jan1970",
    "nhs-4711",
];

/// A hostile change to an otherwise well-formed event.
#[derive(Debug, Clone)]
enum Corruption {
    HandoffId(&'static str),
    EventId(&'static str),
    Actor(&'static str),
    Type(i32),
    Kind(&'static str),
    Supplier(&'static str),
    Customer(&'static str),
    Priority(i32),
    Seconds(i64),
    Nanos(i32),
    Attribute(&'static str, &'static str),
    Rating(u32, &'static str),
}

const HOSTILE_IDS: [&str; 7] = ["", "a.b", "*", ">", "h 1", "h\u{0}", "\u{00e9}"];
const DEPARTMENTS: [&str; 8] = [
    "",
    "engineering",
    "lab",
    "ward-5",
    "ward-6",
    "x-ray",
    ">",
    "ward.5",
];

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        pick(&HOSTILE_IDS).prop_map(Corruption::HandoffId),
        pick(&["", "e\u{7}", "e 1", "\u{00e9}"]).prop_map(Corruption::EventId),
        pick(&PATIENT_DATA).prop_map(Corruption::HandoffId),
        pick(&PATIENT_DATA).prop_map(Corruption::EventId),
        pick(&PATIENT_DATA).prop_map(Corruption::Actor),
        (pick(&PATIENT_DATA), pick(&["pump-7", "x"]))
            .prop_map(|(k, v)| Corruption::Attribute(k, v)),
        (pick(&["asset", "test"]), pick(&PATIENT_DATA))
            .prop_map(|(k, v)| Corruption::Attribute(k, v)),
        (1u32..=5, pick(&PATIENT_DATA)).prop_map(|(score, c)| Corruption::Rating(score, c)),
        (-1i32..13).prop_map(Corruption::Type),
        pick(&["", "repair", "lab", "nope", "re.pair"]).prop_map(Corruption::Kind),
        pick(&DEPARTMENTS).prop_map(Corruption::Supplier),
        pick(&DEPARTMENTS).prop_map(Corruption::Customer),
        (-1i32..5).prop_map(Corruption::Priority),
        pick(&[
            -1i64,
            0,
            i64::MIN,
            i64::MAX,
            253_402_300_799,
            1_800_000_400,
            1_800_100_000
        ])
        .prop_map(Corruption::Seconds),
        prop_oneof![Just(-1i32), Just(1_000_000_000), any::<i32>()].prop_map(Corruption::Nanos),
        (
            pick(&["asset", "test", "patient", "a.b", ""]),
            pick(&[
                "pump-7",
                "123456782",
                "12-05-1980",
                "Mr. Jansen",
                "x@y.nl",
                ""
            ]),
        )
            .prop_map(|(k, v)| Corruption::Attribute(k, v)),
        (
            0u32..8,
            pick(&["", "quick", "Mevr. De Vries waited", "call 0612345678"])
        )
            .prop_map(|(score, comment)| Corruption::Rating(score, comment)),
    ]
}

/// Mostly well-formed events of every type (so that sequences get far
/// into the lifecycle), a quarter of them with one to three corruptions.
fn wire_event() -> impl Strategy<Value = v1::HandoffEvent> {
    (
        (pick(&["h1", "h2", "h3"]), 0u32..100_000, 1i32..=11),
        (
            pick(&["repair", "lab"]),
            pick(&["engineering", "lab", "ward-5", "ward-6"]),
            pick(&["engineering", "lab", "ward-5", "ward-6"]),
            1i32..=3,
        ),
        (
            0i64..2000,
            proptest::collection::btree_map(
                pick(&["asset", "test"]),
                pick(&["pump-7", "troponin"]),
                0..2,
            ),
            (1u32..=5, pick(&["", "quick"])),
        ),
        prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(corruption(), 1..4)],
    )
        .prop_map(
            |(
                (handoff_id, n, event_type),
                (kind, supplier, customer, priority),
                (offset, attributes, (score, comment)),
                corruptions,
            )| {
                let t = v1::EventType::try_from(event_type).unwrap_or_default();
                let mut e = v1::HandoffEvent {
                    event_id: format!("e{n}"),
                    handoff_id: handoff_id.into(),
                    r#type: event_type,
                    occurred_at: Some(prost_types::Timestamp {
                        seconds: 1_799_998_000 + offset,
                        nanos: 0,
                    }),
                    actor: "fuzz".into(),
                    ..Default::default()
                };
                match t {
                    v1::EventType::Requested => {
                        e.kind = kind.into();
                        e.supplier = supplier.into();
                        e.customer = customer.into();
                        e.priority = priority;
                        e.attributes = attributes
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect();
                    }
                    v1::EventType::Reassigned => e.supplier = supplier.into(),
                    v1::EventType::Reprioritized => e.priority = priority,
                    v1::EventType::Rated => {
                        e.rating = Some(v1::Rating {
                            score,
                            comment: comment.into(),
                        })
                    }
                    _ => {}
                }
                for c in corruptions {
                    match c {
                        Corruption::HandoffId(v) => e.handoff_id = v.into(),
                        Corruption::EventId(v) => e.event_id = v.into(),
                        Corruption::Actor(v) => e.actor = v.into(),
                        Corruption::Type(v) => e.r#type = v,
                        Corruption::Kind(v) => e.kind = v.into(),
                        Corruption::Supplier(v) => e.supplier = v.into(),
                        Corruption::Customer(v) => e.customer = v.into(),
                        Corruption::Priority(v) => e.priority = v,
                        Corruption::Seconds(v) => {
                            e.occurred_at = Some(prost_types::Timestamp {
                                seconds: v,
                                nanos: 0,
                            })
                        }
                        Corruption::Nanos(v) => {
                            if let Some(at) = e.occurred_at.as_mut() {
                                at.nanos = v;
                            }
                        }
                        Corruption::Attribute(k, v) => {
                            e.attributes.insert(k.into(), v.into());
                        }
                        Corruption::Rating(score, comment) => {
                            e.rating = Some(v1::Rating {
                                score,
                                comment: comment.into(),
                            })
                        }
                    }
                }
                e
            },
        )
}

/// Whether any field a person types holds a value of [`PATIENT_DATA`]: an
/// invariant independent of the screen's rules.
fn carries_patient_data(event: &Event) -> bool {
    let typed = [
        event.actor.as_str(),
        event.event_id.as_str(),
        event.handoff_id.as_str(),
    ]
    .into_iter()
    .chain(
        event
            .attributes
            .iter()
            .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
    )
    .chain(event.rating.iter().map(|r| r.comment.as_str()));
    typed
        .into_iter()
        .any(|text| PATIENT_DATA.iter().any(|p| text.contains(p)))
}

/// Ingest's rules without the network: what it would append, or nothing.
fn judge(
    catalog: &Catalog,
    live: &BTreeMap<Token, Handoff>,
    wire: v1::HandoffEvent,
) -> Option<(RecordedEvent, Handoff)> {
    let bytes = wire.encode_to_vec();
    let wire = v1::HandoffEvent::decode(bytes.as_slice()).ok()?;
    let mut event = convert::event_from_proto(wire).ok()?;
    event.validate(&Limits::default(), NOW).ok()?;
    if event.kind.as_ref().is_some_and(|k| !catalog.has_kind(k))
        || [&event.supplier, &event.customer]
            .iter()
            .any(|d| d.as_ref().is_some_and(|d| !catalog.has_department(d)))
    {
        return None;
    }
    event.check_patient_data(catalog.attributes.as_ref()).ok()?;
    let next = match live.get(&event.handoff_id) {
        None => Handoff::open(&event).ok()?,
        Some(h) => {
            let mut h = h.clone();
            h.complete(&mut event).ok()?;
            h.apply(&event).ok()?;
            h
        }
    };
    let envelope = Envelope {
        version: next.version,
        recorded_at: NOW,
        sent_by: String::new(),
        backfill: false,
    };
    Some((RecordedEvent { event, envelope }, next))
}

#[test]
fn arbitrary_event_sequences_accept_only_what_keeps_the_invariants() {
    let catalog = Catalog::from_json(CATALOG).expect("catalog");
    let executed = AtomicU64::new(0);
    let accepted_total = AtomicU64::new(0);
    runner(1024)
        .run(
            &proptest::collection::vec(wire_event(), 1..60),
            |sequence| {
                let mut live: BTreeMap<Token, Handoff> = BTreeMap::new();
                let mut recorded: BTreeMap<Token, Vec<Event>> = BTreeMap::new();
                for wire in sequence {
                    executed.fetch_add(1, Ordering::Relaxed);
                    let Some((record, next)) = judge(&catalog, &live, wire) else {
                        continue;
                    };
                    let event = &record.event;
                    accepted_total.fetch_add(1, Ordering::Relaxed);
                    // Routing fields are filled and known to the catalog.
                    prop_assert!(event.kind.as_ref().is_some_and(|k| catalog.has_kind(k)));
                    prop_assert!(event.supplier.is_some() && event.customer.is_some());
                    prop_assert!(event.priority.is_some());
                    prop_assert_ne!(&event.supplier, &event.customer);
                    let history = recorded.entry(event.handoff_id.clone()).or_default();
                    prop_assert_eq!(record.envelope.version, history.len() as u64 + 1);
                    let closed = history.iter().position(|e| e.event_type.is_terminal());
                    if let Some(closed) =
                        closed.filter(|_| event.event_type != EventType::EscalationAcknowledged)
                    {
                        // After the end only a completion's rating (once) or
                        // amendments (any number).
                        prop_assert_eq!(history[closed].event_type, EventType::Completed);
                        prop_assert!(event.event_type.follows_the_end());
                        if event.event_type == EventType::Rated {
                            prop_assert!(!history.iter().any(|e| e.event_type == EventType::Rated));
                        }
                    }
                    prop_assert!(event.occurred_at >= Timestamp(0));
                    // No patient data in anything typed, whichever rule caught it.
                    prop_assert!(!carries_patient_data(event), "{:?}", event);
                    // What is recorded is what the projector reads back.
                    let subject = baton_log::subject::event(
                        event.kind.as_ref().expect("kind"),
                        event.supplier.as_ref().expect("supplier"),
                        event.customer.as_ref().expect("customer"),
                        &event.handoff_id,
                    );
                    let read =
                        baton_log::events::decode(1, &subject, &baton_log::events::encode(&record));
                    prop_assert_eq!(read.as_ref().ok(), Some(&record));
                    history.push(event.clone());
                    live.insert(event.handoff_id.clone(), next);
                }
                // A replay of what was recorded reaches the state ingest kept.
                for (id, history) in &recorded {
                    let replayed = Handoff::replay(history.iter()).expect("replays");
                    prop_assert_eq!(replayed.as_ref(), live.get(id));
                    let priority = replayed.map(|h| h.priority);
                    prop_assert!(priority.is_some_and(|p| Priority::ALL.contains(&p)));
                }
                Ok(())
            },
        )
        .expect("no sequence breaks an invariant");
    let executed = executed.load(Ordering::Relaxed);
    let accepted = accepted_total.load(Ordering::Relaxed);
    assert!(accepted > 0, "the pools never produced a valid event");
    println!("fuzz: {executed} wire events in sequences judged, {accepted} accepted");
    assert!(
        accepted * 20 > executed,
        "too few accepted ({accepted} of {executed}) to reach deep into the lifecycle"
    );
}

/// Disruptions with patient data in any typed field (id, actor, scope key
/// or value, reason) through ingest's checks: none is accepted.
#[test]
fn disruptions_carrying_patient_data_are_never_accepted() {
    let catalog = Catalog::from_json(CATALOG).expect("catalog");
    // Each field good four times in five, patient data otherwise.
    let field = |good: &[&'static str]| prop_oneof![4 => pick(good), 1 => pick(&PATIENT_DATA)];
    let strategy = (
        field(&["d1", "analyzer-2"]),
        field(&["lab-desk", ""]),
        field(&["test", "asset"]),
        field(&["troponin", "chem-2"]),
        field(&["analyzer down"]),
    );
    let (executed, accepted) = (AtomicU64::new(0), AtomicU64::new(0));
    runner(1024)
        .run(&strategy, |(id, actor, key, value, reason)| {
            executed.fetch_add(1, Ordering::Relaxed);
            let wire = v1::DisruptionEvent {
                disruption_id: id.into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "lab".into(),
                occurred_at: Some(prost_types::Timestamp {
                    seconds: 1_799_999_000,
                    nanos: 0,
                }),
                reason: reason.into(),
                actor: actor.into(),
                scope: [(key.to_owned(), value.to_owned())].into(),
                ..Default::default()
            };
            let Ok(event) = convert::disruption_from_proto(wire) else {
                return Ok(());
            };
            if event.validate(&Limits::default(), NOW).is_err()
                || event
                    .check_patient_data(catalog.attributes.as_ref())
                    .is_err()
            {
                return Ok(());
            }
            accepted.fetch_add(1, Ordering::Relaxed);
            let typed = [
                event.disruption_id.as_str(),
                event.actor.as_str(),
                event.reason.as_str(),
            ]
            .into_iter()
            .chain(
                event
                    .scope
                    .iter()
                    .flat_map(|(k, v)| [k.as_str(), v.as_str()]),
            );
            for text in typed {
                prop_assert!(
                    !PATIENT_DATA.iter().any(|p| text.contains(p)),
                    "{:?}",
                    event
                );
            }
            Ok(())
        })
        .expect("no disruption with patient data is accepted");
    let (executed, accepted) = (executed.into_inner(), accepted.into_inner());
    println!("fuzz: {executed} disruptions judged, {accepted} accepted");
    assert!(
        accepted > 0 && accepted < executed,
        "{accepted} of {executed}"
    );
}

/// Writes the seed corpus: `cargo test -p baton-log --test fuzz -- --ignored write_corpus`.
#[test]
#[ignore = "regenerates fuzz/corpus"]
fn write_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let requested = v1::HandoffEvent {
        event_id: "e1".into(),
        handoff_id: "h1".into(),
        r#type: v1::EventType::Requested as i32,
        occurred_at: at(1_799_999_000),
        kind: "repair".into(),
        supplier: "engineering".into(),
        customer: "ward-5".into(),
        priority: v1::Priority::Stat as i32,
        actor: "desk-1".into(),
        attributes: [("asset".to_owned(), "pump-7".to_owned())].into(),
        version: 1,
        recorded_at: at(1_799_999_001),
        sent_by: "ward-5-system".into(),
        ..Default::default()
    };
    let rated = v1::HandoffEvent {
        event_id: "e9".into(),
        r#type: v1::EventType::Rated as i32,
        version: 4,
        rating: Some(v1::Rating {
            score: 4,
            comment: "quick".into(),
        }),
        ..requested.clone()
    };
    let unrecorded = v1::HandoffEvent {
        version: 0,
        recorded_at: None,
        ..requested.clone()
    };
    let disruption = v1::DisruptionEvent {
        disruption_id: "d1".into(),
        phase: v1::DisruptionPhase::Started as i32,
        supplier: "lab".into(),
        occurred_at: at(1_799_999_000),
        reason: "analyzer down".into(),
        scope: [("test".to_owned(), "troponin".to_owned())].into(),
        ..Default::default()
    };
    // Patient data in every typed field, as ingest must refuse it.
    let patient_data = v1::HandoffEvent {
        event_id: "bsn-123456789".into(),
        handoff_id: "bsn123456789".into(),
        actor: "Mr. John Smith".into(),
        attributes: [
            ("bsn123456789".to_owned(), "1 jan 1970".to_owned()),
            ("test".to_owned(), "john.smith at example dot org".to_owned()),
        ]
        .into(),
        rating: Some(v1::Rating {
            score: 2,
            comment: "patient John Smith, \u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}".into(),
        }),
        ..unrecorded.clone()
    };
    let disruption_patient_data = v1::DisruptionEvent {
        disruption_id: "mrn_12345678".into(),
        actor: "DOB 1970-01-01".into(),
        reason: "for mr. smith, January 1, 1970".into(),
        scope: [("dob".to_owned(), "john.smith@example.org".to_owned())].into(),
        ..disruption.clone()
    };
    for (name, bytes) in [
        ("unrecorded-patient-data.bin", patient_data.encode_to_vec()),
        (
            "disruption-patient-data.bin",
            disruption_patient_data.encode_to_vec(),
        ),
        ("recorded-requested.bin", requested.encode_to_vec()),
        ("recorded-rated.bin", rated.encode_to_vec()),
        ("unrecorded-request.bin", unrecorded.encode_to_vec()),
        ("disruption-started.bin", disruption.encode_to_vec()),
        ("garbage-text.bin", b"{\"not\": \"protobuf\"}\n".to_vec()),
        ("empty.bin", Vec::new()),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}
