//! Prometheus metrics of the gateway, served on the HTTP side port at
//! `/metrics`:
//!
//! - `baton_gateway_messages_total{type, ack}`: HL7 messages answered, by
//!   message type (`ORM^O01`, ... or `unreadable`) and MSA-1 (`AA`, `AE`,
//!   `AR`, or `none` when ingest could not store them and the sender must
//!   send again).
//! - `baton_gateway_refusals_total{field}`: messages refused (AE, AR) by the
//!   field that was wrong.
//! - `baton_gateway_ignored_total{reason}`: what was acknowledged and not
//!   appended: a message whose status the mapping does not name ("status
//!   not mapped"), a specimen's arrival told after the hand-off had moved
//!   past it ("already past").
//! - `baton_gateway_fhir_gaps_total`: FHIR subscription events never
//!   received (a skipped event number): Tasks lost on the way.
//! - `baton_gateway_fhir_fetch_failures_total`: id-only notifications not
//!   taken because the FHIR server could not give their Tasks (the sender is
//!   answered 503 and is to send them again).
//! - `baton_gateway_append_batches_total`, `baton_gateway_appended_events_total`:
//!   `AppendBatch` requests sent to ingest and the events they carried
//!   (their ratio is the events a batch shares).
//! - `baton_gateway_task_failures_total{task}`: long-running tasks that failed.
//! - the ports' connection counters ([`baton_runtime::ports::PortMetrics`]);
//!   the MLLP port counts as `grpc`, the service's own port.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MessageLabels {
    r#type: String,
    ack: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The gateway's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    messages: Family<MessageLabels, Counter>,
    refusals: Family<FieldLabel, Counter>,
    ignored: Family<ReasonLabel, Counter>,
    fhir_gaps: Counter,
    fhir_fetch_failures: Counter,
    append_batches: Counter,
    appended_events: Counter,
    /// What the supervisor counts task failures into.
    pub task_failures: baton_runtime::exposition::TaskFailures,
    pub ports: baton_runtime::ports::PortMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let gateway = registry.sub_registry_with_prefix("gateway");
        let messages = Family::<MessageLabels, Counter>::default();
        gateway.register(
            "messages",
            "HL7 messages answered, by type and ACK code",
            messages.clone(),
        );
        let refusals = Family::<FieldLabel, Counter>::default();
        gateway.register(
            "refusals",
            "HL7 messages refused, by the field that was wrong",
            refusals.clone(),
        );
        let ignored = Family::<ReasonLabel, Counter>::default();
        gateway.register(
            "ignored",
            "HL7 messages acknowledged with nothing to append",
            ignored.clone(),
        );
        let fhir_gaps = Counter::default();
        gateway.register(
            "fhir_gaps",
            "FHIR subscription events never received (skipped event numbers)",
            fhir_gaps.clone(),
        );
        let fhir_fetch_failures = Counter::default();
        gateway.register(
            "fhir_fetch_failures",
            "id-only FHIR notifications not taken: the FHIR server could not give their Tasks",
            fhir_fetch_failures.clone(),
        );
        let append_batches = Counter::default();
        gateway.register(
            "append_batches",
            "AppendBatch requests sent to ingest",
            append_batches.clone(),
        );
        let appended_events = Counter::default();
        gateway.register(
            "appended_events",
            "events sent to ingest in AppendBatch requests",
            appended_events.clone(),
        );
        let task_failures = baton_runtime::exposition::TaskFailures::default();
        task_failures.register(gateway, "task_failures");
        let ports = baton_runtime::ports::PortMetrics::default();
        ports.register(&mut registry);
        Metrics {
            registry,
            messages,
            refusals,
            ignored,
            fhir_gaps,
            fhir_fetch_failures,
            append_batches,
            appended_events,
            task_failures,
            ports,
        }
    }

    /// A message of `kind` answered with `ack` (`AA`, `AE`, `AR`, `none`).
    pub fn answered(&self, kind: &str, ack: &'static str) {
        self.messages
            .get_or_create(&MessageLabels {
                r#type: kind.to_owned(),
                ack,
            })
            .inc();
    }

    pub fn refused(&self, field: &str) {
        self.refusals
            .get_or_create(&FieldLabel {
                field: field.to_owned(),
            })
            .inc();
    }

    pub fn ignored(&self, reason: &'static str) {
        self.ignored.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// A subscription skipped `missed` event numbers.
    pub fn fhir_gap(&self, missed: u64) {
        self.fhir_gaps.inc_by(missed);
    }

    /// An `AppendBatch` of `events` sent to ingest.
    pub fn batch_sent(&self, events: usize) {
        self.append_batches.inc();
        self.appended_events.inc_by(events as u64);
    }

    /// An id-only notification's Tasks could not be fetched.
    pub fn fhir_fetch_failed(&self) {
        self.fhir_fetch_failures.inc();
    }

    fn render(&self) -> String {
        baton_runtime::exposition::encode(&self.registry)
    }
}

/// `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    baton_runtime::exposition::route(move || metrics.render())
}
