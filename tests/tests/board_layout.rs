//! The board's layout, and a department's screen, hold at every common
//! wall-screen and laptop size: in real headless Chromium, with long
//! department names, 200 clocks and every priority, no cell runs into
//! another section and no word is cut or clipped. Screenshots of each size
//! are saved (target/board-screenshots/layout-*.png).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`deploy/install-chromium.sh`); fails, saying so, without them.

use baton_e2e::{browser::Browser, *};
use baton_proto::v1::{self, Priority};

/// Long names and ids, as a real hospital's catalog has them.
const CATALOG: &str = r#"{
  "departments": [
    {"id": "medical-engineering-and-facilities", "name": "Medical engineering and facilities management"},
    {"id": "clinical-chemistry-haematology", "name": "Clinical chemistry, haematology and immunology laboratory"},
    {"id": "cardiothoracic-intensive-care", "name": "Cardiothoracic surgery intensive care unit"},
    {"id": "paediatric-oncology-day-ward", "name": "Paediatric oncology and haematology day ward"},
    {"id": "emergency-department", "name": "Emergency department and acute admissions"}
  ],
  "kinds": ["repair", "lab"],
  "max_entry_lag": "3650d",
  "promises": [
    {"id": "equipment-repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "urgent": "20m", "stat": "2s"}, "warn_at": 0.5},
    {"id": "laboratory-turnaround-time", "kind": "lab", "start": "requested", "stop": ["completed"],
     "targets": {"routine": "4h", "urgent": "2h", "stat": "2s"}, "warn_at": 0.8}
  ]
}"#;

const SIZES: &[(u32, u32)] = &[
    (1280, 720),
    (1400, 900),
    (1600, 1000),
    (1760, 990),
    (1920, 1080),
    (3840, 2160),
    (1080, 1920),
];

/// What the page's layout does wrong, found from the elements' boxes: a
/// cell that overlaps a section other than its own, a cell whose content
/// is wider than the cell (clipped or spilling), a word broken across two
/// lines (a compound may break after a hyphen), anything past the right
/// edge of the screen.
const LAYOUT_PROBLEMS: &str = r#"
const problems = [];
const box = e => e.getBoundingClientRect();
const visible = r => r.width > 0 && r.height > 0;
const overlap = (a, b) => a.left < b.right - 1 && a.right > b.left + 1 && a.top < b.bottom - 1 && a.bottom > b.top + 1;
const label = e => (e.textContent || '').trim().replace(/\s+/g, ' ').slice(0, 40);
const sections = [...document.querySelectorAll('main section')].filter(s => visible(box(s)));
const width = document.documentElement.clientWidth;
for (const s of sections) {
  const others = sections.filter(o => o !== s && !o.contains(s) && !s.contains(o));
  for (const cell of s.querySelectorAll('td, th, li, h2')) {
    const r = box(cell);
    if (!visible(r)) continue;
    const hit = others.find(o => overlap(r, box(o)));
    if (hit) problems.push(`#${s.id} "${label(cell)}" overlaps #${hit.id}`);
    if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`#${s.id} "${label(cell)}" is wider than its cell (${cell.scrollWidth} > ${cell.clientWidth})`);
    if (r.right > width + 1) problems.push(`#${s.id} "${label(cell)}" runs off the screen`);
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      // A word ends at a space, or just after a hyphen: a compound such as
      // an asset id may break there, as typesetting does, but nowhere else.
      const re = /[^\s-]+-?/g;
      let m;
      while ((m = re.exec(node.data))) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].filter(visible).map(q => Math.round(q.top)));
        if (lines.size > 1) problems.push(`#${s.id} the word "${m[0]}" is cut across lines`);
      }
    }
  }
}
return [...new Set(problems)].slice(0, 25);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_holds_its_layout_at_every_screen_size() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let mut ingest = baton.ingest().await;
    let now = now_millis();
    // The department page lists today's breaches: spread the requests over
    // at most the last 1,000 s, and never across midnight (UTC, the board's
    // zone here), or some would be yesterday's just after 00:00.
    let midnight = jiff::Timestamp::from_millisecond(now)
        .expect("now")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .expect("midnight")
        .timestamp()
        .as_millisecond();
    let step = 5_000i64.min((now - midnight - 3_000).max(0) / 200);
    let departments = [
        "clinical-chemistry-haematology",
        "cardiothoracic-intensive-care",
        "paediatric-oncology-day-ward",
        "emergency-department",
    ];
    let priorities = [Priority::Routine, Priority::Urgent, Priority::Stat];
    let mut events = Vec::new();
    for i in 0..200usize {
        let customer = departments[i % departments.len()];
        let (kind, supplier) = match i % 2 {
            0 => ("repair", "medical-engineering-and-facilities"),
            _ => ("lab", "clinical-chemistry-haematology"),
        };
        // One in ten is STAT and breaches at once; the rest run.
        let priority = match i % 10 {
            0 => Priority::Stat,
            _ => priorities[i % 2],
        };
        let said = match kind {
            "repair" => ("asset", "volumetric-infusion-pump-ward-5b"),
            _ => ("test", "high-sensitivity troponin T"),
        };
        events.push(append(v1::HandoffEvent {
            attributes: [(said.0.to_owned(), said.1.to_owned())].into(),
            ..requested(
                &format!("request-{i}"),
                kind,
                supplier,
                customer,
                priority,
                now - (i as i64) * step,
            )
        }));
    }
    ingest
        .append_batch(v1::AppendBatchRequest { requests: events })
        .await
        .expect("append the batch");

    let board = baton.board_url();
    let web = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("the projector's side port");
    let browser = Browser::start().await;
    let mut failures = Vec::new();
    let department = "/department/medical-engineering-and-facilities";
    let month = http::get(web, department).await;
    let report = month
        .body
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/report/medical-engineering-and-facilities/"))
        .and_then(|s| s.split('"').next())
        .map(|month| format!("/report/medical-engineering-and-facilities/{month}"))
        .expect("the department page links to its report card");
    let breaches = "return document.querySelectorAll('tr.breached').length >= 20";
    // The report card's worst breaches, as supplier.
    let rows = "return document.querySelectorAll('#table-2 td').length >= 8";
    for (page, name, ready) in [
        ("/", "board", breaches),
        (department, "department", breaches),
        (report.as_str(), "report", rows),
    ] {
        browser.goto(&format!("{board}{page}")).await;
        browser.wait_for("the page's rows", ready).await;
        for &(width, height) in SIZES {
            browser.set_viewport(width, height).await;
            let problems = browser.execute(LAYOUT_PROBLEMS).await;
            let saved = browser::save_screenshot(
                &browser.screenshot().await,
                baton.dir.path(),
                &format!("layout-{name}-{width}x{height}.png"),
            );
            println!("{name} {width}x{height}: {} ({problems})", saved.display());
            if problems.as_array().is_some_and(|p| !p.is_empty()) {
                failures.push(format!("{name} {width}x{height}: {problems}"));
            }
        }
    }
    browser.quit().await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
