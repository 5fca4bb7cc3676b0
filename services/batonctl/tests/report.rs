//! `batonctl report`: the report card's figures, and the hospital-wide
//! summary's, are the query API's for the same month.

use std::collections::BTreeMap;

use baton_e2e::{
    append, eventually, http, later, now_millis, requested, timestamp, Baton, TEST_CATALOG,
};
use baton_proto::v1::{self, EventType, Priority};

/// Days since 1970-01-01 of a civil date, and back (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// The UTC month holding `at`: its label and `[from, to)` in ms.
fn month_of(at: i64) -> (String, i64, i64) {
    const DAY: i64 = 86_400_000;
    let (y, m) = civil_from_days(at.div_euclid(DAY));
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (
        format!("{y:04}-{m:02}"),
        days_from_civil(y, m, 1) * DAY,
        days_from_civil(ny, nm, 1) * DAY,
    )
}

/// One CSV line's cells (RFC 4180 quoting, no line breaks inside).
fn cells(line: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cells.last_mut().expect("a cell").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(String::new()),
            (c, _) => cells.last_mut().expect("a cell").push(c),
        }
    }
    cells
}

/// The CSV's rows of one table, each as column -> value.
fn table(csv: &str, title: &str) -> Vec<BTreeMap<String, String>> {
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in csv.lines() {
        let cells = cells(line);
        if cells.first().map(String::as_str) == Some("table") {
            header = cells;
        } else if cells.first().map(String::as_str) == Some(title) {
            rows.push(header.iter().cloned().zip(cells).collect());
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_card_figures_are_the_query_api_s_for_the_month() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let asked = now_millis() - 60_000;
    let (label, from, to) = month_of(asked);
    let mut ingest = baton.ingest().await;
    // Engineering as supplier: a STAT repair answered in 0.5 s (kept), one
    // answered after 10 s (broken, 2 s target); as customer: a lab request
    // still open.
    for event in [
        requested(
            "pump-1",
            "repair",
            "engineering",
            "ward-5",
            Priority::Stat,
            asked,
        ),
        later("pump-1", EventType::Acknowledged, asked + 500),
        requested(
            "pump-2",
            "repair",
            "engineering",
            "ward-6",
            Priority::Stat,
            asked,
        ),
        later("pump-2", EventType::Acknowledged, asked + 10_000),
        requested(
            "sample-1",
            "lab",
            "lab",
            "engineering",
            Priority::Routine,
            asked,
        ),
    ] {
        ingest.append(append(event)).await.expect("append");
    }
    let mut query = baton.query().await;
    let window =
        |policy: &str, supplier: Option<&str>, customer: Option<&str>| v1::GetComplianceRequest {
            policy_id: policy.into(),
            supplier: supplier.map(str::to_owned),
            customer: customer.map(str::to_owned),
            from: Some(timestamp(from)),
            to: Some(timestamp(to)),
            ..Default::default()
        };
    let repair = eventually("both repairs decided and the lab clock running", || {
        let mut query = query.clone();
        let ask = window("repair-response", Some("engineering"), None);
        async move {
            let c = query
                .get_compliance(ask)
                .await
                .ok()?
                .into_inner()
                .compliance?;
            let lab = query
                .get_compliance(window("lab-turnaround", None, Some("engineering")))
                .await
                .ok()?
                .into_inner()
                .compliance?;
            (c.met == 1 && c.breached == 1 && lab.open == 1).then_some(c)
        }
    })
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let projector = baton.projector.as_ref().expect("projector").addr;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("--query-url")
        .arg(format!("http://{projector}"))
        .args(["report", "--department", "engineering", "--month", &label])
        .args(["--format", "csv", "--catalog"])
        .arg(&catalog)
        .output()
        .await
        .expect("run batonctl report");
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{csv}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Per customer, as GetMatrix has each pair for the month.
    let matrix = query
        .get_matrix(v1::GetMatrixRequest {
            from: Some(timestamp(from)),
            to: Some(timestamp(to)),
        })
        .await
        .expect("matrix")
        .into_inner();
    let rows = table(&csv, "As supplier: per customer");
    let cells: Vec<&v1::MatrixCell> = matrix
        .cells
        .iter()
        .filter(|c| c.supplier == "engineering")
        .collect();
    assert_eq!(rows.len(), cells.len(), "{csv}");
    assert_eq!(cells.len(), 2, "ward-5 and ward-6");
    for cell in cells {
        let row = rows
            .iter()
            .find(|r| r["customer"] == cell.customer)
            .unwrap_or_else(|| panic!("{} in {csv}", cell.customer));
        for (column, value) in [
            ("handoffs", cell.handoffs),
            ("met", cell.met),
            ("breached", cell.breached),
            ("open", cell.open),
        ] {
            assert_eq!(
                row[column],
                value.to_string(),
                "{column} of {}",
                cell.customer
            );
        }
        assert_eq!(row["month"], label);
    }

    // Per promise, as GetCompliance has it for the month.
    let promise = table(&csv, "As supplier: per promise");
    assert_eq!(promise.len(), 1, "{csv}");
    assert_eq!(promise[0]["promise"], "repair-response");
    assert_eq!(promise[0]["met"], repair.met.to_string());
    assert_eq!(promise[0]["breached"], repair.breached.to_string());
    assert_eq!(promise[0]["kept"], "50.0%");

    // The broken one is the worst breach; as customer, the open lab request.
    let worst = table(&csv, "As supplier: the worst breaches");
    assert_eq!(worst.len(), 1, "{csv}");
    assert_eq!(worst[0]["handoff"], "pump-2");
    let as_customer = table(&csv, "As customer: per supplier");
    assert_eq!(as_customer.len(), 1, "{csv}");
    assert_eq!(as_customer[0]["supplier"], "lab");
    assert_eq!(as_customer[0]["open"], "1");
    assert_eq!(as_customer[0]["kept"], "-", "nothing decided is no figure");

    // The hospital-wide summary: every pair of the month, least kept first.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_batonctl"))
        .arg("--query-url")
        .arg(format!("http://{projector}"))
        .args(["report", "--month", &label, "--format", "csv"])
        .output()
        .await
        .expect("run batonctl report");
    let summary = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{summary}");
    let pairs = table(&summary, "Every pair, least kept first");
    let order: Vec<(&str, &str, &str)> = pairs
        .iter()
        .map(|r| {
            (
                r["supplier"].as_str(),
                r["customer"].as_str(),
                r["kept"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("engineering", "ward-6", "0.0%"),
            ("engineering", "ward-5", "100.0%"),
            ("lab", "engineering", "-"),
        ],
        "{summary}"
    );
    for row in &pairs {
        let cell = matrix
            .cells
            .iter()
            .find(|c| c.supplier == row["supplier"] && c.customer == row["customer"])
            .expect("a pair of GetMatrix");
        assert_eq!(row["handoffs"], cell.handoffs.to_string());
        assert_eq!(row["met"], cell.met.to_string());
        assert_eq!(row["breached"], cell.breached.to_string());
        assert_eq!(row["kept the month before"], "-", "nothing last month");
    }

    // The board serves the same pages from the projector's own query
    // service: the same CSV, a page to print, the summary in another order.
    let web = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("the projector's side port");
    let on_board = http::get(web, &format!("/report/engineering/{label}?format=csv")).await;
    assert_eq!(on_board.status, 200, "{}", on_board.head);
    assert!(
        on_board
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/csv"),
        "{}",
        on_board.head
    );
    assert_eq!(on_board.body.trim_end(), csv.trim_end());
    let on_board = http::get(web, &format!("/report/{label}?format=csv")).await;
    assert_eq!(on_board.body.trim_end(), summary.trim_end());
    let page = http::get(web, &format!("/report/engineering/{label}")).await;
    assert_eq!(page.status, 200, "{}", page.head);
    for wanted in [
        "<h1>Report card: Equipment engineering (engineering) for",
        "@media print",
        "<nav>",
        "<td>pump-2</td>",
    ] {
        assert!(page.body.contains(wanted), "{wanted} in {}", page.body);
    }
    let by_supplier = http::get(web, &format!("/report/{label}?sort=supplier&format=csv")).await;
    let order: Vec<(String, String)> = table(&by_supplier.body, "Every pair, by supplier")
        .into_iter()
        .map(|r| (r["supplier"].clone(), r["customer"].clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("engineering".to_owned(), "ward-5".to_owned()),
            ("engineering".to_owned(), "ward-6".to_owned()),
            ("lab".to_owned(), "engineering".to_owned()),
        ],
        "{}",
        by_supplier.body
    );
    for (path, says) in [
        (format!("/report/nowhere/{label}"), "nowhere"),
        ("/report/engineering/2026-13".to_owned(), "2026-13"),
        (format!("/report/{label}?sort=worst"), "worst"),
    ] {
        let refused = http::get(web, &path).await;
        assert_eq!(refused.status, 404, "{path}: {}", refused.head);
        assert!(refused.body.contains(says), "{path}: {}", refused.body);
    }

    // The trend ends with this month's totals.
    let trend = table(&csv, "As supplier: the months before");
    assert_eq!(trend.len(), 3, "{csv}");
    assert_eq!(trend[2]["month"], label);
    assert_eq!(
        (trend[2]["met"].as_str(), trend[2]["breached"].as_str()),
        ("1", "1")
    );
}
