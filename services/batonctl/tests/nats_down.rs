//! A projector whose NATS cannot be reached says so, naming the server and
//! what it answered, everywhere someone looks: `/readyz`, a refused query,
//! and `batonctl status`, which exits 1 until the views are current and 0
//! once NATS is back and they are.

use baton_e2e::{eventually, listener, spawn_projector, ProjectorSetup, TEST_CATALOG};
use baton_proto::v1::{self, query_client::QueryClient};
use baton_testkit::NatsServer;
use tokio::process::Command;

async fn batonctl_status(query: std::net::SocketAddr) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("--query-url")
        .arg(format!("http://{query}"))
        .arg("status")
        .output()
        .await
        .expect("run batonctl status");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_says_nats_cannot_be_reached_and_where() {
    let mut nats = NatsServer::start();
    let url = nats.url();
    nats.kill();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let projector = spawn_projector(
        &url,
        &catalog,
        &dir.path().join("views"),
        &ProjectorSetup::default(),
        listener().await,
    )
    .await;
    let web = projector.http.expect("side port");
    let expected = format!(
        "NATS at {url} cannot be reached: {} connection refused",
        url.trim_start_matches("nats://")
    );

    let readyz = eventually("/readyz names the unreachable server", || async {
        let answer = baton_e2e::http::get(web, "/readyz").await;
        (answer.status == 503 && answer.body.contains(&expected)).then_some(answer.body)
    })
    .await;
    assert!(readyz.contains("retrying, at least every 4 s"), "{readyz}");

    let mut query = QueryClient::new(baton_e2e::channel(projector.addr).await);
    let refused = query
        .list_breaches(v1::ListBreachesRequest::default())
        .await
        .expect_err("no figures while the views are not current");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains(&expected), "{refused:?}");
    assert!(!refused.message().contains("being rebuilt"), "{refused:?}");

    let (code, said) = batonctl_status(projector.addr).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("views not current"), "{said}");
    assert!(said.contains(&expected), "{said}");

    // NATS back: the views catch up, and status says so with exit code 0.
    nats.restart();
    let said = eventually("batonctl status exits 0 once current", || async {
        let (code, said) = batonctl_status(projector.addr).await;
        (code == Some(0)).then_some(said)
    })
    .await;
    assert!(said.contains("views current"), "{said}");
    assert_eq!(baton_e2e::http::get(web, "/readyz").await.status, 200);
}
