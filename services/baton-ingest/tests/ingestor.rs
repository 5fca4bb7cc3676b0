//! Ingest acting on what the append rules decide, against a real
//! nats-server: an append is stored once and conditionally, a resend is
//! answered from the stream by a replica that never saw it, an append
//! overtaken by another replica is decided again, and a refusal stores
//! nothing. The rules themselves are tested in `baton_domain::append`.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use baton_domain::{
    append::DecideError, event::Limits, lifecycle::LifecycleError, Catalog, Event, EventType,
    Priority, Timestamp, Token,
};
use baton_ingest::{error::IngestError, ingestor::Ingestor};
use baton_log::{EventLog, StreamSettings};
use baton_testkit::NatsServer;
use prometheus_client::metrics::counter::Counter;

const CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "E"}, {"id": "ward-5", "name": "W5"}],
  "kinds": ["repair"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m"}}
  ]
}"#;

/// The receiver's clock in every test; events are dated just before it.
const NOW: Timestamp = Timestamp(1_750_000_000_000);

fn token(s: &str) -> Token {
    Token::parse(s).expect("a token")
}

fn event(handoff: &str, event_type: EventType, minute: i64) -> Event {
    let requested = event_type == EventType::Requested;
    let routing = |s: &str| requested.then(|| token(s));
    Event {
        event_id: format!("{handoff}-{}", event_type.name()),
        handoff_id: token(handoff),
        event_type,
        occurred_at: Timestamp(NOW.0 - 3_600_000 + minute * 60_000),
        kind: routing("repair"),
        supplier: routing("engineering"),
        customer: routing("ward-5"),
        priority: requested.then_some(Priority::Routine),
        actor: "desk-1".into(),
        attributes: BTreeMap::new(),
        rating: None,
    }
}

/// A nats-server with the streams, and a way to start ingest replicas on it.
struct Rig {
    _nats: NatsServer,
    log: EventLog,
    catalog: Arc<Catalog>,
}

impl Rig {
    async fn start() -> Rig {
        let nats = NatsServer::start();
        let client = baton_log::connect_secured(&nats.url(), "ingest-test", &Default::default())
            .await
            .expect("connect");
        let log = EventLog::new(client, Duration::from_secs(5));
        log.check_server().await.expect("a supported server");
        baton_log::streams::ensure(log.jetstream(), &StreamSettings::default())
            .await
            .expect("streams");
        let catalog = Arc::new(Catalog::from_json(CATALOG).expect("catalog"));
        Rig {
            _nats: nats,
            log,
            catalog,
        }
    }

    /// A replica with a cache of its own, counting its conflicts in `conflicts`.
    fn replica(&self, conflicts: Counter) -> Ingestor {
        Ingestor::new(
            self.log.clone(),
            self.catalog.clone(),
            Limits::default(),
            1_000,
            1 << 20,
        )
        .counting_conflicts(conflicts)
    }

    async fn stored(&self, handoff: &str) -> Vec<(u64, EventType, u64)> {
        self.log
            .history(&token(handoff))
            .await
            .expect("history")
            .into_iter()
            .map(|r| {
                (
                    r.sequence,
                    r.record.event.event_type,
                    r.record.envelope.version,
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn a_resend_is_answered_from_the_stream_by_a_replica_that_never_saw_it() {
    let rig = Rig::start().await;
    let first = rig.replica(Counter::default());
    first
        .append_as(event("h1", EventType::Requested, 0), false, None, NOW, None)
        .await
        .expect("request");
    let ack = first
        .append_as(
            event("h1", EventType::Acknowledged, 1),
            false,
            None,
            NOW,
            None,
        )
        .await
        .expect("acknowledgement");
    assert_eq!((ack.version, ack.duplicate), (2, false));

    let second = rig.replica(Counter::default());
    let resent = second
        .append_as(
            event("h1", EventType::Acknowledged, 1),
            false,
            None,
            NOW,
            None,
        )
        .await
        .expect("resend");
    assert_eq!(
        (resent.version, resent.sequence, resent.duplicate),
        (2, ack.sequence, true)
    );
    assert_eq!(rig.stored("h1").await.len(), 2, "stored once");
}

#[tokio::test]
async fn an_append_overtaken_by_another_replica_is_decided_again() {
    let rig = Rig::start().await;
    let conflicts = Counter::default();
    let first = rig.replica(conflicts.clone());
    let second = rig.replica(Counter::default());
    first
        .append_as(event("h1", EventType::Requested, 0), false, None, NOW, None)
        .await
        .expect("request");
    // The second replica appends behind the first one's back: the first
    // one's cache still has the hand-off at version 1.
    second
        .append_as(
            event("h1", EventType::Acknowledged, 1),
            false,
            None,
            NOW,
            None,
        )
        .await
        .expect("acknowledgement");
    let started = first
        .append_as(event("h1", EventType::Started, 2), false, None, NOW, None)
        .await
        .expect("started, after reading the stream again");
    assert_eq!(started.version, 3);
    assert_eq!(
        conflicts.get(),
        1,
        "JetStream refused the stale append once"
    );
    let stored: Vec<_> = rig
        .stored("h1")
        .await
        .into_iter()
        .map(|(_, t, v)| (t, v))
        .collect();
    assert_eq!(
        stored,
        [
            (EventType::Requested, 1),
            (EventType::Acknowledged, 2),
            (EventType::Started, 3)
        ]
    );
}

#[tokio::test]
async fn a_refused_event_stores_nothing() {
    let rig = Rig::start().await;
    let ingest = rig.replica(Counter::default());
    ingest
        .append_as(event("h1", EventType::Requested, 0), false, None, NOW, None)
        .await
        .expect("request");
    let mut reused = event("h1", EventType::Requested, 0);
    reused.occurred_at = Timestamp(reused.occurred_at.0 + 1);
    let refused = ingest.append_as(reused, false, None, NOW, None).await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Refused(DecideError::IdReused {
                version: 1,
                ..
            }))
        ),
        "{refused:?}"
    );
    // Refused events that name their routing, so that nothing but the
    // refusal keeps them out of the stream.
    let mut again = event("h1", EventType::Requested, 1);
    again.event_id = "h1-requested-again".into();
    let refused = ingest.append_as(again, false, None, NOW, None).await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Refused(DecideError::Lifecycle(
                LifecycleError::AlreadyRequested(_)
            )))
        ),
        "{refused:?}"
    );
    let mut ack = event("h1", EventType::Acknowledged, 1);
    (ack.kind, ack.supplier, ack.customer) = (
        Some(token("repair")),
        Some(token("engineering")),
        Some(token("ward-5")),
    );
    let refused = ingest.append_as(ack, false, Some(4), NOW, None).await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Refused(DecideError::VersionMismatch {
                expected: 4,
                actual: 1
            }))
        ),
        "{refused:?}"
    );
    let refused = ingest
        .append_as(
            event("h2", EventType::Acknowledged, 1),
            false,
            None,
            NOW,
            None,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(IngestError::Refused(DecideError::Lifecycle(_)))
        ),
        "{refused:?}"
    );
    assert_eq!(rig.stored("h1").await.len(), 1);
    assert!(rig.stored("h2").await.is_empty());
}
