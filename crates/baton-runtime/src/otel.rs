//! OpenTelemetry tracing: the `--otlp-endpoint` flag every service shares,
//! the tracer provider that exports spans over OTLP/gRPC when it is set,
//! and W3C trace context read from gRPC metadata.
//!
//! Off by default, and then free: no provider, no exporter, no thread; the
//! spans Baton starts are the API's no-op spans. Trace context is still
//! passed through: an append that arrives with a `traceparent` carries it
//! on to JetStream (the no-op span keeps its parent's context), one without
//! writes no header. It must never put patient data in a span: hand-off
//! ids, subjects and counts only, never an event's attributes.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
    Context, KeyValue,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider},
    Resource,
};

pub use opentelemetry;

/// The attribute naming the Baton service that started a span (services
/// that share a process, as in the end-to-end tests, share its resource).
pub const SERVICE_ATTRIBUTE: &str = "baton.service";

/// Where spans go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpArgs {
    /// Export traces over OTLP/gRPC to this collector (e.g.
    /// http://127.0.0.1:4317); off when unset.
    #[arg(long = "otlp-endpoint", env = "BATON_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// Why tracing could not be started.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    #[error("OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The process's tracer provider, exporting over OTLP. Flushed and shut
/// down by [`Telemetry::shutdown`] (at the end of a service's `main`).
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Exports every span of this process to `endpoint`, as `service`
    /// (resource `service.name`), in batches sent at most `every` apart.
    /// Must be called inside a tokio runtime (the exporter's channel lives
    /// on it); installs the provider as the process's global one.
    pub fn install(
        endpoint: &str,
        service: &'static str,
        every: Duration,
    ) -> Result<Telemetry, OtelError> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| OtelError::Exporter {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(every)
                    .build(),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        EXPORTING.store(true, Ordering::Release);
        Ok(Telemetry { provider })
    }

    /// Sends every span ended so far. Blocks: call it off the runtime's
    /// workers (`spawn_blocking`) or outside the runtime.
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "flushing spans");
        }
    }

    /// Flushes and stops the exporter. Blocks like [`Telemetry::flush`].
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "shutting down the span exporter");
        }
    }
}

/// Set once a tracer provider exports this process's spans.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans ([`Telemetry::install`] ran): where
/// nothing is exported and no caller's context is to be passed on, a
/// service starts no span at all.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Acquire)
}

/// The tracer of one Baton service (its instrumentation scope): a no-op
/// one unless [`Telemetry::install`] ran in this process.
pub fn tracer(service: &'static str) -> opentelemetry::global::BoxedTracer {
    opentelemetry::global::tracer(service)
}

/// The attribute saying which service started a span.
pub fn service(service: &'static str) -> KeyValue {
    KeyValue::new(SERVICE_ATTRIBUTE, service)
}

/// gRPC request metadata read as a W3C trace-context carrier.
#[derive(Debug)]
pub struct MetadataExtractor<'a>(pub &'a tonic::metadata::MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The caller's trace context from a request's `traceparent` (and
/// `tracestate`), if it sent a valid one.
pub fn remote_parent(metadata: &tonic::metadata::MetadataMap) -> Option<Context> {
    metadata.get("traceparent")?;
    let cx = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    cx.span().span_context().is_valid().then_some(cx)
}
