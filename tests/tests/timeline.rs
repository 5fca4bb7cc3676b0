//! A hand-off's timeline is read from the log of record: the views keep only
//! what its clocks read of its events. Real NATS, real services.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority};

const MIN: i64 = 60_000;

/// What the views no longer keep (ids, actors, attributes) still reaches
/// GetHandoff and the board whole; with NATS away the board shows the
/// events as the clocks read them and says why, GetHandoff says the log is
/// unreadable, and neither serves a timeline the views never applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_comes_whole_from_the_log_and_says_so_when_it_cannot() {
    let mut baton = Baton::start().await;
    let web = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("side port");
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 20 * MIN;
    let mut request = requested(
        "pump-9",
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        t0,
    );
    request
        .attributes
        .insert("asset".into(), "infusion-pump-9".into());
    ingest.append(append(request)).await.expect("requested");
    let mut ack = later("pump-9", EventType::Acknowledged, t0 + 5 * MIN);
    ack.actor = "tech-on-call".into();
    let ack_id = ack.event_id.clone();
    ingest.append(append(ack)).await.expect("acknowledged");

    let handoff = projected(&mut query, "pump-9", 2).await;
    let told: Vec<(&str, &str, Option<&String>)> = handoff
        .events
        .iter()
        .map(|e| {
            (
                e.event_id.as_str(),
                e.actor.as_str(),
                e.attributes.get("asset"),
            )
        })
        .collect();
    let asset = "infusion-pump-9".to_owned();
    assert_eq!(
        told,
        [
            ("pump-9-requested", "test-system", Some(&asset)),
            (ack_id.as_str(), "tech-on-call", None),
        ]
    );
    let page = http::get(web, "/handoff/pump-9").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("by tech-on-call"), "{}", page.body);
    assert!(!page.body.contains("could not be read from the log"));

    baton.nats.kill();
    let refused = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "pump-9".into(),
        })
        .await
        .expect_err("no timeline without the log");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("could not be read from the log"),
        "{refused:?}"
    );
    let page = http::get(web, "/handoff/pump-9").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("could not be read from the log"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<strong>acknowledged</strong>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("by tech-on-call"), "{}", page.body);

    baton.nats.restart();
    let whole = eventually("the timeline whole again", || {
        let mut query = query.clone();
        async move {
            let r = query
                .get_handoff(v1::GetHandoffRequest {
                    handoff_id: "pump-9".into(),
                })
                .await
                .ok()?;
            r.into_inner().handoff.filter(|h| h.events.len() == 2)
        }
    })
    .await;
    assert_eq!(whole.events[1].actor, "tech-on-call");
}
