//! Hostile requests against ingest, table-driven: each case gets its exact
//! status code and nothing that should not reaches the stream.
//!
//! Requests a well-behaved client library cannot build (invalid UTF-8 in a
//! string field, bytes that are not protobuf at all) are written by hand and
//! sent with a raw codec over a real gRPC channel.

use baton_e2e::*;
use baton_proto::v1::{self, EventType, Priority};
use prost::{bytes::BufMut as _, Message as _};
use tonic::{
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
    Code, Status,
};

const MIN: i64 = 60_000;

/// A request as sent: through the generated client, or as raw bytes.
#[derive(Debug, Clone)]
enum Send {
    Append(Box<v1::AppendRequest>),
    Batch(v1::AppendBatchRequest),
    Raw(Vec<u8>),
}

/// What a case must be answered, and which text the answer must carry.
#[derive(Debug, Clone)]
struct Case {
    label: String,
    send: Send,
    code: Code,
    names: &'static str,
}

fn case(label: impl Into<String>, send: Send, code: Code, names: &'static str) -> Case {
    Case {
        label: label.into(),
        send,
        code,
        names,
    }
}

/// Sends pre-encoded bytes as the request message and decodes the response.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;
#[derive(Debug, Clone, Copy, Default)]
struct RawEncoder;
#[derive(Debug, Clone, Copy, Default)]
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = v1::AppendResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<v1::AppendResponse>, Status> {
        v1::AppendResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("response: {e}")))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = v1::AppendResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

async fn send_raw(channel: Channel, bytes: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(bytes),
        tonic::codegen::http::uri::PathAndQuery::from_static("/baton.v1.Ingest/Append"),
        RawCodec,
    )
    .await
    .map(|_| ())
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field (string, bytes, message) with any bytes in it.
fn field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    varint(out, u64::from(number) << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// An AppendRequest whose event is `event` followed by field `number`
/// holding `bytes` (the last value of a field is the one that counts).
fn raw_request(event: &v1::HandoffEvent, number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut encoded = event.encode_to_vec();
    field(&mut encoded, number, bytes);
    let mut request = Vec::new();
    field(&mut request, 1, &encoded);
    request
}

fn map_entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut entry = Vec::new();
    field(&mut entry, 1, key);
    field(&mut entry, 2, value);
    entry
}

fn ts(seconds: i64, nanos: i32) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos })
}

async fn answer(baton: &Baton, send: Send) -> Result<(), Status> {
    let mut ingest = baton.ingest().await;
    match send {
        Send::Append(request) => ingest.append(*request).await.map(|_| ()),
        Send::Batch(request) => ingest.append_batch(request).await.map(|_| ()),
        Send::Raw(bytes) => {
            let channel = channel(baton.ingest.as_ref().expect("ingest").addr).await;
            send_raw(channel, bytes).await
        }
    }
}

#[tokio::test]
async fn hostile_requests_get_their_status_and_leave_no_trace() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let nats = baton.nats_client().await;
    let t0 = now_millis() - 10 * MIN;
    let good = |id: &str| requested(id, "repair", "engineering", "ward-5", Priority::Routine, t0);
    let with = |f: &dyn Fn(&mut v1::HandoffEvent)| {
        let mut event = good("h-hostile");
        f(&mut event);
        Send::Append(Box::new(append(event)))
    };

    // One real hand-off, for hostile later events.
    ingest
        .append(append(good("h-open")))
        .await
        .expect("a real hand-off");
    let on_open = |f: &dyn Fn(&mut v1::HandoffEvent)| {
        let mut event = later("h-open", EventType::Acknowledged, t0 + MIN);
        f(&mut event);
        Send::Append(Box::new(append(event)))
    };

    let mut cases = Vec::new();

    // Oversized: the whole message, and the attributes within the limit.
    cases.push(case(
        "a 5 MB request",
        with(&|e| e.attributes = [("note".to_string(), "x".repeat(5 << 20))].into()),
        Code::ResourceExhausted,
        "too large",
    ));
    cases.push(case(
        "a 1 MB attribute value",
        with(&|e| e.attributes = [("note".to_string(), "x".repeat(1 << 20))].into()),
        Code::InvalidArgument,
        "attributes[note]",
    ));
    cases.push(case(
        "10,000 attributes",
        with(&|e| e.attributes = (0..10_000).map(|i| (format!("k{i}"), "v".into())).collect()),
        Code::InvalidArgument,
        "attributes",
    ));
    cases.push(case(
        "33 attributes",
        with(&|e| e.attributes = (0..33).map(|i| (format!("k{i}"), "v".into())).collect()),
        Code::InvalidArgument,
        "attributes",
    ));
    cases.push(case(
        "a 257-byte attribute value",
        with(&|e| e.attributes = [("asset".to_string(), "x".repeat(257))].into()),
        Code::InvalidArgument,
        "attributes[asset]",
    ));
    cases.push(case(
        "a 10 KB attribute key",
        with(&|e| e.attributes = [("k".repeat(10_000), "v".to_string())].into()),
        Code::InvalidArgument,
        "attributes",
    ));
    cases.push(case(
        "a 10 KB actor",
        with(&|e| e.actor = "a".repeat(10_000)),
        Code::InvalidArgument,
        "actor",
    ));
    cases.push(case(
        "a 10 KB event_id",
        with(&|e| e.event_id = "e".repeat(10_000)),
        Code::InvalidArgument,
        "event_id",
    ));
    cases.push(case(
        "a 65-byte handoff_id",
        with(&|e| e.handoff_id = "h".repeat(65)),
        Code::InvalidArgument,
        "handoff_id",
    ));
    cases.push(case(
        "a batch of 1,001",
        Send::Batch(v1::AppendBatchRequest {
            requests: (0..1_001)
                .map(|i| append(good(&format!("h-batch-{i}"))))
                .collect(),
        }),
        Code::InvalidArgument,
        "requests",
    ));

    // Subject injection: wildcards, separators, blanks in every token.
    for bad in [
        "*", ">", ".", "a.b", "a.>", "ward-5.*", "a b", " ", "", "a\tb", "a\nb", "é", "a/b",
    ] {
        for (name, set) in [
            (
                "handoff_id",
                (|e: &mut v1::HandoffEvent, v: &str| e.handoff_id = v.into())
                    as fn(&mut v1::HandoffEvent, &str),
            ),
            ("kind", |e, v| e.kind = v.into()),
            ("supplier", |e, v| e.supplier = v.into()),
            ("customer", |e, v| e.customer = v.into()),
        ] {
            let names: &'static str = match name {
                "handoff_id" => "handoff_id",
                "kind" => "kind",
                "supplier" => "supplier",
                _ => "customer",
            };
            cases.push(case(
                format!("{name} {bad:?}"),
                with(&|e| set(e, bad)),
                Code::InvalidArgument,
                names,
            ));
        }
        cases.push(case(
            format!("reassigned to {bad:?}"),
            on_open(&|e| {
                e.r#type = EventType::Reassigned as i32;
                e.supplier = bad.into();
            }),
            Code::InvalidArgument,
            "supplier",
        ));
    }
    for bad in ["", "a\r\nNats-Expected-Last-Sequence: 0", "a\0b", "\u{7f}"] {
        cases.push(case(
            format!("event_id {bad:?}"),
            with(&|e| e.event_id = bad.into()),
            Code::InvalidArgument,
            "event_id",
        ));
    }
    cases.push(case(
        "an attribute key with a wildcard",
        with(&|e| e.attributes = [("a.*".to_string(), "v".to_string())].into()),
        Code::InvalidArgument,
        "attributes",
    ));
    cases.push(case(
        "an attribute value with a line break",
        with(&|e| e.attributes = [("asset".to_string(), "a\r\nb".to_string())].into()),
        Code::InvalidArgument,
        "attributes[asset]",
    ));
    cases.push(case(
        "a later event naming another customer",
        on_open(&|e| e.customer = "ward-6".into()),
        Code::InvalidArgument,
        "customer",
    ));

    // Invalid UTF-8 in every string field, written by hand.
    let event = good("h-utf8");
    for (label, bytes) in [
        ("a lone 0xff", &b"\xff"[..]),
        ("a broken two-byte sequence", b"ab\xc3\x28"),
        ("a UTF-16 surrogate", b"\xed\xa0\x80"),
        ("past U+10FFFF", b"\xf4\x90\x80\x80"),
        ("an overlong slash", b"\xc0\xaf"),
    ] {
        for (name, number) in [
            ("event_id", 1),
            ("handoff_id", 2),
            ("kind", 5),
            ("supplier", 6),
            ("customer", 7),
            ("actor", 9),
        ] {
            cases.push(case(
                format!("{label} in {name}"),
                Send::Raw(raw_request(&event, number, bytes)),
                Code::InvalidArgument,
                name,
            ));
        }
        cases.push(case(
            format!("{label} in an attribute key"),
            Send::Raw(raw_request(&event, 10, &map_entry(bytes, b"v"))),
            Code::InvalidArgument,
            "attributes",
        ));
        cases.push(case(
            format!("{label} in an attribute value"),
            Send::Raw(raw_request(&event, 10, &map_entry(b"asset", bytes))),
            Code::InvalidArgument,
            "attributes",
        ));
    }
    cases.push(case(
        "bytes that are not protobuf",
        Send::Raw(vec![0xff; 16]),
        Code::InvalidArgument,
        "decode",
    ));
    let mut truncated = append(good("h-cut")).encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    cases.push(case(
        "a truncated request",
        Send::Raw(truncated),
        Code::InvalidArgument,
        "decode",
    ));

    // Timestamps at the extremes.
    for (label, at, names) in [
        ("one second before 1970", ts(-1, 0), "occurred_at"),
        ("i64::MIN seconds", ts(i64::MIN, 0), "occurred_at"),
        ("i64::MAX seconds", ts(i64::MAX, 999_999_999), "occurred_at"),
        ("year 10000", ts(253_402_300_800, 0), "occurred_at"),
        ("nanos -1", ts(1_700_000_000, -1), "occurred_at"),
        ("nanos 1e9", ts(1_700_000_000, 1_000_000_000), "occurred_at"),
        ("nanos i32::MIN", ts(1_700_000_000, i32::MIN), "occurred_at"),
        ("no occurred_at", None, "occurred_at"),
        (
            "a day in the future",
            Some(timestamp(now_millis() + 24 * 60 * MIN)),
            "occurred_at",
        ),
    ] {
        cases.push(case(
            label,
            with(&|e| e.occurred_at = at),
            Code::InvalidArgument,
            names,
        ));
    }

    // Enum values this version does not know.
    for value in [-1, 0, 11, 77, i32::MAX, i32::MIN] {
        cases.push(case(
            format!("event type {value}"),
            with(&|e| e.r#type = value),
            Code::InvalidArgument,
            "type",
        ));
    }
    for value in [-1, 4, 42, i32::MAX] {
        cases.push(case(
            format!("priority {value}"),
            with(&|e| e.priority = value),
            Code::InvalidArgument,
            "priority",
        ));
    }

    // Events for hand-offs that never existed.
    for t in [
        EventType::Acknowledged,
        EventType::Started,
        EventType::OnHold,
        EventType::Resumed,
        EventType::Completed,
        EventType::Rejected,
        EventType::Cancelled,
    ] {
        cases.push(case(
            format!("{} for a hand-off that never existed", t.as_str_name()),
            Send::Append(Box::new(append(later("never-requested", t, t0)))),
            Code::FailedPrecondition,
            "does not exist",
        ));
    }
    let mut reassigned = later("never-requested", EventType::Reassigned, t0);
    reassigned.supplier = "lab".into();
    cases.push(case(
        "REASSIGNED for a hand-off that never existed",
        Send::Append(Box::new(append(reassigned))),
        Code::FailedPrecondition,
        "does not exist",
    ));
    let mut reprioritized = later("never-requested", EventType::Reprioritized, t0);
    reprioritized.priority = Priority::Stat as i32;
    cases.push(case(
        "REPRIORITIZED for a hand-off that never existed",
        Send::Append(Box::new(append(reprioritized))),
        Code::FailedPrecondition,
        "does not exist",
    ));

    let before = count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await;
    for case in &cases {
        let answer = answer(&baton, case.send.clone()).await;
        let status = answer.expect_err(&case.label);
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.label);
        assert!(
            status.message().contains(case.names),
            "{}: {:?} should name {}",
            case.label,
            status.message(),
            case.names
        );
        assert_eq!(
            count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
            before,
            "{}: something reached the stream",
            case.label
        );
    }

    // The limits themselves are accepted.
    let mut at_limits = good("h-limits");
    at_limits.attributes = (0..32)
        .map(|i| (format!("k{i:02}"), "v".repeat(256)))
        .collect();
    at_limits.handoff_id = "h".repeat(64);
    at_limits.event_id = "e".repeat(64);
    ingest
        .append(append(at_limits))
        .await
        .expect("32 attributes of 256 bytes and 64-byte ids are accepted");
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", "baton.handoff.>").await,
        before + 1
    );
    println!(
        "hostile requests: {} cases tried, each answered its code, none reached the stream",
        cases.len()
    );
}

#[tokio::test]
async fn a_handoff_holds_at_most_1000_events() {
    let baton = Baton::start().await;
    let mut ingest = baton.ingest().await;
    let nats = baton.nats_client().await;
    let t0 = now_millis() - 60 * MIN;
    let id = "h-chatty";
    // REQUESTED, then 999 escalations and de-escalations: 1,000 events.
    let mut requests = vec![append(requested(
        id,
        "repair",
        "engineering",
        "ward-5",
        Priority::Routine,
        t0,
    ))];
    for i in 1..1_000i64 {
        let mut event = later(id, EventType::Reprioritized, t0 + i);
        event.priority = if i % 2 == 1 {
            Priority::Urgent as i32
        } else {
            Priority::Routine as i32
        };
        requests.push(append(event));
    }
    let results = ingest
        .append_batch(v1::AppendBatchRequest {
            requests: requests.clone(),
        })
        .await
        .expect("a batch of 1,000")
        .into_inner()
        .results;
    let versions: Vec<u64> = results
        .iter()
        .map(|r| match &r.outcome {
            Some(v1::append_result::Outcome::Ok(ok)) => ok.version,
            other => panic!("refused: {other:?}"),
        })
        .collect();
    assert_eq!(versions, (1..=1_000).collect::<Vec<u64>>());

    let subject = format!("baton.handoff.{id}.>");
    let mut refused = 0;
    for (i, t) in [
        EventType::Acknowledged,
        EventType::Completed,
        EventType::Cancelled,
    ]
    .into_iter()
    .enumerate()
    {
        let status = ingest
            .append(append(later(id, t, t0 + 2_000 + i as i64)))
            .await
            .expect_err("the 1,001st event");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("1000 events"), "{status:?}");
        refused += 1;
    }
    assert_eq!(
        count_messages(&nats, "BATON_HANDOFFS", &subject).await,
        1_000
    );

    // Resends of events already in are still answered from its history.
    let resend = ingest
        .append(requests[500].clone())
        .await
        .expect("resend")
        .into_inner();
    assert!(resend.duplicate);
    assert_eq!(resend.version, 501);
    let mut query = baton.query().await;
    let handoff = projected(&mut query, id, 1_000).await;
    assert_eq!(handoff.events.len(), 1_000);
    println!("hand-off size: 1,000 events accepted, {refused} past the limit refused");
}
