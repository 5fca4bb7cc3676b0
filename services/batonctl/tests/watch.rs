//! `batonctl watch` (breaches, and warnings with `--warnings`) and
//! `batonctl compliance` against the real services: each shows what the
//! Query service streamed or answered.

use std::{process::Stdio, time::Duration};

use baton_e2e::{append, eventually, now_millis, requested, Baton};
use baton_proto::v1::Priority;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

/// A STAT repair whose promise warns after 1 s and breaks after 2 s.
const CATALOG: &str = r#"{
  "departments": [{"id": "engineering", "name": "Equipment engineering"}, {"id": "ward-5", "name": "Ward 5"}],
  "kinds": ["repair"],
  "promises": [{"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
                "targets": {"routine": "30m", "stat": "2s"}, "warn_at": 0.5}]
}"#;

const PATIENCE: Duration = Duration::from_secs(20);

fn batonctl(baton: &Baton) -> Command {
    let query = baton.projector.as_ref().expect("projector running").addr;
    let mut command = Command::new(env!("CARGO_BIN_EXE_batonctl"));
    command.arg("--query-url").arg(format!("http://{query}"));
    command
}

/// `batonctl watch` with `args`, once it says it is watching (the projector
/// then relays it every signal from that moment), and its output lines.
async fn watch(baton: &Baton, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = batonctl(baton)
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start batonctl watch");
    let stderr = child.stderr.take().expect("stderr piped");
    let said = tokio::time::timeout(PATIENCE, BufReader::new(stderr).lines().next_line())
        .await
        .expect("batonctl watch starts in time")
        .expect("read its stderr");
    assert!(
        said.as_deref()
            .is_some_and(|l| l.starts_with("watching for")),
        "{said:?}"
    );
    let stdout = child.stdout.take().expect("stdout piped");
    (child, BufReader::new(stdout).lines())
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>, what: &str) -> String {
    tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
        .expect("read batonctl's output")
        .unwrap_or_else(|| panic!("batonctl ended before {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_warnings_and_breaches_and_compliance_counts_them() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let (_warnings, mut warned) = watch(&baton, &["--warnings"]).await;
    let (_breaches, mut broken) = watch(&baton, &["--supplier", "engineering"]).await;

    let mut ingest = baton.ingest().await;
    ingest
        .append(append(requested(
            "pump-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            now_millis(),
        )))
        .await
        .expect("request");

    let warning = next_line(&mut warned, "the warning").await;
    assert!(
        warning.starts_with("WARNING repair-response engineering -> ward-5 pump-1"),
        "{warning}"
    );
    let breach = next_line(&mut broken, "the breach").await;
    assert!(
        breach.starts_with("BREACH repair-response") && breach.contains("hand-off pump-1"),
        "{breach}"
    );

    let figures = eventually("the breach counted", || {
        let mut compliance = batonctl(&baton);
        async move {
            let out = compliance
                .args(["--json", "compliance", "repair-response"])
                .output()
                .await
                .expect("run batonctl compliance");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let figures: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("compliance as JSON");
            (figures["breached"] == 1).then_some(figures)
        }
    })
    .await;
    assert_eq!(figures["policy_id"], "repair-response");
    assert_eq!(figures["warned"], 1);
}
