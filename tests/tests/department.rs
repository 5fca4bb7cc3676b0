//! A department's own screen, `/department/<id>`, against real services:
//! what it owes, what it waits for, its breaches today and how it stands
//! this week and month, each showing only that department's work.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_department_screen_shows_that_department_s_work() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let now = now_millis();
    for event in [
        // Owed by engineering: a routine repair still running.
        v1::HandoffEvent {
            attributes: [("asset".to_owned(), "infusion-pump".to_owned())].into(),
            ..requested(
                "pump-1",
                "repair",
                "engineering",
                "ward-5",
                Priority::Routine,
                now,
            )
        },
        // Broken by engineering today: a STAT repair (2 s) acknowledged late.
        requested(
            "pump-2",
            "repair",
            "engineering",
            "ward-6",
            Priority::Stat,
            now - 60_000,
        ),
        later("pump-2", EventType::Acknowledged, now - 30_000),
        // Kept by engineering.
        requested(
            "pump-3",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            now - 60_000,
        ),
        later("pump-3", EventType::Acknowledged, now - 59_000),
        // Engineering waits for the lab.
        requested(
            "sample-1",
            "lab",
            "lab",
            "engineering",
            Priority::Routine,
            now,
        ),
        // Not engineering's at all.
        requested("sample-2", "lab", "lab", "ward-5", Priority::Routine, now),
    ] {
        ingest.append(append(event)).await.expect("append");
    }
    let web = baton
        .projector
        .as_ref()
        .expect("projector")
        .http
        .expect("side port");
    let page = eventually("the department page with every hand-off", || async {
        let page = http::get(web, "/department/engineering").await;
        (page.status == 200
            && page.body.contains("/handoff/sample-1")
            && page.body.contains("/handoff/pump-2"))
        .then_some(page.body)
    })
    .await;
    let section = |id: &str| {
        let start = page
            .find(&format!("<section id=\"{id}\""))
            .unwrap_or_else(|| panic!("section {id} in {page}"));
        let rest = &page[start..];
        rest[..rest.find("</section>").unwrap_or(rest.len())].to_owned()
    };
    // Its report card for this month is one click away, and so is the
    // board's summary of every pair.
    assert!(
        section("department").contains("href=\"/report/engineering/20"),
        "{page}"
    );
    let board = http::get(web, "/").await;
    assert!(board.body.contains("href=\"/report/20"), "{}", board.body);
    let owes = section("owes");
    assert!(owes.contains("/handoff/pump-1"), "{owes}");
    assert!(
        owes.contains("<span class=\"tag attr\">asset infusion-pump</span>"),
        "what the request said: {owes}"
    );
    assert!(!owes.contains("/handoff/sample-1"), "{owes}");
    let awaits = section("awaits");
    assert!(awaits.contains("/handoff/sample-1"), "{awaits}");
    assert!(!awaits.contains("/handoff/pump-1"), "{awaits}");
    let today = section("breaches-today");
    assert!(today.contains("/handoff/pump-2"), "{today}");
    assert!(!today.contains("/handoff/pump-3"), "kept: {today}");
    assert!(
        !page.contains("/handoff/sample-2"),
        "another department's work"
    );
    let standing = section("department");
    assert!(standing.contains("Equipment engineering"), "{standing}");
    // This week: 1 kept, 1 broken as supplier; nothing decided as customer.
    assert!(
        standing.contains(">50%</span> <span class=\"dim\">1 kept, 1 broken"),
        "{standing}"
    );
    assert!(standing.contains(">&ndash;</span>"), "{standing}");

    let unknown = http::get(web, "/department/nowhere").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
}
