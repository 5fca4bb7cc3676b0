//! A burst far beyond what ingest handles at once: never more than
//! `--max-in-flight` requests are handled at once (counted by ingest itself,
//! `baton_ingest_in_flight_max`), and the burst reaches that limit; the
//! excess is shed with RESOURCE_EXHAUSTED at once (nothing queues without
//! bound), every event that was acknowledged is in the stream, none that was
//! shed is, and a client retrying the shed ones gets them all in.

use std::collections::BTreeSet;

use baton_e2e::{
    append, count_messages, http::metric, now_millis, requested, secure::start_ingest_configured,
    wait_serving,
};
use baton_proto::v1::{ingest_client::IngestClient, Priority};
use baton_testkit::NatsServer;
use tonic::Code;

const LIMIT: usize = 4;
const BURST: usize = 400;
const CONNECTIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_shed_with_resource_exhausted_and_nothing_acknowledged_is_lost() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, baton_e2e::TEST_CATALOG).expect("catalog");
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.max_in_flight = LIMIT).await;
    wait_serving(ingest.addr, "baton.v1.Ingest").await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(IngestClient::new(baton_e2e::channel(ingest.addr).await));
    }
    let t0 = now_millis() - 60_000;
    let request = |n: usize| {
        append(requested(
            &format!("burst-{n}"),
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            t0,
        ))
    };

    // Everything at once.
    let mut tasks = Vec::new();
    for n in 0..BURST {
        let mut client = clients[n % CONNECTIONS].clone();
        let request = request(n);
        tasks.push(tokio::spawn(async move {
            (n, client.append(request).await.map(|r| r.into_inner()))
        }));
    }
    let mut acknowledged = BTreeSet::new();
    let mut shed = BTreeSet::new();
    for task in tasks {
        let (n, result) = task.await.expect("task");
        match result {
            Ok(_) => {
                acknowledged.insert(n);
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                assert!(status.message().contains("retry"), "{status:?}");
                shed.insert(n);
            }
            Err(status) => panic!("{n}: unexpected {status:?}"),
        }
    }
    assert!(
        !shed.is_empty(),
        "a burst {BURST} wide at a limit of {LIMIT} shed nothing"
    );
    assert!(!acknowledged.is_empty());

    // Counted in the server: never more than the limit at once, and the
    // burst got there (or this test would prove nothing about the limit).
    let side = ingest.http.expect("ingest's side port");
    let most = metric(side, "baton_ingest_in_flight_max")
        .await
        .expect("baton_ingest_in_flight_max served");
    assert!(
        most <= LIMIT as f64,
        "{most} requests were handled at once at --max-in-flight {LIMIT}"
    );
    assert_eq!(
        most, LIMIT as f64,
        "a burst {BURST} wide never had {LIMIT} requests in flight"
    );
    assert_eq!(metric(side, "baton_ingest_in_flight").await, Some(0.0));

    // Acknowledged: in the stream, each once. Shed: not.
    let client = async_nats::connect(nats.url()).await.expect("nats");
    assert_eq!(
        count_messages(&client, "BATON_HANDOFFS", "baton.handoff.>").await,
        acknowledged.len() as u64
    );
    for n in shed.iter().take(5) {
        let filter = format!("baton.handoff.burst-{n}.>");
        assert_eq!(count_messages(&client, "BATON_HANDOFFS", &filter).await, 0);
    }

    // The client retries what was shed, one at a time: all land.
    let mut client_0 = clients[0].clone();
    for n in &shed {
        client_0.append(request(*n)).await.expect("a retry lands");
    }
    assert_eq!(
        count_messages(&client, "BATON_HANDOFFS", "baton.handoff.>").await,
        BURST as u64
    );
    assert_eq!(
        metric(side, "baton_ingest_in_flight_max").await,
        Some(LIMIT as f64),
        "the high-water mark after the retries, one at a time"
    );
    println!(
        "burst of {BURST} at a limit of {LIMIT}: at most {most} in flight at once, {} acknowledged, {} shed with RESOURCE_EXHAUSTED, all {BURST} in after retries, 0 lost, 0 duplicated",
        acknowledged.len(),
        shed.len()
    );
    ingest.stop().await;
}
