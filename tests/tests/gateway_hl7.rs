//! The HL7 gateway end to end: real nats-server, ingest, projector and
//! gateway, and a real TCP MLLP client. Each trigger the shipped lab mapping
//! names, each ACK code, a resend after a lost ACK, a connection cut
//! mid-frame, interleaved connections, times with and without offsets, and
//! ingest away; the synthetic patient values the messages carry are then
//! searched for in the stream and in everything the services logged.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use baton_e2e::{contains, eventually, start_gateway, stream_payloads, Baton, TEST_CATALOG};
use baton_proto::v1::{self, HandoffStatus};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Synthetic patient values, in segments the gateway must drop.
const PATIENT: [&str; 4] = ["ZZPATIENT4711", "TESTPERSON", "QUINCY", "19450101"];

/// An MLLP sender: one connection, a message at a time, waiting for its ACK.
struct Sender<S>(S);

impl Sender<TcpStream> {
    async fn connect(addr: SocketAddr) -> Sender<TcpStream> {
        Sender(
            TcpStream::connect(addr)
                .await
                .expect("connect to the gateway"),
        )
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Sender<S> {
    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.expect("write");
    }

    /// Sends `message` in its frame and reads the ACK, or `None` if the
    /// gateway closed the connection without one.
    async fn send(&mut self, message: &str) -> Option<String> {
        let mut framed = vec![0x0B];
        framed.extend_from_slice(message.as_bytes());
        framed.extend_from_slice(&[0x1C, 0x0D]);
        self.send_bytes(&framed).await;
        self.ack().await
    }

    async fn ack(&mut self) -> Option<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(2).position(|w| w == [0x1C, 0x0D]) {
                assert_eq!(got.first(), Some(&0x0B), "an ACK starts its frame");
                return Some(String::from_utf8_lossy(&got[1..end]).into_owned());
            }
            let n = tokio::time::timeout(Duration::from_secs(20), self.0.read(&mut buf))
                .await
                .expect("an answer within 20 s")
                .expect("read");
            if n == 0 {
                assert!(got.is_empty(), "closed mid-ACK");
                return None;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
}

/// MSA-1 of an ACK.
fn code(ack: &str) -> &str {
    ack.split('\r')
        .find(|s| s.starts_with("MSA|"))
        .and_then(|s| s.split('|').nth(1))
        .unwrap_or("")
}

fn header(kind: &str, control: &str, sent: &str) -> String {
    format!("MSH|^~\\&|OE|NORTH|LIS|NORTH|{sent}||{kind}|{control}|P|2.5\r")
}

fn patient() -> String {
    format!(
        "PID|1||{}^^^NORTH^MR||{}^{}||{}|F\rPV1|1|I|WARD5^101^1\rNK1|1|{}^ANNA\r",
        PATIENT[0], PATIENT[1], PATIENT[2], PATIENT[3], PATIENT[1]
    )
}

/// A new order for `test` from `location`, placer number `placer`.
fn order(control: &str, placer: &str, test: &str, location: &str, at: &str) -> String {
    format!(
        "{}{}ORC|NW|{placer}^OE|||SC||^^^^^S||{at}||||{location}\rOBR|1|{placer}^OE||{test}^Test\r",
        header("ORM^O01", control, at),
        patient()
    )
}

/// A status change of order `placer`: ORC-1 and ORC-5.
fn status(control: &str, placer: &str, orc1: &str, orc5: &str, at: &str) -> String {
    format!(
        "{}ORC|{orc1}|{placer}^OE|||{orc5}||||{at}\rOBR|1|{placer}^OE||TROP\r",
        header("ORM^O01", control, at)
    )
}

/// A result of order `placer` with OBR-25 `status`, reported at `at` (OBR-22).
fn result(control: &str, placer: &str, status: &str, at: &str) -> String {
    format!(
        "MSH|^~\\&|LIS|NORTH|OE|NORTH|{at}||ORU^R01|{control}|P|2.5\r{}OBR|1|{placer}^OE|F-{placer}^LIS|TROP{}{at}|||{status}\rOBX|1|NM|TROP||42|ng/L|||||F\rNTE|1||result for {} {}\r",
        patient(),
        "|".repeat(18),
        PATIENT[1],
        PATIENT[2]
    )
}

/// [`result`] with OBR-14, when the lab received the specimen.
fn result_received(control: &str, placer: &str, status: &str, at: &str, received: &str) -> String {
    result(control, placer, status, at).replacen(
        &format!("TROP{}", "|".repeat(18)),
        &format!("TROP{}{received}{}", "|".repeat(10), "|".repeat(8)),
        1,
    )
}

/// An HL7 time `minutes` before now, in UTC, with or without its offset.
fn hl7_time(minutes_ago: i64, with_offset: bool) -> String {
    let t = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes_ago);
    let text = t.strftime("%Y%m%d%H%M%S").to_string();
    if with_offset {
        format!("{text}+0000")
    } else {
        text
    }
}

/// The lab hand-offs ward 5 has asked for, as the projector shows them.
async fn ward5(
    query: &mut v1::query_client::QueryClient<tonic::transport::Channel>,
) -> Vec<v1::Handoff> {
    query
        .list_handoffs(v1::ListHandoffsRequest {
            customer: "ward-5".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .handoffs
}

fn mapping() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/gateway/hl7-lab.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_orders_and_results_become_hand_offs_acknowledged_only_when_stored() {
    let logs = baton_e2e::capture_logs();
    let mut baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest_addr, projector, &mapping()).await;
    let query = baton.query().await;
    let mut lis = Sender::connect(gateway.addr).await;

    // A STAT troponin from ward 5, its time with an offset: AA, a hand-off.
    let ordered = hl7_time(30, true);
    let ack = lis
        .send(&order("M-1", "P-100", "TROP", "WARD5", &ordered))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");
    assert!(ack.contains("MSA|AA|M-1\r"), "MSA-2 echoes MSH-10: {ack}");
    let handoffs = eventually("the order in the views", || {
        let mut query = query.clone();
        async move { Some(ward5(&mut query).await).filter(|h| h.len() == 1) }
    })
    .await;
    let handoff = &handoffs[0];
    assert_eq!(
        (handoff.kind.as_str(), handoff.supplier.as_str()),
        ("lab", "lab")
    );
    assert_eq!(handoff.priority, v1::Priority::Stat as i32);
    assert_eq!(handoff.version, 1);

    // The same message again, as after a lost ACK: AA, and nothing new.
    let ack = lis
        .send(&order("M-1", "P-100", "TROP", "WARD5", &ordered))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");

    // Started (SC/IP), then the final result, whose time has no offset
    // (read in the gateway's zone, UTC here): completed at that time.
    let started = hl7_time(20, true);
    let ack = lis
        .send(&status("M-2", "P-100", "SC", "IP", &started))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");
    let reported = hl7_time(10, false);
    let ack = lis
        .send(&result("R-1", "P-100", "F", &reported))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");
    let id = handoff.handoff_id.clone();
    let done = eventually("the result completing the hand-off", || {
        let mut query = query.clone();
        let id = id.clone();
        async move {
            let h = query
                .get_handoff(v1::GetHandoffRequest { handoff_id: id })
                .await
                .ok()?
                .into_inner()
                .handoff?;
            (h.status == HandoffStatus::Completed as i32).then_some(h)
        }
    })
    .await;
    assert_eq!(
        done.version, 3,
        "requested, started, completed: the resend added nothing"
    );
    let completed_at = done
        .events
        .last()
        .and_then(|e| e.occurred_at)
        .expect("a time");
    let expected = jiff::civil::DateTime::strptime("%Y%m%d%H%M%S", &reported)
        .expect("time")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("utc")
        .timestamp()
        .as_second();
    assert_eq!(
        completed_at.seconds, expected,
        "read in UTC, the configured zone"
    );

    // A corrected result: acknowledged, nothing appended.
    let ack = lis
        .send(&result("R-2", "P-100", "C", &hl7_time(5, true)))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");

    // Understood but refused: an unknown test (AE naming OBR-4), a status
    // the lifecycle refuses (AE with ingest's reason); unreadable: AR.
    let ack = lis
        .send(&order("M-3", "P-101", "XRAY", "WARD5", &ordered))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AE", "{ack}");
    assert!(ack.contains("ERR||OBR^1^4|103^"), "{ack}");
    let ack = lis
        .send(&status("M-4", "P-100", "HD", "", &hl7_time(4, true)))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AE", "on hold after completion: {ack}");
    let ack = lis
        .send("MSH|^~\\&|ADT|NORTH|X|Y|20261205||ADT^A01|M-5|P|2.5\rPID|1||ZZPATIENT4711\r")
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AR", "{ack}");
    let ack = lis.send("this is not HL7").await.expect("ACK");
    assert_eq!(code(&ack), "AR", "{ack}");

    // Two connections interleaved, each answered in its own order.
    let mut oe = Sender::connect(gateway.addr).await;
    for i in 0..5 {
        let a = lis
            .send(&order(
                &format!("L-{i}"),
                &format!("P-2{i}"),
                "CBC",
                "WARD5",
                &ordered,
            ))
            .await
            .expect("ACK");
        let b = oe
            .send(&order(
                &format!("O-{i}"),
                &format!("P-3{i}"),
                "CRP",
                "WARD5",
                &ordered,
            ))
            .await
            .expect("ACK");
        assert!(a.contains(&format!("MSA|AA|L-{i}\r")), "{a}");
        assert!(b.contains(&format!("MSA|AA|O-{i}\r")), "{b}");
    }

    // A connection cut mid-frame stores nothing; bytes outside a frame get
    // AR and a close; the other connections go on.
    let mut cut = Sender::connect(gateway.addr).await;
    let half = order("M-6", "P-400", "TROP", "WARD5", &ordered);
    cut.send_bytes(&[&[0x0B][..], &half.as_bytes()[..half.len() / 2]].concat())
        .await;
    drop(cut);
    let mut stray = Sender::connect(gateway.addr).await;
    stray.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    let ack = stray.ack().await.expect("a NAK before the close");
    assert_eq!(code(&ack), "AR", "{ack}");
    assert_eq!(stray.ack().await, None, "then closed");
    let all = eventually("11 hand-offs of ward 5", || {
        let mut query = query.clone();
        async move { Some(ward5(&mut query).await).filter(|h| h.len() == 11) }
    })
    .await;
    assert_eq!(
        all.len(),
        11,
        "P-100, five CBC, five CRP; not P-101 nor P-400"
    );

    // Ingest away: no AA for what was not stored; the connection closes so
    // the sender sends again, and the gateway says why it is not ready.
    let ingest = baton.ingest.take().expect("ingest");
    assert!(ingest.stop().await, "ingest stops");
    let mut waiting = Sender::connect(gateway.addr).await;
    assert_eq!(
        waiting
            .send(&order("M-7", "P-500", "TROP", "WARD5", &ordered))
            .await,
        None
    );
    let web = gateway.http.expect("side port");
    let ready = baton_e2e::http::get(web, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(
        ready.body.contains("ingest cannot store events"),
        "{}",
        ready.body
    );

    // Nothing of the patient anywhere: not in the stream, not in the logs.
    let payloads = stream_payloads(&baton.nats_client().await).await;
    assert!(payloads.len() >= 13, "{} events", payloads.len());
    let text = logs.text();
    assert!(
        text.contains("baton_gateway"),
        "the gateway's logs were captured"
    );
    for value in PATIENT {
        for payload in &payloads {
            assert!(!contains(payload, value), "{value} reached the stream");
        }
        assert!(!text.contains(value), "{value} reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_mllp_is_spoken_inside_tls_only() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let pki = baton_e2e::secure::Pki::new();
    let callers = pki.path("callers.json");
    std::fs::write(&callers, r#"{"callers": []}"#).expect("callers");
    let gateway =
        baton_e2e::start_gateway_with(ingest, projector, &mapping(), pki.server_args(&callers))
            .await;

    let https = baton_e2e::http::Https::new(&pki.path("ca.crt"), None);
    let tls = https.connect(gateway.addr).await.expect("a TLS handshake");
    let mut sender = Sender(tls);
    let ack = sender
        .send(&order("T-1", "P-900", "TROP", "WARD5", &hl7_time(5, true)))
        .await
        .expect("an ACK inside TLS");
    assert_eq!(code(&ack), "AA", "{ack}");

    // Plain MLLP to the TLS port is never answered as HL7: at most a TLS
    // alert, then the connection closes.
    let mut plain = TcpStream::connect(gateway.addr).await.expect("connect");
    let message = order("T-2", "P-901", "TROP", "WARD5", &hl7_time(5, true));
    plain
        .write_all(&[&[0x0B][..], message.as_bytes(), &[0x1C, 0x0D]].concat())
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer))
        .await
        .expect("closed within 20 s")
        .ok();
    assert!(
        !contains(&answer, "MSA|"),
        "an ACK in plaintext: {answer:?}"
    );
}

/// A lab day: 24 orders an hour apart, STAT every third, resulted after
/// 0-299 minutes, every seventh never.
fn lab_day(start: jiff::Timestamp) -> Vec<(jiff::Timestamp, bool, Option<jiff::Timestamp>)> {
    (0..24i64)
        .map(|i| {
            let ordered = start + jiff::SignedDuration::from_hours(i);
            let resulted =
                (i % 7 != 0).then(|| ordered + jiff::SignedDuration::from_mins(i * 17 % 300));
            (ordered, i % 3 == 0, resulted)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_day_as_hl7_gives_the_figures_it_gives_as_baton_events() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest_addr, projector, &mapping()).await;
    let day = lab_day(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(30));
    let hl7 = |t: jiff::Timestamp| t.strftime("%Y%m%d%H%M%S+0000").to_string();

    // Ward 5's day through the gateway.
    let mut lis = Sender::connect(gateway.addr).await;
    for (i, (ordered, stat, resulted)) in day.iter().enumerate() {
        let priority = if *stat { "S" } else { "R" };
        let message = order(
            &format!("D-{i}"),
            &format!("DAY-{i}"),
            "CBC",
            "WARD5",
            &hl7(*ordered),
        )
        .replace("^^^^^S|", &format!("^^^^^{priority}|"));
        let ack = lis.send(&message).await.expect("ACK");
        assert_eq!(code(&ack), "AA", "{ack}");
        if let Some(at) = resulted {
            let ack = lis
                .send(&result(
                    &format!("DR-{i}"),
                    &format!("DAY-{i}"),
                    "F",
                    &hl7(*at),
                ))
                .await
                .expect("ACK");
            assert_eq!(code(&ack), "AA", "{ack}");
        }
    }

    // Ward 6's same day as baton.v1 events.
    let mut ingest = baton.ingest().await;
    for (i, (ordered, stat, resulted)) in day.iter().enumerate() {
        let priority = if *stat {
            v1::Priority::Stat
        } else {
            v1::Priority::Routine
        };
        let id = format!("day-{i}");
        let mut request = baton_e2e::requested(
            &id,
            "lab",
            "lab",
            "ward-6",
            priority,
            ordered.as_millisecond(),
        );
        request
            .attributes
            .insert("test".into(), "blood-count".into());
        ingest
            .append(baton_e2e::append(request))
            .await
            .expect("requested");
        if let Some(at) = resulted {
            let done = baton_e2e::later(&id, v1::EventType::Completed, at.as_millisecond());
            ingest
                .append(baton_e2e::append(done))
                .await
                .expect("completed");
        }
    }

    let query = baton.query().await;
    let figures = |customer: &'static str| {
        let mut query = query.clone();
        async move {
            query
                .get_compliance(v1::GetComplianceRequest {
                    policy_id: "lab-turnaround".into(),
                    customer: Some(customer.into()),
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .compliance
                .filter(|c| c.total == 24)
        }
    };
    // Both days' 24 requests may be in the views before their last results
    // are: the figures are compared once they agree, and a difference that
    // lasts fails the test after the usual patience.
    let key = |c: &v1::Compliance| (c.total, c.met, c.breached, c.open, c.p50, c.p90, c.max);
    let (as_hl7, as_events) = eventually("the two days' figures to agree", || async {
        let (hl7, events) = (figures("ward-5").await?, figures("ward-6").await?);
        (key(&hl7) == key(&events)).then_some((hl7, events))
    })
    .await;
    assert!(as_hl7.breached > 0 && as_hl7.met > 0, "{as_hl7:?}");
    assert_eq!(key(&as_hl7), key(&as_events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_result_is_recorded_once_per_correction_and_moves_no_clock() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest, projector, &mapping()).await;
    let mut lis = Sender::connect(gateway.addr).await;
    // STAT, 1 h promised: ordered 3 h ago, resulted 30 min ago, so broken.
    let ack = lis
        .send(&order(
            "C-1",
            "P-700",
            "TROP",
            "WARD5",
            &hl7_time(180, true),
        ))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");
    let ack = lis
        .send(&result("C-2", "P-700", "F", &hl7_time(30, true)))
        .await
        .expect("ACK");
    assert_eq!(code(&ack), "AA", "{ack}");
    let query = baton.query().await;
    let breaches = || {
        let mut query = query.clone();
        async move {
            query
                .list_breaches(v1::ListBreachesRequest {
                    customer: "ward-5".into(),
                    ..Default::default()
                })
                .await
                .ok()
                .map(|r| r.into_inner().breaches)
        }
    };
    let first = eventually("the breach", || async {
        breaches().await.filter(|b| b.len() == 1)
    })
    .await;
    let handoff = first[0].handoff_id.clone();
    let mut q = baton.query().await;
    baton_e2e::projected(&mut q, &handoff, 2).await;
    // The lab corrects the result, and its system sends the correction twice.
    for control in ["C-3", "C-3", "C-4"] {
        let ack = lis
            .send(&result(control, "P-700", "C", &hl7_time(5, true)))
            .await
            .expect("ACK");
        assert_eq!(code(&ack), "AA", "{ack}");
    }
    baton_e2e::projected(&mut q, &handoff, 4).await;
    let h = q
        .get_handoff(v1::GetHandoffRequest {
            handoff_id: handoff,
        })
        .await
        .expect("the hand-off")
        .into_inner()
        .handoff
        .expect("a hand-off");
    let types: Vec<i32> = h.events.iter().map(|e| e.r#type).collect();
    assert_eq!(
        types,
        [
            v1::EventType::Requested as i32,
            v1::EventType::Completed as i32,
            v1::EventType::Amended as i32,
            v1::EventType::Amended as i32,
        ],
        "two corrections, the resend of the first one is no third"
    );
    assert_eq!(h.status, HandoffStatus::Completed as i32);
    assert_eq!(
        breaches().await.map(|b| b.len()),
        Some(1),
        "one breach, not withdrawn"
    );
    assert_eq!(ward5(&mut q).await.len(), 1, "no new hand-off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specimen_s_arrival_is_acknowledged_once_and_never_blocks_a_result() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest, projector, &mapping()).await;
    let mut lis = Sender::connect(gateway.addr).await;
    let received = hl7_time(50, true);
    // One order whose results both carry the arrival, and one whose
    // arrival is first told on its final result, after it was started.
    let messages = [
        order("R-1", "P-801", "TROP", "WARD5", &hl7_time(60, true)),
        result_received("R-2", "P-801", "P", &hl7_time(40, true), &received),
        result_received("R-3", "P-801", "F", &hl7_time(30, true), &received),
        order("R-4", "P-802", "TROP", "WARD5", &hl7_time(60, true)),
        result("R-5", "P-802", "P", &hl7_time(40, true)),
        result_received("R-6", "P-802", "F", &hl7_time(30, true), &received),
    ];
    for message in &messages {
        let ack = lis.send(message).await.expect("ACK");
        assert_eq!(code(&ack), "AA", "{ack}");
    }
    let mut q = baton.query().await;
    let handoffs = eventually("both hand-offs completed", || {
        let mut q = q.clone();
        async move {
            let all = ward5(&mut q).await;
            let done = all
                .iter()
                .filter(|h| h.status == HandoffStatus::Completed as i32)
                .count();
            (done == 2).then_some(all)
        }
    })
    .await;
    let mut timelines = Vec::new();
    for h in handoffs {
        let h = q
            .get_handoff(v1::GetHandoffRequest {
                handoff_id: h.handoff_id,
            })
            .await
            .expect("the hand-off")
            .into_inner()
            .handoff
            .expect("a hand-off");
        timelines.push(h.events.iter().map(|e| e.r#type).collect::<Vec<_>>());
    }
    timelines.sort_by_key(Vec::len);
    use v1::EventType::{Acknowledged, Completed, Requested, Started};
    assert_eq!(
        timelines,
        [
            vec![Requested as i32, Started as i32, Completed as i32],
            vec![
                Requested as i32,
                Acknowledged as i32,
                Started as i32,
                Completed as i32
            ],
        ]
    );
    let metrics = baton_e2e::http::get(gateway.http.expect("side port"), "/metrics").await;
    assert!(
        metrics
            .body
            .contains("baton_gateway_ignored_total{reason=\"already past\"} 1"),
        "{}",
        metrics.body
    );
}

/// Many senders at once: their events travel to ingest in shared batches,
/// and each message is still answered on its own: the orders AA, the
/// results for orders nobody placed AE, whichever batch they shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_at_once_are_answered_each_on_its_own() {
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let ingest = baton.ingest.as_ref().expect("ingest").addr;
    let projector = baton.projector.as_ref().expect("projector").addr;
    let gateway = start_gateway(ingest, projector, &mapping()).await;
    // As many as the test gateway's connection cap.
    const SENDERS: usize = 16;
    let start = Arc::new(tokio::sync::Barrier::new(SENDERS));
    let mut senders = Vec::new();
    let addr = gateway.addr;
    for i in 0..SENDERS {
        let start = start.clone();
        senders.push(tokio::spawn(async move {
            let mut lis = Sender::connect(addr).await;
            let message = if i % 2 == 0 {
                order(
                    &format!("M-{i}"),
                    &format!("P-9{i:02}"),
                    "TROP",
                    "WARD5",
                    &hl7_time(20, true),
                )
            } else {
                result(
                    &format!("M-{i}"),
                    &format!("P-NONE-{i}"),
                    "F",
                    &hl7_time(10, true),
                )
            };
            start.wait().await;
            let ack = lis.send(&message).await.expect("an ACK");
            (i, code(&ack).to_owned())
        }));
    }
    for sender in senders {
        let (i, ack) = sender.await.expect("a sender");
        let expected = if i % 2 == 0 { "AA" } else { "AE" };
        assert_eq!(ack, expected, "message {i}");
    }
    let mut q = baton.query().await;
    eventually("the orders in the views", || {
        let mut q = q.clone();
        async move { (ward5(&mut q).await.len() == SENDERS / 2).then_some(()) }
    })
    .await;
    assert_eq!(
        ward5(&mut q).await.len(),
        SENDERS / 2,
        "no result made a hand-off"
    );
    let metrics = baton_e2e::http::get(gateway.http.expect("side port"), "/metrics").await;
    let sent = baton_e2e::http::metric(
        gateway.http.expect("side port"),
        "baton_gateway_appended_events_total",
    )
    .await;
    assert_eq!(sent, Some(SENDERS as f64), "{}", metrics.body);
}
