//! (3) The projection alone: the events of the stream the rebuild read,
//! fetched once into memory, decoded and folded into empty views in the
//! projector's batches, with NATS out of the way. Next to the rebuild it
//! says what bounds the rebuild: delivery, the projection's own work, or
//! sled's apply of it (timed apart here, as the projector overlaps it with
//! computing the next batch).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
};
use baton_domain::{Catalog, Timestamp};
use baton_views::{ApplyOutcome, Projection, Views};
use futures::StreamExt;

/// One message of the stream, as the projector receives it.
#[derive(Debug)]
pub struct Stored {
    pub sequence: u64,
    /// When JetStream stored it: the time the projector applies it at.
    pub stored_at: Timestamp,
    pub subject: String,
    pub payload: bytes::Bytes,
}

/// Every message of `stream_name` (`expected` of them), in stream order.
pub async fn fetch_all(
    js: &jetstream::Context,
    stream_name: &str,
    expected: u64,
) -> anyhow::Result<Vec<Stored>> {
    let stream = js.get_stream(stream_name).await?;
    let name = "bench-fetch-all";
    let _ = stream.delete_consumer(name).await;
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1_000)
        .messages()
        .await?;
    let mut stored = Vec::with_capacity(expected as usize);
    while (stored.len() as u64) < expected {
        let Some(message) = messages.next().await else {
            anyhow::bail!("the stream ended after {} messages", stored.len());
        };
        let message = message.map_err(|e| anyhow::anyhow!("fetch: {e}"))?;
        let info = message
            .info()
            .map_err(|e| anyhow::anyhow!("message info: {e}"))?;
        let sequence = info.stream_sequence;
        let stored_at = Timestamp((info.published.unix_timestamp_nanos() / 1_000_000) as i64);
        stored.push(Stored {
            sequence,
            stored_at,
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
        });
    }
    let _ = stream.delete_consumer(name).await;
    Ok(stored)
}

/// What one projection of the fetched events took.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub events: usize,
    /// Decoding, folding and sealing the batches.
    pub compute: Duration,
    /// sled applying the sealed batches.
    pub apply: Duration,
}

impl Timing {
    /// Events a second with computing and applying in turn.
    pub fn sequential_rate(&self) -> f64 {
        crate::stats::rate(self.events, self.compute + self.apply)
    }
}

/// Folds `messages` into empty views under `dir`, `batch` events a commit,
/// as the projector does while catching up.
pub fn project(
    messages: &[Stored],
    catalog: &Catalog,
    dir: &Path,
    batch: usize,
) -> anyhow::Result<Timing> {
    let (views, _) = Views::open_with_cache(dir, catalog.version(), 64 << 20)?;
    let horizon = Some(Duration::from_secs(3600));
    let (mut compute, mut apply) = (Duration::ZERO, Duration::ZERO);
    let mut refused = 0usize;
    for chunk in messages.chunks(batch.max(1)) {
        let started = Instant::now();
        let mut projection = Projection::new(&views, catalog)?.with_announce_horizon(horizon);
        for m in chunk {
            let applied = if m.subject.starts_with(baton_log::subject::DISRUPTION_PREFIX) {
                let event = baton_log::disruptions::decode(m.sequence, &m.subject, &m.payload)?;
                projection.apply_disruption(m.sequence, m.stored_at, event)?
            } else {
                let event = baton_log::events::decode(m.sequence, &m.subject, &m.payload)?;
                projection.apply(m.sequence, m.stored_at, event)?
            };
            if matches!(applied, ApplyOutcome::Refused(_)) {
                refused += 1;
            }
        }
        let sealed = projection.seal()?;
        compute += started.elapsed();
        if let Some(sealed) = sealed {
            let started = Instant::now();
            views.stage(&sealed)?;
            views.land(sealed)?;
            apply += started.elapsed();
        }
    }
    anyhow::ensure!(
        refused == 0,
        "{refused} events of the stream did not fit their hand-offs"
    );
    anyhow::ensure!(
        views.position()? == messages.last().map_or(0, |m| m.sequence),
        "the views did not reach the stream's last message"
    );
    Ok(Timing {
        events: messages.len(),
        compute,
        apply,
    })
}
