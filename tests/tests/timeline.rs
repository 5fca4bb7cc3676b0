//! A hand-off's timeline is read from the log of record: the views keep only
//! what its clocks read of its events. Real NATS, real services.

use baton_e2e::*;
use baton_proto::v1::{self, query_client::QueryClient, EventType, Priority};

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

/// With `--views-retention 1h`, a repair closed two hours ago is retired
/// once stream time moves on: the hand-off lists no longer show it, its
/// figures stay, and GetHandoff and its board page tell it from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_hand_off_keeps_its_figures_and_is_told_from_the_log() {
    let mut baton = Baton::start().await;
    baton.projector.take().expect("projector").stop().await;
    let setup = ProjectorSetup {
        views_retention: std::time::Duration::from_secs(3600),
        ..ProjectorSetup::default()
    };
    let projector = start_projector_setup(
        &baton.nats.url(),
        &baton.catalog_path(),
        &baton.data_dir(),
        &setup,
        listener().await,
    )
    .await;
    let web = projector.http.expect("side port");
    let mut ingest = baton.ingest().await;
    let mut query = QueryClient::new(channel(projector.addr).await);
    let t0 = now_millis() - 3 * 60 * MIN;
    let mut request = requested(
        "old-1",
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        t0,
    );
    request
        .attributes
        .insert("asset".into(), "bed-lift-2".into());
    ingest.append(append(request)).await.expect("requested");
    for (at, event_type) in [(10, EventType::Acknowledged), (20, EventType::Completed)] {
        let event = later("old-1", event_type, t0 + at * MIN);
        ingest.append(append(event)).await.expect("appended");
    }
    projected(&mut query, "old-1", 3).await;
    // A new request moves stream time on past old-1's closing + 1h.
    let fresh = requested(
        "new-1",
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        now_millis(),
    );
    ingest.append(append(fresh)).await.expect("requested");

    let listed = eventually("old-1 retired from the lists", || {
        let mut query = query.clone();
        async move {
            let listed = query
                .list_handoffs(v1::ListHandoffsRequest::default())
                .await
                .ok()?
                .into_inner();
            let ids: Vec<String> = listed.handoffs.into_iter().map(|h| h.handoff_id).collect();
            (ids == ["new-1"]).then_some(ids)
        }
    })
    .await;
    assert_eq!(listed, ["new-1"]);
    let figures = compliance(&mut query, "repair-response").await;
    assert_eq!(
        (figures.total, figures.met, figures.open),
        (2, 1, 1),
        "{figures:?}"
    );

    let told = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "old-1".into(),
        })
        .await
        .expect("a retired hand-off is answered")
        .into_inner()
        .handoff
        .expect("hand-off");
    assert_eq!(told.status(), v1::HandoffStatus::Completed);
    assert_eq!(told.events.len(), 3);
    assert_eq!(
        told.events[0].attributes.get("asset").map(String::as_str),
        Some("bed-lift-2")
    );
    assert_eq!(told.slas.len(), 1);
    assert_eq!(told.slas[0].state(), v1::SlaState::Met);
    let page = http::get(web, "/handoff/old-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("bed-lift-2"), "{}", page.body);
    let unknown = query
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "never-1".into(),
        })
        .await
        .expect_err("never requested");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    projector.stop().await;
}
