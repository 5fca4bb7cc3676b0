//! Logs never print attribute values, comments, reasons or refused patient
//! data: everything the services log at debug level while taking good and
//! refused events is captured and searched for the values sent.

use baton_e2e::{append, later, now_millis, projected, requested, timestamp, Baton};
use baton_proto::v1::{self, EventType, Priority};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_attribute_value_comment_or_reason_reaches_the_logs() {
    let captured = baton_e2e::capture_logs();

    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let mut query = baton.query().await;
    let t0 = now_millis() - 60_000;
    let canaries = [
        "canary-asset-7",
        "123456782",
        "Mr. Canary",
        "canary-comment",
        "canary-reason",
        "bsn-canary-4711",
        "mrn-canary-d",
    ];

    let mut good = requested("log-1", "lab", "lab", "ward-5", Priority::Routine, t0);
    good.attributes.insert("asset".into(), canaries[0].into());
    ingest.append(append(good)).await.expect("accepted");
    let mut refused = requested("log-2", "lab", "lab", "ward-5", Priority::Routine, t0);
    refused
        .attributes
        .insert("record".into(), canaries[1].into());
    assert!(ingest.append(append(refused)).await.is_err());
    let mut named = requested("log-3", "lab", "lab", "ward-5", Priority::Routine, t0);
    named.attributes.insert("note".into(), canaries[2].into());
    assert!(ingest.append(append(named)).await.is_err());
    // Ids that look like patient data are refused, and not logged either.
    let labelled = requested(canaries[5], "lab", "lab", "ward-5", Priority::Routine, t0);
    assert!(ingest.append(append(labelled)).await.is_err());
    let labelled = v1::DisruptionEvent {
        disruption_id: canaries[6].into(),
        phase: v1::DisruptionPhase::Started as i32,
        supplier: "lab".into(),
        occurred_at: Some(timestamp(t0)),
        reason: "analyzer down".into(),
        ..Default::default()
    };
    assert!(ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(labelled),
        })
        .await
        .is_err());
    ingest
        .append(append(later("log-1", EventType::Completed, t0 + 1000)))
        .await
        .expect("completed");
    let mut rated = later("log-1", EventType::Rated, t0 + 2000);
    rated.rating = Some(v1::Rating {
        score: 9,
        comment: canaries[3].into(),
    });
    assert!(ingest.append(append(rated)).await.is_err(), "score 9");
    ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: "log-d".into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "lab".into(),
                occurred_at: Some(timestamp(t0)),
                reason: canaries[4].into(),
                ..Default::default()
            }),
        })
        .await
        .expect("disruption");
    projected(&mut query, "log-1", 2).await;

    let logs = captured.text();
    assert!(
        logs.contains("append refused") && logs.contains("disruption refused"),
        "the refusals were logged (else this test proves nothing)"
    );
    for canary in canaries {
        assert!(!logs.contains(canary), "the logs print {canary:?}");
    }
    println!("log lines searched: {}", logs.lines().count());
}
