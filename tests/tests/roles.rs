//! Who may do what, every cell of the table in `docs/security.md`, end to
//! end: real certificates, mutual TLS, real NATS and services. Each cell
//! gets a hand-off of its own in the state the event needs (set up by the
//! importer), is sent by the caller of that role, and must be answered OK
//! or PERMISSION_DENIED as the table says; only the allowed ones reach the
//! stream.

use baton_e2e::{
    count_messages, later, now_millis, requested,
    secure::{start_ingest_configured, start_projector_configured, Pki},
    TEST_CATALOG,
};
use baton_proto::v1::{self, ingest_client::IngestClient, EventType, Priority};
use baton_testkit::NatsServer;
use tonic::{transport::Channel, Code};

const CALLERS: &str = r#"{"callers": [
  {"id": "ward-5-system", "role": "department", "departments": ["ward-5"]},
  {"id": "lab-system", "role": "department", "departments": ["lab"]},
  {"id": "duty-desk", "role": "operator"},
  {"id": "history-import", "role": "importer"}
]}"#;

/// The parties, in the table's column order, by their callers.
const PARTIES: [(&str, &str); 4] = [
    ("customer", "ward-5-system"),
    ("supplier", "lab-system"),
    ("operator", "duty-desk"),
    ("importer", "history-import"),
];

/// The table, as the docs write it: may the customer, the supplier, an
/// operator, an importer do this?
const TABLE: [(&str, [bool; 4]); 15] = [
    ("requested", [true, false, false, true]),
    ("acknowledged", [false, true, false, true]),
    ("started", [false, true, false, true]),
    ("on_hold", [false, true, false, true]),
    ("resumed", [false, true, false, true]),
    ("completed", [false, true, false, true]),
    ("rejected", [false, true, false, true]),
    ("cancelled", [true, false, false, true]),
    ("reassigned", [false, true, false, true]),
    ("reprioritized, raising", [true, true, true, true]),
    ("reprioritized, lowering", [true, false, true, true]),
    ("rated", [true, false, false, true]),
    ("amended", [false, true, false, true]),
    ("escalation_acknowledged", [false, false, true, true]),
    ("disruption started", [false, true, false, true]),
];

fn append(event: v1::HandoffEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill: false,
    }
}

/// What a cell needs first (appended by the importer), and the event it sends.
fn cell(action: &str, id: &str, t0: i64) -> (Vec<v1::HandoffEvent>, Option<v1::HandoffEvent>) {
    let request = |priority| requested(id, "lab", "lab", "ward-5", priority, t0);
    let step = |t: EventType, at: i64| later(id, t, t0 + at);
    let event_type = match action {
        "requested" => return (Vec::new(), Some(request(Priority::Routine))),
        "disruption started" => return (Vec::new(), None),
        "reprioritized, raising" => {
            let mut raise = step(EventType::Reprioritized, 2_000);
            raise.priority = Priority::Stat as i32;
            return (vec![request(Priority::Routine)], Some(raise));
        }
        "reprioritized, lowering" => {
            let mut lower = step(EventType::Reprioritized, 2_000);
            lower.priority = Priority::Routine as i32;
            return (vec![request(Priority::Stat)], Some(lower));
        }
        "resumed" => {
            return (
                vec![request(Priority::Routine), step(EventType::OnHold, 1_000)],
                Some(step(EventType::Resumed, 2_000)),
            )
        }
        "rated" => {
            let mut rating = step(EventType::Rated, 2_000);
            rating.rating = Some(v1::Rating {
                score: 4,
                comment: "quick".into(),
            });
            return (
                vec![
                    request(Priority::Routine),
                    step(EventType::Completed, 1_000),
                ],
                Some(rating),
            );
        }
        "amended" => {
            return (
                vec![
                    request(Priority::Routine),
                    step(EventType::Completed, 1_000),
                ],
                Some(step(EventType::Amended, 2_000)),
            );
        }
        "escalation_acknowledged" => EventType::EscalationAcknowledged,
        "acknowledged" => EventType::Acknowledged,
        "started" => EventType::Started,
        "on_hold" => EventType::OnHold,
        "completed" => EventType::Completed,
        "rejected" => EventType::Rejected,
        "cancelled" => EventType::Cancelled,
        "reassigned" => EventType::Reassigned,
        other => panic!("no cell {other}"),
    };
    let mut event = step(event_type, 2_000);
    if event_type == EventType::Reassigned {
        event.supplier = "engineering".into();
    }
    (vec![request(Priority::Routine)], Some(event))
}

async fn answer<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cell_of_the_table_is_what_ingest_answers() {
    let nats = NatsServer::start();
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    let callers = dir.path().join("callers.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    std::fs::write(&callers, CALLERS).expect("callers");
    let tls = pki.server_args(&callers);
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.tls = tls.clone()).await;
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.tls = tls
        })
        .await;
    pki.wait_serving(ingest.addr, "baton.v1.Ingest").await;
    let mut clients: Vec<IngestClient<Channel>> = Vec::new();
    for (_, caller) in PARTIES {
        let name = pki.client("ca", caller, true);
        let channel = pki.channel(ingest.addr, Some(&name)).await.expect("tls");
        clients.push(IngestClient::new(channel));
    }
    let mut importer = clients[3].clone();

    let t0 = now_millis() - 60_000;
    let mut stored = 0u64;
    let mut wrong = Vec::new();
    for (row, (action, allowed)) in TABLE.iter().enumerate() {
        for (column, (party, _)) in PARTIES.iter().enumerate() {
            let id = format!("cell-{row}-{column}");
            let (setup, event) = cell(action, &id, t0);
            for e in setup {
                importer
                    .append(append(e))
                    .await
                    .expect("setup by the importer");
                stored += 1;
            }
            let code = match event {
                Some(event) => answer(clients[column].append(append(event)).await).await,
                None => {
                    let disruption = v1::DisruptionEvent {
                        disruption_id: id.clone(),
                        phase: v1::DisruptionPhase::Started as i32,
                        supplier: "lab".into(),
                        reason: "analyzer down".into(),
                        occurred_at: Some(baton_e2e::timestamp(t0)),
                        ..Default::default()
                    };
                    let request = v1::AppendDisruptionRequest {
                        disruption: Some(disruption),
                    };
                    answer(clients[column].append_disruption(request).await).await
                }
            };
            let expected = if allowed[column] {
                Code::Ok
            } else {
                Code::PermissionDenied
            };
            if code == Code::Ok {
                stored += 1;
            }
            if code != expected {
                wrong.push(format!(
                    "{action} by the {party}: {code:?}, the table says {expected:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that disagree:\n{}",
        wrong.join("\n")
    );
    let client = async_nats::connect(nats.url()).await.expect("nats");
    assert_eq!(
        count_messages(&client, "BATON_HANDOFFS", ">").await,
        stored,
        "only the allowed events reached the stream"
    );
    eprintln!(
        "who may do what: {} cells, {} events stored",
        TABLE.len() * PARTIES.len(),
        stored
    );
    ingest.stop().await;
    projector.stop().await;
}
