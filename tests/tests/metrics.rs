//! `/metrics` on both services' HTTP side ports: appends, refusals, breaches
//! and the views' figures show up as the series the dashboard and the alert
//! rules in `deploy/` are built on, and move by exactly what happened.

use std::{collections::BTreeMap, net::SocketAddr};

use baton_e2e::{append, eventually, later, now_millis, requested, Baton};
use baton_proto::v1::{self, EventType, Priority};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One sample of the exposition: metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// `GET /metrics` over plain HTTP/1.1, the body as text.
async fn scrape(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the side port");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n")
        .await
        .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read the response");
    let response = String::from_utf8(response).expect("utf-8");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    // Chunked or not: the exposition ends with `# EOF`.
    let body = if head.to_ascii_lowercase().contains("chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    body
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

/// Every sample line, parsed: `name{k="v",...} value`.
fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = value.parse().expect("a number");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
            map.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
        }
        samples.insert((name.to_owned(), map), value);
    }
    samples
}

/// The value of the sample with exactly these labels; 0 if it is not there
/// (a counter nobody touched yet).
fn value(samples: &BTreeMap<Series, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .get(&(name.to_owned(), labels))
        .copied()
        .unwrap_or(0.0)
}

/// Metric names a scrape declares (`# TYPE`), as the sample names they
/// appear under (`_total` for counters, `_bucket/_sum/_count` for histograms).
fn declared_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("name and type");
        match kind {
            "counter" => names.push(format!("{name}_total")),
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.push(format!("{name}{suffix}"));
                }
            }
            _ => names.push(name.to_owned()),
        }
    }
    names
}

fn http(running: &Option<baton_e2e::Running>) -> SocketAddr {
    running
        .as_ref()
        .and_then(|r| r.http)
        .expect("service started by the harness")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_breaches_and_views_move_the_series_by_what_happened() {
    let baton = Baton::start().await;
    let (ingest_http, projector_http) = (http(&baton.ingest), http(&baton.projector));
    let mut ingest = baton.ingest().await;

    let before = parse(&scrape(ingest_http).await);
    assert_eq!(value(&before, "baton_nats_connected", &[]), 1.0);
    let events = "baton_ingest_events_total";
    let count = |s: &BTreeMap<Series, f64>, t: &str, r: &str| {
        value(s, events, &[("type", t), ("result", r)])
    };

    // One repair answered in time, one never answered (stat: 2 s), one
    // resend, one request for an unknown kind, one acknowledgement of a
    // hand-off nobody requested.
    let now = now_millis();
    let met = requested(
        "m-1",
        "repair",
        "engineering",
        "ward-5",
        Priority::Stat,
        now,
    );
    ingest
        .append(append(met.clone()))
        .await
        .expect("request m-1");
    ingest
        .append(append(later("m-1", EventType::Acknowledged, now + 500)))
        .await
        .expect("acknowledge m-1");
    let resend = ingest.append(append(met)).await.expect("resend m-1");
    assert!(resend.get_ref().duplicate);
    ingest
        .append(append(requested(
            "b-1",
            "repair",
            "engineering",
            "ward-6",
            Priority::Stat,
            now,
        )))
        .await
        .expect("request b-1");
    let unknown_kind = requested(
        "x-1",
        "catering",
        "engineering",
        "ward-5",
        Priority::Stat,
        now,
    );
    let refused = ingest.append(append(unknown_kind)).await;
    assert_eq!(
        refused.expect_err("unknown kind").code(),
        tonic::Code::InvalidArgument
    );
    let orphan = ingest
        .append(append(later("nobody", EventType::Acknowledged, now)))
        .await;
    assert_eq!(
        orphan.expect_err("no hand-off").code(),
        tonic::Code::FailedPrecondition
    );

    let after = parse(&scrape(ingest_http).await);
    let delta = |t: &str, r: &str| count(&after, t, r) - count(&before, t, r);
    assert_eq!(delta("requested", "ok"), 2.0);
    assert_eq!(delta("requested", "duplicate"), 1.0);
    assert_eq!(delta("requested", "invalid"), 1.0);
    assert_eq!(delta("acknowledged", "ok"), 1.0);
    assert_eq!(delta("acknowledged", "refused"), 1.0);
    let histogram_count = "baton_ingest_append_duration_seconds_count";
    assert_eq!(
        value(&after, histogram_count, &[]) - value(&before, histogram_count, &[]),
        6.0
    );

    // The projector: b-1 breaches (announced once), m-1 met; 3 events in
    // the stream, all in the views.
    let breach = [
        ("signal", "breach"),
        ("policy", "repair-response"),
        ("supplier", "engineering"),
        ("customer", "ward-6"),
    ];
    let projector = eventually(
        "the breach of b-1 counted and the views caught up",
        || async {
            let samples = parse(&scrape(projector_http).await);
            let announced = value(&samples, "baton_sla_announced_total", &breach);
            let lag = value(&samples, "baton_projector_consumer_lag", &[]);
            (announced >= 1.0 && lag == 0.0).then_some(samples)
        },
    )
    .await;
    let policy = |state: &str| {
        value(
            &projector,
            "baton_sla_clocks",
            &[("policy", "repair-response"), ("state", state)],
        )
    };
    assert_eq!(value(&projector, "baton_sla_announced_total", &breach), 1.0);
    assert_eq!(policy("met"), 1.0);
    assert_eq!(policy("breached"), 1.0);
    assert_eq!(policy("open"), 0.0);
    assert_eq!(
        value(
            &projector,
            "baton_sla_compliance_ratio",
            &[("policy", "repair-response")]
        ),
        0.5
    );
    assert_eq!(
        value(&projector, "baton_projector_stream_last_sequence", &[]),
        3.0
    );
    assert_eq!(
        value(&projector, "baton_projector_views_position", &[]),
        3.0
    );
    assert_eq!(
        value(&projector, "baton_projector_events_applied_total", &[]),
        3.0
    );
    assert_eq!(value(&projector, "baton_projector_views_current", &[]), 1.0);
    assert_eq!(value(&projector, "baton_nats_connected", &[]), 1.0);
    assert_eq!(
        value(
            &projector,
            "baton_pair_clocks",
            &[
                ("supplier", "engineering"),
                ("customer", "ward-6"),
                ("state", "breached")
            ]
        ),
        1.0
    );
    // Lab clocks never started: no duration quantiles, but compliance 1.
    assert_eq!(
        value(
            &projector,
            "baton_sla_compliance_ratio",
            &[("policy", "lab-turnaround")]
        ),
        1.0
    );
    assert!(
        value(
            &projector,
            "baton_sla_duration_quantile_seconds",
            &[("policy", "repair-response"), ("quantile", "0.5")]
        ) > 0.0
    );

    // A disruption, so that every family has a sample; then the files in
    // deploy/ may name only what the services serve.
    let disruption = v1::DisruptionEvent {
        disruption_id: "analyzer-down".into(),
        phase: v1::DisruptionPhase::Started as i32,
        supplier: "lab".into(),
        kind: "lab".into(),
        occurred_at: Some(baton_e2e::timestamp(now)),
        reason: "analyzer down".into(),
        actor: "test-system".into(),
        ..Default::default()
    };
    ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(disruption),
        })
        .await
        .expect("disruption");
    let ingest_text = scrape(ingest_http).await;
    assert_eq!(
        value(
            &parse(&ingest_text),
            "baton_ingest_disruptions_total",
            &[("result", "ok")]
        ),
        1.0
    );
    let mut declared = declared_names(&ingest_text);
    declared.extend(declared_names(&scrape(projector_http).await));
    // The gateway's and notify's families, declared before any sample.
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    let projector_addr = baton.projector.as_ref().expect("projector").addr;
    let mapping =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway/hl7-lab.json");
    let gateway = baton_e2e::start_gateway(ingest_addr, projector_addr, &mapping).await;
    let routes = baton.dir.path().join("routes.json");
    let secret = baton.dir.path().join("webhook.key");
    std::fs::write(&secret, "a-key-of-sixteen-bytes-or-more").expect("secret");
    let text = serde_json::json!({
        "channels": {"chat": {"webhook": {"url": "http://127.0.0.1:9/hook", "secret_file": secret}}},
        "routes": [{"name": "all", "deliver": ["chat"]}]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let notify = baton_e2e::start_notify(
        &baton.nats.url(),
        &routes,
        1,
        std::time::Duration::from_secs(1),
    )
    .await;
    for side in [gateway.http, notify.http] {
        let text = eventually("a side port's metrics", || async {
            let text = scrape(side.expect("side port")).await;
            text.contains("# EOF").then_some(text)
        })
        .await;
        declared.extend(declared_names(&text));
    }
    check_deploy_files(&declared);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_projector_catches_up_and_counts_the_open_clocks() {
    let mut baton = Baton::start().await;
    let projector_http = http(&baton.projector);
    let mut ingest = baton.ingest().await;
    // Projector down: three events go into the stream only.
    baton.projector.take().expect("running").stop().await;
    let now = now_millis();
    for id in ["l-1", "l-2", "l-3"] {
        ingest
            .append(append(requested(
                id,
                "lab",
                "lab",
                "ward-5",
                Priority::Routine,
                now,
            )))
            .await
            .expect("request");
    }
    // A fresh projector on the same views catches up: lag back to 0 and the
    // three open clocks counted.
    baton.projector = Some(baton.spawn_projector().await);
    let projector_http_new = http(&baton.projector);
    assert_ne!(projector_http, projector_http_new);
    let samples = eventually("the projector caught up", || async {
        let samples = parse(&scrape(projector_http_new).await);
        (value(&samples, "baton_projector_consumer_lag", &[]) == 0.0
            && value(&samples, "baton_projector_stream_last_sequence", &[]) == 3.0)
            .then_some(samples)
    })
    .await;
    assert_eq!(value(&samples, "baton_projector_open_clocks", &[]), 3.0);
    assert_eq!(
        value(
            &samples,
            "baton_sla_clocks",
            &[("policy", "lab-turnaround"), ("state", "open")]
        ),
        3.0
    );
}

/// Every `baton_*` name the shipped dashboard and alert rules use is one
/// the services declare (`declared`, from scrapes after every kind of
/// series has a sample), and the dashboard is valid JSON.
fn check_deploy_files(declared: &[String]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/baton.json"))
        .expect("deploy/grafana/baton.json");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml"))
        .expect("deploy/prometheus/alerts.yml");
    assert!(alerts.contains("groups:") && alerts.contains("- alert:"));

    for (file, text) in [("baton.json", &dashboard), ("alerts.yml", &alerts)] {
        let used = used_names(text);
        assert!(!used.is_empty(), "{file} uses no baton_ series");
        for name in used {
            assert!(
                declared.contains(&name),
                "{file} uses {name}, which no service serves; served: {declared:?}"
            );
        }
    }
}

/// `baton_…` identifiers in a text.
fn used_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("baton_") {
        let preceded = rest[..at]
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_exposition_parser_reads_labels_and_values() {
    let text = "# TYPE a counter\na_total{x=\"1\",y=\"b c\"} 2\nb 0.5\n# EOF\n";
    let samples = parse(text);
    assert_eq!(value(&samples, "a_total", &[("x", "1"), ("y", "b c")]), 2.0);
    assert_eq!(value(&samples, "b", &[]), 0.5);
    assert_eq!(value(&samples, "a_total", &[("x", "1")]), 0.0);
    assert_eq!(declared_names(text), ["a_total"]);
    assert_eq!(
        used_names("rate(baton_x_total[5m]) / my_baton_y"),
        ["baton_x_total"]
    );
}
