//! The limits Baton is measured against, on the same machine in the same run:
//! bare JetStream publishing, a bare tonic handler that only publishes, a
//! bare pull consumer, and bare sled batches.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    message::PublishMessage,
    stream,
};
use baton_proto::v1::{self, ingest_server::Ingest};
use bytes::Bytes;
use futures::{stream::FuturesUnordered, StreamExt};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::{
    stats::rate,
    traffic::{Route, Traffic},
};

/// A file-storage stream for a limit measurement.
pub async fn bench_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
) -> anyhow::Result<()> {
    js.get_or_create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        allow_direct: true,
        ..Default::default()
    })
    .await
    .with_context(|| format!("creating stream {name}"))?;
    Ok(())
}

/// What a raw publish carries besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    None,
    /// A message id, for JetStream's de-duplication.
    Id,
    /// A message id and ingest's condition: the expected last sequence of
    /// the hand-off's subjects, `<prefix>.<id>.>`, on Baton's subjects
    /// `<prefix>.<id>.<kind>.<supplier>.<customer>`.
    Conditional,
    /// As [`Headers::Conditional`] on the subject scheme Baton had before,
    /// the id last (`<prefix>.<kind>.<supplier>.<customer>.<id>`, condition
    /// on `<prefix>.*.*.*.<id>`): what that scheme cost.
    IdLast,
}

/// (1) Publishes `n` copies of `payload` on distinct subjects under
/// `prefix`, one hand-off each, along the traffic's routes in turn (as
/// ingest's subjects are), at most `window` acks outstanding; events/s.
pub async fn raw_publish(
    js: &jetstream::Context,
    prefix: &str,
    payload: Bytes,
    n: usize,
    window: usize,
    headers: Headers,
    traffic: &Traffic,
) -> anyhow::Result<f64> {
    let stream_name = format!("BENCH_{}", prefix.replace('.', "_").to_uppercase());
    bench_stream(js, &stream_name, &format!("{prefix}.>")).await?;
    let routes = traffic.routes();
    let mut in_flight = FuturesUnordered::new();
    let started = Instant::now();
    for i in 0..n {
        let Route {
            kind,
            supplier,
            customer,
        } = routes[i % routes.len()];
        let mut message = PublishMessage::build().payload(payload.clone());
        if headers != Headers::None {
            message = message.message_id(format!("h{i}:e0"));
        }
        let (subject, condition) = match headers {
            Headers::Conditional => (
                format!("{prefix}.h{i}.{kind}.{supplier}.{customer}"),
                Some(format!("{prefix}.h{i}.>")),
            ),
            Headers::IdLast => (
                format!("{prefix}.{kind}.{supplier}.{customer}.h{i}"),
                Some(format!("{prefix}.*.*.*.h{i}")),
            ),
            Headers::None | Headers::Id => {
                (format!("{prefix}.h{i}.{kind}.{supplier}.{customer}"), None)
            }
        };
        if let Some(condition) = condition {
            message = message
                .expected_last_subject_sequence(0)
                .header(EXPECTED_SUBJECT_HEADER, condition.as_str());
        }
        let ack = js.send_publish(subject, message).await.context("publish")?;
        in_flight.push(std::future::IntoFuture::into_future(ack));
        while in_flight.len() >= window {
            if let Some(ack) = in_flight.next().await {
                ack.context("publish ack")?;
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        ack.context("publish ack")?;
    }
    Ok(rate(n, started.elapsed()))
}

const EXPECTED_SUBJECT_HEADER: &str = "Nats-Expected-Last-Subject-Sequence-Subject";

/// (1) What ingest asks JetStream before appending to a hand-off it has not
/// cached (a new one, each REQUESTED): the first message on the hand-off's
/// subjects, `<prefix>.<id>.>`, `lookups` times with `window` in flight, for ids that
/// do not exist, on the stream `prefix` (filled by [`raw_publish`]). Lookups/s.
pub async fn raw_history_lookups(
    js: &jetstream::Context,
    prefix: &str,
    lookups: usize,
    window: usize,
) -> anyhow::Result<f64> {
    let stream_name = format!("BENCH_{}", prefix.replace('.', "_").to_uppercase());
    let stream = js.get_stream_no_info(&stream_name).await?;
    let started = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    for i in 0..lookups {
        let stream = stream.clone();
        let filter = format!("{prefix}.new{i}.>");
        in_flight.push(async move { stream.get_first_raw_message_by_subject(filter, 1).await });
        while in_flight.len() >= window {
            in_flight.next().await;
        }
    }
    while in_flight.next().await.is_some() {}
    Ok(rate(lookups, started.elapsed()))
}

/// (1) sled alone, the least Baton's views must write: per event, one
/// small state value for its hand-off (status, last sequence, next
/// deadline: 24 bytes, key the hand-off's id) and a read-modify-write of
/// one small tally (key a route and hour bucket, few distinct keys); per
/// batch of `batch` events, the stream position. `n` events over
/// `handoffs` hand-offs, interleaved like concurrent clients' traffic, no
/// decoding and no clock evaluation. Returns events/s.
pub fn raw_sled_minimum(
    dir: &Path,
    n: usize,
    batch: usize,
    handoffs: usize,
) -> anyhow::Result<f64> {
    let db = sled::open(dir)?;
    let handoffs = handoffs.max(1);
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut b = sled::Batch::default();
        let mut tallies: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        for _ in 0..batch.min(n - i) {
            let h = i % handoffs;
            let mut state = [0u8; 24];
            state[..8].copy_from_slice(&(i as u64).to_be_bytes());
            state[8..16].copy_from_slice(&(h as u64).to_be_bytes());
            b.insert(format!("h/bench-{h:08}").into_bytes(), &state[..]);
            let tally = format!("a/route-{:02}/{:04}", h % 16, h % 48).into_bytes();
            let count = match tallies.get(&tally) {
                Some(count) => *count,
                None => db
                    .get(&tally)?
                    .and_then(|v| v.get(..8).and_then(|c| c.try_into().ok()))
                    .map_or(0, u64::from_be_bytes),
            };
            b.insert(tally.clone(), &(count + 1).to_be_bytes()[..]);
            tallies.insert(tally, count + 1);
            i += 1;
        }
        b.insert(&b"m/position"[..], &(i as u64).to_be_bytes()[..]);
        db.apply_batch(b)?;
    }
    let elapsed = started.elapsed();
    db.flush()?;
    Ok(rate(n, elapsed))
}

/// (1b) An Ingest service that only publishes the event to JetStream (with
/// a message id, as ingest does) and awaits the ack: no validation, no
/// lifecycle, no idempotency check, no conditional append.
#[derive(Debug, Clone)]
pub struct BarePublisher {
    js: jetstream::Context,
}

#[tonic::async_trait]
impl Ingest for BarePublisher {
    async fn append(
        &self,
        request: Request<v1::AppendRequest>,
    ) -> Result<Response<v1::AppendResponse>, Status> {
        let event = request
            .into_inner()
            .event
            .ok_or_else(|| Status::invalid_argument("event: is required"))?;
        let message = PublishMessage::build()
            .payload(Bytes::from(event.encode_to_vec()))
            .message_id(format!("{}:{}", event.handoff_id, event.event_id));
        let ack = self
            .js
            .send_publish(format!("bench.tonic.{}", event.handoff_id), message)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(v1::AppendResponse {
            version: 0,
            stream_sequence: ack.sequence,
            duplicate: ack.duplicate,
        }))
    }

    async fn append_batch(
        &self,
        _request: Request<v1::AppendBatchRequest>,
    ) -> Result<Response<v1::AppendBatchResponse>, Status> {
        Err(Status::unimplemented(
            "the bare publisher takes unary appends",
        ))
    }

    async fn append_disruption(
        &self,
        _request: Request<v1::AppendDisruptionRequest>,
    ) -> Result<Response<v1::AppendDisruptionResponse>, Status> {
        Err(Status::unimplemented(
            "the bare publisher takes unary appends",
        ))
    }
}

/// Serves [`BarePublisher`] on a loopback port until `stop`.
pub async fn serve_bare(
    js: jetstream::Context,
    stop: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    bench_stream(&js, "BENCH_TONIC", "bench.tonic.>").await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream_incoming(listener);
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(v1::ingest_server::IngestServer::new(BarePublisher { js }))
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            eprintln!("bare publisher failed: {e}");
        }
    });
    Ok((addr, task))
}

fn tokio_stream_incoming(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(socket, _)| {
            let _ = socket.set_nodelay(true);
            socket
        });
        Some((accepted, listener))
    })
}

/// (1c) A pull consumer over the whole events stream that fetches in
/// batches of `batch` and acks the last of each (AckPolicy::All), doing no
/// work: events/s until it has seen `expected` messages. `filters` are the
/// consumer's filter subjects (none: the whole stream).
pub async fn raw_consume(
    js: &jetstream::Context,
    stream_name: &str,
    expected: u64,
    batch: usize,
    filters: &[&str],
) -> anyhow::Result<f64> {
    let stream = js.get_stream(stream_name).await?;
    let name = "bench-raw-consumer";
    let _ = stream.delete_consumer(name).await;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::All,
            max_ack_pending: 20_000,
            filter_subjects: filters.iter().map(|f| (*f).to_owned()).collect(),
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut chunks = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await?
        .ready_chunks(batch);
    let mut seen = 0u64;
    while seen < expected {
        let Some(chunk) = chunks.next().await else {
            anyhow::bail!("the consumer's message stream ended after {seen}");
        };
        let mut last = None;
        for message in chunk {
            last = Some(message.map_err(|e| anyhow::anyhow!("consume: {e}"))?);
            seen += 1;
        }
        if let Some(last) = last {
            last.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
    }
    let elapsed = started.elapsed();
    let _ = stream.delete_consumer(name).await;
    Ok(rate(seen as usize, elapsed))
}
