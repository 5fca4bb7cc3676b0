//! A service that cannot start says why in one line and exits 1: no
//! backtrace whatever `RUST_BACKTRACE` says, the catalog's mistake located
//! once, and no colour codes in a log that is not a terminal.

use std::process::Command;

#[test]
fn a_bad_catalog_is_one_plain_line_and_exit_code_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(
        &catalog,
        "{\"departments\": [{\"id\": \"lab\", \"name\": \"Lab\"}], \"kinds\": [\"x\"],\n \"promises\": [{\"id\": \"p\", \"kind\": \"x\"}]}",
    )
    .expect("write the catalog");
    let out = Command::new(env!("CARGO_BIN_EXE_baton-ingest"))
        .arg("--catalog")
        .arg(&catalog)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("run baton-ingest");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes: {stderr:?}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: baton-ingest failed: catalog ")
            && last.ends_with("line 2, column 38: missing field `start`"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("missing field").count(),
        1,
        "one cause: {stderr}"
    );
}
