//! Load drivers: concurrent gRPC clients appending hand-offs, queries
//! while they do, and breach clocks set to run out during the run.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use async_nats::jetstream::{self, message::PublishMessage};
use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient, Priority};
use bytes::Bytes;
use futures::{stream::FuturesUnordered, StreamExt};
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::{
    stats::Samples,
    traffic::{self, millis_of, now_millis, timestamp, Rng, Traffic},
};

/// Hand-offs, each the events one client sends in order.
pub type Workload = Arc<Vec<Vec<v1::HandoffEvent>>>;

/// Hand-offs of realistic traffic totalling at least `events` events, with
/// ids unique to `tag`. Requested a few minutes ago, so every event is in
/// the past when sent, and promises are mostly kept.
pub fn workload(traffic: &Traffic, tag: &str, events: usize, seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    let base = now_millis() - 4 * 60_000;
    let mut handoffs = Vec::new();
    let mut total = 0;
    while total < events {
        // A letter before the counter: a tag ending in digits ("uni1")
        // and the counter must not make 8 digits in a row, which the
        // patient-data screen refuses.
        let id = format!("{tag}-h{}", traffic::serial(handoffs.len()));
        let at = base + rng.below(60_000) as i64;
        let h = traffic.handoff(&mut rng, &id, at, 120_000);
        total += h.len();
        handoffs.push(h);
    }
    Arc::new(handoffs)
}

/// What a run of clients did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub events: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latency: Samples,
    /// Highest stream sequence an append was given.
    pub last_sequence: u64,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        crate::stats::rate(self.events, self.elapsed)
    }

    /// The clients' outcomes as one, timed from `started` to the last.
    async fn gather(
        tasks: Vec<tokio::task::JoinHandle<Outcome>>,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        let mut total = Outcome::default();
        for task in tasks {
            let out = task.await.context("client task")?;
            total.events += out.events;
            total.errors += out.errors;
            total.latency.extend(out.latency);
            total.last_sequence = total.last_sequence.max(out.last_sequence);
            if total.first_error.is_none() {
                total.first_error = out.first_error;
            }
        }
        total.elapsed = started.elapsed();
        Ok(total)
    }
}

/// `clients` concurrent clients, each taking the next hand-off and sending
/// its events one unary Append at a time. With `pace` (appends/s in all),
/// appends are sent on an open-loop schedule and latency counts from the
/// scheduled moment, so falling behind shows.
pub async fn unary(
    channels: &[Channel],
    workload: Workload,
    clients: usize,
    pace: Option<f64>,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicUsize::new(0));
    let slot = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = IngestClient::new(channels[c % channels.len()].clone());
        let (workload, next, slot) = (workload.clone(), next.clone(), slot.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(events) = workload.get(i) else { break };
                for event in events {
                    let from = match pace {
                        Some(per_sec) => {
                            let n = slot.fetch_add(1, Ordering::Relaxed);
                            let at = started + Duration::from_secs_f64(n as f64 / per_sec);
                            tokio::time::sleep_until(at).await;
                            at
                        }
                        None => tokio::time::Instant::now(),
                    };
                    let answer = client
                        .append(v1::AppendRequest {
                            event: Some(event.clone()),
                            expected_version: None,
                            backfill: false,
                        })
                        .await;
                    match answer {
                        Ok(r) => {
                            out.latency.push(from.elapsed());
                            out.events += 1;
                            out.last_sequence = out.last_sequence.max(r.get_ref().stream_sequence);
                        }
                        Err(status) => {
                            out.errors += 1;
                            out.first_error.get_or_insert_with(|| status.to_string());
                            // The rest of this hand-off would not fit its history.
                            break;
                        }
                    }
                }
            }
            out
        }));
    }
    Outcome::gather(tasks, started.into_std()).await
}

/// `clients` concurrent clients sending AppendBatch requests of
/// `handoffs_per_batch` whole hand-offs each (a hand-off's events in order
/// within one batch).
pub async fn batches(
    channels: &[Channel],
    workload: Workload,
    clients: usize,
    handoffs_per_batch: usize,
) -> anyhow::Result<Outcome> {
    let chunks: Arc<Vec<Vec<v1::AppendRequest>>> = Arc::new(
        workload
            .chunks(handoffs_per_batch.max(1))
            .map(|hs| {
                hs.iter()
                    .flatten()
                    .map(|e| v1::AppendRequest {
                        event: Some(e.clone()),
                        expected_version: None,
                        backfill: false,
                    })
                    .collect()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = IngestClient::new(channels[c % channels.len()].clone());
        let (chunks, next) = (chunks.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(requests) = chunks.get(i) else { break };
                let sent = Instant::now();
                match client
                    .append_batch(v1::AppendBatchRequest {
                        requests: requests.clone(),
                    })
                    .await
                {
                    Ok(r) => {
                        out.latency.push(sent.elapsed());
                        for result in &r.get_ref().results {
                            match &result.outcome {
                                Some(v1::append_result::Outcome::Ok(ok)) => {
                                    out.events += 1;
                                    out.last_sequence = out.last_sequence.max(ok.stream_sequence);
                                }
                                Some(v1::append_result::Outcome::Error(e)) => {
                                    out.errors += 1;
                                    out.first_error.get_or_insert_with(|| e.message.clone());
                                }
                                None => out.errors += 1,
                            }
                        }
                    }
                    Err(status) => {
                        out.errors += requests.len();
                        out.first_error.get_or_insert_with(|| status.to_string());
                    }
                }
            }
            out
        }));
    }
    Outcome::gather(tasks, started).await
}

/// Latencies of the two dashboard queries.
#[derive(Debug, Default)]
pub struct QueryLatency {
    pub compliance: Samples,
    pub breaches: Samples,
    pub errors: usize,
}

impl QueryLatency {
    /// Adds another run's calls to these.
    pub fn merge(&mut self, other: QueryLatency) {
        self.compliance.extend(other.compliance);
        self.breaches.extend(other.breaches);
        self.errors += other.errors;
    }
}

/// GetCompliance over the last month and the first page of ListBreaches,
/// alternately, one pair every `interval` until `stop` (or `limit` pairs).
pub async fn queries(
    channel: Channel,
    interval: Duration,
    limit: usize,
    stop: CancellationToken,
) -> QueryLatency {
    let mut query = QueryClient::new(channel);
    let mut out = QueryLatency::default();
    for _ in 0..limit {
        if stop.is_cancelled() {
            break;
        }
        let now = now_millis();
        let sent = Instant::now();
        let compliance = query
            .get_compliance(v1::GetComplianceRequest {
                from: Some(timestamp(now - 30 * 24 * 3600 * 1000)),
                to: Some(timestamp(now)),
                ..Default::default()
            })
            .await;
        match compliance {
            Ok(_) => out.compliance.push(sent.elapsed()),
            Err(_) => out.errors += 1,
        }
        let sent = Instant::now();
        let breaches = query
            .list_breaches(v1::ListBreachesRequest {
                page_size: 100,
                ..Default::default()
            })
            .await;
        match breaches {
            Ok(_) => out.breaches.push(sent.elapsed()),
            Err(_) => out.errors += 1,
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    out
}

/// Publishes recorded events straight to the events stream (as ingest
/// would have recorded them), at most `window` acks outstanding.
pub async fn publish_recorded(
    js: &jetstream::Context,
    events: impl Iterator<Item = (String, v1::HandoffEvent)>,
    window: usize,
) -> anyhow::Result<u64> {
    let mut in_flight = FuturesUnordered::new();
    let mut last = 0;
    for (subject, event) in events {
        let message = PublishMessage::build()
            .payload(Bytes::from(event.encode_to_vec()))
            .message_id(format!("{}:{}", event.handoff_id, event.event_id))
            .expected_last_subject_sequence(0);
        in_flight.push(std::future::IntoFuture::into_future(
            js.send_publish(subject, message).await?,
        ));
        while in_flight.len() >= window {
            if let Some(ack) = in_flight.next().await {
                last = last.max(ack?.sequence);
            }
        }
    }
    while let Some(ack) = in_flight.next().await {
        last = last.max(ack?.sequence);
    }
    Ok(last)
}

/// Breach detection delay: `clocks` STAT repair requests whose 10-minute
/// response promise runs out `lead` from now, spread over `spread`;
/// returns, per breach seen on `baton.sla.breached.>`, the time from its
/// deadline to its arrival, and how many never arrived within `lead +
/// spread + 30 s`.
pub async fn breach_delay(
    nats: &async_nats::Client,
    js: &jetstream::Context,
    tag: &str,
    clocks: usize,
    lead: Duration,
    spread: Duration,
) -> anyhow::Result<(Samples, usize)> {
    let mut breaches = nats.subscribe("baton.sla.breached.>").await?;
    let target = 10 * 60_000;
    let first = now_millis() + lead.as_millis() as i64;
    let step = spread.as_millis() as f64 / clocks.max(1) as f64;
    let prefix = format!("brk-{tag}-");
    let now = now_millis();
    let events = (0..clocks).map(|i| {
        let deadline = first + (i as f64 * step) as i64;
        let id = format!("{prefix}h{}", traffic::serial(i));
        let event = v1::HandoffEvent {
            event_id: "e0".into(),
            handoff_id: id.clone(),
            r#type: v1::EventType::Requested as i32,
            occurred_at: Some(timestamp(deadline - target)),
            kind: "repair".into(),
            supplier: "engineering".into(),
            customer: "icu".into(),
            priority: Priority::Stat as i32,
            actor: "bench-breach".into(),
            version: 1,
            recorded_at: Some(timestamp(now)),
            ..Default::default()
        };
        (format!("baton.handoff.{id}.repair.engineering.icu"), event)
    });
    publish_recorded(js, events, 256).await?;
    if now_millis() > first {
        eprintln!("  warning: publishing the breach clocks took longer than the lead; raise --breach-lead");
    }
    let mut delays = Samples::with_capacity(clocks);
    let give_up = tokio::time::Instant::now() + lead + spread + Duration::from_secs(30);
    while delays.len() < clocks {
        let message = tokio::select! {
            m = breaches.next() => m,
            _ = tokio::time::sleep_until(give_up) => None,
        };
        let Some(message) = message else { break };
        let arrived = now_millis();
        let Ok(breach) = v1::Breach::decode(message.payload.as_ref()) else {
            continue;
        };
        if !breach.handoff_id.starts_with(&prefix) || breach.policy_id != "repair-response" {
            continue;
        }
        let Some(deadline) = breach.deadline.as_ref().map(millis_of) else {
            continue;
        };
        delays.push_micros(((arrived - deadline).max(0) as u64) * 1000);
    }
    let missing = clocks - delays.len();
    Ok((delays, missing))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every id and text of the bench's traffic passes ingest's patient-data
    /// screen, with tags ending in digits as the paired runs use them.
    #[test]
    fn workload_ids_pass_the_patient_data_screen() {
        let traffic = crate::traffic::tests::shipped();
        for tag in ["bare", "uni0", "half12", "bat2", "syn"] {
            for handoff in workload(&traffic, tag, 5_000, 12).iter() {
                for e in handoff {
                    for text in [&e.handoff_id, &e.event_id, &e.actor]
                        .into_iter()
                        .chain(e.attributes.keys())
                        .chain(e.attributes.values())
                    {
                        assert_eq!(baton_domain::privacy::screen(text), None, "{text:?}");
                    }
                }
            }
        }
    }
}
