//! `batonctl import` end to end: a small generated XES log in the Sepsis
//! log's shape goes through the real ingest and projector (real NATS), by
//! the shipped mapping onto the shipped catalog, and the promises' figures
//! come out as the log's intervals say. No real data: the cases are made
//! up here.

use std::{path::Path, process::Command};

use baton_e2e::{compliance, eventually, Baton};

/// Minutes from sepsis triage to the first IV antibiotics, per case.
const ANTIBIOTICS: [i64; 10] = [10, 15, 30, 45, 59, 60, 61, 90, 120, 200];
/// Minutes from registration to the first Leucocytes result, per case.
const LEUCOCYTES: [i64; 10] = [20, 25, 30, 35, 40, 45, 50, 55, 75, 130];

fn at(day: i64, minute: i64) -> String {
    // Days in November 2014, local time with the CET offset, as in the log.
    let total = 8 * 60 + minute;
    format!(
        "2014-11-{:02}T{:02}:{:02}:00.000+01:00",
        day,
        total / 60,
        total % 60
    )
}

fn event(activity: &str, time: &str) -> String {
    format!(
        "    <event>\n      <string key=\"concept:name\" value=\"{activity}\"/>\n      <string key=\"org:group\" value=\"A\"/>\n      <date key=\"time:timestamp\" value=\"{time}\"/>\n    </event>\n"
    )
}

/// Ten treated cases, one triaged but never given antibiotics (skipped by
/// the mapping), each with one Leucocytes result.
fn generated_log() -> String {
    let mut xes =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<log xes.version=\"1.0\">\n");
    for case in 0..11i64 {
        let day = 1 + case;
        xes.push_str(&format!(
            "  <trace>\n    <string key=\"concept:name\" value=\"C{case}\"/>\n"
        ));
        xes.push_str(&event("ER Registration", &at(day, 0)));
        xes.push_str(&event("ER Sepsis Triage", &at(day, 5)));
        if let Some(minutes) = ANTIBIOTICS.get(case as usize) {
            xes.push_str(&event("IV Antibiotics", &at(day, 5 + minutes)));
        }
        if let Some(minutes) = LEUCOCYTES.get(case as usize) {
            xes.push_str(&event("Leucocytes", &at(day, *minutes)));
        }
        xes.push_str("  </trace>\n");
    }
    xes.push_str("</log>\n");
    xes
}

fn import(baton: &Baton, log: &Path) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ingest = baton.ingest.as_ref().expect("ingest running").addr;
    Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("--ingest-url")
        .arg(format!("http://{ingest}"))
        .arg("import")
        .arg("--mapping")
        .arg(root.join("deploy/import/sepsis.json"))
        .arg(log)
        .output()
        .expect("run batonctl import")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_log_gives_the_figures_its_intervals_say() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let catalog = std::fs::read_to_string(root.join("deploy/catalog.json")).expect("catalog");
    let baton = Baton::start_with_catalog(&catalog).await;
    let log = baton.dir.path().join("generated.xes");
    std::fs::write(&log, generated_log()).expect("write the log");

    let first = import(&baton, &log);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("11 cases; 20 hand-offs found"), "{stderr}");
    assert!(
        stderr.contains("imported: 40 events appended, 0 already there, 0 refused"),
        "{stderr}"
    );

    let mut query = baton.query().await;
    // Every appended event in the views (an open clock past its deadline
    // already counts as breached, so the counts alone say nothing yet).
    eventually("every imported event in the views", || {
        let mut query = query.clone();
        async move {
            let s = query
                .get_status(baton_proto::v1::GetStatusRequest {})
                .await
                .ok()?
                .into_inner();
            (s.current && s.stream_last_sequence >= 40 && s.position == s.stream_last_sequence)
                .then_some(())
        }
    })
    .await;
    let antibiotics = compliance(&mut query, "sepsis-antibiotics").await;
    // Within the hour (60 minutes exactly counts as kept): 10, 15, 30, 45, 59, 60.
    assert_eq!(
        (antibiotics.met, antibiotics.breached, antibiotics.open),
        (6, 4, 0)
    );
    let p50 = antibiotics.p50.as_ref().map(|d| d.seconds).unwrap_or(0);
    // Nearest-rank median of the ten: 59 minutes; the histogram is within 1%.
    assert!((p50 - 59 * 60).abs() <= 59 * 60 / 100 + 1, "p50 {p50} s");

    let lab = compliance(&mut query, "lab-turnaround").await;
    // STAT lab, 1 hour: all but 75 and 130 minutes.
    assert_eq!((lab.met, lab.breached, lab.open), (8, 2, 0));

    // Importing the same log again adds nothing.
    let again = import(&baton, &log);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains("imported: 0 events appended, 40 already there, 0 refused"),
        "{stderr}"
    );
    let after = compliance(&mut query, "sepsis-antibiotics").await;
    assert_eq!((after.met, after.breached), (6, 4));

    // Backfill pages nobody: the breaches are older than the announce horizon.
    let nats = baton.nats_client().await;
    let announced = baton_e2e::count_messages(&nats, "BATON_SLA", "baton.sla.>").await;
    assert_eq!(announced, 0);
}
