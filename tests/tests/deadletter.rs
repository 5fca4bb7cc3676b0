//! Garbage published straight onto Baton's subjects by someone else: the
//! projector parks it on `baton.deadletter.<sequence>`, keeps going, and
//! parks nothing twice when it rebuilds.

use std::collections::BTreeMap;

use baton_e2e::{append, later, now_millis, projected, requested, Baton};
use baton_proto::v1::{self, EventType, Priority};
use futures::StreamExt;
use prost::Message as _;

/// The parked messages: (original subject, reason, payload), by original sequence.
async fn parked(nats: &async_nats::Client) -> BTreeMap<u64, (String, String, Vec<u8>)> {
    let js = async_nats::jetstream::new(nats.clone());
    let Ok(stream) = js.get_stream("BATON_DEADLETTER").await else {
        return BTreeMap::new();
    };
    let mut consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "baton.deadletter.>".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let pending = consumer.info().await.expect("info").num_pending;
    let mut messages = consumer.messages().await.expect("messages");
    let mut parked = BTreeMap::new();
    for _ in 0..pending {
        let message = messages.next().await.expect("a message").expect("ok");
        let headers = message.headers.clone().unwrap_or_default();
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        let sequence: u64 = header("Baton-Original-Sequence").parse().expect("sequence");
        assert_eq!(
            message.subject.as_str(),
            format!("baton.deadletter.{sequence}")
        );
        parked.insert(
            sequence,
            (
                header("Baton-Original-Subject"),
                header("Baton-Deadletter-Reason"),
                message.payload.to_vec(),
            ),
        );
    }
    parked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_parked_counted_once_and_the_projector_keeps_going() {
    let mut baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let nats = baton.nats_client().await;
    let js = async_nats::jetstream::new(nats.clone());
    let t0 = now_millis() - 60_000;

    ingest
        .append(append(requested(
            "dl-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Urgent,
            t0,
        )))
        .await
        .expect("requested");

    // Someone else's bytes, straight onto our subjects.
    let not_protobuf = b"\xff\xff\xff not a protobuf message".to_vec();
    let unrecorded = v1::HandoffEvent {
        event_id: "forged".into(),
        handoff_id: "forged-1".into(),
        r#type: EventType::Requested as i32,
        ..Default::default()
    }
    .encode_to_vec();
    let garbage = [
        (
            "baton.handoff.junk-1.repair.engineering.ward-5",
            not_protobuf.clone(),
        ),
        ("baton.handoff.forged-1.lab.lab.ward-6", unrecorded.clone()),
        ("baton.disruption.lab.junk-2", not_protobuf.clone()),
    ];
    let mut sequences = Vec::new();
    for (subject, payload) in &garbage {
        let ack = js
            .publish(*subject, payload.clone().into())
            .await
            .expect("publish")
            .await
            .expect("stored");
        sequences.push(ack.sequence);
    }

    // The projector keeps going: a later event still lands in the views.
    ingest
        .append(append(later("dl-1", EventType::Acknowledged, t0 + 1000)))
        .await
        .expect("acknowledged");
    projected(&mut query, "dl-1", 2).await;

    let published = garbage.len();
    let found = baton_e2e::eventually("three messages parked", || {
        let nats = nats.clone();
        async move {
            let parked = parked(&nats).await;
            (parked.len() == published).then_some(parked)
        }
    })
    .await;
    for (sequence, (subject, payload)) in sequences.iter().zip(&garbage) {
        let (original, reason, bytes) = &found[sequence];
        assert_eq!(original, subject);
        assert_eq!(bytes, payload, "the original bytes are kept");
        assert!(
            reason.contains("not a valid hand-off event"),
            "{sequence}: {reason}"
        );
    }

    // A rebuild from an empty data dir meets the garbage again and parks nothing twice.
    baton.projector.take().expect("running").stop().await;
    std::fs::remove_dir_all(baton.data_dir()).expect("delete the views");
    baton.projector = Some(baton.spawn_projector().await);
    let mut query = baton.query().await;
    ingest
        .append(append(later("dl-1", EventType::Completed, t0 + 2000)))
        .await
        .expect("completed");
    projected(&mut query, "dl-1", 3).await;
    assert_eq!(parked(&nats).await.len(), garbage.len());
    println!(
        "garbage messages published: {}, parked: {}",
        garbage.len(),
        found.len()
    );
}
