//! Parked deliveries: listed, and sent again. A parked delivery is the
//! signal's payload on `baton.notify.parked.<route>.<channel>` in
//! `BATON_NOTIFY_PARKED`, its headers naming the signal and why it was
//! parked. Re-driving moves it to `baton.notify.redrive.<route>.<channel>`
//! in the same stream, where notify's second consumer delivers it to that
//! channel alone under the same delivery id (and parks it again if it still
//! cannot), and deletes the parked copy. batonctl uses this module; notify
//! does the delivering.

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;

use crate::deliver::{DeliverError, PARKED_PREFIX, PARKED_STREAM, REDRIVE_PREFIX};

/// One parked delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Its sequence in `BATON_NOTIFY_PARKED`.
    pub sequence: u64,
    pub route: String,
    pub channel: String,
    pub signal_subject: String,
    pub delivery: String,
    pub reason: String,
}

fn nats(e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Nats(e.to_string())
}

fn header(headers: Option<&async_nats::HeaderMap>, name: &str) -> String {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// Every parked delivery, oldest first, with its payload.
async fn read(js: &jetstream::Context) -> Result<Vec<(Parked, jetstream::Message)>, DeliverError> {
    let stream = match js.get_stream(PARKED_STREAM).await {
        Ok(s) => s,
        // Nothing was ever parked.
        Err(_) => return Ok(Vec::new()),
    };
    let mut consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{PARKED_PREFIX}>"),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let pending = consumer.info().await.map_err(nats)?.num_pending;
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut parked = Vec::new();
    while (parked.len() as u64) < pending {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.map_err(nats)?;
        let sequence = message.info().map_err(nats)?.stream_sequence;
        let rest = message.subject.strip_prefix(PARKED_PREFIX).unwrap_or("");
        let (route, channel) = rest.split_once('.').unwrap_or((rest, ""));
        let headers = message.headers.as_ref();
        parked.push((
            Parked {
                sequence,
                route: route.to_owned(),
                channel: channel.to_owned(),
                signal_subject: header(headers, "Baton-Signal-Subject"),
                delivery: header(headers, "Baton-Delivery"),
                reason: header(headers, "Baton-Reason"),
            },
            message,
        ));
    }
    Ok(parked)
}

/// Every parked delivery, oldest first.
pub async fn list(js: &jetstream::Context) -> Result<Vec<Parked>, DeliverError> {
    Ok(read(js).await?.into_iter().map(|(p, _)| p).collect())
}

/// Sends the parked deliveries of `route` and `channel` (all when `None`)
/// again; how many.
pub async fn redrive(
    js: &jetstream::Context,
    route: Option<&str>,
    channel: Option<&str>,
) -> Result<usize, DeliverError> {
    let stream = js.get_stream(PARKED_STREAM).await.map_err(nats)?;
    let mut moved = 0;
    for (parked, message) in read(js).await? {
        if route.is_some_and(|r| r != parked.route) || channel.is_some_and(|c| c != parked.channel)
        {
            continue;
        }
        let subject = format!("{REDRIVE_PREFIX}{}.{}", parked.route, parked.channel);
        let headers = message.headers.clone().unwrap_or_default();
        js.publish_with_headers(subject, headers, message.payload.clone())
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
        stream.delete_message(parked.sequence).await.map_err(nats)?;
        moved += 1;
    }
    Ok(moved)
}
