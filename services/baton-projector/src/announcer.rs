//! The outbox of breaches, corrections and warnings, drained onto NATS.
//!
//! A breach is written to the outbox in the same sled batch that records it;
//! this task publishes each one with [`baton_log::signals::announce_once`]
//! and then removes it. A crash between the two publishes it again, which
//! JetStream refuses as already announced: exactly once, replay or not.
//! A correction (a late event showed an announced breach was a kept
//! promise after all) goes the same way on `baton.sla.corrected.…`, a
//! warning on `baton.sla.warning.…`, and a breach of a promise with an
//! escalation target also on `baton.sla.escalated.<target>.…`, and the
//! acknowledgement of that escalation on `baton.sla.acknowledged.…`.
//!
//! A subject that already holds a message is checked: the same signal (a
//! replica, or this projector before a crash, got there first) is fine;
//! anything else means someone published in Baton's place, which is an
//! alarm (an error log, `baton_sla_forged_signals_total`, and `/readyz`
//! not ready naming the subject), never taken as "already announced". Either
//! way the views' own signal is relayed to the watchers and the board.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use baton_log::{
    signals::{announce_once_checked, Announced},
    subject::ClockSubject,
};
use baton_proto::v1;
use baton_runtime::otel::opentelemetry::{
    trace::{SpanKind, TraceContextExt as _, Tracer as _},
    Context, KeyValue,
};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use baton_views::{BreachRecord, Signal};

use crate::{
    query::{breach_to_proto, warning_to_proto},
    relay::Relayed,
    Shared, TaskError,
};

/// Drains the outbox until `shutdown`; NATS failures are retried, a
/// storage failure ends it (and so the process) with the error.
pub async fn run(
    shared: Arc<Shared>,
    js: jetstream::Context,
    shutdown: CancellationToken,
) -> Result<(), TaskError> {
    // Not while rebuilding: a breach the rest of the stream corrects would
    // be announced, then corrected, though the live run never paged for it.
    tokio::select! {
        _ = shutdown.cancelled() => return Ok(()),
        _ = shared.wait_current() => {}
    }
    while !shutdown.is_cancelled() {
        shared.failpoints.hit("announcer").await?;
        let pending = shared.read(|views| views.outbox(256)).await?;
        if pending.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = shared.outbox_ready.notified() => continue,
            }
        }
        for (key, signal, record) in pending {
            shared.failpoints.hit("outbox-before-publish").await?;
            let (relayed, announcements) = announcements_of(signal, &record);
            if !publish(&shared, &js, &record, signal, &relayed, announcements).await? {
                // NATS refused or went away: wait a moment, then read the
                // outbox afresh.
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                break;
            }
            shared.failpoints.hit("published-before-clear").await?;
            // What NATS holds is known: the views' own signal goes to the
            // watchers and the board, whatever stood on its subject.
            shared.relay.send(relayed);
            let handoff = record.handoff_id.clone();
            // Cleared in a batch, so it is ordered with the projection's
            // batches and reads what they staged.
            let queued = shared
                .write(move |projection| projection.announced(&key, signal, &record))
                .await?;
            if queued {
                tracing::info!(%handoff, "corrected while it was announced: correction queued")
            }
        }
    }
    Ok(())
}

/// One announcement: its metric label, subject and payload.
type Announcement = (&'static str, String, bytes::Bytes);

/// What the watchers are told of an outbox entry, and what is published:
/// a breach on its subject (and its escalation target's), a correction or
/// a warning on theirs.
fn announcements_of(signal: Signal, record: &BreachRecord) -> (Relayed, Vec<Announcement>) {
    let clock = ClockSubject {
        policy: &record.policy_id,
        supplier: &record.supplier,
        customer: &record.customer,
        handoff_id: &record.handoff_id,
        cycle: record.cycle,
    };
    let label = crate::metrics::Metrics::signal_label(signal);
    match signal {
        Signal::Breach | Signal::Correction => {
            let mut message = breach_to_proto(record, baton_runtime::now());
            message.corrected = signal == Signal::Correction;
            let payload: bytes::Bytes = message.encode_to_vec().into();
            if signal == Signal::Correction {
                let announcements = vec![(label, clock.correction(), payload)];
                return (Relayed::Correction(message), announcements);
            }
            let mut announcements = vec![(label, clock.breach(), payload.clone())];
            if let Some(target) = &record.escalate_to {
                announcements.push(("escalation", clock.escalation(target), payload));
            }
            (Relayed::Breach(message), announcements)
        }
        Signal::Acknowledged => {
            let message = breach_to_proto(record, baton_runtime::now());
            let payload = message.encode_to_vec().into();
            (
                Relayed::Acknowledgement(message),
                vec![(label, clock.acknowledgement(), payload)],
            )
        }
        Signal::Warning => {
            let message = warning_to_proto(record);
            let payload = message.encode_to_vec().into();
            (
                Relayed::Warning(message),
                vec![(label, clock.warning(), payload)],
            )
        }
    }
}

/// Publishes each announcement once; `false` if one could not be (NATS
/// is away or refused it: the entry stays in the outbox).
async fn publish(
    shared: &Arc<Shared>,
    js: &jetstream::Context,
    record: &BreachRecord,
    signal: Signal,
    relayed: &Relayed,
    announcements: Vec<Announcement>,
) -> Result<bool, TaskError> {
    // The trace of the event that started the clock, if it was traced.
    let traced = shared.traces.of(record.handoff_id.as_str());
    for (label, subject, payload) in announcements {
        let expected = relayed.clone();
        let same = move |stored: &[u8]| same_signal(&expected, stored);
        let mut headers = async_nats::HeaderMap::new();
        let _span = traced.as_ref().map(|parent| {
            let cx = announce_span(parent, label, record);
            baton_log::trace::inject(&cx, &mut headers);
            cx
        });
        match announce_once_checked(js, subject.clone(), payload, headers, same).await {
            Ok(Announced::Now(sequence)) => {
                tracing::info!(%subject, sequence, "announced");
                shared.metrics.announced(
                    label,
                    record.policy_id.as_str(),
                    record.supplier.as_str(),
                    record.customer.as_str(),
                );
            }
            Ok(Announced::Already) => tracing::debug!(%subject, "was announced before"),
            Ok(Announced::Squatted(sequence)) => {
                squatted(shared, record, signal, &subject, sequence).await?
            }
            Err(e) => {
                tracing::warn!(error = %e, %subject, "cannot announce yet, retrying");
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// A `projector.announce` span, child of the applied event's span
/// (`parent`): the context the signal's message carries to notify.
fn announce_span(parent: &Context, label: &'static str, record: &BreachRecord) -> Context {
    let tracer = baton_runtime::otel::tracer(crate::traces::NAME);
    let span = tracer
        .span_builder("projector.announce")
        .with_kind(SpanKind::Producer)
        .with_attributes([
            baton_runtime::otel::service(crate::traces::NAME),
            KeyValue::new("baton.signal", label),
            KeyValue::new("baton.handoff_id", record.handoff_id.to_string()),
            KeyValue::new("baton.policy_id", record.policy_id.to_string()),
        ])
        .start_with_context(&tracer, parent);
    Context::new().with_span(span)
}

/// Whether `stored`, found on a signal's subject, is the signal the views
/// computed: the same clock (hand-off, promise, cycle, pair) and the same
/// instant (deadline, or when the warning share was crossed).
fn same_signal(expected: &Relayed, stored: &[u8]) -> bool {
    match expected {
        Relayed::Acknowledgement(b) => v1::Breach::decode(stored).is_ok_and(|s| {
            (
                &s.handoff_id,
                &s.policy_id,
                s.cycle,
                &s.deadline,
                &s.acknowledged_by,
                &s.acknowledged_at,
            ) == (
                &b.handoff_id,
                &b.policy_id,
                b.cycle,
                &b.deadline,
                &b.acknowledged_by,
                &b.acknowledged_at,
            )
        }),
        Relayed::Breach(b) | Relayed::Correction(b) => v1::Breach::decode(stored).is_ok_and(|s| {
            (
                &s.handoff_id,
                &s.policy_id,
                s.cycle,
                &s.supplier,
                &s.customer,
                &s.deadline,
            ) == (
                &b.handoff_id,
                &b.policy_id,
                b.cycle,
                &b.supplier,
                &b.customer,
                &b.deadline,
            )
        }),
        Relayed::Warning(w) => v1::SlaWarning::decode(stored).is_ok_and(|s| {
            (
                &s.handoff_id,
                &s.policy_id,
                s.cycle,
                &s.supplier,
                &s.customer,
                &s.warned_at,
            ) == (
                &w.handoff_id,
                &w.policy_id,
                w.cycle,
                &w.supplier,
                &w.customer,
                &w.warned_at,
            )
        }),
        Relayed::Disruption(_) => false,
    }
}

/// A signal's subject holds a message that is not the signal the views
/// computed. A clock breached again after its breach was corrected finds
/// its own first announcement there; anything else was published by
/// someone who should not have: raise the alarm.
async fn squatted(
    shared: &Arc<Shared>,
    record: &BreachRecord,
    signal: Signal,
    subject: &str,
    sequence: u64,
) -> Result<(), TaskError> {
    let handoff = record.handoff_id.clone();
    let view = shared.read(move |views| views.handoff(&handoff)).await?;
    let corrected_before = signal == Signal::Breach
        && view.is_some_and(|view| {
            view.corrections
                .iter()
                .any(|c| c.policy_id == record.policy_id && c.cycle == record.cycle)
        });
    if corrected_before {
        tracing::info!(%subject, sequence, "breached again after a correction: its first announcement stands");
        return Ok(());
    }
    shared.metrics.forged_signal();
    let reason = format!(
        "{subject} holds a message (BATON_SLA sequence {sequence}) that is not the signal these views computed: someone else published on baton.sla.>; check the NATS permissions (restart the projector once investigated)"
    );
    tracing::error!(%subject, sequence, handoff = %record.handoff_id, "forged or foreign signal in Baton's place");
    shared
        .health
        .fault(format!("signal:{subject}"), reason)
        .await;
    Ok(())
}
