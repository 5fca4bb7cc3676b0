//! Projectors sharing the work by hand-off, on the three-node cluster.
//!
//! Three projectors each consume their partition of the events (JetStream
//! splits `BATON_HANDOFFS` by a hash of the hand-off id, see
//! `baton_log::partitions`), and a fourth consumes the whole stream as the
//! reference. Every query asked of any partition's projector is answered
//! across all three, and must equal the reference's answer; each partition
//! holds its own hand-offs and nobody else's; a live breach is announced
//! once, whoever holds it.

use std::collections::BTreeSet;

use baton_e2e::*;
use baton_proto::v1::{self, query_client::QueryClient, EventType, Priority};
use baton_testkit::NatsCluster;
use tonic::transport::Channel;

const PARTITIONS: u32 = 3;
const HISTORY: usize = 240;
const LIVE_STAT: usize = 6;
const MIN: i64 = 60_000;

/// Hand-off `i` of the history, with its events (in order).
fn history(i: usize, t0: i64) -> Vec<v1::HandoffEvent> {
    let id = format!("p-{i:03}");
    let (kind, supplier, customers): (&str, &str, &[&str]) = match i % 3 {
        0 => ("repair", "engineering", &["ward-5", "ward-6"]),
        1 => ("lab", "lab", &["ward-5", "ward-6", "cardiology"]),
        _ => ("consult", "cardiology", &["ward-5", "dentistry"]),
    };
    let customer = customers[i % customers.len()];
    let priority = if i.is_multiple_of(5) {
        Priority::Urgent
    } else {
        Priority::Routine
    };
    let at = t0 + (i as i64 % 7) * MIN;
    let mut events = vec![requested(&id, kind, supplier, customer, priority, at)];
    let step = |t: EventType, m: i64| later(&id, t, at + m * MIN);
    match i % 4 {
        // Never answered: open, or breached if the target has run out.
        0 => {}
        // Answered quickly, completed, rated.
        1 => {
            events.push(step(EventType::Acknowledged, 3));
            events.push(step(EventType::Started, 4));
            events.push(step(EventType::Completed, 9));
            let mut rated = step(EventType::Rated, 10);
            rated.rating = Some(v1::Rating {
                score: (i % 5) as u32 + 1,
                comment: String::new(),
            });
            events.push(rated);
        }
        // Answered late for a repair (30 min), in time for the others.
        2 => {
            events.push(step(EventType::Acknowledged, 40));
            events.push(step(EventType::Started, 41));
        }
        // Refused.
        _ => events.push(step(EventType::Rejected, 2)),
    }
    events
}

fn disruption(phase: v1::DisruptionPhase, at: i64) -> v1::AppendDisruptionRequest {
    v1::AppendDisruptionRequest {
        disruption: Some(v1::DisruptionEvent {
            disruption_id: "analyser-down".into(),
            phase: phase as i32,
            supplier: "lab".into(),
            occurred_at: Some(timestamp(at)),
            reason: if phase == v1::DisruptionPhase::Started {
                "analyser down".to_owned()
            } else {
                String::new()
            },
            actor: "test-system".into(),
            ..Default::default()
        }),
    }
}

/// `request` for one partition's own views only.
fn scoped<T>(request: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(request);
    request
        .metadata_mut()
        .insert("baton-scope", "partition".parse().expect("ascii"));
    request
}

/// Every hand-off id one projector lists, paging `page` at a time.
async fn all_ids(query: &mut QueryClient<Channel>, page: u32, scope: bool) -> Vec<String> {
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let request = v1::ListHandoffsRequest {
            page_size: page,
            page_token: token.clone(),
            ..Default::default()
        };
        let request = if scope {
            scoped(request)
        } else {
            tonic::Request::new(request)
        };
        let answer = query
            .list_handoffs(request)
            .await
            .expect("list")
            .into_inner();
        ids.extend(answer.handoffs.into_iter().map(|h| h.handoff_id));
        if answer.next_page_token.is_empty() {
            return ids;
        }
        token = answer.next_page_token;
    }
}

/// Every breach, paged, without the overrun (it grows with the clock).
async fn all_breaches(query: &mut QueryClient<Channel>, page: u32) -> Vec<v1::Breach> {
    let mut breaches = Vec::new();
    let mut token = String::new();
    loop {
        let answer = query
            .list_breaches(v1::ListBreachesRequest {
                page_size: page,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("breaches")
            .into_inner();
        breaches.extend(
            answer
                .breaches
                .into_iter()
                .map(|b| v1::Breach { overrun: None, ..b }),
        );
        if answer.next_page_token.is_empty() {
            return breaches;
        }
        token = answer.next_page_token;
    }
}

/// What an operator sees: every figure and list the Query service has.
#[derive(Debug, PartialEq)]
struct Picture {
    compliance: Vec<v1::Compliance>,
    matrix: v1::GetMatrixResponse,
    breaches: Vec<v1::Breach>,
    open_clocks: Vec<v1::OpenClock>,
    disruptions: Vec<v1::Disruption>,
    handoffs: Vec<String>,
}

async fn picture(query: &mut QueryClient<Channel>, page: u32) -> Picture {
    let mut compliance = Vec::new();
    for policy in ["", "repair-response", "lab-turnaround", "consult-routine"] {
        let figures = query
            .get_compliance(v1::GetComplianceRequest {
                policy_id: policy.into(),
                bucket: v1::Bucket::Hour as i32,
                ..Default::default()
            })
            .await
            .expect("compliance")
            .into_inner()
            .compliance
            .expect("figures");
        compliance.push(figures);
    }
    let matrix = query
        .get_matrix(v1::GetMatrixRequest::default())
        .await
        .expect("matrix")
        .into_inner();
    let open_clocks = query
        .list_open_clocks(v1::ListOpenClocksRequest {
            limit: 50,
            ..Default::default()
        })
        .await
        .expect("open clocks")
        .into_inner()
        .clocks;
    let disruptions = query
        .list_disruptions(v1::ListDisruptionsRequest::default())
        .await
        .expect("disruptions")
        .into_inner()
        .disruptions;
    Picture {
        compliance,
        matrix,
        breaches: all_breaches(query, page).await,
        open_clocks,
        disruptions,
        handoffs: all_ids(query, page, false).await,
    }
}

/// Which parts of two pictures differ (for the log of a failing run).
fn difference(a: &Picture, b: &Picture) -> String {
    let mut parts = Vec::new();
    let brief = |c: &v1::Compliance| {
        format!(
            "{} t{} m{} b{} o{} c{} p50 {:?} buckets {}",
            c.policy_id,
            c.total,
            c.met,
            c.breached,
            c.open,
            c.cancelled,
            c.p50,
            c.buckets.len()
        )
    };
    for (x, y) in a.compliance.iter().zip(&b.compliance) {
        if x != y {
            parts.push(format!("compliance {} vs {}", brief(x), brief(y)));
            for (bx, by) in x.buckets.iter().zip(&y.buckets) {
                if bx != by {
                    parts.push(format!("bucket {bx:?} vs {by:?}"));
                }
            }
        }
    }
    if a.matrix != b.matrix {
        parts.push(format!("matrix {:?} vs {:?}", a.matrix, b.matrix));
    }
    if a.breaches != b.breaches {
        parts.push(format!(
            "breaches {} vs {}",
            a.breaches.len(),
            b.breaches.len()
        ));
    }
    if a.open_clocks != b.open_clocks {
        parts.push(format!(
            "open clocks {:?} vs {:?}",
            a.open_clocks, b.open_clocks
        ));
    }
    if a.disruptions != b.disruptions {
        parts.push(format!(
            "disruptions {:?} vs {:?}",
            a.disruptions, b.disruptions
        ));
    }
    if a.handoffs != b.handoffs {
        parts.push(format!(
            "hand-offs {} vs {}",
            a.handoffs.len(),
            b.handoffs.len()
        ));
    }
    parts.join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_projectors_answer_as_one() {
    let cluster = NatsCluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let ingest = start_ingest_with(&urls, &catalog, 3).await;

    // Three partitions, each answering across all three; bind first so
    // every projector knows every URL.
    let mut listeners = Vec::new();
    for _ in 0..PARTITIONS {
        listeners.push(listener().await);
    }
    let query_urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().expect("bound")))
        .collect();
    let mut partitions = Vec::new();
    for (index, grpc) in listeners.into_iter().enumerate() {
        let setup = ProjectorSetup {
            stream_replicas: 3,
            partitions: PARTITIONS,
            partition: index as u32,
            query_partitions: query_urls.clone(),
            ..ProjectorSetup::default()
        };
        let data = dir.path().join(format!("views-{index}"));
        partitions.push(start_projector_setup(&urls, &catalog, &data, &setup, grpc).await);
    }
    let whole = start_projector_with(&urls, &catalog, &dir.path().join("views-whole"), 3).await;

    let mut ingest_client = v1::ingest_client::IngestClient::new(channel(ingest.addr).await);
    let t0 = now_millis() - 50 * MIN;
    ingest_client
        .append_disruption(disruption(v1::DisruptionPhase::Started, t0 - 10 * MIN))
        .await
        .expect("disruption started");
    let mut events = 0;
    for chunk in (0..HISTORY).collect::<Vec<_>>().chunks(20) {
        let requests: Vec<v1::AppendRequest> = chunk
            .iter()
            .flat_map(|i| history(*i, t0))
            .map(append)
            .collect();
        events += requests.len();
        let results = ingest_client
            .append_batch(v1::AppendBatchRequest { requests })
            .await
            .expect("batch")
            .into_inner()
            .results;
        for result in results {
            assert!(
                matches!(result.outcome, Some(v1::append_result::Outcome::Ok(_))),
                "refused: {result:?}"
            );
        }
    }
    ingest_client
        .append_disruption(disruption(v1::DisruptionPhase::Ended, t0 + 3 * MIN))
        .await
        .expect("disruption ended");
    // Live STAT repairs: their 2 s run out while the projectors watch.
    let live_at = now_millis();
    for i in 0..LIVE_STAT {
        let id = format!("live-{i}");
        let event = requested(&id, "repair", "engineering", "ed", Priority::Stat, live_at);
        ingest_client.append(append(event)).await.expect("live");
    }
    events += LIVE_STAT;

    let reference = QueryClient::new(channel(whole.addr).await);
    let mut fronts = Vec::new();
    for p in &partitions {
        fronts.push(QueryClient::new(channel(p.addr).await));
    }

    // The reference has every hand-off, and the live breaches are due.
    eventually("the reference to hold every hand-off", || {
        let mut q = reference.clone();
        async move {
            let picture = picture(&mut q, 1000).await;
            let live_breached = picture
                .breaches
                .iter()
                .filter(|b| b.handoff_id.starts_with("live-"))
                .count();
            (picture.handoffs.len() == HISTORY + LIVE_STAT && live_breached == LIVE_STAT)
                .then_some(())
        }
    })
    .await;
    // Taken after the last breach: nothing falls due for hours now.
    let expected = picture(&mut reference.clone(), 1000).await;
    assert!(expected.breaches.len() > LIVE_STAT, "history breaches too");
    assert!(!expected.open_clocks.is_empty(), "clocks still running");
    assert_eq!(expected.disruptions.len(), 1);
    assert!(
        expected.disruptions[0].affected > 0,
        "lab work was disrupted"
    );

    // Any partition's projector answers for all of them, pages of 7 included.
    for front in &fronts {
        eventually("the partitions to answer as the reference does", || {
            let (mut q, expected) = (front.clone(), &expected);
            async move {
                let seen = picture(&mut q, 7).await;
                if seen != *expected {
                    eprintln!("not yet: {}", difference(&seen, expected));
                }
                (seen == *expected).then_some(())
            }
        })
        .await;
    }

    // Each partition holds its own share, none empty, none shared.
    let mut seen = BTreeSet::new();
    let mut shares = Vec::new();
    for front in &mut fronts {
        let own = all_ids(front, 1000, true).await;
        assert!(!own.is_empty(), "every partition gets hand-offs");
        shares.push(own.len());
        for id in own {
            assert!(seen.insert(id.clone()), "{id} is in two partitions");
        }
    }
    assert_eq!(seen.len(), HISTORY + LIVE_STAT);

    // A hand-off is found wherever it lives; an unknown one nowhere.
    let one = fronts[0]
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "p-101".into(),
        })
        .await
        .expect("found across partitions")
        .into_inner()
        .handoff
        .expect("the hand-off");
    assert_eq!(one.events.len(), history(101, t0).len());
    let missing = fronts[1]
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: "nobody".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    // A bad request is refused as a single projector refuses it.
    let bad = fronts[2]
        .get_compliance(v1::GetComplianceRequest {
            policy_id: "no-such-promise".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown promise");
    assert_eq!(bad.code(), tonic::Code::NotFound);

    // Status adds up: current, every partition's position at its stream's end.
    let status = fronts[0]
        .get_status(v1::GetStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert!(status.current);
    assert_eq!(status.position, status.stream_last_sequence);
    // Each hand-off event is in one partition; each disruption event in all.
    assert_eq!(
        status.stream_last_sequence,
        events as u64 + 2 * u64::from(PARTITIONS)
    );

    // Four projectors saw each live breach; it was announced once.
    let nats = connect_cluster(&urls).await;
    let live_breaches = "baton.sla.breached.repair-response.engineering.ed.*";
    let stream = baton_log::subject::SLA_STREAM;
    eventually("the live breaches to be announced", || {
        let nats = nats.clone();
        async move {
            (count_messages(&nats, stream, live_breaches).await >= LIVE_STAT as u64).then_some(())
        }
    })
    .await;
    assert_eq!(
        count_messages(&nats, stream, live_breaches).await,
        LIVE_STAT as u64
    );
    eprintln!(
        "{} events, {} hand-offs in partitions of {shares:?}, {} breaches, {} open clocks listed",
        events,
        seen.len(),
        expected.breaches.len(),
        expected.open_clocks.len()
    );

    // A partition's board says it shows one share only; the whole one does not.
    let board = |addr| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("board");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: baton\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut page = Vec::new();
        stream.read_to_end(&mut page).await.expect("page");
        String::from_utf8_lossy(&page).into_owned()
    };
    let page = board(partitions[1].http.expect("side port")).await;
    assert!(page.contains("partition 1 of 3 only"), "{page}");
    let page = board(whole.http.expect("side port")).await;
    assert!(page.contains("<header>") && !page.contains("of 3 only"));

    for p in partitions {
        assert!(p.stop().await);
    }
    assert!(whole.stop().await);
    assert!(ingest.stop().await);
}

/// The same across partitions that require mutual TLS and registered
/// callers: the asked projector authenticates its caller, then asks the
/// partitions as itself, with its own client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_answer_across_over_mutual_tls() {
    use baton_e2e::secure::{start_projector_configured_on, Pki};

    const HANDOFFS: usize = 40;
    let nats = baton_testkit::NatsServer::start();
    let pki = Pki::new();
    let fanout_identity = pki.client("ca", "baton-fanout", true);
    let operator = pki.client("ca", "duty-desk", true);
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let callers = dir.path().join("callers.json");
    std::fs::write(
        &callers,
        r#"{"callers": [
          {"id": "duty-desk", "role": "operator"},
          {"id": "baton-fanout", "role": "operator"}
        ]}"#,
    )
    .expect("callers");
    let ingest = start_ingest(&nats.url(), &catalog).await;

    let listeners = [listener().await, listener().await];
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("https://{}", l.local_addr().expect("bound")))
        .collect();
    let mut partitions = Vec::new();
    for (index, grpc) in listeners.into_iter().enumerate() {
        let (tls, urls) = (pki.server_args(&callers), urls.clone());
        let query_tls = baton_projector::fanout::FanoutTlsArgs {
            query_partitions_ca: Some(pki.path("ca.crt")),
            query_partitions_cert: Some(pki.path(&format!("{fanout_identity}.crt"))),
            query_partitions_key: Some(pki.path(&format!("{fanout_identity}.key"))),
        };
        let data = dir.path().join(format!("views-{index}"));
        let running = start_projector_configured_on(grpc, &nats.url(), &catalog, &data, |c| {
            c.tls = tls;
            c.partitions = 2;
            c.partition = index as u32;
            c.query_partitions = urls;
            c.query_tls = query_tls;
        })
        .await;
        pki.wait_serving(running.addr, "baton.v1.Query").await;
        partitions.push(running);
    }

    let mut ingest_client = v1::ingest_client::IngestClient::new(channel(ingest.addr).await);
    let at = now_millis();
    for i in 0..HANDOFFS {
        let id = format!("tls-{i}");
        let event = requested(
            &id,
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            at,
        );
        ingest_client.append(append(event)).await.expect("append");
    }

    let front = pki
        .channel(partitions[1].addr, Some(&operator))
        .await
        .expect("operator channel");
    let figures = eventually("every partition's hand-offs counted", || {
        let mut query = QueryClient::new(front.clone());
        async move {
            let figures = query
                .get_compliance(v1::GetComplianceRequest {
                    policy_id: "repair-response".into(),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .compliance?;
            (figures.total == HANDOFFS as u64).then_some(figures)
        }
    })
    .await;
    assert_eq!(figures.open, HANDOFFS as u64);
    let mut query = QueryClient::new(front.clone());
    assert_eq!(all_ids(&mut query, 7, false).await.len(), HANDOFFS);
    // Each partition alone holds a share, not all.
    let mut own = QueryClient::new(front);
    let share = all_ids(&mut own, 1000, true).await.len();
    assert!(share > 0 && share < HANDOFFS, "{share} of {HANDOFFS}");

    // Without a client certificate the asked projector refuses the caller
    // itself, before any partition is asked.
    let anonymous = pki
        .channel(partitions[0].addr, None)
        .await
        .expect("anonymous channel");
    let refused = QueryClient::new(anonymous)
        .get_compliance(v1::GetComplianceRequest::default())
        .await
        .expect_err("no certificate");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    for p in partitions {
        assert!(p.stop().await);
    }
    assert!(ingest.stop().await);
}
