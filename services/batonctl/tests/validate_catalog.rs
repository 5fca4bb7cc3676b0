//! `batonctl validate-catalog` as an operator runs it: exit status and message.

use std::process::Command;

fn validate(path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("validate-catalog")
        .arg(path)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run batonctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_shipped_catalogs_pass_and_a_typo_fails_with_its_line() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for name in ["catalog.json", "demo-catalog.json"] {
        let (ok, text) = validate(&root.join(name));
        assert!(ok, "{name}: {text}");
        assert!(text.contains("valid, version"), "{text}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("catalog.json");
    let shipped = std::fs::read_to_string(root.join("catalog.json")).expect("read");
    std::fs::write(
        &bad,
        shipped.replacen("\"acknowledged\"", "\"acknowleged\"", 1),
    )
    .expect("write");
    let (ok, text) = validate(&bad);
    assert!(!ok, "a typo must fail: {text}");
    assert!(text.contains("promises[0].stop[0]"), "{text}");
    assert!(text.contains("line "), "{text}");
}
