//! `batonctl` over mutual TLS against services that authenticate their
//! callers: it appends as the certificate it presents, and without a client
//! certificate it is refused, naming why.

use std::process::{Command, Output};

use baton_e2e::{
    secure::{start_ingest_configured, start_projector_configured, Pki},
    TEST_CATALOG,
};
use baton_testkit::NatsServer;

const CALLERS: &str = r#"{"callers": [
  {"id": "ward-5-system", "role": "department", "departments": ["ward-5"]}
]}"#;

fn batonctl(pki: &Pki, client: Option<&str>, ingest: u16, query: u16, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batonctl"));
    command
        .arg("--ingest-url")
        .arg(format!("https://localhost:{ingest}"))
        .arg("--query-url")
        .arg(format!("https://localhost:{query}"))
        .arg("--tls-ca")
        .arg(pki.path("ca.crt"));
    if let Some(name) = client {
        command
            .arg("--tls-client-cert")
            .arg(pki.path(&format!("{name}.crt")))
            .arg("--tls-client-key")
            .arg(pki.path(&format!("{name}.key")));
    }
    command.args(args).output().expect("run batonctl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batonctl_appends_and_reads_over_mutual_tls_as_its_certificate() {
    let nats = NatsServer::start();
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    let callers = dir.path().join("callers.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    std::fs::write(&callers, CALLERS).expect("callers");
    let tls = pki.server_args(&callers);
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.tls = tls.clone()).await;
    let projector =
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.tls = tls
        })
        .await;
    pki.wait_serving(ingest.addr, "baton.v1.Ingest").await;
    pki.wait_serving(projector.addr, "baton.v1.Query").await;
    let ward = pki.client("ca", "ward-5-system", true);
    let (i, q) = (ingest.addr.port(), projector.addr.port());
    let request = [
        "append",
        "--handoff",
        "tls-1",
        "--type",
        "requested",
        "--kind",
        "repair",
        "--supplier",
        "engineering",
        "--customer",
        "ward-5",
        "--priority",
        "routine",
    ];

    let refused = batonctl(&pki, None, i, q, &request);
    assert!(!refused.status.success(), "appended without a certificate");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Unauthenticated"), "{said}");

    let appended = batonctl(&pki, Some(&ward), i, q, &request);
    assert!(
        appended.status.success(),
        "{}",
        String::from_utf8_lossy(&appended.stderr)
    );
    let mut shown = String::new();
    for _ in 0..100 {
        let got = batonctl(&pki, Some(&ward), i, q, &["--json", "get", "tls-1"]);
        shown = String::from_utf8_lossy(&got.stdout).into_owned();
        if got.status.success() && shown.contains("ward-5-system") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        shown.contains("\"sent_by\":\"ward-5-system\""),
        "the hand-off read back over TLS, sent by the certificate's caller: {shown}"
    );
    ingest.stop().await;
    projector.stop().await;
}
