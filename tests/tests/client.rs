//! The client crate against the real services: a subscriber gets typed
//! hand-off events and breaches, filtered by supplier.

use baton_client::{subscribe, Filter, Signal};
use baton_e2e::*;
use baton_proto::v1::Priority;
use futures::StreamExt;

async fn next(subscription: &mut baton_client::Subscription) -> baton_client::Received {
    tokio::time::timeout(PATIENCE, subscription.next())
        .await
        .expect("a message in time")
        .expect("subscription open")
        .expect("a Baton message")
}

#[tokio::test]
async fn a_subscriber_gets_typed_events_and_breaches_for_its_supplier() {
    let baton = Baton::start().await;
    let nats = baton.nats_client().await;
    let mut events = subscribe(&nats, &Filter::events().supplier("engineering"))
        .await
        .expect("subscribe to events");
    let mut breaches = subscribe(&nats, &Filter::breaches().supplier("engineering"))
        .await
        .expect("subscribe to breaches");
    let mut ingest = baton_client::ingest(&format!(
        "http://{}",
        baton.ingest.as_ref().expect("ingest").addr
    ))
    .await
    .expect("ingest client");

    // The lab's request is not engineering's business; the repair is.
    for (id, kind, supplier) in [("lab-1", "lab", "lab"), ("pump-9", "repair", "engineering")] {
        ingest
            .append(append(requested(
                id,
                kind,
                supplier,
                "ward-5",
                Priority::Stat,
                now_millis(),
            )))
            .await
            .expect("requested");
    }
    let first = next(&mut events).await;
    let Signal::Event(event) = first.signal else {
        panic!("expected a hand-off event, got {first:?}");
    };
    assert_eq!((event.handoff_id.as_str(), event.version), ("pump-9", 1));

    // Its 2 s STAT target runs out.
    let breach = next(&mut breaches).await;
    assert_eq!(
        breach.subject,
        "baton.sla.breached.repair-response.engineering.ward-5.pump-9"
    );
    let Signal::Breach(b) = breach.signal else {
        panic!("expected a breach, got {breach:?}");
    };
    assert_eq!((b.policy_id.as_str(), b.open), ("repair-response", true));
}
