//! Nothing floods the projector: history loaded by the thousand never
//! pushes a live breach off the board, a hand-off cannot grow past what a
//! client can read back, and a compliance series is bounded.

use baton_e2e::{http, later, now_millis, projected, requested, Baton};
use baton_proto::v1::{self, EventType, Priority};
use prost::Message as _;
use tonic::Code;

const HOUR: i64 = 3_600_000;

fn request(event: v1::HandoffEvent, backfill: bool) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill,
    }
}

/// Appends `requests` in batches of 1,000, every one accepted.
async fn append_all(baton: &Baton, requests: Vec<v1::AppendRequest>) {
    let mut ingest = baton.ingest().await;
    for chunk in requests.chunks(1_000) {
        let results = ingest
            .append_batch(v1::AppendBatchRequest {
                requests: chunk.to_vec(),
            })
            .await
            .expect("append batch")
            .into_inner()
            .results;
        let refused: Vec<_> = results
            .iter()
            .filter_map(|r| match &r.outcome {
                Some(v1::append_result::Outcome::Error(e)) => Some(e.message.clone()),
                _ => None,
            })
            .collect();
        assert!(refused.is_empty(), "{refused:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_by_the_thousand_neither_hides_live_breaches_nor_floods_a_series() {
    let baton = Baton::start().await;
    // 10,001 repairs of 1971, an hour apart, loaded as history: every one
    // broke its promise, none was announced.
    let start = 365 * 24 * HOUR;
    let history: Vec<_> = (0..10_001)
        .map(|n| {
            let id = format!("old-h{n}");
            let event = requested(
                &id,
                "repair",
                "engineering",
                "ward-5",
                Priority::Routine,
                start + n * HOUR,
            );
            request(event, true)
        })
        .collect();
    append_all(&baton, history).await;
    // Then two STAT repairs whose 2 s run out now.
    let now = now_millis();
    let live: Vec<_> = (0..2)
        .map(|n| {
            let id = format!("zz-live-{n}");
            let event = requested(&id, "repair", "engineering", "ward-5", Priority::Stat, now);
            request(event, false)
        })
        .collect();
    append_all(&baton, live).await;

    let side = baton
        .projector
        .as_ref()
        .and_then(|p| p.http)
        .expect("board");
    // The live breaches are listed first, apart from history (and before
    // the running clocks, where they show until their 2 s run out).
    let board = baton_e2e::eventually("both live breaches on the board", || async move {
        let page = http::get(side, "/board/live").await.body;
        let breached = page
            .split("id=\"history-breaches\"")
            .next()
            .unwrap_or_default();
        (breached.contains("zz-live-0") && breached.contains("zz-live-1")).then_some(page)
    })
    .await;
    assert!(
        board.contains("From loaded history, never announced"),
        "history has a section of its own"
    );
    assert!(
        board.contains("5 of 10001"),
        "and says how much of it there is"
    );

    // A compliance series of 10,001 hours is refused, saying how to narrow it;
    // by day it is 417 buckets.
    let mut query = baton.query().await;
    let hourly = query
        .get_compliance(v1::GetComplianceRequest {
            bucket: v1::Bucket::Hour as i32,
            ..Default::default()
        })
        .await
        .expect_err("10,001 hourly buckets");
    assert_eq!(hourly.code(), Code::InvalidArgument, "{hourly:?}");
    assert!(
        hourly.message().starts_with("bucket: "),
        "{}",
        hourly.message()
    );
    assert!(hourly.message().contains("10000"), "{}", hourly.message());
    let daily = query
        .get_compliance(v1::GetComplianceRequest {
            bucket: v1::Bucket::Day as i32,
            ..Default::default()
        })
        .await
        .expect("by day")
        .into_inner()
        .compliance
        .expect("figures");
    assert!(
        (417..=418).contains(&daily.buckets.len()),
        "{}",
        daily.buckets.len()
    );
    assert_eq!(
        daily.breached, 10_003,
        "every promise broken, live ones too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_cannot_grow_past_what_a_client_reads_back() {
    let baton = Baton::start().await;
    let at = now_millis() - HOUR;
    // The largest hand-off Baton keeps: 1,000 events, long ids and actors,
    // and attributes up to the hand-off's bound.
    let mut events = vec![requested(
        "big-1",
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        at,
    )];
    // The hand-off's attributes are bounded: a second one's ninth event of
    // 8 KiB of attributes is refused, with the reason.
    let heavy = |id: &str, n: i64| {
        let mut event = later(
            id,
            if n % 2 == 1 {
                EventType::OnHold
            } else {
                EventType::Resumed
            },
            at + n,
        );
        for k in 0..32 {
            event.attributes.insert(format!("k{k:02}"), "v".repeat(253));
        }
        event
    };
    let mut second = vec![request(
        requested(
            "big-2",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            at,
        ),
        false,
    )];
    second.extend((1..9).map(|n| request(heavy("big-2", n), false)));
    append_all(&baton, second).await;
    let mut ingest = baton.ingest().await;
    let refused = ingest
        .append(request(heavy("big-2", 9), false))
        .await
        .expect_err("past the hand-off's attribute bound");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("attributes: hand-off big-2 would carry 73728 bytes"),
        "{}",
        refused.message()
    );

    let mut attribute_bytes = 0usize;
    for n in 1..1_000 {
        let kind = if n % 2 == 1 {
            EventType::OnHold
        } else {
            EventType::Resumed
        };
        let mut event = later("big-1", kind, at + n);
        event.event_id = format!("big-1-event-{n:0>4}-{}", "e".repeat(100));
        event.actor = format!("desk-{}", "a".repeat(120));
        // 32 attributes of 256 bytes would be 8 KiB an event: as many as fit.
        if attribute_bytes + 8_192 <= 64 * 1024 {
            for k in 0..32 {
                event.attributes.insert(format!("k{k:02}"), "v".repeat(253));
            }
            attribute_bytes += 8_192;
        }
        events.push(event);
    }
    append_all(
        &baton,
        events.into_iter().map(|e| request(e, false)).collect(),
    )
    .await;

    // A client with tonic's default 4 MiB limit reads it whole.
    let mut query = baton.query().await;
    let handoff = projected(&mut query, "big-1", 1_000).await;
    let size = handoff.encoded_len();
    assert_eq!(handoff.events.len(), 1_000);
    assert!(size < 4 * 1024 * 1024, "{size} bytes");
    eprintln!(
        "largest hand-off: 1,000 events, {attribute_bytes} attribute bytes, GetHandoff {size} bytes"
    );
}
