//! The live board in a real headless Chromium: real NATS, real services,
//! events appended over gRPC, the page watched through WebDriver.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`deploy/install-chromium.sh`); fails, saying so, without them.

use baton_e2e::{browser::Browser, *};
use baton_proto::v1::{
    self, ingest_client::IngestClient, query_client::QueryClient, EventType, Priority,
};
use serde_json::Value;
use tonic::transport::Channel;

const MIN: i64 = 60_000;

const BOARD_CATALOG: &str = r#"{
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "lab", "name": "Laboratory"},
    {"id": "porters", "name": "Patient transport"},
    {"id": "ward-5", "name": "Ward 5"},
    {"id": "ward-6", "name": "Ward 6"},
    {"id": "icu", "name": "Intensive care"},
    {"id": "ed", "name": "Emergency department"}
  ],
  "kinds": ["repair", "lab", "transport"],
  "max_entry_lag": "3650d",
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "urgent": "15m", "stat": "2s"}, "warn_at": 0.5},
    {"id": "lab-turnaround", "kind": "lab", "start": "requested", "stop": ["completed"],
     "pause": ["on_hold"], "resume": ["resumed"], "targets": {"routine": "4h", "stat": "1h"}, "warn_at": 0.8},
    {"id": "transport-pickup", "kind": "transport", "start": "requested", "stop": ["started"],
     "targets": {"routine": "20m", "urgent": "10m"}}
  ]
}"#;

fn stop_event(kind: &str) -> EventType {
    match kind {
        "repair" => EventType::Acknowledged,
        "lab" => EventType::Completed,
        _ => EventType::Started,
    }
}

fn rated(handoff: &str, score: u32, at: i64) -> v1::HandoffEvent {
    v1::HandoffEvent {
        rating: Some(v1::Rating {
            score,
            comment: String::new(),
        }),
        ..later(handoff, EventType::Rated, at)
    }
}

/// (id, kind, supplier, customer, priority, requested minutes ago, stopped
/// after minutes, rating)
type Closed = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Priority,
    i64,
    i64,
    u32,
);

/// A few hours of history across pairs: kept and broken promises, ratings,
/// clocks still running (one past its warning), an old open breach and an
/// active disruption.
async fn seed(ingest: &mut IngestClient<Channel>, query: &mut QueryClient<Channel>, now: i64) {
    let closed: &[Closed] = &[
        (
            "r-101",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            240,
            12,
            5,
        ),
        (
            "r-102",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            200,
            41,
            2,
        ),
        (
            "r-103",
            "repair",
            "engineering",
            "ward-6",
            Priority::Routine,
            190,
            9,
            4,
        ),
        (
            "r-104",
            "repair",
            "engineering",
            "icu",
            Priority::Urgent,
            180,
            6,
            5,
        ),
        (
            "r-105",
            "repair",
            "engineering",
            "icu",
            Priority::Urgent,
            170,
            25,
            3,
        ),
        (
            "l-201",
            "lab",
            "lab",
            "ward-5",
            Priority::Routine,
            300,
            150,
            4,
        ),
        ("l-202", "lab", "lab", "ed", Priority::Stat, 240, 45, 5),
        ("l-203", "lab", "lab", "ed", Priority::Stat, 230, 80, 2),
        (
            "t-301",
            "transport",
            "porters",
            "ward-6",
            Priority::Routine,
            160,
            15,
            4,
        ),
        (
            "t-302",
            "transport",
            "porters",
            "icu",
            Priority::Urgent,
            150,
            8,
            5,
        ),
    ];
    for &(id, kind, supplier, customer, priority, ago, after, score) in closed {
        let at = now - ago * MIN;
        let stopped = at + after * MIN;
        ingest
            .append(append(requested(
                id, kind, supplier, customer, priority, at,
            )))
            .await
            .expect("requested");
        ingest
            .append(append(later(id, stop_event(kind), stopped)))
            .await
            .expect("stopped");
        if kind != "lab" {
            ingest
                .append(append(later(id, EventType::Completed, stopped + MIN)))
                .await
                .expect("completed");
        }
        ingest
            .append(append(rated(id, score, stopped + 2 * MIN)))
            .await
            .expect("rated");
    }
    // Still running: a lab test, a porter, an urgent repair past half its
    // 15 minutes (warned), and a repair whose 30 minutes ran out long ago.
    let open: &[(&str, &str, &str, &str, Priority, i64)] = &[
        ("l-210", "lab", "lab", "ward-6", Priority::Routine, 30),
        (
            "t-310",
            "transport",
            "porters",
            "ward-5",
            Priority::Routine,
            4,
        ),
        (
            "r-110",
            "repair",
            "engineering",
            "ward-6",
            Priority::Urgent,
            9,
        ),
        (
            "r-111",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            95,
        ),
    ];
    for &(id, kind, supplier, customer, priority, ago) in open {
        ingest
            .append(append(requested(
                id,
                kind,
                supplier,
                customer,
                priority,
                now - ago * MIN,
            )))
            .await
            .expect("requested");
    }
    ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: "analyzer-1".into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "lab".into(),
                kind: "lab".into(),
                occurred_at: Some(timestamp(now - 20 * MIN)),
                reason: "chemistry analyzer down".into(),
                actor: "lab-desk".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("disruption");
    projected(query, "r-111", 1).await;
    projected(query, "t-302", 4).await;
}

fn deadlines(rows: &Value) -> Vec<i64> {
    rows.as_array()
        .expect("an array of deadlines")
        .iter()
        .map(|v| v.as_i64().expect("a deadline"))
        .collect()
}

#[tokio::test]
async fn the_board_shows_new_clocks_and_breaches_live_without_a_reload() {
    let baton = Baton::start_with_catalog(BOARD_CATALOG).await;
    let now = now_millis();
    seed(&mut baton.ingest().await, &mut baton.query().await, now).await;
    let board = baton.board_url();
    let browser = Browser::start().await;
    browser.goto(&format!("{board}/")).await;
    let mut ingest = baton.ingest().await;
    the_live_board(&browser, &board, &mut ingest, baton.dir.path(), "").await;
    browser.quit().await;
}

/// The board's live behaviour, in a browser already on `{board}/`:
/// screenshots are named with `prefix`.
async fn the_live_board(
    browser: &Browser,
    board: &str,
    ingest: &mut IngestClient<Channel>,
    shots: &std::path::Path,
    prefix: &str,
) {
    // The event stream is open (its `hello` arrived): nothing announced
    // from here on can be missed.
    browser
        .wait_for(
            "the board's event stream to open",
            "return document.body.dataset.live === 'on'",
        )
        .await;
    // A marker that a reload would wipe out.
    browser
        .execute("window.batonMarker = 'same page'; return true")
        .await;
    let seeded = browser
        .execute("return document.querySelectorAll('#clock-rows tr[data-clock]').length")
        .await;
    assert_eq!(seeded, 3, "the three running clocks are on the board");

    // A new hand-off: its clock appears, in order of time left.
    ingest
        .append(append(requested(
            "r-120",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            now_millis(),
        )))
        .await
        .expect("requested");
    browser
        .wait_for(
            "the new clock's row",
            "return document.querySelector('#clock-rows tr[data-clock=\"repair-response/r-120\"]') !== null",
        )
        .await;
    let order = deadlines(
        &browser
            .execute(
                "return [...document.querySelectorAll('#clock-rows .countdown')].map(e => Number(e.dataset.deadline))",
            )
            .await,
    );
    assert_eq!(order.len(), 4);
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "least time left first: {order:?}"
    );
    let warned = browser
        .execute(
            "return document.querySelector('#clock-rows tr[data-clock=\"repair-response/r-110\"]').className",
        )
        .await;
    assert_eq!(warned, "warned", "past half of its 15 minutes");

    // A STAT repair whose 2 s run out: the breach row arrives by itself.
    ingest
        .append(append(requested(
            "r-121",
            "repair",
            "engineering",
            "icu",
            Priority::Stat,
            now_millis(),
        )))
        .await
        .expect("requested");
    let class = browser
        .wait_for(
            "the breach row",
            "const row = document.querySelector('#breach-rows tr[data-key=\"repair-response/r-121/1\"]');
             return row && row.className",
        )
        .await;
    // "fresh" marks a row put in from the `breach` event itself, not
    // merely found by a later refresh of the section.
    assert!(
        class
            .as_str()
            .is_some_and(|c| c.contains("breached") && c.contains("fresh")),
        "a breached row, from the breach event: {class}"
    );
    browser
        .wait_for(
            "the breached clock to leave the running clocks",
            "return document.querySelector('#clock-rows tr[data-clock=\"repair-response/r-121\"]') === null
                 && document.querySelector('#breach-rows tr[data-key=\"repair-response/r-121/1\"]') !== null",
        )
        .await;
    assert_eq!(
        browser.execute("return window.batonMarker").await,
        "same page",
        "the page was not reloaded"
    );
    let first = browser
        .execute("return document.querySelector('#breach-rows tr').dataset.key")
        .await;
    assert_eq!(first, "repair-response/r-121/1", "the newest breach on top");

    let shot = browser.screenshot().await;
    assert!(shot.starts_with(b"\x89PNG"), "a PNG");
    let saved = browser::save_screenshot(&shot, shots, &format!("{prefix}board.png"));
    println!("board screenshot: {}", saved.display());

    browser.goto(&format!("{board}/handoff/r-121")).await;
    let breach_point = browser
        .wait_for(
            "the hand-off timeline's breach point",
            "const li = document.querySelector('ol.timeline li.breached'); return li && li.textContent",
        )
        .await;
    assert!(
        breach_point
            .as_str()
            .is_some_and(|t| t.contains("ran out of its 2s target")),
        "{breach_point}"
    );
    let saved = browser::save_screenshot(
        &browser.screenshot().await,
        shots,
        &format!("{prefix}handoff.png"),
    );
    println!("hand-off screenshot: {}", saved.display());

    browser
        .goto(&format!("{board}/pair/engineering/ward-5"))
        .await;
    let bars = browser
        .execute("return document.querySelectorAll('svg.trend rect').length")
        .await;
    assert_eq!(bars, 30, "one bar per day");
    let worst = browser
        .execute("return [...document.querySelectorAll('a[href^=\"/handoff/\"]')].map(a => a.textContent)")
        .await;
    assert_eq!(
        worst,
        serde_json::json!(["r-111", "r-102"]),
        "the open breach (95 min, still growing) before the 41-minute one"
    );
    let saved = browser::save_screenshot(
        &browser.screenshot().await,
        shots,
        &format!("{prefix}pair.png"),
    );
    println!("pair screenshot: {}", saved.display());
}

#[tokio::test]
async fn the_event_stream_ends_when_the_projector_stops() {
    let mut baton = Baton::start_with_catalog(BOARD_CATALOG).await;
    let board = baton.board_url();
    let browser = Browser::start().await;
    browser.goto(&format!("{board}/")).await;
    browser
        .wait_for(
            "the board's event stream to open",
            "return document.body.dataset.live === 'on'",
        )
        .await;
    // A graceful stop must not hang on the open stream.
    let projector = baton.projector.take().expect("projector running");
    assert!(
        projector.stop().await,
        "the projector stops with a board open"
    );
    browser
        .wait_for(
            "the board to notice",
            "return document.body.dataset.live === 'off'",
        )
        .await;
    browser.quit().await;
}

const NATS_PASSWORDS: &str = r#"
BATON_NATS_INGEST_PASSWORD: "ingest-test-secret"
BATON_NATS_PROJECTOR_PASSWORD: "projector-test-secret"
BATON_NATS_SUBSCRIBER_PASSWORD: "subscriber-test-secret"
BATON_NATS_OPERATOR_PASSWORD: "operator-test-secret"
BATON_NATS_NOTIFY_PASSWORD: "notify-test-secret"
"#;

const WALL_TOKEN: &str = "ops-wall-token-5c1e9b7d";

/// The same board as production runs it: NATS over TLS with client
/// certificates and the shipped users and permissions
/// (`deploy/nats/auth.conf`), the services over TLS with the caller
/// registry, and the wall screen logging in on the login page with its
/// token. Chromium trusts the test CA (no certificate error is ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_works_under_the_shipped_nats_permissions_and_tls_after_a_screen_logs_in() {
    use baton_e2e::secure::{start_ingest_configured, start_projector_configured, Pki};
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |f: &str| pki.path(f).to_str().expect("utf-8 path").to_owned();
    let conf = dir.path().join("auth.conf");
    let shipped = include_str!("../../deploy/nats/auth.conf");
    std::fs::write(&conf, format!("{NATS_PASSWORDS}\n{shipped}")).expect("nats config");
    let nats = baton_testkit::NatsServer::start_with(&[
        "-c",
        conf.to_str().expect("utf-8 path"),
        "--tls",
        "--tlscert",
        &path("server.crt"),
        "--tlskey",
        &path("server.key"),
        "--tlsverify",
        "--tlscacert",
        &path("ca.crt"),
    ]);
    let service = pki.client("ca", "baton-service", true);
    let nats_as = |user: &str| baton_log::NatsSecurity {
        nats_user: Some(format!("baton-{user}")),
        nats_password: Some(format!("{user}-test-secret")),
        nats_ca: Some(pki.path("ca.crt")),
        nats_cert: Some(pki.path(&format!("{service}.crt"))),
        nats_key: Some(pki.path(&format!("{service}.key"))),
    };
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, BOARD_CATALOG).expect("catalog");
    let callers = dir.path().join("callers.json");
    std::fs::write(
        &callers,
        format!(
            r#"{{"callers": [
  {{"id": "seed-system", "role": "department", "departments": ["engineering", "lab", "porters", "ward-5", "ward-6", "icu", "ed"]}},
  {{"id": "ops-wall", "role": "screen", "token_sha256": "{}"}}
]}}"#,
            baton_runtime::web_auth::hex(&baton_runtime::web_auth::token_sha256(WALL_TOKEN))
        ),
    )
    .expect("callers");
    let tls = pki.server_args(&callers);
    let ingest = {
        let (tls, nats_security) = (tls.clone(), nats_as("ingest"));
        start_ingest_configured(&nats.url(), &catalog, |c| {
            c.tls = tls;
            c.nats = nats_security;
        })
        .await
    };
    let projector = {
        let nats_security = nats_as("projector");
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.tls = tls;
            c.nats = nats_security;
        })
        .await
    };
    pki.wait_serving(ingest.addr, "baton.v1.Ingest").await;
    pki.wait_serving(projector.addr, "baton.v1.Query").await;
    let seeder = pki.client("ca", "seed-system", true);
    let mut ingest_client = IngestClient::new(
        pki.channel(ingest.addr, Some(&seeder))
            .await
            .expect("ingest over mutual TLS"),
    );
    let mut query = QueryClient::new(
        pki.channel(projector.addr, Some(&seeder))
            .await
            .expect("query over mutual TLS"),
    );
    seed(&mut ingest_client, &mut query, now_millis()).await;

    let port = projector.http.expect("side port").port();
    let board = format!("https://localhost:{port}");
    let browser = Browser::start_trusting(Some(&pki.path("ca.crt"))).await;
    browser.goto(&format!("{board}/")).await;
    browser
        .wait_for(
            "the login page, the screen not being logged in",
            "return document.querySelector('form[action=\"/login\"] input[name=\"token\"]') !== null",
        )
        .await;
    let shot = browser.screenshot().await;
    let saved = browser::save_screenshot(&shot, dir.path(), "secure-login.png");
    println!("login screenshot: {}", saved.display());
    browser
        .execute(&format!(
            "document.getElementById('token').value = '{WALL_TOKEN}';
             document.querySelector('form[action=\"/login\"]').submit();
             return true"
        ))
        .await;
    browser
        .wait_for(
            "the board after logging in",
            "return document.body && document.body.dataset.page === 'board'",
        )
        .await;
    assert_eq!(
        browser.execute("return location.protocol").await,
        "https:",
        "served over TLS"
    );
    assert_eq!(
        browser.execute("return document.cookie").await,
        "",
        "the session cookie is HttpOnly: no script can read it"
    );
    the_live_board(&browser, &board, &mut ingest_client, dir.path(), "secure-").await;
    browser.quit().await;
    ingest.stop().await;
    assert!(projector.stop().await);
}
