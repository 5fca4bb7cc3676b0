//! When something goes wrong batonctl says what, in one line: a failure is
//! `error: ...` on standard error and exit code 1, with no backtrace even
//! when `RUST_BACKTRACE` asks for one; a usage error exits with 2; and a
//! reader that goes away (`batonctl tail | head`) ends it quietly.

use std::{process::Stdio, time::Duration};

use baton_e2e::{append, now_millis, requested, Baton};
use baton_proto::v1::Priority;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const PATIENCE: Duration = Duration::from_secs(20);

fn batonctl() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_batonctl"));
    command
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_failure_is_one_line_and_exit_code_1_whatever_rust_backtrace_says() {
    // Nothing listens there.
    let port = baton_testkit::free_port();
    let out = batonctl()
        .arg("--query-url")
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["get", "pump-1"])
        .output()
        .await
        .expect("run batonctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

#[tokio::test]
async fn a_usage_error_exits_with_2() {
    let out = batonctl()
        .args(["append", "--priority", "whenever"])
        .output()
        .await
        .expect("run batonctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_ends_quietly_when_its_reader_goes_away() {
    let baton = Baton::start().await;
    let mut child = batonctl()
        .arg("--nats-url")
        .arg(baton.nats.url())
        .args(["tail", "baton.>"])
        .spawn()
        .expect("start batonctl tail");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let said = tokio::time::timeout(PATIENCE, stderr.next_line())
        .await
        .expect("batonctl tail starts in time")
        .expect("read its stderr");
    assert!(
        said.as_deref().is_some_and(|l| l.starts_with("tailing")),
        "{said:?}"
    );
    // The reader goes away, as `head` does once it has its lines.
    drop(child.stdout.take());

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
        .expect("append");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("batonctl tail ends once it has a line nobody reads")
        .expect("wait for batonctl");
    let mut rest = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(!rest.contains("panicked"), "{rest}");
}
