//! A three-node JetStream cluster with R3 streams: one node killed under
//! load (the stream's leader, so JetStream must elect another) and brought
//! back. Appends go on while it is down, and nothing acknowledged is lost or
//! doubled.

use baton_e2e::{load::*, *};
use baton_testkit::NatsCluster;

const CLIENTS: usize = 4;
/// Events acknowledged before the fault, while the node is down, and after it is back.
const PHASE: u64 = 150;

async fn stream_info(
    js: &async_nats::jetstream::Context,
) -> Option<async_nats::jetstream::stream::Info> {
    let mut stream = js
        .get_stream(baton_log::subject::EVENTS_STREAM)
        .await
        .ok()?;
    stream.info().await.ok().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_down_loses_nothing_and_appends_go_on() {
    let started = std::time::Instant::now();
    let mut cluster = NatsCluster::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    // Both services get every node's URL, as `--nats-url` takes them.
    let urls = cluster.urls();
    let ingest = start_ingest_with(&urls, &catalog, 3).await;
    let projector = start_projector_with(&urls, &catalog, &dir.path().join("views"), 3).await;

    let nats = connect_cluster(&urls).await;
    let js = async_nats::jetstream::new(nats.clone());
    let info = stream_info(&js).await.expect("the events stream");
    assert_eq!(info.config.num_replicas, 3, "the stream is replicated");

    let load = Load::start(&[ingest.addr], CLIENTS, "cl");
    load.wait_acknowledged(PHASE).await;

    // Kill the node that leads the events stream.
    let leader = eventually("the events stream to have a leader", || {
        let js = js.clone();
        async move { stream_info(&js).await?.cluster?.leader }
    })
    .await;
    let down = cluster.index_of(&leader).expect("the leader is a node");
    cluster.stop_node(down);
    let at_stop = load.acknowledged();
    let unavailable_at_stop = Tally::get(&load.tally().unavailable);
    load.wait_acknowledged(at_stop + PHASE).await;
    let new_leader = eventually("a new leader", || {
        let js = js.clone();
        async move { stream_info(&js).await?.cluster?.leader }
    })
    .await;
    assert_ne!(
        new_leader, leader,
        "another node leads while {leader} is down"
    );
    let acknowledged_while_down = load.acknowledged() - at_stop;
    let unavailable_while_down = Tally::get(&load.tally().unavailable) - unavailable_at_stop;

    // Bring it back; it catches up with the stream as a follower.
    cluster.start_node(down);
    eventually(&format!("{leader} current again"), || {
        let js = js.clone();
        let leader = leader.clone();
        async move {
            let cluster = stream_info(&js).await?.cluster?;
            cluster
                .replicas
                .iter()
                .any(|r| r.name == leader && r.current && !r.offline)
                .then_some(())
        }
    })
    .await;
    load.wait_acknowledged(load.acknowledged() + PHASE).await;
    let finished = load.finish().await;
    let tally = finished.tally.clone();

    let stream = read_stream(&nats).await;
    let audit = audit(&finished.acked, &stream);
    println!("audit before projection: {audit:?}");
    let projected = projected_exactly(
        &baton_proto::v1::query_client::QueryClient::new(channel(projector.addr).await),
        &finished,
    )
    .await;
    println!(
        "cluster: 3 nodes, R3 streams, leader {leader} killed under load from {CLIENTS} clients, \
         {new_leader} took over; {acknowledged_while_down} events acknowledged while it was down \
         ({unavailable_while_down} UNAVAILABLE answers then); {} acknowledged in all ({} hand-offs), \
         {} in the stream, {} projected, {} lost, {} duplicated, {} misplaced; codes {:?}; {:.1}s",
        audit.acknowledged,
        finished.handoffs.len(),
        audit.in_stream,
        projected,
        audit.lost,
        audit.duplicated,
        audit.misplaced,
        tally.codes(),
        started.elapsed().as_secs_f64(),
    );
    assert!(acknowledged_while_down >= PHASE);
    assert_eq!(Tally::get(&tally.hung), 0, "ingest answered every append");
    assert_eq!(audit.lost, 0, "acknowledged events missing from the stream");
    assert_eq!(audit.duplicated, 0, "events in the stream more than once");
    assert_eq!(audit.misplaced, 0);
    assert_eq!(audit.in_stream, audit.acknowledged);
    assert_eq!(projected, audit.acknowledged);

    // Every replica holds the same messages once the node is back.
    let info = stream_info(&js).await.expect("stream info");
    assert_eq!(info.state.messages as usize, audit.acknowledged);
    ingest.stop().await;
    projector.stop().await;
}
