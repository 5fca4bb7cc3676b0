//! `batonctl get` shows how late each event was entered, and every breach a
//! late entry withdrew with its cause, against the real services.

use std::process::Command;

use baton_e2e::{
    append, count_messages, eventually, later, now_millis, projected, requested, Baton,
};
use baton_proto::v1::{EventType, Priority};

/// A STAT transport whose promise breaks in 2 s, and late entries that
/// count up to an hour back.
const CATALOG: &str = r#"{
  "departments": [{"id": "porters", "name": "Patient transport"}, {"id": "ward-5", "name": "Ward 5"}],
  "kinds": ["transport"],
  "promises": [{"id": "transport-pickup", "kind": "transport", "start": "requested", "stop": ["started"],
                "targets": {"routine": "30m", "stat": "2s"}, "max_entry_lag": "1h"}]
}"#;

fn get(baton: &Baton, json: bool) -> String {
    let query = baton.projector.as_ref().expect("projector running").addr;
    let mut command = Command::new(env!("CARGO_BIN_EXE_batonctl"));
    command.arg("--query-url").arg(format!("http://{query}"));
    if json {
        command.arg("--json");
    }
    let out = command
        .arg("get")
        .arg("pickup-1")
        .output()
        .expect("run batonctl get");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_shows_entry_lags_and_withdrawn_breaches_with_their_cause() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let at = now_millis();
    ingest
        .append(append(requested(
            "pickup-1",
            "transport",
            "porters",
            "ward-5",
            Priority::Stat,
            at,
        )))
        .await
        .expect("request");
    let nats = baton.nats_client().await;
    eventually("the breach announced", || {
        let nats = nats.clone();
        async move {
            (count_messages(&nats, "BATON_SLA", "baton.sla.breached.>").await == 1).then_some(())
        }
    })
    .await;
    // Entered after the breach, dated inside the 2 s: the promise held.
    ingest
        .append(append(later("pickup-1", EventType::Started, at + 1_000)))
        .await
        .expect("started");
    projected(&mut query, "pickup-1", 2).await;

    let text = get(&baton, false);
    assert!(text.contains("entered"), "{text}");
    let started = text
        .lines()
        .find(|l| l.contains("started"))
        .expect("the started line");
    assert!(
        !started.contains("entered 0ms later"),
        "a late entry: {started}"
    );
    assert!(
        text.contains("corrections (breaches withdrawn by a late event):"),
        "{text}"
    );
    assert!(text.contains("(the supplier's own late entry)"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&get(&baton, true)).expect("json");
    assert_eq!(json["corrections"][0]["policy_id"], "transport-pickup");
    assert_eq!(json["corrections"][0]["cause"]["by_supplier"], true);
    assert_eq!(json["corrections"][0]["cause"]["type"], "started");
    assert_ne!(json["events"][1]["entry_lag"], "-");
}
