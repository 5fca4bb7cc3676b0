//! A route's grouping end to end (real nats-server, ingest, projector,
//! notify and a webhook receiver): an analyzer's disruption followed by a
//! storm of 600 warnings reaches the route as grouped messages, one per
//! interval, that count every one and list the first 500 of each; a STAT
//! breach announced after 560 of them, while they are all held, is
//! delivered the moment it is announced, before the group.

use std::time::{Duration, Instant};

use baton_e2e::{
    append, eventually, http, now_millis, requested, start_notify,
    webhook::{consumer_ready, disruptions_consumer_ready, receiver, Behaviour},
    Baton,
};
use baton_proto::v1::{self, Priority};

/// Repairs warn half-way to their deadline.
const CATALOG: &str = r#"{
  "max_entry_lag": "3650d",
  "departments": [
    {"id": "engineering", "name": "Equipment engineering"},
    {"id": "ward-5", "name": "Ward 5"}
  ],
  "kinds": ["repair"],
  "promises": [
    {"id": "repair-response", "kind": "repair", "start": "requested", "stop": ["acknowledged"],
     "targets": {"routine": "30m", "stat": "2s"}, "warn_at": 0.5}
  ]
}"#;

/// The route's interval.
const GROUP: Duration = Duration::from_secs(10);
/// More than a group lists (500), and more signals held at once than
/// notify once read ahead (512): the STAT breach comes after them.
const STORM: usize = 600;
const STAT_AFTER: usize = 560;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_storm_is_grouped_and_a_stat_breach_in_it_is_delivered_at_once() {
    let baton = Baton::start_with_catalog(CATALOG).await;
    let (desk, got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("desk.key");
    std::fs::write(&secret, "engineering-desk-key-000001").expect("secret");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "desk": {"webhook": {"url": format!("http://{desk}/hooks/baton"), "secret_file": secret, "timeout": "2s"}}
        },
        "routes": [
            {"name": "engineering", "match": {"supplier": ["engineering"]}, "deliver": ["desk"],
             "group": format!("{}s", GROUP.as_secs())}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;
    disruptions_consumer_ready(&baton).await;

    let mut ingest = baton.ingest().await;
    let storm_began = Instant::now();
    ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: "workshop-power".into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "engineering".into(),
                kind: "repair".into(),
                reason: "workshop without power".into(),
                occurred_at: Some(baton_e2e::timestamp(now_millis())),
                ..Default::default()
            }),
        })
        .await
        .expect("a disruption");
    // Routine repairs requested 20 minutes ago: each warned 5 minutes ago
    // and is announced as it is applied. The STAT one, half-way through,
    // breached its 2 s a second ago.
    let warned = |i: usize| format!("pump-{i}");
    for i in 0..STORM {
        if i == STAT_AFTER {
            let stat = requested(
                "stat-1",
                "repair",
                "engineering",
                "ward-5",
                Priority::Stat,
                now_millis() - 3_000,
            );
            ingest.append(append(stat)).await.expect("append");
        }
        let event = requested(
            &warned(i),
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            now_millis() - 20 * 60_000,
        );
        ingest.append(append(event)).await.expect("append");
    }

    // Everything arrives: the STAT signals one by one, the rest in groups.
    let bodies = |got: &[baton_e2e::webhook::Request]| -> Vec<(serde_json::Value, Instant)> {
        got.iter()
            .map(|r| (serde_json::from_str(&r.body).expect("JSON"), r.at))
            .collect()
    };
    let grouped_count = |all: &[(serde_json::Value, Instant)]| -> u64 {
        all.iter()
            .filter(|(b, _)| b["signal"] == "group")
            .map(|(b, _)| b["count"].as_u64().expect("a count"))
            .sum()
    };
    let mut waited = 0;
    let all = loop {
        let all = bodies(&got.lock().expect("lock"));
        if grouped_count(&all) > STORM as u64 {
            break all;
        }
        // The groups take their interval: wait for up to four of them.
        waited += 1;
        assert!(waited < 4, "after {waited} intervals: {all:?}");
        eventually("a grouped message", || {
            let seen = all.len();
            let got = got.clone();
            async move { (got.lock().expect("lock").len() > seen).then_some(()) }
        })
        .await;
    };
    let (groups, single): (Vec<_>, Vec<_>) = all.iter().partition(|(b, _)| b["signal"] == "group");

    // The STAT breach (and its warning, if announced), each its own
    // message, before any group; nothing else alone.
    let singles: Vec<String> = single
        .iter()
        .map(|(b, _)| format!("{} {} {}", b["signal"], b["priority"], b["handoff"]))
        .collect();
    assert!(
        singles.contains(&r#""breach" "stat" "stat-1""#.to_owned()),
        "{singles:?}"
    );
    assert!(
        singles.iter().all(|s| s.contains(r#""stat" "stat-1""#)),
        "{singles:?}"
    );
    let first_group = groups.iter().map(|(_, at)| *at).min().expect("a group");
    for (b, at) in &single {
        assert!(*at < first_group, "{b} waited for the group");
    }

    // The groups: every warning and the disruption, counted and listed,
    // none before its interval and one per interval at most.
    assert_eq!(grouped_count(&all), STORM as u64 + 1, "{groups:?}");
    let mut listed: Vec<String> = Vec::new();
    let mut disruptions = 0;
    let mut warnings = 0;
    for (b, _) in &groups {
        let signals = b["signals"].as_array().expect("a list");
        assert_eq!(
            signals.len() as u64 + b["not_listed"].as_u64().expect("not listed"),
            b["count"].as_u64().expect("count")
        );
        warnings += b["counts"]["warning"].as_u64().unwrap_or(0);
        assert_eq!(b["route"], "engineering");
        disruptions += b["counts"]["disruption"].as_u64().unwrap_or(0);
        for s in signals {
            if s["signal"] == "warning" {
                assert_eq!(s["priority"], "routine");
                listed.push(s["handoff"].as_str().expect("handoff").to_owned());
            }
        }
    }
    listed.sort();
    listed.dedup();
    let expected: Vec<String> = (0..STORM).map(warned).collect();
    assert!(listed.iter().all(|h| expected.contains(h)), "{listed:?}");
    assert!(listed.len() >= STORM.min(500) - 1, "{}", listed.len());
    assert_eq!(warnings, STORM as u64);
    assert_eq!(disruptions, 1);
    let mut arrivals: Vec<Instant> = groups.iter().map(|(_, at)| *at).collect();
    arrivals.sort();
    assert!(
        arrivals[0].duration_since(storm_began) >= GROUP - Duration::from_millis(500),
        "the first group came {:?} after the disruption",
        arrivals[0].duration_since(storm_began)
    );
    for pair in arrivals.windows(2) {
        assert!(
            pair[1].duration_since(pair[0]) >= GROUP - Duration::from_millis(500),
            "two groups {:?} apart",
            pair[1].duration_since(pair[0])
        );
    }

    let web = notify.http.expect("side port");
    let held = http::get(web, "/metrics").await.body;
    assert!(
        held.contains(&format!(
            "baton_notify_held_total{{route=\"engineering\"}} {}",
            STORM + 1
        )),
        "{held}"
    );
    assert!(
        held.contains(&format!(
            "baton_notify_groups_total{{route=\"engineering\"}} {}",
            groups.len()
        )),
        "{held}"
    );
}
