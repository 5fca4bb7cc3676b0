//! Prometheus metrics of notify, on its side port at `/metrics`:
//!
//! - `baton_notify_deliveries_total{route, channel, result}`: deliveries
//!   that arrived (`delivered`) or were given up and parked (`parked`).
//! - `baton_notify_failed_attempts_total{route, channel}`: attempts that
//!   failed (each retried until the bound).
//! - `baton_notify_unreadable_total`: messages on `BATON_SLA` notify could not read.
//! - `baton_notify_task_failures_total{task}` and the side port's counters.

use std::sync::Arc;

use axum::{http::header, routing::get, Router};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    route: String,
    channel: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    route: String,
    channel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: &'static str,
}

/// Notify's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    failed: Family<ChannelLabels, Counter>,
    unreadable: Counter,
    task_failures: Family<TaskLabel, Counter>,
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
        let notify = registry.sub_registry_with_prefix("notify");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        notify.register(
            "deliveries",
            "Deliveries that arrived or were parked",
            deliveries.clone(),
        );
        let failed = Family::<ChannelLabels, Counter>::default();
        notify.register(
            "failed_attempts",
            "Delivery attempts that failed",
            failed.clone(),
        );
        let unreadable = Counter::default();
        notify.register(
            "unreadable",
            "Messages on BATON_SLA notify could not read",
            unreadable.clone(),
        );
        let task_failures = Family::<TaskLabel, Counter>::default();
        notify.register(
            "task_failures",
            "Long-running tasks that failed",
            task_failures.clone(),
        );
        let ports = baton_runtime::ports::PortMetrics::default();
        ports.register(&mut registry);
        Metrics {
            registry,
            deliveries,
            failed,
            unreadable,
            task_failures,
            ports,
        }
    }

    /// Every (route, channel)'s series at zero from the start, so an
    /// alert's `increase()` sees the first parked delivery.
    pub fn zero(&self, routes: &crate::routes::Routes) {
        for route in &routes.routes {
            for channel in &route.deliver {
                for result in ["delivered", "parked"] {
                    let _zero = self.deliveries.get_or_create(&DeliveryLabels {
                        route: route.name.clone(),
                        channel: channel.clone(),
                        result,
                    });
                }
                let _zero = self.failed.get_or_create(&ChannelLabels {
                    route: route.name.clone(),
                    channel: channel.clone(),
                });
            }
        }
    }

    fn delivery(&self, route: &str, channel: &str, result: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                route: route.to_owned(),
                channel: channel.to_owned(),
                result,
            })
            .inc();
    }

    pub fn delivered(&self, route: &str, channel: &str) {
        self.delivery(route, channel, "delivered");
    }

    pub fn parked(&self, route: &str, channel: &str) {
        self.delivery(route, channel, "parked");
    }

    pub fn attempt_failed(&self, route: &str, channel: &str) {
        self.failed
            .get_or_create(&ChannelLabels {
                route: route.to_owned(),
                channel: channel.to_owned(),
            })
            .inc();
    }

    pub fn unreadable(&self) {
        self.unreadable.inc();
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

impl baton_runtime::supervise::TaskCounter for Metrics {
    fn started(&self, task: &'static str) {
        let _zero = self.task_failures.get_or_create(&TaskLabel { task });
    }

    fn failed(&self, task: &'static str) {
        self.task_failures.get_or_create(&TaskLabel { task }).inc();
    }
}

/// `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = metrics.render();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
        }),
    )
}
