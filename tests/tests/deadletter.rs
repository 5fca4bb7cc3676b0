//! Garbage published straight onto Baton's subjects by someone else: the
//! projector parks it on `baton.deadletter.<sequence>`, keeps going, and
//! parks nothing twice when it rebuilds.

use std::collections::BTreeMap;

use baton_e2e::{append, later, now_millis, projected, requested, Baton};
use baton_proto::v1::{self, EventType, Priority};
use futures::StreamExt;
use prost::Message as _;

/// One message on `baton.deadletter.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parked {
    /// Its original sequence in the events stream (`Baton-Original-Sequence`).
    sequence: u64,
    subject: String,
    reason: String,
    payload: Vec<u8>,
}

/// Every message in `BATON_DEADLETTER`, in stream order: a message parked
/// twice is here twice.
async fn parked(nats: &async_nats::Client) -> Vec<Parked> {
    let js = async_nats::jetstream::new(nats.clone());
    let Ok(mut stream) = js.get_stream("BATON_DEADLETTER").await else {
        return Vec::new();
    };
    let stored = stream.info().await.expect("stream info").state.messages;
    let mut consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "baton.deadletter.>".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let pending = consumer.info().await.expect("info").num_pending;
    assert_eq!(
        pending, stored,
        "every message of BATON_DEADLETTER is on baton.deadletter.>"
    );
    let mut messages = consumer.messages().await.expect("messages");
    let mut parked = Vec::new();
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
        parked.push(Parked {
            sequence,
            subject: header("Baton-Original-Subject"),
            reason: header("Baton-Deadletter-Reason"),
            payload: message.payload.to_vec(),
        });
    }
    parked
}

/// How often each original sequence was parked.
fn times_parked(parked: &[Parked]) -> BTreeMap<u64, usize> {
    let mut times = BTreeMap::new();
    for p in parked {
        *times.entry(p.sequence).or_insert(0) += 1;
    }
    times
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
            (parked.len() >= published).then_some(parked)
        }
    })
    .await;
    // Every message in the dead-letter stream counts: exactly one per
    // garbage message, none parked twice, none of ours parked.
    assert_eq!(found.len(), published, "parked: {found:?}");
    let once: BTreeMap<u64, usize> = sequences.iter().map(|s| (*s, 1)).collect();
    assert_eq!(times_parked(&found), once);
    for (sequence, (subject, payload)) in sequences.iter().zip(&garbage) {
        let parked = found
            .iter()
            .find(|p| p.sequence == *sequence)
            .expect("parked");
        assert_eq!(&parked.subject, subject);
        assert_eq!(&parked.payload, payload, "the original bytes are kept");
        assert!(
            parked.reason.contains("not a valid hand-off event"),
            "{sequence}: {}",
            parked.reason
        );
    }

    // A rebuild from an empty data dir meets the garbage again and parks
    // nothing twice. The projector parks a message before it applies
    // anything after it, so once the views hold the event appended after
    // the rebuild, every garbage message has been met again.
    baton.projector.take().expect("running").stop().await;
    std::fs::remove_dir_all(baton.data_dir()).expect("delete the views");
    baton.projector = Some(baton.spawn_projector().await);
    let mut query = baton.query().await;
    ingest
        .append(append(later("dl-1", EventType::Completed, t0 + 2000)))
        .await
        .expect("completed");
    projected(&mut query, "dl-1", 3).await;
    let after_rebuild = parked(&nats).await;
    assert_eq!(
        after_rebuild.len(),
        published,
        "a rebuild parked again: {:?}",
        times_parked(&after_rebuild)
    );
    assert_eq!(after_rebuild, found);
    println!(
        "garbage messages published: {published}, parked: {}, parked after a rebuild: {}",
        found.len(),
        after_rebuild.len()
    );
}
