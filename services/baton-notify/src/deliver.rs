//! The delivery loop: a durable JetStream consumer on `BATON_SLA`; each
//! signal delivered to every (route, channel) that takes it, each delivery
//! retried with backoff up to the bound and then parked on
//! `baton.notify.parked.<route>.<channel>` (stream `BATON_NOTIFY_PARKED`)
//! with the reason. A signal is acknowledged to JetStream only when every
//! one of its deliveries arrived or was parked, so a crash in between
//! delivers it again: the receiver recognises the repeat by its delivery id.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer::pull, AckKind};
use baton_runtime::otel::opentelemetry::{
    context::FutureExt as _,
    trace::{Link, SpanKind, TraceContextExt as _, Tracer as _},
    Context, KeyValue,
};
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::{
    channel::{Channel, Delivery},
    group::Groups,
    metrics::Metrics,
    notice::{notice, Notice},
    retry::Backoff,
    table::{InForce, Table},
};

/// The durable consumer's name: a restarted notify resumes where it was.
pub const CONSUMER: &str = "baton-notify";

/// The durable consumer of disruptions on the events stream.
pub const DISRUPTIONS_CONSUMER: &str = "baton-notify-disruptions";
/// The consumer of re-driven deliveries.
pub const REDRIVE_CONSUMER: &str = "baton-notify-redrive";
/// Where undeliverable notices are parked, and re-driven from.
pub const PARKED_STREAM: &str = "BATON_NOTIFY_PARKED";
pub const PARKED_PREFIX: &str = "baton.notify.parked.";
pub const REDRIVE_PREFIX: &str = "baton.notify.redrive.";

/// Why the delivery loop stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("the stream {0} ended")]
    Ended(&'static str),
}

fn nats(e: impl std::fmt::Display) -> DeliverError {
    DeliverError::Nats(e.to_string())
}

/// What the loop needs.
#[derive(Debug, Clone)]
pub struct Deliverer {
    pub js: jetstream::Context,
    /// The routes and channels in force (reloaded on SIGHUP).
    pub table: InForce,
    pub backoff: Backoff,
    /// The board's address, for the link in each notice.
    pub board: String,
    pub metrics: Arc<Metrics>,
    /// Signals held by their routes' policies (shared by every loop).
    pub groups: Groups,
    /// Signs the acknowledgement links of escalation notices, if set up.
    pub acks: Option<Arc<crate::ack::Acks>>,
    /// Attempts under way at once, across loops ([`MAX_ATTEMPTS_AT_ONCE`]).
    pub attempt_slots: Arc<tokio::sync::Semaphore>,
}

/// Delivery attempts under way at once: each may hold a connection, so
/// this bounds notify's outgoing connections (and sizes LimitNOFILE).
pub const MAX_ATTEMPTS_AT_ONCE: usize = 256;

/// Signals one loop holds unacknowledged at once: being delivered, waiting
/// for their group, or for an escalation's next level. Held signals wait
/// for minutes or hours, so the bound is far above what is delivered at
/// once (that is [`MAX_ATTEMPTS_AT_ONCE`]): a warning storm held for its
/// group must never keep the next STAT breach from being read. It is also
/// the consumers' `max_ack_pending`, so JetStream keeps sending.
pub const MAX_UNACKED: usize = 10_000;

/// How often a signal waiting for its group tells JetStream it is still
/// being worked on (well inside the consumer's ack wait, at least 30 s).
const KEEPALIVE: Duration = Duration::from_secs(10);

/// Says on the current span (a `notify.deliver`, if traced) how the
/// delivery ended and after how many attempts.
fn outcome_on_span(outcome: &'static str, attempts: u32) {
    let cx = Context::current();
    let span = cx.span();
    span.set_attribute(KeyValue::new("baton.outcome", outcome));
    span.set_attribute(KeyValue::new("baton.attempts", i64::from(attempts)));
}

/// What a parked delivery carries: enough to deliver it again.
#[derive(Debug, Clone)]
struct Parcel<'a> {
    /// The signal's subject and sequence (a group's: `baton.notify.group.<route>`
    /// and its first member's).
    subject: &'a str,
    sequence: u64,
    /// The signal's payload, or a group's rendered body.
    payload: Bytes,
    grouped: bool,
}

/// The header marking a parked grouped message, whose payload is the body
/// itself.
const GROUPED_HEADER: &str = "Baton-Grouped";

/// The subject an escalation's acknowledgement is announced on:
/// `baton.sla.escalated.<target>.<clock>` -> `baton.sla.acknowledged.<clock>`.
pub fn acknowledgement_subject(escalation: &str) -> Option<String> {
    let rest = escalation.strip_prefix(baton_log::subject::Signal::Escalated.prefix())?;
    let (_target, clock) = rest.split_once('.')?;
    Some(format!(
        "{}{clock}",
        baton_log::subject::Signal::Acknowledged.prefix()
    ))
}

/// The id a delivery keeps across attempts and restarts.
pub fn delivery_id(subject: &str, sequence: u64, route: &str, channel: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{subject}|{sequence}|{route}|{channel}").as_bytes(),
    );
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where notify reads signals from: a stream, the subjects it takes there,
/// and its durable consumer's name.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub stream: &'static str,
    pub filter: &'static str,
    pub consumer: &'static str,
}

/// Breaches, warnings, escalations and corrections.
pub const SLA: Source = Source {
    stream: baton_log::subject::SLA_STREAM,
    filter: baton_log::subject::ALL_SLA,
    consumer: CONSUMER,
};

/// Disruptions a supplier announces and ends, from the events stream.
pub const DISRUPTIONS: Source = Source {
    stream: baton_log::subject::EVENTS_STREAM,
    filter: baton_log::subject::ALL_DISRUPTIONS,
    consumer: DISRUPTIONS_CONSUMER,
};

impl Deliverer {
    /// Delivers what `source` announces until `shutdown`; an error if NATS
    /// fails.
    pub async fn run(
        self,
        source: Source,
        shutdown: CancellationToken,
    ) -> Result<(), DeliverError> {
        self.parked_stream().await?;
        let consumer = self.consumer(source, &shutdown).await?;
        let Some(consumer) = consumer else {
            return Ok(());
        };
        let mut messages = consumer.messages().await.map_err(nats)?;
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                Some(done) = in_flight.join_next() => {
                    done.map_err(|e| DeliverError::Nats(format!("a delivery task failed: {e}")))??;
                }
                next = messages.next(), if in_flight.len() < MAX_UNACKED => {
                    let message = next.ok_or(DeliverError::Ended(source.stream))?.map_err(nats)?;
                    let me = self.clone();
                    in_flight.spawn(async move { me.handle(message).await });
                }
            }
        }
    }

    /// Delivers what `batonctl notify retry` re-drives, until `shutdown`:
    /// each to its one (route, channel), under its first delivery id.
    pub async fn redrive(self, shutdown: CancellationToken) -> Result<(), DeliverError> {
        let stream = self.parked_stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                REDRIVE_CONSUMER,
                pull::Config {
                    durable_name: Some(REDRIVE_CONSUMER.to_owned()),
                    filter_subject: format!("{REDRIVE_PREFIX}>"),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(300),
                    ..Default::default()
                },
            )
            .await
            .map_err(nats)?;
        let mut messages = consumer.messages().await.map_err(nats)?;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                next = messages.next() => next,
            };
            let message = message
                .ok_or(DeliverError::Ended(PARKED_STREAM))?
                .map_err(nats)?;
            self.redeliver(message).await?;
        }
    }

    async fn redeliver(&self, message: jetstream::Message) -> Result<(), DeliverError> {
        let rest = message
            .subject
            .strip_prefix(REDRIVE_PREFIX)
            .unwrap_or("")
            .to_owned();
        let (route, channel) = rest.split_once('.').unwrap_or((rest.as_str(), ""));
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        let subject = header("Baton-Signal-Subject");
        let sequence = header("Baton-Signal-Sequence").parse().unwrap_or(0);
        let parcel = Parcel {
            subject: &subject,
            sequence,
            payload: message.payload.clone(),
            grouped: !header(GROUPED_HEADER).is_empty(),
        };
        let table = self.table.now();
        if parcel.grouped {
            // A grouped message was parked as its body, under its own id.
            let delivery = Delivery {
                id: header("Baton-Delivery"),
                body: message.payload.clone(),
            };
            self.deliver_or_park(&table, route, channel, delivery, parcel, Some(&message))
                .await?;
            return message.ack().await.map_err(nats);
        }
        match notice(&subject, sequence, &message.payload, &self.board) {
            Ok(Some(n)) => {
                let delivery = Delivery {
                    id: delivery_id(&subject, sequence, route, channel),
                    body: Bytes::from(n.body.to_string()),
                };
                self.deliver_or_park(&table, route, channel, delivery, parcel, Some(&message))
                    .await?;
            }
            Ok(None) | Err(_) => {
                tracing::warn!(%subject, "a re-driven delivery notify cannot read; dropped");
                self.metrics.unreadable();
            }
        }
        message.ack().await.map_err(nats)
    }

    async fn parked_stream(&self) -> Result<jetstream::stream::Stream, DeliverError> {
        self.js
            .get_or_create_stream(jetstream::stream::Config {
                name: PARKED_STREAM.to_owned(),
                subjects: vec![format!("{PARKED_PREFIX}>"), format!("{REDRIVE_PREFIX}>")],
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(nats)
    }

    /// The source's durable consumer, once its stream exists (ingest or
    /// the projector creates it); `None` if shut down first. A new consumer
    /// starts at new signals: notify never pages for what came before it.
    async fn consumer(
        &self,
        source: Source,
        shutdown: &CancellationToken,
    ) -> Result<Option<jetstream::consumer::Consumer<pull::Config>>, DeliverError> {
        let stream = loop {
            match self.js.get_stream(source.stream).await {
                Ok(stream) => break stream,
                Err(e) => {
                    tracing::info!(stream = source.stream, error = %e, "waiting for the stream");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        let waits = self.backoff.attempts as u64
            * (self.table.now().longest_timeout() + self.backoff.max).as_secs();
        stream
            .get_or_create_consumer(
                source.consumer,
                pull::Config {
                    durable_name: Some(source.consumer.to_owned()),
                    filter_subject: source.filter.to_owned(),
                    deliver_policy: jetstream::consumer::DeliverPolicy::New,
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    max_ack_pending: MAX_UNACKED as i64,
                    // Progress acks extend it during retries; this covers one attempt.
                    ack_wait: Duration::from_secs(waits.clamp(30, 3_600)),
                    ..Default::default()
                },
            )
            .await
            .map(Some)
            .map_err(nats)
    }

    /// Handles one signal; one that carries a trace context is handled in
    /// a `notify.handle` span continuing it (its deliveries' spans are its
    /// children).
    async fn handle(&self, message: jetstream::Message) -> Result<(), DeliverError> {
        match baton_log::trace::extract(message.headers.as_ref()) {
            Some(parent) => {
                let tracer = baton_runtime::otel::tracer(crate::NAME);
                let span = tracer
                    .span_builder("notify.handle")
                    .with_kind(SpanKind::Consumer)
                    .with_attributes([
                        baton_runtime::otel::service(crate::NAME),
                        KeyValue::new("baton.signal_subject", message.subject.to_string()),
                    ])
                    .start_with_context(&tracer, &parent);
                let cx = Context::new().with_span(span);
                self.handle_signal(message).with_context(cx).await
            }
            None => self.handle_signal(message).await,
        }
    }

    async fn handle_signal(&self, message: jetstream::Message) -> Result<(), DeliverError> {
        let sequence = message.info().map_err(nats)?.stream_sequence;
        let subject = message.subject.to_string();
        let notice = match notice(&subject, sequence, &message.payload, &self.board) {
            Ok(Some(n)) => n,
            Ok(None) => return message.ack().await.map_err(nats),
            Err(e) => {
                tracing::warn!(%subject, error = %e, "a message notify cannot read; skipped");
                self.metrics.unreadable();
                return message.ack().await.map_err(nats);
            }
        };
        let table = self.table.now();
        let now = jiff::Timestamp::now();
        let body = Bytes::from(notice.body.to_string());
        let parcel = Parcel {
            subject: &notice.subject,
            sequence: notice.sequence,
            payload: message.payload.clone(),
            grouped: false,
        };
        let mut at_once = Vec::new();
        let mut held = Vec::new();
        let mut escalating = Vec::new();
        for route in table
            .routes
            .routes
            .iter()
            .filter(|r| r.matches.takes(&notice))
        {
            if notice.kind == crate::notice::Kind::Escalation && !route.renotify.is_empty() {
                escalating.push(route);
            }
            match route.policy.hold_until(&notice, now) {
                None => at_once.extend(route.deliver.iter().map(|c| (route.name.as_str(), c))),
                Some(until) => held.push(self.hold(&table, &route.name, &notice, now, until)),
            }
        }
        let delivered = futures::future::join_all(at_once.into_iter().map(|(route, channel)| {
            let delivery = Delivery {
                id: delivery_id(&notice.subject, notice.sequence, route, channel),
                body: self.with_link(&notice, &notice.body, route, channel, &body),
            };
            self.deliver_or_park(
                &table,
                route,
                channel,
                delivery,
                parcel.clone(),
                Some(&message),
            )
        }));
        let (delivered, grouped) = tokio::join!(delivered, self.wait_for_groups(held, &message));
        delivered.into_iter().collect::<Result<Vec<()>, _>>()?;
        grouped?;
        // Unacknowledged escalations go up a level after a while; the
        // signal stays unacknowledged to JetStream until that is settled,
        // so a restart picks the chain up where the clock says it is.
        let renotified = futures::future::join_all(
            escalating
                .into_iter()
                .map(|route| self.renotify(&table, route, &notice, &message)),
        )
        .await;
        renotified.into_iter().collect::<Result<Vec<()>, _>>()?;
        message.ack().await.map_err(nats)
    }

    /// Tells `route`'s next levels of an escalation nobody acknowledged:
    /// at each level's time past the breach (notify's clock), unless the
    /// acknowledgement is on `baton.sla.acknowledged.…` by then.
    async fn renotify(
        &self,
        table: &Table,
        route: &crate::routes::Route,
        notice: &Notice,
        message: &jetstream::Message,
    ) -> Result<(), DeliverError> {
        let Some(acknowledgement) = acknowledgement_subject(&notice.subject) else {
            return Ok(());
        };
        let breached = notice.body["deadline"]
            .as_str()
            .and_then(|d| d.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(jiff::Timestamp::now);
        for (n, level) in route.renotify.iter().enumerate() {
            let due = breached
                .checked_add(jiff::SignedDuration::try_from(level.after).unwrap_or_default())
                .unwrap_or(breached);
            loop {
                let left = due.duration_since(jiff::Timestamp::now());
                let Ok(left) = Duration::try_from(left) else {
                    break;
                };
                if left.is_zero() {
                    break;
                }
                tokio::time::sleep(left.min(KEEPALIVE)).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
            if self.acknowledged(&acknowledgement).await? {
                tracing::info!(route = %route.name, handoff = %notice.handoff, "escalation acknowledged: no next level");
                return Ok(());
            }
            let mut json = notice.body.clone();
            json["renotify"] = serde_json::json!(n + 1);
            json["unacknowledged_for"] = serde_json::json!(format!("{}s", level.after.as_secs()));
            let body = Bytes::from(json.to_string());
            let parcel = Parcel {
                subject: &notice.subject,
                sequence: notice.sequence,
                payload: message.payload.clone(),
                grouped: false,
            };
            let level_route = format!("{}~{}", route.name, n + 1);
            let sent = futures::future::join_all(level.deliver.iter().map(|channel| {
                let delivery = Delivery {
                    id: delivery_id(&notice.subject, notice.sequence, &level_route, channel),
                    body: self.with_link(notice, &json, &route.name, channel, &body),
                };
                self.deliver_or_park(
                    table,
                    &route.name,
                    channel,
                    delivery,
                    parcel.clone(),
                    Some(message),
                )
            }))
            .await;
            sent.into_iter().collect::<Result<Vec<()>, _>>()?;
            self.metrics.renotified(&route.name);
            tracing::warn!(route = %route.name, handoff = %notice.handoff, level = n + 1, "escalation unacknowledged: next level told");
        }
        Ok(())
    }

    /// The body for `route`'s `channel`: an escalation's with the link that
    /// acknowledges it as sent there (when links are set up), else `plain`
    /// (`json` as it is).
    fn with_link(
        &self,
        notice: &Notice,
        json: &serde_json::Value,
        route: &str,
        channel: &str,
        plain: &Bytes,
    ) -> Bytes {
        match &self.acks {
            Some(acks) if notice.kind == crate::notice::Kind::Escalation => {
                let mut json = json.clone();
                json["acknowledge"] = serde_json::json!(acks.link(&notice.handoff, route, channel));
                Bytes::from(json.to_string())
            }
            _ => plain.clone(),
        }
    }

    /// Whether `subject` (an acknowledgement's) holds a message.
    async fn acknowledged(&self, subject: &str) -> Result<bool, DeliverError> {
        let stream = self
            .js
            .get_stream(baton_log::subject::SLA_STREAM)
            .await
            .map_err(nats)?;
        match stream.direct_get_last_for_subject(subject).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == async_nats::jetstream::stream::DirectGetErrorKind::NotFound => {
                Ok(false)
            }
            Err(e) => Err(nats(e)),
        }
    }

    /// Holds `notice` in `route`'s group, delivered at `until` (scheduled
    /// by the signal that opens the group).
    fn hold(
        &self,
        table: &Arc<Table>,
        route: &str,
        notice: &Notice,
        now: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> tokio::sync::oneshot::Receiver<crate::group::Outcome> {
        let (answer, opened) = self.groups.join(table, route, notice, now);
        self.metrics.held(route);
        if opened {
            let me = self.clone();
            let route = route.to_owned();
            tokio::spawn(async move {
                let wait = until.duration_since(jiff::Timestamp::now());
                tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
                me.deliver_group(&route).await;
            });
        }
        answer
    }

    /// Waits for the groups a signal joined, telling JetStream meanwhile
    /// that it is still being worked on.
    async fn wait_for_groups(
        &self,
        held: Vec<tokio::sync::oneshot::Receiver<crate::group::Outcome>>,
        message: &jetstream::Message,
    ) -> Result<(), DeliverError> {
        if held.is_empty() {
            return Ok(());
        }
        let all = futures::future::join_all(held);
        tokio::pin!(all);
        let outcomes = loop {
            tokio::select! {
                outcomes = &mut all => break outcomes,
                _ = tokio::time::sleep(KEEPALIVE) => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        };
        for outcome in outcomes {
            outcome
                .map_err(|_| DeliverError::Nats("a group ended without delivering".to_owned()))?
                .map_err(DeliverError::Nats)?;
        }
        Ok(())
    }

    /// Delivers `route`'s group to each of its channels (retried, parked
    /// like any delivery) and tells its members how it went.
    async fn deliver_group(&self, route: &str) {
        let Some(group) = self.groups.take(route) else {
            return;
        };
        let members = &group.members;
        let body = Bytes::from(crate::group::body(route, members, group.opened_at).to_string());
        let subject = format!("baton.notify.group.{route}");
        let parcel = Parcel {
            subject: &subject,
            sequence: members.first().map_or(0, |n| n.sequence),
            payload: body.clone(),
            grouped: true,
        };
        let channels = group
            .table
            .routes
            .routes
            .iter()
            .find(|r| r.name == route)
            .map(|r| r.deliver.clone())
            .unwrap_or_default();
        let deliveries = futures::future::join_all(channels.iter().map(|channel| {
            let delivery = Delivery {
                id: crate::group::delivery_id(route, channel, members),
                body: body.clone(),
            };
            self.deliver_or_park(&group.table, route, channel, delivery, parcel.clone(), None)
        }));
        // Traced members: the grouped delivery is a trace of its own,
        // linked to each of theirs.
        let outcomes = if group.traces.is_empty() {
            deliveries.await
        } else {
            let tracer = baton_runtime::otel::tracer(crate::NAME);
            let links = group
                .traces
                .iter()
                .map(|cx| Link::with_context(cx.clone()))
                .collect();
            let span = tracer
                .span_builder("notify.deliver_group")
                .with_kind(SpanKind::Internal)
                .with_links(links)
                .with_attributes([
                    baton_runtime::otel::service(crate::NAME),
                    KeyValue::new("baton.route", route.to_owned()),
                    KeyValue::new("baton.group.members", members.len() as i64),
                ])
                .start_with_context(&tracer, &Context::new());
            deliveries
                .with_context(Context::new().with_span(span))
                .await
        };
        let outcome = outcomes
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
            .map_err(|e| e.to_string());
        if outcome.is_ok() {
            self.metrics.grouped(route);
            tracing::info!(%route, signals = members.len(), "grouped message sent");
        }
        for waiter in group.waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// Delivers to one channel, retrying; parks it after the last attempt.
    /// An error only if parking failed (the signal is then delivered again).
    /// Within a trace (the signal's, see [`Deliverer::handle`]) in a
    /// `notify.deliver` span of its own; untraced, no span is started.
    async fn deliver_or_park(
        &self,
        table: &Table,
        route: &str,
        channel: &str,
        delivery: Delivery,
        parcel: Parcel<'_>,
        message: Option<&jetstream::Message>,
    ) -> Result<(), DeliverError> {
        let parent = Context::current();
        if !parent.span().span_context().is_valid() {
            return self
                .deliver_or_park_untraced(table, route, channel, delivery, parcel, message)
                .await;
        }
        let tracer = baton_runtime::otel::tracer(crate::NAME);
        let span = tracer
            .span_builder("notify.deliver")
            .with_kind(SpanKind::Client)
            .with_attributes([
                baton_runtime::otel::service(crate::NAME),
                KeyValue::new("baton.route", route.to_owned()),
                KeyValue::new("baton.channel", channel.to_owned()),
                KeyValue::new("baton.delivery", delivery.id.clone()),
                KeyValue::new("baton.grouped", parcel.grouped),
            ])
            .start_with_context(&tracer, &parent);
        let cx = parent.with_span(span);
        self.deliver_or_park_untraced(table, route, channel, delivery, parcel, message)
            .with_context(cx)
            .await
    }

    async fn deliver_or_park_untraced(
        &self,
        table: &Table,
        route: &str,
        channel: &str,
        delivery: Delivery,
        parcel: Parcel<'_>,
        message: Option<&jetstream::Message>,
    ) -> Result<(), DeliverError> {
        let Some(target) = table.channels.get(channel) else {
            // Only a re-driven delivery can name a channel the routes in
            // force no longer have.
            tracing::warn!(%route, %channel, "a re-driven delivery's channel is no longer in the routes; dropped");
            return Ok(());
        };
        let mut jitter =
            baton_rng::Rng::new(jiff::Timestamp::now().as_nanosecond() as u64 ^ parcel.sequence);
        let mut last = String::new();
        for attempt in 1..=self.backoff.attempts {
            let outcome = {
                let _slot = self
                    .attempt_slots
                    .acquire()
                    .await
                    .map_err(|_| DeliverError::Nats("the attempt slots closed".to_owned()))?;
                target.deliver(&delivery).await
            };
            match outcome {
                Ok(()) => {
                    outcome_on_span("delivered", attempt);
                    self.metrics.delivered(route, channel);
                    tracing::info!(%route, %channel, delivery = %delivery.id, attempt, "delivered");
                    return Ok(());
                }
                Err(e) => {
                    self.metrics.attempt_failed(route, channel);
                    tracing::warn!(%route, %channel, delivery = %delivery.id, attempt, error = %e, "delivery failed");
                    last = e.to_string();
                }
            }
            if attempt < self.backoff.attempts {
                if let Some(message) = message {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                let fraction = jitter.below(1_000) as f64 / 1_000.0;
                tokio::time::sleep(self.backoff.wait(attempt, fraction)).await;
            }
        }
        outcome_on_span("parked", self.backoff.attempts);
        self.park(&parcel, route, channel, &delivery, &last).await
    }

    async fn park(
        &self,
        parcel: &Parcel<'_>,
        route: &str,
        channel: &str,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), DeliverError> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Baton-Delivery", delivery.id.as_str());
        headers.insert("Baton-Signal-Subject", parcel.subject);
        headers.insert(
            "Baton-Signal-Sequence",
            parcel.sequence.to_string().as_str(),
        );
        if parcel.grouped {
            headers.insert(GROUPED_HEADER, "1");
        }
        headers.insert(
            "Baton-Reason",
            format!("{} attempts; the last: {reason}", self.backoff.attempts).as_str(),
        );
        self.js
            .publish_with_headers(
                format!("{PARKED_PREFIX}{route}.{channel}"),
                headers,
                parcel.payload.clone(),
            )
            .await
            .map_err(nats)?
            .await
            .map_err(nats)?;
        self.metrics.parked(route, channel);
        tracing::error!(%route, %channel, delivery = %delivery.id, %reason, "delivery parked after its last attempt");
        Ok(())
    }
}
