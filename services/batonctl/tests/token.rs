//! `batonctl token`: the hash it prints is the one the side port compares.

use std::{
    io::Write as _,
    process::{Command, Stdio},
};

fn batonctl(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run batonctl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write the token");
    let out = child.wait_with_output().expect("batonctl ends");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_new_token_comes_with_a_registry_entry_holding_its_hash() {
    let (ok, text) = batonctl(
        &["token", "new", "--id", "lab-wall", "--role", "screen"],
        "",
    );
    assert!(ok, "{text}");
    let token = text
        .lines()
        .find_map(|l| l.rsplit_once(": ").filter(|_| l.starts_with("token")))
        .map(|(_, t)| t.to_owned())
        .expect("the token line");
    let entry: serde_json::Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("registry entry: "))
            .expect("the entry line"),
    )
    .expect("JSON");
    assert_eq!(entry["id"], "lab-wall");
    assert_eq!(entry["role"], "screen");
    // `token hash` of the token (with the newline `echo` adds) is the entry's hash.
    let (ok, hash) = batonctl(&["token", "hash"], &format!("{token}\n"));
    assert!(ok, "{hash}");
    assert_eq!(entry["token_sha256"], hash.trim());
    // The registry takes the entry.
    let registry = format!(r#"{{"callers": [{entry}]}}"#);
    let parsed = baton_domain::access::Registry::from_json(&registry, |_| true).expect("valid");
    assert!(parsed.holder("lab-wall").is_some());
}

#[test]
fn token_hash_is_sha256() {
    let (ok, hash) = batonctl(&["token", "hash"], "abc");
    assert!(ok);
    assert_eq!(
        hash.trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let (ok, _) = batonctl(&["token", "hash"], "");
    assert!(!ok, "an empty token is refused");
}
