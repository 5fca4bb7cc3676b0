//! W3C trace context in NATS message headers: `traceparent` (and
//! `tracestate`) written into a publish's headers and read back from a
//! delivered message, so one trace runs from an append through the
//! projector to a notification.
//!
//! It only moves context: it must never start spans or export anything,
//! and never writes a header when there is no valid context to carry.

use async_nats::HeaderMap;
use opentelemetry::{
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::TraceContextExt,
    Context,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The header holding the W3C trace parent.
pub const TRACEPARENT: &str = "traceparent";

/// A NATS header map as a trace-context carrier to write.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

/// A NATS header map as a trace-context carrier to read.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes `cx`'s span context into `headers`; nothing when it has none
/// (tracing off and no caller's context to pass on).
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    if cx.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(headers));
    }
}

/// The headers to publish with for the current context (see [`inject`]).
pub fn current_headers() -> Option<HeaderMap> {
    let cx = Context::current();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut headers = HeaderMap::new();
    inject(&cx, &mut headers);
    Some(headers)
}

/// The context a message carries, if it has a valid `traceparent`.
pub fn extract(headers: Option<&HeaderMap>) -> Option<Context> {
    let headers = headers?;
    headers.get(TRACEPARENT)?;
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    cx.span().span_context().is_valid().then_some(cx)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    use super::*;

    #[test]
    fn a_context_goes_through_headers_and_back() {
        let sent = SpanContext::new(
            TraceId::from(0x0af7651916cd43dd8448eb211c80319c_u128),
            SpanId::from(0xb7ad6b7169203331_u64),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let mut headers = HeaderMap::new();
        inject(
            &Context::new().with_remote_span_context(sent.clone()),
            &mut headers,
        );
        assert_eq!(
            headers.get(TRACEPARENT).map(|v| v.as_str()),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        let read = extract(Some(&headers)).expect("a context");
        assert_eq!(read.span().span_context().trace_id(), sent.trace_id());
        assert_eq!(read.span().span_context().span_id(), sent.span_id());
    }

    #[test]
    fn no_context_writes_nothing_and_garbage_reads_as_none() {
        let mut headers = HeaderMap::new();
        inject(&Context::new(), &mut headers);
        assert!(headers.get(TRACEPARENT).is_none());
        headers.insert(TRACEPARENT, "not a trace parent");
        assert!(extract(Some(&headers)).is_none());
        assert!(extract(None).is_none());
    }
}
