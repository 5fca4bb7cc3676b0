//! The services talk to a nats-server that requires TLS and verifies client
//! certificates; a client without TLS or without a certificate is refused.

use std::time::Duration;

use baton_e2e::{
    append, now_millis, projected, requested,
    secure::{start_ingest_configured, start_projector_configured, Pki},
    wait_serving, TEST_CATALOG,
};
use baton_log::NatsSecurity;
use baton_proto::v1::{ingest_client::IngestClient, query_client::QueryClient, Priority};
use baton_testkit::NatsServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_reach_nats_over_mutual_tls_and_plaintext_is_refused() {
    let pki = Pki::new();
    let service = pki.client("ca", "baton-service", true);
    let path = |f: &str| pki.path(f).to_str().expect("utf-8 path").to_owned();
    let nats = NatsServer::start_with(&[
        "--tls",
        "--tlscert",
        &path("server.crt"),
        "--tlskey",
        &path("server.key"),
        "--tlsverify",
        "--tlscacert",
        &path("ca.crt"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let security = NatsSecurity {
        nats_ca: Some(pki.path("ca.crt")),
        nats_cert: Some(pki.path(&format!("{service}.crt"))),
        nats_key: Some(pki.path(&format!("{service}.key"))),
        ..Default::default()
    };

    // Without TLS, or with TLS but no client certificate: refused.
    let refused = |options: async_nats::ConnectOptions| {
        let url = nats.url();
        async move {
            tokio::time::timeout(Duration::from_secs(10), options.connect(url))
                .await
                .map(|r| r.is_err())
                .unwrap_or(true)
        }
    };
    assert!(refused(async_nats::ConnectOptions::new()).await);
    assert!(
        refused(
            async_nats::ConnectOptions::new()
                .add_root_certificates(pki.path("ca.crt"))
                .require_tls(true)
        )
        .await
    );

    let ingest = {
        let security = security.clone();
        start_ingest_configured(&nats.url(), &catalog, |c| c.nats = security).await
    };
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.nats = security
        })
        .await;
    wait_serving(ingest.addr, "baton.v1.Ingest").await;
    wait_serving(projector.addr, "baton.v1.Query").await;
    let mut ingest_client = IngestClient::new(baton_e2e::channel(ingest.addr).await);
    ingest_client
        .append(append(requested(
            "tls-1",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            now_millis() - 1000,
        )))
        .await
        .expect("appended over TLS");
    let mut query = QueryClient::new(baton_e2e::channel(projector.addr).await);
    projected(&mut query, "tls-1", 1).await;
    ingest.stop().await;
    projector.stop().await;
}
