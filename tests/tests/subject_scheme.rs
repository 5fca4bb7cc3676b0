//! The events stream records which subject layout it was written under:
//! a stream holding hand-offs under the layout before the id came first is
//! refused with a reason (its histories would not be found by id, so resends
//! and second REQUESTEDs would pass as new), and one holding none is adopted.

use async_nats::jetstream::{self, stream};
use baton_log::{subject, LogError, StreamSettings};
use baton_testkit::NatsServer;

async fn old_events_stream(js: &jetstream::Context) {
    js.create_stream(stream::Config {
        name: subject::EVENTS_STREAM.to_owned(),
        subjects: vec![
            subject::ALL_EVENTS.to_owned(),
            subject::ALL_DISRUPTIONS.to_owned(),
        ],
        storage: stream::StorageType::File,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("a stream as an older Baton created it");
}

fn scheme_of(info: &stream::Info) -> Option<&str> {
    info.config
        .metadata
        .get(subject::SCHEME_KEY)
        .map(String::as_str)
}

#[tokio::test]
async fn a_stream_with_handoffs_under_the_old_layout_is_refused_and_an_empty_one_adopted() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.expect("connect");
    let js = jetstream::new(client);
    let settings = StreamSettings::default();

    // Holding only a disruption: nothing to misread, so it is marked.
    old_events_stream(&js).await;
    js.publish("baton.disruption.lab.analyzer-1", "x".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    baton_log::streams::ensure(&js, &settings)
        .await
        .expect("a stream without hand-offs is adopted");
    let mut events = js.get_stream(subject::EVENTS_STREAM).await.expect("stream");
    let info = events.info().await.expect("info");
    assert_eq!(scheme_of(info), Some(subject::SCHEME));
    baton_log::streams::ensure(&js, &settings)
        .await
        .expect("and accepted from then on");

    // Holding a hand-off event under the old layout (id last): refused.
    js.delete_stream(subject::EVENTS_STREAM)
        .await
        .expect("delete");
    old_events_stream(&js).await;
    js.publish("baton.handoff.repair.engineering.ward-5.pump-1", "x".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    match baton_log::streams::ensure(&js, &settings).await {
        Err(LogError::Misconfigured { stream, reason }) => {
            assert_eq!(stream, subject::EVENTS_STREAM);
            assert!(reason.contains("subject scheme 1"), "{reason}");
        }
        other => panic!("expected the old stream refused, got {other:?}"),
    }
    let mut events = js.get_stream(subject::EVENTS_STREAM).await.expect("stream");
    let info = events.info().await.expect("info");
    assert_eq!(scheme_of(info), None, "a refused stream is left as it was");
}
