//! `batonctl ack` acknowledges a hand-off's escalated breach as the given
//! person, against the real services, and `batonctl breaches` shows who.

use std::process::Command;

use baton_e2e::{append, eventually, now_millis, requested, Baton};
use baton_proto::v1::{self, Priority};

const CATALOG: &str = r#"{
  "max_entry_lag": "1h",
  "departments": [{"id": "engineering", "name": "Equipment engineering"}, {"id": "ward-5", "name": "Ward 5"}],
  "kinds": ["repair"],
  "promises": [{"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                "targets": {"routine": "30m", "stat": "2s"}, "escalate_to": "duty-coordinator"}]
}"#;

fn batonctl(baton: &Baton, args: &[&str]) -> String {
    let ingest = baton.ingest.as_ref().expect("ingest running").addr;
    let query = baton.projector.as_ref().expect("projector running").addr;
    let out = Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("--ingest-url")
        .arg(format!("http://{ingest}"))
        .arg("--query-url")
        .arg(format!("http://{query}"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run batonctl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_names_who_acknowledged_the_escalated_breach() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let query = baton.query().await;
    ingest
        .append(append(requested(
            "pump-5",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            now_millis() - 3_000,
        )))
        .await
        .expect("request");
    eventually("the breach listed", || {
        let mut query = query.clone();
        async move {
            let listed = query
                .list_breaches(v1::ListBreachesRequest::default())
                .await
                .ok()?
                .into_inner()
                .breaches;
            (!listed.is_empty()).then_some(())
        }
    })
    .await;

    let said: serde_json::Value =
        serde_json::from_str(&batonctl(&baton, &["ack", "pump-5", "--by", "duty-desk-3"]))
            .expect("JSON");
    assert_eq!(said["acknowledged_by"], "duty-desk-3");
    let breach = eventually("the breach names who acknowledged it", || {
        let mut query = query.clone();
        async move {
            let b = query
                .list_breaches(v1::ListBreachesRequest::default())
                .await
                .ok()?
                .into_inner()
                .breaches
                .into_iter()
                .next()?;
            (!b.acknowledged_by.is_empty()).then_some(b)
        }
    })
    .await;
    assert_eq!(breach.acknowledged_by, "duty-desk-3");
    let shown = batonctl(&baton, &["breaches"]);
    assert!(shown.contains("duty-desk-3"), "{shown}");
}
