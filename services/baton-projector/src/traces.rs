//! The projector's part of a trace: a `projector.apply` span per applied
//! event that arrived with a `traceparent` (child of ingest's span), a
//! `projector.apply_batch` span per batch linked to each of them, and, per
//! hand-off, the context its last traced event was applied in, so the
//! announcer's publish of a breach continues the trace of the event that
//! started the clock.
//!
//! Held in memory only and bounded: after a restart, or once a hand-off is
//! pushed out by [`CAPACITY`] newer ones, its signals start a trace of
//! their own. It must never record anything but ids in a span (no event
//! attributes, no patient data), and never hold a lock across an await.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use baton_runtime::otel::opentelemetry::{
    trace::{Link, SpanContext, SpanKind, TraceContextExt as _, Tracer as _},
    Context, KeyValue,
};

/// Hand-offs whose last trace context is remembered.
pub const CAPACITY: usize = 10_000;

/// This service's name: its spans' `baton.service` and tracer scope.
pub const NAME: &str = "baton-projector";

/// Per hand-off, the context its last traced event was applied in.
#[derive(Debug, Clone, Default)]
pub struct Traces(Arc<Mutex<Remembered>>);

#[derive(Debug, Default)]
struct Remembered {
    by_handoff: HashMap<String, SpanContext>,
    /// Oldest first, for eviction (a hand-off may appear more than once).
    order: VecDeque<String>,
}

impl Traces {
    fn remember(&self, handoff_id: &str, cx: SpanContext) {
        let Ok(mut remembered) = self.0.lock() else {
            return;
        };
        if remembered
            .by_handoff
            .insert(handoff_id.to_owned(), cx)
            .is_none()
        {
            remembered.order.push_back(handoff_id.to_owned());
        }
        while remembered.by_handoff.len() > CAPACITY {
            let Some(oldest) = remembered.order.pop_front() else {
                break;
            };
            remembered.by_handoff.remove(&oldest);
        }
    }

    /// The context `handoff_id`'s last traced event was applied in, if
    /// remembered: the parent of the announcer's publish.
    pub fn of(&self, handoff_id: &str) -> Option<Context> {
        let remembered = self.0.lock().ok()?;
        let cx = remembered.by_handoff.get(handoff_id)?.clone();
        Some(Context::new().with_remote_span_context(cx))
    }
}

/// The batch's span, linked to each traced event's parent (`parents`:
/// the contexts their messages carried); `None` when no event of the
/// batch carried one (nothing is started).
pub(crate) fn batch_span(parents: &[Context], count: usize) -> Option<Context> {
    if parents.is_empty() {
        return None;
    }
    let tracer = baton_runtime::otel::tracer(NAME);
    let links = parents
        .iter()
        .map(|cx| Link::with_context(cx.span().span_context().clone()))
        .collect();
    let span = tracer
        .span_builder("projector.apply_batch")
        .with_kind(SpanKind::Consumer)
        .with_links(links)
        .with_attributes([
            baton_runtime::otel::service(NAME),
            KeyValue::new("baton.batch.events", count as i64),
            KeyValue::new("baton.batch.traced", parents.len() as i64),
        ])
        .start_with_context(&tracer, &Context::new());
    Some(Context::new().with_span(span))
}

/// Runs `apply` in a `projector.apply` span, child of `parent` (the
/// context the event's message carried) and linked to the batch's span;
/// remembers the span's context for `handoff_id`'s signals.
pub(crate) fn applying<T>(
    traces: &Traces,
    parent: &Context,
    batch: Option<&Context>,
    handoff_id: &str,
    sequence: u64,
    apply: impl FnOnce() -> T,
) -> T {
    let tracer = baton_runtime::otel::tracer(NAME);
    let mut builder = tracer
        .span_builder("projector.apply")
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            baton_runtime::otel::service(NAME),
            KeyValue::new("baton.handoff_id", handoff_id.to_owned()),
            KeyValue::new("baton.stream_sequence", sequence as i64),
        ]);
    if let Some(batch) = batch {
        builder = builder.with_links(vec![Link::with_context(
            batch.span().span_context().clone(),
        )]);
    }
    let span = builder.start_with_context(&tracer, parent);
    let cx = Context::new().with_span(span);
    traces.remember(handoff_id, cx.span().span_context().clone());
    let applied = apply();
    cx.span().end();
    applied
}

#[cfg(test)]
mod tests {
    use baton_runtime::otel::opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    fn span(n: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(u128::from(n) + 1),
            SpanId::from(n + 1),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn remembers_the_last_context_of_each_hand_off_within_its_bound() {
        let traces = Traces::default();
        traces.remember("h-0", span(0));
        traces.remember("h-0", span(1));
        assert_eq!(
            traces
                .of("h-0")
                .map(|cx| cx.span().span_context().span_id()),
            Some(span(1).span_id())
        );
        for n in 1..=CAPACITY as u64 {
            traces.remember(&format!("h-{n}"), span(n));
        }
        assert!(traces.of("h-0").is_none(), "the oldest goes first");
        assert!(traces.of(&format!("h-{CAPACITY}")).is_some());
    }
}
