//! Prometheus metrics of the ingest service, served on the HTTP side port
//! at `/metrics` (OpenMetrics text, encoded by `prometheus-client`).
//!
//! - `baton_ingest_events_total{type, result}`: appends answered, by event
//!   type and outcome (`ok`, `duplicate`, `invalid`, `refused`, `conflict`,
//!   `id_reused`, `unavailable`, `exhausted`, `error`).
//! - `baton_ingest_disruptions_total{result}`: disruption appends, the same outcomes.
//! - `baton_ingest_append_duration_seconds`: time to answer one append.
//! - `baton_ingest_conflicts_total`: appends JetStream refused on their
//!   condition (another replica appended to the hand-off or disruption
//!   since this one read it), each then judged again on a fresh read.
//! - `baton_ingest_in_flight`: requests being handled now (at most
//!   `--max-in-flight`); `baton_ingest_in_flight_max`: the most at once
//!   since start, counted by the server itself, not inferred from shedding.
//! - `baton_ingest_task_failures_total{task}`: long-running tasks that failed.
//! - `baton_nats_connected`: 1 while the NATS connection is up.
//! - the ports' connection and access counters
//!   ([`baton_runtime::ports::PortMetrics`]).

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use axum::Router;
use baton_proto::v1;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use tonic::{Code, Status};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    r#type: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The ingest service's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    disruptions: Family<ResultLabels, Counter>,
    append_duration: Histogram,
    conflicts: Counter,
    in_flight: Gauge,
    in_flight_max: Gauge,
    nats_connected: Gauge,
    /// Connections and side-port access, counted by the ports themselves.
    pub ports: baton_runtime::ports::PortMetrics,
    /// What the supervisor counts task failures into.
    pub task_failures: baton_runtime::exposition::TaskFailures,
}

/// One request counted in `baton_ingest_in_flight` until dropped.
#[derive(Debug)]
pub struct InFlight<'a> {
    gauge: &'a Gauge,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let events = Family::<EventLabels, Counter>::default();
        let disruptions = Family::<ResultLabels, Counter>::default();
        // 0.25 ms to about 4 s.
        let append_duration = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        let conflicts = Counter::default();
        let in_flight = Gauge::default();
        let in_flight_max = Gauge::default();
        let nats_connected = Gauge::default();
        registry.register(
            "ingest_events",
            "Hand-off event appends answered, by event type and result",
            events.clone(),
        );
        registry.register(
            "ingest_disruptions",
            "Disruption event appends answered, by result",
            disruptions.clone(),
        );
        registry.register(
            "ingest_append_duration_seconds",
            "Time to answer one append (validation, history reads, JetStream acknowledgement)",
            append_duration.clone(),
        );
        registry.register(
            "ingest_conflicts",
            "Appends JetStream refused because another writer appended since this replica read; each was judged again",
            conflicts.clone(),
        );
        registry.register(
            "ingest_in_flight",
            "Requests being handled now (an Append, a whole AppendBatch, an AppendDisruption); at most --max-in-flight",
            in_flight.clone(),
        );
        registry.register(
            "ingest_in_flight_max",
            "Most requests handled at once since the service started",
            in_flight_max.clone(),
        );
        registry.register(
            "nats_connected",
            "1 while the service is connected to NATS, else 0",
            nats_connected.clone(),
        );
        let task_failures = baton_runtime::exposition::TaskFailures::default();
        task_failures.register(&mut registry, "ingest_task_failures");
        let ports = baton_runtime::ports::PortMetrics::default();
        ports.register(&mut registry);
        Metrics {
            registry,
            events,
            disruptions,
            append_duration,
            conflicts,
            in_flight,
            in_flight_max,
            nats_connected,
            task_failures,
            ports,
        }
    }

    /// The counter of JetStream refusals, for the ingestor to count in.
    pub fn conflicts(&self) -> Counter {
        self.conflicts.clone()
    }

    /// Counts one request as being handled until the guard is dropped, and
    /// raises the high-water mark if it is the most at once so far.
    pub fn request_started(&self) -> InFlight<'_> {
        let now = self.in_flight.inc() + 1;
        self.in_flight_max.inner().fetch_max(now, Ordering::Relaxed);
        InFlight {
            gauge: &self.in_flight,
        }
    }

    /// Counts one answered hand-off event append.
    pub fn appended<T>(
        &self,
        event_type: Option<i32>,
        answer: &Result<T, Status>,
        duplicate: impl FnOnce(&T) -> bool,
        took: Duration,
    ) {
        let r#type = event_type
            .and_then(|t| v1::EventType::try_from(t).ok())
            .map(type_label)
            .unwrap_or_else(|| "unknown".to_owned());
        let result = result_label(answer, duplicate);
        self.events
            .get_or_create(&EventLabels { r#type, result })
            .inc();
        self.append_duration.observe(took.as_secs_f64());
    }

    /// Counts one answered disruption append.
    pub fn disruption<T>(&self, answer: &Result<T, Status>, duplicate: impl FnOnce(&T) -> bool) {
        let result = result_label(answer, duplicate);
        self.disruptions
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// The exposition, with the connection state as of now.
    pub fn render(&self, nats_connected: bool) -> String {
        self.nats_connected.set(i64::from(nats_connected));
        baton_runtime::exposition::encode(&self.registry)
    }
}

/// `EVENT_TYPE_ON_HOLD` → `on_hold`.
fn type_label(t: v1::EventType) -> String {
    let name = t.as_str_name();
    name.strip_prefix("EVENT_TYPE_")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn result_label<T>(answer: &Result<T, Status>, duplicate: impl FnOnce(&T) -> bool) -> &'static str {
    match answer {
        Ok(ok) if duplicate(ok) => "duplicate",
        Ok(_) => "ok",
        Err(status) => match status.code() {
            Code::InvalidArgument => "invalid",
            Code::FailedPrecondition => "refused",
            Code::Aborted => "conflict",
            Code::AlreadyExists => "id_reused",
            Code::Unavailable => "unavailable",
            Code::ResourceExhausted => "exhausted",
            _ => "error",
        },
    }
}

/// `GET /metrics` for the HTTP side port.
pub fn router(metrics: Arc<Metrics>, client: async_nats::Client) -> Router {
    baton_runtime::exposition::route(move || metrics.render(baton_log::is_connected(&client)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_are_counted_by_type_and_result() {
        let metrics = Metrics::new();
        let requested = Some(v1::EventType::Requested as i32);
        let took = Duration::from_millis(2);
        metrics.appended(requested, &Ok::<bool, Status>(false), |d| *d, took);
        metrics.appended(requested, &Ok::<bool, Status>(true), |d| *d, took);
        metrics.appended(
            Some(v1::EventType::OnHold as i32),
            &Err::<bool, _>(Status::failed_precondition("no")),
            |d| *d,
            took,
        );
        let text = metrics.render(true);
        assert!(text.contains(r#"baton_ingest_events_total{type="requested",result="ok"} 1"#));
        assert!(
            text.contains(r#"baton_ingest_events_total{type="requested",result="duplicate"} 1"#)
        );
        assert!(text.contains(r#"baton_ingest_events_total{type="on_hold",result="refused"} 1"#));
        assert!(text.contains("baton_ingest_append_duration_seconds_count 3"));
        assert!(text.contains("baton_nats_connected 1"));
    }

    #[test]
    fn requests_in_flight_and_the_most_at_once_are_counted() {
        let metrics = Metrics::new();
        let first = metrics.request_started();
        let second = metrics.request_started();
        let text = metrics.render(true);
        assert!(text.contains("baton_ingest_in_flight 2\n"), "{text}");
        assert!(text.contains("baton_ingest_in_flight_max 2\n"), "{text}");
        drop(first);
        drop(second);
        let _third = metrics.request_started();
        let text = metrics.render(true);
        assert!(text.contains("baton_ingest_in_flight 1\n"), "{text}");
        assert!(text.contains("baton_ingest_in_flight_max 2\n"), "{text}");
    }
}
