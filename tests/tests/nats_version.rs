//! Ingest and the projector refuse to run against a nats-server older than
//! Baton needs (`baton_log::version::MINIMUM`), naming the version found
//! and the one needed, and touch nothing on it. The old server is Debian
//! 12's nats-server 2.9.10, put in place by `deploy/install-old-nats.sh`.

use std::path::Path;

use baton_e2e::{
    listener,
    secure::{ingest_config, projector_config},
    PATIENCE, TEST_CATALOG,
};
use baton_testkit::NatsServer;
use tokio_util::sync::CancellationToken;

const OLD_NATS_SERVER: &str = "/usr/local/lib/baton-test/nats-server-2.9.10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_projector_refuse_a_nats_server_older_than_they_need() {
    assert!(
        Path::new(OLD_NATS_SERVER).is_file(),
        "{OLD_NATS_SERVER} is missing: run deploy/install-old-nats.sh (deploy/test.sh does)"
    );
    let nats = NatsServer::start_binary(OLD_NATS_SERVER, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");

    let (grpc, http) = (listener().await, listener().await);
    let config = ingest_config(&nats.url(), &catalog, &grpc, &http);
    let ingest = tokio::time::timeout(
        PATIENCE,
        baton_ingest::run(config, grpc, http, CancellationToken::new()),
    )
    .await
    .expect("ingest stops by itself against nats-server 2.9.10")
    .expect_err("ingest refuses nats-server 2.9.10")
    .to_string();

    let (grpc, http) = (listener().await, listener().await);
    let config = projector_config(
        &nats.url(),
        &catalog,
        &dir.path().join("views"),
        &grpc,
        &http,
    );
    let projector = tokio::time::timeout(
        PATIENCE,
        baton_projector::run(config, grpc, http, CancellationToken::new()),
    )
    .await
    .expect("the projector stops by itself against nats-server 2.9.10")
    .expect_err("the projector refuses nats-server 2.9.10")
    .to_string();

    for (service, error) in [("ingest", &ingest), ("projector", &projector)] {
        assert!(
            error.contains("nats-server 2.9.10 is older than 2.11.0, which Baton needs for Nats-Expected-Last-Subject-Sequence-Subject"),
            "{service}: {error}"
        );
    }

    // Refused before anything was created there.
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    for stream in ["BATON_HANDOFFS", "BATON_SLA", "BATON_DEADLETTER"] {
        assert!(
            js.get_stream(stream).await.is_err(),
            "{stream} was created on nats-server 2.9.10"
        );
    }
    println!("ingest: {ingest}\nprojector: {projector}");
}
